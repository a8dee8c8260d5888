#!/usr/bin/env python
"""What does route-aware availability cost? (issue 6: "a month for 10 technicians and 300
bookings: p95 ≤ 150 ms")

Starts a throwaway PostgreSQL (scripts/lib/services.py), migrates, and builds one business through
the real services: 10 technicians with home bases around Austin working Mon–Sat 08:00–18:00 and
300 active bookings over the next 31 days at random Austin addresses. Then times
``booking_services.slots_for_days(tenant, first, 31, 2 h, now=..., place=...)`` as the booking
site calls it (fresh session per call, tenant context) for a customer address, interleaved with
its peer in the same run, the same call without a place (time-only availability). Figures are
medians over rounds of each round's p50/p95. Travel is the default straight-line provider.

    .venv/bin/python scripts/bench/route_slots.py [--rounds 5] [--reps 20]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench.slots import PASSWORD, log, make_app, migrate, pct  # noqa: E402
from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres  # noqa: E402

# Austin: a box around the city (lat, lng).
BOX = ((30.20, 30.45), (-97.85, -97.65))


def point(rng: random.Random) -> tuple[float, float]:
    return round(rng.uniform(*BOX[0]), 5), round(rng.uniform(*BOX[1]), 5)


def build(app, args, now: datetime, rng: random.Random):
    from app.booking import services as booking
    from app.booking.errors import SlotTaken, SlotUnavailable
    from app.catalog import services as catalog
    from app.extensions import db
    from tenants.context import activate, tenant_context
    from tenants.models import Tenant
    from tenants.provisioning import provision_tenant

    tz = ZoneInfo("America/Chicago")
    with app.app_context():
        tenant, _ = provision_tenant(
            business_name="Route Bench",
            subdomain="routebench",
            time_zone="America/Chicago",
            currency="USD",
            owner_email="owner@routebench.test",
            owner_name="Olive Owner",
            password=PASSWORD,
            plan="teams",
        )
        tid = tenant.id
        db.session.commit()
        activate(None)
    with app.app_context(), tenant_context(tid, db.session):
        wash = catalog.create_package(
            tid, name="Express wash", prices={"sedan": {"price_cents": 6000, "duration_min": 90}}
        )
        hours = {d: [(wall(8), wall(18))] for d in range(6)}
        techs = []
        for i in range(args.techs):
            lat, lng = point(rng)
            techs.append(
                booking.create_technician(
                    tid, name=f"Tech {i + 1}", hours=hours, position=i, home={"line1": "Home", "lat": lat, "lng": lng}
                ).id
            )
        db.session.commit()
        tenant = db.session.get(Tenant, tid)
        first = (now.astimezone(tz) + timedelta(days=1)).date()
        made = 0
        while made < args.bookings:
            day = first + timedelta(days=rng.randrange(31))
            if day.weekday() == 6:
                continue
            start_min = 8 * 60 + 30 * rng.randrange(16)
            lat, lng = point(rng)
            req = booking.BookingRequest(
                package_id=wash.id,
                addon_ids=[],
                vehicle={"size_class": "sedan", "make": "Honda"},
                place={"line1": f"{made} Main St", "city": "Austin", "region": "TX", "lat": lat, "lng": lng},
                access_notes=None,
                customer={"name": f"Customer {made}", "phone": f"+1512556{made:04d}", "email": ""},
                starts_at=datetime.combine(day, wall(start_min // 60, start_min % 60), tz).astimezone(UTC),
                technician_id=rng.choice(techs),
                source="dashboard",
            )
            try:
                booking.book(tenant, req, now=now, actor_type="system")
                db.session.commit()
                made += 1
            except (SlotTaken, SlotUnavailable):
                db.session.rollback()
    return tid, first


def timed(app, tid, first, now, place) -> float:
    from app.booking import services as booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    with app.app_context(), tenant_context(tid, db.session):
        t0 = time.perf_counter()
        tenant = db.session.get(Tenant, tid)
        booking.slots_for_days(tenant, first, 31, timedelta(hours=2), now=now, place=place)
        elapsed = time.perf_counter() - t0
        db.session.rollback()
        db.session.remove()
    return elapsed * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--techs", type=int, default=10)
    ap.add_argument("--bookings", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20, help="calls per variant per round")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    os.chdir(ROOT)
    base = Path(tempfile.mkdtemp(prefix="fieldday-route-bench-"))
    base.chmod(0o755)
    pg = Postgres(base / "pg")
    try:
        log(f"starting PostgreSQL on 127.0.0.1:{pg.port}")
        pg.start()
        pg.create_roles()
        app = make_app(pg, "fieldday")
        migrate(app)
        now = datetime.now(UTC).replace(microsecond=0)
        tid, first = build(app, args, now, rng)
        log(f"built: {args.techs} technicians, {args.bookings} bookings over 31 days")
        places = [{"lat": p[0], "lng": p[1]} for p in (point(rng) for _ in range(10))]
        for _ in range(5):  # warm-up
            timed(app, tid, first, now, places[0])
            timed(app, tid, first, now, None)
        rounds = {"route-aware": [], "time-only": []}
        for r in range(args.rounds):
            samples = {"route-aware": [], "time-only": []}
            for i in range(args.reps):
                order = [("route-aware", places[i % len(places)]), ("time-only", None)]
                rng.shuffle(order)
                for name, place in order:
                    samples[name].append(timed(app, tid, first, now, place))
            for name, values in samples.items():
                rounds[name].append((statistics.median(values), pct(values, 95)))
            log(f"round {r + 1}/{args.rounds} done")
        print()
        for line in machine_lines():
            print(line)
        print(f"slots_for_days, 31 days, {args.techs} technicians, {args.bookings} bookings, 2 h job:")
        for name, values in rounds.items():
            p50 = statistics.median(v[0] for v in values)
            p95 = statistics.median(v[1] for v in values)
            runs = f"median of {args.rounds} rounds × {args.reps} calls"
            print(f"  {name:<12} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   ({runs})")
        ra = statistics.median(v[1] for v in rounds["route-aware"])
        to = statistics.median(v[1] for v in rounds["time-only"])
        print(f"  route-aware / time-only p95: {ra / to:.2f}×   goal: route-aware p95 ≤ 150 ms")
        return 0
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
