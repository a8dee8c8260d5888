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
