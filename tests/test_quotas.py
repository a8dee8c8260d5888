"""Plan quotas (DESIGN §5b, tenants/quotas.py): the edges at 79 %, 80 % and 100 % for technicians,
jobs and customers, refusals through the real routes (dashboard forms, the API, the booking site),
the race for the last one, the CSV import at the limit and the owner's one e-mail a month."""

from __future__ import annotations

import html
import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text as sql

from tests.helpers import csrf_from
from tests.test_booking import book, request, tomorrow_at
from tests.test_customers import upload

TZ = ZoneInfo("America/New_York")


# Helpers -----------------------------------------------------------------------------------------


@contextmanager
def in_tenant(app, t):
    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        yield db.session


def set_plan(app, t, plan: str) -> None:
    from tenants.models import Tenant

    with in_tenant(app, t) as s:
        s.get(Tenant, t.id).plan = plan
        s.commit()


def seed_customers(app, t, n: int) -> None:
    """``n`` more customers, fast (one INSERT)."""
    with in_tenant(app, t) as s:
        start = s.scalar(sql("SELECT count(*) FROM customers"))
        s.execute(
            sql(
                "INSERT INTO customers (tenant_id, id, name, email) "
                "SELECT :t, gen_random_uuid(), 'Seed ' || g, 'seed' || g || '@seed.test' "
                "FROM generate_series(CAST(:a AS int), CAST(:b AS int)) g"
            ),
            {"t": t.id, "a": start + 1, "b": start + n},
        )
        s.commit()


def clone_jobs(app, t, template_id, n: int, *, status: str = "completed", created_at: datetime | None = None):
    """``n`` more bookings this month, copies of a real one (completed: no slot is taken)."""
    with in_tenant(app, t) as s:
        start = s.scalar(sql("SELECT count(*) FROM bookings"))
        s.execute(
            sql(
                "INSERT INTO bookings (tenant_id, id, reference, customer_id, vehicle_id, address_id, technician_id,"
                " during, status, starts_at, ends_at, price_cents, currency, source, created_at) "
                "SELECT tenant_id, gen_random_uuid(), 'Z' || lpad(g::text, 5, '0'), customer_id, vehicle_id,"
                " address_id, technician_id, during, :status, starts_at, ends_at, price_cents, currency, source,"
                " coalesce(CAST(:created AS timestamptz), now()) "
                "FROM bookings, generate_series(CAST(:a AS int), CAST(:b AS int)) g WHERE tenant_id = :t AND id = :id"
            ),
            {"t": t.id, "id": template_id, "a": start + 1, "b": start + n, "status": status, "created": created_at},
        )
        s.commit()


def add_schedules(app, t, n: int) -> None:
    """Technicians on the schedule, through the service (which leaves the plan to its callers)."""
    from app.booking import services

    with in_tenant(app, t) as s:
        for i in range(n):
            services.create_technician(t.id, name=f"Seeded {i}")
        s.commit()


def count(app, t, table: str) -> int:
    with in_tenant(app, t) as s:
        return s.scalar(sql(f"SELECT count(*) FROM {table}"))  # noqa: S608 - table names from the tests


def owner_visitor(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def body(r) -> str:
    return r.get_data(as_text=True)


def usage_level(page: str, kind: str) -> str:
    match = re.search(rf'data-testid="usage-{kind}" data-level="(\w+)"', page)
    assert match, f"no usage bar for {kind}"
    return match.group(1)


def banner(page: str, kind: str) -> str | None:
    """The banner line for ``kind`` (its level and text), or None."""
    match = re.search(rf'data-testid="quota-{kind}" data-level="(\w+)">\s*(.*?)\s*<a', page, re.S)
    return f"{match.group(1)}: {html.unescape(match.group(2))}" if match else None


def api_post(v, path: str, json: dict):
    return v.client.post(path, base_url=v.base, json=json, headers={"X-CSRFToken": v.dashboard_token()})


def walk_to_review(site, f, *, phone: str, name: str = "Pat Lee", day_offset: int = 3):
    """The booking site up to the review page (the last step before booking)."""
    page = body(site.get("/book"))
    r = site.post(
        "/book", {"package_id": str(f.wash), "size_class": "sedan", "make": "Honda", "csrf_token": csrf_from(page)}
    )
    assert r.status_code == 302, body(r)[:300]
    page = body(site.get("/book/address"))
    address = {"address": "1100 Congress Ave, Austin", "csrf_token": csrf_from(page)}
    site.post("/book/address", address)
    assert site.post("/book/address", address).status_code == 302
    day = (datetime.now(TZ) + timedelta(days=day_offset)).date().isoformat()
    page = body(site.get(f"/book/time?day={day}"))
    starts = re.findall(r'name="starts_at" value="([^"]+)"', page)
    assert site.post("/book/time", {"starts_at": starts[0], "csrf_token": csrf_from(page)}).status_code == 302
    page = body(site.get("/book/details"))
    r = site.post("/book/details", {"name": name, "phone": phone, "email": "", "csrf_token": csrf_from(page)})
    assert r.status_code == 302
    return csrf_from(body(site.get("/book/review")))


def mails_to(smtp_server, address: str) -> list:
    return [m for m in smtp_server.messages if m["To"] == address]


# Pure parts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "used, limit, level",
    [(395, 500, "ok"), (399, 500, "ok"), (400, 500, "warn"), (499, 500, "warn"), (500, 500, "over")]
    + [(79, 100, "ok"), (80, 100, "warn"), (100, 100, "over"), (101, 100, "over")]
    + [(3, 5, "ok"), (4, 5, "warn"), (5, 5, "over"), (0, 1, "ok"), (1, 1, "over"), (10**6, None, "ok")],
)
def test_levels_warn_at_80_percent_and_refuse_at_100(used, limit, level):
    from tenants.quotas import Usage

    assert Usage("customers", "Customers", used, limit, str(used), str(limit)).level == level


def test_sizes_read_like_people_write_them():
    from tenants.quotas import GIB, MIB, size_text

    assert size_text(0) == "0 MB"
    assert size_text(850 * MIB) == "850 MB"
    assert size_text(int(1.25 * GIB)) == "1.2 GB"
    assert size_text(GIB) == "1 GB"
    assert size_text(12 * GIB) == "12 GB"


def test_the_month_is_the_business_own(app, make_tenant, seed_booking):
    """Jobs count from the 1st at midnight in the business's time zone; last month's don't count."""
    from tenants import quotas
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t)
    first = book(app, t, request(f, tomorrow_at(9)))
    with in_tenant(app, t) as s:
        tenant = s.get(Tenant, t.id)
        assert quotas.month_start(tenant, datetime(2026, 3, 1, 3, 0, tzinfo=UTC)) == datetime(
            2026, 2, 1, 5, 0, tzinfo=UTC
        )
        start = quotas.month_start(tenant)
    clone_jobs(app, t, first, 3, created_at=start - timedelta(minutes=1))  # last month (local)
    clone_jobs(app, t, first, 2, created_at=start + timedelta(minutes=1))
    clone_jobs(app, t, first, 4, status="expired")  # holds that ran out unpaid
    clone_jobs(app, t, first, 1, status="canceled")  # booked, then canceled: it was a job
    with in_tenant(app, t) as s:
        assert quotas.jobs_this_month(s.get(Tenant, t.id)) == 1 + 2 + 1


# Customers: 395 / 400 / 500 of Starter's 500 -------------------------------------------------------


def test_customers_warn_at_400_and_refuse_the_501st_everywhere(app, make_tenant, seed_booking, visitor):
    t = make_tenant(techs=1)
    f = seed_booking(t)
    owner = owner_visitor(visitor, t)
    seed_customers(app, t, 395)  # 79 %
    page = body(owner.get("/plan"))
    assert usage_level(page, "customers") == "ok" and "395 of 500" in page
    assert banner(body(owner.get("/")), "customers") is None

    seed_customers(app, t, 5)  # 80 %
    page = body(owner.get("/plan"))
    assert usage_level(page, "customers") == "warn" and "Almost at your limit (80 %)" in page
    home = body(owner.get("/"))
    assert banner(home, "customers") == "warn: You have 400 of the 500 customers your plan includes."
    assert 'href="/plan"' in home

    seed_customers(app, t, 99)  # 499: the 500th still fits
    form = {"name": "Last One", "phone": "(512) 555-0150", "csrf_token": owner.dashboard_token()}
    assert owner.post("/customers/new", form).status_code == 302
    assert count(app, t, "customers") == 500

    # 100 %: the page says so before the form is filled in...
    new_page = body(owner.get("/customers/new"))
    assert 'data-testid="plan-full-customers"' in new_page
    assert "Your Starter plan includes 500 customers. Upgrade on Plan &amp; usage to add more." in new_page
    # ...the form is refused with that message and keeps what was typed...
    form = {"name": "Nadia Newcomer", "phone": "(512) 555-0151", "csrf_token": owner.dashboard_token()}
    r = owner.post("/customers/new", form)
    assert r.status_code == 422
    assert 'data-testid="plan-limit"' in body(r) and "Your Starter plan includes 500 customers." in body(r)
    assert 'value="Nadia Newcomer"' in body(r) and 'data-testid="plan-full-customers"' not in body(r)
    # ...the API answers 402 with the code...
    r = api_post(owner, "/api/v1/customers", {"name": "Api Person", "phone": "(512) 555-0152"})
    assert r.status_code == 402
    error = r.get_json()["error"]
    assert error["code"] == "plan_limit_reached" and "500 customers" in error["message"]
    # ...a new customer on the booking site gets the polite page, a returning one books.
    site = visitor(t.host)
    token = walk_to_review(site, f, phone="(512) 555-0153")
    r = site.post("/book/review", {"csrf_token": token})
    assert r.status_code == 402 and 'data-testid="booking-paused"' in body(r)
    assert "can&#39;t take new online bookings right now" in body(r) and "Upgrade" not in body(r)
    assert "Nothing was booked and you haven't been charged." in body(r)
    assert count(app, t, "customers") == 500 and count(app, t, "bookings") == 0
    returning = visitor(t.host)
    token = walk_to_review(returning, f, phone="(512) 555-0150")  # "Last One", on file
    r = returning.post("/book/review", {"csrf_token": token})
    assert r.status_code == 302 and "/b/" in r.headers["Location"]
    assert count(app, t, "customers") == 500 and count(app, t, "bookings") == 1
    # A quote request from someone new: polite too, and nothing kept.
    quote_site = visitor(t.host)
    page = body(quote_site.get("/quote-request"))
    r = quote_site.post(
        "/quote-request",
        {
            "csrf_token": csrf_from(page),
            "size_class": "suv",
            "make": "Toyota",
            "wanted": "Ceramic coating",
            "address": "1100 Congress Ave, Austin",
            "name": "Quinn Quote",
            "phone": "(512) 555-0154",
        },
    )
    assert r.status_code == 402 and "Your request wasn't sent" in body(r)
    assert count(app, t, "quote_requests") == 0 and count(app, t, "customers") == 500

    page = body(owner.get("/plan"))
    assert usage_level(page, "customers") == "over" and "new customers are refused" in page
    assert banner(body(owner.get("/customers")), "customers").startswith(
        "over: You have 500 of the 500 customers your Starter plan includes: new customers are refused"
    )
    # Technicians don't see the banner (nor the plan page).
    tech = visitor("app.localhost")
    tech.login(t.people["tech0"].email, t.people["tech0"].password)
    assert 'data-testid="quota-banner"' not in body(tech.get("/my-day"))
    assert tech.get("/plan").status_code == 403
    # An upgrade makes room at once.
    set_plan(app, t, "pro")
    form = {"name": "Nadia Newcomer", "phone": "(512) 555-0151", "csrf_token": owner.dashboard_token()}
    assert owner.post("/customers/new", form).status_code == 302
    assert banner(body(owner.get("/")), "customers") is None


def test_customers_deleted_or_anonymised_free_their_place(app, make_tenant):
    from tenants import quotas
    from tenants.models import Tenant

    t = make_tenant()
    seed_customers(app, t, 500)
    with in_tenant(app, t) as s:
        s.execute(
            sql(
                "UPDATE customers SET deletion_requested_at = now(), purge_after = now() + interval '30 days' "
                "WHERE name = 'Seed 1'"
            )
        )
        s.execute(sql("UPDATE customers SET anonymised_at = now(), email = NULL WHERE name = 'Seed 2'"))
        s.commit()
        assert quotas.customer_count(s.get(Tenant, t.id)) == 498
        s.rollback()


def test_canceling_a_deletion_at_the_limit_is_refused(app, make_tenant, visitor):
    """Deleting frees a place; once it is taken, canceling the deletion can't bring the 501st back."""
    t = make_tenant()
    owner = owner_visitor(visitor, t)
    seed_customers(app, t, 500)
    with in_tenant(app, t) as s:
        gone = s.scalar(sql("SELECT id FROM customers WHERE name = 'Seed 1'"))
    assert (
        owner.post(f"/customers/{gone}/delete", {"csrf_token": owner.dashboard_token(), "confirm": "yes"}).status_code
        == 302
    )
    form = {"name": "Took The Place", "phone": "(512) 555-0155", "csrf_token": owner.dashboard_token()}
    assert owner.post("/customers/new", form).status_code == 302  # 500 of 500 again
    r = owner.post(f"/customers/{gone}/delete/cancel", {"csrf_token": owner.dashboard_token()}, follow_redirects=True)
    assert r.status_code == 200
    assert "Your Starter plan includes 500 customers. Upgrade on Plan &amp; usage to add more." in body(r)
    with in_tenant(app, t) as s:
        assert s.scalar(sql("SELECT purge_after IS NOT NULL FROM customers WHERE id = :c"), {"c": gone})
        assert s.scalar(sql("SELECT count(*) FROM customers WHERE purge_after IS NULL")) == 500
    set_plan(app, t, "pro")
    r = owner.post(f"/customers/{gone}/delete/cancel", {"csrf_token": owner.dashboard_token()}, follow_redirects=True)
    assert "Deletion canceled" in body(r)
    with in_tenant(app, t) as s:
        assert s.scalar(sql("SELECT count(*) FROM customers WHERE purge_after IS NULL")) == 501


def test_the_owner_email_is_per_business(app, make_tenant, visitor, smtp_server, run_jobs, monkeypatch):
    """Two businesses refused in the same month each hear once; an e-mail that couldn't be queued
    doesn't use up the month's one."""
    from app.jobs import JobsUnavailable
    from tenants import quotas

    a, b = make_tenant(), make_tenant()
    for t in (a, b):
        seed_customers(app, t, 500)
    owner_a, owner_b = owner_visitor(visitor, a), owner_visitor(visitor, b)

    def refused(v, i):
        r = api_post(v, "/api/v1/customers", {"name": f"New {i}", "phone": f"+1512555031{i}"})
        assert r.status_code == 402 and r.get_json()["error"]["code"] == "plan_limit_reached"

    def queue_down(*args, **kwargs):
        raise JobsUnavailable()

    monkeypatch.setattr(quotas.send_limit_reached, "enqueue", queue_down)
    refused(owner_b, 0)  # the queue is down: no e-mail, the refusal itself still works
    monkeypatch.undo()
    refused(owner_a, 1)
    refused(owner_a, 2)
    refused(owner_b, 3)
    run_jobs()
    assert len(mails_to(smtp_server, a.owner.email)) == 1
    (mail,) = mails_to(smtp_server, b.owner.email)
    assert "500 customers" in mail["Subject"]


# Jobs: 79 / 80 / 100 of Starter's 100 a month ------------------------------------------------------


def test_jobs_warn_at_80_and_refuse_the_101st_on_every_path(
    app, make_tenant, seed_booking, visitor, smtp_server, run_jobs
):
    t = make_tenant()
    f = seed_booking(t, techs=2)
    owner = owner_visitor(visitor, t)
    first = book(app, t, request(f, tomorrow_at(9), tech=f.techs[0]))
    clone_jobs(app, t, first, 78)  # 79
    assert usage_level(body(owner.get("/plan")), "jobs") == "ok"
    assert banner(body(owner.get("/")), "jobs") is None

    clone_jobs(app, t, first, 1)  # 80
    assert usage_level(body(owner.get("/plan")), "jobs") == "warn"
    assert banner(body(owner.get("/calendar")), "jobs") == "warn: You've used 80 of 100 jobs this month."

    clone_jobs(app, t, first, 19)  # 99
    site = visitor(t.host)
    token = walk_to_review(site, f, phone="(512) 555-0160")  # the customer is on the last page...
    clone_jobs(app, t, first, 1)  # ...when the 100th job is booked elsewhere
    r = site.post("/book/review", {"csrf_token": token})
    assert r.status_code == 402 and 'data-testid="booking-paused"' in body(r)
    assert "can&#39;t take new online bookings right now" in body(r)
    assert count(app, t, "bookings") == 100 and count(app, t, "customers") == 1  # no new customer either
    # The booking site now says so before anything is filled in.
    r = visitor(t.host).get("/book")
    assert r.status_code == 200 and 'data-testid="booking-paused"' in body(r) and "book-service-form" not in body(r)

    # The API: 402 with the code and the owner's message.
    start = tomorrow_at(14).isoformat()
    api_body = {
        "package_id": str(f.wash),
        "size_class": "sedan",
        "technician_id": str(f.techs[1]),
        "starts_at": start,
        "customer": {"name": "Api Booker", "phone": "+15125550161"},
        "address": "1100 Congress Ave",
    }
    r = api_post(owner, "/api/v1/bookings", api_body)
    assert r.status_code == 402, body(r)[:300]
    assert r.get_json()["error"]["code"] == "plan_limit_reached"
    assert "100 jobs a month" in r.get_json()["error"]["message"]

    # The dashboard: a notice before the form, the refusal keeps the input.
    assert 'data-testid="plan-full-jobs"' in body(owner.get("/bookings/new"))
    local = datetime.fromisoformat(start).astimezone(TZ).strftime("%Y-%m-%dT%H:%M")
    form = {
        "name": "Dana Dashboard",
        "phone": "(512) 555-0162",
        "address": "1100 Congress Ave",
        "size_class": "sedan",
        "package_id": str(f.wash),
        "technician_id": str(f.techs[1]),
        "starts_local": local,
        "csrf_token": owner.dashboard_token(),
    }
    r = owner.post("/bookings/new", form)
    assert r.status_code == 422 and 'value="Dana Dashboard"' in body(r)
    assert "Your Starter plan includes 100 jobs a month, and this month&#39;s are booked." in body(r)
    assert count(app, t, "bookings") == 100

    page = body(owner.get("/plan"))
    assert usage_level(page, "jobs") == "over" and "100 of 100" in page
    assert banner(body(owner.get("/")), "jobs").startswith("over: You've used all 100 jobs your Starter plan includes")

    # The owner hears about it once this month, however many were turned away.
    run_jobs()
    (mail,) = mails_to(smtp_server, t.owner.email)
    assert "100 jobs" in mail["Subject"]
    text = mail.get_payload(decode=True).decode()
    assert "can't take new online bookings right now" in text and "/plan" in text

    # A hold that expires unpaid gives its place back.
    with in_tenant(app, t) as s:
        s.execute(sql("UPDATE bookings SET status = 'expired' WHERE reference = 'Z00002'"))
        s.commit()
    r = api_post(owner, "/api/v1/bookings", api_body)
    assert r.status_code == 201, body(r)[:300]
    assert (
        api_post(owner, "/api/v1/bookings", {**api_body, "starts_at": tomorrow_at(16).isoformat()}).status_code == 402
    )
    run_jobs()
    assert len(mails_to(smtp_server, t.owner.email)) == 1


def test_accepting_a_quote_at_the_jobs_limit_is_polite_and_books_nothing(app, make_tenant, seed_booking, visitor):
    from tests.test_quotes import day, new_quote, send, slots_on

    t = make_tenant()
    f = seed_booking(t)
    quote_id = new_quote(app, t, f, optional=False)
    path = send(app, t, quote_id)
    site = visitor(t.host)
    page = body(site.get(f"{path}/time?day={day(3)}"))
    starts = slots_on(page)
    first = book(app, t, request(f, tomorrow_at(9)))
    clone_jobs(app, t, first, 99)
    r = site.post(f"{path}/accept", {"csrf_token": csrf_from(page), "starts_at": starts[0]})
    assert r.status_code == 402 and 'data-testid="booking-paused"' in body(r)
    assert count(app, t, "bookings") == 100
    with in_tenant(app, t) as s:
        assert s.scalar(sql("SELECT status FROM quotes WHERE id = :q"), {"q": quote_id}) in ("sent", "viewed")


def test_unlimited_jobs_on_pro(app, make_tenant, seed_booking, visitor):
    t = make_tenant()
    f = seed_booking(t)
    set_plan(app, t, "pro")
    first = book(app, t, request(f, tomorrow_at(9)))
    clone_jobs(app, t, first, 150)
    book(app, t, request(f, tomorrow_at(13), phone="+15125550170"))
    owner = owner_visitor(visitor, t)
    page = body(owner.get("/plan"))
    assert usage_level(page, "jobs") == "ok" and "152 of unlimited" in page


# Technicians: 4 / 5 on Pro, 1 on Starter ---------------------------------------------------------


def test_technicians_on_pro_warn_at_4_of_5_and_refuse_the_6th(app, make_tenant, visitor):
    t = make_tenant(techs=3)
    set_plan(app, t, "pro")
    owner = owner_visitor(visitor, t)
    assert usage_level(body(owner.get("/plan")), "technicians") == "ok"  # 3 of 5

    def invite(email):
        return owner.post("/team/invite", {"email": email, "role": "tech", "csrf_token": owner.dashboard_token()})

    assert invite("four@x.test").status_code == 302  # 4 of 5 = 80 %
    page = body(owner.get("/plan"))
    assert usage_level(page, "technicians") == "warn" and "4 of 5" in page
    assert "On the schedule: 0 · technician logins and open invitations: 4." in page
    assert banner(body(owner.get("/")), "technicians") is None  # technicians only show when over
    assert invite("five@x.test").status_code == 302  # 5 of 5
    assert usage_level(body(owner.get("/plan")), "technicians") == "over"
    team = body(owner.get("/team"))
    assert 'data-testid="plan-full-technician_logins"' in team
    r = invite("six@x.test")
    assert r.status_code == 422 and 'value="six@x.test"' in body(r)
    assert "Your Pro plan includes 5 technician logins, counting open invitations." in body(r)
    assert count(app, t, "invitations") == 2
    # Re-inviting someone already invited refreshes the link: not a new technician.
    assert invite("five@x.test").status_code == 302
    # Admins aren't technicians.
    r = owner.post("/team/invite", {"email": "adm@x.test", "role": "admin", "csrf_token": owner.dashboard_token()})
    assert r.status_code == 302

    # Schedules: the same five.
    add_schedules(app, t, 4)
    form = {"name": "Fifth Tech", "color": "#123456", "csrf_token": owner.dashboard_token()}
    assert owner.post("/technicians", form).status_code == 302
    assert 'data-testid="plan-full-technicians"' in body(owner.get("/technicians"))
    r = owner.post("/technicians", {**form, "name": "Sixth Tech"})
    assert r.status_code == 422 and 'value="Sixth Tech"' in body(r)
    assert "Your Pro plan includes 5 technicians. Upgrade on Plan &amp; usage to add more." in body(r)
    assert count(app, t, "technicians") == 5
    # Taking one off the schedule frees a place; putting them back at the limit is refused.
    with in_tenant(app, t) as s:
        tech_id = s.scalar(sql("SELECT id FROM technicians WHERE name = 'Fifth Tech'"))
    edit = {"name": "Fifth Tech", "color": "#123456", "csrf_token": owner.dashboard_token()}
    assert owner.post(f"/technicians/{tech_id}", edit).status_code == 302  # unticked: inactive
    assert owner.post("/technicians", {**form, "name": "Sixth Tech"}).status_code == 302
    r = owner.post(f"/technicians/{tech_id}", {**edit, "active": "on"})
    assert r.status_code == 422 and "Your Pro plan includes 5 technicians." in body(r)


def test_starter_has_one_technician(app, make_tenant, visitor):
    t = make_tenant(admins=1)
    owner = owner_visitor(visitor, t)

    def invite(email):
        return owner.post("/team/invite", {"email": email, "role": "tech", "csrf_token": owner.dashboard_token()})

    assert invite("solo@x.test").status_code == 302
    r = invite("second@x.test")
    assert r.status_code == 422 and "Your Starter plan includes 1 technician login" in body(r)
    # Making the admin a technician is refused the same way, and the admin stays an admin.
    r = owner.post(
        f"/team/{t.people['admin0'].id}/role",
        {"role": "tech", "csrf_token": owner.dashboard_token()},
        follow_redirects=True,
    )
    assert "Your Starter plan includes 1 technician login" in body(r)
    with in_tenant(app, t) as s:
        assert s.scalar(sql("SELECT role FROM users WHERE id = :u"), {"u": t.people["admin0"].id}) == "admin"
    # Revoking the invitation gives the place back.
    with in_tenant(app, t) as s:
        invitation_id = s.scalar(sql("SELECT id FROM invitations WHERE email = 'solo@x.test'"))
    owner.post(f"/team/invitations/{invitation_id}/revoke", {"csrf_token": owner.dashboard_token()})
    assert invite("second@x.test").status_code == 302
    # One schedule: the first technician is added, a second is refused.
    form = {"name": "Olive On The Van", "color": "#123456", "csrf_token": owner.dashboard_token()}
    assert owner.post("/technicians", form).status_code == 302
    r = owner.post("/technicians", {**form, "name": "Helper"})
    assert r.status_code == 422 and "Your Starter plan includes 1 technician. Upgrade on Plan &amp; usage" in body(r)


# The race for the last one ---------------------------------------------------------------------------


def _race(app, t, attempt) -> list[str]:
    """Two threads each create one inside their own transaction and hold it open a moment before
    committing: without the quota lock both would pass."""
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.quotas import PlanLimitReached

    barrier = threading.Barrier(2)
    results: list[str] = []

    def run(i):
        with app.app_context(), tenant_context(t.id, db.session):
            barrier.wait()
            try:
                attempt(i)
                time.sleep(0.4)
                db.session.commit()
                results.append("ok")
            except PlanLimitReached:
                db.session.rollback()
                results.append("refused")
            except Exception as exc:  # noqa: BLE001 - reported by the assertion
                db.session.rollback()
                results.append(repr(exc))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sorted(results)


def test_two_new_customers_for_the_last_place_one_wins(app, make_tenant):
    from app.customers import services

    t = make_tenant()
    seed_customers(app, t, 499)
    results = _race(
        app,
        t,
        lambda i: services.create_customer(t.id, {"name": f"Racer {i}", "phone": f"+1512555018{i}"}, region="US"),
    )
    assert results == ["ok", "refused"]
    assert count(app, t, "customers") == 500


def test_two_bookings_for_the_last_job_on_different_technicians_one_wins(app, make_tenant, seed_booking):
    from app.booking import services
    from app.extensions import db
    from tenants.models import Tenant

    t = make_tenant()
    f = seed_booking(t, techs=2)
    first = book(app, t, request(f, tomorrow_at(9), tech=f.techs[0]))
    clone_jobs(app, t, first, 98)  # 99
    results = _race(
        app,
        t,
        lambda i: services.book(
            db.session.get(Tenant, t.id),
            request(f, tomorrow_at(13), tech=f.techs[i], phone=f"+1512555019{i}"),
            now=datetime.now(UTC),
        ),
    )
    assert results == ["ok", "refused"]
    assert count(app, t, "bookings") == 100


# CSV import at the limit -----------------------------------------------------------------------------


def test_csv_import_takes_what_fits_and_names_the_rows_left_out(app, make_tenant, visitor):
    t = make_tenant()
    owner = owner_visitor(visitor, t)
    seed_customers(app, t, 497)
    content = b"name,phone\n" + b"".join(b"Row %d,+1512555%04d\n" % (i, 200 + i) for i in range(2, 7))  # rows 2-6
    r = upload(owner, content)
    assert r.status_code == 200
    page = body(r)
    assert 'data-testid="import-limit"' in page and "Only the first 3 rows fit: rows 5–6 won't be imported." in page
    assert ">Import 3 customers</button>" in page
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    r = owner.post("/customers/import/confirm", {"token": token, "csrf_token": owner.dashboard_token()})
    assert r.status_code == 302
    listing = body(owner.get("/customers"))
    assert "Imported 3 customers. Rows 5–6 didn&#39;t fit. Your Starter plan includes 500 customers." in listing
    assert count(app, t, "customers") == 500
    with in_tenant(app, t) as s:
        names = set(s.scalars(sql("SELECT name FROM customers WHERE name LIKE 'Row %'")))
    assert names == {"Row 2", "Row 3", "Row 4"}
    # Full: the preview says nothing can be imported and offers no button.
    r = upload(owner, b"name,phone\nLate,+15125550299\n")
    assert 'data-testid="import-limit"' in body(r) and "Nothing in this file can be imported" in body(r)
    assert 'data-testid="import-confirm"' not in body(r)
    assert 'data-testid="plan-full-customers"' in body(owner.get("/customers/import"))


def test_csv_import_when_the_limit_was_reached_after_the_preview(app, make_tenant, visitor):
    t = make_tenant()
    owner = owner_visitor(visitor, t)
    seed_customers(app, t, 498)
    r = upload(owner, b"name,phone\nA,+15125550301\nB,+15125550302\n")
    token = re.search(r'name="token" value="([^"]+)"', body(r)).group(1)
    seed_customers(app, t, 2)  # someone else filled the plan meanwhile
    r = owner.post(
        "/customers/import/confirm", {"token": token, "csrf_token": owner.dashboard_token()}, follow_redirects=True
    )
    assert r.status_code == 200 and "Nothing was imported. Rows 2–3 didn&#39;t fit." in body(r)
    assert count(app, t, "customers") == 500


# The page ----------------------------------------------------------------------------------------------


def test_plan_page_shows_every_bar_with_storage_and_texts(app, make_tenant, visitor):
    t = make_tenant()
    owner = owner_visitor(visitor, t)
    page = body(owner.get("/plan"))
    for kind, figures in (
        ("technicians", "0 of 1"),
        ("jobs", "0 of 100"),
        ("customers", "0 of 500"),
        ("texts", "0 of 100"),
        ("storage", "0 MB of 1 GB"),
        ("api", "0 of 1,000"),
    ):
        assert re.search(rf'data-testid="usage-{kind}-figures">{figures}<', page), kind
        assert usage_level(page, kind) == "ok"
    # API requests count against the hour's allowance, read from the rate limiter's counter.
    for _ in range(3):
        assert owner.get("/api/v1/me").status_code == 200
    assert re.search(r'data-testid="usage-api-figures">3 of 1,000<', body(owner.get("/plan")))
    assert "Texts this month" in page and "Storage" in page and "Starter" in page
    set_plan(app, t, "teams")
    page = body(owner.get("/plan"))
    assert "0 of unlimited" in page and "0 MB of 50 GB" in page and "0 of 10,000" in page


# On a phone ------------------------------------------------------------------------------------------


def test_owner_and_customer_see_the_limits_on_a_phone(app, new_context, live_server, make_tenant, seed_booking):
    from playwright.sync_api import expect

    from tests.pages import LAPTOP, PHONE, LoginPage, screenshot

    t = make_tenant()
    f = seed_booking(t)
    first = book(app, t, request(f, tomorrow_at(9)))
    clone_jobs(app, t, first, 99)  # jobs: 100 of 100
    seed_customers(app, t, 420)  # customers: 421 of 500
    phone = {"viewport": PHONE, "is_mobile": True, "has_touch": True}
    errors: list[str] = []

    owner = new_context(**phone).new_page()
    owner.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    owner.goto(live_server.url("app.localhost", "/login"))
    LoginPage(owner, live_server).log_in(t.owner.email, t.owner.password)
    owner.goto(live_server.url("app.localhost", "/"))
    expect(owner.get_by_test_id("quota-jobs")).to_contain_text("You've used all 100 jobs")
    expect(owner.get_by_test_id("quota-customers")).to_contain_text("You have 421 of the 500 customers")
    screenshot(owner, "quotas-1-home-banner")
    assert owner.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    owner.get_by_test_id("quota-jobs").get_by_role("link").click()
    expect(owner.get_by_test_id("usage-jobs")).to_have_class("over")
    expect(owner.get_by_test_id("usage-customers")).to_have_class("warn")
    expect(owner.get_by_test_id("quota-banner")).to_have_count(0)
    screenshot(owner, "quotas-2-plan-page")
    assert owner.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    owner.goto(live_server.url("app.localhost", "/bookings/new"))
    expect(owner.get_by_test_id("plan-full-jobs")).to_be_visible()
    screenshot(owner, "quotas-3-new-booking-refused-before-typing")
    owner.set_viewport_size(LAPTOP)
    owner.goto(live_server.url("app.localhost", "/plan"))
    screenshot(owner, "quotas-4-plan-page-laptop")

    customer = new_context(**phone).new_page()
    customer.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    customer.goto(live_server.url(t.host, "/book"))
    expect(customer.get_by_test_id("booking-paused")).to_contain_text("can't take new online bookings right now")
    screenshot(customer, "quotas-5-site-paused")
    assert customer.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    assert errors == [], errors  # CSP violations (inline style or script) would show here


# Storage (photo uploads) ---------------------------------------------------------------------------


def test_storage_warns_at_80_percent_and_refuses_the_photo_that_would_not_fit(
    app, make_tenant, seed_booking, visitor, superuser_conn
):
    """Starter has 1 GB. A photo may be up to 12 MB and its size is known only once it lands, so an
    upload is refused when the largest photo would no longer fit, counting uploads still in flight;
    the bar says "over" from that point, the banner too."""
    from app.errors import ValidationFailed
    from app.media import photos
    from app.media.models import BookingPhoto
    from tenants.quotas import GIB, MIB

    t = make_tenant()
    f = seed_booking(t)
    booking_id = book(app, t, request(f, tomorrow_at(9)))
    with in_tenant(app, t) as s:
        s.add(
            BookingPhoto(
                tenant_id=t.id,
                booking_id=booking_id,
                kind="before",
                key=f"tenants/{t.id}/x.jpg",
                content_type="image/jpeg",
                status="stored",
                size_bytes=1,
            )
        )
        s.commit()

    def stored(n: int) -> None:
        superuser_conn.execute(
            "UPDATE booking_photos SET size_bytes = %s WHERE tenant_id = %s AND status = 'stored'", (n, t.id)
        )

    def start_upload() -> None:
        from app.booking.models import Booking

        with in_tenant(app, t) as s:
            photos.start_upload(
                s.get(Booking, (t.id, booking_id)),
                kind="after",
                content_type="image/jpeg",
                uploaded_by=None,
                media_gb=1,
            )
            s.commit()

    owner = owner_visitor(visitor, t)
    stored(int(0.79 * GIB))
    page = body(owner.get("/plan"))
    assert usage_level(page, "storage") == "ok" and banner(body(owner.get("/")), "storage") is None
    stored(GIB * 4 // 5 + 1)  # just past 80 %
    page = body(owner.get("/plan"))
    assert usage_level(page, "storage") == "warn" and "Almost at your limit (80 %)" in page
    assert "819 MB of 1 GB photo storage" in banner(body(owner.get("/")), "storage")
    start_upload()  # room left: allowed

    # 30 MB left: two 12 MB uploads in flight take 24 MB of it, the third would not fit.
    superuser_conn.execute("DELETE FROM booking_photos WHERE tenant_id = %s AND status = 'pending'", (t.id,))
    stored(GIB - 30 * MIB)
    start_upload()
    start_upload()
    with pytest.raises(ValidationFailed) as refused:
        start_upload()
    assert refused.value.errors == {"size": "Your plan's 1 GB of photo storage is full."}
    # Tickets expire after five minutes: their room comes back.
    superuser_conn.execute(
        "UPDATE booking_photos SET created_at = now() - interval '6 minutes' WHERE tenant_id = %s AND status = 'pending'",
        (t.id,),
    )
    start_upload()

    # Under 12 MB left: the bar says over (no photo would fit) though it reads 99 %.
    stored(GIB - 5 * MIB)
    page = body(owner.get("/plan"))
    assert usage_level(page, "storage") == "over" and "Limit reached: new photos can't be uploaded" in page
    assert "photo storage is full" in banner(body(owner.get("/")), "storage")
