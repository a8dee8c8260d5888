"""Route planning: a day's problem in, a plan out. Pure Python: no Flask, database or Redis here."""

from app.routing.insertion import Fixed, insertion_cost
from app.routing.model import Job, Location, Plan, Problem, Route, Stop, Technician
from app.routing.solver import evaluate, solve, verify
from app.routing.travel import (
    Cached,
    Haversine,
    MapboxMatrix,
    OsrmTable,
    TravelProvider,
    TravelUnavailable,
    get_provider,
)

__all__ = [
    "Cached",
    "Fixed",
    "Haversine",
    "Job",
    "Location",
    "MapboxMatrix",
    "OsrmTable",
    "Plan",
    "Problem",
    "Route",
    "Stop",
    "Technician",
    "TravelProvider",
    "TravelUnavailable",
    "evaluate",
    "get_provider",
    "insertion_cost",
    "solve",
    "verify",
]
