"""Payments through the official Stripe SDK against the project's stand-in (RELIABILITY §9:
S1–S7, D3–D5, T9): deposits at booking, the balance at completion, pay links, cash, refunds and
the Connect webhook."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import stripe

from tests.fixtures_stripe import STRIPE_API_KEY
from tests.helpers import csrf_from

AUTH_CARD = "4000002500003155"  # pays on-session, needs authentication off-session


# Helpers ------------------------------------------------------------------------------------


def connect(app, t, stripe_fake, *, kind="percent", value=25, deposits=True) -> str:
    """A real connected account in the stand-in, onboarded, wired to the business."""
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    client = stripe.StripeClient(STRIPE_API_KEY, base_addresses={"api": stripe_fake.url})
    account = client.v1.accounts.create(params={"type": "standard", "email": f"owner@{t.subdomain}.test"})
    stripe_fake.complete_onboarding(account.id)
    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        tenant.stripe_account_id = account.id
        tenant.stripe_charges_enabled = True
        tenant.deposits_enabled = deposits
        tenant.deposit_kind, tenant.deposit_value = kind, value
        db.session.commit()
    return account.id


def book_online(visitor, t, f, *, email="pat@x.test", phone="(512) 555-0188", day_offset=3, pick=0):
    """Walk the booking site as a customer; returns (site visitor, the review POST response)."""
    site = visitor(t.host)
    page = site.get("/book").get_data(as_text=True)
    r = site.post(
        "/book", {"package_id": str(f.wash), "size_class": "sedan", "make": "Honda", "csrf_token": csrf_from(page)}
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:400]
    page = site.get("/book/address").get_data(as_text=True)
    address = {"address": "1100 Congress Ave, Austin", "csrf_token": csrf_from(page)}
    assert site.post("/book/address", address).status_code == 200  # shows the pin
    assert site.post("/book/address", address).status_code == 302
    day = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=day_offset)).date().isoformat()
    page = site.get(f"/book/time?day={day}").get_data(as_text=True)
    starts = re.findall(r'name="starts_at" value="([^"]+)"', page)
    r = site.post("/book/time", {"starts_at": starts[pick], "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    page = site.get("/book/details").get_data(as_text=True)
    r = site.post("/book/details", {"name": "Pat Lee", "phone": phone, "email": email, "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    page = site.get("/book/review").get_data(as_text=True)
    return site, site.post("/book/review", {"csrf_token": csrf_from(page)})


def bookings(app, t):
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = list(db.session.scalars(db.select(Booking).order_by(Booking.created_at)))
        out = [
            dict(
                id=b.id, status=b.status, payment_status=b.payment_status, deposit=b.deposit_cents, price=b.price_cents
            )
            for b in rows
        ]
        db.session.rollback()
        return out


def payments_of(app, t):
    from app.extensions import db
    from app.payments.models import Payment
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = [
            dict(
                id=p.id,
                kind=p.kind,
                method=p.method,
                status=p.status,
                amount=p.amount_cents,
                tip=p.tip_cents,
                refunded=p.refunded_cents,
                last4=p.card_last4,
                session=p.stripe_checkout_session_id,
            )
            for p in db.session.scalars(db.select(Payment).order_by(Payment.created_at, Payment.attempt))
        ]
        db.session.rollback()
        return rows


def in_tenant(app, t, fn):
    """Run ``fn()`` as the business (as a job would) and commit."""
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        try:
            result = fn()
            db.session.commit()
            return result
        except Exception:
            db.session.rollback()
            raise


def session_of(stripe_fake, booking_id) -> dict:
    return next(s for s in stripe_fake.objects("checkout.session") if s["metadata"]["booking_id"] == str(booking_id))


def event_of(stripe_fake, type_: str, object_id: str) -> dict:
    return next(e for e in stripe_fake.events if e["type"] == type_ and e["data"]["object"]["id"] == object_id)


def post_event(visitor, stripe_fake, event_or_payload, **signed):
    body, headers = stripe_fake.signed(event_or_payload, **signed)
    return visitor("app.localhost").client.post(
        "/webhooks/stripe/connect", base_url="http://app.localhost", data=body, headers=headers
    )


def queued(app) -> int:
    from app.jobs import get_queue

    with app.app_context():
        return sum(len(get_queue(n)) for n in app.config["RQ_QUEUES"])


def stored_events(app, t) -> int:
    from app.extensions import db
    from app.payments.models import StripeEvent
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        n = db.session.scalar(db.select(db.func.count()).select_from(StripeEvent))
        db.session.rollback()
        return n


def mails_to(smtp_server, address: str, since: int = 0, *, booking_notices: bool = False) -> list[str]:
    """Bodies of the e-mails sent to ``address`` (decoded from quoted-printable); the booking's own
    notices (confirmation e-mails for customers we can't text) only when asked for."""
    return [
        m.get_payload(decode=True).decode()
        for m in smtp_server.messages[since:]
        if m["To"] == address and (booking_notices or "your booking is confirmed" not in (m["Subject"] or ""))
    ]


def paid_deposit(app, visitor, t, f, stripe_fake, run_jobs, *, card="4242424242424242", email="pat@x.test"):
    """A customer books online and pays the deposit; returns the booking id."""
    from app.payments import services

    _, r = book_online(visitor, t, f, email=email)
    assert r.status_code == 303
    booking = bookings(app, t)[-1]
    session = session_of(stripe_fake, booking["id"])
    stripe_fake.complete_checkout(session["id"], card=card)
    in_tenant(app, t, lambda: services.fulfil_checkout(session["id"]))
    run_jobs()
    assert bookings(app, t)[-1]["status"] == "confirmed"
    return booking["id"]


@pytest.fixture
def clean_queues(app):
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()
    yield


# Deposit at booking ---------------------------------------------------------------------------


def test_booking_online_takes_the_deposit_then_the_webhook_confirms(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, smtp_server, clean_queues
):
    t = make_tenant()
    f = seed_booking(t)
    account = connect(app, t, stripe_fake)
    site, r = book_online(visitor, t, f)
    assert r.status_code == 303 and r.headers["Location"].startswith(f"{stripe_fake.url}/checkout/pay/cs_")
    (booking,) = bookings(app, t)
    assert booking["status"] == "pending" and booking["deposit"] == 1500  # 25 % of $60.00
    create = next(q for q in stripe_fake.requests if q.method == "POST" and q.path == "/v1/checkout/sessions")
    assert create.stripe_account == account
    assert create.idempotency_key == f"deposit:{booking['id']}"
    assert create.params["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert create.params["payment_intent_data"]["application_fee_amount"] == "30"  # starter: 2 % of $15.00
    assert create.params["line_items"][0]["price_data"]["unit_amount"] == "1500"
    assert create.params["metadata"]["tenant_id"] == str(t.id)
    assert int(create.params["expires_at"]) >= time.time() + 29 * 60
    assert "{CHECKOUT_SESSION_ID}" in create.params["success_url"]

    session = session_of(stripe_fake, booking["id"])
    stripe_fake.complete_checkout(session["id"])
    event = event_of(stripe_fake, "checkout.session.completed", session["id"])
    before = len(smtp_server.messages)
    assert post_event(visitor, stripe_fake, event).status_code == 200
    assert bookings(app, t)[0]["status"] == "pending"  # the work happens in the job
    run_jobs()
    (booking,) = bookings(app, t)
    assert booking["status"] == "confirmed" and booking["payment_status"] == "partly_paid"
    (payment,) = payments_of(app, t)
    assert payment["status"] == "succeeded" and payment["amount"] == 1500 and payment["last4"] == "4242"
    (receipt,) = mails_to(smtp_server, "pat@x.test", before)
    assert "received $15 " in receipt and f"http://{t.host}" in receipt
    link = re.search(r"(/r/\S+)", receipt).group(1)
    page = site.get(link)
    assert page.status_code == 200 and "$15" in page.get_data(as_text=True)
    assert visitor(make_tenant().host).get(link).status_code == 404  # another business's site


def test_back_from_checkout_the_page_confirms_without_waiting_for_the_webhook(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    site, r = book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    session = session_of(stripe_fake, booking["id"])
    stripe_fake.complete_checkout(session["id"])
    success = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    page = site.get("/" + success.split("/", 3)[3])
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Deposit received" in html and "Confirmed" in html
    assert bookings(app, t)[0]["status"] == "confirmed"


def test_closing_checkout_keeps_the_hold_and_offers_the_deposit_again(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    site, r = book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    session = session_of(stripe_fake, booking["id"])
    cancel_path = "/" + session["cancel_url"].split("/", 3)[3]
    html = site.get(cancel_path).get_data(as_text=True)
    assert "The payment wasn't completed" in html and 'data-testid="pay-deposit"' in html
    # Paying again reuses the same open session: one session, no second charge possible.
    again = site.post(cancel_path.split("?")[0] + "/pay", {"csrf_token": csrf_from(html)})
    assert again.status_code == 303 and again.headers["Location"] == session["url"]
    assert len(stripe_fake.objects("checkout.session")) == 1


def test_no_deposit_without_a_connected_account_and_staff_bookings_never_wait(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    t = make_tenant()
    f = seed_booking(t, deposits=False)
    in_tenant(app, t, lambda: _enable_deposits_only(t))
    _, r = book_online(visitor, t, f)
    assert r.status_code == 302 and "/b/" in r.headers["Location"]
    assert bookings(app, t)[0]["status"] == "confirmed" and stripe_fake.requests == []


def _enable_deposits_only(t):
    from app.extensions import db
    from tenants.models import Tenant

    db.session.get(Tenant, t.id).deposits_enabled = True  # but Stripe is not connected


# Webhooks ---------------------------------------------------------------------------------------


def _completed_event(app, make_tenant, seed_booking, visitor, stripe_fake):
    t = make_tenant()
    f = seed_booking(t)
    account = connect(app, t, stripe_fake)
    book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    session = session_of(stripe_fake, booking["id"])
    stripe_fake.complete_checkout(session["id"])
    return t, account, booking, event_of(stripe_fake, "checkout.session.completed", session["id"])


def test_s1_unsigned_forged_altered_or_stale_events_are_refused(
    app, make_tenant, seed_booking, visitor, stripe_fake, clean_queues
):
    t, _, _, event = _completed_event(app, make_tenant, seed_booking, visitor, stripe_fake)
    client = visitor("app.localhost").client
    body = json.dumps(event).encode()
    no_signature = client.post(
        "/webhooks/stripe/connect", base_url="http://app.localhost", data=body, content_type="application/json"
    )
    wrong_secret = post_event(visitor, stripe_fake, event, secret="whsec_not_ours")
    signed_body, headers = stripe_fake.signed(event)
    altered = client.post(
        "/webhooks/stripe/connect", base_url="http://app.localhost", data=signed_body + b" ", headers=headers
    )
    stale = post_event(visitor, stripe_fake, event, timestamp=int(time.time()) - 600)
    for response in (no_signature, wrong_secret, altered, stale):
        assert response.status_code == 400 and response.json["error"]["code"] == "bad_signature"
    assert stored_events(app, t) == 0 and queued(app) == 0


def test_s2_the_same_event_twice_in_a_row_and_at_once_is_recorded_and_applied_once(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, clean_queues
):
    t, _, _, event = _completed_event(app, make_tenant, seed_booking, visitor, stripe_fake)
    assert post_event(visitor, stripe_fake, event).status_code == 200
    assert post_event(visitor, stripe_fake, event).json["duplicate"] is True
    second = dict(event, id=f"evt_{uuid.uuid4().hex[:20]}")  # a different delivery of the same news
    barrier = threading.Barrier(2)
    answers = []

    def send():
        barrier.wait()
        answers.append(post_event(visitor, stripe_fake, second).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert answers == [200, 200]
    assert stored_events(app, t) == 2 and queued(app) == 2  # one job per distinct event id
    run_jobs()
    (payment,) = payments_of(app, t)
    assert payment["status"] == "succeeded" and bookings(app, t)[0]["status"] == "confirmed"


def test_s3_an_event_whose_account_and_metadata_disagree_or_wrong_livemode_is_ignored(
    app, make_tenant, seed_booking, visitor, stripe_fake, caplog, clean_queues
):
    t, _, booking, event = _completed_event(app, make_tenant, seed_booking, visitor, stripe_fake)
    other = make_tenant()
    seed_booking(other)
    other_account = connect(app, other, stripe_fake)
    forged = dict(event, id="evt_forged1", account=other_account)  # B's account, A's booking in metadata
    assert post_event(visitor, stripe_fake, forged).status_code == 200
    live = dict(event, id="evt_live1", livemode=True)
    assert post_event(visitor, stripe_fake, live).status_code == 200
    assert "names another business" in caplog.text and "livemode" in caplog.text
    assert stored_events(app, t) == 0 and stored_events(app, other) == 0 and queued(app) == 0
    assert bookings(app, t)[0]["status"] == "pending"


def test_t9_events_from_an_unknown_account_are_answered_and_ignored(
    app, make_tenant, seed_booking, visitor, stripe_fake, caplog, clean_queues
):
    t, _, _, event = _completed_event(app, make_tenant, seed_booking, visitor, stripe_fake)
    r = post_event(visitor, stripe_fake, dict(event, id="evt_unknown1", account="acct_unknown"))
    assert r.status_code == 200 and r.json["ignored"] == "unknown account"
    assert "unknown account acct_unknown" in caplog.text and queued(app) == 0


# Holds and late payments --------------------------------------------------------------------------


def test_d4_hold_expiry_expires_the_open_session_first_and_frees_the_slot(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    from app.booking import services

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    later = datetime.now(UTC) + timedelta(minutes=16)
    assert in_tenant(app, t, lambda: services.expire_hold(booking["id"], now=later)) is True
    assert in_tenant(app, t, lambda: services.expire_hold(booking["id"], now=later)) is False  # idempotent
    assert session_of(stripe_fake, booking["id"])["status"] == "expired"
    expires = [q for q in stripe_fake.requests if q.path.endswith("/expire")]
    assert len(expires) == 1 and expires[0].idempotency_key.startswith("expire:cs_")
    assert bookings(app, t)[0]["status"] == "expired" and payments_of(app, t)[0]["status"] == "canceled"
    _, again = book_online(visitor, t, f, phone="(512) 555-0190")  # the same first time is offered again
    assert again.status_code == 303


def test_d4_hold_expiry_confirms_when_the_customer_already_paid(app, make_tenant, seed_booking, visitor, stripe_fake):
    from app.booking import services

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    stripe_fake.complete_checkout(session_of(stripe_fake, booking["id"])["id"])  # its webhook never arrived
    later = datetime.now(UTC) + timedelta(minutes=16)
    for _ in range(2):
        assert in_tenant(app, t, lambda: services.expire_hold(booking["id"], now=later)) is False
    assert bookings(app, t)[0]["status"] == "confirmed" and payments_of(app, t)[0]["status"] == "succeeded"
    assert not [q for q in stripe_fake.requests if q.path.endswith("/expire")]


def _expire_without_stripe(app, t, booking_id):
    """A hold that ran out while Stripe was unreachable: the booking expired, the session stayed open."""
    from app.booking import services
    from app.booking.models import Booking
    from app.extensions import db

    def run():
        b = db.session.get(Booking, (t.id, booking_id))
        services.transition(b, "expired", actor_type="system")

    in_tenant(app, t, run)


def test_d5_late_payment_for_a_slot_taken_meanwhile_is_refunded_once(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, smtp_server, clean_queues
):
    from app.payments import services

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    book_online(visitor, t, f, email="late@x.test")
    (late,) = bookings(app, t)
    _expire_without_stripe(app, t, late["id"])
    _, r = book_online(visitor, t, f, phone="(512) 555-0191", email="other@x.test")  # someone takes the slot
    assert r.status_code == 303
    session = session_of(stripe_fake, late["id"])
    stripe_fake.complete_checkout(session["id"])
    event = event_of(stripe_fake, "checkout.session.completed", session["id"])
    before = len(smtp_server.messages)
    for _ in range(3):
        assert post_event(visitor, stripe_fake, event).status_code == 200
    run_jobs()
    for _ in range(3):  # and the success page, the expiry job... any path, any number of times
        in_tenant(app, t, lambda: services.fulfil_checkout(session["id"]))
    run_jobs()
    assert bookings(app, t)[0]["status"] == "expired"
    refunds = stripe_fake.objects("refund")
    assert len(refunds) == 1 and refunds[0]["amount"] == 1500
    payment = payments_of(app, t)[0]
    assert payment["refunded"] == 1500 and bookings(app, t)[0]["payment_status"] == "refunded"
    assert len(mails_to(smtp_server, "late@x.test", before)) == 1  # the refund notice, once
    active = [b for b in bookings(app, t) if b["status"] in ("pending", "confirmed")]
    assert len(active) == 1  # never double-booked


def test_d3_late_payment_keeps_the_booking_when_its_time_is_still_free(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    from app.payments import services

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    book_online(visitor, t, f)
    (late,) = bookings(app, t)
    _expire_without_stripe(app, t, late["id"])
    session = session_of(stripe_fake, late["id"])
    stripe_fake.complete_checkout(session["id"])
    in_tenant(app, t, lambda: services.fulfil_checkout(session["id"]))
    assert bookings(app, t)[0]["status"] == "confirmed" and stripe_fake.objects("refund") == []


# Balance at completion ----------------------------------------------------------------------------


def _start(app, t, booking_id):
    from app.booking import services
    from app.booking.models import Booking
    from app.extensions import db

    in_tenant(
        app,
        t,
        lambda: services.transition(db.session.get(Booking, (t.id, booking_id)), "in_progress", actor_type="system"),
    )


def test_s4_a_500_then_a_retry_sends_the_same_key_and_charges_once(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, clean_queues
):
    from app.payments.jobs import charge_balance

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs)
    stripe_fake.fail_next("POST", r"^/v1/payment_intents$", 500)
    with app.app_context():
        with pytest.raises(stripe.APIError):
            charge_balance(t.id, str(booking_id), 500)  # the job as RQ runs it; RQ retries it later
        assert charge_balance(t.id, str(booking_id), 500) == "paid"
    creates = [q for q in stripe_fake.requests if q.method == "POST" and q.path == "/v1/payment_intents"]
    assert [q.idempotency_key for q in creates] == [f"balance:{booking_id}:1"] * 2
    assert [q.status for q in creates] == [500, 200]
    balance = [p for p in stripe_fake.objects("payment_intent") if p["metadata"].get("kind") == "balance"]
    assert len(balance) == 1 and balance[0]["amount"] == 4500 + 500  # $45 left + $5 tip
    (booking,) = bookings(app, t)
    assert booking["payment_status"] == "paid"
    kinds = [(p["kind"], p["status"], p["amount"], p["tip"]) for p in payments_of(app, t)]
    assert kinds == [("deposit", "succeeded", 1500, 0), ("balance", "succeeded", 4500, 500)]


def test_s5_a_card_that_needs_authentication_gets_a_pay_link_once_and_no_retry_loop(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, smtp_server, clean_queues
):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from app.extensions import get_redis
    from app.payments.jobs import send_pay_link

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs, card=AUTH_CARD, email="sca@x.test")
    _start(app, t, booking_id)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/bookings/{booking_id}").get_data(as_text=True)
    r = owner.post(f"/bookings/{booking_id}/status", {"status": "completed", "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    before = len(smtp_server.messages)
    with app.app_context():
        from app.jobs import get_queue

        job_ids = get_queue("default").job_ids
    run_jobs()  # the charge, then the pay-link e-mail it queued
    with app.app_context():
        (charge,) = [
            j
            for j in (Job.fetch(i, connection=get_redis(), serializer=JSONSerializer) for i in job_ids)
            if j.func_name.endswith("charge_balance")
        ]
        assert charge.get_status() == "finished" and charge.return_value() == "action_required"
    (booking,) = bookings(app, t)
    assert booking["payment_status"] == "action_required"
    balance = payments_of(app, t)[-1]
    with app.app_context():
        assert send_pay_link(t.id, str(balance["id"])) is False  # a second run sends nothing
    # One pay-link e-mail (the review request, also e-mailed on completion, says nothing of paying).
    (mail,) = [m for m in mails_to(smtp_server, "sca@x.test", before) if "/pay/" in m]
    pay_path = re.search(r"http://[^/]+(/pay/\S+)", mail).group(1)
    assert len([q for q in stripe_fake.requests if q.path == "/v1/payment_intents"]) == 1  # no retry loop

    customer = visitor(t.host)
    page = customer.get(pay_path).get_data(as_text=True)
    assert "$45" in page
    go = customer.post(pay_path, {"csrf_token": csrf_from(page)})
    assert go.status_code == 303 and go.headers["Location"].startswith(stripe_fake.url)
    session = next(s for s in stripe_fake.objects("checkout.session") if s["metadata"]["kind"] == "balance")
    stripe_fake.complete_checkout(session["id"])
    back = customer.get(f"{pay_path}?paid={session['id']}").get_data(as_text=True)
    assert "Paid in full" in back, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", back))[-1500:]
    assert bookings(app, t)[0]["payment_status"] == "paid"


# Refunds, cash, lists -------------------------------------------------------------------------------


def test_s6_a_double_clicked_refund_is_one_refund(app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs):
    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs)
    tabs = []
    for _ in range(2):
        v = visitor("app.localhost")
        v.login(t.owner.email, t.owner.password)
        tabs.append(v)
    page = tabs[0].get(f"/bookings/{booking_id}").get_data(as_text=True)
    action = re.search(r'action="(/payments/[^"]+/refund)"', page).group(1)
    form = {
        "request_key": re.search(r'name="request_key" value="([^"]+)"', page).group(1),
        "amount": "15.00",
        "csrf_token": csrf_from(page),
    }
    barrier = threading.Barrier(2)
    answers = []

    def click(v):
        form_for_tab = dict(form, csrf_token=v.dashboard_token())
        barrier.wait()
        answers.append(v.post(action, form_for_tab).status_code)

    threads = [threading.Thread(target=click, args=(v,)) for v in tabs]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert answers == [302, 302]
    assert len(stripe_fake.objects("refund")) == 1
    assert payments_of(app, t)[0]["refunded"] == 1500
    html = tabs[0].get(f"/bookings/{booking_id}").get_data(as_text=True)
    assert html.count('data-testid="refunded"') == 1


def test_refunds_above_what_was_paid_and_impossible_deposit_rules_are_refused(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs
):
    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/bookings/{booking_id}").get_data(as_text=True)
    action = re.search(r'action="(/payments/[^"]+/refund)"', page).group(1)
    r = owner.post(
        action, {"request_key": "k1", "amount": "15.01", "csrf_token": csrf_from(page)}, follow_redirects=True
    )
    assert "You can refund at most $15 of this payment" in r.get_data(as_text=True)
    assert stripe_fake.objects("refund") == []
    for kind, value, message in (
        ("percent", "150", "from 1 to 100"),
        ("fixed", "0.30", "start at 0.50"),
        ("fixed", "ten", "like 45 or 45.50"),
    ):
        r = owner.post(
            "/integrations/deposits",
            {"deposits_enabled": "on", "deposit_kind": kind, "deposit_value": value, "csrf_token": csrf_from(page)},
        )
        assert r.status_code == 422 and message in r.get_data(as_text=True)
    # A service's own rule: no deposit for the express wash.
    svc = owner.get(f"/services/{f.wash}").get_data(as_text=True)
    r = owner.post(
        f"/services/{f.wash}",
        {
            "name": "Express wash",
            "price_sedan": "60.00",
            "duration_sedan": "60",
            "active": "on",
            "deposit_kind": "none",
            "csrf_token": csrf_from(svc),
        },
    )
    assert r.status_code in (302, 422)
    if r.status_code == 302:
        _, booked = book_online(visitor, t, f, phone="(512) 555-0193", pick=2)
        assert booked.status_code == 302  # confirmed without a deposit


def test_cash_and_check_balance_the_booking_and_show_in_the_list_and_receipt(
    app, make_tenant, seed_booking, visitor, stripe_fake
):
    t = make_tenant()
    f = seed_booking(t)
    _, r = book_online(visitor, t, f)  # no Stripe: confirmed at once, $60 owed
    (booking,) = bookings(app, t)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/bookings/{booking['id']}").get_data(as_text=True)
    assert 'data-testid="balance-due">$60<' in page
    token = csrf_from(page)
    too_much = owner.post(
        f"/bookings/{booking['id']}/payments",
        {"method": "cash", "amount": "61", "csrf_token": token},
        follow_redirects=True,
    )
    assert "Only $60 is owed" in too_much.get_data(as_text=True)
    owner.post(f"/bookings/{booking['id']}/payments", {"method": "cash", "amount": "20", "csrf_token": token})
    owner.post(
        f"/bookings/{booking['id']}/payments",
        {"method": "check", "amount": "40", "tip": "10", "note": "Check #1042", "csrf_token": token},
    )
    page = owner.get(f"/bookings/{booking['id']}").get_data(as_text=True)
    assert 'data-testid="balance-due">$0<' in page and 'data-testid="payment-status">Paid' in page
    listing = owner.get("/payments").get_data(as_text=True)
    assert 'data-testid="total-collected">$70<' in listing and listing.count('data-testid="payment-row"') == 2
    checks = owner.get("/payments?method=check").get_data(as_text=True)
    assert checks.count('data-testid="payment-row"') == 1 and "$50" in checks
    empty = owner.get("/payments?from=2020-01-01&to=2020-01-31").get_data(as_text=True)
    assert 'data-testid="payments-empty"' in empty
    from app.payments import tokens

    with app.app_context():
        receipt = f"/r/{tokens.make_receipt_token(t.id, booking['id'])}"
    html = visitor(t.host).get(receipt).get_data(as_text=True)
    assert "Paid in full" in html and "Check #1042" not in html and "$70" in html


# Onboarding -------------------------------------------------------------------------------------------


def _stand_in_get(url: str):
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, response.getheader("Location"), body


def _stand_in_post(url: str, body: str = ""):
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("POST", parts.path, body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, response.getheader("Location")


def test_s7_onboarding_links_refresh_behind_the_login_and_return_reads_the_account(
    app, make_tenant, visitor, stripe_fake
):
    t = make_tenant()
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get("/integrations").get_data(as_text=True)
    assert 'data-testid="stripe-status">Not connected' in page
    key = re.search(r'name="request_key" value="([^"]+)"', page).group(1)
    r = owner.post("/integrations/stripe/connect", {"request_key": key, "csrf_token": csrf_from(page)})
    assert r.status_code == 303
    link = r.headers["Location"]
    assert link.startswith(stripe_fake.url + "/connect/onboard/")
    (account,) = stripe_fake.objects("account")
    assert account["metadata"]["tenant_id"] == str(t.id)
    # Visiting twice: the second visit is sent to refresh_url, which needs the owner's session.
    status, _, _ = _stand_in_get(link)
    assert status == 200
    status, refresh, _ = _stand_in_get(link)
    assert status in (302, 303) and refresh.endswith("/integrations/stripe/refresh")
    links_before = len([q for q in stripe_fake.requests if q.path == "/v1/account_links"])
    anonymous = visitor("app.localhost").get("/integrations/stripe/refresh")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert len([q for q in stripe_fake.requests if q.path == "/v1/account_links"]) == links_before
    fresh = owner.get("/integrations/stripe/refresh")
    assert fresh.status_code == 303 and fresh.headers["Location"] != link
    status, _, form = _stand_in_get(fresh.headers["Location"])
    assert status == 200 and "onboard-submit" in form
    status, back = _stand_in_post(fresh.headers["Location"])
    assert status == 303 and back.endswith("/integrations/stripe/return")
    done = owner.get("/integrations/stripe/return", follow_redirects=True).get_data(as_text=True)
    assert "Stripe is connected" in done and 'data-testid="stripe-status">Connected' in done
    # A double-clicked connect never makes a second account.
    owner.post("/integrations/stripe/connect", {"request_key": key, "csrf_token": csrf_from(page)})
    assert len(stripe_fake.objects("account")) == 1
    # Techs can't connect or disconnect.
    r = owner.post("/integrations/stripe/disconnect", {"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert 'data-testid="stripe-status">Not connected' in r.get_data(as_text=True)


def test_canceling_a_pending_booking_closes_its_checkout(app, make_tenant, seed_booking, visitor, stripe_fake):
    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    site, _ = book_online(visitor, t, f)
    (booking,) = bookings(app, t)
    session = session_of(stripe_fake, booking["id"])
    manage = "/" + session["cancel_url"].split("/", 3)[3].split("?")[0]
    page = site.get(manage).get_data(as_text=True)
    r = site.post(manage + "/cancel", {"csrf_token": csrf_from(page)})
    assert r.status_code == 302
    assert bookings(app, t)[0]["status"] == "canceled"
    assert session_of(stripe_fake, booking["id"])["status"] == "expired"
    assert payments_of(app, t)[0]["status"] == "canceled"


def test_a_balance_is_never_paid_twice_by_card_link_and_cash(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs, clean_queues
):
    from app.payments import services
    from app.payments.jobs import charge_balance

    t = make_tenant()
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs)
    with app.app_context():  # a double click on "complete with tip": one charge, tip included once
        assert charge_balance(t.id, str(booking_id), 500) == "paid"
        assert charge_balance(t.id, str(booking_id), 500) == "nothing_due"
    assert len([p for p in stripe_fake.objects("payment_intent") if p["metadata"].get("kind") == "balance"]) == 1

    # Another booking: a pay link is open, the technician takes cash, the customer pays the link anyway.
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs, email="twice@x.test")
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    def link():
        b = db.session.get(Booking, (t.id, booking_id))
        payment = services.open_balance_checkout(
            db.session.get(Tenant, t.id), b, success_url="http://x/", cancel_url="http://x/"
        )
        return payment.stripe_checkout_session_id

    session_id = in_tenant(app, t, link)
    in_tenant(
        app,
        t,
        lambda: services.record_manual(db.session.get(Booking, (t.id, booking_id)), method="cash", amount_cents=4500),
    )
    assert next(s for s in stripe_fake.objects("checkout.session") if s["id"] == session_id)["status"] == "expired"

    # Canceled bookings can't be paid by link.
    def cancel_and_link():
        b = db.session.get(Booking, (t.id, booking_id))
        b.status = "canceled"
        return services.open_balance_checkout(
            db.session.get(Tenant, t.id), b, success_url="http://x/", cancel_url="http://x/"
        )

    with (
        pytest.raises(Exception, match="no longer open for payment"),
        app.app_context(),
        tenant_context(t.id, db.session),
    ):
        try:
            cancel_and_link()
        finally:
            db.session.rollback()
