"""Payments in the dashboard: the payments list, cash and check, charging the balance, pay links,
refunds, and the Stripe connection with deposit rules (dashboard blueprint)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import stripe
from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.booking import services as booking_services
from app.booking.models import Booking
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from app.payments import rules, tokens
from app.payments import services as payments
from app.payments.jobs import enqueue_balance_charge, send_pay_link
from app.payments.models import KIND_LABELS, METHOD_LABELS, STATUS_LABELS, Payment
from app.urls import app_url, site_url
from app.web.dashboard import bp, roles

log = logging.getLogger(__name__)


def _stripe_trouble(exc: Exception) -> str:
    log.warning("stripe call failed: %r", exc)
    return "We couldn't reach Stripe just now. Nothing was charged or refunded; please try again in a minute."


# The payments list ---------------------------------------------------------------------------


def _local_day(raw: str | None, default: date) -> date:
    try:
        return date.fromisoformat(raw) if raw else default
    except ValueError:
        return default


@bp.get("/payments")
def payments_list():
    tz = ZoneInfo(g.tenant.time_zone)
    today = datetime.now(UTC).astimezone(tz).date()
    first = _local_day(request.args.get("from"), today - timedelta(days=29))
    last = _local_day(request.args.get("to"), today)
    if last < first:
        first, last = last, first
    method = request.args.get("method") if request.args.get("method") in METHOD_LABELS else ""
    status = request.args.get("status") if request.args.get("status") in STATUS_LABELS else ""
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tz).astimezone(UTC)
    stmt = (
        db.select(Payment)
        .join(Booking, (Booking.tenant_id == Payment.tenant_id) & (Booking.id == Payment.booking_id))
        .where(Payment.created_at >= start, Payment.created_at < end)
        .order_by(Payment.created_at.desc())
    )
    if method:
        stmt = stmt.where(Payment.method == method)
    if status:
        stmt = stmt.where(Payment.status == status)
    rows = list(db.session.scalars(stmt.limit(501)))
    truncated = len(rows) > 500
    rows = rows[:500]
    paid = [p for p in rows if p.status == "succeeded"]
    totals = {
        "collected": sum(p.total_cents for p in paid),
        "tips": sum(p.tip_cents for p in paid),
        "refunded": sum(p.refunded_cents for p in paid),
        "fees": sum(p.application_fee_cents for p in paid if p.method == "card"),
        "count": len(paid),
    }
    totals["net"] = totals["collected"] - totals["refunded"]
    return render_template(
        "dashboard/payments.html",
        payments=rows,
        totals=totals,
        truncated=truncated,
        filters={"from": first.isoformat(), "to": last.isoformat(), "method": method, "status": status},
        method_labels=METHOD_LABELS,
        status_labels=STATUS_LABELS,
        kind_labels=KIND_LABELS,
    )


# On a booking ---------------------------------------------------------------------------------


def _back(booking_id: uuid.UUID):
    return redirect(url_for("dashboard.booking_detail", booking_id=booking_id) + "#payments")


def _tip(raw: str | None) -> int:
    return rules.parse_money(raw, "tip", allow_zero=True) if (raw or "").strip() else 0


@bp.post("/bookings/<uuid:booking_id>/payments")
def record_payment(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id, for_update=True)
    try:
        amount = rules.parse_money(request.form.get("amount"), "amount", allow_zero=True)
        payment = payments.record_manual(
            booking,
            method=request.form.get("method", ""),
            amount_cents=amount,
            tip_cents=_tip(request.form.get("tip")),
            note=request.form.get("note"),
            actor_id=current_user.id,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
        return _back(booking_id)
    audit.record(
        g.tenant.id,
        "payment.recorded",
        actor_id=current_user.id,
        subject_type="booking",
        subject_id=booking.id,
        detail={"method": payment.method, "amount_cents": payment.amount_cents, "tip_cents": payment.tip_cents},
    )
    from app.jobs import after_commit

    after_commit(payments.send_receipt_later, payment.tenant_id, payment.id)
    db.session.commit()
    flash(f"{payment.method_label} payment of {payment.total_cents / 100:,.2f} recorded.", "success")
    return _back(booking_id)


@bp.post("/bookings/<uuid:booking_id>/charge")
def charge_balance(booking_id: uuid.UUID):
    """Charge the card on file now (the same job that runs at completion)."""
    booking = booking_services.get_booking(booking_id, for_update=True)
    try:
        tip = _tip(request.form.get("tip"))
    except ValidationFailed as exc:
        flash(next(iter(exc.errors.values())), "error")
        return _back(booking_id)
    if payments.saved_card(booking) is None:
        flash("There's no card on file for this booking. Send a pay link or record cash or check.", "error")
        return _back(booking_id)
    enqueue_balance_charge(booking, tip)
    db.session.commit()
    flash("Charging the card on file… this page shows the result in a moment.", "info")
    return _back(booking_id)


@bp.post("/bookings/<uuid:booking_id>/pay-link")
def send_booking_pay_link(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id)
    due = payments.balance_due(booking)
    if due == 0:
        flash("Nothing is owed on this booking.", "info")
        return _back(booking_id)
    link = site_url(g.tenant.subdomain, f"/pay/{tokens.make_pay_token(g.tenant.id, booking.id)}")
    last = next(
        (p for p in reversed(payments.payments_for(booking)) if p.status in ("action_required", "failed")), None
    )
    if booking.customer.email and last is not None and last.customer_notified_at is None:
        from app.jobs import after_commit

        after_commit(send_pay_link.enqueue, booking.tenant_id, last.id)
        db.session.commit()
        flash(f"Pay link e-mailed to {booking.customer.email}. You can also send it yourself: {link}", "success")
    else:
        flash(f"Send this pay link to the customer: {link}", "info")
    return _back(booking_id)


@bp.post("/payments/<uuid:payment_id>/refund")
def refund_payment(payment_id: uuid.UUID):
    payment = db.session.get(Payment, (g.tenant.id, payment_id))
    if payment is None:
        from app.errors import NotFound

        raise NotFound("No such payment.")
    booking_id = payment.booking_id
    try:
        amount = rules.parse_money(request.form.get("amount"), "amount")
        refund, created = payments.refund(
            payment_id,
            amount,
            request_key=request.form.get("request_key", ""),
            reason=request.form.get("reason"),
            actor_id=current_user.id,
        )
    except (ValidationFailed, FielddayError) as exc:
        db.session.rollback()
        message = next(iter(exc.errors.values())) if isinstance(exc, ValidationFailed) else exc.message
        flash(message, "error")
        return _back(booking_id)
    except stripe.StripeError as exc:
        db.session.rollback()
        flash(_stripe_trouble(exc), "error")
        return _back(booking_id)
    if created:
        audit.record(
            g.tenant.id,
            "payment.refunded",
            actor_id=current_user.id,
            subject_type="booking",
            subject_id=booking_id,
            detail={"payment_id": str(payment_id), "amount_cents": refund.amount_cents},
        )
    db.session.commit()
    if created:
        flash(f"Refunded {refund.amount_cents / 100:,.2f}.", "success")
    else:
        flash("That refund was already made (the button was pressed twice).", "info")
    return _back(booking_id)


def booking_payment_facts(booking: Booking) -> dict:
    """What the booking page shows about money."""
    rows = payments.payments_for(booking)
    card = payments.saved_card(booking)
    due = payments.balance_due(booking, rows)
    card_attempts = [p for p in rows if p.kind == "balance" and p.method == "card" and not p.checkout_url]
    # Completing queued a charge on the saved card that hasn't reported back yet.
    charging = (
        booking.status == "completed"
        and due >= rules.STRIPE_MIN_CENTS
        and card is not None
        and g.tenant.takes_card_payments
        and (not card_attempts or card_attempts[-1].status == "pending")
    )
    return {
        "payments": rows,
        "due": due,
        "paid": payments.paid_total(booking, rows),
        "card": card,
        "charging": charging,
        "request_key": uuid.uuid4().hex,
    }


# Integrations: Stripe ---------------------------------------------------------------------------


@bp.get("/integrations")
def integrations():
    return render_template(
        "dashboard/integrations.html",
        rule_kinds=rules.RULE_KINDS,
        request_key=uuid.uuid4().hex,
        errors={},
        form=None,
        fee_pct=_fee_pct(),
    )


def _fee_pct() -> float:
    from tenants.plans import get_plan

    return get_plan(g.tenant.plan).platform_fee_bps / 100


@bp.post("/integrations/stripe/connect")
@roles("owner")
def stripe_connect():
    tenant = g.tenant
    try:
        url = payments.start_onboarding(
            tenant,
            request_key=request.form.get("request_key", "")[:64] or uuid.uuid4().hex,
            refresh_url=app_url(url_for("dashboard.stripe_refresh")),
            return_url=app_url(url_for("dashboard.stripe_return")),
        )
    except (stripe.StripeError, FielddayError) as exc:
        db.session.rollback()
        flash(exc.message if isinstance(exc, FielddayError) else _stripe_trouble(exc), "error")
        return redirect(url_for("dashboard.integrations"))
    audit.record(
        tenant.id,
        "stripe.onboarding_started",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail={"account": tenant.stripe_account_id},
    )
    db.session.commit()
    return redirect(url, code=303)  # never logged: an Account Link is a bearer credential


@bp.get("/integrations/stripe/refresh")
@roles("owner")
def stripe_refresh():
    """Stripe sends the owner here when a link expired or was used: mint a new one. Behind the
    login, so nobody without a session gets a link (S7)."""
    tenant = g.tenant
    if not tenant.stripe_account_id:
        return redirect(url_for("dashboard.integrations"))
    try:
        url = payments.account_link(
            tenant,
            refresh_url=app_url(url_for("dashboard.stripe_refresh")),
            return_url=app_url(url_for("dashboard.stripe_return")),
        )
    except stripe.StripeError as exc:
        flash(_stripe_trouble(exc), "error")
        return redirect(url_for("dashboard.integrations"))
    return redirect(url, code=303)


@bp.get("/integrations/stripe/return")
@roles("owner")
def stripe_return():
    tenant = g.tenant
    try:
        payments.refresh_account(tenant)
    except stripe.StripeError as exc:
        db.session.rollback()
        flash(_stripe_trouble(exc), "error")
        return redirect(url_for("dashboard.integrations"))
    db.session.commit()
    if tenant.stripe_charges_enabled:
        flash("Stripe is connected: you can take deposits and card payments.", "success")
    elif tenant.stripe_account_id:
        flash("Stripe still needs a few details before you can take payments. Continue when you're ready.", "info")
    return redirect(url_for("dashboard.integrations"))


@bp.post("/integrations/stripe/disconnect")
@roles("owner")
def stripe_disconnect():
    tenant = g.tenant
    account = tenant.stripe_account_id
    payments.disconnect(tenant)
    audit.record(
        tenant.id,
        "stripe.disconnected",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail={"account": account},
    )
    db.session.commit()
    flash("Stripe is disconnected. New online bookings won't ask for a deposit.", "info")
    return redirect(url_for("dashboard.integrations"))


@bp.post("/integrations/deposits")
def deposit_rules():
    tenant = g.tenant
    try:
        payments.set_deposit_rule(
            tenant,
            enabled=request.form.get("deposits_enabled") == "on",
            kind=request.form.get("deposit_kind", ""),
            raw_value=request.form.get("deposit_value", ""),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return render_template(
            "dashboard/integrations.html",
            rule_kinds=rules.RULE_KINDS,
            request_key=uuid.uuid4().hex,
            errors=exc.errors,
            form=request.form,
            fee_pct=_fee_pct(),
        ), 422
    audit.record(
        tenant.id,
        "tenant.deposit_rule_changed",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail={"enabled": tenant.deposits_enabled, "kind": tenant.deposit_kind, "value": tenant.deposit_value},
    )
    db.session.commit()
    flash("Deposit rule saved.", "success")
    return redirect(url_for("dashboard.integrations"))
