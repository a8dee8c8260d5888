"""Tenant isolation at the SQL level (RELIABILITY §9, T1–T9). These talk to PostgreSQL
directly as the app role, the way the application connects."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"


def tenant_tables(conn) -> list[str]:
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                      AND NOT a.attisdropped)
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


def test_t1_no_tenant_means_no_rows_on_every_tenant_table(two_tenants, app_conn):
    tables = tenant_tables(app_conn) + ["tenants"]
    assert {"users", "invitations", "audit_log"} <= set(tables)
    for table in tables:
        count = app_conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert count == 0, f"{table} shows {count} rows with no tenant set"


def test_t1_with_a_tenant_only_its_rows(two_tenants, app_conn):
    a, b = two_tenants
    with app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        tenant_ids = {r[0] for r in app_conn.execute("SELECT DISTINCT tenant_id FROM users")}
        assert tenant_ids == {a.id}
        emails = {r[0] for r in app_conn.execute("SELECT email FROM users")}
        assert a.owner.email in emails and b.owner.email not in emails
        assert app_conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 1


LINT_SQL = {
    "rls_not_enabled_or_forced": """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r','p')
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
               OR c.relname = 'tenants')
          AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
    """,
    # Exactly one permissive ALL policy per table; USING and WITH CHECK are both the exact
    # fail-closed expression on the row's own tenant column.
    "policy_shape": """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_policy p ON p.polrelid = c.oid
        WHERE n.nspname = 'public' AND c.relkind IN ('r','p')
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
               OR c.relname = 'tenants')
        GROUP BY c.relname
        HAVING count(p.polname) <> 1
            OR bool_or(p.polcmd <> '*' OR NOT p.polpermissive)
            OR bool_or(pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM format(
                 '(%s = (NULLIF(current_setting(''app.tenant_id''::text, true), ''''::text))::uuid)',
                 CASE WHEN c.relname = 'tenants' THEN 'id' ELSE 'tenant_id' END))
            OR bool_or(pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM pg_get_expr(p.polqual, p.polrelid))
    """,
    # A foreign key between tenant-owned tables must carry tenant_id (RELIABILITY §1.5).
    "fk_without_tenant_id": """
        SELECT con.conname || ' on ' || c.relname FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid JOIN pg_class r ON r.oid = con.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE con.contype = 'f' AND n.nspname = 'public'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
          AND NOT (
            (r.relname = 'tenants' AND con.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'tenant_id')])
            OR (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'tenant_id') = ANY (con.conkey)
               AND (SELECT attnum FROM pg_attribute WHERE attrelid = r.oid AND attname = 'tenant_id') = ANY (con.confkey)
          )
    """,
    # Unique constraints on tenant tables must be per tenant (the tenants table's own
    # subdomain is the one global name, by design).
    "global_unique": """
        SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.indisunique AND n.nspname = 'public'
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
          AND NOT (SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'tenant_id') = ANY (i.indkey::int2[])
    """,
    "view_without_security_invoker": """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v','m') AND n.nspname = 'public'
          AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)
    """,
    "app_role_privileged": """
        SELECT rolname FROM pg_roles WHERE rolname = 'fieldday_app' AND (rolsuper OR rolbypassrls OR rolcreaterole)
    """,
    "app_role_owns_something": """
        SELECT c.relname FROM pg_class c WHERE c.relowner = 'fieldday_app'::regrole
        UNION ALL SELECT p.proname FROM pg_proc p WHERE p.proowner = 'fieldday_app'::regrole
        UNION ALL SELECT n.nspname FROM pg_namespace n WHERE n.nspowner = 'fieldday_app'::regrole
    """,
    "app_role_member_of_privileged_role": """
        SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
        WHERE m.member = 'fieldday_app'::regrole
    """,
    # SECURITY DEFINER functions are the named cross-tenant lookups only, each pinned to
    # an empty search_path and owned by the NOLOGIN definer role.
    "definer_functions": """
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND p.prosecdef
          AND NOT (p.proname IN ('tenant_id_for_subdomain', 'login_accounts', 'tenants_with_expired_holds',
                                  'tenant_id_for_stripe_account', 'tenants_with_unprocessed_stripe_events',
                                  'tenant_id_for_sms_number', 'tenants_with_queued_messages',
                                  'tenants_with_bookings_starting',
                                  'tenants_with_unpaid_completed',
                                  'tenant_id_for_google_channel', 'tenants_with_google_calendar',
                                  'tenants_with_open_quotes',
                                  'tenant_id_for_billing_customer', 'tenants_with_unprocessed_billing_events',
                                  'platform_audit_write', 'platform_audit_recent', 'platform_find_tenants',
                                  'platform_tenant_summary',
                                  'tenants_with_due_purges',
                                  'tenant_for_api_key', 'tenants_with_due_webhooks')
                   AND p.proowner = 'fieldday_definer'::regrole
                   AND coalesce(p.proconfig, '{}') @> ARRAY['search_path=""'])
    """,
}


@pytest.mark.parametrize("rule", sorted(LINT_SQL))
def test_t2_catalog_lint(superuser_conn, rule):
    violations = [r[0] for r in superuser_conn.execute(LINT_SQL[rule]).fetchall()]
    assert violations == [], f"{rule}: {violations}"


def test_t2_lint_catches_a_careless_migration(superuser_conn):
    """The lint must fail the day someone adds a table without RLS or with a single-column FK."""
    with superuser_conn.transaction():
        superuser_conn.execute("SET LOCAL ROLE fieldday_owner")
        superuser_conn.execute(
            "CREATE TABLE careless (tenant_id uuid NOT NULL REFERENCES tenants(id), id uuid PRIMARY KEY,"
            " user_id uuid, FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id))"
        )
        superuser_conn.execute("CREATE TABLE careless_fk (tenant_id uuid NOT NULL, id uuid, owner_id uuid)")
        superuser_conn.execute("ALTER TABLE careless_fk ADD PRIMARY KEY (tenant_id, id)")
        superuser_conn.execute("CREATE UNIQUE INDEX careless_id ON careless_fk (id)")
        superuser_conn.execute("ALTER TABLE careless_fk ADD FOREIGN KEY (owner_id) REFERENCES careless (id)")
        # RLS switched on, but with the cast that errors instead of failing closed.
        superuser_conn.execute("ALTER TABLE careless_fk ENABLE ROW LEVEL SECURITY")
        superuser_conn.execute("ALTER TABLE careless_fk FORCE ROW LEVEL SECURITY")
        superuser_conn.execute(
            "CREATE POLICY p ON careless_fk USING (tenant_id = current_setting('app.tenant_id')::uuid)"
        )
        found = {rule: [r[0] for r in superuser_conn.execute(sql)] for rule, sql in LINT_SQL.items()}
        superuser_conn.execute("SELECT 1")
        assert "careless" in found["rls_not_enabled_or_forced"]
        assert any("careless_fk" in v for v in found["fk_without_tenant_id"])
        assert any("careless" in v for v in found["global_unique"])
        assert "careless_fk" in found["policy_shape"] and "careless" in found["policy_shape"]
        raise_rollback(superuser_conn)


def raise_rollback(conn):
    raise psycopg.Rollback()


def test_t3_pooled_connection_after_commit_sees_nothing_and_no_error(two_tenants, app_conn):
    a, _ = two_tenants
    with app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        assert app_conn.execute("SELECT count(*) FROM users").fetchone()[0] >= 1
    # Same session, next transaction: the transaction-local setting is now '' (not NULL).
    with app_conn.transaction():
        assert app_conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone()[0] == ""
        assert app_conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
        assert app_conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


def test_t5_with_check_refuses_writes_into_another_tenant(two_tenants, app_conn):
    a, b = two_tenants
    with pytest.raises(errors.InsufficientPrivilege) as exc, app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        app_conn.execute(
            "INSERT INTO users (tenant_id, email, name, role, password_hash) VALUES (%s, 'x@y.test', 'X', 'tech', 'h')",
            (str(b.id),),
        )
    assert exc.value.sqlstate == "42501"
    with pytest.raises(errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        app_conn.execute("UPDATE users SET tenant_id = %s WHERE id = %s", (str(b.id), str(a.owner.id)))
    # An UPDATE aimed at B's row from A silently touches nothing (USING hides it).
    with app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        touched = app_conn.execute(
            "UPDATE users SET name = 'pwned' WHERE id = %s RETURNING id", (str(b.owner.id),)
        ).fetchall()
        assert touched == []
        deleted = app_conn.execute("DELETE FROM users WHERE id = %s RETURNING id", (str(b.owner.id),)).fetchall()
        assert deleted == []
    with app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(b.id),))
        assert app_conn.execute("SELECT name FROM users WHERE id = %s", (str(b.owner.id),)).fetchone()[0] != "pwned"


def test_t6_composite_foreign_keys_refuse_pointers_into_another_tenant(two_tenants, app_conn):
    a, b = two_tenants
    with pytest.raises(errors.ForeignKeyViolation), app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        app_conn.execute(
            "INSERT INTO invitations (tenant_id, email, role, invited_by, expires_at)"
            " VALUES (%s, 'new@a.test', 'tech', %s, now() + interval '1 day')",
            (str(a.id), str(b.owner.id)),
        )
    with pytest.raises(errors.ForeignKeyViolation), app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        app_conn.execute(
            "INSERT INTO audit_log (tenant_id, actor_id, action) VALUES (%s, %s, 'x')", (str(a.id), str(b.owner.id))
        )


def test_t8_app_role_cannot_switch_rls_off(app_conn):
    app_conn.autocommit = True
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        app_conn.execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        app_conn.execute("ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
        app_conn.execute("DROP POLICY users_tenant_isolation ON users")
    app_conn.execute("SET row_security = off")
    with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
        app_conn.execute("SELECT count(*) FROM users")
    app_conn.execute("RESET row_security")
    for role in ("fieldday_owner", "fieldday_definer", "postgres"):
        with pytest.raises(errors.InsufficientPrivilege):
            app_conn.execute(f"SET ROLE {role}")
    with pytest.raises(errors.InsufficientPrivilege):
        app_conn.execute("CREATE TABLE sneaky (id int)")


def test_t8_definer_functions_only_answer_their_narrow_question(two_tenants, app_conn):
    a, _ = two_tenants
    app_conn.autocommit = True
    row = app_conn.execute("SELECT public.tenant_id_for_subdomain(%s)", (a.subdomain,)).fetchone()
    assert row[0] == a.id
    # Direct reads are still filtered; the function gives no table access.
    assert app_conn.execute("SELECT count(*) FROM tenants").fetchone()[0] == 0


@pytest.mark.parametrize("probe", ["%", "", "_", "' OR 1=1 --", "ACME%", "*", "a%"])
def test_t9_host_lookup_is_exact(two_tenants, app_conn, probe):
    app_conn.autocommit = True
    assert app_conn.execute("SELECT public.tenant_id_for_subdomain(%s)", (probe,)).fetchone()[0] is None


def test_t9_unknown_hosts_answer_404(two_tenants, visitor):
    for host in ["nobody-here.localhost", "%.localhost"]:
        assert visitor(host).get("/").status_code in (400, 404)
    assert visitor("nobody-here.localhost").get("/").status_code == 404


def test_login_accounts_exposes_no_password_hashes(two_tenants, app_conn):
    a, _ = two_tenants
    app_conn.autocommit = True
    cur = app_conn.execute("SELECT * FROM public.login_accounts(%s)", (a.owner.email,))
    names = [d.name for d in cur.description]
    assert names == ["tenant_id", "user_id", "subdomain", "business_name"]
    assert cur.fetchall()[0][1] == a.owner.id


def test_tenants_cannot_read_each_others_tenant_row(two_tenants, app_conn):
    a, b = two_tenants
    with app_conn.transaction():
        app_conn.execute(SET_TENANT, (str(a.id),))
        rows = app_conn.execute("SELECT id FROM tenants").fetchall()
        assert rows == [(a.id,)]
        assert (
            app_conn.execute("UPDATE tenants SET name = 'x' WHERE id = %s RETURNING id", (str(b.id),)).fetchall() == []
        )


def test_random_uuid_ids(two_tenants, app_conn):
    a, _ = two_tenants
    assert isinstance(a.owner.id, uuid.UUID) and a.owner.id.version == 4
