"""Customers and vehicles on the dashboard (routes on the dashboard blueprint)."""

from __future__ import annotations

from flask import render_template, request

from app.customers import services as customer_services
from app.web.dashboard import bp


@bp.get("/customers")
def customers():
    found = customer_services.search_customers(request.args.get("q", ""))
    return render_template("dashboard/upcoming.html", title="Customers", blurb=f"{len(found)} customers", page="customers")
