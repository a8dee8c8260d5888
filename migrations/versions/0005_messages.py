"""Messages: the outbox and inbox of texts (and e-mails) with customers, opt-outs, the business's
number.

Revision ID: 0005_messages
Revises: 0004_routes
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import definer_function, enable_rls, grant_app

revision = "0005_messages"
down_revision = "0004_routes"
branch_labels = None
depends_on = None

COLUMNS = [
    # The business's Twilio number (E.164): inbound texts find their business by it.
    "ALTER TABLE tenants ADD COLUMN sms_number text"
    " CONSTRAINT ck_tenants_sms_number CHECK (sms_number ~ '^\\+[1-9][0-9]{6,14}$')",
    "CREATE UNIQUE INDEX uq_tenants_sms_number ON tenants (sms_number) WHERE sms_number IS NOT NULL",
    # Day-before reminders go out at this local hour (the owner's choice).
    "ALTER TABLE tenants ADD COLUMN reminder_hour integer NOT NULL DEFAULT 17"
    " CONSTRAINT ck_tenants_reminder_hour CHECK (reminder_hour BETWEEN 6 AND 21)",
    # A customer who texted STOP (or whose number Twilio reports as unsubscribed, 21610).
    "ALTER TABLE customers ADD COLUMN sms_opted_out_at timestamptz",
]

TABLES = [
    """
    CREATE TABLE messages (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        customer_id uuid,
        booking_id uuid,
        direction text NOT NULL,
        channel text NOT NULL DEFAULT 'sms',
        kind text NOT NULL,
        body text NOT NULL,
        to_addr text NOT NULL,
        from_addr text,
        status text NOT NULL,
        provider_sid text,
        error_code text,
        error_message text,
        dedupe_key text,
        attempts integer NOT NULL DEFAULT 0,
        sent_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz,
        status_at timestamptz,
        CONSTRAINT pk_messages PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_messages_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_messages_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE SET NULL (booking_id),
        CONSTRAINT fk_messages_sent_by FOREIGN KEY (tenant_id, sent_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (sent_by),
        CONSTRAINT ck_messages_direction CHECK (direction IN ('out', 'in')),
        CONSTRAINT ck_messages_channel CHECK (channel IN ('sms', 'email')),
        CONSTRAINT ck_messages_status CHECK (status IN
            ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'skipped', 'received')),
        CONSTRAINT ck_messages_body CHECK (length(body) BETWEEN 1 AND 1600)
    )
    """,
    # The sent-marker: one message per (booking, kind) however often a job runs.
    "CREATE UNIQUE INDEX uq_messages_dedupe ON messages (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL",
    # A Twilio MessageSid is recorded once (duplicate inbound webhooks, W4).
    "CREATE UNIQUE INDEX uq_messages_provider_sid ON messages (tenant_id, provider_sid) WHERE provider_sid IS NOT NULL",
    "CREATE INDEX ix_messages_customer ON messages (tenant_id, customer_id, created_at)",
    "CREATE INDEX ix_messages_queued ON messages (tenant_id, created_at) WHERE status IN ('queued', 'sending')",
]


def upgrade():
    statements = COLUMNS + TABLES + enable_rls("messages") + [grant_app("messages", "SELECT, INSERT, UPDATE")]
    statements.append("GRANT SELECT ON messages TO fieldday_definer")
    statements += definer_function(
        "public.tenant_id_for_sms_number(text)",
        """
        CREATE FUNCTION public.tenant_id_for_sms_number(p_number text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.sms_number = p_number
        $$
        """,
    )
    # The reminder sweep's fan-out: which businesses text at all (ids only).
    statements += definer_function(
        "public.tenants_with_texting()",
        """
        CREATE FUNCTION public.tenants_with_texting() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.sms_number IS NOT NULL
        $$
        """,
    )
    statements += definer_function(
        "public.tenants_with_queued_messages(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_queued_messages(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT m.tenant_id FROM public.messages m
            WHERE m.status IN ('queued', 'sending') AND m.created_at <= p_before
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_queued_messages(timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_texting()")
    op.execute("DROP FUNCTION IF EXISTS public.tenant_id_for_sms_number(text)")
    op.execute("DROP TABLE IF EXISTS messages CASCADE")
    op.execute("ALTER TABLE customers DROP COLUMN IF EXISTS sms_opted_out_at")
    op.execute("DROP INDEX IF EXISTS uq_tenants_sms_number")
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS sms_number")
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS reminder_hour")
