"""Customers, their vehicles and addresses on the dashboard (routes on the dashboard blueprint)."""

from __future__ import annotations

import math
import re
import secrets
import uuid
from datetime import UTC, datetime

from flask import Response, flash, g, redirect, render_template, request, url_for
from flask_login import current_user

from app.customers import csv_io
from app.customers import services as customer_services
from app.customers.models import SIZE_CLASSES, Customer
from app.errors import ValidationFailed
from app.extensions import db, get_redis
from app.web.dashboard import bp
from tenants import quotas

PER_PAGE = 50
# Between preview and import the uploaded file waits in Redis under a random token, scoped to
# this tenant and user (the file can be 1 MB: too big for a cookie session or a form field).
IMPORT_TTL_S = 60 * 60
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")


def _region() -> str:
    return customer_services.DEFAULT_REGION.get(g.tenant.currency, "US")


def _render(template: str, status: int = 200, **context):
    return render_template(
        f"dashboard/customers/{template}",
        format_phone=customer_services.format_phone,
        sizes=SIZE_CLASSES,
        size_options=list(SIZE_CLASSES.items()),
        **context,
    ), status


@bp.get("/customers")
def customers():
    q = " ".join(request.args.get("q", "").split())[:100]
    page = min(max(request.args.get("page", 1, type=int), 1), 10_000)
    found, total = customer_services.page_customers(q, page=page, per_page=PER_PAGE)
    has_any = total > 0 if not q else customer_services.count_customers() > 0
    return _render(
        "list.html",
        customers=found,
        total=total,
        q=q,
        page=page,
        pages=max(math.ceil(total / PER_PAGE), 1),
        has_any=has_any,
    )


@bp.route("/customers/new", methods=["GET", "POST"])
def new_customer():
    errors: dict[str, str] = {}
    existing = None
    if request.method == "POST":
        try:
            customer = customer_services.register_customer(g.tenant.id, request.form, region=_region())
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
            existing = _customer_with_phone(request.form.get("phone", ""))
        else:
            db.session.commit()
            flash(f"{customer.name} added.", "success")
            return redirect(url_for("dashboard.customer_detail", customer_id=customer.id))
    return _render("new.html", 422 if errors else 200, form=request.form, errors=errors, existing=existing)


def _customer_with_phone(raw: str) -> Customer | None:
    try:
        return customer_services.find_by_phone(customer_services.normalise_phone(raw, region=_region()))
    except ValidationFailed:
        return None


@bp.get("/customers/<uuid:customer_id>")
def customer_detail(customer_id: uuid.UUID):
    return _detail(customer_services.get_customer(customer_id))


def _detail(customer: Customer, *, status: int = 200, errors: dict | None = None, open_form: str | None = None):
    history = customer_services.list_service_history(customer)
    completed = [b for b in history if b.status == "completed"]
    return _render(
        "detail.html",
        status,
        customer=customer,
        history=history,
        completed_count=len(completed),
        completed_cents=sum(b.price_cents for b in completed),
        errors=errors or {},
        form=request.form if errors else {},
        open_form=open_form,
    )


@bp.route("/customers/<uuid:customer_id>/edit", methods=["GET", "POST"])
def edit_customer(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            customer_services.update_customer(customer, request.form, region=_region())
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash("Contact details saved.", "success")
            return redirect(url_for("dashboard.customer_detail", customer_id=customer.id))
    form = request.form if errors else _contact_form(customer)
    return _render("edit.html", 422 if errors else 200, customer=customer, form=form, errors=errors)


def _contact_form(customer: Customer) -> dict:
    return {
        "name": customer.name,
        "phone": customer_services.format_phone(customer.phone),
        "email": customer.email or "",
        "notes": customer.notes or "",
    }


@bp.post("/customers/<uuid:customer_id>/addresses")
def add_customer_address(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    customer_services.check_editable(customer)  # anonymised or being deleted: 409, nothing added
    errors: dict[str, str] = {}
    notes, place = None, None
    try:
        notes = customer_services.clean_access_notes(request.form.get("access_notes"))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        place = customer_services.geocode_address(request.form.get("address", ""))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors or place is None:
        return _detail(customer, status=422, errors=errors, open_form="address")
    known = {a.id for a in customer.addresses}
    address = customer_services.add_address(customer, place, access_notes=notes)
    db.session.commit()
    if address.id in known:
        flash(f"{address.one_line} was already on file." + (" Access notes updated." if notes else ""), "info")
    else:
        flash(f"Address added: {address.one_line}.", "success")
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id, _anchor="addresses"))


@bp.post("/customers/<uuid:customer_id>/addresses/<uuid:address_id>/notes")
def update_address_notes(customer_id: uuid.UUID, address_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    customer_services.check_editable(customer)
    address = customer_services.get_address(customer, address_id)
    try:
        customer_services.set_access_notes(address, request.form.get("access_notes"))
    except ValidationFailed as exc:
        db.session.rollback()
        return _detail(customer, status=422, errors=exc.errors, open_form=f"notes-{address.id}")
    db.session.commit()
    flash(f"Access notes saved for {address.line1}.", "success")
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id, _anchor="addresses"))


@bp.post("/customers/<uuid:customer_id>/vehicles")
def add_customer_vehicle(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    customer_services.check_editable(customer)
    try:
        vehicle = customer_services.add_vehicle(customer, request.form)
    except ValidationFailed as exc:
        db.session.rollback()
        return _detail(customer, status=422, errors=exc.errors, open_form="vehicle")
    db.session.commit()
    flash(f"Vehicle added: {vehicle.label}.", "success")
    return redirect(url_for("dashboard.customer_detail", customer_id=customer.id, _anchor="vehicles"))


@bp.route("/customers/<uuid:customer_id>/vehicles/<uuid:vehicle_id>/edit", methods=["GET", "POST"])
def edit_vehicle(customer_id: uuid.UUID, vehicle_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    customer_services.check_editable(customer)
    vehicle = customer_services.get_vehicle(customer, vehicle_id)
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            customer_services.update_vehicle(vehicle, request.form)
        except ValidationFailed as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"Vehicle saved: {vehicle.label}.", "success")
            return redirect(url_for("dashboard.customer_detail", customer_id=customer.id, _anchor="vehicles"))
    form = (
        request.form if errors else {k: getattr(vehicle, k) or "" for k in ("year", "make", "model", "color", "plate")}
    )
    if not errors:
        form["size_class"] = vehicle.size_class
    return _render("vehicle.html", 422 if errors else 200, customer=customer, vehicle=vehicle, form=form, errors=errors)


@bp.get("/customers/export.csv")
def export_customers():
    body = csv_io.export_customers_csv(g.tenant.id, actor_id=current_user.id)
    db.session.commit()  # the audit entry
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return Response(
        body.encode("utf-8"),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="customers-{day}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/customers/import", methods=["GET", "POST"])
def import_customers():
    if request.method == "GET":
        return _render("import.html", errors={}, columns=csv_io.COLUMNS)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render("import.html", 422, errors={"file": "Choose a CSV file to upload."}, columns=csv_io.COLUMNS)
    content = upload.stream.read(csv_io.MAX_BYTES + 1)
    try:
        preview = csv_io.parse_import(content, region=_region())
    except ValidationFailed as exc:
        db.session.rollback()
        return _render("import.html", 422, errors=exc.errors, columns=csv_io.COLUMNS)
    token = _stash(content) if preview.can_import else None
    return _render(
        "preview.html",
        200 if preview.can_import else 422,
        preview=preview,
        token=token,
        filename=upload.filename,
        room=quotas.room(g.tenant, "customers", lock=False),  # the plan's limit, told before importing
        limit_message=quotas.limit_message(g.tenant, "customers"),
    )


@bp.post("/customers/import/confirm")
def confirm_import():
    content = _unstash(request.form.get("token", ""))
    if content is None:
        flash(
            "That preview has expired or was already imported. Check your customers, or upload the file again.", "error"
        )
        return redirect(url_for("dashboard.import_customers"))
    try:
        result = csv_io.import_customers(g.tenant.id, content, region=_region(), actor_id=current_user.id)
    except csv_io.ImportRejected as exc:
        db.session.rollback()
        return _render("preview.html", 422, preview=exc.preview, token=None, filename=None, changed=True)
    except ValidationFailed as exc:
        db.session.rollback()
        return _render("import.html", 422, errors=exc.errors, columns=csv_io.COLUMNS)
    db.session.commit()
    count = result.imported
    if result.refused:  # the plan's customer limit: the rest of the file waits for an upgrade
        imported = (
            f"Imported {count:,} {'customer' if count == 1 else 'customers'}" if count else "Nothing was imported"
        )
        flash(
            f"{imported}. {result.refused_rows.capitalize()} didn't fit. {quotas.limit_message(g.tenant, 'customers')}",
            "warn" if count else "error",
        )
        return redirect(url_for("dashboard.customers"))
    flash(f"Imported {count} {'customer' if count == 1 else 'customers'}.", "success")
    return redirect(url_for("dashboard.customers"))


def _stash_key(token: str) -> str:
    return f"fieldday:customer-import:{g.tenant.id}:{current_user.id}:{token}"


def _stash(content: bytes) -> str:
    token = secrets.token_urlsafe(24)
    get_redis().set(_stash_key(token), content, ex=IMPORT_TTL_S)
    return token


def _unstash(token: str) -> bytes | None:
    """The stashed file, once: a second click on Import finds nothing."""
    if not TOKEN_RE.match(token):
        return None
    return get_redis().getdel(_stash_key(token))
