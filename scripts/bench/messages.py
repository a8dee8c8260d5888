#!/usr/bin/env python
"""How fast does the SMS outbox drain, and does every text go out exactly once? (DESIGN §9,
RELIABILITY §5-6)

Starts throwaway PostgreSQL and Redis servers (scripts/lib/services.py), creates the roles with
scripts/db_roles.sql, runs the project's migrations as the owner role, and starts the project's
Twilio stand-in (scripts/standins/twilio_standin.py) in this process. Through the real services it
creates N businesses (provision_tenant), each with its own Twilio number owned by the stand-in, and
M customers each (customers.create_customer, a distinct mobile number per customer).

Each run then:
  queue   puts one reminder text per customer in the outbox with messaging.services.queue_text
          (one transaction per business; the RQ job of each row is enqueued after commit, the
          app's own path), with no worker running: rows + jobs per second;
  drain   starts two `flask worker` processes (the deployed worker: RQ's forking Worker with its
          scheduler, in the app context; `--worker simple` runs RQ's SimpleWorker in the app
          context instead, no fork per job; `--worker preload` the forking Worker after importing
          the Twilio SDK's REST modules and configuring the ORM in the parent, so each work-horse
          inherits them) and waits until every row is `sent`: texts per
          second, from the processes' start (wall) and from the first send to the last (in the
          database: min(sent_at) to max(status_at));
  check   every row `sent` (zero lost), and the stand-in received each (to, body) exactly once
          and nothing else (zero duplicates).
The stand-in is reset between runs; the figures are medians over runs.

Run from the repository root:
    .venv/bin/python scripts/bench/messages.py [--tenants 100] [--per-tenant 100] [--runs 3] [--workers 2]
    .venv/bin/python scripts/bench/messages.py --tenants 5 --per-tenant 20 --runs 1   # smoke test, ~30 s

First runs (2026-11-23, 2 shared cores, load average 2-9 from other sessions' tests): every run sent
every text exactly once (0 lost, 0 duplicates). 10,000 texts with `--worker simple`, 3 runs: drain
median 35 texts/s (27-37), queueing median 134/s. `flask worker` as deployed forks a work-horse per
job that re-imports the Twilio SDK's REST modules (~0.2-0.3 s) and redoes the ORM set-up and the
database connection: 5 texts/s (200 texts, 3 runs), so 10,000 would take over half an hour;
`--worker preload` (the same forking worker with those loaded in the parent) 16/s; SimpleWorker
on the same 200 texts 63/s.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres, RedisServer  # noqa: E402

SID = "AC" + "0" * 32
TOKEN = "standin_token"
PASSWORD = "correct-horse-battery"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def business_number(i: int) -> str:
    return f"+1737600{i:04d}"


def customer_number(i: int, j: int) -> str:
    return f"+1512{201 + i:03d}{j:04d}"  # valid US numbers (exchanges 201-500) for up to 300 businesses


# --------------------------------------------------------------------------- set-up


def build(app, args, standin) -> list:
    """Businesses with a Twilio number each, and their customers, through the real services."""
    from app.customers import services as customers
    from app.extensions import db
    from tenants.context import activate, tenant_context
    from tenants.models import Tenant
    from tenants.provisioning import provision_tenant

    ids = []
    for i in range(args.tenants):
        with app.app_context():
            tenant, _ = provision_tenant(
                business_name=f"Bench Detailing {i}",
                subdomain=f"bench{i}",
                time_zone="America/Chicago",
                currency="USD",
                owner_email=f"owner@bench{i}.test",
                owner_name="Olive Owner",
                password=PASSWORD,
                plan="teams",
            )
            tid = tenant.id
            db.session.commit()
            activate(None)
        with app.app_context(), tenant_context(tid, db.session):
            db.session.get(Tenant, tid).sms_number = business_number(i)
            for j in range(args.per_tenant):
                customers.create_customer(
                    tid, {"name": f"Customer {i}-{j}", "phone": customer_number(i, j)}, region="US"
                )
            db.session.commit()
        standin.add_number(business_number(i), friendly_name=f"fieldday:bench{i}")
        ids.append(tid)
    return ids


def queue_texts(app, tenant_ids: list, run: int) -> int:
    """One reminder per customer, through queue_text; jobs enqueued after each commit."""
    from app.customers.models import Customer
    from app.extensions import db
    from app.messaging import services as messaging
    from tenants.context import tenant_context
    from tenants.models import Tenant

    made = 0
    for tid in tenant_ids:
        with app.app_context(), tenant_context(tid, db.session):
            tenant = db.session.get(Tenant, tid)
            for customer in db.session.scalars(db.select(Customer).order_by(Customer.phone)):
                body = (
                    f"{tenant.name}: a reminder that we'll see you tomorrow at 9:00 am (run {run}, {customer.phone})."
                )
                made += bool(
                    messaging.queue_text(tenant, customer, "reminder", body, dedupe_key=f"bench:{run}:{customer.id}")
                )
            db.session.commit()
    return made


def outbox(superuser_url: str, run: int) -> dict:
    import psycopg

    with psycopg.connect(superuser_url, autocommit=True) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM messages WHERE dedupe_key LIKE %s GROUP BY status", (f"bench:{run}:%",)
            ).fetchall()
        )
        window = conn.execute(
            "SELECT extract(epoch FROM max(status_at) - min(sent_at)) FROM messages WHERE dedupe_key LIKE %s",
            (f"bench:{run}:%",),
        ).fetchone()[0]
        expected = set(
            conn.execute(
                "SELECT to_addr, body FROM messages WHERE dedupe_key LIKE %s AND direction = 'out'", (f"bench:{run}:%",)
            ).fetchall()
        )
    return {"statuses": statuses, "window": float(window or 0), "expected": expected}


# --------------------------------------------------------------------------- workers


def worker_env(urls: dict, standin_url: str) -> dict:
    keep = ("FIELDDAY_", "DATABASE_", "REDIS_", "TWILIO_", "S3_", "FLASK_")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(keep)},
        "FIELDDAY_ENV": "test",
        "FLASK_APP": "wsgi.py",
        "DATABASE_URL": urls["SQLALCHEMY_DATABASE_URI"],
        "DATABASE_OWNER_URL": urls["DATABASE_OWNER_URL"],
        "REDIS_URL": urls["REDIS_URL"],
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_API_BASE": standin_url,
        "LOG_LEVEL": "WARNING",
    }


def start_workers(kind: str, count: int, env: dict, logs: Path) -> list[subprocess.Popen]:
    procs = []
    for n in range(count):
        if kind == "fork":
            cmd = [sys.executable, "-m", "flask", "worker"]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-worker", kind]
        out = open(logs / f"worker-{kind}-{n}.log", "a")  # noqa: SIM115 - the child owns it
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def serve_worker(kind: str) -> None:
    """``--worker simple``: RQ's SimpleWorker (no fork per job) in the app context. ``--worker preload``:
    the forking Worker as `flask worker` runs it, after loading in the parent what every work-horse
    otherwise loads again (the Twilio SDK's REST modules, SQLAlchemy's mapper configuration)."""
    from rq import SimpleWorker, Worker
    from rq.serializers import JSONSerializer

    from app import create_app
    from app.extensions import get_redis
    from app.jobs import get_queue

    flask_app = create_app()
    with flask_app.app_context():
        if kind == "preload":
            import twilio.rest.api.v2010.account  # noqa: F401  (what Client.messages imports lazily)
            from sqlalchemy.orm import configure_mappers

            from app.messaging import jobs as _jobs  # noqa: F401

            configure_mappers()
        queues = [get_queue(name) for name in flask_app.config["RQ_QUEUES"]]
        worker_class = SimpleWorker if kind == "simple" else Worker
        worker_class(queues, connection=get_redis(), serializer=JSONSerializer).work(with_scheduler=True)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tenants", type=int, default=100, help="businesses (default 100)")
    ap.add_argument("--per-tenant", type=int, default=100, help="customers, one text each, per business (default 100)")
    ap.add_argument("--runs", type=int, default=3, help="queue + drain runs (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument(
        "--worker",
        choices=("fork", "simple", "preload"),
        default="fork",
        help="`flask worker` (default), RQ's SimpleWorker, or the forking worker with the SDK and ORM preloaded",
    )
    ap.add_argument("--timeout", type=float, default=900, help="seconds a drain may take before giving up")
    ap.add_argument("--serve-worker", choices=("simple", "preload"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_worker:
        serve_worker(args.serve_worker)
        return 0
    if min(args.tenants, args.per_tenant, args.runs, args.workers) < 1 or args.tenants > 300 or args.per_tenant > 9999:
        ap.error("sizes must be positive (at most 300 businesses and 9,999 customers each)")
    os.chdir(ROOT)
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="fieldday-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg, redis_server = Postgres(base / "pg"), RedisServer(base / "redis")
    from scripts.standins.twilio_standin import TwilioStandin

    standin = TwilioStandin(account_sid=SID, auth_token=TOKEN)
    running: list = []
    workers: list[subprocess.Popen] = []
    results = []
    app = None
    try:
        log(f"starting PostgreSQL, Redis and the Twilio stand-in under {base}")
        pg.start()
        running.append(pg)
        redis_server.start()
        running.append(redis_server)
        pg.create_roles()
        standin.start()
        urls = {
            "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app"),
            "DATABASE_OWNER_URL": pg.url("fieldday_owner"),
            "REDIS_URL": redis_server.url,
            "RATELIMIT_STORAGE_URI": redis_server.url,
        }
        from app import create_app
        from app.config import TestConfig

        app = create_app(
            TestConfig,
            {**urls, "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE": standin.url},
        )
        logging.getLogger().setLevel(logging.WARNING)
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
        t0 = time.monotonic()
        tenant_ids = build(app, args, standin)
        total = args.tenants * args.per_tenant
        log(f"{args.tenants} businesses x {args.per_tenant} customers in {time.monotonic() - t0:.1f} s")
        env = worker_env(urls, standin.url)
        for run in range(1, args.runs + 1):
            standin.reset()
            for i in range(args.tenants):
                standin.add_number(business_number(i), friendly_name=f"fieldday:bench{i}")
            from app.extensions import get_redis

            with app.app_context():
                get_redis().flushdb()
            t0 = time.monotonic()
            made = queue_texts(app, tenant_ids, run)
            queue_s = time.monotonic() - t0
            from app.jobs import get_queue

            with app.app_context():
                queued_jobs = get_queue("default").count
            assert made == total and queued_jobs == total, (made, queued_jobs)
            log(f"run {run}: queued {made} texts ({queued_jobs} jobs) in {queue_s:.1f} s ({made / queue_s:.0f}/s)")
            t0 = time.monotonic()
            workers = start_workers(args.worker, args.workers, env, base)
            deadline = t0 + args.timeout
            while True:
                state = outbox(pg.superuser_url("fieldday"), run)
                done = state["statuses"].get("sent", 0)
                if done == total or set(state["statuses"]) - {"sent", "queued", "sending"}:
                    break
                if any(p.poll() is not None for p in workers):
                    tails = "\n".join(f.read_text()[-3000:] for f in sorted(base.glob("worker-*.log")))
                    raise RuntimeError(f"a worker exited:\n{tails}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"drain timed out: {state['statuses']}")
                time.sleep(0.25)
            wall = time.monotonic() - t0
            stop_workers(workers)
            workers = []
            state = outbox(pg.superuser_url("fieldday"), run)
            received = collections.Counter((m["to"], m["body"]) for m in standin.messages)
            duplicates = sum(n - 1 for n in received.values() if n > 1)
            unexpected = len(set(received) - state["expected"])
            missing = len(state["expected"] - set(received))
            lost = total - state["statuses"].get("sent", 0)
            results.append(
                {
                    "queue_s": queue_s,
                    "wall": wall,
                    "window": state["window"],
                    "lost": lost,
                    "dup": duplicates,
                    "missing": missing,
                    "unexpected": unexpected,
                    "statuses": state["statuses"],
                    "received": sum(received.values()),
                }
            )
            log(
                f"run {run}: drained in {wall:.1f} s wall ({total / wall:.0f} texts/s), "
                f"{state['window']:.1f} s first send to last ({total / state['window']:.0f} texts/s); "
                f"rows {state['statuses']}, stand-in received {sum(received.values())}, "
                f"duplicates {duplicates}, missing {missing}, unexpected {unexpected}"
            )
    finally:
        if workers:
            stop_workers(workers)
        if app is not None:
            from app.extensions import db

            with app.app_context():
                db.engine.dispose()
        standin.stop()
        for svc in reversed(running):
            svc.stop()
        shutil.rmtree(base, ignore_errors=True)

    report(args, results, started)
    return 0 if all(r["lost"] == r["dup"] == r["missing"] == r["unexpected"] == 0 for r in results) else 1


def report(args, results: list[dict], started: float) -> None:
    total = args.tenants * args.per_tenant
    ok = all(r["lost"] == r["dup"] == r["missing"] == r["unexpected"] == 0 for r in results)

    def rates(key: str) -> str:
        values = [total / r[key] for r in results if r[key] > 0]
        runs = ", ".join(f"{v:.0f}" for v in values)
        return f"median {statistics.median(values):.0f}/s (runs: {runs})" if values else "n/a"

    kind = {
        "fork": "`flask worker` (RQ's forking Worker, as deployed)",
        "simple": "RQ SimpleWorker in the app context (no fork per job)",
        "preload": "RQ's forking Worker, Twilio SDK and ORM mappers preloaded in the parent",
    }[args.worker]
    print()
    print(f"SMS outbox: {total} texts ({args.tenants} businesses x {args.per_tenant} customers), {len(results)} run(s)")
    print(f"  workers: {args.workers} x {kind}, Twilio stand-in (official SDK) in the benchmark's process")
    for line in machine_lines():
        print(f"  {line}")
    print(f"  queue (rows + RQ jobs, no worker running): {rates('queue_s')}")
    print(f"  drain, wall from the workers' start:       {rates('wall')}")
    print(f"  drain, first send to last (database):      {rates('window')}")
    print(f"  lost (rows not sent):             {[r['lost'] for r in results]}")
    print(f"  duplicates at the stand-in:       {[r['dup'] for r in results]}")
    print(f"  missing / unexpected at stand-in: {[(r['missing'], r['unexpected']) for r in results]}")
    verdict = "OK: every text sent, each exactly once" if ok else "PROBLEM: see above"
    print(f"  {verdict}; took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
