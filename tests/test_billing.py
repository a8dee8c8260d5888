"""The business's own Fieldday subscription on Stripe Billing (platform account), through the official
SDK against the project's stand-in (docs/platform-and-billing.md): prices by lookup key, Checkout in
subscription mode, the Billing webhook (signature, once-only, work in a job), a failed payment shown
as past due, a deleted subscription back to Starter, switching and cancelling, the billing portal,
owner-only, and a platform admin's plan change moving the subscription."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from werkzeug.test import Client

from tests.fixtures_stripe import STRIPE_BILLING_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET
from tests.helpers import csrf_from
from tests.pages import PHONE, screenshot


@pytest.fixture
def clean_queues(app):
    """Empty Redis before and after: run_jobs runs only this test's jobs, and none is left for others."""
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()
    yield
    with app.app_context():
        get_redis().flushdb()


@pytest.fixture
def prices(app, stripe_fake) -> dict[str, str]:
    """`flask billing prices` against the (empty) stand-in: lookup key -> price id."""
    app.extensions.pop("billing_prices", None)
    result = app.test_cli_runner().invoke(args=["billing", "prices"])
    assert result.exit_code == 0, result.output
    yield {p["lookup_key"]: p["id"] for p in stripe_fake.objects("price")}
    app.extensions.pop("billing_prices", None)


def login_as(visitor, person):
    v = visitor()
    v.login(person.email, person.password)
    return v


def owner_of(visitor, t):
    return login_as(visitor, t.owner)


def choose(v, plan: str):
    page = v.get("/plan").get_data(as_text=True)
    key = re.search(r'name="request_key" value="([0-9a-f]+)"', page)
    form = {"plan": plan, "csrf_token": csrf_from(page), "request_key": key.group(1) if key else ""}
    return v.post("/plan/choose", form)


def tenant_row(app, t) -> dict:
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        x = db.session.get(Tenant, t.id)
        row = {
            "plan": x.plan,
            "status": x.subscription_status,
            "subscription": x.subscription_id,
            "customer": x.billing_customer_id,
            "cancel_at_period_end": x.subscription_cancel_at_period_end,
            "period_end": x.subscription_period_end,
        }
        db.session.rollback()
        return row


def audit_actions(app, t) -> list[str]:
    from sqlalchemy import text

    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = db.session.execute(
            text(
                "SELECT action FROM audit_log WHERE action LIKE 'billing.%' OR action LIKE 'plan.%' ORDER BY created_at"
            )
        ).scalars()
        out = list(rows)
        db.session.rollback()
        return out


def billing_events(app, t) -> list[tuple[str, str | None]]:
    from app.billing.models import BillingEvent
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = [
            (e.type, e.outcome) for e in db.session.scalars(db.select(BillingEvent).order_by(BillingEvent.received_at))
        ]
        db.session.rollback()
        return rows


def post_event(visitor, stripe_fake, event, *, secret=STRIPE_BILLING_WEBHOOK_SECRET, **signed):
    body, headers = stripe_fake.signed(event, secret=secret, **signed)
    return visitor("app.localhost").client.post(
        "/webhooks/stripe/billing", base_url="http://app.localhost", data=body, headers=headers
    )


def deliver_new(visitor, stripe_fake, seen: int) -> int:
    """Post the platform events the stand-in emitted since ``seen`` (as Stripe would); returns the new mark."""
    for event in stripe_fake.events[seen:]:
        if not event.get("account"):
            r = post_event(visitor, stripe_fake, event)
            assert r.status_code == 200 and r.json["received"], r.get_data(as_text=True)
    return len(stripe_fake.events)


def subscribe(app, visitor, stripe_fake, t, plan="pro", card="4242424242424242"):
    """Owner chooses ``plan``, pays on the stand-in's Checkout, comes back to the success page."""
    v = owner_of(visitor, t)
    r = choose(v, plan)
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    session_id = r.headers["Location"].rsplit("/", 1)[1]
    paid = stripe_fake.complete_checkout(session_id, card=card)
    back = urlsplit(paid["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id))
    assert v.get(f"{back.path}?{back.query}").status_code == 302
    return v, paid


# Prices --------------------------------------------------------------------------------------------


def test_prices_are_created_once_and_found_by_lookup_key(app, stripe_fake):
    app.extensions.pop("billing_prices", None)
    first = app.test_cli_runner().invoke(args=["billing", "prices", "--pro", "5900"])
    assert first.exit_code == 0 and first.output.count("created") == 2, first.output
    again = app.test_cli_runner().invoke(args=["billing", "prices"])
    assert again.exit_code == 0 and again.output.count("exists") == 2 and "$59 / month" in again.output
    found = {p["lookup_key"]: p for p in stripe_fake.objects("price")}
    assert set(found) == {"fieldday_pro", "fieldday_teams"}
    assert found["fieldday_pro"]["unit_amount"] == 5900 and found["fieldday_teams"]["unit_amount"] == 9900
    assert found["fieldday_pro"]["recurring"] == {"interval": "month", "interval_count": 1}
    assert all(r.stripe_account is None for r in stripe_fake.requests)  # the platform account, always
    app.extensions.pop("billing_prices", None)


# Subscribing ---------------------------------------------------------------------------------------


def test_owner_subscribes_through_checkout_and_the_webhook_makes_it_pro(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant()
    v = owner_of(visitor, t)
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="plan-price-pro">$49 / month' in page and 'data-testid="plan-price-teams">$99 / month' in page
    assert 'data-testid="choose-pro"' in page and 'data-testid="plan-state-starter">Current plan' in page
    assert 'data-status="none"' in page and 'data-testid="manage-billing"' not in page

    r = choose(v, "pro")
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{stripe_fake.url}/checkout/pay/cs_")
    session_id = r.headers["Location"].rsplit("/", 1)[1]
    create = next(x for x in stripe_fake.requests if x.path == "/v1/checkout/sessions")
    assert create.stripe_account is None and create.idempotency_key.startswith(f"billing-checkout:{t.id}:pro:")
    assert create.params["mode"] == "subscription" and create.params["line_items"] == [
        {"price": prices["fieldday_pro"], "quantity": "1"}
    ]
    assert create.params["client_reference_id"] == str(t.id)
    assert create.params["subscription_data"]["metadata"] == {"tenant_id": str(t.id), "plan": "pro"}
    customer = stripe_fake.objects("customer")[0]
    assert create.params["customer"] == customer["id"] and customer["metadata"]["tenant_id"] == str(t.id)
    assert customer["email"] == t.owner.email
    assert tenant_row(app, t)["customer"] == customer["id"]

    stripe_fake.complete_checkout(session_id)
    assert tenant_row(app, t)["plan"] == "starter"  # nothing is applied before Stripe says so
    assert deliver_new(visitor, stripe_fake, 0) == 3  # checkout.session.completed, subscription.created, invoice.paid
    assert run_jobs() == 3
    row = tenant_row(app, t)
    sub = stripe_fake.objects("subscription")[0]
    assert row["plan"] == "pro" and row["status"] == "active" and row["subscription"] == sub["id"]
    assert row["period_end"] is not None and not row["cancel_at_period_end"]
    assert [outcome for _, outcome in billing_events(app, t)] == ["active: pro"] * 3
    assert audit_actions(app, t) == ["billing.checkout_started", "billing.plan_changed"]

    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="plan-name">Pro' in page and 'data-status="active"' in page
    assert 'data-testid="plan-state-pro">Current plan' in page and 'data-testid="billing-renews"' in page
    assert (
        'data-testid="choose-teams">Switch to Teams' in page
        and 'data-testid="choose-starter">Switch to Starter' in page
    )
    assert 'data-testid="manage-billing"' in page

    # Every event again (Stripe retries deliveries): recorded once, nothing changes, no job.
    for event in stripe_fake.events:
        r = post_event(visitor, stripe_fake, event)
        assert r.status_code == 200 and r.json["duplicate"] is True
    assert run_jobs() == 0
    assert len(billing_events(app, t)) == 3 and audit_actions(app, t) == [
        "billing.checkout_started",
        "billing.plan_changed",
    ]


def test_the_return_page_applies_the_subscription_before_any_webhook(
    app, make_tenant, visitor, stripe_fake, prices, clean_queues
):
    t, other = make_tenant(), make_tenant()
    v, paid = subscribe(app, visitor, stripe_fake, t)
    assert tenant_row(app, t)["plan"] == "pro" and tenant_row(app, t)["status"] == "active"
    assert "You&#39;re on Pro" in v.get("/plan").get_data(as_text=True)
    # Someone else's session id, or a made-up one, changes nothing.
    w = owner_of(visitor, other)
    for session_id in (paid["id"], "cs_test_nope", "../../v1/customers", ""):
        assert w.get("/plan/subscribed", query_string={"session_id": session_id}).status_code == 302
    assert tenant_row(app, other)["plan"] == "starter" and tenant_row(app, other)["status"] == "none"


def test_bad_signatures_and_foreign_events_are_refused_or_ignored(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant()
    subscribe(app, visitor, stripe_fake, t)
    event = next(e for e in stripe_fake.events if e["type"] == "customer.subscription.created")
    client = visitor("app.localhost").client
    body, headers = stripe_fake.signed(event, secret=STRIPE_BILLING_WEBHOOK_SECRET)
    refused = [
        client.post(
            "/webhooks/stripe/billing", base_url="http://app.localhost", data=body, content_type="application/json"
        ),
        post_event(visitor, stripe_fake, event, secret=STRIPE_WEBHOOK_SECRET),  # the Connect endpoint's secret
        client.post("/webhooks/stripe/billing", base_url="http://app.localhost", data=body + b" ", headers=headers),
        post_event(visitor, stripe_fake, event, timestamp=int(time.time()) - 600),
    ]
    for r in refused:
        assert r.status_code == 400 and r.json["error"]["code"] == "bad_signature"
    assert billing_events(app, t) == []
    # Signed, but not ours to act on: a connected account's event, an unknown customer, another type.
    connect = dict(event, id="evt_connect1", account="acct_123")
    stranger = dict(event, id="evt_stranger1", data={"object": dict(event["data"]["object"], customer="cus_nobody")})
    other_type = dict(event, id="evt_other1", type="customer.created")
    wrong_meta = dict(
        event, id="evt_meta1", data={"object": dict(event["data"]["object"], metadata={"tenant_id": "someone-else"})}
    )
    for e, why in (
        (connect, "connected account"),
        (stranger, "unknown customer"),
        (other_type, "type"),
        (wrong_meta, "metadata"),
    ):
        r = post_event(visitor, stripe_fake, e)
        assert r.status_code == 200 and r.json["ignored"] == why
    assert billing_events(app, t) == [] and run_jobs() == 0


def test_another_businesss_subscription_is_never_applied(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    """An event naming A's customer but B's subscription (or the reverse) changes neither business."""
    a, b = make_tenant(), make_tenant()
    _, paid_a = subscribe(app, visitor, stripe_fake, a, plan="pro")
    _, paid_b = subscribe(app, visitor, stripe_fake, b, plan="teams")
    before_a, before_b = tenant_row(app, a), tenant_row(app, b)
    invoice = next(
        e
        for e in stripe_fake.events
        if e["type"] == "invoice.paid" and e["data"]["object"]["customer"] == before_a["customer"]
    )
    obj = invoice["data"]["object"]
    crossed = dict(
        invoice,
        id="evt_crossed1",
        data={
            "object": dict(
                obj,
                subscription=paid_b["subscription"],
                parent={
                    "type": "subscription_details",
                    "subscription_details": {"subscription": paid_b["subscription"]},
                },
            )
        },
    )
    r = post_event(visitor, stripe_fake, crossed)
    assert r.status_code == 200 and r.json["duplicate"] is False
    assert run_jobs() == 1
    assert billing_events(app, a)[-1] == ("invoice.paid", "ignored: customer")
    assert tenant_row(app, a) == before_a and tenant_row(app, b) == before_b
    assert tenant_row(app, a)["subscription"] == paid_a["subscription"]
    # The return page with B's completed session, on A's account: ignored as well.
    assert owner_of(visitor, a).get("/plan/subscribed", query_string={"session_id": paid_b["id"]}).status_code == 302
    assert tenant_row(app, a) == before_a


def test_an_event_whose_job_was_lost_is_swept_up(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    """Redis lost the job (or it gave up): `flask cron`'s sweep queues the business's unprocessed events."""
    from sqlalchemy import text

    from app.billing.jobs import sweep_billing_events
    from app.extensions import db, get_redis
    from tenants.context import tenant_context

    t = make_tenant()
    session_id = choose(owner_of(visitor, t), "pro").headers["Location"].rsplit("/", 1)[1]
    stripe_fake.complete_checkout(session_id)
    deliver_new(visitor, stripe_fake, 0)
    with app.app_context():
        get_redis().flushdb()
        swept = sweep_billing_events()  # (another test's leftovers would be swept too)
    assert run_jobs() == swept
    assert tenant_row(app, t)["plan"] == "starter"  # too recent: its own job may still be on the way
    with app.app_context(), tenant_context(t.id, db.session):
        db.session.execute(text("UPDATE billing_events SET received_at = now() - interval '5 minutes'"))
        db.session.commit()
    with app.app_context():
        swept = sweep_billing_events()
    assert swept >= 1 and run_jobs() == swept  # one job per business, whatever its number of events
    assert tenant_row(app, t)["plan"] == "pro"
    assert [outcome for _, outcome in billing_events(app, t)] == ["active: pro"] * 3


def test_a_failed_payment_shows_past_due_and_a_paid_retry_clears_it(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant(admins=1, techs=1)
    v, paid = subscribe(app, visitor, stripe_fake, t)
    seen = deliver_new(visitor, stripe_fake, 0)
    run_jobs()
    stripe_fake.fail_subscription_payment(paid["subscription"])
    assert [e["type"] for e in stripe_fake.events[seen:]] == ["invoice.payment_failed", "customer.subscription.updated"]
    seen = deliver_new(visitor, stripe_fake, seen)
    run_jobs()
    row = tenant_row(app, t)
    assert row["status"] == "past_due" and row["plan"] == "pro"  # the grace period keeps the plan
    assert billing_events(app, t)[-2][1] == "payment failed; past_due: pro"
    assert audit_actions(app, t)[-1] == "billing.payment_failed"
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="billing-past-due"' in page and 'data-status="past_due"' in page and "Payment failed" in page
    home = v.get("/").get_data(as_text=True)
    assert 'data-testid="billing-banner"' in home and "Your last Fieldday payment failed" in home
    admin = login_as(visitor, t.people["admin0"])
    assert "Ask the owner to update the card" in admin.get("/").get_data(as_text=True)

    stripe_fake.recover_subscription_payment(paid["subscription"])
    deliver_new(visitor, stripe_fake, seen)
    run_jobs()
    assert tenant_row(app, t)["status"] == "active"
    assert 'data-testid="billing-banner"' not in v.get("/").get_data(as_text=True)


def test_a_deleted_subscription_goes_back_to_starter_and_can_start_again(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant()
    v, paid = subscribe(app, visitor, stripe_fake, t, plan="teams")
    assert tenant_row(app, t)["plan"] == "teams"
    seen = len(stripe_fake.events)
    stripe_fake.end_subscription(paid["subscription"])
    deliver_new(visitor, stripe_fake, seen)
    run_jobs()
    row = tenant_row(app, t)
    assert row["plan"] == "starter" and row["status"] == "canceled"
    # Both written in one transaction: same created_at, so their order between them isn't defined.
    assert sorted(audit_actions(app, t)[-2:]) == ["billing.plan_changed", "billing.subscription_ended"]
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="plan-name">Starter' in page and 'data-testid="choose-pro">Choose Pro' in page
    # An old subscription's late events can't undo a new one.
    ended = next(e for e in stripe_fake.events if e["type"] == "customer.subscription.deleted")
    _, paid_again = subscribe(app, visitor, stripe_fake, t, plan="pro")
    assert tenant_row(app, t)["plan"] == "pro" and tenant_row(app, t)["subscription"] == paid_again["subscription"]
    replay = dict(ended, id="evt_late_delete")
    assert post_event(visitor, stripe_fake, replay).status_code == 200
    run_jobs()
    assert (
        tenant_row(app, t)["plan"] == "pro" and billing_events(app, t)[-1][1] == "ignored: not the current subscription"
    )


def test_switching_cancelling_and_keeping_a_subscription(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant()
    v, paid = subscribe(app, visitor, stripe_fake, t)
    sessions = len(stripe_fake.objects("checkout.session"))
    r = choose(v, "teams")
    assert r.status_code == 302
    sub = stripe_fake.objects("subscription")[0]
    assert sub["items"]["data"][0]["price"]["id"] == prices["fieldday_teams"]
    update = [x for x in stripe_fake.requests if x.method == "POST" and x.path == f"/v1/subscriptions/{sub['id']}"][-1]
    assert update.params["proration_behavior"] == "create_prorations" and update.stripe_account is None
    assert len(stripe_fake.objects("checkout.session")) == sessions  # no second subscription
    assert tenant_row(app, t)["plan"] == "teams"
    assert "You&#39;re on Teams now" in v.get("/plan").get_data(as_text=True)

    assert choose(v, "starter").status_code == 302
    assert stripe_fake.objects("subscription")[0]["cancel_at_period_end"] is True
    row = tenant_row(app, t)
    assert row["plan"] == "teams" and row["cancel_at_period_end"]  # paid to the end of the period
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="billing-ends"' in page and 'data-testid="choose-teams">Keep Teams' in page
    assert 'data-testid="plan-state-starter">Starts ' in page

    assert choose(v, "teams").status_code == 302
    assert stripe_fake.objects("subscription")[0]["cancel_at_period_end"] is False
    assert not tenant_row(app, t)["cancel_at_period_end"]
    assert choose(v, "teams").status_code == 302  # already on it: a message, no call
    assert "already on Teams" in v.get("/plan").get_data(as_text=True)
    assert audit_actions(app, t)[-3:] == ["billing.switched", "billing.cancel_scheduled", "billing.cancel_undone"]
    # The webhook for all of that agrees with what the page already applied.
    deliver_new(visitor, stripe_fake, 0)
    run_jobs()
    assert tenant_row(app, t)["plan"] == "teams" and tenant_row(app, t)["status"] == "active"


def test_manage_billing_opens_the_portal_and_cancelling_there_comes_back(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant()
    v, paid = subscribe(app, visitor, stripe_fake, t)
    seen = deliver_new(visitor, stripe_fake, 0)
    page = v.get("/plan").get_data(as_text=True)
    r = v.post("/plan/billing-portal", {"csrf_token": csrf_from(page)})
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{stripe_fake.url}/billing/portal/bps_")
    portal = next(x for x in stripe_fake.requests if x.path == "/v1/billing_portal/sessions")
    assert portal.stripe_account is None and portal.params["customer"] == tenant_row(app, t)["customer"]
    assert portal.params["return_url"].endswith("/plan")
    hosted = Client(stripe_fake)
    path = urlsplit(r.headers["Location"]).path
    assert "Renews on" in hosted.get(path).get_data(as_text=True)
    assert hosted.post(path, data={"subscription": paid["subscription"], "action": "cancel"}).status_code == 303
    deliver_new(visitor, stripe_fake, seen)
    run_jobs()
    assert tenant_row(app, t)["cancel_at_period_end"] and tenant_row(app, t)["plan"] == "pro"


def test_only_the_owner_changes_the_plan_or_billing(app, make_tenant, visitor, stripe_fake, prices):
    t = make_tenant(admins=1, techs=1)
    admin, tech = login_as(visitor, t.people["admin0"]), login_as(visitor, t.people["tech0"])
    page = admin.get("/plan").get_data(as_text=True)
    assert 'data-testid="billing-owner-only"' in page and 'data-testid="choose-pro"' not in page
    assert 'data-testid="plan-price-pro">$49 / month' in page
    token = csrf_from(page)
    for path, data in (("/plan/choose", {"plan": "pro"}), ("/plan/billing-portal", {})):
        assert admin.post(path, {**data, "csrf_token": token}).status_code == 403
        assert tech.post(path, {**data, "csrf_token": tech.dashboard_token()}).status_code == 403
    assert admin.get("/plan/subscribed", query_string={"session_id": "cs_x"}).status_code == 403
    assert tech.get("/plan").status_code == 403
    assert visitor().post("/plan/choose", {"plan": "pro"}).status_code in (302, 400)  # anonymous: login or CSRF
    assert stripe_fake.objects("checkout.session") == [] and stripe_fake.objects("customer") == []


def test_bad_input_and_stripe_trouble_change_nothing(app, make_tenant, visitor, stripe_fake, prices):
    t = make_tenant()
    v = owner_of(visitor, t)
    for plan in ("platinum", "", "PRO"):
        assert choose(v, plan).status_code == 400
    assert v.post("/plan/choose", {"plan": "pro"}).status_code == 400  # no form token
    assert choose(v, "starter").status_code == 302
    assert "You&#39;re on Starter: there is nothing to pay" in v.get("/plan").get_data(as_text=True)
    stripe_fake.fail_next("POST", r"^/v1/checkout/sessions$", 500)
    assert choose(v, "pro").status_code == 302
    assert "We couldn&#39;t reach Stripe just now" in v.get("/plan").get_data(as_text=True)
    assert tenant_row(app, t)["plan"] == "starter" and stripe_fake.objects("checkout.session") == []
    # A second Checkout while subscribed is impossible: choosing switches instead.
    subscribe(app, visitor, stripe_fake, t)
    before = len(stripe_fake.objects("checkout.session"))
    assert choose(v, "pro").status_code == 302
    assert "already on Pro" in v.get("/plan").get_data(as_text=True)
    assert len(stripe_fake.objects("checkout.session")) == before


def test_plans_without_a_price_in_stripe_cant_be_bought(app, make_tenant, visitor, stripe_fake):
    app.extensions.pop("billing_prices", None)  # the stand-in is empty: `flask billing prices` never ran
    t = make_tenant()
    v = owner_of(visitor, t)
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="choose-pro"' not in page and page.count("Not available online yet") == 2
    assert choose(v, "pro").status_code == 302
    assert "Pro can&#39;t be bought online yet" in v.get("/plan").get_data(as_text=True)
    assert stripe_fake.objects("customer") == [] and stripe_fake.objects("checkout.session") == []


def test_billing_off_on_this_server_says_so(app, make_tenant, visitor, monkeypatch):
    t = make_tenant()
    v = owner_of(visitor, t)
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    page = v.get("/plan").get_data(as_text=True)
    assert 'data-testid="billing-unavailable"' in page and 'data-testid="choose-pro"' not in page
    r = v.post("/plan/choose", {"plan": "pro", "csrf_token": csrf_from(page)})
    assert r.status_code == 302 and "Online billing isn&#39;t set up" in v.get("/plan").get_data(as_text=True)


# A platform admin's plan change follows the subscription ---------------------------------------------


def test_platform_plan_change_moves_or_cancels_the_subscription(
    app, make_tenant, visitor, stripe_fake, prices, superuser_conn, run_jobs, clean_queues
):
    from tests.test_platform_jobs import grant

    staff_home, t = make_tenant(), make_tenant()
    assert grant(app, staff_home.owner.email).exit_code == 0
    staff = owner_of(visitor, staff_home)
    _, paid = subscribe(app, visitor, stripe_fake, t)

    def change(plan, reason):
        page = staff.get(f"/platform/tenants/{t.id}").get_data(as_text=True)
        return staff.post(
            f"/platform/tenants/{t.id}/plan", {"plan": plan, "reason": reason, "csrf_token": csrf_from(page)}
        )

    # Stripe failing: nothing changes anywhere.
    stripe_fake.fail_next("POST", r"^/v1/subscriptions/", 500)
    assert change("teams", "Ticket 7").status_code == 302
    assert tenant_row(app, t)["plan"] == "pro"
    assert stripe_fake.objects("subscription")[0]["items"]["data"][0]["price"]["id"] == prices["fieldday_pro"]

    assert change("teams", "Ticket 7: upgrade agreed by phone").status_code == 302
    assert stripe_fake.objects("subscription")[0]["items"]["data"][0]["price"]["id"] == prices["fieldday_teams"]
    assert tenant_row(app, t)["plan"] == "teams"
    detail = superuser_conn.execute(
        "SELECT detail FROM platform_audit WHERE action = 'tenant.plan_changed' AND target_tenant_id = %s", (t.id,)
    ).fetchone()[0]
    assert detail["billing"] == f"subscription {paid['subscription']} moved to teams"
    # One entry for the business: the platform's, not a second one from the subscription.
    assert audit_actions(app, t).count("plan.changed_by_platform") == 1
    assert audit_actions(app, t).count("billing.plan_changed") == 1  # the original subscribe

    assert change("starter", "Ticket 8: closing the account").status_code == 302
    assert stripe_fake.objects("subscription")[0]["status"] == "canceled"
    row = tenant_row(app, t)
    assert row["plan"] == "starter" and row["status"] == "canceled"
    deliver_new(visitor, stripe_fake, 0)  # every event, late and out of order: the end state holds
    run_jobs()
    assert tenant_row(app, t)["plan"] == "starter"


def test_an_ended_subscriptions_late_events_dont_undo_a_plan_support_set_since(
    app, make_tenant, visitor, stripe_fake, prices, run_jobs, clean_queues
):
    """Subscription ended (back to Starter), then support comps Teams: a retried delivery of the old
    subscription's events, or the owner opening the old Checkout return link, leaves Teams alone."""
    from tests.test_platform_jobs import grant

    staff_home, t = make_tenant(), make_tenant()
    assert grant(app, staff_home.owner.email).exit_code == 0
    staff = owner_of(visitor, staff_home)
    v, paid = subscribe(app, visitor, stripe_fake, t)
    deliver_new(visitor, stripe_fake, 0)
    run_jobs()
    seen = len(stripe_fake.events)
    stripe_fake.end_subscription(paid["subscription"])
    deliver_new(visitor, stripe_fake, seen)
    run_jobs()
    assert tenant_row(app, t)["plan"] == "starter" and tenant_row(app, t)["status"] == "canceled"

    page = staff.get(f"/platform/tenants/{t.id}").get_data(as_text=True)
    form = {"plan": "teams", "reason": "Ticket 12: comped after the outage", "csrf_token": csrf_from(page)}
    assert staff.post(f"/platform/tenants/{t.id}/plan", form).status_code == 302
    assert tenant_row(app, t)["plan"] == "teams"

    for i, event in enumerate(stripe_fake.events):  # Stripe retrying every delivery (new ids: not replays)
        if not event.get("account"):
            assert post_event(visitor, stripe_fake, dict(event, id=f"evt_retry_{i}")).status_code == 200
    run_jobs()
    assert v.get("/plan/subscribed", query_string={"session_id": paid["id"]}).status_code == 302
    row = tenant_row(app, t)
    assert row["plan"] == "teams" and row["status"] == "canceled" and row["subscription"] == paid["subscription"]
    assert audit_actions(app, t).count("billing.plan_changed") == 2  # to Pro, back to Starter: no third


# The browser, on a phone ---------------------------------------------------------------------------


@pytest.mark.browser
def test_owner_chooses_pro_on_a_phone(
    app, make_tenant, new_context, live_server, stripe_fake, prices, run_jobs, clean_queues
):
    t = make_tenant(name="Phone Shine")
    stripe_fake.billing_webhook_url = f"http://127.0.0.1:{live_server.port}/webhooks/stripe/billing"
    stripe_fake.webhook_host = f"app.localhost:{live_server.port}"
    page = new_context(PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(t.owner.email)
    page.get_by_test_id("field-password").fill(t.owner.password)
    page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", "/plan"))
    expect(page.get_by_test_id("plan-price-pro")).to_have_text("$49 / month")
    page.get_by_test_id("choose-pro").scroll_into_view_if_needed()
    screenshot(page, "billing-1-plan-choices")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    page.get_by_test_id("choose-pro").click()
    expect(page.get_by_test_id("checkout-total")).to_have_text("$49.00 per month")
    page.get_by_test_id("checkout-card").fill("4242 4242 4242 4242")
    screenshot(page, "billing-2-stripe-checkout")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_test_id("plan-name")).to_have_text("Pro")
    expect(page.get_by_test_id("subscription-status")).to_have_text("Active")
    expect(page.get_by_test_id("plan-state-pro")).to_have_text("Current plan")
    screenshot(page, "billing-3-on-pro")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    # The stand-in signed the events to the Billing endpoint, which took them; their jobs agree.
    assert [status for _, status in stripe_fake.deliveries] == [200, 200, 200]
    assert run_jobs() == 3
    assert tenant_row(app, t)["plan"] == "pro" and len(billing_events(app, t)) == 3
