"""Platform staff pages on ``app.<base>/platform``: background jobs that gave up, across every
business, with Retry (DESIGN §9, RELIABILITY J3).

Only users marked ``is_platform_admin`` (set from the command line with ``flask platform-admin``,
never from a page) may open them. Everyone else, a business owner included, gets 404, so the
pages' existence isn't revealed. The page shows ids only (job, business), never a business's
data: job arguments other than the tenant id are not shown, and e-mail addresses and phone
numbers in an error message are masked.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from app.extensions import csrf, get_redis
from app.jobs import get_queue
from app.web import dashboard

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
    if request.method == "POST":
        csrf.protect()


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
    try:
        FailedJobRegistry(queue=get_queue(name)).requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError, ValueError):
        flash("That job is no longer in the failed list (retried already, or expired).", "info")
    except RedisError:
        flash("Redis is unreachable; nothing was retried.", "error")
    else:
        current_app.logger.info("platform admin %s retried job %s on %s", current_user.id, job_id, name)
        flash(f"Job {job_id} is queued again.", "success")
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
        return redirect(url_for("platform.jobs"))
    current_app.logger.info("platform admin %s retried %d failed job(s) on %s", current_user.id, done, names)
    flash(f"{done} job{'' if done == 1 else 's'} queued again.", "success")
    return redirect(url_for("platform.jobs"))


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
