"""Texts through the official Twilio SDK against the project's stand-in (RELIABILITY §9: W1–W4,
J2, T9): the outbox sends each text once, STOP is honoured, webhooks are verified and threaded
to the right business."""

from __future__ import annotations

import itertools
import os
import uuid
from datetime import UTC, datetime

import pytest

from tests.test_booking import book, request, tomorrow_at

_numbers = itertools.count((os.getpid() % 500) * 10_000 + 2_000_000)
INBOUND = "http://app.localhost/webhooks/twilio/sms"
STATUS = "http://app.localhost/webhooks/twilio/status"


def texting(app, t, twilio_fake) -> str:
    """Give the business a Twilio number (owned in the stand-in); returns it."""
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    number = f"+1737{next(_numbers):07d}"  # unique in this run: tenants.sms_number is unique
    twilio_fake.add_number(number)
    with app.app_context(), tenant_context(t.id, db.session):
        db.session.get(Tenant, t.id).sms_number = number
        db.session.commit()
    return number


def rows(app, t):
    from app.extensions import db
    from app.messaging.models import Message
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = [
            dict(
                id=m.id,
                direction=m.direction,
                kind=m.kind,
                status=m.status,
                body=m.body,
                sid=m.provider_sid,
                customer=m.customer_id,
                error=m.error_code,
            )
            for m in db.session.scalars(db.select(Message).order_by(Message.created_at))
        ]
        db.session.rollback()
        return out


def sent_to(twilio_fake, phone: str) -> list[dict]:
    return [m for m in twilio_fake.messages if m["to"] == phone]


def post_signed(visitor, twilio_fake, url: str, params: dict, *, signature: str | None = None):
    headers = {"X-Twilio-Signature": signature if signature is not None else twilio_fake.signature(url, params)}
    return visitor("app.localhost").client.post(url, base_url="http://app.localhost", data=params, headers=headers)


def inbound_params(to: str, sender: str, body: str, sid: str | None = None) -> dict:
    from tests.fixtures_twilio import TWILIO_ACCOUNT_SID

    return {
        "MessageSid": sid or f"SM{uuid.uuid4().hex}",
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }


def customer_opted_out(app, t, phone: str):
    from app.customers.services import find_by_phone
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        value = find_by_phone(phone).sms_opted_out_at
        db.session.rollback()
        return value


def staff_book(app, t, f, starts, phone):
    from app.booking import services
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        b = services.book(
            db.session.get(Tenant, t.id), request(f, starts, phone=phone), now=datetime.now(UTC), actor_type="user"
        )
        db.session.commit()
        return b.id


def _age_attempt(app, t, message_id):
    """As if RQ's backoff had passed since the attempt started."""
    from datetime import timedelta

    from app.extensions import db
    from app.messaging.models import Message
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        m = db.session.get(Message, (t.id, message_id))
        m.sent_at = m.sent_at - timedelta(minutes=3)
        db.session.commit()


@pytest.fixture
def clean_queues(app):
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()


def test_a_booking_is_confirmed_by_text_once(app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues):
    from app.messaging.jobs import send_text

    t = make_tenant()
    f = seed_booking(t)
    number = texting(app, t, twilio_fake)
    book(app, t, request(f, tomorrow_at(10), phone="+15125550401"))  # a customer books online
    run_jobs()
    (text,) = sent_to(twilio_fake, "+15125550401")
    assert text["from"] == number and "you're booked for" in text["body"] and f"http://{t.host}" in text["body"]
    (row,) = rows(app, t)
    assert row["status"] == "sent" and row["sid"] == text["sid"]
    with app.app_context():
        assert send_text(t.id, str(row["id"])) == "sent"  # a job run twice sends nothing more
    assert len(sent_to(twilio_fake, "+15125550401")) == 1


def test_businesses_without_a_number_send_no_texts(app, make_tenant, seed_booking, twilio_fake, run_jobs):
    t = make_tenant()
    f = seed_booking(t)
    book(app, t, request(f, tomorrow_at(10), phone="+15125550402"))
    run_jobs()
    assert sent_to(twilio_fake, "+15125550402") == []
    # No text and no e-mail to fall back on: the owner sees why the confirmation didn't go.
    (row,) = rows(app, t)
    assert row["kind"] == "confirmation" and row["status"] == "skipped"


def test_j2_a_send_that_died_after_reaching_twilio_is_not_sent_again(
    app, make_tenant, seed_booking, twilio_fake, clean_queues
):
    from app.messaging.jobs import send_text

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    staff_book(app, t, f, tomorrow_at(11), "+15125550403")
    (row,) = rows(app, t)
    twilio_fake.fail_next("POST", r"/Messages\.json$", 500, commit=True)  # Twilio sent it; we never heard
    with app.app_context(), pytest.raises(Exception):
        send_text(t.id, str(row["id"]))
    assert rows(app, t)[0]["status"] == "sending"
    with app.app_context(), pytest.raises(RuntimeError):  # a retry while that attempt may still be in flight waits
        send_text(t.id, str(row["id"]))
    _age_attempt(app, t, row["id"])
    with app.app_context():
        assert send_text(t.id, str(row["id"])) == "sent"  # the later retry asks Twilio first
    assert len(sent_to(twilio_fake, "+15125550403")) == 1
    assert rows(app, t)[0]["sid"] == sent_to(twilio_fake, "+15125550403")[0]["sid"]


def test_w2_stop_start_and_21610(app, make_tenant, seed_booking, visitor, twilio_fake, run_jobs, clean_queues):
    from app.customers.services import find_by_phone
    from app.extensions import db
    from app.messaging.services import queue_text
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    number = texting(app, t, twilio_fake)
    staff_book(app, t, f, tomorrow_at(9), "+15125550404")
    run_jobs()
    assert post_signed(visitor, twilio_fake, INBOUND, inbound_params(number, "+15125550404", "STOP")).status_code == 200
    assert customer_opted_out(app, t, "+15125550404") is not None

    def remind():
        with app.app_context(), tenant_context(t.id, db.session):
            tenant = db.session.get(Tenant, t.id)
            made = queue_text(tenant, find_by_phone("+15125550404"), "reminder", "See you tomorrow at 9!")
            db.session.commit()
            return made

    calls = len(twilio_fake.requests)
    assert remind() is None
    run_jobs()
    assert len(twilio_fake.requests) == calls  # no API call while opted out
    post_signed(visitor, twilio_fake, INBOUND, inbound_params(number, "+15125550404", "start"))
    assert customer_opted_out(app, t, "+15125550404") is None
    assert remind() is not None
    run_jobs()
    assert sent_to(twilio_fake, "+15125550404")[-1]["body"] == "See you tomorrow at 9!"
    # Twilio says unsubscribed (21610): opted out, not retried.
    twilio_fake.opt_out("+15125550404")
    assert remind() is not None
    run_jobs()
    assert rows(app, t)[-1]["status"] == "skipped" and rows(app, t)[-1]["error"] == "21610"
    assert customer_opted_out(app, t, "+15125550404") is not None


def test_w1_signatures_and_the_https_url_behind_a_proxy(app, services, twilio_fake, make_tenant, visitor):
    from app import create_app
    from app.config import TestConfig
    from tests.fixtures_twilio import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN

    t = make_tenant()
    number = texting(app, t, twilio_fake)
    params = inbound_params(number, "+15125550405", "hello")
    assert post_signed(visitor, twilio_fake, INBOUND, params, signature="bogus").status_code == 403
    assert (
        post_signed(
            visitor,
            twilio_fake,
            INBOUND,
            {**params, "Body": "changed"},
            signature=twilio_fake.signature(INBOUND, params),
        ).status_code
        == 403
    )
    proxied = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"),
            "REDIS_URL": services.redis.url,
            "RATELIMIT_STORAGE_URI": services.redis.url,
            "PROXY_FIX_HOPS": 1,
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        },
    )
    https_url = "https://app.localhost/webhooks/twilio/sms"
    r = proxied.test_client().post(
        "/webhooks/twilio/sms",
        base_url="http://app.localhost",
        data=params,
        headers={"X-Twilio-Signature": twilio_fake.signature(https_url, params), "X-Forwarded-Proto": "https"},
    )
    assert r.status_code == 200 and b"<Response>" in r.data
    with proxied.app_context():
        from app.extensions import db

        db.engine.dispose()


def test_w3_the_same_phone_at_two_businesses_threads_only_where_it_texted(
    app, make_tenant, seed_booking, visitor, twilio_fake
):
    a, b = make_tenant(), make_tenant()
    fa, fb = seed_booking(a), seed_booking(b)
    texting(app, a, twilio_fake)
    b_number = texting(app, b, twilio_fake)
    staff_book(app, a, fa, tomorrow_at(9), "+15125550406")
    staff_book(app, b, fb, tomorrow_at(9), "+15125550406")
    post_signed(visitor, twilio_fake, INBOUND, inbound_params(b_number, "+15125550406", "Running 5 late?"))
    inbound_a = [r for r in rows(app, a) if r["direction"] == "in"]
    inbound_b = [r for r in rows(app, b) if r["direction"] == "in"]
    assert inbound_a == [] and len(inbound_b) == 1 and inbound_b[0]["customer"] is not None


def test_w4_duplicate_inbound_and_late_status_callbacks(
    app, make_tenant, seed_booking, visitor, twilio_fake, run_jobs, clean_queues
):
    t = make_tenant()
    f = seed_booking(t)
    number = texting(app, t, twilio_fake)
    staff_book(app, t, f, tomorrow_at(9), "+15125550407")
    run_jobs()
    params = inbound_params(number, "+15125550407", "Thanks!", sid="SM" + "1" * 32)
    for _ in range(2):
        assert post_signed(visitor, twilio_fake, INBOUND, params).status_code == 200
    assert len([r for r in rows(app, t) if r["direction"] == "in"]) == 1
    sid = next(r["sid"] for r in rows(app, t) if r["direction"] == "out")
    for status in ("delivered", "sent"):
        callback = {"MessageSid": sid, "MessageStatus": status, "From": number, "To": "+15125550407"}
        assert post_signed(visitor, twilio_fake, STATUS, callback).status_code == 204
    assert next(r for r in rows(app, t) if r["direction"] == "out")["status"] == "delivered"


def test_t9_a_text_to_a_number_nobody_owns_is_answered_and_dropped(app, visitor, twilio_fake, caplog):
    r = post_signed(visitor, twilio_fake, INBOUND, inbound_params("+17375550000", "+15125550408", "hi"))
    assert r.status_code == 200 and b"<Response>" in r.data
    assert "no business owns" in caplog.text


def test_owner_sees_the_thread_and_replies_and_sets_the_number(
    app, make_tenant, seed_booking, visitor, twilio_fake, run_jobs, clean_queues
):
    import re

    from tests.helpers import csrf_from

    t = make_tenant()
    f = seed_booking(t)
    number = texting(app, t, twilio_fake)
    staff_book(app, t, f, tomorrow_at(9), "+15125550409")
    run_jobs()
    post_signed(visitor, twilio_fake, INBOUND, inbound_params(number, "+15125550409", "Can you come at 9:30?"))
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get("/messages").get_data(as_text=True)
    assert "Can you come at 9:30?" in page and "you&#39;re booked for" in page
    action = re.search(r'action="(/messages/[^"]+)"', page).group(1)
    r = owner.post(action, {"body": "Sure, see you at 9:30!", "csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "Sent." in r.get_data(as_text=True)
    run_jobs()
    assert sent_to(twilio_fake, "+15125550409")[-1]["body"] == "Sure, see you at 9:30!"
    # A number the platform's Twilio account doesn't own is refused; one it owns is kept.
    integrations = owner.get("/integrations").get_data(as_text=True)
    bad = owner.post(
        "/integrations/sms",
        {"sms_number": "+1 512 555 0199", "csrf_token": csrf_from(integrations)},
        follow_redirects=True,
    )
    assert "isn&#39;t a number in our Twilio account" in bad.get_data(as_text=True)
    # A number in the account but assigned to another business (or to none) is refused too.
    other = "+17375559911"
    twilio_fake.add_number(other, friendly_name="fieldday:someone-else")
    taken = owner.post(
        "/integrations/sms", {"sms_number": other, "csrf_token": csrf_from(integrations)}, follow_redirects=True
    )
    assert "isn&#39;t assigned to your business" in taken.get_data(as_text=True)
    mine = "+17375559912"
    twilio_fake.add_number(mine, friendly_name=f"fieldday:{t.subdomain}")
    good = owner.post(
        "/integrations/sms", {"sms_number": mine, "csrf_token": csrf_from(integrations)}, follow_redirects=True
    )
    assert f"Texts now go out from {mine}" in good.get_data(as_text=True)


def test_reminders_over_a_simulated_day_go_out_once_at_the_businesss_hour(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues
):
    from datetime import time, timedelta
    from zoneinfo import ZoneInfo

    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.extensions import db
    from app.messaging.services import queue_reminders
    from tenants.context import tenant_context
    from tenants.models import Tenant

    tz = ZoneInfo("America/New_York")
    t = make_tenant()
    f = seed_booking(t, techs=2)
    texting(app, t, twilio_fake)
    today = datetime.now(tz).date()
    tomorrow = today + timedelta(days=1)

    def at(day, hour):
        return datetime.combine(day, time(hour), tz).astimezone(UTC)

    staff_book(app, t, f, at(tomorrow, 10), "+15125550501")
    staff_book(app, t, f, at(tomorrow, 14), "+15125550502")
    staff_book(app, t, f, at(tomorrow + timedelta(days=1), 10), "+15125550503")  # not tomorrow
    canceled = staff_book(app, t, f, at(tomorrow, 16), "+15125550504")
    with app.app_context(), tenant_context(t.id, db.session):
        b = db.session.get(Booking, (t.id, canceled))
        booking_services.transition(b, "canceled", actor_type="user")
        db.session.commit()
    run_jobs()  # the confirmations
    before = len(twilio_fake.messages)
    queued_at = {}
    for quarter in range(96):  # the scheduler's day, every 15 minutes
        now = datetime.combine(today, time(0), tz).astimezone(UTC) + timedelta(minutes=15 * quarter)
        with app.app_context(), tenant_context(t.id, db.session):
            made = queue_reminders(db.session.get(Tenant, t.id), now=now)
            db.session.commit()
        if made:
            queued_at[now.astimezone(tz).strftime("%H:%M")] = made
        run_jobs()
    assert queued_at == {"17:00": 2}
    reminders = twilio_fake.messages[before:]
    assert sorted(m["to"] for m in reminders) == ["+15125550501", "+15125550502"]
    assert all("tomorrow at" in m["body"] for m in reminders)
