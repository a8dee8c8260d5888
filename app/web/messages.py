"""Texts with customers in the dashboard: threads by customer, replies, and the business's
Twilio number (dashboard blueprint)."""

from __future__ import annotations

import uuid

import phonenumbers
from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.customers.models import Customer
from app.errors import NotFound
from app.extensions import db
from app.messaging import services as messaging
from app.messaging.models import Message
from app.web.dashboard import bp


@bp.get("/messages")
def messages():
    latest = (
        db.select(Message.customer_id, db.func.max(Message.created_at).label("last"))
        .where(Message.customer_id.is_not(None))
        .group_by(Message.customer_id)
        .subquery()
    )
    threads = db.session.execute(
        db.select(Customer, latest.c.last)
        .join(latest, (Customer.id == latest.c.customer_id) & (Customer.tenant_id == g.tenant.id))
        .order_by(latest.c.last.desc())
        .limit(100)
    ).all()
    selected = None
    conversation: list[Message] = []
    raw = request.args.get("customer")
    if raw:
        try:
            selected = db.session.get(Customer, (g.tenant.id, uuid.UUID(raw)))
        except ValueError:
            selected = None
        if selected is None:
            raise NotFound("No such customer.")
    elif threads:
        selected = threads[0][0]
    if selected is not None:
        conversation = list(
            db.session.scalars(
                db.select(Message).where(Message.customer_id == selected.id).order_by(Message.created_at).limit(200)
            )
        )
    return render_template(
        "dashboard/messages.html",
        threads=threads,
        selected=selected,
        conversation=conversation,
        texts_on=messaging.texts_enabled(g.tenant),
        sms_used=messaging.sms_used(g.tenant),
        sms_allowance=messaging.sms_allowance(g.tenant),
    )


@bp.post("/messages/<uuid:customer_id>")
def reply(customer_id: uuid.UUID):
    customer = db.session.get(Customer, (g.tenant.id, customer_id))
    if customer is None:
        raise NotFound("No such customer.")
    body = " ".join((request.form.get("body") or "").split())
    back = redirect(url_for("dashboard.messages", customer=customer.id))
    if not body:
        flash("Write a message first.", "error")
        return back
    if len(body) > 1600:
        flash("That message is too long for a text (1,600 characters at most).", "error")
        return back
    if not customer.reachable:
        flash(f"{customer.name} asked to be deleted or was anonymised: they can't be texted.", "error")
        return back
    if customer.sms_opted_out_at is not None:
        flash(f"{customer.name} texted STOP: they get no texts until they text START.", "error")
        return back
    try:
        message = messaging.queue_text(g.tenant, customer, "reply", body, sent_by=current_user.id)
    except messaging.QuotaReached as exc:
        flash(str(exc), "error")
        return back
    if message is None:
        flash("Texts are off: add your Twilio number under Integrations, and the customer needs a mobile.", "error")
        return back
    db.session.commit()
    flash("Sent.", "success")
    return back


@bp.post("/integrations/sms")
def sms_number():
    """The business's Twilio number: must be one our Twilio account owns."""
    from twilio.base.exceptions import TwilioException

    tenant = g.tenant
    hour = request.form.get("reminder_hour", "")
    if hour in {str(h) for h in range(6, 22)}:
        tenant.reminder_hour = int(hour)
    raw = (request.form.get("sms_number") or "").strip()
    if not raw:
        tenant.sms_number = None
        db.session.commit()
        flash("Texting is off.", "info")
        return redirect(url_for("dashboard.integrations"))
    try:
        parsed = phonenumbers.parse(raw, "US")
        if not phonenumbers.is_valid_number(parsed):
            raise phonenumbers.NumberParseException(0, "invalid")
    except phonenumbers.NumberParseException:
        flash("Enter the number as +1 512 555 0100.", "error")
        return redirect(url_for("dashboard.integrations"))
    number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    try:
        owned = messaging.client().incoming_phone_numbers.list(phone_number=number, limit=1)
    except TwilioException:
        flash("We couldn't reach Twilio to check that number. Please try again.", "error")
        return redirect(url_for("dashboard.integrations"))
    if not owned:
        flash(f"{number} isn't a number in our Twilio account.", "error")
        return redirect(url_for("dashboard.integrations"))
    # Numbers are assigned to businesses by the platform (Twilio friendly name "fieldday:<subdomain>"),
    # so no business can claim another's number and read its customers' texts.
    if owned[0].friendly_name != f"fieldday:{tenant.subdomain}":
        flash(f"{number} isn't assigned to your business yet. Ask Fieldday support to assign a number.", "error")
        return redirect(url_for("dashboard.integrations"))
    other = db.session.execute(db.text("SELECT public.tenant_id_for_sms_number(:n)"), {"n": number}).scalar()
    if other is not None and other != tenant.id:
        flash("That number already belongs to another business.", "error")
        return redirect(url_for("dashboard.integrations"))
    tenant.sms_number = number
    audit.record(
        tenant.id,
        "tenant.sms_number_set",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail={"number": number},
    )
    db.session.commit()
    flash(f"Texts now go out from {number}.", "success")
    return redirect(url_for("dashboard.integrations"))
