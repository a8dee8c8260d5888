"""Quotes (DESIGN §5a, issue 9): totals (property-based), the builder, sending with a signed
link, versions, views, expiry and reminders, accepting (one booking, even concurrently), the
deposit through Checkout and the late-payment rules, declining, requests with photos, and
tenant crossing."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from app.quotes import totals as money
from tests.helpers import csrf_from
from tests.test_payments import bookings, connect, in_tenant

TZ = ZoneInfo("America/New_York")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


# Totals: pure, property-based ------------------------------------------------------------------


def line(qty=1, unit=1000, minutes=60, optional=False, tier=None):
    return SimpleNamespace(
        id=uuid.uuid4(), quantity=qty, unit_cents=unit, duration_min=minutes, optional=optional, tier=tier
    )


lines_st = st.lists(
    st.builds(
        line,
        qty=st.integers(1, 99),
        unit=st.integers(0, 10_000_000),
        minutes=st.integers(0, 1440),
        optional=st.booleans(),
        tier=st.sampled_from([None, None, "Good", "Better"]),
    ),
    max_size=12,
)


@given(
    lines=lines_st,
    tier=st.sampled_from([None, "Good", "Better"]),
    pick=st.data(),
    discount_cents=st.integers(0, 100_000_000),
    discount_bps=st.integers(0, 10_000),
    tax=st.integers(0, 5000),
    fixed=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_totals_add_up_in_whole_cents(lines, tier, pick, discount_cents, discount_bps, tax, fixed):
    optional = [x.id for x in lines if x.optional]
    ticked = pick.draw(st.lists(st.sampled_from(optional), unique=True) if optional else st.just([]))
    dc, db_ = (discount_cents, 0) if fixed else (0, discount_bps)
    t = money.totals(lines, tier=tier, option_ids=ticked, discount_cents=dc, discount_bps=db_, tax_rate_bps=tax)
    counted = [x for x in lines if (x.tier in (None, tier)) and (not x.optional or x.id in ticked)]
    assert t.subtotal_cents == sum(x.quantity * x.unit_cents for x in counted)
    assert t.duration_min == sum(x.quantity * x.duration_min for x in counted)
    assert 0 <= t.discount_cents <= t.subtotal_cents
    taxable = t.subtotal_cents - t.discount_cents
    assert t.tax_cents == (taxable * tax + 5000) // 10_000  # half-up to the cent
    assert abs(t.tax_cents * 10_000 - taxable * tax) <= 5000
    assert t.total_cents == taxable + t.tax_cents
    assert all(isinstance(v, int) for v in (t.subtotal_cents, t.discount_cents, t.tax_cents, t.total_cents))
    if not fixed:
        assert t.discount_cents == min(t.subtotal_cents, (t.subtotal_cents * db_ + 5000) // 10_000)


@given(lines=lines_st, extra=st.integers(0, 10_000_000), bps=st.integers(0, 10_000), tax=st.integers(0, 5000))
@settings(max_examples=200, deadline=None)
def test_ticking_an_optional_item_never_lowers_the_total(lines, extra, bps, tax):
    option = line(unit=extra, optional=True)
    without = money.totals([*lines, option], discount_bps=bps, tax_rate_bps=tax)
    with_it = money.totals([*lines, option], option_ids=[option.id], discount_bps=bps, tax_rate_bps=tax)
    assert with_it.total_cents >= without.total_cents
    assert with_it.subtotal_cents == without.subtotal_cents + extra


@given(
    total=st.integers(0, 100_000_000), kind=st.sampled_from(["percent", "fixed", "none"]), value=st.integers(0, 200_000)
)
@settings(max_examples=200, deadline=None)
def test_deposit_never_exceeds_the_total_and_respects_stripes_minimum(total, kind, value):
    tenant = SimpleNamespace(
        deposits_enabled=True,
        takes_card_payments=True,
        deposit_kind=kind,
        deposit_value=min(value, 100) if kind == "percent" else value,
    )
    deposit = money.deposit(tenant, None, total)
    assert deposit == 0 or 50 <= deposit <= total


def test_totals_worked_example():
    a, b = line(2, 12_500, 90), line(1, 40_000, 240, tier="Better")
    good, extra = line(1, 20_000, 120, tier="Good"), line(1, 3_333, 30, optional=True)
    quote = SimpleNamespace(lines=[a, b, good, extra], discount_cents=0, discount_bps=1000, tax_rate_bps=825)
    by_tier = money.tier_totals(quote)
    assert list(by_tier) == ["Better", "Good"]
    better = by_tier["Better"]
    # 25,000 + 40,000 = 65,000; 10 % off = 6,500; 58,500 × 8.25 % = 4,826.25 → 4,826
    assert (better.subtotal_cents, better.discount_cents, better.tax_cents, better.total_cents) == (
        65_000,
        6_500,
        4_826,
        63_326,
    )
    assert better.duration_min == 2 * 90 + 240
    ticked = money.quote_totals(quote, tier="Good", option_ids=[extra.id])
    # 25,000 + 20,000 + 3,333 = 48,333; 10 % = 4,833.3 → 4,833; 43,500 × 8.25 % = 3,588.75 → 3,589
    assert (ticked.subtotal_cents, ticked.discount_cents, ticked.tax_cents, ticked.total_cents) == (
        48_333,
        4_833,
        3_589,
        47_089,
    )
    assert money.half_up(1000, 825) == 83 and money.half_up(1, 5000) == 1 and money.half_up(1, 4999) == 0


# Helpers -----------------------------------------------------------------------------------------


def owner(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def new_quote(
    app, t, f, *, tiers=False, optional=True, email="cam@x.test", phone="+15125550177", discount_bps=0, tax=0
):
    """A quote built through the services: Full detail (+ a paint correction tier, or plain),
    an optional pet-hair add-on. Returns its id."""
    from app.customers.models import Customer
    from app.extensions import db
    from app.quotes import services as quotes
    from tenants.models import Tenant

    def go():
        tenant = db.session.get(Tenant, t.id)
        now = datetime.now(UTC)
        q = quotes.quote_for_new_customer(
            tenant,
            {
                "name": "Cam Customer",
                "phone": phone,
                "email": email,
                "address": "1100 Congress Ave, Austin",
                "size_class": "sedan",
                "make": "Mazda",
            },
            actor_id=t.owner.id,
            now=now,
        )
        quotes.add_catalog_line(q, f.full, {"tier": "Good" if tiers else ""})
        if tiers:
            quotes.add_custom_line(
                q, {"name": "Paint correction", "unit_price": "450", "duration_min": "240", "tier": "Best"}
            )
        if optional:
            quotes.add_catalog_line(q, f.pet, {"optional": "1"})
        quotes.update_details(
            tenant,
            q,
            {
                "title": "Spring refresh",
                "expires_on": q.expires_on.isoformat(),
                "discount_kind": "percent" if discount_bps else "none",
                "discount_value": f"{discount_bps / 100:g}",
                "tax_rate": f"{tax / 100:g}",
                "notes": "We bring water and power.",
            },
            now=now,
        )
        assert db.session.get(Customer, (t.id, q.customer_id)) is not None
        return q.id

    return in_tenant(app, t, go)


def send(app, t, quote_id, *, now=None) -> str:
    """Send through the service; returns the customer's link path (/q/<token>)."""
    from app.extensions import db
    from app.quotes import services as quotes
    from tenants.models import Tenant

    def go():
        tenant = db.session.get(Tenant, t.id)
        q = quotes.send_quote(tenant, quotes.get_quote(quote_id), now=now or datetime.now(UTC))
        return quotes.quote_link(tenant, q)

    link = in_tenant(app, t, go)
    return "/q/" + link.rsplit("/q/", 1)[1]


def quote_row(app, t, quote_id):
    from app.extensions import db
    from app.quotes.models import Quote

    def go():
        q = db.session.get(Quote, (t.id, quote_id))
        return SimpleNamespace(**{a.key: getattr(q, a.key) for a in Quote.__mapper__.column_attrs})

    return in_tenant(app, t, go)


def lines_of(app, t, quote_id):
    from app.quotes import services as quotes

    return in_tenant(
        app,
        t,
        lambda: [SimpleNamespace(id=x.id, name=x.name, optional=x.optional) for x in quotes.get_quote(quote_id).lines],
    )


def messages_of(app, t, kind):
    from app.extensions import db
    from app.messaging.models import Message

    return in_tenant(
        app,
        t,
        lambda: [
            SimpleNamespace(body=m.body, channel=m.channel, status=m.status)
            for m in db.session.scalars(db.select(Message).where(Message.kind == kind))
        ],
    )


def post_json(site, path: str, body, **kw):
    return site.client.post(path, base_url=site.base, json=body, **kw)


def slots_on(page: str) -> list[str]:
    return re.findall(r'name="starts_at" value="([^"]+)"', page)


def day(offset: int) -> str:
    return (datetime.now(TZ) + timedelta(days=offset)).date().isoformat()


@pytest.fixture
def shop(make_tenant, seed_booking):
    t = make_tenant(techs=1, admins=1)
    f = seed_booking(t, techs=1)
    return t, f


# The builder over HTTP -----------------------------------------------------------------------------


def test_owner_builds_prices_and_sends_a_quote(app, shop, visitor, smtp_server):
    t, f = shop
    v = owner(visitor, t)
    assert 'data-testid="quotes-empty"' in v.get("/quotes").get_data(as_text=True)
    token = v.token("/quotes/new")
    r = v.post("/quotes/new", {"csrf_token": token, "name": "", "address": "nowhere at all", "size_class": ""})
    assert r.status_code == 422 and 'data-testid="error-name"' in r.get_data(as_text=True)
    r = v.post(
        "/quotes/new",
        {
            "csrf_token": token,
            "name": "Robin Rescue",
            "email": "robin@x.test",
            "address": "1100 Congress Ave, Austin",
            "size_class": "suv",
            "make": "Subaru",
        },
    )
    assert r.status_code == 302
    path = r.headers["Location"]
    page = v.get(path).get_data(as_text=True)
    assert "No lines yet" in page
    # Full detail at the SUV price (220.00), twice; a custom line; 10 % off; 8.25 % tax.
    r = v.post(path + "/lines", {"csrf_token": token, "action": "catalog", "package_id": str(f.full), "quantity": "2"})
    assert r.status_code == 302
    r = v.post(
        path + "/lines", {"csrf_token": token, "action": "custom", "name": "Odour treatment", "unit_price": "abc"}
    )
    assert r.status_code == 422 and 'data-testid="error-unit_price"' in r.get_data(as_text=True)
    r = v.post(
        path + "/lines",
        {"csrf_token": token, "action": "custom", "name": "Odour treatment", "unit_price": "80", "duration_min": "45"},
    )
    assert r.status_code == 302
    expires = (datetime.now(TZ) + timedelta(days=10)).date().isoformat()
    r = v.post(
        path + "/details",
        {
            "csrf_token": token,
            "expires_on": expires,
            "size_class": "suv",
            "discount_kind": "percent",
            "discount_value": "10",
            "tax_rate": "8.25",
            "title": "Rescue interior",
            "notes": "Includes a ceramic top-up 🚗 — €0 extra",
        },
    )
    assert r.status_code == 302
    page = v.get(path).get_data(as_text=True)
    # 2 × 220 + 80 = 520; −52 = 468; tax 38.61 → 506.61
    assert 'data-testid="tier-total-amount">$506.61<' in page
    r = v.post(path + "/send", {"csrf_token": token})
    assert r.status_code == 302
    page = v.get(path).get_data(as_text=True)
    assert 'data-testid="quote-status">Sent<' in page
    link = re.search(r'data-testid="quote-link"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*data-testid="quote-link"', page)
    url = next(g for g in link.groups() if g)
    assert url.startswith(f"http://{t.subdomain}.localhost") and "/q/" in url
    sent = messages_of(app, t, "quote_sent")
    assert len(sent) == 1 and sent[0].channel == "email" and url in sent[0].body and "$506.61" in sent[0].body
    # A sent quote can't be edited in place.
    r = v.post(path + "/lines", {"csrf_token": token, "action": "catalog", "package_id": str(f.wash)})
    assert r.status_code == 302
    assert "Make a new version instead" in v.get(path).get_data(as_text=True)
    # The pipeline counts it, and the printable page has the numbers.
    listing = v.get("/quotes").get_data(as_text=True)
    assert 'data-testid="count-sent">1<' in listing and 'data-testid="stat-sent">1<' in listing
    printable = v.get(path + "/print").get_data(as_text=True)
    assert "$506.61" in printable and "Rescue interior" in printable
    pdf = v.get(path + "/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert "attachment" in pdf.headers["Content-Disposition"]


def test_duplicate_and_delete_a_draft(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    v = owner(visitor, t)
    token = v.dashboard_token()
    r = v.post(f"/quotes/{quote_id}/duplicate", {"csrf_token": token})
    copy_path = r.headers["Location"]
    page = v.get(copy_path).get_data(as_text=True)
    assert "Quote Q-2" in page and page.count('data-testid="builder-line"') == 2
    r = v.post(copy_path + "/delete", {"csrf_token": token})
    assert r.status_code == 302 and v.get(copy_path).status_code == 404


# Sending, viewing, versions ---------------------------------------------------------------------


def test_viewed_is_recorded_once(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    r = site.get(path)
    assert r.status_code == 200 and 'data-testid="quote-page"' in r.get_data(as_text=True)
    assert r.headers["Referrer-Policy"] == "no-referrer"
    first = quote_row(app, t, quote_id)
    assert first.status == "viewed" and first.viewed_at is not None
    site.get(path)
    assert quote_row(app, t, quote_id).viewed_at == first.viewed_at


def test_editing_a_sent_quote_makes_a_new_version_and_the_old_link_points_to_it(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    old_path = send(app, t, quote_id)
    v = owner(visitor, t)
    token = v.dashboard_token()
    r = v.post(f"/quotes/{quote_id}/revise", {"csrf_token": token})
    new_path = r.headers["Location"]
    new_id = uuid.UUID(new_path.rstrip("/").rsplit("/", 1)[1])
    assert new_id != quote_id
    # Until version 2 is sent, the customer's link still shows version 1.
    site = visitor(t.host)
    assert 'data-testid="quote-page"' in site.get(old_path).get_data(as_text=True)
    r = v.post(new_path + "/lines", {"csrf_token": token, "action": "catalog", "package_id": str(f.wash)})
    assert r.status_code == 302
    link = send(app, t, new_id)
    old = site.get(old_path).get_data(as_text=True)
    assert "This quote was updated" in old and 'data-testid="newer-version"' in old
    newer = re.search(r'href="([^"]+)" data-testid="newer-version"', old).group(1)
    assert newer == link
    page = site.get(newer).get_data(as_text=True)
    assert "Quote Q-1 v2" in page and "Express wash" in page
    assert quote_row(app, t, quote_id).status == "superseded"
    # The pipeline counts the quote once (version 2, just viewed).
    listing = v.get("/quotes").get_data(as_text=True)
    assert 'data-testid="count-viewed">1<' in listing and 'data-testid="count-sent">0<' in listing


# Expiry and reminders ------------------------------------------------------------------------------


def test_expiry_job_expires_overdue_quotes_and_reminds_once_before(app, shop, visitor, run_jobs):
    from app.extensions import db
    from app.quotes import jobs as quote_jobs
    from app.quotes import services as quotes
    from tenants.models import Tenant

    t, f = shop
    soon, late = new_quote(app, t, f), new_quote(app, t, f, phone="+15125550178", email="lee@x.test")
    send(app, t, soon)
    late_path = send(app, t, late)
    today = datetime.now(TZ).date()

    def dates():
        quotes.get_quote(soon).expires_on = today + timedelta(days=1)
        quotes.get_quote(late).expires_on = today - timedelta(days=1)

    in_tenant(app, t, dates)
    with app.app_context():
        assert quote_jobs.sweep_quotes() >= 1
    run_jobs()
    assert quote_row(app, t, late).status == "expired" and quote_row(app, t, soon).status == "sent"
    reminders = messages_of(app, t, "quote_expiring")
    assert len(reminders) == 1 and "expires" in reminders[0].body
    in_tenant(app, t, lambda: quotes.expire_and_remind(db.session.get(Tenant, t.id), now=datetime.now(UTC)))
    assert len(messages_of(app, t, "quote_expiring")) == 1  # once
    page = visitor(t.host).get(late_path).get_data(as_text=True)
    assert "This quote has expired" in page and 'data-testid="quote-pick-time"' not in page


# Accepting ----------------------------------------------------------------------------------------


def test_accept_without_deposit_books_confirmed_and_assigned(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f, tiers=True, discount_bps=1000, tax=825)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    page = site.get(path).get_data(as_text=True)
    assert 'data-testid="tier-1"' in page and 'data-testid="tier-2"' in page
    row = quote_row(app, t, quote_id)
    pet = next(x.id for x in lines_of(app, t, quote_id) if x.optional)
    # Best (paint correction 450) + Full detail is not in Best; the pet-hair extra ticked.
    page = site.get(f"{path}?tier=Best&opt={pet}").get_data(as_text=True)
    # 450 + 40 = 490; −49 = 441; tax 36.38 (36.3825) → 477.38
    assert 'data-testid="quote-grand-total">$477.38<' in page
    r = site.get(f"{path}/time?tier=Best&opt={pet}&day={day(3)}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    starts = slots_on(page)
    assert starts, "availability offers times for the quote's duration"
    r = site.post(
        f"{path}/accept", {"csrf_token": csrf_from(page), "tier": "Best", "opt": str(pet), "starts_at": starts[0]}
    )
    assert r.status_code == 302 and "/b/" in r.headers["Location"], r.get_data(as_text=True)[:300]
    made = bookings(app, t)
    assert len(made) == 1 and made[0]["status"] == "confirmed" and made[0]["price"] == 47_738
    row = quote_row(app, t, quote_id)
    assert row.status == "accepted" and row.accepted_tier == "Best" and row.booking_id == made[0]["id"]
    assert row.accepted_total_cents == 47_738
    from app.booking.models import Booking
    from app.extensions import db

    def facts():
        from app.booking.services import booking_events

        b = db.session.get(Booking, (t.id, row.booking_id))
        history = [(e.from_status, e.to_status, e.actor_type, e.detail) for e in booking_events(b)]
        return b.technician_id, b.source, b.ends_at - b.starts_at, [i.name for i in b.items], b.customer_notes, history

    tech, source, length, items, notes, history = in_tenant(app, t, facts)
    assert tech == f.techs[0] and source == "quote" and length == timedelta(minutes=270)
    assert sorted(items) == ["Paint correction", "Pet hair removal"]
    assert notes.startswith("From quote Q-") and "(Best)" in notes and "incl. tax $36.38" in notes
    detail = {"source": "quote", "quote_id": str(quote_id), "quote": notes.split()[2]}
    assert history == [(None, "confirmed", "customer", detail)]
    # Accepting again: a clear answer, no second booking.
    again = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "tier": "Best", "starts_at": starts[1]})
    assert again.status_code == 302
    closed = site.get(path).get_data(as_text=True)
    assert "You accepted this quote" in closed and 'data-testid="manage-link"' in closed
    assert len(bookings(app, t)) == 1


def test_two_concurrent_accepts_make_one_booking(app, shop):
    from app.extensions import db
    from app.quotes import services as quotes
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t, f = shop
    quote_id = new_quote(app, t, f, optional=False)
    send(app, t, quote_id)
    from app.booking import services as booking_services

    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        first = datetime.fromisoformat(day(3)).date()
        offered = booking_services.slots_for_days(
            tenant, first, 1, timedelta(minutes=120), now=datetime.now(UTC), place={"lat": 30.2747, "lng": -97.7404}
        )[first]
        db.session.rollback()
    starts = [offered[0].start, offered[4].start]
    barrier = threading.Barrier(2)
    results: list = []

    def accept(starts_at):
        with app.app_context(), tenant_context(t.id, db.session):
            try:
                tenant = db.session.get(Tenant, t.id)
                barrier.wait()
                b = quotes.accept_quote(
                    tenant, quote_id, tier=None, option_ids=[], starts_at=starts_at, now=datetime.now(UTC)
                )
                db.session.commit()
                results.append(("ok", b.id))
            except Exception as exc:  # noqa: BLE001 - the loser's answer is the point
                db.session.rollback()
                results.append(("refused", type(exc).__name__))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=accept, args=(s,)) for s in starts]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r[0] for r in results) == ["ok", "refused"], results
    assert next(r[1] for r in results if r[0] == "refused") == "QuoteClosed"
    assert len(bookings(app, t)) == 1


def test_accept_with_deposit_pays_through_checkout_and_confirms(app, shop, visitor, stripe_fake):
    t, f = shop
    connect(app, t, stripe_fake)  # 25 % deposits
    quote_id = new_quote(app, t, f, optional=False)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    page = site.get(path).get_data(as_text=True)
    assert 'data-testid="quote-deposit"' in page and "$45" in page  # 25 % of 180
    page = site.get(f"{path}/time?day={day(3)}").get_data(as_text=True)
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]})
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    made = bookings(app, t)
    assert made[0]["status"] == "pending" and made[0]["deposit"] == 4500
    session = next(
        s for s in stripe_fake.objects("checkout.session") if s["metadata"]["booking_id"] == str(made[0]["id"])
    )
    assert session["amount_total"] == 4500
    stripe_fake.complete_checkout(session["id"])
    manage = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
    r = site.get(manage.split(t.host, 1)[1].lstrip(":0123456789"))
    assert r.status_code == 200
    assert bookings(app, t)[0]["status"] == "confirmed"
    assert quote_row(app, t, quote_id).status == "accepted"


def test_slot_taken_while_paying_follows_the_late_payment_rules(app, shop, visitor, stripe_fake):
    """The hold runs out, someone else takes the time, then the deposit arrives: refunded once,
    never double-booked; the quote page offers picking a time again."""
    from app.booking import services as booking_services
    from app.payments import services as payments
    from tests.test_booking import book
    from tests.test_booking import request as booking_request
    from tests.test_payments import payments_of

    t, f = shop
    connect(app, t, stripe_fake)
    quote_id = new_quote(app, t, f, optional=False)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    page = site.get(f"{path}/time?day={day(3)}").get_data(as_text=True)
    starts_at = slots_on(page)[0]
    site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": starts_at})
    booking_id = bookings(app, t)[0]["id"]
    # The hold ran out (the expiry job could not reach Stripe, so the session stayed open)...
    in_tenant(
        app,
        t,
        lambda: booking_services.transition(booking_services.get_booking(booking_id), "expired", actor_type="system"),
    )
    # ...someone else took the time, and then the customer finished paying.
    book(app, t, booking_request(f, datetime.fromisoformat(starts_at), phone="+15125550190"))
    session = next(s for s in stripe_fake.objects("checkout.session") if s["metadata"]["booking_id"] == str(booking_id))
    stripe_fake.complete_checkout(session["id"])
    for _ in range(2):  # the success page and the webhook job both settle it
        in_tenant(app, t, lambda: payments.fulfil_checkout(session["id"]))
    # The quote's booking stays expired; the other customer's hold on that time is untouched.
    assert sorted(b["status"] for b in bookings(app, t)) == ["expired", "pending"]
    deposit = next(p for p in payments_of(app, t) if p["kind"] == "deposit")
    assert deposit["status"] == "succeeded" and deposit["refunded"] == 4500
    assert len(stripe_fake.objects("refund")) == 1
    page = site.get(path).get_data(as_text=True)
    assert 'data-testid="hold-again"' in page and 'data-testid="quote-pick-time"' in page
    # Picking a time again makes a new booking (and a new deposit page) for the same quote.
    page = site.get(f"{path}/time?day={day(4)}").get_data(as_text=True)
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]})
    assert r.status_code == 303
    assert sorted(b["status"] for b in bookings(app, t)) == ["expired", "pending", "pending"]
    assert quote_row(app, t, quote_id).booking_id != booking_id


def test_decline_asks_for_a_reason(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    token = csrf_from(site.get(path + "/decline").get_data(as_text=True))
    r = site.post(path + "/decline", {"csrf_token": token, "reason": "  "})
    assert r.status_code == 422 and 'data-testid="error-reason"' in r.get_data(as_text=True)
    r = site.post(path + "/decline", {"csrf_token": token, "reason": "Found someone closer"})
    assert r.status_code == 302
    row = quote_row(app, t, quote_id)
    assert row.status == "declined" and row.decline_reason == "Found someone closer"
    page = site.get(path).get_data(as_text=True)
    assert "You declined this quote" in page
    r = site.post(path + "/accept", {"csrf_token": token, "starts_at": datetime.now(UTC).isoformat()})
    assert r.status_code == 302 and not bookings(app, t)


# Tenant crossing ----------------------------------------------------------------------------------


def test_a_quote_link_only_works_on_its_own_business_site(app, make_tenant, seed_booking, visitor):
    a, b = make_tenant(), make_tenant()
    fa = seed_booking(a)
    seed_booking(b)
    quote_id = new_quote(app, a, fa)
    path = send(app, a, quote_id)
    assert visitor(a.host).get(path).status_code == 200
    for suffix in ("", "/time", "/decline"):
        assert visitor(b.host).get(path + suffix).status_code == 404
    tampered = path[:-3] + ("A" if path[-3] != "A" else "B") + path[-2:]
    assert visitor(a.host).get(tampered).status_code == 404
    # A's owner asking for B's quote by id: 404 (the H1 sweep covers every route).
    b_quote = new_quote(app, b, seed_booking(b))
    v = owner(visitor, a)
    assert v.get(f"/quotes/{b_quote}").status_code == 404
    assert v.get(f"/quotes/{b_quote}/print").status_code == 404
    # A draft never has a working link, even with a valid signature.
    from app.quotes.tokens import make_quote_token

    draft = new_quote(app, a, fa)
    with app.app_context():
        token = make_quote_token(a.id, draft, 1)
    assert visitor(a.host).get(f"/q/{token}").status_code == 404


# Requests with photos -------------------------------------------------------------------------------


def test_customer_requests_a_quote_with_a_photo_and_the_owner_quotes_it(app, shop, visitor):
    t, f = shop
    site = visitor(t.host)
    page = site.get("/quote-request").get_data(as_text=True)
    token = csrf_from(page)
    r = site.post("/quote-request", {"csrf_token": token, "wanted": ""})
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert 'data-testid="error-wanted"' in body and 'data-testid="error-size_class"' in body
    r = site.post(
        "/quote-request",
        {
            "csrf_token": token,
            "size_class": "suv",
            "make": "Toyota",
            "model": "4Runner",
            "wanted": "Paint correction and a ceramic coating",
            "condition_notes": "Swirls all over the hood",
            "address": "1100 Congress Ave, Austin",
            "name": "Pat Paint",
            "phone": "(512) 555-0133",
        },
    )
    assert r.status_code == 302
    photos_path = r.headers["Location"]
    page = site.get(photos_path).get_data(as_text=True)
    assert 'data-testid="request-photos"' in page
    assert app.config["S3_ENDPOINT_URL"].split("//")[1] in site.get(photos_path).headers["Content-Security-Policy"]
    token = csrf_from(page)
    r = post_json(
        site, photos_path + "/photos", {"content_type": "text/html", "size": 10}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 422
    r = post_json(
        site, photos_path + "/photos", {"content_type": "image/png", "size": len(PNG)}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    ticket = r.get_json()
    assert ticket["fields"]["key"].startswith(f"tenants/{t.id}/quote-requests/")
    # Storage enforces the policy: a 13 MB file is refused; the real one goes through.
    too_big = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": ("p", b"\0" * (13 * 1024 * 1024), "image/png")}, timeout=60
    )
    assert too_big.status_code in (400, 403)
    ok = requests.post(ticket["url"], data=ticket["fields"], files={"file": ("p", PNG, "image/png")}, timeout=60)
    assert ok.status_code in (200, 201, 204)
    done = post_json(site, ticket["done_url"], {}, headers={"X-CSRFToken": token})
    assert done.status_code == 200 and done.get_json()["count"] == 1
    # The owner sees the request with its photo and turns it into a quote.
    v = owner(visitor, t)
    listing = v.get("/quotes/requests").get_data(as_text=True)
    assert "Pat Paint" in listing
    assert 'data-testid="new-requests">1 new<' in v.get("/quotes").get_data(as_text=True)
    detail_path = re.search(r'href="(/quotes/requests/[0-9a-f-]+)"', listing).group(1)
    detail = v.get(detail_path)
    html = detail.get_data(as_text=True)
    assert "Swirls all over the hood" in html and 'data-testid="request-photo"' in html
    photo_url = re.search(r'src="(/quotes/request-photos/[0-9a-f-]+)"', html).group(1)
    r = v.get(photo_url)
    assert r.status_code == 302 and requests.get(r.headers["Location"], timeout=30).content == PNG
    r = v.post(detail_path + "/quote", {"csrf_token": v.dashboard_token()})
    quote_path = r.headers["Location"]
    page = v.get(quote_path).get_data(as_text=True)
    assert "Pat Paint" in page and "SUV or crossover prices" in page and 'data-testid="quote-status">Draft<' in page
    # Twice: the same quote, not a second one.
    assert v.post(detail_path + "/quote", {"csrf_token": v.dashboard_token()}).headers["Location"] == quote_path


def test_a_request_link_from_another_business_is_404(app, make_tenant, visitor):
    from app.quotes.tokens import make_request_token

    a, b = make_tenant(), make_tenant()
    with app.app_context():
        token = make_request_token(a.id, uuid.uuid4())
    assert visitor(b.host).get(f"/quote-request/{token}").status_code == 404
    assert visitor(a.host).get(f"/quote-request/{token}").status_code == 404  # no such request


# Regressions from review ----------------------------------------------------------------------------


def _offered_starts(app, t, first_offset: int, days: int = 3) -> list[datetime]:
    """The first offered time of each day with times, from ``first_offset`` days ahead."""
    from app.booking import services as booking_services
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        first = datetime.fromisoformat(day(first_offset)).date()
        offered = booking_services.slots_for_days(
            tenant, first, days, timedelta(minutes=120), now=datetime.now(UTC), place={"lat": 30.2747, "lng": -97.7404}
        )
        db.session.rollback()
    return [slots[0].start for slots in offered.values() if slots]


def test_concurrent_accepts_after_the_route_loaded_the_quote_make_one_booking(app, shop):
    """Like the accept route: the quote is loaded (unlocked) first, then accepted. The lock must
    see the row as it is once granted, not the copy already in the session."""
    import time

    from app.extensions import db
    from app.quotes import services as quotes
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t, f = shop
    quote_id = new_quote(app, t, f, optional=False)
    send(app, t, quote_id)
    starts = _offered_starts(app, t, 3)[:2]
    assert len(starts) == 2
    loaded = threading.Barrier(2)
    results: list = []

    def accept(i, starts_at):
        with app.app_context(), tenant_context(t.id, db.session):
            try:
                tenant = db.session.get(Tenant, t.id)
                q = quotes.get_quote(quote_id)  # what _quote_for_token does
                assert q.status in ("sent", "viewed")
                loaded.wait()
                if i == 1:
                    time.sleep(1.0)  # the first holds the lock by now
                b = quotes.accept_quote(
                    tenant, q.id, tier=None, option_ids=[], starts_at=starts_at, now=datetime.now(UTC)
                )
                db.session.commit()
                results.append(("ok", b.id))
            except Exception as exc:  # noqa: BLE001 - the loser's answer is the point
                db.session.rollback()
                results.append(("refused", type(exc).__name__))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=accept, args=(i, s)) for i, s in enumerate(starts)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r[0] for r in results) == ["ok", "refused"], results
    assert next(r[1] for r in results if r[0] == "refused") == "QuoteClosed"
    assert len(bookings(app, t)) == 1


def _accept_with_deposit_then_hold_runs_out(app, t, f, site, stripe_fake):
    from app.booking import services as booking_services

    connect(app, t, stripe_fake)
    quote_id = new_quote(app, t, f, optional=False)
    path = send(app, t, quote_id)
    page = site.get(f"{path}/time?day={day(3)}").get_data(as_text=True)
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]})
    assert r.status_code == 303
    booking_id = bookings(app, t)[0]["id"]
    # The hold ran out without the job reaching Stripe: the old deposit page is still open.
    in_tenant(
        app,
        t,
        lambda: booking_services.transition(booking_services.get_booking(booking_id), "expired", actor_type="system"),
    )
    return quote_id, path, booking_id


def test_an_accepted_quote_whose_hold_ran_out_cant_be_accepted_past_its_expiry(
    app, shop, visitor, stripe_fake, run_jobs
):
    from app.quotes import jobs as quote_jobs
    from app.quotes import services as quotes

    t, f = shop
    site = visitor(t.host)
    quote_id, path, _ = _accept_with_deposit_then_hold_runs_out(app, t, f, site, stripe_fake)
    in_tenant(
        app, t, lambda: setattr(quotes.get_quote(quote_id), "expires_on", datetime.now(TZ).date() - timedelta(days=5))
    )
    page = site.get(path).get_data(as_text=True)
    assert "This quote has expired" in page and 'data-testid="quote-pick-time"' not in page
    assert site.get(f"{path}/time?day={day(4)}").status_code == 410
    token = csrf_from(site.get("/quote-request").get_data(as_text=True))
    later = _offered_starts(app, t, 4)[0].isoformat()
    r = site.post(f"{path}/accept", {"csrf_token": token, "starts_at": later})
    assert r.status_code == 302 and [b["status"] for b in bookings(app, t)] == ["expired"]
    assert quote_row(app, t, quote_id).status == "accepted"
    # The hourly job releases it: expired, no longer counted as accepted.
    with app.app_context():
        assert quote_jobs.sweep_quotes() >= 1
    run_jobs()
    row = quote_row(app, t, quote_id)
    assert row.status == "expired" and row.expired_at is not None
    assert "This quote has expired" in site.get(path).get_data(as_text=True)


def test_accepting_again_is_refused_while_the_old_deposit_page_cant_be_closed(app, shop, visitor, stripe_fake):
    from tests.test_payments import payments_of

    t, f = shop
    site = visitor(t.host)
    quote_id, path, old_booking = _accept_with_deposit_then_hold_runs_out(app, t, f, site, stripe_fake)
    page = site.get(f"{path}/time?day={day(4)}").get_data(as_text=True)
    stripe_fake.fail_next("POST", r"^/v1/checkout/sessions/[^/]+/expire$", 500)
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]})
    assert r.status_code == 302
    assert "earlier payment page" in site.get(path).get_data(as_text=True)
    assert [b["status"] for b in bookings(app, t)] == ["expired"]
    assert [p["status"] for p in payments_of(app, t) if p["kind"] == "deposit"] == ["pending"]
    # The service says so with the payments-unavailable error: 503, try again.
    from app.extensions import db
    from app.quotes import services as quotes
    from app.quotes.errors import OldDepositStillOpen
    from tenants.models import Tenant

    stripe_fake.fail_next("POST", r"^/v1/checkout/sessions/[^/]+/expire$", 500)
    starts_at = datetime.fromisoformat(slots_on(page)[0])

    def again():
        tenant = db.session.get(Tenant, t.id)
        quotes.accept_quote(tenant, quote_id, tier=None, option_ids=[], starts_at=starts_at, now=datetime.now(UTC))

    with pytest.raises(OldDepositStillOpen) as refused:
        in_tenant(app, t, again)
    assert refused.value.status == 503 and refused.value.code == "payments_unavailable"
    # Once Stripe answers, the old page is closed and the new booking made.
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]})
    assert r.status_code == 303
    assert sorted(b["status"] for b in bookings(app, t)) == ["expired", "pending"]
    assert sorted(p["status"] for p in payments_of(app, t) if p["kind"] == "deposit") == ["canceled", "pending"]
    assert quote_row(app, t, quote_id).booking_id != old_booking


def test_request_photo_json_of_the_wrong_types_is_a_clear_422(app, shop, visitor):
    t, f = shop
    site = visitor(t.host)
    page = site.get("/quote-request").get_data(as_text=True)
    r = site.post(
        "/quote-request",
        {
            "csrf_token": csrf_from(page),
            "size_class": "suv",
            "wanted": "A rescue interior",
            "address": "1100 Congress Ave, Austin",
            "name": "Pat Paint",
            "phone": "(512) 555-0133",
        },
    )
    photos_path = r.headers["Location"]
    token = csrf_from(site.get(photos_path).get_data(as_text=True))
    for body in ({"content_type": 5}, {"content_type": ["image/png"]}, {"content_type": "image/png", "size": {}}):
        r = post_json(site, photos_path + "/photos", body, headers={"X-CSRFToken": token})
        assert r.status_code == 422, (body, r.status_code)
        assert r.get_json()["error"]["fields"]


def test_superscript_digits_in_quantity_or_minutes_are_a_validation_error(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    v = owner(visitor, t)
    token = v.dashboard_token()
    path = f"/quotes/{quote_id}/lines"
    for field, value in (("quantity", "²"), ("duration_min", "³"), ("quantity", "١"), ("duration_min", "00001")):
        r = v.post(path, {"csrf_token": token, "action": "custom", "name": "X", "unit_price": "10", field: value})
        assert r.status_code == 422 and f'data-testid="error-{field}"' in r.get_data(as_text=True), (field, value)


def test_quote_request_photos_count_toward_the_media_quota(app, shop, monkeypatch):
    from app.errors import ValidationFailed
    from app.extensions import db
    from app.media import photos, storage
    from app.quotes import services as quotes
    from app.quotes.models import QuoteRequestPhoto
    from tenants.models import Tenant

    t, f = shop

    def make():
        tenant = db.session.get(Tenant, t.id)
        req = quotes.create_request(
            tenant,
            {"name": "Pat", "phone": "(512) 555-0133", "size_class": "suv", "wanted": "A coating"},
            place={"line1": "1100 Congress Ave", "city": "Austin", "lat": 30.27, "lng": -97.74},
        )
        db.session.add(
            QuoteRequestPhoto(
                tenant_id=t.id,
                request_id=req.id,
                key=storage.tenant_key(t.id, f"quote-requests/{req.id}", "png"),
                content_type="image/png",
                size_bytes=5000,
                status="stored",
            )
        )
        db.session.flush()
        return req.id

    request_id = in_tenant(app, t, make)
    assert in_tenant(app, t, photos.media_bytes_used) == 5000  # the one total, job photos' too
    monkeypatch.setattr(photos, "GIB", photos.MAX_BYTES + 4000)  # a 1 "GB" plan the photo fills

    def upload():
        quotes.start_request_upload(quotes.get_request(request_id), content_type="image/png", media_gb=1)

    with pytest.raises(ValidationFailed) as full:
        in_tenant(app, t, upload)
    assert "photos" in full.value.errors


def test_a_quote_over_the_largest_total_cant_be_sent(app, shop):
    from app.extensions import db
    from app.quotes import services as quotes
    from app.quotes.errors import QuoteNotSendable
    from tenants.models import Tenant

    t, f = shop
    quote_id = new_quote(app, t, f)

    def big():
        q = quotes.get_quote(quote_id)
        # 99 × 10,000.00 = 990,000.00 plus the Full detail: over 999,999.99 only with the extra ticked.
        quotes.add_custom_line(q, {"name": "Fleet", "unit_price": "10000", "quantity": "99", "duration_min": "60"})
        quotes.add_custom_line(q, {"name": "Extra", "unit_price": "10000", "duration_min": "1", "optional": "1"})

    in_tenant(app, t, big)

    def go():
        quotes.send_quote(db.session.get(Tenant, t.id), quotes.get_quote(quote_id), now=datetime.now(UTC))

    with pytest.raises(QuoteNotSendable) as refused:
        in_tenant(app, t, go)
    assert "$999,999.99" in refused.value.message
    assert quote_row(app, t, quote_id).status == "draft"


def test_accepted_counts_as_won_only_once_the_booking_is_confirmed(app, shop, visitor, stripe_fake):
    t, f = shop
    connect(app, t, stripe_fake)
    quote_id = new_quote(app, t, f, optional=False)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    page = site.get(f"{path}/time?day={day(3)}").get_data(as_text=True)
    assert (
        site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": slots_on(page)[0]}).status_code == 303
    )
    v = owner(visitor, t)
    listing = v.get("/quotes").get_data(as_text=True)
    assert 'data-testid="count-accepted">1<' in listing and 'data-testid="stat-accepted">0<' in listing
    assert 'data-testid="stat-awaiting">1<' in listing and 'data-testid="stat-conversion">0 %<' in listing
    session = next(s for s in stripe_fake.objects("checkout.session"))
    stripe_fake.complete_checkout(session["id"])
    from app.payments import services as payments

    in_tenant(app, t, lambda: payments.fulfil_checkout(session["id"]))
    listing = v.get("/quotes").get_data(as_text=True)
    assert 'data-testid="stat-accepted">1<' in listing and 'data-testid="stat-awaiting"' not in listing
    assert 'data-testid="stat-conversion">100 %<' in listing and 'data-testid="stat-value">$180<' in listing
    assert quote_row(app, t, quote_id).status == "accepted"


def test_a_sent_version_and_its_new_draft_are_one_quote_in_the_list(app, shop, visitor):
    t, f = shop
    quote_id = new_quote(app, t, f)
    send(app, t, quote_id)
    v = owner(visitor, t)
    r = v.post(f"/quotes/{quote_id}/revise", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302
    listing = v.get("/quotes").get_data(as_text=True)
    assert listing.count('data-testid="quote-row"') == 1 and "Q-1 v2" in listing
    assert 'data-testid="count-draft">1<' in listing and 'data-testid="count-sent">0<' in listing
    assert 'data-testid="stat-sent">1<' in listing


def test_two_clicks_on_write_the_quote_make_one_quote(app, shop):
    import time

    from app.extensions import db
    from app.quotes import services as quotes
    from app.quotes.models import Quote
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t, f = shop

    def make():
        tenant = db.session.get(Tenant, t.id)
        return quotes.create_request(
            tenant,
            {"name": "Pat", "phone": "(512) 555-0133", "size_class": "suv", "wanted": "A coating"},
            place={"line1": "1100 Congress Ave", "city": "Austin", "lat": 30.27, "lng": -97.74},
        ).id

    request_id = in_tenant(app, t, make)
    loaded = threading.Barrier(2)
    results: list = []

    def click(i):
        with app.app_context(), tenant_context(t.id, db.session):
            try:
                tenant = db.session.get(Tenant, t.id)
                req = quotes.get_request(request_id)  # what the route does first
                loaded.wait()
                if i == 1:
                    time.sleep(0.5)
                q = quotes.quote_from_request(tenant, req, actor_id=t.owner.id, now=datetime.now(UTC))
                time.sleep(0.5)  # still in the transaction while the other click arrives
                db.session.commit()
                results.append(q.id)
            except Exception as exc:  # noqa: BLE001
                db.session.rollback()
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results) == 2 and all(isinstance(r, uuid.UUID) for r in results), results
    assert results[0] == results[1]
    assert in_tenant(app, t, lambda: db.session.scalar(db.select(db.func.count()).select_from(Quote))) == 1


def test_a_quote_for_a_customer_who_asked_to_be_deleted_is_not_sent(app, shop, visitor, superuser_conn):
    t, f = shop
    quote_id = new_quote(app, t, f)
    customer_id = quote_row(app, t, quote_id).customer_id
    superuser_conn.execute(
        "UPDATE customers SET deletion_requested_at = now(), purge_after = now() + interval '30 days' WHERE id = %s",
        (customer_id,),
    )
    v = owner(visitor, t)
    r = v.post(f"/quotes/{quote_id}/send", {}, token_page=f"/quotes/{quote_id}", follow_redirects=True)
    assert "asked to be deleted, so the quote can&#39;t be sent" in r.get_data(as_text=True)
    assert quote_row(app, t, quote_id).status == "draft"
    assert messages_of(app, t, "quote_sent") == []
