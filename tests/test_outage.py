"""Redis down (RELIABILITY F2): a customer still books on the booking site and the owner still logs
in, with no 500; the log-in limiter falls back to per-process memory (docs/accounts-and-security.md);
once Redis is back, `flask cron`'s sweeps queue the confirmation text that could not be queued,
and `flask worker` sends it to the customer exactly once.

The app under test gets a private Redis that the test stops and starts again on the same port; the
session's Redis, which other tests use, is never touched."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from scripts.lib.services import RedisServer
from tests.helpers import Visitor
from tests.test_messages import sent_to, texting
from tests.test_payments import book_online

ROOT = Path(__file__).resolve().parents[1]
PHONE = "+15125550177"
COPIED = (
    "SQLALCHEMY_DATABASE_URI",
    "DATABASE_OWNER_URL",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "SMTP_HOST",
    "SMTP_PORT",
    "PUBLIC_PORT",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_CONNECT_WEBHOOK_SECRET",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_BASE",
)


@pytest.fixture
def private_redis(services):
    server = RedisServer(services.base / f"redis-f2-{uuid.uuid4().hex[:8]}").start()
    yield server
    server.stop()


@pytest.fixture
def outage_app(app, private_redis, monkeypatch):
    """The app with its own Redis (jobs, rate limits). Flask-Limiter keeps its storage on the one
    shared Limiter object, so the session app's storage is put back afterwards."""
    from app import create_app
    from app.config import TestConfig
    from app.extensions import db, limiter

    for name in ("_storage", "_limiter", "_storage_dead", "_fallback_limiter", "_fallback_storage"):
        monkeypatch.setattr(limiter, name, getattr(limiter, name, None), raising=False)
    made = create_app(
        TestConfig,
        {
            **{k: app.config[k] for k in COPIED},
            "REDIS_URL": private_redis.url,
            "RATELIMIT_STORAGE_URI": private_redis.url,
        },
    )
    yield made
    with made.app_context():
        db.engine.dispose()


def start(role: str, services, redis_url: str, twilio_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "FIELDDAY_ENV": "test",
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "standin_token",
        "TWILIO_API_BASE": twilio_url,
    }
    log = open(services.base / f"f2-{role}-{uuid.uuid4().hex[:6]}.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "flask", role], cwd=ROOT, env=env, stdout=log, stderr=log)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def texts(app, t) -> list[dict]:
    """The business's outbound texts (e-mails, if any, are another channel of the same outbox)."""
    from app.extensions import db
    from app.messaging.models import Message
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = [
            dict(kind=m.kind, status=m.status, sid=m.provider_sid, to=m.to_addr)
            for m in db.session.scalars(
                db.select(Message)
                .where(Message.direction == "out", Message.channel == "sms")
                .order_by(Message.created_at)
            )
        ]
        db.session.rollback()
        return out


def age_outbox(app, t, minutes: int) -> None:
    """As if Redis had been down for ``minutes`` (the sweep leaves rows younger than 2 min to their job)."""
    from datetime import timedelta

    from app.extensions import db
    from app.messaging.models import Message
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        for m in db.session.scalars(db.select(Message)):
            m.created_at = m.created_at - timedelta(minutes=minutes)
        db.session.commit()


def test_f2_redis_down_booking_and_login_work_and_the_text_goes_out_once_it_is_back(
    app, outage_app, private_redis, services, make_tenant, seed_booking, twilio_fake, caplog
):
    t = make_tenant(admins=1)
    f = seed_booking(t)
    number = texting(app, t, twilio_fake)
    private_redis.stop()  # Redis goes away

    # The customer books on the booking site: committed, no 500, the manage page opens.
    site, review = book_online(lambda host: Visitor(outage_app.test_client(), host), t, f, phone="(512) 555-0177")
    assert review.status_code == 302 and "/b/" in review.headers["Location"], review.get_data(as_text=True)[:400]
    assert site.get(review.headers["Location"].split("?")[0]).status_code == 200
    (row,) = texts(app, t)
    assert (
        row["kind"] == "confirmation" and row["status"] == "queued" and row["to"] == PHONE
    )  # the outbox row was committed
    assert "after-commit" in caplog.text  # queueing its job failed, was logged, and failed nothing

    # The owner logs in and opens the dashboard: no 500.
    owner = Visitor(outage_app.test_client(), "app.localhost")
    owner.login(t.owner.email, t.owner.password)
    assert owner.get("/").status_code == 200
    assert owner.get("/messages").status_code == 200
    # What queues a job straight from the request (no outbox row to sweep) says "try again": 503, not 500.
    invite = {
        "email": "new-tech@example.test",
        "name": "New Tech",
        "role": "tech",
        "csrf_token": owner.dashboard_token(),
    }
    assert owner.post("/team/invite", invite).status_code == 503
    forgot = Visitor(outage_app.test_client(), "app.localhost")
    assert forgot.post("/password/forgot", {"email": t.owner.email}, token_page="/password/forgot").status_code == 503
    # A customer import holds its file in Redis between preview and import: "try again", not a 500.
    csv = io.BytesIO(b"name,phone\nAna Import,+15125550123\n")
    r = owner.post(
        "/customers/import",
        {"csrf_token": owner.dashboard_token(), "file": (csv, "customers.csv")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 503 and "try again" in r.get_data(as_text=True).lower()
    # The limiter's documented mode: per-process memory, still limiting (10 failures per e-mail).
    guesser = Visitor(outage_app.test_client(), "app.localhost")
    token = guesser.token("/login")
    wrong = {"email": t.people["admin0"].email, "password": "not-the-password", "csrf_token": token}
    answers = [guesser.post("/login", wrong).status_code for _ in range(11)]
    assert answers == [401] * 10 + [429], answers
    assert sent_to(twilio_fake, PHONE) == []

    # Redis is back (empty: whatever was queued before is gone). The sweeps find the text.
    private_redis.start()
    age_outbox(app, t, minutes=3)
    cron = start("cron", services, private_redis.url, twilio_fake.url)
    worker = start("worker", services, private_redis.url, twilio_fake.url)
    try:
        deadline = time.monotonic() + 60
        while not sent_to(twilio_fake, PHONE):
            assert cron.poll() is None and worker.poll() is None, "cron or worker died"
            assert time.monotonic() < deadline, "the sweep never sent the confirmation"
            time.sleep(0.3)
        (text,) = sent_to(twilio_fake, PHONE)
        assert text["from"] == number and "you're booked for" in text["body"]
        deadline = time.monotonic() + 20
        while texts(app, t)[0]["status"] != "sent":
            assert time.monotonic() < deadline, texts(app, t)
            time.sleep(0.2)
    finally:
        stop(cron)
        stop(worker)

    # A later sweep (the row is older than ever) finds nothing to send: still exactly one text.
    from rq import SimpleWorker
    from rq.serializers import JSONSerializer

    from app.extensions import get_redis
    from app.jobs import get_queue
    from app.messaging.jobs import sweep_queued_texts

    with outage_app.app_context():
        sweep_queued_texts()
        queues = [get_queue(n) for n in outage_app.config["RQ_QUEUES"]]
        SimpleWorker(queues, connection=get_redis(), serializer=JSONSerializer).work(burst=True)
    assert len(sent_to(twilio_fake, PHONE)) == 1
    (row,) = texts(app, t)
    assert row["status"] == "sent" and row["sid"] == text["sid"]
