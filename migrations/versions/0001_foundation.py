"""Foundation: extensions, tenants, users, invitations, audit log, RLS, narrow lookups.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-23
"""

from alembic import op

# enable_rls() emits ENABLE + FORCE ROW LEVEL SECURITY and the one NULLIF policy per table;
# tests/test_isolation_sql.py::test_t2_catalog_lint checks every tenant table has them.
from tenants.rls import DEFINER_ROLE, definer_function, enable_rls, grant_app

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    statements = [
        # Needed by later issues: exclusion constraints over (tenant, technician,
        # time range) and trigram search on names, phones and plates.
        "CREATE EXTENSION IF NOT EXISTS btree_gist",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        """
        CREATE TABLE tenants (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            subdomain text NOT NULL,
            name text NOT NULL,
            time_zone text NOT NULL,
            currency char(3) NOT NULL,
            plan text NOT NULL DEFAULT 'starter',
            brand_color text NOT NULL DEFAULT '#0f766e',
            tagline text,
            contact_phone text,
            contact_email text,
            logo_key text,
            logo_content_type text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_tenants_subdomain UNIQUE (subdomain),
            CONSTRAINT ck_tenants_subdomain CHECK (subdomain ~ '^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$'),
            CONSTRAINT ck_tenants_name CHECK (length(btrim(name)) BETWEEN 1 AND 120),
            CONSTRAINT ck_tenants_currency CHECK (currency ~ '^[A-Z]{3}$'),
            CONSTRAINT ck_tenants_plan CHECK (plan IN ('starter', 'pro', 'teams')),
            CONSTRAINT ck_tenants_brand_color CHECK (brand_color ~ '^#[0-9a-f]{6}$'),
            CONSTRAINT ck_tenants_time_zone CHECK (length(time_zone) BETWEEN 1 AND 64)
        )
        """,
        """
        CREATE TABLE users (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            email text NOT NULL,
            name text NOT NULL,
            role text NOT NULL,
            password_hash text NOT NULL,
            session_version integer NOT NULL DEFAULT 1,
            is_active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_login_at timestamptz,
            password_changed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_users PRIMARY KEY (tenant_id, id),
            CONSTRAINT uq_users_tenant_id_email UNIQUE (tenant_id, email),
            CONSTRAINT ck_users_email CHECK (email = lower(email) AND email LIKE '_%@_%'),
            CONSTRAINT ck_users_role CHECK (role IN ('owner', 'admin', 'tech')),
            CONSTRAINT ck_users_name CHECK (length(btrim(name)) BETWEEN 1 AND 120)
        )
        """,
        # Login by e-mail crosses tenants through login_accounts(); index it.
        "CREATE INDEX ix_users_email ON users (email)",
        """
        CREATE TABLE user_sessions (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            user_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            ended_at timestamptz,
            ip inet,
            user_agent text,
            CONSTRAINT pk_user_sessions PRIMARY KEY (tenant_id, id),
            CONSTRAINT fk_user_sessions_user FOREIGN KEY (tenant_id, user_id)
                REFERENCES users (tenant_id, id) ON DELETE CASCADE
        )
        """,
        "CREATE INDEX ix_user_sessions_user ON user_sessions (tenant_id, user_id) WHERE ended_at IS NULL",
        """
        CREATE TABLE invitations (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            email text NOT NULL,
            name text,
            role text NOT NULL,
            invited_by uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            accepted_at timestamptz,
            revoked_at timestamptz,
            CONSTRAINT pk_invitations PRIMARY KEY (tenant_id, id),
            CONSTRAINT fk_invitations_invited_by FOREIGN KEY (tenant_id, invited_by)
                REFERENCES users (tenant_id, id) ON DELETE CASCADE,
            CONSTRAINT ck_invitations_email CHECK (email = lower(email) AND email LIKE '_%@_%'),
            CONSTRAINT ck_invitations_role CHECK (role IN ('admin', 'tech'))
        )
        """,
        """
        CREATE UNIQUE INDEX uq_invitations_open_email ON invitations (tenant_id, email)
            WHERE accepted_at IS NULL AND revoked_at IS NULL
        """,
        """
        CREATE TABLE audit_log (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            actor_id uuid,
            action text NOT NULL,
            subject_type text,
            subject_id uuid,
            detail jsonb NOT NULL DEFAULT '{}'::jsonb,
            ip inet,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_audit_log PRIMARY KEY (tenant_id, id),
            CONSTRAINT fk_audit_log_actor FOREIGN KEY (tenant_id, actor_id)
                REFERENCES users (tenant_id, id) ON DELETE SET NULL (actor_id)
        )
        """,
        "CREATE INDEX ix_audit_log_tenant_created ON audit_log (tenant_id, created_at DESC)",
        # Deleting a user nulls its actor_id here; without this the delete scans the tenant's log.
        "CREATE INDEX ix_audit_log_actor ON audit_log (tenant_id, actor_id) WHERE actor_id IS NOT NULL",
    ]
    statements += enable_rls("tenants", column="id")
    for table in ("users", "user_sessions", "invitations", "audit_log"):
        statements += enable_rls(table)
    statements += [
        grant_app("tenants", "SELECT, INSERT, UPDATE"),
        grant_app("users"),
        grant_app("invitations"),
        grant_app("user_sessions", "SELECT, INSERT, UPDATE"),
        # The audit log is append-only for the application.
        grant_app("audit_log", "SELECT, INSERT"),
        f"GRANT SELECT ON tenants, users TO {DEFINER_ROLE}",
    ]
    # Narrow cross-tenant lookups (RELIABILITY §1.6). Each returns the least it can.
    statements += definer_function(
        "public.tenant_id_for_subdomain(text)",
        """
        CREATE FUNCTION public.tenant_id_for_subdomain(p_subdomain text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.subdomain = lower(p_subdomain)
        $$
        """,
    )
    statements += definer_function(
        "public.login_accounts(text)",
        """
        CREATE FUNCTION public.login_accounts(p_email text)
        RETURNS TABLE (tenant_id uuid, user_id uuid, subdomain text, business_name text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT u.tenant_id, u.id, t.subdomain, t.name
            FROM public.users u JOIN public.tenants t ON t.id = u.tenant_id
            WHERE u.email = lower(btrim(p_email)) AND u.is_active
            ORDER BY t.name
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    for sql in [
        "DROP FUNCTION IF EXISTS public.login_accounts(text)",
        "DROP FUNCTION IF EXISTS public.tenant_id_for_subdomain(text)",
        "DROP TABLE IF EXISTS audit_log",
        "DROP TABLE IF EXISTS invitations",
        "DROP TABLE IF EXISTS user_sessions",
        "DROP TABLE IF EXISTS users",
        "DROP TABLE IF EXISTS tenants",
    ]:
        op.execute(sql)
