"""Quotes: requests from the booking site (with photos), quotes with versions, lines, tiers and
optional items, the business's tax rate, and the fan-out for expiry reminders and the expiry job.

Revision ID: 0008_quotes
Revises: 0007_google_calendar
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import DEFINER_ROLE, definer_function, enable_rls, grant_app

revision = "0008_quotes"
down_revision = "0007_google_calendar"
branch_labels = None
depends_on = None

COLUMNS = [
    # Sales tax on quotes, in basis points (825 = 8.25 %); each quote keeps its own copy.
    "ALTER TABLE tenants ADD COLUMN tax_rate_bps integer NOT NULL DEFAULT 0"
    " CONSTRAINT ck_tenants_tax_rate CHECK (tax_rate_bps BETWEEN 0 AND 5000)",
]

TABLES = [
    """
    CREATE TABLE quote_requests (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        customer_id uuid NOT NULL,
        vehicle_id uuid NOT NULL,
        address_id uuid NOT NULL,
        wanted text NOT NULL,
        condition_notes text,
        status text NOT NULL DEFAULT 'new',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_quote_requests PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_quote_requests_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_quote_requests_vehicle FOREIGN KEY (tenant_id, vehicle_id)
            REFERENCES vehicles (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_quote_requests_address FOREIGN KEY (tenant_id, address_id)
            REFERENCES customer_addresses (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_quote_requests_wanted CHECK (length(wanted) BETWEEN 1 AND 2000),
        CONSTRAINT ck_quote_requests_condition CHECK (length(condition_notes) <= 2000),
        CONSTRAINT ck_quote_requests_status CHECK (status IN ('new', 'quoted', 'closed'))
    )
    """,
    "CREATE INDEX ix_quote_requests_recent ON quote_requests (tenant_id, created_at DESC)",
    """
    CREATE TABLE quote_request_photos (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        request_id uuid NOT NULL,
        key text NOT NULL,
        content_type text NOT NULL,
        size_bytes bigint,
        status text NOT NULL DEFAULT 'pending',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_quote_request_photos PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_quote_request_photos_request FOREIGN KEY (tenant_id, request_id)
            REFERENCES quote_requests (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT uq_quote_request_photos_key UNIQUE (tenant_id, key),
        -- Keys are chosen by the server, always under the business's own prefix.
        CONSTRAINT ck_quote_request_photos_key CHECK (key LIKE 'tenants/' || tenant_id::text || '/%'),
        CONSTRAINT ck_quote_request_photos_type CHECK
            (content_type IN ('image/jpeg', 'image/png', 'image/webp', 'image/heic')),
        CONSTRAINT ck_quote_request_photos_size CHECK (size_bytes BETWEEN 1 AND 12582912),
        CONSTRAINT ck_quote_request_photos_status CHECK (status IN ('pending', 'stored'))
    )
    """,
    "CREATE INDEX ix_quote_request_photos_request ON quote_request_photos (tenant_id, request_id)",
    """
    CREATE TABLE quotes (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        number integer NOT NULL,
        version integer NOT NULL DEFAULT 1,
        request_id uuid,
        customer_id uuid NOT NULL,
        vehicle_id uuid,
        address_id uuid,
        size_class text NOT NULL,
        status text NOT NULL DEFAULT 'draft',
        title text,
        notes text,
        expires_on date NOT NULL,
        tax_rate_bps integer NOT NULL DEFAULT 0,
        discount_cents integer NOT NULL DEFAULT 0,
        discount_bps integer NOT NULL DEFAULT 0,
        currency text NOT NULL,
        token_version integer NOT NULL DEFAULT 1,
        sent_at timestamptz,
        viewed_at timestamptz,
        accepted_at timestamptz,
        accepted_tier text,
        accepted_line_ids uuid[],
        accepted_total_cents integer,
        accepted_deposit_cents integer,
        declined_at timestamptz,
        decline_reason text,
        expired_at timestamptz,
        booking_id uuid,
        superseded_by uuid,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_quotes PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_quotes_number_version UNIQUE (tenant_id, number, version),
        CONSTRAINT fk_quotes_request FOREIGN KEY (tenant_id, request_id)
            REFERENCES quote_requests (tenant_id, id) ON DELETE SET NULL (request_id),
        CONSTRAINT fk_quotes_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_quotes_vehicle FOREIGN KEY (tenant_id, vehicle_id)
            REFERENCES vehicles (tenant_id, id) ON DELETE SET NULL (vehicle_id),
        CONSTRAINT fk_quotes_address FOREIGN KEY (tenant_id, address_id)
            REFERENCES customer_addresses (tenant_id, id) ON DELETE SET NULL (address_id),
        CONSTRAINT fk_quotes_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE SET NULL (booking_id),
        CONSTRAINT fk_quotes_superseded_by FOREIGN KEY (tenant_id, superseded_by)
            REFERENCES quotes (tenant_id, id) ON DELETE SET NULL (superseded_by),
        CONSTRAINT fk_quotes_created_by FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
        CONSTRAINT ck_quotes_number CHECK (number >= 1),
        CONSTRAINT ck_quotes_version CHECK (version >= 1),
        CONSTRAINT ck_quotes_size CHECK (size_class IN ('sedan', 'suv', 'truck')),
        CONSTRAINT ck_quotes_status CHECK
            (status IN ('draft', 'sent', 'viewed', 'accepted', 'declined', 'expired', 'superseded')),
        CONSTRAINT ck_quotes_title CHECK (length(title) <= 120),
        CONSTRAINT ck_quotes_notes CHECK (length(notes) <= 4000),
        CONSTRAINT ck_quotes_tax CHECK (tax_rate_bps BETWEEN 0 AND 5000),
        CONSTRAINT ck_quotes_discount_cents CHECK (discount_cents BETWEEN 0 AND 100000000),
        CONSTRAINT ck_quotes_discount_bps CHECK (discount_bps BETWEEN 0 AND 10000),
        CONSTRAINT ck_quotes_one_discount CHECK (discount_cents = 0 OR discount_bps = 0),
        CONSTRAINT ck_quotes_accepted_money CHECK
            (accepted_total_cents >= 0 AND accepted_deposit_cents BETWEEN 0 AND accepted_total_cents),
        CONSTRAINT ck_quotes_accepted CHECK (status <> 'accepted' OR accepted_at IS NOT NULL),
        CONSTRAINT ck_quotes_declined CHECK (status <> 'declined' OR length(decline_reason) BETWEEN 1 AND 500),
        CONSTRAINT ck_quotes_sent CHECK (status = 'draft' OR sent_at IS NOT NULL)
    )
    """,
    "CREATE INDEX ix_quotes_status ON quotes (tenant_id, status, expires_on)",
    "CREATE INDEX ix_quotes_recent ON quotes (tenant_id, created_at DESC)",
    """
    CREATE TABLE quote_lines (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        quote_id uuid NOT NULL,
        position integer NOT NULL DEFAULT 0,
        kind text NOT NULL,
        package_id uuid,
        name text NOT NULL,
        description text,
        quantity integer NOT NULL DEFAULT 1,
        unit_cents integer NOT NULL,
        duration_min integer NOT NULL DEFAULT 0,
        optional boolean NOT NULL DEFAULT false,
        tier text,
        CONSTRAINT pk_quote_lines PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_quote_lines_quote FOREIGN KEY (tenant_id, quote_id)
            REFERENCES quotes (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_quote_lines_package FOREIGN KEY (tenant_id, package_id)
            REFERENCES packages (tenant_id, id) ON DELETE SET NULL (package_id),
        CONSTRAINT ck_quote_lines_kind CHECK (kind IN ('package', 'addon', 'custom')),
        CONSTRAINT ck_quote_lines_name CHECK (length(name) BETWEEN 1 AND 120),
        CONSTRAINT ck_quote_lines_description CHECK (length(description) <= 500),
        CONSTRAINT ck_quote_lines_quantity CHECK (quantity BETWEEN 1 AND 99),
        CONSTRAINT ck_quote_lines_unit CHECK (unit_cents BETWEEN 0 AND 10000000),
        CONSTRAINT ck_quote_lines_duration CHECK (duration_min BETWEEN 0 AND 1440),
        CONSTRAINT ck_quote_lines_tier CHECK (length(tier) BETWEEN 1 AND 30)
    )
    """,
    "CREATE INDEX ix_quote_lines_quote ON quote_lines (tenant_id, quote_id, position)",
]

NEW_TABLES = ("quote_requests", "quote_request_photos", "quotes", "quote_lines")


def upgrade():
    statements = COLUMNS + TABLES
    for table in NEW_TABLES:
        statements += enable_rls(table) + [grant_app(table)]
    statements.append(f"GRANT SELECT ON quotes TO {DEFINER_ROLE}")
    # The hourly quote sweep (expiry and "expires soon" reminders) fans out to businesses with
    # open quotes that end by a date, or accepted ones whose booking's hold ran out unpaid (those
    # are released once the quote's date passes): ids only cross tenants here.
    statements += definer_function(
        "public.tenants_with_open_quotes(date)",
        """
        CREATE FUNCTION public.tenants_with_open_quotes(p_until date)
        RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT q.tenant_id FROM public.quotes q
            WHERE q.expires_on <= p_until
              AND (q.status IN ('sent', 'viewed')
                   OR (q.status = 'accepted' AND EXISTS (
                       SELECT 1 FROM public.bookings b
                       WHERE b.tenant_id = q.tenant_id AND b.id = q.booking_id AND b.status = 'expired')))
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_open_quotes(date)")
    for table in reversed(NEW_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("ALTER TABLE tenants DROP COLUMN IF EXISTS tax_rate_bps")
