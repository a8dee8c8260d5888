"""Payments: Stripe Connect accounts, deposit rules, payments, refunds and webhook events.

Revision ID: 0003_payments
Revises: 0002_booking
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import definer_function, enable_rls, grant_app

revision = "0003_payments"
down_revision = "0002_booking"
branch_labels = None
depends_on = None

# A deposit rule: a percentage of the booking (1–100) or a fixed amount in cents. Fixed amounts
# are 0 or at least Stripe's 50-cent minimum; 'none' exists on packages only ("no deposit here").
RULE_CHECK = (
    "({kind} IS NULL AND {value} IS NULL)"
    " OR ({kind} = 'none' AND {value} IS NULL)"
    " OR ({kind} = 'percent' AND {value} BETWEEN 1 AND 100)"
    " OR ({kind} = 'fixed' AND ({value} = 0 OR {value} BETWEEN 50 AND 100000000))"
)

TENANT_COLUMNS = [
    "ALTER TABLE tenants ADD COLUMN stripe_account_id text",
    "ALTER TABLE tenants ADD COLUMN stripe_charges_enabled boolean NOT NULL DEFAULT false",
    "ALTER TABLE tenants ADD COLUMN stripe_details_submitted boolean NOT NULL DEFAULT false",
    "ALTER TABLE tenants ADD COLUMN stripe_connected_at timestamptz",
    "ALTER TABLE tenants ADD COLUMN deposit_kind text NOT NULL DEFAULT 'percent'",
    "ALTER TABLE tenants ADD COLUMN deposit_value integer NOT NULL DEFAULT 25",
    "ALTER TABLE tenants ADD CONSTRAINT ck_tenants_deposit CHECK (deposit_kind IN ('percent', 'fixed') AND ("
    + RULE_CHECK.format(kind="deposit_kind", value="deposit_value")
    + "))",
    "ALTER TABLE tenants ADD CONSTRAINT ck_tenants_stripe_account CHECK (stripe_account_id ~ '^acct_[A-Za-z0-9]+$')",
    # One Stripe account belongs to one business: webhooks map account → tenant through it.
    "CREATE UNIQUE INDEX uq_tenants_stripe_account ON tenants (stripe_account_id) WHERE stripe_account_id IS NOT NULL",
    "ALTER TABLE packages ADD COLUMN deposit_kind text",
    "ALTER TABLE packages ADD COLUMN deposit_value integer",
    "ALTER TABLE packages ADD CONSTRAINT ck_packages_deposit CHECK ("
    + RULE_CHECK.format(kind="deposit_kind", value="deposit_value")
    + ")",
    "ALTER TABLE bookings ADD COLUMN deposit_cents integer NOT NULL DEFAULT 0"
    " CONSTRAINT ck_bookings_deposit CHECK (deposit_cents >= 0)",
    "ALTER TABLE bookings ADD COLUMN payment_status text NOT NULL DEFAULT 'unpaid'"
    " CONSTRAINT ck_bookings_payment_status CHECK (payment_status IN"
    " ('unpaid', 'partly_paid', 'paid', 'action_required', 'failed', 'refunded'))",
]

TABLES = [
    """
    CREATE TABLE payments (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        kind text NOT NULL,
        method text NOT NULL,
        status text NOT NULL,
        amount_cents integer NOT NULL,
        tip_cents integer NOT NULL DEFAULT 0,
        refunded_cents integer NOT NULL DEFAULT 0,
        currency text NOT NULL,
        application_fee_cents integer NOT NULL DEFAULT 0,
        attempt integer NOT NULL DEFAULT 1,
        stripe_account_id text,
        stripe_checkout_session_id text,
        checkout_url text,
        stripe_payment_intent_id text,
        stripe_customer_id text,
        stripe_payment_method_id text,
        card_brand text,
        card_last4 text,
        failure_code text,
        failure_message text,
        note text,
        recorded_by uuid,
        customer_notified_at timestamptz,
        receipt_sent_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        paid_at timestamptz,
        CONSTRAINT pk_payments PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_payments_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_payments_recorded_by FOREIGN KEY (tenant_id, recorded_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (recorded_by),
        CONSTRAINT ck_payments_kind CHECK (kind IN ('deposit', 'balance')),
        CONSTRAINT ck_payments_method CHECK (method IN ('card', 'cash', 'check')),
        CONSTRAINT ck_payments_status CHECK (status IN
            ('pending', 'succeeded', 'action_required', 'failed', 'canceled')),
        CONSTRAINT ck_payments_amounts CHECK (amount_cents >= 0 AND tip_cents >= 0
            AND amount_cents + tip_cents > 0 AND application_fee_cents >= 0),
        CONSTRAINT ck_payments_refunded CHECK (refunded_cents BETWEEN 0 AND amount_cents + tip_cents),
        CONSTRAINT ck_payments_card CHECK (method = 'card' OR (stripe_payment_intent_id IS NULL
            AND stripe_checkout_session_id IS NULL)),
        CONSTRAINT ck_payments_currency CHECK (currency ~ '^[A-Z]{3}$')
    )
    """,
    "CREATE INDEX ix_payments_booking ON payments (tenant_id, booking_id, created_at)",
    "CREATE INDEX ix_payments_created ON payments (tenant_id, created_at)",
    "CREATE UNIQUE INDEX uq_payments_checkout ON payments (tenant_id, stripe_checkout_session_id)"
    " WHERE stripe_checkout_session_id IS NOT NULL",
    "CREATE UNIQUE INDEX uq_payments_intent ON payments (tenant_id, stripe_payment_intent_id)"
    " WHERE stripe_payment_intent_id IS NOT NULL",
    # One deposit per booking; one attempt number per booking's balance charges (the
    # attempt is part of the Stripe idempotency key, so a retried job reuses it).
    "CREATE UNIQUE INDEX uq_payments_deposit ON payments (tenant_id, booking_id) WHERE kind = 'deposit'",
    "CREATE UNIQUE INDEX uq_payments_attempt ON payments (tenant_id, booking_id, attempt) WHERE kind = 'balance'",
    """
    CREATE TABLE refunds (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        payment_id uuid NOT NULL,
        amount_cents integer NOT NULL,
        status text NOT NULL,
        reason text,
        request_key text NOT NULL,
        stripe_refund_id text,
        created_by uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_refunds PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_refunds_payment FOREIGN KEY (tenant_id, payment_id)
            REFERENCES payments (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_refunds_created_by FOREIGN KEY (tenant_id, created_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (created_by),
        CONSTRAINT ck_refunds_amount CHECK (amount_cents > 0),
        CONSTRAINT ck_refunds_status CHECK (status IN ('succeeded', 'pending', 'failed'))
    )
    """,
    # A double-clicked refund carries the same request key: the second finds the first.
    "CREATE UNIQUE INDEX uq_refunds_request ON refunds (tenant_id, request_key)",
    "CREATE UNIQUE INDEX uq_refunds_stripe ON refunds (tenant_id, stripe_refund_id) WHERE stripe_refund_id IS NOT NULL",
    "CREATE INDEX ix_refunds_payment ON refunds (tenant_id, payment_id)",
    """
    CREATE TABLE stripe_events (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id text NOT NULL,
        type text NOT NULL,
        account text NOT NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        processed_at timestamptz,
        outcome text,
        CONSTRAINT pk_stripe_events PRIMARY KEY (tenant_id, id),
        CONSTRAINT ck_stripe_events_id CHECK (id ~ '^evt_[A-Za-z0-9_]+$')
    )
    """,
    "CREATE INDEX ix_stripe_events_unprocessed ON stripe_events (tenant_id, received_at) WHERE processed_at IS NULL",
]

TENANT_TABLES = ["payments", "refunds", "stripe_events"]


def upgrade():
    statements = TENANT_COLUMNS + TABLES
    for table in TENANT_TABLES:
        statements += enable_rls(table)
        statements.append(grant_app(table, "SELECT, INSERT, UPDATE"))
    statements.append("GRANT SELECT ON stripe_events TO fieldday_definer")
    # /readyz (connected as the app role) compares the schema's revision with the code's.
    statements.append("GRANT SELECT ON alembic_version TO fieldday_app")
    # Webhooks arrive with a Stripe account id and nothing else: this is their one way in.
    statements += definer_function(
        "public.tenant_id_for_stripe_account(text)",
        """
        CREATE FUNCTION public.tenant_id_for_stripe_account(p_account text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.stripe_account_id = p_account
        $$
        """,
    )
    # The sweep behind webhook jobs: which tenants have recorded events nobody processed.
    statements += definer_function(
        "public.tenants_with_unprocessed_stripe_events(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_unprocessed_stripe_events(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT e.tenant_id FROM public.stripe_events e
            WHERE e.processed_at IS NULL AND e.received_at <= p_before
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_unprocessed_stripe_events(timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS public.tenant_id_for_stripe_account(text)")
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for column in ("deposit_cents", "payment_status"):
        op.execute(f"ALTER TABLE bookings DROP COLUMN IF EXISTS {column}")
    for column in ("deposit_kind", "deposit_value"):
        op.execute(f"ALTER TABLE packages DROP COLUMN IF EXISTS {column}")
    op.execute("DROP INDEX IF EXISTS uq_tenants_stripe_account")
    for column in (
        "stripe_account_id",
        "stripe_charges_enabled",
        "stripe_details_submitted",
        "stripe_connected_at",
        "deposit_kind",
        "deposit_value",
    ):
        op.execute(f"ALTER TABLE tenants DROP COLUMN IF EXISTS {column}")
