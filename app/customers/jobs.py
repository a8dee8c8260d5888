"""Data-rights jobs (docs/data-rights.md): the hourly purge of customers whose grace period is
over (and of export archives past their week), the business's full export, its "ready" e-mail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import render_template
from sqlalchemy import text

from app.customers import privacy, tenant_export
from app.extensions import db
from app.jobs import job


def _now() -> datetime:
    return datetime.now(UTC)


@job("default", timeout=900)
def purge_tenant_job(tenant_id: uuid.UUID) -> dict:
    """One business: due customers one at a time (each committed on its own), then old archives."""
    now = _now()
    purged = privacy.purge_due(now=now, commit=db.session.commit)
    expired = tenant_export.expire_exports(now=now)
    return {"customers": purged, "exports": expired}


def sweep_privacy() -> int:
    """`flask cron`, hourly: businesses with a customer due for purging or an archive past its week.
    Ids only cross tenants here (a SECURITY DEFINER function)."""
    ids = list(db.session.execute(text("SELECT public.tenants_with_due_purges(:now)"), {"now": _now()}).scalars())
    db.session.rollback()
    for tenant_id in ids:
        purge_tenant_job.enqueue(tenant_id)
    return len(ids)


@job("default", timeout=1800)
def build_export_job(tenant_id: uuid.UUID, export_id: str) -> str:
    export = tenant_export.build_export(uuid.UUID(export_id), now=_now(), commit=db.session.commit)
    return export.status if export is not None else "missing"


@job("email")
def send_export_ready(tenant_id: uuid.UUID, export_id: str) -> None:
    from app.accounts.models import User
    from app.mail import send_email
    from app.urls import app_url
    from tenants.models import Tenant

    export = db.session.get(tenant_export.DataExport, (tenant_id, uuid.UUID(export_id)))
    if export is None or export.status != "ready" or export.requested_by is None:
        return
    user = db.session.get(User, (tenant_id, export.requested_by))
    if user is None or not user.is_active:
        return
    tenant = db.session.get(Tenant, tenant_id)
    send_email(
        user.email,
        f"Your {tenant.name} data export is ready",
        render_template(
            "email/data_export_ready.txt", user=user, tenant=tenant, export=export, link=app_url("/settings/data")
        ),
    )
