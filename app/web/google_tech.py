"""A technician's own Google Calendar, from their phone (dashboard blueprint): connect, see how it
syncs, "Sync now" and disconnect (docs/google-calendar.md).

Everything here acts on the connection of the technician linked to the current login and nothing
else: a technician id or connection id that isn't theirs (another technician's, the business's,
another business's) answers 404, like one that doesn't exist. The OAuth start and callback are the
Integrations ones (app/web/google.py), so the state is bound to this session, business, user and
technician, lives 15 minutes and is used once; the callback brings the technician back here.
Which calendars count is what the owner's flow does for a technician's connection: the account's
main calendar blocks their time and gets their bookings; the owner can change that on Integrations.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.calendar import google_api
from app.calendar import services as gcal
from app.calendar.models import GoogleConnection
from app.errors import NotFound
from app.extensions import db
from app.web.dashboard import EVERYONE, bp, roles
from app.web.google import _allow_consent_redirect, _audit, start_google_connect, sync_and_tell


def _now() -> datetime:
    return datetime.now(UTC)


def _mine():
    """The technician linked to this login, or None."""
    from app.dispatch.eta import technician_for_user

    return technician_for_user(current_user.id)


def _my_technician():
    mine = _mine()
    if mine is None:
        raise NotFound("No such technician.")
    return mine


def _only_mine(raw: str | None, mine) -> None:
    """The pages need no technician id; one sent anyway (a hand-made URL or form) must be the
    technician's own, else 404."""
    if not raw:
        return
    try:
        wanted = uuid.UUID(raw)
    except ValueError:
        raise NotFound("No such technician.") from None
    if mine is None or wanted != mine.id:
        raise NotFound("No such technician.")


def _my_connection(connection_id: uuid.UUID, *, for_update: bool = False) -> GoogleConnection:
    """This login's technician's connection; anyone else's is a 404 (no existence oracle)."""
    mine = _my_technician()
    conn = gcal.get_connection(connection_id, for_update=for_update)
    if conn.technician_id is None or conn.technician_id != mine.id:
        raise NotFound("No such Google connection.")
    return conn


def _back():
    return redirect(url_for("dashboard.my_calendar"))


@bp.get("/my-day/calendar")
@roles(*EVERYONE)
def my_calendar():
    mine = _mine()
    _only_mine(request.args.get("technician"), mine)
    conn = gcal.connection_of_technician(mine.id) if mine else None
    cals = gcal.calendars_of(conn) if conn else []
    configured = google_api.configured()
    if configured:
        _allow_consent_redirect()
    return render_template(
        "dashboard/my_calendar.html",
        mine=mine,
        conn=conn,
        calendars=cals,
        configured=configured,
        syncing=any(c.sync_status == "queued" for c in cals),
        polled_only=gcal.polled_only(cals, now=_now()) if conn else set(),
    )


@bp.post("/my-day/calendar/connect")
@roles(*EVERYONE)
def my_calendar_connect():
    mine = _my_technician()
    _only_mine(request.form.get("technician_id") or request.args.get("technician"), mine)
    return start_google_connect(mine.id, origin="tech")


@bp.post("/my-day/calendar/<uuid:connection_id>/sync")
@roles(*EVERYONE)
def my_calendar_sync(connection_id: uuid.UUID):
    sync_and_tell(_my_connection(connection_id))
    return _back()


@bp.post("/my-day/calendar/<uuid:connection_id>/disconnect")
@roles(*EVERYONE)
def my_calendar_disconnect(connection_id: uuid.UUID):
    conn = _my_connection(connection_id, for_update=True)
    _audit("google.disconnected", conn, {"account": conn.account_email, "by": "technician"})
    gcal.disconnect(conn, now=_now())
    db.session.commit()
    flash("Google Calendar disconnected. Your appointments there no longer block your bookings.", "success")
    return _back()
