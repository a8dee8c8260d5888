"""Inbound webhooks on ``app.<base>``. No session, no CSRF token: each provider proves itself
with a signature over the raw body, and the work happens in a job (RELIABILITY §3)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import text

from app.extensions import csrf, db, limiter
from app.payments import services as payments
from tenants.context import tenant_context

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)


def _stripe_event(payload: bytes, secret_setting: str):
    """(event, None) when the signature checks out with that endpoint's secret and the event is of
    our mode (test/live); else (None, the answer to give Stripe)."""
    try:
        event = payments.verify_event(
            payload, request.headers.get("Stripe-Signature"), current_app.config[secret_setting]
        )
    except payments.BadEvent as exc:
        log.warning("stripe webhook %s refused: %s", request.path, exc)
        return None, (jsonify(error={"code": "bad_signature", "message": "Signature check failed."}), 400)
    if not payments.event_matches_mode(event):
        log.warning("stripe event %s has livemode=%s, not ours; ignored", event.id, event.livemode)
        return None, jsonify(received=True, ignored="livemode")
    return event, None


@bp.post("/webhooks/stripe/connect")
@csrf.exempt
@limiter.exempt
def stripe_connect():
    """Stripe's Connect endpoint: events of the businesses' own accounts. Verify, map the
    account to its business through the narrow lookup, record the event once, answer 2xx fast."""
    payload = request.get_data(cache=False)
    event, refused = _stripe_event(payload, "STRIPE_CONNECT_WEBHOOK_SECRET")
    if refused is not None:
        return refused
    account = getattr(event, "account", None)
    if not account:
        log.info("stripe event %s (%s) is not from a connected account; ignored", event.id, event.type)
        return jsonify(received=True, ignored="no account")
    tenant_id = db.session.execute(text("SELECT public.tenant_id_for_stripe_account(:a)"), {"a": account}).scalar()
    db.session.rollback()
    if tenant_id is None:
        log.warning("stripe event %s from unknown account %s; ignored", event.id, account)
        return jsonify(received=True, ignored="unknown account")
    body = json.loads(payload)
    if payments.event_names_other_tenant(body, tenant_id):
        log.warning("stripe event %s from %s names another business's booking; ignored", event.id, account)
        return jsonify(received=True, ignored="metadata")
    if event.type not in payments.HANDLED:
        return jsonify(received=True, ignored="type")
    with tenant_context(tenant_id, db.session):
        new = payments.record_event(tenant_id, event, body)
        if new:
            from app.jobs import after_commit
            from app.payments.jobs import process_stripe_event

            after_commit(process_stripe_event.enqueue, tenant_id, event.id)
        db.session.commit()
    return jsonify(received=True, duplicate=not new)


@bp.post("/webhooks/stripe/billing")
@csrf.exempt
@limiter.exempt
def stripe_billing():
    """Stripe's platform endpoint for Billing: the businesses' own Fieldday subscriptions. Its own
    secret; the Stripe customer names the business (narrow lookup); each event is recorded once and
    worked on in a job (docs/platform-and-billing.md)."""
    from app.billing import services as billing

    payload = request.get_data(cache=False)
    event, refused = _stripe_event(payload, "STRIPE_BILLING_WEBHOOK_SECRET")
    if refused is not None:
        return refused
    if getattr(event, "account", None):
        log.info("stripe event %s (%s) is a connected account's; ignored here", event.id, event.type)
        return jsonify(received=True, ignored="connected account")
    if event.type not in billing.HANDLED:
        return jsonify(received=True, ignored="type")
    body = json.loads(payload)
    obj = (body.get("data") or {}).get("object") or {}
    customer = billing.customer_of(obj)
    tenant_id = (
        db.session.execute(text("SELECT public.tenant_id_for_billing_customer(:c)"), {"c": customer}).scalar()
        if customer
        else None
    )
    db.session.rollback()
    if tenant_id is None:
        log.warning("stripe billing event %s for unknown customer %s; ignored", event.id, customer)
        return jsonify(received=True, ignored="unknown customer")
    if payments.event_names_other_tenant(body, tenant_id):
        log.warning("stripe billing event %s names another business in its metadata; ignored", event.id)
        return jsonify(received=True, ignored="metadata")
    with tenant_context(tenant_id, db.session):
        new = billing.record_event(tenant_id, event, body)
        if new:
            from app.billing.jobs import process_billing_event
            from app.jobs import after_commit

            after_commit(process_billing_event.enqueue, tenant_id, event.id)
        db.session.commit()
    return jsonify(received=True, duplicate=not new)


# Twilio -----------------------------------------------------------------------------------------

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _twilio_verified() -> bool:
    """X-Twilio-Signature over the URL Twilio called. Behind a TLS-terminating proxy that URL is
    https: ProxyFix (PROXY_FIX_HOPS) makes request.url say so (W1)."""
    from twilio.request_validator import RequestValidator

    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    return bool(token and signature) and RequestValidator(token).validate(
        request.url, request.form.to_dict(), signature
    )


def _twiml():
    return current_app.response_class(EMPTY_TWIML, mimetype="text/xml")


def _tenant_for_number(number: str):
    tenant_id = db.session.execute(text("SELECT public.tenant_id_for_sms_number(:n)"), {"n": number}).scalar()
    db.session.rollback()
    return tenant_id


@bp.post("/webhooks/twilio/sms")
@csrf.exempt
@limiter.exempt
def twilio_inbound():
    """A customer texted a business's number: thread it to them within that business only."""
    if not _twilio_verified():
        log.warning("twilio inbound refused: bad signature")
        return jsonify(error={"code": "bad_signature", "message": "Signature check failed."}), 403
    tenant_id = _tenant_for_number(request.form.get("To", ""))
    if tenant_id is None:
        log.warning("inbound text to a number no business owns; ignored")
        return _twiml()
    from app.messaging import services as messaging
    from tenants.models import Tenant

    with tenant_context(tenant_id, db.session):
        messaging.record_inbound(db.session.get(Tenant, tenant_id), request.form.to_dict())
        db.session.commit()
    return _twiml()


@bp.post("/webhooks/twilio/status")
@csrf.exempt
@limiter.exempt
def twilio_status():
    """Delivery updates for texts we sent (From is the business's number)."""
    if not _twilio_verified():
        log.warning("twilio status callback refused: bad signature")
        return jsonify(error={"code": "bad_signature", "message": "Signature check failed."}), 403
    tenant_id = _tenant_for_number(request.form.get("From", ""))
    if tenant_id is None:
        return ("", 204)
    from app.messaging import services as messaging

    with tenant_context(tenant_id, db.session):
        messaging.record_status(request.form.to_dict())
        db.session.commit()
    return ("", 204)
