"""Google Calendar on the Integrations page (dashboard blueprint) and its push webhook.

The OAuth ``state`` is random, kept in the signed session with the business, the user and the
technician it was started for; the callback accepts only that exact state from that same session
(so a state from another session, business or user stores nothing). Pushes are authenticated by
channel id and secret token (RELIABILITY §4; G3).

A technician connects their own account from their phone (app/web/google_tech.py): the same start and
the same callback (one redirect URI at Google), marked ``origin: "tech"`` so the callback checks the
technician is still the one linked to this login and sends them back to their own page.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime

from flask import abort, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_login import current_user
from sqlalchemy import text

from app.calendar import google_api
from app.calendar import services as gcal
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import csrf, db, limiter
from app.urls import app_url
from app.web.dashboard import EVERYONE, MANAGERS, bp, roles
from app.web.webhooks import bp as webhooks_bp
from tenants.context import tenant_context

SESSION_KEY = "google_oauth"
STATE_MAX_AGE_S = 15 * 60


class StateMismatch(FielddayError):
    status = 400
    code = "google_state_mismatch"
    message = (
        "This Google sign-in doesn't match one started from this browser and account, so nothing was saved. "
        "Start again from Integrations."
    )

    def __init__(self, message: str | None = None, *, field: str | None = None):
        if message is None and current_user.is_authenticated and current_user.role not in MANAGERS:
            message = self.message.replace("from Integrations", "from My calendar")
        super().__init__(message, field=field)


def _now() -> datetime:
    return datetime.now(UTC)


def _back(origin: str = "integrations"):
    if origin == "tech":
        return redirect(url_for("dashboard.my_calendar"))
    return redirect(url_for("dashboard.integrations") + "#google")


@bp.app_context_processor
def inject_google_panel():
    return {"google_panel": _panel}


def _panel() -> dict:
    """What the Integrations page shows for Google (read on the page's own request)."""
    from app.booking.services import list_technicians

    if g.get("tenant") is None:
        return {}
    _allow_consent_redirect()
    connections = gcal.list_connections()
    calendars = {c.id: gcal.calendars_of(c) for c in connections}
    technicians = list_technicians()
    taken = {c.technician_id for c in connections}
    return {
        "configured": google_api.configured(),
        "connections": connections,
        "calendars": calendars,
        "technicians": technicians,
        "tech_names": {t.id: t.name for t in technicians},
        "unconnected": [t for t in technicians if t.id not in taken],
        "business_connected": None in taken,
        "proposals": gcal.open_proposals(),
        "syncing": any(c.sync_status == "queued" for cals in calendars.values() for c in cals),
        "polled_only": gcal.polled_only([c for cals in calendars.values() for c in cals], now=_now()),
    }


def _allow_consent_redirect() -> None:
    """The Connect form posts here and is redirected to Google's consent page; browsers check
    form-action along the redirect chain, so this page's CSP allows that one origin."""
    from urllib.parse import urlsplit

    auth = urlsplit(google_api.endpoints()["auth"])
    extra = dict(g.get("csp_extra") or {})
    extra["form-action"] = [*extra.get("form-action", []), f"{auth.scheme}://{auth.netloc}"]
    g.csp_extra = extra


# Connect and disconnect ---------------------------------------------------------------------------------


def _redirect_uri() -> str:
    return app_url(url_for("dashboard.google_callback"))


@bp.post("/integrations/google/connect")
def google_connect():
    raw = request.form.get("technician_id", "")
    technician_id = None
    if raw:
        try:
            technician_id = uuid.UUID(raw)
        except ValueError:
            raise NotFound("No such technician.") from None
        from app.booking.services import get_technician

        get_technician(technician_id)
    return start_google_connect(technician_id)


def start_google_connect(technician_id: uuid.UUID | None, *, origin: str = "integrations"):
    """Remember this sign-in in the session (one at a time: a new start replaces an unfinished one) and
    send the browser to Google's consent page. The caller has checked who may connect ``technician_id``."""
    url, state, verifier = gcal.start_connect(_redirect_uri())
    session[SESSION_KEY] = {
        "state": state,
        "verifier": verifier,
        "tenant": str(g.tenant.id),
        "user": str(current_user.id),
        "technician": str(technician_id) if technician_id else "",
        "origin": origin,
        "at": int(time.time()),
    }
    return redirect(url, 303)


def _own_technician_id() -> uuid.UUID | None:
    from app.dispatch.eta import technician_for_user

    mine = technician_for_user(current_user.id)
    return mine.id if mine else None


@bp.get("/integrations/google/callback")
@roles(*EVERYONE)  # a technician's own sign-in ends here too; who may finish what is checked below
def google_callback():
    started = session.pop(SESSION_KEY, None)
    given = request.args.get("state", "")
    if (
        not started
        or not given
        or not secrets.compare_digest(given.encode(), str(started.get("state", "")).encode())
        or started.get("tenant") != str(g.tenant.id)
        or started.get("user") != str(current_user.id)
        or time.time() - int(started.get("at", 0)) > STATE_MAX_AGE_S
    ):
        current_app.logger.warning("google oauth callback refused: state mismatch")
        raise StateMismatch()
    origin = "tech" if started.get("origin") == "tech" else "integrations"
    technician_id = uuid.UUID(started["technician"]) if started.get("technician") else None
    if origin == "tech":
        # Only the technician linked to this login, still linked now (the owner may have changed it).
        if technician_id is None or technician_id != _own_technician_id():
            raise NotFound("No such technician.")
    elif current_user.role not in MANAGERS:
        abort(403)  # started as an owner or admin, finished after losing that role
    if request.args.get("error"):
        flash("Google Calendar wasn't connected (you cancelled on Google's page).", "info")
        return _back(origin)
    code = request.args.get("code", "")
    if not code:
        raise StateMismatch(
            "Google sent no sign-in code. Start again from " + ("My calendar." if origin == "tech" else "Integrations.")
        )
    try:
        conn = gcal.finish_connect(
            g.tenant,
            technician_id=technician_id,
            code=code,
            code_verifier=started.get("verifier", ""),
            redirect_uri=_redirect_uri(),
            user_id=current_user.id,
            now=_now(),
        )
    except gcal.ConnectFailed as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return _back(origin)
    _audit(
        "google.connected", conn, {"account": conn.account_email, **({"by": "technician"} if origin == "tech" else {})}
    )
    db.session.commit()
    if origin == "tech":
        flash(f"Google Calendar connected ({conn.account_email}). Syncing now.", "success")
    else:
        flash(
            f"Google Calendar connected ({conn.account_email}). Choose which calendars Fieldday uses below.", "success"
        )
    return _back(origin)


@bp.post("/integrations/google/<uuid:connection_id>/calendars")
def google_calendars(connection_id: uuid.UUID):
    conn = gcal.get_connection(connection_id, for_update=True)
    form = request.form
    receives = form.get("receives", "")
    choices: dict[uuid.UUID, dict] = {}
    for cal in gcal.calendars_of(conn):
        tech_raw = form.get(f"technician_{cal.id}", "")
        try:
            tech = uuid.UUID(tech_raw) if tech_raw else None
        except ValueError:
            raise NotFound("No such technician.") from None
        choices[cal.id] = {
            "blocks": form.get(f"blocks_{cal.id}") == "on",
            "receives": receives == str(cal.id),
            "technician_id": tech,
        }
    try:
        gcal.choose_calendars(conn, choices, now=_now())
    except ValidationFailed as exc:
        db.session.rollback()
        flash(" ".join(exc.errors.values()), "error")
        return _back()
    _audit("google.calendars_chosen", conn, {})
    db.session.commit()
    flash("Calendar choices saved. Syncing now.", "success")
    return _back()


@bp.post("/integrations/google/<uuid:connection_id>/sync")
def google_sync_now(connection_id: uuid.UUID):
    sync_and_tell(gcal.get_connection(connection_id))
    return _back()


def sync_and_tell(conn) -> None:
    """Sync now for a connection (the owner's Integrations or a technician's My calendar): queue
    the sync and say so, or say why it can't run."""
    try:
        queued = gcal.sync_now(conn, now=_now())
    except gcal.NotConnected as exc:
        flash(exc.message, "error")
        return
    db.session.commit()
    flash("Syncing with Google Calendar…" if queued else "A sync is already on its way.", "info")


@bp.post("/integrations/google/<uuid:connection_id>/disconnect")
def google_disconnect(connection_id: uuid.UUID):
    conn = gcal.get_connection(connection_id, for_update=True)
    label = conn.label
    _audit("google.disconnected", conn, {"account": conn.account_email})
    gcal.disconnect(conn, now=_now())
    db.session.commit()
    flash(f"Google Calendar disconnected for {label}. Its busy time no longer blocks bookings.", "success")
    return _back()


# Changes made in Google -------------------------------------------------------------------------------------


@bp.post("/integrations/google/changes/<uuid:change_id>/confirm")
def google_change_confirm(change_id: uuid.UUID):
    from app.booking.errors import SlotTaken, SlotUnavailable

    change = gcal.get_proposal(change_id)
    try:
        gcal.confirm_proposal(g.tenant, change, user_id=current_user.id, now=_now())
    except (SlotTaken, SlotUnavailable, FielddayError) as exc:
        if isinstance(exc, NotFound):
            raise
        db.session.rollback()
        flash(f"Couldn't apply the change from Google: {exc.message}", "error")
        return _back()
    db.session.commit()
    flash("Booking updated to match Google Calendar.", "success")
    return _back()


@bp.post("/integrations/google/changes/<uuid:change_id>/reject")
def google_change_reject(change_id: uuid.UUID):
    change = gcal.get_proposal(change_id)
    try:
        gcal.reject_proposal(change, user_id=current_user.id, now=_now())
    except FielddayError as exc:
        if isinstance(exc, NotFound):
            raise
        db.session.rollback()
        flash(exc.message, "error")
        return _back()
    db.session.commit()
    flash("Kept the booking as it is; Google Calendar will be put back.", "success")
    return _back()


def _audit(action: str, conn, detail: dict) -> None:
    from app.audit import services as audit

    audit.record(
        g.tenant.id,
        action,
        actor_id=current_user.id,
        subject_type="google_connection",
        subject_id=conn.id,
        detail=detail,
    )


# Push notifications ------------------------------------------------------------------------------------------


@webhooks_bp.post("/webhooks/google/calendar")
@csrf.exempt
@limiter.exempt
def google_push():
    """Google's header-only notification. Unknown channel → 404; wrong token → 403; nothing runs for
    either. ``sync`` (the channel's first message) is acknowledged; anything else queues one sync."""
    raw_id = request.headers.get("X-Goog-Channel-ID", "")
    token = request.headers.get("X-Goog-Channel-Token", "")
    state = request.headers.get("X-Goog-Resource-State", "")
    try:
        channel_id = uuid.UUID(raw_id)
    except ValueError:
        return jsonify(error={"code": "unknown_channel", "message": "Unknown channel."}), 404
    tenant_id = db.session.execute(
        text("SELECT public.tenant_id_for_google_channel(:c)"), {"c": str(channel_id)}
    ).scalar()
    db.session.rollback()
    if tenant_id is None:
        current_app.logger.warning("google push for unknown channel %s", channel_id)
        return jsonify(error={"code": "unknown_channel", "message": "Unknown channel."}), 404
    with tenant_context(tenant_id, db.session):
        now = _now()
        channel, why = gcal.channel_for_push(channel_id, token, request.headers.get("X-Goog-Resource-ID"), now=now)
        if channel is None:
            db.session.rollback()
            current_app.logger.warning("google push refused for channel %s: %s", channel_id, why)
            if why == "unknown":
                return jsonify(error={"code": "unknown_channel", "message": "Unknown channel."}), 404
            return jsonify(error={"code": "bad_token", "message": "Channel token check failed."}), 403
        if state == "sync":
            db.session.rollback()
            return jsonify(received=True, ignored="sync")
        queued = gcal.request_sync_for_push(channel.calendar_id, now=now)
        db.session.commit()
    return jsonify(received=True, queued=bool(queued))
