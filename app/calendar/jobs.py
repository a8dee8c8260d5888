"""Google Calendar jobs: thin, idempotent, tenant first (STYLE "Jobs")."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from app.calendar import services
from app.calendar.models import GoogleConnection
from app.extensions import db
from app.jobs import job

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@job("default")
def sync_calendar_job(tenant_id: uuid.UUID, calendar_id: str, full: bool = False) -> str:
    return services.sync_calendar(uuid.UUID(calendar_id), now=_now(), full=bool(full))


@job("default")
def export_booking_job(tenant_id: uuid.UUID, booking_id: str) -> str:
    return services.export_booking(uuid.UUID(booking_id), now=_now())


@job("default")
def reconcile_exports_job(tenant_id: uuid.UUID) -> int:
    return services.reconcile_exports(now=_now())


@job("default", timeout=600)
def sync_tenant_job(tenant_id: uuid.UUID) -> int:
    """The 15-minute poll for one business: calendar lists, every calendar in use, channels, exports.
    Pushes are not 100 % reliable (RELIABILITY §4), so this runs whether or not they arrive. Each calendar
    and each export has its own savepoint: one failure is logged and retried by the next poll, and never
    undoes what the others read."""
    now = _now()
    synced = 0
    for conn in services.list_connections():
        if not conn.is_connected:
            continue  # a dead grant stops here until the owner reconnects
        services.poll_calendar_list(conn, now=now)
        for cal in services.calendars_of(conn):
            if not conn.is_connected:
                break
            if cal.in_use and not cal.missing_since:
                try:
                    with db.session.begin_nested():
                        services.sync_calendar(cal.id, now=now)
                    synced += 1
                except Exception:  # noqa: BLE001 - an unexpected error for one calendar; the others go on
                    log.exception("google sync of calendar %s failed; the next poll tries again", cal.id)
    with db.session.begin_nested():
        services.reconcile_exports(now=now)
    return synced


def sweep_google_calendars() -> int:
    """`flask cron` every 15 minutes: one sync job per business with a working connection, found
    through the narrow fan-out function (DESIGN §3)."""
    ids = list(db.session.execute(text("SELECT public.tenants_with_google_calendar()")).scalars())
    db.session.rollback()
    for tenant_id in ids:
        sync_tenant_job.enqueue(tenant_id)
    return len(ids)


NOTICE = """Hello,

Fieldday lost access to the Google Calendar of {label} ({email}): {problem}

Until it is connected again, Fieldday doesn't offer times it can't check against that calendar, and
new bookings aren't added to it. Connect it again (or disconnect it) under Integrations:
{link}

— Fieldday
"""


@job("email")
def notify_disconnected_job(tenant_id: uuid.UUID, connection_id: str) -> bool:
    """Tell the owner once that a Google connection died (the marker makes a retried job a no-op)."""
    from app.accounts.models import User
    from app.mail import send_email
    from app.urls import app_url

    conn = db.session.scalar(
        db.select(GoogleConnection)
        .where(GoogleConnection.tenant_id == tenant_id, GoogleConnection.id == uuid.UUID(connection_id))
        .with_for_update()
    )
    if conn is None or conn.is_connected or conn.owner_notified_at is not None:
        return False
    owners = db.session.scalars(db.select(User).where(User.role == "owner")).all()
    label = conn.label
    body = NOTICE.format(
        label=label,
        email=conn.account_email or "Google account",
        problem=conn.problem or "access was revoked",
        link=app_url("/integrations#google"),
    )
    # A sent-marker per recipient: if one address fails and RQ retries, the owners already told aren't
    # told again (the row's marker below is only committed once everyone was).
    marker = f"fieldday:google-notified:{conn.id}:{int((conn.disconnected_at or _now()).timestamp())}"
    for owner in owners:
        address = getattr(owner, "email", None)
        if not address or not _first_time(marker, address):
            continue
        try:
            send_email(address, f"Google Calendar disconnected: {label}", body)
        except Exception:
            _forget_sent(marker, address)
            raise
    conn.owner_notified_at = _now()
    return True


def _first_time(marker: str, address: str) -> bool:
    from redis.exceptions import RedisError

    from app.extensions import get_redis

    try:
        redis = get_redis()
        added = redis.sadd(marker, address)
        redis.expire(marker, 8 * 24 * 3600)  # longer than RQ keeps a failed job around
        return bool(added)
    except RedisError:
        return True  # no marker store: better twice than never


def _forget_sent(marker: str, address: str) -> None:
    from redis.exceptions import RedisError

    from app.extensions import get_redis

    try:
        get_redis().srem(marker, address)
    except RedisError:
        pass
