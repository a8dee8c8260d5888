"""Payments: Stripe Connect onboarding, deposits through Checkout, the balance charged off-session
at completion, pay links, cash and check, refunds, and the webhook events that drive them
(DESIGN §6, RELIABILITY §3).

Money is integer cents end to end. Every create call on Stripe carries a deterministic
idempotency key derived from our own rows, so a retried job or a double click never moves
money twice. Locks are always taken booking first, then payment.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import stripe
from sqlalchemy.exc import IntegrityError

from app.booking import services as booking_services
from app.booking.models import Booking
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.payments import rules
from app.payments.errors import PaymentFailed, PaymentsUnavailable
from app.payments.models import Payment, Refund, StripeEvent
from app.payments.stripe_api import client, livemode, on_account
from tenants.models import Tenant
from tenants.plans import get_plan

log = logging.getLogger(__name__)

# Stripe's Checkout Sessions live 30 minutes to 24 hours; a deposit's session outlives a short
# hold, so the hold-expiry job expires it explicitly before freeing the slot.
CHECKOUT_LIFETIME = timedelta(hours=23)


def _now() -> datetime:
    return datetime.now(UTC)


def _current_tenant() -> Tenant:
    from tenants.context import current_tenant_id

    return db.session.get(Tenant, current_tenant_id())


def _field(obj, name, default=None):
    """Read a field from a StripeObject or a plain dict (expanded objects may be either)."""
    if obj is None:
        return default
    try:
        value = obj[name]
    except (KeyError, TypeError):
        value = getattr(obj, name, default)
    return default if value is None else value


def _metadata_of(obj) -> dict:
    meta = _field(obj, "metadata") or {}
    return meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)


def _id(obj) -> str | None:
    return obj if isinstance(obj, str) else _field(obj, "id")


# Onboarding -------------------------------------------------------------------------------------


def start_onboarding(tenant: Tenant, *, request_key: str, refresh_url: str, return_url: str) -> str:
    """Create the business's Standard account once, then mint a fresh Account Link (single-use,
    short-lived). The tenant row is locked so a double click creates one account."""
    db.session.flush()
    db.session.refresh(tenant, with_for_update=True)
    if not tenant.stripe_account_id:
        account = client().v1.accounts.create(
            params={
                "type": "standard",
                **({"email": tenant.contact_email} if tenant.contact_email else {}),
                "metadata": {"tenant_id": str(tenant.id), "subdomain": tenant.subdomain},
            },
            options={"idempotency_key": f"account:{tenant.id}:{request_key}"},
        )
        tenant.stripe_account_id = account.id
        tenant.stripe_charges_enabled = bool(_field(account, "charges_enabled", False))
        tenant.stripe_details_submitted = bool(_field(account, "details_submitted", False))
        tenant.stripe_connected_at = _now()
        db.session.flush()
    return account_link(tenant, refresh_url=refresh_url, return_url=return_url)


def account_link(tenant: Tenant, *, refresh_url: str, return_url: str) -> str:
    # No idempotency key on purpose: each visit to refresh_url must mint a new link.
    link = client().v1.account_links.create(
        params={
            "account": tenant.stripe_account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": "account_onboarding",
        }
    )
    return link.url


def refresh_account(tenant: Tenant) -> Tenant:
    """Read the connected account back (return_url, account.updated) and keep its flags."""
    if not tenant.stripe_account_id:
        return tenant
    account = client().v1.accounts.retrieve(tenant.stripe_account_id)
    _apply_account(tenant, account)
    return tenant


def _apply_account(tenant: Tenant, account) -> None:
    tenant.stripe_charges_enabled = bool(_field(account, "charges_enabled", False))
    tenant.stripe_details_submitted = bool(_field(account, "details_submitted", False))
    db.session.flush()


def disconnect(tenant: Tenant) -> None:
    """Forget the connected account. Payments already taken stay on it (and in our records);
    new bookings stop asking for deposits until a business connects again."""
    tenant.stripe_account_id = None
    tenant.stripe_charges_enabled = False
    tenant.stripe_details_submitted = False
    tenant.stripe_connected_at = None
    db.session.flush()


def set_deposit_rule(tenant: Tenant, *, enabled: bool, kind: str, raw_value: str) -> None:
    kind, value = rules.parse_rule(kind, raw_value)
    tenant.deposits_enabled = enabled
    tenant.deposit_kind, tenant.deposit_value = kind, value
    db.session.flush()


# Balances -------------------------------------------------------------------------------------


def payments_for(booking: Booking) -> list[Payment]:
    return list(
        db.session.scalars(
            db.select(Payment).where(Payment.booking_id == booking.id).order_by(Payment.created_at, Payment.attempt)
        )
    )


def balance_due(booking: Booking, payments: list[Payment] | None = None) -> int:
    """What the customer still owes. Refunds count against what was paid; tips never reduce it."""
    payments = payments_for(booking) if payments is None else payments
    paid = sum(p.amount_cents - p.refunded_cents for p in payments if p.status == "succeeded")
    return min(booking.price_cents, max(0, booking.price_cents - paid))


def paid_total(booking: Booking, payments: list[Payment] | None = None) -> int:
    payments = payments_for(booking) if payments is None else payments
    return sum(p.total_cents - p.refunded_cents for p in payments if p.status == "succeeded")


def refresh_payment_status(booking: Booking) -> str:
    payments = payments_for(booking)
    succeeded = [p for p in payments if p.status == "succeeded"]
    due = balance_due(booking, payments)
    net = paid_total(booking, payments)
    last_balance = next((p for p in reversed(payments) if p.kind == "balance" and p.method == "card"), None)
    if succeeded and net <= 0 and any(p.refunded_cents for p in succeeded):
        status = "refunded"
    elif succeeded and due == 0:
        status = "paid"
    elif last_balance is not None and last_balance.status in ("action_required", "failed"):
        status = last_balance.status
    elif net > 0:
        status = "partly_paid"
    else:
        status = "unpaid"
    booking.payment_status = status
    db.session.flush()
    return status


def saved_card(booking: Booking) -> Payment | None:
    """The card the customer paid the deposit (or an earlier balance) with, kept for later."""
    return db.session.scalar(
        db.select(Payment)
        .where(
            Payment.booking_id == booking.id,
            Payment.method == "card",
            Payment.status == "succeeded",
            Payment.stripe_customer_id.is_not(None),
            Payment.stripe_payment_method_id.is_not(None),
        )
        .order_by(Payment.paid_at.desc())
        .limit(1)
    )


def _lock_payment(payment_id: uuid.UUID) -> tuple[Booking, Payment]:
    """Booking first, then payment: the one lock order every path uses."""
    from tenants.context import current_tenant_id

    tid = current_tenant_id()
    payment = db.session.get(Payment, (tid, payment_id))
    if payment is None:
        raise NotFound("No such payment.")
    booking = booking_services.get_booking(payment.booking_id, for_update=True)
    payment = db.session.scalar(
        db.select(Payment).where(Payment.tenant_id == tid, Payment.id == payment_id).with_for_update()
    )
    db.session.refresh(payment)
    return booking, payment


def _next_attempt(booking: Booking) -> int:
    last = db.session.scalar(
        db.select(db.func.max(Payment.attempt)).where(Payment.booking_id == booking.id, Payment.kind == "balance")
    )
    return (last or 0) + 1


PAYABLE = ("confirmed", "in_progress", "completed", "no_show")


def _attempt_id(booking: Booking, attempt: int) -> uuid.UUID:
    """A balance attempt's id, derived from the booking and attempt number: an RQ retry rebuilds
    the same row, so the metadata sent with the same idempotency key is the same too."""
    return uuid.uuid5(booking.id, f"balance:{attempt}")


def _balance_attempt(
    tenant: Tenant, booking: Booking, due: int, *, tip_cents: int = 0, card: Payment | None = None
) -> Payment:
    """The pending row for one try at the balance (off-session with ``card``, or by pay link)."""
    attempt = _next_attempt(booking)
    payment = Payment(
        id=_attempt_id(booking, attempt),
        tenant_id=tenant.id,
        booking_id=booking.id,
        kind="balance",
        method="card",
        status="pending",
        amount_cents=due,
        tip_cents=tip_cents,
        currency=booking.currency,
        application_fee_cents=rules.platform_fee(tenant.plan, due + tip_cents),
        attempt=attempt,
        stripe_account_id=tenant.stripe_account_id,
    )
    if card is not None:
        payment.stripe_customer_id = card.stripe_customer_id
        payment.stripe_payment_method_id = card.stripe_payment_method_id
        payment.card_brand, payment.card_last4 = card.card_brand, card.card_last4
    db.session.add(payment)
    db.session.flush()
    return payment


def _open_session(
    booking: Booking,
    payment: Payment,
    *,
    label: str,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
    extra: dict,
) -> None:
    """A Checkout Session on the connected account for ``payment``: a direct charge with our fee,
    metadata naming business, booking and payment. ``extra`` adds the deposit's or pay link's own
    parameters (``payment_intent_data`` entries are merged)."""
    intent_data = {
        "application_fee_amount": payment.application_fee_cents,
        "description": f"{label} for booking {booking.reference}",
        "metadata": _metadata(booking, payment),
        **extra.pop("payment_intent_data", {}),
    }
    params = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": booking.currency.lower(),
                    "unit_amount": payment.amount_cents,
                    "product_data": {"name": f"{label} · {_describe(booking)}"[:250]},
                },
                "quantity": 1,
            }
        ],
        "payment_intent_data": intent_data,
        "metadata": _metadata(booking, payment),
        "client_reference_id": str(booking.id),
        "success_url": success_url,
        "cancel_url": cancel_url,
        **extra,
    }
    session = client().v1.checkout.sessions.create(
        params=params, options=on_account(payment.stripe_account_id, idempotency_key)
    )
    payment.stripe_checkout_session_id = session.id
    payment.checkout_url = session.url


def _expire_balance_sessions(booking: Booking) -> None:
    """Close the booking's open pay-link sessions before money moves another way (cash, the saved
    card, a new link), so the customer can't pay the same balance twice."""
    open_links = db.session.scalars(
        db.select(Payment).where(
            Payment.booking_id == booking.id,
            Payment.kind == "balance",
            Payment.status == "pending",
            Payment.stripe_checkout_session_id.is_not(None),
        )
    ).all()
    for payment in open_links:
        try:
            client().v1.checkout.sessions.expire(
                payment.stripe_checkout_session_id,
                options=on_account(payment.stripe_account_id, f"expire:{payment.stripe_checkout_session_id}"),
            )
        except stripe.InvalidRequestError:
            session = _retrieve_session(payment)  # completed meanwhile: record it, don't lose it
            _apply_session(booking, payment, session, now=_now())
            continue
        payment.status = "canceled"
    db.session.flush()


def _describe(booking: Booking) -> str:
    return ", ".join(i.name for i in booking.items)[:200]


def _metadata(booking: Booking, payment: Payment) -> dict:
    return {
        "tenant_id": str(booking.tenant_id),
        "booking_id": str(booking.id),
        "payment_id": str(payment.id),
        "kind": payment.kind,
        "reference": booking.reference,
    }


# Deposit at booking --------------------------------------------------------------------------


def require_deposit(tenant: Tenant, booking: Booking) -> Payment | None:
    """Called by booking right after it creates a pending booking: the deposit's row."""
    if booking.deposit_cents <= 0:
        return None
    payment = Payment(
        tenant_id=tenant.id,
        booking_id=booking.id,
        kind="deposit",
        method="card",
        status="pending",
        amount_cents=booking.deposit_cents,
        currency=booking.currency,
        application_fee_cents=rules.platform_fee(tenant.plan, booking.deposit_cents),
        stripe_account_id=tenant.stripe_account_id,
    )
    db.session.add(payment)
    db.session.flush()
    return payment


def deposit_payment(booking: Booking) -> Payment | None:
    return db.session.scalar(db.select(Payment).where(Payment.booking_id == booking.id, Payment.kind == "deposit"))


def open_deposit_checkout(tenant: Tenant, booking: Booking, *, success_url: str, cancel_url: str) -> Payment:
    """A Checkout Session on the connected account for the booking's deposit, saving the card for
    the balance. Reuses the open session; the key and every parameter derive from stored rows,
    so a retry after a lost response gets the same session back."""
    payment = deposit_payment(booking)
    if payment is None or booking.status != "pending":
        raise PaymentsUnavailable("This booking has no deposit waiting.")
    if payment.checkout_url and payment.status == "pending":
        return payment
    if payment.status != "pending":
        raise PaymentsUnavailable("This deposit is already settled.")
    if not payment.stripe_account_id:
        raise PaymentsUnavailable("This business can't take card payments right now. Please call us.")
    if booking.hold_expires_at is not None and booking.hold_expires_at <= _now():
        raise PaymentsUnavailable("Your hold on this time has run out. Please pick a time again.")
    # Stable across retries (the idempotency key needs the same parameters) and long enough for
    # Stripe (30 min to 24 h): the hold-expiry job expires the session when the hold ends.
    expires = payment.created_at + CHECKOUT_LIFETIME
    extra = {
        "customer_creation": "always",
        "payment_intent_data": {"setup_future_usage": "off_session"},
        "expires_at": int(expires.timestamp()),
    }
    if booking.customer.email:
        extra["customer_email"] = booking.customer.email
    _open_session(
        booking,
        payment,
        label="Deposit",
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=f"deposit:{booking.id}",
        extra=extra,
    )
    db.session.flush()
    return payment


def _retrieve_session(payment: Payment):
    return client().v1.checkout.sessions.retrieve(
        payment.stripe_checkout_session_id,
        params={"expand": ["payment_intent", "payment_intent.payment_method"]},
        options=on_account(payment.stripe_account_id),
    )


def fulfil_checkout(session_id: str, *, now: datetime | None = None) -> Payment | None:
    """A Checkout Session may be complete: re-read it from Stripe and apply it. Called from the
    webhook job, the success page and the hold-expiry job; safe to call any number of times."""
    payment = db.session.scalar(db.select(Payment).where(Payment.stripe_checkout_session_id == session_id))
    if payment is None:
        log.warning("checkout session %s matches no payment of this business; ignored", session_id)
        return None
    booking, payment = _lock_payment(payment.id)
    if payment.status == "succeeded":
        return payment
    session = _retrieve_session(payment)
    _apply_session(booking, payment, session, now=now or _now())
    return payment


def _apply_session(booking: Booking, payment: Payment, session, *, now: datetime) -> bool:
    """Record a completed session's payment; confirm (or refund) the booking. True if paid."""
    if _metadata_of(session).get("tenant_id") != str(payment.tenant_id):
        log.warning("checkout session %s names another business; ignored", _id(session))
        return False
    if _field(session, "status") != "complete" or _field(session, "payment_status") != "paid":
        return False
    owed_before = balance_due(booking)  # before this payment counts
    intent = _field(session, "payment_intent")
    method = _field(intent, "payment_method") if not isinstance(intent, str) else None
    card = _field(method, "card") if not isinstance(method, str) else None
    payment.status = "succeeded"
    payment.paid_at = now
    payment.stripe_payment_intent_id = _id(intent)
    payment.stripe_customer_id = _id(_field(session, "customer"))
    payment.stripe_payment_method_id = _id(method)
    payment.card_brand = _field(card, "brand")
    payment.card_last4 = _field(card, "last4")
    total = int(_field(session, "amount_total", payment.total_cents))
    payment.amount_cents = max(0, total - payment.tip_cents)
    db.session.flush()
    if payment.kind == "deposit":
        _apply_deposit(booking, payment, now=now)
    elif owed_before == 0:
        # Paid by link after the balance was settled another way: give it back, once.
        _refund_whole(booking, payment, "The balance was already paid when this payment arrived.")
    refresh_payment_status(booking)
    if not payment.refunded_cents:  # a late deposit given back gets its own notice instead
        _after_commit(send_receipt_later, payment)
    return True


def _apply_deposit(booking: Booking, payment: Payment, *, now: datetime) -> None:
    if booking.status == "pending":
        booking_services.transition(
            booking, "confirmed", actor_type="system", detail={"reason": "deposit paid", "payment_id": str(payment.id)}
        )
        return
    if booking.status == "expired" and booking.starts_at > now:
        # Paid after the hold ran out. If the time is still free, keep the booking; the exclusion
        # constraint decides, so a slot someone else took is never double-booked.
        try:
            with db.session.begin_nested():
                booking.status = "confirmed"
                booking.hold_expires_at = None
                db.session.flush()
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != "23P01":
                raise
            db.session.refresh(booking)
        else:
            booking_services.record_event(
                booking,
                "expired",
                "confirmed",
                "system",
                None,
                {"reason": "deposit paid after the hold; time still free"},
            )
            return
    if booking.status in ("expired", "canceled", "no_show"):
        _refund_late_deposit(booking, payment)


def _refund_late_deposit(booking: Booking, payment: Payment) -> None:
    """The deposit arrived for a booking that no longer holds its time: give it back, once."""
    _refund_whole(booking, payment, "The time was no longer available when the deposit arrived.", notify=True)


def _refund_whole(booking: Booking, payment: Payment, reason: str, *, notify: bool = False) -> None:
    key = f"late-{payment.kind}:{payment.id}"
    if db.session.scalar(db.select(Refund.id).where(Refund.request_key == key)):
        return
    refund = client().v1.refunds.create(
        params={
            "payment_intent": payment.stripe_payment_intent_id,
            "refund_application_fee": get_plan(_current_tenant().plan).refund_platform_fee,
            "metadata": {"booking_id": str(booking.id), "reason": reason[:200]},
        },
        options=on_account(payment.stripe_account_id, key),
    )
    amount = int(_field(refund, "amount", payment.refundable_cents))
    db.session.add(
        Refund(
            tenant_id=payment.tenant_id,
            payment_id=payment.id,
            amount_cents=amount,
            status="succeeded",
            reason=reason,
            request_key=key,
            stripe_refund_id=refund.id,
        )
    )
    payment.refunded_cents = min(payment.total_cents, payment.refunded_cents + amount)
    db.session.flush()
    if notify:
        booking_services.record_event(
            booking,
            booking.status,
            booking.status,
            "system",
            None,
            {"refunded_cents": amount, "reason": "late deposit"},
        )
        _after_commit(notify_late_refund_later, payment)


def settle_before_expiry(booking: Booking, *, now: datetime) -> bool:
    """The hold-expiry job asks before freeing a slot (RELIABILITY D4): expire the deposit's open
    Checkout Session first; if the customer already paid, confirm instead. True when the booking
    must not expire."""
    payment = deposit_payment(booking)
    if payment is None or payment.status != "pending" or not payment.stripe_checkout_session_id:
        return False
    payment = db.session.scalar(
        db.select(Payment).where(Payment.tenant_id == booking.tenant_id, Payment.id == payment.id).with_for_update()
    )
    session = _retrieve_session(payment)
    if _field(session, "status") == "open":
        try:
            client().v1.checkout.sessions.expire(
                payment.stripe_checkout_session_id,
                options=on_account(payment.stripe_account_id, f"expire:{payment.stripe_checkout_session_id}"),
            )
        except stripe.InvalidRequestError:
            session = _retrieve_session(payment)  # completed between our read and the expire
        else:
            session = None
    if session is not None and _apply_session(booking, payment, session, now=now):
        return booking.status != "pending" and booking.status != "expired"
    payment.status = "canceled"
    db.session.flush()
    return False


def close_open_checkout(booking: Booking) -> None:
    """A pending booking was canceled: expire its deposit's Checkout Session so it can't be paid.
    Best effort; a payment that still arrives is refunded by the late-payment path."""
    payment = deposit_payment(booking)
    if payment is None or payment.status != "pending" or not payment.stripe_checkout_session_id:
        return
    try:
        client().v1.checkout.sessions.expire(
            payment.stripe_checkout_session_id,
            options=on_account(payment.stripe_account_id, f"expire:{payment.stripe_checkout_session_id}"),
        )
    except stripe.StripeError as exc:
        log.warning("could not expire checkout %s of canceled booking: %r", payment.stripe_checkout_session_id, exc)
        return
    payment.status = "canceled"
    db.session.flush()


# Balance at completion ----------------------------------------------------------------------


def charge_balance(booking_id: uuid.UUID, *, tip_cents: int = 0, now: datetime | None = None) -> str:
    """Charge what is still owed (plus a tip) to the saved card, off-session. A bank that asks
    for authentication turns into a pay link for the customer, never a retry loop (S5).
    Returns what happened: paid, nothing_due, no_card, action_required or failed."""
    now = now or _now()
    booking = booking_services.get_booking(booking_id, for_update=True)
    tenant = _current_tenant()
    _expire_balance_sessions(booking)  # never leave a pay link open while we charge the card
    due = balance_due(booking)
    if due == 0:  # a second click or job: a tip alone is never charged twice
        refresh_payment_status(booking)
        return "nothing_due"
    card = saved_card(booking)
    if card is None or not tenant.takes_card_payments or card.stripe_account_id != tenant.stripe_account_id:
        return "no_card"
    if due + tip_cents < rules.STRIPE_MIN_CENTS:
        return "below_minimum"
    payment = _balance_attempt(tenant, booking, due, tip_cents=tip_cents, card=card)
    attempt = payment.attempt
    try:
        intent = client().v1.payment_intents.create(
            params={
                "amount": due + tip_cents,
                "currency": booking.currency.lower(),
                "customer": card.stripe_customer_id,
                "payment_method": card.stripe_payment_method_id,
                "off_session": True,
                "confirm": True,
                "application_fee_amount": payment.application_fee_cents,
                "description": f"Balance for booking {booking.reference}",
                "metadata": _metadata(booking, payment),
            },
            # The attempt number only advances once an attempt is on record, so an RQ retry of
            # this job sends the same key (S4).
            options=on_account(tenant.stripe_account_id, f"balance:{booking.id}:{attempt}"),
        )
    except stripe.CardError as exc:
        error = exc.error
        intent = _field(error, "payment_intent")
        payment.stripe_payment_intent_id = _id(intent)
        payment.failure_code = exc.code or _field(error, "code")
        payment.failure_message = (exc.user_message or str(exc))[:300]
        payment.status = "action_required" if payment.failure_code == "authentication_required" else "failed"
        db.session.flush()
        refresh_payment_status(booking)
        if payment.status == "action_required":
            _after_commit(send_pay_link_later, payment)
        return payment.status
    payment.stripe_payment_intent_id = intent.id
    if _field(intent, "status") != "succeeded":
        payment.status = "action_required"
        payment.failure_code = _field(intent, "status")
        db.session.flush()
        refresh_payment_status(booking)
        _after_commit(send_pay_link_later, payment)
        return "action_required"
    payment.status = "succeeded"
    payment.paid_at = now
    db.session.flush()
    refresh_payment_status(booking)
    _after_commit(send_receipt_later, payment)
    return "paid"


def open_balance_checkout(tenant: Tenant, booking: Booking, *, success_url: str, cancel_url: str) -> Payment:
    """The pay link's Checkout Session for whatever is still owed (the customer authenticates
    with their bank there). Reuses the open one when it is for exactly that amount; any other
    open link is closed first, so a balance can't be paid twice."""
    if booking.status not in PAYABLE:
        raise PaymentsUnavailable("This booking is no longer open for payment. Please call us.")
    if not tenant.takes_card_payments:
        raise PaymentsUnavailable("This business can't take card payments right now. Please call us.")
    due = balance_due(booking)
    open_one = db.session.scalar(
        db.select(Payment)
        .where(
            Payment.booking_id == booking.id,
            Payment.kind == "balance",
            Payment.status == "pending",
            Payment.checkout_url.is_not(None),
            Payment.amount_cents == due,
            Payment.stripe_account_id == tenant.stripe_account_id,
            Payment.created_at > _now() - timedelta(hours=23),
        )
        .order_by(Payment.created_at.desc())
        .limit(1)
    )
    if open_one is not None and due > 0:
        return open_one
    _expire_balance_sessions(booking)
    due = balance_due(booking)
    if due == 0:
        raise PaymentsUnavailable("Nothing is owed on this booking. Thank you!")
    if due < rules.STRIPE_MIN_CENTS:
        raise PaymentsUnavailable("The amount left is below what cards can be charged. Please pay in person.")
    card = saved_card(booking)
    payment = _balance_attempt(tenant, booking, due)
    if card is not None and card.stripe_account_id == tenant.stripe_account_id:
        extra = {"customer": card.stripe_customer_id}
    else:
        extra = {"customer_creation": "always"}
        if booking.customer.email:
            extra["customer_email"] = booking.customer.email
    _open_session(
        booking,
        payment,
        label="Balance",
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=f"paylink:{booking.id}:{payment.attempt}",
        extra=extra,
    )
    db.session.flush()
    return payment


# By hand, and back ----------------------------------------------------------------------------


def record_manual(
    booking: Booking,
    *,
    method: str,
    amount_cents: int,
    tip_cents: int = 0,
    note: str | None = None,
    actor_id: uuid.UUID | None = None,
) -> Payment:
    """Cash or check taken in person."""
    if method not in ("cash", "check"):
        raise ValidationFailed({"method": "Choose cash or check."})
    _expire_balance_sessions(booking)
    due = balance_due(booking)
    if amount_cents > due:
        raise ValidationFailed(
            {"amount": f"Only {_money(due, booking.currency)} is owed. Put anything extra under tip."}
        )
    if amount_cents + tip_cents <= 0:
        raise ValidationFailed({"amount": "Enter what the customer paid."})
    payment = Payment(
        tenant_id=booking.tenant_id,
        booking_id=booking.id,
        kind="balance",
        method=method,
        status="succeeded",
        amount_cents=amount_cents,
        tip_cents=tip_cents,
        currency=booking.currency,
        attempt=_next_attempt(booking),
        note=(note or "").strip()[:200] or None,
        recorded_by=actor_id,
        paid_at=_now(),
    )
    db.session.add(payment)
    db.session.flush()
    refresh_payment_status(booking)
    return payment


def refund(
    payment_id: uuid.UUID,
    amount_cents: int,
    *,
    request_key: str,
    reason: str | None = None,
    actor_id: uuid.UUID | None = None,
) -> tuple[Refund, bool]:
    """Refund part or all of a payment, through Stripe for cards. The form's request key makes a
    double click one refund: the second request waits on the lock, then finds the first.
    Returns (refund, created)."""
    if not request_key or len(request_key) > 100:
        raise ValidationFailed({"request_key": "Reload the page and try again."})
    booking, payment = _lock_payment(payment_id)
    existing = db.session.scalar(db.select(Refund).where(Refund.request_key == request_key))
    if existing is not None:
        if existing.payment_id != payment.id:
            raise ValidationFailed({"request_key": "Reload the page and try again."})
        return existing, False
    if payment.status != "succeeded":
        raise ValidationFailed({"amount": "Only a completed payment can be refunded."})
    if amount_cents <= 0:
        raise ValidationFailed({"amount": "Enter an amount above zero."})
    if amount_cents > payment.refundable_cents:
        raise ValidationFailed(
            {"amount": f"You can refund at most {_money(payment.refundable_cents, payment.currency)} of this payment."}
        )
    stripe_refund_id = None
    if payment.method == "card":
        try:
            made = client().v1.refunds.create(
                params={
                    "payment_intent": payment.stripe_payment_intent_id,
                    "amount": amount_cents,
                    "refund_application_fee": get_plan(_current_tenant().plan).refund_platform_fee,
                    "metadata": {"booking_id": str(booking.id), "payment_id": str(payment.id)},
                },
                options=on_account(payment.stripe_account_id, f"refund:{request_key}"),
            )
        except stripe.InvalidRequestError as exc:
            raise PaymentFailed(f"Stripe refused the refund: {exc.user_message or exc}") from None
        stripe_refund_id = made.id
    row = Refund(
        tenant_id=payment.tenant_id,
        payment_id=payment.id,
        amount_cents=amount_cents,
        status="succeeded",
        reason=(reason or "").strip()[:200] or None,
        request_key=request_key,
        stripe_refund_id=stripe_refund_id,
        created_by=actor_id,
    )
    db.session.add(row)
    payment.refunded_cents += amount_cents
    db.session.flush()
    refresh_payment_status(booking)
    return row, True


def _money(cents: int, currency: str) -> str:
    from app.catalog.services import format_money

    return format_money(cents, currency)


# Webhook events ------------------------------------------------------------------------------


class BadEvent(Exception):
    """Not a genuine Stripe event for us (bad signature, wrong mode)."""


def verify_event(payload: bytes, signature: str | None, secret: str):
    """Signature over the raw body (RELIABILITY §3, S1), then livemode."""
    if not secret:
        raise BadEvent("webhook secret not configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise BadEvent(str(exc)) from None
    return event


def event_matches_mode(event) -> bool:
    return bool(_field(event, "livemode", False)) == livemode()


def event_names_other_tenant(event, tenant_id: uuid.UUID) -> bool:
    """Metadata on the event's object that names another business (S3)."""
    obj = _field(_field(event, "data"), "object")
    named = _metadata_of(obj).get("tenant_id")
    return bool(named) and named != str(tenant_id)


def record_event(tenant_id: uuid.UUID, event, payload: dict) -> bool:
    """Insert the event once (a replay changes nothing, S2). True if it is new."""
    from sqlalchemy.dialects.postgresql import insert

    inserted = db.session.execute(
        insert(StripeEvent)
        .values(
            tenant_id=tenant_id,
            id=event.id,
            type=event.type,
            account=_field(event, "account"),
            payload=payload,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        .returning(StripeEvent.id)
    ).scalar()
    return inserted is not None


HANDLED = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.expired",
    "account.updated",
    "charge.refunded",
)


def process_event(event_id: str) -> str:
    """The job behind a webhook: re-read what matters from Stripe and apply it. Idempotent."""
    row = db.session.scalar(db.select(StripeEvent).where(StripeEvent.id == event_id).with_for_update())
    if row is None:
        return "unknown"
    if row.processed_at is not None:
        return row.outcome or "done"
    tenant = _current_tenant()
    obj = (row.payload.get("data") or {}).get("object") or {}
    outcome = "ignored"
    if row.account != tenant.stripe_account_id:
        log.warning("stripe event %s from %s, not this business's account; ignored", row.id, row.account)
        outcome = "ignored: account"
    elif event_names_other_tenant(row.payload, tenant.id):
        log.warning("stripe event %s names another business in its metadata; ignored", row.id)
        outcome = "ignored: metadata"
    elif row.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        payment = fulfil_checkout(obj.get("id", ""))
        outcome = f"payment {payment.status}" if payment else "ignored: no payment"
    elif row.type == "checkout.session.expired":
        payment = db.session.scalar(db.select(Payment).where(Payment.stripe_checkout_session_id == obj.get("id")))
        if payment is not None and payment.status == "pending" and payment.kind == "balance":
            payment.status = "canceled"
        outcome = "expired"
    elif row.type == "account.updated":
        refresh_account(tenant)
        outcome = f"charges_enabled={tenant.stripe_charges_enabled}"
    elif row.type == "charge.refunded":
        outcome = _sync_refunds(obj, row.id)
    row.processed_at = _now()
    row.outcome = outcome[:200]
    db.session.flush()
    return outcome


def _sync_refunds(charge: dict, event_id: str) -> str:
    """A refund made in the Stripe dashboard shows up here too."""
    intent = charge.get("payment_intent")
    payment = (
        db.session.scalar(db.select(Payment).where(Payment.stripe_payment_intent_id == intent)) if intent else None
    )
    if payment is None:
        return "ignored: no payment"
    booking, payment = _lock_payment(payment.id)
    refunded = int(charge.get("amount_refunded") or 0)
    missing = min(refunded, payment.total_cents) - payment.refunded_cents
    if missing <= 0:
        return "in sync"
    db.session.add(
        Refund(
            tenant_id=payment.tenant_id,
            payment_id=payment.id,
            amount_cents=missing,
            status="succeeded",
            reason="Refunded in Stripe",
            request_key=f"sync:{event_id}",
        )
    )
    payment.refunded_cents += missing
    db.session.flush()
    refresh_payment_status(booking)
    return f"refund of {missing} recorded"


def unprocessed_events(older_than: timedelta = timedelta(minutes=2)) -> list[str]:
    return list(
        db.session.scalars(
            db.select(StripeEvent.id).where(
                StripeEvent.processed_at.is_(None), StripeEvent.received_at <= _now() - older_than
            )
        )
    )


# Work after commit ----------------------------------------------------------------------------


def _after_commit(fn, payment: Payment) -> None:
    """Queue follow-up jobs (receipts, pay links) only once the transaction commits."""
    from app.jobs import after_commit

    after_commit(fn, payment.tenant_id, payment.id)


def send_receipt_later(tenant_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    from app.payments.jobs import send_receipt

    send_receipt.enqueue(tenant_id, payment_id)


def send_pay_link_later(tenant_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    from app.payments.jobs import send_pay_link

    send_pay_link.enqueue(tenant_id, payment_id)


def notify_late_refund_later(tenant_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    from app.payments.jobs import send_late_refund_notice

    send_late_refund_notice.enqueue(tenant_id, payment_id)
