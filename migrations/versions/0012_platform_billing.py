"""Platform admin audit log and tenant subscriptions on Stripe Billing (issue 10).

Revision ID: 0012_platform_billing
Revises: 0011_data_rights
Create Date: 2026-11-23

``platform_audit`` is the platform staff's own log, not any business's data, so it has no
``tenant_id`` and no tenant policy. It still crosses tenants (who looked at which business), so the
app role gets no privilege on it at all: it writes and reads only through two SECURITY DEFINER
functions that first check the actor is an active platform admin, and it can never UPDATE or
DELETE a row. RLS is switched on with no policy as a second lock: any role without BYPASSRLS (the
owner included) sees nothing even if someone grants it SELECT by mistake.

``billing_events`` is per business (like ``stripe_events``): the Billing webhook maps the Stripe
customer to its business through ``tenant_id_for_billing_customer`` and records each event once.
"""

from alembic import op

from tenants.rls import APP_ROLE, DEFINER_ROLE, definer_function, enable_rls, grant_app

revision = "0012_platform_billing"
down_revision = "0011_data_rights"
branch_labels = None
depends_on = None

SUBSCRIPTION_STATUSES = (
    "none",
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)

# The guard every platform function starts with: the actor is an active platform admin.
IS_ADMIN = """
    EXISTS (SELECT 1 FROM public.users u WHERE u.tenant_id = p_actor_tenant AND u.id = p_actor_user
            AND u.is_active AND u.is_platform_admin)
"""


def upgrade():
    statuses = ", ".join(f"'{s}'" for s in SUBSCRIPTION_STATUSES)
    statements = [
        # The business's own subscription to Fieldday (Stripe Billing on the platform account).
        f"""
        ALTER TABLE tenants
            ADD COLUMN billing_customer_id text,
            ADD COLUMN subscription_id text,
            ADD COLUMN subscription_status text NOT NULL DEFAULT 'none',
            ADD COLUMN subscription_period_end timestamptz,
            ADD COLUMN subscription_cancel_at_period_end boolean NOT NULL DEFAULT false,
            ADD COLUMN subscription_updated_at timestamptz,
            ADD CONSTRAINT uq_tenants_billing_customer UNIQUE (billing_customer_id),
            ADD CONSTRAINT ck_tenants_subscription_status CHECK (subscription_status IN ({statuses}))
        """,
        """
        CREATE TABLE billing_events (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            id text NOT NULL,
            type text NOT NULL,
            payload jsonb NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            processed_at timestamptz,
            outcome text,
            CONSTRAINT pk_billing_events PRIMARY KEY (tenant_id, id)
        )
        """,
        "CREATE INDEX ix_billing_events_unprocessed ON billing_events (received_at) WHERE processed_at IS NULL",
        """
        CREATE TABLE platform_audit (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            actor_user_id uuid NOT NULL,
            actor_tenant_id uuid NOT NULL,
            actor_email text NOT NULL,
            action text NOT NULL,
            target_tenant_id uuid,
            detail jsonb NOT NULL DEFAULT '{}'::jsonb,
            ip inet,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_platform_audit_action CHECK (action ~ '^[a-z_]+(\\.[a-z_]+)*$' AND length(action) <= 64)
        )
        """,
        # No foreign keys on purpose: the log outlives the accounts and businesses it names.
        "CREATE INDEX ix_platform_audit_created ON platform_audit (created_at DESC)",
        """CREATE INDEX ix_platform_audit_target ON platform_audit (target_tenant_id, created_at DESC)
           WHERE target_tenant_id IS NOT NULL""",
        "ALTER TABLE platform_audit ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE platform_audit FORCE ROW LEVEL SECURITY",
        f"REVOKE ALL ON platform_audit FROM PUBLIC, {APP_ROLE}",
        f"GRANT SELECT, INSERT ON platform_audit TO {DEFINER_ROLE}",
        # customers: 0011 grants it already (its purge lookup); granting twice is harmless.
        f"GRANT SELECT ON billing_events, technicians, customers TO {DEFINER_ROLE}",
    ]
    statements += enable_rls("billing_events")
    statements.append(grant_app("billing_events", "SELECT, INSERT, UPDATE"))

    # Billing webhook: Stripe customer -> business, and the sweep of events never processed.
    statements += definer_function(
        "public.tenant_id_for_billing_customer(text)",
        """
        CREATE FUNCTION public.tenant_id_for_billing_customer(p_customer text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id FROM public.tenants t WHERE t.billing_customer_id = p_customer
        $$
        """,
    )
    statements += definer_function(
        "public.tenants_with_unprocessed_billing_events(timestamptz)",
        """
        CREATE FUNCTION public.tenants_with_unprocessed_billing_events(p_before timestamptz) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT DISTINCT e.tenant_id FROM public.billing_events e
            WHERE e.processed_at IS NULL AND e.received_at <= p_before
        $$
        """,
    )

    # The platform area. Each function answers only for an active platform admin.
    statements += definer_function(
        "public.platform_audit_write(uuid, uuid, text, uuid, jsonb, inet)",
        """
        CREATE FUNCTION public.platform_audit_write(
            p_actor_tenant uuid, p_actor_user uuid, p_action text, p_target uuid, p_detail jsonb, p_ip inet
        ) RETURNS uuid
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' AS $$
        DECLARE
            v_email text;
            v_id uuid;
        BEGIN
            SELECT u.email INTO v_email FROM public.users u
            WHERE u.tenant_id = p_actor_tenant AND u.id = p_actor_user AND u.is_active AND u.is_platform_admin;
            IF v_email IS NULL THEN
                RAISE EXCEPTION 'not a platform admin' USING ERRCODE = '42501';
            END IF;
            INSERT INTO public.platform_audit
                (actor_user_id, actor_tenant_id, actor_email, action, target_tenant_id, detail, ip)
            VALUES (p_actor_user, p_actor_tenant, v_email, p_action, p_target, coalesce(p_detail, '{}'::jsonb), p_ip)
            RETURNING id INTO v_id;
            RETURN v_id;
        END
        $$
        """,
    )
    statements += definer_function(
        "public.platform_audit_recent(uuid, uuid, uuid, boolean, integer)",
        f"""
        CREATE FUNCTION public.platform_audit_recent(
            p_actor_tenant uuid, p_actor_user uuid, p_target uuid, p_changes_only boolean, p_limit integer
        ) RETURNS TABLE (id uuid, created_at timestamptz, actor_email text, action text,
                         target_tenant_id uuid, target_name text, detail jsonb, ip inet)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT a.id, a.created_at, a.actor_email, a.action, a.target_tenant_id, t.name, a.detail, a.ip
            FROM public.platform_audit a LEFT JOIN public.tenants t ON t.id = a.target_tenant_id
            WHERE {IS_ADMIN}
              AND (p_target IS NULL OR a.target_tenant_id = p_target)
              AND (NOT coalesce(p_changes_only, false) OR a.action <> 'page.access')
            ORDER BY a.created_at DESC, a.id
            LIMIT least(greatest(coalesce(p_limit, 100), 1), 500)
        $$
        """,
    )
    # Find a business by part of its name, subdomain or owner's e-mail (case-insensitive; LIKE's
    # wildcards in the search are matched literally). Names, plan and dates only.
    statements += definer_function(
        "public.platform_find_tenants(uuid, uuid, text, integer)",
        f"""
        CREATE FUNCTION public.platform_find_tenants(
            p_actor_tenant uuid, p_actor_user uuid, p_query text, p_limit integer
        ) RETURNS TABLE (id uuid, subdomain text, name text, plan text, subscription_status text,
                         created_at timestamptz, owner_email text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            WITH q AS (
                SELECT '%' || replace(replace(replace(lower(btrim(coalesce(p_query, ''))),
                       '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' AS pattern
            )
            SELECT t.id, t.subdomain, t.name, t.plan, t.subscription_status, t.created_at,
                   (SELECT u.email FROM public.users u WHERE u.tenant_id = t.id AND u.role = 'owner'
                    ORDER BY u.created_at LIMIT 1)
            FROM public.tenants t, q
            WHERE {IS_ADMIN}
              AND (lower(t.name) LIKE q.pattern OR t.subdomain LIKE q.pattern
                   OR EXISTS (SELECT 1 FROM public.users o WHERE o.tenant_id = t.id AND o.role = 'owner'
                              AND o.email LIKE q.pattern))
            ORDER BY t.created_at DESC, t.id
            LIMIT least(greatest(coalesce(p_limit, 50), 1), 200)
        $$
        """,
    )
    # One business for the platform page: its plan and subscription, and usage as counts only
    # (no customer, booking or team member row leaves the function). The counts are the quota's
    # (tenants/quotas.py): active schedules, customers not anonymised or being deleted, bookings
    # created in the business's own month except expired holds.
    statements += definer_function(
        "public.platform_tenant_summary(uuid, uuid, uuid)",
        f"""
        CREATE FUNCTION public.platform_tenant_summary(p_actor_tenant uuid, p_actor_user uuid, p_tenant uuid)
        RETURNS TABLE (id uuid, subdomain text, name text, plan text, time_zone text, created_at timestamptz,
                       owner_email text, subscription_status text, subscription_period_end timestamptz,
                       subscription_cancel_at_period_end boolean, billing_customer_id text, subscription_id text,
                       technicians bigint, customers bigint, bookings_this_month bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT t.id, t.subdomain, t.name, t.plan, t.time_zone, t.created_at,
                   (SELECT u.email FROM public.users u WHERE u.tenant_id = t.id AND u.role = 'owner'
                    ORDER BY u.created_at LIMIT 1),
                   t.subscription_status, t.subscription_period_end, t.subscription_cancel_at_period_end,
                   t.billing_customer_id, t.subscription_id,
                   (SELECT count(*) FROM public.technicians x WHERE x.tenant_id = t.id AND x.active),
                   (SELECT count(*) FROM public.customers c WHERE c.tenant_id = t.id
                      AND c.anonymised_at IS NULL AND c.purge_after IS NULL),
                   (SELECT count(*) FROM public.bookings b WHERE b.tenant_id = t.id AND b.status <> 'expired'
                      AND b.created_at >= (date_trunc('month', now() AT TIME ZONE t.time_zone)
                                           AT TIME ZONE t.time_zone))
            FROM public.tenants t
            WHERE t.id = p_tenant AND {IS_ADMIN}
        $$
        """,
    )
    for sql in statements:
        op.execute(sql)


def downgrade():
    for sql in [
        "DROP FUNCTION IF EXISTS public.platform_tenant_summary(uuid, uuid, uuid)",
        "DROP FUNCTION IF EXISTS public.platform_find_tenants(uuid, uuid, text, integer)",
        "DROP FUNCTION IF EXISTS public.platform_audit_recent(uuid, uuid, uuid, boolean, integer)",
        "DROP FUNCTION IF EXISTS public.platform_audit_write(uuid, uuid, text, uuid, jsonb, inet)",
        "DROP FUNCTION IF EXISTS public.tenants_with_unprocessed_billing_events(timestamptz)",
        "DROP FUNCTION IF EXISTS public.tenant_id_for_billing_customer(text)",
        f"REVOKE SELECT ON technicians FROM {DEFINER_ROLE}",
        "DROP TABLE IF EXISTS platform_audit",
        "DROP TABLE IF EXISTS billing_events",
        """
        ALTER TABLE tenants
            DROP COLUMN IF EXISTS subscription_updated_at,
            DROP COLUMN IF EXISTS subscription_cancel_at_period_end,
            DROP COLUMN IF EXISTS subscription_period_end,
            DROP COLUMN IF EXISTS subscription_status,
            DROP COLUMN IF EXISTS subscription_id,
            DROP COLUMN IF EXISTS billing_customer_id
        """,
    ]:
        op.execute(sql)
