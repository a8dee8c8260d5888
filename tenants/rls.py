"""SQL for the tenant-isolation invariant, used by migrations (DESIGN §3, RELIABILITY §1).

Every tenant-owned table gets ENABLE + FORCE row-level security and exactly one
policy comparing the row's own ``tenant_id`` with the transaction's setting. The
``NULLIF(..., '')`` makes "no tenant" mean "no rows" instead of a uuid cast error.
"""

APP_ROLE = "fieldday_app"
DEFINER_ROLE = "fieldday_definer"

TENANT_EXPR = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def enable_rls(table: str, column: str = "tenant_id") -> list[str]:
    policy = f"{table}_tenant_isolation"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {policy} ON {table} USING ({column} = {TENANT_EXPR}) WITH CHECK ({column} = {TENANT_EXPR})",
    ]


def grant_app(table: str, privileges: str = "SELECT, INSERT, UPDATE, DELETE") -> str:
    return f"GRANT {privileges} ON {table} TO {APP_ROLE}"


def definer_function(signature: str, body_sql: str) -> list[str]:
    """A narrow cross-tenant lookup: SECURITY DEFINER, empty search_path, owned by the
    NOLOGIN BYPASSRLS role, executable by the app role only."""
    return [
        body_sql,
        f"ALTER FUNCTION {signature} OWNER TO {DEFINER_ROLE}",
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}",
    ]
