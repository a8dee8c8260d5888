"""Fieldday's own subscriptions: Stripe Billing on the platform account (docs/platform-and-billing.md).

Starter is free: a business without a live subscription is on Starter. Pro and Teams are monthly
subscriptions whose Prices are found by lookup key (``fieldday_pro``, ``fieldday_teams``), so no price
id lives in configuration. Every call here is on the platform account: never a ``Stripe-Account``
header. Webhook work re-reads the subscription from Stripe, so events that arrive twice or out of
order settle on Stripe's current state.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import stripe
from flask import current_app

from app.audit import services as audit
from app.billing.models import BillingEvent
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from tenants.models import Tenant
from tenants.plans import PLANS

log = logging.getLogger(__name__)

FREE_PLAN = "starter"
PAID_PLANS = ("pro", "teams")
LOOKUP_PREFIX = "fieldday_"
# Stripe's subscription statuses. LIVE: the subscription exists and is not over (a business with one
# changes plan by updating it, never by a second Checkout). KEEPS_PLAN: the paid plan applies (past_due
# is the grace while Stripe retries the card). ENDS_PLAN: back to Starter.
STATUSES = ("incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused")
LIVE = ("active", "trialing", "past_due", "unpaid", "incomplete")
KEEPS_PLAN = ("active", "trialing", "past_due")
ENDS_PLAN = ("canceled", "incomplete_expired", "unpaid", "paused")
STATUS_LABELS = {
    "none": "No subscription",
    "incomplete": "Waiting for the first payment",
    "incomplete_expired": "First payment never completed",
    "trialing": "Trial",
    "active": "Active",
    "past_due": "Payment failed",
    "canceled": "Canceled",
    "unpaid": "Unpaid",
    "paused": "Paused",
}
PRICE_CACHE_S = 300  # prices shown on the Plan page; Checkout always looks them up fresh

HANDLED = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_failed",
    "invoice.paid",
)


class BillingUnavailable(FielddayError):
    status = 503
    code = "billing_unavailable"
    message = "Online billing isn't set up on this server yet. Please contact Fieldday support."


def _now() -> datetime:
    return datetime.now(UTC)


def _client() -> stripe.StripeClient:
    from app.payments.stripe_api import client

    if not current_app.config.get("STRIPE_SECRET_KEY"):
        raise BillingUnavailable()
    return client()


def configured() -> bool:
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def _get(obj, *path, default=None):
    """Read a nested field from a StripeObject or a plain dict."""
    for name in path:
        if obj is None:
            return default
        try:
            obj = obj[name]
        except (KeyError, TypeError, IndexError):
            obj = getattr(obj, name, None) if not isinstance(name, int) else None
    return default if obj is None else obj


def _id(value) -> str | None:
    return value if isinstance(value, str) else _get(value, "id")


def lookup_key(plan: str) -> str:
    return f"{LOOKUP_PREFIX}{plan}"


def plan_for_lookup_key(key: str | None) -> str | None:
    plan = (key or "").removeprefix(LOOKUP_PREFIX)
    return plan if key and key.startswith(LOOKUP_PREFIX) and plan in PAID_PLANS else None


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def has_live_subscription(tenant: Tenant) -> bool:
    return bool(tenant.subscription_id) and tenant.subscription_status in LIVE


# Prices ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanPrice:
    plan: str
    price_id: str
    unit_amount: int
    currency: str
    interval: str

    @property
    def display(self) -> str:
        from app.catalog.services import format_money

        return f"{format_money(self.unit_amount, self.currency.upper())} / {self.interval}"


def plan_prices(*, fresh: bool = False) -> dict[str, PlanPrice]:
    """The active monthly Price of each paid plan, by lookup key. Cached briefly for display."""
    app = current_app._get_current_object()
    cached = app.extensions.get("billing_prices")
    if not fresh and cached and time.monotonic() - cached[0] < PRICE_CACHE_S:
        return cached[1]
    found = _client().v1.prices.list(
        params={"lookup_keys": [lookup_key(p) for p in PAID_PLANS], "active": True, "limit": 10}
    )
    prices = {}
    for price in found.data:
        plan = plan_for_lookup_key(_get(price, "lookup_key"))
        if plan and _get(price, "recurring"):
            prices[plan] = PlanPrice(
                plan=plan,
                price_id=price.id,
                unit_amount=int(_get(price, "unit_amount", default=0)),
                currency=str(_get(price, "currency", default="usd")),
                interval=str(_get(price, "recurring", "interval", default="month")),
            )
    app.extensions["billing_prices"] = (time.monotonic(), prices)
    return prices


def displayed_prices() -> dict[str, PlanPrice]:
    """Prices for the Plan page; an unreachable Stripe shows the plans without amounts."""
    if not configured():
        return {}
    try:
        return plan_prices()
    except stripe.StripeError as exc:
        log.warning("billing prices unavailable: %r", exc)
        return {}


def create_missing_prices(amounts: dict[str, int], currency: str = "usd") -> list[str]:
    """`flask billing prices`: a Product and a monthly Price with our lookup key for each paid plan
    that has none yet. Returns what was done, one line each."""
    done = []
    existing = plan_prices(fresh=True)
    for plan in PAID_PLANS:
        if plan in existing:
            done.append(f"{lookup_key(plan)}: {existing[plan].price_id} ({existing[plan].display}) exists")
            continue
        product = _client().v1.products.create(
            params={"name": f"Fieldday {PLANS[plan].name}", "metadata": {"plan": plan}}
        )
        price = _client().v1.prices.create(
            params={
                "product": product.id,
                "unit_amount": amounts[plan],
                "currency": currency,
                "recurring": {"interval": "month"},
                "lookup_key": lookup_key(plan),
                "transfer_lookup_key": True,  # a re-created price takes the key over from an archived one
                "metadata": {"plan": plan},
            }
        )
        done.append(f"{lookup_key(plan)}: {price.id} created")
    current_app.extensions.pop("billing_prices", None)
    return done


def _price_for(plan: str) -> PlanPrice:
    if plan not in PAID_PLANS:
        raise ValidationFailed({"plan": "Choose Pro or Teams."})
    price = plan_prices(fresh=True).get(plan)
    if price is None:
        raise BillingUnavailable(f"{PLANS[plan].name} can't be bought online yet. Please contact Fieldday support.")
    return price


# The owner's choices --------------------------------------------------------------------------


def ensure_customer(tenant: Tenant, *, email: str | None) -> str:
    """The business's Customer on the platform account, created once (row lock + idempotency key)."""
    db.session.flush()
    db.session.refresh(tenant, with_for_update=True)
    if tenant.billing_customer_id:
        return tenant.billing_customer_id
    params = {
        "name": tenant.name,
        **({"email": email} if email else {}),
        "metadata": {"tenant_id": str(tenant.id), "subdomain": tenant.subdomain},
    }
    digest = hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:12]
    customer = _client().v1.customers.create(
        params=params, options={"idempotency_key": f"billing-customer:{tenant.id}:{digest}"}
    )
    tenant.billing_customer_id = customer.id
    db.session.flush()
    return customer.id


def start_checkout(
    tenant: Tenant, plan: str, *, email: str | None, request_key: str, success_url: str, cancel_url: str
) -> str:
    """A Checkout Session in subscription mode for ``plan``; returns its URL. Refused while the
    business has a live subscription (that one is changed instead, never doubled)."""
    price = _price_for(plan)
    if has_live_subscription(tenant):
        raise ValidationFailed({"plan": "You already have a subscription: switch plans instead."})
    customer = ensure_customer(tenant, email=email)
    metadata = {"tenant_id": str(tenant.id), "plan": plan}
    session = _client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": price.price_id, "quantity": 1}],
            "client_reference_id": str(tenant.id),
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
            "success_url": success_url,
            "cancel_url": cancel_url,
        },
        options={"idempotency_key": f"billing-checkout:{tenant.id}:{plan}:{request_key}"},
    )
    return session.url


def retrieve_subscription(subscription_id: str):
    return _client().v1.subscriptions.retrieve(subscription_id)


def switch_plan(tenant: Tenant, plan: str, *, request_key: str) -> str:
    """The owner picks another plan while subscribed: a paid plan swaps the subscription's price at
    once (prorated); Starter cancels at the end of the paid period; the current plan undoes a
    pending cancellation. Returns what happened, for the page."""
    if plan not in PLANS:
        raise ValidationFailed({"plan": "Choose a plan."})
    # One change at a time (a double click on two buttons): decide on the row as it is now.
    db.session.refresh(tenant, with_for_update=True)
    if not has_live_subscription(tenant):
        raise ValidationFailed({"plan": "You have no subscription to change."})
    sub = retrieve_subscription(tenant.subscription_id)
    key = f"billing-switch:{tenant.id}:{sub.id}:{plan}:{request_key}"
    if plan == FREE_PLAN:
        sub = _client().v1.subscriptions.update(
            sub.id, params={"cancel_at_period_end": True}, options={"idempotency_key": key}
        )
        apply_subscription(tenant, sub, audit_changes=False)
        return "cancel_scheduled"
    if plan == tenant.plan:
        if not tenant.subscription_cancel_at_period_end:
            raise ValidationFailed({"plan": f"You're already on {PLANS[plan].name}."})
        sub = _client().v1.subscriptions.update(
            sub.id, params={"cancel_at_period_end": False}, options={"idempotency_key": key}
        )
        apply_subscription(tenant, sub, audit_changes=False)
        return "cancel_undone"
    _move_to_price(tenant, sub, plan, key)
    return "switched"


def _move_to_price(tenant: Tenant, sub, plan: str, idempotency_key: str) -> None:
    price = _price_for(plan)
    items = _get(sub, "items", "data", default=[])
    if not items:
        raise BillingUnavailable("This subscription has no plan on it; please contact Fieldday support.")
    sub = _client().v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": items[0]["id"], "price": price.price_id}],
            "proration_behavior": "create_prorations",
            "cancel_at_period_end": False,
            "metadata": {"tenant_id": str(tenant.id), "plan": plan},
        },
        options={"idempotency_key": idempotency_key},
    )
    apply_subscription(tenant, sub, audit_changes=False)


SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,200}$")


def fulfil_checkout(tenant: Tenant, session_id: str) -> str:
    """The owner is back from Checkout: read the session and apply its subscription now, so the
    page is right even before the webhook arrives. Only this business's own sessions count."""
    if not SESSION_ID.match(session_id or ""):
        return "ignored: session"
    try:
        session = _client().v1.checkout.sessions.retrieve(session_id)
    except stripe.InvalidRequestError:
        return "ignored: session"
    if _id(_get(session, "customer")) != tenant.billing_customer_id or _get(session, "mode") != "subscription":
        log.warning("checkout session %s is not this business's subscription; ignored", session_id)
        return "ignored: session"
    if _get(session, "status") != "complete" or not _get(session, "subscription"):
        return "open"
    return apply_subscription(tenant, retrieve_subscription(_id(session["subscription"])))


def portal_url(tenant: Tenant, *, return_url: str) -> str:
    """A Billing Portal session: card, invoices, cancel."""
    if not tenant.billing_customer_id:
        raise ValidationFailed({"plan": "There is no billing account yet: choose a plan first."})
    session = _client().v1.billing_portal.sessions.create(
        params={"customer": tenant.billing_customer_id, "return_url": return_url}
    )
    return session.url


# Applying Stripe's state -----------------------------------------------------------------------


def _period_end(sub) -> datetime | None:
    # Since API 2025-03-31 the period lives on each item; older versions had it on the subscription.
    ts = _get(sub, "items", "data", 0, "current_period_end") or _get(sub, "current_period_end")
    return datetime.fromtimestamp(int(ts), UTC) if ts else None


def plan_of(sub) -> str | None:
    return plan_for_lookup_key(_get(sub, "items", "data", 0, "price", "lookup_key"))


def apply_subscription(tenant: Tenant, sub, *, audit_changes: bool = True) -> str:
    """Make the business's plan and subscription fields match ``sub`` (as Stripe has it now).
    Idempotent. With ``audit_changes`` a plan or status change is written to its audit log (the
    webhook's and the return page's path; callers that audit their own change pass False)."""
    status = str(_get(sub, "status", default=""))
    if _id(_get(sub, "customer")) != tenant.billing_customer_id:
        return "ignored: customer"
    if status not in STATUSES:
        log.warning("subscription %s has unknown status %r; ignored", sub.id, status)
        return "ignored: status"
    if tenant.subscription_id and tenant.subscription_id != sub.id and tenant.subscription_status in LIVE:
        if status not in LIVE:
            return "ignored: not the current subscription"
        log.warning("business %s has a second live subscription %s (was %s)", tenant.id, sub.id, tenant.subscription_id)
    old_plan, old_status, old_sub = tenant.plan, tenant.subscription_status, tenant.subscription_id
    tenant.subscription_id = sub.id
    tenant.subscription_status = status
    tenant.subscription_period_end = _period_end(sub)
    tenant.subscription_cancel_at_period_end = bool(_get(sub, "cancel_at_period_end", default=False))
    tenant.subscription_updated_at = _now()
    plan = plan_of(sub)
    if status in KEEPS_PLAN and plan:
        tenant.plan = plan
    elif status in ENDS_PLAN and old_sub == sub.id and old_status in LIVE and old_status != status:
        # Only the end of the live subscription behind the plan takes it away: a retried or late event of
        # one that had ended already leaves alone a plan set since (support's complimentary plan, say).
        tenant.plan = FREE_PLAN
    if audit_changes:
        detail = {"subscription": sub.id, "status": status}
        if tenant.plan != old_plan:
            audit.record(tenant.id, "billing.plan_changed", detail={**detail, "from": old_plan, "to": tenant.plan})
        if status != old_status and status == "past_due":
            audit.record(tenant.id, "billing.payment_failed", detail=detail)
        elif status != old_status and status in ENDS_PLAN:
            audit.record(tenant.id, "billing.subscription_ended", detail=detail)
    db.session.flush()
    return f"{status}: {tenant.plan}"


def platform_plan_change(tenant: Tenant, plan: str, *, request_key: str) -> str:
    """A platform admin set ``plan``: a live subscription follows (price swapped with proration, or
    canceled at once for Starter). Without one the plan is simply set, unbilled. Returns a note."""
    if not has_live_subscription(tenant):
        return "no subscription: plan set without billing"
    sub = retrieve_subscription(tenant.subscription_id)
    if plan == FREE_PLAN:
        try:
            sub = _client().v1.subscriptions.cancel(sub.id)
        except stripe.InvalidRequestError:
            sub = retrieve_subscription(sub.id)  # canceled meanwhile
        apply_subscription(tenant, sub, audit_changes=False)
        return f"subscription {sub.id} canceled"
    _move_to_price(tenant, sub, plan, f"platform-plan:{tenant.id}:{sub.id}:{plan}:{request_key}")
    return f"subscription {sub.id} moved to {plan}"


# Webhook events --------------------------------------------------------------------------------


def customer_of(obj) -> str | None:
    return _id(_get(obj, "customer"))


def subscription_of(event_type: str, obj) -> str | None:
    if event_type == "checkout.session.completed":
        return _id(_get(obj, "subscription")) if _get(obj, "mode") == "subscription" else None
    if event_type.startswith("customer.subscription."):
        return _id(obj)
    if event_type.startswith("invoice."):  # parent.subscription_details since API 2025-03-31
        return _id(_get(obj, "parent", "subscription_details", "subscription")) or _id(_get(obj, "subscription"))
    return None


def record_event(tenant_id: uuid.UUID, event, payload: dict) -> bool:
    """Insert the event once (a replay changes nothing). True if it is new."""
    from sqlalchemy.dialects.postgresql import insert

    inserted = db.session.execute(
        insert(BillingEvent)
        .values(tenant_id=tenant_id, id=event.id, type=event.type, payload=payload)
        .on_conflict_do_nothing(index_elements=["tenant_id", "id"])
        .returning(BillingEvent.id)
    ).scalar()
    return inserted is not None


def process_event(event_id: str) -> str:
    """The job behind the Billing webhook: re-read the subscription the event is about and apply it."""
    from tenants.context import current_tenant_id

    row = db.session.scalar(db.select(BillingEvent).where(BillingEvent.id == event_id).with_for_update())
    if row is None:
        return "unknown"
    if row.processed_at is not None:
        return row.outcome or "done"
    tenant = db.session.get(Tenant, current_tenant_id(), with_for_update=True)
    obj = (row.payload.get("data") or {}).get("object") or {}
    named = (obj.get("metadata") or {}).get("tenant_id")
    if customer_of(obj) != tenant.billing_customer_id:
        outcome = "ignored: customer"
    elif named and named != str(tenant.id):
        outcome = "ignored: metadata"
    elif (sub_id := subscription_of(row.type, obj)) is None:
        outcome = "ignored: no subscription"
    else:
        outcome = apply_subscription(tenant, retrieve_subscription(sub_id))
    if row.type == "invoice.payment_failed" and not outcome.startswith("ignored"):
        outcome = f"payment failed; {outcome}"
    row.processed_at = _now()
    row.outcome = outcome[:200]
    db.session.flush()
    return outcome


def unprocessed_events(older_than_s: int = 120) -> list[str]:
    from datetime import timedelta

    cutoff = _now() - timedelta(seconds=older_than_s)
    return list(
        db.session.scalars(
            db.select(BillingEvent.id).where(BillingEvent.processed_at.is_(None), BillingEvent.received_at <= cutoff)
        )
    )
