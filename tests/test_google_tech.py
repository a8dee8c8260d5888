"""A technician connects their own Google Calendar from their phone login (docs/google-calendar.md):
the same OAuth flow as Integrations, against the Google stand-in, bound to this session, business,
user and technician; status, "Sync now" and disconnect on their own page; anyone else's connection
answers 404, and the owner still sees every connection on Integrations."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from playwright.sync_api import expect

from tests.fixtures_google import GOOGLE_USER
from tests.test_google_calendar import blocks, calendars, finish, in_tenant
from tests.test_tech_day import link

OTHER_USER = "tech1-personal@example.com"
BUSINESS_USER = "shop@example.com"


# Helpers -----------------------------------------------------------------------------------------------


@pytest.fixture
def crew(app, make_tenant, seed_booking):
    """Two technicians who log in (tech0 → techs[0], tech1 → techs[1]) and a login (tech2) linked to no
    technician."""
    t = make_tenant(techs=3)
    f = seed_booking(t, techs=2, buffer_min=0)
    link(app, t, f.techs[0], t.people["tech0"].id)
    link(app, t, f.techs[1], t.people["tech1"].id)
    return t, f


def login(visitor, person):
    v = visitor("app.localhost")
    v.login(person.email, person.password)
    return v


def start(v, data=None, path="/my-day/calendar/connect"):
    r = v.post(path, {"csrf_token": v.dashboard_token(), **(data or {})})
    assert r.status_code == 303, (r.status_code, r.get_data(as_text=True)[:300])
    return r.headers["Location"]


def connections(app, t) -> dict:
    """technician_id (None for the business) → connection."""
    from app.calendar.services import list_connections

    return in_tenant(app, t, lambda: {c.technician_id: c for c in list_connections()})


def flashes(html: str) -> list[str]:
    return [unescape(m.strip()) for m in re.findall(r'data-testid="flash">([^<]*)<', html)]


def page(v, path="/my-day/calendar") -> str:
    r = v.get(path)
    assert r.status_code == 200, r.status_code
    return r.get_data(as_text=True)


def owner_connects(app, t, visitor, google_fake, tech_id, user):
    from tests.test_google_calendar import start_connect

    owner = login(visitor, t.owner)
    r = finish(owner, google_fake.authorize(start_connect(owner, tech_id), user=user))
    assert r.status_code == 302 and r.headers["Location"].endswith("/integrations#google")
    return owner


@pytest.fixture
def audit_rows(app):
    def read(t):
        from app.audit.models import AuditEntry
        from app.extensions import db

        return in_tenant(
            app,
            t,
            lambda: [{"action": e.action, "detail": e.detail} for e in db.session.scalars(db.select(AuditEntry))],
        )

    return read


# The whole flow -----------------------------------------------------------------------------------------


def test_a_technician_connects_syncs_and_disconnects_their_own_calendar(
    app, crew, visitor, google_fake, run_jobs, audit_rows
):
    from app.booking.errors import SlotTaken
    from tests.test_booking import book, request, tomorrow_at

    t, f = crew
    v = login(visitor, t.people["tech0"])
    assert 'data-testid="my-calendar-link"' in page(v, "/my-day")  # reachable from their day
    html = page(v)
    assert 'data-testid="my-calendar-status">Not connected' in html and 'data-testid="my-calendar-connect"' in html

    auth_url = start(v)
    assert auth_url.startswith(google_fake.url + "/o/oauth2/auth?") and "code_challenge=" in auth_url
    r = finish(v, google_fake.authorize(auth_url))
    # Back on their own page, not the owner's Integrations.
    assert r.status_code == 302 and r.headers["Location"].endswith("/my-day/calendar"), r.headers.get("Location")
    conn = connections(app, t)[f.techs[0]]
    assert conn.status == "connected" and conn.account_email == GOOGLE_USER
    assert conn.connected_by == t.people["tech0"].id
    # What the owner's flow does for a technician's connection: the main calendar blocks their time and
    # gets their bookings.
    [cal] = calendars(app, t)
    assert cal.is_primary and cal.blocks_time and cal.receives_bookings and cal.technician_id == f.techs[0]
    html = page(v)
    assert any("Google Calendar connected (detailer@example.com)" in m for m in flashes(html))
    assert 'data-testid="my-calendar-syncing"' in html and 'data-refresh-after="2"' in html
    run_jobs()
    html = page(v)
    assert 'data-testid="my-calendar-status">Connected' in html and GOOGLE_USER in html
    assert "Synced " in html and "Blocks your time · Gets your jobs" in html
    assert 'data-testid="my-calendar-syncing"' not in html
    [audit] = [r for r in audit_rows(t) if r["action"].startswith("google.")]
    assert audit == {"action": "google.connected", "detail": {"account": GOOGLE_USER, "by": "technician"}}

    # Their dentist appointment, typed into Google, blocks them after "Sync now".
    ten = tomorrow_at(10)
    google_fake.add_event(GOOGLE_USER, ten, ten + timedelta(hours=1), summary="Dentist")
    r = v.post(f"/my-day/calendar/{conn.id}/sync", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302 and r.headers["Location"].endswith("/my-day/calendar")
    assert "Syncing with Google Calendar…" in flashes(page(v))
    run_jobs()
    assert [b[1] for b in blocks(app, t)] == [ten]
    assert "Dentist" not in page(v)  # titles are never stored or shown
    with pytest.raises(SlotTaken):
        book(app, t, request(f, ten, tech=f.techs[0]))
    book(app, t, request(f, ten, tech=f.techs[1]))  # the other technician is still free then

    # The owner sees the technician's connection on Integrations.
    owner = login(visitor, t.owner)
    integrations = page(owner, "/integrations")
    assert 'data-testid="google-connection"' in integrations and "Tech 0" in integrations
    assert GOOGLE_USER in integrations

    # Disconnect: the grant is revoked at Google and the busy time stops blocking.
    r = v.post(f"/my-day/calendar/{conn.id}/disconnect", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302 and r.headers["Location"].endswith("/my-day/calendar")
    html = page(v)
    assert any(m.startswith("Google Calendar disconnected.") for m in flashes(html))
    assert 'data-testid="my-calendar-status">Not connected' in html
    assert connections(app, t) == {} and calendars(app, t) == [] and blocks(app, t) == []
    assert all(rt["revoked"] for rt in google_fake.refresh_tokens(GOOGLE_USER))
    assert google_fake.active_channels() == []
    book(app, t, request(f, ten, tech=f.techs[0], phone="+15125550143"))
    assert "google.disconnected" in [r["action"] for r in audit_rows(t)]


def test_a_dead_grant_shows_on_the_technicians_page_and_connect_again_lands_back_there(
    app, crew, visitor, google_fake, run_jobs
):
    t, f = crew
    v = login(visitor, t.people["tech0"])
    finish(v, google_fake.authorize(start(v)))
    run_jobs()
    google_fake.revoke_user_tokens(GOOGLE_USER)
    conn = connections(app, t)[f.techs[0]]
    v.post(f"/my-day/calendar/{conn.id}/sync", {"csrf_token": v.dashboard_token()})
    run_jobs()
    html = page(v)
    assert 'data-testid="my-calendar-status">Disconnected' in html and 'data-testid="my-calendar-problem"' in html
    assert 'data-testid="my-calendar-sync-now"' not in html
    r = v.post(f"/my-day/calendar/{conn.id}/sync", {"csrf_token": v.dashboard_token()})  # a stale page's button
    assert r.status_code == 302 and "disconnected" in " ".join(flashes(page(v)))
    r = finish(v, google_fake.authorize(start(v)))
    assert r.headers["Location"].endswith("/my-day/calendar")
    again = connections(app, t)[f.techs[0]]
    assert again.id == conn.id and again.status == "connected"


def test_cancelling_on_googles_page_brings_the_technician_back_with_nothing_stored(app, crew, visitor, google_fake):
    t, _ = crew
    v = login(visitor, t.people["tech0"])
    r = finish(v, google_fake.authorize(start(v), approve=False))
    assert r.status_code == 302 and r.headers["Location"].endswith("/my-day/calendar")
    assert any("cancelled" in m for m in flashes(page(v)))
    assert connections(app, t) == {} and google_fake.refresh_tokens() == []


# Only their own ---------------------------------------------------------------------------------------------


def test_a_technician_cant_see_connect_or_disconnect_anyone_elses_calendar(app, crew, visitor, google_fake):
    t, f = crew
    owner_connects(app, t, visitor, google_fake, f.techs[1], OTHER_USER)
    owner_connects(app, t, visitor, google_fake, None, BUSINESS_USER)
    before = connections(app, t)
    theirs, business = before[f.techs[1]], before[None]
    v = login(visitor, t.people["tech0"])
    token = v.dashboard_token()

    html = page(v)  # their own page shows neither of the others
    assert OTHER_USER not in html and BUSINESS_USER not in html
    assert 'data-testid="my-calendar-status">Not connected' in html
    assert v.get(f"/my-day/calendar?technician={f.techs[1]}").status_code == 404
    assert v.get("/my-day/calendar?technician=not-a-uuid").status_code == 404
    assert v.get(f"/my-day/calendar?technician={f.techs[0]}").status_code == 200  # their own id is fine

    for conn in (theirs, business):
        for action in ("sync", "disconnect"):
            r = v.post(f"/my-day/calendar/{conn.id}/{action}", {"csrf_token": token})
            assert r.status_code == 404, (conn.technician_id, action, r.status_code)
            assert OTHER_USER not in r.get_data(as_text=True) and BUSINESS_USER not in r.get_data(as_text=True)
    # Starting a sign-in for someone else: 404, and nothing is sent to Google.
    for raw in (str(f.techs[1]), "not-a-uuid"):
        r = v.post("/my-day/calendar/connect", {"technician_id": raw, "csrf_token": token})
        assert r.status_code == 404, raw
    assert v.post(f"/my-day/calendar/connect?technician={f.techs[1]}", {"csrf_token": token}).status_code == 404
    assert start(v, {"technician_id": str(f.techs[0])}).startswith(google_fake.url)  # their own: fine
    # The owner's routes stay closed to technicians.
    assert v.get("/integrations").status_code == 403
    assert (
        v.post("/integrations/google/connect", {"technician_id": str(f.techs[1]), "csrf_token": token}).status_code
        == 403
    )
    for action in ("sync", "disconnect"):
        assert v.post(f"/integrations/google/{theirs.id}/{action}", {"csrf_token": token}).status_code == 403

    after = connections(app, t)
    assert {k: (c.id, c.status) for k, c in after.items()} == {k: (c.id, c.status) for k, c in before.items()}
    assert not any(rt["revoked"] for rt in google_fake.refresh_tokens())
    # The owner still sees both on Integrations.
    owner = login(visitor, t.owner)
    integrations = page(owner, "/integrations")
    assert OTHER_USER in integrations and BUSINESS_USER in integrations


def test_a_login_without_a_technician_has_nothing_to_connect(app, crew, visitor, google_fake):
    t, _ = crew
    v = login(visitor, t.people["tech2"])
    html = page(v)
    assert 'data-testid="my-calendar-unlinked"' in html and "Ask the owner" in html
    assert 'data-testid="my-calendar-link"' not in page(v, "/my-day")
    assert v.post("/my-day/calendar/connect", {"csrf_token": v.dashboard_token()}).status_code == 404
    assert google_fake.refresh_tokens() == []


def test_the_sign_in_is_bound_to_the_technicians_session_and_used_once(app, crew, visitor, google_fake, monkeypatch):
    t, f = crew
    v0 = login(visitor, t.people["tech0"])
    v1 = login(visitor, t.people["tech1"])
    # tech1's browser finishing tech0's sign-in: refused, pointing back to My calendar.
    back = google_fake.authorize(start(v0))
    r = finish(v1, back)
    body = unescape(r.get_data(as_text=True))
    assert r.status_code == 400 and "doesn't match" in body and "Start again from My calendar" in body
    # tech0's own second browser (another session) can't either; a forged state neither, and that used it up.
    assert finish(login(visitor, t.people["tech0"]), back).status_code == 400
    assert finish(v0, re.sub(r"state=[^&]+", "state=forged", back)).status_code == 400
    assert finish(v0, back).status_code == 400
    # Replayed after success: refused.
    back = google_fake.authorize(start(v0))
    assert finish(v0, back).status_code == 302
    assert finish(v0, back).status_code == 400
    assert set(connections(app, t)) == {f.techs[0]}

    # Older than 15 minutes: refused.
    monkeypatch.setattr("app.web.google.STATE_MAX_AGE_S", -1)
    assert finish(v1, google_fake.authorize(start(v1))).status_code == 400
    monkeypatch.undo()
    # Unlinked from the technician between start and callback (the owner changed Login): 404, nothing stored.
    back = google_fake.authorize(start(v1), user=OTHER_USER)
    link(app, t, f.techs[1], None)
    assert finish(v1, back).status_code == 404
    assert set(connections(app, t)) == {f.techs[0]}
    assert google_fake.refresh_tokens(OTHER_USER) == []  # no code was exchanged


def test_an_owner_sign_in_cant_be_finished_after_losing_the_role(app, make_tenant, seed_booking, visitor, google_fake):
    from app.accounts.models import User
    from app.extensions import db
    from tests.test_google_calendar import start_connect

    t = make_tenant(admins=1)
    seed_booking(t)
    v = login(visitor, t.people["admin0"])
    back = google_fake.authorize(start_connect(v, None))

    def demote():
        db.session.get(User, (t.id, t.people["admin0"].id)).role = "tech"

    in_tenant(app, t, demote)
    assert finish(v, back).status_code == 403
    assert connections(app, t) == {} and google_fake.refresh_tokens() == []


# On a phone ---------------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_a_technician_connects_google_on_their_phone(app, crew, new_context, live_server, google_fake, run_jobs):
    from tests.pages import PHONE, screenshot

    t, f = crew
    tech = t.people["tech0"]
    page = new_context(viewport=PHONE).new_page()
    problems: list[str] = []

    def console(m):  # ours only: the stand-in's consent page has no favicon, Google's own isn't ours to judge
        if m.type == "error" and not m.location.get("url", "").startswith(google_fake.url):
            problems.append(f"{m.text} {m.location}")

    page.on("console", console)
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(tech.email)
    page.get_by_test_id("field-password").fill(tech.password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("my-calendar-link")).to_be_visible()
    screenshot(page, "google-tech-my-day-phone")
    page.get_by_test_id("my-calendar-link").click()
    expect(page.get_by_test_id("my-calendar-status")).to_have_text("Not connected")
    screenshot(page, "google-tech-not-connected-phone")
    page.get_by_test_id("my-calendar-connect").click()
    # Google's consent page (the stand-in), then straight back to their own page.
    expect(page.get_by_test_id("google-allow")).to_be_visible()
    page.get_by_test_id("google-allow").click()
    expect(page.get_by_test_id("flash").first).to_contain_text("Google Calendar connected")
    assert page.url.endswith("/my-day/calendar")
    expect(page.get_by_test_id("my-calendar-syncing")).to_be_visible()
    run_jobs()
    expect(page.get_by_test_id("my-calendar-syncing")).to_have_count(0, timeout=8000)  # the page reloads itself
    expect(page.get_by_test_id("my-calendar-calendar-status")).to_contain_text("Synced")
    expect(page.get_by_test_id("my-calendar-account")).to_have_text(GOOGLE_USER)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "google-tech-connected-phone")

    page.get_by_test_id("my-calendar-sync-now").click()
    expect(page.get_by_test_id("my-calendar-syncing")).to_be_visible()
    run_jobs()
    expect(page.get_by_test_id("my-calendar-syncing")).to_have_count(0, timeout=8000)

    page.once("dialog", lambda d: d.accept())
    page.get_by_test_id("my-calendar-disconnect").click()
    expect(page.get_by_test_id("flash").first).to_contain_text("Google Calendar disconnected")
    expect(page.get_by_test_id("my-calendar-status")).to_have_text("Not connected")
    assert connections(app, t) == {}
    assert problems == [], problems  # a CSP violation (inline script or style) would show here


def test_the_technicians_buttons_need_the_forms_csrf_token(app, crew, visitor, google_fake):
    t, f = crew
    v = login(visitor, t.people["tech0"])
    finish(v, google_fake.authorize(start(v)))
    conn = connections(app, t)[f.techs[0]]
    for path in (
        "/my-day/calendar/connect",
        f"/my-day/calendar/{conn.id}/sync",
        f"/my-day/calendar/{conn.id}/disconnect",
    ):
        for data in ({}, {"csrf_token": "forged"}):
            r = v.post(path, data)
            assert r.status_code == 400 and "Location" not in r.headers, (path, data, r.status_code)
    after = connections(app, t)[f.techs[0]]
    assert (after.id, after.status) == (conn.id, "connected")
    assert not any(rt["revoked"] for rt in google_fake.refresh_tokens(GOOGLE_USER))
