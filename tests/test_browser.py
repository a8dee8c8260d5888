"""The product in a real browser: Debian's Chromium driven by Playwright against the live server.

Seeds through services (``make_tenant``), except for the flow under test; finds elements by
test id through the page objects in tests/pages.py. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.pages import LAPTOP, PHONE, BookingSite, Dashboard, LoginPage, SettingsPage, SignupPage, screenshot

pytestmark = pytest.mark.browser


def fresh_subdomain(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def set_branding(app, tenant, **changes) -> None:
    """Seed a business's settings through the settings service (as its owner)."""
    from app.extensions import db
    from tenants import settings as tenant_settings
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(tenant.id, db.session):
        row = db.session.get(Tenant, tenant.id)
        data = {k: getattr(row, k) or "" for k in tenant_settings.FIELDS} | changes
        tenant_settings.update_settings(row, data, actor_id=tenant.owner.id)
        db.session.commit()


def contrast(a: list[int], b: list[int]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(rgb):
        lin = [(c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def session_cookies(ctx, url: str, name: str) -> list[dict]:
    return [c for c in ctx.cookies(url) if c["name"] == name]


def test_new_business_signs_up_and_brands_its_booking_site(new_context, live_server):
    sub = fresh_subdomain("gleam")
    business = "Gleam & Go Mobile Detailing"
    page = new_context().new_page()
    signup = SignupPage(page, live_server)
    signup.open()
    screenshot(page, "signup-phone", PHONE)
    screenshot(page, "signup-laptop", LAPTOP)

    signup.fill(
        business_name=business,
        subdomain=sub,
        time_zone="America/Chicago",
        name="Dana Rivera",
        email=f"you@{sub}.test",
        password="wax-on-wax-off-42",
    )
    signup.submit()

    dash = Dashboard(page, live_server)
    expect(page).to_have_url(re.compile(r"/\?welcome=1$"))
    expect(dash.tenant_name()).to_have_text(business)
    expect(dash.welcome()).to_be_visible()
    expect(dash.welcome()).to_contain_text(f"{sub}.localhost")
    expect(dash.flash()).to_contain_text("Welcome to Fieldday, Dana")
    expect(page.get_by_text("America/Chicago")).to_be_visible()
    expect(dash.by("checklist-progress")).to_have_text("1 of 4 done")
    screenshot(page, "dashboard-home-phone", PHONE)
    screenshot(page, "dashboard-home-laptop", LAPTOP)

    settings = SettingsPage(page, live_server)
    settings.open()
    settings.set_brand_color("#7c3aed")
    settings.save()
    expect(settings.flash()).to_have_text("Settings saved.")
    expect(settings.by("field-brand_color")).to_have_value("#7c3aed")
    expect(settings.by("brand-preview")).to_be_visible()
    screenshot(page, "settings-laptop", LAPTOP)
    screenshot(page, "settings-phone", PHONE)
    page.set_viewport_size(LAPTOP)

    dash.open("/")
    expect(dash.by("checklist-progress")).to_have_text("2 of 4 done")
    dash.open("/team")
    expect(dash.by("team-list")).to_contain_text("Dana Rivera")
    screenshot(page, "team-laptop", LAPTOP)
    screenshot(page, "team-phone", PHONE)
    page.set_viewport_size(LAPTOP)

    site = BookingSite(page, live_server)
    response = site.open(f"{sub}.localhost")
    assert response.status == 200
    expect(site.name()).to_have_text(business)
    expect(site.by("site-title")).to_have_text(business)
    assert site.hero_background() == "rgb(124, 58, 237)"
    screenshot(page, "site-home-laptop", LAPTOP)
    screenshot(page, "site-home-phone", PHONE)


def test_signup_with_bad_input_explains_each_field_and_creates_nothing(new_context, live_server):
    free = fresh_subdomain("nope")
    email = f"sam@{free}.test"
    page = new_context(viewport=PHONE).new_page()
    signup = SignupPage(page, live_server)
    signup.open()
    signup.fill(
        business_name="Admin Shine",
        subdomain="admin",
        time_zone="America/Denver",
        name="Sam Weak",
        email=email,
        password="short1",
    )
    signup.submit()

    expect(signup.by("form-errors")).to_contain_text("2 highlighted fields")
    expect(signup.field_error("subdomain")).to_contain_text("“admin” is reserved")
    expect(signup.field_error("password")).to_have_text("Use at least 10 characters.")
    expect(signup.by("field-subdomain")).to_have_attribute("aria-invalid", "true")
    expect(signup.by("field-password")).to_have_attribute("aria-describedby", "e-password")
    expect(signup.by("field-business_name")).to_have_value("Admin Shine")
    expect(signup.by("field-time_zone")).to_have_value("America/Denver")
    screenshot(page, "signup-errors-phone")
    screenshot(page, "signup-errors-laptop", LAPTOP)

    # A free address, but a password made of the owner's name: only the password is wrong.
    signup.fill(
        business_name="Admin Shine",
        subdomain=free,
        time_zone="America/Denver",
        name="Sam Weak",
        email=email,
        password="samweak-detailing",
    )
    signup.submit()
    expect(signup.field_error("password")).to_contain_text("Don't use your name or e-mail")
    expect(signup.field_error("subdomain")).to_have_count(0)

    # Nothing was created: neither booking site exists and the login fails.
    site = BookingSite(page, live_server)
    for host in (f"{free}.localhost", "admin.localhost"):
        response = site.open(host)
        assert response.status == 404, host
        expect(site.by("error-page")).to_contain_text("Page not found")
    page.set_viewport_size(PHONE)
    site.open(f"{free}.localhost")
    screenshot(page, "unknown-subdomain-404-phone")
    screenshot(page, "unknown-subdomain-404-laptop", LAPTOP)

    login = LoginPage(page, live_server)
    login.open()
    login.log_in(email, "samweak-detailing")
    expect(login.error()).to_have_text("That e-mail and password don't match an account.")
    expect(login.by("field-email")).to_have_value(email)
    screenshot(page, "login-error-laptop", LAPTOP)
    screenshot(page, "login-error-phone", PHONE)


def test_other_business_owner_cannot_reach_acme_data(new_context, live_server, make_tenant, app):
    acme = make_tenant(name="Acme Auto Spa", techs=1)
    bravo = make_tenant(name="Bravo Mobile Shine")
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    ctx = new_context()
    page = ctx.new_page()

    LoginPage(page, live_server).open()
    LoginPage(page, live_server).log_in(bravo.owner.email, bravo.owner.password)
    dash = Dashboard(page, live_server)
    expect(dash.tenant_name()).to_have_text(bravo.name)

    own = page.goto(live_server.url("app.localhost", f"/api/v1/users/{bravo.owner.id}"))
    assert own.status == 200 and own.json()["email"] == bravo.owner.email
    for person in acme.people.values():
        r = page.goto(live_server.url("app.localhost", f"/api/v1/users/{person.id}"))
        assert r.status == 404
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "not_found"
        assert person.email not in r.text()

    # The dashboard's role change, posted with bravo's CSRF token but acme's technician.
    dash.open("/team")
    assert dash.post_form(f"/team/{acme.people['tech0'].id}/role", {"role": "admin"}) == 404

    site_requests = []
    page.on("request", lambda req: site_requests.append(req) if acme.host in req.url else None)
    site = BookingSite(page, live_server)
    assert site.open(acme.host).status == 200
    expect(site.name()).to_have_text(acme.name)
    html = page.content()
    for private in (bravo.name, bravo.owner.email, bravo.subdomain):
        assert private not in html
    expect(page.get_by_test_id("tenant-name")).to_have_count(0)
    expect(page.get_by_test_id("user-chip")).to_have_count(0)
    expect(page.get_by_test_id("logout")).to_have_count(0)

    # The dashboard session is host-only on app.localhost: the browser never sends it to a booking site.
    app_cookies = session_cookies(ctx, live_server.url("app.localhost"), cookie_name)
    assert len(app_cookies) == 1
    assert app_cookies[0]["domain"] == "app.localhost"  # host-only: no Domain attribute, no leading dot
    assert app_cookies[0]["httpOnly"] is True
    assert session_cookies(ctx, live_server.url(acme.host), cookie_name) == []
    assert site_requests, "no requests to the booking site were seen"
    for req in site_requests:
        assert app_cookies[0]["value"] not in (req.all_headers().get("cookie") or ""), req.url

    # Still bravo's dashboard afterwards.
    dash.open("/")
    expect(dash.tenant_name()).to_have_text(bravo.name)


def test_dashboard_works_on_a_phone(new_context, live_server, make_tenant):
    t = make_tenant(name="Pocket Polish Detailing", techs=1)
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    LoginPage(page, live_server).open()
    LoginPage(page, live_server).log_in(t.owner.email, t.owner.password)

    dash = Dashboard(page, live_server)
    expect(dash.tenant_name()).to_have_text(t.name)
    expect(dash.sidebar()).to_be_hidden()
    expect(dash.menu_link("team")).to_be_hidden()
    summary = dash.menu().locator("summary")
    assert summary.bounding_box()["height"] >= 44 and summary.bounding_box()["width"] >= 44

    dash.open_menu()
    for name in ("home", "calendar", "customers", "team", "settings", "plan-and-usage"):
        link = dash.menu_link(name)
        expect(link).to_be_visible()
        assert link.bounding_box()["height"] >= 44, name
    screenshot(page, "dashboard-menu-open-phone")
    dash.menu_link("team").click()
    expect(page).to_have_url(re.compile(r"/team$"))
    expect(dash.by("team-list")).to_contain_text("Tech 0")

    for path in ("/", "/team", "/settings", "/account", "/activity", "/plan", "/soon/routes"):
        dash.open(path)
        assert dash.scroll_width() <= PHONE["width"], path
        expect(dash.sidebar()).to_be_hidden()


def test_pages_load_nothing_from_outside(new_context, live_server):
    sub = fresh_subdomain("local")
    ctx = new_context()
    urls: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    ctx.on("request", lambda req: urls.append(req.url))
    ctx.on("requestfailed", lambda req: failed.append(req.url))
    page = ctx.new_page()
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    signup = SignupPage(page, live_server)
    signup.open()
    signup.fill(
        business_name="Local Only Detailing",
        subdomain=sub,
        time_zone="Europe/London",
        name="Lee Local",
        email=f"you@{sub}.test",
        password="foam-cannon-sunday",
    )
    signup.submit()
    dash = Dashboard(page, live_server)
    expect(dash.welcome()).to_be_visible()
    for path in ("/settings", "/team", "/plan"):
        dash.open(path)
    BookingSite(page, live_server).open(f"{sub}.localhost")
    expect(BookingSite(page, live_server).name()).to_have_text("Local Only Detailing")

    assert len(urls) > 10
    allowed = {"app.localhost", f"{sub}.localhost"}
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) in {("http", h, live_server.port) for h in allowed}, url
    assert failed == []
    assert console_errors == [], "\n".join(console_errors)  # CSP violations (inline style or script) would show here


@pytest.mark.parametrize(
    "kind",
    [
        "unknown-path-on-app",
        "unknown-path-on-booking-site",
        "unknown-subdomain",
        "reserved-subdomain",
    ],
)
def test_not_found_pages_load_their_stylesheet(new_context, live_server, make_tenant, kind):
    if kind == "unknown-path-on-app":
        url = live_server.url("app.localhost", "/no-such-page")
    elif kind == "unknown-path-on-booking-site":
        url = live_server.url(make_tenant(name="Known Detailing").host, "/no-such-page")
    elif kind == "unknown-subdomain":
        url = live_server.url(f"{fresh_subdomain('gone')}.localhost")
    else:
        url = live_server.url("admin.localhost")
    page = new_context(viewport=PHONE).new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda req: failed.append(f"{req.url} {req.failure}"))

    assert page.goto(url).status == 404
    expect(page.get_by_test_id("error-page")).to_contain_text("Page not found")
    screenshot(page, f"not-found-{kind}-phone")
    assert failed == []
    assert page.get_by_test_id("error-page").evaluate("el => getComputedStyle(el).borderRadius") != "0px"


@pytest.mark.parametrize("brand", ["#0f766e", "#1e3a8a", "#f97316", "#facc15", "#e0f2fe"])
def test_booking_site_text_stays_readable_on_any_brand_colour(new_context, live_server, make_tenant, app, brand):
    t = make_tenant(name="Contrast Car Care")
    set_branding(app, t, brand_color=brand, contact_phone="+1 512 555 0100")
    page = new_context(viewport=PHONE).new_page()
    site = BookingSite(page, live_server)
    site.open(t.host)
    text, background = site.hero_colours()
    assert background == [int(brand[i : i + 2], 16) for i in (1, 3, 5)]
    assert contrast(text, background) >= 4.5, (brand, text)
    if brand == "#facc15":
        screenshot(page, "site-home-light-brand-phone")
        screenshot(page, "site-home-light-brand-laptop", LAPTOP)
