"""The technician's day as it happens: the stops in order, "on my way", start and finish, and the
ETAs they imply for the stops still to come (PRODUCT §3 differentiator 8).

Services in the house style: explicit arguments, ``now`` passed in, flush but never commit. The
customer texts (on-my-way, new ETAs) belong to the messaging issue; the hooks below are where it
plugs in.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import selectinload

from app.booking import services as booking_services
from app.booking.availability import local_day_bounds
from app.booking.errors import BadTransition
from app.booking.models import Booking, Technician
from app.extensions import db
from app.routing.model import Location
from app.routing.travel import Haversine, TravelProvider

# A stop is "running late" (and gets an ETA of its own) when the expected arrival is this far
# past the planned start; below it, the planned time stands.
LATE_AFTER = timedelta(minutes=5)
DAY_STATUSES = ("pending", "confirmed", "in_progress", "completed")

EtaChange = tuple[uuid.UUID, datetime | None, datetime | None]


# The day ----------------------------------------------------------------------------------------


def technician_for_user(user_id: uuid.UUID) -> Technician | None:
    """The technician record linked to a login (Technicians page → Login), if any."""
    return db.session.scalar(
        db.select(Technician).where(Technician.user_id == user_id).order_by(Technician.active.desc()).limit(1)
    )


def list_day_stops(technician_id: uuid.UUID, day: date, time_zone: str) -> list[Booking]:
    """A technician's stops on a local day, in route order: an approved route's positions first,
    then by start time. Canceled, expired and no-show bookings are not stops."""
    start, end = local_day_bounds(day, ZoneInfo(time_zone))
    stmt = (
        db.select(Booking)
        .where(
            Booking.technician_id == technician_id,
            Booking.starts_at >= start,
            Booking.starts_at < end,
            Booking.status.in_(DAY_STATUSES),
        )
        .order_by(Booking.route_position.is_(None), Booking.route_position, Booking.starts_at)
        .options(*(selectinload(r) for r in (Booking.customer, Booking.address, Booking.vehicle, Booking.items)))
    )
    return list(db.session.scalars(stmt))


def minutes_late(booking: Booking) -> int:
    """How far the current ETA is past the planned start, in whole minutes (0 when on time)."""
    if booking.eta_at is None or booking.status not in ("pending", "confirmed"):
        return 0
    late = booking.eta_at - booking.starts_at
    return int(late.total_seconds() // 60) if late >= LATE_AFTER else 0


def expected_arrival(booking: Booking) -> datetime:
    """When we expect to be at a stop still to come (its ETA, else the planned start); the planned
    start once work there has begun."""
    if booking.status in ("pending", "confirmed") and booking.eta_at is not None:
        return booking.eta_at
    return booking.starts_at


# Travel -----------------------------------------------------------------------------------------


def _location(booking: Booking) -> Location | None:
    address = booking.address
    if address is None or address.lat is None or address.lng is None:
        return None
    return Location(float(address.lat), float(address.lng))


def _home(tech: Technician | None) -> Location | None:
    if tech is None or tech.home_lat is None or tech.home_lng is None:
        return None
    return Location(float(tech.home_lat), float(tech.home_lng))


def drive_seconds(origin: Location, destination: Location, travel: TravelProvider | None = None) -> int:
    durations, _ = (travel or Haversine()).matrix([origin, destination])
    return int(durations[0][1])


def _minute(dt: datetime) -> datetime:
    """To the nearest minute: ETAs are told in minutes, and seconds of jitter are not a change."""
    return (dt + timedelta(seconds=30)).replace(second=0, microsecond=0)


# Progress ---------------------------------------------------------------------------------------


def on_my_way_origin(booking: Booking, time_zone: str) -> Location | None:
    """Where the technician sets off from: the stop of that day they finished last (or are
    finishing), else their home base."""
    day = booking.starts_at.astimezone(ZoneInfo(time_zone)).date()
    left = [
        b
        for b in list_day_stops(booking.technician_id, day, time_zone)
        if b.id != booking.id and (b.finished_at is not None or b.status == "in_progress")
    ]
    if left:
        last = max(left, key=lambda b: b.finished_at or b.started_at or b.starts_at)
        return _location(last)
    return _home(db.session.get(Technician, (booking.tenant_id, booking.technician_id)))


def mark_on_my_way(
    booking: Booking,
    *,
    time_zone: str,
    actor_id: uuid.UUID | None,
    now: datetime,
    travel: TravelProvider | None = None,
) -> datetime | None:
    """The technician sets off for a confirmed stop: ``on_way_at``, an ETA from where they are
    (their last finished stop, or home) and a booking event. Returns the ETA (None when we know
    neither where they start from nor where they go: the booked time then stands)."""
    if booking.status != "confirmed":
        raise BadTransition(
            f"Only a confirmed job can be marked “on my way” (this one is {booking.status_label.lower()})."
        )
    if booking.on_way_at is not None:
        raise BadTransition("You already told the customer you're on the way.")
    origin, destination = on_my_way_origin(booking, time_zone), _location(booking)
    eta = None
    if origin is not None and destination is not None:
        eta = _minute(now + timedelta(seconds=drive_seconds(origin, destination, travel)))
    booking.on_way_at = now
    if eta is not None:
        booking.eta_at = eta  # else the running-late ETA we may already have texted stands
    booking_services.record_event(
        booking,
        booking.status,
        booking.status,
        "user",
        actor_id,
        {"on_my_way": True, "eta": eta.isoformat() if eta else None},
    )
    return eta


def start_stop(booking: Booking, *, actor_id: uuid.UUID | None, now: datetime) -> Booking:
    """confirmed → in_progress, with the moment work began."""
    booking_services.transition(booking, "in_progress", actor_type="user", actor_id=actor_id)
    booking.started_at = now
    db.session.flush()
    return booking


def complete_stop(booking: Booking, *, actor_id: uuid.UUID | None, now: datetime) -> Booking:
    """in_progress → completed, with the moment work ended (the caller charges the balance)."""
    booking_services.transition(booking, "completed", actor_type="user", actor_id=actor_id)
    booking.finished_at = now
    db.session.flush()
    return booking


# The cascade ------------------------------------------------------------------------------------


def recompute_etas(
    technician_id: uuid.UUID,
    day: date,
    *,
    now: datetime,
    time_zone: str | None = None,
    travel: TravelProvider | None = None,
) -> list[EtaChange]:
    """Walk the technician's stops of ``day`` in order and re-estimate the ones still to come:
    arrival = max(planned start, previous expected end + drive). A stop gets ``eta_at`` when that
    is ``LATE_AFTER`` or more past its planned start; otherwise its ETA is cleared. Finished stops
    end when they ended, a stop in progress no earlier than ``now``, and a stop the technician is
    already driving to keeps the ETA the customer was told. Returns (booking id, old, new) for
    every ETA that changed, for the messaging issue to text."""
    if time_zone is None:
        from tenants.context import current_tenant_id
        from tenants.models import Tenant

        time_zone = db.session.get(Tenant, current_tenant_id()).time_zone
    stops = list_day_stops(technician_id, day, time_zone)
    if not stops:
        return []
    points = [_location(b) for b in stops]
    known = [p for p in points if p is not None]
    durations, _ = (travel or Haversine()).matrix(known) if known else ([], [])
    row_of: dict[Location, int] = {}
    for i, p in enumerate(known):
        row_of.setdefault(p, i)

    def drive(a: Location | None, b: Location | None) -> timedelta:
        if a is None or b is None:
            return timedelta(0)
        return timedelta(seconds=durations[row_of[a]][row_of[b]])

    changes: list[EtaChange] = []
    free_at: datetime | None = None  # when the technician can leave the previous stop
    here: Location | None = None
    for booking, point in zip(stops, points, strict=True):
        length = booking.ends_at - booking.starts_at
        if booking.status == "completed":
            free_at, here = booking.finished_at or booking.ends_at, point
            continue
        if booking.status == "in_progress":
            started = booking.started_at or booking.starts_at
            free_at, here = max(started + length, now), point
            continue
        if booking.on_way_at is not None:
            arrival = booking.eta_at or booking.starts_at  # what the customer was told stands
        else:
            arrival = booking.starts_at
            if free_at is not None:
                arrival = max(arrival, _minute(free_at + drive(here, point)))
            new_eta = arrival if arrival - booking.starts_at >= LATE_AFTER else None
            if new_eta != booking.eta_at:
                changes.append((booking.id, booking.eta_at, new_eta))
                booking.eta_at = new_eta
        free_at, here = arrival + length, point
    db.session.flush()
    return changes


# Customer texts ---------------------------------------------------------------------------------

# A new ETA is texted when it moves this far from what the customer last heard (the booked time,
# or the ETA we texted), and at most once per stop per ``ETA_TEXT_EVERY``: a running-late day
# shouldn't buzz a customer every few minutes.
ETA_TEXT_THRESHOLD = timedelta(minutes=15)
ETA_TEXT_EVERY = timedelta(minutes=30)


def _eta_values(booking: Booking, tenant, eta: datetime) -> dict[str, str]:
    from app.web.filters import clock

    tz = ZoneInfo(tenant.time_zone)
    return {
        "technician": booking.technician.name.split()[0] if booking.technician else "Your technician",
        "eta": clock(eta.astimezone(tz)),
        "address": booking.address.one_line if booking.address else "",
        "reference": booking.reference,
    }


def notify_on_my_way(booking: Booking, *, now: datetime | None = None) -> None:
    """Tell the customer the technician is on the way, with ``booking.eta_at`` (else the booked
    time), once per booking (the outbox's dedupe key). Called after the action's commit; commits."""
    from datetime import UTC

    from app.messaging.services import notify
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, booking.tenant_id)
    now = now or datetime.now(UTC)
    eta = booking.eta_at or max(booking.starts_at, _minute(now))
    sent = notify(
        tenant,
        booking.customer,
        "on_my_way",
        _eta_values(booking, tenant, eta),
        booking_id=booking.id,
        dedupe_key=f"on_my_way:{booking.id}",
    )
    if sent is not None and sent.status != "skipped":
        booking.eta_texted_for, booking.eta_texted_at = eta, now
    db.session.commit()


def notify_new_etas(changes: list[EtaChange], *, now: datetime | None = None) -> int:
    """Tell the customers whose expected arrival moved by ``ETA_TEXT_THRESHOLD`` or more from what
    they last heard (``recompute_etas``'s answer). Called after the action's commit; commits."""
    from datetime import UTC

    from app.messaging.services import notify
    from tenants.models import Tenant

    now = now or datetime.now(UTC)
    told = 0
    for booking_id, _old, new in changes:
        booking = db.session.get(Booking, (_tenant_id(), booking_id))
        if booking is None or booking.status != "confirmed" or booking.on_way_at is not None:
            continue  # on the way: the on-my-way ETA stands
        expected = new or booking.starts_at
        heard = booking.eta_texted_for or booking.starts_at
        if abs(expected - heard) < ETA_TEXT_THRESHOLD:
            continue
        if booking.eta_texted_at is not None and now - booking.eta_texted_at < ETA_TEXT_EVERY:
            continue
        tenant = db.session.get(Tenant, booking.tenant_id)
        values = _eta_values(booking, tenant, expected)
        values["previous_eta"] = _eta_values(booking, tenant, heard)["eta"]
        sent = notify(
            tenant,
            booking.customer,
            "eta_changed",
            values,
            booking_id=booking.id,
            # One text per step of the story: keyed by the previous text, so an ETA that moves away
            # and back again is still told.
            dedupe_key=f"eta_changed:{booking.id}:{(booking.eta_texted_at or booking.created_at).isoformat()}",
        )
        if sent is not None and sent.status != "skipped":
            booking.eta_texted_for, booking.eta_texted_at = expected, now
            told += 1
    db.session.commit()
    return told


def stops_to_tell(technician_id: uuid.UUID, day: date, time_zone: str) -> list[EtaChange]:
    """Every confirmed stop of the day not yet driven to, as (id, eta, eta): what
    ``notify_new_etas`` compares with what each customer last heard. Passing all of them (not only
    this recompute's changes) means a change held back by the 30-minute limit is told later."""
    return [
        (b.id, b.eta_at, b.eta_at)
        for b in list_day_stops(technician_id, day, time_zone)
        if b.status == "confirmed" and b.on_way_at is None
    ]


def _tenant_id() -> uuid.UUID:
    from tenants.context import current_tenant_id

    return current_tenant_id()
