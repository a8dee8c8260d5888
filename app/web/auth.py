"""Sign-up, log-in, log-out, password reset and invitations on ``app.<base>``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from app.accounts import jobs as account_jobs
from app.accounts import services as accounts
from app.accounts.errors import LoginFailed, TokenInvalid
from app.accounts.models import User
from app.errors import ValidationFailed
from app.extensions import db, limiter, login_manager
from tenants.context import current_tenant_id
from tenants.provisioning import CURRENCIES, provision_tenant, time_zones

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "basic"


@login_manager.user_loader
def load_user(user_key: str) -> User | None:
    """Parse ``tenant.user.version``; the tenant must be the one already active."""
    if g.get("audience") != "app":
        return None
    try:
        tenant_str, user_str, version = user_key.split(".")
        tenant_id, user_id, version_n = uuid.UUID(tenant_str), uuid.UUID(user_str), int(version)
    except (ValueError, AttributeError):
        return None
    if current_tenant_id() != tenant_id:
        return None
    user = db.session.get(User, (tenant_id, user_id))
    if user is None or not user.is_active or user.session_version != version_n:
        return None
    try:
        device = uuid.UUID(session.get("sid", ""))
    except ValueError:
        return None
    if not accounts.session_is_live(user, device, now=utcnow()):
        return None
    return user


def sign_in(user: User) -> None:
    """Log ``user`` in on this device and commit: a new server-side session record, so
    logging out (or out everywhere) makes the cookie worthless even if replayed."""
    record = accounts.start_session(user, ip=request.remote_addr, user_agent=request.user_agent.string)
    db.session.commit()
    session.clear()  # no pre-login state (or fixation) survives into the logged-in session
    login_user(user)
    session["sid"] = str(record.id)


def sign_out() -> None:
    if current_user.is_authenticated and session.get("sid"):
        try:
            accounts.end_session(current_user.tenant_id, uuid.UUID(session["sid"]), now=utcnow())
            db.session.commit()
        except ValueError:
            pass
    logout_user()
    session.clear()


def utcnow() -> datetime:
    return datetime.now(UTC)


def safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the dashboard (ASVS V3.7.2)."""
    fallback = url_for("dashboard.home")
    if not target or not isinstance(target, str):
        return fallback
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return fallback
    return target


def _login_email_key() -> str:
    return "login-email:" + (request.form.get("email") or "").strip().lower()[:254]


def _login_failed(response) -> bool:
    return response.status_code in (401, 422)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = request.form
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            tenant, owner = provision_tenant(
                business_name=form.get("business_name", ""),
                subdomain=form.get("subdomain", ""),
                time_zone=form.get("time_zone", ""),
                currency=form.get("currency", ""),
                owner_email=form.get("email", ""),
                owner_name=form.get("name", ""),
                password=form.get("password", ""),
            )
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            sign_in(owner)
            flash(f"Welcome to Fieldday, {owner.first_name}! Your booking site is live.", "success")
            return redirect(url_for("dashboard.home", welcome=1))
    return render_template(
        "auth/signup.html",
        form=form,
        errors=errors,
        time_zones=sorted(time_zones()),
        currencies=CURRENCIES,
        base_domain=current_app.config["BASE_DOMAIN"],
    ), (422 if errors else 200)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["LOGIN_LIMIT_PER_EMAIL"],
    key_func=_login_email_key,
    methods=["POST"],
    deduct_when=_login_failed,
)
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    error = None
    accounts_to_choose = None
    if request.method == "POST":
        try:
            user = accounts.authenticate(
                request.form.get("email", ""),
                request.form.get("password", ""),
                subdomain=request.form.get("business") or None,
                now=utcnow(),
            )
        except LoginFailed as exc:
            db.session.rollback()
            error = exc.message
        except accounts.ChooseBusiness as exc:
            db.session.rollback()
            accounts_to_choose = exc.accounts
        else:
            db.session.commit()
            sign_in(user)
            default = url_for("dashboard.my_day") if user.role == "tech" else None
            return redirect(safe_next(request.args.get("next")) if request.args.get("next") or not default else default)
    status = 401 if error else 200
    return render_template(
        "auth/login.html", error=error, email=request.form.get("email", ""), accounts=accounts_to_choose
    ), status


@bp.post("/logout")
def logout():
    sign_out()
    flash("You're logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def forgot_password():
    sent = False
    if request.method == "POST":
        for account in accounts.accounts_for_reset(request.form.get("email", "")):
            account_jobs.send_password_reset.enqueue(account.tenant_id, account.user_id)
        sent = True  # Same answer whether or not the address exists.
    return render_template("auth/forgot.html", sent=sent, email=request.form.get("email", ""))


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    g.referrer_policy = "no-referrer"
    try:
        user = accounts.user_for_reset_token(token)
    except TokenInvalid as exc:
        return render_template("auth/link_invalid.html", message=exc.message), 404
    errors: dict[str, str] = {}
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            errors["confirm"] = "The two passwords don't match."
        else:
            try:
                accounts.set_password(user, password)
            except ValidationFailed as exc:
                errors = exc.errors
            else:
                db.session.commit()
                sign_out()
                flash("Your password is changed. Log in with the new one.", "success")
                return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", user=user, errors=errors), (422 if errors else 200)


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token: str):
    g.referrer_policy = "no-referrer"
    now = utcnow()
    if request.method == "POST" and current_user.is_authenticated:
        # Joining another team: end this device's current session while its business is active.
        sign_out()
    try:
        invitation = accounts.invitation_for_token(token, now=now)
    except TokenInvalid as exc:
        return render_template("auth/link_invalid.html", message=exc.message), 404
    from tenants.models import Tenant

    tenant = db.session.get(Tenant, invitation.tenant_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            errors["confirm"] = "The two passwords don't match."
        else:
            try:
                user = accounts.accept_invitation(
                    invitation, name=request.form.get("name", ""), password=password, now=now
                )
            except ValidationFailed as exc:
                db.session.rollback()
                errors = exc.errors
            else:
                db.session.commit()
                sign_out()
                sign_in(user)
                flash(f"Welcome to {tenant.name}!", "success")
                return redirect(url_for("dashboard.my_day" if user.role == "tech" else "dashboard.home"))
    return render_template(
        "auth/accept_invite.html", invitation=invitation, tenant=tenant, errors=errors, form=request.form
    ), (422 if errors else 200)
