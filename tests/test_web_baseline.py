"""The web baseline: CSRF, safe redirects, rate limits, session revocation, headers,
body limits and error formats (RELIABILITY §9, H6–H11), and /healthz."""

from __future__ import annotations

import json

import pytest

from app.web.auth import safe_next


def test_h6_forms_without_csrf_token_are_refused_and_write_nothing(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    r = v.post("/login", {"email": t.owner.email, "password": t.owner.password})
    assert r.status_code == 400 and "form expired" in r.get_data(as_text=True)
    r = v.post(
        "/signup",
        {
            "business_name": "X",
            "subdomain": "csrfless",
            "time_zone": "America/New_York",
            "currency": "USD",
            "name": "X Y",
            "email": "x@csrfless.test",
            "password": "long-enough-pw-1",
        },
    )
    assert r.status_code == 400
    assert visitor("csrfless.localhost").get("/").status_code == 404
    # JSON requests get a JSON answer.
    r = v.client.post("/login", base_url=v.base, json={"email": "a@b.test"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed"


def test_h6_token_from_another_session_is_refused(make_tenant, visitor):
    t = make_tenant()
    attacker = visitor()
    stolen = attacker.token("/login")
    victim = visitor()
    victim.get("/login")
    r = victim.post("/login", {"email": t.owner.email, "password": t.owner.password, "csrf_token": stolen})
    assert r.status_code == 400


def test_h6_dashboard_posts_need_the_token(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    r = v.post("/team/invite", {"email": "n@x.test", "role": "tech"})
    assert r.status_code == 400
    assert "n@x.test" not in v.get("/team").get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.com",
        "//evil.com",
        "/\\evil.com",
        "javascript:alert(1)",
        "\\\\evil.com",
        "http:/evil.com",
        " //evil.com",
        "/%0d%0aSet-Cookie:x",
        "",
    ],
)
def test_h7_unsafe_next_goes_to_dashboard(app, target):
    with app.test_request_context("/", base_url="http://app.localhost"):
        from flask import request

        request.environ["fieldday.host"] = None
        assert safe_next(target) in ("/", "/%0d%0aSet-Cookie:x")


def test_h7_login_redirect_ignores_evil_next(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    token = v.token("/login")
    r = v.client.post(
        "/login?next=//evil.com",
        base_url=v.base,
        data={"email": t.owner.email, "password": t.owner.password, "csrf_token": token},
    )
    assert r.status_code == 302 and r.headers["Location"] == "/"
    v2 = visitor()
    token = v2.token("/login")
    r = v2.client.post(
        "/login?next=/settings",
        base_url=v2.base,
        data={"email": t.owner.email, "password": t.owner.password, "csrf_token": token},
    )
    assert r.headers["Location"] == "/settings"


def test_h8_login_limit_per_email_holds_across_processes(services, make_tenant):
    """Two app instances (separate limiter storages, as two processes would have) share Redis."""
    from app import create_app
    from app.config import TestConfig

    t = make_tenant()
    other = make_tenant()
    overrides = {
        "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": services.redis.url,
        "RATELIMIT_STORAGE_URI": services.redis.url,
        "LOGIN_LIMIT_PER_IP": "30 per minute",
    }
    apps = [create_app(TestConfig, overrides), create_app(TestConfig, overrides)]
    clients = [a.test_client() for a in apps]
    env = {"REMOTE_ADDR": "10.20.30.40"}

    def attempt(i, email, password="wrong-password-x"):
        c = clients[i % 2]
        page = c.get("/login", base_url="http://app.localhost", environ_base=env).get_data(as_text=True)
        from tests.helpers import csrf_from

        return c.post(
            "/login",
            base_url="http://app.localhost",
            environ_base=env,
            data={"email": email, "password": password, "csrf_token": csrf_from(page)},
        )

    codes = [attempt(i, t.owner.email).status_code for i in range(10)]
    assert codes == [401] * 10
    eleventh = attempt(10, t.owner.email)
    assert eleventh.status_code == 429
    assert int(eleventh.headers["Retry-After"]) > 0
    assert "too many" in eleventh.get_data(as_text=True).lower()
    # Even the right password is refused while the e-mail is locked...
    assert attempt(11, t.owner.email, t.owner.password).status_code == 429
    # ...but another e-mail from the same address is unaffected.
    assert attempt(12, other.owner.email, other.owner.password).status_code == 302
    for a in apps:
        with a.app_context():
            from app.extensions import db

            db.engine.dispose()


def test_h8_login_limit_per_ip(services, make_tenant):
    from app import create_app
    from app.config import TestConfig
    from tests.helpers import csrf_from

    overrides = {
        "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": services.pg.url("fieldday_owner"),
        "REDIS_URL": services.redis.url,
        "RATELIMIT_STORAGE_URI": services.redis.url,
        "LOGIN_LIMIT_PER_IP": "5 per minute",
    }
    a = create_app(TestConfig, overrides)
    c = a.test_client()
    env = {"REMOTE_ADDR": "10.99.0.7"}
    codes = []
    for i in range(7):
        page = c.get("/login", base_url="http://app.localhost", environ_base=env).get_data(as_text=True)
        codes.append(
            c.post(
                "/login",
                base_url="http://app.localhost",
                environ_base=env,
                data={"email": f"spray{i}@x.test", "password": "wrong-password-x", "csrf_token": csrf_from(page)},
            ).status_code
        )
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]


def test_h9_logout_kills_the_cookie_even_if_replayed(make_tenant, visitor, app):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    old = v.client.get_cookie("fd_session", domain="app.localhost").value
    v.post("/logout", {"csrf_token": v.dashboard_token()})
    replay = app.test_client()
    replay.set_cookie("fd_session", old, domain="app.localhost")
    r = replay.get("/", base_url="http://app.localhost")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert replay.get("/api/v1/me", base_url="http://app.localhost").status_code == 401


def test_h9_password_change_logs_out_other_devices(make_tenant, visitor):
    t = make_tenant()
    phone, laptop = visitor(), visitor()
    phone.login(t.owner.email, t.owner.password)
    laptop.login(t.owner.email, t.owner.password)
    r = laptop.post(
        "/account",
        {
            "current_password": t.owner.password,
            "password": "a-new-long-secret",
            "confirm": "a-new-long-secret",
            "csrf_token": laptop.dashboard_token(),
        },
    )
    assert r.status_code == 302
    assert laptop.get("/").status_code == 200  # this device stays logged in
    r = phone.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_h9_logout_everywhere(make_tenant, visitor):
    t = make_tenant()
    phone, laptop = visitor(), visitor()
    phone.login(t.owner.email, t.owner.password)
    laptop.login(t.owner.email, t.owner.password)
    laptop.post("/account/logout-everywhere", {"csrf_token": laptop.dashboard_token()})
    assert phone.get("/").status_code == 302
    assert laptop.get("/").status_code == 302


def _assert_security_headers(r, hsts: bool):
    csp = r.headers.get("Content-Security-Policy", "")
    for part in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "default-src 'self'"):
        assert part in csp, (r.request.path, csp)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"]
    if hsts:
        assert "max-age=31536000" in r.headers["Strict-Transport-Security"]


def test_h10_security_headers_on_every_kind_of_response(services, make_tenant):
    from app import create_app
    from app.config import TestConfig

    t = make_tenant()
    prod_like = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
            "REDIS_URL": services.redis.url,
            "HSTS": True,
            "PROPAGATE_EXCEPTIONS": False,
            "TESTING": False,
        },
    )

    def boom():
        raise RuntimeError("kaboom: secret stack detail")

    prod_like.add_url_rule("/boom", "boom", boom, subdomain="app")
    c = prod_like.test_client()
    responses = {
        "html": c.get("/login", base_url="http://app.localhost"),
        "json": c.get("/api/v1/openapi.json", base_url="http://app.localhost"),
        "404": c.get("/nope", base_url="http://app.localhost"),
        "site": c.get("/", base_url=f"http://{t.host}"),
        "site404": c.get("/nope", base_url=f"http://{t.host}"),
        "500": c.get("/boom", base_url="http://app.localhost"),
        "400": c.get("/", base_url="http://evil.com"),
        "health": c.get("/healthz", base_url="http://app.localhost"),
    }
    with prod_like.test_request_context(base_url="http://app.localhost"):
        from flask import g

        g.audience = "app"
        from app.web.assets import asset_url

        css = asset_url("app.css")
    responses["static"] = c.get(css, base_url="http://app.localhost")
    assert responses["static"].status_code == 200
    assert responses["500"].status_code == 500
    body = responses["500"].get_data(as_text=True)
    assert "kaboom" not in body and "Traceback" not in body and "Something went wrong" in body
    for _name, r in responses.items():
        _assert_security_headers(r, hsts=True)
    assert "max-age=31536000" in responses["static"].headers["Cache-Control"]


def test_h11_oversized_body_is_413(make_tenant, visitor, app):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    r = v.client.patch(
        "/api/v1/settings",
        base_url=v.base,
        data=big,
        content_type="application/json",
        headers={"X-CSRFToken": v.dashboard_token()},
    )
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "too_large"
    r = v.client.post("/login", base_url=v.base, data=big, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 413


def test_h11_malformed_json_and_unknown_fields(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    headers = {"X-CSRFToken": v.dashboard_token()}
    r = v.client.patch(
        "/api/v1/settings", base_url=v.base, data="{not json", content_type="application/json", headers=headers
    )
    assert r.status_code == 400
    err = r.get_json()["error"]
    assert err["fields"] == {"body": err["message"]} and "JSON" in err["message"]
    r = v.client.patch("/api/v1/settings", base_url=v.base, json={"name": "Ok Name", "plan": "teams"}, headers=headers)
    assert r.status_code == 422
    assert r.get_json()["error"]["fields"] == {"plan": "Unknown field."}
    r = v.client.patch("/api/v1/settings", base_url=v.base, json={"brand_color": 42}, headers=headers)
    assert r.status_code == 422 and "brand_color" in r.get_json()["error"]["fields"]
    r = v.client.patch("/api/v1/settings", base_url=v.base, json={"brand_color": "#123abc"}, headers=headers)
    assert r.status_code == 200 and r.get_json()["brand_color"] == "#123abc"
    me = v.get("/api/v1/me").get_json()
    assert me["tenant"]["plan"] == "starter"


def test_api_without_login_is_401_json(client):
    r = client.get("/api/v1/me", base_url="http://app.localhost")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"


def test_healthz_reports_each_dependency(services):
    from app import create_app
    from app.config import TestConfig
    from scripts.lib.services import free_port

    dead = free_port()
    good = {"SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"), "REDIS_URL": services.redis.url}
    cases = [
        (good, 200, {"postgres": "ok", "redis": "ok"}),
        ({**good, "REDIS_URL": f"redis://127.0.0.1:{dead}/0"}, 503, {"postgres": "ok"}),
        (
            {**good, "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://fieldday_app:x@127.0.0.1:{dead}/fieldday"},
            503,
            {"redis": "ok"},
        ),
    ]
    for overrides, status, subset in cases:
        a = create_app(TestConfig, overrides)
        r = a.test_client().get("/healthz", base_url="http://203.0.113.9")  # any host, e.g. a probe by IP
        assert r.status_code == status, r.get_json()
        assert subset.items() <= r.get_json()["checks"].items()
        with a.app_context():
            from app.extensions import db

            db.engine.dispose()


def test_bare_domain_redirects_to_app(client):
    r = client.get("/", base_url="http://localhost")
    assert r.status_code == 302 and "app.localhost" in r.headers["Location"]


def test_openapi_spec_is_served(client):
    spec = client.get("/api/v1/openapi.json", base_url="http://app.localhost").get_json()
    assert spec["openapi"].startswith("3.") and "/users/{user_id}" in spec["paths"]
    json.dumps(spec)


def test_map_tiles_origin_is_the_only_addition_to_the_csp(services):
    from app import create_app
    from app.config import TestConfig

    a = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
            "REDIS_URL": services.redis.url,
            "MAP_TILE_URL": "https://tile.example.org/{z}/{x}/{y}.png",
        },
    )
    csp = a.test_client().get("/login", base_url="http://app.localhost").headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: https://tile.example.org;" in csp
    assert "script-src 'self';" in csp
