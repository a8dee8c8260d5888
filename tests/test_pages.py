"""Every page renders for the people who may see it."""

import pytest


@pytest.mark.parametrize(
    "path",
    ["/", "/my-day", "/settings", "/team", "/account", "/activity", "/plan", "/soon/calendar", "/soon/customers"],
)
def test_owner_pages_render(visitor, make_tenant, path):
    t = make_tenant()
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    r = v.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:2000]
    assert t.name in r.get_data(as_text=True)


def test_booking_site_home_shows_business(visitor, make_tenant):
    t = make_tenant(name="Shiny Rides Detailing")
    r = visitor(t.host).get("/")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "Shiny Rides Detailing" in html
    css = visitor(t.host).get("/brand.css")
    assert css.status_code == 200 and "--brand: #0f766e" in css.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/login", "/signup", "/password/forgot"])
def test_public_app_pages_render(visitor, path):
    r = visitor().get(path)
    assert r.status_code == 200
