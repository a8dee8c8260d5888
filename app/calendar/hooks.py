"""Bookings that change are written to Google after commit (DESIGN §7).

A listener rather than calls in the booking services: every path that creates, moves, reassigns, edits
or ends a booking (site, dashboard, API, holds expiring, payments) is covered without each one knowing
about Google. The job reads the booking's state when it runs, so a transaction that touched a booking
several times queues one job; the 15-minute sweep reconciles anything missed (Redis down, bulk SQL).

What is collected comes from *flushed* changes (``after_flush``), so commit's own final flush counts,
and it is kept per savepoint: a savepoint that rolls back takes its bookings with it, one that is
released hands them to the transaction around it. One ``app.jobs.after_commit`` callback per root
transaction queues the exports once the root commits (and is dropped with it on a rollback).
"""

from __future__ import annotations

import uuid

from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session

from app.booking.models import Booking, BookingItem

# Fields that change what the event in Google says (time, whose calendar, status, title, place).
WATCHED = ("status", "starts_at", "ends_at", "technician_id", "address_id", "customer_id", "reference")
KEY = "google_export_bookings"


class _Pending:
    """Booking ids touched per open savepoint (``None`` is the root transaction)."""

    def __init__(self) -> None:
        self.by_txn: dict[object, set[tuple[uuid.UUID, uuid.UUID]]] = {}
        self.receiver: bool | None = None  # does this business have a calendar receiving bookings?
        self.registered = False

    def root_ids(self) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return self.by_txn.get(None, set())


def _enclosing_savepoint(txn):
    parent = txn.parent
    while parent is not None and not parent.nested:
        parent = parent.parent
    return parent


def _touched(session) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, booking) pairs whose event in Google may have to change after this flush."""
    found: set[tuple] = set()
    for obj in session.new:
        if isinstance(obj, Booking):
            found.add((obj.tenant_id, obj.id))
        elif isinstance(obj, BookingItem):
            found.add((obj.tenant_id, obj.booking_id))
    for obj in session.dirty:
        if isinstance(obj, Booking):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in WATCHED):
                found.add((obj.tenant_id, obj.id))
        elif isinstance(obj, BookingItem):
            found.add((obj.tenant_id, obj.booking_id))
    for obj in session.deleted:
        if isinstance(obj, BookingItem):
            found.add((obj.tenant_id, obj.booking_id))
    return {(t, b) for t, b in found if t is not None and b is not None}


def _renamed(session) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    from app.customers.models import Address, Customer

    customers, addresses = set(), set()
    for obj in session.dirty:
        if isinstance(obj, Customer) and inspect(obj).attrs["name"].history.has_changes():
            customers.add(obj.id)
        elif isinstance(obj, Address):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in ("line1", "city")):
                addresses.add(obj.id)
    return customers, addresses


@event.listens_for(Session, "after_flush")
def _collect(session, flush_context) -> None:
    # In after_flush the session still shows the flush's new/dirty objects with their history.
    touched = _touched(session)
    customers, addresses = _renamed(session)
    if not (touched or customers or addresses):
        return
    pending = session.info.get(KEY)
    if pending is None:
        pending = session.info[KEY] = _Pending()
    if pending.receiver is None:
        from app.calendar.models import GoogleCalendar

        # One cheap query per transaction, only when bookings changed: businesses without a receiving
        # calendar queue nothing.
        row = session.execute(select(GoogleCalendar.id).where(GoogleCalendar.receives_bookings).limit(1)).first()
        pending.receiver = row is not None
    if not pending.receiver:
        return
    if customers or addresses:
        # A customer renamed or an address corrected: their upcoming bookings' events say it too.
        rows = session.execute(
            select(Booking.tenant_id, Booking.id).where(
                (Booking.customer_id.in_(customers) | Booking.address_id.in_(addresses)),
                Booking.ends_at > func.now(),
            )
        )
        touched |= {(t, b) for t, b in rows}
    if not touched:
        return
    pending.by_txn.setdefault(session.get_nested_transaction(), set()).update(touched)
    if not pending.registered:
        from app.extensions import db
        from app.jobs import after_commit

        if db.session.registry.has() and db.session.registry() is session:
            after_commit(_queue_exports, session)
            pending.registered = True


def _queue_exports(session) -> None:
    """Runs once the root transaction committed (``app.jobs.after_commit``)."""
    pending = session.info.pop(KEY, None)
    if pending is None:
        return
    from app.calendar.jobs import export_booking_job

    for tenant_id, booking_id in sorted(pending.root_ids(), key=lambda k: (str(k[0]), str(k[1]))):
        export_booking_job.enqueue(tenant_id, booking_id)


@event.listens_for(Session, "after_commit")
def _savepoint_released(session) -> None:
    # Fired for savepoints too (before they close): hand their bookings to the enclosing transaction.
    txn = session.get_nested_transaction()
    pending = session.info.get(KEY)
    if pending is None:
        return
    if txn is None:
        if not pending.registered:  # not the app's scoped session: nothing will read these
            session.info.pop(KEY, None)
        return  # otherwise the after-commit callback takes them
    ids = pending.by_txn.pop(txn, None)
    if ids:
        pending.by_txn.setdefault(_enclosing_savepoint(txn), set()).update(ids)


@event.listens_for(Session, "after_rollback")
def _forget(session) -> None:
    pending = session.info.get(KEY)
    if pending is None:
        return
    txn = session.get_nested_transaction()
    if txn is None:  # the root rolled back: nothing is queued (app.jobs drops the callback too)
        session.info.pop(KEY, None)
    else:
        pending.by_txn.pop(txn, None)
