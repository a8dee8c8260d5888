"""Messaging jobs: each text is sent by its own job (retried with backoff); a sweep re-queues
outbox rows Redis lost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.jobs import job
from app.messaging import services


@job("default")
def send_text(tenant_id: uuid.UUID, message_id: str) -> str:
    return services.send(uuid.UUID(message_id))


@job("default")
def send_queued(tenant_id: uuid.UUID) -> int:
    ids = services.queued_ids()
    for message_id in ids:
        send_text.enqueue(tenant_id, message_id)
    return len(ids)


def sweep_queued_texts() -> int:
    """`flask cron`: tenants with texts queued (or stuck sending) for two minutes get them re-queued."""
    before = datetime.now(UTC) - timedelta(minutes=2)
    ids = list(db.session.execute(text("SELECT public.tenants_with_queued_messages(:b)"), {"b": before}).scalars())
    db.session.rollback()
    for tenant_id in ids:
        send_queued.enqueue(tenant_id)
    return len(ids)


@job("default")
def queue_reminders(tenant_id: uuid.UUID) -> int:
    from tenants.models import Tenant

    return services.queue_reminders(db.session.get(Tenant, tenant_id), now=datetime.now(UTC))


def sweep_reminders() -> int:
    """`flask cron`, every five minutes: each business with confirmed bookings in the next two days
    checks whether its reminders are due (by text or e-mail; ids only cross tenants here)."""
    now = datetime.now(UTC)
    ids = list(
        db.session.execute(
            text("SELECT public.tenants_with_bookings_starting(:a, :b)"), {"a": now, "b": now + timedelta(days=2)}
        ).scalars()
    )
    db.session.rollback()
    for tenant_id in ids:
        queue_reminders.enqueue(tenant_id)
    return len(ids)


@job("default")
def queue_payment_reminders(tenant_id: uuid.UUID) -> int:
    from tenants.models import Tenant

    return services.queue_payment_reminders(db.session.get(Tenant, tenant_id), now=datetime.now(UTC))


def sweep_payment_reminders() -> int:
    """`flask cron`, hourly: businesses with finished, unpaid jobs 7 to 21 days old."""
    now = datetime.now(UTC)
    window = (now - timedelta(days=21), now - timedelta(days=7))
    ids = list(
        db.session.execute(
            text("SELECT public.tenants_with_unpaid_completed(:a, :b)"), {"a": window[0], "b": window[1]}
        ).scalars()
    )
    db.session.rollback()
    for tenant_id in ids:
        queue_payment_reminders.enqueue(tenant_id)
    return len(ids)
