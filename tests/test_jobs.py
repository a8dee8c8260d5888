"""RQ job conventions (DESIGN §9): JSON payloads, tenant_id first, the job sets its own
RLS context; a job without a tenant fails before touching the database (J1)."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from app.jobs import MissingTenant
from tests.jobs_for_tests import whoami


def _results(app):
    from app.extensions import get_redis

    with app.app_context():
        r = get_redis()
        out = [ast.literal_eval(x.decode()) for x in r.lrange("test:whoami", 0, -1)]
        r.delete("test:whoami")
        return out


def test_j1_job_runs_under_its_tenant_and_other_ids_resolve_to_nothing(app, two_tenants, run_jobs):
    a, b = two_tenants
    with app.app_context():
        job = whoami.enqueue(a.id, a.owner.id)
        whoami.enqueue(a.id, b.owner.id)  # tampered: B's user id in A's job
        from app.extensions import get_redis

        fetched = Job.fetch(job.id, connection=get_redis(), serializer=JSONSerializer)
        assert list(fetched.args) == [str(a.id), str(a.owner.id)]  # plain JSON, ids as strings
    assert run_jobs() >= 2  # other tests may have left e-mail jobs queued
    mine, theirs = _results(app)
    assert mine["setting"] == str(a.id) and mine["found"] and mine["users"] == 3
    assert theirs["setting"] == str(a.id) and not theirs["found"] and theirs["visible"] == 0


@pytest.mark.parametrize("bad", [None, "", "not-a-uuid", 42])
def test_j1_job_without_tenant_fails_immediately(app, bad, monkeypatch):
    from app import jobs

    touched = []
    monkeypatch.setattr(jobs, "_fresh_pool_after_fork", lambda: touched.append("db"))
    with app.app_context():
        with pytest.raises(MissingTenant):
            whoami(bad, "00000000-0000-0000-0000-000000000000")
        with pytest.raises(MissingTenant):
            whoami.enqueue(bad, "x")
    assert touched == []


def test_worker_command_runs_jobs_with_its_scheduler_and_stops_cleanly(app, services, two_tenants):
    """`flask worker` as the demo starts it: a real forking RQ worker with the scheduler."""
    a, _ = two_tenants
    env = {
        **os.environ,
        "FIELDDAY_ENV": "test",
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": services.redis.url,
    }
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "worker"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        from datetime import timedelta

        with app.app_context():
            from app.jobs import get_queue

            now_job = whoami.enqueue(a.id, a.owner.id)
            later = get_queue("default").enqueue_in(timedelta(seconds=1), whoami, str(a.id), str(a.owner.id))
        deadline = time.time() + 60
        with app.app_context():
            from app.extensions import get_redis

            while time.time() < deadline:
                statuses = [
                    Job.fetch(j.id, connection=get_redis(), serializer=JSONSerializer).get_status()
                    for j in (now_job, later)
                ]
                if all(s == "finished" for s in statuses):
                    break
                time.sleep(0.3)
        assert statuses == ["finished", "finished"], proc.stdout.read1().decode() if proc.poll() else statuses
        results = _results(app)
        assert len(results) == 2 and all(r["setting"] == str(a.id) and r["found"] for r in results)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]


def test_after_commit_waits_for_the_root_transaction_not_a_savepoint(app, make_tenant):
    """SQLAlchemy also fires after_commit/after_rollback for savepoints: a job must not be queued
    when a savepoint is released (its rows aren't committed yet), and a rolled-back savepoint must
    not drop work the outer transaction still commits."""
    from app.extensions import db
    from app.jobs import after_commit
    from tenants.context import tenant_context

    t = make_tenant()
    ran: list[str] = []
    with app.app_context(), tenant_context(t.id, db.session):
        after_commit(ran.append, "first")
        with db.session.begin_nested():
            db.session.execute(db.text("SELECT 1"))
        assert ran == []  # released savepoint: not yet
        try:
            with db.session.begin_nested():
                raise ValueError("a savepoint rolls back")
        except ValueError:
            pass
        after_commit(ran.append, "second")
        db.session.commit()
        assert ran == ["first", "second"]  # both, once, at the real commit
        db.session.execute(db.text("SELECT 1"))
        after_commit(ran.append, "never")
        db.session.rollback()
        db.session.commit()
    assert ran == ["first", "second"]
