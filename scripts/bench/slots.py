#!/usr/bin/env python
"""How fast is availability, and does it stay fast as tenants are added? (DESIGN §5)

Starts a throwaway PostgreSQL cluster (scripts/lib/services.py), creates the roles with
scripts/db_roles.sql and runs the project's migrations as the owner role. Then, through the
real services (provision_tenant, catalog.create_package, booking.create_technician,
booking.add_day_off, booking.book), it builds the measured tenant: 10 technicians working
Mon-Sat 08:00-18:00 in the tenant's zone and 300 active bookings spread over the next 31 days.

That database is copied twice (CREATE DATABASE ... TEMPLATE), so the measured tenant is
byte-identical in three databases, which then get other tenants' data, bulk-loaded as the
superuser with INSERT ... SELECT generate_series (same columns and constraints as
migrations/versions/0002_booking.py):

  alone   the measured tenant only
  1k      + 1,000 filler tenants
  10k     + 10,000 filler tenants

Each filler tenant has an owner, a few technicians with weekly hours, customers with a
vehicle and an address, a package, bookings (past: completed or canceled; future:
confirmed or canceled; rows in time order across tenants, as they would arrive) with
their items, and a busy block per technician.

Timed: ``booking_services.slots_for_days(tenant, first_day, days, duration, now=...)`` as
the app calls it, inside ``app.app_context()`` and ``tenant_context(tenant_id, db.session)``,
each call in a fresh session/transaction (as one request), for days=31 (a month), 14 (the
booking site's two weeks) and 1 (one day, cycling through the month). The three databases
are interleaved in a shuffled order within every round; figures are medians over rounds of
each round's p50/p95, and the 10k/1k ratio is taken within each round.

Also printed: SQL statements and their time per call (where the time goes), and EXPLAIN
(ANALYZE, BUFFERS) of the app's bookings query under RLS, as the app sends it (custom plan)
and as a generic plan (what a server-side prepared statement may switch to).

Run from the repository root:
    .venv/bin/python scripts/bench/slots.py [--tenants 1000 10000] [--rounds 6]
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
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres  # noqa: E402

PASSWORD = "correct-horse-battery"
ACTIVE = ("pending", "confirmed", "in_progress")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def plain_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def pct(values: list[float], p: int) -> float:
    """The p-th percentile (inclusive method, like numpy's default 'linear')."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# --------------------------------------------------------------------------- the app

def make_app(pg: Postgres, dbname: str):
    from app import create_app
    from app.config import TestConfig

    app = create_app(
        TestConfig,
        {
            "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app", dbname),
            "DATABASE_OWNER_URL": pg.url("fieldday_owner", dbname),
            # Nothing measured here touches Redis; an unused port makes that visible if it changes.
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "RATELIMIT_STORAGE_URI": "memory://",
        },
    )
    logging.getLogger().setLevel(logging.WARNING)
    return app


def migrate(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


class SqlMeter:
    """Counts statements and their execute time (incl. round trip and fetching rows) per engine."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.count = 0
        self.ns = 0
        self.tables: dict[str, int] = {}
        self.bookings_stmt: tuple[str, dict] | None = None
        self._t0 = 0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self.bookings_stmt is None and re.search(r"\bFROM bookings\b", statement):
            self.bookings_stmt = (statement, dict(parameters))
        m = re.search(r"\bFROM (\w+)", statement)
        table = m.group(1) if m else statement.split(None, 1)[0]
        self.tables[table] = self.tables.get(table, 0) + 1
        self._t0 = time.perf_counter_ns()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.ns += time.perf_counter_ns() - self._t0
        self.count += 1

    def reset(self) -> None:
        self.count = 0
        self.ns = 0
        self.tables = {}


# --------------------------------------------------------------------------- the measured tenant

def build_tenant(app, args, now: datetime, first: date, rng: random.Random) -> dict:
    """The measured tenant, through the real services only. Returns its facts."""
    from app.booking import services as booking
    from app.booking.errors import SlotTaken, SlotUnavailable
    from app.catalog import services as catalog
    from app.errors import ValidationFailed
    from app.extensions import db
    from tenants.context import activate, tenant_context
    from tenants.models import Tenant
    from tenants.provisioning import provision_tenant

    tz = ZoneInfo(args.time_zone)
    with app.app_context():
        tenant, _owner = provision_tenant(
            business_name="Bench Mobile Detailing",
            subdomain="bench",
            time_zone=args.time_zone,
            currency="USD",
            owner_email="owner@bench.test",
            owner_name="Olive Owner",
            password=PASSWORD,
            plan="teams",
        )
        tid = tenant.id
        db.session.commit()
        activate(None)

    with app.app_context(), tenant_context(tid, db.session):
        full = catalog.create_package(
            tid,
            name="Full detail",
            prices={"sedan": {"price_cents": 18000, "duration_min": 120},
                    "suv": {"price_cents": 22000, "duration_min": 150}},
        )
        wash = catalog.create_package(
            tid,
            name="Express wash",
            prices={"sedan": {"price_cents": 6000, "duration_min": 60},
                    "suv": {"price_cents": 7500, "duration_min": 60},
                    "truck": {"price_cents": 9000, "duration_min": 90}},
        )
        hours = {d: [(wall(8), wall(18))] for d in range(6)}  # Mon-Sat
        techs = [booking.create_technician(tid, name=f"Tech {i + 1}", hours=hours, position=i).id
                 for i in range(args.techs)]
        for _ in range(args.days_off):
            tech = booking.get_technician(rng.choice(techs))
            booking.add_day_off(tech, first + timedelta(days=rng.randrange(args.days)), args.time_zone,
                                label="Vacation")
        db.session.commit()
        package_ids = (full.id, wash.id)

    # Bookings through booking.book(), one transaction each, as the API does.
    choices = [(full.id, "sedan", 120), (full.id, "suv", 150), (wash.id, "sedan", 60), (wash.id, "suv", 60),
               (wash.id, "truck", 90)]
    made = refused = 0
    t0 = time.monotonic()
    with app.app_context(), tenant_context(tid, db.session):
        tenant = db.session.get(Tenant, tid)
        while made < args.bookings:
            if refused > 20 * args.bookings:
                raise RuntimeError(f"could only place {made} bookings")
            day = first + timedelta(days=rng.randrange(args.days))
            if day.weekday() == 6:
                continue
            package_id, size, minutes = rng.choice(choices)
            last_start = 18 * 60 - minutes
            start_min = 8 * 60 + 30 * rng.randrange(last_start // 30 - 16 + 1)
            local = datetime.combine(day, wall(start_min // 60, start_min % 60), tzinfo=tz)
            req = booking.BookingRequest(
                package_id=package_id,
                addon_ids=[],
                vehicle={"size_class": size, "make": "Honda", "model": "Civic"},
                place={"line1": f"{100 + made} Congress Ave", "city": "Austin", "region": "TX",
                       "postal_code": "78701", "lat": 30.2690, "lng": -97.7428},
                access_notes=None,
                customer={"name": f"Customer {made + 1}", "phone": f"+1512555{1000 + made:04d}", "email": ""},
                starts_at=local.astimezone(UTC),
                technician_id=rng.choice(techs),
                source="dashboard",
            )
            try:
                booking.book(tenant, req, now=now, actor_type="system")
                db.session.commit()
                made += 1
            except (SlotTaken, SlotUnavailable, ValidationFailed):
                db.session.rollback()
                refused += 1
        active = db.session.scalar(
            db.select(db.func.count()).select_from(booking.Booking).where(booking.Booking.status.in_(ACTIVE)))
    log(f"measured tenant: {len(techs)} technicians, {active} active bookings via booking.book() "
        f"({refused} picks refused as taken), {args.days_off} days off, in {time.monotonic() - t0:.1f}s")
    return {"id": tid, "techs": techs, "packages": package_ids, "active": active}


# --------------------------------------------------------------------------- filler tenants

def load_fillers(su: psycopg.Connection, first_index: int, count: int, args, now: datetime) -> float:
    """``count`` filler tenants numbered from ``first_index``, bulk-loaded as the superuser
    (RLS does not apply to superusers). Ids are derived with md5() so rows can refer to
    each other without lookups. Returns seconds taken."""
    t0 = time.monotonic()
    T, C, B = args.filler_techs, args.filler_customers, args.filler_bookings  # noqa: N806
    su.execute("DROP TABLE IF EXISTS ft")
    su.execute(
        "CREATE TEMP TABLE ft AS SELECT md5('filler:' || i)::uuid AS id, i "
        "FROM generate_series(%s::int, %s::int) AS i",
        (first_index, first_index + count - 1),
    )
    zones = "ARRAY['America/New_York','America/Chicago','America/Denver','America/Los_Angeles']"
    statements = [
        (f"INSERT INTO tenants (id, subdomain, name, time_zone, currency, plan) "
         f"SELECT id, 'filler-' || i, 'Filler Detailing ' || i, ({zones})[1 + i % 4], 'USD', 'pro' FROM ft", ()),
        ("INSERT INTO users (tenant_id, id, email, name, role, password_hash) "
         "SELECT id, md5(id::text || ':u')::uuid, 'owner@filler-' || i || '.test', 'Owner ' || i, 'owner', "
         "'$argon2id$v=19$m=65536,t=3,p=4$bench$bench' FROM ft", ()),
        ("INSERT INTO technicians (tenant_id, id, name, position) "
         "SELECT ft.id, md5(ft.id::text || ':t:' || k)::uuid, 'Tech ' || k, k "
         "FROM ft, generate_series(0, %s - 1) AS k", (T,)),
        ("INSERT INTO working_hours (tenant_id, technician_id, weekday, start_local, end_local) "
         "SELECT ft.id, md5(ft.id::text || ':t:' || k)::uuid, d, time '08:00', time '17:00' "
         "FROM ft, generate_series(0, %s - 1) AS k, generate_series(0, 5) AS d", (T,)),
        ("INSERT INTO packages (tenant_id, id, name) SELECT id, md5(id::text || ':p')::uuid, 'Full detail' FROM ft",
         ()),
        ("INSERT INTO package_prices (tenant_id, package_id, size_class, price_cents, duration_min) "
         "SELECT id, md5(id::text || ':p')::uuid, s.size, s.cents, s.minutes FROM ft, "
         "(VALUES ('sedan', 18000, 120), ('suv', 22000, 150)) AS s(size, cents, minutes)", ()),
        ("INSERT INTO customers (tenant_id, id, name, phone) "
         "SELECT ft.id, md5(ft.id::text || ':c:' || k)::uuid, 'Customer ' || k, '+1512555' || (1000 + k) "
         "FROM ft, generate_series(0, %s - 1) AS k", (C,)),
        ("INSERT INTO vehicles (tenant_id, id, customer_id, make, model, size_class) "
         "SELECT ft.id, md5(ft.id::text || ':v:' || k)::uuid, md5(ft.id::text || ':c:' || k)::uuid, "
         "'Toyota', 'Camry', 'sedan' FROM ft, generate_series(0, %s - 1) AS k", (C,)),
        ("INSERT INTO customer_addresses (tenant_id, id, customer_id, line1, city, region, lat, lng) "
         "SELECT ft.id, md5(ft.id::text || ':a:' || k)::uuid, md5(ft.id::text || ':c:' || k)::uuid, "
         "(100 + k) || ' Congress Ave', 'Austin', 'TX', 30.269, -97.7428 "
         "FROM ft, generate_series(0, %s - 1) AS k", (C,)),
        # Booking j: technician j % T, its (j / T)-th job, one per working day from 60 days ago on,
        # at 09:00, 12:00 or 15:00 UTC for 120 minutes (+15 buffer): never overlapping.
        # Past jobs completed, future ones confirmed, every 7th canceled. Inserted in time order.
        ("""
         INSERT INTO bookings (tenant_id, id, reference, customer_id, vehicle_id, address_id, technician_id,
                               status, starts_at, ends_at, during, arrival_window_min, price_cents, currency, source)
         SELECT tenant_id, id, reference, customer_id, vehicle_id, address_id, technician_id,
                CASE WHEN mod(j, 7) = 6 THEN 'canceled' WHEN s < %(now)s THEN 'completed' ELSE 'confirmed' END,
                s, s + interval '120 minutes', tstzrange(s, s + interval '135 minutes', '[)'),
                60, 18000, 'USD', 'site'
         FROM (
             SELECT ft.id AS tenant_id, md5(ft.id::text || ':b:' || j)::uuid AS id, 'F' || lpad(j::text, 5, '0')
                        AS reference,
                    md5(ft.id::text || ':c:' || mod(j, %(c)s))::uuid AS customer_id,
                    md5(ft.id::text || ':v:' || mod(j, %(c)s))::uuid AS vehicle_id,
                    md5(ft.id::text || ':a:' || mod(j, %(c)s))::uuid AS address_id,
                    md5(ft.id::text || ':t:' || mod(j, %(t)s))::uuid AS technician_id,
                    j,
                    date_trunc('day', %(now)s::timestamptz) + ((j / %(t)s) * %(gap)s - 60) * interval '1 day'
                        + (9 + 3 * mod(j / %(t)s + ft.i, 3)) * interval '1 hour' AS s
             FROM ft, generate_series(0, %(b)s - 1) AS j
         ) AS x
         ORDER BY s
         """, {"now": now, "c": C, "t": T, "b": B, "gap": max(1, 120 // max(1, -(-B // T)))}),
        ("INSERT INTO booking_items (tenant_id, booking_id, package_id, kind, name, price_cents, duration_min) "
         "SELECT ft.id, md5(ft.id::text || ':b:' || j)::uuid, md5(ft.id::text || ':p')::uuid, 'package', "
         "'Full detail', 18000, 120 FROM ft, generate_series(0, %s - 1) AS j", (B,)),
        ("INSERT INTO busy_blocks (tenant_id, technician_id, during, source, summary) "
         "SELECT ft.id, md5(ft.id::text || ':t:' || k)::uuid, "
         "tstzrange(date_trunc('day', %s::timestamptz) + (k + 3) * interval '1 day' + interval '14 hours', "
         "date_trunc('day', %s::timestamptz) + (k + 3) * interval '1 day' + interval '16 hours', '[)'), "
         "'manual', 'Van service' FROM ft, generate_series(0, %s - 1) AS k", (now, now, T)),
    ]
    with su.transaction():
        for stmt, params in statements:
            su.execute(stmt, params or None)
    return time.monotonic() - t0


def vacuum(su: psycopg.Connection) -> None:
    su.execute("CHECKPOINT")
    su.execute("VACUUM (ANALYZE)")
    su.execute("CHECKPOINT")


def table_counts(su: psycopg.Connection) -> str:
    rows = su.execute(
        "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM technicians), "
        "(SELECT count(*) FROM bookings), "
        "(SELECT count(*) FROM bookings WHERE status IN ('pending', 'confirmed', 'in_progress')), "
        "pg_size_pretty(pg_total_relation_size('bookings'))"
    ).fetchone()
    return (f"{rows[0]:,} tenants, {rows[1]:,} technicians, {rows[2]:,} bookings ({rows[3]:,} active), "
            f"bookings table+indexes {rows[4]}")


# --------------------------------------------------------------------------- timing

def timed_call(app, meter: SqlMeter, tid: uuid.UUID, first: date, days: int, duration: timedelta,
               now: datetime) -> tuple[float, int, float, int]:
    """One call in a fresh app context and session, as in a request (the tenant row is loaded
    first, as the tenancy layer does before the view). Returns (ms, statements, sql ms, slots)."""
    from app.booking import services as booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(tid, db.session):
        tenant = db.session.get(Tenant, tid)
        meter.reset()
        t0 = time.perf_counter_ns()
        result = booking.slots_for_days(tenant, first, days, duration, now=now)
        elapsed = time.perf_counter_ns() - t0
        n, sql_ns = meter.count, meter.ns
        db.session.rollback()
    timed_call.last_tables = dict(meter.tables)
    return elapsed / 1e6, n, sql_ns / 1e6, sum(len(v) for v in result.values())


def explain(app, meter: SqlMeter, tid: uuid.UUID, first: date, days: int, duration: timedelta,
            now: datetime) -> tuple[str, str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the app's own bookings statement, under RLS as the app role:
    (the statement, its plan as the app sends it, its generic plan)."""
    from app.booking import services as booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    meter.bookings_stmt = None
    with app.app_context(), tenant_context(tid, db.session):
        tenant = db.session.get(Tenant, tid)
        booking.slots_for_days(tenant, first, days, duration, now=now)
        statement, params = meter.bookings_stmt
        raw = db.session.connection().connection.driver_connection  # psycopg, in the tenant's transaction
        with raw.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params)
            custom = "\n".join(r[0] for r in cur.fetchall())
            # The same statement server-side prepared, forced to a generic plan: what PostgreSQL may
            # switch to after psycopg prepares a statement run 5 times on one connection.
            names: list[str] = []

            def number(m: re.Match) -> str:
                if m.group(1) not in names:
                    names.append(m.group(1))
                return f"${names.index(m.group(1)) + 1}"

            prepared = re.sub(r"%\((\w+)\)s", number, statement)
            cur.execute("PREPARE fd_bench_bookings AS " + prepared)
            args = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
            cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE fd_bench_bookings ({})").format(args))
            generic = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("DEALLOCATE fd_bench_bookings")
        db.session.rollback()
    return statement, custom, generic


def engine_split(app, tid: uuid.UUID, first: date, days: int, duration: timedelta, now: datetime,
                 reps: int) -> dict[str, float]:
    """Where a month's call spends its time: the database part (_engine_technicians) and the pure
    engine (availability.day_slots per day) timed apart, median ms. Plus a what-if, computed here
    and not in the app: the same engine given, per day, only the busy intervals that can touch
    that day (identical slots, checked), to show what the linear busy scan costs."""
    import dataclasses

    from app.booking import availability as av
    from app.booking import services as booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    day_list = [first + timedelta(days=i) for i in range(days)]
    load_ms, techs, rules = [], None, None
    for _ in range(reps):
        with app.app_context(), tenant_context(tid, db.session):
            tenant = db.session.get(Tenant, tid)
            start, end = booking._padded_bounds(first, day_list[-1], tenant)
            t0 = time.perf_counter_ns()
            techs = booking._engine_technicians(start, end, None)
            load_ms.append((time.perf_counter_ns() - t0) / 1e6)
            rules = booking.rules_for(tenant)
            db.session.rollback()
    tz = rules.tz

    def as_is():
        return {d: av.day_slots(d, techs, rules, duration, now=now) for d in day_list}

    def per_day():
        out = {}
        for d in day_list:
            lo, hi = av.local_day_bounds(d, tz)
            hi += rules.buffer
            day_techs = [dataclasses.replace(t, busy=tuple(b for b in t.busy if b.end > lo and b.start < hi))
                         for t in techs]
            out[d] = av.day_slots(d, day_techs, rules, duration, now=now)
        return out

    if as_is() != per_day():
        raise AssertionError("per-day busy filtering changed the slots")
    timings: dict[str, list[float]] = {"engine": [], "engine_per_day": []}
    for _ in range(reps):
        for name, fn in (("engine", as_is), ("engine_per_day", per_day)):
            t0 = time.perf_counter_ns()
            fn()
            timings[name].append((time.perf_counter_ns() - t0) / 1e6)
    busy = statistics.mean(len(t.busy) for t in techs)
    return {"load": statistics.median(load_ms), "engine": statistics.median(timings["engine"]),
            "engine_per_day": statistics.median(timings["engine_per_day"]), "busy_per_tech": busy}


def prepared_report(app) -> list[str]:
    """What the app's pooled connections actually did with the bookings statement."""
    from sqlalchemy import text

    from app.extensions import db

    out = []
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement ~ 'FROM bookings'"
        )).fetchall()
    for g, c in rows:
        out.append(f"generic_plans={g} custom_plans={c}")
    return out


# --------------------------------------------------------------------------- main

SHAPES = (("month", 31), ("2 weeks", 14), ("day", 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--techs", type=int, default=10, help="technicians of the measured tenant (default 10)")
    ap.add_argument("--bookings", type=int, default=300, help="its active bookings (default 300)")
    ap.add_argument("--days", type=int, default=31, help="the month measured, from tomorrow (default 31)")
    ap.add_argument("--days-off", type=int, default=5, help="days off among its technicians (default 5)")
    ap.add_argument("--time-zone", default="America/New_York", help="the tenant's zone (default America/New_York)")
    ap.add_argument("--duration-min", type=int, default=120, help="job duration asked for (default 120)")
    ap.add_argument("--tenants", type=int, nargs="+", default=[1000, 10000],
                    help="filler tenant counts, one database each (default 1000 10000)")
    ap.add_argument("--filler-techs", type=int, default=3, help="technicians per filler tenant (default 3)")
    ap.add_argument("--filler-customers", type=int, default=10, help="customers per filler tenant (default 10)")
    ap.add_argument("--filler-bookings", type=int, default=30,
                    help="bookings per filler tenant, past and future (default 30)")
    ap.add_argument("--rounds", type=int, default=6, help="measured rounds (default 6)")
    ap.add_argument("--reps", type=int, nargs=3, default=[15, 20, 40], metavar=("MONTH", "WEEKS", "DAY"),
                    help="calls per database per round for 31 days, 14 days, 1 day (default 15 20 40)")
    ap.add_argument("--warmup", type=int, default=10, help="unmeasured calls per database and shape (default 10)")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    if min(args.techs, args.bookings, args.days, args.rounds, *args.reps, *args.tenants) < 1:
        ap.error("sizes must be positive")
    args.tenants = sorted(set(args.tenants))
    rng = random.Random(args.seed)
    started = time.monotonic()
    os.chdir(ROOT)

    base = Path(tempfile.mkdtemp(prefix="fieldday-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg = Postgres(base / "pg")
    opened: list[psycopg.Connection] = []
    apps: dict[str, object] = {}
    try:
        log(f"starting PostgreSQL on 127.0.0.1:{pg.port} under {base}")
        pg.start()
        pg.create_roles()
        su = psycopg.connect(pg.superuser_url("postgres"), autocommit=True)
        opened.append(su)
        su.execute("ALTER SYSTEM SET autovacuum = off")  # we VACUUM ANALYZE explicitly; no surprise runs
        su.execute("SELECT pg_reload_conf()")

        log("running migrations as fieldday_owner")
        app0 = make_app(pg, "fieldday")
        migrate(app0)

        now = datetime.now(UTC).replace(microsecond=0)
        tz = ZoneInfo(args.time_zone)
        first = (now.astimezone(tz) + timedelta(days=1)).date()
        facts = build_tenant(app0, args, now, first, rng)
        tid = facts["id"]
        from app.extensions import db

        with app0.app_context():
            db.engine.dispose()

        # Same measured tenant in every database; then each gets its fillers.
        variants = [("alone", "fieldday")] + [(f"{n // 1000}k" if n % 1000 == 0 else str(n), f"fieldday_{n}")
                                               for n in args.tenants]
        load_notes = {}
        for _, dbname in variants[1:]:
            su.execute(sql.SQL("CREATE DATABASE {} TEMPLATE fieldday OWNER fieldday_owner").format(
                sql.Identifier(dbname)))
        for (label, dbname), n in zip(variants[1:], args.tenants, strict=True):
            conn = psycopg.connect(pg.superuser_url(dbname), autocommit=True)
            opened.append(conn)
            conn.execute("SET synchronous_commit = on")
            log(f"{label}: loading {n:,} filler tenants into {dbname}")
            secs = load_fillers(conn, 1, n, args, now)
            vacuum(conn)
            load_notes[label] = f"{table_counts(conn)}; loaded in {secs:.0f}s"
            log(f"{label}: {load_notes[label]}")
        with psycopg.connect(pg.superuser_url("fieldday"), autocommit=True) as conn:
            vacuum(conn)
            load_notes["alone"] = table_counts(conn)

        meters = {}
        for label, dbname in variants:
            apps[label] = make_app(pg, dbname)
            with apps[label].app_context():
                meters[label] = SqlMeter(db.engine)

        duration = timedelta(minutes=args.duration_min)
        shape_reps = dict(zip([s for s, _ in SHAPES], args.reps, strict=True))
        day_cycle = [first + timedelta(days=i) for i in range(args.days)]

        def run(label: str, shape: str, days: int, reps: int, k0: int) -> list[tuple]:
            out = []
            for k in range(reps):
                start = day_cycle[(k0 + k) % len(day_cycle)] if days == 1 else first
                out.append(timed_call(apps[label], meters[label], tid, start, days, duration, now))
            return out

        log(f"warm-up: {args.warmup} calls per database and shape")
        for label, _ in variants:
            for shape, days in SHAPES:
                run(label, shape, days, args.warmup, 0)

        # samples[(label, shape)] = list of per-round lists of (ms, stmts, sql_ms, slots)
        samples: dict[tuple[str, str], list[list[tuple]]] = {}
        for r in range(1, args.rounds + 1):
            r0 = time.monotonic()
            jobs = [(label, shape, days) for label, _ in variants for shape, days in SHAPES]
            rng.shuffle(jobs)
            for label, shape, days in jobs:
                samples.setdefault((label, shape), []).append(
                    run(label, shape, days, shape_reps[shape], r * 7))
            month = " ".join(
                f"{label} {pct([s[0] for s in samples[(label, 'month')][-1]], 50):.1f}/"
                f"{pct([s[0] for s in samples[(label, 'month')][-1]], 95):.1f}" for label, _ in variants)
            log(f"round {r}/{args.rounds} ({time.monotonic() - r0:.1f}s): month p50/p95 ms: {month}")

        big = variants[-1][0]
        statement, custom, generic = explain(apps[big], meters[big], tid, first, args.days, duration, now)
        prepared = {label: prepared_report(apps[label]) for label, _ in variants}
        log("timing the database part and the engine apart (month, measured tenant alone)")
        split = engine_split(apps["alone"], tid, first, args.days, duration, now, args.reps[0])
        report(args, facts, first, now, variants, samples, load_notes, statement, custom, generic, prepared,
               split, su, time.monotonic() - started)
    finally:
        for app in apps.values():
            with app.app_context():
                db.engine.dispose()
        for c in opened:
            c.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- report

def machine_info(su: psycopg.Connection) -> list[str]:
    pgv = su.execute("SHOW server_version").fetchone()[0]
    return [
        *machine_lines(),
        f"software: PostgreSQL {pgv} (fsync=off, loopback TCP), Python {platform.python_version()}, "
        f"psycopg {psycopg.__version__}",
    ]


def report(args, facts, first, now, variants, samples, load_notes, statement, custom, generic, prepared, split,
           su, elapsed) -> None:
    w = print
    bar = "=" * 100
    labels = [label for label, _ in variants]
    w()
    w(bar)
    w("EXPLAIN (ANALYZE, BUFFERS) of the app's bookings query, as fieldday_app under RLS, database "
      f"'{variants[-1][0]}'")
    w(bar)
    w(statement.strip())
    w("\n--- as the app sends it (parameters bound, custom plan):")
    w(custom)
    w("\n--- the same statement PREPAREd, plan_cache_mode = force_generic_plan:")
    w(generic)
    for name, plan in (("custom", custom), ("generic", generic)):
        idx = sorted(set(re.findall(r"(?:Index|Bitmap Index) (?:Only )?Scan (?:Backward )?(?:using|on) (\w+)", plan)))
        seq = "Seq Scan on bookings" in plan
        w(f"{name} plan: {'index ' + ', '.join(idx) if idx else 'NO index'}"
          f"{'; SEQ SCAN on bookings' if seq else ''}")
    used = [f"{label}: " + "; ".join(prepared[label]) for label in labels if prepared[label]]
    if used:
        w("server-side prepared bookings statement left on a pooled connection: " + " | ".join(used))
    else:
        w("plan the app used: custom. No prepared bookings statement is left on the pooled connection: each call")
        w("  ends in ROLLBACK (as every read-only request does at teardown), and psycopg drops its prepared")
        w("  statements and their counts on ROLLBACK, so this statement never reaches prepare_threshold=5 here.")
        w("  Transactions that COMMIT (booking.book() runs this query twice per booking) can reach it, and")
        w("  PostgreSQL may then pick the generic plan above.")

    w()
    w(bar)
    w("Availability (booking_services.slots_for_days): summary")
    w(bar)
    for line in machine_info(su):
        w(line)
    w(f"measured tenant: {args.techs} technicians, Mon-Sat 08:00-18:00 {args.time_zone}, {facts['active']} active "
      f"bookings (60-150 min) over {args.days} days from {first}, {args.days_off} days off; all via the services")
    w(f"asked: duration {args.duration_min} min, step 30, buffer 15, lead time 120; now = {now:%Y-%m-%d %H:%M} UTC")
    for label, _ in variants:
        w(f"  {label:<6} {load_notes[label]}")
    w(f"runs: {args.rounds} rounds; per round every database x shape in a shuffled order, {args.reps[0]}/"
      f"{args.reps[1]}/{args.reps[2]} calls (month/2 weeks/day); each call in a fresh app context and")
    w("      transaction, as one request; 'day' cycles through the month. Figures: median over rounds of")
    w("      each round's percentile; 'all' = percentile over every sample pooled.")
    w()
    w(f"  {'shape':<8}{'db':<7}{'p50 ms':>9}{'p95 ms':>9}{'all p50':>9}{'all p95':>9}{'max':>8}{'n':>6}"
      f"{'stmts':>7}{'SQL ms':>8}{'slots':>7}")
    for shape, _ in SHAPES:
        for label in labels:
            rounds = samples[(label, shape)]
            flat = [s for rnd in rounds for s in rnd]
            ms = [s[0] for s in flat]
            p50 = statistics.median(pct([s[0] for s in rnd], 50) for rnd in rounds)
            p95 = statistics.median(pct([s[0] for s in rnd], 95) for rnd in rounds)
            w(f"  {shape:<8}{label:<7}{p50:9.1f}{p95:9.1f}{pct(ms, 50):9.1f}{pct(ms, 95):9.1f}{max(ms):8.1f}"
              f"{len(ms):6d}{statistics.median(s[1] for s in flat):7.0f}"
              f"{statistics.median(s[2] for s in flat):8.1f}{statistics.median(s[3] for s in flat):7.0f}")
    w("  (stmts = SQL statements per call; SQL ms = their execute time incl. round trip and fetch; the rest")
    w("   of the call is Python: ORM row handling and the availability engine)")
    tables = getattr(timed_call, "last_tables", {})
    w("  statements per call by table: " + ", ".join(f"{t} {n}" for t, n in tables.items())
      + (" (working_hours: one lazy load per technician, t.hours in booking/services.py _engine_technicians)"
         if tables.get("working_hours", 0) > 1 else ""))
    w()
    w(f"Where a month's call goes (measured tenant alone, medians of {args.reps[0]}): loading schedules and busy "
      f"time (_engine_technicians, SQL + ORM) {split['load']:.1f} ms; the pure engine (day_slots x {args.days}) "
      f"{split['engine']:.1f} ms.")
    w(f"  Each technician carries {split['busy_per_tech']:.0f} busy intervals for the whole range, and "
      "availability.candidates() scans all of")
    w("  them for every candidate time. What-if (computed in this script only, same slots): giving each day only")
    w(f"  the intervals that touch it takes the engine to {split['engine_per_day']:.1f} ms.")
    w()
    if len(labels) >= 3:
        lo, hi = labels[-2], labels[-1]
        w(f"Tenant scaling, {hi} / {lo} (ratio of each round's percentile, then median and range over rounds):")
        worst = 0.0
        for shape, _ in SHAPES:
            parts = []
            for p in (50, 95):
                rs = [pct([s[0] for s in b], p) / pct([s[0] for s in a], p)
                      for a, b in zip(samples[(lo, shape)], samples[(hi, shape)], strict=True)]
                m = statistics.median(rs)
                worst = max(worst, abs(m - 1))
                parts.append(f"p{p} {m:.2f}x ({min(rs):.2f}-{max(rs):.2f})")
            sq = [statistics.median(s[2] for s in b) / statistics.median(s[2] for s in a)
                  for a, b in zip(samples[(lo, shape)], samples[(hi, shape)], strict=True)]
            parts.append(f"SQL part {statistics.median(sq):.2f}x ({min(sq):.2f}-{max(sq):.2f})")
            w(f"  {shape:<8}" + "   ".join(parts))
        w(f"  goal: within 20 % -> {'met' if worst <= 0.20 else 'NOT met'} (largest median difference of the call "
          f"times {worst * 100:.0f} %)")
        w("  The call time is mostly Python that does not depend on other tenants; the 'SQL part' ratio (median")
        w("  execute time of the call's statements) isolates what the database does with more tenants present.")
    month_p95 = {label: statistics.median(pct([s[0] for s in rnd], 95) for rnd in samples[(label, "month")])
                 for label in labels}
    w()
    w(bar)
    w(f"HEADLINE  slots_for_days, {args.days} days, {args.techs} technicians, {facts['active']} active bookings:")
    w("  p95 " + ", ".join(f"{label} {v:.1f} ms" for label, v in month_p95.items())
      + f"   goal <= 150 ms: {'met' if max(month_p95.values()) <= 150 else 'NOT met'}")
    day = {label: statistics.median(pct([s[0] for s in rnd], 95) for rnd in samples[(label, "day")])
           for label in labels}
    w("  one day p95 " + ", ".join(f"{label} {v:.1f} ms" for label, v in day.items()))
    w(f"total runtime {elapsed:.0f}s")
    w(bar)


if __name__ == "__main__":
    sys.exit(main())
