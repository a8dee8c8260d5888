"""Google Calendar as a new owner tries it, in a real browser on a phone: connect through the stand-in's
consent page, sync with progress shown, a booking lands in Google, an edit there comes back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.fixtures_google import GOOGLE_USER
from tests.pages import PHONE, screenshot

pytestmark = pytest.mark.browser


def test_owner_connects_google_and_an_edit_there_comes_back(
    app, new_context, live_server, make_tenant, seed_booking, google_fake, run_jobs
):
    from tests.test_booking import book, request, tomorrow_at
    from tests.test_google_calendar import blocks, in_tenant

    t = make_tenant(name="Shine Mobile", techs=0)
    f = seed_booking(t, buffer_min=0)
    page = new_context(viewport=PHONE).new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", "/integrations"))
    card = page.get_by_test_id("google-card")
    expect(card.get_by_test_id("google-status")).to_have_text("Not connected")
    card.get_by_test_id("google-connect").click()
    # Google's consent page (the stand-in), then back to Integrations.
    expect(page.get_by_test_id("google-allow")).to_be_visible()
    page.get_by_test_id("google-allow").click()
    expect(page.get_by_test_id("flash").first).to_contain_text("Google Calendar connected")
    expect(page.get_by_test_id("google-calendar")).to_have_count(1)
    expect(page.get_by_test_id("google-syncing")).to_be_visible()
    run_jobs()
    page.reload()
    expect(page.get_by_test_id("google-calendar-status")).to_contain_text("Synced")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "google-integrations-phone")

    # Busy time typed into Google blocks the technician after "Sync now".
    ten = tomorrow_at(10)
    google_fake.add_event(GOOGLE_USER, ten, ten + timedelta(hours=1), summary="Dentist")
    page.get_by_test_id("google-sync-now").click()
    expect(page.get_by_test_id("google-syncing")).to_be_visible()
    run_jobs()
    expect(page.get_by_test_id("google-syncing")).to_have_count(0, timeout=8000)  # the page reloads itself
    assert [b[1] for b in blocks(app, t)] == [ten]

    # A Fieldday booking appears in Google; moved there, it comes back as a change to confirm.
    booking_id = book(app, t, request(f, tomorrow_at(13), tech=f.techs[0]))
    run_jobs()
    from app.calendar.services import event_id_for

    google = new_context(viewport=PHONE).new_page()
    google.goto(google_fake.url + "/")
    expect(google.locator("li.ours")).to_have_count(1)
    google_fake.move_event(GOOGLE_USER, event_id_for(booking_id), tomorrow_at(15))
    page.get_by_test_id("google-sync-now").click()
    run_jobs()
    page.goto(live_server.url("app.localhost", "/integrations"))
    expect(page.get_by_test_id("google-proposal")).to_contain_text("Moved in Google")
    screenshot(page, "google-proposal-phone")
    page.get_by_test_id("google-proposal-confirm").click()
    expect(page.get_by_test_id("flash").first).to_contain_text("Booking updated")
    from app.booking.models import Booking
    from app.extensions import db

    starts = in_tenant(app, t, lambda: db.session.get(Booking, (t.id, booking_id)).starts_at)
    assert starts == tomorrow_at(15) and starts.tzinfo is not None
