#!/usr/bin/env python
"""How fast are the reports for a business with a year of data, among many businesses? (issue 10)

Starts a throwaway PostgreSQL cluster (scripts/lib/services.py), creates the roles with
scripts/db_roles.sql and runs the project's migrations as the owner role. The measured business
is provisioned through the real service (``provision_tenant``, America/New_York); its year of data
and 1,000 filler businesses are then bulk-loaded as ``fieldday_owner`` with INSERT ... SELECT
generate_series, one transaction per business and phase, each under ``set_config('app.tenant_id',
..., true)``: the tables FORCE row-level security, so the owner role passes the same policy checks
as the app. Rows are loaded in time order in phases (a quarter of every business's year after
another), so a business's rows are spread over the heap among the others', as they would be.

The measured business: 10 technicians, 2,000 customers, 20,000 bookings over the last ~358 days
and the next week (55 a day; completed, canceled, no-show, expired, upcoming), card deposits on
half of them, card/cash/check balances with tips on completed jobs, refunds (canceled deposits
and some partial ones), 2,000 quotes and an approved route plan per day. Each filler: 2
technicians, 5 customers, 20 bookings over the year with their payments and 2 quotes.

Timed, as fieldday_app under RLS: ``app.reports.services.run(name, period)`` as the /reports view
calls it, inside ``app.app_context()`` and ``tenant_context`` (the tenant row loaded first, as the
tenancy layer does), each call in a fresh transaction: the revenue and jobs reports for the last
12 months by month and by week; also the technicians report and the whole page (all five reports
in one transaction) for reference. Per round every shape runs ``--runs`` times in a shuffled
order; figures are the median over rounds of each round's p50/p95.

Run from the repository root:
    .venv/bin/python scripts/bench/reports.py                    # 1,000 fillers, 3 rounds x 40 runs; ~2.5 min
    .venv/bin/python scripts/bench/reports.py --tenants 20 --bookings 2000 --runs 10   # smoke test
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres  # noqa: E402

PASSWORD = "correct-horse-battery"
ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles")
GOAL_MS = 200


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def plain_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive method, like numpy's default 'linear')."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def make_app(pg: Postgres):
    from app import create_app
    from app.config import TestConfig

    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app"),
            "DATABASE_OWNER_URL": pg.url("fieldday_owner"),
            # Nothing measured here touches Redis; an unused port makes that visible if it changes.
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "RATELIMIT_STORAGE_URI": "memory://",
        },
    )
    logging.getLogger().setLevel(logging.WARNING)
    return app


# --------------------------------------------------------------------------- loading, as the owner role

SETUP = [
    "INSERT INTO tenants (id, subdomain, name, time_zone, currency, plan) "
    "SELECT %(tid)s, %(sub)s, %(name)s, %(tz)s, 'USD', 'pro' WHERE %(filler)s",
    "INSERT INTO technicians (tenant_id, id, name, position) "
    "SELECT %(tid)s, md5(%(tid)s::text || ':t:' || k)::uuid, 'Tech ' || (k + 1), k "
    "FROM generate_series(0, %(t)s - 1) k",
    "INSERT INTO customers (tenant_id, id, name, phone) "
    "SELECT %(tid)s, md5(%(tid)s::text || ':c:' || k)::uuid, 'Customer ' || k, '+1512555' || lpad(k::text, 4, '0') "
    "FROM generate_series(0, %(c)s - 1) k",
    "INSERT INTO vehicles (tenant_id, id, customer_id, make, model, size_class) "
    "SELECT %(tid)s, md5(%(tid)s::text || ':v:' || k)::uuid, md5(%(tid)s::text || ':c:' || k)::uuid, "
    "'Toyota', 'Camry', 'sedan' FROM generate_series(0, %(c)s - 1) k",
    "INSERT INTO customer_addresses (tenant_id, id, customer_id, line1, city, region, lat, lng) "
    "SELECT %(tid)s, md5(%(tid)s::text || ':a:' || k)::uuid, md5(%(tid)s::text || ':c:' || k)::uuid, "
    "(100 + k) || ' Congress Ave', 'Austin', 'TX', 30.269, -97.7428 FROM generate_series(0, %(c)s - 1) k",
]

# Booking j: day ((j / jpd) * 365 / ndays) of the year from %(first)s, local slot (j mod jpd) / t
# (08:00, 09:30, ... 15:30; 80 minutes) with technician (j mod jpd) mod t: never overlapping.
# h is a stable pseudo-random 0-99 per booking for its fate.
BOOKINGS = """
INSERT INTO bookings (tenant_id, id, reference, customer_id, vehicle_id, address_id, technician_id, status,
                      starts_at, ends_at, during, arrival_window_min, price_cents, currency, source,
                      on_way_at, started_at, finished_at, created_at)
SELECT %(tid)s, md5(%(tid)s::text || ':b:' || j)::uuid, 'B' || lpad(j::text, 6, '0'),
       md5(%(tid)s::text || ':c:' || mod(j * 31, %(c)s))::uuid,
       md5(%(tid)s::text || ':v:' || mod(j * 31, %(c)s))::uuid,
       md5(%(tid)s::text || ':a:' || mod(j * 31, %(c)s))::uuid,
       md5(%(tid)s::text || ':t:' || tech)::uuid,
       status, s, s + interval '80 minutes', tstzrange(s, s + interval '80 minutes', '[)'), 30,
       6000 + 1500 * mod(j, 9), 'USD', 'dashboard',
       CASE WHEN status = 'completed' THEN s - (15 + mod(j, 20)) * interval '1 minute' END,
       CASE WHEN status = 'completed' THEN s + (mod(j * 13, 40) - 10) * interval '1 minute' END,
       CASE WHEN status = 'completed' THEN s + (mod(j * 13, 40) + 65) * interval '1 minute' END,
       s - interval '5 days'
FROM (
    SELECT j, tech, s,
           CASE WHEN s >= %(now)s THEN CASE WHEN h < 95 THEN 'confirmed' ELSE 'canceled' END
                WHEN h < 80 THEN 'completed' WHEN h < 88 THEN 'canceled' WHEN h < 92 THEN 'no_show'
                ELSE 'expired' END AS status
    FROM (
        SELECT j, mod(j * 7919, 100) AS h, mod(mod(j, %(jpd)s), %(t)s) AS tech,
               ((%(first)s::date + ((j / %(jpd)s) * 365) / %(ndays)s)
                + make_interval(mins => 480 + 90 * (mod(j, %(jpd)s) / %(t)s))) AT TIME ZONE %(tz)s AS s
        FROM generate_series(%(j0)s, %(j1)s - 1) AS j
    ) x
) y
ORDER BY s
"""

# Deposits on every other booking (not expired ones); balances on completed jobs by card, cash or
# check with tips; canceled deposits refunded in full, one completed balance in 37 partly.
PAYMENTS = """
INSERT INTO payments (tenant_id, id, booking_id, kind, method, status, amount_cents, tip_cents, refunded_cents,
                      currency, paid_at, created_at)
SELECT %(tid)s, md5(%(tid)s::text || ':pd:' || j)::uuid, b.id, 'deposit', 'card', 'succeeded', b.price_cents / 4, 0,
       CASE WHEN b.status = 'canceled' THEN b.price_cents / 4 ELSE 0 END, 'USD',
       least(b.starts_at - interval '3 days', %(now)s), least(b.starts_at - interval '3 days', %(now)s)
FROM bookings b, LATERAL (SELECT substr(b.reference, 2)::int AS j) r
WHERE b.tenant_id = %(tid)s AND b.reference >= %(ref0)s AND b.reference < %(ref1)s
  AND b.status <> 'expired' AND mod(j, 2) = 0
UNION ALL
SELECT %(tid)s, md5(%(tid)s::text || ':pb:' || j)::uuid, b.id, 'balance',
       CASE WHEN mod(j, 10) < 7 THEN 'card' WHEN mod(j, 10) < 9 THEN 'cash' ELSE 'check' END, 'succeeded',
       b.price_cents - CASE WHEN mod(j, 2) = 0 THEN b.price_cents / 4 ELSE 0 END, mod(j, 4) * 500,
       CASE WHEN mod(j, 37) = 0 THEN 1000 ELSE 0 END, 'USD',
       b.starts_at + interval '90 minutes', b.starts_at + interval '90 minutes'
FROM bookings b, LATERAL (SELECT substr(b.reference, 2)::int AS j) r
WHERE b.tenant_id = %(tid)s AND b.reference >= %(ref0)s AND b.reference < %(ref1)s AND b.status = 'completed'
ORDER BY 11
"""

REFUNDS = """
INSERT INTO refunds (tenant_id, payment_id, amount_cents, status, request_key, created_at)
SELECT p.tenant_id, p.id, p.refunded_cents, 'succeeded', 'bench:' || p.id,
       CASE WHEN p.kind = 'deposit' THEN least(b.starts_at - interval '1 day', %(now)s)
            ELSE p.paid_at + interval '2 days' END
FROM payments p
JOIN bookings b ON b.tenant_id = p.tenant_id AND b.id = p.booking_id
WHERE p.tenant_id = %(tid)s AND p.refunded_cents > 0 AND b.reference >= %(ref0)s AND b.reference < %(ref1)s
ORDER BY 6
"""

QUOTES = """
INSERT INTO quotes (tenant_id, number, customer_id, size_class, status, expires_on, currency, sent_at,
                    accepted_at, accepted_total_cents, accepted_deposit_cents, declined_at, decline_reason,
                    created_at)
SELECT %(tid)s, q + 1, md5(%(tid)s::text || ':c:' || mod(q * 7, %(c)s))::uuid, 'sedan', status,
       CAST(sent AS date) + 30, 'USD', sent,
       CASE WHEN status = 'accepted' THEN sent + interval '1 day' END,
       CASE WHEN status = 'accepted' THEN 20000 + 500 * mod(q, 20) END,
       CASE WHEN status = 'accepted' THEN 0 END,
       CASE WHEN status = 'declined' THEN sent + interval '2 days' END,
       CASE WHEN status = 'declined' THEN 'Price' END,
       sent
FROM (
    SELECT q, sent,
           CASE WHEN h < 40 THEN 'accepted' WHEN h < 60 THEN 'declined'
                WHEN h < 80 AND sent < %(now)s - interval '30 days' THEN 'expired' ELSE 'sent' END AS status
    FROM (
        SELECT q, mod(q * 7919, 100) AS h,
               (%(first)s::date + (q * 358) / %(nq)s + time '10:00') AT TIME ZONE %(tz)s AS sent
        FROM generate_series(%(q0)s, %(q1)s - 1) AS q
    ) x
) y
ORDER BY sent
"""

# One approved plan per day: each technician's completed stops with a planned drive.
PLANS = """
INSERT INTO route_plans (tenant_id, day, status, requested_at, finished_at, approved_at, proposed)
SELECT %(tid)s, day, 'approved', approved, approved, approved,
       jsonb_build_object('routes', jsonb_agg(route), 'drive_s', sum(drive_s))
FROM (
    SELECT CAST(b.starts_at AT TIME ZONE %(tz)s AS date) AS day,
           (CAST(b.starts_at AT TIME ZONE %(tz)s AS date) - 1 + time '18:00') AT TIME ZONE %(tz)s AS approved,
           jsonb_build_object('technician_id', b.technician_id,
                              'stops', jsonb_agg(jsonb_build_object(
                                  'booking_id', b.id, 'drive_s', 600 + mod(abs(hashtext(b.id::text)), 1200))
                                  ORDER BY b.starts_at)) AS route,
           sum(600 + mod(abs(hashtext(b.id::text)), 1200)) AS drive_s
    FROM bookings b
    WHERE b.tenant_id = %(tid)s AND b.reference >= %(ref0)s AND b.reference < %(ref1)s AND b.status = 'completed'
    GROUP BY 1, 2, b.technician_id
) r
GROUP BY day, approved
ORDER BY day
"""


class Business:
    def __init__(
        self,
        tid: uuid.UUID,
        tz: str,
        bookings: int,
        techs: int,
        customers: int,
        quotes: int,
        *,
        filler: bool,
        index: int = 0,
        plans: bool = False,
    ):
        self.tid, self.tz, self.b, self.t, self.c, self.nq = tid, tz, bookings, techs, customers, quotes
        self.filler, self.index, self.plans = filler, index, plans
        self.jpd = -(-bookings // 365)  # jobs per day
        if self.jpd > 6 * techs:
            raise ValueError("too many bookings a day for the technicians")
        self.ndays = -(-bookings // self.jpd)

    def params(self, now: datetime, first: date) -> dict:
        return {
            "tid": self.tid,
            "tz": self.tz,
            "t": self.t,
            "c": self.c,
            "jpd": self.jpd,
            "ndays": self.ndays,
            "now": now,
            "first": first,
            "nq": max(1, self.nq),
            "filler": self.filler,
            "sub": f"filler-{self.index}",
            "name": f"Filler Detailing {self.index}",
        }


def _tx(conn: psycopg.Connection, tid: uuid.UUID, statements: list[tuple[str, dict]]) -> None:
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
        for stmt, params in statements:
            conn.execute(stmt, params)


def load(conn: psycopg.Connection, businesses: list[Business], phases: int, now: datetime, first: date) -> None:
    for biz in businesses:
        p = biz.params(now, first)
        _tx(conn, biz.tid, [(s, p) for s in SETUP])
    for phase in range(phases):
        t0 = time.monotonic()
        for biz in businesses:
            p = biz.params(now, first)
            j0, j1 = biz.b * phase // phases, biz.b * (phase + 1) // phases
            q0, q1 = biz.nq * phase // phases, biz.nq * (phase + 1) // phases
            p.update(j0=j0, j1=j1, q0=q0, q1=q1, ref0=f"B{j0:06d}", ref1=f"B{j1:06d}")
            statements = [(BOOKINGS, p), (PAYMENTS, p), (REFUNDS, p)]
            if q1 > q0:
                statements.append((QUOTES, p))
            if biz.plans:
                statements.append((PLANS, p))
            _tx(conn, biz.tid, statements)
        log(f"phase {phase + 1}/{phases} loaded for {len(businesses):,} businesses in {time.monotonic() - t0:.1f}s")


def counts(su: psycopg.Connection, tid: uuid.UUID) -> str:
    row = su.execute(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM bookings), "
        "(SELECT count(*) FROM bookings WHERE tenant_id = %(t)s), (SELECT count(*) FROM payments), "
        "(SELECT count(*) FROM payments WHERE tenant_id = %(t)s), "
        "(SELECT count(*) FROM refunds WHERE tenant_id = %(t)s), "
        "(SELECT count(*) FROM quotes WHERE tenant_id = %(t)s), "
        "(SELECT count(*) FROM route_plans WHERE tenant_id = %(t)s), "
        "pg_size_pretty(pg_total_relation_size('bookings')), pg_size_pretty(pg_total_relation_size('payments'))",
        {"t": tid},
    ).fetchone()
    return (
        f"{row[0]:,} businesses, {row[1]:,} bookings ({row[2]:,} the measured one's), {row[3]:,} payments "
        f"({row[4]:,}), its {row[5]:,} refunds, {row[6]:,} quotes, {row[7]:,} route plans; "
        f"bookings table+indexes {row[8]}, payments {row[9]}"
    )


# --------------------------------------------------------------------------- timing


def timed(app, tid: uuid.UUID, names: tuple[str, ...], period) -> float:
    """One request's worth: fresh app context and transaction, tenant row first, then the reports."""
    from app.extensions import db
    from app.reports import services as reports
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(tid, db.session):
        db.session.get(Tenant, tid)
        t0 = time.perf_counter_ns()
        for name in names:
            reports.run(name, period)
        elapsed = time.perf_counter_ns() - t0
        db.session.rollback()
    return elapsed / 1e6


def explain(app, tid: uuid.UUID, name: str, period) -> str:
    from sqlalchemy import text

    from app.extensions import db
    from app.reports import queries
    from tenants.context import tenant_context

    sql = {
        "revenue": queries.REVENUE_SQL,
        "jobs": queries.JOBS_SQL,
        "technicians": queries.TECHNICIANS_SQL,
        "quotes": queries.QUOTES_SQL,
        "routes": queries.ROUTES_SQL,
    }[name]
    params = {**period.params(), "grace_min": queries.ON_TIME_GRACE_MIN}
    with app.app_context(), tenant_context(tid, db.session):
        db.session.execute(queries.NO_JIT)  # as the app runs them
        rows = db.session.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql), params).all()
        db.session.rollback()
    return "\n".join(r[0] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tenants", type=int, default=1000, help="filler businesses (default 1000)")
    ap.add_argument("--bookings", type=int, default=20000, help="the measured business's bookings (default 20000)")
    ap.add_argument("--techs", type=int, default=10, help="its technicians (default 10)")
    ap.add_argument("--customers", type=int, default=2000, help="its customers (default 2000)")
    ap.add_argument("--filler-bookings", type=int, default=20, help="bookings per filler (default 20)")
    ap.add_argument("--phases", type=int, default=4, help="loading phases, in time order (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    ap.add_argument("--runs", type=int, default=40, help="calls per shape per round (default 40, at least 30)")
    ap.add_argument("--warmup", type=int, default=5, help="unmeasured calls per shape (default 5)")
    ap.add_argument("--explain", nargs="*", default=["revenue", "jobs"], help="reports to EXPLAIN (revenue jobs)")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()
    os.chdir(ROOT)

    base = Path(tempfile.mkdtemp(prefix="fieldday-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg = Postgres(base / "pg")
    app = None
    try:
        log(f"starting PostgreSQL on 127.0.0.1:{pg.port} under {base}")
        pg.start()
        pg.create_roles()
        su = psycopg.connect(pg.superuser_url("fieldday"), autocommit=True)
        log("running migrations as fieldday_owner")
        app = make_app(pg)
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()

        from app.extensions import db
        from tenants.context import activate
        from tenants.provisioning import provision_tenant

        tz_name = "America/New_York"
        now = datetime.now(UTC).replace(microsecond=0)
        today = now.astimezone(ZoneInfo(tz_name)).date()
        first = today - timedelta(days=358)
        with app.app_context():
            tenant, _ = provision_tenant(
                business_name="Bench Mobile Detailing",
                subdomain="bench",
                time_zone=tz_name,
                currency="USD",
                owner_email="owner@bench.test",
                owner_name="Olive Owner",
                password=PASSWORD,
                plan="teams",
            )
            tid = tenant.id
            db.session.commit()
            activate(None)

        measured = Business(
            tid, tz_name, args.bookings, args.techs, args.customers, args.bookings // 10, filler=False, plans=True
        )
        fillers = [
            Business(
                uuid.UUID(bytes=rng.randbytes(16), version=4),
                ZONES[i % 4],
                args.filler_bookings,
                2,
                5,
                2,
                filler=True,
                index=i,
            )
            for i in range(args.tenants)
        ]
        everyone = fillers[: len(fillers) // 2] + [measured] + fillers[len(fillers) // 2 :]
        log(f"loading {len(everyone):,} businesses as fieldday_owner in {args.phases} phases")
        t0 = time.monotonic()
        with psycopg.connect(plain_url(pg.url("fieldday_owner"))) as owner:
            load(owner, everyone, args.phases, now, first)
        load_s = time.monotonic() - t0
        su.execute("VACUUM (ANALYZE)")
        su.execute("CHECKPOINT")
        facts = counts(su, tid)
        log(f"loaded in {load_s:.0f}s: {facts}")

        from app.reports.services import parse_period

        year_by_month, _, _ = parse_period(tid, tz_name, today, {"range": "12m"})
        year_by_week, _, _ = parse_period(tid, tz_name, today, {"range": "12m", "group": "week"})
        shapes = {
            "revenue, 12 months by month": (("revenue",), year_by_month),
            "revenue, 12 months by week": (("revenue",), year_by_week),
            "jobs, 12 months by month": (("jobs",), year_by_month),
            "jobs, 12 months by week": (("jobs",), year_by_week),
            "technicians, 12 months": (("technicians",), year_by_month),
            "whole page (5 reports), by month": (("revenue", "jobs", "technicians", "quotes", "routes"), year_by_month),
        }
        log(f"warm-up: {args.warmup} calls per shape")
        for names, period in shapes.values():
            for _ in range(args.warmup):
                timed(app, tid, names, period)
        samples: dict[str, list[list[float]]] = {k: [] for k in shapes}
        for r in range(1, args.rounds + 1):
            r0 = time.monotonic()
            jobs = [k for k in shapes for _ in range(args.runs)]
            rng.shuffle(jobs)
            got: dict[str, list[float]] = {k: [] for k in shapes}
            for k in jobs:
                names, period = shapes[k]
                got[k].append(timed(app, tid, names, period))
            for k in shapes:
                samples[k].append(got[k])
            log(
                f"round {r}/{args.rounds} in {time.monotonic() - r0:.1f}s: "
                + "; ".join(f"{k.split(',')[0]} p95 {pct(v, 95):.1f}" for k, v in got.items() if "by month" in k)
            )

        plans = {name: explain(app, tid, name, year_by_week) for name in args.explain}
        # The report figures themselves, as a sanity check that the data is what it should be.
        from app.reports import services as reports
        from tenants.context import tenant_context

        with app.app_context(), tenant_context(tid, db.session):
            rev = reports.totals("revenue", reports.run("revenue", year_by_month))
            jb = reports.totals("jobs", reports.run("jobs", year_by_month))
            db.session.rollback()
        pgv = su.execute("SHOW server_version").fetchone()[0]
    finally:
        if app is not None:
            with app.app_context():
                from app.extensions import db

                db.engine.dispose()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)

    w = print
    bar = "=" * 100
    for name, plan in plans.items():
        w()
        w(bar)
        w(f"EXPLAIN (ANALYZE, BUFFERS) of the {name} report, 12 months by week, as fieldday_app under RLS")
        w(bar)
        w(plan)
        idx = sorted(set(re.findall(r"(?:Index|Bitmap Index) (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)", plan)))
        seq = re.findall(r"Seq Scan on (\w+)", plan)
        w(f"-> indexes used: {', '.join(idx) or 'none'}; sequential scans: {', '.join(seq) or 'none'}")
    w()
    w(bar)
    w("Reports: summary")
    w(bar)
    for line in machine_lines():
        w(line)
    w(
        f"software: PostgreSQL {pgv} (fsync=off, loopback TCP), Python {platform.python_version()}, "
        f"psycopg {psycopg.__version__}"
    )
    w(f"data: {facts}; loaded as fieldday_owner under RLS in {load_s:.0f}s")
    w(
        f"measured business: {tz_name}, periods {year_by_month.first} .. {year_by_month.last} "
        f"(12 months / {((year_by_week.last - year_by_week.first).days // 7) + 1} weeks)"
    )
    w(
        f"  its 12 months: net revenue {rev['net_cents'] / 100:,.2f} (refunds {rev['refunds_cents'] / 100:,.2f}), "
        f"{jb['booked']:,} jobs booked, {jb['completed']:,} completed, cancel rate {jb['cancel_rate']} %, "
        f"average ticket {jb['average_ticket_cents'] / 100:,.2f}"
    )
    w(
        f"runs: {args.rounds} rounds x {args.runs} calls per shape, shuffled; each call a fresh app context and "
        f"transaction (one request); median over rounds of each round's percentile"
    )
    w()
    w(f"  {'shape':<36}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'n':>6}")
    for k, rounds in samples.items():
        flat = [x for rnd in rounds for x in rnd]
        p50 = statistics.median(pct(rnd, 50) for rnd in rounds)
        p95 = statistics.median(pct(rnd, 95) for rnd in rounds)
        w(f"  {k:<36}{p50:9.1f}{p95:9.1f}{max(flat):9.1f}{len(flat):6d}")
    head = {
        k: statistics.median(pct(rnd, 95) for rnd in samples[k]) for k in samples if k.startswith(("revenue", "jobs"))
    }
    worst = max(head.values())
    w()
    w(bar)
    w(
        f"HEADLINE  revenue and jobs reports, a year of data ({args.bookings:,} bookings) among {args.tenants:,} "
        f"other businesses: p95 {' / '.join(f'{v:.1f}' for v in head.values())} ms "
        f"(worst {worst:.1f} ms)   goal <= {GOAL_MS} ms: {'met' if worst <= GOAL_MS else 'NOT met'}"
    )
    w(f"total runtime {time.monotonic() - started:.0f}s")
    w(bar)
    return 0


if __name__ == "__main__":
    sys.exit(main())
