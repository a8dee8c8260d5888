"""Day plans: the business's day as a routing problem, the solver's proposal against the order as
booked, approval (which locks each technician's order) and reordering by hand (DESIGN §8).

The solver itself is pure (``app/routing``); this module is the bridge to bookings. Times in a
problem are seconds from the business's local midnight of that day.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import routing
from app.booking.availability import local_day_bounds, to_utc
from app.booking.models import Booking, Technician
from app.dispatch.models import RoutePlan
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from tenants.models import Tenant

log = logging.getLogger(__name__)

PLANNABLE = ("pending", "confirmed", "in_progress")
ETA_SHOWN_AFTER = timedelta(minutes=5)  # smaller differences from the booked time aren't worth a word


@dataclass
class Day:
    tenant: Tenant
    day: date
    origin: datetime  # local midnight, UTC
    problem: routing.Problem
    bookings: dict[str, Booking]
    technicians: dict[str, Technician]

    def at(self, seconds: int) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def seconds(self, instant: datetime) -> int:
        return int((instant - self.origin).total_seconds())


def _now() -> datetime:
    return datetime.now(UTC)


def build_day(tenant: Tenant, day: date) -> Day:
    """Technicians working that day (shift from their hours, home as start and end) and the day's
    active bookings as jobs: each may start within its arrival window; jobs already under way or
    with the technician on the road are locked to their technician."""
    tz = ZoneInfo(tenant.time_zone)
    origin, day_end = local_day_bounds(day, tz)
    techs = list(
        db.session.scalars(
            db.select(Technician)
            .where(Technician.active)
            .options(selectinload(Technician.hours))
            .order_by(Technician.position, Technician.name)
        )
    )
    bookings = list(
        db.session.scalars(
            db.select(Booking)
            .where(Booking.status.in_(PLANNABLE), Booking.starts_at >= origin, Booking.starts_at < day_end)
            .order_by(Booking.starts_at)
        )
    )
    points = [(b.address.lat, b.address.lng) for b in bookings if b.address]
    centre = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points)) if points else None
    r_techs = []
    for t in techs:
        spans = [(h.start_local, h.end_local) for h in t.hours if h.weekday == day.weekday()]
        booked_here = [b for b in bookings if b.technician_id == t.id]
        if not spans and not booked_here:
            continue
        first = min((s for s, _ in spans), default=time(8))
        last = max((e for _, e in spans), default=time(17))
        shift_start = int((to_utc(day, first, tz) - origin).total_seconds())
        shift_end = int((to_utc(day, last, tz) - origin).total_seconds())
        if booked_here:  # a job booked by hand outside the hours still belongs to the day
            shift_start = min(shift_start, min(int((b.starts_at - origin).total_seconds()) for b in booked_here))
            shift_end = max(shift_end, max(int((b.ends_at - origin).total_seconds()) for b in booked_here))
        home = (t.home_lat, t.home_lng) if t.home_lat is not None else centre
        if home is None:
            continue
        loc = routing.Location(*home)
        r_techs.append(routing.Technician(str(t.id), loc, loc, shift_start, shift_end, frozenset(t.skills or ())))
    jobs = []
    for b in bookings:
        start = int((b.starts_at - origin).total_seconds())
        locked = b.status == "in_progress" or b.on_way_at is not None
        jobs.append(
            routing.Job(
                str(b.id),
                routing.Location(b.address.lat, b.address.lng) if b.address else None,
                int((b.ends_at - b.starts_at).total_seconds()),
                start,
                start + b.arrival_window_min * 60,
                technician_id=str(b.technician_id) if locked else None,
            )
        )
    return Day(
        tenant,
        day,
        origin,
        routing.Problem(tuple(r_techs), tuple(jobs)),
        {str(b.id): b for b in bookings},
        {str(t.id): t for t in techs},
    )


class _Fallback:
    """The configured provider, with straight-line estimates when it can't answer (pages must not
    fail because a road-matrix service is down); plans computed that way say so in the log."""

    def __init__(self, provider):
        self.provider = provider
        self.straight = routing.Haversine()

    def matrix(self, points):
        try:
            return self.provider.matrix(points)
        except Exception as exc:  # noqa: BLE001 - TravelUnavailable, or Redis down under Cached
            log.warning("travel matrix unavailable (%r); straight-line estimates used", exc)
            return self.straight.matrix(points)


def travel():
    provider = routing.get_provider(current_app.config)
    if isinstance(provider, routing.Haversine):
        return provider
    from app.extensions import get_redis

    return _Fallback(routing.Cached(provider, get_redis(), "travel:day", ttl_s=86_400))


def current_order(d: Day) -> dict[str, list[str]]:
    """Each technician's jobs as booked: the approved position first, else start time."""
    order: dict[str, list[str]] = {t.id: [] for t in d.problem.technicians}
    for b in sorted(d.bookings.values(), key=lambda b: (b.route_position is None, b.route_position or 0, b.starts_at)):
        if str(b.technician_id) in order:
            order[str(b.technician_id)].append(str(b.id))
    return order


def plan_json(d: Day, plan: routing.Plan) -> dict:
    """A plan as stored and shown: per technician, the stops with booking facts and times."""
    routes = []
    for r in plan.routes:
        tech = d.technicians.get(r.technician_id)
        stops = []
        for s in r.stops:
            b = d.bookings[s.job_id]
            stops.append(
                {
                    "booking_id": s.job_id,
                    "reference": b.reference,
                    "customer": b.customer.name,
                    "address": b.address.one_line if b.address else "",
                    "lat": b.address.lat if b.address else None,
                    "lng": b.address.lng if b.address else None,
                    "booked": b.starts_at.isoformat(),
                    "eta": d.at(s.start).isoformat(),
                    "arrival": d.at(s.arrival).isoformat(),
                    "end": d.at(s.end).isoformat(),
                    "drive_s": s.drive_s,
                    "distance_m": s.distance_m,
                    "moved": str(b.technician_id) != r.technician_id,
                }
            )
        tech_problem = next(t for t in d.problem.technicians if t.id == r.technician_id)
        routes.append(
            {
                "technician_id": r.technician_id,
                "name": tech.name if tech else "",
                "color": tech.color if tech else "#0f766e",
                "home": [tech_problem.start.lat, tech_problem.start.lng],
                "stops": stops,
                "drive_s": r.drive_s,
                "distance_m": r.distance_m,
            }
        )
    return {
        "routes": routes,
        "unassigned": [
            {"booking_id": job_id, "reference": d.bookings[job_id].reference, "reason": reason}
            for job_id, reason in plan.unassigned.items()
        ],
        "drive_s": plan.drive_s,
        "distance_m": plan.distance_m,
        "solver": plan.solver,
        "violations": [_readable(v, d) for v in plan.violations],
    }


def _readable(text: str, d: Day) -> str:
    """Violations name jobs by id; people know bookings by reference."""
    for job_id, b in d.bookings.items():
        text = text.replace(job_id, f"{b.reference} ({b.customer.name})")
    return text


# Optimising -------------------------------------------------------------------------------------


def request_plan(tenant: Tenant, day: date, *, user_id: uuid.UUID | None) -> RoutePlan:
    """Queue an optimisation of ``day`` (the solver runs in a job: it takes seconds)."""
    plan = RoutePlan(tenant_id=tenant.id, day=day, status="queued", requested_by=user_id)
    db.session.add(plan)
    db.session.flush()
    from app.dispatch.jobs import solve_day
    from app.jobs import after_commit

    after_commit(solve_day.enqueue, tenant.id, plan.id)
    return plan


def run_plan(plan_id: uuid.UUID) -> RoutePlan:
    """The job's work: the day as booked, then the solver's proposal, both stored."""
    from tenants.context import current_tenant_id

    plan = db.session.get(RoutePlan, (current_tenant_id(), plan_id))
    if plan is None or plan.status not in ("queued", "solving"):
        return plan
    plan.status = "solving"
    db.session.commit()  # the page shows progress while the solver works
    tenant = db.session.get(Tenant, plan.tenant_id)
    try:
        d = build_day(tenant, plan.day)
        provider = travel()
        current = routing.evaluate(d.problem, provider, current_order(d))
        limit = float(current_app.config.get("ROUTING_TIME_LIMIT_S", 5))
        proposed = routing.solve(d.problem, provider, time_limit_s=limit)
    except routing.TravelUnavailable as exc:
        plan.status, plan.error = "failed", f"The road-distance service didn't answer ({exc}). Try again shortly."
        plan.finished_at = _now()
        return plan
    except Exception:  # noqa: BLE001 - the owner sees "failed" instead of a plan stuck "solving"
        log.exception("route plan %s failed", plan.id)
        db.session.rollback()
        plan = db.session.get(RoutePlan, (current_tenant_id(), plan_id))
        plan.status, plan.error = "failed", "Something went wrong while optimising. Please try again."
        plan.finished_at = _now()
        return plan
    plan.current = plan_json(d, current)
    plan.proposed = plan_json(d, proposed)
    plan.status = "ready"
    plan.finished_at = _now()
    return plan


def latest_plan(day: date) -> RoutePlan | None:
    return db.session.scalar(
        db.select(RoutePlan).where(RoutePlan.day == day).order_by(RoutePlan.requested_at.desc()).limit(1)
    )


def get_plan(plan_id: uuid.UUID) -> RoutePlan:
    from tenants.context import current_tenant_id

    plan = db.session.get(RoutePlan, (current_tenant_id(), plan_id))
    if plan is None:
        raise NotFound("No such route plan.")
    return plan


def approve(plan: RoutePlan, *, user_id: uuid.UUID | None) -> list[str]:
    """Lock the proposal: each booking gets its technician, position and ETA. A reassignment the
    database refuses (the other technician is booked then) keeps the booking where it was and is
    reported. Returns those notes."""
    if plan.status != "ready" or not plan.proposed:
        raise ValidationFailed({"plan": "This plan can't be approved (optimise the day again)."})
    from sqlalchemy import text

    from app.booking.services import _lock_technician_days

    tenant = db.session.get(Tenant, plan.tenant_id)
    tech_ids = [uuid.UUID(r["technician_id"]) for r in plan.proposed["routes"]]
    booking_ids = sorted(uuid.UUID(s["booking_id"]) for r in plan.proposed["routes"] for s in r["stops"])
    # Rows first, in one order, then the technician-day locks: the order a customer's reschedule
    # takes them in too, so the two can't deadlock.
    db.session.scalars(
        db.select(Booking).where(Booking.id.in_(booking_ids)).order_by(Booking.id).with_for_update()
    ).all()
    noon = datetime.combine(plan.day, time(12), ZoneInfo(tenant.time_zone))
    _lock_technician_days(tenant, tech_ids, noon)  # no customer books into these days meanwhile
    try:
        # All at once: swapping two technicians' jobs at the same hour is fine in the end state.
        with db.session.begin_nested():
            db.session.execute(text("SET CONSTRAINTS ex_bookings_no_overlap DEFERRED"))
            notes: list[str] = []
            _apply_plan(plan, notes, reassign_one_by_one=False)
            db.session.execute(text("SET CONSTRAINTS ex_bookings_no_overlap IMMEDIATE"))
    except IntegrityError:
        notes = []
        db.session.execute(text("SET CONSTRAINTS ex_bookings_no_overlap IMMEDIATE"))
        _apply_plan(plan, notes, reassign_one_by_one=True)
    plan.status = "approved"
    plan.approved_by = user_id
    plan.approved_at = _now()
    db.session.execute(
        db.update(RoutePlan)
        .where(RoutePlan.day == plan.day, RoutePlan.id != plan.id, RoutePlan.status.in_(("ready", "approved")))
        .values(status="stale")
    )
    db.session.flush()
    return notes


def _apply_plan(plan: RoutePlan, notes: list[str], *, reassign_one_by_one: bool) -> None:
    for route in plan.proposed["routes"]:
        tech_id = uuid.UUID(route["technician_id"])
        for position, stop in enumerate(route["stops"], start=1):
            booking = db.session.get(Booking, (plan.tenant_id, uuid.UUID(stop["booking_id"])))
            stale = booking is not None and booking.starts_at != datetime.fromisoformat(stop["booked"])
            if booking is None or booking.status not in PLANNABLE or stale:
                notes.append(f"{stop['reference']} changed since the plan was made; left as it was.")
                continue
            if booking.technician_id != tech_id:
                if not reassign_one_by_one:
                    booking.technician_id = tech_id
                else:
                    previous = booking.technician_id
                    try:
                        with db.session.begin_nested():
                            booking.technician_id = tech_id
                            db.session.flush()
                    except IntegrityError:
                        db.session.refresh(booking)
                        booking.technician_id = previous
                        notes.append(f"{stop['reference']} stays with its technician: the other one is booked then.")
                        continue
            booking.route_position = position
            eta = datetime.fromisoformat(stop["eta"])
            booking.eta_at = eta if abs(eta - booking.starts_at) >= ETA_SHOWN_AFTER else None
    db.session.flush()


def reorder(tenant: Tenant, day: date, technician_id: uuid.UUID, booking_ids: list[str]) -> dict:
    """The owner dragged a technician's stops into a new order: ETAs recomputed for that order,
    problems listed (a window that can't be met), and the order kept as the technician's route."""
    d = build_day(tenant, day)
    order = current_order(d)
    key = str(technician_id)
    if key not in order or sorted(order[key]) != sorted(booking_ids):
        raise ValidationFailed({"order": "The stops changed meanwhile. Reload the page."})
    order[key] = list(booking_ids)
    plan = routing.evaluate(d.problem, travel(), order)
    for position, booking_id in enumerate(booking_ids, start=1):
        booking = d.bookings[booking_id]
        booking.route_position = position
        stop = next((s for s in plan.route_for(key).stops if s.job_id == booking_id), None)
        if stop is not None:
            eta = d.at(stop.start)
            booking.eta_at = eta if abs(eta - booking.starts_at) >= ETA_SHOWN_AFTER else None
    db.session.flush()
    return plan_json(d, plan)


def evaluate_now(tenant: Tenant, day: date) -> dict:
    """The day as it stands (no solver): for the page before anyone optimised."""
    d = build_day(tenant, day)
    return plan_json(d, routing.evaluate(d.problem, travel(), current_order(d)))
