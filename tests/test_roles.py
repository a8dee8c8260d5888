"""Roles are enforced on every dashboard and API route (swept from the URL map, so a new
route without a login or role check fails here)."""

from __future__ import annotations

import uuid

import pytest

TECH_ALLOWED = {
    "dashboard.my_day",
    "dashboard.account",
    "dashboard.logout_everywhere",
    "dashboard.logo",
    # The technician's day: their own stops only (another technician's stop answers 404).
    "dashboard.my_day_on_my_way",
    "dashboard.my_day_start",
    "dashboard.my_day_complete",
    "dashboard.my_day_photo_new",
    "dashboard.my_day_photo_done",
    "dashboard.photo",
    # Their own Google Calendar (tests/test_google_tech.py: anyone else's connection answers 404).
    "dashboard.my_calendar",
    "dashboard.my_calendar_connect",
    "dashboard.my_calendar_sync",
    "dashboard.my_calendar_disconnect",
    "dashboard.google_callback",  # the one redirect URI; a technician may finish only their own sign-in
}


def _app_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.subdomain != "app" or not rule.endpoint.startswith(("dashboard.", "api.")):
            continue
        if rule.endpoint == "api.openapi":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", str(uuid.uuid4()))
        path = path.replace(
            "<any(calendar, routes, customers, quotes, payments, messages, services, integrations):page>", "calendar"
        )
        assert "<" not in path, f"teach this test to fill {rule.rule}"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def test_every_dashboard_and_api_route_needs_a_login(app, visitor):
    v = visitor()
    token = v.token("/login")
    for endpoint, method, path in _app_routes(app):
        r = v.request(method, path, data={"csrf_token": token}, headers={"X-CSRFToken": token})
        if endpoint.startswith("api."):
            assert r.status_code == 401, (endpoint, method, r.status_code)
        else:
            assert r.status_code == 302 and "/login" in r.headers["Location"], (endpoint, method, r.status_code)


@pytest.mark.parametrize("role", ["tech0"])
def test_technicians_reach_only_their_pages(app, make_tenant, visitor, role):
    t = make_tenant(techs=1)
    v = visitor()
    v.login(t.people[role].email, t.people[role].password)
    token = v.dashboard_token()
    for endpoint, method, path in _app_routes(app):
        if endpoint == "dashboard.logout_everywhere":
            continue  # allowed, and would end this test's session
        r = v.request(method, path, data={"csrf_token": token}, headers={"X-CSRFToken": token})
        if endpoint in TECH_ALLOWED:
            assert r.status_code not in (401, 403), (endpoint, method, r.status_code)
        else:
            assert r.status_code == 403, (endpoint, method, r.status_code)
