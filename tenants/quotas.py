"""Plan quotas (DESIGN §5b): what counts against each limit of ``tenants/plans.py``, the check
every creating service makes inside its own transaction, and the usage the dashboard shows.

Kinds checked here:

* ``technicians``: active technicians on the schedule (``technicians`` rows);
* ``technician_logins``: active technician logins plus open technician invitations. The plan's
  "N technicians" bounds both: N schedules to book jobs on and N technician logins, so an owner
  can add "Jordan" to the schedule first and invite Jordan's login later without paying twice;
* ``jobs``: bookings created in the business's own calendar month, expired holds excepted
  (canceled ones count: they were booked);
* ``customers``: customers on file; one anonymised or waiting to be purged no longer counts.

Texts and photo storage are checked where they are made (``app/messaging``, ``app/media``);
``usage()`` shows them beside these. See docs/plans-and-quotas.md.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from sqlalchemy import text

from app.errors import ValidationFailed
from app.extensions import db
from app.jobs import job
from tenants.models import Tenant
from tenants.plans import Plan, get_plan

log = logging.getLogger(__name__)

GIB = 1024**3
MIB = 1024**2
WARN_PERCENT = 80
KINDS = ("technicians", "technician_logins", "jobs", "customers")
# Refusals the owner may not see for themselves (they happen on the booking site or over the
# API): the owner gets one e-mail per kind and month.
NOTIFY_KINDS = ("jobs", "customers")
NOTIFY_TTL_S = 40 * 24 * 3600  # longer than any month; the key names the month anyway


class PlanLimitReached(ValidationFailed):
    """Creating this would pass the plan's limit. A ValidationFailed, so every dashboard form
    that shows its errors keeps the input and shows this message (key ``plan``); JSON answers
    402 with code ``plan_limit_reached``. ``public_message`` is for the business's customers."""

    status = 402
    code = "plan_limit_reached"

    def __init__(self, kind: str, message: str, public_message: str):
        super().__init__({"plan": message}, message)
        self.kind = kind
        self.public_message = public_message


@dataclass(frozen=True)
class Usage:
    kind: str  # technicians, jobs, customers, texts, storage, api
    label: str
    used: int
    limit: int | None  # None: unlimited
    used_text: str  # "400" or "850 MB"
    limit_text: str  # "500", "1 GB" or "unlimited"
    full: bool = False  # storage: not room for one more photo of the largest size, though under 100 %

    @property
    def percent(self) -> int:
        return min(self.used * 100 // self.limit, 999) if self.limit else 0

    @property
    def level(self) -> str:
        """ok, warn (>= 80 %) or over (>= 100 %: the next one is refused)."""
        if not self.limit:
            return "ok"
        if self.used >= self.limit or self.full:
            return "over"
        return "warn" if self.used * 100 >= self.limit * WARN_PERCENT else "ok"


# Counting ------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def month_start(tenant: Tenant, now: datetime | None = None) -> datetime:
    """The first instant of the business's current month in its own time zone (as UTC)."""
    local = (now or _now()).astimezone(ZoneInfo(tenant.time_zone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def technician_counts(tenant: Tenant, now: datetime | None = None) -> tuple[int, int]:
    """(active technicians on the schedule, active technician logins + open technician invitations)."""
    from app.accounts.models import Invitation, User
    from app.booking.models import Technician

    schedules = (
        db.select(db.func.count())
        .select_from(Technician)
        .where(Technician.tenant_id == tenant.id, Technician.active)
        .scalar_subquery()
    )
    logins = (
        db.select(db.func.count())
        .select_from(User)
        .where(User.tenant_id == tenant.id, User.role == "tech", User.is_active_flag)
        .scalar_subquery()
    )
    invited = (
        db.select(db.func.count())
        .select_from(Invitation)
        .where(
            Invitation.tenant_id == tenant.id,
            Invitation.role == "tech",
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > (now or _now()),
        )
        .scalar_subquery()
    )
    row = db.session.execute(db.select(schedules, logins + invited)).one()
    return int(row[0]), int(row[1])


def jobs_this_month(tenant: Tenant, now: datetime | None = None) -> int:
    """Bookings created this month (the business's month), holds that expired unpaid excepted."""
    from app.booking.models import Booking

    return db.session.scalar(
        db.select(db.func.count())
        .select_from(Booking)
        .where(
            Booking.tenant_id == tenant.id,
            Booking.created_at >= month_start(tenant, now),
            Booking.status != "expired",
        )
    )


def customer_count(tenant: Tenant) -> int:
    """Customers on file, except those anonymised or waiting out their deletion's grace period."""
    from app.customers.models import Customer

    return db.session.scalar(
        db.select(db.func.count())
        .select_from(Customer)
        .where(Customer.tenant_id == tenant.id, Customer.anonymised_at.is_(None), Customer.purge_after.is_(None))
    )


def used(tenant: Tenant, kind: str, now: datetime | None = None) -> int:
    if kind == "technicians":
        return technician_counts(tenant, now)[0]
    if kind == "technician_logins":
        return technician_counts(tenant, now)[1]
    if kind == "jobs":
        return jobs_this_month(tenant, now)
    if kind == "customers":
        return customer_count(tenant)
    raise ValueError(f"unknown quota kind {kind!r}")


def limit_for(tenant: Tenant, kind: str) -> int | None:
    plan = get_plan(tenant.plan)
    if kind in ("technicians", "technician_logins"):
        return plan.technicians
    if kind == "jobs":
        return plan.jobs_per_month
    if kind == "customers":
        return plan.customers
    raise ValueError(f"unknown quota kind {kind!r}")


# The check -----------------------------------------------------------------------------------------


def _tenant(tenant: Tenant | uuid.UUID) -> Tenant:
    if isinstance(tenant, Tenant):
        return tenant
    found = db.session.get(Tenant, tenant)
    if found is None:
        raise ValueError(f"no tenant {tenant}")
    return found


def _lock(tenant: Tenant, kind: str) -> None:
    """One creator of ``kind`` at a time per business, until its transaction ends (safe behind a
    pooler). Whoever waits counts again after the winner committed, so two can't take the last one."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"quota:{kind}:{tenant.id}"}
    )


def check(
    tenant: Tenant | uuid.UUID, kind: str, adding: int = 1, *, now: datetime | None = None, notify: bool = True
) -> None:
    """Refuse (PlanLimitReached) if adding ``adding`` of ``kind`` would pass the plan's limit.
    Call it inside the transaction that creates them, just before the insert. ``notify=False``
    for a refusal only the owner or an admin can meet (no "someone was turned away" e-mail)."""
    tenant = _tenant(tenant)
    limit = limit_for(tenant, kind)
    if limit is None:
        return
    _lock(tenant, kind)
    if used(tenant, kind, now) + adding > limit:
        if notify:
            _notify_owner_once(tenant, kind, now)
        raise refusal(tenant, kind)


def room(tenant: Tenant | uuid.UUID, kind: str, *, lock: bool = True, now: datetime | None = None) -> int | None:
    """How many more of ``kind`` the plan allows now (None: unlimited). With ``lock`` it holds the
    quota lock like ``check`` does, for a service that creates several at once (CSV import)."""
    tenant = _tenant(tenant)
    limit = limit_for(tenant, kind)
    if limit is None:
        return None
    if lock:
        _lock(tenant, kind)
    return max(limit - used(tenant, kind, now), 0)


def is_full(tenant: Tenant | uuid.UUID, kind: str, *, now: datetime | None = None) -> bool:
    """For pages that warn before a form is filled in; no lock, the creating service decides."""
    left = room(tenant, kind, lock=False, now=now)
    return left is not None and left <= 0


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def limit_message(tenant: Tenant, kind: str) -> str:
    """What the owner or an admin reads: what is full and what to do."""
    plan = get_plan(tenant.plan)
    if kind == "technicians":
        return (
            f"Your {plan.name} plan includes {_count(plan.technicians, 'technician', 'technicians')}. "
            "Upgrade on Plan & usage to add more."
        )
    if kind == "technician_logins":
        return (
            f"Your {plan.name} plan includes {_count(plan.technicians, 'technician login', 'technician logins')}, "
            "counting open invitations. Upgrade on Plan & usage to invite more (or revoke an invitation)."
        )
    if kind == "jobs":
        return (
            f"Your {plan.name} plan includes {_count(plan.jobs_per_month or 0, 'job', 'jobs')} a month, and this "
            "month's are booked. Upgrade on Plan & usage to book more; the count starts again on the 1st."
        )
    return (
        f"Your {plan.name} plan includes {_count(plan.customers, 'customer', 'customers')}. "
        "Upgrade on Plan & usage to add more."
    )


def public_message(tenant: Tenant) -> str:
    """What the business's customers read on its booking site: polite, and how to reach it."""
    if tenant.contact_phone:
        reach = f"call or text {tenant.contact_phone}"
    elif tenant.contact_email:
        reach = f"e-mail {tenant.contact_email}"
    else:
        reach = "contact them directly"
    return f"{tenant.name} can't take new online bookings right now. Please {reach} to book."


def refusal(tenant: Tenant, kind: str) -> PlanLimitReached:
    return PlanLimitReached(kind, limit_message(tenant, kind), public_message(tenant))


# Telling the owner ---------------------------------------------------------------------------------


def _month_key(tenant: Tenant, now: datetime | None) -> str:
    return (now or _now()).astimezone(ZoneInfo(tenant.time_zone)).strftime("%Y-%m")


def _notify_owner_once(tenant: Tenant, kind: str, now: datetime | None) -> None:
    """One e-mail per business, kind and month, whoever was refused. Best effort: the refusal
    itself never fails because Redis or the mail queue is down."""
    if kind not in NOTIFY_KINDS:
        return
    from redis.exceptions import RedisError

    from app.extensions import get_redis
    from app.jobs import JobsUnavailable

    month = _month_key(tenant, now)
    if current_app.config.get("JOBS_SYNC"):
        # An inline run would commit this (about to be rolled back) transaction: scripts only.
        log.warning("plan limit %s reached for %s; owner e-mail skipped (JOBS_SYNC)", kind, tenant.id)
        return
    key = f"fieldday:quota-mail:{tenant.id}:{kind}:{month}"
    try:
        if not get_redis().set(key, "1", nx=True, ex=NOTIFY_TTL_S):
            return
    except RedisError:
        log.warning("plan limit %s reached for %s; couldn't queue the owner's e-mail", kind, tenant.id)
        return
    try:
        send_limit_reached.enqueue(tenant.id, kind, month)
    except (RedisError, JobsUnavailable):
        log.warning("plan limit %s reached for %s; couldn't queue the owner's e-mail", kind, tenant.id)
        try:  # not sent: the next refusal may try again
            get_redis().delete(key)
        except RedisError:
            pass


@job("email")
def send_limit_reached(tenant_id: uuid.UUID, kind: str, month: str) -> None:
    """The owner's e-mail: which limit, what customers saw, what to do."""
    from app.accounts.models import User
    from app.mail import send_email
    from app.urls import app_url

    tenant = db.session.get(Tenant, tenant_id)
    owner = db.session.scalar(
        db.select(User).where(User.tenant_id == tenant_id, User.role == "owner", User.is_active_flag).limit(1)
    )
    if tenant is None or owner is None or kind not in NOTIFY_KINDS:
        return
    plan = get_plan(tenant.plan)
    subject = {
        "jobs": f"{tenant.name}: this month's {plan.jobs_per_month} jobs on your {plan.name} plan are booked",
        "customers": f"{tenant.name}: your {plan.name} plan's {plan.customers:,} customers are used",
    }[kind]
    send_email(
        owner.email,
        subject,
        render_template(
            "email/plan_limit.txt",
            tenant=tenant,
            owner=owner,
            kind=kind,
            plan=plan,
            month=month,
            message=limit_message(tenant, kind),
            public=public_message(tenant),
            link=app_url("/plan"),
        ),
    )


# What the dashboard shows --------------------------------------------------------------------------


def size_text(n: int) -> str:
    """Bytes as people read them: 0 MB, 850 MB, 1.2 GB, 10 GB."""
    if n >= GIB:
        value = n / GIB
        return f"{value:.1f} GB".replace(".0 GB", " GB") if value < 10 else f"{value:.0f} GB"
    return f"{round(n / MIB):,} MB"


def _usage(kind: str, label: str, used_n: int, limit: int | None) -> Usage:
    return Usage(kind, label, used_n, limit, f"{used_n:,}", f"{limit:,}" if limit else "unlimited")


def usage(tenant: Tenant, *, now: datetime | None = None, kinds: tuple[str, ...] | None = None) -> list[Usage]:
    """Usage against each limit, one query per kind (``kinds`` picks some). Technicians show the
    larger of schedules and logins, since both are bounded by the same number."""
    from app.media.photos import media_bytes_used
    from app.messaging.services import sms_used

    plan: Plan = get_plan(tenant.plan)
    wanted = kinds or ("technicians", "jobs", "customers", "texts", "storage", "api")
    out: list[Usage] = []
    for kind in wanted:
        if kind == "technicians":
            out.append(_usage(kind, "Technicians", max(technician_counts(tenant, now)), plan.technicians))
        elif kind == "jobs":
            out.append(_usage(kind, "Jobs this month", jobs_this_month(tenant, now), plan.jobs_per_month))
        elif kind == "customers":
            out.append(_usage(kind, "Customers", customer_count(tenant), plan.customers))
        elif kind == "texts":
            out.append(_usage(kind, "Texts this month", sms_used(tenant, now), plan.sms_per_month))
        elif kind == "storage":
            from app.media.photos import MAX_BYTES

            n, limit = media_bytes_used(), plan.media_gb * GIB
            # Uploads are refused once the largest photo would no longer fit (app/media/photos.py check_room).
            out.append(Usage(kind, "Storage", n, limit, size_text(n), f"{plan.media_gb} GB", n + MAX_BYTES > limit))
        elif kind == "api":
            from app.apikeys.services import api_requests_this_hour

            # Read from the rate limiter's counter in Redis; not in the banner (alerts) so that no
            # dashboard page waits on Redis. At 100 % the API answers 429 until the window moves on.
            out.append(
                _usage(kind, "API requests this hour", api_requests_this_hour(tenant), plan.api_requests_per_hour)
            )
    return out


def alerts(tenant: Tenant, *, now: datetime | None = None) -> list[tuple[Usage, str]]:
    """The banner's lines: every limit at 80 % or more, with a sentence each. Unlimited kinds cost
    no query. Technicians only when over (after a downgrade): a one-technician business is at
    100 % all the time, and the Technicians and Team pages say so where it matters."""
    plan = get_plan(tenant.plan)
    kinds = ("technicians", "customers", "texts", "storage") + (("jobs",) if plan.jobs_per_month else ())
    lines = []
    for u in usage(tenant, now=now, kinds=kinds):
        if u.level == "ok" or (u.kind == "technicians" and u.used <= (u.limit or 0)):
            continue
        lines.append((u, alert_text(u, plan)))
    return lines


def alert_text(u: Usage, plan: Plan) -> str:
    over = u.level == "over"
    if u.kind == "jobs":
        if over:
            return (
                f"You've used all {u.limit_text} jobs your {plan.name} plan includes this month: new bookings "
                "are refused until the 1st, and your booking site asks customers to call you."
            )
        return f"You've used {u.used_text} of {u.limit_text} jobs this month."
    if u.kind == "customers":
        if over:
            return (
                f"You have {u.used_text} of the {u.limit_text} customers your {plan.name} plan includes: new "
                "customers are refused, on your booking site too (returning customers can still book)."
            )
        return f"You have {u.used_text} of the {u.limit_text} customers your plan includes."
    if u.kind == "texts":
        if over:
            return f"You've sent all {u.limit_text} texts this month: automatic messages go by e-mail until the 1st."
        return f"You've sent {u.used_text} of {u.limit_text} texts this month."
    if u.kind == "storage":
        if over:
            return f"Your {u.limit_text} of photo storage is full: new photos can't be uploaded."
        return f"You've used {u.used_text} of {u.limit_text} photo storage."
    return (
        f"You have {u.used_text} technicians; your {plan.name} plan includes {u.limit_text}. "
        "New technicians can't be added."
    )
