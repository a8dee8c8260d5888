"""A tenant's branded booking site at ``<subdomain>.<base>``. Anonymous: it never
reads the owner's session (which is not even sent here: the cookie is host-only)."""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template

from tenants import settings as tenant_settings
from tenants.web import require_tenant

bp = Blueprint("site", __name__)


@bp.before_request
def need_tenant():
    require_tenant()


@bp.get("/")
def home():
    return render_template("site/home.html", tenant=g.tenant)


@bp.get("/brand.css")
def brand_css():
    # Colours come as a stylesheet, so the CSP can forbid inline styles.
    css = f":root {{ --brand: {g.tenant.brand_color}; }}\n"
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@bp.get("/logo")
def logo():
    return tenant_settings.logo_response(g.tenant)
