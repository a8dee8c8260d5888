"""The owner dashboard on ``app.<base>``: every route needs a login and a role."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.accounts import jobs as account_jobs
from app.accounts import services as accounts
from app.accounts.models import ROLE_LABELS
from app.audit import services as audit
from app.errors import ValidationFailed
from app.extensions import db
from app.urls import site_host, site_url
from app.web.auth import sign_in, sign_out
from tenants import quotas
from tenants import settings as tenant_settings
from tenants.plans import get_plan
from tenants.provisioning import CURRENCIES, time_zones

bp = Blueprint("dashboard", __name__)

MANAGERS = ("owner", "admin")
EVERYONE = ("owner", "admin", "tech")


def roles(*allowed: str):
    """Mark which roles may open a view; views without a mark are for owners and admins."""

    def decorate(view):
        view._roles = allowed

        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, **kwargs)

        wrapper._roles = allowed
        return wrapper

    return decorate


@bp.before_request
def require_login_and_role():
    if not current_user.is_authenticated or g.get("tenant") is None:
        return current_app.login_manager.unauthorized()
    view = current_app.view_functions.get(request.endpoint)
    allowed = getattr(view, "_roles", MANAGERS)
    if current_user.role not in allowed:
        abort(403)
    return None


@bp.app_context_processor
def inject_nav():
    return {"nav_sections": NAV, "role_labels": ROLE_LABELS, "quota_alerts": _quota_alerts, "plan_full": _plan_full}


def _quota_alerts():
    """The layout's plan banner (tenants/quotas.py): computed only when a manager's page renders."""
    if not current_user.is_authenticated or current_user.role not in MANAGERS or g.get("tenant") is None:
        return []
    if "quota_alerts" not in g:
        g.quota_alerts = quotas.alerts(g.tenant)
    return g.quota_alerts


def _plan_full(kind: str) -> str | None:
    """The plan's refusal, for a page to show above a form it would refuse (None: there's room)."""
    if g.get("tenant") is None or not quotas.is_full(g.tenant, kind):
        return None
    return quotas.limit_message(g.tenant, kind)


def utcnow() -> datetime:
    return datetime.now(UTC)


# Navigation: what exists now and what the next capabilities add (see docs/product.md).
NAV = [
    (
        "Run the day",
        [
            ("dashboard.home", {}, "Home", MANAGERS),
            ("dashboard.my_day", {}, "My day", ("tech",)),
            ("dashboard.my_calendar", {}, "My calendar", ("tech",)),
            ("dashboard.calendar", {}, "Calendar", MANAGERS),
            ("dashboard.routes", {}, "Routes", MANAGERS),
        ],
    ),
    (
        "Customers & sales",
        [
            ("dashboard.customers", {}, "Customers", MANAGERS),
            ("dashboard.quotes", {}, "Quotes", MANAGERS),
            ("dashboard.payments_list", {}, "Payments", MANAGERS),
            ("dashboard.messages", {}, "Messages", MANAGERS),
            ("dashboard.reviews", {}, "Reviews", MANAGERS),
        ],
    ),
    (
        "Business",
        [
            ("dashboard.reports_page", {}, "Reports", MANAGERS),
            ("dashboard.services", {}, "Services", MANAGERS),
            ("dashboard.technicians", {}, "Technicians", MANAGERS),
            ("dashboard.team", {}, "Team", MANAGERS),
            ("dashboard.settings", {}, "Settings", MANAGERS),
            ("dashboard.integrations", {}, "Integrations", MANAGERS),
            ("dashboard.plan", {}, "Plan & usage", MANAGERS),
            ("dashboard.activity", {}, "Activity", MANAGERS),
        ],
    ),
]

UPCOMING = {
    "calendar": ("Calendar", "Every booking on a day, week or technician view, with drag-to-reschedule."),
    "routes": ("Routes", "Each technician's optimised day on a map, with the minutes saved against the booked order."),
    "customers": ("Customers", "Customers with their vehicles, addresses, gate codes and service history."),
    "quotes": ("Quotes", "Quotes with options your customers accept online, picking a time and paying a deposit."),
    "payments": ("Payments", "Deposits, balances charged at completion, cash and refunds through your Stripe account."),
    "messages": ("Messages", "Two-way texts with customers: confirmations, reminders and on-my-way ETAs."),
    "services": ("Services", "Packages and add-ons with prices and durations by vehicle size."),
    "integrations": ("Integrations", "Connect Stripe and Google Calendar."),
}


@bp.get("/")
def home():
    tenant = g.tenant
    team = accounts.list_users()
    invites = accounts.list_open_invitations(utcnow())
    checklist = [
        ("Create your business", True, None),
        (
            "Add your logo and colour",
            bool(tenant.logo_key) or tenant.brand_color != "#0f766e",
            url_for("dashboard.settings"),
        ),
        (
            "Invite a technician",
            any(u.role == "tech" for u in team) or any(i.role == "tech" for i in invites),
            url_for("dashboard.team"),
        ),
        # Done once a customer has booked online: that is what sharing the site is for.
        ("Share your booking site", _has_site_booking(), site_url(tenant.subdomain)),
    ]
    from zoneinfo import ZoneInfo

    from app.booking.availability import local_day_bounds
    from app.booking.services import list_bookings

    start, end = local_day_bounds(datetime.now(ZoneInfo(tenant.time_zone)).date(), ZoneInfo(tenant.time_zone))
    today = [b for b in list_bookings(start, end) if b.starts_at >= start]
    return render_template(
        "dashboard/home.html",
        today=today,
        checklist=checklist,
        team=team,
        booking_url=site_url(tenant.subdomain),
        booking_host=site_host(tenant.subdomain),
        recent=audit.list_recent(6),
        welcome=request.args.get("welcome") == "1",
    )


def _has_site_booking() -> bool:
    from app.booking.models import Booking

    return db.session.scalar(db.select(Booking.id).where(Booking.source == "site").limit(1)) is not None


@bp.get("/soon/<any(calendar, routes, customers, quotes, payments, messages, services, integrations):page>")
def upcoming_page(page: str):
    title, blurb = UPCOMING[page]
    return render_template("dashboard/upcoming.html", title=title, blurb=blurb, page=page)


@bp.route("/settings", methods=["GET", "POST"])
def settings():
    tenant = g.tenant
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            tenant_settings.update_settings(tenant, request.form, actor_id=current_user.id)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash("Settings saved.", "success")
            return redirect(url_for("dashboard.settings"))
    return render_template(
        "dashboard/settings.html",
        form=request.form if errors else None,
        errors=errors,
        time_zones=sorted(time_zones()),
        currencies=CURRENCIES,
        booking_url=site_url(tenant.subdomain),
        booking_host=site_host(tenant.subdomain),
    ), (422 if errors else 200)


@bp.post("/settings/logo")
def upload_logo():
    upload = request.files.get("logo")
    try:
        tenant_settings.set_logo(g.tenant, upload, actor_id=current_user.id)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
    else:
        db.session.commit()
        flash("Logo updated. It now shows on your booking site.", "success")
    return redirect(url_for("dashboard.settings"))


@bp.post("/settings/logo/remove")
def remove_logo():
    tenant_settings.remove_logo(g.tenant, actor_id=current_user.id)
    db.session.commit()
    flash("Logo removed.", "info")
    return redirect(url_for("dashboard.settings"))


@bp.get("/logo")
@roles(*EVERYONE)
def logo():
    return tenant_settings.logo_response(g.tenant)


@bp.get("/team")
def team():
    return render_template(
        "dashboard/team.html",
        users=accounts.list_users(),
        invitations=accounts.list_open_invitations(utcnow()),
        errors={},
        form=None,
    )


@bp.post("/team/invite")
def invite():
    try:
        invitation = accounts.invite(
            current_user,
            email=request.form.get("email", ""),
            name=request.form.get("name", ""),
            role=request.form.get("role", ""),
            now=utcnow(),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return render_template(
            "dashboard/team.html",
            users=accounts.list_users(),
            invitations=accounts.list_open_invitations(utcnow()),
            errors=exc.errors,
            form=request.form,
        ), 422
    db.session.commit()
    account_jobs.send_invitation.enqueue(invitation.tenant_id, invitation.id)
    flash(f"Invitation sent to {invitation.email}.", "success")
    return redirect(url_for("dashboard.team"))


@bp.post("/team/invitations/<uuid:invitation_id>/revoke")
def revoke_invitation(invitation_id: uuid.UUID):
    accounts.revoke_invitation(current_user, invitation_id, now=utcnow())
    db.session.commit()
    flash("Invitation revoked.", "info")
    return redirect(url_for("dashboard.team"))


@bp.post("/team/<uuid:user_id>/role")
def change_role(user_id: uuid.UUID):
    try:
        user = accounts.set_role(current_user, user_id, request.form.get("role", ""))
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
    else:
        db.session.commit()
        flash(f"{user.name} is now {ROLE_LABELS[user.role].lower()}.", "success")
    return redirect(url_for("dashboard.team"))


@bp.post("/team/<uuid:user_id>/deactivate")
def deactivate(user_id: uuid.UUID):
    try:
        user = accounts.deactivate_user(current_user, user_id)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
    else:
        db.session.commit()
        flash(f"{user.name} can no longer log in.", "info")
    return redirect(url_for("dashboard.team"))


@bp.route("/account", methods=["GET", "POST"])
@roles(*EVERYONE)
def account():
    errors: dict[str, str] = {}
    if request.method == "POST":
        new = request.form.get("password", "")
        if new != request.form.get("confirm", ""):
            errors["confirm"] = "The two passwords don't match."
        else:
            try:
                accounts.change_password(current_user, request.form.get("current_password", ""), new)
            except ValidationFailed as exc:
                db.session.rollback()
                errors = exc.errors
            else:
                db.session.commit()
                sign_in(current_user._get_current_object())  # this device stays in; others are out
                flash("Password changed. Other devices have been logged out.", "success")
                return redirect(url_for("dashboard.account"))
    devices = accounts.list_live_sessions(current_user)
    return render_template("dashboard/account.html", errors=errors, devices=devices), (422 if errors else 200)


@bp.post("/account/logout-everywhere")
@roles(*EVERYONE)
def logout_everywhere():
    accounts.logout_everywhere(current_user)
    db.session.commit()
    sign_out()
    flash("You're logged out on every device.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/activity")
def activity():
    users = {u.id: u for u in accounts.list_users()}
    return render_template("dashboard/activity.html", entries=audit.list_recent(100), users=users)


@bp.get("/plan")
def plan():
    tenant = g.tenant
    return render_template(
        "dashboard/plan.html",
        plan=get_plan(tenant.plan),
        usage=quotas.usage(tenant),
        technicians=quotas.technician_counts(tenant),
    )
