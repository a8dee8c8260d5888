"""RQ conventions (DESIGN §9, STYLE "Jobs").

Every job is enqueued with the JSON serializer, takes ``tenant_id`` as its first
argument, enters that tenant's RLS context itself, commits once, and retries with
backoff before landing in the failed registry. A job without a tenant fails at
once, before touching the database.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.errors import FielddayError
from app.extensions import db, get_redis
from tenants.context import tenant_context

log = logging.getLogger(__name__)

DEFAULT_RETRY = Retry(max=3, interval=[10, 60, 300])


class MissingTenant(Exception):
    """A job arrived without a valid tenant id."""


class JobsUnavailable(FielddayError):
    """Redis can't take a job right now (RELIABILITY F2). Work with a durable row goes through
    ``after_commit``, which logs this and leaves the row to a sweep; a direct ``.enqueue`` in a
    request answers 503 (try again) instead of a 500."""

    status = 503
    code = "unavailable"
    message = "We couldn't do that just now. Please try again in a minute."


def get_queue(name: str = "default") -> Queue:
    return Queue(name, connection=get_redis(), serializer=JSONSerializer)


_forked_pid: int | None = None


def _fresh_pool_after_fork() -> None:
    # RQ forks a work-horse per job; connections inherited from the parent must not
    # be shared (SQLAlchemy "using connection pools with multiprocessing").
    global _forked_pid
    pid = os.getpid()
    if _forked_pid != pid:
        _forked_pid = pid
        db.engine.dispose(close=False)


def parse_tenant_id(value: Any) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise MissingTenant(f"job needs a tenant_id, got {value!r}") from None


def job(queue: str = "default", *, retry: Retry | None = DEFAULT_RETRY, timeout: int = 180):
    """Declare an RQ job. ``fn.enqueue(tenant_id, *args)`` queues it."""

    def decorate(fn: Callable[..., Any]):
        @functools.wraps(fn)
        def run(tenant_id, *args, **kwargs):
            tid = parse_tenant_id(tenant_id)
            _fresh_pool_after_fork()
            with tenant_context(tid):
                try:
                    result = fn(tid, *args, **kwargs)
                    db.session.commit()
                    return result
                except Exception:
                    db.session.rollback()
                    raise
                finally:
                    db.session.remove()

        def enqueue(tenant_id, *args, **kwargs):
            tid = str(parse_tenant_id(tenant_id))
            args = tuple(str(a) if isinstance(a, uuid.UUID) else a for a in args)
            if current_app.config.get("JOBS_SYNC"):
                return run(tid, *args, **kwargs)
            try:
                return get_queue(queue).enqueue(
                    run,
                    tid,
                    *args,
                    **kwargs,
                    retry=retry,
                    job_timeout=timeout,
                    failure_ttl=7 * 24 * 3600,
                    result_ttl=3600,
                )
            except RedisError as exc:
                raise JobsUnavailable() from exc

        def enqueue_at(when, tenant_id, *args, **kwargs):
            tid = str(parse_tenant_id(tenant_id))
            args = tuple(str(a) if isinstance(a, uuid.UUID) else a for a in args)
            try:
                return get_queue(queue).enqueue_at(
                    when,
                    run,
                    tid,
                    *args,
                    **kwargs,
                    retry=retry,
                    job_timeout=timeout,
                    failure_ttl=7 * 24 * 3600,
                    result_ttl=3600,
                )
            except RedisError as exc:
                raise JobsUnavailable() from exc

        run.enqueue = enqueue  # type: ignore[attr-defined]
        run.enqueue_at = enqueue_at  # type: ignore[attr-defined]
        run.queue_name = queue  # type: ignore[attr-defined]
        return run

    return decorate


def after_commit(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` (usually an ``.enqueue``) once the current transaction commits, and
    never if it rolls back: a job must not run for rows that were never written."""
    db.session.info.setdefault("after_commit", []).append((fn, args))


# SQLAlchemy fires after_commit / after_rollback for savepoints too (``begin_nested``): only the
# root transaction's end may run or drop the callbacks, or a job would be queued before its rows
# are committed, and a rolled-back savepoint would drop work the outer transaction still commits.


@event.listens_for(Session, "after_commit")
def _run_after_commit(session) -> None:
    if session.in_nested_transaction():
        return
    for fn, args in session.info.pop("after_commit", []):
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the rows are committed; sweeps pick up what was not queued
            log.exception("after-commit %s failed", getattr(fn, "__name__", fn))


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop("after_commit", None)


PERIODIC: list[tuple[int, str]] = [
    # (every N seconds, "module:function") run by `flask cron`; each only enqueues jobs.
    (60, "app.booking.jobs:sweep_expired_holds"),
    (120, "app.payments.jobs:sweep_stripe_events"),
    (120, "app.billing.jobs:sweep_billing_events"),  # Stripe Billing events never processed
    (120, "app.messaging.jobs:sweep_queued_texts"),
    (300, "app.messaging.jobs:sweep_reminders"),
    (900, "app.calendar.jobs:sweep_google_calendars"),  # Google Calendar: poll, renew channels, exports
    (3600, "app.messaging.jobs:sweep_payment_reminders"),
    (3600, "app.quotes.jobs:sweep_quotes"),  # quotes: expiry and "expires soon" reminders
    (60, "app.webhooks_out.jobs:sweep_webhook_deliveries"),  # outgoing webhooks whose send wasn't queued
    (3600, "app.customers.jobs:sweep_privacy"),  # data rights: purge after the grace period, old exports
]


def init_app(app) -> None:
    @app.cli.command("cron")
    def cron() -> None:
        """Enqueue periodic work (hold expiry sweeps, later syncs and reminders) on schedule."""
        import importlib
        import time as _time

        last: dict[str, float] = {}
        log.info("cron started: %s", ", ".join(f"{name} every {every}s" for every, name in PERIODIC))
        while True:
            for every, name in PERIODIC:
                if _time.monotonic() - last.get(name, -1e9) >= every:
                    module, func = name.split(":")
                    try:
                        count = getattr(importlib.import_module(module), func)()
                        log.info("%s queued %s job(s)", name, count)
                    except Exception:  # noqa: BLE001 - keep the schedule alive; the error is logged
                        log.exception("%s failed", name)
                    finally:
                        db.session.remove()
                    last[name] = _time.monotonic()
            _time.sleep(5)

    @app.cli.command("worker")
    def worker() -> None:
        """Run an RQ worker (with its scheduler) in the app context."""
        from rq import Worker

        queues = [get_queue(name) for name in app.config["RQ_QUEUES"]]
        w = Worker(queues, connection=get_redis(), serializer=JSONSerializer)
        _preload()
        w.work(with_scheduler=True)


# RQ forks a work-horse per job; import in the parent what each would otherwise import again (job
# modules, the SDKs' lazily loaded REST modules, the ORM's mapper configuration). The texts bench
# (2 workers, 2 cores): forking 16 texts/s idle and ~5/s on a loaded box, SimpleWorker 64/s idle;
# gc.freeze() before forking made no measurable difference.
PRELOAD = (
    "app.accounts.jobs",
    "app.booking.jobs",
    "app.calendar.jobs",
    "app.customers.jobs",
    "app.dispatch.jobs",
    "app.messaging.jobs",
    "app.payments.jobs",
    "app.quotes.jobs",
    "app.webhooks_out.jobs",
    "twilio.rest.api.v2010.account",
    "stripe",
    "googleapiclient.discovery",
)


def _preload() -> None:
    import importlib

    from sqlalchemy.orm import configure_mappers

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # a domain without jobs yet
            log.debug("preload: no %s", name)
    configure_mappers()
