"""Booking jobs: holds that expire and free their slot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from app.booking import services
from app.extensions import db
from app.jobs import job


@job("default")
def expire_hold(tenant_id: uuid.UUID, booking_id: str) -> bool:
    return services.expire_hold(uuid.UUID(booking_id), now=datetime.now(UTC))


@job("default")
def expire_holds(tenant_id: uuid.UUID) -> int:
    """Safety net behind the per-booking job: expire whatever is overdue for one tenant."""
    return services.expire_due_holds(now=datetime.now(UTC))


def sweep_expired_holds() -> int:
    """Fan out (DESIGN §3): find tenants with overdue holds through the narrow definer
    function and queue one job per tenant. Runs from ``flask cron``."""
    now = datetime.now(UTC)
    tenant_ids = db.session.execute(text("SELECT public.tenants_with_expired_holds(:now)"), {"now": now}).scalars()
    ids = list(tenant_ids)
    db.session.rollback()
    for tenant_id in ids:
        expire_holds.enqueue(tenant_id)
    return len(ids)


def schedule_hold_expiry(booking) -> None:
    """After commit: expire this booking's hold on time. If Redis is unreachable the booking
    stands and the minute sweep (`flask cron`) expires it instead, so never fail the request."""
    if booking.status != "pending" or booking.hold_expires_at is None:
        return
    try:
        expire_hold.enqueue_at(booking.hold_expires_at, booking.tenant_id, booking.id)
    except Exception:  # noqa: BLE001 - logged; the sweep is the safety net
        import logging

        logging.getLogger(__name__).warning("could not schedule hold expiry for %s; the sweep will", booking.id)
