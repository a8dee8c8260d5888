#!/usr/bin/env python
"""Our route solver on the Solomon VRPTW instances, against the best known distance-only solutions.

Each instance (../shared/bench/solomon/) becomes an app.routing Problem: 25 identical vehicles
(technicians) at the depot with the instance's capacity and horizon, one job per customer.
Travel is Euclidean. The solvers get integer matrices scaled by 1000: distances rounded, durations
rounded UP, so a schedule that fits the integers also fits in exact arithmetic. Every solution is then
checked here in double precision, independently of the solver that produced it (each customer once,
capacity, start by the due date, back at the depot by its due date), and its distance is recomputed
unrounded, as the literature reports it. The gap is against bks_distance_only.csv.

With --peers, PyVRP and VROOM (pyvroom, development-only comparators from requirements-bench.txt) solve
the same instances from the same integer matrices: PyVRP with the same time limit, VROOM at
exploration level 5 (it stops on its own). All solvers run one at a time, single-threaded.

Run from the repository root:
    .venv/bin/python scripts/bench/solomon.py [--limit 10] [--only C101,R101] [--peers]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.routing import Job, Location, Problem, Technician, solve  # noqa: E402
from scripts.lib.bench import machine_lines  # noqa: E402

DATA = ROOT.parent / "shared" / "bench" / "solomon"
SCALE = 1000


@dataclass
class Instance:
    name: str
    vehicles: int
    capacity: int
    xy: list[tuple[float, float]]  # 0 is the depot
    demand: list[int]
    ready: list[int]
    due: list[int]
    service: list[int]

    def euclid(self, i: int, j: int) -> float:
        (x1, y1), (x2, y2) = self.xy[i], self.xy[j]
        return math.hypot(x1 - x2, y1 - y2)

    def matrices(self) -> tuple[list[list[int]], list[list[int]]]:
        n = len(self.xy)
        exact = [[self.euclid(i, j) * SCALE for j in range(n)] for i in range(n)]
        return [[math.ceil(v) for v in row] for row in exact], [[round(v) for v in row] for row in exact]


def read_instance(path: Path) -> Instance:
    lines = [ln.split() for ln in path.read_text().splitlines()]
    head = next(i for i, ln in enumerate(lines) if ln[:2] == ["NUMBER", "CAPACITY"])
    vehicles, capacity = map(int, lines[head + 1])
    rows = [list(map(float, ln)) for ln in lines if len(ln) == 7 and ln[0].isdigit()]
    return Instance(
        name=path.stem,
        vehicles=vehicles,
        capacity=capacity,
        xy=[(r[1], r[2]) for r in rows],
        demand=[int(r[3]) for r in rows],
        ready=[int(r[4]) for r in rows],
        due=[int(r[5]) for r in rows],
        service=[int(r[6]) for r in rows],
    )


def check(inst: Instance, routes: list[list[int]]) -> tuple[float, list[str]]:
    """Total unrounded distance of `routes` (customer numbers, depot left out) and what they break."""
    errors: list[str] = []
    seen = sorted(c for r in routes for c in r)
    if seen != list(range(1, len(inst.xy))):
        errors.append(
            f"customers visited {len(seen)} times in all, {len(set(seen))} distinct; need 1..{len(inst.xy) - 1} once"
        )
    if sum(1 for r in routes if r) > inst.vehicles:
        errors.append(f"{sum(1 for r in routes if r)} vehicles, the fleet has {inst.vehicles}")
    total = 0.0
    for r in routes:
        if not r:
            continue
        if sum(inst.demand[c] for c in r) > inst.capacity:
            errors.append(f"route {r[:3]}...: over capacity")
        clock, here = 0.0, 0
        for c in r:
            total += inst.euclid(here, c)
            start = max(clock + inst.euclid(here, c), inst.ready[c])
            if start > inst.due[c] + 1e-6:
                errors.append(f"customer {c} starts at {start:.3f}, due {inst.due[c]}")
            clock, here = start + inst.service[c], c
        total += inst.euclid(here, 0)
        if clock + inst.euclid(here, 0) > inst.due[0] + 1e-6:
            errors.append(f"route ending with {here} is back after the depot closes")
    return total, errors


class Matrix:
    """A travel provider over the instance's precomputed matrices; Location.lat holds the node number."""

    def __init__(self, durations: list[list[int]], distances: list[list[int]]) -> None:
        self.durations, self.distances = durations, distances

    def matrix(self, points: list[Location]) -> tuple[list[list[int]], list[list[int]]]:
        idx = [int(p.lat) for p in points]
        return [[self.durations[i][j] for j in idx] for i in idx], [[self.distances[i][j] for j in idx] for i in idx]


def run_ours(inst: Instance, limit: float, workers: int = 1) -> list[list[int]]:
    depot = Location(0, 0)
    techs = tuple(
        Technician(f"v{k}", depot, depot, 0, inst.due[0] * SCALE, capacity=inst.capacity) for k in range(inst.vehicles)
    )
    jobs = tuple(
        Job(
            str(c),
            Location(c, 0),
            inst.service[c] * SCALE,
            inst.ready[c] * SCALE,
            inst.due[c] * SCALE,
            demand=inst.demand[c],
        )
        for c in range(1, len(inst.xy))
    )
    problem, travel = Problem(techs, jobs), Matrix(*inst.matrices())
    plan = solve(problem, travel, time_limit_s=limit, objective="distance", workers=workers)
    return [[int(s.job_id) for s in r.stops] for r in plan.routes]


def run_pyvrp(inst: Instance, limit: float) -> list[list[int]]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    durations, distances = inst.matrices()
    m = pyvrp.Model()
    depot = m.add_depot(m.add_location(*inst.xy[0]), tw_early=inst.ready[0] * SCALE, tw_late=inst.due[0] * SCALE)
    m.add_vehicle_type(
        inst.vehicles, capacity=inst.capacity, start_depot=depot, end_depot=depot, tw_late=inst.due[0] * SCALE
    )
    for c in range(1, len(inst.xy)):
        m.add_client(
            m.add_location(*inst.xy[c]),
            delivery=inst.demand[c],
            service_duration=inst.service[c] * SCALE,
            tw_early=inst.ready[c] * SCALE,
            tw_late=inst.due[c] * SCALE,
        )
    for i, frm in enumerate(m.locations):
        for j, to in enumerate(m.locations):
            m.add_edge(frm, to, distance=distances[i][j], duration=durations[i][j])
    result = m.solve(MaxRuntime(limit), seed=1, display=False)
    return [[a.idx + 1 for a in r.schedule() if a.is_client()] for r in result.best.routes()]  # clients from 0


def run_vroom(inst: Instance, limit: float) -> list[list[int]]:
    import vroom

    durations, distances = inst.matrices()
    problem = vroom.Input()
    problem.set_durations_matrix(profile="car", matrix_input=durations)
    problem.set_costs_matrix(profile="car", matrix_input=distances)
    for k in range(inst.vehicles):
        window = vroom.TimeWindow(inst.ready[0] * SCALE, inst.due[0] * SCALE)
        problem.add_vehicle(vroom.Vehicle(k, start=0, end=0, capacity=[inst.capacity], time_window=window))
    for c in range(1, len(inst.xy)):
        window = vroom.TimeWindow(inst.ready[c] * SCALE, inst.due[c] * SCALE)
        job = vroom.Job(
            c, location=c, default_service=inst.service[c] * SCALE, delivery=[inst.demand[c]], time_windows=[window]
        )
        problem.add_job(job)
    solution = problem.solve(exploration_level=5, nb_threads=1)
    out = solution.to_dict()
    return [[s["id"] for s in r["steps"] if s["type"] == "job"] for r in out["routes"]]


SOLVERS = {"ours": run_ours, "pyvrp": run_pyvrp, "vroom": run_vroom}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per instance and solver (default 10)")
    ap.add_argument("--only", help="comma-separated instance names, e.g. C101,R101")
    ap.add_argument("--peers", action="store_true", help="also run PyVRP and VROOM")
    ap.add_argument("--workers", type=int, default=1, help="our solver's parallel searches (default 1)")
    args = ap.parse_args()

    bks = {row["instance"]: float(row["distance"]) for row in csv.DictReader((DATA / "bks_distance_only.csv").open())}
    names = sorted(p.stem for p in DATA.glob("*.txt"))
    if args.only:
        wanted = {n.strip().upper() for n in args.only.split(",")}
        names = [n for n in names if n in wanted]
    solvers = ["ours", "pyvrp", "vroom"] if args.peers else ["ours"]

    print("\n".join(machine_lines()))
    print(
        f"{len(names)} instances, time limit {args.limit:g} s, ours with {args.workers} worker(s)"
        + (" (VROOM: exploration 5, no limit)" if args.peers else "")
    )
    header = f"{'instance':9} {'BKS':>8}" + "".join(
        f" | {s:>5} {'veh':>3} {'distance':>8} {'gap %':>6} {'s':>5}" for s in solvers
    )
    print(header)
    print("-" * len(header))
    gaps: dict[str, list[float]] = {s: [] for s in solvers}
    infeasible: dict[str, list[str]] = {s: [] for s in solvers}
    for name in names:
        inst = read_instance(DATA / f"{name}.txt")
        line = f"{name:9} {bks[name]:8.2f}"
        for s in solvers:
            began = time.monotonic()
            routes = run_ours(inst, args.limit, args.workers) if s == "ours" else SOLVERS[s](inst, args.limit)
            took = time.monotonic() - began
            dist, errors = check(inst, routes)
            gap = 100 * (dist - bks[name]) / bks[name]
            if errors:
                infeasible[s].append(f"{name}: {errors[0]}")
                line += f" | {s:>5} {'--':>3} {'INFEAS':>8} {'--':>6} {took:5.1f}"
            else:
                gaps[s].append(gap)
                line += f" | {s:>5} {sum(1 for r in routes if r):3d} {dist:8.2f} {gap:+6.2f} {took:5.1f}"
        print(line, flush=True)
    print()
    for s in solvers:
        ok = gaps[s]
        mean = f"{statistics.fmean(ok):+.2f} %" if ok else "n/a"
        print(f"{s:>5}: {len(ok)}/{len(names)} feasible, mean gap {mean} (over the feasible ones)")
        for err in infeasible[s]:
            print(f"       infeasible {err}")


if __name__ == "__main__":
    main()
