"""Customer reviews (issue 7): every finished job asks for one (no sentiment gating), the customer
posts it through a signed link on the business's own site, the site shows the average and the
latest, and the owner replies and sets the Google review link. Tenant crossing answers 404."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.helpers import csrf_from
from tests.pages import LAPTOP, PHONE, LoginPage, screenshot
from tests.test_booking import book, request, tomorrow_at

_phones = iter(range(600, 999))


def in_tenant(app, t, fn):
    """Run ``fn()`` as the business (as a view or job would) and commit."""
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


def finished_booking(app, t, f, *, day: int = 0, hour: int = 10, phone: str | None = None) -> uuid.UUID:
    """A booking made online and completed by staff through the status machine."""
    from app.booking import services
    from app.booking.models import Booking
    from app.extensions import db

    phone = phone or f"+1512555{next(_phones):04d}"
    booking_id = book(app, t, request(f, tomorrow_at(hour) + timedelta(days=day), phone=phone))

    def finish():
        booking = db.session.get(Booking, (t.id, booking_id))
        services.transition(booking, "in_progress", actor_type="system")
        services.transition(booking, "completed", actor_type="system")

    in_tenant(app, t, finish)
    return booking_id


def token_for(app, t, booking_id) -> str:
    from app.reviews.tokens import make_review_token

    with app.app_context():
        return make_review_token(t.id, booking_id)


def link_for(app, t, booking_id) -> str:
    """The link a customer gets, as the review_link service builds it."""
    from app.booking.models import Booking
    from app.extensions import db
    from app.reviews import services as reviews
    from tenants.models import Tenant

    return in_tenant(
        app, t, lambda: reviews.review_link(db.session.get(Tenant, t.id), db.session.get(Booking, (t.id, booking_id)))
    )


def submit(app, t, booking_id, now=None, **fields):
    """Post a review through the service (seeding; the page itself is tested below)."""
    from app.booking.models import Booking
    from app.extensions import db
    from app.reviews import services as reviews

    data = {"rating": "5"} | {k: str(v) for k, v in fields.items()}
    return in_tenant(
        app,
        t,
        lambda: (
            reviews.submit_review(db.session.get(Booking, (t.id, booking_id)), data, now=now or datetime.now(UTC)).id
        ),
    )


def review_rows(app, t) -> list[dict]:
    from app.extensions import db
    from app.reviews.models import Review
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = [
            {c.name: getattr(r, c.name) for c in Review.__table__.columns}
            for r in db.session.scalars(db.select(Review).order_by(Review.created_at))
        ]
        db.session.rollback()
        return out


def stats(app, t):
    from app.reviews import services as reviews

    return in_tenant(app, t, lambda: reviews.review_stats(t.id))


def set_google_link(app, t, url: str | None) -> None:
    from app.extensions import db
    from tenants.models import Tenant

    in_tenant(app, t, lambda: setattr(db.session.get(Tenant, t.id), "google_review_url", url))


def owner_of(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def review_messages(app, t) -> list:
    from app.extensions import db
    from app.messaging.models import Message
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        out = [
            (m.channel, m.status, m.to_addr, m.body, m.dedupe_key)
            for m in db.session.scalars(db.select(Message).where(Message.kind == "review_request"))
        ]
        db.session.rollback()
        return out


@pytest.fixture
def clean_queues(app):
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()


# --- The review page, in a browser ---------------------------------------------------------------


@pytest.mark.browser
def test_a_customer_reviews_a_finished_job_and_the_owner_replies(
    app, make_tenant, seed_booking, new_context, live_server
):
    t = make_tenant(name="Shine Mobile Detailing")
    f = seed_booking(t)
    set_google_link(app, t, "https://g.page/r/shine-mobile/review")
    earlier = finished_booking(app, t, f, hour=9)
    submit(app, t, earlier, rating=4, comment="Good job on the seats.", author_name="Robin P.")
    booking_id = finished_booking(app, t, f, hour=13)
    link = link_for(app, t, booking_id)
    assert link.startswith(f"http://{t.host}:{live_server.port}/review/")

    page = new_context(viewport=PHONE).new_page()
    response = page.goto(link)
    assert response.status == 200 and response.headers["referrer-policy"] == "no-referrer"
    expect(page.get_by_test_id("field-author_name")).to_have_value("Casey C.")  # first name, last initial
    expect(page.get_by_test_id("review-booking")).to_contain_text("Express wash")
    # Posting without stars: a clear error, the rest of the form kept.
    page.get_by_test_id("field-comment").fill("Spotless inside and out.")
    page.get_by_test_id("review-submit").click()
    expect(page.get_by_test_id("error-rating")).to_have_text("Choose a rating: from 1 to 5 stars.")
    expect(page.get_by_test_id("field-comment")).to_have_value("Spotless inside and out.")
    assert len(review_rows(app, t)) == 1

    # Stars are radios behind labels: click the fifth star, and pick sub-ratings.
    page.locator("label[for=f-rating-5]").click()
    expect(page.get_by_role("radio", name="5 stars: Excellent")).to_be_checked()
    page.locator("label[for=f-quality-5]").click()
    page.locator("label[for=f-punctuality-4]").click()
    page.locator("label[for=f-value-5]").click()
    expect(page.get_by_text("Excellent", exact=True)).to_be_visible()  # the caption for the chosen star
    fill = page.locator("label[for=f-rating-5] svg").evaluate("el => getComputedStyle(el).fill")
    assert fill == "rgb(245, 158, 11)"
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "review-form-phone", {"width": 375, "height": 812})
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
    page.get_by_test_id("review-submit").click()

    expect(page.get_by_test_id("review-thanks")).to_contain_text("Thank you, Casey!")
    google = page.get_by_test_id("google-review-link")
    expect(google).to_have_attribute("href", "https://g.page/r/shine-mobile/review")
    expect(google).to_have_attribute("rel", "noopener noreferrer")
    screenshot(page, "review-thanks-phone")
    (_, row) = review_rows(app, t)
    assert (row["rating"], row["quality"], row["punctuality"], row["value"]) == (5, 5, 4, 5)
    assert row["comment"] == "Spotless inside and out." and row["author_name"] == "Casey C."

    # The booking site's home page: average and the latest reviews.
    page.goto(live_server.url(t.host, "/"))
    expect(page.get_by_test_id("hero-rating")).to_contain_text("4.5")
    expect(page.get_by_test_id("review-average")).to_contain_text("2 reviews")
    expect(page.get_by_test_id("recent-reviews").get_by_test_id("review")).to_have_count(2)
    expect(page.get_by_test_id("recent-reviews").get_by_test_id("review").first).to_contain_text("Spotless")
    screenshot(page, "site-home-reviews-phone")
    screenshot(page, "site-home-reviews-laptop", LAPTOP)
    page.set_viewport_size(PHONE)

    # The owner replies from the dashboard.
    owner_page = new_context(viewport=LAPTOP).new_page()
    login = LoginPage(owner_page, live_server)
    login.open()
    login.log_in(t.owner.email, t.owner.password)
    owner_page.goto(live_server.url("app.localhost", "/reviews"))
    expect(owner_page.get_by_test_id("dash-average")).to_have_text("4.5")
    first = owner_page.get_by_test_id("dash-review").first
    expect(first).to_contain_text("Spotless inside and out.")
    first.get_by_test_id("reply-toggle").click()
    first.get_by_test_id("reply-text").fill("Thanks Casey, see you next time!")
    first.get_by_test_id("reply-save").click()
    expect(owner_page.get_by_test_id("flash")).to_contain_text("Reply to Casey C. posted")
    expect(owner_page.get_by_test_id("dash-review-reply").first).to_contain_text("see you next time")
    screenshot(owner_page, "dashboard-reviews-laptop")
    screenshot(owner_page, "dashboard-reviews-phone", PHONE)

    page.goto(live_server.url(t.host, "/reviews"))
    expect(page.get_by_test_id("review-reply").first).to_contain_text("Thanks Casey, see you next time!")
    screenshot(page, "site-reviews-phone")


# --- Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rating": "0"}, "rating", "A rating must be from 1 to 5 stars."),
        ({"rating": "6"}, "rating", "A rating must be from 1 to 5 stars."),
        ({}, "rating", "Choose a rating: from 1 to 5 stars."),
        ({"rating": "five"}, "rating", "A rating must be from 1 to 5 stars."),
        ({"rating": "5", "quality": "9"}, "quality", "Quality must be from 1 to 5 stars."),
        (
            {"rating": "5", "comment": "x" * 2001},
            "comment",
            "Keep your comment to 2,000 characters (this one has 2,001).",
        ),
        ({"rating": "5", "author_name": "N" * 81}, "author_name", "Use at most 80 characters for your name."),
    ],
)
def test_bad_reviews_get_a_clear_error_and_save_nothing(
    app, make_tenant, seed_booking, visitor, fields, field, message
):
    t = make_tenant()
    f = seed_booking(t)
    token = token_for(app, t, finished_booking(app, t, f))
    v = visitor(t.host)
    r = v.post(f"/review/{token}", fields, token_page=f"/review/{token}")
    body = r.get_data(as_text=True)
    assert r.status_code == 422
    assert f'data-testid="error-{field}">{message}' in body.replace("&#39;", "'")
    assert 'aria-invalid="true"' in body
    assert review_rows(app, t) == []


def test_the_customer_may_change_their_review_and_the_reply_stays(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    booking_id = finished_booking(app, t, f)
    token = token_for(app, t, booking_id)
    v = visitor(t.host)
    r = v.post(f"/review/{token}", {"rating": "2", "comment": "Late."}, token_page=f"/review/{token}")
    assert r.status_code == 302 and r.headers["Location"].endswith("?thanks=1")
    owner = owner_of(visitor, t)
    review_id = review_rows(app, t)[0]["id"]
    page = owner.get("/reviews").get_data(as_text=True)
    r = owner.post(f"/reviews/{review_id}/reply", {"reply": "Sorry, traffic!", "csrf_token": csrf_from(page)})
    assert r.status_code == 302

    page = v.get(f"/review/{token}").get_data(as_text=True)
    assert "Change your review" in page and 'value="2" checked' in page  # the form shows what they said
    r = v.post(f"/review/{token}", {"rating": "4", "comment": "Late, but great work."}, token_page=f"/review/{token}")
    assert r.status_code == 302
    (row,) = review_rows(app, t)  # still one review per booking
    assert (row["rating"], row["comment"], row["reply"]) == (4, "Late, but great work.", "Sorry, traffic!")
    assert row["updated_at"] > row["created_at"]


def test_a_review_is_locked_after_sixty_days(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    booking_id = finished_booking(app, t, f)
    submit(app, t, booking_id, now=datetime.now(UTC) - timedelta(days=61), rating=3, comment="Fine.")
    token = token_for(app, t, booking_id)
    v = visitor(t.host)
    page = v.get(f"/review/{token}").get_data(as_text=True)
    assert 'data-testid="review-locked"' in page and "review-form" not in page
    r = v.post(f"/review/{token}", {"rating": "1"}, token_page="/book")
    assert r.status_code == 409 and "can be changed for 60 days" in r.get_data(as_text=True)
    assert review_rows(app, t)[0]["rating"] == 3


def test_only_finished_jobs_can_be_reviewed(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    booking_id = book(app, t, request(f, tomorrow_at(10)))  # confirmed, not done yet
    token = token_for(app, t, booking_id)
    v = visitor(t.host)
    r = v.get(f"/review/{token}")
    assert r.status_code == 409 and "isn't finished yet" in html.unescape(r.get_data(as_text=True))
    r = v.post(f"/review/{token}", {"rating": "5"}, token_page="/book")
    assert r.status_code == 409 and review_rows(app, t) == []


def test_bad_and_expired_links_get_the_sites_404(app, make_tenant, seed_booking, visitor, monkeypatch):
    from app.booking import tokens as booking_tokens
    from app.reviews import tokens as review_tokens

    t = make_tenant()
    f = seed_booking(t)
    booking_id = finished_booking(app, t, f)
    token = token_for(app, t, booking_id)
    with app.app_context():
        manage = booking_tokens.make_manage_token(t.id, booking_id, 1)  # another kind of link: other salt
        unknown = review_tokens.make_review_token(t.id, uuid.uuid4())
    v = visitor(t.host)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    for bad in (flipped, manage, unknown, "nonsense"):
        r = v.get(f"/review/{bad}")
        assert r.status_code == 404, bad
        assert 'data-testid="error-page"' in r.get_data(as_text=True)  # the site's own friendly page
        assert r.headers["Referrer-Policy"] == "no-referrer"
    monkeypatch.setattr(review_tokens, "MAX_AGE_S", -1)
    assert v.get(f"/review/{token}").status_code == 404
    assert review_rows(app, t) == []


# --- Tenant crossing -------------------------------------------------------------------------------


def test_tenant_crossing_links_replies_and_listings(app, two_tenants, seed_booking, visitor):
    a, b = two_tenants
    fa, fb = seed_booking(a), seed_booking(b)
    a_booking = finished_booking(app, a, fa)
    b_booking = finished_booking(app, b, fb)
    submit(app, a, a_booking, rating=5, comment="Alpha was superb.")
    b_review = submit(app, b, b_booking, rating=1, comment="Bravo-only secret words.")
    a_token = token_for(app, a, a_booking)

    # A's review link on B's site: 404, and nothing written anywhere.
    vb = visitor(b.host)
    assert vb.get(f"/review/{a_token}").status_code == 404
    r = vb.post(f"/review/{a_token}", {"rating": "1", "comment": "crossed"}, token_page="/book")
    assert r.status_code == 404
    assert [x["comment"] for x in review_rows(app, a)] == ["Alpha was superb."]
    assert [x["comment"] for x in review_rows(app, b)] == ["Bravo-only secret words."]

    # A's owner replying to B's review id: 404, B's review untouched.
    owner_a = owner_of(visitor, a)
    token = owner_a.dashboard_token()
    r = owner_a.post(f"/reviews/{b_review}/reply", {"reply": "Hijack", "csrf_token": token})
    assert r.status_code == 404
    r = owner_a.post(f"/reviews/{b_review}/reply", {"action": "remove", "csrf_token": token})
    assert r.status_code == 404
    assert review_rows(app, b)[0]["reply"] is None
    assert "Bravo-only" not in owner_a.get("/reviews").get_data(as_text=True)

    # A's site never shows B's reviews (and counts only A's).
    va = visitor(a.host)
    for path in ("/", "/reviews"):
        body = va.get(path).get_data(as_text=True)
        assert "Alpha was superb." in body and "Bravo-only" not in body
    assert stats(app, a).count == 1 and stats(app, a).average == Decimal("5.0")


def test_technicians_cannot_open_reviews(app, make_tenant, visitor):
    t = make_tenant(techs=1)
    v = visitor("app.localhost")
    v.login(t.people["tech0"].email, t.people["tech0"].password)
    assert v.get("/reviews").status_code == 403
    token = v.dashboard_token()
    r = v.post("/reviews/google-link", {"google_review_url": "https://g.page/r/x", "csrf_token": token})
    assert r.status_code == 403


# --- Asking for reviews ------------------------------------------------------------------------------


def test_a_review_request_is_texted_once_per_booking(
    app, make_tenant, seed_booking, twilio_fake, run_jobs, clean_queues
):
    from app.booking.models import Booking
    from app.extensions import db
    from app.reviews import services as reviews
    from tests.test_messages import sent_to, texting

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = finished_booking(app, t, f, phone="+15125550481")  # completion asks (booking transition())
    run_jobs()
    assert len([m for m in sent_to(twilio_fake, "+15125550481") if "How did we do?" in m["body"]]) == 1
    # Asked again (a retried job, a second hook): still one text.
    for _ in range(2):
        in_tenant(app, t, lambda: reviews.request_review(db.session.get(Booking, (t.id, booking_id))))
    run_jobs()
    texts = [m for m in sent_to(twilio_fake, "+15125550481") if "How did we do?" in m["body"]]
    assert len(texts) == 1
    assert len(review_messages(app, t)) == 1
    link = re.search(r"http://\S+/l/\w+", texts[0]["body"]).group(0)  # texts carry short links
    assert link.startswith(f"http://{t.host}")
    path = "/l/" + link.split("/l/", 1)[1]
    with app.test_client() as c:
        r = c.get(path, base_url=f"http://{t.host}")
        assert r.status_code == 302 and r.headers["Location"].startswith("/review/")
        assert c.get(r.headers["Location"], base_url=f"http://{t.host}").status_code == 200  # it opens the form


def test_completing_a_job_from_the_dashboard_texts_a_review_request(
    app, make_tenant, seed_booking, visitor, twilio_fake, run_jobs, clean_queues
):
    from tests.test_messages import sent_to, texting

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = book(app, t, request(f, tomorrow_at(10), phone="+15125550483"))
    owner = owner_of(visitor, t)
    for status in ("in_progress", "completed"):
        page = owner.get(f"/bookings/{booking_id}").get_data(as_text=True)
        r = owner.post(f"/bookings/{booking_id}/status", {"status": status, "csrf_token": csrf_from(page)})
        assert r.status_code == 302
    run_jobs()
    (text,) = [m for m in sent_to(twilio_fake, "+15125550483") if "How did we do?" in m["body"]]
    assert "/l/" in text["body"]  # its review link, short
    (row,) = review_messages(app, t)
    assert row[4] == f"review_request:{booking_id}"


def test_no_review_request_before_the_job_is_done(app, make_tenant, seed_booking, twilio_fake, clean_queues):
    from app.booking.models import Booking
    from app.extensions import db
    from app.reviews import services as reviews
    from tests.test_messages import texting

    t = make_tenant()
    f = seed_booking(t)
    texting(app, t, twilio_fake)
    booking_id = book(app, t, request(f, tomorrow_at(10), phone="+15125550482"))
    assert in_tenant(app, t, lambda: reviews.request_review(db.session.get(Booking, (t.id, booking_id)))) is None
    assert review_messages(app, t) == []


# --- Figures --------------------------------------------------------------------------------------------


def test_average_count_and_sub_ratings(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    assert stats(app, t).count == 0 and stats(app, t).average is None
    body = visitor(t.host).get("/").get_data(as_text=True)
    assert 'data-testid="reviews-empty"' in body and 'data-testid="hero-rating"' not in body

    ids = [finished_booking(app, t, f, hour=h) for h in (9, 11, 13)]
    submit(app, t, ids[0], rating=5, quality=5, punctuality=4)
    submit(app, t, ids[1], rating=5, quality=4)
    submit(app, t, ids[2], rating=4)
    s = stats(app, t)
    # 14 / 3 = 4.67 → 4.7; sub-ratings average only the answers given.
    assert (s.count, s.average, s.quality, s.punctuality, s.value) == (
        3,
        Decimal("4.7"),
        Decimal("4.5"),
        Decimal("4.0"),
        None,
    )
    assert (s.needs_reply, s.low) == (3, 0)
    body = visitor(t.host).get("/").get_data(as_text=True)
    assert 'data-testid="hero-rating-value">4.7<' in body and 'data-testid="review-average-count">3 reviews<' in body
    assert body.count('data-testid="review"') == 3


def test_the_reviews_page_pages_by_twenty_newest_first(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t, techs=3)
    start = datetime.now(UTC) - timedelta(days=30)
    for i in range(21):
        booking_id = finished_booking(app, t, f, day=i // 6, hour=9 + (i % 6) // 3 * 3)
        submit(app, t, booking_id, now=start + timedelta(hours=i), comment=f"Review number {i:02d}.")
    v = visitor(t.host)
    first = v.get("/reviews").get_data(as_text=True)
    assert first.count('data-testid="review"') == 20
    numbers = re.findall(r"Review number (\d\d)\.", first)
    assert numbers[0] == "20" and numbers[-1] == "01"  # newest first
    second = v.get("/reviews?page=2").get_data(as_text=True)
    assert re.findall(r"Review number (\d\d)\.", second) == ["00"]
    home = v.get("/").get_data(as_text=True)
    assert home.count('data-testid="review"') == 5  # the five latest on the home page


# --- The owner's page ----------------------------------------------------------------------------------


def test_owner_filters_replies_and_removes_a_reply(app, make_tenant, seed_booking, visitor):
    from app.audit.models import AuditEntry
    from app.extensions import db

    t = make_tenant()
    f = seed_booking(t)
    happy = submit(app, t, finished_booking(app, t, f, hour=9), rating=5, comment="Happy customer here.")
    unhappy = submit(app, t, finished_booking(app, t, f, hour=13), rating=2, comment="Unhappy customer here.")
    owner = owner_of(visitor, t)
    token = owner.dashboard_token()

    low = owner.get("/reviews?show=low").get_data(as_text=True)
    assert "Unhappy customer" in low and "Happy customer" not in low
    r = owner.post(f"/reviews/{unhappy}/reply", {"reply": "   ", "csrf_token": token})
    assert r.status_code == 422 and "Write a reply first." in r.get_data(as_text=True)
    r = owner.post(f"/reviews/{unhappy}/reply", {"reply": "y" * 2001, "csrf_token": token})
    assert r.status_code == 422 and "Keep your reply to 2,000 characters" in r.get_data(as_text=True)
    assert (
        owner.post(f"/reviews/{unhappy}/reply", {"reply": "We'll make it right.", "csrf_token": token}).status_code
        == 302
    )
    needs = owner.get("/reviews?show=needs_reply").get_data(as_text=True)
    assert "Happy customer" in needs and "Unhappy customer" not in needs
    assert owner.post(f"/reviews/{unhappy}/reply", {"reply": "Call us.", "csrf_token": token}).status_code == 302
    assert owner.post(f"/reviews/{unhappy}/reply", {"action": "remove", "csrf_token": token}).status_code == 302
    rows = {r["id"]: r for r in review_rows(app, t)}
    assert rows[unhappy]["reply"] is None and rows[happy]["reply"] is None

    def actions():
        return [e.action for e in db.session.scalars(db.select(AuditEntry).where(AuditEntry.subject_type == "review"))]

    assert sorted(in_tenant(app, t, actions)) == ["review.replied", "review.reply_changed", "review.reply_removed"]


def test_google_review_link_is_https_only_and_shown_to_every_reviewer(app, make_tenant, seed_booking, visitor):
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    owner = owner_of(visitor, t)
    token = owner.dashboard_token()

    def saved():
        from app.extensions import db

        return in_tenant(app, t, lambda: db.session.get(Tenant, t.id).google_review_url)

    for bad, message in (
        ("http://g.page/r/abc/review", "starts with https://, not http://"),
        ("javascript:alert(1)", "starting with https://"),
        ("https://g.page/r/a b", "no spaces"),
        ("https://nodot", "doesn&#39;t look like a web address"),
    ):
        r = owner.post("/reviews/google-link", {"google_review_url": bad, "csrf_token": token})
        body = r.get_data(as_text=True)
        assert r.status_code == 422 and message in body, bad
        assert 'data-testid="error-google_review_url"' in body
        assert saved() is None
    good = "https://search.google.com/local/writereview?placeid=ChIJ123"
    assert (
        owner.post("/reviews/google-link", {"google_review_url": f"  {good} ", "csrf_token": token}).status_code == 302
    )
    assert saved() == good

    # A one-star reviewer is offered the Google link too: no sentiment gating.
    booking_id = finished_booking(app, t, f)
    site_token = token_for(app, t, booking_id)
    v = visitor(t.host)
    r = v.post(
        f"/review/{site_token}", {"rating": "1", "comment": "Missed a spot."}, token_page=f"/review/{site_token}"
    )
    thanks = v.get(r.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="google-review-link"' in thanks and good.replace("&", "&amp;") in thanks

    assert owner.post("/reviews/google-link", {"google_review_url": "", "csrf_token": token}).status_code == 302
    assert saved() is None
    assert 'data-testid="google-review-link"' not in v.get(r.headers["Location"]).get_data(as_text=True)
