"""Template filters: local times in the tenant's zone, labels."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import g

ACTIVITY = {
    "tenant.created": "Business created",
    "tenant.settings_changed": "Settings changed",
    "tenant.logo_changed": "Logo updated",
    "tenant.logo_removed": "Logo removed",
    "user.login": "Logged in",
    "user.password_changed": "Password changed",
    "user.logout_everywhere": "Logged out everywhere",
    "user.role_changed": "Role changed",
    "user.deactivated": "Team member removed",
    "invitation.created": "Invitation sent",
    "invitation.revoked": "Invitation revoked",
    "invitation.accepted": "Invitation accepted",
}


def _local(dt: datetime) -> datetime:
    tenant = g.get("tenant")
    return dt.astimezone(ZoneInfo(tenant.time_zone)) if tenant else dt


def local_datetime(dt: datetime | None) -> str:
    if dt is None:
        return ""
    local = _local(dt)
    return local.strftime("%b %-d, %-I:%M %p").replace("AM", "am").replace("PM", "pm")


def local_date(dt: datetime | None) -> str:
    return _local(dt).strftime("%b %-d") if dt else ""


def clock(dt: datetime) -> str:
    return dt.strftime("%-I:%M %p").replace("AM", "am").replace("PM", "pm")


def local_long(dt: datetime, tenant) -> str:
    local = dt.astimezone(ZoneInfo(tenant.time_zone))
    return local.strftime("%A, %B %-d at ") + clock(local)


def duration(minutes: int) -> str:
    hours, mins = divmod(int(minutes), 60)
    if hours and mins:
        return f"{hours} h {mins} min"
    return f"{hours} h" if hours else f"{mins} min"


def init_app(app) -> None:
    from app.catalog.services import format_money

    app.add_template_filter(clock)
    app.add_template_filter(local_long)
    app.add_template_filter(duration)
    app.add_template_filter(format_money, "money")
    app.add_template_filter(local_datetime)
    app.add_template_filter(local_date)
    app.add_template_filter(
        lambda a: ACTIVITY.get(a, a.replace(".", " ").replace("_", " ").capitalize()), "activity_label"
    )
    app.add_template_filter(lambda z: (z, z.replace("_", " ")), "tz_option")
    app.add_template_filter(lambda kv: (kv[0], f"{kv[0]} · {kv[1]}"), "currency_option")
    app.add_template_filter(lambda items, role: [i for i in items if role in i[3]], "visible_for")
