"""Reports against hand-computed figures (America/New_York, across the fall-back weekend of
2026-11-01 and the October/November boundary), CSV exports, tenant isolation, roles, and the
charts drawn in a real browser.

The fixture, in the business's local time (EDT until Sun 2026-11-01 02:00, EST after):

jobs (price)                                         status       tech   local week / month
J10 Sun Oct 18 23:30 EDT (Oct 19 03:30 UTC)  99.99   completed    0      outside the period
J7  Thu Oct 22 10:00                        180.00   completed    1      Oct 19 / Oct
J8  Thu Oct 22 14:00                         60.00   expired      1      never a job: left out
J1  Fri Oct 30 10:00                        180.00   completed    0      Oct 26 / Oct
J2  Sat Oct 31 23:30 EDT (Nov 1 03:30 UTC)   60.00   completed    1      Oct 26 / Oct
J3  Sun Nov 1 09:00 EST                      60.00   no_show      0      Oct 26 / Nov
J4  Sun Nov 1 22:00 EST (Nov 2 03:00 UTC)   180.00   canceled     1      Oct 26 / Nov
J5  Tue Nov 3 10:00                          75.00   completed    0      Nov 2 / Nov
J6  Wed Nov 4 10:00                          60.00   confirmed    0      Nov 2 / Nov
J9  Sun Nov 8 23:30 EST (Nov 9 04:30 UTC)    50.00   completed    0      Nov 2 / Nov

payments (paid_at)                                                       local week / month
P5  J7 card deposit 180.00           Thu Oct 22 10:00                    Oct 19 / Oct
P1  J1 card deposit  45.00           Mon Oct 26 09:00                    Oct 26 / Oct
P2  J1 card balance 135.00 +20 tip   Fri Oct 30 12:30                    Oct 26 / Oct
P3  J2 cash         60.00 +5 tip     Sat Oct 31 23:59 EDT (Nov 1 UTC)    Oct 26 / Oct
P4  J5 check        75.00            Tue Nov 3 11:00                     Nov 2 / Nov
P7  J9 card balance  50.00           Sun Nov 8 23:45 EST (Nov 9 UTC)     Nov 2 / Nov
P6  J6 card balance  50.00 failed                                        not money
P8  J10 cash        99.99            Sun Oct 18 23:30 EDT                outside the period
refunds (dated when made): R2 180.00 of P5 on Sun Nov 1 20:00 EST (Nov 2 UTC) -> Oct 26 / Nov;
R1 30.00 of P2 on Mon Nov 2 00:30 EST -> Nov 2 / Nov; R3 10.00 of P4 still pending -> not money.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from tests.test_booking import book, request, tomorrow_at

NY = ZoneInfo("America/New_York")
PERIOD = {"range": "custom", "from": "2026-10-19", "to": "2026-11-08"}


def ny(y, mo, d, h, mi=0, fold=0):
    return datetime(y, mo, d, h, mi, tzinfo=NY, fold=fold)


def _seed(app, t, f, *, jobs, payments, refunds, quotes=(), plans=()):
    """Rows straight into the tables (fixtures for reports, not booking flows): one booking made
    through the service gives the customer, vehicle and address the others share."""
    from psycopg.types.range import Range

    from app.booking.models import Booking
    from app.dispatch.models import RoutePlan
    from app.extensions import db
    from app.payments.models import Payment, Refund
    from app.quotes.models import Quote
    from tenants.context import tenant_context

    first = book(app, t, request(f, tomorrow_at(9), phone="+15125550199"))
    ids = {}
    with app.app_context(), tenant_context(t.id, db.session):
        seed = db.session.get(Booking, (t.id, first))
        db.session.delete(seed)
        db.session.flush()
        for n, (key, when, price, status, tech, extra) in enumerate(jobs):
            bid = uuid.uuid4()
            ids[key] = bid
            end = when + timedelta(hours=1)
            db.session.add(
                Booking(
                    tenant_id=t.id,
                    id=bid,
                    reference=f"R{n:04d}{key}",
                    customer_id=seed.customer_id,
                    vehicle_id=seed.vehicle_id,
                    address_id=seed.address_id,
                    technician_id=f.techs[tech],
                    status=status,
                    starts_at=when,
                    ends_at=end,
                    during=Range(when, end, "[)"),
                    price_cents=price,
                    currency="USD",
                    source="dashboard",
                    **extra,
                )
            )
        db.session.flush()
        pays = {}
        for key, job, kind, method, status, amount, tip, paid_at in payments:
            pays[key] = Payment(
                tenant_id=t.id,
                booking_id=ids[job],
                kind=kind,
                method=method,
                status=status,
                amount_cents=amount,
                tip_cents=tip,
                currency="USD",
                paid_at=paid_at,
            )
            db.session.add(pays[key])
        db.session.flush()
        for pay, amount, status, made_at in refunds:
            db.session.add(
                Refund(
                    tenant_id=t.id,
                    payment_id=pays[pay].id,
                    amount_cents=amount,
                    status=status,
                    request_key=uuid.uuid4().hex,
                    created_at=made_at,
                )
            )
            if status == "succeeded":
                pays[pay].refunded_cents += amount
        for number, version, status, sent_at, accepted_cents in quotes:
            q = Quote(
                tenant_id=t.id,
                number=number,
                version=version,
                customer_id=seed.customer_id,
                size_class="sedan",
                expires_on=date(2026, 12, 31),
                currency="USD",
                status=status,
                sent_at=sent_at,
            )
            if status == "accepted":
                q.accepted_at, q.accepted_total_cents, q.accepted_deposit_cents = sent_at, accepted_cents, 0
            if status == "declined":
                q.declined_at, q.decline_reason = sent_at, "Too dear"
            db.session.add(q)
        for day, status, approved_at, stops in plans:
            db.session.add(
                RoutePlan(
                    tenant_id=t.id,
                    day=day,
                    status=status,
                    approved_at=approved_at,
                    proposed={
                        "routes": [{"stops": [{"booking_id": str(ids[k]), "drive_s": s} for k, s in stops]}],
                        "drive_s": sum(s for _, s in stops),
                    },
                )
            )
        db.session.commit()
    return ids


@pytest.fixture
def acme(app, make_tenant, seed_booking):
    """Tenant A with the fixture above (and its technicians Tech 0 and Tech 1)."""
    t = make_tenant(techs=1, admins=1, name="Acme Reports")
    f = seed_booking(t, techs=2)
    win = {"arrival_window_min": 30}
    jobs = [
        ("J10", ny(2026, 10, 18, 23, 30), 9999, "completed", 0, {}),
        ("J7", ny(2026, 10, 22, 10), 18000, "completed", 1, {}),
        ("J8", ny(2026, 10, 22, 14), 6000, "expired", 1, {}),
        (
            "J1",
            ny(2026, 10, 30, 10),
            18000,
            "completed",
            0,
            {**win, "on_way_at": ny(2026, 10, 30, 9, 40), "started_at": ny(2026, 10, 30, 10, 20)},
        ),
        ("J2", ny(2026, 10, 31, 23, 30), 6000, "completed", 1, {"started_at": ny(2026, 10, 31, 23, 35)}),
        ("J3", ny(2026, 11, 1, 9), 6000, "no_show", 0, {}),
        ("J4", ny(2026, 11, 1, 22), 18000, "canceled", 1, {}),
        (
            "J5",
            ny(2026, 11, 3, 10),
            7500,
            "completed",
            0,
            {**win, "on_way_at": ny(2026, 11, 3, 9, 30), "started_at": ny(2026, 11, 3, 10, 40)},
        ),
        ("J6", ny(2026, 11, 4, 10), 6000, "confirmed", 0, {}),
        (
            "J9",
            ny(2026, 11, 8, 23, 30),
            5000,
            "completed",
            0,
            {"on_way_at": ny(2026, 11, 8, 23, 20), "started_at": ny(2026, 11, 8, 23, 50)},
        ),
    ]
    payments = [
        ("P5", "J7", "deposit", "card", "succeeded", 18000, 0, ny(2026, 10, 22, 10)),
        ("P1", "J1", "deposit", "card", "succeeded", 4500, 0, ny(2026, 10, 26, 9)),
        ("P2", "J1", "balance", "card", "succeeded", 13500, 2000, ny(2026, 10, 30, 12, 30)),
        ("P3", "J2", "balance", "cash", "succeeded", 6000, 500, ny(2026, 10, 31, 23, 59)),
        ("P4", "J5", "balance", "check", "succeeded", 7500, 0, ny(2026, 11, 3, 11)),
        ("P7", "J9", "balance", "card", "succeeded", 5000, 0, ny(2026, 11, 8, 23, 45)),
        ("P6", "J6", "balance", "card", "failed", 5000, 0, None),
        ("P8", "J10", "balance", "cash", "succeeded", 9999, 0, ny(2026, 10, 18, 23, 30)),
    ]
    refunds = [
        ("P5", 18000, "succeeded", ny(2026, 11, 1, 20)),
        ("P2", 3000, "succeeded", ny(2026, 11, 2, 0, 30)),
        ("P4", 1000, "pending", ny(2026, 11, 3, 12)),
    ]
    quotes = [
        (1, 1, "accepted", ny(2026, 10, 28, 10), 30000),
        (2, 1, "declined", ny(2026, 10, 29, 10), None),
        (3, 1, "sent", ny(2026, 11, 3, 10), None),
        (4, 1, "draft", None, None),
        (5, 1, "superseded", ny(2026, 10, 20, 10), None),
        (5, 2, "accepted", ny(2026, 11, 4, 10), 20000),
    ]
    plans = [
        # An earlier approval of the same day is history: the latest approved plan counts.
        (date(2026, 10, 30), "stale", ny(2026, 10, 29, 17), [("J1", 9999)]),
        (date(2026, 10, 30), "approved", ny(2026, 10, 29, 18), [("J1", 1800)]),
        (date(2026, 11, 3), "ready", None, [("J5", 1)]),
        (date(2026, 11, 3), "approved", ny(2026, 11, 2, 18), [("J5", 3000)]),
    ]
    ids = _seed(app, t, f, jobs=jobs, payments=payments, refunds=refunds, quotes=quotes, plans=plans)
    return SimpleNamespace(t=t, f=f, ids=ids)


@pytest.fixture
def bravo(app, make_tenant, seed_booking):
    """Tenant B with unmistakable figures in the same weeks (777.77, technician 'Tech 0' too)."""
    t = make_tenant(techs=1, name="Bravo Reports")
    f = seed_booking(t, techs=1)
    jobs = [("K1", ny(2026, 10, 28, 10), 77777, "completed", 0, {"started_at": ny(2026, 10, 28, 11)})]
    payments = [("Q1", "K1", "balance", "cash", "succeeded", 77777, 0, ny(2026, 10, 28, 12))]
    quotes = [(1, 1, "accepted", ny(2026, 10, 28, 10), 77777)]
    _seed(
        app, t, f, jobs=jobs, payments=payments, refunds=[("Q1", 7777, "succeeded", ny(2026, 10, 29, 9))], quotes=quotes
    )
    return SimpleNamespace(t=t, f=f)


def _period(t, first, last, grain):
    from app.reports.queries import Period

    return Period(tenant_id=t.id, first=first, last=last, grain=grain, tz="America/New_York")


def _run(app, t, name, grain, first=date(2026, 10, 19), last=date(2026, 11, 8)):
    from app.extensions import db
    from app.reports import services as reports
    from tenants.context import tenant_context

    with app.app_context(), tenant_context(t.id, db.session):
        rows = reports.run(name, _period(t, first, last, grain))
        db.session.rollback()
        return rows


def _pick(rows, keys):
    return [{k: r[k] for k in keys} for r in rows]


# --- figures against the hand-computed fixture ----------------------------------------------


def test_revenue_by_local_week_refunds_dated_when_made(app, acme):
    rows = _run(app, acme.t, "revenue", "week")
    keys = ("bucket", "deposits_cents", "balances_cents", "cash_cents", "tips_cents", "refunds_cents", "net_cents")
    assert _pick(rows, keys) == [
        dict(zip(keys, (date(2026, 10, 19), 18000, 0, 0, 0, 0, 18000), strict=True)),
        dict(zip(keys, (date(2026, 10, 26), 4500, 13500, 6000, 2500, 18000, 8500), strict=True)),
        dict(zip(keys, (date(2026, 11, 2), 0, 5000, 7500, 0, 3000, 9500), strict=True)),
    ]
    assert [(r["payments"], r["refunds"]) for r in rows] == [(1, 0), (3, 1), (2, 1)]


def test_revenue_by_local_month_can_go_negative(app, acme):
    rows = _run(app, acme.t, "revenue", "month")
    keys = ("bucket", "deposits_cents", "balances_cents", "cash_cents", "tips_cents", "refunds_cents", "net_cents")
    assert _pick(rows, keys) == [
        dict(zip(keys, (date(2026, 10, 1), 22500, 13500, 6000, 2500, 0, 44500), strict=True)),
        dict(zip(keys, (date(2026, 11, 1), 0, 5000, 7500, 0, 21000, -8500), strict=True)),
    ]


def test_jobs_by_week_with_rates_and_average_ticket(app, acme):
    rows = _run(app, acme.t, "jobs", "week")
    keys = ("bucket", "booked", "completed", "open", "canceled", "no_show", "completed_cents", "average_ticket_cents")
    assert _pick(rows, keys) == [
        dict(zip(keys, (date(2026, 10, 19), 1, 1, 0, 0, 0, 18000, 18000), strict=True)),
        dict(zip(keys, (date(2026, 10, 26), 4, 2, 0, 1, 1, 24000, 12000), strict=True)),
        dict(zip(keys, (date(2026, 11, 2), 3, 2, 1, 0, 0, 12500, 6250), strict=True)),
    ]
    assert [(r["cancel_rate"], r["no_show_rate"]) for r in rows] == [
        (Decimal("0.0"), Decimal("0.0")),
        (Decimal("25.0"), Decimal("25.0")),
        (Decimal("0.0"), Decimal("0.0")),
    ]
    from app.reports.services import totals

    total = totals("jobs", rows)
    assert (total["booked"], total["completed"], total["canceled"], total["no_show"]) == (8, 5, 1, 1)
    assert (total["cancel_rate"], total["no_show_rate"]) == (Decimal("12.5"), Decimal("12.5"))
    assert (total["completed_cents"], total["average_ticket_cents"]) == (54500, 10900)


def test_jobs_by_month(app, acme):
    rows = _run(app, acme.t, "jobs", "month")
    assert [(r["bucket"], r["booked"], r["completed"], r["canceled"], r["no_show"], r["open"]) for r in rows] == [
        (date(2026, 10, 1), 3, 3, 0, 0, 0),
        (date(2026, 11, 1), 5, 2, 1, 1, 1),
    ]
    assert [(r["cancel_rate"], r["average_ticket_cents"]) for r in rows] == [
        (Decimal("0.0"), 14000),
        (Decimal("20.0"), 6250),
    ]


def test_jobs_by_technician(app, acme):
    rows = _run(app, acme.t, "technicians", "week")
    keys = ("technician", "booked", "completed", "open", "canceled", "no_show", "completed_cents")
    assert _pick(rows, keys) == [
        dict(zip(keys, ("Tech 0", 5, 3, 1, 0, 1, 30500), strict=True)),
        dict(zip(keys, ("Tech 1", 3, 2, 0, 1, 0, 24000), strict=True)),
    ]
    assert [(r["average_ticket_cents"], r["cancel_rate"], r["no_show_rate"]) for r in rows] == [
        (10167, Decimal("0.0"), Decimal("20.0")),
        (12000, Decimal("33.3"), Decimal("0.0")),
    ]


def test_quote_conversion_counts_each_quote_once(app, acme):
    rows = _run(app, acme.t, "quotes", "week")
    assert [(r["bucket"], r["sent"], r["accepted"], r["declined"], r["open"], r["accepted_cents"]) for r in rows] == [
        (date(2026, 10, 19), 0, 0, 0, 0, 0),
        (date(2026, 10, 26), 2, 1, 1, 0, 30000),
        (date(2026, 11, 2), 2, 1, 0, 1, 20000),
    ]
    assert [r["conversion_rate"] for r in rows] == [None, Decimal("50.0"), Decimal("50.0")]


def test_route_metrics_on_time_and_drive_times(app, acme):
    rows = _run(app, acme.t, "routes", "week")
    keys = ("bucket", "arrivals", "on_time", "on_time_rate", "drives", "planned_drive_min", "actual_drive_min")
    assert _pick(rows, keys) == [
        dict(zip(keys, (date(2026, 10, 19), 0, 0, None, 0, 0, 0), strict=True)),
        dict(zip(keys, (date(2026, 10, 26), 2, 2, Decimal("100.0"), 1, 30, 40), strict=True)),
        dict(zip(keys, (date(2026, 11, 2), 2, 0, Decimal("0.0"), 1, 50, 70), strict=True)),
    ]


def test_a_partial_first_week_and_empty_weeks_are_listed(app, acme):
    """The period Wed Oct 28 - Sat Nov 14: the first bucket is that Monday's week (only its days
    from Wednesday count), and a week with nothing shows as zeros."""
    rows = _run(app, acme.t, "jobs", "week", first=date(2026, 10, 28), last=date(2026, 11, 14))
    assert [(r["bucket"], r["booked"]) for r in rows] == [
        (date(2026, 10, 26), 4),
        (date(2026, 11, 2), 3),
        (date(2026, 11, 9), 0),
    ]


# --- the page and the CSVs --------------------------------------------------------------------


def _owner(visitor, t):
    v = visitor("app.localhost")
    v.login(t.owner.email, t.owner.password)
    return v


def _csv(v, name, params):
    r = v.get(f"/reports/{name}.csv", query_string=params)
    assert r.status_code == 200, r.status_code
    assert r.mimetype == "text/csv" and "attachment" in r.headers["Content-Disposition"]
    assert r.headers["Cache-Control"] == "no-store"
    text = r.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_revenue_and_jobs_csv(app, acme, visitor):
    v = _owner(visitor, acme.t)
    rows = _csv(v, "revenue", PERIOD)
    assert rows[0] == [
        "Week starting",
        "Deposits (USD)",
        "Card balances (USD)",
        "Cash & checks (USD)",
        "Tips (USD)",
        "Refunds (USD)",
        "Net (USD)",
        "Payments",
        "Refund count",
    ]
    assert rows[1:] == [
        ["2026-10-19", "180.00", "0.00", "0.00", "0.00", "0.00", "180.00", "1", "0"],
        ["2026-10-26", "45.00", "135.00", "60.00", "25.00", "180.00", "85.00", "3", "1"],
        ["2026-11-02", "0.00", "50.00", "75.00", "0.00", "30.00", "95.00", "2", "1"],
        ["Total", "225.00", "185.00", "135.00", "25.00", "210.00", "360.00", "6", "2"],
    ]
    monthly = _csv(v, "revenue", {**PERIOD, "group": "month"})
    assert monthly[0][0] == "Month starting"
    assert monthly[2][6] == "-85.00"
    jobs = _csv(v, "jobs", PERIOD)
    assert jobs[-1] == ["Total", "8", "5", "1", "1", "1", "12.5", "12.5", "545.00", "109.00"]
    techs = _csv(v, "technicians", PERIOD)
    assert [r[0] for r in techs[1:]] == ["Tech 0", "Tech 1", "Total"]
    assert techs[1][-1] == "101.67"  # 305.00 over 3 completed jobs, to the cent
    quotes = _csv(v, "quotes", PERIOD)
    assert quotes[-1] == ["Total", "4", "2", "1", "0", "1", "50.0", "500.00"]
    routes = _csv(v, "routes", PERIOD)
    assert routes[-1] == ["Total", "4", "2", "50.0", "2", "80", "110"]


def test_csv_technician_names_cannot_run_as_formulas(app, make_tenant, seed_booking, visitor):
    from app.booking.models import Technician
    from app.extensions import db
    from tenants.context import tenant_context

    t = make_tenant()
    f = seed_booking(t, techs=1)
    with app.app_context(), tenant_context(t.id, db.session):
        db.session.get(Technician, (t.id, f.techs[0])).name = "=HYPERLINK(1)"
        db.session.commit()
    rows = _csv(_owner(visitor, t), "technicians", {})
    assert rows[1][0] == "'=HYPERLINK(1)"


def test_reports_page_shows_the_figures(app, acme, visitor):
    v = _owner(visitor, acme.t)
    r = v.get("/reports", query_string=PERIOD)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    for name in ("revenue", "jobs", "technicians", "quotes", "routes"):
        assert f'data-testid="chart-{name}"' in html
        assert f'data-testid="table-{name}"' in html
        assert f'href="/reports/{name}.csv?' in html
    assert re.search(r'data-testid="sum-net">\$360<', html)
    assert re.search(r'data-testid="sum-ticket">\$109<', html)
    assert re.search(r'data-testid="sum-cancel">12.5 %<', html)
    assert re.search(r'data-testid="sum-conversion">50.0 %<', html)
    assert re.search(r'data-testid="sum-on-time">50.0 %<', html)
    assert "Wk of Oct 26" in html and "Oct 19, 2026 – Nov 8, 2026, by week" in html
    # Chart data rides in a data attribute (CSP: no inline script), escaped for the attribute.
    assert "<script>" not in html and "data-chart='{" in html
    assert "nav-reports" in html


def test_period_picker_defaults_and_bad_input(app, acme, visitor):
    from app.reports.services import parse_period

    today = date(2026, 11, 23)  # a Monday
    p, key, errors = parse_period(acme.t.id, "America/New_York", today, {})
    assert (key, p.first, p.last, p.grain, errors) == ("12w", date(2026, 9, 7), today, "week", {})
    p, key, _ = parse_period(acme.t.id, "America/New_York", today, {"range": "12m"})
    assert (p.first, p.grain) == (date(2025, 12, 1), "month")
    p, key, _ = parse_period(acme.t.id, "America/New_York", today, {"range": "30d", "group": "month"})
    assert (p.first, p.grain) == (date(2026, 10, 25), "month")
    p, key, _ = parse_period(
        acme.t.id, "America/New_York", today, {"range": "custom", "from": "2026-11-08", "to": "2026-10-19"}
    )
    assert (p.first, p.last, p.grain) == (date(2026, 10, 19), date(2026, 11, 8), "week")
    p, key, errors = parse_period(acme.t.id, "America/New_York", today, {"range": "custom", "from": "nope"})
    assert key == "12w" and "from" in errors
    p, key, errors = parse_period(
        acme.t.id, "America/New_York", today, {"range": "custom", "from": "2001-01-01", "to": "2026-01-01"}
    )
    assert (p.last - p.first).days < 3 * 366 + 1 and "to" in errors
    v = _owner(visitor, acme.t)
    for query in (
        {"range": "bogus", "group": "decade"},
        {"range": "custom", "from": "2026-02-30", "to": "x"},
        {"range": "custom", "from": "9999-01-01", "to": "0001-01-01"},
        {"from": "'; DROP TABLE bookings; --"},
    ):
        r = v.get("/reports", query_string=query)
        assert r.status_code == 200, query
        assert v.get("/reports/jobs.csv", query_string=query).status_code == 200
    assert v.get("/reports/nope.csv").status_code == 404


def test_empty_states(make_tenant, visitor):
    t = make_tenant()
    r = _owner(visitor, t).get("/reports")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    for name in ("revenue", "jobs", "quotes", "routes"):
        assert f'data-testid="empty-{name}"' in html
        assert f'data-testid="chart-{name}"' not in html
    assert "Nothing in this period yet" in html


# --- isolation and roles ----------------------------------------------------------------------


def test_another_tenants_data_never_shows(app, acme, bravo, visitor):
    v = _owner(visitor, acme.t)
    b = bravo.t
    crafted = [
        PERIOD,
        {**PERIOD, "tenant": str(b.id), "tenant_id": str(b.id)},
        {**PERIOD, "tenant_id": str(b.id), "technician_id": str(bravo.f.techs[0]), "subdomain": b.subdomain},
    ]
    for params in crafted:
        html = v.get("/reports", query_string=params, headers={"X-Tenant-ID": str(b.id)}).get_data(as_text=True)
        assert "777.77" not in html and "$777" not in html and "77777" not in html and "Bravo" not in html
        assert re.search(r'data-testid="sum-net">\$360<', html)
        for name in ("revenue", "jobs", "technicians", "quotes", "routes"):
            body = v.get(f"/reports/{name}.csv", query_string=params).get_data(as_text=True)
            assert "777.77" not in body and "77.77" not in body
    # And B sees only B.
    vb = _owner(visitor, b)
    assert _csv(vb, "revenue", PERIOD)[-1][3] == "777.77"
    assert _csv(vb, "technicians", PERIOD)[1][:3] == ["Tech 0", "1", "1"]
    # Without a tenant the same SQL sees nothing at all (RLS fails closed).
    from app.extensions import db
    from app.reports import queries
    from tenants.context import activate

    with app.app_context():
        activate(None)
        rows = queries.revenue(_period(acme.t, date(2026, 10, 19), date(2026, 11, 8), "week"))
        db.session.rollback()
    assert sum(r["payments"] for r in rows) == 0


def test_technicians_are_refused_and_admins_allowed(acme, visitor):
    tech = visitor("app.localhost")
    tech.login(acme.t.people["tech0"].email, acme.t.people["tech0"].password)
    assert tech.get("/reports").status_code == 403
    for name in ("revenue", "jobs", "technicians", "quotes", "routes"):
        assert tech.get(f"/reports/{name}.csv").status_code == 403
    assert "nav-reports" not in tech.get("/").get_data(as_text=True)
    admin = visitor("app.localhost")
    admin.login(acme.t.people["admin0"].email, acme.t.people["admin0"].password)
    assert admin.get("/reports", query_string=PERIOD).status_code == 200
    anon = visitor("app.localhost")
    r = anon.get("/reports/revenue.csv")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


# --- in a browser ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_charts_render_without_csp_or_console_errors(app, acme, new_context, live_server):
    from playwright.sync_api import expect

    from tests.pages import PHONE, screenshot

    for viewport, shot in ((None, "reports-laptop"), ({"width": 375, "height": 812}, "reports-375")):
        page = new_context(viewport).new_page()
        problems = []
        page.on("console", lambda m, out=problems: out.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e, out=problems: out.append(str(e)))
        page.goto(live_server.url("app.localhost", "/login"))
        page.get_by_test_id("field-email").fill(acme.t.owner.email)
        page.get_by_test_id("field-password").fill(acme.t.owner.password)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(re.compile(r"/$|/\?"))
        query = "&".join(f"{k}={val}" for k, val in PERIOD.items())
        page.goto(live_server.url("app.localhost", f"/reports?{query}"))
        for name in ("revenue", "jobs", "technicians", "quotes", "routes"):
            canvas = page.get_by_test_id(f"chart-{name}")
            expect(canvas).to_have_attribute("data-drawn", "1")
            box = canvas.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 150, (name, box)
        # Something was drawn: the canvas is not blank.
        painted = page.evaluate(
            """() => { const c = document.querySelector('[data-testid=chart-revenue]');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        )
        assert painted > 1000
        expect(page.get_by_test_id("sum-net")).to_have_text("$360")
        screenshot(page, shot)
        if viewport:
            assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
        assert problems == [], problems
    assert PHONE  # the project's phone size is 390 px; 375 px is narrower still
