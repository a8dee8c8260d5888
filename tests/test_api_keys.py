"""API keys on /api/v1 and the per-business hourly allowance (issue 10; docs/api-and-webhooks.md).

Keys are made the way an owner makes them (the dashboard page) or through the service, and used the
way other software uses them: a plain HTTP client against the served app, Authorization: Bearer."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from datetime import timedelta

import pytest
import requests

from tests import test_outage
from tests.conftest import PASSWORD
from tests.test_booking import book, request, tomorrow_at

APP = "app.localhost"
# The app on a Redis of its own that a test can stop (RELIABILITY F2).
private_redis = test_outage.private_redis
outage_app = test_outage.outage_app


def make_key(app, t, *, scopes: str = "read_write", name: str = "Zapier") -> tuple[uuid.UUID, str]:
    from app.apikeys import services as apikeys
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        key, secret = apikeys.create_key(t.id, name=name, scopes=scopes, actor_id=t.owner.id)
        db.session.commit()
        return key.id, secret


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def call(client, method: str, path: str, secret: str | None = None, *, host: str = APP, **kw):
    headers = {**(bearer(secret) if secret else {}), **kw.pop("headers", {})}
    return client.open(f"/api/v1{path}", method=method, base_url=f"http://{host}", headers=headers, **kw)


def owner(visitor, t):
    v = visitor(APP)
    v.login(t.owner.email, PASSWORD)
    return v


def key_row(superuser_conn, key_id) -> dict:
    cur = superuser_conn.execute("SELECT * FROM api_keys WHERE id = %s", (key_id,))
    return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))


# --- Making a key: shown once, hashed at rest --------------------------------------------------------


def test_owner_makes_a_key_it_is_shown_once_and_only_its_hash_is_stored(make_tenant, visitor, superuser_conn):
    t = make_tenant()
    v = owner(visitor, t)
    page = v.get("/integrations/api-keys").get_data(as_text=True)
    assert "No API keys yet" in page
    r = v.post(
        "/integrations/api-keys", {"name": "Website form", "scopes": "read"}, token_page="/integrations/api-keys"
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Copy your new key now" in html
    assert r.headers["Cache-Control"] == "no-store"
    secret = re.search(r'data-testid="new-key-secret">(fd_live_[^<]+)<', html).group(1)
    assert re.fullmatch(r"fd_live_[a-z0-9]{8}_[A-Za-z0-9]{43}", secret)
    prefix = secret.split("_")[2]

    again = v.get("/integrations/api-keys").get_data(as_text=True)
    assert secret not in again and secret[17:] not in again  # never shown again...
    assert f"fd_live_{prefix}_" in again and "Website form" in again and "Read only" in again  # ...but recognisable
    assert secret[17:] not in v.client.get_cookie("fd_session", domain=APP).value  # nor in the cookie

    # At rest: the SHA-256 of the key and its prefix; the secret nowhere (not in the audit log either).
    rows = superuser_conn.execute(
        "SELECT row_to_json(k)::text FROM api_keys k WHERE tenant_id = %s "
        "UNION ALL SELECT row_to_json(a)::text FROM audit_log a WHERE tenant_id = %s",
        (t.id, t.id),
    ).fetchall()
    dump = "\n".join(r[0] for r in rows)
    assert secret[17:] not in dump and secret not in dump
    (row,) = superuser_conn.execute("SELECT key_hash, prefix, scopes FROM api_keys WHERE tenant_id = %s", (t.id,))
    assert row == (hashlib.sha256(secret.encode()).hexdigest(), prefix, ["read"])
    assert '"action":"api_key.created"' in dump


def test_bad_key_form_input_gets_clear_errors(make_tenant, visitor):
    t = make_tenant()
    v = owner(visitor, t)
    r = v.post("/integrations/api-keys", {"name": "  ", "scopes": "admin"}, token_page="/integrations/api-keys")
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert 'data-testid="error-name"' in html and 'data-testid="error-scopes"' in html
    assert "Copy your new key now" not in html
    r = v.post("/integrations/api-keys", {"name": "x" * 81, "scopes": "read"}, token_page="/integrations/api-keys")
    assert r.status_code == 422 and "under 80 characters" in r.get_data(as_text=True)


# --- Using it from another program -------------------------------------------------------------------


def test_a_plain_http_client_uses_the_key_and_the_page_shows_when_it_was_last_used(
    app, make_tenant, seed_booking, live_server, visitor
):
    t = make_tenant()
    f = seed_booking(t)
    booking_id = book(app, t, request(f, tomorrow_at(10)))
    key_id, secret = make_key(app, t, scopes="read")
    base = f"http://127.0.0.1:{live_server.port}/api/v1"
    headers = {"Host": APP, **bearer(secret)}

    me = requests.get(f"{base}/me", headers=headers, timeout=10)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"] is None and body["tenant"]["id"] == str(t.id)
    assert body["api_key"] == {"id": str(key_id), "name": "Zapier", "prefix": secret.split("_")[2], "scopes": ["read"]}
    assert "Set-Cookie" not in me.headers  # a key request starts no session
    got = requests.get(f"{base}/bookings/{booking_id}", headers=headers, timeout=10)
    assert got.status_code == 200 and got.json()["id"] == str(booking_id)

    page = owner(visitor, t).get("/integrations/api-keys").get_data(as_text=True)
    last_used = re.search(r'data-testid="api-key-last-used">([^<]*)<', page).group(1)
    assert last_used and last_used != "Never"


def test_last_used_is_written_at_most_once_a_minute(app, make_tenant, client, superuser_conn):
    t = make_tenant()
    key_id, secret = make_key(app, t, scopes="read")
    assert call(client, "GET", "/me", secret).status_code == 200
    first = key_row(superuser_conn, key_id)["last_used_at"]
    assert first is not None
    assert call(client, "GET", "/users", secret).status_code == 200
    assert key_row(superuser_conn, key_id)["last_used_at"] == first  # no write for the second request
    superuser_conn.execute(
        "UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes' WHERE id = %s", (key_id,)
    )
    assert call(client, "GET", "/me", secret).status_code == 200
    assert key_row(superuser_conn, key_id)["last_used_at"] > first - timedelta(minutes=2)


# --- Refusals: revoked, unknown, malformed, wrong scope, wrong host ------------------------------------


def _is_401(r, error: str | None = None):
    assert r.status_code == 401, r.get_data(as_text=True)
    assert r.get_json()["error"]["code"] == "unauthorized"
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="Fieldday API"')
    if error:
        assert f'error="{error}"' in challenge


def test_revoked_key_gets_401_at_once_and_the_revocation_is_audited(app, make_tenant, client, visitor, superuser_conn):
    t = make_tenant()
    key_id, secret = make_key(app, t, scopes="read")
    assert call(client, "GET", "/me", secret).status_code == 200
    v = owner(visitor, t)
    r = v.post(f"/integrations/api-keys/{key_id}/revoke", token_page="/integrations/api-keys")
    assert r.status_code == 302
    page = v.get("/integrations/api-keys").get_data(as_text=True)
    assert "is revoked" in page and "Revoked" in page and 'data-testid="api-key-revoke"' not in page
    _is_401(call(client, "GET", "/me", secret), "invalid_token")
    _is_401(call(client, "GET", "/users", secret), "invalid_token")
    actions = superuser_conn.execute(
        "SELECT action, actor_id, subject_id FROM audit_log WHERE tenant_id = %s AND action LIKE 'api_key.%%' ORDER BY created_at",
        (t.id,),
    ).fetchall()
    assert actions == [("api_key.created", t.owner.id, key_id), ("api_key.revoked", t.owner.id, key_id)]
    assert key_row(superuser_conn, key_id)["revoked_by"] == t.owner.id
    # Revoking twice changes nothing.
    assert v.post(f"/integrations/api-keys/{key_id}/revoke", token_page="/integrations/api-keys").status_code == 302


@pytest.mark.parametrize(
    "header,error",
    [
        ("Bearer fd_live_abcd1234_" + "A" * 43, "invalid_token"),  # well formed, unknown
        ("Bearer fd_live_abcd1234_short", "invalid_token"),
        ("Bearer not-a-key", "invalid_token"),
        ("Bearer fd_live_abcd1234_" + "A" * 43 + "' OR 1=1 --", "invalid_token"),
        ("Bearer ", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Basic b3duZXI6cGFzcw==", "invalid_request"),
        ("fd_live_abcd1234_" + "A" * 43, "invalid_request"),
    ],
)
def test_unknown_and_malformed_keys_get_401_json_with_a_challenge(make_tenant, client, header, error):
    make_tenant()
    r = client.get("/api/v1/me", base_url=f"http://{APP}", headers={"Authorization": header})
    _is_401(r, error)


def test_no_credentials_at_all_get_401_with_the_challenge(client):
    r = client.get("/api/v1/bookings", base_url=f"http://{APP}")
    _is_401(r)
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="Fieldday API"'


def test_a_key_beats_a_session_cookie_and_a_bad_key_is_not_rescued_by_one(app, two_tenants, visitor):
    a, b = two_tenants
    v = owner(visitor, a)  # A's owner is logged in on this client...
    _, b_secret = make_key(app, b, scopes="read")
    me = v.get("/api/v1/me", headers=bearer(b_secret)).get_json()  # ...but B's key speaks for B only
    assert me["tenant"]["id"] == str(b.id) and me["user"] is None
    users = {u["email"] for u in v.get("/api/v1/users", headers=bearer(b_secret)).get_json()["users"]}
    assert b.owner.email in users and a.owner.email not in users
    _is_401(v.get("/api/v1/me", headers=bearer("fd_live_abcd1234_" + "B" * 43)))


def test_read_only_key_reads_but_any_write_is_403(app, make_tenant, seed_booking, client):
    t = make_tenant()
    f = seed_booking(t)
    booking_id = book(app, t, request(f, tomorrow_at(10)))
    _, secret = make_key(app, t, scopes="read")
    assert call(client, "GET", "/customers", secret).status_code == 200
    for method, path, body in [
        ("POST", "/customers", {"name": "Casey", "phone": "+15125550123"}),
        ("PATCH", "/settings", {"tagline": "Shiny"}),
        ("POST", f"/bookings/{booking_id}/status", {"status": "canceled"}),
    ]:
        r = call(client, method, path, secret, json=body)
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.get_json()["error"]["code"] == "insufficient_scope"
        assert 'error="insufficient_scope", scope="write"' in r.headers["WWW-Authenticate"]
    assert call(client, "GET", f"/bookings/{booking_id}", secret).get_json()["status"] == "confirmed"


def test_write_key_writes_without_csrf_and_the_history_names_the_key(
    app, make_tenant, seed_booking, client, superuser_conn
):
    t = make_tenant()
    f = seed_booking(t)
    key_id, secret = make_key(app, t)
    booking_id = book(app, t, request(f, tomorrow_at(10)))
    r = call(client, "PATCH", "/settings", secret, json={"tagline": "Shine on"})
    assert r.status_code == 200 and r.get_json()["tagline"] == "Shine on"
    r = call(client, "POST", f"/bookings/{booking_id}/status", secret, json={"status": "canceled"})
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    audit = superuser_conn.execute(
        "SELECT actor_id, detail FROM audit_log WHERE tenant_id = %s AND action = 'tenant.settings_changed'", (t.id,)
    ).fetchone()
    assert audit[0] is None and audit[1]["api_key_id"] == str(key_id) and audit[1]["fields"] == ["tagline"]
    event = superuser_conn.execute(
        "SELECT actor_type, actor_id, detail FROM booking_events WHERE booking_id = %s AND to_status = 'canceled'",
        (booking_id,),
    ).fetchone()
    assert event[0] == "user" and event[1] is None and event[2]["api_key_id"] == str(key_id)


def test_sessions_still_need_the_csrf_token(make_tenant, visitor):
    t = make_tenant()
    v = owner(visitor, t)
    r = v.request("PATCH", "/api/v1/settings", json={"tagline": "No token"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed"
    r = v.request("PATCH", "/api/v1/settings", json={"tagline": "Token"}, headers={"X-CSRFToken": v.dashboard_token()})
    assert r.status_code == 200


def test_keys_see_only_their_own_business(app, two_tenants, seed_booking, client):
    a, b = two_tenants
    fa, fb = seed_booking(a), seed_booking(b)
    a_booking = book(app, a, request(fa, tomorrow_at(10)))
    b_booking = book(app, b, request(fb, tomorrow_at(10)))
    _, a_secret = make_key(app, a)
    _, b_secret = make_key(app, b)
    for secret, other, own in ((b_secret, a_booking, b_booking), (a_secret, b_booking, a_booking)):
        assert call(client, "GET", f"/bookings/{own}", secret).status_code == 200
        for method, path, body in [
            ("GET", f"/bookings/{other}", None),
            ("POST", f"/bookings/{other}/status", {"status": "canceled"}),
            ("POST", f"/bookings/{other}/move", {"starts_at": tomorrow_at(13).isoformat()}),
        ]:
            r = call(client, method, path, secret, json=body)
            assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found", (method, path)
    listed = call(client, "GET", "/bookings", a_secret).get_json()["bookings"]
    assert [x["id"] for x in listed] == [str(a_booking)]
    assert call(client, "GET", f"/bookings/{a_booking}", a_secret).get_json()["status"] == "confirmed"


def test_a_key_on_a_booking_site_host_does_nothing(app, two_tenants, client):
    a, b = two_tenants
    _, secret = make_key(app, a)
    for host in (a.host, b.host):
        r = call(client, "GET", "/me", secret, host=host)
        assert r.status_code == 404 and str(a.id) not in r.get_data(as_text=True)
        r = call(client, "POST", "/customers", secret, host=host, json={"name": "X", "phone": "+15125550100"})
        assert r.status_code in (404, 405)
    # Nor does it log anyone into the dashboard on the app host.
    r = client.get("/team", base_url=f"http://{APP}", headers=bearer(secret))
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_technicians_cannot_open_the_key_page(make_tenant, visitor):
    t = make_tenant(techs=1)
    v = visitor(APP)
    v.login(t.people["tech0"].email, PASSWORD)
    assert v.get("/integrations/api-keys").status_code == 403


# --- The hourly allowance, per business ---------------------------------------------------------------


@pytest.fixture
def small_plans(monkeypatch):
    """Plans with tiny allowances so a test reaches them quickly; the limiter switched on whatever an
    earlier test's app did to the shared Limiter object."""
    from app.extensions import limiter
    from tenants import plans

    monkeypatch.setattr(limiter, "enabled", True)
    monkeypatch.setitem(plans.PLANS, "starter", dataclasses.replace(plans.PLANS["starter"], api_requests_per_hour=5))
    monkeypatch.setitem(plans.PLANS, "pro", dataclasses.replace(plans.PLANS["pro"], api_requests_per_hour=8))


def set_plan(app, t, plan: str) -> None:
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        db.session.get(Tenant, t.id).plan = plan
        db.session.commit()


def usage(app, t) -> int:
    from app.apikeys.services import api_requests_this_hour
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        used = api_requests_this_hour(db.session.get(Tenant, t.id))
        db.session.rollback()
        return used


def test_each_business_has_its_plans_hourly_allowance_shared_by_keys_and_sessions(
    app, two_tenants, make_tenant, client, visitor, small_plans
):
    a, b = two_tenants  # both on Starter (5 an hour here)
    c = make_tenant()
    set_plan(app, c, "pro")  # 8 an hour here
    _, a_read = make_key(app, a, scopes="read")
    _, a_write = make_key(app, a, name="Second")
    _, b_key = make_key(app, b)
    _, c_key = make_key(app, c)
    session = owner(visitor, a)
    assert usage(app, a) == 0

    seen = []
    for i in range(5):  # two keys and a session, one allowance
        r = session.get("/api/v1/me") if i == 2 else call(client, "GET", "/me", a_read if i % 2 else a_write)
        assert r.status_code == 200, r.get_data(as_text=True)
        seen.append((r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]))
    assert seen == [("5", "4"), ("5", "3"), ("5", "2"), ("5", "1"), ("5", "0")]
    assert usage(app, a) == 5

    for r in (
        call(client, "GET", "/me", a_read),
        session.get("/api/v1/users"),
        call(client, "POST", "/customers", a_write, json={}),
    ):
        assert r.status_code == 429
        error = r.get_json()["error"]
        assert error["code"] == "rate_limited" and "5 API requests for this hour" in error["message"]
        assert 0 < int(r.headers["Retry-After"]) <= 3600
        assert r.headers["X-RateLimit-Limit"] == "5" and r.headers["X-RateLimit-Remaining"] == "0"
        assert int(r.headers["X-RateLimit-Reset"]) > 0

    # B, on the same plan from the same address, has its own counter: A's hour changes nothing for it.
    r = call(client, "GET", "/me", b_key)
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "5" and r.headers["X-RateLimit-Remaining"] == "4"
    assert usage(app, b) == 1 and usage(app, a) == 5
    # C's allowance comes from its own plan.
    r = call(client, "GET", "/me", c_key)
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "8" and r.headers["X-RateLimit-Remaining"] == "7"
    # Public and unauthenticated requests are not counted against anyone.
    assert client.get("/api/v1/openapi.json", base_url=f"http://{APP}").status_code == 200
    assert call(client, "GET", "/me", "fd_live_abcd1234_" + "C" * 43).status_code == 401


def test_the_usage_counter_reads_zero_for_a_business_that_made_no_calls(app, make_tenant):
    t = make_tenant()
    assert usage(app, t) == 0


def test_with_redis_down_keys_still_work_and_the_allowance_is_counted_per_process(
    outage_app,
    private_redis,
    make_tenant,
    small_plans,
):
    """RATELIMIT_SWALLOW_ERRORS + in-memory fallback (app/config.py): no 500, the same hourly limit,
    counted in this process's memory until Redis answers again (docs/api-and-webhooks.md)."""
    t = make_tenant()
    _, secret = make_key(outage_app, t, scopes="read")
    client = outage_app.test_client()
    private_redis.stop()
    answers = [call(client, "GET", "/me", secret).status_code for _ in range(6)]
    assert answers == [200] * 5 + [429], answers
    _is_401(call(client, "GET", "/me", "fd_live_abcd1234_" + "D" * 43))


# --- The one cross-tenant lookup -------------------------------------------------------------------------


def test_the_key_lookup_answers_only_its_narrow_question(app, two_tenants, app_conn, visitor):
    a, b = two_tenants
    key_id, secret = make_key(app, a)
    app_conn.autocommit = True
    digest = hashlib.sha256(secret.encode()).hexdigest()
    cur = app_conn.execute("SELECT * FROM public.tenant_for_api_key(%s)", (digest,))
    assert [d.name for d in cur.description] == ["tenant_id", "key_id"]
    assert cur.fetchall() == [(a.id, key_id)]
    for probe in ("", "%", secret, digest.upper(), digest[:-1] + "0" if digest[-1] != "0" else digest[:-1] + "1"):
        assert app_conn.execute("SELECT * FROM public.tenant_for_api_key(%s)", (probe,)).fetchall() == []
    # Without a tenant the app role reads no key rows at all; the function gives no table access.
    assert app_conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 0
    owner(visitor, a).post(f"/integrations/api-keys/{key_id}/revoke", token_page="/integrations/api-keys")
    assert app_conn.execute("SELECT * FROM public.tenant_for_api_key(%s)", (digest,)).fetchall() == []


def test_a_dead_session_cookie_does_not_use_up_the_business_allowance(app, make_tenant, client, visitor, small_plans):
    """A cookie still names its business after it stops logging anyone in (here: logged out; likewise a
    removed person's old cookie): its requests get 401 and count against nobody."""
    t = make_tenant()
    _, secret = make_key(app, t, scopes="read")
    v = owner(visitor, t)
    old_cookie = v.client.get_cookie("fd_session", domain=APP).value
    assert v.get("/api/v1/me").status_code == 200  # 1 of 5
    v.post("/logout", token_page="/account")
    stale = app.test_client()
    stale.set_cookie("fd_session", old_cookie, domain=APP)
    for _ in range(6):
        _is_401(stale.get("/api/v1/me", base_url=f"http://{APP}"))
    r = call(client, "GET", "/me", secret)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "3", r.headers
    assert usage(app, t) == 2


def test_session_writes_of_every_kind_need_this_sessions_csrf_token(app, two_tenants, seed_booking, visitor):
    a, b = two_tenants
    f = seed_booking(a)
    booking_id = book(app, a, request(f, tomorrow_at(10)))
    v = owner(visitor, a)
    b_token = owner(visitor, b).dashboard_token()  # a real token, of another session
    writes = [
        ("POST", "/customers", {"name": "Casey", "phone": "+15125550123"}),
        ("PATCH", "/settings", {"tagline": "Forged"}),
        ("POST", f"/bookings/{booking_id}/status", {"status": "canceled"}),
        ("POST", f"/bookings/{booking_id}/move", {"starts_at": tomorrow_at(13).isoformat()}),
    ]
    for headers in ({}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": b_token}):
        for method, path, body in writes:
            r = v.request(method, f"/api/v1{path}", json=body, headers=headers)
            assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed", (method, path, headers)
    # A form post (what a forged cross-site form can send) with the token field left out, too.
    r = v.request("POST", "/api/v1/customers", data={"name": "Casey", "phone": "+15125550123"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed"
    assert v.get(f"/api/v1/bookings/{booking_id}").get_json()["status"] == "confirmed"
    assert all(c["name"] != "Casey" for c in v.get("/api/v1/customers").get_json()["customers"])
