"""The day's problem and its plan.

Times are integer seconds from a day origin the caller chooses (e.g. local midnight); distances are
integer metres. A job's window bounds when the work STARTS.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float


@dataclass(frozen=True)
class Technician:
    id: str
    start: Location
    end: Location | None  # None: the day ends at the last job
    shift_start: int
    shift_end: int
    skills: frozenset[str] = frozenset()
    capacity: int | None = None  # only for capacitated problems (benchmarks); None: unlimited


@dataclass(frozen=True)
class Job:
    id: str
    location: Location | None
    service_s: int
    window_start: int
    window_end: int
    skills: frozenset[str] = frozenset()  # required; a subset of the technician's
    technician_id: str | None = None  # locked to this technician (approved route / manual)
    # Locked jobs of one technician keep the order of their `sequence`; other jobs may go between them.
    sequence: int | None = None
    demand: int = 0  # counts against Technician.capacity


@dataclass(frozen=True)
class Problem:
    technicians: tuple[Technician, ...]
    jobs: tuple[Job, ...]


@dataclass
class Stop:
    job_id: str
    arrival: int
    start: int
    end: int
    drive_s: int  # from the previous point (the start location for the first stop)
    distance_m: int


@dataclass
class Route:
    technician_id: str
    stops: list[Stop]
    drive_s: int  # the whole route, the drive back included
    distance_m: int
    return_drive_s: int
    return_distance_m: int
    ends_at: int  # back at `end` (or the last job's end when end is None; shift_start for an empty day)


@dataclass
class Plan:
    routes: list[Route]  # one per technician, in the problem's order
    unassigned: dict[str, str]  # job id -> the reason, for people
    drive_s: int
    distance_m: int
    solver: str  # "ortools", "fallback" or "given"
    violations: list[str] = field(default_factory=list)  # evaluate() of a given order; empty for solve()

    def route_for(self, technician_id: str) -> Route | None:
        return next((r for r in self.routes if r.technician_id == technician_id), None)
