"""Outgoing webhooks: endpoints, events, signed deliveries with retries (docs/api-and-webhooks.md).

An event is emitted inside the transaction that changes the booking: ``emit`` inserts one delivery row
per listening endpoint and queues each send with ``after_commit``, so nothing is sent for a change
that rolls back, and a send that can't be queued (Redis down) is picked up by the minute sweep.

Each request carries ``Fieldday-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from flask import current_app

from app.audit import services as audit
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from app.jobs import after_commit
from app.webhooks_out import guard
from app.webhooks_out.models import EVENTS, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# Waits before the 2nd … 6th attempt; after the 6th failure the delivery is given up ("failed").
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_ENDPOINTS = 10
SIGNATURE_HEADER = "Fieldday-Signature"
TOLERANCE_S = 300  # what we tell receivers to accept between our timestamp and their clock


class EndpointDisabled(FielddayError):
    status = 409
    code = "endpoint_disabled"
    message = "This endpoint is turned off. Turn it on first, then resend."


class SecretUnreadable(FielddayError):
    status = 409
    code = "secret_unreadable"
    message = "The signing secret can't be read with this server's key. Roll a new secret."


def _settings() -> dict:
    cfg = current_app.config
    return {
        "https_only": bool(cfg.get("OUTGOING_WEBHOOKS_HTTPS_ONLY", True)),
        "allowed_hosts": tuple(cfg.get("OUTGOING_WEBHOOKS_ALLOWED_HOSTS") or ()),
    }


# Secrets ------------------------------------------------------------------------------------------------


def _encrypt(secret: str) -> str:
    from app.calendar.google_api import encrypt  # the project's Fernet helper (FERNET_KEY, rotation)

    return encrypt(secret)


def reveal_secret(endpoint: WebhookEndpoint) -> str:
    from app.calendar.google_api import GoogleUnavailable, decrypt

    try:
        return decrypt(endpoint.secret_enc)
    except GoogleUnavailable:
        raise SecretUnreadable() from None


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: str) -> str:
    """The Fieldday-Signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: str, *, now: int, tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver does (the docs show the same in a few lines): parse, check the age, compare in
    constant time. Any v1 may match (during a secret roll there can be two)."""
    try:
        pairs = [item.split("=", 1) for item in header.split(",")]
        t = int(next(v for k, v in pairs if k.strip() == "t"))
        candidates = [v for k, v in pairs if k.strip() == "v1"]
    except (ValueError, StopIteration):
        return False
    if abs(now - t) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c.strip()) for c in candidates)


# Endpoints ----------------------------------------------------------------------------------------------


def _clean(url: str, events, description: str | None) -> tuple[str, list[str], str | None]:
    errors: dict[str, str] = {}
    url = (url or "").strip()
    try:
        guard.check(url, **_settings())
    except guard.UnsafeUrl as exc:
        errors["url"] = str(exc)
    chosen = [e for e in EVENTS if e in set(events or [])]
    unknown = set(events or []) - set(EVENTS)
    if unknown or not chosen:
        errors["events"] = "Choose at least one event to send."
    description = " ".join(str(description or "").split()) or None
    if description and len(description) > 200:
        errors["description"] = "Keep the note under 200 characters."
    if errors:
        raise ValidationFailed(errors)
    return url, chosen, description


def create_endpoint(
    tenant_id: uuid.UUID, *, url: str, events, description: str | None = None, actor_id: uuid.UUID | None
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it with its signing secret (shown to the owner now, revealable later)."""
    url, chosen, description = _clean(url, events, description)
    count = db.session.scalar(db.select(db.func.count()).select_from(WebhookEndpoint))
    if count >= MAX_ENDPOINTS:
        raise ValidationFailed({"url": f"A business can have up to {MAX_ENDPOINTS} endpoints. Delete one first."})
    secret = new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        description=description,
        events=chosen,
        secret_enc=_encrypt(secret),
        created_by=actor_id,
    )
    db.session.add(endpoint)
    db.session.flush()
    audit.record(
        tenant_id,
        "webhook_endpoint.created",
        actor_id=actor_id,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        detail={"url": url, "events": chosen},
    )
    return endpoint, secret


def update_endpoint(
    endpoint: WebhookEndpoint,
    *,
    url: str,
    events,
    description: str | None,
    enabled: bool,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> WebhookEndpoint:
    url, chosen, description = _clean(url, events, description)
    changed = sorted(
        k
        for k, v in (("url", url), ("events", chosen), ("description", description), ("enabled", enabled))
        if getattr(endpoint, k) != v
    )
    endpoint.url, endpoint.events, endpoint.description = url, chosen, description
    if enabled and not endpoint.enabled:
        endpoint.enabled, endpoint.consecutive_failures = True, 0
        endpoint.disabled_at = endpoint.disabled_reason = endpoint.owner_notified_at = None
    elif not enabled and endpoint.enabled:
        endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, "Turned off by hand."
    db.session.flush()
    if changed:
        audit.record(
            endpoint.tenant_id,
            "webhook_endpoint.changed",
            actor_id=actor_id,
            subject_type="webhook_endpoint",
            subject_id=endpoint.id,
            detail={"fields": changed, "url": url},
        )
    return endpoint


def roll_secret(endpoint: WebhookEndpoint, *, actor_id: uuid.UUID | None) -> str:
    """A new signing secret, used from the next attempt on (the old one stops at once)."""
    secret = new_secret()
    endpoint.secret_enc = _encrypt(secret)
    db.session.flush()
    audit.record(
        endpoint.tenant_id,
        "webhook_endpoint.secret_rolled",
        actor_id=actor_id,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
    )
    return secret


def record_reveal(endpoint: WebhookEndpoint, *, actor_id: uuid.UUID | None) -> None:
    audit.record(
        endpoint.tenant_id,
        "webhook_endpoint.secret_revealed",
        actor_id=actor_id,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
    )


def delete_endpoint(endpoint: WebhookEndpoint, *, actor_id: uuid.UUID | None) -> None:
    audit.record(
        endpoint.tenant_id,
        "webhook_endpoint.deleted",
        actor_id=actor_id,
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        detail={"url": endpoint.url},
    )
    db.session.delete(endpoint)
    db.session.flush()


def list_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(db.select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)))


def get_endpoint(endpoint_id: uuid.UUID, *, for_update: bool = False) -> WebhookEndpoint:
    from tenants.context import current_tenant_id

    stmt = db.select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == current_tenant_id(), WebhookEndpoint.id == endpoint_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    endpoint = db.session.scalar(stmt)
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def list_deliveries(endpoint: WebhookEndpoint, *, limit: int = 50) -> list[WebhookDelivery]:
    return list(
        db.session.scalars(
            db.select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)
        )
    )


def get_delivery(endpoint: WebhookEndpoint, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = db.session.scalar(
        db.select(WebhookDelivery).where(
            WebhookDelivery.tenant_id == endpoint.tenant_id,
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.id == delivery_id,
        )
    )
    if delivery is None:
        raise NotFound("No such delivery.")
    return delivery


# Events -------------------------------------------------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if dt else None


def booking_data(booking) -> dict:
    """What receivers get about a booking (the business's own data, sent to its own URL)."""
    from app.booking.models import Technician
    from app.customers.models import Address, Customer

    customer = db.session.get(Customer, (booking.tenant_id, booking.customer_id))
    address = db.session.get(Address, (booking.tenant_id, booking.address_id))
    tech = db.session.get(Technician, (booking.tenant_id, booking.technician_id))
    return {
        "id": str(booking.id),
        "reference": booking.reference,
        "status": booking.status,
        "starts_at": _iso(booking.starts_at),
        "ends_at": _iso(booking.ends_at),
        "arrival_window_min": booking.arrival_window_min,
        "price_cents": booking.price_cents,
        "deposit_cents": booking.deposit_cents,
        "currency": booking.currency,
        "payment_status": booking.payment_status,
        "source": booking.source,
        "technician": {"id": str(tech.id), "name": tech.name} if tech else None,
        "customer": (
            {"id": str(customer.id), "name": customer.name, "phone": customer.phone, "email": customer.email}
            if customer
            else None
        ),
        "vehicle_id": str(booking.vehicle_id),
        "address": (
            {"id": str(address.id), "line": address.one_line, "lat": address.lat, "lng": address.lng}
            if address
            else None
        ),
        "items": [
            {"name": i.name, "kind": i.kind, "price_cents": i.price_cents, "duration_min": i.duration_min}
            for i in booking.items
        ],
    }


STATUS_EVENTS = {"confirmed": "booking.confirmed", "canceled": "booking.cancelled", "completed": "booking.completed"}


def event_types_for(from_status: str | None, to_status: str, detail: dict | None) -> list[str]:
    """Which webhook events one recorded booking event is: created (and confirmed, when it starts
    confirmed), a status change we publish, or a move. Other history (on my way, refunds) is none."""
    if from_status is None:
        return ["booking.created"] + (["booking.confirmed"] if to_status == "confirmed" else [])
    if from_status != to_status:
        return [STATUS_EVENTS[to_status]] if to_status in STATUS_EVENTS else []
    if detail and "moved_to" in detail:
        return ["booking.rescheduled"]
    return []


def booking_recorded(booking, from_status: str | None, to_status: str, detail: dict | None) -> None:
    """Called where booking history is written (app/booking/services.py ``_record``): emits the
    matching events. Cheap when nobody listens: one indexed query."""
    types = event_types_for(from_status, to_status, detail)
    if not types:
        return
    listening = db.session.scalar(
        db.select(db.func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.enabled, WebhookEndpoint.events.overlap(types))
    )
    if not listening:
        return
    data = {"booking": booking_data(booking)}
    if from_status is not None and from_status != to_status:
        data["previous_status"] = from_status
    if detail and "moved_from" in detail:
        data["previous"] = {"starts_at": detail.get("moved_from"), "technician_id": detail.get("technician_from")}
    for event_type in types:
        emit(booking.tenant_id, event_type, data)


def emit(
    tenant_id: uuid.UUID,
    event_type: str,
    data: dict,
    *,
    now: datetime | None = None,
    endpoint_ids: list[uuid.UUID] | None = None,
) -> list[WebhookDelivery]:
    """One event to every enabled endpoint that listens for it (or to ``endpoint_ids``): delivery rows in
    the caller's transaction, each send queued after its commit."""
    now = now or datetime.now(UTC)
    stmt = db.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.enabled)
    if endpoint_ids is not None:
        stmt = stmt.where(WebhookEndpoint.id.in_(endpoint_ids))
    else:
        stmt = stmt.where(WebhookEndpoint.events.any(event_type))
    endpoints = list(db.session.scalars(stmt))
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": event_type, "created": int(now.timestamp()), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    deliveries = [
        WebhookDelivery(
            tenant_id=tenant_id,
            endpoint_id=e.id,
            event_id=event_id,
            event_type=event_type,
            body=body,
            next_attempt_at=now,
            created_at=now,  # not the transaction's now(): the log orders one transaction's events
        )
        for e in endpoints
    ]
    db.session.add_all(deliveries)
    db.session.flush()
    from app.webhooks_out.jobs import send_delivery_job

    for d in deliveries:
        after_commit(send_delivery_job.enqueue, tenant_id, d.id)
    return deliveries


def send_test(endpoint: WebhookEndpoint, *, now: datetime) -> WebhookDelivery:
    """A ``ping`` event to this endpoint only, so the owner can check the receiver and its signature."""
    if not endpoint.enabled:
        raise EndpointDisabled()
    data = {"message": "A test event from Fieldday. Check its signature the way you check real events."}
    return emit(endpoint.tenant_id, "ping", data, now=now, endpoint_ids=[endpoint.id])[0]


def resend(delivery: WebhookDelivery, *, now: datetime) -> WebhookDelivery:
    """Send the same event (same id and body) again as a new delivery, shown in the log."""
    endpoint = db.session.get(WebhookEndpoint, (delivery.tenant_id, delivery.endpoint_id))
    if endpoint is None or not endpoint.enabled:
        raise EndpointDisabled()
    again = WebhookDelivery(
        tenant_id=delivery.tenant_id,
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        body=delivery.body,
        next_attempt_at=now,
        created_at=now,
        resent_from=delivery.id,
    )
    db.session.add(again)
    db.session.flush()
    from app.webhooks_out.jobs import send_delivery_job

    after_commit(send_delivery_job.enqueue, again.tenant_id, again.id)
    return again


# Sending ------------------------------------------------------------------------------------------------


def deliver(delivery_id: uuid.UUID, *, now: datetime) -> str:
    """One attempt at a due delivery; returns what happened. Idempotent (at-least-once jobs): the row is
    locked while we send, and a delivery that is done or not yet due is left alone."""
    from tenants.context import current_tenant_id

    delivery = db.session.scalar(
        db.select(WebhookDelivery)
        .where(WebhookDelivery.tenant_id == current_tenant_id(), WebhookDelivery.id == delivery_id)
        .with_for_update(skip_locked=True)
    )
    if delivery is None or delivery.status != "pending":
        return "skipped"
    if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=5):
        return "not due"
    # The endpoint is share-locked for the send, so the dashboard's FOR UPDATE (edit, secret, delete) waits
    # for it; while the dashboard holds that lock we leave the row to the sweep instead of waiting. (Waiting
    # here, holding the delivery's lock, while a delete cascades to that row, deadlocks.)
    endpoint = db.session.scalar(
        db.select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == delivery.tenant_id, WebhookEndpoint.id == delivery.endpoint_id)
        .with_for_update(read=True, key_share=True, skip_locked=True)
    )
    if endpoint is None:
        return "endpoint busy"
    if not endpoint.enabled:
        delivery.status, delivery.next_attempt_at = "failed", None
        delivery.error = "Not sent: the endpoint is turned off."
        return "endpoint disabled"
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = delivery.response_excerpt = delivery.error = None
    cfg = current_app.config
    try:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(reveal_secret(endpoint), int(now.timestamp()), delivery.body),
            "Fieldday-Event": delivery.event_type,
            "Fieldday-Delivery": str(delivery.id),
        }
        answer = guard.post(
            endpoint.url,
            delivery.body.encode(),
            headers,
            timeout_s=float(cfg.get("OUTGOING_WEBHOOKS_TIMEOUT_S", 5)),
            **_settings(),
        )
        delivery.response_status, delivery.response_excerpt = answer.status, answer.excerpt or None
        ok = 200 <= answer.status < 300
        if not ok:
            delivery.error = f"The receiver answered {answer.status}" + (
                " (we don't follow redirects)." if 300 <= answer.status < 400 else "."
            )
    except guard.UnsafeUrl as exc:
        ok, delivery.error = False, f"Refused: {exc}"[:500]
    except guard.SendFailed as exc:
        ok, delivery.error = False, str(exc)[:500]
    except SecretUnreadable as exc:
        ok, delivery.error = False, exc.message
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
        if endpoint.consecutive_failures:
            _set_failures(endpoint, reset=True)
        db.session.flush()
        return "delivered"
    if delivery.attempts > len(BACKOFF):
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        delivery.next_attempt_at = now + BACKOFF[delivery.attempts - 1]
        from app.webhooks_out.jobs import send_delivery_job

        after_commit(send_delivery_job.enqueue_at, delivery.next_attempt_at, delivery.tenant_id, delivery.id)
    failures = _set_failures(endpoint)
    if failures >= int(cfg.get("OUTGOING_WEBHOOKS_DISABLE_AFTER", 20)) and endpoint.enabled:
        disable(endpoint, now=now, reason=f"{failures} failed attempts in a row. Last: {delivery.error}")
    db.session.flush()
    return "failed" if delivery.status == "failed" else "will retry"


def _set_failures(endpoint: WebhookEndpoint, *, reset: bool = False) -> int:
    """Count in one UPDATE, so parallel sends to one endpoint don't lose counts."""
    value = 0 if reset else WebhookEndpoint.consecutive_failures + 1
    count = db.session.execute(
        db.update(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == endpoint.tenant_id, WebhookEndpoint.id == endpoint.id)
        .values(consecutive_failures=value)
        .returning(WebhookEndpoint.consecutive_failures)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    db.session.expire(endpoint, ["consecutive_failures"])
    return count


def disable(endpoint: WebhookEndpoint, *, now: datetime, reason: str) -> None:
    """Stop sending to a broken endpoint and tell the owners once (the e-mail job is idempotent)."""
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason[:500]
    db.session.flush()
    audit.record(
        endpoint.tenant_id,
        "webhook_endpoint.disabled",
        subject_type="webhook_endpoint",
        subject_id=endpoint.id,
        detail={"url": endpoint.url, "reason": reason[:500]},
    )
    from app.webhooks_out.jobs import notify_disabled_job

    after_commit(notify_disabled_job.enqueue, endpoint.tenant_id, endpoint.id)


def due_deliveries(*, now: datetime, limit: int = 200) -> list[uuid.UUID]:
    return list(
        db.session.scalars(
            db.select(WebhookDelivery.id)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )
