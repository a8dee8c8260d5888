"""The technician's day on a phone (dashboard blueprint): today's stops in route order, "on my
way", start and complete, before/after photos straight to object storage; plus the PWA files
(web app manifest and service worker) that let a technician install the page.

A technician sees and acts on the stops of the Technician linked to their login; owners and
admins pick any technician and may act on any booking of the business. Another technician's
stop answers 404, like another business's (no existence oracle).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.booking import services as booking_services
from app.booking.models import STATUS_LABELS, Booking
from app.dispatch import eta
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from app.media import photos as photo_services
from app.web.assets import asset_url
from app.web.dashboard import EVERYONE, MANAGERS, bp, roles
from tenants.plans import get_plan


def _now() -> datetime:
    return datetime.now(UTC)


def _tz() -> ZoneInfo:
    return ZoneInfo(g.tenant.time_zone)


def _is_manager() -> bool:
    return current_user.role in MANAGERS


def _parse_day(raw: str | None, today: date) -> date:
    try:
        day = date.fromisoformat(raw) if raw else today
    except ValueError:
        return today
    return day if 2000 <= day.year <= 2100 else today


def _stop(booking_id: uuid.UUID, *, for_update: bool = False) -> Booking:
    """A booking the current user may work on: their own technician's stop, or (managers) any."""
    booking = booking_services.get_booking(booking_id, for_update=for_update)
    if not _is_manager():
        mine = eta.technician_for_user(current_user.id)
        if mine is None or booking.technician_id != mine.id:
            raise NotFound("No such booking.")  # the same answer as a booking that doesn't exist
    return booking


def _storage_origin() -> str:
    origin = current_app.extensions.get("storage_origin")
    if origin is None:
        origin = current_app.extensions["storage_origin"] = photo_services.storage_origin(current_app.config)
    return origin


def _allow_storage(*directives: str) -> None:
    """Let this response reach object storage (see app/web/security.py ``widen``)."""
    extra = g.get("csp_extra") or {}
    for directive in directives:
        sources = extra.setdefault(directive, [])
        if _storage_origin() not in sources:
            sources.append(_storage_origin())
    g.csp_extra = extra


@bp.app_template_global()
def photo_src(photo) -> str:
    """The tenant-checked URL of a photo for an <img>; it redirects to storage, so this page's
    images may come from there."""
    _allow_storage("img-src")
    return url_for("dashboard.photo", photo_id=photo.id)


@bp.app_template_global()
def booking_photos(booking) -> list:
    """Stored photos of one booking, for the owner's booking page (dashboard/_stop_photos.html)."""
    return photo_services.list_photos([booking.id])[booking.id]


# The page --------------------------------------------------------------------------------------


@bp.get("/my-day")
@roles(*EVERYONE)
def my_day():
    tz = _tz()
    today = datetime.now(tz).date()
    day = _parse_day(request.args.get("day"), today)
    mine = eta.technician_for_user(current_user.id)
    techs = booking_services.list_technicians() if _is_manager() else []
    tech = mine
    if _is_manager():
        wanted = request.args.get("technician")
        if wanted:
            try:
                tech = booking_services.get_technician(uuid.UUID(wanted))
            except ValueError:
                raise NotFound("No such technician.") from None
        elif tech is None and techs:
            tech = techs[0]
    bookings = eta.list_day_stops(tech.id, day, g.tenant.time_zone) if tech else []
    photos = photo_services.list_photos([b.id for b in bookings])
    current = next((b for b in bookings if b.status in ("confirmed", "in_progress")), None)
    from app.web.payments import booking_payment_facts

    stops = []
    for position, booking in enumerate(bookings, start=1):
        # What completing would charge, for the stop being worked on (usually one).
        money = booking_payment_facts(booking) if booking.status == "in_progress" else None
        stops.append(
            SimpleNamespace(
                b=booking,
                position=position,
                late=eta.minutes_late(booking),
                arrival=eta.expected_arrival(booking),
                window_end=booking.starts_at + timedelta(minutes=booking.arrival_window_min or 0),
                open=booking is current or (current is None and position == 1),
                photos=photos[booking.id],
                money=money,
                items=[i for i in booking.items if i.kind != "addon"],
                addons=[i for i in booking.items if i.kind == "addon"],
            )
        )
    _allow_storage("connect-src", "img-src")  # photos go straight to storage and come back from it
    return render_template(
        "dashboard/my_day.html",
        day=day,
        today=today,
        tomorrow=today + timedelta(days=1),
        prev_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        tech=tech,
        mine=mine,
        techs=techs,
        stops=stops,
        done=sum(1 for s in stops if s.b.status == "completed"),
        late=max((s.late for s in stops), default=0),
        labels=STATUS_LABELS,
        max_mb=photo_services.MAX_BYTES // (1024 * 1024),
        photo_types=",".join(photo_services.PHOTO_TYPES),
    )


def _back(booking: Booking):
    """Back to the stop on its day's page (with the technician, for a manager)."""
    day = booking.starts_at.astimezone(_tz()).date()
    args = {}
    if day != datetime.now(_tz()).date():
        args["day"] = day.isoformat()
    if _is_manager():
        args["technician"] = str(booking.technician_id)
    return redirect(url_for("dashboard.my_day", _anchor=f"stop-{booking.id}", **args))


def _local_day(booking: Booking) -> date:
    return booking.starts_at.astimezone(_tz()).date()


def _clock(dt: datetime) -> str:
    from app.web.filters import clock

    return clock(dt.astimezone(_tz()))


# Progress --------------------------------------------------------------------------------------


@bp.post("/my-day/<uuid:booking_id>/on-my-way")
@roles(*EVERYONE)
def my_day_on_my_way(booking_id: uuid.UUID):
    booking = _stop(booking_id, for_update=True)
    now = _now()
    try:
        eta_at = eta.mark_on_my_way(booking, time_zone=g.tenant.time_zone, actor_id=current_user.id, now=now)
        changes = eta.recompute_etas(booking.technician_id, _local_day(booking), now=now, time_zone=g.tenant.time_zone)
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(booking)
    db.session.commit()
    eta.notify_on_my_way(booking, now=now)
    eta.notify_new_etas(
        changes + eta.stops_to_tell(booking.technician_id, _local_day(booking), g.tenant.time_zone), now=now
    )
    name = booking.customer.name
    if eta_at is not None:
        flash(f"On your way to {name}. ETA {_clock(eta_at)}.", "success")
    else:
        flash(f"On your way to {name}, booked for {_clock(booking.starts_at)}.", "success")
    return _back(booking)


@bp.post("/my-day/<uuid:booking_id>/start")
@roles(*EVERYONE)
def my_day_start(booking_id: uuid.UUID):
    booking = _stop(booking_id, for_update=True)
    now = _now()
    try:
        eta.start_stop(booking, actor_id=current_user.id, now=now)
        changes = eta.recompute_etas(booking.technician_id, _local_day(booking), now=now, time_zone=g.tenant.time_zone)
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(booking)
    db.session.commit()
    eta.notify_new_etas(
        changes + eta.stops_to_tell(booking.technician_id, _local_day(booking), g.tenant.time_zone), now=now
    )
    flash(f"Started {booking.customer.name}'s job at {_clock(now)}.", "success")
    return _back(booking)


@bp.post("/my-day/<uuid:booking_id>/complete")
@roles(*EVERYONE)
def my_day_complete(booking_id: uuid.UUID):
    from app.web.calendar import _charge_at_completion

    booking = _stop(booking_id, for_update=True)
    now = _now()
    try:
        tip = 0
        if (request.form.get("tip") or "").strip():
            from app.payments.rules import parse_money

            tip = parse_money(request.form.get("tip"), "tip", allow_zero=True)
        eta.complete_stop(booking, actor_id=current_user.id, now=now)
        message = _charge_at_completion(booking, tip)
        changes = eta.recompute_etas(booking.technician_id, _local_day(booking), now=now, time_zone=g.tenant.time_zone)
    except ValidationFailed as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values()), exc.message), "error")
        return _back(booking)
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(booking)
    db.session.commit()
    eta.notify_new_etas(
        changes + eta.stops_to_tell(booking.technician_id, _local_day(booking), g.tenant.time_zone), now=now
    )
    flash(message or f"Job completed for {booking.customer.name}.", "success")
    return _back(booking)


# Photos ----------------------------------------------------------------------------------------


@bp.post("/my-day/<uuid:booking_id>/photos")
@roles(*EVERYONE)
def my_day_photo_new(booking_id: uuid.UUID):
    """A presigned POST for one photo: JSON ``{photo_id, url, fields, done_url}``. The key is ours."""
    booking = _stop(booking_id)
    body = request.get_json(silent=True) if request.is_json else request.form
    if not hasattr(body, "get"):  # a JSON list or scalar
        body = {}
    ticket = photo_services.start_upload(
        booking,
        kind=body.get("kind"),
        content_type=body.get("content_type"),
        size=body.get("size"),
        uploaded_by=current_user.id,
        media_gb=get_plan(g.tenant.plan).media_gb,
    )
    db.session.commit()
    return jsonify(
        photo_id=str(ticket.photo.id),
        url=ticket.url,
        fields=ticket.fields,
        done_url=url_for("dashboard.my_day_photo_done", photo_id=ticket.photo.id),
    ), 201


@bp.post("/my-day/photos/<uuid:photo_id>/done")
@roles(*EVERYONE)
def my_day_photo_done(photo_id: uuid.UUID):
    """The phone says the upload finished: we check storage has it before calling it stored."""
    photo = photo_services.get_photo(photo_id)
    _stop(photo.booking_id)
    try:
        photo_services.finish_upload(photo)
    except photo_services.PhotoNotStored as exc:
        db.session.commit()  # the pending row is gone for good
        return jsonify(error={"status": 422, "code": exc.code, "message": exc.message}), 422
    db.session.commit()
    return jsonify(photo_id=str(photo.id), kind=photo.kind, status=photo.status, src=photo_src(photo))


@bp.get("/photos/<uuid:photo_id>")
@roles(*EVERYONE)
def photo(photo_id: uuid.UUID):
    """A stored photo: a 302 to a presigned GET valid for five minutes, after the tenant (RLS)
    and, for a technician, the stop's owner are checked."""
    photo = photo_services.get_photo(photo_id)
    if photo.status != "stored":
        raise NotFound("No such photo.")
    _stop(photo.booking_id)
    return redirect(photo_services.read_url(photo), code=302)


# The PWA: manifest and service worker ----------------------------------------------------------
#
# Public on the app host (a browser fetches the manifest without cookies), and free of any
# business's data: the manifest is generic and the service worker caches only the hashed CSS,
# JS and icons of the app shell, never a dashboard page.

pwa = Blueprint("pwa", __name__)
SW_SOURCE = Path(__file__).resolve().parents[1] / "static" / "src" / "sw.js"
SHELL = ("app.css", "dashboard.css", "tech.css", "htmx.min.js", "app.js", "tech.js", "icon-192.png")
THEME_COLOUR = "#0f766e"


@pwa.get("/sw.js")
def service_worker():
    shell = [asset_url(name) for name in SHELL]
    version = hashlib.sha256("\n".join(shell).encode()).hexdigest()[:12]
    body = SW_SOURCE.read_text().replace('["__SHELL__"]', json.dumps(shell)).replace("__VERSION__", version)
    response = current_app.response_class(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"  # always revalidated: a deploy ships a new shell
    return response


@pwa.get("/manifest.webmanifest")
def web_manifest():
    icon = [
        {"src": asset_url("icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": asset_url("icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
        {"src": asset_url("icon-maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
        {"src": asset_url("icon.svg"), "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
    ]
    manifest = {
        "id": "/my-day",
        "name": "Fieldday · My day",
        "short_name": "My day",
        "description": "Your stops for the day, in order: directions, gate codes, photos and payment.",
        "start_url": "/my-day",
        "scope": "/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#f4f6f8",
        "theme_color": THEME_COLOUR,
        "icons": icon,
    }
    response = current_app.response_class(
        json.dumps(manifest, ensure_ascii=False), mimetype="application/manifest+json"
    )
    response.headers["Cache-Control"] = "no-cache"
    return response


# The dashboard blueprint's routes all need a login; these two must not (see above), so they live
# on their own blueprint, registered on the app host alongside the dashboard.
bp.record_once(lambda state: state.app.register_blueprint(pwa, subdomain=state.subdomain))
