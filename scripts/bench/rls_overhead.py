#!/usr/bin/env python
"""What does row-level security cost on a tenant-filtered query? (DESIGN §3, RELIABILITY §1.9)

Starts a throwaway PostgreSQL cluster (scripts/lib/services.py), creates the roles with
scripts/db_roles.sql, runs the project's migrations as the owner role, then creates a
tenant-owned table ``bench_items`` with the production RLS (tenants.rls.enable_rls /
grant_app), loads N tenants x M rows and times two queries for random tenants:

  latest50  the 50 newest rows of one tenant (index (tenant_id, created_at), backward)
  count     the number of one tenant's rows

Variants, interleaved per tenant in a shuffled order so drift and cache warmth hit all alike:

  rls        app role fieldday_app; BEGIN; set_config('app.tenant_id', id, true); the query
             with no tenant filter of its own (the policy filters, as the app's ORM queries do);
             COMMIT.  What the application pays.
  rls+where  the same, with an explicit ``WHERE tenant_id = $1`` repeated in the query.
  super      superuser postgres (superusers bypass RLS, even with FORCE) on the SAME table,
             ``WHERE tenant_id = $1``; BEGIN; query; COMMIT.  The headline no-RLS peer:
             identical heap and index pages, only the policy differs.
  copy       app role on ``bench_items_plain``, an identical copy with no RLS, same
             ``WHERE tenant_id = $1``.  A second peer with the same role and connection
             settings, but a physically different table (its own pages and statistics).

Each variant has its own connection (backend), so all do the same amount of work. Each
query is timed client-side with psycopg 3 on its own (``query``) and as its whole
transaction (``txn``: BEGIN .. COMMIT, including the set_config round trip for RLS), plus
the set_config round trip alone.  A server-side loop (DO blocks over chunks of the same
tenants, timed with clock_timestamp()) gives the executor cost without network or Python.
Figures are medians of per-round medians; ratios are computed within each round (paired,
same tenants), then their median and range over rounds are shown.

Run from the repository root:
    .venv/bin/python scripts/bench/rls_overhead.py [--tenants 1000] [--rows-per-tenant 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from scripts.lib.bench import machine_lines  # noqa: E402
from scripts.lib.services import Postgres  # noqa: E402
from tenants.rls import enable_rls, grant_app  # noqa: E402

TABLE = "bench_items"
PLAIN = "bench_items_plain"
INDEX = "ix_bench_items_tenant_created"

VARIANTS = ("rls", "rls+where", "super", "copy")
PEERS = ("super", "copy")
KINDS = ("latest50", "count")

# The query text per (kind, variant). RLS variants run as fieldday_app after set_config.
QUERIES = {
    ("latest50", "rls"): f"SELECT id, name, created_at FROM {TABLE} ORDER BY created_at DESC LIMIT 50",
    ("latest50", "rls+where"): f"SELECT id, name, created_at FROM {TABLE} WHERE tenant_id = %s "
                               "ORDER BY created_at DESC LIMIT 50",
    ("latest50", "super"): f"SELECT id, name, created_at FROM {TABLE} WHERE tenant_id = %s "
                           "ORDER BY created_at DESC LIMIT 50",
    ("latest50", "copy"): f"SELECT id, name, created_at FROM {PLAIN} WHERE tenant_id = %s "
                          "ORDER BY created_at DESC LIMIT 50",
    ("count", "rls"): f"SELECT count(*) FROM {TABLE}",
    ("count", "rls+where"): f"SELECT count(*) FROM {TABLE} WHERE tenant_id = %s",
    ("count", "super"): f"SELECT count(*) FROM {TABLE} WHERE tenant_id = %s",
    ("count", "copy"): f"SELECT count(*) FROM {PLAIN} WHERE tenant_id = %s",
}

SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
EXPLAINED = (
    ("rls", "fieldday_app under RLS, policy only (after set_config)"),
    ("rls+where", "fieldday_app under RLS, policy + WHERE tenant_id = <literal>"),
    ("super", "superuser postgres, RLS bypassed, WHERE tenant_id = <literal>"),
)


def plain_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- setup

def migrate(pg: Postgres) -> None:
    """The project's own migrations, run as the owner role (migrations/env.py)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.config import TestConfig

    app = create_app(TestConfig, {
        "SQLALCHEMY_DATABASE_URI": pg.url("fieldday_app"),
        "DATABASE_OWNER_URL": pg.url("fieldday_owner"),
        "REDIS_URL": "redis://127.0.0.1:1/0",
    })
    with app.app_context():
        upgrade()
        from app.extensions import db

        db.engine.dispose()


def create_bench_tables(owner: psycopg.Connection) -> None:
    """As the owner role, the way a migration would: table, index, production RLS, grants."""
    statements = [
        f"""
        CREATE TABLE {TABLE} (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            name text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_{TABLE} PRIMARY KEY (tenant_id, id)
        )
        """,
        f"CREATE INDEX {INDEX} ON {TABLE} (tenant_id, created_at)",
        *enable_rls(TABLE),
        grant_app(TABLE),
        # The peer copy: same columns, keys and indexes; no RLS at all.
        f"""
        CREATE TABLE {PLAIN} (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            name text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_{PLAIN} PRIMARY KEY (tenant_id, id)
        )
        """,
        f"CREATE INDEX ix_{PLAIN}_tenant_created ON {PLAIN} (tenant_id, created_at)",
        grant_app(PLAIN, "SELECT"),
    ]
    with owner.transaction():
        for stmt in statements:
            owner.execute(stmt)


def load(su: psycopg.Connection, tenants: int, rows_per_tenant: int) -> tuple[list[str], list[str]]:
    """As the superuser: tenants, then rows in time order across tenants (as they would
    arrive in production, so one tenant's rows are spread over the heap), then the copy.
    Returns the tenant ids and notes for the report."""
    notes = []
    # Autovacuum off for this throwaway cluster, so it cannot wake up in the middle of a
    # round on a 2-core machine; we VACUUM ANALYZE explicitly below.
    su.execute("ALTER SYSTEM SET autovacuum = off")
    su.execute("SELECT pg_reload_conf()")
    # The cluster runs with synchronous_commit=off. VACUUM marks a page all-visible only
    # once its rows' commit hint bits are set, which waits until the commit record is
    # flushed; a VACUUM right after an async commit therefore leaves pages not all-visible
    # and count(*) loses its index-only scan (seen: the copy 10x slower than the original).
    su.execute("SET synchronous_commit = on")
    su.execute(
        "INSERT INTO tenants (subdomain, name, time_zone, currency) "
        "SELECT 'bench-' || i, 'Bench business ' || i, 'America/Chicago', 'USD' "
        "FROM generate_series(1, %s) AS i",
        (tenants,),
    )
    su.execute(
        f"INSERT INTO {TABLE} (tenant_id, name, created_at) "
        "SELECT t.id, 'item ' || g, "
        "       timestamptz '2024-01-01 00:00+00' + g * interval '10 minutes' "
        "       + floor(random() * 600) * interval '1 second' "
        "FROM generate_series(1, %s) AS g CROSS JOIN tenants AS t ORDER BY g",
        (rows_per_tenant,),
    )
    # Same rows, same physical order, indexes maintained the same way.
    su.execute(f"INSERT INTO {PLAIN} SELECT * FROM {TABLE}")
    su.execute("CHECKPOINT")
    for table in ("tenants", TABLE, PLAIN):
        su.execute(f"VACUUM (ANALYZE) {table}")
    su.execute("CHECKPOINT")
    for rel, pages, visible in su.execute(
        "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
        ([TABLE, PLAIN],),
    ).fetchall():
        notes.append(f"{rel}: {visible}/{pages} heap pages all-visible after VACUUM")
        if visible < pages:
            log(f"WARNING: {rel} has only {visible}/{pages} pages all-visible; index-only scans will "
                "fetch heap pages")
    try:
        su.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        # Heaps first, then the (tenant_id, created_at) indexes the queries use, so the
        # indexes are what survives if shared_buffers is smaller than everything. The
        # primary-key indexes are not read by either query.
        rels = (TABLE, PLAIN, INDEX, f"ix_{PLAIN}_tenant_created")
        for rel in rels:
            su.execute("SELECT pg_prewarm(%s)", (rel,))
        notes.append("pg_prewarm: " + ", ".join(rels))
    except psycopg.Error as exc:  # contrib missing: the warm-up round still warms the cache
        notes.append(f"pg_prewarm unavailable ({exc.__class__.__name__}); warm-up round only")
    ids = [str(r[0]) for r in su.execute("SELECT id FROM tenants ORDER BY id").fetchall()]
    return ids, notes


def sanity_checks(conns: dict[str, psycopg.Connection], variants: tuple[str, ...], tenant_ids: list[str],
                  rows_per_tenant: int) -> None:
    """The comparison is only fair if every variant returns the same rows."""
    app = conns["rls"]
    a, b = tenant_ids[0], tenant_ids[-1]
    assert app.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 0, "no tenant must mean no rows"
    for t in (a, b):
        results = {}
        for variant in variants:
            conn = conns[variant]
            for kind in KINDS:
                with conn.transaction():
                    if variant.startswith("rls"):
                        conn.execute(SET_TENANT, (t,))
                    q = QUERIES[(kind, variant)]
                    results[(kind, variant)] = conn.execute(q, (t,) if "%s" in q else None).fetchall()
        for kind in KINDS:
            ref = results[(kind, "super")]
            for variant in variants:
                assert results[(kind, variant)] == ref, f"{kind}/{variant} differs from super for {t}"
        assert results[("count", "rls")][0][0] == rows_per_tenant
    with app.transaction():
        app.execute(SET_TENANT, (a,))
        leaked = app.execute(QUERIES[("count", "rls+where")], (b,)).fetchone()[0]
    assert leaked == 0, "tenant A saw tenant B's rows"


def explain(conns: dict[str, psycopg.Connection], tenant: str) -> dict[tuple[str, str], str]:
    plans = {}
    for kind in KINDS:
        for variant, _ in EXPLAINED:
            conn = conns[variant]
            q = QUERIES[(kind, variant)].replace("%s", sql.Literal(tenant).as_string(conn))
            with conn.transaction():
                if variant.startswith("rls"):
                    conn.execute(SET_TENANT, (tenant,))
                rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q).fetchall()
            plans[(kind, variant)] = "\n".join(r[0] for r in rows)
    return plans


# --------------------------------------------------------------------------- client side

def timed_txn(conn: psycopg.Connection, kind: str, variant: str, tenant: str) -> tuple[int, int, int]:
    """One transaction, like the app's: returns (txn_ns, set_config_ns, query_ns)."""
    q = QUERIES[(kind, variant)]
    params = (tenant,) if "%s" in q else None
    clock = time.perf_counter_ns
    t0 = clock()
    conn.execute("BEGIN")
    s0 = clock()
    if variant.startswith("rls"):
        conn.execute(SET_TENANT, (tenant,)).fetchone()
    s1 = clock()
    cur = conn.execute(q, params)
    cur.fetchall()
    q1 = clock()
    conn.execute("COMMIT")
    t1 = clock()
    return t1 - t0, s1 - s0, q1 - s1


def client_round(conns: dict[str, psycopg.Connection], tenants: list[str], variants: tuple[str, ...],
                 rng: random.Random) -> dict[tuple[str, str, str], float]:
    """One round: for each tenant, every (kind, variant) once in a shuffled order.
    Returns medians in ms keyed by (kind, variant, metric)."""
    samples: dict[tuple[str, str, str], list[int]] = {}
    pairs = [(k, v) for k in KINDS for v in variants]
    for tenant in tenants:
        rng.shuffle(pairs)
        for kind, variant in pairs:
            txn, setcfg, query = timed_txn(conns[variant], kind, variant, tenant)
            samples.setdefault((kind, variant, "txn"), []).append(txn)
            samples.setdefault((kind, variant, "query"), []).append(query)
            if variant.startswith("rls"):
                samples.setdefault((kind, variant, "set_config"), []).append(setcfg)
    return {key: statistics.median(vals) / 1e6 for key, vals in samples.items()}


# --------------------------------------------------------------------------- server side

def do_block(kind: str, variant: str) -> str:
    """A DO block that runs the query once per tenant in current_setting('bench.tenants')."""
    body = []
    if variant in ("rls", "rls+where", "set_config"):
        body.append("PERFORM set_config('app.tenant_id', t::text, true);")
    if variant != "set_config":
        body.append(QUERIES[(kind, variant)].replace("%s", "t").replace("SELECT ", "PERFORM ", 1) + ";")
    return f"""
DO $bench$
DECLARE
    ts uuid[] := current_setting('bench.tenants')::uuid[];
    t uuid;
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    FOREACH t IN ARRAY ts LOOP
        {" ".join(body)}
    END LOOP;
    PERFORM set_config('bench.elapsed_us',
                       (extract(epoch FROM clock_timestamp() - t0) * 1e6)::bigint::text, false);
END
$bench$"""


def server_round(conns: dict[str, psycopg.Connection], tenants: list[str], variants: tuple[str, ...],
                 rng: random.Random, chunk: int = 250) -> dict[tuple[str, str], list[float]]:
    """Microseconds per query, executor only (no network, no client), one figure per chunk
    of tenants. Per chunk every (kind, variant) runs once over the same tenants, in a
    shuffled order, so chunks pair up across variants and a preempted chunk stays local."""
    jobs = [(k, v) for k in KINDS for v in variants] + [("-", "set_config")]
    out: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}
    for start in range(0, len(tenants), chunk):
        part = tenants[start:start + chunk]
        arr = "{" + ",".join(part) + "}"
        for conn in conns.values():
            conn.execute("SELECT set_config('bench.tenants', %s, false)", (arr,))
        rng.shuffle(jobs)
        for kind, variant in jobs:
            conn = conns["rls" if variant == "set_config" else variant]
            conn.execute(do_block(kind if kind != "-" else "count", variant))
            us = int(conn.execute("SELECT current_setting('bench.elapsed_us')").fetchone()[0])
            out[(kind, variant)].append(us / len(part))
    return out


# --------------------------------------------------------------------------- report

def machine_info(su: psycopg.Connection) -> list[str]:
    pgv = su.execute("SHOW server_version").fetchone()[0]
    sb = su.execute("SHOW shared_buffers").fetchone()[0]
    return [
        *machine_lines(),
        (f"software: PostgreSQL {pgv} (shared_buffers={sb}, fsync=off, loopback TCP), "
         f"Python {platform.python_version()}, psycopg {psycopg.__version__}"),
    ]


def med(rounds: list[dict], key) -> float:
    return statistics.median(r[key] for r in rounds)


def ratio(rounds: list[dict], num, den) -> tuple[float, float, float]:
    rs = [r[num] / r[den] for r in rounds]
    return statistics.median(rs), min(rs), max(rs)


def smed(rounds: list[dict], key) -> float:
    """Server side: median over rounds of the median over chunks."""
    return statistics.median(statistics.median(r[key]) for r in rounds)


def sratio(rounds: list[dict], num, den, minus=None) -> tuple[float, float, float]:
    """Server side: per round the median of paired per-chunk ratios; then over rounds."""
    rs = []
    for r in rounds:
        sub = r[minus] if minus else [0.0] * len(r[num])
        rs.append(statistics.median((n - m) / d for n, d, m in zip(r[num], r[den], sub, strict=True)))
    return statistics.median(rs), min(rs), max(rs)


def fmt_ratio(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.2f}x  (rounds {r[1]:.2f}-{r[2]:.2f})"


def connect(url: str, prepare_threshold: int | None) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, prepare_threshold=prepare_threshold)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenants", type=int, default=1000, help="default 1000")
    ap.add_argument("--rows-per-tenant", type=int, default=1000, help="default 1000")
    ap.add_argument("--rounds", type=int, default=6, help="measured rounds (default 6)")
    ap.add_argument("--queries", type=int, default=2000,
                    help="random tenants per round; each runs every query x variant once (default 2000)")
    ap.add_argument("--warmup", type=int, default=300, help="unmeasured tenants before round 1 (default 300)")
    ap.add_argument("--no-copy", action="store_true", help="skip the non-RLS copy peer (saves ~1/4 of the time)")
    ap.add_argument("--prepare-threshold", default="5",
                    help="psycopg prepare_threshold: 5 is psycopg's (and so SQLAlchemy's) default; "
                         "'none' never server-prepares, as behind transaction-mode PgBouncer")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    if min(args.tenants, args.rows_per_tenant, args.rounds, args.queries) < 1 or args.warmup < 0:
        ap.error("sizes must be positive")
    prepare_threshold = None if args.prepare_threshold.lower() == "none" else int(args.prepare_threshold)
    variants = tuple(v for v in VARIANTS if not (args.no_copy and v == "copy"))
    peers = tuple(p for p in PEERS if p in variants)
    rng = random.Random(args.seed)

    started = time.monotonic()
    os.chdir(ROOT)
    base = Path(tempfile.mkdtemp(prefix="fieldday-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory below
    pg = Postgres(base / "pg")
    opened: list[psycopg.Connection] = []
    try:
        log(f"starting PostgreSQL on 127.0.0.1:{pg.port} under {base}")
        pg.start()
        pg.create_roles()
        log("running migrations as fieldday_owner")
        migrate(pg)

        owner = connect(plain_url(pg.url("fieldday_owner")), None)
        opened.append(owner)
        create_bench_tables(owner)
        admin = connect(pg.superuser_url("fieldday"), None)
        opened.append(admin)

        total = args.tenants * args.rows_per_tenant
        log(f"loading {args.tenants:,} tenants x {args.rows_per_tenant:,} rows = {total:,} rows "
            f"(+ the same into {PLAIN})")
        t0 = time.monotonic()
        tenant_ids, notes = load(admin, args.tenants, args.rows_per_tenant)
        load_s = time.monotonic() - t0
        sizes = admin.execute(
            "SELECT pg_size_pretty(pg_table_size(%s::regclass)), pg_size_pretty(pg_indexes_size(%s::regclass))",
            (TABLE, TABLE)).fetchone()
        notes.insert(0, f"{TABLE}: heap {sizes[0]}, indexes {sizes[1]} (the copy is the same size)")
        log(f"loaded in {load_s:.1f}s; {notes[0]}")

        # One connection (one backend) per variant, so each does the same amount of work
        # and no variant inherits another's scheduling or cache history.
        conns: dict[str, psycopg.Connection] = {}
        for v in variants:
            url = pg.superuser_url("fieldday") if v == "super" else plain_url(pg.url("fieldday_app"))
            conns[v] = connect(url, prepare_threshold)
            opened.append(conns[v])

        sanity_checks(conns, variants, tenant_ids, args.rows_per_tenant)
        log("sanity: no tenant -> 0 rows; every variant returns identical rows; no cross-tenant rows")

        if args.warmup:
            log(f"warm-up: {args.warmup} tenants")
            warm = [rng.choice(tenant_ids) for _ in range(args.warmup)]
            client_round(conns, warm, variants, rng)
            server_round(conns, warm, variants, rng)

        client_rounds, server_rounds = [], []
        for i in range(1, args.rounds + 1):
            sample = [rng.choice(tenant_ids) for _ in range(args.queries)]
            r0 = time.monotonic()
            client_rounds.append(client_round(conns, sample, variants, rng))
            server_rounds.append(server_round(conns, sample, variants, rng))
            c = client_rounds[-1]
            sv = {k: statistics.median(v) for k, v in server_rounds[-1].items()}
            log(f"round {i}/{args.rounds} ({time.monotonic() - r0:.1f}s): query ms rls/super "
                f"latest50 {c[('latest50', 'rls', 'query')]:.3f}/{c[('latest50', 'super', 'query')]:.3f}, "
                f"count {c[('count', 'rls', 'query')]:.3f}/{c[('count', 'super', 'query')]:.3f}; "
                f"server us rls/super latest50 {sv[('latest50', 'rls')]:.1f}/{sv[('latest50', 'super')]:.1f}, "
                f"count {sv[('count', 'rls')]:.1f}/{sv[('count', 'super')]:.1f}")

        plans = explain(conns, rng.choice(tenant_ids))
        info = machine_info(admin)
        report(args, variants, peers, client_rounds, server_rounds, plans, info, notes, load_s,
               time.monotonic() - started, prepare_threshold)
    finally:
        for c in opened:
            c.close()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report(args, variants, peers, client_rounds, server_rounds, plans, info, notes, load_s, elapsed,
           prepare_threshold) -> None:
    total = args.tenants * args.rows_per_tenant
    w = print
    bar = "=" * 100
    w()
    w(bar)
    w("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF): one random tenant, after the warm-up")
    w(bar)
    for kind in KINDS:
        for variant, who in EXPLAINED:
            w(f"\n--- {kind}: {who}")
            w(f"    {QUERIES[(kind, variant)]}")
            w(plans[(kind, variant)])
    rls_plans = [plans[(k, "rls")] for k in KINDS]
    uses_index = all(INDEX in p for p in rls_plans) and all("Seq Scan" not in p for p in rls_plans)
    same_shape = all(
        plans[(k, "rls")].splitlines()[0].split(" (")[0] == plans[(k, "super")].splitlines()[0].split(" (")[0]
        for k in KINDS)
    w(f"\nIndex {INDEX} used under RLS for both queries: {'yes' if uses_index else 'NO - see the plans above'}"
      f"; top plan node same as without RLS: {'yes' if same_shape else 'NO'}")

    w()
    w(bar)
    w("RLS overhead: summary")
    w(bar)
    for line in info:
        w(line)
    w(f"data: {args.tenants:,} tenants x {args.rows_per_tenant:,} rows = {total:,} rows in {TABLE}, "
      f"loaded in time order across tenants ({load_s:.0f}s); index {INDEX} (tenant_id, created_at)")
    for note in notes:
        w(f"      {note}")
    w(f"runs: {args.rounds} rounds x {args.queries:,} random tenants; per tenant every query x variant once in a "
      f"shuffled order;")
    w(f"      one connection per variant; autovacuum off; psycopg prepare_threshold={prepare_threshold}")
    w("figures: median over rounds of each round's median. Ratios are taken within each round (same tenants,")
    w("      interleaved), then the median and the range over rounds are shown.")
    w()
    w("No-RLS peers:")
    w("  super     superuser `postgres` on the SAME table, WHERE tenant_id = $1. Superusers bypass RLS even with")
    w("            FORCE ROW LEVEL SECURITY (the owner does not, because of FORCE), so its plan has no policy")
    w("            qual and reads the very same pages. The headline peer.")
    if "copy" in peers:
        w(f"  copy      fieldday_app on {PLAIN}: same columns, keys, indexes and rows, no RLS, same WHERE.")
        w("            Same role and connection settings as the RLS runs, but a different (equally warm) table.")
    w("RLS (fieldday_app: FORCE RLS, policy tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid):")
    w("  rls       no tenant filter in the SQL; the policy filters (what the app's ORM queries rely on)")
    w("  rls+where the policy plus an explicit WHERE tenant_id = $1 (the usual 'repeat the filter' advice)")
    w()
    w("Client side (psycopg 3 over loopback TCP), ms:")
    w("  query = the query's round trip alone (incl. fetching rows into Python)")
    w("  txn   = BEGIN + [set_config] + query + COMMIT, the way the app runs it")
    w(f"  {'query':<10}{'variant':<11}{'query ms':>10}{'txn ms':>10}{'set_config ms':>15}")
    for kind in KINDS:
        for v in variants:
            sc = f"{med(client_rounds, (kind, v, 'set_config')):15.3f}" if v.startswith("rls") else f"{'-':>15}"
            w(f"  {kind:<10}{v:<11}{med(client_rounds, (kind, v, 'query')):10.3f}"
              f"{med(client_rounds, (kind, v, 'txn')):10.3f}{sc}")
    w()
    w("  RLS / no-RLS, client side:")
    for kind in KINDS:
        for v in ("rls", "rls+where"):
            for p in peers:
                rq = ratio(client_rounds, (kind, v, "query"), (kind, p, "query"))
                rt = ratio(client_rounds, (kind, v, "txn"), (kind, p, "txn"))
                w(f"  {kind:<10}{v + ' / ' + p:<20} query alone {fmt_ratio(rq):<30} whole txn {fmt_ratio(rt)}")
    w()
    w("Server side (a DO block loops over the same tenants, timed with clock_timestamp(): executor only, no")
    w("network, no Python), us per query; median over rounds of the median over chunks of 250 tenants.")
    w("The rls variants include their in-loop set_config call:")
    w("  " + f"{'query':<10}" + "".join(f"{v:>11}" for v in variants))
    for kind in KINDS:
        w("  " + f"{kind:<10}" + "".join(f"{smed(server_rounds, (kind, v)):11.1f}" for v in variants))
    setcfg_us = smed(server_rounds, ("-", "set_config"))
    w(f"  set_config alone: {setcfg_us:.1f} us")
    w()
    w("  RLS / no-RLS, server side (ratios of paired chunks; 'policy only' subtracts the set_config call):")
    for kind in KINDS:
        for v in ("rls", "rls+where"):
            for p in peers:
                r = sratio(server_rounds, (kind, v), (kind, p))
                net = sratio(server_rounds, (kind, v), (kind, p), minus=("-", "set_config"))
                w(f"  {kind:<10}{v + ' / ' + p:<20} {fmt_ratio(r):<30} policy only {net[0]:.2f}x")
    w()
    lq = ratio(client_rounds, ("latest50", "rls", "query"), ("latest50", "super", "query"))
    cq = ratio(client_rounds, ("count", "rls", "query"), ("count", "super", "query"))
    lt = ratio(client_rounds, ("latest50", "rls", "txn"), ("latest50", "super", "txn"))
    ct = ratio(client_rounds, ("count", "rls", "txn"), ("count", "super", "txn"))
    ls = sratio(server_rounds, ("latest50", "rls"), ("latest50", "super"))
    cs = sratio(server_rounds, ("count", "rls"), ("count", "super"))
    sc = statistics.median(med(client_rounds, (k, "rls", "set_config")) for k in KINDS)
    w(bar)
    w("HEADLINE  RLS / no-RLS (superuser on the same table), medians:")
    w(f"  query alone, client side : latest50 {lq[0]:.2f}x   count {cq[0]:.2f}x")
    w(f"  whole transaction        : latest50 {lt[0]:.2f}x   count {ct[0]:.2f}x"
      f"   (includes the extra set_config round trip, {sc:.3f} ms here)")
    w(f"  executor only (server)   : latest50 {ls[0]:.2f}x   count {cs[0]:.2f}x"
      f"   (incl. set_config, {setcfg_us:.1f} us)")
    w(f"total runtime {elapsed:.0f}s")
    w(bar)


if __name__ == "__main__":
    sys.exit(main())
