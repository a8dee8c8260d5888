"""API keys, outgoing webhooks and their delivery log (issue 10; docs/api-and-webhooks.md).

Revision ID: 0010_api_keys
Revises: 0009_reports
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import DEFINER_ROLE, definer_function, enable_rls, grant_app

revision = "0010_api_keys"
down_revision = "0009_reports"
branch_labels = None
depends_on = None

EVENTS = (
    "ARRAY['booking.created', 'booking.confirmed', 'booking.rescheduled', 'booking.cancelled', 'booking.completed']"
)

TABLES = [
    """
    CREATE TABLE api_keys (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        name text NOT NULL,
        -- Shown next to the name so people recognise a key; the secret itself is never stored.
        prefix text NOT NULL,
        -- SHA-256 of the whole key (256 random bits: a fast hash is enough; see the docs page).
        key_hash text NOT NULL,
        scopes text[] NOT NULL,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz,
        revoked_by uuid,
        CONSTRAINT pk_api_keys PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_api_keys_created_by FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
        CONSTRAINT fk_api_keys_revoked_by FOREIGN KEY (tenant_id, revoked_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (revoked_by),
        CONSTRAINT ck_api_keys_name CHECK (length(name) BETWEEN 1 AND 80),
        CONSTRAINT ck_api_keys_prefix CHECK (prefix ~ '^[a-z0-9]{8}$'),
        CONSTRAINT ck_api_keys_hash CHECK (key_hash ~ '^[0-9a-f]{64}$'),
        CONSTRAINT ck_api_keys_scopes CHECK
            (cardinality(scopes) >= 1 AND scopes <@ ARRAY['read', 'write']::text[])
    )
    """,
    # The bearer lookup happens before any tenant is known (tenant_for_api_key below).
    "CREATE INDEX ix_api_keys_hash ON api_keys (key_hash) WHERE revoked_at IS NULL",
    "CREATE INDEX ix_api_keys_recent ON api_keys (tenant_id, created_at DESC)",
    f"""
    CREATE TABLE webhook_endpoints (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        url text NOT NULL,
        description text,
        events text[] NOT NULL,
        -- Fernet-encrypted signing secret (it must be recoverable to sign each delivery).
        secret_enc text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        consecutive_failures integer NOT NULL DEFAULT 0,
        disabled_at timestamptz,
        disabled_reason text,
        owner_notified_at timestamptz,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_webhook_endpoints PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_webhook_endpoints_created_by FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
        CONSTRAINT ck_webhook_endpoints_url CHECK (length(url) BETWEEN 10 AND 2000 AND url ~ '^https?://'),
        CONSTRAINT ck_webhook_endpoints_description CHECK (length(description) <= 200),
        CONSTRAINT ck_webhook_endpoints_events CHECK (cardinality(events) >= 1 AND events <@ {EVENTS}::text[]),
        CONSTRAINT ck_webhook_endpoints_failures CHECK (consecutive_failures >= 0),
        CONSTRAINT ck_webhook_endpoints_disabled CHECK (enabled OR disabled_at IS NOT NULL)
    )
    """,
    "CREATE INDEX ix_webhook_endpoints_enabled ON webhook_endpoints (tenant_id) WHERE enabled",
    """
    CREATE TABLE webhook_deliveries (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        endpoint_id uuid NOT NULL,
        -- One event goes to every endpoint that listens for it with the same id (receivers dedupe on it).
        event_id uuid NOT NULL,
        event_type text NOT NULL,
        -- The exact bytes we sign and send; every attempt sends the same body with a fresh timestamp.
        body text NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz,
        last_attempt_at timestamptz,
        response_status integer,
        response_excerpt text,
        error text,
        resent_from uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        CONSTRAINT pk_webhook_deliveries PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_webhook_deliveries_endpoint FOREIGN KEY (tenant_id, endpoint_id)
            REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_webhook_deliveries_resent_from FOREIGN KEY (tenant_id, resent_from)
            REFERENCES webhook_deliveries (tenant_id, id) ON DELETE SET NULL (resent_from),
        CONSTRAINT ck_webhook_deliveries_type CHECK (event_type ~ '^[a-z_]+(\\.[a-z_]+)?$'),
        CONSTRAINT ck_webhook_deliveries_status CHECK (status IN ('pending', 'succeeded', 'failed')),
        CONSTRAINT ck_webhook_deliveries_due CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL),
        CONSTRAINT ck_webhook_deliveries_attempts CHECK (attempts BETWEEN 0 AND 50),
        CONSTRAINT ck_webhook_deliveries_body CHECK (length(body) <= 65536),
        CONSTRAINT ck_webhook_deliveries_excerpt CHECK (length(response_excerpt) <= 1000),
        CONSTRAINT ck_webhook_deliveries_error CHECK (length(error) <= 500)
    )
    """,
    "CREATE INDEX ix_webhook_deliveries_endpoint ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC)",
    # The minute sweep's fan-out reads due deliveries across businesses.
    "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
]

NEW_TABLES = ("api_keys", "webhook_endpoints", "webhook_deliveries")


def upgrade():
    statements = list(TABLES)
    for table in NEW_TABLES:
        statements += enable_rls(table)
    statements += [
        # Keys are revoked, never deleted: the audit log and the key list keep naming them.
        grant_app("api_keys", "SELECT, INSERT, UPDATE"),
        grant_app("webhook_endpoints"),
        grant_app("webhook_deliveries"),
        f"GRANT SELECT ON api_keys, webhook_deliveries TO {DEFINER_ROLE}",
    ]
    # A bearer key arrives before any tenant is known: which business's live key has this hash?
    # Ids only, and nothing for a revoked or unknown key.
    statements += definer_function(
        "public.tenant_for_api_key(text)",
        """
        CREATE FUNCTION public.tenant_for_api_key(p_hash text)
        RETURNS TABLE (tenant_id uuid, key_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT k.tenant_id, k.id FROM public.api_keys k
            WHERE k.key_hash = p_hash AND k.revoked_at IS NULL
            LIMIT 1
        $$
        """,
    )
    # The minute sweep behind webhook retries: which businesses have deliveries due (ids only).
    statements += definer_function(
        "public.tenants_with_due_webhooks(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_due_webhooks(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT d.tenant_id FROM public.webhook_deliveries d
            WHERE d.status = 'pending' AND d.next_attempt_at <= p_before
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_due_webhooks(timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS public.tenant_for_api_key(text)")
    for table in reversed(NEW_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
