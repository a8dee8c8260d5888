"""Bookings: technicians' schedules, availability from the database, booking with no double
booking, the status machine, holds, reschedule and cancel."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from psycopg.types.range import Range
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.booking import availability as av
from app.booking.errors import BadTransition, PolicyRefused, SlotTaken, SlotUnavailable
from app.booking.models import (
    ACTIVE_STATUSES,
    TRANSITIONS,
    Booking,
    BookingEvent,
    BookingItem,
    BusyBlock,
    Technician,
    WorkingHours,
)
from app.catalog.models import Package
from app.customers import services as customers
from app.customers.models import SIZE_CLASSES, Customer
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from tenants import quotas
from tenants.models import Tenant

UTC = UTC
REF_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def rules_for(tenant: Tenant) -> av.Rules:
    return av.Rules(
        time_zone=tenant.time_zone,
        lead_time=timedelta(minutes=tenant.lead_time_min),
        horizon_days=tenant.horizon_days,
        buffer=timedelta(minutes=tenant.buffer_min),
        step=timedelta(minutes=tenant.slot_step_min),
    )


# Technicians -------------------------------------------------------------------


def list_technicians(*, active_only: bool = True) -> list[Technician]:
    stmt = db.select(Technician).order_by(Technician.position, Technician.name)
    if active_only:
        stmt = stmt.where(Technician.active)
    return list(db.session.scalars(stmt))


def get_technician(technician_id: uuid.UUID) -> Technician:
    from tenants.context import current_tenant_id

    tech = db.session.get(Technician, (current_tenant_id(), technician_id))
    if tech is None:
        raise NotFound("No such technician.")
    return tech


def create_technician(
    tenant_id: uuid.UUID,
    *,
    name: str,
    user_id: uuid.UUID | None = None,
    color: str = "#0f766e",
    home: dict | None = None,
    skills: list[str] | None = None,
    hours: dict[int, list[tuple[time, time]]] | None = None,
    position: int = 0,
) -> Technician:
    """A technician with weekly hours (local wall-clock), home base and skills."""
    tech = Technician(
        tenant_id=tenant_id,
        user_id=user_id,
        name=name,
        color=color,
        skills=skills or [],
        position=position,
        home_address=(home or {}).get("line1"),
        home_lat=(home or {}).get("lat"),
        home_lng=(home or {}).get("lng"),
    )
    db.session.add(tech)
    db.session.flush()
    set_hours(tech, hours if hours is not None else default_hours())
    return tech


def default_hours() -> dict[int, list[tuple[time, time]]]:
    return {d: [(time(8), time(17))] for d in range(0, 5)} | {5: [(time(9), time(14))]}


def set_hours(tech: Technician, hours: dict[int, list[tuple[time, time]]]) -> None:
    for weekday, spans in hours.items():
        if not 0 <= weekday <= 6:
            raise ValidationFailed({"hours": "Weekdays run from Monday (0) to Sunday (6)."})
        for start, end in spans:
            if start >= end:
                raise ValidationFailed({"hours": "Each shift must end after it starts."})
    tech.hours.clear()
    db.session.flush()
    for weekday, spans in sorted(hours.items()):
        for start, end in spans:
            tech.hours.append(WorkingHours(tenant_id=tech.tenant_id, weekday=weekday, start_local=start, end_local=end))
    db.session.flush()


def add_day_off(tech: Technician, day: date, tz_name: str, *, label: str = "Day off") -> BusyBlock:
    from zoneinfo import ZoneInfo

    start, end = av.local_day_bounds(day, ZoneInfo(tz_name))
    block = BusyBlock(
        tenant_id=tech.tenant_id, technician_id=tech.id, during=Range(start, end, "[)"), source="day_off", summary=label
    )
    db.session.add(block)
    db.session.flush()
    return block


def add_busy_block(
    tech: Technician,
    start: datetime,
    end: datetime,
    *,
    source: str = "manual",
    summary: str | None = None,
    external_id: str | None = None,
) -> BusyBlock:
    if end <= start:
        raise ValidationFailed({"end": "The block must end after it starts."})
    block = BusyBlock(
        tenant_id=tech.tenant_id,
        technician_id=tech.id,
        during=Range(start, end, "[)"),
        source=source,
        summary=summary,
        external_id=external_id,
    )
    db.session.add(block)
    db.session.flush()
    return block


# Availability from the database ---------------------------------------------------


def _engine_technicians(
    start: datetime, end: datetime, technician_ids: list[uuid.UUID] | None = None
) -> list[av.Technician]:
    """Schedules and busy time (active bookings with their buffer, blocks) overlapping [start, end)."""
    stmt = (
        db.select(Technician)
        .where(Technician.active)
        .options(selectinload(Technician.hours))
        .order_by(Technician.position, Technician.name)
    )
    if technician_ids is not None:
        stmt = stmt.where(Technician.id.in_(technician_ids))
    techs = list(db.session.scalars(stmt))
    if not techs:
        return []
    ids = [t.id for t in techs]
    window = Range(start, end, "[)")
    busy: dict[uuid.UUID, list[av.Busy]] = {i: [] for i in ids}
    from app.customers.models import Address

    rows = db.session.execute(
        db.select(Booking.technician_id, Booking.during, Booking.reference, Address.lat, Address.lng)
        .join(Address, (Address.tenant_id == Booking.tenant_id) & (Address.id == Booking.address_id))
        .where(
            Booking.technician_id.in_(ids),
            Booking.status.in_(ACTIVE_STATUSES),
            Booking.during.op("&&")(window),
        )
    )
    for tech_id, during, ref, lat, lng in rows:
        busy[tech_id].append(av.Busy(during.lower, during.upper, "booking", ref, (lat, lng)))
    blocks = db.session.execute(
        db.select(BusyBlock.technician_id, BusyBlock.during, BusyBlock.source, BusyBlock.summary).where(
            BusyBlock.technician_id.in_(ids), BusyBlock.during.op("&&")(window)
        )
    )
    for tech_id, during, source, summary in blocks:
        busy[tech_id].append(av.Busy(during.lower, during.upper, source, summary or ""))
    result = []
    for t in techs:
        hours: dict[int, list[tuple[time, time]]] = {}
        for h in t.hours:
            hours.setdefault(h.weekday, []).append((h.start_local, h.end_local))
        home = (t.home_lat, t.home_lng) if t.home_lat is not None and t.home_lng is not None else None
        result.append(av.Technician(t.id, t.name, hours, tuple(busy[t.id]), t.position, home))
    return result


def _place_point(place: dict | None) -> av.Point | None:
    try:
        return (float(place["lat"]), float(place["lng"])) if place else None
    except (KeyError, TypeError, ValueError):
        return None


def drive_function(points: list[av.Point] | None = None, *, cache_key: str | None = None) -> av.Drive:
    """Drive seconds between two points through the configured travel provider (DESIGN §10).
    Straight-line estimates are computed per pair as asked; a road-matrix service (OSRM,
    Mapbox) is asked once for every point of the query and cached in Redis per business and day.
    If it is down, straight-line estimates stand in (logged), so customers still get times."""
    from flask import current_app

    from app.routing.model import Location
    from app.routing.travel import Cached, Haversine, get_provider

    provider = get_provider(current_app.config)
    straight = provider if isinstance(provider, Haversine) else Haversine()

    def rounded(p: av.Point) -> tuple[float, float]:
        return (round(p[0], 5), round(p[1], 5))

    table: dict[tuple, int] = {}
    if not isinstance(provider, Haversine) and points:
        unique = list(dict.fromkeys(rounded(p) for p in points))
        try:
            from app.extensions import get_redis

            cached = Cached(provider, get_redis(), cache_key or "travel", ttl_s=86_400)
            durations, _ = cached.matrix([Location(*p) for p in unique])
            table = {(a, b): int(durations[i][j]) for i, a in enumerate(unique) for j, b in enumerate(unique)}
        except Exception as exc:  # noqa: BLE001 - road service or Redis down: straight lines stand in
            current_app.logger.warning("travel matrix unavailable (%r); using straight-line estimates", exc)

    def drive(a: av.Point, b: av.Point) -> int:
        key = (rounded(a), rounded(b))
        if key not in table:
            road = straight.metres(Location(*a), Location(*b)) * straight.detour_factor
            table[key] = round(road / straight.speed_ms)
        return table[key]

    return drive


def _padded_bounds(first: date, last: date, tenant: Tenant) -> tuple[datetime, datetime]:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tenant.time_zone)
    start, _ = av.local_day_bounds(first, tz)
    _, end = av.local_day_bounds(last, tz)
    # Bookings that started the evening before still block the morning.
    return start - timedelta(days=1), end + timedelta(hours=6)


def slots_for_days(
    tenant: Tenant,
    first: date,
    days: int,
    duration: timedelta,
    *,
    now: datetime,
    technician_ids: list[uuid.UUID] | None = None,
    place: dict | None = None,
) -> dict[date, list[av.Slot]]:
    """Offered start times per local day, loading the data once for the whole range. With the
    job's ``place`` (lat, lng) only times a technician can really drive to are offered."""
    last = first + timedelta(days=days - 1)
    start, end = _padded_bounds(first, last, tenant)
    techs = _engine_technicians(start, end, technician_ids)
    rules = rules_for(tenant)
    point = _place_point(place)
    drive = None
    if point is not None:
        points = [point] + [t.home for t in techs if t.home] + [b.point for t in techs for b in t.busy if b.point]
        drive = drive_function(points, cache_key=f"travel:{tenant.id}:{first.isoformat()}:{days}")
    return {
        first + timedelta(days=i): av.day_slots(
            first + timedelta(days=i), techs, rules, duration, now=now, place=point, drive=drive
        )
        for i in range(days)
    }


def explain_day(
    tenant: Tenant,
    technician_id: uuid.UUID,
    day: date,
    duration: timedelta,
    *,
    now: datetime,
    place: dict | None = None,
) -> list[av.Candidate]:
    """For the owner: every candidate time on ``day`` for one technician, and why (with the
    drive minutes each offered time adds when a job address is given)."""
    get_technician(technician_id)
    start, end = _padded_bounds(day, day, tenant)
    techs = _engine_technicians(start, end, [technician_id])
    point = _place_point(place)
    drive = None
    if point is not None:
        points = [point] + [t.home for t in techs if t.home] + [b.point for t in techs for b in t.busy if b.point]
        drive = drive_function(points, cache_key=f"travel:{tenant.id}:{day.isoformat()}:1")
    if not techs:
        return []
    return av.candidates(day, techs[0], rules_for(tenant), duration, now=now, place=point, drive=drive)


# Pricing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    items: list[dict]
    price_cents: int
    duration: timedelta


def price_selection(package_id: uuid.UUID | str | None, addon_ids: list, size_class: str) -> Priced:
    """Validate a package plus add-ons for a vehicle size; price and duration in one go."""
    from tenants.context import current_tenant_id

    if size_class not in SIZE_CLASSES:
        raise ValidationFailed({"size_class": "Choose the vehicle size."})
    try:
        pid = uuid.UUID(str(package_id))
        aids = [uuid.UUID(str(a)) for a in addon_ids or []]
    except ValueError:
        raise ValidationFailed({"package_id": "Choose a service."}) from None
    tid = current_tenant_id()
    package = db.session.get(Package, (tid, pid))
    if package is None or not package.active or package.kind != "package":
        raise ValidationFailed({"package_id": "Choose a service."})
    chosen = [package]
    for aid in dict.fromkeys(aids):
        addon = db.session.get(Package, (tid, aid))
        if addon is None or not addon.active or addon.kind != "addon":
            raise ValidationFailed({"addon_ids": "One of the add-ons isn't available."})
        chosen.append(addon)
    items = []
    for p in chosen:
        price = p.price_for(size_class)
        if price is None:
            raise ValidationFailed({"size_class": f"{p.name} isn't offered for a {SIZE_CLASSES[size_class].lower()}."})
        items.append(
            {
                "package_id": p.id,
                "kind": p.kind,
                "name": p.name,
                "price_cents": price.price_cents,
                "duration_min": price.duration_min,
            }
        )
    minutes = sum(i["duration_min"] for i in items)
    if minutes <= 0:
        raise ValidationFailed({"package_id": "This service has no duration set. Please call us to book it."})
    return Priced(items, sum(i["price_cents"] for i in items), timedelta(minutes=minutes))


# Booking ---------------------------------------------------------------------------


@dataclass
class BookingRequest:
    package_id: str | uuid.UUID
    addon_ids: list
    vehicle: dict  # size_class, year, make, model, color, plate
    place: dict  # geocoded: line1, city, region, postal_code, lat, lng
    access_notes: str | None
    customer: dict  # name, phone, email
    starts_at: datetime
    technician_id: uuid.UUID | None = None
    notes: str | None = None
    source: str = "site"


def _lock_technician_day(tenant: Tenant, technician_id: uuid.UUID, starts_at: datetime) -> None:
    """Serialise bookings per (tenant, technician, local day): transaction-scoped, so safe
    behind a pooler (DESIGN §5). The exclusion constraint stays the last line."""
    from zoneinfo import ZoneInfo

    day = starts_at.astimezone(ZoneInfo(tenant.time_zone)).date()
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"booking:{tenant.id}:{technician_id}:{day.isoformat()}"},
    )


def _lock_technician_days(tenant: Tenant, technician_ids: list[uuid.UUID], starts_at: datetime) -> None:
    """Take several technician-day locks in one global order (by id), so two transactions that
    want overlapping sets can never wait on each other in a cycle."""
    for tech_id in sorted(technician_ids, key=str):
        _lock_technician_day(tenant, tech_id, starts_at)


def _free_technicians(
    tenant: Tenant,
    starts_at: datetime,
    duration: timedelta,
    now: datetime,
    only: uuid.UUID | None = None,
    place: dict | None = None,
) -> list[uuid.UUID]:
    """Technicians who can take this time (and reach this place), best first."""
    from zoneinfo import ZoneInfo

    day = starts_at.astimezone(ZoneInfo(tenant.time_zone)).date()
    slots = slots_for_days(tenant, day, 1, duration, now=now, technician_ids=[only] if only else None, place=place)[day]
    slot = next((s for s in slots if s.start == starts_at), None)
    return list(slot.technician_ids) if slot else []


def _new_reference() -> str:
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(6))


def _check_window(tenant: Tenant, starts_at: datetime, now: datetime) -> None:
    if starts_at.tzinfo is None:
        raise ValidationFailed({"starts_at": "Give the time with its zone (ISO 8601)."})
    if starts_at < now:
        raise SlotUnavailable("That time is in the past. Please pick a later time.")
    if starts_at < now + timedelta(minutes=tenant.lead_time_min):
        raise SlotUnavailable("That time is too soon to book online. Please pick a later time.")
    if starts_at > now + timedelta(days=tenant.horizon_days + 1):
        raise SlotUnavailable(f"We take bookings up to {tenant.horizon_days} days ahead.")


def book(
    tenant: Tenant,
    req: BookingRequest,
    *,
    now: datetime,
    actor_type: str = "customer",
    actor_id: uuid.UUID | None = None,
) -> Booking:
    """Create a booking in one transaction: the customer, vehicle and address, the items, and
    the slot, re-checked under the technician-day lock. Raises SlotTaken if it is gone."""
    region = customers.DEFAULT_REGION.get(tenant.currency, "US")
    errors: dict[str, str] = {}
    priced = None
    try:
        priced = price_selection(req.package_id, req.addon_ids, (req.vehicle or {}).get("size_class", ""))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        customers.clean_vehicle(req.vehicle or {})
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        contact = customers.clean_customer(req.customer or {}, region=region)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if not req.place or "lat" not in req.place:
        errors["address"] = "Enter the address where we'll do the job."
    if errors:
        raise ValidationFailed(errors)
    starts_at = req.starts_at.astimezone(UTC)
    _check_window(tenant, starts_at, now)

    # Customers are offered only times a technician can drive to; staff may book anything free.
    place = req.place if actor_type == "customer" else None
    chosen = _assign_technician(tenant, starts_at, priced.duration, now, technician_id=req.technician_id, place=place)
    staff = actor_type != "customer"
    customer = customer_for_booking(tenant, contact, may_update=staff)
    vehicle = customers.find_or_add_vehicle(customer, req.vehicle, may_update=staff)
    address = customers.add_address(customer, req.place, access_notes=req.access_notes, may_update=staff)
    # Customers booking online pay the deposit first (a pending hold); staff bookings and
    # businesses without deposits confirm at once.
    deposit = 0
    if actor_type == "customer":
        from app.payments.rules import deposit_for

        deposit = deposit_for(
            tenant, db.session.get(Package, (tenant.id, priced.items[0]["package_id"])), priced.price_cents
        )
    return _create_booking(
        tenant,
        technician_id=chosen,
        customer_id=customer.id,
        vehicle_id=vehicle.id,
        address_id=address.id,
        items=priced.items,
        price_cents=priced.price_cents,
        currency=tenant.currency,
        deposit_cents=deposit,
        starts_at=starts_at,
        duration=priced.duration,
        now=now,
        source=req.source,
        customer_notes=_notes_with_contact(req, customer),
        actor_type=actor_type,
        actor_id=actor_id,
        detail={"source": req.source},
    )


def book_slot(
    tenant: Tenant,
    *,
    customer_id: uuid.UUID,
    vehicle_id: uuid.UUID,
    address_id: uuid.UUID,
    items: list[dict],
    price_cents: int,
    duration: timedelta,
    starts_at: datetime,
    now: datetime,
    source: str,
    deposit_cents: int = 0,
    currency: str | None = None,
    place: dict | None = None,
    technician_id: uuid.UUID | None = None,
    customer_notes: str | None = None,
    actor_type: str = "customer",
    actor_id: uuid.UUID | None = None,
    detail: dict | None = None,
) -> Booking:
    """Book ``starts_at`` for a customer, vehicle and address already on file, with priced
    ``items`` (dicts: package_id, kind, name, price_cents, duration_min) taking ``duration``.

    The same path as ``book`` after its validation: the booking window, a free technician (the
    one asked for, or the best of those who can reach ``place`` when given) re-checked under the
    technician-day locks, then the plan's jobs quota, the customer's data-rights check, the
    exclusion constraint (SlotTaken), the history row with its outgoing webhooks, and the deposit
    hold (``deposit_cents`` > 0: pending, payment row) or the confirmation. ``detail`` is added to
    the history row's ``{"source": source}``."""
    _check_window(tenant, starts_at, now)
    starts_at = starts_at.astimezone(UTC)
    chosen = _assign_technician(tenant, starts_at, duration, now, technician_id=technician_id, place=place)
    return _create_booking(
        tenant,
        technician_id=chosen,
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        address_id=address_id,
        items=items,
        price_cents=price_cents,
        currency=currency or tenant.currency,
        deposit_cents=deposit_cents,
        starts_at=starts_at,
        duration=duration,
        now=now,
        source=source,
        customer_notes=customer_notes,
        actor_type=actor_type,
        actor_id=actor_id,
        detail={"source": source} | (detail or {}),
    )


def _assign_technician(
    tenant: Tenant,
    starts_at: datetime,
    duration: timedelta,
    now: datetime,
    *,
    technician_id: uuid.UUID | None,
    place: dict | None,
) -> uuid.UUID:
    """The technician who takes this time, decided under the technician-day locks (SlotTaken if
    nobody can), then the plan's jobs quota. Lock order: technician days, jobs, (customers)."""
    if technician_id is not None:
        # One technician asked for: lock first, then check once.
        _lock_technician_day(tenant, technician_id, starts_at)
        if technician_id not in _free_technicians(tenant, starts_at, duration, now, technician_id, place):
            raise SlotTaken()
        chosen = technician_id
    else:
        # Route-aware: who can drive there, fewest added minutes first; re-checked under the
        # technician-day locks so two bookings that each fit can't together break a day.
        candidates = _free_technicians(tenant, starts_at, duration, now, place=place)
        _lock_technician_days(tenant, candidates, starts_at)
        still_free = set(_free_technicians(tenant, starts_at, duration, now, place=place))
        chosen = next((tech_id for tech_id in candidates if tech_id in still_free), None)
        if chosen is None:
            raise SlotTaken()
    quotas.check(tenant, "jobs")  # the plan's jobs this month (PlanLimitReached), after the slot locks
    return chosen


def _create_booking(
    tenant: Tenant,
    *,
    technician_id: uuid.UUID,
    customer_id: uuid.UUID,
    vehicle_id: uuid.UUID,
    address_id: uuid.UUID,
    items: list[dict],
    price_cents: int,
    currency: str,
    deposit_cents: int,
    starts_at: datetime,
    duration: timedelta,
    now: datetime,
    source: str,
    customer_notes: str | None,
    actor_type: str,
    actor_id: uuid.UUID | None,
    detail: dict,
) -> Booking:
    """Insert the booking for an assigned technician: pending with a hold while a deposit is owed,
    else confirmed (with the confirmation text unless the system booked it)."""
    status = "pending" if deposit_cents else "confirmed"
    ends_at = starts_at + duration
    booking = Booking(
        tenant_id=tenant.id,
        reference=_new_reference(),
        customer_id=customer_id,
        vehicle_id=vehicle_id,
        address_id=address_id,
        technician_id=technician_id,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        during=Range(starts_at, ends_at + timedelta(minutes=tenant.buffer_min), "[)"),
        arrival_window_min=tenant.arrival_window_min,
        price_cents=price_cents,
        currency=currency,
        deposit_cents=deposit_cents,
        hold_expires_at=now + timedelta(minutes=tenant.hold_min) if status == "pending" else None,
        source=source,
        customer_notes=customer_notes,
    )
    booking.items = [BookingItem(tenant_id=tenant.id, **item) for item in items]
    _insert(booking)
    _record(booking, None, status, actor_type, actor_id, detail)
    if deposit_cents:
        from app.payments.services import require_deposit

        require_deposit(tenant, booking)
    elif actor_type != "system":
        from app.messaging.services import booking_confirmed

        booking_confirmed(booking)  # the confirmation text (sent after commit, once)
    return booking


def customer_for_booking(tenant: Tenant, clean: dict, *, may_update: bool):
    """The returning customer with this phone, or a new one, from already-cleaned contact
    fields. Two first-time bookings from the same phone at once both miss the lookup; the loser
    of the unique index re-reads the winner. An anonymous booking (``may_update`` False) never
    changes a customer on file: knowing a phone number must not let anyone rewrite someone's
    e-mail, vehicle or gate code. Public: quote requests and new-customer quotes find or add
    their customer here too, so the data-rights and customers-quota checks live in one place."""
    if clean["phone"]:
        existing = customers.find_by_phone(clean["phone"])
        if existing is not None:
            from app.customers.privacy import check_bookable

            check_bookable(existing, staff=may_update)  # asked to be deleted: no new bookings or requests
            if may_update and clean["email"] and not existing.email:
                existing.email = clean["email"]
            return existing
    quotas.check(tenant, "customers")  # a new customer: the plan's customers (PlanLimitReached)
    try:
        with db.session.begin_nested():
            customer = Customer(tenant_id=tenant.id, **clean)
            db.session.add(customer)
            db.session.flush()
            return customer
    except IntegrityError:
        existing = customers.find_by_phone(clean["phone"]) if clean["phone"] else None
        if existing is None:
            raise
        return existing


def _notes_with_contact(req: BookingRequest, customer) -> str | None:
    """Keep the name and e-mail typed for this booking when they differ from the record on file."""
    notes = (req.notes or "").strip()
    typed = " ".join(str((req.customer or {}).get("name") or "").split())
    email = str((req.customer or {}).get("email") or "").strip().lower()
    extra = []
    if typed and typed.lower() != customer.name.lower():
        extra.append(f"Booked as {typed}")
    if email and email != (customer.email or ""):
        extra.append(f"e-mail given: {email}")
    text = " · ".join(([notes] if notes else []) + extra)
    return text[:1000] or None


def _insert(booking: Booking) -> None:
    customer = db.session.get(Customer, (booking.tenant_id, booking.customer_id))
    if customer is not None and not customer.reachable:  # every path: site, dashboard, API, quotes
        from app.customers.privacy import check_bookable

        check_bookable(customer, staff=booking.source == "dashboard")
    for _ in range(5):
        try:
            with db.session.begin_nested():
                db.session.add(booking)
                db.session.flush()
            return
        except IntegrityError as exc:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            if sqlstate == "23P01":  # exclusion_violation: the constraint caught an overlap
                raise SlotTaken() from None
            if sqlstate == "23505" and "uq_bookings_reference" in str(exc.orig):
                booking.reference = _new_reference()
                continue
            raise
    raise RuntimeError("could not allocate a booking reference")


def _record(
    booking: Booking,
    from_status: str | None,
    to_status: str,
    actor_type: str,
    actor_id: uuid.UUID | None,
    detail: dict | None = None,
) -> None:
    db.session.add(
        BookingEvent(
            tenant_id=booking.tenant_id,
            booking_id=booking.id,
            actor_type=actor_type,
            actor_id=actor_id,
            from_status=from_status,
            to_status=to_status,
            detail=detail or {},
        )
    )
    db.session.flush()
    from app.webhooks_out.services import booking_recorded

    # Every status change and move of any booking (site, dashboard, API, payments, dispatch, quotes) is
    # recorded here: the business's outgoing webhooks go out from the same place, in this transaction.
    booking_recorded(booking, from_status, to_status, detail)


record_event = _record  # for other domains (payments) that add to a booking's history


def get_booking(booking_id: uuid.UUID, *, for_update: bool = False) -> Booking:
    from tenants.context import current_tenant_id

    stmt = db.select(Booking).where(Booking.tenant_id == current_tenant_id(), Booking.id == booking_id)
    if for_update:
        stmt = stmt.with_for_update()
    booking = db.session.scalar(stmt)
    if booking is None:
        raise NotFound("No such booking.")
    return booking


def transition(
    booking: Booking, to_status: str, *, actor_type: str, actor_id: uuid.UUID | None = None, detail: dict | None = None
) -> Booking:
    """Move a booking along the status machine, recording who, when, from and to."""
    if to_status not in TRANSITIONS.get(booking.status, set()):
        raise BadTransition(
            f"This booking is {booking.status_label.lower()}, so it can't become {to_status.replace('_', ' ')}."
        )
    from_status = booking.status
    booking.status = to_status
    if to_status == "confirmed":
        booking.hold_expires_at = None
        if from_status == "pending":
            from app.messaging.services import booking_confirmed

            booking_confirmed(booking)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            raise SlotTaken("That time is no longer free.") from None
        raise
    _record(booking, from_status, to_status, actor_type, actor_id, detail)
    if to_status == "completed":
        from app.reviews.services import request_review

        request_review(booking)  # every customer, happy or not (no sentiment gating)
    return booking


def cancel_booking(
    tenant: Tenant,
    booking: Booking,
    *,
    actor_type: str,
    actor_id: uuid.UUID | None = None,
    now: datetime,
    reason: str | None = None,
) -> Booking:
    if actor_type == "customer" and booking.status == "confirmed":
        cutoff = booking.starts_at - timedelta(hours=tenant.cancel_cutoff_hours)
        if now > cutoff:
            raise PolicyRefused(
                f"Online cancellation closes {tenant.cancel_cutoff_hours} hours before the appointment. Please call us."
            )
    was_pending = booking.status == "pending"
    transition(
        booking, "canceled", actor_type=actor_type, actor_id=actor_id, detail={"reason": reason} if reason else None
    )
    if was_pending:
        from app.payments.services import close_open_checkout

        close_open_checkout(booking)
    return booking


def reschedule_booking(
    tenant: Tenant,
    booking: Booking,
    new_start: datetime,
    *,
    actor_type: str,
    actor_id: uuid.UUID | None = None,
    now: datetime,
    technician_id: uuid.UUID | None = None,
) -> Booking:
    """Move an active booking to an offered time (same rules as booking)."""
    if booking.status not in ("pending", "confirmed"):
        raise BadTransition("Only upcoming bookings can be moved.")
    if actor_type == "customer":
        if booking.reschedule_count >= tenant.max_reschedules:
            raise PolicyRefused("This booking has been moved as many times as we allow online. Please call us.")
        if now > booking.starts_at - timedelta(hours=tenant.cancel_cutoff_hours):
            raise PolicyRefused(
                f"Online changes close {tenant.cancel_cutoff_hours} hours before the appointment. Please call us."
            )
    new_start = new_start.astimezone(UTC)
    _check_window(tenant, new_start, now)
    duration = booking.ends_at - booking.starts_at
    old = (booking.starts_at, booking.technician_id)
    # Free our own slot for the check, inside this transaction only.
    saved_status = booking.status
    booking.status = "canceled"
    db.session.flush()
    place = None
    if actor_type == "customer" and booking.address is not None:
        place = {"lat": booking.address.lat, "lng": booking.address.lng}
    try:
        candidates = _free_technicians(tenant, new_start, duration, now, technician_id, place)
        if technician_id is None and booking.technician_id in candidates:
            candidates.remove(booking.technician_id)
            candidates.insert(0, booking.technician_id)
        _lock_technician_days(tenant, candidates, new_start)
        still_free = set(_free_technicians(tenant, new_start, duration, now, technician_id, place))
        chosen = next((tech_id for tech_id in candidates if tech_id in still_free), None)
        if chosen is None:
            raise SlotTaken()
    finally:
        booking.status = saved_status
    booking.starts_at, booking.ends_at = new_start, new_start + duration
    booking.technician_id = chosen
    booking.during = Range(new_start, new_start + duration + timedelta(minutes=tenant.buffer_min), "[)")
    if actor_type == "customer":
        booking.reschedule_count += 1
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            raise SlotTaken() from None
        raise
    _record(
        booking,
        booking.status,
        booking.status,
        actor_type,
        actor_id,
        {
            "moved_from": old[0].isoformat(),
            "moved_to": new_start.isoformat(),
            "technician_from": str(old[1]),
            "technician_to": str(chosen),
        },
    )
    return booking


def expire_hold(booking_id: uuid.UUID, *, now: datetime) -> bool:
    """Expire a pending booking whose hold has run out; frees the slot. Idempotent."""
    booking = get_booking(booking_id, for_update=True)
    if booking.status != "pending" or booking.hold_expires_at is None or booking.hold_expires_at > now:
        return False
    from app.payments.services import settle_before_expiry

    if settle_before_expiry(booking, now=now):
        return False  # the customer paid in time after all: confirmed, not expired
    transition(booking, "expired", actor_type="system", detail={"reason": "hold expired"})
    return True


def expire_due_holds(*, now: datetime) -> int:
    """Expire every pending booking of the current tenant whose hold has run out."""
    import logging

    import stripe

    due = db.session.scalars(
        db.select(Booking.id).where(Booking.status == "pending", Booking.hold_expires_at <= now)
    ).all()
    expired = 0
    for booking_id in due:
        # One booking whose deposit can't be checked with Stripe must not keep the others' slots.
        try:
            with db.session.begin_nested():
                expired += expire_hold(booking_id, now=now)
        except stripe.StripeError as exc:
            logging.getLogger(__name__).warning("hold of %s not expired yet: %r", booking_id, exc)
    return expired


def list_bookings(
    start: datetime, end: datetime, *, technician_id: uuid.UUID | None = None, include_inactive: bool = False
) -> list[Booking]:
    stmt = db.select(Booking).where(Booking.starts_at < end, Booking.ends_at > start).order_by(Booking.starts_at)
    if not include_inactive:
        stmt = stmt.where(Booking.status.in_(ACTIVE_STATUSES + ("completed",)))
    if technician_id:
        stmt = stmt.where(Booking.technician_id == technician_id)
    return list(db.session.scalars(stmt))


def booking_events(booking: Booking) -> list[BookingEvent]:
    return list(
        db.session.scalars(
            db.select(BookingEvent).where(BookingEvent.booking_id == booking.id).order_by(BookingEvent.created_at)
        )
    )
