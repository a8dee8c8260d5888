"""Outgoing webhooks (issue 10; docs/api-and-webhooks.md): signed booking events to the business's own
URL, retries with backoff, the delivery log, turning off a dead endpoint, and the SSRF guard.

The receiver is a real HTTP server on 127.0.0.1, allowed through OUTGOING_WEBHOOKS_ALLOWED_HOSTS for
these tests only (the guard itself stays on: other loopback names and addresses are still refused)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from tests import test_outage
from tests.conftest import PASSWORD
from tests.test_api_keys import call, make_key
from tests.test_booking import book, request, tomorrow_at

APP = "app.localhost"
# The app on a Redis of its own that a test can stop (RELIABILITY F2).
private_redis = test_outage.private_redis
outage_app = test_outage.outage_app
ALL_EVENTS = ["booking.created", "booking.confirmed", "booking.rescheduled", "booking.cancelled", "booking.completed"]


class Receiver:
    """Records every request; answers with the next status in ``plan`` (the last one repeats)."""

    def __init__(self):
        self.requests: list[SimpleNamespace] = []
        self.plan: list[int] = [200]
        self.delay_s = 0.0
        self.location = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                outer.requests.append(SimpleNamespace(path=self.path, headers=dict(self.headers), body=body))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                status = outer.plan.pop(0) if len(outer.plan) > 1 else outer.plan[0]
                reply = json.dumps({"received": True, "status": status}).encode()
                self.send_response(status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/fieldday"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(app, monkeypatch):
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_HTTPS_ONLY", False)
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_ALLOWED_HOSTS", ("127.0.0.1",))
    r = Receiver()
    yield r
    r.close()


def owner(visitor, t):
    v = visitor(APP)
    v.login(t.owner.email, PASSWORD)
    return v


def add_endpoint(v, url: str, events=ALL_EVENTS, description: str = ""):
    return v.post(
        "/integrations/webhooks",
        {"url": url, "events": list(events), "description": description},
        token_page="/integrations/webhooks",
    )


def created_endpoint(v, url: str, events=ALL_EVENTS) -> tuple[uuid.UUID, str]:
    r = add_endpoint(v, url, events)
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html[:2000]
    secret = re.search(r'data-testid="endpoint-secret-value">(whsec_[^<]+)<', html).group(1)
    endpoint_id = uuid.UUID(re.search(r"/integrations/webhooks/([0-9a-f-]{36})/test", html).group(1))
    return endpoint_id, secret


def deliveries(app, t) -> list[SimpleNamespace]:
    from app.extensions import db
    from app.webhooks_out.models import WebhookDelivery
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = [
            SimpleNamespace(**{c.key: getattr(d, c.key) for c in WebhookDelivery.__mapper__.column_attrs})
            for d in db.session.scalars(db.select(WebhookDelivery).order_by(WebhookDelivery.created_at))
        ]
        db.session.rollback()
        return rows


def expected_signature(secret: str, header: str, body: str) -> bool:
    """What a receiver does, written here from the docs (not by calling our own code)."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    t = int(parts["t"])
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"]) and abs(time.time() - t) < 300


def make_due(superuser_conn, t) -> None:
    """As if the retry's wait were over (and its scheduled job had not run)."""
    superuser_conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '2 minutes'"
        " WHERE tenant_id = %s AND status = 'pending'",
        (t.id,),
    )


def sweep(app) -> int:
    from app.extensions import db
    from app.webhooks_out.jobs import sweep_webhook_deliveries

    with app.app_context():
        try:
            return sweep_webhook_deliveries()
        finally:
            db.session.remove()


# --- Signed and verifiable ---------------------------------------------------------------------------


def test_a_booking_made_with_an_api_key_reaches_the_receiver_signed(
    app, make_tenant, seed_booking, visitor, client, receiver, run_jobs
):
    t = make_tenant()
    f = seed_booking(t)
    v = owner(visitor, t)
    endpoint_id, secret = created_endpoint(v, receiver.url)
    _, key = make_key(app, t)
    when = tomorrow_at(11)
    r = call(
        client,
        "POST",
        "/bookings",
        key,
        json={
            "package_id": str(f.wash),
            "size_class": "sedan",
            "starts_at": when.isoformat(),
            "customer": {"name": "Hook Customer", "phone": "+15125550166"},
            "address": "1100 Congress Ave",
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    booking_id = r.get_json()["id"]
    assert not receiver.requests  # nothing leaves before the job runs (after the commit)
    run_jobs()

    got = {json.loads(x.body)["type"]: x for x in receiver.requests}
    assert set(got) == {"booking.created", "booking.confirmed"}  # a staff booking starts confirmed
    for event_type, req in got.items():
        assert req.path == "/hooks/fieldday"
        assert req.headers["Content-Type"].startswith("application/json")
        assert req.headers["Fieldday-Event"] == event_type
        assert expected_signature(secret, req.headers["Fieldday-Signature"], req.body)
        assert not expected_signature("whsec_wrong", req.headers["Fieldday-Signature"], req.body)
        assert not expected_signature(secret, req.headers["Fieldday-Signature"], req.body.replace("Hook", "Hack"))
        event = json.loads(req.body)
        assert set(event) == {"id", "type", "created", "data"}
        assert uuid.UUID(event["id"]) and abs(event["created"] - time.time()) < 60
        booking = event["data"]["booking"]
        assert booking["id"] == booking_id and booking["status"] == "confirmed" and booking["source"] == "api"
        assert booking["customer"]["name"] == "Hook Customer" and booking["price_cents"] == 6000
        assert booking["starts_at"] == when.isoformat().replace("+00:00", "Z")
    # Our own verifier (used in the docs' example) agrees.
    from app.webhooks_out.services import verify

    req = got["booking.created"]
    assert verify(secret, req.headers["Fieldday-Signature"], req.body, now=int(time.time()))
    assert not verify(secret, req.headers["Fieldday-Signature"], req.body, now=int(time.time()) + 600)

    log = v.get(f"/integrations/webhooks/{endpoint_id}").get_data(as_text=True)
    assert log.count('data-testid="delivery-row"') == 2 and "Delivered" in log and ">200<" in log


def test_each_status_change_is_its_event_and_endpoints_get_only_what_they_chose(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs
):
    from app.booking import services as booking_services
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    v = owner(visitor, t)
    everything, _ = created_endpoint(v, receiver.url)
    only_cancel, _ = created_endpoint(v, receiver.url + "?only=cancel", ["booking.cancelled"])
    b1 = book(app, t, request(f, tomorrow_at(9)))  # a customer booking with no deposit: created + confirmed
    b2 = book(app, t, request(f, tomorrow_at(12), phone="+15125550181"))
    now = datetime.now(UTC)
    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        one = booking_services.get_booking(b1)
        booking_services.reschedule_booking(tenant, one, tomorrow_at(14), actor_type="user", now=now)
        booking_services.transition(one, "in_progress", actor_type="user")
        booking_services.transition(one, "completed", actor_type="user")
        booking_services.cancel_booking(tenant, booking_services.get_booking(b2), actor_type="user", now=now)
        db.session.commit()
    run_jobs()

    rows = deliveries(app, t)
    to_all = [(d.event_type, json.loads(d.body)["data"]["booking"]["id"]) for d in rows if d.endpoint_id == everything]
    assert to_all == [
        ("booking.created", str(b1)),
        ("booking.confirmed", str(b1)),
        ("booking.created", str(b2)),
        ("booking.confirmed", str(b2)),
        ("booking.rescheduled", str(b1)),
        ("booking.completed", str(b1)),
        ("booking.cancelled", str(b2)),
    ]
    assert [d.event_type for d in rows if d.endpoint_id == only_cancel] == ["booking.cancelled"]
    assert all(d.status == "succeeded" for d in rows)
    moved = next(json.loads(d.body)["data"] for d in rows if d.event_type == "booking.rescheduled")
    assert moved["previous"]["starts_at"] == tomorrow_at(9).isoformat() and moved["booking"]["starts_at"].startswith(
        tomorrow_at(14).strftime("%Y-%m-%dT%H")
    )
    cancelled = next(json.loads(d.body)["data"] for d in rows if d.event_type == "booking.cancelled")
    assert cancelled["previous_status"] == "confirmed" and cancelled["booking"]["status"] == "canceled"
    # The same event goes to both endpoints with one id, so receivers can dedupe.
    ids = {d.endpoint_id: d.event_id for d in rows if d.event_type == "booking.cancelled"}
    assert ids[everything] == ids[only_cancel]
    assert len(receiver.requests) == 8


def test_another_business_never_gets_these_events(app, two_tenants, seed_booking, visitor, receiver, run_jobs):
    a, b = two_tenants
    fa = seed_booking(a)
    created_endpoint(owner(visitor, b), receiver.url)
    book(app, a, request(fa, tomorrow_at(10)))
    run_jobs()
    assert receiver.requests == [] and deliveries(app, a) == []


def test_an_event_while_redis_is_down_is_sent_by_the_sweep_once_it_is_back(
    app, outage_app, private_redis, make_tenant, seed_booking, visitor, receiver, run_jobs, superuser_conn, caplog
):
    t = make_tenant()
    f = seed_booking(t)
    outage_app.config.update(OUTGOING_WEBHOOKS_HTTPS_ONLY=False, OUTGOING_WEBHOOKS_ALLOWED_HOSTS=("127.0.0.1",))
    created_endpoint(owner(visitor, t), receiver.url, ["booking.created"])
    _, key = make_key(app, t)
    private_redis.stop()
    r = call(
        outage_app.test_client(),
        "POST",
        "/bookings",
        key,
        json={
            "package_id": str(f.wash),
            "size_class": "sedan",
            "starts_at": tomorrow_at(11).isoformat(),
            "customer": {"name": "Offline Customer", "phone": "+15125550155"},
            "address": "1100 Congress Ave",
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)  # the booking doesn't wait for Redis
    (d,) = deliveries(app, t)
    assert (d.status, d.attempts) == ("pending", 0) and "after-commit" in caplog.text
    make_due(superuser_conn, t)  # the sweep leaves the last minute's rows to their own jobs
    assert sweep(app) >= 1  # (the session app's Redis stands in for Redis coming back)
    run_jobs()
    (d,) = deliveries(app, t)
    assert d.status == "succeeded" and len(receiver.requests) == 1


# --- Retries, the log, resend ------------------------------------------------------------------------


def test_a_500_is_retried_with_backoff_then_delivered_and_the_log_shows_it(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, superuser_conn
):
    from rq.registry import ScheduledJobRegistry

    from app.jobs import get_queue

    t = make_tenant()
    f = seed_booking(t)
    v = owner(visitor, t)
    endpoint_id, secret = created_endpoint(v, receiver.url, ["booking.created"])
    receiver.plan = [500, 200]
    book(app, t, request(f, tomorrow_at(10)))
    started = datetime.now(UTC)
    run_jobs()

    (d,) = deliveries(app, t)
    assert (d.status, d.attempts, d.response_status) == ("pending", 1, 500)
    assert timedelta(seconds=50) < d.next_attempt_at - started < timedelta(seconds=70)  # the first wait: 1 minute
    assert '"status": 500' in d.response_excerpt
    with app.app_context():
        registry = ScheduledJobRegistry(queue=get_queue("default"), serializer=get_queue("default").serializer)
        scheduled = [get_queue("default").fetch_job(j) for j in registry.get_job_ids()]
        assert any(j and list(j.args[1:]) == [str(d.id)] for j in scheduled), "the retry is scheduled in RQ"
    log = v.get(f"/integrations/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "Retrying" in log and 'data-testid="delivery-code">500<' in log and "received" in log
    assert re.search(r'data-testid="delivery-next">[^—<]+<', log)

    make_due(superuser_conn, t)
    assert sweep(app) >= 1
    run_jobs()
    (d,) = deliveries(app, t)
    assert (d.status, d.attempts, d.response_status, d.next_attempt_at) == ("succeeded", 2, 200, None)
    first, second = receiver.requests
    assert first.body == second.body  # the same event, signed afresh each time
    assert all(expected_signature(secret, x.headers["Fieldday-Signature"], x.body) for x in (first, second))
    log = v.get(f"/integrations/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "Delivered" in log and 'data-testid="delivery-attempts">2<' in log

    # Resend from the log: a new delivery of the same event.
    r = v.post(
        f"/integrations/webhooks/{endpoint_id}/deliveries/{d.id}/resend",
        token_page=f"/integrations/webhooks/{endpoint_id}",
    )
    assert r.status_code == 302
    run_jobs()
    rows = deliveries(app, t)
    assert len(rows) == 2 and rows[1].resent_from == d.id and rows[1].status == "succeeded"
    assert json.loads(receiver.requests[-1].body)["id"] == str(d.event_id)


def test_after_the_last_retry_a_delivery_is_given_up(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, superuser_conn
):
    t = make_tenant()
    f = seed_booking(t)
    created_endpoint(owner(visitor, t), receiver.url, ["booking.created"])
    receiver.plan = [503]
    book(app, t, request(f, tomorrow_at(10)))
    run_jobs()
    waits = []
    for _ in range(5):
        (d,) = deliveries(app, t)
        waits.append(round((d.next_attempt_at - d.last_attempt_at).total_seconds()))
        make_due(superuser_conn, t)
        sweep(app)
        run_jobs()
    assert waits == [60, 300, 1800, 7200, 43200]
    (d,) = deliveries(app, t)
    assert (d.status, d.attempts, d.next_attempt_at) == ("failed", 6, None)
    assert len(receiver.requests) == 6


def test_timeouts_and_redirects_are_failures_and_redirects_are_not_followed(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_TIMEOUT_S", 1)
    t = make_tenant()
    f = seed_booking(t)
    v = owner(visitor, t)
    created_endpoint(v, receiver.url, ["booking.created"])
    receiver.plan, receiver.location = [302], receiver.url + "?followed=1"
    book(app, t, request(f, tomorrow_at(9)))
    run_jobs()
    (d,) = deliveries(app, t)
    assert d.response_status == 302 and "don't follow redirects" in d.error and d.status == "pending"
    assert [x.path for x in receiver.requests] == ["/hooks/fieldday"]

    receiver.plan, receiver.location, receiver.delay_s = [200], None, 2.5
    book(app, t, request(f, tomorrow_at(13), phone="+15125550182"))
    run_jobs()
    d = deliveries(app, t)[-1]
    assert d.status == "pending" and d.response_status is None and "No answer within 1 seconds" in d.error


def test_a_dead_endpoint_is_turned_off_and_the_owner_told_once(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, smtp_server, monkeypatch, superuser_conn
):
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_DISABLE_AFTER", 3)
    t = make_tenant()
    f = seed_booking(t, techs=3)
    v = owner(visitor, t)
    endpoint_id, _ = created_endpoint(v, receiver.url, ["booking.created"])
    receiver.plan = [500, 500, 200, 500]  # a success in between starts the count again
    for i, hour in enumerate((8, 10, 12)):
        book(app, t, request(f, tomorrow_at(hour), phone=f"+1512555019{i}"))
        run_jobs()
    assert [d.status for d in deliveries(app, t)] == ["pending", "pending", "succeeded"]
    inbox_before = len(smtp_server.messages)
    for i, hour in enumerate((14, 16)):
        book(app, t, request(f, tomorrow_at(hour), phone=f"+1512555018{i}"))
        run_jobs()
    make_due(superuser_conn, t)
    sweep(app)
    run_jobs()

    endpoint = superuser_conn.execute(
        "SELECT enabled, consecutive_failures, disabled_reason, owner_notified_at FROM webhook_endpoints WHERE id = %s",
        (endpoint_id,),
    ).fetchone()
    assert endpoint[0] is False and endpoint[1] >= 3 and "failed attempts in a row" in endpoint[2]
    assert endpoint[3] is not None
    mails = [m for m in smtp_server.messages[inbox_before:] if m["To"] == t.owner.email]
    assert len(mails) == 1 and mails[0]["Subject"] == "Webhook endpoint turned off"
    assert receiver.url in mails[0].get_payload()
    assert (
        superuser_conn.execute(
            "SELECT count(*) FROM audit_log WHERE tenant_id = %s AND action = 'webhook_endpoint.disabled'", (t.id,)
        ).fetchone()[0]
        == 1
    )

    page = v.get(f"/integrations/webhooks/{endpoint_id}").get_data(as_text=True)
    assert 'data-testid="endpoint-disabled"' in page and 'data-testid="delivery-resend"' not in page
    # Nothing more is queued for it, and pending retries are dropped at their next turn.
    sent = len(receiver.requests)
    book(app, t, request(f, tomorrow_at(9), phone="+15125550177"))
    make_due(superuser_conn, t)
    sweep(app)
    run_jobs()
    assert len(receiver.requests) == sent
    assert all(d.status in ("succeeded", "failed") for d in deliveries(app, t))

    # Turned back on by the owner: sends again.
    receiver.plan = [200]
    r = v.post(
        f"/integrations/webhooks/{endpoint_id}",
        {"url": receiver.url, "events": ["booking.created"], "enabled": "on"},
        token_page=f"/integrations/webhooks/{endpoint_id}",
    )
    assert r.status_code == 302
    book(app, t, request(f, tomorrow_at(11), phone="+15125550176"))
    run_jobs()
    assert len(receiver.requests) == sent + 1 and deliveries(app, t)[-1].status == "succeeded"


def test_send_test_event_and_reveal_and_roll_the_secret(app, make_tenant, visitor, receiver, run_jobs, superuser_conn):
    t = make_tenant()
    v = owner(visitor, t)
    endpoint_id, secret = created_endpoint(v, receiver.url)
    page = f"/integrations/webhooks/{endpoint_id}"
    assert secret not in v.get(page).get_data(as_text=True)  # not on the page unless asked for
    shown = v.post(f"{page}/secret", token_page=page).get_data(as_text=True)
    assert secret in shown
    stored = superuser_conn.execute(
        "SELECT secret_enc FROM webhook_endpoints WHERE id = %s", (endpoint_id,)
    ).fetchone()[0]
    assert secret not in stored and secret[6:] not in stored  # encrypted at rest

    assert v.post(f"{page}/test", token_page=page).status_code == 302
    run_jobs()
    (ping,) = receiver.requests
    assert json.loads(ping.body)["type"] == "ping" and expected_signature(
        secret, ping.headers["Fieldday-Signature"], ping.body
    )

    rolled = v.post(f"{page}/secret", {"roll": "1"}, token_page=page).get_data(as_text=True)
    new_secret = re.search(r'data-testid="endpoint-secret-value">(whsec_[^<]+)<', rolled).group(1)
    assert new_secret != secret
    v.post(f"{page}/test", token_page=page)
    run_jobs()
    last = receiver.requests[-1]
    assert expected_signature(new_secret, last.headers["Fieldday-Signature"], last.body)
    assert not expected_signature(secret, last.headers["Fieldday-Signature"], last.body)
    actions = [
        r[0]
        for r in superuser_conn.execute(
            "SELECT action FROM audit_log WHERE tenant_id = %s AND action LIKE 'webhook%%' ORDER BY created_at", (t.id,)
        )
    ]
    assert actions == ["webhook_endpoint.created", "webhook_endpoint.secret_revealed", "webhook_endpoint.secret_rolled"]

    assert v.post(f"{page}/delete", token_page=page).status_code == 302
    assert v.get(page).status_code == 404
    assert deliveries(app, t) == []


# --- Where webhooks may go ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url,says",
    [
        ("https://10.0.0.5/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://[::ffff:10.1.2.3]/hook", "private"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[fc00::5]/hook", "private"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://100.64.0.1/hook", "not on the public internet"),
        ("https://localhost/hook", "loopback"),
        ("https://2130706433/hook", "loopback"),  # 127.0.0.1 as one number
        ("https://0x7f000001/hook", "loopback"),
        ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", "loopback"),  # full-width digits: 127.0.0.1
        ("https://127\u30020\u30020\u30021/hook", "loopback"),  # ideographic full stops
        ("https://[fec0::1]/hook", "site-local"),
        ("ftp://93.184.216.34/hook", "https://"),
        ("93.184.216.34/hook", "https://"),
        ("http://93.184.216.34/hook", "Use an https:// URL"),
        ("https://user:pw@93.184.216.34/hook", "user name and password"),
        ("https://93.184.216.34:99999/hook", "valid URL"),
        ("https://no-such-host.invalid/hook", "couldn't find the host"),
        ("", "Enter the URL"),
    ],
)
def test_private_and_malformed_urls_are_refused_with_a_clear_error(app, make_tenant, visitor, url, says):
    assert app.config["OUTGOING_WEBHOOKS_ALLOWED_HOSTS"] == ()  # the guard as production runs it
    t = make_tenant()
    r = add_endpoint(owner(visitor, t), url)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    error = re.search(r'data-testid="error-url">([^<]*)<', html).group(1)
    assert says in error.replace("&#39;", "'"), error


def test_loopback_is_refused_without_the_test_allowlist_even_for_http(app, make_tenant, visitor, monkeypatch):
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_HTTPS_ONLY", False)
    t = make_tenant()
    v = owner(visitor, t)
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook", "http://127.1/hook"):
        r = add_endpoint(v, url)
        assert r.status_code == 422 and "loopback" in r.get_data(as_text=True), url
    # The allowlist exempts exactly the names listed, nothing that resolves to them.
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_ALLOWED_HOSTS", ("127.0.0.1",))
    assert add_endpoint(v, "http://localhost:8080/hook").status_code == 422
    assert add_endpoint(v, "http://127.0.0.1:8080/hook").status_code == 200


def test_no_events_chosen_is_refused(make_tenant, visitor, receiver):
    t = make_tenant()
    r = add_endpoint(owner(visitor, t), receiver.url, events=[])
    assert r.status_code == 422 and 'data-testid="error-events"' in r.get_data(as_text=True)
    r = add_endpoint(owner(visitor, t), receiver.url, events=["booking.exploded"])
    assert r.status_code == 422


def _fake_dns(monkeypatch, answers: dict[str, list[str]]):
    real = socket.getaddrinfo

    def fake(host, port, *args, **kw):
        if host in answers:
            ips = answers[host]
            return [
                (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ips
            ]
        return real(host, port, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_dns_rebinding_after_saving_is_caught_at_send_time(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, monkeypatch
):
    t = make_tenant()
    f = seed_booking(t)
    v = owner(visitor, t)
    url = f"http://rebind.example:{receiver.port}/hooks/fieldday"
    _fake_dns(monkeypatch, {"rebind.example": ["93.184.216.34"]})  # public when the owner saves it
    created_endpoint(v, url, ["booking.created"])
    _fake_dns(monkeypatch, {"rebind.example": ["127.0.0.1"]})  # then the name points inside
    book(app, t, request(f, tomorrow_at(10)))
    run_jobs()
    (d,) = deliveries(app, t)
    assert receiver.requests == [] and d.status == "pending"
    assert d.error.startswith("Refused:") and "loopback" in d.error
    # A name answering with one public and one private address is refused too.
    _fake_dns(monkeypatch, {"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    r = add_endpoint(v, "http://mixed.example/hook")
    assert r.status_code == 422 and "10.0.0.7" in r.get_data(as_text=True)


def test_the_send_connects_to_the_checked_address_and_names_the_host(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_ALLOWED_HOSTS", ("hooks.example",))
    _fake_dns(monkeypatch, {"hooks.example": ["127.0.0.1"]})
    t = make_tenant()
    f = seed_booking(t)
    created_endpoint(owner(visitor, t), f"http://hooks.example:{receiver.port}/in?src=fd", ["booking.created"])
    book(app, t, request(f, tomorrow_at(10)))
    run_jobs()
    (req,) = receiver.requests
    assert req.headers["Host"] == f"hooks.example:{receiver.port}" and req.path == "/in?src=fd"


@pytest.mark.parametrize(
    "ip,public",
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.255.255.255", False),
        ("172.16.0.1", False),
        ("169.254.169.254", False),
        ("::", False),
        ("::ffff:169.254.169.254", False),
        ("2002:7f00:0001::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("fec0::1", False),  # deprecated site-local, still routed inside some networks
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("198.18.0.1", False),
    ],
)
def test_address_classification(ip, public):
    import ipaddress

    from app.webhooks_out.guard import blocked_reason

    assert (blocked_reason(ipaddress.ip_address(ip)) is None) is public


def test_an_international_host_name_is_checked_and_sent_in_its_ascii_form(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, monkeypatch
):
    """The Host header can't carry Cyrillic: sending one crashed the job before it recorded the attempt, so
    the sweep retried it every minute for ever. DNS, Host and SNI all get the xn-- form."""
    ascii_name = "xn--e1afmkfd.xn--p1ai"  # пример.рф
    monkeypatch.setitem(app.config, "OUTGOING_WEBHOOKS_ALLOWED_HOSTS", (ascii_name,))
    _fake_dns(monkeypatch, {ascii_name: ["127.0.0.1"]})
    t = make_tenant()
    f = seed_booking(t)
    created_endpoint(owner(visitor, t), f"http://Пример.РФ.:{receiver.port}/hook", ["booking.created"])
    book(app, t, request(f, tomorrow_at(10)))
    run_jobs()
    (req,) = receiver.requests
    assert req.headers["Host"] == f"{ascii_name}:{receiver.port}"
    (d,) = deliveries(app, t)
    assert d.status == "succeeded"


def _slow_server(answer: bytes, every_s: float):
    """A raw TCP receiver that reads the request, then sends ``answer`` one byte every ``every_s``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                conn.recv(65536)
                for byte in answer:
                    conn.sendall(bytes([byte]))
                    time.sleep(every_s)
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline():
    """Each read has a timeout, but a byte every 0.5 s never trips a 1 s one: without a deadline on the
    whole exchange this took ~30 s (with 5 s, minutes: past RQ's job timeout, so the attempt was never
    recorded and the sweep sent it again every minute)."""
    from app.webhooks_out import guard

    server = _slow_server(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 50 + b"\r\nContent-Length: 0\r\n\r\n", 0.5)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    try:
        started = time.monotonic()
        with pytest.raises(guard.SendFailed, match="No complete answer within 1 seconds"):
            guard.post(url, b"{}", {}, timeout_s=1, https_only=False, allowed_hosts=("127.0.0.1",))
        assert time.monotonic() - started < 4
    finally:
        server.close()


def test_a_refused_connection_says_so():
    from app.webhooks_out import guard

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(guard.SendFailed, match="Couldn't connect to 127.0.0.1"):
        guard.post(f"http://127.0.0.1:{port}/", b"{}", {}, timeout_s=2, https_only=False, allowed_hosts=("127.0.0.1",))


def test_a_send_never_waits_on_an_endpoint_the_dashboard_has_locked(
    app, make_tenant, seed_booking, visitor, receiver, run_jobs, superuser_conn
):
    """The dashboard locks the endpoint (edit, secret, delete; a delete then cascades to its deliveries).
    A send that waited for that lock while holding its delivery's lock deadlocked with a delete; now the
    send leaves the row to the sweep, and the dashboard waits for a send in flight instead."""
    t = make_tenant()
    f = seed_booking(t)
    endpoint_id, _ = created_endpoint(owner(visitor, t), receiver.url, ["booking.created"])
    receiver.plan = [500, 200]  # a failure updates the endpoint's failure count: the path that waited
    book(app, t, request(f, tomorrow_at(10)))
    with superuser_conn.transaction():
        superuser_conn.execute("SELECT 1 FROM webhook_endpoints WHERE id = %s FOR UPDATE", (endpoint_id,))
        run_jobs()  # (before: a lock timeout in the job, which fails the test)
        (d,) = deliveries(app, t)
        assert (d.status, d.attempts) == ("pending", 0) and receiver.requests == []
    run_jobs()
    make_due(superuser_conn, t)
    sweep(app)
    run_jobs()
    (d,) = deliveries(app, t)
    assert (d.status, d.attempts) == ("pending", 1) and len(receiver.requests) == 1
    make_due(superuser_conn, t)
    sweep(app)
    run_jobs()
    (d,) = deliveries(app, t)
    assert (d.status, d.attempts) == ("succeeded", 2) and len(receiver.requests) == 2


def test_technicians_cannot_open_webhook_pages(make_tenant, visitor):
    t = make_tenant(techs=1)
    v = visitor(APP)
    v.login(t.people["tech0"].email, PASSWORD)
    assert v.get("/integrations/webhooks").status_code == 403


# --- On a phone, in a real browser ---------------------------------------------------------------------


@pytest.mark.browser
def test_on_a_phone_the_owner_makes_a_key_and_an_endpoint_and_reads_the_log(
    app, new_context, live_server, make_tenant, seed_booking, receiver, run_jobs
):
    import requests
    from playwright.sync_api import expect

    from tests.pages import PHONE, screenshot

    t = make_tenant(name="Acme Shine")
    f = seed_booking(t)
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url(APP, "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.goto(live_server.url(APP, "/integrations"))
    page.get_by_test_id("api-keys-link").click()
    expect(page.get_by_test_id("api-keys-empty")).to_be_visible()
    page.get_by_test_id("field-name").fill("Website")
    page.get_by_test_id("scope-read-write").check()
    page.get_by_test_id("api-key-create").click()
    secret = page.get_by_test_id("new-key-secret").inner_text().strip()
    assert secret.startswith("fd_live_")
    screenshot(page, "api-keys-1-new-key")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    page.goto(live_server.url(APP, "/integrations/webhooks"))
    page.get_by_test_id("field-url").fill(receiver.url)
    page.get_by_test_id("event-booking.completed").uncheck()
    page.get_by_test_id("webhook-create").click()
    expect(page.get_by_test_id("endpoint-secret-value")).to_have_text(re.compile(r"^whsec_"))
    screenshot(page, "webhooks-1-endpoint-added")

    # Other software books through the API with the key; the events reach the receiver.
    r = requests.post(
        live_server.url("127.0.0.1", "/api/v1/bookings"),
        headers={"Host": APP, "Authorization": f"Bearer {secret}"},
        json={
            "package_id": str(f.wash),
            "size_class": "sedan",
            "starts_at": tomorrow_at(10).isoformat(),
            "customer": {"name": "Browser Customer", "phone": "+15125550144"},
            "address": "1100 Congress Ave",
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    receiver.plan = [500, 200]
    run_jobs()
    page.goto(live_server.url(APP, "/integrations/webhooks"))  # (not reload: that page answered a POST)
    page.get_by_test_id("webhook-endpoint").get_by_role("link").click()
    expect(page.get_by_test_id("delivery-row")).to_have_count(2)
    expect(page.get_by_test_id("delivery-status").first).to_have_text(re.compile("Delivered|Retrying"))
    screenshot(page, "webhooks-2-delivery-log")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    page.goto(live_server.url(APP, "/integrations/api-keys"))
    expect(page.get_by_test_id("api-key-last-used")).not_to_have_text("Never")
    screenshot(page, "api-keys-2-list")
