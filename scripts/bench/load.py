#!/usr/bin/env python
"""Load benchmark (issue 11): locust, headless and bounded, against the app served by gunicorn on
loopback. Goal on this machine: p95 <= 100 ms at 100 requests/s with 0 errors.

Installs locust from requirements-bench.txt into .venv if missing, starts throwaway PostgreSQL and
Redis (scripts/lib/services.py; no S3: nothing here stores media), creates the roles, migrates, and
builds --tenants businesses through the real services (provision_tenant, catalog.create_package,
booking.create_technician with every day 08:00-17:00). Then serves the app with
``gunicorn -w WORKERS --threads THREADS wsgi:app`` and runs scripts/bench/locustfile.py --runs
times (each --users visitors for --duration, paced to --rate requests/s in total), printing each
run's p50/p95/p99, request rate and errors from locust's CSV, then the medians over runs.
Everything is stopped and deleted at the end.

    .venv/bin/python scripts/bench/load.py                    # 3 runs x 60 s at 100 req/s, 50 tenants
    .venv/bin/python scripts/bench/load.py --runs 1 --duration 15s --tenants 5   # smoke test
    .venv/bin/python scripts/bench/load.py --target http://127.0.0.1:5000 --tenants-file t.json  # a running app
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import time as wall
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres, RedisServer, free_port, wait_for_port  # noqa: E402

VENV = ROOT / ".venv" / "bin"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_locust() -> Path:
    locust = VENV / "locust"
    if not locust.exists():
        log("installing locust (requirements-bench.txt) into .venv")
        subprocess.run(
            [
                str(VENV / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
                str(ROOT / "requirements-bench.txt"),
            ],
            check=True,
        )
    return locust


def build_tenants(urls: dict, count: int, techs: int) -> list[dict]:
    from app import create_app
    from app.booking import services as booking
    from app.catalog import services as catalog
    from app.config import TestConfig
    from app.extensions import db
    from tenants.context import activate, tenant_context
    from tenants.provisioning import provision_tenant

    app = create_app(TestConfig, urls)
    out = []
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    every_day = {d: [(wall(8), wall(17))] for d in range(7)}
    for i in range(count):
        sub = f"load{i:04d}"
        with app.app_context():
            tenant, _ = provision_tenant(
                business_name=f"Load Detailing {i}",
                subdomain=sub,
                time_zone="America/Chicago",
                currency="USD",
                owner_email=f"owner@{sub}.test",
                owner_name="Olive Owner",
                password="correct-horse-battery",
                plan="teams",
            )
            tid = tenant.id
            db.session.commit()
            activate(None)
        with app.app_context(), tenant_context(tid, db.session):
            packages = [
                catalog.create_package(
                    tid, name="Express wash", prices={"sedan": {"price_cents": 6000, "duration_min": 60}}
                ).id,
                catalog.create_package(
                    tid, name="Full detail", prices={"sedan": {"price_cents": 18000, "duration_min": 120}}
                ).id,
            ]
            for t in range(techs):
                booking.create_technician(tid, name=f"Tech {t + 1}", hours=every_day, position=t)
            db.session.commit()
        out.append({"subdomain": sub, "packages": [str(p) for p in packages]})
    with app.app_context():
        db.engine.dispose()
    return out


def run_locust(locust: Path, target: str, port: str, tenants_file: Path, args, out: Path) -> dict:
    env = {
        **os.environ,
        "FIELDDAY_BENCH_TENANTS": str(tenants_file),
        "FIELDDAY_BENCH_PORT": port,
        "FIELDDAY_BENCH_RATE_PER_USER": str(args.rate / args.users),
    }
    cmd = [
        str(locust), "-f", str(ROOT / "scripts" / "bench" / "locustfile.py"), "--headless",
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", args.duration, "--stop-timeout", "10",
        "--host", target, "--csv", str(out), "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    with open(f"{out}.log", "w") as locust_log:  # locust's own summary; ours is printed below
        subprocess.run(
            cmd, env=env, check=True, timeout=_seconds(args.duration) + 120, stdout=locust_log, stderr=subprocess.STDOUT
        )
    rows = {r["Name"]: r for r in csv.DictReader(Path(f"{out}_stats.csv").read_text().splitlines())}
    agg = rows["Aggregated"]
    fail_csv = Path(f"{out}_failures.csv")
    failures = list(csv.DictReader(fail_csv.read_text().splitlines())) if fail_csv.exists() else []
    return {
        "requests": int(agg["Request Count"]),
        "errors": int(agg["Failure Count"]),
        "rps": float(agg["Requests/s"]),
        "p50": float(agg["50%"]),
        "p95": float(agg["95%"]),
        "p99": float(agg["99%"]),
        "by_name": {
            n: (int(r["Request Count"]), float(r["50%"]), float(r["95%"])) for n, r in rows.items() if n != "Aggregated"
        },
        "failures": [(f["Name"], f["Error"], f["Occurrences"]) for f in failures],
    }


def _seconds(duration: str) -> int:
    unit = {"s": 1, "m": 60, "h": 3600}[duration[-1]] if duration[-1] in "smh" else 1
    return int(duration.rstrip("smh")) * unit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--techs", type=int, default=3)
    ap.add_argument("--users", type=int, default=100, help="concurrent visitors (locust -u)")
    ap.add_argument("--spawn-rate", type=float, default=20)
    ap.add_argument("--rate", type=float, default=100, help="target requests/s in total")
    ap.add_argument("--duration", default="60s", help="per run (locust -t)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    ap.add_argument("--target", help="an already running app (then --tenants-file is required)")
    ap.add_argument("--tenants-file", type=Path)
    args = ap.parse_args()

    locust = ensure_locust()
    base = Path(tempfile.mkdtemp(prefix="fieldday-load-"))
    base.chmod(0o755)
    pg = redis = server = None
    try:
        if args.target:
            target, tenants_file = args.target, args.tenants_file
            port = target.rsplit(":", 1)[-1].strip("/")
        else:
            log("starting PostgreSQL and Redis")
            pg = Postgres(base / "pg").start()
            redis = RedisServer(base / "redis").start()
            pg.create_roles()
            port = str(free_port())
            urls = {
                "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app"),
                "DATABASE_OWNER_URL": pg.url("fieldday_owner"),
                "REDIS_URL": redis.url,
                "RATELIMIT_STORAGE_URI": redis.url,
                "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
                "PUBLIC_PORT": port,
            }
            log(f"building {args.tenants} tenants with {args.techs} technicians each")
            tenants = build_tenants(urls, args.tenants, args.techs)
            tenants_file = base / "tenants.json"
            tenants_file.write_text(json.dumps(tenants))
            env = {
                **os.environ,
                "FIELDDAY_ENV": "test",
                "DATABASE_URL": urls["SQLALCHEMY_DATABASE_URI"],
                "DATABASE_OWNER_URL": urls["DATABASE_OWNER_URL"],
                "REDIS_URL": redis.url,
                "S3_ENDPOINT_URL": urls["S3_ENDPOINT_URL"],
                "PUBLIC_PORT": port,
                "LOG_LEVEL": "WARNING",
            }
            cmd = [str(VENV / "gunicorn"), "-w", str(args.workers), "--threads", str(args.threads),
                   "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"]  # fmt: skip
            server_log = open(base / "gunicorn.log", "w")  # noqa: SIM115 - the server process owns it
            server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
            wait_for_port(int(port), timeout=60, proc=server)
            target = f"http://127.0.0.1:{port}"
        log(f"target {target}: {args.runs} run(s) x {args.duration}, {args.users} users, {args.rate:g} req/s")
        results = []
        for i in range(args.runs):
            r = run_locust(locust, target, port, tenants_file, args, base / f"run{i}")
            results.append(r)
            log(
                f"run {i + 1}: {r['requests']} requests, {r['rps']:.1f} req/s, p50 {r['p50']:.0f} ms, "
                f"p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms, errors {r['errors']}"
            )
            for name, (count, p50, p95) in sorted(r["by_name"].items()):
                print(f"        {name:<34} {count:>6}  p50 {p50:>5.0f} ms  p95 {p95:>5.0f} ms")
            for name, error, occ in r["failures"]:
                print(f"        FAILURE {name}: {error} x{occ}")
        print()
        for line in machine_lines():
            print(line)
        med = {k: statistics.median(r[k] for r in results) for k in ("rps", "p50", "p95", "p99", "errors")}
        print(
            f"load: median of {len(results)} run(s): {med['rps']:.1f} req/s, p50 {med['p50']:.0f} ms, "
            f"p95 {med['p95']:.0f} ms, p99 {med['p99']:.0f} ms, errors {med['errors']:.0f} "
            f"(total errors {sum(r['errors'] for r in results)} of {sum(r['requests'] for r in results)} requests)"
        )
        ok = med["p95"] <= 100 and med["rps"] >= 0.95 * args.rate and all(r["errors"] == 0 for r in results)
        print(f"goal p95 <= 100 ms at {args.rate:g} req/s with 0 errors: {'met' if ok else 'NOT met'}")
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
