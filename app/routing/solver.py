"""Day plans: OR-Tools VRPTW with a construction-heuristic fallback, the timing of a given order, and a checker.

Every job either gets a place on a route or a reason it has none. `solve()` returns only plans that
`verify()` accepts; `evaluate()` times an order the owner chose and lists what is wrong with it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.routing.model import Job, Location, Plan, Problem, Route, Stop, Technician
from app.routing.travel import Matrix, TravelProvider

Objective = Literal["time", "distance"]
Progress = Callable[[float, int], None]  # (seconds since the search began, objective of a new best plan)

NO_ROOM = "doesn't fit into any technician's day alongside the other jobs"


def hhmm(t: int) -> str:
    """Seconds from the day origin as HH:MM (past 24:00 for late shifts)."""
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}"


def _quoted(skills: Iterable[str]) -> str:
    names = sorted(skills)
    return ("skill " if len(names) == 1 else "skills ") + ", ".join(f"'{s}'" for s in names)


@dataclass
class _Day:
    """A problem laid out for planning: one matrix over the distinct points, and who may do each job."""

    problem: Problem
    points: list[Location]
    durations: Matrix
    distances: Matrix
    jobs: dict[str, Job]
    techs: dict[str, Technician]
    point: dict[Location, int]
    allowed: dict[str, list[int]] = field(default_factory=dict)  # job id -> technician indices
    reasons: dict[str, str] = field(default_factory=dict)  # job id -> why nobody can do it at all

    def leg(self, a: Location, b: Location) -> tuple[int, int]:
        i, j = self.point[a], self.point[b]
        return self.durations[i][j], self.distances[i][j]


def _distinct_points(problem: Problem) -> list[Location]:
    seen: dict[Location, None] = {}
    for t in problem.technicians:
        seen[t.start] = None
        if t.end is not None:
            seen[t.end] = None
    for j in problem.jobs:
        if j.location is not None:
            seen[j.location] = None
    return list(seen)


def _reachable(day: _Day, t: Technician, job: Job) -> bool:
    """Could `t` do `job` if it were the only job of the day?"""
    assert job.location is not None
    start = max(t.shift_start + day.leg(t.start, job.location)[0], job.window_start)
    back = day.leg(job.location, t.end)[0] if t.end is not None else 0
    return start <= job.window_end and start + job.service_s + back <= t.shift_end


def _prepare(problem: Problem, travel: TravelProvider) -> _Day:
    points = _distinct_points(problem)
    durations, distances = travel.matrix(points) if points else ([], [])
    day = _Day(
        problem=problem,
        points=points,
        durations=durations,
        distances=distances,
        jobs={j.id: j for j in problem.jobs},
        techs={t.id: t for t in problem.technicians},
        point={p: i for i, p in enumerate(points)},
    )
    if len(day.jobs) != len(problem.jobs) or len(day.techs) != len(problem.technicians):
        raise ValueError("job and technician ids must be unique")
    for job in problem.jobs:
        reason, allowed = _eligibility(day, job)
        if reason:
            day.reasons[job.id] = reason
        else:
            day.allowed[job.id] = allowed
    return day


def _eligibility(day: _Day, job: Job) -> tuple[str | None, list[int]]:
    techs = day.problem.technicians
    if job.location is None:
        return "no coordinates", []
    window = f"window {hhmm(job.window_start)}–{hhmm(job.window_end)}"
    if job.window_end < job.window_start:
        return f"{window} is empty", []
    if not techs:
        return "no technician is working this day", []
    if job.technician_id is not None and job.technician_id not in day.techs:
        return f"locked to technician {job.technician_id}, who isn't working this day", []
    locked = job.technician_id is not None
    candidates = [i for i, t in enumerate(techs) if not locked or t.id == job.technician_id]
    skilled = [i for i in candidates if job.skills <= techs[i].skills]
    if not skilled:
        if locked:
            return f"technician {job.technician_id} lacks the {_quoted(job.skills - techs[candidates[0]].skills)}", []
        held = set().union(*(techs[i].skills for i in candidates))
        missing = job.skills - held
        if missing:
            return f"no technician has the {_quoted(missing)}", []
        return f"no technician has all of the {_quoted(job.skills)}", []
    roomy = [i for i in skilled if techs[i].capacity is None or job.demand <= techs[i].capacity]
    if not roomy:
        return f"demand {job.demand} exceeds every capacity", []
    reachable = [i for i in roomy if _reachable(day, techs[i], job)]
    if not reachable:
        whose = f"technician {job.technician_id}'s shift" if locked else "any shift"
        return f"{window} can't be reached in {whose}", []
    return None, reachable


def _walk(day: _Day, t: Technician, job_ids: list[str]) -> tuple[Route, list[str]]:
    """Earliest-start timing of `job_ids` in this order, and what it breaks (late starts, shift, capacity).

    The technician leaves home just in time for the first stop rather than waiting on the customer's drive.
    """
    stops: list[Stop] = []
    problems: list[str] = []
    here, clock, load = t.start, t.shift_start, 0
    for k, jid in enumerate(job_ids):
        job = day.jobs[jid]
        assert job.location is not None
        drive, dist = day.leg(here, job.location)
        arrival = clock + drive
        start = max(arrival, job.window_start)
        if k == 0:
            arrival = start
        if start > job.window_end:
            problems.append(f"{jid} starts at {hhmm(start)}, after its window closes at {hhmm(job.window_end)}")
        stops.append(Stop(jid, arrival, start, start + job.service_s, drive, dist))
        here, clock, load = job.location, start + job.service_s, load + job.demand
    ret_s, ret_m = day.leg(here, t.end) if t.end is not None and stops else (0, 0)
    ends_at = clock + ret_s
    if ends_at > t.shift_end:
        verb = "is back" if t.end is not None else "finishes"
        problems.append(f"technician {t.id} {verb} at {hhmm(ends_at)}, after the shift ends at {hhmm(t.shift_end)}")
    if t.capacity is not None and load > t.capacity:
        problems.append(f"technician {t.id} carries {load}, over the capacity of {t.capacity}")
    route = Route(
        technician_id=t.id,
        stops=stops,
        drive_s=sum(s.drive_s for s in stops) + ret_s,
        distance_m=sum(s.distance_m for s in stops) + ret_m,
        return_drive_s=ret_s,
        return_distance_m=ret_m,
        ends_at=ends_at,
    )
    return route, problems


def _plan(day: _Day, order: dict[str, list[str]], solver: str) -> tuple[Plan, list[str]]:
    routes: list[Route] = []
    problems: list[str] = []
    for t in day.problem.technicians:
        route, broken = _walk(day, t, order.get(t.id, []))
        routes.append(route)
        problems += broken
    placed = {s.job_id for r in routes for s in r.stops}
    unassigned = {j.id: day.reasons.get(j.id, NO_ROOM) for j in day.problem.jobs if j.id not in placed}
    plan = Plan(
        routes=routes,
        unassigned=unassigned,
        drive_s=sum(r.drive_s for r in routes),
        distance_m=sum(r.distance_m for r in routes),
        solver=solver,
    )
    return plan, problems


def _rank(job: Job) -> int | None:
    """A job's place among its technician's locked jobs; a sequence without a technician lock means nothing."""
    return job.sequence if job.technician_id is not None else None


def _sequence_ok(day: _Day, job_ids: list[str]) -> bool:
    seqs = [r for r in (_rank(day.jobs[j]) for j in job_ids) if r is not None]
    return all(a < b for a, b in zip(seqs, seqs[1:], strict=False))


def solve(
    problem: Problem,
    travel: TravelProvider,
    *,
    time_limit_s: float = 5.0,
    objective: Objective = "time",
    progress: Progress | None = None,
    workers: int = 1,
) -> Plan:
    """The day's routes minimising total drive time (or distance), with a reason for every job left out.

    `workers=2` also runs the other start strategy in a forked process at the same time and keeps the better
    plan (there are two strategies, so more workers add nothing): worth it where a core is free. `progress`
    hears from the first search only.
    """
    day = _prepare(problem, travel)
    plannable = [j for j in problem.jobs if j.id in day.allowed]
    order: dict[str, list[str]] | None = {}
    if plannable:
        strategies = _strategies(problem)[: max(1, workers)]
        order = _portfolio(day, plannable, time_limit_s, objective, progress, strategies)
    solver = "ortools"
    if order is None:
        order, solver = _construct(day, plannable, objective), "fallback"
    plan, _ = _plan(day, order, solver)
    known = _Known(day)
    broken = verify(problem, known, plan)
    if broken and solver == "ortools":
        plan, _ = _plan(day, _construct(day, plannable, objective), "fallback")
        broken = verify(problem, known, plan)
    if broken:  # the construction only makes feasible moves, so this is a bug, not bad input
        raise RuntimeError(f"routing produced an infeasible plan: {broken[:3]}")
    return plan


def _strategies(problem: Problem) -> list[str]:
    """First-solution strategies, the better one for this shape of day first (measured: scripts/bench/)."""
    shared_depot = len({(t.start, t.end) for t in problem.technicians}) == 1
    return ["savings", "insertion"] if shared_depot else ["insertion", "savings"]


def _portfolio(
    day: _Day,
    jobs: list[Job],
    time_limit_s: float,
    objective: Objective,
    progress: Progress | None,
    strategies: list[str],
) -> dict[str, list[str]] | None:
    """One OR-Tools search per strategy, the first here and the rest in forked processes meanwhile; the best wins."""
    if len(strategies) == 1:
        return _ortools_order(day, jobs, time_limit_s, objective, progress, strategies[0])
    # Forked before our search starts: the solver holds the GIL, so nothing could be handed over later.
    fork = multiprocessing.get_context("fork")
    helpers = []
    for strategy in strategies[1:]:
        receive, send = fork.Pipe(duplex=False)
        helper = fork.Process(target=_helper, args=(send, day, jobs, time_limit_s, objective, strategy), daemon=True)
        helper.start()
        send.close()
        helpers.append((helper, receive))
    orders = [_ortools_order(day, jobs, time_limit_s, objective, progress, strategies[0])]
    for helper, receive in helpers:
        try:
            orders.append(receive.recv() if receive.poll(time_limit_s + 30) else None)
        except (EOFError, OSError):  # a lost helper costs quality, never the plan
            orders.append(None)
        finally:
            receive.close()
            helper.join(timeout=1)
            if helper.is_alive():
                helper.kill()
    found = [o for o in orders if o is not None]

    def score(order: dict[str, list[str]]) -> tuple[int, int]:
        plan, _ = _plan(day, order, "")
        return len(plan.unassigned), plan.drive_s if objective == "time" else plan.distance_m

    return min(found, key=score) if found else None


def _helper(send: Any, *args: Any) -> None:
    """A forked second search: sends its routes (or None) back through the pipe."""
    day, jobs, time_limit_s, objective, strategy = args
    try:
        send.send(_ortools_order(day, jobs, time_limit_s, objective, None, strategy))
    except Exception:
        send.send(None)
    finally:
        send.close()


class _Known:
    """Answers verify() from the matrix already fetched, so a road service is asked once per solve."""

    def __init__(self, day: _Day) -> None:
        self.day = day

    def matrix(self, points: list[Location]) -> tuple[Matrix, Matrix]:
        idx = [self.day.point[p] for p in points]
        d, m = self.day.durations, self.day.distances
        return [[d[i][j] for j in idx] for i in idx], [[m[i][j] for j in idx] for i in idx]


def _ortools_order(
    day: _Day,
    jobs: list[Job],
    time_limit_s: float,
    objective: Objective,
    progress: Progress | None,
    strategy: str = "insertion",
) -> dict[str, list[str]] | None:
    """Routes from OR-Tools, or None when it found no solution in time."""
    from ortools.constraint_solver import pywrapcp

    techs = day.problem.technicians
    n, v = len(jobs), len(techs)
    # Nodes: jobs, then each technician's start, then each technician's end (None: a free "day ends here").
    pts: list[int | None] = [day.point[j.location] for j in jobs if j.location is not None]
    assert len(pts) == n, "only jobs with coordinates reach the solver"
    pts += [day.point[t.start] for t in techs] + [None if t.end is None else day.point[t.end] for t in techs]
    service = [j.service_s for j in jobs] + [0] * (2 * v)
    size = n + 2 * v

    def table(m: Matrix, add_service: bool) -> Matrix:
        out = [[0] * size for _ in range(size)]
        for a, pa in enumerate(pts):
            if pa is None:
                continue
            row, arow, extra = out[a], m[pa], service[a] if add_service else 0
            for b, pb in enumerate(pts):
                if pb is not None and a != b:
                    row[b] = arow[pb] + extra
                elif add_service:
                    row[b] = extra
        return out

    manager = pywrapcp.RoutingIndexManager(size, v, list(range(n, n + v)), list(range(n + v, size)))
    routing = pywrapcp.RoutingModel(manager)
    cost = table(day.durations if objective == "time" else day.distances, add_service=False)
    routing.SetArcCostEvaluatorOfAllVehicles(routing.RegisterTransitMatrix(cost))

    horizon = max([t.shift_end for t in techs] + [j.window_end for j in jobs])
    routing.AddDimension(
        routing.RegisterTransitMatrix(table(day.durations, add_service=True)), horizon, horizon, False, "time"
    )
    clock = routing.GetDimensionOrDie("time")
    for k, t in enumerate(techs):
        clock.CumulVar(routing.Start(k)).SetRange(t.shift_start, t.shift_end)
        clock.CumulVar(routing.End(k)).SetRange(t.shift_start, t.shift_end)

    # Leaving a job out must never pay for itself: the penalty dwarfs any detour.
    penalty = 1000 * (max(max(row) for row in cost) + 1)
    for k, job in enumerate(jobs):
        index = manager.NodeToIndex(k)
        clock.CumulVar(index).SetRange(job.window_start, job.window_end)
        if len(day.allowed[job.id]) < v:
            routing.VehicleVar(index).SetValues([-1, *day.allowed[job.id]])  # -1: left out
        routing.AddDisjunction([index], penalty * (10 if job.technician_id else 1))

    if any(t.capacity is not None for t in techs):
        demand = routing.RegisterUnaryTransitVector([j.demand for j in jobs] + [0] * (2 * v))
        total = sum(j.demand for j in jobs)
        capacities = [total if t.capacity is None else t.capacity for t in techs]
        routing.AddDimensionWithVehicleCapacity(demand, 0, capacities, True, "load")

    sequenced = sorted((j.technician_id, _rank(j), k) for k, j in enumerate(jobs) if _rank(j) is not None)
    if sequenced:
        # Locked jobs keep their relative order: rank counts stops along a route.
        routing.AddConstantDimension(1, size + 1, True, "rank")
        rank, cp = routing.GetDimensionOrDie("rank"), routing.solver()
        for a, (tech_a, _, ka) in enumerate(sequenced):
            for tech_b, _, kb in sequenced[a + 1 :]:
                if tech_b != tech_a:
                    break
                ia, ib = manager.NodeToIndex(ka), manager.NodeToIndex(kb)
                slack = (size + 2) * (2 - routing.ActiveVar(ia) - routing.ActiveVar(ib))
                cp.Add(rank.CumulVar(ia) + 1 <= rank.CumulVar(ib) + slack)

    params = _search_parameters(time_limit_s, strategy)
    if progress is not None:
        began = time.monotonic()
        routing.AddAtSolutionCallback(lambda: progress(time.monotonic() - began, routing.CostVar().Value()))

    solution = routing.SolveWithParameters(params)
    if solution is None:
        return None
    order: dict[str, list[str]] = {}
    for k, t in enumerate(techs):
        ids, index = [], solution.Value(routing.NextVar(routing.Start(k)))
        while not routing.IsEnd(index):
            ids.append(jobs[manager.IndexToNode(index)].id)
            index = solution.Value(routing.NextVar(index))
        order[t.id] = ids
    return order


def _search_parameters(time_limit_s: float, strategy: str) -> Any:
    """Guided local search from a savings or an insertion start; choices measured with scripts/bench/ (README)."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    first = routing_enums_pb2.FirstSolutionStrategy
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    if strategy == "savings":  # merges routes out of one depot: clearly better on Solomon
        params.first_solution_strategy = first.SAVINGS
        params.guided_local_search_lambda_coefficient = 0.3
    else:  # insertion: better when technicians start from their own homes
        params.first_solution_strategy = first.PARALLEL_CHEAPEST_INSERTION
    params.use_full_propagation = True
    params.time_limit.FromMilliseconds(max(1, int(time_limit_s * 1000)))
    return params


def _construct(day: _Day, jobs: list[Job], objective: Objective) -> dict[str, list[str]]:
    """Cheapest feasible insertion, tightest windows first; locked sequences go in first, in order."""
    techs = day.problem.technicians
    m = day.durations if objective == "time" else day.distances
    routes: list[list[str]] = [[] for _ in techs]

    def at(k: int, ids: list[str], pos: int) -> int:
        """Matrix index of the point before position `pos` (or the end when pos == len)."""
        t = techs[k]
        if pos < 0:
            return day.point[t.start]
        if pos >= len(ids):
            return -1 if t.end is None else day.point[t.end]
        loc = day.jobs[ids[pos]].location
        assert loc is not None
        return day.point[loc]

    def arc(a: int, b: int) -> int:
        return 0 if a < 0 or b < 0 else m[a][b]

    locked = sorted((j for j in jobs if _rank(j) is not None), key=lambda j: (j.technician_id, _rank(j)))
    loose = sorted((j for j in jobs if _rank(j) is None), key=lambda j: (j.window_end - j.window_start, j.window_start))
    order = locked + loose
    for job in order:
        assert job.location is not None
        p = day.point[job.location]
        best: tuple[int, int, int] | None = None
        for k in day.allowed[job.id]:
            ids = routes[k]
            for pos in range(len(ids) + 1):
                added = (
                    arc(at(k, ids, pos - 1), p) + arc(p, at(k, ids, pos)) - arc(at(k, ids, pos - 1), at(k, ids, pos))
                )
                if best is not None and added >= best[0]:
                    continue
                trial = ids[:pos] + [job.id] + ids[pos:]
                if _sequence_ok(day, trial) and not _walk(day, techs[k], trial)[1]:
                    best = (added, k, pos)
        if best is not None:
            routes[best[1]].insert(best[2], job.id)
    return {t.id: routes[k] for k, t in enumerate(techs)}


def evaluate(problem: Problem, travel: TravelProvider, order: dict[str, list[str]]) -> Plan:
    """The plan for a given order per technician, timed at the earliest starts; what it breaks is listed."""
    day = _prepare(problem, travel)
    violations: list[str] = []
    kept: dict[str, list[str]] = {}
    seen: set[str] = set()
    no_coordinates: list[str] = []
    for tech_id, ids in order.items():
        t = day.techs.get(tech_id)
        if t is None:
            violations.append(f"unknown technician {tech_id}")
            continue
        kept[tech_id] = []
        for jid in ids:
            job = day.jobs.get(jid)
            if job is None:
                violations.append(f"unknown job {jid}")
                continue
            if jid in seen:
                violations.append(f"{jid} is on more than one route")
                continue
            seen.add(jid)
            if job.location is None:
                violations.append(f"{jid} has no coordinates")
                no_coordinates.append(jid)
                continue
            if not job.skills <= t.skills:
                violations.append(f"{jid} needs the {_quoted(job.skills - t.skills)}, which {tech_id} lacks")
            if job.technician_id is not None and job.technician_id != tech_id:
                violations.append(f"{jid} is locked to technician {job.technician_id}")
            kept[tech_id].append(jid)
        if not _sequence_ok(day, kept[tech_id]):
            violations.append(f"technician {tech_id}'s locked jobs are out of their locked order")
    plan, timing = _plan(day, kept, "given")
    for jid in plan.unassigned:
        if jid not in seen:
            plan.unassigned[jid] = day.reasons.get(jid, "not on any route")
    plan.violations = violations + timing
    return plan


def verify(problem: Problem, travel: TravelProvider, plan: Plan) -> list[str]:
    """Every way `plan` breaks `problem`, checked from scratch against the travel matrix; empty when feasible."""
    out: list[str] = []
    techs = {t.id: t for t in problem.technicians}
    jobs = {j.id: j for j in problem.jobs}
    points = sorted(
        {t.start for t in problem.technicians}
        | {t.end for t in problem.technicians if t.end is not None}
        | {j.location for j in problem.jobs if j.location is not None},
        key=lambda p: (p.lat, p.lng),
    )
    where = {p: i for i, p in enumerate(points)}
    durations, distances = travel.matrix(points) if points else ([], [])

    def leg(a: Location, b: Location) -> tuple[int, int]:
        return durations[where[a]][where[b]], distances[where[a]][where[b]]

    placed: dict[str, str] = {}
    routed: set[str] = set()
    for route in plan.routes:
        t = techs.get(route.technician_id)
        if t is None:
            out.append(f"route for unknown technician {route.technician_id}")
            continue
        if t.id in routed:
            out.append(f"technician {t.id} has more than one route")
        routed.add(t.id)
        here, clock, load, drive, dist, last_seq = t.start, t.shift_start, 0, 0, 0, None
        for s in route.stops:
            job = jobs.get(s.job_id)
            if job is None:
                out.append(f"unknown job {s.job_id} on {t.id}'s route")
                continue
            if s.job_id in placed:
                out.append(f"{s.job_id} is on {placed[s.job_id]}'s and {t.id}'s routes")
            placed[s.job_id] = t.id
            if job.location is None:
                out.append(f"{s.job_id} has no coordinates but is on a route")
                continue
            d, m = leg(here, job.location)
            if (s.drive_s, s.distance_m) != (d, m):
                out.append(f"{s.job_id}: drive {s.drive_s} s / {s.distance_m} m stated, the matrix says {d} s / {m} m")
            if s.arrival < clock + d:
                out.append(f"{s.job_id}: arrives at {hhmm(s.arrival)}, before {t.id} can get there")
            if s.start < s.arrival:
                out.append(f"{s.job_id}: starts before arriving")
            if not job.window_start <= s.start <= job.window_end:
                window = f"{hhmm(job.window_start)}–{hhmm(job.window_end)}"
                out.append(f"{s.job_id}: starts at {hhmm(s.start)}, outside its window {window}")
            if s.end != s.start + job.service_s:
                out.append(f"{s.job_id}: ends {s.end - s.start} s after starting, the job takes {job.service_s} s")
            if not job.skills <= t.skills:
                out.append(f"{s.job_id}: needs the {_quoted(job.skills - t.skills)}, which {t.id} lacks")
            if job.technician_id is not None and job.technician_id != t.id:
                out.append(f"{s.job_id}: locked to {job.technician_id}, routed to {t.id}")
            if _rank(job) is not None and job.technician_id == t.id:
                if last_seq is not None and job.sequence <= last_seq:
                    out.append(f"{s.job_id}: out of its locked order on {t.id}'s route")
                last_seq = job.sequence
            here, clock, load = job.location, s.end, load + job.demand
            drive, dist = drive + d, dist + m
        ret = leg(here, t.end) if t.end is not None and route.stops else (0, 0)
        if (route.return_drive_s, route.return_distance_m) != ret:
            out.append(f"{t.id}: the drive back is stated as {route.return_drive_s} s, the matrix says {ret[0]} s")
        if route.stops and route.ends_at < clock + ret[0]:
            out.append(f"{t.id}: the day is said to end at {hhmm(route.ends_at)}, before it can")
        if route.ends_at > t.shift_end:
            out.append(f"{t.id}: the day ends at {hhmm(route.ends_at)}, after the shift ends at {hhmm(t.shift_end)}")
        if (route.drive_s, route.distance_m) != (drive + ret[0], dist + ret[1]):
            out.append(f"{t.id}: route totals don't add up")
        if t.capacity is not None and load > t.capacity:
            out.append(f"{t.id}: load {load} over the capacity of {t.capacity}")
    for jid in plan.unassigned:
        if jid in placed:
            out.append(f"{jid} is both routed and unassigned")
        if jid not in jobs:
            out.append(f"unknown job {jid} listed as unassigned")
    missing = [j.id for j in problem.jobs if j.id not in placed and j.id not in plan.unassigned]
    if missing:
        out.append(f"jobs neither routed nor unassigned: {', '.join(missing)}")
    if (plan.drive_s, plan.distance_m) != (sum(r.drive_s for r in plan.routes), sum(r.distance_m for r in plan.routes)):
        out.append("plan totals don't add up")
    return out
