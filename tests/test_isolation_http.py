"""Tenant isolation over HTTP (RELIABILITY §9: T4, T7, H1–H5)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tenants.hosts import BadHost, UnknownHost, classify_host


def login(visitor, person):
    v = visitor("app.localhost")
    v.login(person.email, person.password)
    return v


# --- H1: every route with an id, A's session, B's ids ------------------------------


def _b_ids(app, b, seed_booking) -> dict[str, uuid.UUID]:
    """One of B's real ids for each kind of id parameter a route can take."""
    from tests.test_booking import book, request, tomorrow_at

    f = seed_booking(b)
    booking_id = book(app, b, request(f, tomorrow_at(10)))
    from app.accounts import services as accounts
    from app.accounts.models import User
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(b.id, db.session):
        owner = db.session.get(User, (b.id, b.owner.id))
        invitation = accounts.invite(
            owner, email=f"new-{uuid.uuid4().hex[:6]}@b.test", name="New", role="admin", now=datetime.now(UTC)
        )  # an admin: B's Starter plan has its one technician already (tests/test_quotas.py)
        db.session.commit()
        from app.booking.models import Booking

        booking = db.session.get(Booking, (b.id, booking_id))
        from app.payments import services as payments

        cash = payments.record_manual(booking, method="cash", amount_cents=2000)
        from app.dispatch.models import RoutePlan

        plan = RoutePlan(tenant_id=b.id, day=booking.starts_at.date(), status="ready", proposed={"routes": []})
        db.session.add(plan)
        from app.media.models import BookingPhoto

        photo = BookingPhoto(
            tenant_id=b.id, booking_id=booking_id, kind="after", key=f"tenants/{b.id}/h1.png", content_type="image/png"
        )
        db.session.add(photo)
        from app.reviews.models import Review

        review = Review(
            tenant_id=b.id, booking_id=booking_id, customer_id=booking.customer_id, rating=5, author_name="B"
        )
        db.session.add(review)
        from app.calendar.models import GoogleConnection, GoogleProposedChange

        google = GoogleConnection(tenant_id=b.id, technician_id=f.techs[0], refresh_token_enc="not-a-real-token")
        db.session.add(google)
        change = GoogleProposedChange(tenant_id=b.id, booking_id=booking_id, kind="cancel")
        db.session.add(change)
        from app.quotes.models import Quote, QuoteLine, QuoteRequest, QuoteRequestPhoto

        ask = QuoteRequest(
            tenant_id=b.id,
            customer_id=booking.customer_id,
            vehicle_id=booking.vehicle_id,
            address_id=booking.address_id,
            wanted="Coating",
        )
        db.session.add(ask)
        db.session.flush()
        ask_photo = QuoteRequestPhoto(
            tenant_id=b.id, request_id=ask.id, key=f"tenants/{b.id}/q.png", content_type="image/png", status="stored"
        )
        quote = Quote(
            tenant_id=b.id,
            number=1,
            customer_id=booking.customer_id,
            size_class="sedan",
            expires_on=booking.starts_at.date(),
        )
        quote.currency = "USD"
        db.session.add_all([ask_photo, quote])
        db.session.flush()
        quote_line = QuoteLine(tenant_id=b.id, quote_id=quote.id, kind="custom", name="Coating", unit_cents=1000)
        db.session.add(quote_line)
        from app.apikeys import services as apikeys
        from app.webhooks_out.models import WebhookDelivery, WebhookEndpoint

        api_key, _ = apikeys.create_key(b.id, name="B's key", scopes="read_write", actor_id=b.owner.id)
        endpoint = WebhookEndpoint(
            tenant_id=b.id, url="https://93.184.216.34/b-hook", events=["booking.created"], secret_enc="not-a-secret"
        )
        db.session.add(endpoint)
        db.session.flush()
        delivery = WebhookDelivery(
            tenant_id=b.id,
            endpoint_id=endpoint.id,
            event_id=uuid.uuid4(),
            event_type="booking.created",
            body="{}",
            status="failed",
        )
        db.session.add(delivery)
        from app.customers.tenant_export import DataExport

        export = DataExport(
            tenant_id=b.id,
            status="ready",
            key=f"tenants/{b.id}/exports/h1.zip",
            finished_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(days=7),
        )
        db.session.add(export)
        db.session.commit()
        return {
            "key_id": api_key.id,
            "endpoint_id": endpoint.id,
            "delivery_id": delivery.id,
            "tenant_id": b.id,  # /platform/tenants/<id>: A's owner is no platform admin, so 404 too
            "export_id": export.id,
            "quote_id": quote.id,
            "quote_line_id": quote_line.id,
            "quote_request_id": ask.id,
            "request_photo_id": ask_photo.id,
            "connection_id": google.id,
            "change_id": change.id,
            "review_id": review.id,
            "photo_id": photo.id,
            "plan_id": plan.id,
            "payment_id": cash.id,
            "user_id": b.people["tech0"].id,
            "invitation_id": invitation.id,
            "package_id": f.wash,
            "technician_id": f.techs[0],
            "booking_id": booking_id,
            "customer_id": booking.customer_id,
            "vehicle_id": booking.vehicle_id,
            "address_id": booking.address_id,
        }


def _b_snapshot(app, b):
    from app.accounts.models import Invitation, User
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(b.id, db.session):
        users = sorted(
            (u.id, u.name, u.role, u.is_active_flag, u.session_version) for u in db.session.scalars(db.select(User))
        )
        invites = sorted((i.id, i.revoked_at) for i in db.session.scalars(db.select(Invitation)))
        bookings = sorted((x.id, x.status, x.starts_at) for x in db.session.scalars(db.select(Booking)))
        from app.payments.models import Payment, Refund

        money = sorted(
            (p.id, p.status, p.amount_cents, p.refunded_cents) for p in db.session.scalars(db.select(Payment))
        )
        refunds = db.session.scalar(db.select(db.func.count()).select_from(Refund))
        return users, invites, bookings, money, refunds


def test_h1_route_sweep_with_another_tenants_ids(app, two_tenants, visitor, seed_booking):
    a, b = two_tenants
    seed_booking(a)
    ids = _b_ids(app, b, seed_booking)
    before = _b_snapshot(app, b)
    v = login(visitor, a.owner)
    token = v.dashboard_token()
    checked = 0
    for rule in app.url_map.iter_rules():
        params = [name for name, conv in rule._converters.items() if type(conv).__name__ == "UUIDConverter"]
        if not params or rule.subdomain != "app":
            continue
        missing = [p for p in params if p not in ids]
        assert not missing, f"{rule.rule}: no B id known for {missing}; add one to _b_ids"
        path = rule.rule
        for p in params:
            path = path.replace(f"<uuid:{p}>", str(ids[p]))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            r = v.request(
                method,
                path,
                data={"csrf_token": token, "role": "admin"},
                headers={"X-CSRFToken": token, "Accept": "application/json" if "/api/" in path else "text/html"},
            )
            body = r.get_data(as_text=True)
            assert r.status_code == 404, f"{method} {path} -> {r.status_code} {r.get_data(as_text=True)[:300]}"
            assert b.owner.email not in body and "tech0@" + b.subdomain not in body
            checked += 1
    assert checked >= 4
    assert _b_snapshot(app, b) == before


# --- H2/H3: the session stays on app.<base> -------------------------------------


def test_h2_session_cookie_is_host_only(two_tenants, visitor):
    a, b = two_tenants
    v = visitor("app.localhost")
    r = v.post("/login", {"email": a.owner.email, "password": a.owner.password}, token_page="/login")
    cookies = [h for h in r.headers.getlist("Set-Cookie") if h.startswith("fd_session=")]
    assert cookies, "login sets the session cookie"
    assert all("domain=" not in c.lower() for c in cookies)
    assert all("httponly" in c.lower() and "samesite=lax" in c.lower() for c in cookies)
    # The same client visiting the booking sites sends no cookie there.
    for host in (a.host, b.host):
        assert v.client.get_cookie("fd_session", domain=host) is None
    assert v.client.get_cookie("fd_session", domain="app.localhost") is not None


def test_h3_owner_cookie_replayed_on_another_booking_site_shows_nothing_private(app, two_tenants, visitor):
    a, b = two_tenants
    v = login(visitor, a.owner)
    cookie = v.client.get_cookie("fd_session", domain="app.localhost").value
    other = app.test_client()
    other.set_cookie("fd_session", cookie, domain=b.host)
    r = other.get("/", base_url=f"http://{b.host}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and b.name in html
    assert a.owner.email not in html and a.name not in html and "Log out" not in html
    # B's booking site never answers dashboard routes, whatever cookie comes along.
    assert other.get("/team", base_url=f"http://{b.host}").status_code == 404
    assert other.get("/api/v1/me", base_url=f"http://{b.host}").status_code == 404


def test_h3_client_supplied_tenant_ids_are_ignored(two_tenants, visitor):
    a, b = two_tenants
    v = login(visitor, a.owner)
    r = v.get(
        f"/api/v1/users?tenant={b.id}&tenant_id={b.id}", headers={"X-Tenant-ID": str(b.id), "X-Tenant": b.subdomain}
    )
    emails = {u["email"] for u in r.get_json()["users"]}
    assert a.owner.email in emails and b.owner.email not in emails
    assert v.get("/api/v1/me", headers={"X-Tenant-ID": str(b.id)}).get_json()["tenant"]["id"] == str(a.id)


# --- H4: hosts ---------------------------------------------------------------


@pytest.mark.parametrize(
    "host,expected",
    [
        ("evil.com", BadHost),
        ("app.localhost.evil.com", BadHost),
        ("localhost.evil.com", BadHost),
        ("x.acme.localhost", UnknownHost),
        ("www.localhost", UnknownHost),
        ("api.localhost", UnknownHost),
        ("-acme.localhost", UnknownHost),
        ("ACME.localhost:5000", ("site", "acme")),
        ("acme.localhost.", ("site", "acme")),
        ("acme.localhost.:5000", ("site", "acme")),
        ("App.Localhost:5000", ("app", None)),
        ("localhost:5000", ("apex", None)),
    ],
)
def test_h4_host_classification(host, expected):
    if isinstance(expected, tuple):
        info = classify_host(host, "localhost")
        assert (info.audience, info.subdomain) == expected
    else:
        with pytest.raises(expected):
            classify_host(host, "localhost")


def test_h4_forged_hosts_over_http(two_tenants, client):
    a, _ = two_tenants
    assert client.get("/", base_url="http://evil.com").status_code == 400
    assert client.get("/login", base_url="http://app.localhost.evil.com").status_code == 400
    assert client.get("/", base_url=f"http://x.{a.subdomain}.localhost").status_code == 404
    assert client.get("/", base_url="http://www.localhost").status_code == 404
    upper = client.get("/", base_url=f"http://{a.subdomain.upper()}.LOCALHOST:5000")
    assert upper.status_code == 200 and a.name in upper.get_data(as_text=True)
    dotted = client.get("/", base_url=f"http://{a.subdomain}.localhost.")
    assert dotted.status_code == 200 and a.name in dotted.get_data(as_text=True)
    r = client.get("/", base_url="http://evil.com", headers={"Accept": "application/json"})
    assert r.get_json()["error"]["status"] == 400


# --- H5: signed links ---------------------------------------------------------


def test_h5_tampered_and_expired_links_are_404(app, two_tenants, visitor, monkeypatch):
    from app.accounts import tokens

    a, _ = two_tenants
    with app.app_context():
        good = tokens.make_invite_token(a.id, uuid.uuid4())
        reset = tokens.make_reset_token(a.id, a.owner.id, "hash")
    v = visitor("app.localhost")
    flipped = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
    assert v.get(f"/invite/{flipped}").status_code == 404
    assert v.get(f"/invite/{good}").status_code == 404  # well signed, but no such invitation
    assert v.get(f"/password/reset/{reset}").status_code == 404  # fingerprint does not match
    r = v.get(f"/password/reset/{reset[:-1]}x")
    assert r.status_code == 404 and r.headers["Referrer-Policy"] == "no-referrer"
    # Tokens only work on the app host; booking sites do not serve them at all.
    assert visitor(a.host).get(f"/invite/{good}").status_code == 404


# --- T4: interleaved tenants over a 2-connection pool --------------------------


def test_t4_interleaved_requests_over_a_tiny_pool_never_mix_tenants(services, smtp_server, two_tenants):
    from app import create_app
    from app.config import TestConfig

    a, b = two_tenants
    small = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
            "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
            "REDIS_URL": services.redis.url,
            "RATELIMIT_ENABLED": False,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 2, "max_overflow": 0, "pool_timeout": 30},
        },
    )
    clients = {}
    for t in (a, b):
        c = small.test_client()
        page = c.get("/login", base_url="http://app.localhost").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = c.post(
            "/login",
            base_url="http://app.localhost",
            data={"email": t.owner.email, "password": t.owner.password, "csrf_token": token},
        )
        assert r.status_code == 302
        clients[t.id] = c
    cookies = {tid: c.get_cookie("fd_session", domain="app.localhost").value for tid, c in clients.items()}
    expected = {a.id: a.owner.email, b.id: b.owner.email}
    other = {a.id: b.owner.email, b.id: a.owner.email}
    failures = []

    def worker(i: int):
        tid = a.id if i % 2 == 0 else b.id
        c = small.test_client()
        c.set_cookie("fd_session", cookies[tid], domain="app.localhost")
        r = c.get("/api/v1/users", base_url="http://app.localhost")
        emails = {u["email"] for u in r.get_json()["users"]}
        if r.status_code != 200 or expected[tid] not in emails or other[tid] in emails:
            failures.append((i, r.status_code, emails))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for group in range(0, 200, 20):
        for t in threads[group : group + 20]:
            t.start()
        for t in threads[group : group + 20]:
            t.join()
    with small.app_context():
        from app.extensions import db

        assert db.engine.pool.size() == 2
        db.engine.dispose()
    assert failures == []


# --- T7: the same e-mail in two businesses -------------------------------------


def test_t7_same_email_in_two_businesses_is_fine_and_leaks_nothing(app, two_tenants, visitor, caplog):
    a, b = two_tenants
    v = login(visitor, a.owner)
    r = v.post(
        "/team/invite",
        {"email": b.owner.email, "name": "Shared Person", "role": "admin", "csrf_token": v.dashboard_token()},
    )  # an admin: A's Starter plan has its one technician already (tests/test_quotas.py)
    assert r.status_code == 302
    page = v.get("/team").get_data(as_text=True)
    assert b.owner.email in page  # the invitation A made
    # B's name and id appear nowhere: the e-mail is just an e-mail to A.
    assert b.name not in page
    assert b.name not in caplog.text and str(b.id) not in caplog.text
