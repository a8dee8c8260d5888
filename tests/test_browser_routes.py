"""The owner's route page in a real browser: a messy day on the map, optimise (the solver runs in
a job while the page shows progress), the saving, approve; then drag a stop to reorder."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.pages import screenshot
from tests.test_routes import _messy_day

pytestmark = pytest.mark.browser


def test_owner_optimises_the_day_sees_the_saving_and_approves(
    app, new_context, live_server, make_tenant, seed_booking, run_jobs
):
    t, _, day = _messy_day(app, make_tenant, seed_booking)
    page = new_context().new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", f"/routes?day={day.isoformat()}"))
    expect(page.get_by_test_id("stop")).to_have_count(6)
    expect(page.locator(".stop-icon")).to_have_count(6)  # numbered markers drawn on the map
    screenshot(page, "routes-1-as-booked")
    page.get_by_test_id("optimise").click()
    expect(page.get_by_test_id("optimising")).to_be_visible()
    screenshot(page, "routes-2-optimising")
    run_jobs()
    expect(page.get_by_test_id("saving")).to_be_visible(timeout=15_000)  # the page refreshes itself
    assert int(page.get_by_test_id("saving").inner_text().split()[0]) >= 60
    screenshot(page, "routes-3-optimised")
    page.get_by_test_id("approve").click()
    expect(page.get_by_test_id("approved")).to_be_visible()
    screenshot(page, "routes-4-approved")

    # Drag the first stop of a route below the second: the server recomputes and flags the window.
    first_route = page.get_by_test_id("route").first
    stops = first_route.get_by_test_id("stop")
    before = [s.get_attribute("data-booking") for s in stops.all()]
    stops.nth(0).drag_to(stops.nth(1))
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("flash").first).to_be_visible()
    after = [s.get_attribute("data-booking") for s in page.get_by_test_id("route").first.get_by_test_id("stop").all()]
    assert after != before
