"""Template filters: local times in the tenant's zone, labels."""

from __future__ import annotations

from datetime import datetime, time
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
    # The business's Fieldday subscription (app/billing) and plan changes by Fieldday staff.
    "plan.changed_by_platform": "Plan changed by Fieldday support",
    "billing.checkout_started": "Subscription checkout started",
    "billing.plan_changed": "Plan changed (subscription)",
    "billing.switched": "Plan switched",
    "billing.cancel_scheduled": "Subscription set to end",
    "billing.cancel_undone": "Subscription kept",
    "billing.payment_failed": "Subscription payment failed",
    "billing.subscription_ended": "Subscription ended: back on Starter",
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


def hours_by_day(hours) -> dict:
    out = {}
    for h in hours:
        out.setdefault(h.weekday, (h.start_local, h.end_local))
    return out


def hours_summary(hours) -> str:
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    by_day = hours_by_day(hours)
    if not by_day:
        return "No working hours"
    parts = [f"{days[d]} {s.strftime('%-H:%M')}–{e.strftime('%-H:%M')}" for d, (s, e) in sorted(by_day.items())]
    return ", ".join(parts[:3]) + (f" +{len(parts) - 3} more" if len(parts) > 3 else "")


def init_app(app) -> None:
    from app.catalog.services import format_money
    from app.customers.models import SIZE_SHORT

    app.add_template_filter(lambda size: SIZE_SHORT.get(size, size), "size_short")
    from app.customers.services import format_phone

    app.add_template_filter(format_phone, "phone")
    app.add_template_filter(clock)
    app.add_template_filter(lambda dt, tenant: clock(dt.astimezone(ZoneInfo(tenant.time_zone))), "local_time")
    app.add_template_filter(hours_by_day)
    app.add_template_filter(hours_summary)
    app.add_template_filter(lambda _: {d: (time(8), time(17)) for d in range(5)}, "default_hours")
    app.add_template_filter(lambda u: (str(u.id), f"{u.name} ({u.email})"), "user_option")
    app.add_template_filter(
        lambda t: {"id": str(t.id), "title": t.name, "eventBackgroundColor": t.color}, "tech_resource"
    )
    app.add_template_filter(lambda t: (str(t.id), t.name), "tech_option")
    app.add_template_filter(lambda p: (str(p.id), p.name), "pkg_option")
    app.add_template_filter(
        lambda iso, tenant: local_long(datetime.fromisoformat(iso), tenant) if iso else "", "iso_local"
    )
    app.add_template_filter(local_long)
    app.add_template_filter(
        lambda dt, tenant: clock(dt.astimezone(ZoneInfo(tenant.time_zone))) if dt else "", "local_clock"
    )
    app.add_template_filter(
        lambda iso, tenant: clock(datetime.fromisoformat(iso).astimezone(ZoneInfo(tenant.time_zone))) if iso else "",
        "iso_clock",
    )
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
