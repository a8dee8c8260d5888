"""The owner's side of booking: calendar data, moving, statuses, services, technicians, explainer."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.test_booking import book, request, tomorrow_at
from tests.test_quotas import set_plan


@pytest.fixture
def owner_with_bookings(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t, techs=2)
    b1 = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    return t, f, b1, v


@pytest.mark.parametrize("path", ["/calendar", "/services", "/technicians", "/availability", "/bookings/new"])
def test_pages_render(owner_with_bookings, path):
    t, f, b1, v = owner_with_bookings
    r = v.get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:1000]


def test_calendar_events_are_in_local_time_with_lanes(owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    day = tomorrow_at(10).astimezone(ZoneInfo("America/New_York")).date()
    events = v.get(f"/calendar/events?start={day}T00:00:00&end={day + timedelta(days=1)}T00:00:00").get_json()
    assert len(events) == 1
    assert events[0]["start"].endswith("T10:00:00") and events[0]["resourceIds"] == [str(f.techs[0])]
    page = v.get("/calendar").get_data(as_text=True)
    resources = json.loads(re.search(r"data-resources='([^']+)'", page).group(1))
    assert [r["id"] for r in resources] == [str(x) for x in f.techs]


def test_drag_move_follows_the_rules(app, owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    token = v.dashboard_token()
    day = tomorrow_at(10).astimezone(ZoneInfo("America/New_York")).date()
    b2 = book(app, t, request(f, tomorrow_at(14), tech=f.techs[1], phone="+15125550177"))
    ok = v.client.post(
        "/calendar/move",
        base_url=v.base,
        headers={"X-CSRFToken": token},
        json={"id": str(b1), "start": f"{day}T12:00:00", "resourceId": str(f.techs[0])},
    )
    assert ok.status_code == 200, ok.get_json()
    clash = v.client.post(
        "/calendar/move",
        base_url=v.base,
        headers={"X-CSRFToken": token},
        json={"id": str(b1), "start": f"{day}T14:30:00", "resourceId": str(f.techs[1])},
    )
    assert clash.status_code == 409 and "just taken" in clash.get_json()["error"]["message"]
    history = v.get(f"/bookings/{b1}").get_data(as_text=True)
    assert "Moved" in history and b2


def test_status_buttons_walk_the_state_machine(owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    token = v.dashboard_token()
    for status, label in (("in_progress", "In progress"), ("completed", "Completed")):
        r = v.post(f"/bookings/{b1}/status", {"status": status, "csrf_token": token})
        assert r.status_code == 302
        assert label in v.get(f"/bookings/{b1}").get_data(as_text=True)
    r = v.post(f"/bookings/{b1}/status", {"status": "canceled", "csrf_token": token})
    page = v.get(f"/bookings/{b1}").get_data(as_text=True)
    assert "can&#39;t become canceled" in page or "can't become canceled" in page


def test_owner_books_from_the_dashboard(owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    day = tomorrow_at(10).astimezone(ZoneInfo("America/New_York")).date()
    form = {
        "name": "Walk In",
        "phone": "(512) 555-0190",
        "address": "400 Congress Ave",
        "size_class": "sedan",
        "package_id": str(f.wash),
        "technician_id": str(f.techs[0]),
        "starts_local": f"{day}T10:30",
        "csrf_token": v.dashboard_token(),
    }
    clash = v.post("/bookings/new", form)
    assert clash.status_code == 422 and "just taken" in clash.get_data(as_text=True)
    r = v.post("/bookings/new", {**form, "starts_local": f"{day}T15:00"})
    assert r.status_code == 302 and "/bookings/" in r.headers["Location"]


def test_services_and_rules(owner_with_bookings, visitor):
    t, f, b1, v = owner_with_bookings
    token = v.dashboard_token()
    bad = v.post(
        "/services",
        {"name": "Odd", "kind": "package", "price_sedan": "abc", "duration_sedan": "60", "csrf_token": token},
    )
    assert bad.status_code == 422
    r = v.post(
        "/services",
        {
            "name": "Headliner clean",
            "kind": "package",
            "price_sedan": "89.50",
            "duration_sedan": "45",
            "csrf_token": token,
        },
    )
    assert r.status_code == 302
    assert "Headliner clean" in visitor(t.host).get("/").get_data(as_text=True)
    bad_rules = v.post("/services/rules", {"lead_time_min": "-5", "csrf_token": token})
    assert bad_rules.status_code == 422
    rules = {
        "lead_time_min": "60",
        "horizon_days": "30",
        "buffer_min": "20",
        "arrival_window_min": "60",
        "slot_step_min": "30",
        "hold_min": "15",
        "cancel_cutoff_hours": "12",
        "max_reschedules": "1",
        "csrf_token": token,
    }
    assert v.post("/services/rules", rules).status_code == 302


def test_technician_hours_days_off_and_explainer(app, owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    set_plan(app, t, "pro")  # a third technician: Starter includes one (tests/test_quotas.py)
    token = v.dashboard_token()
    form = {
        "name": "Nia New",
        "home_address": "4500 Mueller Blvd",
        "skills": "ceramic, paint",
        "color": "#123456",
        "on_0": "on",
        "start_0": "09:00",
        "end_0": "15:00",
        "csrf_token": token,
    }
    assert v.post("/technicians", {**form, "home_address": "Nowhere"}).status_code == 422
    assert v.post("/technicians", form).status_code == 302
    assert "Nia New" in v.get("/technicians").get_data(as_text=True)
    day = tomorrow_at(10).astimezone(ZoneInfo("America/New_York")).date()
    page = v.get(f"/availability?technician_id={f.techs[0]}&date={day}&duration_min=60").get_data(as_text=True)
    assert "Booked (" in page and "Offered" in page
    v.post(f"/technicians/{f.techs[0]}/days-off", {"day": day.isoformat(), "label": "Dentist", "csrf_token": token})
    page = v.get(f"/availability?technician_id={f.techs[0]}&date={day}&duration_min=60").get_data(as_text=True)
    assert "Dentist" in page


def test_tenant_a_cannot_move_b_bookings_by_calendar(app, owner_with_bookings, make_tenant, seed_booking):
    t, f, b1, v = owner_with_bookings
    other = make_tenant()
    fo = seed_booking(other)
    theirs = book(app, other, request(fo, tomorrow_at(9)))
    r = v.client.post(
        "/calendar/move",
        base_url=v.base,
        headers={"X-CSRFToken": v.dashboard_token()},
        json={"id": str(theirs), "start": "2030-01-01T10:00:00"},
    )
    assert r.status_code == 404
    assert datetime  # noqa


def test_home_lists_todays_jobs(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t, lead_time_min=0)
    now_local = datetime.now(ZoneInfo("America/New_York"))
    v = visitor()
    v.login(t.owner.email, t.owner.password)
    empty = v.get("/").get_data(as_text=True)
    assert "No jobs booked for today" in empty
    start = max(
        now_local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
        now_local.replace(hour=9, minute=0, second=0, microsecond=0),
    )
    if start.hour >= 16:
        return  # too late today for a slot inside working hours; the empty state was checked
    book(app, t, request(f, start.astimezone(ZoneInfo("UTC"))))
    page = v.get("/").get_data(as_text=True)
    assert 'data-testid="today-jobs"' in page and "Casey Customer" in page


def test_one_login_links_to_one_technician(app, owner_with_bookings):
    t, f, b1, v = owner_with_bookings
    set_plan(app, t, "pro")  # a third technician: Starter includes one (tests/test_quotas.py)
    token = v.dashboard_token()
    form = {"name": "First", "user_id": str(t.owner.id), "color": "#123456", "csrf_token": token}
    assert v.post("/technicians", form).status_code == 302
    again = v.post("/technicians", {**form, "name": "Second"})
    assert again.status_code == 422 and "already belongs" in again.get_data(as_text=True)
    junk = v.post("/technicians", {**form, "name": "Third", "user_id": "not-a-uuid"})
    assert junk.status_code == 422
