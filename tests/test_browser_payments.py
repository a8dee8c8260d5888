"""Payments in a real browser: a customer books on a phone and pays the deposit on the Stripe
stand-in's hosted page; the owner completes the job and the balance is charged to the saved
card; a card that needs authentication turns into a pay link the customer uses."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.pages import PHONE, screenshot
from tests.test_browser_booking import book_as_customer
from tests.test_payments import connect

pytestmark = pytest.mark.browser


def _day(offset: int) -> str:
    return (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=offset)).date().isoformat()


def _webhooks_to(stripe_fake, live_server):
    stripe_fake.webhook_url = f"http://127.0.0.1:{live_server.port}/webhooks/stripe/connect"
    stripe_fake.webhook_host = f"app.localhost:{live_server.port}"


def _pay_on_stripe(page, card: str, email: str, shot: str | None = None):
    expect(page.get_by_test_id("checkout-card")).to_be_visible()
    page.get_by_test_id("checkout-email").fill(email)
    page.get_by_test_id("checkout-card").fill(card)
    if shot:
        screenshot(page, shot)
    page.get_by_role("button", name=re.compile(r"^Pay ")).click()


def _owner(new_context, live_server, t):
    page = new_context().new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    page.get_by_test_id("login-submit").click()
    return page


def _booking_id(app, t):
    from tests.test_payments import bookings

    return bookings(app, t)[-1]["id"]


def test_customer_pays_the_deposit_and_the_balance_is_charged_at_completion(
    app, new_context, live_server, make_tenant, seed_booking, stripe_fake, run_jobs
):
    t = make_tenant(name="Acme Shine")
    seed_booking(t, techs=1)
    connect(app, t, stripe_fake)
    _webhooks_to(stripe_fake, live_server)
    customer = new_context(PHONE, is_mobile=True, has_touch=True).new_page()
    book_as_customer(
        customer, live_server, t.host, name="Dee Deposit", phone="(512) 555-0161", day=_day(3), email="dee@x.test"
    )
    expect(customer.get_by_test_id("deposit-note")).to_contain_text("Deposit due now: $15")
    expect(customer.get_by_test_id("book-confirm")).to_have_text("Pay $15 deposit")
    screenshot(customer, "pay-1-review")
    customer.get_by_test_id("book-confirm").click()
    _pay_on_stripe(customer, "4242 4242 4242 4242", "dee@x.test", shot="pay-2-stripe-checkout")
    expect(customer.get_by_test_id("booked")).to_contain_text("Deposit received")
    expect(customer.get_by_test_id("booking-status")).to_have_text("Confirmed")
    expect(customer.get_by_test_id("manage-paid")).to_contain_text("$15")
    screenshot(customer, "pay-3-confirmed")
    assert customer.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    owner = _owner(new_context, live_server, t)
    owner.goto(live_server.url("app.localhost", f"/bookings/{_booking_id(app, t)}"))
    expect(owner.get_by_test_id("balance-due")).to_have_text("$45")
    expect(owner.get_by_test_id("payment-status")).to_have_text("Partly paid")
    owner.get_by_test_id("to-in_progress").click()
    owner.get_by_test_id("field-tip").fill("5")
    screenshot(owner, "pay-4-complete-with-tip")
    owner.get_by_test_id("to-completed").click()
    expect(owner.get_by_test_id("flash").first).to_contain_text("Charging $50 to the card on file")
    run_jobs()
    owner.reload()
    expect(owner.get_by_test_id("payment-status")).to_have_text("Paid")
    expect(owner.get_by_test_id("balance-due")).to_have_text("$0")
    expect(owner.get_by_test_id("payment-row")).to_have_count(2)
    screenshot(owner, "pay-5-paid")
    owner.goto(live_server.url("app.localhost", "/payments"))
    expect(owner.get_by_test_id("total-collected")).to_have_text("$65")
    screenshot(owner, "pay-6-payments-list")


def test_a_card_that_needs_authentication_gets_a_pay_link_the_customer_uses(
    app, new_context, live_server, make_tenant, seed_booking, stripe_fake, run_jobs, smtp_server
):
    t = make_tenant(name="Bravo Detail")
    seed_booking(t, techs=1)
    connect(app, t, stripe_fake)
    _webhooks_to(stripe_fake, live_server)
    customer = new_context(PHONE, is_mobile=True, has_touch=True).new_page()
    book_as_customer(
        customer, live_server, t.host, name="Sam Secure", phone="(512) 555-0162", day=_day(4), email="sam@x.test"
    )
    customer.get_by_test_id("book-confirm").click()
    _pay_on_stripe(customer, "4000 0025 0000 3155", "sam@x.test")
    expect(customer.get_by_test_id("booking-status")).to_have_text("Confirmed")

    owner = _owner(new_context, live_server, t)
    owner.goto(live_server.url("app.localhost", f"/bookings/{_booking_id(app, t)}"))
    owner.get_by_test_id("to-in_progress").click()
    owner.get_by_test_id("to-completed").click()
    before = len(smtp_server.messages)
    run_jobs()
    owner.reload()
    expect(owner.get_by_test_id("payment-status")).to_have_text("Card needs authentication")
    screenshot(owner, "pay-7-needs-authentication")
    mails = [m.get_payload(decode=True).decode() for m in smtp_server.messages[before:] if m["To"] == "sam@x.test"]
    (mail,) = [m for m in mails if "/pay/" in m]  # the deposit's receipt went out too
    link = re.search(r"(http://\S+/pay/\S+)", mail).group(1)

    customer.goto(link)
    expect(customer.get_by_test_id("pay-due")).to_have_text("$45")
    screenshot(customer, "pay-8-pay-link")
    customer.get_by_test_id("pay-now").click()
    _pay_on_stripe(customer, "4242 4242 4242 4242", "sam@x.test")
    expect(customer.get_by_test_id("paid-in-full")).to_be_visible()
    screenshot(customer, "pay-9-paid-in-full")
    owner.reload()
    expect(owner.get_by_test_id("payment-status")).to_have_text("Paid")
