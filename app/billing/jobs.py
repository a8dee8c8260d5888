"""Billing jobs: the Billing webhook's work, and the sweep of events never processed."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.billing import services
from app.extensions import db
from app.jobs import job

log = logging.getLogger(__name__)


@job("default")
def process_billing_event(tenant_id: uuid.UUID, event_id: str) -> str:
    return services.process_event(event_id)


@job("default")
def process_unprocessed_billing_events(tenant_id: uuid.UUID) -> int:
    import stripe

    done = 0
    for event_id in services.unprocessed_events():
        try:
            with db.session.begin_nested():  # one event Stripe can't answer for doesn't undo the rest
                services.process_event(event_id)
            done += 1
        except stripe.StripeError as exc:
            log.warning("billing event %s not processed yet: %r", event_id, exc)
    return done


def sweep_billing_events() -> int:
    """`flask cron`: Billing events recorded but never processed (Redis was down when they arrived, or
    a job gave up) get another run, fanned out per business (DESIGN §3)."""
    before = datetime.now(UTC) - timedelta(minutes=2)
    ids = list(
        db.session.execute(text("SELECT public.tenants_with_unprocessed_billing_events(:b)"), {"b": before}).scalars()
    )
    db.session.rollback()
    for tenant_id in ids:
        process_unprocessed_billing_events.enqueue(tenant_id)
    return len(ids)
