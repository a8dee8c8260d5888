"""The reports, each one SQL statement run under the tenant context (RLS applies as everywhere).

Every report takes a :class:`Period` (local dates, inclusive, and a grouping) and returns plain
rows (dicts). Instants are stored in UTC; weeks (ISO, from Monday) and months are cut in the
business's own time zone with ``AT TIME ZONE``, so a job at 23:30 on the 31st in New York lands
in that month, not the next (DESIGN §4). Money stays integer cents; rates are percentages with
one decimal, computed in SQL as ``numeric``. See docs/reports.md for what each figure means.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from app.extensions import db

GRAINS = ("week", "month")
# An arrival counts as on time up to this long after the customer's arrival window closes,
# the same slack the technician's page allows before it calls a stop late (app/dispatch/eta.py).
ON_TIME_GRACE_MIN = 5


@dataclass(frozen=True)
class Period:
    """Local dates ``first``..``last`` (both included) of a business in zone ``tz``, bucketed by ``grain``."""

    tenant_id: uuid.UUID
    first: date
    last: date
    grain: str
    tz: str

    def __post_init__(self):
        if self.grain not in GRAINS:
            raise ValueError(f"grain must be one of {GRAINS}")
        if self.last < self.first:
            raise ValueError("the period ends before it starts")

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def end_at(self) -> datetime:
        """The first instant after the period: midnight local after ``last``."""
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time(), ZoneInfo(self.tz)).astimezone(UTC)

    def params(self) -> dict:
        return {
            "tenant_id": self.tenant_id,
            "first": self.first,
            "last": self.last,
            "grain": self.grain,
            "tz": self.tz,
            "start_at": self.start_at,
            "end_at": self.end_at,
        }


# Every bucket of the period, so weeks or months without activity show as zeros. The first
# bucket starts on the Monday (or 1st) on or before ``first``; its figures cover only the days
# inside the period. Buckets are cut in local time (date_trunc on the local wall clock), and each
# bucket's local midnight is turned into a UTC instant once (``AT TIME ZONE``), so rows are placed
# by comparing their own timestamptz with those edges (``width_bucket``, a binary search), not by
# converting every row to local time: the same answer, DST included, several times faster.
BUCKETS = """
    buckets AS (
        SELECT CAST(b AS date) AS bucket, b AT TIME ZONE :tz AS starts_at
        FROM generate_series(date_trunc(:grain, CAST(:first AS timestamp)), CAST(:last AS timestamp),
                             CAST('1 ' || :grain AS interval)) AS b
    ),
    edges AS (
        SELECT array_agg(starts_at ORDER BY starts_at) AS starts FROM buckets
    )"""


def bucket_of(column: str) -> str:
    """SQL for the UTC start of the bucket an instant falls in (with ``edges e`` in the FROM)."""
    return f"e.starts[width_bucket({column}, e.starts)]"


NO_JIT = text("SET LOCAL jit = off")


def _rows(sql: str, period: Period, **extra) -> list[dict]:
    # The planner guesses 100 rows for every jsonb_array_elements() call, so a year of route plans
    # looks like millions of rows and PostgreSQL spends ~300 ms compiling the query with LLVM for
    # 5 ms of work; these queries are quick without JIT (scripts/bench/reports.py shows both).
    db.session.execute(NO_JIT)
    result = db.session.execute(text(sql), {**period.params(), **extra})
    return [dict(row) for row in result.mappings()]


REVENUE_SQL = f"""
WITH {BUCKETS},
money AS (
    SELECT {bucket_of("p.paid_at")} AS bucket_at,
           sum(p.amount_cents) FILTER (WHERE p.method = 'card' AND p.kind = 'deposit') AS deposits_cents,
           sum(p.amount_cents) FILTER (WHERE p.method = 'card' AND p.kind = 'balance') AS balances_cents,
           sum(p.amount_cents) FILTER (WHERE p.method <> 'card') AS cash_cents,
           sum(p.tip_cents) AS tips_cents,
           count(*) AS payments
    FROM payments p CROSS JOIN edges e
    WHERE p.tenant_id = :tenant_id AND p.status = 'succeeded'
      AND p.paid_at >= :start_at AND p.paid_at < :end_at
    GROUP BY 1
),
back AS (
    SELECT {bucket_of("r.created_at")} AS bucket_at,
           sum(r.amount_cents) AS refunds_cents,
           count(*) AS refunds
    FROM refunds r CROSS JOIN edges e
    WHERE r.tenant_id = :tenant_id AND r.status = 'succeeded'
      AND r.created_at >= :start_at AND r.created_at < :end_at
    GROUP BY 1
)
SELECT b.bucket,
       coalesce(m.deposits_cents, 0) AS deposits_cents,
       coalesce(m.balances_cents, 0) AS balances_cents,
       coalesce(m.cash_cents, 0) AS cash_cents,
       coalesce(m.tips_cents, 0) AS tips_cents,
       coalesce(r.refunds_cents, 0) AS refunds_cents,
       coalesce(m.deposits_cents, 0) + coalesce(m.balances_cents, 0) + coalesce(m.cash_cents, 0)
           + coalesce(m.tips_cents, 0) - coalesce(r.refunds_cents, 0) AS net_cents,
       coalesce(m.payments, 0) AS payments,
       coalesce(r.refunds, 0) AS refunds
FROM buckets b
LEFT JOIN money m ON m.bucket_at = b.starts_at
LEFT JOIN back r ON r.bucket_at = b.starts_at
ORDER BY b.bucket
"""


def revenue(period: Period) -> list[dict]:
    """Money in per bucket: card deposits, card balances, cash and checks, tips; refunds on the day
    they were made; net = all of it less refunds. Payments count when they succeeded (``paid_at``)."""
    return _rows(REVENUE_SQL, period)


# Jobs are counted in the bucket of their booked start. Expired bookings (a deposit never paid)
# were never jobs and are left out everywhere.
JOBS_SQL = f"""
WITH {BUCKETS},
jobs AS (
    SELECT {bucket_of("b.starts_at")} AS bucket_at,
           count(*) AS booked,
           count(*) FILTER (WHERE b.status = 'completed') AS completed,
           count(*) FILTER (WHERE b.status IN ('pending', 'confirmed', 'in_progress')) AS open,
           count(*) FILTER (WHERE b.status = 'canceled') AS canceled,
           count(*) FILTER (WHERE b.status = 'no_show') AS no_show,
           sum(b.price_cents) FILTER (WHERE b.status = 'completed') AS completed_cents
    FROM bookings b CROSS JOIN edges e
    WHERE b.tenant_id = :tenant_id AND b.status <> 'expired'
      AND b.starts_at >= :start_at AND b.starts_at < :end_at
    GROUP BY 1
)
SELECT k.bucket,
       coalesce(j.booked, 0) AS booked,
       coalesce(j.completed, 0) AS completed,
       coalesce(j.open, 0) AS open,
       coalesce(j.canceled, 0) AS canceled,
       coalesce(j.no_show, 0) AS no_show,
       round(100.0 * j.canceled / nullif(j.booked, 0), 1) AS cancel_rate,
       round(100.0 * j.no_show / nullif(j.booked, 0), 1) AS no_show_rate,
       coalesce(j.completed_cents, 0) AS completed_cents,
       CAST(round(CAST(j.completed_cents AS numeric) / nullif(j.completed, 0)) AS bigint) AS average_ticket_cents
FROM buckets k
LEFT JOIN jobs j ON j.bucket_at = k.starts_at
ORDER BY k.bucket
"""


def jobs(period: Period) -> list[dict]:
    """Jobs per bucket by status, cancellation and no-show rates (of jobs booked) and the average
    ticket (booked price of completed jobs, tips not included)."""
    return _rows(JOBS_SQL, period)


TECHNICIANS_SQL = """
SELECT t.id AS technician_id,
       t.name AS technician,
       count(b.id) AS booked,
       count(b.id) FILTER (WHERE b.status = 'completed') AS completed,
       count(b.id) FILTER (WHERE b.status IN ('pending', 'confirmed', 'in_progress')) AS open,
       count(b.id) FILTER (WHERE b.status = 'canceled') AS canceled,
       count(b.id) FILTER (WHERE b.status = 'no_show') AS no_show,
       round(100.0 * count(b.id) FILTER (WHERE b.status = 'canceled') / nullif(count(b.id), 0), 1) AS cancel_rate,
       round(100.0 * count(b.id) FILTER (WHERE b.status = 'no_show') / nullif(count(b.id), 0), 1) AS no_show_rate,
       coalesce(sum(b.price_cents) FILTER (WHERE b.status = 'completed'), 0) AS completed_cents,
       CAST(round(CAST(sum(b.price_cents) FILTER (WHERE b.status = 'completed') AS numeric)
                  / nullif(count(b.id) FILTER (WHERE b.status = 'completed'), 0)) AS bigint) AS average_ticket_cents
FROM technicians t
LEFT JOIN bookings b
       ON b.tenant_id = t.tenant_id AND b.technician_id = t.id AND b.status <> 'expired'
      AND b.starts_at >= :start_at AND b.starts_at < :end_at
WHERE t.tenant_id = :tenant_id
GROUP BY t.id, t.name, t.active, t.position
HAVING t.active OR count(b.id) > 0
ORDER BY t.position, t.name, t.id
"""


def technicians(period: Period) -> list[dict]:
    """Jobs per technician by status, with rates and average ticket (active technicians, and
    former ones who had jobs in the period)."""
    return _rows(TECHNICIANS_SQL, period)


# Each quote counted once, in the bucket it was (last) sent: older versions are 'superseded'.
QUOTES_SQL = f"""
WITH {BUCKETS},
sent AS (
    SELECT {bucket_of("q.sent_at")} AS bucket_at,
           count(*) AS sent,
           count(*) FILTER (WHERE q.status = 'accepted') AS accepted,
           count(*) FILTER (WHERE q.status = 'declined') AS declined,
           count(*) FILTER (WHERE q.status = 'expired') AS expired,
           count(*) FILTER (WHERE q.status IN ('sent', 'viewed')) AS open,
           sum(q.accepted_total_cents) FILTER (WHERE q.status = 'accepted') AS accepted_cents
    FROM quotes q CROSS JOIN edges e
    WHERE q.tenant_id = :tenant_id AND q.status <> 'superseded' AND q.status <> 'draft'
      AND q.sent_at >= :start_at AND q.sent_at < :end_at
    GROUP BY 1
)
SELECT k.bucket,
       coalesce(s.sent, 0) AS sent,
       coalesce(s.accepted, 0) AS accepted,
       coalesce(s.declined, 0) AS declined,
       coalesce(s.expired, 0) AS expired,
       coalesce(s.open, 0) AS open,
       round(100.0 * s.accepted / nullif(s.sent, 0), 1) AS conversion_rate,
       coalesce(s.accepted_cents, 0) AS accepted_cents
FROM buckets k
LEFT JOIN sent s ON s.bucket_at = k.starts_at
ORDER BY k.bucket
"""


def quotes(period: Period) -> list[dict]:
    """Quotes sent per bucket and what became of them; conversion = accepted / sent."""
    return _rows(QUOTES_SQL, period)


# Planned drive: the drive to each stop in its day's approved route plan (approving a new plan
# makes the older one stale; should two be approved, the later counts). Actual drive: from the
# technician's "on my way" to "start" on that stop. Both are summed over the stops that have both,
# so the two columns compare like with like.
ROUTES_SQL = f"""
WITH {BUCKETS},
plans AS MATERIALIZED (  -- the day's bounds in UTC computed once a plan, not once a stop
    SELECT DISTINCT ON (p.day) p.proposed,
           CAST(p.day AS timestamp) AT TIME ZONE :tz AS day_starts_at,
           CAST(p.day + 1 AS timestamp) AT TIME ZONE :tz AS day_ends_at
    FROM route_plans p
    WHERE p.tenant_id = :tenant_id AND p.status = 'approved'
      AND p.day BETWEEN CAST(:first AS date) - 1 AND CAST(:last AS date) + 1
    ORDER BY p.day, p.approved_at DESC
),
planned AS (
    SELECT plans.day_starts_at, plans.day_ends_at, CAST(s.stop ->> 'booking_id' AS uuid) AS booking_id,
           CAST(s.stop ->> 'drive_s' AS integer) AS drive_s
    FROM plans
    CROSS JOIN LATERAL jsonb_path_query(plans.proposed, '$.routes[*].stops[*]') AS s(stop)
),
stops AS (
    SELECT {bucket_of("b.starts_at")} AS bucket_at,
           b.started_at <= b.starts_at + (b.arrival_window_min + :grace_min) * interval '1 minute' AS on_time,
           pl.drive_s AS planned_s,
           CASE WHEN b.on_way_at IS NOT NULL AND b.started_at > b.on_way_at
                THEN date_part('epoch', b.started_at - b.on_way_at) END AS actual_s  -- float: cheaper than numeric
    FROM bookings b
    CROSS JOIN edges e
    -- A booking moved to another day after its plan was approved only counts with its own day's plan.
    LEFT JOIN planned pl
           ON pl.booking_id = b.id AND b.starts_at >= pl.day_starts_at AND b.starts_at < pl.day_ends_at
    WHERE b.tenant_id = :tenant_id AND b.started_at IS NOT NULL
      AND b.starts_at >= :start_at AND b.starts_at < :end_at
),
agg AS (
    SELECT bucket_at,
           count(*) AS arrivals,
           count(*) FILTER (WHERE on_time) AS on_time,
           count(*) FILTER (WHERE planned_s IS NOT NULL AND actual_s IS NOT NULL) AS drives,
           sum(planned_s) FILTER (WHERE planned_s IS NOT NULL AND actual_s IS NOT NULL) AS planned_s,
           sum(actual_s) FILTER (WHERE planned_s IS NOT NULL AND actual_s IS NOT NULL) AS actual_s
    FROM stops
    GROUP BY bucket_at
)
SELECT k.bucket,
       coalesce(a.arrivals, 0) AS arrivals,
       coalesce(a.on_time, 0) AS on_time,
       round(100.0 * a.on_time / nullif(a.arrivals, 0), 1) AS on_time_rate,
       coalesce(a.drives, 0) AS drives,
       CAST(round(coalesce(a.planned_s, 0) / 60.0) AS integer) AS planned_drive_min,
       CAST(round(coalesce(a.actual_s, 0) / 60.0) AS integer) AS actual_drive_min
FROM buckets k
LEFT JOIN agg a ON a.bucket_at = k.starts_at
ORDER BY k.bucket
"""


def routes(period: Period) -> list[dict]:
    """Arrivals and how many were on time (started by the end of the arrival window plus a few
    minutes), and planned against actual drive minutes."""
    return _rows(ROUTES_SQL, period, grace_min=ON_TIME_GRACE_MIN)


REPORTS = {
    "revenue": revenue,
    "jobs": jobs,
    "technicians": technicians,
    "quotes": quotes,
    "routes": routes,
}
