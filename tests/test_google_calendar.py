"""Google Calendar two-way sync against the project's stand-in (RELIABILITY §4, §9 G1–G4, H1).

The official libraries (google-auth-oauthlib, google-auth, google-api-python-client) run for real:
the OAuth web flow, token refreshes, events.list with sync tokens, watch channels, inserts and patches
all go over HTTP to scripts/standins/google_standin.py.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.fixtures_google import GOOGLE_USER

NY = ZoneInfo("America/New_York")


# Helpers -----------------------------------------------------------------------------------------------


def owner_visitor(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def start_connect(v, tech_id=None):
    r = v.post(
        "/integrations/google/connect",
        {"technician_id": str(tech_id) if tech_id else "", "csrf_token": v.dashboard_token()},
    )
    assert r.status_code == 303, r.get_data(as_text=True)[:300]
    return r.headers["Location"]


def finish(v, back_url):
    parts = urlsplit(back_url)
    return v.get(f"{parts.path}?{parts.query}")


def connect(v, google_fake, tech_id=None, *, user=GOOGLE_USER):
    r = finish(v, google_fake.authorize(start_connect(v, tech_id), user=user))
    assert r.status_code == 302 and r.headers["Location"].endswith("/integrations#google"), r.status_code
    return r


def in_tenant(app, t, fn):
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        session = db.session()
        session.expire_on_commit = False  # hand back readable (detached) rows
        try:
            result = fn()
            session.commit()
            return result
        finally:
            session.rollback()
            session.expire_on_commit = True


def connection(app, t):
    from app.calendar.services import list_connections

    def read():
        conns = list_connections()
        return conns[0] if conns else None

    return in_tenant(app, t, read)


def calendars(app, t):
    from app.calendar.models import GoogleCalendar
    from app.extensions import db

    return in_tenant(app, t, lambda: list(db.session.scalars(db.select(GoogleCalendar))))


def blocks(app, t) -> list[tuple]:
    from app.extensions import db

    def read():
        rows = db.session.execute(
            text(
                "SELECT external_id, lower(during), upper(during), all_day, summary FROM busy_blocks"
                " WHERE source = 'google' ORDER BY lower(during)"
            )
        )
        return [tuple(r) for r in rows]

    return in_tenant(app, t, read)


def sync(app, t, *, full=False) -> list[str]:
    """One sync of every calendar in use (what a job does), returning the outcomes."""
    from app.calendar import services

    def run():
        now = datetime.now(UTC)
        return [
            services.sync_calendar(c.id, now=now, full=full)
            for c in services.list_connections()[0].calendars
            if c.in_use
        ]

    return in_tenant(app, t, run)


def at(days: int, hour: int, minute: int = 0) -> datetime:
    local = (datetime.now(NY) + timedelta(days=days)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(UTC)


@pytest.fixture
def connected(app, make_tenant, seed_booking, visitor, google_fake, run_jobs):
    """A business whose technician connected their Google account (primary blocks time, gets bookings),
    with the first sync done."""
    t = make_tenant()
    f = seed_booking(t, buffer_min=0)
    v = owner_visitor(visitor, t)
    connect(v, google_fake, f.techs[0])
    run_jobs()
    return t, f, v


# Connect ------------------------------------------------------------------------------------------------


def test_connect_stores_the_refresh_token_encrypted_and_picks_the_primary_calendar(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs
):
    from app.calendar import google_api

    t = make_tenant()
    f = seed_booking(t)
    v = owner_visitor(visitor, t)
    auth_url = start_connect(v, f.techs[0])
    assert auth_url.startswith(google_fake.url + "/o/oauth2/auth?")
    assert "access_type=offline" in auth_url and "code_challenge=" in auth_url
    r = finish(v, google_fake.authorize(auth_url))
    assert r.status_code == 302
    conn = connection(app, t)
    [issued] = google_fake.refresh_tokens(GOOGLE_USER)
    assert conn.status == "connected" and conn.account_email == GOOGLE_USER
    assert issued["token"] not in conn.refresh_token_enc
    with app.app_context():
        assert google_api.decrypt(conn.refresh_token_enc) == issued["token"]
    [cal] = calendars(app, t)
    assert cal.is_primary and cal.blocks_time and cal.receives_bookings and cal.technician_id == f.techs[0]
    assert cal.sync_status == "queued"
    run_jobs()
    [cal] = calendars(app, t)
    assert cal.sync_status == "ok" and cal.sync_token
    assert len(google_fake.active_channels(GOOGLE_USER)) == 1
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-connection"' in page and GOOGLE_USER in page


def test_state_from_another_session_or_business_stores_nothing(app, two_tenants, seed_booking, visitor, google_fake):
    a, b = two_tenants
    fa = seed_booking(a)
    va, vb = owner_visitor(visitor, a), owner_visitor(visitor, b)
    # A starts; B's browser finishes with A's code and state: B's session never started this one.
    back = google_fake.authorize(start_connect(va, fa.techs[0]))
    r = finish(vb, back)
    assert r.status_code == 400 and "doesn&#39;t match" in r.get_data(as_text=True)
    # A second browser of A's owner (another session) can't finish it either.
    other = owner_visitor(visitor, a)
    assert finish(other, back).status_code == 400
    # A's own session with a forged state: refused, and the pending state is used up.
    forged = re.sub(r"state=[^&]+", "state=forged", back)
    assert finish(va, forged).status_code == 400
    assert finish(va, back).status_code == 400  # consumed by the failed attempt
    assert connection(app, a) is None and connection(app, b) is None
    assert google_fake.refresh_tokens() == []  # no code was ever exchanged


def test_cancel_on_googles_page_stores_nothing(app, make_tenant, seed_booking, visitor, google_fake):
    t = make_tenant()
    f = seed_booking(t)
    v = owner_visitor(visitor, t)
    r = finish(v, google_fake.authorize(start_connect(v, f.techs[0]), approve=False))
    assert r.status_code == 302
    assert "cancelled" in v.get("/integrations").get_data(as_text=True)
    assert connection(app, t) is None


def test_another_businesss_technician_cant_be_connected(two_tenants, seed_booking, visitor, google_fake):
    a, b = two_tenants
    seed_booking(a)
    fb = seed_booking(b)
    va = owner_visitor(visitor, a)
    r = va.post("/integrations/google/connect", {"technician_id": str(fb.techs[0]), "csrf_token": va.dashboard_token()})
    assert r.status_code == 404


def test_disconnect_revokes_and_forgets(app, connected, google_fake):
    t, f, v = connected
    google_fake.add_event(GOOGLE_USER, at(2, 10), at(2, 11))
    sync(app, t)
    assert blocks(app, t)
    conn = connection(app, t)
    r = v.post(f"/integrations/google/{conn.id}/disconnect", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302
    assert connection(app, t) is None and calendars(app, t) == [] and blocks(app, t) == []
    assert all(rt["revoked"] for rt in google_fake.refresh_tokens(GOOGLE_USER))
    assert google_fake.active_channels() == []


# Import --------------------------------------------------------------------------------------------------


def test_booking_site_slot_disappears_within_one_sync(app, connected, google_fake, visitor):
    from tests.test_booking import _form_token

    t, f, _ = connected
    site = visitor(t.host)
    page = site.get("/book").get_data(as_text=True)
    site.post(
        "/book", {"package_id": str(f.wash), "size_class": "sedan", "make": "Honda", "csrf_token": _form_token(page)}
    )
    page = site.get("/book/address").get_data(as_text=True)
    r = site.post("/book/address", {"address": "1100 Congress Ave, Austin", "csrf_token": _form_token(page)})
    html = r.get_data(as_text=True)
    lat = re.search(r'name="lat" value="([^"]+)"', html).group(1)
    lng = re.search(r'name="lng" value="([^"]+)"', html).group(1)
    site.post(
        "/book/address",
        {"address": "1100 Congress Ave, Austin", "lat": lat, "lng": lng, "csrf_token": _form_token(html)},
    )
    day = (datetime.now(NY) + timedelta(days=3)).date()
    ten = datetime.combine(day, time(10), NY).astimezone(UTC)

    def offered() -> set[datetime]:
        page = site.get(f"/book/time?day={day.isoformat()}").get_data(as_text=True)
        return {
            datetime.fromisoformat(s).astimezone(UTC) for s in re.findall(r'name="starts_at" value="([^"]+)"', page)
        }

    assert ten in offered()
    google_fake.add_event(GOOGLE_USER, ten, ten + timedelta(hours=1), summary="Dentist")
    [outcome] = sync(app, t)
    assert outcome in ("incremental", "full")
    assert ten not in offered()
    assert ten + timedelta(hours=1) in offered()  # the hour after is free again (no buffer)


def test_g4_cancelled_transparent_all_day_and_moved_instances(app, connected, google_fake):
    t, f, _ = connected
    gone = google_fake.add_event(GOOGLE_USER, at(2, 9), at(2, 10), summary="Gym")
    google_fake.add_event(GOOGLE_USER, at(2, 12), at(2, 13), summary="Reminder", transparent=True)
    day = (datetime.now(NY) + timedelta(days=4)).date()
    google_fake.add_event(GOOGLE_USER, day, day + timedelta(days=1), summary="Vacation")
    series = google_fake.add_event(
        GOOGLE_USER, at(5, 15), at(5, 16), summary="School run", recurrence=["RRULE:FREQ=DAILY;COUNT=3"]
    )
    google_fake.add_event(
        GOOGLE_USER, at(6, 8), at(6, 9), attendees=[{"email": GOOGLE_USER, "self": True, "responseStatus": "declined"}]
    )
    sync(app, t)
    found = blocks(app, t)
    ids = [b[0].split(":", 1)[1] for b in found]
    assert gone["id"] in ids
    assert not any(b[1] == at(2, 12) for b in found), "transparent events don't block"
    assert not any(b[1] == at(6, 8) for b in found), "declined invitations don't block"
    all_day = [b for b in found if b[3]]
    assert len(all_day) == 1
    start, end = datetime.combine(day, time(0), NY), datetime.combine(day + timedelta(days=1), time(0), NY)
    assert (all_day[0][1], all_day[0][2]) == (start.astimezone(UTC), end.astimezone(UTC))  # the local day
    instances = sorted(b for b in found if b[0].split(":", 1)[1].startswith(series["id"] + "_"))
    assert len(instances) == 3

    # Incremental: cancel one event, move the second instance of the series two hours later.
    google_fake.delete_event(GOOGLE_USER, gone["id"])
    second = google_fake.instances(GOOGLE_USER, series["id"])[1]
    google_fake.move_event(GOOGLE_USER, second["id"], at(6, 17))
    assert sync(app, t) == ["incremental"]
    found = blocks(app, t)
    ids = [b[0].split(":", 1)[1] for b in found]
    assert gone["id"] not in ids
    moved = next(b for b in found if b[0].endswith(second["id"]))
    assert (moved[1], moved[2]) == (at(6, 17), at(6, 18))
    assert len([b for b in found if series["id"] in b[0]]) == 3  # follows, no duplicate
    # Whole series deleted: every instance goes.
    google_fake.delete_event(GOOGLE_USER, series["id"])
    sync(app, t)
    assert not any(series["id"] in b[0] for b in blocks(app, t))


def test_g1_410_means_a_full_resync_equal_to_the_snapshot(app, connected, google_fake):
    t, f, _ = connected
    e1 = google_fake.add_event(GOOGLE_USER, at(2, 9), at(2, 10))
    e2 = google_fake.add_event(GOOGLE_USER, at(3, 9), at(3, 10))
    sync(app, t)
    old_token = calendars(app, t)[0].sync_token
    # While our token is dead: one event deleted, one added, one moved.
    google_fake.invalidate_sync_tokens(GOOGLE_USER)
    google_fake.delete_event(GOOGLE_USER, e1["id"])
    e3 = google_fake.add_event(GOOGLE_USER, at(4, 9), at(4, 10))
    google_fake.move_event(GOOGLE_USER, e2["id"], at(3, 14))
    assert sync(app, t) == ["full after 410"]
    cal = calendars(app, t)[0]
    assert cal.sync_token and cal.sync_token != old_token
    found = blocks(app, t)
    assert [(b[0].split(":", 1)[1], b[1]) for b in found] == [(e2["id"], at(3, 14)), (e3["id"], at(4, 9))]
    lists = [r for r in google_fake.requests if r.path.endswith("/events") and r.method == "GET"]
    assert lists[-2].params.get("syncToken") == old_token and lists[-2].status == 410
    assert "syncToken" not in lists[-1].params
    # The next run is incremental again with the new token.
    assert sync(app, t) == ["incremental"]


def test_per_calendar_errors_are_unknown_not_free(app, connected, google_fake, visitor):
    t, f, v = connected
    shared = google_fake.add_calendar(summary="Shop (free/busy only)", access_role="freeBusyReader")
    conn = connection(app, t)
    from app.calendar import services

    in_tenant(app, t, lambda: services.refresh_calendar_list(services.get_connection(conn.id), now=datetime.now(UTC)))
    cals = {c.google_id: c for c in calendars(app, t)}
    form = {
        "csrf_token": v.dashboard_token(),
        "receives": str(cals[GOOGLE_USER].id),
        f"blocks_{cals[GOOGLE_USER].id}": "on",
        f"blocks_{cals[shared].id}": "on",
    }
    assert v.post(f"/integrations/google/{conn.id}/calendars", form).status_code == 302
    google_fake.add_event(shared, at(2, 9), at(2, 10))
    google_fake.set_freebusy_error(shared, "backendError")
    sync(app, t)
    found = blocks(app, t)
    unknown = [b for b in found if b[0] == f"{cals[shared].id}:unknown"]
    assert len(unknown) == 1 and unknown[0][4] == "Google Calendar couldn't be read"
    assert unknown[0][1] <= datetime.now(UTC) and unknown[0][2] >= datetime.now(UTC) + timedelta(days=60)
    page = v.get("/integrations").get_data(as_text=True)
    assert "couldn&#39;t tell this calendar&#39;s free/busy time" in page
    # It reads again: the real busy time replaces the unknown block.
    google_fake.set_freebusy_error(shared, None)
    sync(app, t)
    found = [b for b in blocks(app, t) if b[0].startswith(str(cals[shared].id))]
    assert [(b[1], b[2]) for b in found] == [(at(2, 9), at(2, 10))]
    # A calendar deleted in Google: a clear error, and its time held as unknown.
    google_fake.delete_calendar(GOOGLE_USER)
    sync(app, t)
    cal = {c.google_id: c for c in calendars(app, t)}[GOOGLE_USER]
    assert cal.sync_status == "error" and "no longer exists" in cal.sync_error
    assert any(b[0] == f"{cal.id}:unknown" for b in blocks(app, t))


# G2: a dead grant ----------------------------------------------------------------------------------------


def test_g2_invalid_grant_disconnects_tells_the_owner_once_and_stops(
    app, connected, google_fake, run_jobs, smtp_server
):
    from app.calendar import jobs

    t, f, v = connected
    google_fake.revoke_user_tokens(GOOGLE_USER)
    before = len(smtp_server.messages)
    with app.app_context():
        jobs.sweep_google_calendars()
    run_jobs()  # the tenant's sync job ends normally (no retry loop), then the e-mail job
    conn = connection(app, t)
    assert conn.status == "disconnected" and "revoked" in conn.problem and conn.refresh_token_enc is None
    mails = [m for m in smtp_server.messages[before:] if m["To"] == t.owner.email]
    assert len(mails) == 1 and "Google Calendar disconnected" in mails[0]["Subject"]
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-disconnected"' in page and 'data-testid="google-reconnect"' in page
    # Its time is unknown now, not free.
    assert any(b[0].endswith(":unknown") for b in blocks(app, t))
    # Jobs stop: the sweep no longer fans out to this business, a stray job does nothing, no second e-mail.
    with app.app_context():
        from app.extensions import db

        fanned = list(db.session.execute(text("SELECT public.tenants_with_google_calendar()")).scalars())
        db.session.rollback()
    assert t.id not in fanned
    calls = len(google_fake.requests)
    assert sync(app, t) == ["disconnected"]  # a stray job returns at once, without calling Google
    in_tenant(app, t, lambda: jobs.sync_tenant_job(t.id))
    in_tenant(app, t, lambda: jobs.notify_disconnected_job(t.id, str(conn.id)))
    assert len([m for m in smtp_server.messages[before:] if m["To"] == t.owner.email]) == 1
    assert len(google_fake.requests) == calls


# G3: push notifications ------------------------------------------------------------------------------------


def _queued(app, name: str) -> list:
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from app.extensions import get_redis
    from app.jobs import get_queue

    with app.app_context():
        q = get_queue("default")
        jobs = [Job.fetch(i, connection=get_redis(), serializer=JSONSerializer) for i in q.job_ids]
        return [j for j in jobs if j.func_name.endswith(name)]


def test_g3_push_notifications_are_authenticated_by_channel_and_token(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs, client
):
    a, b = make_tenant(), make_tenant()
    fa, fb = seed_booking(a), seed_booking(b)
    connect(owner_visitor(visitor, a), google_fake, fa.techs[0])
    run_jobs()
    google_fake.add_user("b@example.com")
    connect(owner_visitor(visitor, b), google_fake, fb.techs[0], user="b@example.com")
    run_jobs()
    [ch_a] = google_fake.active_channels(GOOGLE_USER)
    [ch_b] = google_fake.active_channels("b@example.com")

    def push(headers):
        return client.post("/webhooks/google/calendar", base_url="http://app.localhost", headers=headers)

    run_jobs()
    good = google_fake.push_headers(ch_a["id"])
    assert push({**good, "X-Goog-Channel-ID": str(uuid.uuid4())}).status_code == 404
    assert push({**good, "X-Goog-Channel-ID": "not-a-uuid"}).status_code == 404
    assert push({**good, "X-Goog-Channel-Token": "wrong"}).status_code == 403
    assert push({k: v for k, v in good.items() if k != "X-Goog-Channel-Token"}).status_code == 403
    # B's channel id with A's token, and A's channel id with B's token.
    assert push({**good, "X-Goog-Channel-ID": ch_b["id"]}).status_code == 403
    assert push({**good, "X-Goog-Channel-Token": ch_b["token"]}).status_code == 403
    assert push({**good, "X-Goog-Resource-ID": "other"}).status_code == 403
    assert _queued(app, "sync_calendar_job") == []
    r = push(google_fake.push_headers(ch_a["id"], "sync"))
    assert r.status_code == 200 and r.get_json()["ignored"] == "sync"
    assert _queued(app, "sync_calendar_job") == []
    # A valid push queues one sync, for A only; a burst of pushes still queues one.
    assert push(google_fake.push_headers(ch_a["id"])).status_code == 200
    assert push(google_fake.push_headers(ch_a["id"])).status_code == 200
    queued = _queued(app, "sync_calendar_job")
    assert len(queued) == 1 and queued[0].args[0] == str(a.id)
    google_fake.add_event(GOOGLE_USER, at(2, 10), at(2, 11))
    run_jobs()
    assert len(blocks(app, a)) == 1 and blocks(app, b) == []


def test_channels_are_renewed_before_they_expire(app, connected, google_fake, run_jobs):
    from app.calendar import jobs
    from app.calendar.models import GoogleChannel
    from app.extensions import db

    t, f, _ = connected
    [old] = google_fake.active_channels(GOOGLE_USER)

    def soon():
        ch = db.session.scalar(db.select(GoogleChannel))
        ch.expires_at = datetime.now(UTC) + timedelta(hours=3)

    in_tenant(app, t, soon)
    in_tenant(app, t, lambda: jobs.sync_tenant_job(t.id))
    [new] = google_fake.active_channels(GOOGLE_USER)
    assert new["id"] != old["id"] and google_fake.channels[old["id"]]["stopped"]
    rows = in_tenant(app, t, lambda: [(c.id, c.stopped_at) for c in db.session.scalars(db.select(GoogleChannel))])
    assert sorted(str(i) for i, stopped in rows if stopped is None) == [new["id"]]


# Export and changes coming back -----------------------------------------------------------------------------


def _our_event(google_fake, booking_id):
    from app.calendar.services import event_id_for

    return next(
        (e for e in google_fake.events(GOOGLE_USER, include_cancelled=True) if e["id"] == event_id_for(booking_id)),
        None,
    )


def test_bookings_are_written_to_google_and_follow_moves_and_cancels(app, connected, google_fake, run_jobs):
    from app.booking import services as booking_services
    from app.extensions import db
    from tenants.models import Tenant
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs()
    event = _our_event(google_fake, booking_id)
    assert event is not None and event["status"] == "confirmed"
    assert event["extendedProperties"]["private"] == {"fieldday_tenant": str(t.id), "fieldday_booking": str(booking_id)}
    assert datetime.fromisoformat(event["start"]["dateTime"]) == tomorrow_at(10)
    # Our own event is not imported as busy time (it would block its own booking's moves).
    sync(app, t)
    assert blocks(app, t) == []

    def move():
        booking = booking_services.get_booking(booking_id, for_update=True)
        booking_services.reschedule_booking(
            db.session.get(Tenant, t.id), booking, tomorrow_at(13), actor_type="user", now=datetime.now(UTC)
        )

    in_tenant(app, t, move)
    run_jobs()
    assert datetime.fromisoformat(_our_event(google_fake, booking_id)["start"]["dateTime"]) == tomorrow_at(13)

    def cancel():
        booking = booking_services.get_booking(booking_id, for_update=True)
        booking_services.cancel_booking(db.session.get(Tenant, t.id), booking, actor_type="user", now=datetime.now(UTC))

    in_tenant(app, t, cancel)
    run_jobs()
    assert _our_event(google_fake, booking_id)["status"] == "cancelled"
    # Exports are idempotent: running the job again changes nothing at Google.
    from app.calendar.jobs import export_booking_job

    writes = len([r for r in google_fake.requests if r.method in ("POST", "PATCH", "DELETE")])
    in_tenant(app, t, lambda: export_booking_job(t.id, str(booking_id)))
    assert len([r for r in google_fake.requests if r.method in ("POST", "PATCH", "DELETE")]) == writes


def test_an_edit_in_google_comes_back_as_a_change_the_owner_confirms(app, connected, google_fake, run_jobs):
    from app.booking.models import Booking
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    t, f, v = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs()
    event = _our_event(google_fake, booking_id)
    google_fake.move_event(GOOGLE_USER, event["id"], tomorrow_at(14))
    sync(app, t)
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-proposal"' in page
    from app.calendar.services import open_proposals

    [change] = in_tenant(app, t, open_proposals)
    assert change.kind == "move" and change.proposed_start == tomorrow_at(14)
    # Syncing again does not pile up proposals.
    sync(app, t)
    assert len(in_tenant(app, t, open_proposals)) == 1
    r = v.post(f"/integrations/google/changes/{change.id}/confirm", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302
    assert in_tenant(app, t, lambda: db.session.get(Booking, (t.id, booking_id)).starts_at) == tomorrow_at(14)
    run_jobs()
    sync(app, t)
    assert in_tenant(app, t, open_proposals) == []


def test_a_delete_in_google_rejected_puts_the_event_back(app, connected, google_fake, run_jobs):
    from app.booking.models import Booking
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    t, f, v = connected
    booking_id = book(app, t, request(f, tomorrow_at(11), tech=f.techs[0]))
    run_jobs()
    google_fake.delete_event(GOOGLE_USER, _our_event(google_fake, booking_id)["id"])
    sync(app, t)
    from app.calendar.services import open_proposals

    [change] = in_tenant(app, t, open_proposals)
    assert change.kind == "cancel"
    r = v.post(f"/integrations/google/changes/{change.id}/reject", {"csrf_token": v.dashboard_token()})
    assert r.status_code == 302
    run_jobs()
    event = _our_event(google_fake, booking_id)
    assert event["status"] == "confirmed" and datetime.fromisoformat(event["start"]["dateTime"]) == tomorrow_at(11)
    assert in_tenant(app, t, lambda: db.session.get(Booking, (t.id, booking_id)).status) == "confirmed"


# Cross-tenant --------------------------------------------------------------------------------------------------


def test_another_businesss_connection_and_changes_answer_404(app, two_tenants, seed_booking, visitor, google_fake):
    from app.calendar.models import GoogleConnection, GoogleProposedChange
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    a, b = two_tenants
    seed_booking(a)
    fb = seed_booking(b)
    booking_id = book(app, b, request(fb, tomorrow_at(10)))

    def make():
        conn = GoogleConnection(tenant_id=b.id, technician_id=fb.techs[0], refresh_token_enc="x")
        db.session.add(conn)
        change = GoogleProposedChange(tenant_id=b.id, booking_id=booking_id, kind="cancel")
        db.session.add(change)
        db.session.flush()
        return conn.id, change.id

    conn_id, change_id = in_tenant(app, b, make)
    va = owner_visitor(visitor, a)
    token = va.dashboard_token()
    for path in (
        f"/integrations/google/{conn_id}/calendars",
        f"/integrations/google/{conn_id}/sync",
        f"/integrations/google/{conn_id}/disconnect",
        f"/integrations/google/changes/{change_id}/confirm",
        f"/integrations/google/changes/{change_id}/reject",
    ):
        assert va.post(path, {"csrf_token": token}).status_code == 404, path
    assert connection(app, b) is not None
    assert in_tenant(app, b, lambda: db.session.get(GoogleProposedChange, (b.id, change_id)).status) == "open"


def test_a_business_account_assigns_each_calendar_to_a_technician(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs
):
    t = make_tenant()
    f = seed_booking(t, techs=2, buffer_min=0)
    mike = google_fake.add_calendar(summary="Mike's jobs")
    v = owner_visitor(visitor, t)
    connect(v, google_fake)  # the business's own account: nothing blocks anyone until assigned
    conn = connection(app, t)
    assert conn.technician_id is None
    cals = {c.google_id: c for c in calendars(app, t)}
    assert not any(c.blocks_time for c in cals.values()) and cals[GOOGLE_USER].receives_bookings
    page = v.get("/integrations").get_data(as_text=True)
    assert "Whose time" in page and "Mike&#39;s jobs" in page
    token = v.dashboard_token()
    r = v.post(f"/integrations/google/{conn.id}/calendars", {"csrf_token": token, f"blocks_{cals[mike].id}": "on"})
    assert r.status_code == 302 and "Pick whose time" in v.get("/integrations").get_data(as_text=True)
    form = {
        "csrf_token": token,
        f"blocks_{cals[mike].id}": "on",
        f"technician_{cals[mike].id}": str(f.techs[1]),
        "receives": str(cals[GOOGLE_USER].id),
    }
    assert v.post(f"/integrations/google/{conn.id}/calendars", form).status_code == 302
    google_fake.add_event(mike, at(2, 10), at(2, 11))
    run_jobs()
    from app.extensions import db

    techs = in_tenant(
        app,
        t,
        lambda: [
            r[0] for r in db.session.execute(text("SELECT technician_id FROM busy_blocks WHERE source = 'google'"))
        ],
    )
    assert techs == [f.techs[1]]


def test_sync_now_shows_progress_until_the_job_ran(app, connected, google_fake, run_jobs):
    t, f, v = connected
    conn = connection(app, t)
    google_fake.add_event(GOOGLE_USER, at(2, 10), at(2, 11))
    assert v.post(f"/integrations/google/{conn.id}/sync", {"csrf_token": v.dashboard_token()}).status_code == 302
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-syncing"' in page and "data-refresh-after" in page
    run_jobs()
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-syncing"' not in page and "Synced " in page
    assert len(blocks(app, t)) == 1


# Review fixes -------------------------------------------------------------------------------------------------


def test_exports_are_queued_once_at_the_root_commit_never_for_rolled_back_work(app, connected, run_jobs):
    """The listener collects flushed bookings per savepoint and queues at the root commit only."""
    from app.booking import services as booking_services
    from app.booking.models import Booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant
    from tests.test_booking import request, tomorrow_at

    t, f, _ = connected
    run_jobs()

    def exports():
        return sorted(j.args[1] for j in _queued(app, "export_booking_job"))

    def book(hour):
        return booking_services.book(
            db.session.get(Tenant, t.id), request(f, tomorrow_at(hour), tech=f.techs[0]), now=datetime.now(UTC)
        )

    with app.app_context(), tenant_context(t.id, db.session):
        # Booked inside a savepoint that rolls back, then the root commits: nothing to export.
        savepoint = db.session.begin_nested()
        book(9)
        savepoint.rollback()
        db.session.commit()
        assert exports() == []
        # Booked in a released savepoint, then the root rolls back: nothing either.
        with db.session.begin_nested():
            book(9)
        assert exports() == []  # not before the root commits
        db.session.rollback()
        assert exports() == []
        # Booked in a released savepoint and touched again in the root, which commits: one job.
        with db.session.begin_nested():
            kept = book(11)
        kept_id = kept.id
        kept.customer_notes = "gate code 1234"
        db.session.commit()
        assert exports() == [str(kept_id)]
        run_jobs()
        # A change left for commit's own final flush (no flush before commit) is still exported, once.
        booking = db.session.get(Booking, (t.id, kept_id))
        booking.technician_id = f.techs[0]  # unchanged value: no history, no job
        booking.status = "in_progress"
        db.session.commit()
        assert exports() == [str(kept_id)]
        run_jobs()
        # A savepoint that rolls back later doesn't take the root's earlier bookings with it.
        outer_id = book(13).id
        savepoint = db.session.begin_nested()
        savepoint.rollback()
        db.session.commit()
        assert exports() == [str(outer_id)]
    run_jobs()


def test_reassigning_a_blocking_calendar_frees_the_old_technician(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs
):
    t = make_tenant()
    f = seed_booking(t, techs=2, buffer_min=0)
    mike = google_fake.add_calendar(summary="Mike's jobs")
    v = owner_visitor(visitor, t)
    connect(v, google_fake)
    conn = connection(app, t)
    cals = {c.google_id: c for c in calendars(app, t)}
    form = {
        "csrf_token": v.dashboard_token(),
        f"blocks_{cals[mike].id}": "on",
        f"technician_{cals[mike].id}": str(f.techs[0]),
    }
    assert v.post(f"/integrations/google/{conn.id}/calendars", form).status_code == 302
    google_fake.add_event(mike, at(2, 10), at(2, 11))
    run_jobs()

    def owners():
        from app.extensions import db

        rows = db.session.execute(text("SELECT technician_id FROM busy_blocks WHERE source = 'google'"))
        return sorted(r[0] for r in rows)

    assert in_tenant(app, t, owners) == [f.techs[0]]
    form[f"technician_{cals[mike].id}"] = str(f.techs[1])
    assert v.post(f"/integrations/google/{conn.id}/calendars", form).status_code == 302
    assert in_tenant(app, t, owners) == []  # the old technician is free at once
    run_jobs()
    assert in_tenant(app, t, owners) == [f.techs[1]]


def test_reconnecting_with_another_account_replaces_the_old_calendars(app, connected, google_fake, run_jobs):
    t, f, v = connected
    google_fake.add_event(GOOGLE_USER, at(2, 10), at(2, 11))
    sync(app, t)
    google_fake.revoke_user_tokens(GOOGLE_USER)
    sync(app, t)  # invalid_grant: disconnected, the old calendar's time held as unknown
    assert connection(app, t).status == "disconnected"
    assert any(b[0].endswith(":unknown") for b in blocks(app, t))
    google_fake.add_user("new@example.com")
    r = finish(v, google_fake.authorize(start_connect(v, f.techs[0]), user="new@example.com"))
    assert r.status_code == 302
    conn = connection(app, t)
    assert conn.status == "connected" and conn.account_email == "new@example.com"
    [cal] = calendars(app, t)  # only the new account's calendar: the old one, its blocks and exports are gone
    assert cal.google_id == "new@example.com" and cal.blocks_time and cal.receives_bookings
    assert blocks(app, t) == []
    run_jobs()
    google_fake.add_event("new@example.com", at(3, 9), at(3, 10))
    sync(app, t)
    assert [(b[1], b[2]) for b in blocks(app, t)] == [(at(3, 9), at(3, 10))]


def test_switching_a_working_connection_to_another_account_revokes_the_old_grant(app, connected, google_fake, run_jobs):
    t, f, v = connected
    google_fake.add_user("other@example.com")
    connect(v, google_fake, f.techs[0], user="other@example.com")
    assert all(rt["revoked"] for rt in google_fake.refresh_tokens(GOOGLE_USER))
    assert [c.google_id for c in calendars(app, t)] == ["other@example.com"]
    run_jobs()
    assert google_fake.active_channels(GOOGLE_USER) == []
    assert len(google_fake.active_channels("other@example.com")) == 1


def test_google_failing_after_the_code_exchange_is_a_clear_message(
    app, make_tenant, seed_booking, visitor, google_fake
):
    t = make_tenant()
    f = seed_booking(t)
    v = owner_visitor(visitor, t)
    google_fake.fail_next("GET", r"/calendarList$", 503)
    r = finish(v, google_fake.authorize(start_connect(v, f.techs[0])))
    assert r.status_code == 302
    assert "let Fieldday read the calendar list" in v.get("/integrations").get_data(as_text=True)
    assert connection(app, t) is None


def test_a_push_channel_google_refuses_means_polling_not_unknown_time(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs
):
    t = make_tenant()
    f = seed_booking(t, buffer_min=0)
    v = owner_visitor(visitor, t)
    google_fake.fail_next("POST", r"/watch$", 400, reason="push.webhookUrlUnauthorized")
    google_fake.add_event(GOOGLE_USER, at(2, 10), at(2, 11))
    connect(v, google_fake, f.techs[0])
    run_jobs()
    [cal] = calendars(app, t)
    assert cal.sync_status == "ok" and cal.sync_error is None
    assert [(b[1], b[2]) for b in blocks(app, t)] == [(at(2, 10), at(2, 11))]  # no unknown block
    assert google_fake.active_channels() == []
    page = v.get("/integrations").get_data(as_text=True)
    assert 'data-testid="google-poll-only"' in page
    # The next sync sets the channel up, and the note goes.
    sync(app, t)
    assert len(google_fake.active_channels(GOOGLE_USER)) == 1
    assert 'data-testid="google-poll-only"' not in v.get("/integrations").get_data(as_text=True)


def test_a_failed_channel_renewal_keeps_the_calendars_time(app, connected, google_fake):
    from app.calendar.models import GoogleChannel
    from app.extensions import db

    t, f, _ = connected

    def soon():
        db.session.scalar(db.select(GoogleChannel)).expires_at = datetime.now(UTC) + timedelta(hours=3)

    in_tenant(app, t, soon)
    google_fake.fail_next("POST", r"/watch$", 403, reason="forbidden")
    assert sync(app, t) == ["incremental"]
    assert not any(b[0].endswith(":unknown") for b in blocks(app, t))
    assert calendars(app, t)[0].sync_error is None


def test_a_404_for_one_event_reinserts_it_and_keeps_the_calendar(app, connected, google_fake, run_jobs):
    from app.calendar.jobs import export_booking_job
    from app.calendar.models import GoogleExportedEvent
    from app.calendar.services import event_id_for
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs()

    def stale():
        db.session.scalar(db.select(GoogleExportedEvent)).written_start = None

    in_tenant(app, t, stale)
    google_fake.fail_next("PATCH", event_id_for(booking_id), 404, reason="notFound")
    assert in_tenant(app, t, lambda: export_booking_job(t.id, str(booking_id))) == "updated"
    [cal] = calendars(app, t)
    assert cal.missing_since is None and cal.sync_error is None
    assert not any(b[0].endswith(":unknown") for b in blocks(app, t))
    assert _our_event(google_fake, booking_id)["status"] == "confirmed"
    # The calendar itself gone: only then is it missing (the calendar list says so too).
    in_tenant(app, t, stale)
    google_fake.delete_calendar(GOOGLE_USER)
    in_tenant(app, t, lambda: export_booking_job(t.id, str(booking_id)))
    [cal] = calendars(app, t)
    assert cal.missing_since is not None and "no longer exists" in cal.sync_error


def test_the_refresh_token_is_never_logged_or_put_in_a_url(app, connected, google_fake, caplog):
    import logging

    from app.calendar import google_api

    t, f, _ = connected
    with app.app_context():
        token = google_api.decrypt(connection(app, t).refresh_token_enc)
        old = app.config["GOOGLE_API_BASE"]
        app.config["GOOGLE_API_BASE"] = "http://127.0.0.1:1"  # nothing listens: the revoke fails
        try:
            with caplog.at_level(logging.DEBUG):
                assert google_api.revoke(token) is False
        finally:
            app.config["GOOGLE_API_BASE"] = old
        assert "google revoke failed" in caplog.text and token not in caplog.text
        assert google_api.revoke(token) is True  # the stand-in reads it from the form body
    [call] = [r for r in google_fake.requests if r.path == "/revoke"]
    assert call.params == {}
    assert all(rt["revoked"] for rt in google_fake.refresh_tokens(GOOGLE_USER))


def test_one_failing_export_doesnt_undo_the_poll_and_is_retried(app, connected, google_fake, run_jobs):
    from app.calendar import jobs
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    google_fake.fail_next("POST", r"/events$", 500, times=10)
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs(allow_failures=True)  # the after-commit export fails (RQ retries it later)
    google_fake.add_event(GOOGLE_USER, at(3, 10), at(3, 11))
    in_tenant(app, t, lambda: jobs.sync_tenant_job(t.id))
    assert [(b[1], b[2]) for b in blocks(app, t)] == [(at(3, 10), at(3, 11))]
    assert _our_event(google_fake, booking_id) is None
    google_fake.clear_failures()
    in_tenant(app, t, lambda: jobs.sync_tenant_job(t.id))  # the next poll's sweep writes it
    assert _our_event(google_fake, booking_id)["status"] == "confirmed"


def test_a_retried_insert_after_a_rollback_patches_instead_of_duplicating(app, connected, google_fake, run_jobs):
    from app.calendar import services
    from app.calendar.jobs import export_booking_job
    from app.extensions import db
    from tenants.context import tenant_context
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    # The export reaches Google, then its transaction rolls back (worker killed, database gone...).
    with app.app_context(), tenant_context(t.id, db.session):
        assert services.export_booking(booking_id, now=datetime.now(UTC)) == "inserted"
        db.session.rollback()
    assert in_tenant(app, t, lambda: export_booking_job(t.id, str(booking_id))) == "updated"
    writes = [
        (r.method, r.status)
        for r in google_fake.requests
        if (r.method == "POST" and r.path.endswith("/events")) or r.method == "PATCH"
    ]
    assert writes[-3:] == [("POST", 200), ("POST", 409), ("PATCH", 200)]
    ours = [e for e in google_fake.events(GOOGLE_USER) if e["id"] == services.event_id_for(booking_id)]
    assert len(ours) == 1
    run_jobs()


def test_changed_booking_details_reach_google_and_unchanged_ones_write_nothing(app, connected, google_fake, run_jobs):
    from app.booking.models import Booking
    from app.calendar.jobs import export_booking_job
    from app.customers.models import Address, Customer
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs()
    event = _our_event(google_fake, booking_id)
    assert "Casey Customer" in event["summary"]

    def writes():
        return len([r for r in google_fake.requests if r.method in ("POST", "PATCH", "DELETE") and "/events" in r.path])

    before = writes()
    in_tenant(app, t, lambda: export_booking_job(t.id, str(booking_id)))
    assert writes() == before  # same booking: read, compared, nothing written

    def edit():
        booking = db.session.get(Booking, (t.id, booking_id))
        db.session.get(Customer, (t.id, booking.customer_id)).name = "Casey Renamed"
        db.session.get(Address, (t.id, booking.address_id)).line1 = "500 Other St"

    in_tenant(app, t, edit)
    assert len(_queued(app, "export_booking_job")) == 1
    run_jobs()
    event = _our_event(google_fake, booking_id)
    assert "Casey Renamed" in event["summary"] and event["location"].startswith("500 Other St")
    assert datetime.fromisoformat(event["start"]["dateTime"]) == tomorrow_at(10)


def test_a_content_change_leaves_a_move_made_in_google_as_a_proposal(app, connected, google_fake, run_jobs):
    from app.booking.models import Booking
    from app.calendar.services import open_proposals
    from app.customers.models import Customer
    from app.extensions import db
    from tests.test_booking import book, request, tomorrow_at

    t, f, _ = connected
    booking_id = book(app, t, request(f, tomorrow_at(10), tech=f.techs[0]))
    run_jobs()
    google_fake.move_event(GOOGLE_USER, _our_event(google_fake, booking_id)["id"], tomorrow_at(14))
    sync(app, t)
    assert len(in_tenant(app, t, open_proposals)) == 1

    def rename():
        booking = db.session.get(Booking, (t.id, booking_id))
        db.session.get(Customer, (t.id, booking.customer_id)).name = "Casey Renamed"

    in_tenant(app, t, rename)
    run_jobs()
    event = _our_event(google_fake, booking_id)
    assert "Casey Renamed" in event["summary"]
    assert datetime.fromisoformat(event["start"]["dateTime"]) == tomorrow_at(14)  # the owner still decides
    sync(app, t)
    assert len(in_tenant(app, t, open_proposals)) == 1


def test_a_push_never_waits_for_a_running_sync(app, connected, google_fake, client, run_jobs):
    from app.extensions import db

    t, f, _ = connected
    run_jobs()
    [cal] = calendars(app, t)
    [channel] = google_fake.active_channels(GOOGLE_USER)
    with app.app_context():
        holder = db.engine.connect()  # a sync in progress holds the calendar's row
        try:
            holder.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(t.id)})
            locked = holder.execute(
                text("SELECT id FROM google_calendars WHERE id = :c FOR UPDATE"), {"c": cal.id}
            ).scalar()
            assert locked == cal.id
            started = datetime.now(UTC)
            r = client.post(
                "/webhooks/google/calendar",
                base_url="http://app.localhost",
                headers=google_fake.push_headers(channel["id"]),
            )
            assert r.status_code == 200 and r.get_json()["queued"] is True
            assert datetime.now(UTC) - started < timedelta(seconds=5)
        finally:
            holder.rollback()
            holder.close()
    assert len(_queued(app, "sync_calendar_job")) == 1
    run_jobs()


def test_an_all_day_event_on_a_dst_day_blocks_exactly_that_local_day(app, connected, google_fake):
    from datetime import date

    t, f, _ = connected
    spring = date(2027, 3, 14)  # clocks go forward in New York: a 23-hour day
    google_fake.add_event(GOOGLE_USER, spring, spring + timedelta(days=1), summary="Off")
    old = app.config["GOOGLE_SYNC_DAYS"]
    app.config["GOOGLE_SYNC_DAYS"] = (spring - datetime.now(UTC).date()).days + 30
    try:
        sync(app, t, full=True)
    finally:
        app.config["GOOGLE_SYNC_DAYS"] = old
    [block] = [b for b in blocks(app, t) if b[3]]
    assert (block[1], block[2]) == (
        datetime(2027, 3, 14, 5, tzinfo=UTC),  # 00:00 EST
        datetime(2027, 3, 15, 4, tzinfo=UTC),  # 00:00 EDT
    )
    assert block[2] - block[1] == timedelta(hours=23)


def test_invalid_grant_on_one_of_two_connections_leaves_the_other_working(
    app, make_tenant, seed_booking, visitor, google_fake, run_jobs, smtp_server
):
    from app.calendar import jobs
    from app.calendar.services import list_connections

    t = make_tenant()
    f = seed_booking(t, techs=2, buffer_min=0)
    v = owner_visitor(visitor, t)
    connect(v, google_fake, f.techs[0])
    google_fake.add_user("two@example.com")
    connect(v, google_fake, f.techs[1], user="two@example.com")
    run_jobs()
    google_fake.revoke_user_tokens(GOOGLE_USER)
    google_fake.add_event("two@example.com", at(2, 10), at(2, 11))
    before = len(smtp_server.messages)
    with app.app_context():
        jobs.sweep_google_calendars()
    run_jobs()
    state = {c.technician_id: c.status for c in in_tenant(app, t, list_connections)}
    assert state == {f.techs[0]: "disconnected", f.techs[1]: "connected"}
    mails = [m for m in smtp_server.messages[before:] if m["To"] == t.owner.email]
    assert len(mails) == 1 and GOOGLE_USER in mails[0].get_payload(decode=True).decode()

    def by_tech():
        from app.extensions import db

        rows = db.session.execute(
            text("SELECT technician_id, external_id, lower(during) FROM busy_blocks WHERE source = 'google'")
        )
        return sorted((r[0], r[1].endswith(":unknown"), r[2]) for r in rows)

    rows = in_tenant(app, t, by_tech)
    assert [(tech, unknown) for tech, unknown, _ in rows] == sorted([(f.techs[0], True), (f.techs[1], False)])
    assert next(r[2] for r in rows if r[0] == f.techs[1]) == at(2, 10)


def test_a_retried_disconnect_notice_isnt_sent_twice(app, connected, google_fake, smtp_server, monkeypatch):
    from app.accounts import services as accounts
    from app.calendar import jobs, services
    from app.calendar.services import list_connections

    t, f, _ = connected
    in_tenant(
        app,
        t,
        lambda: accounts.create_user(
            t.id, email=f"co-owner@{t.subdomain}.test", name="Co Owner", role="owner", password=t.owner.password
        ),
    )
    in_tenant(app, t, lambda: services.mark_disconnected(list_connections()[0], now=datetime.now(UTC), problem="x"))
    conn_id = str(connection(app, t).id)
    import app.mail as mail

    real, calls = mail.send_email, []

    def flaky(to, *args, **kwargs):
        calls.append(to)
        if to.startswith("co-owner") and calls.count(to) == 1:
            raise OSError("SMTP hiccup")
        return real(to, *args, **kwargs)

    monkeypatch.setattr(mail, "send_email", flaky)
    before = len(smtp_server.messages)
    with pytest.raises(OSError):
        in_tenant(app, t, lambda: jobs.notify_disconnected_job(t.id, conn_id))
    assert connection(app, t).owner_notified_at is None
    assert in_tenant(app, t, lambda: jobs.notify_disconnected_job(t.id, conn_id)) is True  # RQ's retry
    assert in_tenant(app, t, lambda: jobs.notify_disconnected_job(t.id, conn_id)) is False
    to = sorted(m["To"] for m in smtp_server.messages[before:])
    assert to == sorted([t.owner.email, f"co-owner@{t.subdomain}.test"])
