"""The owner's route page for a day: the day as booked against the optimised proposal on a map,
"save N minutes", approve, and reordering a technician's stops (dashboard blueprint)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.dispatch import services as dispatch
from app.errors import ValidationFailed
from app.extensions import db
from app.web.dashboard import bp


def _day(raw: str | None) -> date:
    today = datetime.now(UTC).astimezone(ZoneInfo(g.tenant.time_zone)).date()
    try:
        return date.fromisoformat(raw) if raw else today
    except ValueError:
        return today


@bp.get("/routes")
def routes():
    day = _day(request.args.get("day"))
    plan = dispatch.latest_plan(day)
    if plan is not None and plan.status == "stale":
        plan = None
    live = dispatch.evaluate_now(g.tenant, day)  # the day as it stands in the database
    current = plan.current if plan is not None and plan.current else live
    proposed = plan.proposed if plan is not None and plan.status in ("ready", "approved") else None
    saving = None
    if proposed is not None and current is not None:
        saving = {
            "minutes": max(0, round((current["drive_s"] - proposed["drive_s"]) / 60)),
            "km": max(0.0, round((current["distance_m"] - proposed["distance_m"]) / 1000, 1)),
        }
    # A proposal waiting for approval is shown; otherwise the live order (approved, then edited).
    shown = proposed if plan is not None and plan.status == "ready" else live
    return render_template(
        "dashboard/routes.html",
        day=day,
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        plan=plan,
        current=current,
        proposed=proposed,
        shown=shown,
        saving=saving,
        tile_url=current_app.config["MAP_TILE_URL"],
        tile_attribution=current_app.config["MAP_TILE_ATTRIBUTION"],
    )


@bp.post("/routes/optimise")
def optimise_routes():
    day = _day(request.form.get("day"))
    dispatch.request_plan(g.tenant, day, user_id=current_user.id)
    db.session.commit()
    return redirect(url_for("dashboard.routes", day=day.isoformat()))


@bp.get("/routes/plans/<uuid:plan_id>")
def route_plan_status(plan_id: uuid.UUID):
    plan = dispatch.get_plan(plan_id)
    return jsonify(id=str(plan.id), status=plan.status, error=plan.error)


@bp.post("/routes/plans/<uuid:plan_id>/approve")
def approve_route_plan(plan_id: uuid.UUID):
    plan = dispatch.get_plan(plan_id)
    try:
        notes = dispatch.approve(plan, user_id=current_user.id)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
        return redirect(url_for("dashboard.routes", day=plan.day.isoformat()))
    audit.record(
        g.tenant.id,
        "routes.approved",
        actor_id=current_user.id,
        subject_type="route_plan",
        subject_id=plan.id,
        detail={"day": plan.day.isoformat(), "notes": notes},
    )
    db.session.commit()
    flash("Routes approved: technicians see this order on their phones.", "success")
    for note in notes:
        flash(note, "info")
    return redirect(url_for("dashboard.routes", day=plan.day.isoformat()))


@bp.post("/routes/reorder")
def reorder_route():
    """Drag-and-drop (JSON) or the up/down buttons (form) on a technician's stops."""
    body = request.get_json(silent=True) if request.is_json else None
    form = body if body is not None else request.form
    day = _day(form.get("day"))
    try:
        technician_id = uuid.UUID(str(form.get("technician_id")))
    except ValueError:
        raise ValidationFailed({"technician_id": "Choose a technician."}) from None
    if body is not None:
        order = [str(x) for x in body.get("order") or []]
    else:
        order = (form.get("order") or "").split(",")
        move, direction = form.get("move"), form.get("direction")
        if move in order and direction in ("up", "down"):
            i = order.index(move)
            j = i - 1 if direction == "up" else i + 1
            if 0 <= j < len(order):
                order[i], order[j] = order[j], order[i]
    result = dispatch.reorder(g.tenant, day, technician_id, order)
    db.session.commit()
    if result["violations"]:
        flash("That order misses a customer's window: " + "; ".join(result["violations"]), "error")
    else:
        flash("New order saved. ETAs updated.", "success")
    if body is not None:
        return jsonify(result)
    return redirect(url_for("dashboard.routes", day=day.isoformat()))
