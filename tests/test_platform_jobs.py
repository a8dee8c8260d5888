"""Retries and the failed-jobs page (RELIABILITY J3, DESIGN §9): a job that fails twice succeeds
on its third run under a real worker with its scheduler; a job that keeps failing lands in the
failed registry, shows on /platform/jobs to platform admins only (404 for everyone else, owners
included), and Retry puts it back on its queue where it runs. Platform admins are made with
`flask platform-admin grant|revoke`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rq import Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from app.jobs import job
from tests.helpers import csrf_from

ROOT = Path(__file__).resolve().parents[1]
J3_RETRY = Retry(max=3, interval=[1, 2, 4])  # RELIABILITY J3, with our decorator's shape


@job("default", retry=J3_RETRY, timeout=30)
def flaky(tenant_id: uuid.UUID, key: str, failures: int) -> int:
    """Fails ``failures`` times, then succeeds; counts its runs in Redis."""
    from app.extensions import get_redis

    runs = get_redis().incr(key)
    get_redis().expire(key, 600)
    if runs <= failures:
        raise RuntimeError(f"flaky failure {runs}")
    return runs


@job("default", retry=J3_RETRY, timeout=30)
def broken_until_fixed(tenant_id: uuid.UUID, key: str, customer_phone: str) -> str:
    """Fails (with customer data in its message) until ``key:fixed`` is set, like a job whose
    cause someone has to fix before a retry can help."""
    from app.extensions import get_redis

    redis = get_redis()
    redis.incr(f"{key}:runs")
    redis.expire(f"{key}:runs", 600)
    if not redis.get(f"{key}:fixed"):
        raise RuntimeError(f"carrier refused {customer_phone} (contact pat.lee@example.test)")
    return "done"


@pytest.fixture
def worker(services):
    """`flask worker`: a forking RQ worker with its scheduler, as deployed."""
    env = {
        **os.environ,
        "FIELDDAY_ENV": "test",
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": services.redis.url,
    }
    log = open(services.base / f"platform-worker-{uuid.uuid4().hex[:6]}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "flask", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log)
    yield proc
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def fetch(app, job_id: str) -> Job:
    from app.extensions import get_redis

    with app.app_context():
        return Job.fetch(job_id, connection=get_redis(), serializer=JSONSerializer)


def wait_for(app, job_id: str, statuses: set, worker, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        found = fetch(app, job_id)
        if found.get_status() in statuses:
            return found
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"job {job_id} still {found.get_status()}"
        time.sleep(0.2)


def redis_get(app, key: str):
    from app.extensions import get_redis

    with app.app_context():
        return get_redis().get(key)


def in_failed_registry(app, job_id: str) -> bool:
    from app.jobs import get_queue

    with app.app_context():
        return job_id in FailedJobRegistry(queue=get_queue("default")).get_job_ids()


def grant(app, email: str, *args: str):
    return app.test_cli_runner().invoke(args=["platform-admin", "grant", email, *args])


def revoke(app, email: str):
    return app.test_cli_runner().invoke(args=["platform-admin", "revoke", email])


def test_j3_fails_twice_then_succeeds_on_the_third_run(app, make_tenant, worker):
    t = make_tenant()
    key = f"test:j3:{uuid.uuid4().hex}"
    with app.app_context():
        queued = flaky.enqueue(t.id, key, 2)
    started = time.monotonic()
    done = wait_for(app, queued.id, {JobStatus.FINISHED, JobStatus.FAILED}, worker)
    assert done.get_status() == JobStatus.FINISHED, done.latest_result()
    assert int(redis_get(app, key)) == 3  # two failures, then the third run succeeded
    assert done.retries_left == 1  # two of its three retries used
    assert time.monotonic() - started >= 1 + 2  # the backoff went through the scheduler
    assert not in_failed_registry(app, queued.id)


def test_a_permanent_failure_shows_to_platform_admins_and_retry_runs_it(app, make_tenant, visitor, worker):
    staff, a, b = make_tenant(), make_tenant(), make_tenant()
    result = grant(app, staff.owner.email)
    assert result.exit_code == 0 and "is now a platform admin" in result.output, result.output
    keys = {t.subdomain: f"test:perm:{uuid.uuid4().hex}" for t in (a, b)}
    with app.app_context():
        ja = broken_until_fixed.enqueue(a.id, keys[a.subdomain], "+15125550199")
        jb = broken_until_fixed.enqueue(b.id, keys[b.subdomain], "+15125550198")
    for queued in (ja, jb):
        failed = wait_for(app, queued.id, {JobStatus.FAILED, JobStatus.FINISHED}, worker)
        assert failed.get_status() == JobStatus.FAILED and failed.retries_left == 0
        assert in_failed_registry(app, queued.id)
    assert int(redis_get(app, f"{keys[a.subdomain]}:runs")) == 4  # the first run and three retries

    v = visitor()
    v.login(staff.owner.email, staff.owner.password)
    r = v.get("/platform/jobs")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    page = r.get_data(as_text=True)
    # Every business's failures, by id only: function, tenant id, job id, the error, retries used.
    for t, queued in ((a, ja), (b, jb)):
        assert f'data-job-id="{queued.id}"' in page and str(t.id) in page
        assert t.name not in page and t.owner.email not in page and t.subdomain not in page
    assert "tests.test_platform_jobs.broken_until_fixed" in page and "3 of 3" in page
    assert "RuntimeError: carrier refused [number] (contact [e-mail])" in page
    assert "+15125550199" not in page and "5125550198" not in page and "pat.lee@" not in page
    assert keys[a.subdomain] not in page  # other arguments are not shown
    assert 'data-testid="queue-default"' in page

    # The cause is fixed; Retry puts A's job back on its queue and the worker runs it.
    with app.app_context():
        from app.extensions import get_redis

        get_redis().set(f"{keys[a.subdomain]}:fixed", "1", ex=600)
        get_redis().set(f"{keys[b.subdomain]}:fixed", "1", ex=600)
    r = v.post("/platform/jobs/retry", {"queue": "default", "job_id": ja.id, "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    assert wait_for(app, ja.id, {JobStatus.FINISHED}, worker).return_value() == "done"
    assert not in_failed_registry(app, ja.id)
    assert "queued again" in v.get("/platform/jobs").get_data(as_text=True)
    # Retrying it again (a double click) changes nothing.
    r = v.post("/platform/jobs/retry", {"queue": "default", "job_id": ja.id, "csrf_token": csrf_from(page)})
    assert r.status_code == 302 and "no longer in the failed list" in v.get("/platform/jobs").get_data(as_text=True)
    token = csrf_from(page)
    assert (
        v.post("/platform/jobs/retry", {"queue": "default", "job_id": "no-such-job", "csrf_token": token}).status_code
        == 302
    )
    assert v.post("/platform/jobs/retry", {"queue": "nope", "job_id": ja.id, "csrf_token": token}).status_code == 400
    # "Retry all" takes the rest.
    page = v.get("/platform/jobs").get_data(as_text=True)
    assert f'data-job-id="{ja.id}"' not in page and f'data-job-id="{jb.id}"' in page
    r = v.post("/platform/jobs/retry-all", {"csrf_token": csrf_from(page)})
    assert r.status_code == 302
    assert wait_for(app, jb.id, {JobStatus.FINISHED}, worker).return_value() == "done"
    # A POST without the form's token is refused like any other form.
    assert v.post("/platform/jobs/retry-all", {}).status_code == 400


def test_owners_technicians_and_visitors_get_404(app, make_tenant, visitor, worker):
    t = make_tenant(techs=1)
    key = f"test:perm:{uuid.uuid4().hex}"
    with app.app_context():
        queued = broken_until_fixed.enqueue(t.id, key, "+15125550197")
    wait_for(app, queued.id, {JobStatus.FAILED}, worker)
    anonymous = visitor()
    token = anonymous.token("/login")
    owner = visitor()
    owner.login(t.owner.email, t.owner.password)
    tech = visitor()
    tech.login(t.people["tech0"].email, t.people["tech0"].password)
    for v in (anonymous, owner, tech):
        assert v.get("/platform/jobs").status_code == 404
        form = {"queue": "default", "job_id": queued.id, "csrf_token": token}
        assert v.post("/platform/jobs/retry", form).status_code == 404
        assert v.post("/platform/jobs/retry-all", {"csrf_token": token}).status_code == 404
        assert v.post("/platform/jobs/retry-all", {}).status_code == 404  # no token: still 404, not 400
    assert in_failed_registry(app, queued.id)  # nobody retried it
    unknown = visitor().get("/platform/nothing-here")
    assert unknown.status_code == 404  # the same answer as for a page that doesn't exist


def test_grant_and_revoke_from_the_command_line(app, make_tenant, visitor):
    t = make_tenant()
    assert grant(app, "nobody@nowhere.test").exit_code != 0
    assert grant(app, t.owner.email).exit_code == 0
    again = grant(app, t.owner.email)
    assert again.exit_code == 0 and "unchanged" in again.output
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    assert v.get("/platform/jobs").status_code == 200
    result = revoke(app, t.owner.email)
    assert result.exit_code == 0 and "is no longer a platform admin" in result.output
    assert v.get("/platform/jobs").status_code == 404  # at once: the flag is read on every request
    with app.app_context():
        from sqlalchemy import text

        from app.extensions import db
        from tenants.context import tenant_context

        with tenant_context(t.id, db.session):
            actions = db.session.execute(
                text("SELECT action FROM audit_log WHERE action LIKE 'user.platform_admin%' ORDER BY created_at")
            ).scalars()
            assert list(actions) == ["user.platform_admin_granted", "user.platform_admin_revoked"]
        db.session.rollback()


def test_an_email_in_two_businesses_needs_business_to_grant(app, make_tenant):
    from app.accounts import services as accounts
    from app.extensions import db
    from tenants.context import tenant_context

    a, b = make_tenant(), make_tenant()
    with app.app_context(), tenant_context(b.id, db.session):
        accounts.create_user(b.id, email=a.owner.email, name="Same Person", role="admin", password="x-long-password-1")
        db.session.commit()
    result = grant(app, a.owner.email)
    assert result.exit_code != 0 and "--business" in result.output
    result = grant(app, a.owner.email, "--business", b.subdomain)
    assert result.exit_code == 0 and f"({b.subdomain}) is now" in result.output
    assert revoke(app, a.owner.email).exit_code == 0
