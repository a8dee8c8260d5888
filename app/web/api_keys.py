"""Integrations → API keys (dashboard blueprint; owners and admins, the blueprint's default).

The key's secret is shown once, in the answer to the POST that created it: it never goes into a
redirect, a flash message or the session cookie, and the page is ``no-store`` like every dashboard page.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.accounts import services as accounts
from app.apikeys import services as apikeys
from app.errors import ValidationFailed
from app.extensions import db
from app.urls import app_url
from app.web.dashboard import bp
from tenants.plans import get_plan


def _page(*, new_key=None, secret: str | None = None, errors: dict | None = None, form=None, status: int = 200):
    people = {u.id: u.name for u in accounts.list_users()}
    return (
        render_template(
            "dashboard/api_keys.html",
            keys=apikeys.list_keys(),
            people=people,
            new_key=new_key,
            secret=secret,
            errors=errors or {},
            form=form or {},
            api_base=app_url("/api/v1"),
            allowance=get_plan(g.tenant.plan).api_requests_per_hour,
            used=apikeys.api_requests_this_hour(g.tenant),
        ),
        status,
    )


@bp.get("/integrations/api-keys")
def api_keys():
    return _page()


@bp.post("/integrations/api-keys")
def api_key_create():
    try:
        key, secret = apikeys.create_key(
            g.tenant.id,
            name=request.form.get("name", ""),
            scopes=request.form.get("scopes", ""),
            actor_id=current_user.id,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return _page(errors=exc.errors, form=request.form, status=422)
    db.session.commit()
    return _page(new_key=key, secret=secret)


@bp.post("/integrations/api-keys/<uuid:key_id>/revoke")
def api_key_revoke(key_id: uuid.UUID):
    key = apikeys.get_key(key_id, for_update=True)
    if apikeys.revoke_key(key, actor_id=current_user.id, now=datetime.now(UTC)):
        flash(f"“{key.name}” ({key.display}) is revoked: requests with it now get 401.", "success")
    db.session.commit()
    return redirect(url_for("dashboard.api_keys"))
