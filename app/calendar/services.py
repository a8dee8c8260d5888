"""Google Calendar two-way sync (DESIGN §7, RELIABILITY §4; decisions in docs/google-calendar.md).

Connect (OAuth web flow, refresh token encrypted at rest), choose calendars, import busy time into
``busy_blocks`` (source 'google') incrementally with sync tokens, export bookings as events, and turn an
edit of one of our events in Google into a proposed change the owner confirms. Services flush; the
request or job commits.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import socket
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg.types.range import Range
from sqlalchemy import text

from app.booking.models import ACTIVE_STATUSES, Booking
from app.calendar import google_api
from app.calendar.models import (
    GoogleCalendar,
    GoogleChannel,
    GoogleConnection,
    GoogleExportedEvent,
    GoogleProposedChange,
)
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from tenants.context import current_tenant_id
from tenants.models import Tenant

log = logging.getLogger(__name__)

FULL_RESYNC_EVERY = timedelta(hours=24)  # pulls in events that entered the window since the last full sync
STALE_AFTER = timedelta(minutes=30)  # a transient failure keeps the last good blocks this long, then: unknown
CHANNEL_TTL = timedelta(days=7)
RENEW_BEFORE = timedelta(days=1)
SYNC_DEDUPE = timedelta(minutes=5)
UNKNOWN = "unknown"
UNKNOWN_LABEL = "Google Calendar couldn't be read"
EXPORTED_STATUSES = ACTIVE_STATUSES + ("completed",)


class ConnectFailed(FielddayError):
    status = 400
    code = "google_connect_failed"
    message = "Google didn't finish connecting. Please try again."


class NotConnected(FielddayError):
    status = 409
    code = "google_not_connected"
    message = "This Google account is disconnected. Connect it again first."


# Reads ---------------------------------------------------------------------------------------------


def list_connections() -> list[GoogleConnection]:
    return list(db.session.scalars(db.select(GoogleConnection).order_by(GoogleConnection.connected_at)))


def get_connection(connection_id: uuid.UUID, *, for_update: bool = False) -> GoogleConnection:
    stmt = db.select(GoogleConnection).where(
        GoogleConnection.tenant_id == current_tenant_id(), GoogleConnection.id == connection_id
    )
    conn = db.session.scalar(stmt.with_for_update() if for_update else stmt)
    if conn is None:
        raise NotFound("No such Google connection.")
    return conn


def connection_of_technician(technician_id: uuid.UUID) -> GoogleConnection | None:
    """A technician's own connection (at most one, uq on technician_id), if they have one."""
    return db.session.scalar(db.select(GoogleConnection).where(GoogleConnection.technician_id == technician_id))


def get_calendar(calendar_id: uuid.UUID, *, for_update: bool = False) -> GoogleCalendar:
    stmt = db.select(GoogleCalendar).where(
        GoogleCalendar.tenant_id == current_tenant_id(), GoogleCalendar.id == calendar_id
    )
    cal = db.session.scalar(stmt.with_for_update() if for_update else stmt)
    if cal is None:
        raise NotFound("No such calendar.")
    return cal


def calendars_of(conn: GoogleConnection) -> list[GoogleCalendar]:
    return list(
        db.session.scalars(
            db.select(GoogleCalendar)
            .where(GoogleCalendar.connection_id == conn.id)
            .order_by(GoogleCalendar.is_primary.desc(), GoogleCalendar.summary)
        )
    )


def open_proposals() -> list[GoogleProposedChange]:
    return list(
        db.session.scalars(
            db.select(GoogleProposedChange)
            .where(GoogleProposedChange.status == "open")
            .order_by(GoogleProposedChange.created_at)
        )
    )


def get_proposal(change_id: uuid.UUID) -> GoogleProposedChange:
    change = db.session.scalar(
        db.select(GoogleProposedChange)
        .where(GoogleProposedChange.tenant_id == current_tenant_id(), GoogleProposedChange.id == change_id)
        .with_for_update()
    )
    if change is None:
        raise NotFound("No such change.")
    return change


def _window(tenant: Tenant, now: datetime) -> tuple[datetime, datetime]:
    from flask import current_app

    days = max(int(current_app.config.get("GOOGLE_SYNC_DAYS", 60)), tenant.horizon_days)
    return now - timedelta(days=1), now + timedelta(days=days + 1)


# Connect ---------------------------------------------------------------------------------------------


def start_connect(redirect_uri: str) -> tuple[str, str, str]:
    """The consent URL, the state to keep in the session, and the PKCE verifier for the exchange."""
    state = secrets.token_urlsafe(32)
    flow = google_api.flow(redirect_uri, state=state)
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", include_granted_scopes="true")
    return url, state, flow.code_verifier


def finish_connect(
    tenant: Tenant,
    *,
    technician_id: uuid.UUID | None,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    user_id: uuid.UUID | None,
    now: datetime,
) -> GoogleConnection:
    """Exchange the code, store the refresh token encrypted, and read the calendar list."""
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    if technician_id is not None:
        from app.booking.services import get_technician

        get_technician(technician_id)  # 404 for another business's technician
    flow = google_api.flow(redirect_uri, code_verifier=code_verifier)
    try:
        flow.fetch_token(code=code)
    except OAuth2Error as exc:
        log.warning("google code exchange refused: %s", exc.error)
        raise ConnectFailed("Google refused the sign-in (it may have expired). Please connect again.") from None
    except Warning:  # oauthlib: the user unticked a permission on Google's consent screen
        raise ConnectFailed(
            "Fieldday needs both permissions Google asks for (see your calendars, and add bookings). "
            "Please connect again and keep both ticked."
        ) from None
    except OSError as exc:
        log.warning("google token endpoint unreachable: %s", type(exc).__name__)
        raise ConnectFailed("Google couldn't be reached. Please try again in a minute.") from None
    refresh_token = flow.credentials.refresh_token
    if not refresh_token:
        raise ConnectFailed(
            "Google didn't give Fieldday lasting access. Remove Fieldday under your Google account's "
            "third-party access, then connect again."
        )
    # The calendar list first, before anything is stored: it names the account (its primary calendar's
    # id is the address), and a Google that fails here is a clear message, not a 500.
    try:
        entries = _calendar_list(google_api.calendar_service(refresh_token))
    except Exception as exc:  # noqa: BLE001 - classified: Google's answers and network errors fail clearly
        if not _is_google_failure(exc):
            raise
        log.warning("google calendar list after connecting failed: %s", _describe(exc))
        raise ConnectFailed(
            "Google didn't let Fieldday read the calendar list. Please try again in a minute."
        ) from None
    account = next((e["id"] for e in entries if e.get("primary")), None)
    conn = db.session.scalar(
        db.select(GoogleConnection)
        .where(
            GoogleConnection.technician_id.is_(None)
            if technician_id is None
            else GoogleConnection.technician_id == technician_id
        )
        .with_for_update()
    )
    if conn is None:
        conn = GoogleConnection(tenant_id=tenant.id, technician_id=technician_id)
        db.session.add(conn)
    elif conn.account_email and account and conn.account_email != account:
        _switch_account(conn, now=now)
    conn.refresh_token_enc = google_api.encrypt(refresh_token)
    conn.scopes = " ".join(flow.credentials.scopes or google_api.SCOPES)
    conn.status, conn.problem, conn.owner_notified_at = "connected", None, None
    conn.connected_by, conn.connected_at, conn.disconnected_at = user_id, now, None
    db.session.flush()
    _mirror_calendar_list(conn, entries, now=now, defaults=True)
    for cal in calendars_of(conn):
        if cal.in_use and not cal.missing_since:
            cal.sync_token = None  # (re)connected: start from a full snapshot
            request_sync(cal, now=now)
    if any(cal.receives_bookings and not cal.missing_since for cal in calendars_of(conn)):
        from app.jobs import after_commit

        after_commit(_enqueue_reconcile, conn.tenant_id)  # upcoming bookings go to the receiving calendar
    return conn


def _switch_account(conn: GoogleConnection, *, now: datetime) -> None:
    """Connecting again with another Google account: the old account's calendars, their busy time (and
    unknown blocks), channels and export records go; the old grant is revoked if it still works. The
    events already written to the old account stay there, as on a disconnect."""
    old_token = None
    if conn.refresh_token_enc:
        try:
            old_token = google_api.decrypt(conn.refresh_token_enc)
        except google_api.GoogleUnavailable:
            old_token = None
    if old_token and conn.is_connected:
        _stop_channels(conn, old_token, now)
        google_api.revoke(old_token)
    log.info("google connection %s switched accounts: the old account's calendars are removed", conn.id)
    _supersede_proposals(conn)
    for cal in calendars_of(conn):
        db.session.delete(cal)  # channels, busy blocks and export records go with it (FK cascade)
    conn.account_email = None
    db.session.flush()


def _stop_channels(conn: GoogleConnection, token: str, now: datetime) -> None:
    try:
        svc = google_api.calendar_service(token)
        for cal in calendars_of(conn):
            for ch in _active_channels(cal):
                _stop_channel(svc, ch, now)
    except Exception as exc:  # noqa: BLE001 - Google unreachable: the channels expire on their own
        log.warning("google channels of connection %s not stopped: %s", conn.id, _describe(exc))


def _supersede_proposals(conn: GoogleConnection) -> None:
    db.session.execute(
        text(
            "UPDATE google_proposed_changes SET status = 'superseded', outcome = 'Google Calendar disconnected'"
            " WHERE status = 'open' AND exported_event_id IN (SELECT e.id FROM google_exported_events e"
            " JOIN google_calendars c ON c.tenant_id = e.tenant_id AND c.id = e.calendar_id"
            " WHERE c.connection_id = :conn)"
        ),
        {"conn": conn.id},
    )


def _is_google_failure(exc: Exception) -> bool:
    """Google answered with an error, refused the grant, or couldn't be reached."""
    from google.auth.exceptions import GoogleAuthError
    from googleapiclient.errors import Error as ApiClientError

    return isinstance(exc, (ApiClientError, GoogleAuthError, OSError, socket.timeout)) or type(
        exc
    ).__module__.startswith("httplib2")


def _describe(exc: Exception) -> str:
    """An exception for a log line without its text (which can carry URLs and their parameters)."""
    status = getattr(getattr(exc, "resp", None), "status", None)
    return f"{type(exc).__name__} {status}" if status else type(exc).__name__


def _service(conn: GoogleConnection):
    if not conn.is_connected or not conn.refresh_token_enc:
        raise NotConnected()
    return google_api.calendar_service(google_api.decrypt(conn.refresh_token_enc))


def refresh_calendar_list(conn: GoogleConnection, *, now: datetime, defaults: bool = False, svc=None) -> None:
    """Mirror the account's calendar list; a calendar that disappeared is marked missing (and, if it was
    in use, its time is held as unknown)."""
    _mirror_calendar_list(conn, _calendar_list(svc or _service(conn)), now=now, defaults=defaults)


def _calendar_list(svc) -> list[dict]:
    entries, request = [], svc.calendarList().list(maxResults=250)
    while request is not None:
        page = request.execute()
        entries += page.get("items", [])
        request = svc.calendarList().list_next(request, page)
    return entries


def _mirror_calendar_list(conn: GoogleConnection, entries: list[dict], *, now: datetime, defaults: bool) -> None:
    known = {c.google_id: c for c in calendars_of(conn)}
    # At most one calendar of a connection receives bookings (uq_google_calendars_receiver).
    receiving = any(c.receives_bookings for c in known.values())
    for entry in entries:
        cal = known.pop(entry["id"], None)
        if cal is None:
            cal = GoogleCalendar(tenant_id=conn.tenant_id, connection_id=conn.id, google_id=entry["id"])
            db.session.add(cal)
            if defaults and entry.get("primary"):
                # A technician's own primary calendar blocks their time and receives their bookings.
                cal.technician_id = conn.technician_id
                cal.blocks_time = conn.technician_id is not None
                cal.receives_bookings = not receiving and entry.get("accessRole") in ("owner", "writer")
        cal.summary = (entry.get("summaryOverride") or entry.get("summary") or entry["id"])[:200]
        cal.access_role = entry.get("accessRole", "reader")
        cal.is_primary = bool(entry.get("primary"))
        cal.time_zone = entry.get("timeZone")
        cal.missing_since = None
        if cal.is_primary:
            conn.account_email = entry["id"]
    for cal in known.values():
        if cal.missing_since is None:
            cal.missing_since = now
            if cal.in_use:
                _calendar_failed(cal, "This calendar is no longer in the Google account (deleted or unshared).", now)
    db.session.flush()


def poll_calendar_list(conn: GoogleConnection, *, now: datetime) -> bool:
    """The poll's calendar-list refresh: a dead grant disconnects, other failures wait for the next poll."""
    from google.auth.exceptions import RefreshError

    try:
        with db.session.begin_nested():
            refresh_calendar_list(conn, now=now)
        return True
    except RefreshError as exc:
        if _invalid_grant(exc):
            mark_disconnected(conn, now=now, problem="Google says Fieldday's access was revoked or has expired.")
        return False
    except Exception as exc:  # noqa: BLE001 - Google unreachable or erroring: the calendars say so below
        log.warning("google calendar list of connection %s not refreshed: %s", conn.id, _describe(exc))
        return False


def choose_calendars(conn: GoogleConnection, choices: dict[uuid.UUID, dict], *, now: datetime) -> None:
    """Which calendars block time (and for which technician) and which one receives bookings."""
    cals = {c.id: c for c in calendars_of(conn)}
    errors: dict[str, str] = {}
    receivers = [cid for cid, ch in choices.items() if ch.get("receives") and cid in cals]
    if len(receivers) > 1:
        errors["receives"] = "Pick one calendar to receive bookings."
    for cid in receivers:
        if not cals[cid].can_write:
            errors["receives"] = f"Fieldday can't add events to “{cals[cid].summary}” (read-only)."
    valid_techs = _technician_ids()
    for cid, cal in cals.items():
        ch = choices.get(cid, {})
        tech = conn.technician_id if conn.technician_id else ch.get("technician_id")
        if ch.get("blocks") and tech is None:
            errors[f"technician_{cid}"] = f"Pick whose time “{cal.summary}” blocks."
        if tech is not None and tech not in valid_techs:
            raise NotFound("No such technician.")
    if errors:
        raise ValidationFailed(errors)
    for cid, cal in cals.items():
        ch = choices.get(cid, {})
        was_blocking, was_receiving, old_tech = cal.blocks_time, cal.receives_bookings, cal.technician_id
        cal.technician_id = conn.technician_id or ch.get("technician_id")
        cal.blocks_time = bool(ch.get("blocks"))
        cal.receives_bookings = False
        if was_blocking and (not cal.blocks_time or cal.technician_id != old_tech):
            # Blocks belong to one technician: off, or handed to someone else, the old ones go (the
            # full sync below writes them again under the new technician).
            _delete_blocks(cal)
        if was_receiving and cid not in receivers:
            _forget_exports(cal)
    db.session.flush()
    for cid in receivers:
        cals[cid].receives_bookings = True
    db.session.flush()
    for cal in cals.values():
        if cal.in_use:
            cal.sync_token = None  # a changed choice starts from a full sync
            request_sync(cal, now=now)
        else:
            for ch in _active_channels(cal):
                _stop_channel_later(ch, now)
    if receivers:
        from app.jobs import after_commit

        after_commit(_enqueue_reconcile, conn.tenant_id)


def _technician_ids() -> set[uuid.UUID]:
    from app.booking.models import Technician

    return set(db.session.scalars(db.select(Technician.id)))


def disconnect(conn: GoogleConnection, *, now: datetime, revoke: bool = True) -> None:
    """Forget the connection: stop its channels, revoke the grant at Google, and remove its imported
    busy time and export records (the events already in Google stay there)."""
    token = None
    if conn.refresh_token_enc:
        try:
            token = google_api.decrypt(conn.refresh_token_enc)
        except google_api.GoogleUnavailable:
            token = None
    if token and conn.is_connected:
        _stop_channels(conn, token, now)
    if token and revoke:
        google_api.revoke(token)
    _supersede_proposals(conn)
    db.session.delete(conn)  # calendars, channels, busy blocks and export records go with it (FK cascade)
    db.session.flush()


# Sync requests -----------------------------------------------------------------------------------------


def request_sync(cal: GoogleCalendar, *, now: datetime, full: bool = False) -> bool:
    """Queue one sync of this calendar after commit, unless one is already waiting."""
    from app.jobs import after_commit

    if cal.sync_status == "queued" and cal.sync_requested_at and cal.sync_requested_at > now - SYNC_DEDUPE:
        return False
    cal.sync_status, cal.sync_requested_at = "queued", now
    db.session.flush()
    from app.calendar.jobs import sync_calendar_job

    after_commit(sync_calendar_job.enqueue, cal.tenant_id, cal.id, full)
    return True


def request_sync_for_push(calendar_id: uuid.UUID, *, now: datetime) -> bool:
    """A push arrived: queue one sync without ever waiting. A running sync holds the calendar's row
    (FOR UPDATE, across its Google calls), so the row is taken with SKIP LOCKED; if it is busy, one more
    sync is queued to run after that one (it may have read Google before this change)."""
    cal = db.session.scalar(
        db.select(GoogleCalendar)
        .where(GoogleCalendar.tenant_id == current_tenant_id(), GoogleCalendar.id == calendar_id)
        .with_for_update(skip_locked=True)
    )
    if cal is not None:
        return request_sync(cal, now=now) if cal.in_use else False
    from app.calendar.jobs import sync_calendar_job
    from app.jobs import after_commit

    after_commit(sync_calendar_job.enqueue, current_tenant_id(), calendar_id, False)
    return True


def sync_now(conn: GoogleConnection, *, now: datetime) -> int:
    if not conn.is_connected:
        raise NotConnected()
    return sum(request_sync(cal, now=now) for cal in calendars_of(conn) if cal.in_use and not cal.missing_since)


def _enqueue_reconcile(tenant_id: uuid.UUID) -> None:
    from app.calendar.jobs import reconcile_exports_job

    reconcile_exports_job.enqueue(tenant_id)


# Import -------------------------------------------------------------------------------------------------


def sync_calendar(calendar_id: uuid.UUID, *, now: datetime, full: bool = False) -> str:
    """Bring this calendar's busy blocks (and our exported events' echoes) up to date. Never raises for
    Google's answers: a failure is recorded on the calendar (and its time held as unknown when it has to
    be), a dead grant disconnects the integration."""
    try:
        cal = get_calendar(calendar_id, for_update=True)
    except NotFound:
        return "gone"
    conn = db.session.get(GoogleConnection, (cal.tenant_id, cal.connection_id))
    if conn is None or not conn.is_connected:
        cal.sync_status = "idle"
        return "disconnected"
    if not cal.in_use:
        cal.sync_status = "idle"
        return "not in use"
    tenant = db.session.get(Tenant, cal.tenant_id)
    try:
        svc = _service(conn)
        if cal.free_busy_only:
            outcome = _sync_freebusy(svc, cal, tenant, now)
        else:
            outcome = _sync_events(svc, cal, tenant, now, full=full)
    except Exception as exc:  # noqa: BLE001 - classified below; unknown errors re-raise
        return _sync_failed(conn, cal, exc, now)
    if not cal.free_busy_only:
        _try_channel(conn, svc, cal, now)
    return outcome


def _try_channel(conn: GoogleConnection, svc, cal: GoogleCalendar, now: datetime) -> bool:
    """Push is an extra: the calendar read fine, so a channel Google won't set up means "polled every 15
    minutes" (the page says so), never unknown time. A dead grant still disconnects."""
    from google.auth.exceptions import RefreshError

    try:
        _ensure_channel(svc, cal, now)
        return True
    except RefreshError as exc:
        if _invalid_grant(exc):
            mark_disconnected(conn, now=now, problem="Google says Fieldday's access was revoked or has expired.")
            return False
        log.warning("google push channel for calendar %s not set up: %s", cal.id, _describe(exc))
        return False
    except Exception as exc:  # noqa: BLE001 - any failure to watch leaves the 15-minute poll in charge
        if not _is_google_failure(exc):
            raise
        log.warning("google push channel for calendar %s not set up: %s", cal.id, _describe(exc))
        return False


def polled_only(cals: list[GoogleCalendar], *, now: datetime) -> set[uuid.UUID]:
    """Calendars in use that Google sends no push notifications for (it refused the channel, or it can't
    for free/busy-only calendars): they are read by the 15-minute poll alone."""
    from flask import current_app

    if not current_app.config.get("GOOGLE_PUSH"):
        return set()
    ids = [c.id for c in cals if c.in_use and not c.missing_since and c.last_synced_at and not c.free_busy_only]
    if not ids:
        return set()
    live = set(
        db.session.scalars(
            db.select(GoogleChannel.calendar_id).where(
                GoogleChannel.calendar_id.in_(ids), GoogleChannel.stopped_at.is_(None), GoogleChannel.expires_at > now
            )
        )
    )
    return set(ids) - live


def _sync_failed(conn: GoogleConnection, cal: GoogleCalendar, exc: Exception, now: datetime) -> str:
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, RefreshError):
        if _invalid_grant(exc):
            mark_disconnected(conn, now=now, problem="Google says Fieldday's access was revoked or has expired.")
            return "disconnected"
        _calendar_failed(cal, "Google didn't renew access just now; trying again soon.", now, transient=True)
        return "error"
    if isinstance(exc, HttpError):
        status = exc.resp.status
        if status == 404:
            cal.missing_since = cal.missing_since or now
            message = "This calendar no longer exists in Google, or the account lost access to it."
        elif status in (401, 403):
            message = "Google refused access to this calendar."
        else:
            message = f"Google answered {status}; trying again soon."
        _calendar_failed(cal, message, now, transient=status >= 500 or status == 429)
        return "error"
    if isinstance(exc, (TransportError, OSError, socket.timeout)) or type(exc).__module__.startswith("httplib2"):
        _calendar_failed(cal, "Google couldn't be reached; trying again soon.", now, transient=True)
        return "error"
    raise exc


def _invalid_grant(exc: Exception) -> bool:
    args = getattr(exc, "args", ())
    return any("invalid_grant" in str(a) for a in args)


def _list_events(svc, cal: GoogleCalendar, **params) -> tuple[list[dict], str | None]:
    items: list[dict] = []
    request = svc.events().list(calendarId=cal.google_id, singleEvents=True, maxResults=250, **params)
    token = None
    while request is not None:
        page = request.execute()
        items += page.get("items", [])
        token = page.get("nextSyncToken") or token
        request = svc.events().list_next(request, page)
    return items, token


def _sync_events(svc, cal: GoogleCalendar, tenant: Tenant, now: datetime, *, full: bool) -> str:
    from googleapiclient.errors import HttpError

    window = _window(tenant, now)
    stale = cal.last_full_sync_at is None or cal.last_full_sync_at < now - FULL_RESYNC_EVERY
    need_full = full or not cal.sync_token or stale
    outcome = "incremental"
    if not need_full:
        try:
            items, token = _list_events(svc, cal, syncToken=cal.sync_token)
        except HttpError as exc:
            if exc.resp.status != 410:
                raise
            log.info("google sync token of calendar %s expired (410): full resync", cal.id)
            need_full, outcome = True, "full after 410"
    if need_full:
        # The sync token remembers this request's parameters; the window's far end is our own filter.
        items, token = _list_events(svc, cal, timeMin=_rfc3339(window[0]))
        outcome = outcome if outcome != "incremental" else "full"
    kept: set[str] = set()
    for event in items:
        key = _apply_event(cal, event, tenant, window, now)
        if key:
            kept.add(key)
    if need_full:
        # The fresh snapshot is the whole truth: anything not in it goes (RELIABILITY §4, G1).
        db.session.execute(
            text("DELETE FROM busy_blocks WHERE google_calendar_id = :cal AND NOT (external_id = ANY(:kept))"),
            {"cal": cal.id, "kept": list(kept)},
        )
        cal.last_full_sync_at = now
    else:
        _delete_block(cal, UNKNOWN)
    cal.sync_token = token
    cal.events_seen = len(items) if need_full else cal.events_seen
    _synced(cal, now)
    return outcome


def _sync_freebusy(svc, cal: GoogleCalendar, tenant: Tenant, now: datetime) -> str:
    """A calendar shared as free/busy only: a fresh snapshot each time; its errors mean unknown."""
    start, end = _window(tenant, now)
    answer = (
        svc.freebusy()
        .query(body={"timeMin": _rfc3339(start), "timeMax": _rfc3339(end), "items": [{"id": cal.google_id}]})
        .execute()
    )
    entry = answer.get("calendars", {}).get(cal.google_id, {})
    if entry.get("errors"):
        reasons = ", ".join(e.get("reason", "?") for e in entry["errors"])
        _calendar_failed(cal, f"Google couldn't tell this calendar's free/busy time ({reasons}).", now)
        return "error"
    kept = set()
    for i, span in enumerate(entry.get("busy", [])):
        s, e = _parse_time(span["start"]), _parse_time(span["end"])
        key = f"fb{i}:{s.isoformat()}"
        _upsert_block(cal, key, s, e, all_day=False)
        kept.add(f"{cal.id}:{key}")
    db.session.execute(
        text("DELETE FROM busy_blocks WHERE google_calendar_id = :cal AND NOT (external_id = ANY(:kept))"),
        {"cal": cal.id, "kept": list(kept)},
    )
    cal.events_seen = len(kept)
    cal.last_full_sync_at = now
    _synced(cal, now)
    return "freebusy"


def _synced(cal: GoogleCalendar, now: datetime) -> None:
    cal.last_synced_at, cal.sync_status = now, "ok"
    cal.sync_error = cal.sync_error_at = None
    cal.missing_since = None
    db.session.flush()


def _apply_event(cal: GoogleCalendar, event: dict, tenant: Tenant, window, now: datetime) -> str | None:
    """One event from Google: a busy block, a removal, or an echo of our own booking. Returns the
    block's external id when the event blocks time."""
    private = (event.get("extendedProperties") or {}).get("private") or {}
    if private.get("fieldday_booking") and private.get("fieldday_tenant") == str(cal.tenant_id):
        _echo_of_ours(cal, event, now)
        return None  # our own bookings already block their time
    eid = event["id"]
    if not cal.blocks_time or cal.technician_id is None or not _busy(event):
        _delete_block(cal, eid)
        return None
    span = _span(event, tenant)
    if span is None or span[1] <= window[0] or span[0] >= window[1]:
        _delete_block(cal, eid)
        return None
    _upsert_block(cal, eid, span[0], span[1], all_day="date" in event.get("start", {}))
    return f"{cal.id}:{eid}"


def _busy(event: dict) -> bool:
    if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
        return False
    me = next((a for a in event.get("attendees") or [] if a.get("self")), None)
    return not (me and me.get("responseStatus") == "declined")


def _span(event: dict, tenant: Tenant) -> tuple[datetime, datetime] | None:
    start, end = event.get("start") or {}, event.get("end") or {}
    try:
        if "date" in start:
            # All day blocks the whole local day(s) in the business's zone, DST included.
            from app.booking.availability import local_day_bounds

            tz = ZoneInfo(tenant.time_zone)
            first, last = date.fromisoformat(start["date"]), date.fromisoformat(end["date"])
            s, _ = local_day_bounds(first, tz)
            e, _ = local_day_bounds(max(last, first + timedelta(days=1)), tz)
            return s, e
        s, e = _parse_time(start["dateTime"]), _parse_time(end["dateTime"])
    except (KeyError, ValueError):
        return None
    return (s, e) if e > s else None


def _upsert_block(cal: GoogleCalendar, eid: str, start: datetime, end: datetime, *, all_day: bool) -> None:
    db.session.execute(
        text(
            "INSERT INTO busy_blocks (tenant_id, technician_id, during, source, external_id, summary,"
            " google_calendar_id, all_day)"
            " VALUES (:t, :tech, :during, 'google', :ext, :summary, :cal, :all_day)"
            " ON CONFLICT (tenant_id, technician_id, source, external_id) WHERE external_id IS NOT NULL"
            " DO UPDATE SET during = EXCLUDED.during, summary = EXCLUDED.summary, all_day = EXCLUDED.all_day"
        ),
        {
            "t": cal.tenant_id,
            "tech": cal.technician_id,
            "during": Range(start, end, "[)"),
            "ext": f"{cal.id}:{eid}",
            # Titles of a technician's own events never enter Fieldday: busy is all availability needs.
            "summary": UNKNOWN_LABEL if eid == UNKNOWN else ("All day" if all_day else None),
            "cal": cal.id,
            "all_day": all_day,
        },
    )


def _delete_block(cal: GoogleCalendar, eid: str) -> None:
    db.session.execute(
        text("DELETE FROM busy_blocks WHERE google_calendar_id = :cal AND external_id = :ext"),
        {"cal": cal.id, "ext": f"{cal.id}:{eid}"},
    )


def _delete_blocks(cal: GoogleCalendar) -> None:
    db.session.execute(text("DELETE FROM busy_blocks WHERE google_calendar_id = :cal"), {"cal": cal.id})
    cal.sync_token = None


def _calendar_failed(cal: GoogleCalendar, message: str, now: datetime, *, transient: bool = False) -> None:
    """Record the problem. The calendar's time counts as unknown, not free: held busy over the whole
    window, except that a passing failure keeps the last good blocks while they are fresh."""
    cal.sync_status, cal.sync_error, cal.sync_error_at = "error", message, now
    recent = cal.last_synced_at is not None and cal.last_synced_at > now - STALE_AFTER
    if cal.blocks_time and cal.technician_id is not None and not (transient and recent):
        tenant = db.session.get(Tenant, cal.tenant_id)
        start, end = _window(tenant, now)
        _upsert_block(cal, UNKNOWN, start, end, all_day=False)
    db.session.flush()


def mark_disconnected(conn: GoogleConnection, *, now: datetime, problem: str) -> None:
    """A dead grant (invalid_grant): stop syncing, hold the calendars' time as unknown, tell the owner once."""
    if conn.status == "disconnected":
        return
    conn.status, conn.problem, conn.disconnected_at = "disconnected", problem, now
    conn.refresh_token_enc = None
    for cal in calendars_of(conn):
        for ch in _active_channels(cal):
            ch.stopped_at = now  # can't tell Google without a grant; the channel expires by itself
        cal.sync_token = None
        if cal.in_use:
            cal.sync_status = "error"
            cal.sync_error, cal.sync_error_at = problem, now
            if cal.blocks_time and cal.technician_id is not None:
                tenant = db.session.get(Tenant, cal.tenant_id)
                start, end = _window(tenant, now)
                _upsert_block(cal, UNKNOWN, start, end, all_day=False)
    db.session.flush()
    from app.calendar.jobs import notify_disconnected_job
    from app.jobs import after_commit

    after_commit(notify_disconnected_job.enqueue, conn.tenant_id, conn.id)


# Push channels -------------------------------------------------------------------------------------------


def _active_channels(cal: GoogleCalendar) -> list[GoogleChannel]:
    return list(
        db.session.scalars(
            db.select(GoogleChannel).where(GoogleChannel.calendar_id == cal.id, GoogleChannel.stopped_at.is_(None))
        )
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ensure_channel(svc, cal: GoogleCalendar, now: datetime) -> None:
    """Keep one live watch channel per calendar in use, replaced a day before it expires (Google can't
    renew one); the old channel is stopped once the new one exists, so no change falls between."""
    from flask import current_app

    from app.urls import app_url

    if not current_app.config.get("GOOGLE_PUSH") or cal.free_busy_only or not cal.in_use:
        return
    active = _active_channels(cal)
    if any(ch.expires_at > now + RENEW_BEFORE for ch in active):
        return
    token = secrets.token_urlsafe(32)
    channel = GoogleChannel(
        tenant_id=cal.tenant_id,
        id=uuid.uuid4(),
        calendar_id=cal.id,
        token_sha256=_token_hash(token),
        expires_at=now + CHANNEL_TTL,
    )
    answer = (
        svc.events()
        .watch(
            calendarId=cal.google_id,
            body={
                "id": str(channel.id),
                "type": "web_hook",
                "address": app_url("/webhooks/google/calendar"),
                "token": token,
                "params": {"ttl": str(int(CHANNEL_TTL.total_seconds()))},
            },
        )
        .execute()
    )
    channel.resource_id = answer.get("resourceId")
    if answer.get("expiration"):
        channel.expires_at = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
    db.session.add(channel)
    db.session.flush()
    for old in active:
        _stop_channel(svc, old, now)


def _stop_channel(svc, channel: GoogleChannel, now: datetime) -> None:
    from googleapiclient.errors import HttpError

    try:
        svc.channels().stop(body={"id": str(channel.id), "resourceId": channel.resource_id}).execute()
    except HttpError as exc:
        if exc.resp.status != 404:
            log.warning("google channel %s not stopped: %s", channel.id, exc.resp.status)
    channel.stopped_at = now


def _stop_channel_later(channel: GoogleChannel, now: datetime) -> None:
    # Pushes for a calendar no longer in use are answered 200 and ignored until the channel expires.
    channel.stopped_at = now


def renew_channels(conn: GoogleConnection, *, now: datetime) -> None:
    if not conn.is_connected:
        return
    svc = _service(conn)
    for cal in calendars_of(conn):
        if cal.in_use and not cal.missing_since:
            _ensure_channel(svc, cal, now)


def channel_for_push(channel_id: uuid.UUID, token: str, resource_id: str | None, *, now: datetime):
    """The channel a push names, if its token (and resource) match; None otherwise. Runs under the
    tenant the narrow lookup found."""
    channel = db.session.scalar(
        db.select(GoogleChannel).where(
            GoogleChannel.tenant_id == current_tenant_id(),
            GoogleChannel.id == channel_id,
            GoogleChannel.stopped_at.is_(None),
        )
    )
    if channel is None or channel.expires_at <= now:
        return None, "unknown"
    if not token or not secrets.compare_digest(_token_hash(token), channel.token_sha256):
        return None, "token"
    if channel.resource_id and resource_id and not secrets.compare_digest(resource_id, channel.resource_id):
        return None, "token"
    return channel, "ok"


# Export -----------------------------------------------------------------------------------------------


def event_id_for(booking_id: uuid.UUID) -> str:
    """A deterministic Google event id (base32hex allows 0-9a-f): a retried insert can't duplicate."""
    return "fd" + booking_id.hex


def _receivers_for(booking: Booking) -> list[GoogleCalendar]:
    rows = db.session.execute(
        db.select(GoogleCalendar, GoogleConnection)
        .join(
            GoogleConnection,
            (GoogleConnection.tenant_id == GoogleCalendar.tenant_id)
            & (GoogleConnection.id == GoogleCalendar.connection_id),
        )
        .where(GoogleCalendar.receives_bookings, GoogleConnection.status == "connected")
    ).all()
    return [
        cal
        for cal, conn in rows
        if cal.missing_since is None and (conn.technician_id is None or conn.technician_id == booking.technician_id)
    ]


def export_booking(booking_id: uuid.UUID, *, now: datetime) -> str:
    """Write the booking to each calendar that receives it; move or delete our event when the booking
    moved, changed hands or ended. Idempotent (deterministic event ids, recorded writes)."""
    from google.auth.exceptions import RefreshError
    from googleapiclient.errors import HttpError

    booking = db.session.scalar(
        db.select(Booking).where(Booking.tenant_id == current_tenant_id(), Booking.id == booking_id).with_for_update()
    )
    if booking is None:
        return "gone"
    tenant = db.session.get(Tenant, booking.tenant_id)
    existing = {
        e.calendar_id: e
        for e in db.session.scalars(db.select(GoogleExportedEvent).where(GoogleExportedEvent.booking_id == booking.id))
    }
    wanted = {c.id: c for c in _receivers_for(booking)} if booking.status in EXPORTED_STATUSES else {}
    done = []
    for cal_id in set(existing) | set(wanted):
        cal = wanted.get(cal_id) or db.session.get(GoogleCalendar, (booking.tenant_id, cal_id))
        conn = db.session.get(GoogleConnection, (cal.tenant_id, cal.connection_id))
        exp = existing.get(cal_id)
        if conn is None or not conn.is_connected:
            continue
        svc = _service(conn)
        try:
            with db.session.begin_nested():
                if cal_id in wanted:
                    done.append(_write_event(svc, cal, booking, tenant, exp, now))
                elif exp is not None and not exp.written_deleted:
                    done.append(_delete_event(svc, cal, exp, now))
        except RefreshError as exc:
            if _invalid_grant(exc):
                mark_disconnected(conn, now=now, problem="Google says Fieldday's access was revoked or has expired.")
                continue
            raise
        except HttpError as exc:
            if exc.resp.status == 404 and _calendar_gone(svc, cal):
                _calendar_failed(cal, "This calendar no longer exists in Google, or the account lost access.", now)
                cal.missing_since = cal.missing_since or now
                continue
            if exc.resp.status in (400, 403, 404):
                # This one event: the calendar itself is fine (a 404 for the event alone is handled in
                # _write_event; one here means Google wouldn't take it back either).
                log.warning("google refused our event for booking %s: %s", booking.id, exc.resp.status)
                if exp is not None:
                    exp.error = f"Google answered {exc.resp.status}"
                continue
            raise  # 5xx, 429: the job retries (same event id, so no duplicate)
    return ",".join(done) or "nothing to do"


def _calendar_gone(svc, cal: GoogleCalendar) -> bool:
    """Only the calendar list says a whole calendar is gone; a 404 for one event doesn't."""
    from googleapiclient.errors import HttpError

    try:
        svc.calendarList().get(calendarId=cal.google_id).execute()
    except HttpError as exc:
        return exc.resp.status in (404, 410)
    return False


def _event_body(booking: Booking, tenant: Tenant) -> dict:
    from app.urls import app_url

    tz = tenant.time_zone
    items = ", ".join(i.name for i in booking.items) or "Booking"
    customer = booking.customer.name if booking.customer else ""
    address = booking.address
    where = ", ".join(p for p in (getattr(address, "line1", None), getattr(address, "city", None)) if p)
    return {
        "summary": f"{items} · {customer}".strip(" ·")[:300],
        "location": where or None,
        "description": f"Fieldday booking {booking.reference}\n{app_url(f'/bookings/{booking.id}')}",
        "start": {"dateTime": booking.starts_at.astimezone(ZoneInfo(tz)).isoformat(), "timeZone": tz},
        "end": {"dateTime": booking.ends_at.astimezone(ZoneInfo(tz)).isoformat(), "timeZone": tz},
        "status": "confirmed",
        "transparency": "opaque",
        "extendedProperties": {
            "private": {"fieldday_tenant": str(booking.tenant_id), "fieldday_booking": str(booking.id)}
        },
        "source": {"title": "Fieldday", "url": app_url(f"/bookings/{booking.id}")},
    }


# What an event says besides its time and status. When our booking's time is unchanged only these are
# compared and written, so a move or delete made in Google stays a proposal for the owner.
CONTENT_FIELDS = ("summary", "location", "description", "transparency", "extendedProperties", "source")


def _write_event(svc, cal, booking: Booking, tenant: Tenant, exp: GoogleExportedEvent | None, now) -> str:
    from googleapiclient.errors import HttpError

    body = {k: v for k, v in _event_body(booking, tenant).items() if v is not None}
    if exp is None:
        exp = GoogleExportedEvent(
            tenant_id=booking.tenant_id,
            booking_id=booking.id,
            calendar_id=cal.id,
            google_event_id=event_id_for(booking.id),
        )
        db.session.add(exp)
        outcome = _insert(svc, cal, exp, body)
    elif exp.written_deleted or (exp.written_start, exp.written_end) != (booking.starts_at, booking.ends_at):
        # Moved (or back from canceled): the whole event. Patching with status confirmed also restores an
        # event that was deleted in Google.
        outcome = _patch(svc, cal, exp, body)
    else:
        try:
            current = svc.events().get(calendarId=cal.google_id, eventId=exp.google_event_id).execute()
        except HttpError as exc:
            if exc.resp.status not in (404, 410):
                raise
            current = None
        if current is None:
            outcome = _patch(svc, cal, exp, body)
        else:
            have = {"transparency": "opaque", **current}  # Google leaves out the default
            changes = {k: body.get(k) for k in CONTENT_FIELDS if not _same(have.get(k), body.get(k))}
            if not changes:
                return "unchanged"
            svc.events().patch(calendarId=cal.google_id, eventId=exp.google_event_id, body=changes).execute()
            outcome = "updated"
    exp.written_start, exp.written_end, exp.written_deleted = booking.starts_at, booking.ends_at, False
    exp.written_at, exp.error = now, None
    db.session.flush()
    return outcome


def _same(have, want) -> bool:
    """Google's copy says what we write (it may add keys of its own to objects)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_same(have.get(k), v) for k, v in want.items())
    return (have or None) == (want or None)


def _insert(svc, cal, exp: GoogleExportedEvent, body: dict) -> str:
    from googleapiclient.errors import HttpError

    try:
        svc.events().insert(calendarId=cal.google_id, body={"id": exp.google_event_id, **body}).execute()
        return "inserted"
    except HttpError as exc:
        if exc.resp.status != 409:  # 409: a retried insert already landed (or a deleted event of ours)
            raise
    svc.events().patch(calendarId=cal.google_id, eventId=exp.google_event_id, body=body).execute()
    return "updated"


def _patch(svc, cal, exp: GoogleExportedEvent, body: dict) -> str:
    """Patch our event; if Google no longer has it (404 for this event), insert it again."""
    from googleapiclient.errors import HttpError

    try:
        svc.events().patch(calendarId=cal.google_id, eventId=exp.google_event_id, body=body).execute()
        return "updated"
    except HttpError as exc:
        if exc.resp.status not in (404, 410):
            raise
    log.info("google event %s was gone: inserting it again", exp.google_event_id)
    outcome = _insert(svc, cal, exp, body)
    return "reinserted" if outcome == "inserted" else outcome


def _delete_event(svc, cal, exp: GoogleExportedEvent, now) -> str:
    from googleapiclient.errors import HttpError

    try:
        svc.events().delete(calendarId=cal.google_id, eventId=exp.google_event_id).execute()
    except HttpError as exc:
        if exc.resp.status not in (404, 410):  # already gone
            raise
    exp.written_deleted, exp.written_at, exp.error = True, now, None
    db.session.flush()
    return "deleted"


def _forget_exports(cal: GoogleCalendar) -> None:
    """This calendar no longer receives bookings: forget what we wrote there (the events stay)."""
    db.session.execute(
        text("DELETE FROM google_exported_events WHERE calendar_id = :cal"),
        {"cal": cal.id},
    )


def reconcile_exports(*, now: datetime) -> int:
    """Safety net for the after-commit export: upcoming bookings whose event is missing or stale."""
    if not db.session.scalar(db.select(GoogleCalendar.id).where(GoogleCalendar.receives_bookings).limit(1)):
        return 0
    rows = db.session.execute(
        text(
            "SELECT b.id FROM bookings b WHERE b.ends_at > :now AND b.starts_at < :until AND ("
            "  (b.status = ANY(:active) AND NOT EXISTS (SELECT 1 FROM google_exported_events e"
            "     WHERE e.tenant_id = b.tenant_id AND e.booking_id = b.id AND NOT e.written_deleted"
            "       AND e.written_start = b.starts_at AND e.written_end = b.ends_at))"
            "  OR (NOT b.status = ANY(:active) AND EXISTS (SELECT 1 FROM google_exported_events e"
            "     WHERE e.tenant_id = b.tenant_id AND e.booking_id = b.id AND NOT e.written_deleted)))"
        ),
        {"now": now, "until": now + timedelta(days=400), "active": list(EXPORTED_STATUSES)},
    ).scalars()
    count = 0
    for booking_id in list(rows):
        # One booking's failure (Google 5xx/429, network) must not undo the others or the poll around it:
        # its savepoint rolls back, the next sweep retries it.
        try:
            with db.session.begin_nested():
                export_booking(booking_id, now=now)
            count += 1
        except Exception as exc:  # noqa: BLE001 - logged; the booking stays stale and is picked up again
            log.warning("google export of booking %s failed, retried by the next sweep: %s", booking_id, _describe(exc))
    return count


# Changes made in Google to our events ---------------------------------------------------------------------


def _echo_of_ours(cal: GoogleCalendar, event: dict, now: datetime) -> None:
    exp = db.session.scalar(
        db.select(GoogleExportedEvent).where(
            GoogleExportedEvent.calendar_id == cal.id, GoogleExportedEvent.google_event_id == event["id"]
        )
    )
    if exp is None or exp.written_deleted:
        return
    booking = db.session.get(Booking, (exp.tenant_id, exp.booking_id))
    if booking is None or booking.status not in ACTIVE_STATUSES:
        return
    open_change = db.session.scalar(
        db.select(GoogleProposedChange).where(
            GoogleProposedChange.booking_id == booking.id, GoogleProposedChange.status == "open"
        )
    )
    if event.get("status") == "cancelled":
        kind, start, end = "cancel", None, None
    else:
        try:
            start = _parse_time(event["start"]["dateTime"])
            end = _parse_time(event["end"]["dateTime"])
        except (KeyError, ValueError):
            return  # turned into an all-day event: nothing we can propose
        if (start, end) == (exp.written_start, exp.written_end):
            if open_change is not None:  # put back the way we wrote it
                open_change.status, open_change.outcome, open_change.decided_at = "superseded", "Undone in Google", now
            return
        kind = "move"
    if open_change is None:
        open_change = GoogleProposedChange(tenant_id=booking.tenant_id, booking_id=booking.id)
        db.session.add(open_change)
    open_change.exported_event_id = exp.id
    open_change.kind, open_change.proposed_start, open_change.proposed_end = kind, start, end
    db.session.flush()


def confirm_proposal(
    tenant: Tenant, change: GoogleProposedChange, *, user_id: uuid.UUID, now: datetime
) -> GoogleProposedChange:
    """Apply a change made in Google to the booking (the same rules as moving it by hand)."""
    from app.booking import services as booking_services

    if change.status != "open":
        raise FielddayError("This change was already dealt with.")
    booking = booking_services.get_booking(change.booking_id, for_update=True)
    if change.kind == "cancel":
        booking_services.cancel_booking(
            tenant, booking, actor_type="user", actor_id=user_id, now=now, reason="Deleted in Google Calendar"
        )
        change.outcome = "Booking canceled"
    else:
        booking_services.reschedule_booking(
            tenant,
            booking,
            change.proposed_start,
            actor_type="user",
            actor_id=user_id,
            now=now,
            technician_id=booking.technician_id,
        )
        change.outcome = "Booking moved"
    change.status, change.decided_at, change.decided_by = "confirmed", now, user_id
    db.session.flush()
    return change


def reject_proposal(change: GoogleProposedChange, *, user_id: uuid.UUID, now: datetime) -> GoogleProposedChange:
    """Keep the booking as it is and put our event in Google back the way it was."""
    from app.calendar.jobs import export_booking_job
    from app.jobs import after_commit

    if change.status != "open":
        raise FielddayError("This change was already dealt with.")
    change.status, change.decided_at, change.decided_by = "rejected", now, user_id
    change.outcome = "Kept the booking; Google Calendar put back"
    if change.exported_event_id:
        exp = db.session.get(GoogleExportedEvent, (change.tenant_id, change.exported_event_id))
        if exp is not None:
            exp.written_start = exp.written_end = None  # forces the next export to write it again
    db.session.flush()
    after_commit(export_booking_job.enqueue, change.tenant_id, change.booking_id)
    return change


# Helpers ----------------------------------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time without offset")
    return moment.astimezone(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
