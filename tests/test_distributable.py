"""The schema stays distributable by tenant_id (DESIGN §3; docs/scale-out.md), and the app's use of
connections stays safe behind PgBouncer in transaction mode (RELIABILITY §1.4).

tests/test_isolation_sql.py (T2) already lints that tenant tables' foreign keys contain tenant_id
and that no unique index on a tenant table leaves it out. This file adds what Citus / Azure Cosmos
DB for PostgreSQL needs beyond that: tenant_id paired with tenant_id in every foreign key (not
merely present on both sides), a primary key containing it, NOT NULL, exclusion constraints that
include it with ``=``, and no foreign key from a global table into a tenant table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TENANT_TABLES = """
    SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                  AND NOT a.attisdropped)
"""

RULES = {
    # FOREIGN KEY (tenant_id, x) REFERENCES t (tenant_id, id): tenant_id maps onto tenant_id, so both
    # rows live in the same shard (co-location). A key like (x, tenant_id) -> (tenant_id, id) would pass
    # T2's "contains tenant_id on both sides" and still cross shards.
    "fk_tenant_id_not_paired": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT con.conname || ' on ' || t.relname FROM pg_constraint con JOIN t ON t.oid = con.conrelid
        JOIN pg_class r ON r.oid = con.confrelid
        WHERE con.contype = 'f' AND r.relname <> 'tenants'
          AND NOT EXISTS (
            SELECT 1 FROM unnest(con.conkey, con.confkey) AS k(src, dst)
            JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = k.src
            JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = k.dst
            WHERE sa.attname = 'tenant_id' AND da.attname = 'tenant_id')
    """,
    # A tenant table's reference to the tenants table is by tenant_id alone (tenants becomes a
    # reference table, replicated to every node).
    "fk_to_tenants_not_by_tenant_id": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT con.conname || ' on ' || t.relname FROM pg_constraint con JOIN t ON t.oid = con.conrelid
        JOIN pg_class r ON r.oid = con.confrelid
        WHERE con.contype = 'f' AND r.relname = 'tenants'
          AND con.conkey <> ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = 'tenant_id')]
    """,
    # Citus: a reference (global) table cannot point into a distributed table.
    "global_table_references_tenant_table": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT con.conname || ' on ' || c.relname FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE con.contype = 'f' AND n.nspname = 'public'
          AND con.conrelid NOT IN (SELECT oid FROM t) AND con.confrelid IN (SELECT oid FROM t)
    """,
    "no_primary_key_with_tenant_id": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT t.relname FROM t WHERE NOT EXISTS (
          SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indisprimary
            AND (SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = 'tenant_id')
                = ANY (i.indkey::int2[]))
    """,
    "tenant_id_nullable": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT t.relname FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attname = 'tenant_id'
        WHERE NOT a.attnotnull
    """,
    # Citus enforces exclusion constraints only when they include the distribution column with `=`.
    "exclusion_without_tenant_id": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT con.conname || ' on ' || t.relname FROM pg_constraint con JOIN t ON t.oid = con.conrelid
        WHERE con.contype = 'x' AND pg_get_constraintdef(con.oid) !~ 'tenant_id WITH ='
    """,
    # Unique constraints that are not backed by indexes shown in T2 (deferrable ones, partial
    # unique indexes are covered there too); listed again here so this file is complete on its own.
    "unique_without_tenant_id": f"""
        WITH t AS ({TENANT_TABLES})
        SELECT i.indexrelid::regclass::text FROM pg_index i JOIN t ON t.oid = i.indrelid
        WHERE i.indisunique
          AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = t.oid AND attname = 'tenant_id')
                  = ANY (i.indkey::int2[])
    """,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_schema_is_distributable_by_tenant_id(superuser_conn, rule):
    violations = [r[0] for r in superuser_conn.execute(RULES[rule]).fetchall()]
    assert violations == [], f"{rule}: {violations}"


def test_the_rules_catch_a_table_that_would_not_distribute(superuser_conn):
    import psycopg

    with superuser_conn.transaction():
        superuser_conn.execute("SET LOCAL ROLE fieldday_owner")
        superuser_conn.execute(
            "CREATE TABLE skewed (tenant_id uuid, id uuid, other uuid, PRIMARY KEY (id),"
            " UNIQUE (tenant_id, id), UNIQUE (other, tenant_id))"
        )
        # tenant_id present on both sides, but paired with the wrong column.
        superuser_conn.execute(
            "ALTER TABLE skewed ADD CONSTRAINT skewed_pair FOREIGN KEY (other, tenant_id) REFERENCES skewed (tenant_id, id)"
        )
        superuser_conn.execute("CREATE TABLE global_thing (id uuid PRIMARY KEY, tenant_ref uuid, skew_id uuid)")
        superuser_conn.execute(
            "ALTER TABLE global_thing ADD CONSTRAINT global_fk FOREIGN KEY (tenant_ref, skew_id) REFERENCES skewed (tenant_id, id)"
        )
        found = {rule: [r[0] for r in superuser_conn.execute(sql)] for rule, sql in RULES.items()}
        assert any("skewed_pair" in v for v in found["fk_tenant_id_not_paired"])
        assert any("global_fk" in v for v in found["global_table_references_tenant_table"])
        assert "skewed" in found["no_primary_key_with_tenant_id"]
        assert "skewed" in found["tenant_id_nullable"]
        assert any("skewed_pkey" in v for v in found["unique_without_tenant_id"])
        raise psycopg.Rollback()


def test_no_booking_overlap_constraint_is_keyed_by_tenant(superuser_conn):
    rows = superuser_conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'x' AND conname = 'ex_bookings_no_overlap'"
    ).fetchall()
    assert rows and rows[0][0].startswith("EXCLUDE USING gist (tenant_id WITH =")


# --------------------------------------------------------------------------- PgBouncer transaction mode

# Session state does not survive a transaction behind PgBouncer in transaction mode: the next
# transaction may run on another server connection (pgbouncer.org/features).
SESSION_STATE = {
    r"pg_(try_)?advisory_lock(_shared)?\s*\(": "session advisory lock: use pg_advisory_xact_lock",
    r"\bLISTEN\b|\bUNLISTEN\b": "LISTEN needs a session",
    r"\bSET\s+(SESSION\s+)?(?!LOCAL\b)(ROLE|app\.|search_path|statement_timeout|lock_timeout)": "session SET: use SET LOCAL",
    r"set_config\([^)]*,\s*false\s*\)": "session-level set_config: pass is_local = true",
    r"\bWITH\s+HOLD\b": "holdable cursors outlive the transaction",
    r"\bPREPARE\s+\w+\s+(AS|\()": "named prepared statements belong to one server connection",
    r"\bCREATE\s+TEMP(ORARY)?\s+TABLE\b(?![^\"']*ON COMMIT DROP)": "temp tables belong to one server connection",
}


def code_files():
    for folder in ("app", "tenants"):
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("pattern", sorted(SESSION_STATE))
def test_code_keeps_no_session_state_between_transactions(pattern):
    regex = re.compile(pattern, re.IGNORECASE)
    hits = []
    for path in code_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if regex.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == [], f"{SESSION_STATE[pattern]}: {hits}"


def test_tenant_context_and_booking_lock_are_transaction_scoped():
    context = (ROOT / "tenants" / "context.py").read_text()
    assert "set_config('app.tenant_id', :tenant_id, true)" in context
    booking = (ROOT / "app" / "booking" / "services.py").read_text()
    assert "pg_advisory_xact_lock" in booking
