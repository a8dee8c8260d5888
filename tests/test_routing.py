"""app.routing on its own: no app, database or services (pure unit tests on hand-built days in Austin, TX)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import app.routing.solver as solver_module
from app.routing import (
    Cached,
    Haversine,
    Job,
    Location,
    Problem,
    Technician,
    evaluate,
    insertion_cost,
    solve,
    verify,
)

H = 3600
LIMIT = 0.3  # seconds per solve: these days are tiny

CAPITOL = Location(30.2747, -97.7404)
AIRPORT = Location(30.1975, -97.6664)  # Austin-Bergstrom, terminal
UT = Location(30.2849, -97.7341)
MUELLER = Location(30.2984, -97.7048)
ZILKER = Location(30.2669, -97.7729)
DOMAIN = Location(30.4021, -97.7253)
SOCO = Location(30.2500, -97.7494)

TRAVEL = Haversine()


def tech(id="T1", home=CAPITOL, start=8 * H, end=18 * H, skills=(), end_at_home=True) -> Technician:
    return Technician(id, home, home if end_at_home else None, start, end, frozenset(skills))


def job(id, where, opens=8 * H, closes=17 * H, service=H, **kw) -> Job:
    return Job(id, where, service, opens, closes, **kw)


def stops_of(plan, tech_id="T1") -> list[str]:
    route = plan.route_for(tech_id)
    assert route is not None
    return [s.job_id for s in route.stops]


def solved(problem: Problem):
    plan = solve(problem, TRAVEL, time_limit_s=LIMIT)
    assert verify(problem, TRAVEL, plan) == []
    assert plan.violations == []
    return plan


def test_windows_respected_and_order_follows_them():
    jobs = (
        job("ut", UT, 13 * H, 14 * H),
        job("mueller", MUELLER, 9 * H, 10 * H),
        job("zilker", ZILKER, 11 * H, 12 * H),
    )
    problem = Problem((tech(),), jobs)
    plan = solved(problem)
    assert plan.solver == "ortools"
    assert stops_of(plan) == ["mueller", "zilker", "ut"]
    for stop in plan.routes[0].stops:
        j = next(x for x in jobs if x.id == stop.job_id)
        assert j.window_start <= stop.start <= j.window_end
        assert stop.arrival <= stop.start and stop.end == stop.start + j.service_s
    assert plan.unassigned == {}
    assert plan.drive_s == sum(r.drive_s for r in plan.routes) > 0


def test_shifts_respected():
    morning, afternoon = tech("T1", start=8 * H, end=12 * H), tech("T2", start=12 * H, end=18 * H)
    jobs = (job("early", UT, 9 * H, 10 * H), job("late", MUELLER, 14 * H, 15 * H), job("any", ZILKER))
    plan = solved(Problem((morning, afternoon), jobs))
    assert "early" in stops_of(plan, "T1") and "late" in stops_of(plan, "T2")
    for route, t in zip(plan.routes, (morning, afternoon), strict=True):
        assert all(t.shift_start <= s.arrival and s.end <= t.shift_end for s in route.stops)
        assert route.ends_at <= t.shift_end
        assert route.return_drive_s > 0  # back home before the shift ends, drive included


def test_day_without_end_location_ends_at_last_job():
    t = tech(end_at_home=False)
    plan = solved(Problem((t,), (job("a", DOMAIN, service=2 * H),)))
    route = plan.routes[0]
    assert route.return_drive_s == 0 and route.ends_at == route.stops[-1].end


def test_skills_respected_and_nobody_has_it():
    plain, ceramic = tech("T1"), tech("T2", home=DOMAIN, skills={"ceramic"})
    jobs = (
        job("coat", UT, skills=frozenset({"ceramic"})),  # closer to T1, but only T2 can
        job("wash", UT),
        job("paint", UT, skills=frozenset({"paint-correction"})),
    )
    plan = solved(Problem((plain, ceramic), jobs))
    assert "coat" in stops_of(plan, "T2") and "coat" not in stops_of(plan, "T1")
    assert plan.unassigned == {"paint": "no technician has the skill 'paint-correction'"}


def test_locks_to_technician_and_sequence():
    near, far = tech("T1"), tech("T2", home=DOMAIN)
    jobs = (
        job("locked", UT, technician_id="T2"),  # T1 is next door, T2 must still do it
        job("first", SOCO, technician_id="T1", sequence=1),
        job("second", CAPITOL, technician_id="T1", sequence=2),  # at home: shorter to do it first
        job("free", ZILKER),
        job("loose", MUELLER, sequence=1),  # a sequence without a lock orders nothing
    )
    plan = solved(Problem((near, far), jobs))
    assert "locked" in stops_of(plan, "T2")
    order = stops_of(plan, "T1")
    assert order.index("first") < order.index("second")


def test_missing_coordinates_and_impossible_window_are_unassigned_with_reasons():
    jobs = (
        Job("nowhere", None, H, 9 * H, 17 * H),
        job("dawn", UT, 5 * H, 5 * H + 1800),  # before anyone starts
        job("airport-rush", AIRPORT, 8 * H, 8 * H + 60),  # 16 km away, one minute after the shift starts
        job("ok", UT),
    )
    plan = solved(Problem((tech(),), jobs))
    assert plan.unassigned == {
        "nowhere": "no coordinates",
        "dawn": "window 05:00–05:30 can't be reached in any shift",
        "airport-rush": "window 08:00–08:01 can't be reached in any shift",
    }
    assert stops_of(plan) == ["ok"]


def test_a_full_day_leaves_a_job_out_with_a_reason():
    jobs = (job("a", UT, 9 * H, 9 * H, service=2 * H), job("b", MUELLER, 9 * H, 9 * H, service=2 * H))
    plan = solved(Problem((tech(),), jobs))
    assert len(plan.routes[0].stops) == 1
    (left,) = plan.unassigned.values()
    assert left == solver_module.NO_ROOM


def test_fallback_when_ortools_gives_nothing(monkeypatch):
    monkeypatch.setattr(solver_module, "_ortools_order", lambda *a, **kw: None)
    jobs = (
        job("ut", UT, 13 * H, 14 * H),
        job("mueller", MUELLER, 9 * H, 10 * H),
        job("coat", ZILKER, skills=frozenset({"ceramic"})),
        job("first", SOCO, technician_id="T1", sequence=1),
        job("second", CAPITOL, technician_id="T1", sequence=2),
        Job("nowhere", None, H, 9 * H, 17 * H),
    )
    problem = Problem((tech("T1"), tech("T2", home=DOMAIN, skills={"ceramic"})), jobs)
    plan = solve(problem, TRAVEL, time_limit_s=LIMIT)
    assert plan.solver == "fallback"
    assert verify(problem, TRAVEL, plan) == []
    assert plan.unassigned == {"nowhere": "no coordinates"}
    assert stops_of(plan, "T2") == ["coat"]
    order = stops_of(plan, "T1")
    assert order.index("first") < order.index("second")


def test_progress_reports_improving_solutions():
    seen: list[tuple[float, int]] = []
    jobs = tuple(job(f"j{i}", where) for i, where in enumerate((UT, MUELLER, ZILKER, DOMAIN, SOCO)))
    solve(Problem((tech(),), jobs), TRAVEL, time_limit_s=LIMIT, progress=lambda s, cost: seen.append((s, cost)))
    assert seen and all(s >= 0 for s, _ in seen)


def test_evaluate_reports_a_late_stop():
    jobs = (job("ut", UT, 13 * H, 14 * H), job("mueller", MUELLER, 9 * H, 10 * H), job("zilker", ZILKER))
    problem = Problem((tech(),), jobs)
    plan = evaluate(problem, TRAVEL, {"T1": ["ut", "mueller"]})
    assert plan.solver == "given"
    assert stops_of(plan) == ["ut", "mueller"]
    late = plan.routes[0].stops[1]
    assert late.start > 10 * H
    assert any(v.startswith("mueller starts at") and "after its window closes at 10:00" in v for v in plan.violations)
    assert plan.unassigned == {"zilker": "not on any route"}
    assert verify(problem, TRAVEL, plan) != []  # the checker agrees


def test_evaluate_of_a_good_order_has_no_violations_and_leaves_late():
    jobs = (job("ut", UT, 13 * H, 14 * H), job("mueller", MUELLER, 9 * H, 10 * H))
    problem = Problem((tech(),), jobs)
    plan = evaluate(problem, TRAVEL, {"T1": ["mueller", "ut"]})
    assert plan.violations == [] and verify(problem, TRAVEL, plan) == []
    first = plan.routes[0].stops[0]
    assert first.arrival == first.start == 9 * H  # leaves home in time rather than waiting at the door


def test_evaluate_flags_skills_locks_and_unknown_ids():
    jobs = (job("coat", UT, skills=frozenset({"ceramic"})), job("mine", MUELLER, technician_id="T2"))
    problem = Problem((tech("T1"), tech("T2")), jobs)
    plan = evaluate(problem, TRAVEL, {"T1": ["coat", "mine", "ghost"], "T9": []})
    assert "unknown technician T9" in plan.violations
    assert "unknown job ghost" in plan.violations
    assert "coat needs the skill 'ceramic', which T1 lacks" in plan.violations
    assert "mine is locked to technician T2" in plan.violations


def test_verify_catches_a_hand_broken_plan():
    jobs = (job("mueller", MUELLER, 9 * H, 10 * H), job("zilker", ZILKER, 11 * H, 12 * H))
    problem = Problem((tech(),), jobs)
    plan = solved(problem)
    stop = plan.routes[0].stops[0]
    stop.start, stop.end = 10 * H + 600, 11 * H + 600  # after its window
    problems = verify(problem, TRAVEL, plan)
    assert any("mueller: starts at 10:10, outside its window 09:00–10:00" in p for p in problems)

    plan = solved(problem)
    plan.routes[0].stops.pop()  # a job silently lost
    assert any("neither routed nor unassigned: zilker" in p for p in verify(problem, TRAVEL, plan))

    plan = solved(problem)
    plan.routes[0].stops[1].drive_s = 1  # a drive shorter than the matrix says
    assert any(p.startswith("zilker: drive 1 s") for p in verify(problem, TRAVEL, plan))


# --------------------------------------------------------------------------- insertion

# Points: 0 home, 1 A, 2 B, 3 the new job. Symmetric drives in seconds.
D = [
    [0, 600, 600, 300],
    [600, 0, 600, 300],
    [600, 600, 0, 400],
    [300, 300, 400, 0],
]
DAY = {"home": 0, "home_end": 0, "shift_start": 8 * H, "shift_end": 18 * H}
STOPS = [(1, 9 * H, 10 * H), (2, 11 * H, 12 * H)]


def test_insertion_cost_accepts_a_fitting_gap():
    added = insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=10 * H + 600, end=10 * H + 2400)
    assert added == 300 + 400 - 600
    # before the first stop: home -> new -> A instead of home -> A
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=8 * H + 600, end=8 * H + 2400) == 0
    # after the last stop, with the day ending at the last job: only the drive there counts
    free_end = {**DAY, "home_end": None}
    assert insertion_cost(D, **free_end, stops=STOPS, new_point=3, start=17 * H, end=18 * H) == 400


def test_insertion_cost_rejects_what_breaks_the_next_stop_or_the_shift():
    # ends 10:55, needs 400 s to B, which starts at 11:00
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=10 * H + 600, end=10 * H + 3300) is None
    # starts 10:03, but A ends at 10:00 and is 300 s away
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=10 * H + 180, end=10 * H + 1800) is None
    # overlaps A
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=9 * H + 1800, end=10 * H) is None
    # fits between stops but the drive home misses the end of the shift
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=17 * H, end=18 * H) is None
    # can't leave home before the shift starts
    assert insertion_cost(D, **DAY, stops=STOPS, new_point=3, start=8 * H, end=8 * H + 1800) is None
    assert insertion_cost(D, **DAY, stops=[], new_point=3, start=19 * H, end=20 * H) is None


# --------------------------------------------------------------------------- travel


def test_haversine_known_distance():
    straight = Haversine(detour_factor=1.0).metres(CAPITOL, AIRPORT)
    assert straight == pytest.approx(11_150, abs=150)  # Capitol to the airport terminal, as the crow flies
    (dur, dist) = Haversine().matrix([CAPITOL, AIRPORT])
    assert dist[0][1] == dist[1][0] == round(straight * 1.3)
    assert dur[0][1] == round(dist[0][1] / (40 / 3.6))  # 40 km/h in town: about 22 minutes
    assert dur[0][0] == dist[1][1] == 0


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttls: list[int | None] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes, ex: int | None = None) -> None:
        self.data[key] = value
        self.ttls.append(ex)


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def matrix(self, points):
        self.calls += 1
        return TRAVEL.matrix(points)


def test_cached_asks_the_provider_once_for_the_same_points():
    provider, store = _Counting(), _Store()
    cached = Cached(provider, store, "tenant-1:2026-05-04", ttl_s=3600)
    first = cached.matrix([CAPITOL, UT, DOMAIN])
    again = Cached(provider, store, "tenant-1:2026-05-04", ttl_s=3600).matrix([CAPITOL, UT, DOMAIN])
    assert provider.calls == 1 and again == first == TRAVEL.matrix([CAPITOL, UT, DOMAIN])
    assert store.ttls == [3600] and all(k.startswith("tenant-1:2026-05-04:") for k in store.data)
    cached.matrix([CAPITOL, UT])
    assert provider.calls == 2


def test_routing_imports_no_flask_database_or_redis():
    forbidden = {"flask", "sqlalchemy", "flask_sqlalchemy", "redis", "psycopg", "rq"}
    for path in Path(solver_module.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & forbidden, path.name


def test_two_workers_keep_the_better_plan():
    jobs = tuple(job(f"j{i}", where) for i, where in enumerate((UT, MUELLER, ZILKER, DOMAIN, SOCO, AIRPORT)))
    problem = Problem((tech("T1"), tech("T2", home=DOMAIN)), jobs)
    plan = solve(problem, TRAVEL, time_limit_s=LIMIT, workers=2)
    assert plan.solver == "ortools" and plan.unassigned == {}
    assert verify(problem, TRAVEL, plan) == []
    single = solve(problem, TRAVEL, time_limit_s=LIMIT)
    assert plan.drive_s <= single.drive_s
