"""A technician works the day on a phone (390×844, touch) in Debian's Chromium: the stops in order,
on my way, start, a before photo straight to object storage, complete; the page installs as a PWA
whose service worker caches the app shell only."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.pages import PHONE, screenshot
from tests.test_tech_day import CAPITOL, HYDE_PARK, NORTH, book_stop, booking, link, local, photo_rows, today

pytestmark = pytest.mark.browser


def make_png(width: int = 96, height: int = 72) -> bytes:
    """A small striped PNG (no imaging library needed)."""
    rows = b""
    for y in range(height):
        colour = (15, 118, 110) if (y // 12) % 2 else (245, 158, 11)
        rows += b"\x00" + bytes(colour) * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_a_technician_works_the_day_from_the_phone(app, new_context, live_server, make_tenant, seed_booking):
    t = make_tenant(name="Acme Shine", techs=1)
    f = seed_booking(t, techs=1, lead_time_min=0, buffer_min=0)
    link(app, t, f.techs[0], t.people["tech0"].id)
    day = today()
    first = book_stop(
        app,
        t,
        f,
        local(day, 9),
        tech=f.techs[0],
        name="Maria Delgado",
        access="Gate code #4821 · park in the driveway, not the street",
        addons=[f.pet],
        notes="Golden retriever hair all over the back seat.",
        color="Pearl white",
        year="2021",
        make="Toyota",
        model="RAV4",
        size_class="suv",
        plate="KJX-4821",
        package=f.full,
    )
    book_stop(app, t, f, local(day, 12), tech=f.techs[0], name="Sam Okafor", place=HYDE_PARK, access="Buzz 204")
    book_stop(app, t, f, local(day, 15), tech=f.techs[0], name="Priya Raman-Castellanos", place=NORTH)

    page = new_context(PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.people["tech0"].email)
    page.get_by_test_id("field-password").fill(t.people["tech0"].password)
    with page.expect_navigation():
        page.get_by_test_id("login-submit").click()
    assert page.url.endswith("/my-day")

    stops = page.get_by_test_id("stop")
    expect(stops).to_have_count(3)
    assert stops.get_by_test_id("stop-customer").all_inner_texts() == [
        "Maria Delgado",
        "Sam Okafor",
        "Priya Raman-Castellanos",
    ]
    stop = stops.nth(0)
    expect(stop.get_by_test_id("stop-access")).to_contain_text("Gate code #4821")
    expect(stop.get_by_test_id("stop-directions")).to_have_attribute(
        "href", "https://www.google.com/maps/dir/?api=1&destination=30.274700,-97.740400"
    )
    expect(stop.get_by_test_id("stop-vehicle")).to_contain_text("KJX-4821")
    expect(stops.nth(1).get_by_test_id("stop-access")).to_be_hidden()  # later stops start folded
    for testid in ("on-my-way", "start", "stop-call", "stop-directions"):
        box = stop.get_by_test_id(testid).bounding_box()
        assert box["height"] >= 48, (testid, box)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "tech-day-1-stops")

    stop.get_by_test_id("on-my-way").tap()
    expect(page.get_by_test_id("flash")).to_contain_text("On your way to Maria Delgado. ETA")
    stop = page.get_by_test_id("stop").nth(0)
    expect(stop.get_by_test_id("on-way-note")).to_be_visible()
    stop.get_by_test_id("start").tap()
    expect(page.get_by_test_id("flash")).to_contain_text("Started Maria Delgado's job")
    stop = page.get_by_test_id("stop").nth(0)
    expect(stop.get_by_test_id("stop-status")).to_have_text("In progress")

    stop.get_by_test_id("photo-before-input").set_input_files(
        files=[{"name": "before.png", "mimeType": "image/png", "buffer": make_png()}]
    )
    expect(stop.get_by_test_id("photo-message")).to_have_text("Before photo saved.")
    thumb = stop.get_by_test_id("photo-thumb")
    expect(thumb).to_have_count(1)
    # The <img> came back through our tenant check and a redirect to storage, and the CSP let it in.
    page.wait_for_function("img => img.complete && img.naturalWidth === 96", arg=thumb.element_handle())
    (photo,) = photo_rows(app, t)
    assert photo.status == "stored" and photo.kind == "before" and photo.key.startswith(f"tenants/{t.id}/")
    screenshot(page, "tech-day-2-photo")

    stop.get_by_test_id("complete").tap()
    expect(page.get_by_test_id("flash")).to_contain_text("Job completed.")
    stop = page.get_by_test_id("stop").nth(0)
    expect(stop.get_by_test_id("stop-status")).to_have_text("Completed")
    expect(page.get_by_test_id("stop").nth(1).get_by_test_id("on-my-way")).to_be_visible()  # the next stop opens
    expect(stop.get_by_test_id("photo-thumb")).to_have_count(1)  # rendered by the server this time
    b = booking(app, t, first)
    assert b.status == "completed" and b.on_way_at <= b.started_at <= b.finished_at
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "tech-day-3-completed")
    page.get_by_test_id("stop").nth(0).locator("summary").tap()  # unfold the finished stop to look at it
    screenshot(page, "tech-day-4-completed-open")

    # Installable: the manifest is linked and the service worker caches static files only.
    assert page.locator('link[rel="manifest"]').get_attribute("href") == "/manifest.webmanifest"
    cached = page.evaluate(
        """async () => {
            await navigator.serviceWorker.ready;
            const urls = [];
            for (const name of await caches.keys()) {
                for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
            }
            return urls;
        }"""
    )
    assert cached and all(path.startswith("/static/") for path in cached), cached
    assert any(path.endswith(".css") for path in cached) and any(path.endswith(".js") for path in cached)


def test_a_manager_follows_a_technician_and_looks_ahead(app, new_context, live_server, make_tenant, seed_booking):
    t = make_tenant(name="Bravo Detail", techs=2)
    f = seed_booking(t, techs=2, lead_time_min=0, buffer_min=0)
    tomorrow = today() + timedelta(days=1)
    first = book_stop(app, t, f, local(tomorrow, 10), tech=f.techs[1], name="Jordan Tomorrow", place=CAPITOL)
    book_stop(app, t, f, local(tomorrow, 11, 30), tech=f.techs[1], name="Kim Next", place=HYDE_PARK, access="Gate 0420")
    # The first job runs 40 minutes over: the ETA cascade moves the next one.
    from app.booking.models import Booking
    from app.dispatch import eta
    from app.extensions import db
    from tests.test_tech_day import in_tenant

    def run_late():
        job = db.session.get(Booking, (t.id, first))
        eta.start_stop(job, actor_id=None, now=local(tomorrow, 10))
        eta.complete_stop(job, actor_id=None, now=local(tomorrow, 11, 40))
        return eta.recompute_etas(f.techs[1], tomorrow, now=local(tomorrow, 11, 40))

    assert len(in_tenant(app, t, run_late)) == 1
    page = new_context(PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    with page.expect_navigation():
        page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", "/my-day"))
    expect(page.get_by_test_id("my-day-empty")).to_be_visible()
    with page.expect_navigation():
        page.get_by_test_id("field-technician").select_option(str(f.techs[1]))
    with page.expect_navigation():
        page.get_by_test_id("day-next").tap()
    expect(page.get_by_test_id("stop-customer")).to_have_text(["Jordan Tomorrow", "Kim Next"])
    expect(page.get_by_test_id("stop-late")).to_have_text("Running 18 min late")
    expect(page.get_by_test_id("day-late")).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "tech-day-manager")
