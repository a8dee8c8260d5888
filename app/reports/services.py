"""Reports around the SQL: the period a request asks for, the columns each report shows, the
period's totals and the CSV export. Pure functions apart from ``run``; no Flask here."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from app.customers.csv_io import safe_cell
from app.reports import queries
from app.reports.queries import Period

RANGES = {
    "30d": "Last 30 days",
    "12w": "Last 12 weeks",
    "12m": "Last 12 months",
    "custom": "Custom",
}
DEFAULT_RANGE = "12w"
MAX_DAYS = 3 * 366 + 1  # a custom period is at most about three years


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "count"  # count | money | rate | minutes | date | text


COLUMNS: dict[str, tuple[Column, ...]] = {
    "revenue": (
        Column("bucket", "Period", "date"),
        Column("deposits_cents", "Deposits", "money"),
        Column("balances_cents", "Card balances", "money"),
        Column("cash_cents", "Cash & checks", "money"),
        Column("tips_cents", "Tips", "money"),
        Column("refunds_cents", "Refunds", "money"),
        Column("net_cents", "Net", "money"),
        Column("payments", "Payments"),
        Column("refunds", "Refund count"),
    ),
    "jobs": (
        Column("bucket", "Period", "date"),
        Column("booked", "Booked"),
        Column("completed", "Completed"),
        Column("open", "Still open"),
        Column("canceled", "Canceled"),
        Column("no_show", "No-shows"),
        Column("cancel_rate", "Cancellation rate", "rate"),
        Column("no_show_rate", "No-show rate", "rate"),
        Column("completed_cents", "Completed value", "money"),
        Column("average_ticket_cents", "Average ticket", "money"),
    ),
    "technicians": (
        Column("technician", "Technician", "text"),
        Column("booked", "Booked"),
        Column("completed", "Completed"),
        Column("open", "Still open"),
        Column("canceled", "Canceled"),
        Column("no_show", "No-shows"),
        Column("cancel_rate", "Cancellation rate", "rate"),
        Column("no_show_rate", "No-show rate", "rate"),
        Column("completed_cents", "Completed value", "money"),
        Column("average_ticket_cents", "Average ticket", "money"),
    ),
    "quotes": (
        Column("bucket", "Period", "date"),
        Column("sent", "Sent"),
        Column("accepted", "Accepted"),
        Column("declined", "Declined"),
        Column("expired", "Expired"),
        Column("open", "Still open"),
        Column("conversion_rate", "Conversion", "rate"),
        Column("accepted_cents", "Accepted value", "money"),
    ),
    "routes": (
        Column("bucket", "Period", "date"),
        Column("arrivals", "Arrivals"),
        Column("on_time", "On time"),
        Column("on_time_rate", "On-time rate", "rate"),
        Column("drives", "Drives compared"),
        Column("planned_drive_min", "Planned drive (min)", "minutes"),
        Column("actual_drive_min", "Actual drive (min)", "minutes"),
    ),
}
TITLES = {
    "revenue": "Revenue",
    "jobs": "Jobs",
    "technicians": "Jobs by technician",
    "quotes": "Quote conversion",
    "routes": "Routes",
}
NAMES = tuple(queries.REPORTS)
assert set(NAMES) == set(COLUMNS) == set(TITLES)


def parse_period(tenant_id: uuid.UUID, tz: str, today: date, args: dict) -> tuple[Period, str, dict[str, str]]:
    """The period a request asks for (``range``: 30d | 12w | 12m | custom with ``from``/``to``;
    ``group``: week | month). Anything unreadable falls back to a sensible default and is
    reported in the returned errors. Returns (period, range key, errors)."""
    errors: dict[str, str] = {}
    key = args.get("range") or DEFAULT_RANGE
    if key not in RANGES:
        errors["range"] = "Choose one of the periods offered."
        key = DEFAULT_RANGE
    if key == "30d":
        first, last, grain = today - timedelta(days=29), today, "week"
    elif key == "12w":
        monday = today - timedelta(days=today.weekday())
        first, last, grain = monday - timedelta(weeks=11), today, "week"
    elif key == "12m":
        month = today.replace(day=1)
        for _ in range(11):
            month = (month - timedelta(days=1)).replace(day=1)
        first, last, grain = month, today, "month"
    else:
        first, last = _day(args.get("from")), _day(args.get("to"))
        if first is None or last is None:
            errors["from"] = "Enter both dates of the custom period."
            key, first, last = "12w", today - timedelta(days=today.weekday()) - timedelta(weeks=11), today
        elif last < first:
            first, last = last, first
        if (last - first).days + 1 > MAX_DAYS:
            errors["to"] = "A custom period can be at most three years; showing the last three years of it."
            first = last - timedelta(days=MAX_DAYS - 1)
        grain = "week" if (last - first).days < 92 else "month"
    group = args.get("group")
    if group in queries.GRAINS:
        grain = group
    elif group:
        errors["group"] = "Group by week or by month."
    return Period(tenant_id=tenant_id, first=first, last=last, grain=grain, tz=tz), key, errors


def _day(raw: str | None) -> date | None:
    try:
        day = date.fromisoformat((raw or "").strip())
    except ValueError:
        return None
    return day if date(2000, 1, 1) <= day <= date(2100, 12, 31) else None


def run(name: str, period: Period) -> list[dict]:
    """One report's rows (raises KeyError for an unknown name)."""
    return queries.REPORTS[name](period)


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _average(total: int, count: int) -> int | None:
    if not count:
        return None
    return int((Decimal(total) / Decimal(count)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def totals(name: str, rows: list[dict]) -> dict:
    """The whole period's figures, from the rows: counts and cents add up; rates and averages are
    recomputed from the sums (never averaged)."""
    out: dict = {}
    for col in COLUMNS[name]:
        if col.kind in ("count", "money", "minutes"):
            out[col.key] = sum(r[col.key] or 0 for r in rows)
    if name in ("jobs", "technicians"):
        out["cancel_rate"] = _rate(out["canceled"], out["booked"])
        out["no_show_rate"] = _rate(out["no_show"], out["booked"])
        out["average_ticket_cents"] = _average(out["completed_cents"], out["completed"])
    elif name == "quotes":
        out["conversion_rate"] = _rate(out["accepted"], out["sent"])
    elif name == "routes":
        out["on_time_rate"] = _rate(out["on_time"], out["arrivals"])
    return out


def is_empty(name: str, rows: list[dict]) -> bool:
    """No activity at all in the period (every count is zero)."""
    keys = {
        "revenue": ("payments", "refunds"),
        "jobs": ("booked",),
        "technicians": ("booked",),
        "quotes": ("sent",),
        "routes": ("arrivals",),
    }[name]
    return not any(r[k] for r in rows for k in keys)


def bucket_label(day: date, grain: str) -> str:
    return day.strftime("%b %Y") if grain == "month" else "Wk of " + day.strftime("%b %-d")


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(value), 100)
    return f"{sign}{whole}.{rest:02d}"


def csv_cell(col: Column, value) -> str:
    if value is None:
        return ""
    if col.kind == "money":
        return _cents(int(value))
    if col.kind == "date":
        return value.isoformat()
    if col.kind == "text":
        return safe_cell(value)
    return str(value)


def to_csv(name: str, rows: list[dict], period: Period, currency: str) -> str:
    """One report as CSV: a header row, one row per bucket (or technician) and a total row.
    Money in currency units with two decimals; UTF-8 with a byte-order mark for Excel."""
    cols = COLUMNS[name]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = []
    for col in cols:
        if col.kind == "money":
            header.append(f"{col.label} ({currency})")
        elif col.kind == "rate":
            header.append(f"{col.label} (%)")
        elif col.key == "bucket":
            header.append(f"{period.grain.title()} starting")
        else:
            header.append(col.label)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(col, row.get(col.key)) for col in cols])
    total = totals(name, rows)
    writer.writerow(["Total" if i == 0 else csv_cell(col, total.get(col.key)) for i, col in enumerate(cols)])
    return "\ufeff" + out.getvalue()
