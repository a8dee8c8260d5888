"""Services, booking rules and technicians' availability (dashboard blueprint)."""

from __future__ import annotations

import re
import uuid
from datetime import date, time

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.booking import services as booking_services
from app.booking.models import Technician
from app.catalog import services as catalog
from app.customers.models import SIZE_CLASSES
from app.errors import ValidationFailed
from app.extensions import db
from app.geo.geocoding import get_geocoder
from app.web.dashboard import bp
from tenants import quotas

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
RULES = {
    # field: (label, minimum, maximum, hint)
    "lead_time_min": ("Minimum notice (minutes)", 0, 20160, "How soon a customer can book ahead."),
    "horizon_days": ("Booking horizon (days)", 1, 365, "How far ahead customers can book."),
    "buffer_min": ("Buffer between jobs (minutes)", 0, 240, "Time to pack up and drive."),
    "arrival_window_min": ("Arrival window (minutes)", 0, 480, "Customers are told you'll arrive within this window."),
    "slot_step_min": ("Offer a time every (minutes)", 15, 60, "15, 20, 30 or 60."),
    "hold_min": ("Hold while paying a deposit (minutes)", 5, 1440, "A pending booking frees its slot after this."),
    "cancel_cutoff_hours": ("Online changes close (hours before)", 0, 336, "After this, customers must call."),
    "max_reschedules": ("Online reschedules allowed", 0, 20, "Per booking."),
}


def _prices_from_form(form) -> dict:
    prices = {}
    for size in SIZE_CLASSES:
        price, minutes = form.get(f"price_{size}", "").strip(), form.get(f"duration_{size}", "").strip()
        if not price and not minutes:
            continue
        try:
            cents = round(float(price.replace("$", "").replace(",", "")) * 100)
        except ValueError:
            raise ValidationFailed({f"prices.{size}": "Enter a price like 149.00."}) from None
        prices[size] = {"price_cents": cents, "duration_min": minutes or "x"}
    return prices


@bp.route("/services", methods=["GET", "POST"])
def services():
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            catalog.create_package(
                g.tenant.id,
                name=form.get("name", ""),
                kind=form.get("kind", "package"),
                description=form.get("description"),
                prices=_prices_from_form(form),
                position=len(catalog.list_packages()),
            )
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash("Service added. It shows on your booking site now.", "success")
            return redirect(url_for("dashboard.services"))
    return render_template(
        "dashboard/services.html",
        packages=catalog.list_packages(),
        sizes=SIZE_CLASSES,
        errors=errors,
        form=request.form,
        rules=RULES,
        rule_errors={},
    ), (422 if errors else 200)


@bp.route("/services/<uuid:package_id>", methods=["GET", "POST"])
def edit_service(package_id: uuid.UUID):
    package = catalog.get_package(package_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            catalog.update_package(
                package,
                name=form.get("name", ""),
                description=form.get("description", ""),
                prices=_prices_from_form(form),
                active=form.get("active") == "on",
            )
            if package.kind == "package":
                _set_package_deposit(package, form)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"{package.name} saved.", "success")
            return redirect(url_for("dashboard.services"))
    return render_template(
        "dashboard/service_edit.html",
        package=package,
        sizes=SIZE_CLASSES,
        errors=errors,
        form=request.form if errors else None,
    ), (422 if errors else 200)


def _set_package_deposit(package, form) -> None:
    """A service's own deposit rule; empty means "use the business's rule"."""
    from app.payments.rules import parse_rule

    kind = form.get("deposit_kind", "")
    if not kind:
        package.deposit_kind = package.deposit_value = None
    else:
        package.deposit_kind, package.deposit_value = parse_rule(kind, form.get("deposit_value"), allow_none=True)
    db.session.flush()


@bp.post("/services/rules")
def booking_rules():
    tenant = g.tenant
    errors: dict[str, str] = {}
    values = {}
    for key, (_label, lo, hi, _) in RULES.items():
        raw = request.form.get(key, "").strip()
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            errors[key] = f"Enter a whole number from {lo} to {hi}."
        else:
            values[key] = int(raw)
    if "slot_step_min" in values and values["slot_step_min"] not in (15, 20, 30, 60):
        errors["slot_step_min"] = "Choose 15, 20, 30 or 60."
    if errors:
        return render_template(
            "dashboard/services.html",
            packages=catalog.list_packages(),
            sizes=SIZE_CLASSES,
            errors={},
            form={},
            rules=RULES,
            rule_errors=errors,
            rule_form=request.form,
        ), 422
    for key, value in values.items():
        setattr(tenant, key, value)
    audit.record(
        tenant.id,
        "tenant.booking_rules_changed",
        actor_id=current_user.id,
        subject_type="tenant",
        subject_id=tenant.id,
        detail=values,
    )
    db.session.commit()
    flash("Booking rules saved.", "success")
    return redirect(url_for("dashboard.services"))


def _hours_from_form(form) -> dict[int, list[tuple[time, time]]]:
    hours: dict[int, list[tuple[time, time]]] = {}
    for day in range(7):
        if form.get(f"on_{day}") != "on":
            continue
        try:
            start, end = (
                time.fromisoformat(form.get(f"start_{day}", "")),
                time.fromisoformat(form.get(f"end_{day}", "")),
            )
        except ValueError:
            raise ValidationFailed({f"hours_{day}": f"Enter start and end times for {WEEKDAYS[day]}."}) from None
        if start >= end:
            raise ValidationFailed({f"hours_{day}": f"{WEEKDAYS[day]} must end after it starts."})
        hours[day] = [(start, end)]
    return hours


def _tech_fields(form, current_tech: uuid.UUID | None = None) -> dict:
    name = " ".join(form.get("name", "").split())
    if not name:
        raise ValidationFailed({"name": "Enter the technician's name."})
    color = form.get("color", "#0f766e").lower()
    if not re.fullmatch(r"#[0-9a-f]{6}", color):
        raise ValidationFailed({"color": "Pick a colour."})
    home = None
    if form.get("home_address", "").strip():
        place = get_geocoder().geocode(form["home_address"])
        if place is None:
            raise ValidationFailed({"home_address": "We couldn't place that address."})
        home = place.as_dict()
    skills = [s.strip().lower() for s in form.get("skills", "").split(",") if s.strip()][:20]
    user_id = None
    if form.get("user_id"):
        from app.accounts.services import get_user
        from app.errors import NotFound

        try:
            user_id = get_user(uuid.UUID(form["user_id"])).id
        except (ValueError, NotFound):
            raise ValidationFailed({"user_id": "Choose someone from your team."}) from None
        linked = db.session.scalar(
            db.select(Technician.id).where(Technician.user_id == user_id, Technician.id != current_tech)
        )
        if linked is not None:
            raise ValidationFailed({"user_id": "That login already belongs to another technician."})
    return {"name": name, "color": color, "home": home, "skills": skills, "user_id": user_id}


@bp.route("/technicians", methods=["GET", "POST"])
def technicians():
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            fields = _tech_fields(request.form)
            hours = _hours_from_form(request.form)
            quotas.check(g.tenant, "technicians")  # the plan's technicians (PlanLimitReached keeps the form)
            booking_services.create_technician(
                g.tenant.id, hours=hours, position=len(booking_services.list_technicians(active_only=False)), **fields
            )
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash("Technician added.", "success")
            return redirect(url_for("dashboard.technicians"))
    from app.accounts.services import list_users

    return render_template(
        "dashboard/technicians.html",
        techs=booking_services.list_technicians(active_only=False),
        users=[u for u in list_users() if u.is_active],
        weekdays=WEEKDAYS,
        errors=errors,
        form=request.form,
    ), (422 if errors else 200)


@bp.route("/technicians/<uuid:technician_id>", methods=["GET", "POST"])
def edit_technician(technician_id: uuid.UUID):
    tech = booking_services.get_technician(technician_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            fields = _tech_fields(request.form, current_tech=tech.id)
            hours = _hours_from_form(request.form)
            if request.form.get("active") == "on" and not tech.active:  # back on the schedule: a technician again
                quotas.check(g.tenant, "technicians")
        except ValidationFailed as exc:
            errors = exc.errors
        else:
            home = fields.pop("home")
            for key, value in fields.items():
                setattr(tech, key, value)
            if home:
                tech.home_address, tech.home_lat, tech.home_lng = home["line1"], home["lat"], home["lng"]
            tech.active = request.form.get("active") == "on"
            booking_services.set_hours(tech, hours)
            db.session.commit()
            flash(f"{tech.name} saved.", "success")
            return redirect(url_for("dashboard.technicians"))
    from app.accounts.services import list_users

    return render_template(
        "dashboard/technician_edit.html",
        tech=tech,
        weekdays=WEEKDAYS,
        errors=errors,
        users=[u for u in list_users() if u.is_active],
    ), (422 if errors else 200)


@bp.post("/technicians/<uuid:technician_id>/days-off")
def add_day_off(technician_id: uuid.UUID):
    tech = booking_services.get_technician(technician_id)
    try:
        day = date.fromisoformat(request.form.get("day", ""))
    except ValueError:
        flash("Pick a day.", "error")
    else:
        booking_services.add_day_off(tech, day, g.tenant.time_zone, label=request.form.get("label") or "Day off")
        db.session.commit()
        flash(f"{tech.name} is off on {day.strftime('%A, %B %-d')}.", "success")
    return redirect(url_for("dashboard.edit_technician", technician_id=technician_id))
