"""RQ entry points for outgoing webhooks: one attempt per job, the minute sweep, the owner's notice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.jobs import job
from app.webhooks_out import services


def _now() -> datetime:
    return datetime.now(UTC)


# Retries are the delivery row's own schedule (services.BACKOFF, shown in the log), so RQ's retry only
# covers a crashed worker; the row lock and the due check make a second run a no-op.
@job("default", timeout=60)
def send_delivery_job(tenant_id: uuid.UUID, delivery_id: str) -> str:
    return services.deliver(uuid.UUID(delivery_id), now=_now())


@job("default", timeout=300)
def send_due_job(tenant_id: uuid.UUID) -> int:
    """Queue one send per due delivery of this business (the sweep's per-tenant step)."""
    ids = services.due_deliveries(now=_now())
    for delivery_id in ids:
        send_delivery_job.enqueue(tenant_id, delivery_id)
    return len(ids)


def sweep_webhook_deliveries(now: datetime | None = None) -> int:
    """`flask cron` every minute: businesses with deliveries due for over a minute (their scheduled
    job should have run; it may not have been queued while Redis was down), found through the narrow
    fan-out function (DESIGN §3)."""
    before = (now or _now()) - timedelta(minutes=1)
    ids = list(db.session.execute(text("SELECT public.tenants_with_due_webhooks(:b)"), {"b": before}).scalars())
    db.session.rollback()
    for tenant_id in ids:
        send_due_job.enqueue(tenant_id)
    return len(ids)


NOTICE = """Hello,

Fieldday stopped sending booking events to your webhook endpoint
{url}
after {failures} failed attempts in a row. The last one: {reason}

Fix the receiving server, then turn the endpoint back on and resend what it missed from its
delivery log:
{link}

— Fieldday
"""


@job("email")
def notify_disabled_job(tenant_id: uuid.UUID, endpoint_id: str) -> bool:
    """Tell the owners once that an endpoint was turned off (the marker makes a rerun a no-op)."""
    from app.accounts.models import User
    from app.mail import send_email
    from app.urls import app_url
    from app.webhooks_out.models import WebhookEndpoint

    endpoint = db.session.scalar(
        db.select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == uuid.UUID(endpoint_id))
        .with_for_update()
    )
    if endpoint is None or endpoint.enabled or endpoint.owner_notified_at is not None:
        return False
    body = NOTICE.format(
        url=endpoint.url,
        failures=endpoint.consecutive_failures,
        reason=endpoint.disabled_reason or "no answer",
        link=app_url(f"/integrations/webhooks/{endpoint.id}"),
    )
    for owner in db.session.scalars(db.select(User).where(User.role == "owner", User.is_active_flag)):
        send_email(owner.email, "Webhook endpoint turned off", body)
    endpoint.owner_notified_at = _now()
    return True
