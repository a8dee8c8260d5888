"""Fixtures, layered as in STYLE.md.

Session scope starts one throwaway PostgreSQL cluster, Redis and SeaweedFS (S3) on
free loopback ports under a temporary directory, creates the roles with the same
script production uses, migrates as the owner role and builds the app, which
connects as the app role. Tests stay independent by making their own tenants:
every query is tenant-scoped, so one test's rows are invisible to another's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.lib.services import Postgres, RedisServer, SeaweedS3, free_port  # noqa: E402
from tests.helpers import Visitor  # noqa: E402

PASSWORD = "correct-horse-battery"

# The project's Stripe stand-in (scripts/standins/stripe_standin.py) and its fixtures.
pytest_plugins = ["tests.fixtures_stripe", "tests.fixtures_twilio", "tests.fixtures_google"]


@pytest.fixture(scope="session")
def services():
    base = Path(tempfile.mkdtemp(prefix="fieldday-test-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg = Postgres(base / "pg")
    redis_server = RedisServer(base / "redis")
    s3 = SeaweedS3(base / "s3")
    started = []
    try:
        s3.start()
        started.append(s3)
        pg.start()
        started.append(pg)
        redis_server.start()
        started.append(redis_server)
        pg.create_roles()
        s3.wait_ready("fieldday-test-media")
        yield SimpleNamespace(pg=pg, redis=redis_server, s3=s3, base=base)
    finally:
        for svc in reversed(started):
            svc.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def smtp_server():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            import email

            msg = email.message_from_bytes(envelope.content)
            self.messages.append(msg)
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


@pytest.fixture(scope="session")
def live_port():
    return free_port()


@pytest.fixture(scope="session")
def app(services, smtp_server, live_port, stripe_standin_server, twilio_standin_server, google_standin_server):
    from app import create_app
    from app.config import TestConfig
    from tests.fixtures_google import FERNET_KEY, GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET
    from tests.fixtures_stripe import STRIPE_API_KEY, STRIPE_BILLING_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
    from tests.fixtures_twilio import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

    app = create_app(
        TestConfig,
        dict(
            SQLALCHEMY_DATABASE_URI=services.pg.url("fieldday_app"),
            DATABASE_OWNER_URL=services.pg.url("fieldday_owner"),
            REDIS_URL=services.redis.url,
            RATELIMIT_STORAGE_URI=services.redis.url,
            S3_ENDPOINT_URL=services.s3.endpoint,
            S3_BUCKET="fieldday-test-media",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=smtp_server.port,
            PUBLIC_PORT=str(live_port),
            # The official SDK, pointed at the stand-in (never api.stripe.com).
            STRIPE_SECRET_KEY=STRIPE_API_KEY,
            STRIPE_API_BASE=stripe_standin_server.url,
            STRIPE_CONNECT_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
            STRIPE_BILLING_WEBHOOK_SECRET=STRIPE_BILLING_WEBHOOK_SECRET,
            # Twilio's official SDK, pointed at the stand-in.
            TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=TWILIO_AUTH_TOKEN,
            TWILIO_API_BASE=twilio_standin_server.url,
            # Google's official libraries (OAuth, token, Calendar API), pointed at the stand-in.
            GOOGLE_CLIENT_ID=GOOGLE_CLIENT_ID,
            GOOGLE_CLIENT_SECRET=GOOGLE_CLIENT_SECRET,
            GOOGLE_API_BASE=google_standin_server.url,
            FERNET_KEY=FERNET_KEY,
        ),
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    yield app
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def visitor(app):
    """A browser-like client: ``visitor('app.localhost').get('/')``; keeps cookies per host."""

    def make(host: str = "app.localhost") -> Visitor:
        return Visitor(app.test_client(), host)

    return make


_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 1000}x{next(_seq)}"


@pytest.fixture
def make_tenant(app):
    """Provision a business with its owner through the real service; returns its facts."""

    def make(subdomain: str | None = None, *, name: str | None = None, techs: int = 0, admins: int = 0, **kw):
        from app.accounts import services as accounts
        from app.extensions import db
        from tenants.context import activate
        from tenants.provisioning import provision_tenant

        subdomain = subdomain or unique("t")
        with app.app_context():
            tenant, owner = provision_tenant(
                business_name=name or f"Business {subdomain}",
                subdomain=subdomain,
                time_zone=kw.get("time_zone", "America/New_York"),
                currency="USD",
                owner_email=f"owner@{subdomain}.test",
                owner_name="Olive Owner",
                password=PASSWORD,
            )
            people = {"owner": SimpleNamespace(id=owner.id, email=owner.email, password=PASSWORD)}
            for role, count in (("tech", techs), ("admin", admins)):
                for i in range(count):
                    u = accounts.create_user(
                        tenant.id,
                        email=f"{role}{i}@{subdomain}.test",
                        name=f"{role.title()} {i}",
                        role=role,
                        password=PASSWORD,
                    )
                    people[f"{role}{i}"] = SimpleNamespace(id=u.id, email=u.email, password=PASSWORD)
            facts = SimpleNamespace(
                id=tenant.id,
                subdomain=subdomain,
                name=tenant.name,
                host=f"{subdomain}.localhost",
                owner=people["owner"],
                people=people,
            )
            db.session.commit()
            activate(None)
            return facts

    return make


@pytest.fixture
def two_tenants(make_tenant):
    return make_tenant(techs=1, admins=1), make_tenant(techs=1, admins=1)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def app_conn(services):
    """A raw connection as the app role (autocommit off)."""
    conn = psycopg.connect(_plain(services.pg.url("fieldday_app")))
    yield conn
    conn.close()


@pytest.fixture
def owner_conn(services):
    conn = psycopg.connect(_plain(services.pg.url("fieldday_owner")))
    yield conn
    conn.close()


@pytest.fixture
def superuser_conn(services):
    conn = psycopg.connect(services.pg.superuser_url("fieldday"), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def live_server(app, live_port):
    """The app served by a threaded werkzeug server on loopback, for browsers and races."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", live_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(port=live_port, url=lambda host, path="/": f"http://{host}:{live_port}{path}")
    server.shutdown()


@pytest.fixture
def run_jobs(app):
    """Run every queued job with a real RQ worker against the real Redis (burst mode).
    Returns how many finished; a job that failed fails the test with its traceback."""

    def run(*, allow_failures: bool = False) -> int:
        from rq import SimpleWorker
        from rq.job import Job, JobStatus
        from rq.serializers import JSONSerializer

        from app.extensions import get_redis
        from app.jobs import get_queue

        with app.app_context():
            queues = [get_queue(n) for n in app.config["RQ_QUEUES"]]
            job_ids = [jid for q in queues for jid in q.job_ids]
            SimpleWorker(queues, connection=get_redis(), serializer=JSONSerializer).work(burst=True)
            finished = 0
            for jid in job_ids:
                job = Job.fetch(jid, connection=get_redis(), serializer=JSONSerializer)
                status = job.get_status()
                if status == JobStatus.FINISHED:
                    finished += 1
                elif not allow_failures and status in (JobStatus.FAILED, JobStatus.SCHEDULED):
                    info = job.latest_result().exc_string if job.latest_result() else ""
                    raise AssertionError(f"job {job.func_name} {status}: {info}")
            return finished

    return run


@pytest.fixture
def seed_booking(app):
    """Give a tenant services and technicians (every day 08:00–17:00 local)."""

    def seed(t, *, techs: int = 1, deposits: bool = False, lead_time_min: int = 120, buffer_min: int = 15):
        from datetime import time

        from app.booking import services as booking
        from app.catalog import services as catalog
        from app.extensions import db
        from tenants.context import tenant_context
        from tenants.models import Tenant

        with app.app_context(), tenant_context(t.id, db.session):
            tenant = db.session.get(Tenant, t.id)
            tenant.deposits_enabled = deposits
            if deposits:  # deposits need a connected Stripe account that can take charges
                tenant.stripe_account_id = tenant.stripe_account_id or f"acct_seed{t.id.hex[:12]}"
                tenant.stripe_charges_enabled = True
            tenant.lead_time_min = lead_time_min
            tenant.buffer_min = buffer_min
            full = catalog.create_package(
                t.id,
                name="Full detail",
                description="Inside and out",
                prices={
                    "sedan": {"price_cents": 18000, "duration_min": 120},
                    "suv": {"price_cents": 22000, "duration_min": 150},
                },
            )
            wash = catalog.create_package(
                t.id,
                name="Express wash",
                prices={
                    "sedan": {"price_cents": 6000, "duration_min": 60},
                    "suv": {"price_cents": 7500, "duration_min": 60},
                    "truck": {"price_cents": 9000, "duration_min": 90},
                },
            )
            pet = catalog.create_package(
                t.id,
                name="Pet hair removal",
                kind="addon",
                prices={
                    "sedan": {"price_cents": 4000, "duration_min": 30},
                    "suv": {"price_cents": 5000, "duration_min": 30},
                },
            )
            every_day = {d: [(time(8), time(17))] for d in range(7)}
            tech_ids = [
                booking.create_technician(t.id, name=f"Tech {i}", hours=every_day, position=i).id for i in range(techs)
            ]
            facts = SimpleNamespace(full=full.id, wash=wash.id, pet=pet.id, techs=tech_ids)
            db.session.commit()
            return facts

    return seed


# Browser fixtures (Debian's Chromium through Playwright; never a downloaded browser).

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser, live_server):
    """Fresh browser contexts (own cookies), closed after the test."""
    contexts = []

    def make(viewport: dict | None = None, **kw):
        viewport = viewport or {"width": 1280, "height": 800}
        ctx = browser.new_context(viewport=viewport, **kw)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()
