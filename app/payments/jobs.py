"""Payment jobs: webhook events, the balance charge, and the e-mails that follow a payment.
Each is idempotent (RQ runs a job at least once): markers on the payment say what was sent."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from flask import render_template
from sqlalchemy import text

from app.booking.models import Booking
from app.extensions import db
from app.jobs import job
from app.mail import send_email
from app.payments import services, tokens
from app.payments.models import Payment
from app.urls import site_url
from tenants.models import Tenant

log = logging.getLogger(__name__)


@job("default")
def process_stripe_event(tenant_id: uuid.UUID, event_id: str) -> str:
    return services.process_event(event_id)


@job("default")
def charge_balance(tenant_id: uuid.UUID, booking_id: str, tip_cents: int = 0) -> str:
    return services.charge_balance(uuid.UUID(booking_id), tip_cents=int(tip_cents))


@job("default")
def process_unprocessed_events(tenant_id: uuid.UUID) -> int:
    import stripe

    ids = services.unprocessed_events()
    done = 0
    for event_id in ids:
        try:
            with db.session.begin_nested():  # one event Stripe can't answer for doesn't undo the rest
                services.process_event(event_id)
            done += 1
        except stripe.StripeError as exc:
            log.warning("stripe event %s not processed yet: %r", event_id, exc)
    return done


def sweep_stripe_events() -> int:
    """`flask cron`: webhook events recorded but never processed (Redis was down when they
    arrived, or a job gave up) get another run, fanned out per tenant (DESIGN §3)."""
    from datetime import timedelta

    before = datetime.now(UTC) - timedelta(minutes=2)
    ids = list(
        db.session.execute(text("SELECT public.tenants_with_unprocessed_stripe_events(:b)"), {"b": before}).scalars()
    )
    db.session.rollback()
    for tenant_id in ids:
        process_unprocessed_events.enqueue(tenant_id)
    return len(ids)


def _context(tenant_id: uuid.UUID, payment_id: str):
    payment = db.session.get(Payment, (tenant_id, uuid.UUID(payment_id)))
    if payment is None:
        return None
    booking = db.session.get(Booking, (tenant_id, payment.booking_id))
    tenant = db.session.get(Tenant, tenant_id)
    return payment, booking, tenant


def _claim(payment: Payment, marker: str) -> bool:
    """Lock the payment and check its sent-marker: a retried job never e-mails twice."""
    db.session.refresh(payment, with_for_update=True)
    return getattr(payment, marker) is None


@job("email")
def send_receipt(tenant_id: uuid.UUID, payment_id: str) -> bool:
    found = _context(tenant_id, payment_id)
    if found is None:
        return False
    payment, booking, tenant = found
    email = booking.customer.email
    if payment.status != "succeeded" or not email or not _claim(payment, "receipt_sent_at"):
        return False
    link = site_url(tenant.subdomain, f"/r/{tokens.make_receipt_token(tenant.id, booking.id)}")
    send_email(
        email,
        f"Receipt from {tenant.name} · booking {booking.reference}",
        render_template("email/receipt.txt", tenant=tenant, booking=booking, payment=payment, link=link),
        reply_to=tenant.contact_email,
    )
    payment.receipt_sent_at = datetime.now(UTC)
    return True


@job("email")
def send_pay_link(tenant_id: uuid.UUID, payment_id: str) -> bool:
    """The bank wants the customer to confirm the balance: send them the pay link, once.
    By text as well when we can (the month's allowance permitting); the owner can also copy the link."""
    found = _context(tenant_id, payment_id)
    if found is None:
        return False
    payment, booking, tenant = found
    link = site_url(tenant.subdomain, f"/pay/{tokens.make_pay_token(tenant.id, booking.id)}")
    if payment.status in ("action_required", "failed"):
        from app.messaging.services import QuotaReached, queue_text

        due = services.balance_due(booking)
        try:
            queue_text(
                tenant,
                booking.customer,
                "pay_link",
                f"{tenant.name}: your bank asked to confirm the {due / 100:,.2f} {booking.currency} left on booking "
                f"{booking.reference}. Pay securely here: {link}",
                booking_id=booking.id,
                dedupe_key=f"pay_link:{payment.id}",
                links=(link,),  # a short link in the text; the e-mail below keeps the full one
            )
        except QuotaReached:
            pass  # the month's texts are used up: the e-mail below still goes
    email = booking.customer.email
    if payment.status not in ("action_required", "failed") or not email or not _claim(payment, "customer_notified_at"):
        return False
    send_email(
        email,
        f"{tenant.name}: please confirm your payment for booking {booking.reference}",
        render_template(
            "email/pay_link.txt",
            tenant=tenant,
            booking=booking,
            payment=payment,
            due=services.balance_due(booking),
            link=link,
        ),
        reply_to=tenant.contact_email,
    )
    payment.customer_notified_at = datetime.now(UTC)
    return True


@job("email")
def send_late_refund_notice(tenant_id: uuid.UUID, payment_id: str) -> bool:
    found = _context(tenant_id, payment_id)
    if found is None:
        return False
    payment, booking, tenant = found
    email = booking.customer.email
    if not email or not _claim(payment, "customer_notified_at"):
        return False
    send_email(
        email,
        f"{tenant.name}: your deposit for booking {booking.reference} was refunded",
        render_template(
            "email/late_refund.txt", tenant=tenant, booking=booking, payment=payment, link=site_url(tenant.subdomain)
        ),
        reply_to=tenant.contact_email,
    )
    payment.customer_notified_at = datetime.now(UTC)
    return True


def enqueue_balance_charge(booking: Booking, tip_cents: int = 0) -> None:
    from app.jobs import after_commit

    after_commit(charge_balance.enqueue, booking.tenant_id, booking.id, tip_cents)
