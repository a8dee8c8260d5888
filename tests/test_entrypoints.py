"""The container's entry points as processes (no Docker engine here): docker/entrypoint.sh web |
worker | scheduler | migrate, with the environment the Bicep gives them. Web and worker stop
cleanly on SIGTERM (RELIABILITY J4: a job in flight finishes), the scheduler moves due jobs with no
worker running, the migration job is idempotent, and /readyz reports the schema against the code."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from app.jobs import job
from scripts.lib.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = str(ROOT / "docker" / "entrypoint.sh")


@job("default", retry=None, timeout=60)
def slow_job(tenant_id: uuid.UUID, seconds: float, marker: str) -> str:
    """Sleeps, then leaves a marker in Redis: proof the job ran to its end."""
    from app.extensions import get_redis

    time.sleep(seconds)
    get_redis().set(marker, "done", ex=300)
    return "done"


@pytest.fixture
def role_env(services):
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        "FIELDDAY_ENV": "test",
        "LOG_FORMAT": "json",
        "DATABASE_URL": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": services.redis.url,
        "S3_ENDPOINT_URL": services.s3.endpoint,
        "S3_BUCKET": "fieldday-test-media",
    }


class Role:
    """A role's process, its output collected by a thread (so the pipe never fills up)."""

    def __init__(self, role: str, env: dict, *args: str):
        self.proc = subprocess.Popen(
            [ENTRYPOINT, role, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            assert self.proc.poll() is None, self.output[-3000:]
            assert time.monotonic() < deadline, f"no {needle!r} in: {self.output[-3000:]}"
            time.sleep(0.1)

    def poll(self):
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()

    def stop(self, timeout: float) -> tuple[int, str, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return self.proc.returncode, self.output, time.monotonic() - started


def start(role: str, env: dict, *args: str) -> Role:
    return Role(role, env, *args)


def stop(proc: Role, timeout: float) -> tuple[int, str, float]:
    return proc.stop(timeout)


def get(port: int, path: str, host: str = "app.localhost") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": f"{host}:{port}"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, json.loads(body) if body.startswith(b"{") else {}


def test_web_serves_and_stops_gracefully_on_sigterm(role_env):
    port = free_port()
    proc = start("web", {**role_env, "PORT": str(port), "WEB_CONCURRENCY": "2", "WEB_GRACEFUL_TIMEOUT": "10"})
    try:
        wait_for_port(port, timeout=60, proc=proc.proc)
        status, body = get(port, "/healthz")
        assert status == 200 and body["checks"] == {"postgres": "ok", "redis": "ok"}
        status, _ = get(port, "/healthz", host="203.0.113.7")  # the platform probes by IP
        assert status == 200
    finally:
        code, out, took = stop(proc, timeout=30)
    assert code == 0, out[-3000:]
    assert took < 10 + 5, f"took {took:.1f}s, beyond the graceful timeout"
    assert "Shutting down" in out or "Handling signal: term" in out


def test_worker_sigterm_during_a_job_lets_it_finish_and_exits_0(app, role_env, make_tenant):
    """RELIABILITY J4: warm shutdown: the job in flight finishes, nothing is abandoned."""
    from app.extensions import get_redis
    from app.jobs import get_queue

    t = make_tenant()
    marker = f"test:j4:{uuid.uuid4().hex}"
    with app.app_context():
        queued = slow_job.enqueue(t.id, 3, marker)
        redis = get_redis()
    proc = start("worker", role_env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            status = Job.fetch(queued.id, connection=redis, serializer=JSONSerializer).get_status()
            if status == JobStatus.STARTED:
                break
            assert proc.poll() is None, proc.output[-3000:]
            time.sleep(0.1)
        assert status == JobStatus.STARTED, status
        code, out, took = stop(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, out[-3000:]
    assert redis.get(marker) == b"done"
    assert Job.fetch(queued.id, connection=redis, serializer=JSONSerializer).get_status() == JobStatus.FINISHED
    with app.app_context():
        queue = get_queue("default")
        assert queued.id not in StartedJobRegistry(queue=queue).get_job_ids()
        assert queued.id not in FailedJobRegistry(queue=queue).get_job_ids()
    assert "Warm shut down requested" in out or "warm shut down" in out.lower()


def test_scheduler_moves_due_jobs_without_a_worker_and_stops_cleanly(app, role_env, make_tenant):
    from datetime import timedelta

    from app.extensions import get_redis
    from app.jobs import get_queue

    t = make_tenant()
    proc = start("scheduler", role_env)
    try:
        with app.app_context():
            queue = get_queue("default")
            later = queue.enqueue_in(timedelta(seconds=1), slow_job, str(t.id), 0, "test:sched:x")
            redis = get_redis()
        deadline = time.time() + 45
        while time.time() < deadline:
            if Job.fetch(later.id, connection=redis, serializer=JSONSerializer).get_status() == JobStatus.QUEUED:
                break
            assert proc.poll() is None, proc.output[-3000:]
            time.sleep(0.3)
        assert Job.fetch(later.id, connection=redis, serializer=JSONSerializer).get_status() == JobStatus.QUEUED
        proc.wait_for_output("cron started")  # the other child: `flask cron`
    finally:
        code, out, _ = stop(proc, timeout=40)
        with app.app_context():
            get_queue("default").remove(later.id)
    assert code == 0, out[-3000:]


def test_migration_job_is_idempotent_and_makes_readyz_green(app, role_env, services, superuser_conn):
    env = {
        **role_env,
        # The bootstrap step too, as on a first deployment (here the admin is a real superuser).
        "DATABASE_ADMIN_URL": services.pg.superuser_url("postgres"),
        "OWNER_PASSWORD": "owner-pw",
        "APP_PASSWORD": "app-pw",
        "PGSSLMODE": "disable",
        "PGOPTIONS": "",  # createrole_self_grant exists from PostgreSQL 16 on; the tests run 15
    }
    for _ in range(2):
        proc = subprocess.run([ENTRYPOINT, "migrate"], cwd=ROOT, env=env, capture_output=True, timeout=180)
        out = proc.stdout.decode() + proc.stderr.decode()
        assert proc.returncode == 0, out[-3000:]
        assert "migrate: schema at head" in out
    from app.web.health import script_heads

    heads = script_heads(str(ROOT / "migrations"))
    rows = {r[0] for r in superuser_conn.execute("SELECT version_num FROM alembic_version")}
    assert rows == set(heads)
    grants = superuser_conn.execute(
        "SELECT has_table_privilege('fieldday_app', 'alembic_version', 'SELECT')"
    ).fetchone()[0]
    assert grants

    r = app.test_client().get("/readyz", base_url="http://10.1.2.3")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["checks"] == {"postgres": "ok", "redis": "ok", "migrations": "ok"}


def test_readyz_is_503_when_the_code_is_ahead_of_the_schema(app, monkeypatch, owner_conn):
    from app.web import health

    with owner_conn.transaction():  # what the migration job grants (docker/migrate.py)
        owner_conn.execute("GRANT SELECT ON alembic_version TO fieldday_app")

    monkeypatch.setattr(health, "script_heads", lambda directory: frozenset({"9999_future"}))
    r = app.test_client().get("/readyz", base_url="http://app.localhost")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "unavailable" and body["checks"]["migrations"].startswith("error: database at")
    assert "9999_future" in body["checks"]["migrations"]
    assert r.headers["Cache-Control"] == "no-store"


def test_readyz_reports_each_dependency(services):
    from app import create_app
    from app.config import TestConfig

    dead = free_port()
    a = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://fieldday_app:x@127.0.0.1:{dead}/fieldday",
            "REDIS_URL": services.redis.url,
        },
    )
    r = a.test_client().get("/readyz", base_url="http://acme.localhost")
    assert r.status_code == 503
    checks = r.get_json()["checks"]
    assert (
        checks["redis"] == "ok" and checks["postgres"].startswith("error") and checks["migrations"].startswith("error")
    )
    with a.app_context():
        from app.extensions import db

        db.engine.dispose()
