"""Short links for texts: ``https://<sub>.<base>/l/<code>`` stands for a long signed link on the same
booking site, so an automatic text fits in one SMS segment (docs/messages.md, "Short links").

Revision ID: 0013_short_links
Revises: 0012_platform_billing
Create Date: 2026-11-24

A row is the business's own (RLS): the redirect looks the code up within the host's business, so
another business's code is simply not there. ``target`` is only a path (+ query) on that same site;
the CHECK makes "an absolute or protocol-relative URL" impossible to store, so a row can never turn
the redirect into an open redirect, whatever code wrote it.
"""

from alembic import op

from tenants.rls import enable_rls, grant_app

revision = "0013_short_links"
down_revision = "0012_platform_billing"
branch_labels = None
depends_on = None


def upgrade():
    statements = [
        r"""
        CREATE TABLE short_links (
            tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            code text NOT NULL,
            target text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            CONSTRAINT pk_short_links PRIMARY KEY (tenant_id, code),
            CONSTRAINT ck_short_links_code CHECK (code ~ '^[0-9A-Za-z]{10,32}$'),
            -- "/" then anything but "/" or "\" (so never "//host" or "/\host"), no spaces or controls.
            CONSTRAINT ck_short_links_target CHECK (
                length(target) <= 2000 AND target ~ '^/([^/\\]|$)' AND target !~ '[[:space:][:cntrl:]]'),
            CONSTRAINT ck_short_links_expiry CHECK (expires_at > created_at)
        )
        """,
        # The purge of long-expired links (app/links/services.py) walks this per business.
        "CREATE INDEX ix_short_links_expires ON short_links (tenant_id, expires_at)",
    ]
    statements += enable_rls("short_links") + [grant_app("short_links")]
    for sql in statements:
        op.execute(sql)


def downgrade():
    op.execute("DROP TABLE IF EXISTS short_links")
