"""The technician's day (issue 6): the stops in order with what a technician needs at the kerb,
on-my-way / start / complete with their events and the balance charge, another technician's
stop answering 404, the ETA cascade, before/after photos against the real SeaweedFS (RELIABILITY
§9 case M1), and the PWA files."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from html import unescape
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.test_payments import clean_queues  # noqa: F401  (a fixture)

TZ = ZoneInfo("America/New_York")
# Real Austin points: home, and three customers a few minutes' drive apart.
HOME = (30.2672, -97.7431)
CAPITOL = {"line1": "1100 Congress Ave", "city": "Austin", "region": "TX", "lat": 30.2747, "lng": -97.7404}
HYDE_PARK = {"line1": "4300 Speedway", "city": "Austin", "region": "TX", "lat": 30.3072, "lng": -97.7560}
NORTH = {"line1": "9500 N Lamar Blvd", "city": "Austin", "region": "TX", "lat": 30.3920, "lng": -97.7280}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MB = 1024 * 1024


# Helpers ------------------------------------------------------------------------------------------


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(UTC)


def today() -> date:
    return datetime.now(TZ).date()


def in_tenant(app, t, fn):
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


def link(app, t, tech_id, user_id, home=HOME):
    """Link a technician record to a login (the owner does this on the Technicians page)."""
    from app.booking.models import Technician
    from app.extensions import db

    def go():
        tech = db.session.get(Technician, (t.id, tech_id))
        tech.user_id = user_id
        tech.home_lat, tech.home_lng = home if home else (None, None)

    in_tenant(app, t, go)


_phones = iter(range(100, 999))


def book_stop(app, t, f, starts_at, *, tech, name, place=CAPITOL, access=None, addons=(), notes=None, **vehicle):
    """A confirmed booking made by staff at any time of any day (``now`` a day before it)."""
    from app.booking import services
    from app.extensions import db
    from tenants.models import Tenant

    req = services.BookingRequest(
        package_id=vehicle.pop("package", f.wash),
        addon_ids=list(addons),
        vehicle={"size_class": "sedan", "make": "Honda", "model": "Civic", **vehicle},
        place={"postal_code": None, **place},
        access_notes=access,
        customer={"name": name, "phone": f"+1512555{next(_phones):04d}", "email": ""},
        starts_at=starts_at,
        technician_id=tech,
        notes=notes,
        source="dashboard",
    )

    def go():
        tenant = db.session.get(Tenant, t.id)
        return services.book(tenant, req, now=starts_at - timedelta(days=1), actor_type="user").id

    return in_tenant(app, t, go)


def booking(app, t, booking_id):
    from app.booking.models import Booking
    from app.extensions import db

    def go():
        b = db.session.get(Booking, (t.id, booking_id))
        return SimpleNamespace(
            status=b.status,
            on_way_at=b.on_way_at,
            started_at=b.started_at,
            finished_at=b.finished_at,
            eta_at=b.eta_at,
            starts_at=b.starts_at,
            payment_status=b.payment_status,
        )

    return in_tenant(app, t, go)


def events(app, t, booking_id):
    from app.booking.models import BookingEvent
    from app.extensions import db

    def go():
        rows = db.session.scalars(
            db.select(BookingEvent).where(BookingEvent.booking_id == booking_id).order_by(BookingEvent.created_at)
        )
        return [(e.from_status, e.to_status, e.actor_type, e.actor_id, e.detail) for e in rows]

    return in_tenant(app, t, go)


def photo_rows(app, t):
    from app.extensions import db
    from app.media.models import BookingPhoto

    return in_tenant(
        app,
        t,
        lambda: [
            SimpleNamespace(
                id=p.id, key=p.key, status=p.status, size=p.size_bytes, kind=p.kind, booking_id=p.booking_id
            )
            for p in db.session.scalars(db.select(BookingPhoto).order_by(BookingPhoto.created_at))
        ],
    )


def logged_in(visitor, person):
    v = visitor("app.localhost")
    v.login(person.email, person.password)
    return v


def post_json(v, path, body, token):
    return v.client.post(path, base_url=v.base, json=body, headers={"X-CSRFToken": token, "Accept": "application/json"})


def to_minute(dt: datetime) -> datetime:
    return (dt + timedelta(seconds=30)).replace(second=0, microsecond=0)


def flashes(v, path="/my-day"):
    html = v.get(path).get_data(as_text=True)
    return [unescape(m.strip()) for m in re.findall(r'data-testid="flash">([^<]*)<', html)]


def stop_names(html: str) -> list[str]:
    return re.findall(r'data-testid="stop-customer">([^<]+)<', html)


@pytest.fixture
def day_setup(app, make_tenant, seed_booking):
    """A business with two technicians who log in (tech0, tech1) and a third login (tech2) not
    linked to any technician."""
    t = make_tenant(techs=3)
    f = seed_booking(t, techs=2, lead_time_min=0, buffer_min=0)
    link(app, t, f.techs[0], t.people["tech0"].id)
    link(app, t, f.techs[1], t.people["tech1"].id)
    return t, f


# The day ------------------------------------------------------------------------------------------


def test_the_day_lists_a_technicians_own_stops_in_route_order_with_what_they_need(app, day_setup, visitor):
    t, f = day_setup
    day = today()
    afternoon = book_stop(app, t, f, local(day, 14), tech=f.techs[0], name="Cara Afternoon", place=NORTH)
    morning = book_stop(
        app,
        t,
        f,
        local(day, 9),
        tech=f.techs[0],
        name="Mo Morning",
        access="Gate code #4821, park by the garage",
        addons=[f.pet],
        notes="Dog hair on the back seat",
        color="Blue",
        plate="KJX-4821",
        package=f.full,
    )
    late_morning = book_stop(app, t, f, local(day, 11, 30), tech=f.techs[0], name="Lee Late", place=HYDE_PARK)
    book_stop(app, t, f, local(day, 10), tech=f.techs[1], name="Other Tech Customer")
    book_stop(app, t, f, local(day + timedelta(days=1), 9), tech=f.techs[0], name="Tomorrow Person")

    tech = logged_in(visitor, t.people["tech0"])
    r = tech.get("/my-day")  # today, in the business's time zone
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert stop_names(html) == ["Mo Morning", "Lee Late", "Cara Afternoon"]
    assert "Other Tech Customer" not in html and "Tomorrow Person" not in html
    # What a technician needs at the kerb, for the first stop.
    first = html[html.index(f'id="stop-{morning}"') : html.index(f'id="stop-{late_morning}"')]
    assert "Gate code #4821, park by the garage" in first and 'data-testid="stop-access"' in first
    assert re.search(r'href="tel:\+1512555\d{4}"', first)
    assert "https://www.google.com/maps/dir/?api=1&amp;destination=30.274700,-97.740400" in first
    assert "Blue Honda Civic" in first and "KJX-4821" in first
    assert "Full detail" in first and "+ Pet hair removal" in first
    assert "Dog hair on the back seat" in first
    assert "9:00 am–10:00 am" in first  # the arrival window (the business's default: 60 minutes)
    assert 'data-testid="on-my-way"' in first and first.count('name="csrf_token"') >= 2
    assert '<link rel="manifest" href="/manifest.webmanifest">' in html
    # Each stop is one card: exactly one card opens by itself (the next stop to work on).
    assert html.count('<details class="md-stop-card" open>') == 1

    # An approved route's order wins over start times.
    from app.booking.models import Booking
    from app.extensions import db

    def approve():
        for position, booking_id in enumerate([afternoon, morning, late_morning]):
            db.session.get(Booking, (t.id, booking_id)).route_position = position

    in_tenant(app, t, approve)
    html = tech.get(f"/my-day?day={day.isoformat()}").get_data(as_text=True)
    assert stop_names(html) == ["Cara Afternoon", "Mo Morning", "Lee Late"]

    # Looking ahead, and an empty day.
    ahead = tech.get(f"/my-day?day={(day + timedelta(days=1)).isoformat()}").get_data(as_text=True)
    assert stop_names(ahead) == ["Tomorrow Person"]
    empty = tech.get(f"/my-day?day={(day + timedelta(days=2)).isoformat()}").get_data(as_text=True)
    assert 'data-testid="my-day-empty"' in empty and "No stops on" in empty
    # A technician can't look at a colleague's day.
    other = tech.get(f"/my-day?day={day.isoformat()}&technician={f.techs[1]}").get_data(as_text=True)
    assert "Other Tech Customer" not in other and stop_names(other) == stop_names(html)


def test_managers_pick_a_technician_and_an_unlinked_tech_is_told_what_to_do(app, day_setup, visitor):
    t, f = day_setup
    day = today()
    book_stop(app, t, f, local(day, 10), tech=f.techs[1], name="Second Tech Customer")
    owner = logged_in(visitor, t.owner)
    html = owner.get(f"/my-day?day={day.isoformat()}").get_data(as_text=True)
    assert 'data-testid="field-technician"' in html and "Tech 0" in html and "Tech 1" in html
    assert stop_names(html) == []  # the first technician's day (empty)
    html = owner.get(f"/my-day?day={day.isoformat()}&technician={f.techs[1]}").get_data(as_text=True)
    assert stop_names(html) == ["Second Tech Customer"]
    assert owner.get(f"/my-day?technician={uuid.uuid4()}").status_code == 404
    assert owner.get("/my-day?technician=not-a-uuid").status_code == 404

    lost = logged_in(visitor, t.people["tech2"])
    html = lost.get("/my-day").get_data(as_text=True)
    assert 'data-testid="my-day-unlinked"' in html and "Ask the owner" in html
    assert 'data-testid="field-technician"' not in html


# On my way, start, complete -----------------------------------------------------------------------


def test_on_my_way_then_start_then_complete_records_times_events_and_the_balance(app, day_setup, visitor):
    from app.routing.model import Location
    from app.routing.travel import Haversine

    t, f = day_setup
    day = today() + timedelta(days=1)
    stop = book_stop(app, t, f, local(day, 10), tech=f.techs[0], name="Pat Progress")
    tech = logged_in(visitor, t.people["tech0"])
    token = tech.dashboard_token()
    user_id = t.people["tech0"].id

    # Complete before starting: refused with a message, nothing changes.
    r = tech.post(f"/my-day/{stop}/complete", {"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/my-day?day={day.isoformat()}#stop-{stop}")
    assert any("can't become completed" in m for m in flashes(tech))
    assert booking(app, t, stop).status == "confirmed"

    before = datetime.now(UTC)
    assert tech.post(f"/my-day/{stop}/on-my-way", {"csrf_token": token}).status_code == 302
    after = datetime.now(UTC)
    b = booking(app, t, stop)
    assert before <= b.on_way_at <= after
    drive = Haversine().matrix([Location(*HOME), Location(CAPITOL["lat"], CAPITOL["lng"])])[0][0][1]
    assert before + timedelta(seconds=drive - 60) <= b.eta_at <= after + timedelta(seconds=drive + 60)
    *_, (from_s, to_s, actor_type, actor_id, detail) = events(app, t, stop)
    assert (from_s, to_s, actor_type, actor_id) == ("confirmed", "confirmed", "user", user_id)
    assert detail["on_my_way"] is True and datetime.fromisoformat(detail["eta"]) == b.eta_at
    assert any(m.startswith("On your way to Pat Progress. ETA") for m in flashes(tech))
    # A second tap tells no one anything new.
    tech.post(f"/my-day/{stop}/on-my-way", {"csrf_token": token})
    assert any("already told the customer" in m for m in flashes(tech))
    assert booking(app, t, stop).on_way_at == b.on_way_at and len(events(app, t, stop)) == 2

    assert tech.post(f"/my-day/{stop}/start", {"csrf_token": token}).status_code == 302
    b = booking(app, t, stop)
    assert b.status == "in_progress" and b.started_at >= after
    assert events(app, t, stop)[-1][:4] == ("confirmed", "in_progress", "user", user_id)
    page = tech.get(f"/my-day?day={day.isoformat()}").get_data(as_text=True)
    assert 'data-testid="complete"' in page and 'data-testid="on-my-way"' not in page

    assert tech.post(f"/my-day/{stop}/complete", {"csrf_token": token}).status_code == 302
    b = booking(app, t, stop)
    assert b.status == "completed" and b.finished_at >= b.started_at
    assert events(app, t, stop)[-1][:4] == ("in_progress", "completed", "user", user_id)
    # No card on file: the same message as completing from the booking page.
    assert "Job completed. $60 is still owed: record cash or check, or send the customer a pay link." in flashes(
        tech, f"/my-day?day={day.isoformat()}"
    )
    # Done is done.
    tech.post(f"/my-day/{stop}/start", {"csrf_token": token})
    assert booking(app, t, stop).status == "completed"


@pytest.mark.usefixtures("clean_queues")
def test_completing_charges_the_balance_to_the_card_saved_with_the_deposit(
    app, make_tenant, seed_booking, visitor, stripe_fake, run_jobs
):
    from tests.test_payments import connect, paid_deposit

    t = make_tenant(techs=1)
    f = seed_booking(t)
    connect(app, t, stripe_fake)
    booking_id = paid_deposit(app, visitor, t, f, stripe_fake, run_jobs)
    link(app, t, f.techs[0], t.people["tech0"].id)
    tech = logged_in(visitor, t.people["tech0"])
    token = tech.dashboard_token()
    tech.post(f"/my-day/{booking_id}/start", {"csrf_token": token})
    day = booking(app, t, booking_id).starts_at.astimezone(TZ).date().isoformat()
    page = tech.get(f"/my-day?day={day}").get_data(as_text=True)
    assert "Complete &amp; charge $45" in page and 'data-testid="field-tip"' in page
    tech.post(f"/my-day/{booking_id}/complete", {"csrf_token": token, "tip": "5"})
    assert "Job completed. Charging $50 to the card on file…" in flashes(tech, f"/my-day?day={day}")
    assert run_jobs() >= 1
    assert booking(app, t, booking_id).payment_status == "paid"
    balance = [p for p in stripe_fake.objects("payment_intent") if p["metadata"].get("kind") == "balance"]
    assert [p["amount"] for p in balance] == [5000]


def test_another_technicians_stop_is_404_and_unchanged_but_a_manager_may_act(app, day_setup, visitor):
    t, f = day_setup
    day = today()
    stop = book_stop(app, t, f, local(day, 13), tech=f.techs[0], name="Not Yours")
    photo_id = _stored_photo(app, t, stop)
    before = booking(app, t, stop)
    for who in ("tech1", "tech2"):  # another technician, and a login with no technician
        v = logged_in(visitor, t.people[who])
        token = v.dashboard_token()
        for action in ("on-my-way", "start", "complete"):
            r = v.post(f"/my-day/{stop}/{action}", {"csrf_token": token})
            assert r.status_code == 404, (who, action, r.status_code)
            assert "Not Yours" not in r.get_data(as_text=True)
        assert (
            post_json(v, f"/my-day/{stop}/photos", {"kind": "before", "content_type": "image/png"}, token).status_code
            == 404
        )
        assert v.get(f"/photos/{photo_id}").status_code == 404
        assert post_json(v, f"/my-day/photos/{photo_id}/done", {}, token).status_code == 404
    assert booking(app, t, stop) == before
    assert len(photo_rows(app, t)) == 1

    owner = logged_in(visitor, t.owner)
    r = owner.post(f"/my-day/{stop}/start", {"csrf_token": owner.dashboard_token()})
    assert r.status_code == 302 and f"technician={f.techs[0]}" in r.headers["Location"]
    assert booking(app, t, stop).status == "in_progress"
    assert owner.get(f"/photos/{photo_id}").status_code == 302


# The ETA cascade ----------------------------------------------------------------------------------


def test_a_stop_finishing_40_minutes_late_pushes_the_next_stops_etas(app, day_setup, visitor, monkeypatch):
    from app.dispatch import eta
    from app.routing.model import Location
    from app.routing.travel import Haversine

    t, f = day_setup
    day = today() + timedelta(days=1)
    first = book_stop(app, t, f, local(day, 9), tech=f.techs[0], name="First", place=CAPITOL)  # 9:00–10:00
    second = book_stop(app, t, f, local(day, 10, 30), tech=f.techs[0], name="Second", place=HYDE_PARK)
    third = book_stop(app, t, f, local(day, 12), tech=f.techs[0], name="Third", place=NORTH)
    fourth = book_stop(app, t, f, local(day, 16), tech=f.techs[0], name="Fourth", place=CAPITOL)
    # An ETA left over from an earlier estimate, no longer true: the cascade clears it.
    from app.booking.models import Booking
    from app.extensions import db

    in_tenant(app, t, lambda: setattr(db.session.get(Booking, (t.id, fourth)), "eta_at", local(day, 16, 30)))

    tech = logged_in(visitor, t.people["tech0"])
    token = tech.dashboard_token()
    monkeypatch.setattr("app.web.tech._now", lambda: local(day, 9, 2))
    tech.post(f"/my-day/{first}/start", {"csrf_token": token})
    assert booking(app, t, second).eta_at is None  # started on time: nothing moves
    monkeypatch.setattr("app.web.tech._now", lambda: local(day, 10, 40))  # planned end 10:00
    tech.post(f"/my-day/{first}/complete", {"csrf_token": token})

    durations = Haversine().matrix([Location(p["lat"], p["lng"]) for p in (CAPITOL, HYDE_PARK, NORTH)])[0]
    second_eta = to_minute(local(day, 10, 40) + timedelta(seconds=durations[0][1]))
    third_eta = to_minute(second_eta + timedelta(hours=1) + timedelta(seconds=durations[1][2]))
    assert booking(app, t, second).eta_at == second_eta  # 10:48: 18 minutes late
    assert booking(app, t, third).eta_at == third_eta > local(day, 12, 5)  # late too, after the drive north
    assert booking(app, t, fourth).eta_at is None  # 16:00 still holds: the stale ETA is gone

    late = round((second_eta - local(day, 10, 30)).total_seconds() / 60)
    html = tech.get(f"/my-day?day={day.isoformat()}").get_data(as_text=True)
    assert f"Running {late} min late" in html
    assert 'data-testid="stop-late">' in html
    # Recomputing with nothing new changes nothing, and says so.
    changes = in_tenant(app, t, lambda: eta.recompute_etas(f.techs[0], day, now=local(day, 10, 41)))
    assert changes == []
    # On the way to the second stop: the ETA counts from the stop just finished (not from home), and
    # what follows moves with it.
    monkeypatch.setattr("app.web.tech._now", lambda: local(day, 10, 42))
    tech.post(f"/my-day/{second}/on-my-way", {"csrf_token": token})
    assert booking(app, t, second).eta_at == to_minute(local(day, 10, 42) + timedelta(seconds=durations[0][1]))
    third_eta = to_minute(booking(app, t, second).eta_at + timedelta(hours=1) + timedelta(seconds=durations[1][2]))
    assert booking(app, t, third).eta_at == third_eta
    # Running long on the second job pushes what follows it again, and reports exactly that.
    in_tenant(
        app,
        t,
        lambda: eta.start_stop(db.session.get(Booking, (t.id, second)), actor_id=None, now=local(day, 10, 48)),
    )
    changes = in_tenant(app, t, lambda: eta.recompute_etas(f.techs[0], day, now=local(day, 12, 30)))
    ids = [c[0] for c in changes]
    assert ids == [third] and changes[0][1] == third_eta and changes[0][2] > third_eta


# Photos (M1) --------------------------------------------------------------------------------------


def _stored_photo(app, t, booking_id) -> uuid.UUID:
    """A photo stored in a business's folder, as if uploaded (for reads and isolation)."""
    from app.extensions import db
    from app.media import photos, storage
    from app.media.models import BookingPhoto

    def go():
        key = photos.photo_key(t.id, booking_id, "image/png")
        storage.put_object(key, PNG, "image/png")
        row = BookingPhoto(
            tenant_id=t.id,
            booking_id=booking_id,
            kind="after",
            key=key,
            content_type="image/png",
            size_bytes=len(PNG),
            status="stored",
        )
        db.session.add(row)
        db.session.flush()
        return row.id

    return in_tenant(app, t, go)


def _upload(ticket: dict, body: bytes, *, content_type: str = "image/png", **tamper) -> requests.Response:
    fields = {**ticket["fields"], **tamper}
    return requests.post(ticket["url"], data=fields, files={"file": ("photo", body, content_type)}, timeout=60)


@pytest.fixture
def photo_stop(app, day_setup, visitor):
    t, f = day_setup
    stop = book_stop(app, t, f, local(today(), 15), tech=f.techs[0], name="Photo Stop")
    tech = logged_in(visitor, t.people["tech0"])
    return SimpleNamespace(t=t, f=f, stop=stop, tech=tech, token=tech.dashboard_token())


def test_a_photo_goes_straight_to_storage_under_a_key_we_choose_and_comes_back_through_us(app, photo_stop, services):
    p = photo_stop
    t, other = p.t, uuid.uuid4()
    r = post_json(
        p.tech,
        f"/my-day/{p.stop}/photos",
        # A client naming its own key (another business's folder) is ignored.
        {"kind": "before", "content_type": "image/png", "key": f"tenants/{other}/x.png", "size": len(PNG)},
        p.token,
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    ticket = r.get_json()
    (row,) = photo_rows(app, t)
    assert ticket["photo_id"] == str(row.id) and row.status == "pending" and row.kind == "before"
    assert re.fullmatch(rf"tenants/{t.id}/bookings/{p.stop}/[A-Za-z0-9_-]{{22}}\.png", row.key)
    assert ticket["fields"]["key"] == row.key and ticket["url"].startswith(services.s3.endpoint)
    policy = json.loads(base64.b64decode(ticket["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 12 * MB] in conditions
    assert {"Content-Type": "image/png"} in conditions and {"key": row.key} in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(seconds=290) <= expires - datetime.now(UTC) <= timedelta(seconds=300)

    assert _upload(ticket, PNG).status_code in (200, 201, 204)
    done = post_json(p.tech, ticket["done_url"], {}, p.token)
    assert done.status_code == 200 and done.get_json()["status"] == "stored"
    (row,) = photo_rows(app, t)
    assert row.status == "stored" and row.size == len(PNG)

    # Read back: a tenant-checked redirect to a short-lived URL, and the page shows the thumbnail.
    r = p.tech.get(f"/photos/{row.id}")
    assert r.status_code == 302 and r.headers["Location"].startswith(services.s3.endpoint)
    assert "X-Amz-Expires=300" in r.headers["Location"]
    assert requests.get(r.headers["Location"], timeout=10).content == PNG
    assert requests.get(f"{services.s3.endpoint}/fieldday-test-media/{row.key}", timeout=10).status_code == 403
    page = p.tech.get("/my-day")
    assert f'src="/photos/{row.id}"' in page.get_data(as_text=True)
    csp = page.headers["Content-Security-Policy"]
    assert (
        f"connect-src 'self' {services.s3.endpoint};" in csp and f" {services.s3.endpoint};" in csp.split("img-src")[1]
    )
    assert services.s3.endpoint not in p.tech.get("/account").headers["Content-Security-Policy"]


def test_m1_storage_refuses_a_26_mb_file_a_changed_type_and_a_changed_key(app, photo_stop, make_tenant):
    p = photo_stop
    b = make_tenant()
    ask = {"kind": "after", "content_type": "image/jpeg"}
    ticket = post_json(p.tech, f"/my-day/{p.stop}/photos", ask, p.token).get_json()
    too_big = _upload(ticket, b"\xff" * (26 * MB), content_type="image/jpeg")
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    html = _upload(ticket, b"<script>alert(1)</script>", content_type="text/html", **{"Content-Type": "text/html"})
    assert html.status_code == 403
    elsewhere = _upload(ticket, PNG, content_type="image/jpeg", key=f"tenants/{b.id}/bookings/x/evil.jpg")
    assert elsewhere.status_code == 403
    # Nothing arrived, so "done" answers 422 and the row is gone.
    r = post_json(p.tech, ticket["done_url"], {}, p.token)
    assert r.status_code == 422 and "didn't reach storage" in r.get_json()["error"]["message"]
    assert photo_rows(app, p.t) == []


def test_m1_wrong_types_and_sizes_are_refused_before_anything_is_signed(app, photo_stop):
    p = photo_stop
    for body, field in (
        ({"kind": "before", "content_type": "text/html"}, "content_type"),
        ({"kind": "before", "content_type": "image/svg+xml"}, "content_type"),
        ({"kind": "during", "content_type": "image/png"}, "kind"),
        ({"kind": "before", "content_type": "image/png", "size": 26 * MB}, "size"),
        ({"kind": "before", "content_type": "image/png", "size": 0}, "size"),
    ):
        r = post_json(p.tech, f"/my-day/{p.stop}/photos", body, p.token)
        assert r.status_code == 422, body
        assert field in r.get_json()["error"]["fields"] and "url" not in r.get_json()
    assert photo_rows(app, p.t) == []


def test_m1_an_upload_url_used_after_expiry_is_refused(app, photo_stop):
    from app.booking.models import Booking
    from app.extensions import db
    from app.media import photos

    p = photo_stop

    def sign():
        ticket = photos.start_upload(
            db.session.get(Booking, (p.t.id, p.stop)),
            kind="before",
            content_type="image/png",
            uploaded_by=None,
            expires_in=1,
        )
        return {"url": ticket.url, "fields": ticket.fields, "id": ticket.photo.id}

    ticket = in_tenant(app, p.t, sign)
    time.sleep(2.5)
    r = _upload(ticket, PNG)
    assert r.status_code == 403 and "expired" in r.text.lower()
    # And a read URL is just as short-lived.
    photo_id = _stored_photo(app, p.t, p.stop)

    def read():
        return photos.read_url(photos.get_photo(photo_id), expires_in=1)

    url = in_tenant(app, p.t, read)
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(2.5)
    assert requests.get(url, timeout=10).status_code == 403


def test_m1_another_businesss_photo_is_404_through_our_session(app, photo_stop, make_tenant, seed_booking, visitor):
    p = photo_stop
    b = make_tenant(techs=1)
    fb = seed_booking(b, lead_time_min=0)
    b_stop = book_stop(app, b, fb, local(today(), 10), tech=fb.techs[0], name="Bravo Customer")
    b_photo = _stored_photo(app, b, b_stop)
    owner = logged_in(visitor, p.t.owner)
    token = owner.dashboard_token()
    for v, tok in ((owner, token), (p.tech, p.token)):
        r = v.get(f"/photos/{b_photo}")
        assert r.status_code == 404 and "Location" not in r.headers
        assert post_json(v, f"/my-day/photos/{b_photo}/done", {}, tok).status_code == 404
        assert (
            post_json(v, f"/my-day/{b_stop}/photos", {"kind": "before", "content_type": "image/png"}, tok).status_code
            == 404
        )
    assert [r.status for r in photo_rows(app, b)] == ["stored"]


def test_done_for_a_photo_never_uploaded_is_422_and_leaves_no_row(app, photo_stop):
    p = photo_stop
    ticket = post_json(p.tech, f"/my-day/{p.stop}/photos", {"kind": "after", "content_type": "image/webp"}, p.token)
    assert ticket.status_code == 201 and len(photo_rows(app, p.t)) == 1
    r = post_json(p.tech, ticket.get_json()["done_url"], {}, p.token)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "photo_not_stored"
    assert photo_rows(app, p.t) == []
    assert p.tech.get(f"/photos/{ticket.get_json()['photo_id']}").status_code == 404


# The PWA --------------------------------------------------------------------------------------------


def test_the_manifest_and_service_worker_are_public_and_hold_no_business_data(app, visitor):
    anon = visitor("app.localhost")
    r = anon.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.mimetype == "application/manifest+json"
    manifest = json.loads(r.get_data(as_text=True))
    assert manifest["name"] == "Fieldday · My day" and manifest["start_url"] == "/my-day"
    assert manifest["display"] == "standalone" and manifest["theme_color"] == "#0f766e"
    sizes = {i["sizes"]: i["src"] for i in manifest["icons"] if i["type"] == "image/png" and i["purpose"] == "any"}
    assert set(sizes) == {"192x192", "512x512"}
    for size, src in sizes.items():
        icon = anon.get(src)
        assert icon.status_code == 200 and icon.mimetype == "image/png"
        png = icon.get_data()
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert f"{width}x{height}" == size

    r = anon.get("/sw.js")
    assert r.status_code == 200 and r.mimetype == "text/javascript"
    body = r.get_data(as_text=True)
    assert "__SHELL__" not in body and "__VERSION__" not in body
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", body).group(1))
    assert shell and all(re.fullmatch(r"/static/[\w.-]+\.[0-9a-f]{10}\.(css|js|png)", u) for u in shell)
    assert any(u.endswith(".css") for u in shell) and any("tech." in u for u in shell)
    for url in shell:
        assert anon.get(url).status_code == 200
