"""Customer data rights: deletion requests with a grace period, anonymisation marks, the tenant's
full exports (issue 10; docs/data-rights.md).

Revision ID: 0011_data_rights
Revises: 0010_api_keys
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import DEFINER_ROLE, definer_function, enable_rls, grant_app

revision = "0011_data_rights"
down_revision = "0010_api_keys"
branch_labels = None
depends_on = None

COLUMNS = [
    # When the person was removed (name replaced, contact details and notes gone): such a customer
    # can never be texted or e-mailed again, which the CHECK below makes a fact of the schema.
    "ALTER TABLE customers ADD COLUMN anonymised_at timestamptz",
    # "Delete customer": asked at deletion_requested_at, purged by the hourly job once purge_after
    # has passed (30 days of grace, cancellable until then).
    "ALTER TABLE customers ADD COLUMN deletion_requested_at timestamptz",
    "ALTER TABLE customers ADD COLUMN purge_after timestamptz",
    "ALTER TABLE customers ADD CONSTRAINT ck_customers_deletion"
    " CHECK ((purge_after IS NULL) = (deletion_requested_at IS NULL))",
    "ALTER TABLE customers DROP CONSTRAINT ck_customers_contact",
    "ALTER TABLE customers ADD CONSTRAINT ck_customers_contact"
    " CHECK (phone IS NOT NULL OR email IS NOT NULL OR anonymised_at IS NOT NULL)",
    "ALTER TABLE customers ADD CONSTRAINT ck_customers_anonymised"
    " CHECK (anonymised_at IS NULL OR (phone IS NULL AND email IS NULL AND notes IS NULL))",
    # The purge sweep looks across businesses by due date (through the definer function below).
    "CREATE INDEX ix_customers_purge_after ON customers (purge_after) WHERE purge_after IS NOT NULL",
    # A cancellation reason typed by a person may name someone: anonymising rewrites the detail of a
    # booking's history (the rows stay: who changed what, when). Only that column becomes writable.
    "GRANT UPDATE (detail) ON booking_events TO fieldday_app",
    # The purge deletes a customer's thread and reviews (they were insert/update only until now).
    "GRANT DELETE ON messages, reviews TO fieldday_app",
]

TABLES = [
    """
    CREATE TABLE data_exports (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        requested_by uuid,
        status text NOT NULL DEFAULT 'queued',
        key text,
        size_bytes bigint,
        tables jsonb NOT NULL DEFAULT '{}'::jsonb,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        expires_at timestamptz,
        CONSTRAINT pk_data_exports PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_data_exports_requested_by FOREIGN KEY (tenant_id, requested_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (requested_by),
        CONSTRAINT ck_data_exports_status CHECK (status IN ('queued', 'running', 'ready', 'failed', 'expired')),
        -- The archive always sits under the business's own prefix.
        CONSTRAINT ck_data_exports_key CHECK (key LIKE 'tenants/' || tenant_id::text || '/exports/%'),
        CONSTRAINT ck_data_exports_ready CHECK (status <> 'ready' OR (key IS NOT NULL AND expires_at IS NOT NULL))
    )
    """,
    "CREATE INDEX ix_data_exports_recent ON data_exports (tenant_id, created_at DESC)",
    "CREATE INDEX ix_data_exports_expiry ON data_exports (expires_at) WHERE status = 'ready'",
]


def upgrade():
    statements = COLUMNS + TABLES + enable_rls("data_exports") + [grant_app("data_exports")]
    statements.append(f"GRANT SELECT ON customers, data_exports TO {DEFINER_ROLE}")
    # The hourly privacy sweep fans out to businesses with a customer whose grace period is over,
    # or an export archive past its expiry (ids only cross tenants here).
    statements += definer_function(
        "public.tenants_with_due_purges(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_due_purges(p_now timestamptz)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT c.tenant_id FROM public.customers c WHERE c.purge_after <= p_now
            UNION
            SELECT e.tenant_id FROM public.data_exports e WHERE e.status = 'ready' AND e.expires_at <= p_now
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    for sql in [
        "DROP FUNCTION IF EXISTS public.tenants_with_due_purges(timestamptz)",
        "DROP TABLE IF EXISTS data_exports CASCADE",
        f"REVOKE SELECT ON customers FROM {DEFINER_ROLE}",  # granted above for the sweep only
        "REVOKE UPDATE (detail) ON booking_events FROM fieldday_app",
        "REVOKE DELETE ON messages, reviews FROM fieldday_app",
        "DROP INDEX IF EXISTS ix_customers_purge_after",
        "ALTER TABLE customers DROP CONSTRAINT IF EXISTS ck_customers_anonymised",
        "ALTER TABLE customers DROP CONSTRAINT IF EXISTS ck_customers_contact",
        # NOT VALID: anonymised customers (no phone, no e-mail) may exist; new rows are checked again.
        "ALTER TABLE customers ADD CONSTRAINT ck_customers_contact CHECK (phone IS NOT NULL OR email IS NOT NULL)"
        " NOT VALID",
        "ALTER TABLE customers DROP CONSTRAINT IF EXISTS ck_customers_deletion",
        "ALTER TABLE customers DROP COLUMN IF EXISTS purge_after",
        "ALTER TABLE customers DROP COLUMN IF EXISTS deletion_requested_at",
        "ALTER TABLE customers DROP COLUMN IF EXISTS anonymised_at",
    ]:
        op.execute(sql)
