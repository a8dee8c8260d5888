"""Data rights on the dashboard (owners and admins only, the blueprint's default): a customer's
export, anonymise and delete (with its 30-day grace and "Cancel deletion"), and the business's full
export on Settings → Data & privacy. docs/data-rights.md says what each one does."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from flask import Response, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.audit import services as audit
from app.customers import privacy, tenant_export
from app.customers import services as customer_services
from app.errors import FielddayError, NotFound
from app.extensions import db
from app.urls import app_url
from app.web.dashboard import bp
from tenants.quotas import PlanLimitReached


def _now() -> datetime:
    return datetime.now(UTC)


def _link(kind: str, photo_id: uuid.UUID) -> str:
    endpoint = "dashboard.photo" if kind == "booking_photo" else "dashboard.quote_request_photo"
    arg = "photo_id" if kind == "booking_photo" else "request_photo_id"
    return app_url(url_for(endpoint, **{arg: photo_id}))


@bp.get("/customers/<uuid:customer_id>/export.json")
def customer_export(customer_id: uuid.UUID):
    """Everything we hold about one customer, as a JSON download (their right of access)."""
    customer = customer_services.get_customer(customer_id)
    now = _now()
    data = privacy.export_customer(g.tenant, customer, now=now, dashboard_link=_link)
    audit.record(
        g.tenant.id, "customer.exported", actor_id=current_user.id, subject_type="customer", subject_id=customer.id
    )
    db.session.commit()
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="customer-{str(customer.id)[:8]}-{now:%Y-%m-%d}.json"',
            "Cache-Control": "no-store",
        },
    )


def _confirm_page(template: str, customer, *, status: int = 200, error: str | None = None):
    return render_template(
        f"dashboard/privacy/{template}",
        customer=customer,
        upcoming=privacy.upcoming_bookings(customer, now=_now()),
        grace_days=privacy.GRACE.days,
        error=error,
    ), status


@bp.route("/customers/<uuid:customer_id>/anonymise", methods=["GET", "POST"])
def customer_anonymise(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    if request.method == "GET":
        return _confirm_page("anonymise.html", customer)
    if request.form.get("confirm") != "yes":
        return _confirm_page("anonymise.html", customer, status=422, error="Tick the box to confirm.")
    name = customer.name
    try:
        result = privacy.anonymise_customer(g.tenant, customer, actor_id=current_user.id, now=_now())
    except FielddayError as exc:
        db.session.rollback()
        return _confirm_page("anonymise.html", customer, status=exc.status, error=exc.message)
    except (BotoCoreError, ClientError):
        db.session.rollback()
        return _confirm_page(
            "anonymise.html",
            customer,
            status=503,
            error="Photo storage couldn't be reached, so nothing was changed. Please try again in a minute.",
        )
    db.session.commit()
    photos = (
        f" and {result.photos_deleted} photo{'' if result.photos_deleted == 1 else 's'}"
        if result.photos_deleted
        else ""
    )
    flash(f"{name} was anonymised: their contact details, notes{photos} are gone; money records stay.", "success")
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id))


@bp.route("/customers/<uuid:customer_id>/delete", methods=["GET", "POST"])
def customer_delete(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    if request.method == "GET":
        return _confirm_page("delete.html", customer)
    if request.form.get("confirm") != "yes":
        return _confirm_page("delete.html", customer, status=422, error="Tick the box to confirm.")
    try:
        privacy.schedule_deletion(customer, actor_id=current_user.id, now=_now())
    except FielddayError as exc:
        db.session.rollback()
        return _confirm_page("delete.html", customer, status=exc.status, error=exc.message)
    db.session.commit()
    flash(
        f"{customer.name} will be deleted on {customer.purge_after:%B %-d, %Y}. Until then you can cancel; "
        "they can't be booked or messaged.",
        "info",
    )
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id))


@bp.post("/customers/<uuid:customer_id>/delete/cancel")
def customer_delete_cancel(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    try:
        canceled = privacy.cancel_deletion(customer, actor_id=current_user.id)
    except PlanLimitReached as exc:  # the place the deletion freed was taken since: the plan says so
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("dashboard.customer_detail", customer_id=customer_id))
    except (privacy.DeletionRunning, privacy.DeletionAlreadyRan) as exc:
        # The hourly purge got there first (or is at it now): say so, and don't pretend they stay.
        db.session.rollback()
        flash(exc.message, "error")
        try:
            customer_services.get_customer(customer_id)  # the anonymised shell kept for money records
        except NotFound:
            return redirect(url_for("dashboard.customers"))
        return redirect(url_for("dashboard.customer_detail", customer_id=customer_id))
    if canceled:
        db.session.commit()
        flash(f"Deletion canceled: {customer.name} stays.", "success")
    else:
        flash("No deletion was pending for this customer.", "info")
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id))


# The business's own data ---------------------------------------------------------------------------


def _exports_context() -> dict:
    now = _now()
    exports = tenant_export.list_exports()
    return {
        "exports": exports,
        "now": now,
        "progress": {e.id: tenant_export.progress(e) for e in exports if e.status == "running"},
        "polling": any(e.shown_status(now) in tenant_export.PENDING for e in exports),
        "keep_days": tenant_export.KEEP_FOR.days,
    }


@bp.get("/settings/data")
def data_page():
    return render_template(
        "dashboard/privacy/data.html",
        pending_deletions=privacy.list_pending_deletions(),
        anonymised=privacy.count_anonymised(),
        grace_days=privacy.GRACE.days,
        **_exports_context(),
    )


@bp.get("/settings/data/exports")
def data_exports_partial():
    """The exports list alone: htmx polls it while an export is being prepared."""
    return render_template("dashboard/privacy/_exports.html", **_exports_context())


@bp.post("/settings/data/export")
def data_export_new():
    try:
        _, created = tenant_export.request_export(g.tenant, actor_id=current_user.id, now=_now())
    except tenant_export.TooManyExports as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("dashboard.data_page"))
    db.session.commit()
    if created:
        flash("Preparing your export. It takes a minute or two; we'll e-mail you when it's ready.", "success")
    else:
        flash("An export is already being prepared: it appears below when it's ready.", "info")
    return redirect(url_for("dashboard.data_page"))


@bp.get("/settings/data/exports/<uuid:export_id>/download")
def data_export_download(export_id: uuid.UUID):
    export = tenant_export.get_export(export_id)
    url = tenant_export.download_url(export, now=_now())
    audit.record(
        g.tenant.id,
        "data_export.downloaded",
        actor_id=current_user.id,
        subject_type="data_export",
        subject_id=export.id,
    )
    db.session.commit()
    response = redirect(url, code=302)
    response.headers["Cache-Control"] = "no-store"
    return response
