"""Reports in the dashboard: one page with a chart and a table per report, and a CSV per report
(dashboard blueprint; owners and admins only, the blueprint's default)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Response, g, render_template, request

from app.reports import services as reports
from app.web.dashboard import bp

# Colours of the series; the same meaning keeps the same colour across charts.
TEAL, BLUE, AMBER, SLATE, RED, PURPLE = "#0f766e", "#2563eb", "#d97706", "#64748b", "#dc2626", "#7c3aed"


def _period():
    tz = g.tenant.time_zone
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()
    return reports.parse_period(g.tenant.id, tz, today, request.args)


def _series(rows: list[dict], key: str, label: str, color: str, **kw) -> dict:
    return {"label": label, "data": [r[key] for r in rows], "color": color, **kw}


def _rate_series(rows: list[dict], key: str, label: str, color: str) -> dict:
    data = [float(r[key]) if r[key] is not None else None for r in rows]
    return {"label": label, "data": data, "color": color, "type": "line", "axis": "pct"}


def chart(name: str, rows: list[dict], grain: str) -> dict:
    """What reports.js draws for one report (read from a data attribute: no inline script)."""
    labels = [reports.bucket_label(r["bucket"], grain) for r in rows] if name != "technicians" else []
    if name == "revenue":
        return {
            "labels": labels,
            "unit": "money",
            "currency": g.tenant.currency,
            "stacked": True,
            "datasets": [
                _series(rows, "deposits_cents", "Deposits", TEAL),
                _series(rows, "balances_cents", "Card balances", BLUE),
                _series(rows, "cash_cents", "Cash & checks", AMBER),
                _series(rows, "tips_cents", "Tips", PURPLE),
                {"label": "Refunds", "data": [-r["refunds_cents"] for r in rows], "color": RED},
                _series(rows, "net_cents", "Net", SLATE, type="line"),
            ],
        }
    if name == "jobs":
        return {
            "labels": labels,
            "unit": "count",
            "stacked": True,
            "datasets": [
                _series(rows, "completed", "Completed", TEAL),
                _series(rows, "open", "Still open", BLUE),
                _series(rows, "canceled", "Canceled", AMBER),
                _series(rows, "no_show", "No-shows", RED),
                _rate_series(rows, "cancel_rate", "Cancellation rate %", SLATE),
                _rate_series(rows, "no_show_rate", "No-show rate %", PURPLE),
            ],
        }
    if name == "technicians":
        return {
            "labels": [r["technician"] for r in rows],
            "unit": "count",
            "stacked": True,
            "horizontal": True,
            "datasets": [
                _series(rows, "completed", "Completed", TEAL),
                _series(rows, "open", "Still open", BLUE),
                _series(rows, "canceled", "Canceled", AMBER),
                _series(rows, "no_show", "No-shows", RED),
            ],
        }
    if name == "quotes":
        return {
            "labels": labels,
            "unit": "count",
            "datasets": [
                _series(rows, "sent", "Sent", BLUE),
                _series(rows, "accepted", "Accepted", TEAL),
                _series(rows, "declined", "Declined", AMBER),
                _rate_series(rows, "conversion_rate", "Conversion %", SLATE),
            ],
        }
    return {
        "labels": labels,
        "unit": "minutes",
        "datasets": [
            _series(rows, "planned_drive_min", "Planned drive (min)", BLUE),
            _series(rows, "actual_drive_min", "Actual drive (min)", AMBER),
            _rate_series(rows, "on_time_rate", "On-time arrivals %", TEAL),
        ],
    }


@bp.get("/reports")
def reports_page():
    period, range_key, errors = _period()
    sections = []
    for name in reports.NAMES:
        rows = reports.run(name, period)
        sections.append(
            {
                "name": name,
                "title": reports.TITLES[name],
                "columns": reports.COLUMNS[name],
                "rows": rows,
                "totals": reports.totals(name, rows),
                "empty": reports.is_empty(name, rows),
                "chart": chart(name, rows, period.grain),
            }
        )
    by_name = {s["name"]: s for s in sections}
    return render_template(
        "dashboard/reports.html",
        period=period,
        range_key=range_key,
        ranges=reports.RANGES,
        errors=errors,
        sections=sections,
        summary={name: s["totals"] for name, s in by_name.items()},
        query={k: v for k, v in request.args.items() if k in ("range", "from", "to", "group")},
        bucket_label=reports.bucket_label,
    )


def reports_csv(name: str):
    period, _, _ = _period()
    rows = reports.run(name, period)
    body = reports.to_csv(name, rows, period, g.tenant.currency)
    filename = f"{name}-{period.first.isoformat()}-to-{period.last.isoformat()}-by-{period.grain}.csv"
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


# One URL per report (/reports/revenue.csv, ...): a fixed set, so an unknown name is a plain 404.
for _name in reports.NAMES:
    bp.add_url_rule(
        f"/reports/{_name}.csv",
        endpoint="reports_csv",
        view_func=reports_csv,
        defaults={"name": _name},
        methods=["GET"],
    )
