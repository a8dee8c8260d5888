"""The business's own Fieldday subscription, on Plan & usage (Stripe Billing on the platform account;
docs/platform-and-billing.md). The owner chooses a plan (Checkout in subscription mode), switches
or cancels it, and manages the card in Stripe's billing portal; admins see the plan but can't
change it. The choices are ``dashboard/_plan_choices.html``, included by the Plan page.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import stripe
from flask import abort, flash, g, redirect, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.billing import services as billing
from app.errors import FielddayError
from app.extensions import db
from app.urls import app_url
from app.web.dashboard import bp, roles
from tenants.plans import PLANS

log = logging.getLogger(__name__)


def _stripe_trouble(exc: Exception) -> str:
    log.warning("stripe billing call failed: %r", exc)
    return "We couldn't reach Stripe just now, so nothing changed. Please try again in a minute."


def _local_date(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.astimezone(ZoneInfo(g.tenant.time_zone)).strftime("%B %-d, %Y")


@bp.app_template_global("billing_panel")
def billing_panel() -> dict:
    """What _plan_choices.html shows: each plan with its price and what choosing it does."""
    tenant = g.tenant
    live = billing.has_live_subscription(tenant)
    pending_cancel = live and tenant.subscription_cancel_at_period_end
    prices = billing.displayed_prices()
    ends = _local_date(tenant.subscription_period_end)
    choices = []
    for code, plan in PLANS.items():
        current = code == tenant.plan
        price = prices.get(code)
        action, label, note = None, "", ""
        if code == billing.FREE_PLAN:
            if current and not live:
                label = "Current plan"
            elif pending_cancel:
                label, note = "Starts " + ends, f"Your subscription ends on {ends}."
            elif live:
                action, label, note = "switch", "Switch to Starter", "Your paid plan runs to the end of the period."
        elif current and live:
            action, label = ("resume", f"Keep {plan.name}") if pending_cancel else (None, "Current plan")
        elif live:
            action, label = "switch", f"Switch to {plan.name}"
        else:
            action, label = "checkout", f"Subscribe to {plan.name}" if current else f"Choose {plan.name}"
            note = "Your current plan is complimentary." if current else ""
        if code in billing.PAID_PLANS and price is None and action in ("checkout", "switch"):
            action, note = None, "Not available online yet: contact Fieldday support."
        choices.append(
            {
                "code": code,
                "plan": plan,
                "price": price,
                "current": current,
                "action": action,
                "label": label,
                "note": note,
            }
        )
    return {
        "platform_change": _last_platform_change(),
        "configured": billing.configured(),
        "is_owner": current_user.role == "owner",
        "status": tenant.subscription_status,
        "status_label": billing.status_label(tenant.subscription_status),
        "live": live,
        "past_due": tenant.subscription_status == "past_due",
        "pending_cancel": pending_cancel,
        "period_end": ends,
        "has_customer": bool(tenant.billing_customer_id),
        "choices": choices,
        "request_key": uuid.uuid4().hex,
    }


def _last_platform_change() -> dict | None:
    """Fieldday staff's latest change of this business's plan, with their reason."""
    from app.audit.models import AuditEntry

    entry = db.session.scalar(
        db.select(AuditEntry)
        .where(AuditEntry.action == "plan.changed_by_platform")
        .order_by(AuditEntry.created_at.desc())
        .limit(1)
    )
    if entry is None:
        return None
    detail = entry.detail or {}
    names = {code: p.name for code, p in PLANS.items()}
    return {
        "from": names.get(detail.get("from"), detail.get("from")),
        "to": names.get(detail.get("to"), detail.get("to")),
        "reason": detail.get("reason", ""),
        "when": _local_date(entry.created_at),
    }


def _back():
    return redirect(url_for("dashboard.plan"))


@bp.post("/plan/choose")
@roles("owner")
def plan_choose():
    """Checkout for a first subscription; a live one is switched (or set to end) instead."""
    plan = request.form.get("plan", "")
    if plan not in PLANS:
        abort(400)
    tenant = g.tenant
    key = (request.form.get("request_key") or "")[:64] or uuid.uuid4().hex
    try:
        if billing.has_live_subscription(tenant):
            old = tenant.plan
            outcome = billing.switch_plan(tenant, plan, request_key=key)
            detail = {"from": old, "to": tenant.plan, "chosen": plan, "subscription": tenant.subscription_id}
            audit.record(tenant.id, f"billing.{outcome}", actor_id=current_user.id, detail=detail)
            db.session.commit()
            flash(_switched_message(outcome, plan, tenant), "success")
            return _back()
        if plan == billing.FREE_PLAN:
            flash("You're on Starter: there is nothing to pay.", "info")
            return _back()
        url = billing.start_checkout(
            tenant,
            plan,
            email=current_user.email,
            request_key=key,
            success_url=app_url(url_for("dashboard.plan_subscribed")) + "?session_id={CHECKOUT_SESSION_ID}",
            cancel_url=app_url(url_for("dashboard.plan")),
        )
    except FielddayError as exc:
        db.session.rollback()
        message = next(iter(exc.errors.values())) if getattr(exc, "errors", None) else exc.message
        flash(message, "error")
        return _back()
    except stripe.StripeError as exc:
        db.session.rollback()
        flash(_stripe_trouble(exc), "error")
        return _back()
    audit.record(tenant.id, "billing.checkout_started", actor_id=current_user.id, detail={"plan": plan})
    db.session.commit()
    return redirect(url, code=303)


def _switched_message(outcome: str, plan: str, tenant) -> str:
    ends = _local_date(tenant.subscription_period_end)
    if outcome == "cancel_scheduled":
        return f"Your subscription ends on {ends}; then you're on Starter. Until then nothing changes."
    if outcome == "cancel_undone":
        return f"You're staying on {PLANS[tenant.plan].name}: the subscription renews on {ends}."
    return f"You're on {PLANS[plan].name} now. Stripe prorates the difference on your next invoice."


@bp.get("/plan/subscribed")
@roles("owner")
def plan_subscribed():
    """Stripe Checkout's success_url: apply the subscription now rather than wait for the webhook."""
    tenant = g.tenant
    try:
        outcome = billing.fulfil_checkout(tenant, request.args.get("session_id", ""))
    except stripe.StripeError as exc:
        db.session.rollback()
        flash(_stripe_trouble(exc) + " Your payment is safe; the plan updates within a minute.", "info")
        return _back()
    db.session.commit()
    if outcome.startswith(("active", "trialing")):
        flash(f"Thank you! You're on {PLANS[tenant.plan].name}.", "success")
    elif outcome == "open":
        flash("Stripe hasn't confirmed your subscription yet; this page updates once it has.", "info")
    elif outcome.startswith("ignored"):
        flash("That checkout link isn't one of yours.", "error")
    else:
        flash(f"Your subscription is {billing.status_label(tenant.subscription_status).lower()}.", "info")
    return _back()


@bp.post("/plan/billing-portal")
@roles("owner")
def billing_portal():
    """Stripe's billing portal: card, invoices, cancel."""
    try:
        url = billing.portal_url(g.tenant, return_url=app_url(url_for("dashboard.plan")))
    except FielddayError as exc:
        flash(next(iter(exc.errors.values())) if getattr(exc, "errors", None) else exc.message, "error")
        return _back()
    except stripe.StripeError as exc:
        flash(_stripe_trouble(exc), "error")
        return _back()
    return redirect(url, code=303)  # never logged: a portal link is a bearer credential
