"""The platform area (docs/platform-and-billing.md): finding a business, its plan and usage as
counts, plan changes written to both audit logs, every platform request audited, 404 for everyone
who isn't a platform admin, and a platform log the app role can neither read nor forge."""

from __future__ import annotations

import re
import uuid

import pytest
from psycopg import errors

from tests.helpers import csrf_from
from tests.test_platform_jobs import grant, revoke


@pytest.fixture
def staff(app, make_tenant, visitor):
    """A platform admin (an account in its own business), logged in."""
    home = make_tenant(name="Fieldday Staff Desk")
    assert grant(app, home.owner.email).exit_code == 0
    v = visitor()
    v.login(home.owner.email, home.owner.password)
    v.facts = home
    return v


def audit_rows(superuser_conn, actor_email: str) -> list[dict]:
    """The platform log as the superuser sees it (the app role can't), oldest first."""
    cur = superuser_conn.execute(
        "SELECT action, target_tenant_id, detail, host(ip), actor_email FROM platform_audit"
        " WHERE actor_email = %s ORDER BY created_at, id",
        (actor_email,),
    )
    return [dict(zip(["action", "target", "detail", "ip", "email"], row, strict=True)) for row in cur.fetchall()]


def tenant_audit(app, t, action: str) -> list[dict]:
    from sqlalchemy import text

    from app.extensions import db
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = db.session.execute(
            text("SELECT actor_id, detail FROM audit_log WHERE action = :a ORDER BY created_at"), {"a": action}
        ).all()
        db.session.rollback()
        return [{"actor_id": r[0], "detail": r[1]} for r in rows]


def plan_of(app, t) -> str:
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(t.id, db.session):
        plan = db.session.get(Tenant, t.id).plan
        db.session.rollback()
        return plan


def change_plan(v, t, plan: str, reason: str, **extra):
    page = v.get(f"/platform/tenants/{t.id}").get_data(as_text=True)
    form = {"plan": plan, "reason": reason, "csrf_token": csrf_from(page), **extra}
    return v.post(f"/platform/tenants/{t.id}/plan", form)


def test_find_a_business_by_name_subdomain_or_owner_email(app, make_tenant, staff):
    shiny = make_tenant(name="Zebra Shine Mobile Detailing")
    other = make_tenant(name="Quiet Wash")
    for query in ("zebra SHINE", "ebra shi", shiny.subdomain.upper(), f"OWNER@{shiny.subdomain}"):
        r = staff.get("/platform/tenants", query_string={"q": query})
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
        page = r.get_data(as_text=True)
        assert f'data-tenant-id="{shiny.id}"' in page, query
        assert f'data-tenant-id="{other.id}"' not in page, query
    row = page.split(f'data-tenant-id="{shiny.id}"')[1].split("</tr>")[0]
    assert "Starter" in row and "No subscription" in row and shiny.owner.email in row
    assert re.match(r"\d{4}-\d{2}-\d{2}<", row.split('data-testid="tenant-created">')[1])
    # LIKE's wildcards are matched literally, not as "anything".
    for query in ("%", "_", "Zebra%Wash", "\\"):
        page = staff.get("/platform/tenants", query_string={"q": query}).get_data(as_text=True)
        assert 'data-testid="no-tenants"' in page, query
    # No query: the newest businesses.
    page = staff.get("/platform/tenants").get_data(as_text=True)
    assert f'data-tenant-id="{other.id}"' in page and "Newest" in page
    # A very long query is cut, not refused.
    assert staff.get("/platform/tenants", query_string={"q": "x" * 5000}).status_code == 200


def test_tenant_page_shows_plan_and_counts_but_no_customer_data(app, make_tenant, seed_booking, staff):
    from tests.test_booking import book, request, tomorrow_at

    b = make_tenant(name="Bravo Counts")
    f = seed_booking(b, techs=2)
    book(app, b, request(f, tomorrow_at(10), phone="+15125550177"))
    book(app, b, request(f, tomorrow_at(13), phone="+15125550178"))
    r = staff.get(f"/platform/tenants/{b.id}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert "Bravo Counts" in page and b.subdomain in page and b.owner.email in page
    figures = page.split('data-testid="tenant-usage"')[1].split("</ul>")[0]
    assert "Technicians" in figures and ">2 of 1<" in figures  # two schedules on Starter's one
    assert "Customers" in figures and ">2 of 500<" in figures
    assert "Bookings created this month" in figures and ">2 of 100<" in figures
    # Nothing of the business's customers: names, phones, addresses, vehicles.
    for private in ("Casey Customer", "555-0177", "5125550177", "Congress", "Honda", "Tech 0"):
        assert private not in page, private
    assert staff.get(f"/platform/tenants/{uuid.uuid4()}").status_code == 404


def test_plan_change_is_written_to_the_platform_log_and_the_business_log(
    app, make_tenant, staff, superuser_conn, visitor
):
    b = make_tenant(name="Bravo Upgrade")
    r = change_plan(staff, b, "pro", "  Ticket 4711:   comped Pro for March ")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/platform/tenants/{b.id}")
    assert plan_of(app, b) == "pro"
    page = staff.get(f"/platform/tenants/{b.id}").get_data(as_text=True)
    assert "Plan changed from Starter to Pro" in page and "no subscription" in page
    assert "Ticket 4711: comped Pro for March" in page.split('data-testid="tenant-history"')[1]

    changes = [x for x in audit_rows(superuser_conn, staff.facts.owner.email) if x["action"] == "tenant.plan_changed"]
    assert len(changes) == 1
    change = changes[0]
    assert change["target"] == b.id and change["email"] == staff.facts.owner.email and change["ip"] == "127.0.0.1"
    assert change["detail"] == {
        "from": "starter",
        "to": "pro",
        "reason": "Ticket 4711: comped Pro for March",
        "billing": "no subscription: plan set without billing",
    }
    # The business sees it in its own log, with the reason, and on Plan & usage.
    entries = tenant_audit(app, b, "plan.changed_by_platform")
    assert len(entries) == 1 and entries[0]["actor_id"] is None
    assert entries[0]["detail"]["reason"] == "Ticket 4711: comped Pro for March"
    owner = visitor()
    owner.login(b.owner.email, b.owner.password)
    assert "Plan changed by Fieldday support" in owner.get("/activity").get_data(as_text=True)
    plan_page = owner.get("/plan").get_data(as_text=True)
    assert "Fieldday support changed your plan from Starter to Pro" in plan_page
    assert "Ticket 4711: comped Pro for March" in plan_page
    # The audit page lists it; "changes only" leaves the page views out.
    page = staff.get("/platform/audit").get_data(as_text=True)
    assert "Plan starter → pro" in page and "Bravo Upgrade" in page and 'data-action="page.access"' in page
    page = staff.get("/platform/audit", query_string={"changes": "1"}).get_data(as_text=True)
    assert "Plan starter → pro" in page and 'data-action="page.access"' not in page
    page = staff.get("/platform/audit", query_string={"tenant": str(b.id), "changes": "1"}).get_data(as_text=True)
    assert page.count('data-testid="audit-row"') == 1
    assert staff.get("/platform/audit", query_string={"tenant": "not-a-uuid"}).status_code == 400


def test_plan_change_refuses_bad_input_and_changes_nothing(app, make_tenant, staff, superuser_conn):
    b = make_tenant()
    for plan, reason, field in (
        ("pro", "", "reason"),
        ("pro", "  x ", "reason"),
        ("pro", "y" * 501, "reason"),
        ("platinum", "Ticket 1", "plan"),
        ("", "Ticket 1", "plan"),
        ("starter", "Ticket 1", "plan"),  # already on it
    ):
        r = change_plan(staff, b, plan, reason)
        assert r.status_code == 422, (plan, reason, r.status_code)
        page = r.get_data(as_text=True)
        assert 'data-testid="form-errors"' in page
        if field == "reason":
            assert 'data-testid="error-reason"' in page
    assert plan_of(app, b) == "starter"
    assert tenant_audit(app, b, "plan.changed_by_platform") == []
    assert not [x for x in audit_rows(superuser_conn, staff.facts.owner.email) if x["action"] != "page.access"]
    # No form token: refused (and still audited, below); an unknown business: 404.
    assert staff.post(f"/platform/tenants/{b.id}/plan", {"plan": "pro", "reason": "Ticket 1"}).status_code == 400
    token = staff.token(f"/platform/tenants/{b.id}")
    r = staff.post(f"/platform/tenants/{uuid.uuid4()}/plan", {"plan": "pro", "reason": "Ticket", "csrf_token": token})
    assert r.status_code == 404
    assert plan_of(app, b) == "starter"


def test_every_platform_request_is_audited(app, make_tenant, staff, superuser_conn):
    b = make_tenant()
    email = staff.facts.owner.email
    token = staff.token("/platform/jobs")
    before = len(audit_rows(superuser_conn, email))
    requests = [
        ("GET", "/platform/jobs", None, 200),
        ("GET", "/platform/tenants", None, 200),
        ("GET", f"/platform/tenants?q={b.subdomain}", None, 200),
        ("GET", f"/platform/tenants/{b.id}", None, 200),
        ("GET", f"/platform/tenants/{uuid.uuid4()}", None, 404),
        ("GET", "/platform/audit", None, 200),
        ("GET", "/platform/audit?changes=1", None, 200),
        ("POST", "/platform/jobs/retry", {"queue": "default", "job_id": "no-such-job", "csrf_token": token}, 302),
        ("POST", "/platform/jobs/retry", {"queue": "nope", "job_id": "x", "csrf_token": token}, 400),
        ("POST", f"/platform/tenants/{b.id}/plan", {"plan": "teams", "reason": "Ticket 9", "csrf_token": token}, 302),
        ("POST", f"/platform/tenants/{b.id}/plan", {"plan": "teams", "reason": "Ticket 9"}, 400),  # no token
    ]
    for method, path, data, status in requests:
        r = staff.request(method, path, data=data)
        assert r.status_code == status, (method, path, r.status_code)
        rows = audit_rows(superuser_conn, email)
        accesses = [x for x in rows[before:] if x["action"] == "page.access"]
        assert len(accesses) == 1, (method, path, rows[before:])
        detail = accesses[0]["detail"]
        assert detail["method"] == method and detail["path"] == path.split("?")[0] and detail["status"] == status
        assert accesses[0]["ip"] == "127.0.0.1" and accesses[0]["email"] == email
        if f"tenants/{b.id}" in path:
            assert accesses[0]["target"] == b.id
        if "?" in path:
            key, value = path.split("?")[1].split("=")
            assert detail["query"] == {key: value}
        before = len(rows)
    # The plan change itself is one more entry beside its request's.
    assert [x["action"] for x in audit_rows(superuser_conn, email)].count("tenant.plan_changed") == 1


def test_a_page_whose_access_cant_be_audited_is_not_shown(app, staff, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from app.platform import services

    def broken(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(services, "record_access", broken)
    r = staff.get("/platform/tenants")
    assert r.status_code == 503
    assert 'data-testid="tenant-results"' not in r.get_data(as_text=True)


def _platform_routes(app):
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("platform."):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", str(uuid.uuid4()))
        assert "<" not in path, rule.rule
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, path


def test_everyone_but_platform_admins_gets_404_and_nothing_is_audited(
    app, make_tenant, visitor, superuser_conn, two_tenants
):
    a, b = two_tenants
    routes = list(_platform_routes(app))
    assert {p for _, p in routes} >= {"/platform/jobs", "/platform/tenants", "/platform/audit"}
    assert any(p.startswith("/platform/tenants/") and p.endswith("/plan") for _, p in routes)
    before = superuser_conn.execute("SELECT count(*) FROM platform_audit").fetchone()[0]
    anonymous = visitor()
    token = anonymous.token("/login")
    people = [anonymous]
    for key in ("owner", "admin0", "tech0"):
        v = visitor()
        v.login(a.people[key].email, a.people[key].password)
        people.append(v)
    for v in people:
        for method, path in routes:
            for data in ({"csrf_token": token, "plan": "teams", "reason": "Ticket 1"}, {}):
                r = v.request(method, path, data=data)
                assert r.status_code == 404, (method, path, r.status_code)
        # B's id in the URL changes nothing either.
        assert v.get(f"/platform/tenants/{b.id}").status_code == 404
    assert superuser_conn.execute("SELECT count(*) FROM platform_audit").fetchone()[0] == before
    assert plan_of(app, b) == "starter"


def test_the_app_role_can_neither_read_nor_forge_the_platform_log(app, make_tenant, app_conn, staff):
    b = make_tenant()
    staff.get("/platform/tenants")  # at least one row exists
    app_conn.autocommit = True
    for sql in (
        "SELECT count(*) FROM platform_audit",
        "INSERT INTO platform_audit (actor_user_id, actor_tenant_id, actor_email, action) "
        "VALUES (gen_random_uuid(), gen_random_uuid(), 'x@y.test', 'forged')",
        "UPDATE platform_audit SET action = 'x'",
        "DELETE FROM platform_audit",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            app_conn.execute(sql)
    admin = (staff.facts.id, staff.facts.owner.id)
    nobody = (b.id, b.owner.id)  # an owner, not a platform admin
    with pytest.raises(errors.InsufficientPrivilege, match="not a platform admin"):
        app_conn.execute("SELECT public.platform_audit_write(%s, %s, 'forged', NULL, '{}', NULL)", nobody)
    assert (
        app_conn.execute(
            "SELECT count(*) FROM public.platform_audit_recent(%s, %s, NULL, false, 50)", nobody
        ).fetchone()[0]
        == 0
    )
    assert (
        app_conn.execute("SELECT count(*) FROM public.platform_find_tenants(%s, %s, '', 50)", nobody).fetchone()[0] == 0
    )
    assert (
        app_conn.execute("SELECT count(*) FROM public.platform_tenant_summary(%s, %s, %s)", (*nobody, b.id)).fetchone()[
            0
        ]
        == 0
    )
    # The admin's own ids answer; once revoked, nothing does.
    assert (
        app_conn.execute(
            "SELECT count(*) FROM public.platform_audit_recent(%s, %s, NULL, false, 50)", admin
        ).fetchone()[0]
        >= 1
    )
    assert (
        app_conn.execute("SELECT count(*) FROM public.platform_tenant_summary(%s, %s, %s)", (*admin, b.id)).fetchone()[
            0
        ]
        == 1
    )
    assert revoke(app, staff.facts.owner.email).exit_code == 0
    assert (
        app_conn.execute(
            "SELECT count(*) FROM public.platform_audit_recent(%s, %s, NULL, false, 50)", admin
        ).fetchone()[0]
        == 0
    )
    with pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute("SELECT public.platform_audit_write(%s, %s, 'late', NULL, '{}', NULL)", admin)
    assert staff.get("/platform/audit").status_code == 404


def test_platform_nav_links_the_three_pages(staff):
    page = staff.get("/platform/audit").get_data(as_text=True)
    nav = page.split('data-testid="platform-nav"')[1].split("</nav>")[0]
    assert 'href="/platform/jobs"' in nav and 'href="/platform/tenants"' in nav and 'href="/platform/audit"' in nav
    assert 'aria-current="page" data-testid="platform-nav-audit"' in nav


def test_input_postgres_cant_store_is_refused_and_still_audited(app, staff, superuser_conn):
    """A NUL byte (or a huge query) in a platform URL: a 4xx or the page, never a 5xx, and the access
    is still in the log (the log's own jsonb can't take a NUL either)."""
    email = staff.facts.owner.email
    before = len(audit_rows(superuser_conn, email))
    r = staff.get("/platform/tenants", query_string={"q": "a\x00b"})
    assert r.status_code == 422, r.status_code
    r = staff.get("/platform/jobs", query_string={"x\x00" * 300: "y" * 5000, "n": "\x00"})
    assert r.status_code in (200, 503)  # 503 only when Redis is down: the page says so
    assert r.status_code == 200 or "Redis" in r.get_data(as_text=True)
    rows = [x for x in audit_rows(superuser_conn, email)[before:] if x["action"] == "page.access"]
    assert [x["detail"]["status"] for x in rows] == [422, r.status_code]
    assert "\x00" not in str(rows[0]["detail"]) and rows[0]["detail"]["query"]["q"].startswith("a")
    assert all(len(k) <= 200 and len(v) <= 200 for k, v in rows[1]["detail"]["query"].items())


def test_a_job_retry_is_a_change_in_the_platform_log(app, staff, superuser_conn):
    email = staff.facts.owner.email
    token = staff.token("/platform/jobs")
    assert (
        staff.post("/platform/jobs/retry", {"queue": "default", "job_id": "no-such", "csrf_token": token}).status_code
        == 302
    )
    assert staff.post("/platform/jobs/retry-all", {"queue": "default", "csrf_token": token}).status_code == 302
    changes = [x for x in audit_rows(superuser_conn, email) if x["action"] != "page.access"]
    assert [x["action"] for x in changes] == ["jobs.retried", "jobs.retried_all"]
    assert changes[0]["detail"] == {"queue": "default", "job_id": "no-such", "requeued": False}
    assert changes[1]["detail"] == {"queues": ["default"], "requeued": 0}
    page = staff.get("/platform/audit", query_string={"changes": "1"}).get_data(as_text=True)
    assert page.count('data-testid="audit-row"') >= 2 and 'data-action="jobs.retried"' in page
