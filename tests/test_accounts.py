"""Sign-up, log-in, password reset and invitations, through HTTP as a user would."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from tests.conftest import PASSWORD, unique

SIGNUP = {
    "business_name": "Gleam Team Detailing",
    "time_zone": "America/Denver",
    "currency": "USD",
    "name": "Gina Gleam",
    "password": "polish-and-wax-2026",
}


def tenant_exists(app, subdomain: str) -> bool:
    from app.extensions import db

    with app.app_context():
        found = db.session.execute(text("SELECT public.tenant_id_for_subdomain(:s)"), {"s": subdomain}).scalar()
        db.session.rollback()
        return found is not None


def test_signup_provisions_tenant_owner_and_logs_in(app, visitor):
    sub = unique("gleam")
    v = visitor()
    r = v.post("/signup", {**SIGNUP, "subdomain": sub, "email": f"gina@{sub}.test"}, token_page="/signup")
    assert r.status_code == 302 and "welcome=1" in r.headers["Location"]
    home = v.get("/?welcome=1").get_data(as_text=True)
    assert "Gleam Team Detailing" in home and f"{sub}.localhost" in home
    site = visitor(f"{sub}.localhost").get("/")
    assert site.status_code == 200 and "Gleam Team Detailing" in site.get_data(as_text=True)
    me = v.get("/api/v1/me").get_json()
    assert me["user"]["role"] == "owner" and me["tenant"]["time_zone"] == "America/Denver"
    assert me["tenant"]["plan"] == "starter"


@pytest.mark.parametrize(
    "change,field,message",
    [
        ({"subdomain": "admin"}, "subdomain", "reserved"),
        ({"subdomain": "www"}, "subdomain", "reserved"),
        ({"subdomain": "Bad_Name!"}, "subdomain", "lower-case letters"),
        ({"subdomain": "ab"}, "subdomain", "at least 3"),
        ({"subdomain": "-acme"}, "subdomain", "lower-case letters"),
        ({"password": "short"}, "password", "at least 10"),
        ({"password": "password123"}, "password", "too easy"),
        ({"email": "not-an-email"}, "email", "valid e-mail"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone", "time zone"),
        ({"currency": "XXX"}, "currency", "currency"),
        ({"business_name": "   "}, "business_name", "business name"),
    ],
)
def test_signup_bad_input_is_explained_and_writes_nothing(app, visitor, change, field, message):
    sub = unique("bad")
    v = visitor()
    data = {**SIGNUP, "subdomain": sub, "email": f"x@{sub}.test", **change}
    r = v.post("/signup", data, token_page="/signup")
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    error = re.search(rf'data-testid="error-{field}">([^<]+)<', html)
    assert error and message.lower() in error.group(1).lower()
    assert tenant_exists(app, change.get("subdomain", sub).lower()) is False or change.get("subdomain") in (
        "admin",
        "www",
    )
    assert not tenant_exists(app, sub)
    # The form keeps what was typed (except the password).
    assert SIGNUP["name"] in html and 'value="polish-and-wax-2026"' not in html


def test_signup_with_taken_subdomain(app, make_tenant, visitor):
    t = make_tenant()
    r = visitor().post("/signup", {**SIGNUP, "subdomain": t.subdomain, "email": "new@else.test"}, token_page="/signup")
    assert r.status_code == 422 and "already taken" in r.get_data(as_text=True)
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        count = db.session.execute(text("SELECT count(*) FROM users WHERE email = 'new@else.test'")).scalar()
        assert count == 0


def test_login_logout_and_wrong_password(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    bad = v.post("/login", {"email": t.owner.email, "password": "wrong-password-1"}, token_page="/login")
    assert bad.status_code == 401 and "don&#39;t match" in bad.get_data(as_text=True)
    unknown = v.post("/login", {"email": "nobody@nowhere.test", "password": "wrong-password-1"}, token_page="/login")
    assert unknown.status_code == 401
    assert bad.get_data(as_text=True).count("match an account") == unknown.get_data(as_text=True).count(
        "match an account"
    )
    v.login(t.owner.email, t.owner.password)
    assert v.get("/").status_code == 200
    r = v.post("/logout", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302
    assert v.get("/").status_code == 302


def test_same_email_in_two_businesses_chooses_at_login(app, make_tenant, visitor):
    from app.accounts import services as accounts
    from app.extensions import db
    from tenants.context import tenant_context

    a, b = make_tenant(name="Alpha Shine"), make_tenant(name="Beta Gloss")
    with app.app_context(), tenant_context(b.id, db.session):
        accounts.create_user(b.id, email=a.owner.email, name="Olive Owner", role="admin", password=PASSWORD)
        db.session.commit()
    v = visitor()
    r = v.post("/login", {"email": a.owner.email, "password": PASSWORD}, token_page="/login")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Alpha Shine" in html and "Beta Gloss" in html
    r = v.post("/login", {"email": a.owner.email, "password": PASSWORD, "business": b.subdomain}, token_page="/login")
    assert r.status_code == 302
    assert v.get("/api/v1/me").get_json()["tenant"]["id"] == str(b.id)


def test_password_reset_by_emailed_link(app, make_tenant, visitor, smtp_server, run_jobs):
    t = make_tenant()
    before = len(smtp_server.messages)
    v = visitor()
    r = v.post("/password/forgot", {"email": t.owner.email}, token_page="/password/forgot")
    assert r.status_code == 200 and 'data-testid="reset-sent"' in r.get_data(as_text=True)
    assert run_jobs() >= 1
    mails = [m for m in smtp_server.messages[before:] if m["To"] == t.owner.email]
    assert len(mails) == 1
    body = mails[0].get_payload(decode=True).decode()
    link = re.search(r"http://app\.localhost:\d+(/password/reset/\S+)", body).group(1)
    page = v.get(link)
    assert page.status_code == 200
    r = v.post(link, {"password": "brand-new-secret-9", "confirm": "brand-new-secret-9"}, token_page=link)
    assert r.status_code == 302
    assert v.get(link).status_code == 404  # one use only
    fresh = visitor()
    assert fresh.post("/login", {"email": t.owner.email, "password": PASSWORD}, token_page="/login").status_code == 401
    fresh.login(t.owner.email, "brand-new-secret-9")


def test_password_reset_for_unknown_email_looks_the_same(visitor, smtp_server, run_jobs):
    before = len(smtp_server.messages)
    r = visitor().post("/password/forgot", {"email": "nobody@nowhere.test"}, token_page="/password/forgot")
    assert r.status_code == 200 and 'data-testid="reset-sent"' in r.get_data(as_text=True)
    run_jobs()
    assert len(smtp_server.messages) == before


def test_invite_a_technician_who_joins_by_link(app, make_tenant, visitor, smtp_server, run_jobs):
    t = make_tenant()
    owner = visitor()
    owner.login(t.owner.email, t.owner.password)
    email = f"newtech@{t.subdomain}.test"
    r = owner.post(
        "/team/invite", {"email": email, "name": "Nico Tech", "role": "tech", "csrf_token": owner.dashboard_token()}
    )
    assert r.status_code == 302
    assert email in owner.get("/team").get_data(as_text=True)
    before = len(smtp_server.messages)
    run_jobs()
    mail = [m for m in smtp_server.messages[before:] if m["To"] == email][0]
    assert t.name in mail["Subject"]
    link = re.search(r"http://app\.localhost:\d+(/invite/\S+)", mail.get_payload(decode=True).decode()).group(1)
    tech = visitor()
    r = tech.post(
        link, {"name": "Nico Tech", "password": "nico-detail-2026", "confirm": "nico-detail-2026"}, token_page=link
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/my-day")
    assert tech.get("/my-day").status_code == 200
    # Technicians can't open the owner's pages.
    for path in ("/", "/settings", "/team", "/activity", "/api/v1/users"):
        assert tech.get(path).status_code == 403, path
    assert (
        tech.post(
            "/team/invite", {"email": "x@y.test", "role": "tech", "csrf_token": tech.dashboard_token()}
        ).status_code
        == 403
    )
    # The link is spent.
    assert visitor().get(link).status_code == 404


def test_admin_cannot_invite_admins_or_remove_the_owner(make_tenant, visitor):
    t = make_tenant(admins=1)
    admin = visitor()
    admin.login(t.people["admin0"].email, t.people["admin0"].password)
    r = admin.post("/team/invite", {"email": "boss@x.test", "role": "admin", "csrf_token": admin.dashboard_token()})
    assert r.status_code == 422 and "Only the owner" in r.get_data(as_text=True)
    r = admin.post(f"/team/{t.owner.id}/deactivate", {"csrf_token": admin.dashboard_token()})
    assert r.status_code == 302
    owner = visitor()
    owner.login(t.owner.email, t.owner.password)  # still works


def test_removed_team_member_is_logged_out(make_tenant, visitor):
    t = make_tenant(techs=1)
    tech = visitor()
    tech.login(t.people["tech0"].email, t.people["tech0"].password)
    owner = visitor()
    owner.login(t.owner.email, t.owner.password)
    owner.post(f"/team/{t.people['tech0'].id}/deactivate", {"csrf_token": owner.dashboard_token()})
    assert tech.get("/my-day").status_code == 302
    assert (
        tech.post("/login", {"email": t.people["tech0"].email, "password": PASSWORD}, token_page="/login").status_code
        == 401
    )


def test_settings_update_and_bad_input(make_tenant, visitor):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    good = {
        "name": "Renamed Rides",
        "tagline": "We come to you",
        "contact_phone": "+1 512 555 0199",
        "contact_email": "hi@renamed.test",
        "time_zone": "America/Chicago",
        "currency": "USD",
        "brand_color": "#aa3300",
    }
    assert v.post("/settings", {**good, "csrf_token": v.dashboard_token()}).status_code == 302
    site = visitor(t.host)
    assert "Renamed Rides" in site.get("/").get_data(as_text=True)
    assert "--brand: #aa3300" in site.get("/brand.css").get_data(as_text=True)
    bad = v.post(
        "/settings",
        {**good, "name": "Other", "brand_color": "red", "time_zone": "Nowhere/Land", "csrf_token": v.dashboard_token()},
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'data-testid="form-errors"' in html and "time zone" in html
    # All or nothing: the valid name change was not saved either.
    assert "Renamed Rides" in site.get("/").get_data(as_text=True)


def test_logo_upload_goes_to_object_storage_and_shows_on_site(app, make_tenant, visitor):
    import io

    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
        b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    r = v.client.post(
        "/settings/logo",
        base_url=v.base,
        data={"csrf_token": v.dashboard_token(), "logo": (io.BytesIO(png), "logo.png")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    site = visitor(t.host)
    assert 'data-testid="site-logo"' in site.get("/").get_data(as_text=True)
    logo = site.get("/logo")
    assert logo.status_code == 200 and logo.data == png and logo.mimetype == "image/png"
    with app.app_context():
        from app.media import storage

        keys = [
            o["Key"]
            for o in storage.client()
            .list_objects_v2(Bucket=storage.bucket(), Prefix=f"tenants/{t.id}/")
            .get("Contents", [])
        ]
        assert len(keys) == 1 and keys[0].startswith(f"tenants/{t.id}/branding/")
    html_as_image = v.client.post(
        "/settings/logo",
        base_url=v.base,
        data={"csrf_token": v.dashboard_token(), "logo": (io.BytesIO(b"<html><script>x</script>"), "logo.png")},
        content_type="multipart/form-data",
    )
    assert html_as_image.status_code == 302
    assert "PNG, JPEG or WebP" in v.get("/settings").get_data(as_text=True)
