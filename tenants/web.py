"""Per-request tenant resolution (DESIGN §2–3), like redash's org_resolving.

The tenant comes from the host on booking sites, and from the signed session on
the app host. Client-supplied tenant ids (query strings, headers) are never read.
"""

from __future__ import annotations

import uuid

from flask import abort, current_app, g, redirect, request, session

from app.extensions import db
from tenants.context import activate
from tenants.hosts import HostError, HostInfo
from tenants.lookup import tenant_id_for_subdomain
from tenants.models import Tenant


def init_app(app) -> None:
    # Registered first so every other before_request already sees g.tenant.
    app.before_request_funcs.setdefault(None, []).insert(0, resolve_tenant)
    app.teardown_request(_clear)


def session_tenant_id() -> uuid.UUID | None:
    """The tenant named by the logged-in user id in the signed session cookie."""
    user_id = session.get("_user_id")
    if not user_id or not isinstance(user_id, str):
        return None
    try:
        return uuid.UUID(user_id.split(".", 1)[0])
    except ValueError:
        return None


def resolve_tenant():
    g.tenant = None
    info = request.environ.get("fieldday.host")
    if request.endpoint and request.endpoint.split(".")[-1] == "healthz":
        return None
    is_asset = bool(request.endpoint) and request.endpoint.endswith("assets.static")
    if isinstance(info, HostError):
        g.audience = "invalid"
        if is_asset and info.status == 404:
            return None  # public, hashed files: let a reserved host's 404 page be styled
        abort(info.status)
    assert isinstance(info, HostInfo)
    g.audience = info.audience
    if is_asset:
        return None  # public files need no tenant (and an unknown tenant's 404 page needs them)
    if info.audience == "apex":
        from app.urls import app_url

        return redirect(app_url("/"), code=302)
    if info.audience == "site":
        tenant_id = tenant_id_for_subdomain(info.subdomain)
        if tenant_id is None:
            abort(404)
        activate(tenant_id, db.session)
        g.tenant = db.session.get(Tenant, tenant_id)
        if g.tenant is None:
            abort(404)
        return None
    tenant_id = session_tenant_id()
    if tenant_id is not None:
        activate(tenant_id, db.session)
        g.tenant = db.session.get(Tenant, tenant_id)
        if g.tenant is None:  # the business is gone: the session means nothing now
            activate(None, db.session)
            session.clear()
    return None


def _clear(exc=None) -> None:
    activate(None)


def current_tenant() -> Tenant | None:
    return g.get("tenant")


def require_tenant() -> Tenant:
    tenant = g.get("tenant")
    if tenant is None:
        abort(404)
    return tenant


__all__ = ["init_app", "current_tenant", "require_tenant", "current_app"]
