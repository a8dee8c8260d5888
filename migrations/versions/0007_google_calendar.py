"""Google Calendar: connections (per technician, or the business's own), the calendars chosen in them with
their sync state, watch channels, the events we exported per booking, proposed changes that came back
from Google; imported busy time lands in busy_blocks (source 'google').

Revision ID: 0007_google_calendar
Revises: 0006_messages_more
Create Date: 2026-11-23
"""

from alembic import op

from tenants.rls import definer_function, enable_rls, grant_app

revision = "0007_google_calendar"
down_revision = "0006_messages_more"
branch_labels = None
depends_on = None

TABLES = [
    """
    CREATE TABLE google_connections (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        -- NULL: the business's own Google account (its calendars are assigned to technicians one by one).
        technician_id uuid,
        account_email text,
        refresh_token_enc text,
        scopes text,
        status text NOT NULL DEFAULT 'connected',
        problem text,
        owner_notified_at timestamptz,
        connected_by uuid,
        connected_at timestamptz NOT NULL DEFAULT now(),
        disconnected_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_google_connections PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_google_connections_owner UNIQUE NULLS NOT DISTINCT (tenant_id, technician_id),
        CONSTRAINT fk_google_connections_technician FOREIGN KEY (tenant_id, technician_id)
            REFERENCES technicians (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_google_connections_user FOREIGN KEY (tenant_id, connected_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (connected_by),
        CONSTRAINT ck_google_connections_status CHECK (status IN ('connected', 'disconnected')),
        CONSTRAINT ck_google_connections_token CHECK (status <> 'connected' OR refresh_token_enc IS NOT NULL)
    )
    """,
    """
    CREATE TABLE google_calendars (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        connection_id uuid NOT NULL,
        google_id text NOT NULL,
        summary text NOT NULL DEFAULT '',
        access_role text NOT NULL DEFAULT 'reader',
        is_primary boolean NOT NULL DEFAULT false,
        time_zone text,
        -- Which technician this calendar's busy time blocks (NULL: it blocks nobody).
        technician_id uuid,
        blocks_time boolean NOT NULL DEFAULT false,
        receives_bookings boolean NOT NULL DEFAULT false,
        missing_since timestamptz,
        -- Sync state: the last page's nextSyncToken, when it last worked, and what went wrong since.
        sync_token text,
        sync_status text NOT NULL DEFAULT 'idle',
        sync_requested_at timestamptz,
        last_synced_at timestamptz,
        last_full_sync_at timestamptz,
        sync_error text,
        sync_error_at timestamptz,
        events_seen integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_google_calendars PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_google_calendars_google_id UNIQUE (tenant_id, connection_id, google_id),
        CONSTRAINT fk_google_calendars_connection FOREIGN KEY (tenant_id, connection_id)
            REFERENCES google_connections (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_google_calendars_technician FOREIGN KEY (tenant_id, technician_id)
            REFERENCES technicians (tenant_id, id) ON DELETE SET NULL (technician_id),
        CONSTRAINT ck_google_calendars_sync_status CHECK (sync_status IN ('idle', 'queued', 'running', 'ok', 'error')),
        CONSTRAINT ck_google_calendars_blocks CHECK (NOT blocks_time OR technician_id IS NOT NULL)
    )
    """,
    # One calendar per connection receives Fieldday's bookings.
    "CREATE UNIQUE INDEX uq_google_calendars_receiver ON google_calendars (tenant_id, connection_id)"
    " WHERE receives_bookings",
    """
    CREATE TABLE google_channels (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        -- The channel id we give Google (random, so unguessable) and the token Google echoes, kept hashed.
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        calendar_id uuid NOT NULL,
        token_sha256 text NOT NULL,
        resource_id text,
        expires_at timestamptz NOT NULL,
        stopped_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_google_channels PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_google_channels_calendar FOREIGN KEY (tenant_id, calendar_id)
            REFERENCES google_calendars (tenant_id, id) ON DELETE CASCADE
    )
    """,
    # Channel ids are random uuids chosen by us; the push lookup finds them across businesses.
    "CREATE INDEX ix_google_channels_id ON google_channels (id)",
    "CREATE INDEX ix_google_channels_expiry ON google_channels (tenant_id, expires_at) WHERE stopped_at IS NULL",
    """
    CREATE TABLE google_exported_events (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        calendar_id uuid NOT NULL,
        google_event_id text NOT NULL,
        -- What we last wrote, so an edit in Google can be told from our own echo.
        written_start timestamptz,
        written_end timestamptz,
        written_deleted boolean NOT NULL DEFAULT false,
        written_at timestamptz,
        error text,
        CONSTRAINT pk_google_exported_events PRIMARY KEY (tenant_id, id),
        CONSTRAINT uq_google_exported_events_booking UNIQUE (tenant_id, booking_id, calendar_id),
        CONSTRAINT uq_google_exported_events_event UNIQUE (tenant_id, calendar_id, google_event_id),
        CONSTRAINT fk_google_exported_events_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_google_exported_events_calendar FOREIGN KEY (tenant_id, calendar_id)
            REFERENCES google_calendars (tenant_id, id) ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE google_proposed_changes (
        tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        booking_id uuid NOT NULL,
        exported_event_id uuid,
        kind text NOT NULL,
        proposed_start timestamptz,
        proposed_end timestamptz,
        status text NOT NULL DEFAULT 'open',
        outcome text,
        created_at timestamptz NOT NULL DEFAULT now(),
        decided_at timestamptz,
        decided_by uuid,
        CONSTRAINT pk_google_proposed_changes PRIMARY KEY (tenant_id, id),
        CONSTRAINT fk_google_proposed_changes_booking FOREIGN KEY (tenant_id, booking_id)
            REFERENCES bookings (tenant_id, id) ON DELETE CASCADE,
        CONSTRAINT fk_google_proposed_changes_export FOREIGN KEY (tenant_id, exported_event_id)
            REFERENCES google_exported_events (tenant_id, id) ON DELETE SET NULL (exported_event_id),
        CONSTRAINT fk_google_proposed_changes_user FOREIGN KEY (tenant_id, decided_by)
            REFERENCES users (tenant_id, id) ON DELETE SET NULL (decided_by),
        CONSTRAINT ck_google_proposed_changes_kind CHECK (kind IN ('move', 'cancel')),
        CONSTRAINT ck_google_proposed_changes_move CHECK (kind <> 'move' OR
            (proposed_start IS NOT NULL AND proposed_end > proposed_start)),
        CONSTRAINT ck_google_proposed_changes_status CHECK (status IN ('open', 'confirmed', 'rejected', 'superseded'))
    )
    """,
    "CREATE UNIQUE INDEX uq_google_proposed_changes_open ON google_proposed_changes (tenant_id, booking_id)"
    " WHERE status = 'open'",
    # Imported busy time stays in busy_blocks (availability already reads it), tied to its calendar.
    "ALTER TABLE busy_blocks ADD COLUMN google_calendar_id uuid",
    "ALTER TABLE busy_blocks ADD COLUMN all_day boolean NOT NULL DEFAULT false",
    "ALTER TABLE busy_blocks ADD CONSTRAINT fk_busy_blocks_google_calendar FOREIGN KEY (tenant_id, google_calendar_id)"
    " REFERENCES google_calendars (tenant_id, id) ON DELETE CASCADE",
    "ALTER TABLE busy_blocks ADD CONSTRAINT ck_busy_blocks_google"
    " CHECK ((source = 'google') = (google_calendar_id IS NOT NULL))",
    "CREATE INDEX ix_busy_blocks_google_calendar ON busy_blocks (tenant_id, google_calendar_id)"
    " WHERE google_calendar_id IS NOT NULL",
]

TENANT_TABLES = [
    "google_connections",
    "google_calendars",
    "google_channels",
    "google_exported_events",
    "google_proposed_changes",
]


def upgrade():
    statements = list(TABLES)
    for table in TENANT_TABLES:
        statements += enable_rls(table) + [grant_app(table)]
    statements += [
        "GRANT SELECT ON google_channels TO fieldday_definer",
        "GRANT SELECT ON google_connections TO fieldday_definer",
    ]
    # A push names only its channel id: which business's channel is it? (ids only; the token is checked
    # afterwards under that business).
    statements += definer_function(
        "public.tenant_id_for_google_channel(uuid)",
        """
        CREATE FUNCTION public.tenant_id_for_google_channel(p_channel uuid) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT c.tenant_id FROM public.google_channels c WHERE c.id = p_channel AND c.stopped_at IS NULL
        $$
        """,
    )
    # The 15-minute sync's fan-out: businesses with a working Google connection (ids only).
    statements += definer_function(
        "public.tenants_with_google_calendar()",
        """
        CREATE FUNCTION public.tenants_with_google_calendar() RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT g.tenant_id FROM public.google_connections g WHERE g.status = 'connected'
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP FUNCTION IF EXISTS public.tenants_with_google_calendar()")
    op.execute("DROP FUNCTION IF EXISTS public.tenant_id_for_google_channel(uuid)")
    op.execute("DELETE FROM busy_blocks WHERE source = 'google'")
    op.execute("DROP INDEX IF EXISTS ix_busy_blocks_google_calendar")
    op.execute("ALTER TABLE busy_blocks DROP CONSTRAINT IF EXISTS ck_busy_blocks_google")
    op.execute("ALTER TABLE busy_blocks DROP CONSTRAINT IF EXISTS fk_busy_blocks_google_calendar")
    op.execute("ALTER TABLE busy_blocks DROP COLUMN IF EXISTS all_day")
    op.execute("ALTER TABLE busy_blocks DROP COLUMN IF EXISTS google_calendar_id")
    for table in reversed(TENANT_TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
