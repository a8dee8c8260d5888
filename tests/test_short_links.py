"""Short links in texts (docs/messages.md, "Short links"): a confirmation fits in one SMS segment,
the short link opens the real page on the business's own site only, e-mails keep the full link,
an expired link says so with the business's contact details, and nothing but a page of the
business's own site can ever be a target."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from tests.conftest import unique
from tests.test_booking import book, request, tomorrow_at
from tests.test_messages import rows, sent_to, texting
from tests.test_notifications import body_of, in_tenant, mails, with_contact

CODE = r"[0-9A-Za-z]{10}"


@pytest.fixture
def clean_queues(app):
    """Only this test's jobs in Redis (run_jobs runs what is queued), none left for others."""
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()
    yield
    with app.app_context():
        get_redis().flushdb()


def short_links(app, t) -> list:
    from app.extensions import db
    from app.links.models import ShortLink

    with in_tenant(app, t):
        out = [(s.code, s.target, s.created_at, s.expires_at) for s in db.session.scalars(db.select(ShortLink))]
        db.session.rollback()
        return out


def code_in(text: str, t) -> str:
    found = re.findall(rf"http://{re.escape(t.host)}:\d+/l/({CODE})\b", text)
    assert found, text
    return found[0]


def make_link(app, t, path: str, *, now: datetime) -> str:
    """A short link made by the service as of ``now``; returns its code."""
    from app.extensions import db
    from app.links import services as links
    from app.urls import site_url
    from tenants.models import Tenant

    with in_tenant(app, t):
        tenant = db.session.get(Tenant, t.id)
        short = links.shorten(tenant, site_url(tenant.subdomain, path), now=now)
        db.session.commit()
    return short.rsplit("/l/", 1)[1]


def set_contact(app, t, *, phone=None, email=None) -> None:
    from app.extensions import db
    from tenants.models import Tenant

    with in_tenant(app, t):
        tenant = db.session.get(Tenant, t.id)
        tenant.contact_phone, tenant.contact_email = phone, email
        db.session.commit()


# --- the text and the redirect ------------------------------------------------------------------------


def test_a_confirmation_text_fits_in_one_segment_and_its_link_opens_the_booking(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues, visitor
):
    from app.booking.tokens import make_manage_token
    from app.extensions import db
    from app.messaging.templating import sms_segments
    from app.urls import site_url

    t = make_tenant(unique("s"), name="Shine Detailing")
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = book(app, t, request(f, tomorrow_at(10), phone="+15125550701"))
    run_jobs()
    (text,) = sent_to(twilio_fake, "+15125550701")
    body = text["body"]
    assert body.startswith("Shine Detailing: you're booked for ") and "/b/" not in body
    chars, segments = sms_segments(body)
    assert chars <= 160 and segments == 1, body
    code = code_in(body, t)
    # The same text with the full link, as it went before: two segments, billed twice.
    from app.booking.models import Booking

    with in_tenant(app, t):
        booking = db.session.get(Booking, (t.id, booking_id))
        long_link = site_url(t.subdomain, f"/b/{make_manage_token(t.id, booking.id, booking.token_version)}")
        reference = booking.reference
        db.session.rollback()
    assert sms_segments(re.sub(rf"http://\S+/l/{code}", long_link, body))[1] == 2

    site = visitor(t.host)
    r = site.get(f"/l/{code}")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/b/")  # a path: the browser stays on this site
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"
    page = site.get(r.headers["Location"])
    assert page.status_code == 200 and f"Booking {reference}" in page.get_data(as_text=True)
    # One row, living as long as the manage link's own token (400 days).
    ((stored_code, target, created_at, expires_at),) = short_links(app, t)
    assert stored_code == code and target == r.headers["Location"]
    assert expires_at - created_at == timedelta(days=400)


def test_one_code_per_link_however_often_the_text_shows_it(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues
):
    from app.extensions import db
    from app.messaging import templating

    t = make_tenant(unique("s"))
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    with in_tenant(app, t):
        templating.save(
            t.id, "confirmation", "{business}: {when}. Move: {manage_link} Cancel: {manage_link}", user_id=None
        )
        db.session.commit()
    book(app, t, request(f, tomorrow_at(11), phone="+15125550702"))
    run_jobs()
    (text,) = sent_to(twilio_fake, "+15125550702")
    codes = re.findall(rf"/l/({CODE})\b", text["body"])
    assert len(codes) == 2 and codes[0] == codes[1]
    assert len(short_links(app, t)) == 1
    (row,) = rows(app, t)
    assert row["body"] == text["body"]  # the outbox keeps what was sent (a retry compares it with Twilio's)


def test_the_e_mail_keeps_the_full_link_and_makes_no_short_link(
    app, make_tenant, seed_booking, twilio_fake, smtp_server, run_jobs, clean_queues
):
    t = make_tenant(unique("s"))
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    book(app, t, with_contact(f, tomorrow_at(10), email="longlink@x.test"))
    run_jobs()
    (mail,) = mails(smtp_server, "longlink@x.test")
    text = body_of(mail)
    assert re.search(rf"http://{re.escape(t.host)}:\d+/b/\S{{60,}}", text), text
    assert "/l/" not in text
    assert short_links(app, t) == []


def test_payment_reminder_and_review_texts_carry_short_links_too(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues, visitor
):
    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.extensions import db
    from app.messaging.services import queue_payment_reminders
    from tenants.models import Tenant

    t = make_tenant(unique("s"))
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = book(app, t, request(f, tomorrow_at(10), phone="+15125550703"))
    with in_tenant(app, t):
        bk = db.session.get(Booking, (t.id, booking_id))
        booking_services.transition(bk, "in_progress", actor_type="user")
        booking_services.transition(bk, "completed", actor_type="user")  # asks for a review
        bk.finished_at = bk.ends_at
        db.session.commit()
        finished = bk.finished_at
    with in_tenant(app, t):
        assert queue_payment_reminders(db.session.get(Tenant, t.id), now=finished + timedelta(days=7, hours=1)) == 1
        db.session.commit()
    run_jobs()
    texts = [m["body"] for m in sent_to(twilio_fake, "+15125550703")]
    (review,) = [b for b in texts if "How did we do?" in b]
    (reminder,) = [b for b in texts if "still due" in b]
    site = visitor(t.host)
    for body, page in ((review, "/review/"), (reminder, "/pay/")):
        assert page not in body
        r = site.get(f"/l/{code_in(body, t)}")
        assert r.status_code == 302 and r.headers["Location"].startswith(page)
        assert site.get(r.headers["Location"]).status_code == 200
    lifetimes = {target.split("/")[1]: expires - created for _, target, created, expires in short_links(app, t)}
    assert lifetimes["review"] == timedelta(days=180) and lifetimes["pay"] == timedelta(days=400)


# --- on the booking site -----------------------------------------------------------------------------


def test_another_business_code_is_404_on_this_site(app, two_tenants, visitor):
    a, b = two_tenants
    now = datetime.now(UTC)
    b_code = make_link(app, b, "/reviews", now=now)
    a_code = make_link(app, a, "/book", now=now)
    r = visitor(a.host).get(f"/l/{b_code}")
    page = r.get_data(as_text=True)
    assert r.status_code == 404 and "Location" not in r.headers
    assert 'data-testid="short-link-unknown"' in page and a.name in page and b.name not in page
    assert r.headers["Cache-Control"] == "no-store"
    # Each code works on its own business's site only.
    assert visitor(b.host).get(f"/l/{b_code}").headers["Location"] == "/reviews"
    assert visitor(a.host).get(f"/l/{a_code}").headers["Location"] == "/book"
    assert visitor(b.host).get(f"/l/{a_code}").status_code == 404


@pytest.mark.parametrize("code", ["AAAAAAAAAA", "short", "x" * 33, "abc-def_ghij", "%3Cb%3Eabcdefghij"])
def test_unknown_or_malformed_codes_get_a_friendly_404(make_tenant, visitor, code):
    t = make_tenant()
    r = visitor(t.host).get(f"/l/{code}")
    assert r.status_code == 404
    assert "couldn’t find that link" in html.unescape(r.get_data(as_text=True))


def test_an_expired_link_says_so_and_how_to_reach_the_business(app, make_tenant, visitor):
    t = make_tenant()
    set_contact(app, t, phone="+1 512 555 0199", email="hello@shine.test")
    code = make_link(app, t, "/b/some-old-token", now=datetime.now(UTC) - timedelta(days=401))
    r = visitor(t.host).get(f"/l/{code}")
    page = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 410 and "Location" not in r.headers
    assert 'data-testid="short-link-expired"' in page and "This link has expired" in page
    assert 'href="tel:+15125550199"' in page and 'href="mailto:hello@shine.test"' in page and t.name in page
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    # No phone or e-mail on file: the page still says how (reply to the text).
    set_contact(app, t)
    page = html.unescape(visitor(t.host).get(f"/l/{code}").get_data(as_text=True))
    assert "Reply to our text" in page


def test_long_expired_links_are_dropped_when_the_business_next_shortens_one(app, make_tenant):
    from app.extensions import db
    from app.links import services as links
    from app.urls import site_url
    from tenants.models import Tenant

    t = make_tenant()
    now = datetime.now(UTC)
    gone = make_link(app, t, "/b/ancient", now=now - timedelta(days=400 + 91))
    kept = make_link(app, t, "/b/recently-expired", now=now - timedelta(days=400 + 89))
    with in_tenant(app, t):
        tenant = db.session.get(Tenant, t.id)
        long = site_url(t.subdomain, "/b/" + "x" * 120)
        links.shorten_in(tenant, f"Hi {long}", [long], now=now)
        db.session.commit()
    codes = {code for code, *_ in short_links(app, t)}
    assert kept in codes and gone not in codes and len(codes) == 2


def test_the_redirect_is_rate_limited_per_ip(make_tenant, visitor):
    from app.web.short_links import LIMIT_PER_IP

    t = make_tenant()
    site = visitor(t.host)
    allowed = int(LIMIT_PER_IP.split()[0])
    guesser = {"REMOTE_ADDR": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}
    statuses = [site.get("/l/AAAAAAAAAA", environ_overrides=guesser).status_code for _ in range(allowed + 1)]
    assert statuses[:allowed] == [404] * allowed and statuses[-1] == 429
    assert site.get("/l/AAAAAAAAAA").status_code == 404  # another address is not held back


# --- only our own pages ------------------------------------------------------------------------------


def test_only_a_page_of_the_business_site_can_be_shortened(app, two_tenants):
    from app.extensions import db
    from app.links import services as links
    from app.links.models import ShortLink
    from app.urls import site_url
    from tenants.models import Tenant

    a, b = two_tenants
    now = datetime.now(UTC)
    with in_tenant(app, a):
        tenant = db.session.get(Tenant, a.id)
        origin = site_url(a.subdomain, "")
        for bad in [
            "https://evil.example/b/token",
            site_url(b.subdomain, "/b/token"),  # another business's site
            origin,  # no path at all
            origin + "//evil.example/x",  # protocol-relative once the origin is cut off
            origin + "/\\evil.example/x",
            origin + ".evil.example/b/x",
            origin + "@evil.example/b/x",
            origin + "/b/x#fragment",
            origin + "/b/two words",
            origin + "/b/x\r\nSet-Cookie: a=b",
            "javascript:alert(1)//" + origin + "/",
            origin.replace("http://", "https://", 1) + "/b/x",  # another scheme (tests serve http)
            None,
        ]:
            with pytest.raises(links.NotOurLink):
                links.shorten(tenant, bad, now=now)
            assert not links.is_ours(tenant, bad)
        # shorten_in leaves values that aren't ours alone (and makes no row for them).
        google = "https://g.page/r/shine/review?" + "x" * 80
        assert links.shorten_in(tenant, f"Review us: {google}", [google], now=now) == f"Review us: {google}"
        assert db.session.scalar(db.select(db.func.count()).select_from(ShortLink)) == 0
        # The database refuses a target that isn't a same-site path, whoever writes it.
        for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "b/x", "/b/x y"]:
            with pytest.raises(IntegrityError), db.session.begin_nested():
                db.session.add(
                    ShortLink(
                        tenant_id=a.id,
                        code=links.new_code(),
                        target=target,
                        created_at=now,
                        expires_at=now + timedelta(1),
                    )
                )
                db.session.flush()
        db.session.rollback()


def test_codes_are_ten_random_base62_characters(app):
    from app.links import services as links

    codes = {links.new_code() for _ in range(2000)}
    assert len(codes) == 2000 and all(re.fullmatch(CODE, c) for c in codes)
    assert len(set("".join(codes))) == 62  # the whole alphabet is in use: 62**10 ≈ 2**59.5


# --- the template preview ----------------------------------------------------------------------------


def test_the_template_preview_counts_a_short_link_of_the_real_length(app, make_tenant, visitor):
    from app.messaging import templating

    t = make_tenant(unique("s"), name="Shine Detailing")
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    page = html.unescape(v.get("/messages/templates").get_data(as_text=True))
    bubble = re.search(r'data-testid="preview-text-confirmation">([^<]*)<', page).group(1)
    link = re.search(r"\S+/l/\S+", bubble).group(0)
    assert re.fullmatch(rf"http://{re.escape(t.host)}:\d+/l/{CODE}", link)  # this business's own site
    count = re.search(r'data-testid="preview-count-confirmation">([^<]*)<', page).group(1)
    assert count == f"{len(bubble)} characters · 1 text message"
    r = v.post(
        "/messages/templates/review_request/preview",
        {"body": templating.KINDS["review_request"].default, "csrf_token": v.dashboard_token()},
    )
    assert "1 text message" in r.get_data(as_text=True) and "/review/" not in r.get_data(as_text=True)
    # With the full signed link (what an e-mail carries) the same confirmation is two texts.
    long_text = templating.fill(templating.KINDS["confirmation"].default, {**templating.SAMPLE, "business": t.name})
    assert templating.sms_segments(long_text)[1] == 2


# --- review fixes ------------------------------------------------------------------------------------


def test_a_text_its_dedupe_key_already_sent_leaves_no_short_link(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues
):
    """send_pay_link (a job each of Stripe's events may queue again) calls queue_text directly and
    relies on its dedupe key: the text that doesn't go must leave no short link behind."""
    from app.booking.models import Booking
    from app.customers.models import Customer
    from app.extensions import db
    from app.messaging.services import queue_text
    from app.payments.tokens import make_pay_token
    from app.urls import site_url
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = book(app, t, request(f, tomorrow_at(10), phone="+15125550708"))
    run_jobs()
    assert len(short_links(app, t)) == 1  # the confirmation's
    made = []
    for _ in range(3):
        with in_tenant(app, t):
            tenant = db.session.get(Tenant, t.id)
            booking = db.session.get(Booking, (t.id, booking_id))
            link = site_url(t.subdomain, f"/pay/{make_pay_token(t.id, booking_id)}")
            message = queue_text(
                tenant,
                db.session.get(Customer, (t.id, booking.customer_id)),
                "pay_link",
                f"Pay here: {link}",
                booking_id=booking_id,
                dedupe_key=f"pay_link:test-{booking_id}",
                links=(link,),
            )
            made.append(message is not None)
            db.session.commit()
    assert made == [True, False, False]
    run_jobs()
    (text,) = [m["body"] for m in sent_to(twilio_fake, "+15125550708") if m["body"].startswith("Pay here")]
    codes = {code for code, *_ in short_links(app, t)}
    assert len(codes) == 2 and code_in(text, t) in codes


def test_anonymising_or_deleting_a_customer_ends_the_short_links_texted_to_them(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues, visitor
):
    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.customers import privacy
    from app.customers.models import Customer
    from app.extensions import db
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t, techs=3)
    texting(app, t, twilio_fake)
    phones = {"anonymised": "+15125550709", "deleted": "+15125550710", "kept": "+15125550711"}
    ids = {who: book(app, t, request(f, tomorrow_at(10), phone=phone)) for who, phone in phones.items()}
    run_jobs()
    codes = {who: code_in(sent_to(twilio_fake, phone)[0]["body"], t) for who, phone in phones.items()}
    site = visitor(t.host)
    assert all(site.get(f"/l/{c}").status_code == 302 for c in codes.values())

    now = datetime.now(UTC)
    with in_tenant(app, t):
        tenant = db.session.get(Tenant, t.id)
        customers = {}
        for who in ("anonymised", "deleted"):  # nothing upcoming, or neither would be allowed
            bk = db.session.get(Booking, (t.id, ids[who]))
            booking_services.cancel_booking(tenant, bk, actor_type="user", now=now)
            customers[who] = bk.customer_id
        db.session.commit()
        privacy.anonymise_customer(
            tenant, db.session.get(Customer, (t.id, customers["anonymised"])), actor_id=None, now=now
        )
        privacy.schedule_deletion(db.session.get(Customer, (t.id, customers["deleted"])), actor_id=None, now=now)
        db.session.commit()
        assert privacy.purge_customer(customers["deleted"], now=now + privacy.GRACE + timedelta(minutes=1))
        db.session.commit()

    for who in ("anonymised", "deleted"):
        r = site.get(f"/l/{codes[who]}")
        assert r.status_code == 404 and "Location" not in r.headers, who
        assert 'data-testid="short-link-unknown"' in r.get_data(as_text=True)
    assert site.get(f"/l/{codes['kept']}").status_code == 302  # another customer's link is untouched
    assert {code for code, *_ in short_links(app, t)} >= {codes["kept"]}
    assert not {codes["anonymised"], codes["deleted"]} & {code for code, *_ in short_links(app, t)}


def test_head_and_odd_codes_never_500(app, make_tenant, visitor):
    t = make_tenant()
    code = make_link(app, t, "/book", now=datetime.now(UTC))
    site = visitor(t.host)
    r = site.request("HEAD", f"/l/{code}")
    assert r.status_code == 302 and r.headers["Location"] == "/book"
    assert site.get(f"/l/{code.swapcase()}").status_code == 404  # codes are case-sensitive
    for odd in ["x" * 5000, "%00" * 10, "%E2%80%AE" + code, "١٢٣٤٥٦٧٨٩٠", code + "%20"]:
        assert site.get(f"/l/{odd}").status_code == 404, odd


# --- in a browser ------------------------------------------------------------------------------------


def test_a_texted_link_on_a_phone_lands_on_the_booking_and_an_expired_one_explains(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues, new_context, live_server
):
    from playwright.sync_api import expect

    from tests.pages import PHONE, screenshot

    t = make_tenant(unique("s"), name="Shine Detailing")
    set_contact(app, t, phone="+1 512 555 0199", email="hello@shine.test")
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    book(app, t, request(f, tomorrow_at(10), phone="+15125550704"))
    run_jobs()
    (text,) = sent_to(twilio_fake, "+15125550704")
    link = re.search(r"http://\S+/l/\S+", text["body"]).group(0)  # exactly what the phone shows
    page = new_context(PHONE).new_page()
    page.goto(link)
    assert re.fullmatch(rf"http://{re.escape(t.host)}:\d+/b/\S+", page.url)
    expect(page.get_by_test_id("manage")).to_be_visible()
    expect(page.get_by_test_id("booking-status")).to_have_text("Confirmed")
    expired = make_link(app, t, "/b/old", now=datetime.now(UTC) - timedelta(days=401))
    page.goto(live_server.url(t.host, f"/l/{expired}"))
    expect(page.get_by_test_id("short-link-expired")).to_contain_text("This link has expired")
    expect(page.get_by_role("link", name="Call +1 512 555 0199")).to_be_visible()
    screenshot(page, "short-link-expired-phone")
