"""Routes: day plans from the solver, the technician's progress through the day, job photos.

Revision ID: 0004_routes
Revises: 0003_payments
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import enable_rls, grant_app

revision = "0004_routes"
down_revision = "0003_payments"
branch_labels = None
depends_on = None

BOOKING_COLUMNS = [
    # The technician's day: "on my way", start and finish as they happen; the ETA we last told.
    "ALTER TABLE bookings ADD COLUMN on_way_at timestamptz",
    "ALTER TABLE bookings ADD COLUMN started_at timestamptz",
    "ALTER TABLE bookings ADD COLUMN finished_at timestamptz",
    "ALTER TABLE bookings ADD COLUMN eta_at timestamptz",
    # Position in the technician's approved route for its day (NULL: by start time).
    "ALTER TABLE bookings ADD COLUMN route_position integer",
    # Approving a day plan may swap two technicians' jobs at the same hour: checked once at the
    # end of that statement group (SET CONSTRAINTS ... DEFERRED), immediate everywhere else.
    "ALTER TABLE bookings DROP CONSTRAINT ex_bookings_no_overlap",
    "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_no_overlap EXCLUDE USING gist"
    " (tenant_id WITH =, technician_id WITH =, during WITH &&)"
    " WHERE (status IN ('pending', 'confirmed', 'in_progress')) DEFERRABLE INITIALLY IMMEDIATE",
]

TABLES = [
    """
    CREATE TABLE route_plans (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        day date NOT NULL,
        status text NOT NULL DEFAULT 'queued',
        requested_by uuid,
        requested_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        approved_by uuid,
        approved_at timestamptz,
        current jsonb,
        proposed jsonb,
        error text,
        CONSTRAINT pk_route_plans PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_route_plans_requested_by FOREIGN KEY (tenant_id, requested_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (requested_by),
        CONSTRAINT fk_route_plans_approved_by FOREIGN KEY (tenant_id, approved_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (approved_by),
        CONSTRAINT ck_route_plans_status CHECK (status IN ('queued', 'solving', 'ready', 'failed', 'approved', 'stale'))
    )
    """,
    "CREATE INDEX ix_route_plans_day ON route_plans (tenant_id, day, requested_at DESC)",
    """
    CREATE TABLE booking_photos (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        kind text NOT NULL,
        key text NOT NULL,
        content_type text NOT NULL,
        size_bytes integer,
        uploaded_by uuid,
        status text NOT NULL DEFAULT 'pending',
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_booking_photos PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_booking_photos_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_booking_photos_uploaded_by FOREIGN KEY (tenant_id, uploaded_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (uploaded_by),
        CONSTRAINT ck_booking_photos_kind CHECK (kind IN ('before', 'after')),
        CONSTRAINT ck_booking_photos_status CHECK (status IN ('pending', 'stored')),
        CONSTRAINT ck_booking_photos_key CHECK (key LIKE 'tenants/' || tenant_id::text || '/%')
    )
    """,
    "CREATE UNIQUE INDEX uq_booking_photos_key ON booking_photos (tenant_id, key)",
    "CREATE INDEX ix_booking_photos_booking ON booking_photos (tenant_id, booking_id, created_at)",
]

TENANT_TABLES = ["route_plans", "booking_photos"]


def upgrade():
    statements = BOOKING_COLUMNS + TABLES
    for table in TENANT_TABLES:
        statements += enable_rls(table)
        statements.append(grant_app(table))
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("ALTER TABLE bookings DROP CONSTRAINT ex_bookings_no_overlap")
    op.execute(
        "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_no_overlap EXCLUDE USING gist"
        " (tenant_id WITH =, technician_id WITH =, during WITH &&)"
        " WHERE (status IN ('pending', 'confirmed', 'in_progress'))"
    )
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for column in ("on_way_at", "started_at", "finished_at", "eta_at", "route_position"):
        op.execute(f"ALTER TABLE bookings DROP COLUMN IF EXISTS {column}")
