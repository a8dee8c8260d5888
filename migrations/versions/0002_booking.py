"""Booking: customers, vehicles, packages, technicians, availability, bookings.

Revision ID: 0002_booking
Revises: 0001_foundation
Create Date: 2026-11-23
"""

from alembic import op

# enable_rls() emits ENABLE + FORCE ROW LEVEL SECURITY and the one NULLIF policy per table;
# tests/test_isolation_sql.py::test_t2_catalog_lint checks every tenant table has them.
from tenants.rls import definer_function, enable_rls, grant_app

revision = "0002_booking"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

SIZES = "('sedan', 'suv', 'truck')"
ACTIVE = "('pending', 'confirmed', 'in_progress')"

TABLES = [
    """
    CREATE TABLE customers (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        name text NOT NULL,
        phone text,
        email text,
        notes text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_customers PRIMARY KEY (tenant_id, id),
        CONSTRAINT ck_customers_name CHECK (length(btrim(name)) BETWEEN 1 AND 120),
        CONSTRAINT ck_customers_phone CHECK (phone ~ '^\\+[1-9][0-9]{6,14}$'),
        CONSTRAINT ck_customers_email CHECK (email = lower(email) AND email LIKE '_%@_%'),
        CONSTRAINT ck_customers_contact CHECK (phone IS NOT NULL OR email IS NOT NULL)
    )
    """,
    "CREATE UNIQUE INDEX uq_customers_phone ON customers (tenant_id, phone) WHERE phone IS NOT NULL",
    "CREATE INDEX ix_customers_name_trgm ON customers USING gin (name gin_trgm_ops)",
    "CREATE INDEX ix_customers_phone_trgm ON customers USING gin (phone gin_trgm_ops)",
    """
    CREATE TABLE customer_addresses (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        customer_id uuid NOT NULL,
        label text,
        line1 text NOT NULL,
        city text,
        region text,
        postal_code text,
        lat double precision NOT NULL,
        lng double precision NOT NULL,
        access_notes text,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_customer_addresses PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_customer_addresses_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_customer_addresses_lat CHECK (lat BETWEEN -90 AND 90),
        CONSTRAINT ck_customer_addresses_lng CHECK (lng BETWEEN -180 AND 180)
    )
    """,
    "CREATE INDEX ix_customer_addresses_customer ON customer_addresses (tenant_id, customer_id)",
    f"""
    CREATE TABLE vehicles (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        customer_id uuid NOT NULL,
        year integer,
        make text,
        model text,
        color text,
        plate text,
        size_class text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_vehicles PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_vehicles_customer FOREIGN KEY (tenant_id, customer_id)
            REFERENCES customers (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_vehicles_size CHECK (size_class IN {SIZES}),
        CONSTRAINT ck_vehicles_year CHECK (year IS NULL OR year BETWEEN 1900 AND 2100)
    )
    """,
    "CREATE INDEX ix_vehicles_customer ON vehicles (tenant_id, customer_id)",
    "CREATE INDEX ix_vehicles_plate_trgm ON vehicles USING gin (plate gin_trgm_ops)",
    """
    CREATE TABLE packages (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        kind text NOT NULL DEFAULT 'package',
        name text NOT NULL,
        description text,
        active boolean NOT NULL DEFAULT true,
        position integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_packages PRIMARY KEY (tenant_id, id),
        CONSTRAINT ck_packages_kind CHECK (kind IN ('package', 'addon')),
        CONSTRAINT ck_packages_name CHECK (length(btrim(name)) BETWEEN 1 AND 120)
    )
    """,
    f"""
    CREATE TABLE package_prices (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        package_id uuid NOT NULL,
        size_class text NOT NULL,
        price_cents integer NOT NULL,
        duration_min integer NOT NULL,
        CONSTRAINT pk_package_prices PRIMARY KEY (tenant_id, package_id, size_class),
        CONSTRAINT fk_package_prices_package FOREIGN KEY (tenant_id, package_id)
            REFERENCES packages (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_package_prices_size CHECK (size_class IN {SIZES}),
        CONSTRAINT ck_package_prices_price CHECK (price_cents BETWEEN 0 AND 10000000),
        CONSTRAINT ck_package_prices_duration CHECK (duration_min BETWEEN 0 AND 1440)
    )
    """,
    """
    CREATE TABLE technicians (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        user_id uuid,
        name text NOT NULL,
        color text NOT NULL DEFAULT '#0f766e',
        home_address text,
        home_lat double precision,
        home_lng double precision,
        skills text[] NOT NULL DEFAULT '{}',
        active boolean NOT NULL DEFAULT true,
        position integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_technicians PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_technicians_user FOREIGN KEY (tenant_id, user_id)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (user_id),
        CONSTRAINT ck_technicians_color CHECK (color ~ '^#[0-9a-f]{6}$')
    )
    """,
    "CREATE UNIQUE INDEX uq_technicians_user ON technicians (tenant_id, user_id) WHERE user_id IS NOT NULL",
    """
    CREATE TABLE working_hours (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        technician_id uuid NOT NULL,
        weekday smallint NOT NULL,
        start_local time NOT NULL,
        end_local time NOT NULL,
        CONSTRAINT pk_working_hours PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_working_hours_technician FOREIGN KEY (tenant_id, technician_id)
            REFERENCES technicians (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_working_hours_weekday CHECK (weekday BETWEEN 0 AND 6),
        CONSTRAINT ck_working_hours_order CHECK (start_local < end_local)
    )
    """,
    "CREATE INDEX ix_working_hours_technician ON working_hours (tenant_id, technician_id)",
    """
    CREATE TABLE busy_blocks (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        technician_id uuid NOT NULL,
        during tstzrange NOT NULL,
        source text NOT NULL DEFAULT 'manual',
        external_id text,
        summary text,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_busy_blocks PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_busy_blocks_technician FOREIGN KEY (tenant_id, technician_id)
            REFERENCES technicians (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_busy_blocks_source CHECK (source IN ('manual', 'day_off', 'google')),
        CONSTRAINT ck_busy_blocks_during CHECK (NOT isempty(during) AND lower(during) IS NOT NULL
                                                 AND upper(during) IS NOT NULL)
    )
    """,
    "CREATE INDEX ix_busy_blocks_during ON busy_blocks USING gist (tenant_id, technician_id, during)",
    "CREATE UNIQUE INDEX uq_busy_blocks_external ON busy_blocks (tenant_id, technician_id, source, external_id)"
    " WHERE external_id IS NOT NULL",
    f"""
    CREATE TABLE bookings (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        reference text NOT NULL,
        customer_id uuid NOT NULL,
        vehicle_id uuid NOT NULL,
        address_id uuid NOT NULL,
        technician_id uuid NOT NULL,
        status text NOT NULL,
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        -- What the technician's calendar loses: the job plus the buffer after it.
        during tstzrange NOT NULL,
        arrival_window_min integer NOT NULL DEFAULT 0,
        price_cents integer NOT NULL,
        currency char(3) NOT NULL,
        hold_expires_at timestamptz,
        source text NOT NULL DEFAULT 'site',
        reschedule_count integer NOT NULL DEFAULT 0,
        token_version integer NOT NULL DEFAULT 1,
        customer_notes text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_bookings PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_bookings_reference UNIQUE (tenant_id, reference),
        CONSTRAINT fk_bookings_customer FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
        CONSTRAINT fk_bookings_vehicle FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id),
        CONSTRAINT fk_bookings_address FOREIGN KEY (tenant_id, address_id)
            REFERENCES customer_addresses (tenant_id, id),
        CONSTRAINT fk_bookings_technician FOREIGN KEY (tenant_id, technician_id)
            REFERENCES technicians (tenant_id, id),
        CONSTRAINT ck_bookings_status CHECK (status IN
            ('pending', 'confirmed', 'in_progress', 'completed', 'canceled', 'no_show', 'expired')),
        CONSTRAINT ck_bookings_times CHECK (starts_at < ends_at AND lower(during) = starts_at
                                            AND upper(during) >= ends_at),
        CONSTRAINT ck_bookings_price CHECK (price_cents >= 0),
        CONSTRAINT ck_bookings_hold CHECK (status <> 'pending' OR hold_expires_at IS NOT NULL),
        CONSTRAINT ck_bookings_source CHECK (source IN ('site', 'dashboard', 'api', 'quote')),
        -- No double booking, decided by PostgreSQL (DESIGN §5): every transition into an
        -- active status is covered, including reactivation.
        CONSTRAINT ex_bookings_no_overlap EXCLUDE USING gist
            (tenant_id WITH =, technician_id WITH =, during WITH &&) WHERE (status IN {ACTIVE})
    )
    """,
    "CREATE INDEX ix_bookings_starts ON bookings (tenant_id, starts_at)",
    "CREATE INDEX ix_bookings_customer ON bookings (tenant_id, customer_id, starts_at DESC)",
    "CREATE INDEX ix_bookings_pending_holds ON bookings (tenant_id, hold_expires_at) WHERE status = 'pending'",
    """
    CREATE TABLE booking_items (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        package_id uuid,
        kind text NOT NULL,
        name text NOT NULL,
        price_cents integer NOT NULL,
        duration_min integer NOT NULL,
        CONSTRAINT pk_booking_items PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_booking_items_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_booking_items_package FOREIGN KEY (tenant_id, package_id)
            REFERENCES packages (tenant_id, id) ON DELETE SET NULL (package_id),
        CONSTRAINT ck_booking_items_price CHECK (price_cents >= 0)
    )
    """,
    "CREATE INDEX ix_booking_items_booking ON booking_items (tenant_id, booking_id)",
    """
    CREATE TABLE booking_events (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        actor_type text NOT NULL,
        actor_id uuid,
        from_status text,
        to_status text NOT NULL,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        CONSTRAINT pk_booking_events PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_booking_events_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT ck_booking_events_actor CHECK (actor_type IN ('customer', 'user', 'system'))
    )
    """,
    "CREATE INDEX ix_booking_events_booking ON booking_events (tenant_id, booking_id, created_at)",
]

RULES = [
    # Booking rules live on the tenant (one row each; DESIGN §5).
    "ALTER TABLE tenants ADD COLUMN lead_time_min integer NOT NULL DEFAULT 120"
    " CONSTRAINT ck_tenants_lead_time CHECK (lead_time_min BETWEEN 0 AND 20160)",
    "ALTER TABLE tenants ADD COLUMN horizon_days integer NOT NULL DEFAULT 60"
    " CONSTRAINT ck_tenants_horizon CHECK (horizon_days BETWEEN 1 AND 365)",
    "ALTER TABLE tenants ADD COLUMN buffer_min integer NOT NULL DEFAULT 15"
    " CONSTRAINT ck_tenants_buffer CHECK (buffer_min BETWEEN 0 AND 240)",
    "ALTER TABLE tenants ADD COLUMN arrival_window_min integer NOT NULL DEFAULT 60"
    " CONSTRAINT ck_tenants_window CHECK (arrival_window_min BETWEEN 0 AND 480)",
    "ALTER TABLE tenants ADD COLUMN slot_step_min integer NOT NULL DEFAULT 30"
    " CONSTRAINT ck_tenants_step CHECK (slot_step_min IN (15, 20, 30, 60))",
    "ALTER TABLE tenants ADD COLUMN hold_min integer NOT NULL DEFAULT 15"
    " CONSTRAINT ck_tenants_hold CHECK (hold_min BETWEEN 5 AND 1440)",
    "ALTER TABLE tenants ADD COLUMN cancel_cutoff_hours integer NOT NULL DEFAULT 24"
    " CONSTRAINT ck_tenants_cutoff CHECK (cancel_cutoff_hours BETWEEN 0 AND 336)",
    "ALTER TABLE tenants ADD COLUMN max_reschedules integer NOT NULL DEFAULT 2"
    " CONSTRAINT ck_tenants_max_reschedules CHECK (max_reschedules BETWEEN 0 AND 20)",
    "ALTER TABLE tenants ADD COLUMN deposits_enabled boolean NOT NULL DEFAULT false",
]

TENANT_TABLES = [
    "customers", "customer_addresses", "vehicles", "packages", "package_prices", "technicians",
    "working_hours", "busy_blocks", "bookings", "booking_items", "booking_events",
]


def upgrade():
    statements = list(TABLES) + RULES
    for table in TENANT_TABLES:
        statements += enable_rls(table)
        # The transition log is append-only for the application.
        statements.append(grant_app(table, "SELECT, INSERT" if table == "booking_events" else
                                    "SELECT, INSERT, UPDATE, DELETE"))
    statements.append("GRANT SELECT ON bookings TO fieldday_definer")
    # The scheduler's fan-out: which tenants have holds to expire (ids only, nothing else).
    statements += definer_function(
        "public.tenants_with_expired_holds(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_expired_holds(p_now timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT b.tenant_id FROM public.bookings b
            WHERE b.status = 'pending' AND b.hold_expires_at <= p_now
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_expired_holds(timestamptz)")
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for column in ("lead_time_min", "horizon_days", "buffer_min", "arrival_window_min", "slot_step_min",
                   "hold_min", "cancel_cutoff_hours", "max_reschedules", "deposits_enabled"):
        op.execute(f"ALTER TABLE tenants DROP COLUMN IF EXISTS {column}")
