#!/usr/bin/env python
"""Booking over real HTTP: does the last free slot go to exactly one request, and how many
bookings per second does the app take? (DESIGN §5)

Starts throwaway PostgreSQL, Redis and SeaweedFS (S3) servers (scripts/lib/services.py),
creates the roles with scripts/db_roles.sql and runs the project's migrations as the owner
role. Through the real services it then creates a tenant (provision_tenant, plan "teams"),
two packages (catalog.create_package) and technicians working every day 08:00-18:00 in the
tenant's zone (booking.create_technician). Then it serves the app for real, by default with
gunicorn from the venv (``gunicorn -w 2 --threads 8 wsgi:app``, FIELDDAY_ENV=test and the
throwaway services in the environment; ``--server werkzeug`` serves it in-process with a
threaded werkzeug server instead), and logs in over HTTP as the owner (GET /login for the
CSRF token, POST /login, GET /account for the session's CSRF token), on loopback with
``Host: app.localhost:PORT``.

  race        N concurrent POST /api/v1/bookings (default 50) for one technician and one time,
              released together by a barrier: expected exactly one 201, the rest 409, no 5xx;
              then the database is asked how many active bookings hold that time.
  throughput  M bookings (default 800) for distinct slots (every technician, days 3..58, every
              90 minutes) from C threads (default 24), one keep-alive connection each, in a
              shuffled order (so bookings for one technician-day meet on its advisory lock):
              bookings per second, latency p50/p95/p99, CPU seconds per booking spent by the
              app server, PostgreSQL and this load generator.
  floor       GET /api/v1/me with the same threads: what auth + tenant resolution + one small
              query cost, the ceiling for any authenticated API call on this machine.
  in-process  after the server is stopped: booking.book() alone, one transaction per booking,
              sequentially (ms per booking, SQL statements and their time), the plans PostgreSQL
              chose for the prepared availability queries, and a cProfile of a few bookings.

Run from the repository root:
    .venv/bin/python scripts/bench/booking_race.py [--racers 50] [--bookings 800] [--threads 24]
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import logging
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres, RedisServer, SeaweedS3, free_port, wait_for_port  # noqa: E402

PASSWORD = "correct-horse-battery"
BUCKET = "fieldday-bench-media"
CSRF_RE = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')
VALUE_RE = re.compile(r'value="([^"]+)"')
SLOT_GAP = timedelta(minutes=90)  # a 60-minute wash + 15-minute buffer fits, so slots never collide


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]


# --------------------------------------------------------------------------- set-up

def make_app(urls: dict):
    from app import create_app
    from app.config import TestConfig

    app = create_app(TestConfig, urls)
    logging.getLogger().setLevel(logging.WARNING)
    return app


def build_tenant(app, args) -> dict:
    """Tenant, owner, packages and technicians, through the real services."""
    from app.booking import services as booking
    from app.catalog import services as catalog
    from app.extensions import db
    from tenants.context import activate, tenant_context
    from tenants.provisioning import provision_tenant

    with app.app_context():
        tenant, owner = provision_tenant(
            business_name="Race Mobile Detailing",
            subdomain="race",
            time_zone=args.time_zone,
            currency="USD",
            owner_email="owner@race.test",
            owner_name="Olive Owner",
            password=PASSWORD,
            plan="teams",
        )
        tid, email = tenant.id, owner.email
        db.session.commit()
        activate(None)
    with app.app_context(), tenant_context(tid, db.session):
        wash = catalog.create_package(
            tid,
            name="Express wash",
            prices={"sedan": {"price_cents": 6000, "duration_min": 60},
                    "suv": {"price_cents": 7500, "duration_min": 60}},
        )
        catalog.create_package(
            tid, name="Full detail", prices={"sedan": {"price_cents": 18000, "duration_min": 120}})
        every_day = {d: [(wall(8), wall(18))] for d in range(7)}
        techs = [booking.create_technician(tid, name=f"Tech {i + 1}", hours=every_day, position=i).id
                 for i in range(args.techs)]
        db.session.commit()
        return {"id": tid, "email": email, "wash": wash.id, "techs": techs}


def slot_times(args, first_day_offset: int, last_day_offset: int) -> list[tuple[int, datetime]]:
    """(technician index, UTC start) for every slot SLOT_GAP apart, 08:00..17:00 local."""
    tz = ZoneInfo(args.time_zone)
    today = datetime.now(tz).date()
    out = []
    for d in range(first_day_offset, last_day_offset + 1):
        day = today + timedelta(days=d)
        for k in range(7):  # 08:00, 09:30, ... 17:00 (ends 18:00)
            local = datetime.combine(day, wall(8), tzinfo=tz) + k * SLOT_GAP
            for t in range(args.techs):
                out.append((t, local.astimezone(UTC)))
    return out


# --------------------------------------------------------------------------- the server

class Server:
    def __init__(self, kind: str, port: int, env: dict, workers: int, threads: int, base: Path, urls: dict):
        self.kind, self.port, self.env, self.workers, self.threads = kind, port, env, workers, threads
        self.base, self.urls = base, urls
        self.proc: subprocess.Popen | None = None
        self._wsgi = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.kind == "gunicorn":
            cmd = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-w", str(self.workers), "--threads", str(self.threads),
                   "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--graceful-timeout", "5", "wsgi:app"]
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=open(self.base / "gunicorn.log", "w"),  # noqa: SIM115
                                         stderr=subprocess.STDOUT)
            wait_for_port(self.port, timeout=60, proc=self.proc)
        else:
            from werkzeug.serving import make_server

            app = make_app({**self.urls, "PUBLIC_PORT": str(self.port)})
            self._wsgi = make_server("127.0.0.1", self.port, app, threaded=True)
            self._thread = threading.Thread(target=self._wsgi.serve_forever, daemon=True)
            self._thread.start()
            wait_for_port(self.port)

    def root_pid(self) -> int | None:
        """The process tree whose CPU is the app server's (None: it runs in this process)."""
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._wsgi is not None:
            self._wsgi.shutdown()
            self._wsgi = None

    def log_tail(self, n: int = 40) -> str:
        path = self.base / "gunicorn.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def tree_cpu(root: int | None) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its children, including children
    that have exited and been reaped (the root's cutime/cstime): PostgreSQL backends and pool
    overflow connections come and go."""
    if root is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in (root, *children(root)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def postmaster_pid(pg: Postgres) -> int | None:
    try:
        return int((pg.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- HTTP client

class Client:
    """A minimal HTTP/1.1 client on loopback that sends the tenant-facing Host header."""

    def __init__(self, port: int, host: str):
        self.port, self.host = port, f"{host}:{port}"
        self.cookie = ""
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        h = {"Host": self.host, **(headers or {})}
        if self.cookie:
            h["Cookie"] = self.cookie
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # the server closed a kept-alive connection: reconnect once
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        data = r.read()
        for name, value in r.getheaders():
            if name.lower() == "set-cookie" and value.startswith("fd_session="):
                self.cookie = value.split(";", 1)[0]
        return r.status, data, r

    def close(self) -> None:
        self.conn.close()


def csrf_token(html: str) -> str:
    m = CSRF_RE.search(html)
    v = VALUE_RE.search(m.group(0)) if m else None
    if not v:
        raise RuntimeError("no csrf_token input on the page:\n" + html[:500])
    return v.group(1)


def login(port: int, email: str) -> tuple[str, str]:
    """(session cookie, CSRF token) for the owner, over HTTP like a browser."""
    c = Client(port, "app.localhost")
    status, body, _ = c.request("GET", "/login")
    if status != 200:
        raise RuntimeError(f"GET /login answered {status}: {body[:300]!r}")
    form = urllib.parse.urlencode({"csrf_token": csrf_token(body.decode()), "email": email, "password": PASSWORD})
    status, body, _ = c.request("POST", "/login", form.encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 302:
        raise RuntimeError(f"POST /login answered {status}: {body[:500]!r}")
    status, body, _ = c.request("GET", "/account")  # the CSRF secret lives in the new session
    if status != 200:
        raise RuntimeError(f"GET /account answered {status}: {body[:300]!r}")
    token = csrf_token(body.decode())
    c.close()
    return c.cookie, token


def booking_body(facts: dict, tech_index: int, starts_at: datetime, n: int) -> bytes:
    return json.dumps({
        "package_id": str(facts["wash"]),
        "size_class": "sedan",
        "technician_id": str(facts["techs"][tech_index]),
        "starts_at": starts_at.isoformat(),
        "customer": {"name": f"Customer {n}", "phone": f"+1512555{1000 + n:04d}"},
        "address": "1100 Congress Ave",
    }).encode()


def api_headers(token: str) -> dict:
    return {"Content-Type": "application/json", "X-CSRFToken": token}


# --------------------------------------------------------------------------- phases

def race(port: int, cookie: str, token: str, facts: dict, args) -> dict:
    tz = ZoneInfo(args.time_zone)
    local = (datetime.now(tz) + timedelta(days=2)).replace(hour=13, minute=0, second=0, microsecond=0)
    slot = local.astimezone(UTC)
    barrier = threading.Barrier(args.racers)
    results: list[tuple[int, float, bytes]] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        c = Client(port, "app.localhost")
        c.cookie = cookie
        body = booking_body(facts, 0, slot, i)
        c.conn.connect()
        barrier.wait()
        t0 = time.perf_counter()
        try:
            status, data, _ = c.request("POST", "/api/v1/bookings", body, api_headers(token))
        except Exception as exc:  # noqa: BLE001 - count it, do not lose the thread
            status, data = -1, repr(exc).encode()
        with lock:
            results.append((status, time.perf_counter() - t0, data))
        c.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(args.racers)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall_s = time.perf_counter() - t0
    statuses = [s for s, _, _ in results]
    messages = sorted({json.loads(d).get("error", {}).get("message", "") for s, _, d in results if s == 409})
    errors = [d[:300] for s, _, d in results if s >= 500 or s < 0]
    return {"slot": slot, "local": local, "statuses": statuses, "wall": wall_s,
            "latency": [t for _, t, _ in results], "messages": messages, "errors": errors}


def load(port: int, cookie: str, token: str, jobs: list[tuple[str, str, bytes | None]], threads: int,
         app_root: int | None = None, pg_root: int | None = None) -> dict:
    """Run (method, path, body) jobs from ``threads`` threads, each with one keep-alive connection."""
    it = iter(enumerate(jobs))
    lock = threading.Lock()
    results: list[tuple[int, float]] = []
    errors: list[bytes] = []
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        c = Client(port, "app.localhost")
        c.cookie = cookie
        c.conn.connect()
        barrier.wait()
        while True:
            with lock:
                nxt = next(it, None)
            if nxt is None:
                break
            _, (method, path, body) = nxt
            t0 = time.perf_counter()
            try:
                status, data, _ = c.request(method, path, body, api_headers(token) if body else None)
            except Exception as exc:  # noqa: BLE001
                status, data = -1, repr(exc).encode()
            dt = time.perf_counter() - t0
            with lock:
                results.append((status, dt))
                if status >= 400 or status < 0:
                    errors.append(data[:300])
        c.close()

    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for th in ths:
        th.start()
    cpu0 = (tree_cpu(app_root), tree_cpu(pg_root), time.process_time())
    barrier.wait()
    t0 = time.perf_counter()
    for th in ths:
        th.join()
    wall_s = time.perf_counter() - t0
    cpu1 = (tree_cpu(app_root), tree_cpu(pg_root), time.process_time())
    statuses: dict[int, int] = {}
    for s, _ in results:
        statuses[s] = statuses.get(s, 0) + 1
    return {"wall": wall_s, "n": len(results), "statuses": statuses, "latency": [t for _, t in results],
            "errors": errors, "cpu_app": cpu1[0] - cpu0[0], "cpu_pg": cpu1[1] - cpu0[1],
            "cpu_client": cpu1[2] - cpu0[2]}


def in_process(app, facts: dict, args, slots: list[tuple[int, datetime]], phone0: int) -> dict:
    """booking.book() alone, sequentially, one committed transaction each; then a cProfile."""
    from sqlalchemy import event, text

    from app.booking import services as booking
    from app.extensions import db
    from tenants.context import tenant_context
    from tenants.models import Tenant

    place = {"line1": "1100 Congress Ave", "city": "Austin", "region": "TX", "postal_code": None,
             "lat": 30.2747, "lng": -97.7404}
    meter = {"n": 0, "ns": 0, "t0": 0}
    with app.app_context():
        engine = db.engine

    def before(*_a):
        meter["t0"] = time.perf_counter_ns()

    def after(*_a):
        meter["ns"] += time.perf_counter_ns() - meter["t0"]
        meter["n"] += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)

    def one(k: int) -> tuple[float, int, float]:
        tech_index, starts_at = slots[k]
        req = booking.BookingRequest(
            package_id=facts["wash"], addon_ids=[], vehicle={"size_class": "sedan"}, place=place,
            access_notes=None, customer={"name": f"Customer {phone0 + k}", "phone": f"+1512555{1000 + phone0 + k:04d}"},
            starts_at=starts_at, technician_id=facts["techs"][tech_index], source="api")
        # As the request does: tenant row, then the service, then commit.
        with app.app_context(), tenant_context(facts["id"], db.session):
            meter["n"] = meter["ns"] = 0
            t0 = time.perf_counter_ns()
            tenant = db.session.get(Tenant, facts["id"])
            booking.book(tenant, req, now=datetime.now(UTC), actor_type="user")
            db.session.commit()
            return (time.perf_counter_ns() - t0) / 1e6, meter["n"], meter["ns"] / 1e6

    n = args.inprocess
    timings = [one(k) for k in range(n)]
    # The plans of the statements psycopg prepared on this (single, reused) connection.
    with app.app_context(), tenant_context(facts["id"], db.session):
        prepared = db.session.execute(text(
            "SELECT left(regexp_replace(statement, '\\s+', ' ', 'g'), 90), generic_plans, custom_plans "
            "FROM pg_prepared_statements WHERE statement ~ 'FROM (bookings|busy_blocks)' ORDER BY 1")).fetchall()
        db.session.rollback()
    profile = cProfile.Profile()
    profile.enable()
    for k in range(n, n + args.profile):
        one(k)
    profile.disable()
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    buf = io.StringIO()
    stats = pstats.Stats(profile, stream=buf)
    stats.sort_stats("cumulative").print_stats(r"/work/main/(app|tenants)/", 18)
    # Own time (tottime) by where the code lives: how much is ORM, driver, our code, waiting.
    groups: dict[str, float] = {}
    for (filename, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
            if key == "psycopg":
                key = "psycopg (driver, incl. waiting for PostgreSQL's replies)"
        elif "/work/main/" in filename or filename.startswith(str(ROOT)):
            key = "fieldday (app/, tenants/)"
        elif filename == "~":
            waits = ("select", "poll", "recv", "send", "wait")
            key = "built-ins: " + ("I/O waits" if any(x in func for x in waits) else "other C functions")
        else:
            key = "python stdlib"
        groups[key] = groups.get(key, 0.0) + tt
    total = sum(groups.values()) or 1.0
    split = [(k, v / total) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v / total >= 0.01]

    # The per-day availability query's plans for this tenant, now that it has many bookings.
    from scripts.bench.slots import SqlMeter, explain

    day = slots[0][1].astimezone(ZoneInfo(args.time_zone)).date()
    _stmt, custom, generic = explain(app, SqlMeter(engine), facts["id"], day, 1, timedelta(minutes=60),
                                     datetime.now(UTC))
    plans = {}
    for name, plan in (("custom", custom), ("generic", generic)):
        nodes = [f"{ln.strip().removeprefix('->').strip().split(' (')[0]} rows={m.group(1)}"
                 for ln in plan.splitlines() if " Scan " in ln and (m := re.search(r" rows=(\d+)", ln))]
        took = re.search(r"Execution Time: ([\d.]+) ms", plan)
        plans[name] = ("; ".join(nodes), took.group(1) if took else "?")
    with app.app_context(), tenant_context(facts["id"], db.session):
        plans["tenant_bookings"] = db.session.scalar(text("SELECT count(*) FROM bookings"))
        db.session.rollback()
    return {"ms": [t[0] for t in timings], "stmts": [t[1] for t in timings], "sql_ms": [t[2] for t in timings],
            "prepared": prepared, "profile": buf.getvalue(), "split": split, "plans": plans}


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn",
                    help="gunicorn from the venv (default) or a threaded werkzeug server in this process")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    ap.add_argument("--server-threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    ap.add_argument("--techs", type=int, default=10, help="technicians (default 10)")
    ap.add_argument("--time-zone", default="America/New_York", help="the tenant's zone (default America/New_York)")
    ap.add_argument("--racers", type=int, default=50, help="concurrent requests for one slot (default 50)")
    ap.add_argument("--bookings", type=int, default=800, help="bookings for distinct slots (default 800)")
    ap.add_argument("--threads", type=int, default=24, help="client threads for the throughput run (default 24)")
    ap.add_argument("--warmup", type=int, default=48, help="unmeasured bookings first (default 48)")
    ap.add_argument("--floor", type=int, default=1000, help="GET /api/v1/me requests for the floor (default 1000)")
    ap.add_argument("--inprocess", type=int, default=100, help="book() calls timed in-process (default 100)")
    ap.add_argument("--profile", type=int, default=20, help="book() calls under cProfile (default 20)")
    ap.add_argument("--no-s3", action="store_true", help="do not start SeaweedFS (nothing here stores media)")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    if min(args.techs, args.racers, args.bookings, args.threads, args.workers, args.server_threads) < 1:
        ap.error("sizes must be positive")
    rng = random.Random(args.seed)
    started = time.monotonic()
    os.chdir(ROOT)

    # Distinct slots: race on day 2 (technician 0); everything else from day 3 to the horizon.
    all_slots = slot_times(args, 3, 58)
    rng.shuffle(all_slots)
    need = args.warmup + args.bookings + args.inprocess + args.profile
    if need > len(all_slots):
        ap.error(f"only {len(all_slots)} distinct slots for {need} bookings; add --techs")
    if args.racers + need > 8000:
        ap.error("at most 8000 bookings (customer phone numbers run out)")

    base = Path(tempfile.mkdtemp(prefix="fieldday-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg = Postgres(base / "pg")
    redis_server = RedisServer(base / "redis")
    s3 = None if args.no_s3 else SeaweedS3(base / "s3")
    started_svcs: list = []
    server: Server | None = None
    app = None
    try:
        log(f"starting PostgreSQL, Redis{'' if args.no_s3 else ' and SeaweedFS'} under {base}")
        if s3 is not None:
            s3.start()
            started_svcs.append(s3)
        pg.start()
        started_svcs.append(pg)
        redis_server.start()
        started_svcs.append(redis_server)
        pg.create_roles()
        if s3 is not None:
            s3.wait_ready(BUCKET)
        port = free_port()
        urls = {
            "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app"),
            "DATABASE_OWNER_URL": pg.url("fieldday_owner"),
            "REDIS_URL": redis_server.url,
            "RATELIMIT_STORAGE_URI": redis_server.url,
            "S3_ENDPOINT_URL": s3.endpoint if s3 else "http://127.0.0.1:1",
            "S3_BUCKET": BUCKET,
        }
        app = make_app(urls)
        log("running migrations as fieldday_owner")
        from flask_migrate import upgrade

        from app.extensions import db

        with app.app_context():
            upgrade()
        facts = build_tenant(app, args)
        with app.app_context():
            db.engine.dispose()
        log(f"tenant 'race': {args.techs} technicians (every day 08:00-18:00 {args.time_zone}), 2 packages")

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FIELDDAY_", "DATABASE_", "S3_", "REDIS_"))},
            "FIELDDAY_ENV": "test",
            "DATABASE_URL": urls["SQLALCHEMY_DATABASE_URI"],
            "DATABASE_OWNER_URL": urls["DATABASE_OWNER_URL"],
            "REDIS_URL": urls["REDIS_URL"],
            "S3_ENDPOINT_URL": urls["S3_ENDPOINT_URL"],
            "S3_BUCKET": BUCKET,
            "S3_ACCESS_KEY_ID": s3.access_key if s3 else "fieldday",
            "S3_SECRET_ACCESS_KEY": s3.secret_key if s3 else "fieldday-secret",
            "PUBLIC_PORT": str(port),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": "1",
        }
        server = Server(args.server, port, env, args.workers, args.server_threads, base, urls)
        server.start()
        c = Client(port, "app.localhost")
        status, body, _ = c.request("GET", "/healthz")
        c.close()
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}: {body[:300]!r}")
        desc = (f"gunicorn -w {args.workers} --threads {args.server_threads} (gthread)" if args.server == "gunicorn"
                else "werkzeug threaded, in this process")
        log(f"serving on 127.0.0.1:{port} with {desc}; /healthz ok")

        cookie, token = login(port, facts["email"])
        log("logged in over HTTP as the owner")

        log(f"race: {args.racers} concurrent POST /api/v1/bookings for one technician and one time")
        r = race(port, cookie, token, facts, args)
        with psycopg_connect(pg) as su:
            holders = su.execute(
                "SELECT count(*) FROM bookings WHERE technician_id = %s AND starts_at = %s "
                "AND status IN ('pending', 'confirmed', 'in_progress')", (facts["techs"][0], r["slot"])).fetchone()[0]
        r["holders"] = holders

        phone = args.racers
        post = "/api/v1/bookings"

        def booking_jobs(slots, first_n):
            return [("POST", post, booking_body(facts, t, s, first_n + i)) for i, (t, s) in enumerate(slots)]

        warm = all_slots[: args.warmup]
        measured = all_slots[args.warmup: args.warmup + args.bookings]
        rest = all_slots[args.warmup + args.bookings:]
        if args.warmup:
            log(f"warm-up: {args.warmup} bookings")
            load(port, cookie, token, booking_jobs(warm, phone), min(args.threads, args.warmup))
        phone += args.warmup
        log(f"throughput: {args.bookings} bookings for distinct slots from {args.threads} threads")
        pg_root = postmaster_pid(pg)
        tp = load(port, cookie, token, booking_jobs(measured, phone), args.threads, server.root_pid(), pg_root)
        phone += args.bookings
        with psycopg_connect(pg) as su:
            active = su.execute("SELECT count(*) FROM bookings WHERE status IN ('pending', 'confirmed', "
                                "'in_progress')").fetchone()[0]
        log(f"throughput: {tp['n'] / tp['wall']:.0f} req/s; statuses {tp['statuses']}")
        floor = None
        if args.floor:
            log(f"floor: {args.floor} GET /api/v1/me from {args.threads} threads")
            floor = load(port, cookie, token, [("GET", "/api/v1/me", None)] * args.floor, args.threads,
                         server.root_pid(), pg_root)
        server_log = server.log_tail() if args.server == "gunicorn" else ""
        server.stop()
        server = None

        ip = None
        if args.inprocess:
            log(f"in-process: {args.inprocess} booking.book() calls, then {args.profile} under cProfile")
            ip = in_process(app, facts, args, rest, phone)
        report(args, desc, r, tp, floor, ip, active, server_log, time.monotonic() - started)
    finally:
        if server is not None:
            server.stop()
        if app is not None:
            from app.extensions import db

            with app.app_context():
                db.engine.dispose()
        for svc in reversed(started_svcs):
            svc.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def psycopg_connect(pg: Postgres):
    import psycopg

    return psycopg.connect(pg.superuser_url("fieldday"), autocommit=True)


# --------------------------------------------------------------------------- report

def machine_info() -> list[str]:
    return machine_lines(f", Python {platform.python_version()}")


def ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:.0f}"


def cpu_line(run: dict, what: str, server: str) -> str:
    per = max(run["n"], 1) / 1000  # -> ms per item
    total = max(run["cpu_app"] + run["cpu_pg"] + run["cpu_client"], 1e-9)
    if server == "gunicorn":
        parts = (f"app server {run['cpu_app'] / per:.1f} ms, PostgreSQL {run['cpu_pg'] / per:.1f} ms, "
                 f"load generator {run['cpu_client'] / per:.1f} ms")
    else:
        parts = (f"app server + load generator (one process) {run['cpu_client'] / per:.1f} ms, "
                 f"PostgreSQL {run['cpu_pg'] / per:.1f} ms")
    return (f"CPU per {what}: {parts} (sum {total / per:.1f} ms; {os.cpu_count()} cores -> at most "
            f"~{os.cpu_count() / (total / max(run['n'], 1)):.0f}/s with all of it on this machine)")


def report(args, desc, r, tp, floor, ip, active, server_log, elapsed) -> None:
    w = print
    bar = "=" * 100
    w()
    w(bar)
    w("Booking over HTTP: summary")
    w(bar)
    for line in machine_info():
        w(line)
    w(f"server: {desc}; PostgreSQL, Redis and the load generator share the same machine")
    w(f"tenant: {args.techs} technicians, 60-minute wash (+15 min buffer), slots 90 minutes apart; "
      "POST /api/v1/bookings with session cookie + X-CSRFToken")
    w()
    s = r["statuses"]
    n201, n409 = s.count(201), s.count(409)
    n5xx = sum(1 for x in s if x >= 500)
    other = sorted(x for x in s if x not in (201, 409) and x < 500)
    ok = n201 == 1 and n409 == args.racers - 1 and n5xx == 0 and r["holders"] == 1
    w(f"(a) race: {args.racers} concurrent requests for technician 1 at {r['local']:%Y-%m-%d %H:%M} local")
    w(f"    201: {n201}   409: {n409}   5xx: {n5xx}" + (f"   other: {other}" if other else "")
      + f"   -> {'as expected (1, ' + str(args.racers - 1) + ', 0)' if ok else 'NOT as expected'}")
    w(f"    active bookings holding that time in the database: {r['holders']}")
    w(f"    409 message(s): {r['messages']}")
    w(f"    all answered in {r['wall']:.2f}s; latency p50 {ms(r['latency'], 50)} ms, max "
      f"{max(r['latency']) * 1000:.0f} ms")
    for e in r["errors"][:3]:
        w(f"    error body: {e!r}")
    w()
    lat = tp["latency"]
    created = tp["statuses"].get(201, 0)
    w(f"(b) throughput: {tp['n']} bookings for distinct slots, {args.threads} client threads, keep-alive")
    w(f"    statuses {dict(sorted(tp['statuses'].items()))}; active bookings in the database now: {active}")
    w(f"    {created / tp['wall']:.0f} bookings/s created ({tp['n'] / tp['wall']:.0f} req/s) in {tp['wall']:.1f}s;"
      f"  latency ms p50 {ms(lat, 50)}  p95 {ms(lat, 95)}  p99 {ms(lat, 99)}  max {max(lat) * 1000:.0f}")
    w("    " + cpu_line(tp, "booking", args.server))
    for e in tp["errors"][:3]:
        w(f"    error body: {e!r}")
    goal = created / tp["wall"] >= 200
    w(f"    goal >= 200 bookings/s: {'met' if goal else 'NOT met'}")
    if floor:
        fl = floor["latency"]
        w()
        w(f"    floor, GET /api/v1/me ({floor['n']} requests, same threads): {floor['n'] / floor['wall']:.0f} req/s; "
          f"latency ms p50 {ms(fl, 50)} p95 {ms(fl, 95)}; statuses {floor['statuses']}")
        w("    " + cpu_line(floor, "request", args.server))
    if ip:
        w()
        w(f"(c) in-process, server stopped: booking.book() + commit alone, sequential, {len(ip['ms'])} bookings "
          "(each in its own app context and transaction, tenant row loaded first, as a request does)")
        w(f"    ms p50 {statistics.median(ip['ms']):.1f}  p95 {pct(ip['ms'], 95):.1f}; SQL statements per booking "
          f"{statistics.median(ip['stmts']):.0f}, their execute time {statistics.median(ip['sql_ms']):.1f} ms "
          f"(the rest is Python)")
        w(f"    -> one core does ~{1000 / statistics.median(ip['ms']):.0f} bookings/s in the service alone, "
          "before HTTP, sessions, CSRF and JSON")
        if ip["prepared"]:
            w("    plans PostgreSQL chose for the availability queries psycopg prepared on the reused connection")
            w("    (committed transactions keep them; after 5 custom plans PostgreSQL may switch to a generic one):")
            for stmt, g, c in ip["prepared"]:
                w(f"      generic={g:<4} custom={c:<4} {stmt}")
        pl = ip["plans"]
        w(f"    one day's bookings query for this tenant ({pl['tenant_bookings']} bookings in all), EXPLAIN ANALYZE:")
        for name in ("custom", "generic"):
            nodes, took = pl[name]
            w(f"      {name:<8} {took} ms: {nodes}")
        w(f"    cProfile of {args.profile} bookings, own time by package: "
          + ", ".join(f"{k} {v * 100:.0f} %" for k, v in ip["split"]))
        w("    cumulative, our code only:")
        for line in ip["profile"].splitlines():
            if line.strip() and not line.startswith(("   Ordered", "   List reduced")):
                w("      " + line.rstrip())
    if server_log.strip():
        w()
        w("server log (last lines):")
        w(server_log)
    w(f"total runtime {elapsed:.0f}s")
    w(bar)


if __name__ == "__main__":
    sys.exit(main())
