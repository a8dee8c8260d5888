"""Reports: indexes for the revenue and quote-conversion reports, which select a business's money
and quotes by when they happened (docs/reports.md; scripts/bench/reports.py).

Revision ID: 0009_reports
Revises: 0008_quotes
Create Date: 2026-11-23
"""

from alembic import op

revision = "0009_reports"
down_revision = "0008_quotes"
branch_labels = None
depends_on = None

# Covering (INCLUDE) and partial on exactly what the reports read, so a year of one business is an
# index-only range scan however many other businesses share the table. Bookings already have
# ix_bookings_starts (tenant_id, starts_at), which the jobs, technicians and routes reports use.
INDEXES = {
    "ix_payments_paid": "CREATE INDEX ix_payments_paid ON payments (tenant_id, paid_at)"
    " INCLUDE (kind, method, amount_cents, tip_cents) WHERE status = 'succeeded'",
    "ix_refunds_made": "CREATE INDEX ix_refunds_made ON refunds (tenant_id, created_at)"
    " INCLUDE (amount_cents) WHERE status = 'succeeded'",
    "ix_quotes_sent": "CREATE INDEX ix_quotes_sent ON quotes (tenant_id, sent_at)"
    " INCLUDE (status, accepted_total_cents) WHERE status NOT IN ('draft', 'superseded')",
}


def upgrade():
    for sql in INDEXES.values():
        op.execute(sql)


def downgrade():
    for name in reversed(INDEXES):
        op.execute(f"DROP INDEX IF EXISTS {name}")
