"""Quotes in a real browser, on a phone: the customer requests a quote with a photo, the owner
prices it with options and sends it, the customer picks an option and an extra, a time the route
allows, pays the deposit on the Stripe stand-in and is booked."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.pages import PHONE, screenshot
from tests.test_browser_payments import _pay_on_stripe, _webhooks_to
from tests.test_payments import bookings, connect

pytestmark = pytest.mark.browser

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _day(offset: int) -> str:
    return (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=offset)).date().isoformat()


def test_request_quote_accept_pick_a_time_and_pay_on_a_phone(
    app, new_context, live_server, make_tenant, seed_booking, stripe_fake
):
    t = make_tenant(name="Acme Shine")
    f = seed_booking(t, techs=1)
    connect(app, t, stripe_fake)  # 25 % deposits
    _webhooks_to(stripe_fake, live_server)
    phone = {"viewport": PHONE, "is_mobile": True, "has_touch": True}

    # 1. The customer asks for a quote, with a photo.
    customer = new_context(**phone).new_page()
    customer.goto(live_server.url(t.host, "/quote-request"))
    customer.get_by_test_id("size-suv").check()
    customer.get_by_test_id("field-make").fill("Toyota")
    customer.get_by_test_id("field-model").fill("4Runner")
    customer.get_by_test_id("field-wanted").fill("Paint correction, maybe a ceramic coating")
    customer.get_by_test_id("field-condition_notes").fill("Swirls all over the hood, tree sap on the roof")
    customer.get_by_test_id("field-address").fill("1100 Congress Ave, Austin")
    customer.get_by_test_id("field-name").fill("Pat Paint")
    customer.get_by_test_id("field-phone").fill("(512) 555-0133")
    customer.get_by_test_id("field-email").fill("pat@x.test")
    screenshot(customer, "quote-1-request")
    customer.get_by_test_id("quote-request-submit").click()
    expect(customer.get_by_test_id("quote-request-sent")).to_be_visible()
    customer.get_by_test_id("request-photo-input").set_input_files(
        {"name": "hood.png", "mimeType": "image/png", "buffer": PNG}
    )
    expect(customer.get_by_test_id("request-photo-count")).to_contain_text("1 photo")
    screenshot(customer, "quote-2-photo-added")
    assert customer.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    # 2. The owner sees the request with its photo and prices it: two options and an extra.
    owner = new_context(**phone).new_page()
    owner.goto(live_server.url("app.localhost", "/login"))
    owner.get_by_test_id("field-email").fill(t.owner.email)
    owner.get_by_test_id("field-password").fill(t.owner.password)
    owner.get_by_test_id("login-submit").click()
    owner.goto(live_server.url("app.localhost", "/quotes"))
    expect(owner.get_by_test_id("new-requests")).to_have_text("1 new")
    owner.get_by_test_id("quote-requests-link").click()
    owner.get_by_test_id("request-row").get_by_role("link").click()
    expect(owner.get_by_test_id("request-photo")).to_be_visible()
    assert owner.get_by_test_id("request-photo").evaluate("img => img.naturalWidth") == 1
    screenshot(owner, "quote-3-owner-request")
    owner.get_by_test_id("request-to-quote").click()
    catalog = owner.get_by_test_id("add-catalog-line")
    catalog.get_by_test_id("field-package_id").select_option(str(f.full))
    catalog.get_by_test_id("field-tier").fill("Detail")
    catalog.get_by_test_id("add-catalog").click()
    owner.locator("details.quote-add > summary").click()
    custom = owner.get_by_test_id("add-custom-line")
    custom.get_by_test_id("field-name").fill("Two-stage paint correction")
    custom.get_by_test_id("field-unit_price").fill("450")
    custom.get_by_test_id("field-duration_min").fill("240")
    custom.get_by_test_id("field-tier").fill("Correction")
    custom.get_by_test_id("add-custom").click()
    owner.locator("details.quote-add > summary").click()
    catalog = owner.get_by_test_id("add-catalog-line")
    catalog.get_by_test_id("field-package_id").select_option(str(f.pet))
    catalog.get_by_test_id("catalog-optional").check()
    catalog.get_by_test_id("add-catalog").click()
    expect(owner.get_by_test_id("builder-line")).to_have_count(3)
    owner.get_by_test_id("field-tax_rate").fill("8.25")
    owner.get_by_test_id("quote-save").click()
    expect(owner.get_by_test_id("tier-total")).to_have_count(2)
    screenshot(owner, "quote-4-builder")
    owner.get_by_test_id("quote-send").click()
    expect(owner.get_by_test_id("quote-status")).to_have_text("Sent")
    link = owner.get_by_test_id("quote-link").input_value()
    assert owner.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    # 3. The customer opens the link, picks the correction and the extra, a time and pays.
    customer.goto(link)
    expect(customer.get_by_test_id("quote-page")).to_be_visible()
    screenshot(customer, "quote-5-customer-quote")
    customer.get_by_test_id("tier-2").click()
    customer.wait_for_url(re.compile(r"tier=Correction"))
    customer.get_by_test_id("option-1").click()
    customer.wait_for_url(re.compile(r"opt="))
    # 450 + 50 (SUV pet hair) = 500; tax 8.25 % = 41.25 → 541.25; deposit 25 % → 135.32 (rounded up)
    expect(customer.get_by_test_id("quote-grand-total")).to_have_text("$541.25")
    expect(customer.get_by_test_id("quote-deposit")).to_contain_text("$135.32")
    screenshot(customer, "quote-6-customer-choice")
    customer.get_by_test_id("quote-pick-time").click()
    expect(customer.get_by_test_id("quote-time")).to_be_visible()
    customer.get_by_test_id(f"day-{_day(3)}").click()
    screenshot(customer, "quote-7-time")
    assert customer.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    customer.get_by_test_id("slot").first.click()
    _pay_on_stripe(customer, "4242 4242 4242 4242", "pat@x.test", shot="quote-8-stripe")
    expect(customer.get_by_test_id("booked")).to_contain_text("Deposit received")
    expect(customer.get_by_test_id("booking-status")).to_have_text("Confirmed")
    screenshot(customer, "quote-9-booked")

    made = bookings(app, t)
    assert len(made) == 1 and made[0]["status"] == "confirmed" and made[0]["price"] == 54_125
    assert made[0]["deposit"] == 13_532

    # 4. The owner sees it accepted, with the booking.
    owner.reload()
    expect(owner.get_by_test_id("quote-accepted")).to_contain_text("Correction")
    expect(owner.get_by_test_id("quote-booking")).to_contain_text("confirmed")
    owner.goto(live_server.url("app.localhost", "/quotes"))
    expect(owner.get_by_test_id("count-accepted")).to_have_text("1")
    expect(owner.get_by_test_id("stat-conversion")).to_have_text("100 %")
    screenshot(owner, "quote-10-pipeline")


def test_back_from_stripe_the_times_can_be_tapped_again(app, new_context, live_server, make_tenant, seed_booking):
    """The page marks its form as sent on the first tap; coming back to it (the back/forward
    cache restores it as it was) must clear that, or every time button is dead."""
    from tests.test_quotes import new_quote, send

    t = make_tenant(name="Acme Shine")
    f = seed_booking(t, techs=1)
    path = send(app, t, new_quote(app, t, f, optional=False))
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url(t.host, f"{path}/time?day={_day(3)}"))
    form = page.get_by_test_id("slots")
    expect(form).to_be_visible()
    form.evaluate("f => { f.dataset.sent = '1'; }")  # as after a tap that went to Stripe
    page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    assert form.evaluate("f => f.dataset.sent === undefined")
    page.get_by_test_id("slot").first.click()
    page.wait_for_url(re.compile(r"/b/"))
    assert len(bookings(app, t)) == 1
