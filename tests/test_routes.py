"""Route-aware availability and day plans (issue 6; DESIGN §5, §8): customers are offered only
times a technician can drive to, two bookings that each fit can't together break a day, and the
owner optimises a day, sees the saving and approves it."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.booking import availability as av
from app.booking.errors import SlotTaken
from tests.test_booking import PLACE, book, tomorrow_at

NY = ZoneInfo("America/New_York")
DOWNTOWN = (30.2672, -97.7431)
NORTH = (DOWNTOWN[0] + 0.13, DOWNTOWN[1])  # ~28 min drive from downtown (haversine × 1.3 at 40 km/h)
SOUTH = (DOWNTOWN[0] - 0.13, DOWNTOWN[1])  # ~56 min from NORTH


def haversine_drive(a, b) -> int:
    from app.routing.model import Location
    from app.routing.travel import Haversine

    durations, _ = Haversine().matrix([Location(*a), Location(*b)])
    return durations[0][1]


# The pure engine ---------------------------------------------------------------------------------


def _tech(busy=(), home=None, tech_id=None):
    return av.Technician(
        tech_id or uuid.uuid4(), "T", {d: [(time(8), time(18))] for d in range(7)}, tuple(busy), 0, home
    )


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), NY).astimezone(UTC)


def test_a_time_is_offered_only_if_the_technician_can_drive_there_and_on():
    day = (datetime.now(NY) + timedelta(days=3)).date()
    rules = av.Rules("America/New_York", buffer=timedelta(0))
    job = av.Busy(_at(day, 10), _at(day, 11), "booking", "AAA", DOWNTOWN)
    later = av.Busy(_at(day, 14), _at(day, 15), "booking", "BBB", DOWNTOWN)
    tech = _tech([job, later])
    now = datetime.now(UTC)
    by_start = {
        c.local.strftime("%H:%M"): c
        for c in av.candidates(day, tech, rules, timedelta(hours=1), now=now, place=NORTH, drive=haversine_drive)
    }
    assert haversine_drive(DOWNTOWN, NORTH) == pytest.approx(1680, abs=60)
    assert not by_start["11:00"].offered and "from the 10:00 am job" in by_start["11:00"].reason
    assert by_start["11:30"].offered and by_start["11:30"].added_drive_s == pytest.approx(2 * 1680, abs=120)
    assert not by_start["13:00"].offered and "Wouldn't reach the 2:00 pm job" in by_start["13:00"].reason
    assert by_start["12:30"].offered
    # Without a place the engine behaves as before: every free time is offered.
    plain = {c.local.strftime("%H:%M"): c for c in av.candidates(day, tech, rules, timedelta(hours=1), now=now)}
    assert plain["11:00"].offered and plain["13:00"].offered


def test_the_technician_whose_day_it_costs_the_fewest_drive_minutes_comes_first():
    day = (datetime.now(NY) + timedelta(days=3)).date()
    rules = av.Rules("America/New_York", buffer=timedelta(0))
    near = _tech([av.Busy(_at(day, 9), _at(day, 10), "booking", "N", NORTH)])
    far = _tech([av.Busy(_at(day, 9), _at(day, 10), "booking", "S", SOUTH)])
    slots = av.day_slots(
        day, [far, near], rules, timedelta(hours=1), now=datetime.now(UTC), place=NORTH, drive=haversine_drive
    )
    eleven = next(s for s in slots if s.local.hour == 11 and s.local.minute == 0)
    assert eleven.technician_ids == (near.id, far.id)
    assert eleven.added_drive_s[0] < eleven.added_drive_s[1]
    ten = next(s for s in slots if s.local.hour == 10 and s.local.minute == 0)
    assert ten.technician_ids == (near.id,)  # the far one can't get north by 10:00


# Through the booking site and the booking service ------------------------------------------------


def _place(point):
    return {**PLACE, "lat": point[0], "lng": point[1]}


def _request(f, starts_at, point, phone, tech=None):
    from app.booking.services import BookingRequest

    return BookingRequest(
        package_id=f.wash,
        addon_ids=[],
        vehicle={"size_class": "sedan", "make": "Honda"},
        place=_place(point),
        access_notes=None,
        customer={"name": "Casey Customer", "phone": phone, "email": ""},
        starts_at=starts_at,
        technician_id=tech,
    )


def _staff_book(app, t, req):
    from app.booking import services
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        b = services.book(db.session.get(Tenant, t.id), req, now=datetime.now(UTC), actor_type="user")
        db.session.commit()
        return b.id


def test_two_bookings_that_each_fit_a_day_cannot_together_break_it(app, make_tenant, seed_booking):
    """One technician, downtown jobs at 10–11 and 15–16. A customer up north at 12:00 fits; a
    customer down south at 13:30 fits; both can't (an hour's drive between them). Exactly one wins."""
    t = make_tenant()
    f = seed_booking(t, techs=1, buffer_min=0)
    _staff_book(app, t, _request(f, tomorrow_at(10), DOWNTOWN, "+15125550201", f.techs[0]))
    _staff_book(app, t, _request(f, tomorrow_at(15), DOWNTOWN, "+15125550202", f.techs[0]))
    north = _request(f, tomorrow_at(12), NORTH, "+15125550203")
    south = _request(f, tomorrow_at(13) + timedelta(minutes=30), SOUTH, "+15125550204")
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(req):
        barrier.wait()
        try:
            book(app, t, req)
            outcomes.append("booked")
        except SlotTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=attempt, args=(r,)) for r in (north, south)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert sorted(outcomes) == ["booked", "taken"]
    # Each alone would have been fine: the loser's time is offered again once the winner cancels.


def test_the_booking_site_offers_only_reachable_times(app, make_tenant, seed_booking, visitor):
    import re

    from tests.helpers import csrf_from

    t = make_tenant()
    f = seed_booking(t, techs=1, buffer_min=0)
    day = (datetime.now(NY) + timedelta(days=3)).date()
    _staff_book(app, t, _request(f, _at(day, 10), NORTH, "+15125550211", f.techs[0]))
    site = visitor(t.host)
    page = site.get("/book").get_data(as_text=True)
    site.post("/book", {"package_id": str(f.wash), "size_class": "sedan", "csrf_token": csrf_from(page)})
    page = site.get("/book/address").get_data(as_text=True)
    address = {"address": "1100 Congress Ave, Austin", "csrf_token": csrf_from(page)}  # downtown
    site.post("/book/address", address)
    site.post("/book/address", address)
    html = site.get(f"/book/time?day={day.isoformat()}").get_data(as_text=True)
    offered = {
        datetime.fromisoformat(v).astimezone(NY).strftime("%H:%M")
        for v in re.findall(r'name="starts_at" value="([^"]+)"', html)
    }
    assert "09:30" not in offered and "11:00" not in offered  # no way to drive between downtown and north in 0 min
    assert "08:00" in offered and "11:30" in offered


# Day plans ----------------------------------------------------------------------------------------


def _messy_day(app, make_tenant, seed_booking):
    """Two technicians with homes north and south, each booked at the other end of town."""
    from app.booking.models import Technician
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, techs=2, buffer_min=0)
    with app.app_context(), tenant_context(t.id, db.session):
        north_tech, south_tech = (db.session.get(Technician, (t.id, i)) for i in f.techs)
        north_tech.home_lat, north_tech.home_lng = NORTH
        south_tech.home_lat, south_tech.home_lng = SOUTH
        db.session.commit()
    day = (datetime.now(NY) + timedelta(days=2)).date()
    for i, hour in enumerate((9, 11, 13)):
        _staff_book(app, t, _request(f, _at(day, hour), SOUTH, f"+1512555030{i}", f.techs[0]))
        _staff_book(app, t, _request(f, _at(day, hour), NORTH, f"+1512555031{i}", f.techs[1]))
    return t, f, day


def test_owner_optimises_a_day_sees_the_saving_and_approves(app, make_tenant, seed_booking, visitor, run_jobs):
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tests.helpers import csrf_from

    t, f, day = _messy_day(app, make_tenant, seed_booking)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/routes?day={day.isoformat()}").get_data(as_text=True)
    assert 'data-testid="route-map"' in page and page.count('data-testid="stop"') == 6
    r = owner.post("/routes/optimise", {"day": day.isoformat(), "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    assert 'data-testid="optimising"' in owner.get(f"/routes?day={day.isoformat()}").get_data(as_text=True)
    run_jobs()
    page = owner.get(f"/routes?day={day.isoformat()}").get_data(as_text=True)
    import re

    saving = int(re.search(r'data-testid="saving">(\d+) min', page).group(1))
    assert saving >= 60  # swapping ends of town saves both technicians hours of driving
    action = re.search(r'action="(/routes/plans/[^"]+/approve)"', page).group(1)
    r = owner.post(action, {"csrf_token": csrf_from(page)}, follow_redirects=True)
    assert "Routes approved" in r.get_data(as_text=True)
    with app.app_context(), tenant_context(t.id, db.session):
        rows = list(db.session.scalars(db.select(Booking)))
        assert all(b.route_position is not None for b in rows)
        north_ids = {b.technician_id for b in rows if b.address.lat > DOWNTOWN[0]}
        assert north_ids == {f.techs[1]} or len(north_ids) == 1  # each side of town has one technician
        db.session.rollback()


def test_reordering_a_technicians_stops_recomputes_and_flags_a_missed_window(app, make_tenant, seed_booking, visitor):
    import re

    from tests.helpers import csrf_from

    t, f, day = _messy_day(app, make_tenant, seed_booking)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/routes?day={day.isoformat()}").get_data(as_text=True)
    form = re.search(r'<form method="post" action="/routes/reorder".*?</form>', page, re.S).group(0)
    fields = dict(re.findall(r'name="(day|technician_id|order|move)" value="([^"]*)"', form))
    r = owner.post(
        "/routes/reorder", {**fields, "direction": "down", "csrf_token": csrf_from(page)}, follow_redirects=True
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "misses a customer" in html  # the 9:00 job can't wait until after 11:00


def test_plans_of_another_business_are_not_found(app, two_tenants, visitor, make_tenant, seed_booking, run_jobs):
    from tests.helpers import csrf_from

    t, _, day = _messy_day(app, make_tenant, seed_booking)
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    page = owner.get(f"/routes?day={day.isoformat()}").get_data(as_text=True)
    owner.post("/routes/optimise", {"day": day.isoformat(), "csrf_token": csrf_from(page)})
    run_jobs()
    import re

    plan_path = re.search(
        r'action="(/routes/plans/[^"]+)/approve"', owner.get(f"/routes?day={day}").get_data(as_text=True)
    ).group(1)
    a, _ = two_tenants
    other = visitor("app.localhost")
    other.login(a.owner.email, a.owner.password)
    assert other.get(plan_path).status_code == 404
    assert other.post(plan_path + "/approve", {"csrf_token": other.dashboard_token()}).status_code == 404


def test_the_explainer_shows_the_drive_minutes_each_time_adds(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t, techs=1, buffer_min=0)
    day = (datetime.now(NY) + timedelta(days=3)).date()
    _staff_book(app, t, _request(f, _at(day, 10), NORTH, "+15125550221", f.techs[0]))
    owner = visitor("app.localhost")
    owner.login(t.owner.email, t.owner.password)
    html = owner.get(
        f"/availability?technician_id={f.techs[0]}&date={day.isoformat()}&duration_min=60"
        "&address=1100+Congress+Ave%2C+Austin"
    ).get_data(as_text=True)
    assert "Can&#39;t get there in time from the 10:00 am job" in html
    assert "Wouldn&#39;t reach the 10:00 am job after" in html
    assert 'data-testid="added-drive">' in html and "Offered: adds" in html
    bad = owner.get(f"/availability?technician_id={f.techs[0]}&date={day}&address=nowhere+at+all").get_data(
        as_text=True
    )
    assert "We couldn&#39;t find that address" in bad
