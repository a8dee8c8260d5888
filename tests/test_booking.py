"""Booking: no double booking (D1–D3), holds, the booking site flow, manage links (H5)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.booking.errors import SlotTaken

UTC = UTC
PLACE = {
    "line1": "1100 Congress Ave",
    "city": "Austin",
    "region": "TX",
    "postal_code": None,
    "lat": 30.2747,
    "lng": -97.7404,
}


def tomorrow_at(hour: int, tz="America/New_York") -> datetime:
    local = (datetime.now(ZoneInfo(tz)) + timedelta(days=2)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def request(facts, starts_at, *, phone="+15125550142", tech=None, package=None, size="sedan"):
    from app.booking.services import BookingRequest

    return BookingRequest(
        package_id=package or facts.wash,
        addon_ids=[],
        vehicle={"size_class": size, "make": "Honda"},
        place=PLACE,
        access_notes=None,
        customer={"name": "Casey Customer", "phone": phone, "email": ""},
        starts_at=starts_at,
        technician_id=tech,
    )


def book(app, t, req, now=None):
    from app.booking import services
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        try:
            b = services.book(db.session.get(Tenant, t.id), req, now=now or datetime.now(UTC))
            db.session.commit()
            return b.id
        except Exception:
            db.session.rollback()
            raise


def test_d2_overlap_adjacent_other_tech_other_tenant(app, make_tenant, seed_booking):
    a, b = make_tenant(), make_tenant()
    fa = seed_booking(a, techs=2, buffer_min=0)
    fb = seed_booking(b, techs=1, buffer_min=0)
    ten = tomorrow_at(10)
    book(app, a, request(fa, ten, tech=fa.techs[0]))  # 10:00–11:00
    with pytest.raises(SlotTaken):  # 10:30–11:30 same tech
        book(app, a, request(fa, ten + timedelta(minutes=30), tech=fa.techs[0], phone="+15125550143"))
    book(app, a, request(fa, ten + timedelta(hours=1), tech=fa.techs[0], phone="+15125550144"))  # adjacent
    book(app, a, request(fa, ten, tech=fa.techs[1], phone="+15125550145"))  # same time, other tech
    book(app, b, request(fb, ten, tech=fb.techs[0]))  # same time, other tenant


def test_exclusion_constraint_is_the_last_line(app, make_tenant, seed_booking):
    """Even bypassing the service's checks, PostgreSQL refuses an overlapping active row."""
    import psycopg

    t = make_tenant()
    f = seed_booking(t)
    first = book(app, t, request(f, tomorrow_at(10)))
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        src = db.session.get(Booking, (t.id, first))
        clone = Booking(
            **{c.name: getattr(src, c.name) for c in Booking.__table__.columns if c.name not in ("id", "reference")},
            reference="ZZZZZZ",
        )
        db.session.add(clone)
        with pytest.raises(Exception) as exc:
            db.session.flush()
        assert isinstance(exc.value.orig, psycopg.errors.ExclusionViolation)
        db.session.rollback()


def test_d3_pending_holds_cannot_overlap_and_expire_to_free_the_slot(app, make_tenant, seed_booking, run_jobs):
    from app.booking import services
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, deposits=True)
    slot = tomorrow_at(11)
    held = book(app, t, request(f, slot))
    with pytest.raises(SlotTaken):
        book(app, t, request(f, slot, phone="+15125550150"))
    later = datetime.now(UTC) + timedelta(minutes=16)
    with app.app_context(), tenant_context(t.id, db.session):
        assert db.session.get(Booking, (t.id, held)).status == "pending"
        assert services.expire_hold(held, now=later) is True
        db.session.commit()
        assert services.expire_hold(held, now=later) is False  # idempotent
        db.session.commit()
    again = book(app, t, request(f, slot, phone="+15125550151"), now=datetime.now(UTC))
    # Reactivating the expired hold into the re-taken slot is refused by the database.
    with app.app_context(), tenant_context(t.id, db.session):
        old = db.session.get(Booking, (t.id, held))
        old.status = "confirmed"
        with pytest.raises(Exception) as exc:
            db.session.flush()
        assert "ex_bookings_no_overlap" in str(exc.value)
        db.session.rollback()
        assert db.session.get(Booking, (t.id, again)).status == "pending"


def test_d1_fifty_concurrent_requests_for_one_slot(app, make_tenant, seed_booking, live_server):
    """50 threads POST the same technician and time to the running app: one wins, 49 get 409."""
    import http.client
    import json

    t = make_tenant()
    f = seed_booking(t)
    from tests.helpers import Visitor

    v = Visitor(app.test_client(), "app.localhost")
    v.login(t.owner.email, t.owner.password)
    token = v.dashboard_token()  # the CSRF secret lives in the session: take the cookie after
    cookie = v.client.get_cookie("fd_session", domain="app.localhost").value
    slot = tomorrow_at(13).isoformat()
    results: list[tuple[int, dict]] = []
    barrier = threading.Barrier(50)

    def post(i: int):
        body = json.dumps(
            {
                "package_id": str(f.wash),
                "size_class": "sedan",
                "technician_id": str(f.techs[0]),
                "starts_at": slot,
                "customer": {"name": f"Racer {i}", "phone": f"+1512555{1000 + i:04d}"},
                "address": "1100 Congress Ave",
            }
        )
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=60)
        barrier.wait()
        conn.request(
            "POST",
            "/api/v1/bookings",
            body=body,
            headers={
                "Host": f"app.localhost:{live_server.port}",
                "Content-Type": "application/json",
                "Cookie": f"fd_session={cookie}",
                "X-CSRFToken": token,
            },
        )
        r = conn.getresponse()
        results.append((r.status, json.loads(r.read() or b"{}")))
        conn.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    assert all(
        body["error"]["message"].startswith("Sorry, that time was just taken") for s, body in results if s == 409
    )


def _form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_booking_site_flow_and_manage_link(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    site = visitor(t.host)
    page = site.get("/book").get_data(as_text=True)
    assert "Full detail" in page and "Express wash" in page
    r = site.post(
        "/book",
        {"package_id": str(f.full), "addon_ids": str(f.pet), "size_class": "truck", "csrf_token": _form_token(page)},
    )
    assert r.status_code == 422 and "isn&#39;t offered" in r.get_data(as_text=True)  # no truck price
    r = site.post(
        "/book",
        {
            "package_id": str(f.full),
            "addon_ids": str(f.pet),
            "size_class": "suv",
            "make": "Subaru",
            "model": "Outback",
            "year": "2019",
            "csrf_token": _form_token(page),
        },
    )
    assert r.status_code == 302
    page = site.get("/book/address").get_data(as_text=True)
    bad = site.post("/book/address", {"address": "Nowhere at all", "csrf_token": _form_token(page)})
    assert bad.status_code == 422 and "couldn&#39;t find" in bad.get_data(as_text=True)
    address = {"address": "1100 Congress Ave, Austin", "access_notes": "Gate 4321", "csrf_token": _form_token(page)}
    r = site.post("/book/address", address)
    assert r.status_code == 200 and 'data-testid="pin-map"' in r.get_data(as_text=True)  # check the pin first
    lat = float(re.search(r'name="lat" value="([^"]+)"', r.get_data(as_text=True)).group(1))
    lng = float(re.search(r'name="lng" value="([^"]+)"', r.get_data(as_text=True)).group(1))
    moved = {**address, "lat": f"{lat + 0.0004:.6f}", "lng": f"{lng:.6f}"}
    r = site.post("/book/address", moved)
    assert r.status_code == 302
    day = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=3)).date().isoformat()
    page = site.get(f"/book/time?day={day}").get_data(as_text=True)
    starts = re.findall(r'name="starts_at" value="([^"]+)"', page)
    assert starts, "offers times"
    r = site.post("/book/time", {"starts_at": starts[0], "csrf_token": _form_token(page)})
    assert r.status_code == 302
    page = site.get("/book/details").get_data(as_text=True)
    bad = site.post("/book/details", {"name": "Pat", "phone": "123", "csrf_token": _form_token(page)})
    assert bad.status_code == 422 and 'data-testid="error-phone"' in bad.get_data(as_text=True)
    r = site.post(
        "/book/details",
        {"name": "Pat Lee", "phone": "(512) 555-0188", "email": "pat@x.test", "csrf_token": _form_token(page)},
    )
    assert r.status_code == 302
    page = site.get("/book/review").get_data(as_text=True)
    assert "$270" in page  # 220 + 50 for an SUV
    r = site.post("/book/review", {"csrf_token": _form_token(page)})
    assert r.status_code == 302 and "/b/" in r.headers["Location"]
    manage_path = r.headers["Location"].split("?")[0]
    manage = site.get(manage_path)
    assert manage.status_code == 200 and manage.headers["Referrer-Policy"] == "no-referrer"
    html = manage.get_data(as_text=True)
    assert "Confirmed" in html and "1100 Congress Ave" in html
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        stored = db.session.scalars(db.select(Booking)).one().address
        assert abs(stored.lat - (lat + 0.0004)) < 1e-6 and stored.access_notes == "Gate 4321"
    # H5: the link is useless on another business's site, and with one character changed.
    other = make_tenant()
    assert visitor(other.host).get(manage_path).status_code == 404
    assert site.get(manage_path[:-2] + ("AA" if not manage_path.endswith("AA") else "BB")).status_code == 404
    # Reschedule to another offered time, then cancel.
    page = site.get(manage_path + f"/reschedule?day={day}").get_data(as_text=True)
    choices = re.findall(r'name="starts_at" value="([^"]+)"', page)
    target = choices[-1]
    r = site.post(manage_path + "/reschedule", {"starts_at": target, "csrf_token": _form_token(page)})
    assert r.status_code == 302
    html = site.get(manage_path).get_data(as_text=True)
    assert "moved" in html, re.findall(r"flash[^>]*>([^<]+)", html)
    r = site.post(manage_path + "/cancel", {"csrf_token": _form_token(html)})
    assert r.status_code == 302
    assert "Canceled" in site.get(manage_path).get_data(as_text=True)


def test_customer_cannot_cancel_inside_cutoff(app, make_tenant, seed_booking):
    from app.booking import services
    from app.booking.errors import PolicyRefused
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    bid = book(app, t, request(f, tomorrow_at(10)))
    with app.app_context(), tenant_context(t.id, db.session):
        tenant = db.session.get(Tenant, t.id)
        b = services.get_booking(bid)
        with pytest.raises(PolicyRefused):
            services.cancel_booking(tenant, b, actor_type="customer", now=b.starts_at - timedelta(hours=3))
        db.session.rollback()
        b = services.get_booking(bid)
        services.cancel_booking(tenant, b, actor_type="user", now=b.starts_at - timedelta(hours=3))
        db.session.commit()
        events = services.booking_events(b)
        assert [(e.from_status, e.to_status) for e in events] == [(None, "confirmed"), ("confirmed", "canceled")]


def test_t6_booking_with_another_tenants_ids_is_refused(app, make_tenant, seed_booking):
    from app.errors import ValidationFailed

    a, b = make_tenant(), make_tenant()
    fa, fb = seed_booking(a), seed_booking(b)
    with pytest.raises(ValidationFailed):  # B's package is not A's
        book(app, a, request(fa, tomorrow_at(10), package=fb.wash))
    with pytest.raises(SlotTaken):  # B's technician has no slots in A
        book(app, a, request(fa, tomorrow_at(10), tech=fb.techs[0]))
    assert uuid.UUID(str(fa.wash))


def test_hold_expiry_sweep_fans_out_per_tenant(app, make_tenant, seed_booking, run_jobs):
    """The cron sweep finds overdue holds through the narrow function and expires them in
    per-tenant jobs; other tenants' bookings are untouched."""
    from app.booking.jobs import sweep_expired_holds
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context

    a, b = make_tenant(), make_tenant()
    fa, fb = seed_booking(a, deposits=True), seed_booking(b, deposits=True)
    past = datetime.now(UTC) - timedelta(hours=1)
    held = book(app, a, request(fa, tomorrow_at(10)), now=past)  # its hold ran out 45 minutes ago
    fresh = book(app, b, request(fb, tomorrow_at(10)))
    with app.app_context():
        assert sweep_expired_holds() >= 1
    run_jobs()
    with app.app_context():
        with tenant_context(a.id, db.session):
            assert db.session.get(Booking, (a.id, held)).status == "expired"
        with tenant_context(b.id, db.session):
            assert db.session.get(Booking, (b.id, fresh)).status == "pending"
        db.session.rollback()


def test_first_time_customer_booking_twice_at_once_gets_two_bookings_one_customer(app, make_tenant, seed_booking):
    """Two concurrent first bookings from the same phone (different times) both succeed and
    share one customer record: the unique-phone race is handled, not a 500."""
    from app.customers.models import Customer
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, techs=4)
    results, errors = [], []
    barrier = threading.Barrier(4)

    def go(i):
        try:
            barrier.wait()
            results.append(book(app, t, request(f, tomorrow_at(9 + 2 * i), phone="+15125550999")))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == [] and len(results) == 4
    with app.app_context(), tenant_context(t.id, db.session):
        assert db.session.scalar(db.select(db.func.count()).select_from(Customer)) == 1
        db.session.rollback()


def test_booking_stands_when_redis_is_down_and_the_sweep_expires_it_later(services, app, make_tenant, seed_booking):
    """F2 in part: scheduling the hold's expiry must not fail a committed booking."""
    from app import create_app
    from app.booking.jobs import schedule_hold_expiry
    from app.booking.models import Booking
    from app.config import TestConfig
    from app.extensions import db
    from scripts.lib.services import free_port
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, deposits=True)
    held = book(app, t, request(f, tomorrow_at(10)))
    no_redis = create_app(
        TestConfig,
        {"SQLALCHEMY_DATABASE_URI": services.pg.url("fieldday_app"), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    with no_redis.app_context(), tenant_context(t.id, db.session):
        booking = db.session.get(Booking, (t.id, held))
        schedule_hold_expiry(booking)  # logs, does not raise
        assert booking.status == "pending"
        db.session.rollback()
        db.engine.dispose()


def test_knowing_a_phone_number_does_not_let_a_visitor_rewrite_a_customer(app, make_tenant, seed_booking):
    """An anonymous booking with someone's phone files under them but changes nothing on file."""
    from app.booking.services import BookingRequest
    from app.customers import services as customers
    from app.customers.models import Customer
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, techs=2)
    with app.app_context(), tenant_context(t.id, db.session):
        victim = customers.create_customer(t.id, {"name": "Victim Vee", "phone": "+15125550333"}, region="US")
        customers.add_vehicle(victim, {"size_class": "sedan", "make": "Tesla", "model": "Model 3", "color": "White"})
        customers.add_address(victim, PLACE, access_notes="Gate 1111")
        db.session.commit()
    req = BookingRequest(
        package_id=f.wash,
        addon_ids=[],
        place=PLACE,
        access_notes="Gate 9999",
        vehicle={"size_class": "sedan", "make": "Tesla", "model": "Model 3", "color": "Black"},
        customer={"name": "Mallory", "phone": "(512) 555-0333", "email": "attacker@evil.test"},
        starts_at=tomorrow_at(10),
    )
    book(app, t, req)
    with app.app_context(), tenant_context(t.id, db.session):
        c = db.session.scalars(db.select(Customer)).one()
        assert c.email is None and c.name == "Victim Vee"
        assert sorted((v.color or "") for v in c.vehicles) == ["Black", "White"]  # added, not overwritten
        assert sorted(a.access_notes or "" for a in c.addresses) == ["Gate 1111", "Gate 9999"]
        from app.booking.models import Booking

        notes = db.session.scalars(db.select(Booking)).one().customer_notes
        assert "Booked as Mallory" in notes and "attacker@evil.test" in notes
        db.session.rollback()


def test_a_package_needs_a_duration(app, make_tenant):
    from app.catalog import services as catalog
    from app.errors import ValidationFailed
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    with app.app_context(), tenant_context(t.id, db.session):
        with pytest.raises(ValidationFailed):
            catalog.create_package(t.id, name="Instant", prices={"sedan": {"price_cents": 100, "duration_min": 0}})
        catalog.create_package(
            t.id, name="Free add-on", kind="addon", prices={"sedan": {"price_cents": 0, "duration_min": 0}}
        )
        db.session.rollback()
