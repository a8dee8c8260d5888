"""Messages, continued: e-mail in the outbox, owner-edited templates, changed-ETA texts, reviews,
the Google review link, platform admins (who see failed jobs).

Revision ID: 0006_messages_more
Revises: 0005_messages
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import definer_function, enable_rls, grant_app

revision = "0006_messages_more"
down_revision = "0005_messages"
branch_labels = None
depends_on = None

COLUMNS = [
    # E-mails share the outbox with texts: a subject, and a longer body.
    "ALTER TABLE messages ADD COLUMN subject text",
    "ALTER TABLE messages DROP CONSTRAINT ck_messages_body",
    "ALTER TABLE messages ADD CONSTRAINT ck_messages_body CHECK (length(body) >= 1 AND"
    " length(body) <= CASE WHEN channel = 'email' THEN 20000 ELSE 1600 END)",
    # The monthly quota counts a business's texts by month.
    "CREATE INDEX ix_messages_sms_month ON messages (tenant_id, created_at)"
    " WHERE direction = 'out' AND channel = 'sms' AND status NOT IN ('skipped', 'failed')",
    # The last ETA we texted a customer, so only a real change texts them again.
    "ALTER TABLE bookings ADD COLUMN eta_texted_for timestamptz",
    "ALTER TABLE bookings ADD COLUMN eta_texted_at timestamptz",
    # Where "review us on Google" sends a happy customer (shown next to our own review page).
    "ALTER TABLE tenants ADD COLUMN google_review_url text"
    " CONSTRAINT ck_tenants_google_review_url"
    " CHECK (google_review_url ~ '^https://[^\\s]{4,}$' AND length(google_review_url) <= 508)",
    # Platform staff: set only from the command line (`flask platform-admin`), never from a page.
    "ALTER TABLE users ADD COLUMN is_platform_admin boolean NOT NULL DEFAULT false",
]

TABLES = [
    """
    CREATE TABLE message_templates (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        kind text NOT NULL,
        body text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by uuid,
        CONSTRAINT pk_message_templates PRIMARY KEY (tenant_id, kind),
        CONSTRAINT fk_message_templates_updated_by FOREIGN KEY (tenant_id, updated_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (updated_by),
        CONSTRAINT ck_message_templates_kind CHECK (kind ~ '^[a-z_]{1,40}$'),
        CONSTRAINT ck_message_templates_body CHECK (length(body) BETWEEN 1 AND 1000)
    )
    """,
    """
    CREATE TABLE reviews (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        customer_id uuid,
        rating integer NOT NULL,
        quality integer,
        punctuality integer,
        value integer,
        comment text,
        author_name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        reply text,
        replied_at timestamptz,
        replied_by uuid,
        CONSTRAINT pk_reviews PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_reviews_booking UNIQUE (tenant_id, booking_id),
        CONSTRAINT fk_reviews_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_reviews_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE SET NULL (customer_id),
        CONSTRAINT fk_reviews_replied_by FOREIGN KEY (tenant_id, replied_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (replied_by),
        CONSTRAINT ck_reviews_rating CHECK (rating BETWEEN 1 AND 5),
        CONSTRAINT ck_reviews_quality CHECK (quality BETWEEN 1 AND 5),
        CONSTRAINT ck_reviews_punctuality CHECK (punctuality BETWEEN 1 AND 5),
        CONSTRAINT ck_reviews_value CHECK (value BETWEEN 1 AND 5),
        CONSTRAINT ck_reviews_comment CHECK (length(comment) <= 2000),
        CONSTRAINT ck_reviews_author CHECK (length(author_name) BETWEEN 1 AND 80),
        CONSTRAINT ck_reviews_reply CHECK (length(reply) BETWEEN 1 AND 2000)
    )
    """,
    "CREATE INDEX ix_reviews_recent ON reviews (tenant_id, created_at DESC)",
]


def upgrade():
    statements = COLUMNS + TABLES
    statements += enable_rls("message_templates") + [grant_app("message_templates")]
    statements += enable_rls("reviews") + [grant_app("reviews", "SELECT, INSERT, UPDATE")]
    # Reminders and payment reminders fan out to the businesses with bookings in a window (ids only),
    # whether they text or e-mail.
    statements += definer_function(
        "public.tenants_with_bookings_starting(timestamptz, timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_bookings_starting(p_from timestamptz, p_to timestamptz)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT b.tenant_id FROM public.bookings b
            WHERE b.status = 'confirmed' AND b.starts_at >= p_from AND b.starts_at < p_to
        $$
        """,
    )
    statements += definer_function(
        "public.tenants_with_unpaid_completed(timestamptz, timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_unpaid_completed(p_from timestamptz, p_to timestamptz)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT b.tenant_id FROM public.bookings b
            WHERE b.status = 'completed' AND b.payment_status IN ('unpaid', 'partly_paid', 'action_required', 'failed')
              AND coalesce(b.finished_at, b.ends_at) >= p_from AND coalesce(b.finished_at, b.ends_at) < p_to
        $$
        """,
    )
    # The reminder sweep now finds businesses by their bookings (texting or not).
    statements.append("DROP FUNCTION public.tenants_with_texting()")
    for sql in statements:
        op.execute(sql)


def downgrade():
    for sql in definer_function(
        "public.tenants_with_texting()",
        """
        CREATE FUNCTION public.tenants_with_texting() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.sms_number IS NOT NULL
        $$
        """,
    ):
        op.execute(sql)
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_unpaid_completed(timestamptz, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_bookings_starting(timestamptz, timestamptz)")
    op.execute("DROP TABLE IF EXISTS reviews CASCADE")
    op.execute("DROP TABLE IF EXISTS message_templates CASCADE")
    op.execute("ALTER TABLE users DROP COLUMN IF EXISTS is_platform_admin")
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS google_review_url")
    op.execute("ALTER TABLE bookings DROP COLUMN IF EXISTS eta_texted_at")
    op.execute("ALTER TABLE bookings DROP COLUMN IF EXISTS eta_texted_for")
    op.execute("DROP INDEX IF EXISTS ix_messages_sms_month")
    op.execute("ALTER TABLE messages DROP CONSTRAINT ck_messages_body")
    op.execute("ALTER TABLE messages ADD CONSTRAINT ck_messages_body CHECK (length(body) BETWEEN 1 AND 1600)")
    op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS subject")
