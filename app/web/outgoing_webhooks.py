"""Integrations → Webhooks: the business's endpoints, their signing secrets and delivery logs
(dashboard blueprint; owners and admins, the blueprint's default)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from app.web.dashboard import bp
from app.webhooks_out import services as webhooks
from app.webhooks_out.models import EVENT_LABELS


def _now() -> datetime:
    return datetime.now(UTC)


def _form_events() -> list[str]:
    return request.form.getlist("events")


@bp.get("/integrations/webhooks")
def webhooks_page():
    return render_template(
        "dashboard/webhooks.html", endpoints=webhooks.list_endpoints(), events=EVENT_LABELS, errors={}, form=None
    )


@bp.post("/integrations/webhooks")
def webhook_create():
    try:
        endpoint, secret = webhooks.create_endpoint(
            g.tenant.id,
            url=request.form.get("url", ""),
            events=_form_events(),
            description=request.form.get("description"),
            actor_id=current_user.id,
        )
    except ValidationFailed as exc:
        db.session.rollback()
        page = render_template(
            "dashboard/webhooks.html",
            endpoints=webhooks.list_endpoints(),
            events=EVENT_LABELS,
            errors=exc.errors,
            form=request.form,
        )
        return page, 422
    db.session.commit()
    return _detail(endpoint, secret=secret, created=True)


def _detail(endpoint, *, secret: str | None = None, created: bool = False, errors=None, form=None, status=200):
    return (
        render_template(
            "dashboard/webhook.html",
            endpoint=endpoint,
            deliveries=webhooks.list_deliveries(endpoint),
            events=EVENT_LABELS,
            secret=secret,
            created=created,
            errors=errors or {},
            form=form,
        ),
        status,
    )


@bp.get("/integrations/webhooks/<uuid:endpoint_id>")
def webhook_detail(endpoint_id: uuid.UUID):
    return _detail(webhooks.get_endpoint(endpoint_id))


@bp.post("/integrations/webhooks/<uuid:endpoint_id>")
def webhook_update(endpoint_id: uuid.UUID):
    endpoint = webhooks.get_endpoint(endpoint_id, for_update=True)
    try:
        webhooks.update_endpoint(
            endpoint,
            url=request.form.get("url", ""),
            events=_form_events(),
            description=request.form.get("description"),
            enabled=request.form.get("enabled") == "on",
            actor_id=current_user.id,
            now=_now(),
        )
    except ValidationFailed as exc:
        db.session.rollback()
        return _detail(webhooks.get_endpoint(endpoint_id), errors=exc.errors, form=request.form, status=422)
    db.session.commit()
    flash("Endpoint saved.", "success")
    return redirect(url_for("dashboard.webhook_detail", endpoint_id=endpoint.id))


@bp.post("/integrations/webhooks/<uuid:endpoint_id>/secret")
def webhook_secret(endpoint_id: uuid.UUID):
    """Show the signing secret (audited); ``roll`` makes a new one first."""
    endpoint = webhooks.get_endpoint(endpoint_id, for_update=True)
    try:
        if request.form.get("roll") == "1":
            secret = webhooks.roll_secret(endpoint, actor_id=current_user.id)
        else:
            secret = webhooks.reveal_secret(endpoint)
            webhooks.record_reveal(endpoint, actor_id=current_user.id)
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("dashboard.webhook_detail", endpoint_id=endpoint_id))
    db.session.commit()
    return _detail(endpoint, secret=secret)


@bp.post("/integrations/webhooks/<uuid:endpoint_id>/test")
def webhook_test(endpoint_id: uuid.UUID):
    endpoint = webhooks.get_endpoint(endpoint_id)
    try:
        webhooks.send_test(endpoint, now=_now())
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash("A test event is on its way; its delivery shows below in a moment.", "success")
    return redirect(url_for("dashboard.webhook_detail", endpoint_id=endpoint_id))


@bp.post("/integrations/webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/resend")
def webhook_resend(endpoint_id: uuid.UUID, delivery_id: uuid.UUID):
    endpoint = webhooks.get_endpoint(endpoint_id)
    delivery = webhooks.get_delivery(endpoint, delivery_id)
    try:
        webhooks.resend(delivery, now=_now())
    except FielddayError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash("Sent again as a new delivery (same event id, so your receiver can tell).", "success")
    return redirect(url_for("dashboard.webhook_detail", endpoint_id=endpoint_id))


@bp.post("/integrations/webhooks/<uuid:endpoint_id>/delete")
def webhook_delete(endpoint_id: uuid.UUID):
    endpoint = webhooks.get_endpoint(endpoint_id, for_update=True)
    url = endpoint.url
    webhooks.delete_endpoint(endpoint, actor_id=current_user.id)
    db.session.commit()
    flash(f"Deleted the endpoint {url} and its delivery log.", "success")
    return redirect(url_for("dashboard.webhooks_page"))
