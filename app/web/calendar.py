"""The owner's calendar, booking pages and the availability explainer (dashboard blueprint)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import abort, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.booking import services as booking_services
from app.booking.errors import SlotTaken, SlotUnavailable
from app.booking.models import STATUS_LABELS, TRANSITIONS
from app.catalog import services as catalog
from app.customers.models import SIZE_CLASSES
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from app.geo.geocoding import get_geocoder
from app.web.dashboard import bp

UTC = UTC


def _tz() -> ZoneInfo:
    return ZoneInfo(g.tenant.time_zone)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_local(value: str, field: str) -> datetime:
    """A naive wall-clock time from the calendar, in the tenant's zone, as UTC."""
    try:
        naive = datetime.fromisoformat((value or "").replace("Z", "")[:19])
    except ValueError:
        raise ValidationFailed({field: "Not a valid date and time."}) from None
    return naive.replace(tzinfo=_tz()).astimezone(UTC)


@bp.get("/calendar")
def calendar():
    techs = booking_services.list_technicians()
    return render_template("dashboard/calendar.html", techs=techs)


@bp.get("/calendar/events")
def calendar_events():
    tz = _tz()
    start = _parse_local(request.args.get("start", ""), "start")
    end = _parse_local(request.args.get("end", ""), "end")
    if end - start > timedelta(days=62):
        raise ValidationFailed({"end": "Ask for at most two months at a time."})
    events = []
    for b in booking_services.list_bookings(start, end):
        events.append(
            {
                "id": str(b.id),
                "resourceIds": [str(b.technician_id)],
                "start": b.starts_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S"),
                "end": b.ends_at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S"),
                "title": f"{b.customer.name} · {', '.join(i.name for i in b.items)}",
                "backgroundColor": b.technician.color if b.status != "pending" else "#b45309",
                "classNames": [f"ev-{b.status}"],
                "editable": b.status in ("pending", "confirmed"),
                "extendedProps": {
                    "url": url_for("dashboard.booking_detail", booking_id=b.id),
                    "status": b.status,
                    "reference": b.reference,
                },
            }
        )
    return jsonify(events)


@bp.post("/calendar/move")
def calendar_move():
    body = request.get_json(silent=True) or {}
    try:
        booking_id = uuid.UUID(str(body.get("id")))
        tech_id = uuid.UUID(str(body["resourceId"])) if body.get("resourceId") else None
    except ValueError:
        abort(404)
    booking = booking_services.get_booking(booking_id, for_update=True)
    new_start = _parse_local(body.get("start", ""), "start")
    booking_services.reschedule_booking(
        g.tenant, booking, new_start, actor_type="user", actor_id=current_user.id, now=_now(), technician_id=tech_id
    )
    db.session.commit()
    return jsonify(ok=True, reference=booking.reference)


@bp.get("/bookings/<uuid:booking_id>")
def booking_detail(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id)
    events = booking_services.booking_events(booking)
    from app.accounts.services import list_users

    users = {u.id: u for u in list_users()}
    allowed = sorted(TRANSITIONS[booking.status])
    cal_date = booking.starts_at.astimezone(_tz()).date().isoformat()
    from app.payments.models import PAYMENT_STATUS_LABELS
    from app.web.payments import booking_payment_facts

    return render_template(
        "dashboard/booking.html",
        booking=booking,
        events=events,
        users=users,
        allowed=allowed,
        labels=STATUS_LABELS,
        cal_date=cal_date,
        money=booking_payment_facts(booking),
        payment_labels=PAYMENT_STATUS_LABELS,
    )


@bp.post("/bookings/<uuid:booking_id>/status")
def booking_status(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id, for_update=True)
    to = request.form.get("status", "")
    message = None
    try:
        if to == "canceled":
            booking_services.cancel_booking(g.tenant, booking, actor_type="user", actor_id=current_user.id, now=_now())
        else:
            tip = 0
            if to == "completed" and (request.form.get("tip") or "").strip():
                from app.payments.rules import parse_money

                tip = parse_money(request.form.get("tip"), "tip", allow_zero=True)
            booking_services.transition(booking, to, actor_type="user", actor_id=current_user.id)
            if to == "completed":
                message = _charge_at_completion(booking, tip)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values()), exc.message), "error")
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(message or f"Booking {booking.reference} is now {STATUS_LABELS[booking.status].lower()}.", "success")
    return redirect(url_for("dashboard.booking_detail", booking_id=booking_id))


def _charge_at_completion(booking, tip_cents: int) -> str | None:
    """Completing a job charges what is left to the card saved with the deposit (DESIGN §6)."""
    from app.catalog.services import format_money
    from app.payments import services as payments
    from app.payments.jobs import enqueue_balance_charge

    due = payments.balance_due(booking)
    if due == 0 and tip_cents == 0:
        return f"Job completed. Booking {booking.reference} is paid in full."
    if payments.saved_card(booking) is None or not g.tenant.takes_card_payments:
        return (
            f"Job completed. {format_money(due, booking.currency)} is still owed: "
            "record cash or check, or send the customer a pay link."
        )
    if due + tip_cents < 50:  # Stripe's minimum charge
        owed = format_money(due, booking.currency)
        return f"Job completed. {owed} is owed: too little to charge to a card, so record it as cash."
    enqueue_balance_charge(booking, tip_cents)
    return f"Job completed. Charging {format_money(due + tip_cents, booking.currency)} to the card on file…"


@bp.route("/bookings/new", methods=["GET", "POST"])
def new_booking():
    packages = catalog.list_packages(active_only=True, kind="package")
    addons = catalog.list_packages(active_only=True, kind="addon")
    techs = booking_services.list_technicians()
    form = request.form if request.method == "POST" else request.args
    errors: dict[str, str] = {}
    if request.method == "POST":
        place = get_geocoder().geocode(form.get("address", ""))
        try:
            starts_at = _parse_local(form.get("starts_local", ""), "starts_local")
            tech = uuid.UUID(form["technician_id"]) if form.get("technician_id") else None
            if place is None:
                raise ValidationFailed({"address": "We couldn't place that address. Try a street number and name."})
            req = booking_services.BookingRequest(
                package_id=form.get("package_id"),
                addon_ids=form.getlist("addon_ids"),
                vehicle={k: form.get(k, "") for k in ("size_class", "year", "make", "model", "color", "plate")},
                place=place.as_dict(),
                access_notes=form.get("access_notes"),
                customer={k: form.get(k, "") for k in ("name", "phone", "email")},
                starts_at=starts_at,
                technician_id=tech,
                notes=form.get("notes"),
                source="dashboard",
            )
            booking = booking_services.book(g.tenant, req, now=_now(), actor_type="user", actor_id=current_user.id)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        except (SlotTaken, SlotUnavailable, ValueError) as exc:
            db.session.rollback()
            errors = {"starts_local": getattr(exc, "message", "Choose a technician from the list.")}
        else:
            db.session.commit()
            from app.booking.jobs import schedule_hold_expiry

            schedule_hold_expiry(booking)
            flash(f"Booked {booking.reference}.", "success")
            return redirect(url_for("dashboard.booking_detail", booking_id=booking.id))
    return render_template(
        "dashboard/booking_new.html",
        form=form,
        errors=errors,
        packages=packages,
        addons=addons,
        techs=techs,
        sizes=SIZE_CLASSES,
    ), (422 if errors else 200)


@bp.get("/availability")
def explain():
    techs = booking_services.list_technicians()
    tz = _tz()
    try:
        day = date.fromisoformat(request.args.get("date", "")) if request.args.get("date") else datetime.now(tz).date()
    except ValueError:
        day = datetime.now(tz).date()
    if not 2000 <= day.year <= 2100:
        day = datetime.now(tz).date()
    tech_id = request.args.get("technician_id") or (str(techs[0].id) if techs else "")
    minutes = request.args.get("duration_min", "120")
    # With the job's address the explainer is route-aware: can the technician drive there, and
    # how many minutes does it add to the day?
    address = (request.args.get("address") or "").strip()[:200]
    place, address_error = None, None
    if address:
        found = get_geocoder().geocode(address)
        if found is None:
            address_error = "We couldn't find that address."
        else:
            place = found.as_dict()
    rows = []
    if tech_id:
        try:
            rows = booking_services.explain_day(
                g.tenant,
                uuid.UUID(tech_id),
                day,
                timedelta(minutes=max(15, min(int(minutes), 720))),
                now=_now(),
                place=place,
            )
        except ValueError:
            abort(404)
    return render_template(
        "dashboard/explain.html",
        techs=techs,
        day=day,
        tech_id=tech_id,
        minutes=minutes,
        rows=rows,
        address=address,
        address_error=address_error,
        place=place,
    )
