"""Platform staff pages on ``app.<base>/platform``: background jobs that gave up, across every
business, with Retry (DESIGN §9, RELIABILITY J3); finding a business, its plan and usage counts,
and changing its plan; the platform audit log (docs/platform-and-billing.md).

Only users marked ``is_platform_admin`` (set from the command line with ``flask platform-admin``,
never from a page) may open them. Everyone else, a business owner included, gets 404, so the
pages' existence isn't revealed. Every request an admin makes here (GET or POST, whatever its
answer) is written to the platform audit log before the answer leaves; if it can't be written the
answer is a 503 instead. The jobs page shows ids only (job, business), never a business's
data: job arguments other than the tenant id are not shown, and e-mail addresses and phone
numbers in an error message are masked.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import stripe
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.exc import SQLAlchemyError

from app.billing.services import status_label
from app.errors import ValidationFailed
from app.extensions import csrf, db, get_redis
from app.jobs import get_queue
from app.platform import services as platform
from app.web import dashboard
from tenants.plans import PLANS

log = logging.getLogger(__name__)

bp = Blueprint("platform", __name__)
# CSRF is checked in the guard below, after the platform-admin check: a POST without a token
# from anyone else must also answer 404, not "this form expired".
csrf.exempt(bp)

SHOWN_PER_QUEUE = 200  # newest failures; the counts above the table are exact


# app/web/__init__.py registers the audience blueprints; this one rides on the dashboard's
# registration (same host, own prefix, own guard), as tech.py does for its PWA files.
dashboard.bp.record_once(lambda state: state.app.register_blueprint(bp, subdomain="app", url_prefix="/platform"))


@bp.before_request
def require_platform_admin():
    if not (current_user.is_authenticated and g.get("tenant") is not None and current_user.is_platform_admin):
        abort(404)
    # From here on the request is audited (after_request below), a refused CSRF token included.
    g.platform_actor = platform.Actor(current_user.tenant_id, current_user.id, request.remote_addr)
    if request.method == "POST":
        csrf.protect()


@bp.after_request
def audit_access(response):
    actor = g.pop("platform_actor", None)
    if actor is None:
        return response  # not an admin: nothing was shown, nothing to log
    target = (request.view_args or {}).get("tenant_id")
    detail = {
        "method": request.method,
        "path": _loggable(request.path, 500),
        "endpoint": request.endpoint,
        "status": response.status_code,
    }
    if request.args:
        detail["query"] = {_loggable(k): _loggable(v) for k, v in list(request.args.items())[:20]}
    try:
        platform.record_access(actor, target=target if isinstance(target, uuid.UUID) else None, detail=detail)
    except SQLAlchemyError:
        log.exception("platform audit write failed; %s %s refused", request.method, request.path)
        from app.web.errors import render_error

        return render_error(503, "The platform audit log can't be written just now, so this page isn't shown.")
    return response


def _loggable(value: str, limit: int = 200) -> str:
    """Cut to ``limit``; a NUL (which jsonb refuses, so the entry could not be written) becomes U+FFFD."""
    return value[:limit].replace("\x00", "\ufffd")


def _actor() -> platform.Actor:
    return g.platform_actor


@bp.app_template_global("platform_nav")
def platform_nav() -> list[tuple[str, str, bool]]:
    """The platform area's small nav: (url, label, current)."""
    current = request.endpoint or ""
    return [
        (url_for("platform.jobs"), "Jobs", current.startswith("platform.jobs") or current.startswith("platform.retry")),
        (url_for("platform.tenants"), "Tenants", current.startswith("platform.tenant")),
        (url_for("platform.audit_log"), "Audit", current == "platform.audit_log"),
    ]


@dataclass(frozen=True)
class FailedJob:
    queue: str
    id: str
    function: str
    tenant_id: str
    failed_at: datetime | None
    error: str
    retries_used: int
    retries_total: int


@dataclass(frozen=True)
class QueueCounts:
    name: str
    queued: int
    started: int
    scheduled: int
    failed: int


@bp.get("/jobs")
def jobs():
    try:
        counts = [_counts(name) for name in _queue_names()]
        failed = sorted(
            (j for name in _queue_names() for j in _failed(name)),
            key=lambda j: j.failed_at.timestamp() if j.failed_at else 0.0,
            reverse=True,
        )
    except RedisError as exc:
        current_app.logger.warning("platform jobs page: Redis unreachable (%r)", exc)
        return render_template("platform/jobs.html", counts=[], failed=[], redis_down=True), 503
    return render_template("platform/jobs.html", counts=counts, failed=failed, redis_down=False)


@bp.post("/jobs/retry")
def retry():
    """Requeue one failed job (RQ ``FailedJobRegistry.requeue``): it runs again on its queue."""
    name, job_id = _queue_from_form(), (request.form.get("job_id") or "").strip()
    requeued, target = False, None
    try:
        job = FailedJobRegistry(queue=get_queue(name)).requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError, ValueError):
        flash("That job is no longer in the failed list (retried already, or expired).", "info")
    except RedisError:
        flash("Redis is unreachable; nothing was retried.", "error")
    else:
        requeued, target = True, _tenant_uuid(job)
        current_app.logger.info("platform admin %s retried job %s on %s", current_user.id, job_id, name)
        flash(f"Job {job_id} is queued again.", "success")
    # A change across businesses: its own entry (the access entry doesn't carry the form).
    detail = {"queue": name, "job_id": _loggable(job_id), "requeued": requeued}
    platform.record(_actor(), "jobs.retried", target=target, detail=detail)
    db.session.commit()
    return redirect(url_for("platform.jobs"))


@bp.post("/jobs/retry-all")
def retry_all():
    """Requeue every failed job of one queue (``queue`` in the form) or of all queues."""
    names = [_queue_from_form()] if request.form.get("queue") else _queue_names()
    done = 0
    try:
        for name in names:
            registry = FailedJobRegistry(queue=get_queue(name))
            for job_id in registry.get_job_ids():
                try:
                    registry.requeue(job_id)
                    done += 1
                except (InvalidJobOperation, NoSuchJobError):
                    continue  # retried by someone else meanwhile, or expired
    except RedisError:
        flash(f"Redis became unreachable after {done} job(s) were queued again.", "error")
    else:
        current_app.logger.info("platform admin %s retried %d failed job(s) on %s", current_user.id, done, names)
        flash(f"{done} job{'' if done == 1 else 's'} queued again.", "success")
    platform.record(_actor(), "jobs.retried_all", detail={"queues": names, "requeued": done})
    db.session.commit()
    return redirect(url_for("platform.jobs"))


# Businesses and their plans ----------------------------------------------------------------------


@bp.get("/tenants")
def tenants():
    query = (request.args.get("q") or "").strip()
    rows = platform.find_tenants(_actor(), query)
    return render_template("platform/tenants.html", q=query, rows=rows, plans=PLANS, status_label=status_label)


def _tenant_page(tenant_id: uuid.UUID, *, errors: dict | None = None, status: int = 200):
    summary = platform.tenant_summary(_actor(), tenant_id)
    if summary is None:
        abort(404)
    plan = PLANS[summary.plan]
    usage = [
        ("Technicians", summary.technicians, plan.technicians),
        ("Customers", summary.customers, plan.customers),
        ("Bookings created this month", summary.bookings_this_month, plan.jobs_per_month),
    ]
    history = platform.recent(_actor(), target=tenant_id, changes_only=True, limit=20)
    return (
        render_template(
            "platform/tenant.html",
            t=summary,
            plan=plan,
            plans=PLANS,
            usage=usage,
            history=history,
            status_label=status_label,
            errors=errors or {},
            form=request.form if errors else {},
            request_key=uuid.uuid4().hex,
        ),
        status,
    )


@bp.get("/tenants/<uuid:tenant_id>")
def tenant(tenant_id: uuid.UUID):
    return _tenant_page(tenant_id)


@bp.post("/tenants/<uuid:tenant_id>/plan")
def tenant_plan(tenant_id: uuid.UUID):
    """Change a business's plan, with a reason; its live subscription, if any, follows in Stripe."""
    try:
        change = platform.change_plan(
            _actor(),
            tenant_id,
            request.form.get("plan", ""),
            request.form.get("reason", ""),
            request_key=(request.form.get("request_key") or "")[:64] or uuid.uuid4().hex,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return _tenant_page(tenant_id, errors=exc.errors, status=422)
    except stripe.StripeError as exc:
        db.session.rollback()
        log.warning("platform plan change: Stripe failed (%r)", exc)
        flash("Stripe couldn't update the subscription, so nothing was changed. Try again in a minute.", "error")
        return redirect(url_for("platform.tenant", tenant_id=tenant_id))
    db.session.commit()
    log.info(
        "platform admin %s moved business %s from %s to %s",
        current_user.id,
        tenant_id,
        change.old_plan,
        change.new_plan,
    )
    flash(
        f"Plan changed from {PLANS[change.old_plan].name} to {PLANS[change.new_plan].name} ({change.billing_note}).",
        "success",
    )
    return redirect(url_for("platform.tenant", tenant_id=tenant_id))


@bp.get("/audit")
def audit_log():
    changes_only = request.args.get("changes") == "1"
    try:
        target = uuid.UUID(request.args["tenant"]) if request.args.get("tenant") else None
    except ValueError:
        abort(400)
    rows = platform.recent(_actor(), target=target, changes_only=changes_only, limit=200)
    return render_template("platform/audit.html", rows=rows, changes_only=changes_only, target=target)


# Reading RQ's registries -------------------------------------------------------------------------


def _queue_names() -> list[str]:
    return list(current_app.config["RQ_QUEUES"])


def _queue_from_form() -> str:
    name = request.form.get("queue") or ""
    if name not in _queue_names():
        abort(400)
    return name


def _counts(name: str) -> QueueCounts:
    queue = get_queue(name)
    return QueueCounts(
        name=name,
        queued=queue.count,
        started=StartedJobRegistry(queue=queue).count,
        scheduled=ScheduledJobRegistry(queue=queue).count,
        failed=FailedJobRegistry(queue=queue).count,
    )


def _failed(name: str) -> list[FailedJob]:
    registry = FailedJobRegistry(queue=get_queue(name))
    # Scores are "failed at + failure TTL", the same TTL for all our jobs: highest = newest.
    ids = registry.get_job_ids(0, SHOWN_PER_QUEUE - 1, desc=True)
    out = []
    for job_id, job in zip(ids, Job.fetch_many(ids, connection=get_redis(), serializer=JSONSerializer), strict=True):
        if job is None:
            continue  # expired between the two reads
        out.append(_describe(name, job_id, job))
    return out


def _describe(name: str, job_id: str, job: Job) -> FailedJob:
    try:
        function, args = job.func_name, job.args
    except Exception:  # noqa: BLE001 - not a JSON job of ours (or damaged): show what can be shown
        function, args = "(unreadable job)", ()
    # Our `job` decorator gives one interval per retry, so the interval list is the retry budget.
    total = len(job.retry_intervals or [])
    return FailedJob(
        queue=name,
        id=job_id,
        function=function,
        tenant_id=_tenant_id(args[0] if args else None),
        failed_at=job.ended_at,
        error=_error_line(job),
        retries_used=max(total - (job.retries_left or 0), 0),
        retries_total=total,
    )


def _tenant_uuid(job: Job) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(job.args[0]))
    except Exception:  # noqa: BLE001 - no tenant argument (or an unreadable job): no target
        return None


def _tenant_id(value) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return "—"  # a job without a tenant fails at once (MissingTenant): that is the error shown


# The exception's own line: "module.ErrorName: message" (CamelCase name), not Postgres's DETAIL
# lines, SQLAlchemy's "[parameters: ...]" (row values) or its "(Background on this error ...)".
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*[a-z]\w*(?::\s|$)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w-])\+?\d[\d ().-]{6,}\d(?![\w-])")


def _error_line(job: Job) -> str:
    result = job.latest_result()
    text = (result.exc_string if result is not None and result.exc_string else None) or job.exc_info or ""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    line = next((x for x in reversed(lines) if EXCEPTION_LINE.match(x)), lines[-1] if lines else "")
    line = PHONE.sub("[number]", EMAIL.sub("[e-mail]", line))
    return line if len(line) <= 240 else line[:239] + "…"
