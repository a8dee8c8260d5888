"""Customer data rights and the business's full export (docs/data-rights.md): a customer's JSON
export, anonymising (money and reports unchanged, no trace of the person anywhere in the business's
rows), deletion with its grace period and the purge (objects in storage first, re-runs no-ops), and
the business's zip export (its own tables only, no credentials)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from tests.helpers import csrf_from
from tests.test_booking import request, tomorrow_at

NAME = "Zebulon Quartermaine"
PHONE = "+15125550199"
EMAIL = "zebulon.q@privacy.test"
PLATE = "ZQ4242"
STREET = "742 Evergreen Terrace"
GATE = "Gate code 9147"
# Everything that identifies him, as it could appear in any column of any table.
NEEDLES = [NAME, "Zebulon", "Quartermaine", EMAIL, "5125550199", "555-0199", PLATE, STREET, "9147"]
OTHER = ("Yolanda Other", "+15125550188")
B_NAME = "Bertha Bravo"
WEBHOOK_SECRET = "gAAAA-webhook-signing-secret-of-a"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
    b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82"
)


@contextlib.contextmanager
def in_tenant(app, tenant_id):
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(tenant_id, db.session):
        try:
            yield db.session
        finally:
            db.session.rollback()
            db.session.remove()


@pytest.fixture
def fresh_queues(app):
    from app.extensions import get_redis

    with app.app_context():
        get_redis().flushdb()


def _book(app, t, req, *, staff=True):
    from app.booking import services
    from tenants.models import Tenant

    with in_tenant(app, t.id) as s:
        booking = services.book(
            s.get(Tenant, t.id), req, now=datetime.now(UTC), actor_type="user" if staff else "customer"
        )
        s.commit()
        return booking.id, booking.customer_id, booking.vehicle_id, booking.address_id


def _into_past(s, booking_id, days: int, status: str) -> None:
    from sqlalchemy import text

    s.execute(
        text(
            "UPDATE bookings SET starts_at = starts_at - make_interval(days => :d),"
            " ends_at = ends_at - make_interval(days => :d),"
            " during = tstzrange(lower(during) - make_interval(days => :d), upper(during) - make_interval(days => :d)),"
            " status = :status, finished_at = CASE WHEN :status = 'completed' THEN ends_at END WHERE id = :id"
        ),
        {"d": days, "status": status, "id": booking_id},
    )


def _put(app, key: str) -> None:
    from app.media import storage

    with app.app_context():
        storage.put_object(key, PNG, "image/png")


def _exists(app, key: str) -> bool:
    from app.media import storage

    with app.app_context():
        try:
            storage.client().head_object(Bucket=storage.bucket(), Key=key)
            return True
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            return False


def _scenario(app, make_tenant, seed_booking):
    """Business A with Zebulon (two past jobs, one paid with a tip and a refund, one canceled with a
    reason naming him; photos, texts, an e-mail, a review, a quote request with a photo, a quote, a
    day plan and a Stripe event that name him) and Yolanda (an upcoming job); business B with Bertha."""
    from app.booking import services as booking_services
    from app.booking.services import BookingRequest
    from app.dispatch.models import RoutePlan
    from app.media.models import BookingPhoto
    from app.messaging.models import Message
    from app.payments import services as payments
    from app.payments.models import Refund, StripeEvent
    from app.quotes.models import Quote, QuoteLine, QuoteRequest, QuoteRequestPhoto
    from app.reviews.models import Review
    from tenants.models import Tenant

    a, b = make_tenant(techs=1, admins=1), make_tenant(techs=1)
    fa, fb = seed_booking(a), seed_booking(b)
    place = {
        "line1": STREET,
        "city": "Austin",
        "region": "TX",
        "postal_code": "78701",
        "lat": 30.26721,
        "lng": -97.74312,
    }

    def zeb(starts):
        return BookingRequest(
            package_id=fa.full,
            addon_ids=[fa.pet],
            vehicle={"size_class": "sedan", "make": "Tesla", "model": "Model 3", "plate": PLATE},
            place=place,
            access_notes=GATE,
            customer={"name": NAME, "phone": PHONE, "email": EMAIL},
            starts_at=starts,
            source="dashboard",
        )

    paid, x_id, vehicle_id, address_id = _book(app, a, zeb(tomorrow_at(9)))
    canceled, *_ = _book(app, a, zeb(tomorrow_at(14)))
    upcoming_y, y_id, *_ = _book(app, a, _as(request(fa, tomorrow_at(12), phone=OTHER[1]), OTHER[0]))
    _, b_customer, *_ = _book(app, b, _as(request(fb, tomorrow_at(10)), B_NAME))

    photo_key = f"tenants/{a.id}/bookings/{paid}/zeb.png"
    request_photo_key = f"tenants/{a.id}/quote-requests/zeb-request.png"
    with in_tenant(app, a.id) as s:
        tenant = s.get(Tenant, a.id)
        booking = booking_services.get_booking(canceled)
        booking_services.cancel_booking(
            tenant, booking, actor_type="user", now=datetime.now(UTC), reason="Zebulon is moving house"
        )
        s.flush()
        _into_past(s, paid, 10, "completed")
        _into_past(s, canceled, 5, "canceled")
        s.expire_all()
        payment = payments.record_manual(
            booking_services.get_booking(paid), method="cash", amount_cents=20000, tip_cents=1500, note="Zebulon paid"
        )
        s.add(
            Refund(
                tenant_id=a.id,
                payment_id=payment.id,
                amount_cents=500,
                status="succeeded",
                reason="Scratch on Zebulon's door",
                request_key=uuid.uuid4().hex,
            )
        )
        payment.refunded_cents = 500
        s.add(
            BookingPhoto(
                tenant_id=a.id, booking_id=paid, kind="after", key=photo_key, content_type="image/png", status="stored"
            )
        )
        ask = QuoteRequest(
            tenant_id=a.id,
            customer_id=x_id,
            vehicle_id=vehicle_id,
            address_id=address_id,
            wanted="Ceramic coating for Zebulon's Tesla",
            condition_notes=f"Parked at {STREET}",
        )
        s.add(ask)
        s.flush()
        s.add(
            QuoteRequestPhoto(
                tenant_id=a.id,
                request_id=ask.id,
                key=request_photo_key,
                content_type="image/png",
                size_bytes=len(PNG),
                status="stored",
            )
        )
        quote = Quote(
            tenant_id=a.id,
            number=1,
            request_id=ask.id,
            customer_id=x_id,
            size_class="sedan",
            status="sent",
            sent_at=datetime.now(UTC),
            notes="Call Zebulon after 5",
            expires_on=date.today() + timedelta(days=20),
            currency="USD",
        )
        s.add(quote)
        s.flush()
        s.add(QuoteLine(tenant_id=a.id, quote_id=quote.id, kind="custom", name="Ceramic coating", unit_cents=90000))
        for direction, body, customer_id in (
            ("out", "Hi Zebulon, we're on our way", x_id),
            ("in", "Thanks! Zebulon Q", x_id),
            ("in", "Is the gate code still 9147? Zebulon", None),  # before anyone matched his number
        ):
            s.add(
                Message(
                    tenant_id=a.id,
                    customer_id=customer_id,
                    booking_id=paid if customer_id else None,
                    direction=direction,
                    kind="reply" if direction == "out" else "inbound",
                    body=body,
                    to_addr=PHONE if direction == "out" else "+15125550100",
                    from_addr="+15125550100" if direction == "out" else PHONE,
                    status="sent" if direction == "out" else "received",
                )
            )
        s.add(
            Review(
                tenant_id=a.id,
                booking_id=paid,
                customer_id=x_id,
                rating=4,
                quality=5,
                comment="Zebulon says: spotless",
                author_name="Zebulon Q.",
                reply="Thanks Zebulon!",
            )
        )
        s.add(
            RoutePlan(
                tenant_id=a.id,
                day=date.today() - timedelta(days=10),
                status="approved",
                proposed={
                    "routes": [
                        {
                            "stops": [
                                {
                                    "booking_id": str(paid),
                                    "customer": NAME,
                                    "address": f"{STREET}, Austin",
                                    "lat": 30.26721,
                                    "lng": -97.74312,
                                }
                            ]
                        }
                    ],
                    "violations": [f"Z-1 ({NAME}) arrives late"],
                },
            )
        )
        s.add(
            StripeEvent(
                tenant_id=a.id,
                id=f"evt_{uuid.uuid4().hex[:16]}",
                type="checkout.session.completed",
                account="acct_privacytest",
                payload={
                    "data": {
                        "object": {
                            "metadata": {"booking_id": str(paid)},
                            "customer_details": {
                                "email": EMAIL,
                                "name": "Z. Quartermaine",
                                "phone": PHONE,
                                "address": {"line1": "1 Billing Rd", "postal_code": "78702"},
                            },
                        }
                    }
                },
                processed_at=datetime.now(UTC),
            )
        )
        # The outgoing-webhook log keeps the exact body sent to the business's own URL.
        from sqlalchemy import text

        endpoint = s.execute(
            text(
                "INSERT INTO webhook_endpoints (tenant_id, url, events, secret_enc)"
                " VALUES (:t, 'https://hooks.example.com/in', ARRAY['booking.completed'], :secret) RETURNING id"
            ),
            {"t": a.id, "secret": WEBHOOK_SECRET},
        ).scalar()
        body = {
            "type": "booking.completed",
            "data": {
                "booking": {
                    "id": str(paid),
                    "customer": {"id": str(x_id), "name": NAME, "phone": PHONE, "email": EMAIL},
                    "address": {
                        "id": str(address_id),
                        "line": f"{STREET}, Austin, TX 78701",
                        "lat": 30.26721,
                        "lng": -97.74312,
                    },
                }
            },
        }
        s.execute(
            text(
                "INSERT INTO webhook_deliveries"
                " (tenant_id, endpoint_id, event_id, event_type, body, status, response_excerpt)"
                " VALUES (:t, :e, gen_random_uuid(), 'booking.completed', :body, 'succeeded', :echo)"
            ),
            # The receiver echoed the body back in its answer.
            {"t": a.id, "e": endpoint, "body": json.dumps(body), "echo": "received " + json.dumps(body)[:400]},
        )
        s.commit()
    _put(app, photo_key)
    _put(app, request_photo_key)
    return SimpleNamespace(
        a=a,
        b=b,
        fa=fa,
        x=x_id,
        y=y_id,
        b_customer=b_customer,
        paid=paid,
        canceled=canceled,
        upcoming_y=upcoming_y,
        keys=[photo_key, request_photo_key],
    )


def _customer_links(app, sc) -> list[str]:
    """The manage, review, quote, pay and receipt links Zebulon was sent (site paths)."""
    from app.booking.models import Booking
    from app.booking.tokens import make_manage_token
    from app.payments.tokens import make_pay_token, make_receipt_token
    from app.quotes.models import Quote
    from app.quotes.tokens import make_quote_token
    from app.reviews.tokens import make_review_token

    with in_tenant(app, sc.a.id) as s:
        booking = s.get(Booking, (sc.a.id, sc.paid))
        quote = s.scalars(s.query(Quote).filter_by(customer_id=sc.x).statement).one()
        return [
            f"/b/{make_manage_token(sc.a.id, booking.id, booking.token_version)}",
            f"/review/{make_review_token(sc.a.id, booking.id)}",
            f"/q/{make_quote_token(sc.a.id, quote.id, quote.token_version)}",
            f"/pay/{make_pay_token(sc.a.id, booking.id)}",
            f"/r/{make_receipt_token(sc.a.id, booking.id)}",
        ]


def _as(req, name: str):
    """tests.test_booking's request, for a customer of another name."""
    return dataclasses.replace(req, customer={**req.customer, "name": name})


def _sweep(app) -> int:
    from app.customers import jobs as privacy_jobs

    with app.app_context():
        return privacy_jobs.sweep_privacy()


def _count(s, model, **where) -> int:
    from sqlalchemy import func, select

    return s.scalar(select(func.count()).select_from(model).filter_by(**where))


def _owner(visitor, t):
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    return v


def _dump(superuser_conn, tenant_id) -> str:
    """Every row of every table of one business (and its tenants row), as text."""
    tables = [
        r[0]
        for r in superuser_conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute a"
            " WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)"
        )
    ]
    assert {"customers", "messages", "route_plans", "stripe_events", "booking_events"} <= set(tables)
    parts = [str(superuser_conn.execute("SELECT t::text FROM tenants t WHERE id = %s", (tenant_id,)).fetchone()[0])]
    for table in tables:
        # Ordered: an autoanalyze between two dumps can switch the plan (seq scan / index scan) and the order.
        rows = superuser_conn.execute(
            f"SELECT t::text FROM {table} t WHERE tenant_id = %s ORDER BY 1", (tenant_id,)
        ).fetchall()
        parts += [f"{table}: {r[0]}" for r in rows]
    return "\n".join(parts)


def _traces(text: str) -> list[str]:
    low = text.lower()
    return [n for n in NEEDLES if n.lower() in low]


def _reports(app, t) -> dict:
    from app.reports import queries
    from app.reports.queries import Period

    with in_tenant(app, t.id):
        today = date.today()
        period = Period(t.id, today - timedelta(days=60), today + timedelta(days=10), "week", "America/New_York")
        return {name: fn(period) for name, fn in queries.REPORTS.items()}


def _money(app, t) -> list:
    from app.payments.models import Payment, Refund

    with in_tenant(app, t.id) as s:
        pays = sorted(
            (p.booking_id, p.amount_cents, p.tip_cents, p.refunded_cents) for p in s.scalars(s.query(Payment).statement)
        )
        refunds = sorted(r.amount_cents for r in s.scalars(s.query(Refund).statement))
        return [pays, refunds]


def _customer(app, t, customer_id):
    from app.customers.models import Customer

    with in_tenant(app, t.id) as s:
        c = s.get(Customer, (t.id, customer_id))
        return (
            None
            if c is None
            else SimpleNamespace(
                **{
                    k: getattr(c, k)
                    for k in (
                        "name",
                        "phone",
                        "email",
                        "notes",
                        "anonymised_at",
                        "purge_after",
                        "deletion_requested_at",
                    )
                }
            )
        )


# Export ----------------------------------------------------------------------------------------


def test_customer_export_has_every_section_with_their_data_and_nobody_elses(
    app, make_tenant, seed_booking, visitor, fresh_queues
):
    sc = _scenario(app, make_tenant, seed_booking)
    v = _owner(visitor, sc.a)
    r = v.get(f"/customers/{sc.x}/export.json")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"].startswith("attachment;") and r.mimetype == "application/json"
    assert r.headers["Cache-Control"] == "no-store"
    raw = r.get_data(as_text=True)
    data = json.loads(raw)
    assert set(data) >= {
        "customer",
        "addresses",
        "vehicles",
        "bookings",
        "payments",
        "messages",
        "reviews",
        "quote_requests",
        "quotes",
        "photos",
    }
    customer = data["customer"]
    assert (customer["id"], customer["name"], customer["phone"], customer["email"]) == (str(sc.x), NAME, PHONE, EMAIL)
    assert [a["line1"] for a in data["addresses"]] == [STREET] and data["addresses"][0]["access_notes"] == GATE
    assert [v["plate"] for v in data["vehicles"]] == [PLATE]
    bookings = {b["id"]: b for b in data["bookings"]}
    assert set(bookings) == {str(sc.paid), str(sc.canceled)}
    paid = bookings[str(sc.paid)]
    assert paid["status"] == "completed" and paid["price_cents"] == 18000 + 4000
    assert {(i["kind"], i["name"]) for i in paid["items"]} == {
        ("package", "Full detail"),
        ("addon", "Pet hair removal"),
    }
    # Times: UTC, and the same instant on the business's wall clock.
    assert paid["starts_at"].endswith("+00:00") and paid["time_zone"] == "America/New_York"
    assert paid["starts_at_local"][-6:] in ("-04:00", "-05:00")
    assert datetime.fromisoformat(paid["starts_at_local"]) == datetime.fromisoformat(paid["starts_at"])
    assert any(h.get("reason") == "Zebulon is moving house" for h in bookings[str(sc.canceled)]["history"])
    [payment] = data["payments"]
    assert (payment["amount_cents"], payment["tip_cents"], payment["refunded_cents"], payment["method"]) == (
        20000,
        1500,
        500,
        "cash",
    )
    assert [rf["amount_cents"] for rf in payment["refunds"]] == [500]
    bodies = {m["body"] for m in data["messages"]}
    assert {"Hi Zebulon, we're on our way", "Thanks! Zebulon Q", "Is the gate code still 9147? Zebulon"} <= bodies
    assert {m["direction"] for m in data["messages"]} == {"in", "out"}
    [review] = data["reviews"]
    assert (review["rating"], review["comment"], review["reply"]) == (4, "Zebulon says: spotless", "Thanks Zebulon!")
    [ask] = data["quote_requests"]
    assert ask["wanted"] == "Ceramic coating for Zebulon's Tesla"
    [quote] = data["quotes"]
    assert quote["notes"] == "Call Zebulon after 5" and quote["lines"][0]["unit_cents"] == 90000
    # Photos: a link that works without a login (for the customer), and the staff link.
    assert {p["source"] for p in data["photos"]} == {"booking", "quote_request"}
    for p in data["photos"]:
        path = "/photos/" if p["source"] == "booking" else "/quotes/request-photos/"
        assert p["dashboard_url"].startswith("http://app.localhost") and p["dashboard_url"].count("http") == 1
        assert p["dashboard_url"].endswith(path + p["id"])
        with urllib.request.urlopen(p["url"], timeout=10) as got:
            assert got.status == 200 and got.read() == PNG
    # Nobody else: not Yolanda of the same business, not business B.
    for other in (*OTHER, B_NAME, str(sc.y), str(sc.upcoming_y), str(sc.b.id)):
        assert other not in raw
    # The export is logged, without the personal data.
    with in_tenant(app, sc.a.id) as s:
        from app.audit.models import AuditEntry

        entry = s.scalars(s.query(AuditEntry).filter_by(action="customer.exported").statement).one()
        assert entry.subject_id == sc.x and NAME not in json.dumps(entry.detail)


def test_another_business_customer_is_404_for_every_data_right_and_techs_are_refused(
    app, make_tenant, seed_booking, visitor
):
    a, b = make_tenant(techs=1), make_tenant()
    fb = seed_booking(b)
    _, b_customer, *_ = _book(app, b, _as(request(fb, tomorrow_at(10)), B_NAME))
    v = _owner(visitor, a)
    token = v.dashboard_token()
    assert v.get(f"/customers/{b_customer}/export.json").status_code == 404
    for path in ("anonymise", "delete", "delete/cancel"):
        r = v.post(f"/customers/{b_customer}/{path}", {"csrf_token": token, "confirm": "yes"})
        assert r.status_code == 404 and B_NAME not in r.get_data(as_text=True)
    assert v.get(f"/customers/{uuid.uuid4()}/export.json").status_code == 404
    assert _customer(app, b, b_customer).anonymised_at is None and _customer(app, b, b_customer).purge_after is None
    tech = visitor()
    tech.login(a.people["tech0"].email, a.people["tech0"].password)
    assert tech.get("/settings/data").status_code == 403
    assert tech.get(f"/customers/{uuid.uuid4()}/export.json").status_code == 403


# Anonymise -------------------------------------------------------------------------------------


def test_anonymise_removes_every_trace_and_keeps_money_and_reports(
    app, make_tenant, seed_booking, visitor, superuser_conn, fresh_queues, run_jobs
):
    sc = _scenario(app, make_tenant, seed_booking)
    assert _traces(_dump(superuser_conn, sc.a.id)), "the scenario must put him in the rows first"
    reports, money = _reports(app, sc.a), _money(app, sc.a)
    b_before = _dump(superuser_conn, sc.b.id)
    v = _owner(visitor, sc.a)
    page = v.get(f"/customers/{sc.x}/anonymise")
    assert page.status_code == 200 and "Anonymise now" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    # No tick, no change.
    r = v.post(f"/customers/{sc.x}/anonymise", {"csrf_token": token})
    assert r.status_code == 422 and _customer(app, sc.a, sc.x).anonymised_at is None
    links = _customer_links(app, sc)
    site = visitor(sc.a.host)
    assert [site.get(link).status_code for link in links] == [200] * 5
    r = v.post(f"/customers/{sc.x}/anonymise", {"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302
    # The links we sent him (manage the booking, review it, the quote, pay, receipt) open nothing now.
    assert [site.get(link).status_code for link in links] == [404] * 5
    assert site.post(links[1], {"csrf_token": "x", "rating": "5", "comment": "Zebulon again"}).status_code in (400, 404)

    c = _customer(app, sc.a, sc.x)
    assert (c.name, c.phone, c.email, c.notes) == ("Anonymised customer", None, None, None) and c.anonymised_at
    dump = _dump(superuser_conn, sc.a.id)
    assert _traces(dump) == [], [line for line in dump.splitlines() if _traces(line)][:5]
    # Where he lives: not the postcode, nor the pin to the house (rounded to ~1 km where kept).
    # As whole numbers: a timestamp's microseconds (".178701") must not count as his postcode.
    home = re.compile(r"(?<![\d.])(78701|30\.26721|97\.74312)(?!\d)")
    assert not home.search(dump), [line for line in dump.splitlines() if home.search(line)][:5]
    assert OTHER[0] in dump and OTHER[1] in dump  # Yolanda is untouched
    assert _dump(superuser_conn, sc.b.id) == b_before
    assert _money(app, sc.a) == money and _reports(app, sc.a) == reports
    for key in sc.keys:
        assert not _exists(app, key)
    html = v.get(f"/customers/{sc.x}").get_data(as_text=True)
    assert 'data-testid="anonymised-note"' in html and 'data-testid="customer-book"' not in html
    assert 'data-testid="contact-edit"' not in html
    listing = v.get("/customers").get_data(as_text=True)
    assert "Anonymised customer" not in listing and OTHER[0] in listing
    assert "customer-row" not in v.get("/customers?q=Anonymised").get_data(as_text=True)
    # Never contacted again, whatever asks.
    from app.customers.models import Customer
    from app.messaging import services as messaging
    from tenants.models import Tenant

    with in_tenant(app, sc.a.id) as s:
        tenant, customer = s.get(Tenant, sc.a.id), s.get(Customer, (sc.a.id, sc.x))
        assert messaging.notify(tenant, customer, "reminder", {}) is None
        assert messaging.queue_email(tenant, customer, "reminder", "Hi", "Hi") is None
        from app.audit.models import AuditEntry

        entry = s.scalars(s.query(AuditEntry).filter_by(action="customer.anonymised").statement).one()
        assert entry.detail["photos_deleted"] == 2 and entry.subject_id == sc.x
    # A second time: refused clearly, nothing changes.
    r = v.post(f"/customers/{sc.x}/anonymise", {"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 409 and "already anonymised" in r.get_data(as_text=True)
    run_jobs()  # the confirmation e-mail queued earlier is skipped, not sent
    from app.messaging.models import Message

    with in_tenant(app, sc.a.id) as s:
        statuses = [
            m.status for m in s.scalars(s.query(Message).filter_by(customer_id=sc.x, channel="email").statement)
        ]
        assert statuses and set(statuses) == {"skipped"}, statuses


def test_anonymise_and_delete_wait_for_upcoming_bookings(app, make_tenant, seed_booking, visitor):
    a = make_tenant()
    fa = seed_booking(a)
    booking_id, customer_id, *_ = _book(app, a, _as(request(fa, tomorrow_at(11)), OTHER[0]))
    v = _owner(visitor, a)
    page = v.get(f"/customers/{customer_id}/delete").get_data(as_text=True)
    assert 'data-testid="privacy-upcoming"' in page and "disabled" in page
    token = csrf_from(page)
    for path in ("anonymise", "delete"):
        r = v.post(f"/customers/{customer_id}/{path}", {"csrf_token": token, "confirm": "yes"})
        assert r.status_code == 409 and "upcoming" in r.get_data(as_text=True)
    c = _customer(app, a, customer_id)
    assert c.name == OTHER[0] and c.anonymised_at is None and c.purge_after is None


# Delete: grace, cancel, purge ------------------------------------------------------------------


def test_delete_grace_cancel_then_purge_removes_rows_and_objects_and_keeps_money(
    app, make_tenant, seed_booking, visitor, superuser_conn, fresh_queues, run_jobs
):
    from app.booking.models import Booking
    from app.customers.privacy import CustomerUnavailable
    from app.messaging.models import Message
    from app.payments.models import Payment, Refund
    from app.quotes.models import Quote, QuoteRequest
    from app.reviews.models import Review

    sc = _scenario(app, make_tenant, seed_booking)
    revenue = _reports(app, sc.a)["revenue"]
    money = _money(app, sc.a)
    v = _owner(visitor, sc.a)
    token = csrf_from(v.get(f"/customers/{sc.x}/delete").get_data(as_text=True))
    r = v.post(f"/customers/{sc.x}/delete", {"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302
    c = _customer(app, sc.a, sc.x)
    assert c.purge_after - c.deletion_requested_at == timedelta(days=30) and c.name == NAME
    html = v.get(f"/customers/{sc.x}").get_data(as_text=True)
    assert 'data-testid="deletion-pending"' in html and 'data-testid="deletion-cancel"' in html
    assert 'data-testid="customer-book"' not in html
    assert 'data-testid="customer-deleting"' in v.get("/customers").get_data(as_text=True)

    # During the grace period: no booking (site or staff), no messages; the job isn't due yet.
    with pytest.raises(CustomerUnavailable) as online:
        _book(app, sc.a, request(sc.fa, tomorrow_at(15), phone=PHONE), staff=False)
    assert "call us" in online.value.message and NAME not in online.value.message
    with pytest.raises(CustomerUnavailable) as staff:
        _book(app, sc.a, request(sc.fa, tomorrow_at(15), phone=PHONE))
    assert "scheduled for deletion" in staff.value.message
    with in_tenant(app, sc.a.id) as s:
        from app.customers.models import Customer
        from app.messaging import services as messaging
        from tenants.models import Tenant

        assert messaging.notify(s.get(Tenant, sc.a.id), s.get(Customer, (sc.a.id, sc.x)), "reminder", {}) is None
    with app.app_context():
        assert sc.a.id not in _due_tenants(app)

    # Cancel, then delete again.
    r = v.post(f"/customers/{sc.x}/delete/cancel", {"csrf_token": token})
    assert r.status_code == 302 and _customer(app, sc.a, sc.x).purge_after is None
    assert 'data-testid="customer-book"' in v.get(f"/customers/{sc.x}").get_data(as_text=True)
    v.post(f"/customers/{sc.x}/delete", {"csrf_token": token, "confirm": "yes"})
    _due_now(superuser_conn, sc.a.id, sc.x)

    # Storage fails half-way: the customer stays due with every row, the next run finishes.
    from app.customers import privacy
    from app.media import storage

    real = storage.delete_object
    calls = []

    def flaky(key):
        calls.append(key)
        if len(calls) == 2:
            raise ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "Del")
        real(key)

    with in_tenant(app, sc.a.id) as s:
        storage.delete_object = flaky
        try:
            assert privacy.purge_due(now=datetime.now(UTC), commit=s.commit) == 0
        finally:
            storage.delete_object = real
        s.commit()
    assert _customer(app, sc.a, sc.x).name == NAME and _customer(app, sc.a, sc.x).purge_after is not None

    assert _sweep(app) >= 1
    run_jobs()
    for key in sc.keys:
        assert not _exists(app, key)
    with in_tenant(app, sc.a.id) as s:
        assert _count(s, Message, customer_id=sc.x) == 0 and _count(s, Review, customer_id=sc.x) == 0
        assert _count(s, Quote, customer_id=sc.x) == 0 and _count(s, QuoteRequest, customer_id=sc.x) == 0
        kept = list(s.scalars(s.query(Booking).filter_by(customer_id=sc.x).statement))
        assert [b.id for b in kept] == [sc.paid]  # the paid job stays; the canceled one is gone
        assert s.scalar(s.query(Payment).filter_by(booking_id=sc.paid).statement).tip_cents == 1500
        assert _count(s, Refund) == 1
    c = _customer(app, sc.a, sc.x)
    assert c.name == "Anonymised customer" and c.anonymised_at and c.purge_after is None
    assert _money(app, sc.a) == money and _reports(app, sc.a)["revenue"] == revenue
    assert _traces(_dump(superuser_conn, sc.a.id)) == []
    assert OTHER[0] in _dump(superuser_conn, sc.a.id)

    # A re-run finds nothing due and changes nothing.
    before = _dump(superuser_conn, sc.a.id)
    assert _sweep(app) == 0
    with in_tenant(app, sc.a.id) as s:
        assert privacy.purge_due(now=datetime.now(UTC), commit=s.commit) == 0
    assert _dump(superuser_conn, sc.a.id) == before
    audit = superuser_conn.execute(
        "SELECT count(*) FROM audit_log WHERE tenant_id = %s AND action = 'customer.purged'", (sc.a.id,)
    ).fetchone()[0]
    assert audit == 1


def test_purge_deletes_a_customer_without_money_records_entirely(
    app, make_tenant, seed_booking, visitor, superuser_conn, fresh_queues, run_jobs
):
    a = make_tenant()
    fa = seed_booking(a)
    booking_id, customer_id, *_ = _book(app, a, _as(request(fa, tomorrow_at(11)), NAME))
    from app.booking import services as booking_services
    from tenants.models import Tenant

    with in_tenant(app, a.id) as s:
        booking_services.cancel_booking(
            s.get(Tenant, a.id), booking_services.get_booking(booking_id), actor_type="user", now=datetime.now(UTC)
        )
        s.commit()
        # A day plan that copied the (now canceled) stop: no foreign key, so only the purge can clean it.
        from app.dispatch.models import RoutePlan

        stop = {"booking_id": str(booking_id), "customer": NAME, "address": STREET, "lat": 30.26721, "lng": -97.74312}
        s.add(RoutePlan(tenant_id=a.id, day=date.today(), status="approved", current={"routes": [{"stops": [stop]}]}))
        s.commit()
    v = _owner(visitor, a)
    token = v.dashboard_token()
    assert v.post(f"/customers/{customer_id}/delete", {"csrf_token": token, "confirm": "yes"}).status_code == 302
    _due_now(superuser_conn, a.id, customer_id)
    assert _sweep(app) == 1
    run_jobs()
    assert _customer(app, a, customer_id) is None
    dump = _dump(superuser_conn, a.id)
    assert _traces(dump) == []
    assert [line.split(":")[0] for line in dump.splitlines() if str(booking_id) in line] == ["route_plans"]
    [plan] = superuser_conn.execute("SELECT current FROM route_plans WHERE tenant_id = %s", (a.id,)).fetchone()
    stop = plan["routes"][0]["stops"][0]
    assert (stop["customer"], stop["address"], stop["lat"], stop["lng"]) == (
        "Anonymised customer",
        "Address removed",
        30.27,
        -97.74,
    )
    assert v.get(f"/customers/{customer_id}").status_code == 404


def _cancelled_booking_of(app, make_tenant, seed_booking, name: str = NAME):
    """A business with one customer whose only booking was canceled (nothing upcoming blocks them)."""
    from app.booking import services as booking_services
    from tenants.models import Tenant

    a = make_tenant()
    fa = seed_booking(a)
    booking_id, customer_id, vehicle_id, address_id = _book(app, a, _as(request(fa, tomorrow_at(11)), name))
    with in_tenant(app, a.id) as s:
        booking_services.cancel_booking(
            s.get(Tenant, a.id), booking_services.get_booking(booking_id), actor_type="user", now=datetime.now(UTC)
        )
        s.commit()
    return a, customer_id, vehicle_id, address_id


def test_vehicles_and_addresses_of_a_deleting_or_anonymised_customer_are_refused_on_the_server(
    app, make_tenant, seed_booking, visitor
):
    from app.customers.models import Address, Vehicle
    from tests.test_api_keys import make_key

    a, customer_id, vehicle_id, address_id = _cancelled_booking_of(app, make_tenant, seed_booking)
    _, secret = make_key(app, a)
    v = _owner(visitor, a)
    token = v.dashboard_token()
    api = app.test_client()

    def attempts() -> list:
        car = {"size_class": "suv", "make": "Ford", "plate": "NEW123"}
        return [
            v.post(f"/customers/{customer_id}/vehicles", {"csrf_token": token, **car}),
            v.post(f"/customers/{customer_id}/vehicles/{vehicle_id}/edit", {"csrf_token": token, **car}),
            v.post(f"/customers/{customer_id}/addresses", {"csrf_token": token, "address": "1 New Street, Austin TX"}),
            v.post(
                f"/customers/{customer_id}/addresses/{address_id}/notes",
                {"csrf_token": token, "access_notes": "Gate 0000"},
            ),
            api.post(
                f"/api/v1/customers/{customer_id}/vehicles",
                base_url="http://app.localhost",
                headers={"Authorization": f"Bearer {secret}"},
                json=car,
            ),
        ]

    def on_file():
        with in_tenant(app, a.id) as s:
            cars = sorted((str(x.id), x.size_class, x.make, x.plate) for x in s.scalars(s.query(Vehicle).statement))
            places = sorted((x.line1, x.access_notes) for x in s.scalars(s.query(Address).statement))
            return cars, places

    assert v.post(f"/customers/{customer_id}/delete", {"csrf_token": token, "confirm": "yes"}).status_code == 302
    html = v.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert 'data-testid="vehicle-add-form"' not in html and 'data-testid="address-add-form"' not in html
    before = on_file()
    for r in attempts():
        assert r.status_code == 409, (r.request.path, r.status_code)
        assert "scheduled for deletion" in r.get_data(as_text=True), r.request.path
    assert r.get_json()["error"]["code"] == "customer_locked"
    assert on_file() == before

    assert v.post(f"/customers/{customer_id}/delete/cancel", {"csrf_token": token}).status_code == 302
    assert v.post(f"/customers/{customer_id}/anonymise", {"csrf_token": token, "confirm": "yes"}).status_code == 302
    before = on_file()
    for r in attempts():
        assert r.status_code == 409, (r.request.path, r.status_code)
        assert "was anonymised" in r.get_data(as_text=True), r.request.path
    assert on_file() == before
    assert v.get(f"/customers/{customer_id}/vehicles/{vehicle_id}/edit").status_code == 409


def test_cancel_deletion_while_the_purge_runs_or_after_it_ran_is_a_clear_answer(
    app, make_tenant, seed_booking, visitor, superuser_conn
):
    from app.customers import privacy
    from app.customers.models import Customer

    a, customer_id, *_ = _cancelled_booking_of(app, make_tenant, seed_booking)
    v = _owner(visitor, a)
    token = v.dashboard_token()
    assert v.post(f"/customers/{customer_id}/delete", {"csrf_token": token, "confirm": "yes"}).status_code == 302

    # The purge holds the customer's row (FOR UPDATE) past the lock timeout: a clear answer, still due.
    with superuser_conn.transaction():
        superuser_conn.execute("SELECT 1 FROM customers WHERE id = %s FOR UPDATE", (customer_id,))
        r = v.post(f"/customers/{customer_id}/delete/cancel", {"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/customers/{customer_id}")
    assert "being deleted right now" in v.get(r.headers["Location"]).get_data(as_text=True)
    assert _customer(app, a, customer_id).purge_after is not None

    # The purge committed between loading the customer and canceling: kept as an anonymised shell...
    with in_tenant(app, a.id) as s:
        customer = s.get(Customer, (a.id, customer_id))
        superuser_conn.execute(
            "UPDATE customers SET name = 'Anonymised customer', phone = NULL, email = NULL, notes = NULL,"
            " anonymised_at = now(), purge_after = NULL, deletion_requested_at = NULL WHERE id = %s",
            (customer_id,),
        )
        with pytest.raises(privacy.DeletionAlreadyRan):
            privacy.cancel_deletion(customer, actor_id=None)
    # ... or deleted outright: the same answer, not a 500.
    superuser_conn.execute(
        "UPDATE customers SET purge_after = now(), deletion_requested_at = now() - interval '30 days' WHERE id = %s",
        (customer_id,),
    )
    with in_tenant(app, a.id) as s:
        customer = s.get(Customer, (a.id, customer_id))
        assert customer.purge_after is not None
        superuser_conn.execute("DELETE FROM bookings WHERE customer_id = %s", (customer_id,))
        superuser_conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))
        with pytest.raises(privacy.DeletionAlreadyRan):
            privacy.cancel_deletion(customer, actor_id=None)
    assert v.post(f"/customers/{customer_id}/delete/cancel", {"csrf_token": token}).status_code == 404


def test_scrubbing_removes_whole_words_only():
    from app.customers.privacy import scrub_text

    needles = ["Ron Weasley", "Weasley", "Ron", "+15125550199", "5125550199"]
    assert scrub_text("Front seats for Ron's van; call +15125550199 or 5125550199", needles) == (
        "Front seats for [removed]'s van; call [removed] or [removed]"
    )
    assert scrub_text("Ron Weasley paid; RON too", needles) == "[removed] paid; [removed] too"
    assert scrub_text("Ceramic coating", needles) == "Ceramic coating"


def _due_now(superuser_conn, tenant_id, customer_id) -> None:
    """Move time: the grace period ends a minute ago."""
    superuser_conn.execute(
        "UPDATE customers SET purge_after = now() - interval '1 minute', deletion_requested_at = now() - interval '30 days'"
        " WHERE tenant_id = %s AND id = %s",
        (tenant_id, customer_id),
    )


def _due_tenants(app) -> list:
    from sqlalchemy import text

    from app.extensions import db

    ids = list(db.session.execute(text("SELECT public.tenants_with_due_purges(now())")).scalars())
    db.session.rollback()
    return ids


# The business's full export --------------------------------------------------------------------


def test_tenant_export_zip_has_its_tables_not_b_and_no_secrets(
    app, make_tenant, seed_booking, visitor, superuser_conn, fresh_queues, run_jobs, smtp_server
):
    from app.calendar.models import GoogleConnection
    from app.customers import tenant_export

    sc = _scenario(app, make_tenant, seed_booking)
    with in_tenant(app, sc.a.id) as s:
        s.add(GoogleConnection(tenant_id=sc.a.id, refresh_token_enc="gAAAA-super-secret-refresh-token"))
        from app.payments.models import StripeEvent

        # A stored Stripe event nests a secret inside a JSON column.
        payload = {"data": {"object": {"id": "cs_1", "client_secret": "cs_1_secret_nested", "amount": 5000}}}
        s.add(
            StripeEvent(
                tenant_id=sc.a.id, id="evt_nested", type="checkout.session.completed", account="acct_x", payload=payload
            )
        )
        s.commit()
    from tests.test_api_keys import make_key

    key_id, _ = make_key(app, sc.a)
    key_hash = superuser_conn.execute("SELECT key_hash FROM api_keys WHERE id = %s", (key_id,)).fetchone()[0]
    password_hash = superuser_conn.execute(
        "SELECT password_hash FROM users WHERE tenant_id = %s AND id = %s", (sc.a.id, sc.a.owner.id)
    ).fetchone()[0]
    v = _owner(visitor, sc.a)
    page = v.get("/settings/data")
    assert page.status_code == 200 and 'data-testid="exports-empty"' in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    assert v.post("/settings/data/export", {"csrf_token": token}).status_code == 302
    # A second click while it's being prepared doesn't start another.
    assert v.post("/settings/data/export", {"csrf_token": token}).status_code == 302
    partial = v.get("/settings/data/exports").get_data(as_text=True)
    assert partial.count('data-testid="export-row"') == 1 and 'hx-trigger="every 3s"' in partial
    inbox = len(smtp_server.messages)
    run_jobs()
    partial = v.get("/settings/data/exports").get_data(as_text=True)
    assert 'data-status="ready"' in partial and "hx-trigger" not in partial
    with in_tenant(app, sc.a.id) as s:
        [export] = s.scalars(s.query(tenant_export.DataExport).statement).all()
        assert export.key == f"tenants/{sc.a.id}/exports/{export.id}.zip"
        export = SimpleNamespace(id=export.id, key=export.key)
    r = v.get(f"/settings/data/exports/{export.id}/download")
    assert r.status_code == 302
    with urllib.request.urlopen(r.headers["Location"], timeout=10) as got:
        body = got.read()
        assert "attachment" in got.headers["Content-Disposition"]
    archive = tenant_export.read_archive(body)
    manifest = archive.pop("manifest")
    assert {
        "customers",
        "bookings",
        "payments",
        "refunds",
        "messages",
        "users",
        "tenants",
        "audit_log",
        "quotes",
        "reviews",
        "booking_photos",
    } <= set(archive)
    assert manifest["tables"]["customers"]["rows"] == len(archive["customers"]) == 2
    assert {c["name"] for c in archive["customers"]} == {NAME, OTHER[0]}
    assert [t["id"] for t in archive["tenants"]] == [str(sc.a.id)]
    for table, rows in archive.items():
        for row in rows:
            assert row.get("tenant_id", str(sc.a.id)) == str(sc.a.id), table
    text = body_text = "\n".join(json.dumps(rows) for rows in archive.values())
    assert B_NAME not in text and str(sc.b.id) not in text and sc.b.owner.email not in text
    # Credentials never leave.
    assert "password_hash" not in archive["users"][0] and "password_hash" in manifest["tables"]["users"]["left_out"]
    assert password_hash not in body_text and "super-secret-refresh-token" not in body_text
    assert WEBHOOK_SECRET not in body_text and archive["webhook_deliveries"]
    assert "refresh_token_enc" in manifest["tables"]["google_connections"]["left_out"]
    assert key_hash not in body_text and archive["api_keys"][0]["id"] == str(key_id)
    assert "key_hash" in manifest["tables"]["api_keys"]["left_out"]
    assert "secret_enc" in manifest["tables"]["webhook_endpoints"]["left_out"]
    [event] = [e for e in archive["stripe_events"] if e["id"] == "evt_nested"]
    assert event["payload"]["data"]["object"] == {"id": "cs_1", "amount": 5000}
    assert "cs_1_secret_nested" not in body_text
    # The owner hears it's ready, with a link to the page (not to the archive).
    mails = smtp_server.messages[inbox:]
    ready = [m for m in mails if "data export is ready" in m["Subject"]]
    assert ready and ready[0]["To"] == sc.a.owner.email and "/settings/data" in ready[0].get_payload()
    # Another business's export answers 404; an expired one is gone from storage.
    other = _owner(visitor, sc.b)
    assert other.get(f"/settings/data/exports/{export.id}/download").status_code == 404
    superuser_conn.execute(
        "UPDATE data_exports SET expires_at = now() - interval '1 minute' WHERE id = %s", (export.id,)
    )
    assert v.get(f"/settings/data/exports/{export.id}/download").status_code == 404
    assert _sweep(app) >= 1
    run_jobs()
    assert not _exists(app, export.key)


def test_an_export_whose_job_was_lost_stops_blocking_a_new_one(app, make_tenant, visitor, superuser_conn):
    """Redis down when "Export all data" was clicked: the row is saved but no job ever runs it. A
    quarter of an hour later the page calls it failed and a new click starts a new export."""
    t = make_tenant()
    v = _owner(visitor, t)
    token = csrf_from(v.get("/settings/data").get_data(as_text=True))
    assert v.post("/settings/data/export", {"csrf_token": token}).status_code == 302
    assert 'data-status="queued"' in v.get("/settings/data/exports").get_data(as_text=True)
    superuser_conn.execute(
        "UPDATE data_exports SET created_at = now() - interval '16 minutes' WHERE tenant_id = %s", (t.id,)
    )
    assert 'data-status="failed"' in v.get("/settings/data/exports").get_data(as_text=True)
    assert v.post("/settings/data/export", {"csrf_token": token}).status_code == 302
    statuses = superuser_conn.execute(
        "SELECT status FROM data_exports WHERE tenant_id = %s ORDER BY created_at", (t.id,)
    ).fetchall()
    assert [s for (s,) in statuses] == ["queued", "queued"]
    partial = v.get("/settings/data/exports").get_data(as_text=True)
    assert partial.count('data-status="queued"') == 1 and partial.count('data-status="failed"') == 1


# In a browser ----------------------------------------------------------------------------------


@pytest.mark.browser
def test_customer_page_delete_with_confirm_then_cancel_and_data_page_on_a_phone(
    app, make_tenant, seed_booking, new_context, live_server, fresh_queues
):
    from playwright.sync_api import expect

    from tests.pages import PHONE, screenshot

    sc = _scenario(app, make_tenant, seed_booking)
    page = new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    page.goto(live_server.url("app.localhost", "/login"))
    page.get_by_test_id("field-email").fill(sc.a.owner.email)
    page.get_by_test_id("field-password").fill(sc.a.owner.password)
    page.get_by_test_id("login-submit").click()
    page.goto(live_server.url("app.localhost", f"/customers/{sc.x}"))
    expect(page.get_by_test_id("customer-privacy")).to_be_visible()
    screenshot(page, "privacy-1-customer-page")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]

    page.get_by_test_id("customer-delete").click()
    expect(page.get_by_test_id("delete-form")).to_be_visible()
    # The confirm step: without the tick the browser (and the server) refuse.
    page.get_by_test_id("delete-submit").click()
    expect(page.get_by_test_id("delete-form")).to_be_visible()
    assert _customer(app, sc.a, sc.x).purge_after is None
    page.get_by_test_id("delete-confirm").check()
    screenshot(page, "privacy-2-delete-confirm")
    page.get_by_test_id("delete-submit").click()
    expect(page.get_by_test_id("deletion-pending")).to_contain_text("Scheduled for deletion")
    expect(page.get_by_test_id("customer-book")).to_have_count(0)
    screenshot(page, "privacy-3-deletion-pending")
    page.get_by_test_id("deletion-cancel").click()
    expect(page.get_by_test_id("deletion-pending")).to_have_count(0)
    expect(page.get_by_test_id("customer-book")).to_be_visible()
    assert _customer(app, sc.a, sc.x).purge_after is None

    page.get_by_test_id("customer-anonymise").click()
    page.get_by_test_id("anonymise-confirm").check()
    page.get_by_test_id("anonymise-submit").click()
    expect(page.get_by_test_id("anonymised-note")).to_be_visible()
    expect(page.get_by_test_id("customer-name")).to_have_text("Anonymised customer")
    expect(page.get_by_test_id("contact-edit")).to_have_count(0)
    screenshot(page, "privacy-4-anonymised")

    page.goto(live_server.url("app.localhost", "/settings"))
    page.get_by_test_id("settings-data").click()
    page.get_by_test_id("export-all").click()
    expect(page.get_by_test_id("export-row")).to_have_count(1)
    screenshot(page, "privacy-5-data-page")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
