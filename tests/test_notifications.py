"""Every message a customer is owed goes out once, by text or else by e-mail, or the owner sees
why not: e-mail fallback, the monthly text allowance, payment reminders, changed-ETA texts and
the reminder fan-out for businesses that only e-mail (issue 7)."""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tests.test_booking import book, request, tomorrow_at
from tests.test_messages import rows, sent_to, staff_book, texting


def mails(smtp_server, address: str) -> list:
    return [m for m in smtp_server.messages if m["To"] == address]


def body_of(mail) -> str:
    return mail.get_payload(decode=True).decode()


def with_contact(facts, starts, *, phone="", email=""):
    req = request(facts, starts, phone=phone)
    return dataclasses.replace(req, customer={**req.customer, "phone": phone, "email": email})


@contextmanager
def in_tenant(app, t):
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        yield


def test_a_customer_without_a_mobile_gets_the_confirmation_by_e_mail_once(
    app, make_tenant, seed_booking, twilio_fake, smtp_server, run_jobs
):
    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    book(app, t, with_contact(f, tomorrow_at(10), email="nomobile@x.test"))
    run_jobs()
    run_jobs()  # a second pass (a retried job, a sweep) sends nothing more
    (mail,) = mails(smtp_server, "nomobile@x.test")
    assert "your booking is confirmed" in mail["Subject"]
    text = body_of(mail)
    assert "you're booked for" in text and f"http://{t.host}:" in text and "/b/" in text
    (row,) = rows(app, t)
    assert row["kind"] == "confirmation" and row["status"] == "sent"


def test_an_opted_out_customer_is_e_mailed_not_texted(
    app, make_tenant, seed_booking, twilio_fake, smtp_server, run_jobs
):
    from app.customers.services import find_by_phone
    from app.extensions import db

    t = make_tenant()
    f = seed_booking(t, techs=2)
    texting(app, t, twilio_fake)
    book(app, t, with_contact(f, tomorrow_at(10), phone="+15125550611", email="stop@x.test"))
    run_jobs()
    assert len(sent_to(twilio_fake, "+15125550611")) == 1  # texted while they took texts
    with in_tenant(app, t):
        find_by_phone("+15125550611").sms_opted_out_at = datetime.now(UTC)
        db.session.commit()
    book(app, t, with_contact(f, tomorrow_at(13), phone="+15125550611", email="stop@x.test"))
    run_jobs()
    assert len(sent_to(twilio_fake, "+15125550611")) == 1  # STOP means no more texts...
    (mail,) = mails(smtp_server, "stop@x.test")  # ...but the confirmation still arrives
    assert "you're booked for" in body_of(mail)


def test_the_monthly_text_allowance_switches_to_e_mail_and_the_owner_sees_usage(
    app, make_tenant, seed_booking, twilio_fake, smtp_server, run_jobs, visitor
):
    from app.extensions import db
    from app.messaging.models import Message

    t = make_tenant()
    f = seed_booking(t, techs=3)
    number = texting(app, t, twilio_fake)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    assert "0 of 100 texts used this month" in owner.get("/messages").get_data(as_text=True)
    with in_tenant(app, t):  # the starter plan's 100 texts, used this month
        for i in range(100):
            db.session.add(
                Message(
                    tenant_id=t.id,
                    direction="out",
                    kind="reply",
                    body=f"hi {i}",
                    to_addr="+15125550000",
                    from_addr=number,
                    status="delivered",
                )
            )
        db.session.commit()
    book(app, t, with_contact(f, tomorrow_at(10), phone="+15125550621", email="quota@x.test"))
    run_jobs()
    assert sent_to(twilio_fake, "+15125550621") == []  # no 101st text...
    (mail,) = mails(smtp_server, "quota@x.test")  # ...the confirmation went by e-mail
    assert "you're booked for" in body_of(mail)
    page = owner.get("/messages").get_data(as_text=True)
    assert "100 of 100 texts used this month" in page and "allowance reached" in page
    assert "Texts this month" in owner.get("/plan").get_data(as_text=True)
    # The owner's own reply is refused with the reason, and nothing is queued.
    with in_tenant(app, t):
        customer_id = db.session.scalar(db.select(Message.customer_id).where(Message.to_addr == "quota@x.test"))
        db.session.rollback()
    r = owner.post(f"/messages/{customer_id}", {"body": "See you soon"}, token_page="/messages", follow_redirects=True)
    assert "all 100 texts your plan includes this month" in r.get_data(as_text=True).replace("&#39;", "'")
    assert not [m for m in rows(app, t) if m["kind"] == "reply" and m["body"] == "See you soon"]


def test_payment_reminders_go_at_seven_and_fourteen_days_once_each(
    app, make_tenant, seed_booking, twilio_fake, run_jobs
):
    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.extensions import db
    from app.messaging.services import queue_payment_reminders
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t, techs=2)
    texting(app, t, twilio_fake)
    owing = staff_book(app, t, f, tomorrow_at(10), "+15125550631")
    settled = staff_book(app, t, f, tomorrow_at(10), "+15125550632")
    with in_tenant(app, t):
        for booking_id in (owing, settled):
            bk = db.session.get(Booking, (t.id, booking_id))
            booking_services.transition(bk, "in_progress", actor_type="user")
            booking_services.transition(bk, "completed", actor_type="user")
            bk.finished_at = bk.ends_at
        db.session.get(Booking, (t.id, settled)).payment_status = "paid"
        db.session.commit()
        finished = db.session.get(Booking, (t.id, owing)).finished_at
        db.session.rollback()
    run_jobs()
    before = len(sent_to(twilio_fake, "+15125550631"))

    def run(at):
        with in_tenant(app, t):
            made = queue_payment_reminders(db.session.get(Tenant, t.id), now=at)
            db.session.commit()
        run_jobs()
        return made

    assert run(finished + timedelta(days=6, hours=23)) == 0  # not yet
    assert run(finished + timedelta(days=7, hours=1)) == 1
    assert run(finished + timedelta(days=8)) == 0  # once
    assert run(finished + timedelta(days=14, hours=1)) == 1
    assert run(finished + timedelta(days=15)) == 0
    texts = sent_to(twilio_fake, "+15125550631")[before:]
    # The pay link goes as a short link in a text (tests/test_short_links.py follows one to /pay/).
    assert len(texts) == 2 and all("still due for booking" in m["body"] and "/l/" in m["body"] for m in texts)
    assert not [m for m in sent_to(twilio_fake, "+15125550632") if "still due" in m["body"]]  # paid: no reminder


def test_a_changed_eta_is_texted_once_when_it_moves_enough(app, make_tenant, seed_booking, twilio_fake, run_jobs):
    from app.booking.models import Booking
    from app.dispatch import eta
    from app.extensions import db

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = staff_book(app, t, f, tomorrow_at(10), "+15125550641")
    run_jobs()
    with in_tenant(app, t):
        starts = db.session.get(Booking, (t.id, booking_id)).starts_at
        db.session.rollback()
    now = starts - timedelta(hours=2)

    def moved(to, at):
        with in_tenant(app, t):
            told = eta.notify_new_etas([(booking_id, None, to)], now=at)
        run_jobs()
        return told

    assert moved(starts + timedelta(minutes=10), now) == 0  # under 15 minutes: not worth a text
    assert moved(starts + timedelta(minutes=25), now) == 1
    assert moved(starts + timedelta(minutes=25), now + timedelta(minutes=40)) == 0  # already told that
    assert moved(starts + timedelta(minutes=45), now + timedelta(minutes=10)) == 0  # not twice in 30 minutes
    # That held-back change isn't reported again by later recomputes (eta_at already moved), so the
    # technician's next action passes every stop still to come: the customer hears it then.
    local = ZoneInfo("America/New_York")
    with in_tenant(app, t):
        b = db.session.get(Booking, (t.id, booking_id))
        b.eta_at = starts + timedelta(minutes=45)
        db.session.commit()
        pending = eta.stops_to_tell(b.technician_id, starts.astimezone(local).date(), "America/New_York")
        assert eta.notify_new_etas(pending, now=now + timedelta(minutes=45)) == 1
    run_jobs()
    # Back to a time told before is still a change for the customer (keyed by the previous text).
    assert moved(starts + timedelta(minutes=25), now + timedelta(minutes=80)) == 1
    texts = [m["body"] for m in sent_to(twilio_fake, "+15125550641") if "now expects to arrive" in m["body"]]
    assert len(texts) == 3
    assert (starts + timedelta(minutes=25)).astimezone(local).strftime("%-I:%M") in texts[0]
    assert (starts + timedelta(minutes=45)).astimezone(local).strftime("%-I:%M") in texts[1]


def test_businesses_that_only_e_mail_still_send_day_before_reminders(
    app, make_tenant, seed_booking, smtp_server, run_jobs
):
    from app.extensions import db
    from app.messaging.jobs import sweep_reminders
    from app.messaging.services import queue_reminders
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    with in_tenant(app, t):
        db.session.get(Tenant, t.id).reminder_hour = 6  # so "now" is past it in any test hour but the small ones
        db.session.commit()
    tz = ZoneInfo("America/New_York")
    tomorrow = datetime.now(tz).date() + timedelta(days=1)
    book(app, t, with_contact(f, datetime.combine(tomorrow, time(16), tz).astimezone(UTC), email="remind@x.test"))
    run_jobs()
    with app.app_context():
        assert sweep_reminders() >= 1  # this business is found by its bookings, not by a texting number
    run_jobs()  # its reminder job (real clock: due or not yet, depending on the hour)
    with in_tenant(app, t):  # and at 18:00 local the day before, certainly due: one reminder either way
        evening = datetime.combine(tomorrow - timedelta(days=1), time(18), tz).astimezone(UTC)
        queue_reminders(db.session.get(Tenant, t.id), now=evening)
        db.session.commit()
    run_jobs()
    subjects = [m["Subject"] for m in mails(smtp_server, "remind@x.test")]
    assert len([s for s in subjects if "see you tomorrow" in s]) == 1
    assert len([s for s in subjects if "confirmed" in s]) == 1


def test_a_refund_never_turns_into_a_payment_reminder(app, make_tenant, seed_booking, twilio_fake, run_jobs):
    """A goodwill refund on a paid job makes the balance "partly paid", but the customer owes nothing."""
    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.extensions import db
    from app.messaging.services import queue_payment_reminders
    from app.payments import services as payments
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = staff_book(app, t, f, tomorrow_at(10), "+15125550651")
    with in_tenant(app, t):
        bk = db.session.get(Booking, (t.id, booking_id))
        booking_services.transition(bk, "in_progress", actor_type="user")
        booking_services.transition(bk, "completed", actor_type="user")
        bk.finished_at = bk.ends_at
        tenant = db.session.get(Tenant, t.id)
        cash = payments.record_manual(bk, method="cash", amount_cents=bk.price_cents)
        payments.refund(cash.id, 1000, request_key="goodwill")
        db.session.commit()
        assert bk.payment_status != "paid"  # the refund shows...
        assert queue_payment_reminders(tenant, now=bk.finished_at + timedelta(days=7, hours=1)) == 0  # ...no dunning
        db.session.rollback()


def test_a_template_that_renders_empty_falls_back_to_our_wording(app, make_tenant):
    """A template of only optional variables is valid, but may be empty for one customer: that
    customer still gets our wording, not nothing (an empty body would be refused by the database)."""
    from app.extensions import db
    from app.messaging import templating

    t = make_tenant()
    values = {"business": "Acme", "time": "9:00 AM", "address": "1 Main St", "manage_link": "http://x/b/1"}
    with in_tenant(app, t):
        templating.save(t.id, "reminder", "{arrival_window}", user_id=None)
        assert templating.render(t.id, "reminder", {**values, "arrival_window": "Within 60 min."}) == "Within 60 min."
        fallback = templating.render(t.id, "reminder", {**values, "arrival_window": ""})
        assert fallback.startswith("Acme: a reminder that we'll see you tomorrow at 9:00 AM")
        db.session.rollback()


def test_a_second_job_for_an_e_mail_being_sent_waits_instead_of_sending_twice(
    app, make_tenant, seed_booking, smtp_server, run_jobs
):
    import pytest

    from app.extensions import db
    from app.messaging import services
    from app.messaging.models import Message

    t = make_tenant()
    f = seed_booking(t)
    book(app, t, with_contact(f, tomorrow_at(10), email="twice@x.test"))
    with in_tenant(app, t):
        m = db.session.scalar(db.select(Message).where(Message.to_addr == "twice@x.test"))
        m.status, m.sent_at = "sending", datetime.now(UTC)  # another job is mid-send right now
        db.session.commit()
        with pytest.raises(RuntimeError):
            services.send(m.id)
        db.session.rollback()
    assert mails(smtp_server, "twice@x.test") == []
