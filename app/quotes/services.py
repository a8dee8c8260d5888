"""Quotes (DESIGN §5a): requests from the booking site, the owner's builder, sending with a
signed link, versions, views, declines, expiry, and accepting, which books the job in one step.

Services flush; the request or job commits. Every read is tenant-scoped by RLS and by the
composite keys. Accepting locks the quote row first (so two taps, or two tabs, make one booking),
then books through the booking services' own slot check under the technician-day locks.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import selectinload

from app.booking import services as booking_services
from app.booking.models import Booking
from app.catalog.models import Package
from app.catalog.services import format_money
from app.customers import services as customers
from app.customers.models import SIZE_CLASSES, Customer
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.quotes import totals as money
from app.quotes.errors import OldDepositStillOpen, QuoteClosed, QuoteExpired, QuoteNotEditable, QuoteNotSendable
from app.quotes.models import OPEN, PIPELINE, Quote, QuoteLine, QuoteRequest, QuoteRequestPhoto
from tenants.models import Tenant

DEFAULT_VALID_DAYS = 30
REMIND_DAYS_BEFORE = 2
MAX_LINES = 60
MAX_REQUEST_PHOTOS = 10
# The most a customer can accept in one go: Stripe's largest charge is $999,999.99, and the
# booking's price is a 32-bit integer of cents.
MAX_TOTAL_CENTS = 99_999_999


def _tid() -> uuid.UUID:
    from tenants.context import current_tenant_id

    return current_tenant_id()


def local_today(tenant: Tenant, now: datetime) -> date:
    return now.astimezone(ZoneInfo(tenant.time_zone)).date()


def is_past_expiry(tenant: Tenant, quote: Quote, now: datetime) -> bool:
    """A quote is good through the end of its expiry day, in the business's time zone."""
    return local_today(tenant, now) > quote.expires_on


# The business's tax rate ------------------------------------------------------------------------


def tax_rate_bps(tenant: Tenant) -> int:
    return tenant.tax_rate_bps


def parse_percent_bps(raw: str | None, field: str, *, maximum: int) -> int:
    """ "8.25", "8.25 %" → 825 basis points; digits only, never a float."""
    value = str(raw or "").strip().rstrip("%").strip()
    if not value:
        return 0
    match = re.fullmatch(r"([0-9]{1,3})(?:\.([0-9]{1,2}))?", value)
    if match is None:
        raise ValidationFailed({field: "Enter a percentage like 8 or 8.25."})
    bps = int(match.group(1)) * 100 + int((match.group(2) or "").ljust(2, "0"))
    if bps > maximum:
        raise ValidationFailed({field: f"Use at most {maximum // 100} %."})
    return bps


def set_tax_rate(tenant: Tenant, raw: str | None) -> int:
    """The default tax rate for new quotes (each quote keeps its own copy)."""
    bps = parse_percent_bps(raw, "tax_rate", maximum=5000)
    tenant.tax_rate_bps = bps
    db.session.flush()
    return bps


# Requests from the booking site ----------------------------------------------------------------


def create_request(tenant: Tenant, data: dict, *, place: dict | None) -> QuoteRequest:
    """A customer's request for a quote: who, which vehicle, where, what they want and the
    condition it's in. Like an online booking, it never changes a customer already on file."""
    region = customers.DEFAULT_REGION.get(tenant.currency, "US")
    errors: dict[str, str] = {}
    contact = vehicle = None
    try:
        contact = customers.clean_customer({k: data.get(k) for k in ("name", "phone", "email")}, region=region)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        vehicle = customers.clean_vehicle({k: data.get(k) for k in ("size_class", "year", "make", "model", "color")})
    except ValidationFailed as exc:
        errors.update(exc.errors)
    wanted = (data.get("wanted") or "").strip()
    condition = (data.get("condition_notes") or "").strip()
    if not wanted:
        errors["wanted"] = "Tell us what you'd like done."
    elif len(wanted) > 2000:
        errors["wanted"] = "Use at most 2,000 characters."
    if len(condition) > 2000:
        errors["condition_notes"] = "Use at most 2,000 characters."
    if not place or "lat" not in place:
        errors.setdefault("address", "Enter the address where the vehicle will be.")
    if errors:
        raise ValidationFailed(errors)
    customer = booking_services.customer_for_booking(tenant, contact, may_update=False)
    car = customers.find_or_add_vehicle(customer, vehicle, may_update=False)
    address = customers.add_address(customer, place, access_notes=data.get("access_notes"), may_update=False)
    request = QuoteRequest(
        tenant_id=tenant.id,
        customer_id=customer.id,
        vehicle_id=car.id,
        address_id=address.id,
        wanted=wanted,
        condition_notes=condition or None,
    )
    db.session.add(request)
    db.session.flush()
    return request


def get_request(request_id: uuid.UUID) -> QuoteRequest:
    request = db.session.get(QuoteRequest, (_tid(), request_id)) if _tid() else None
    if request is None:
        raise NotFound("No such quote request.")
    return request


def list_requests(*, status: str | None = None, limit: int = 200) -> list[QuoteRequest]:
    stmt = db.select(QuoteRequest).order_by(QuoteRequest.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(QuoteRequest.status == status)
    return list(db.session.scalars(stmt))


def count_new_requests() -> int:
    return (
        db.session.scalar(db.select(db.func.count()).select_from(QuoteRequest).where(QuoteRequest.status == "new")) or 0
    )


def close_request(request: QuoteRequest) -> None:
    request.status = "closed"
    db.session.flush()


@dataclass
class UploadTicket:
    photo: QuoteRequestPhoto
    url: str
    fields: dict[str, str]


def start_request_upload(
    request: QuoteRequest, *, content_type: str | None, size=None, media_gb: int | None = None, expires_in: int = 300
) -> UploadTicket:
    """A pending photo row and a presigned POST for it (same limits as job photos: the key is
    ours, under ``tenants/<tenant>/quote-requests/<request>/``, the exact type, 1 byte–12 MB)."""
    from app.media import photos, storage

    # The body is the anonymous visitor's JSON: anything that isn't text is refused as a bad type.
    if not isinstance(content_type, str | None):
        content_type = ""
    if isinstance(size, bool) or not isinstance(size, int | str | None):
        size = -1
    _, content_type = photos.clean_upload_request("before", content_type, size)
    count = db.session.scalar(
        db.select(db.func.count()).select_from(QuoteRequestPhoto).where(QuoteRequestPhoto.request_id == request.id)
    )
    if count >= MAX_REQUEST_PHOTOS:
        raise ValidationFailed({"photos": f"Up to {MAX_REQUEST_PHOTOS} photos per request."})
    if media_gb is not None:
        photos.check_room(
            request.tenant_id,
            media_gb,
            message={"photos": "We can't take more photos right now. Please describe the car instead."},
        )
    key = storage.tenant_key(request.tenant_id, f"quote-requests/{request.id}", photos.PHOTO_TYPES[content_type])
    photo = QuoteRequestPhoto(
        tenant_id=request.tenant_id, request_id=request.id, key=key, content_type=content_type, status="pending"
    )
    db.session.add(photo)
    db.session.flush()
    post = storage.client().generate_presigned_post(
        storage.bucket(),
        key,
        Fields={"Content-Type": content_type},
        Conditions=[["content-length-range", photos.MIN_BYTES, photos.MAX_BYTES], {"Content-Type": content_type}],
        ExpiresIn=expires_in,
    )
    return UploadTicket(photo=photo, url=post["url"], fields=post["fields"])


def get_request_photo(photo_id: uuid.UUID) -> QuoteRequestPhoto:
    photo = db.session.get(QuoteRequestPhoto, (_tid(), photo_id)) if _tid() else None
    if photo is None:
        raise NotFound("No such photo.")
    return photo


def finish_request_upload(photo: QuoteRequestPhoto) -> QuoteRequestPhoto:
    """Stored once storage has it within the limits (the same check as job photos)."""
    from app.media import photos

    return photos.finish_upload(photo)  # type: ignore[arg-type]  (same columns and states)


def request_photos(request: QuoteRequest) -> list[QuoteRequestPhoto]:
    return list(
        db.session.scalars(
            db.select(QuoteRequestPhoto)
            .where(QuoteRequestPhoto.request_id == request.id, QuoteRequestPhoto.status == "stored")
            .order_by(QuoteRequestPhoto.created_at, QuoteRequestPhoto.id)
        )
    )


def photo_read_url(photo: QuoteRequestPhoto) -> str:
    from app.media import photos

    return photos.read_url(photo)  # type: ignore[arg-type]


# Building --------------------------------------------------------------------------------------


def _next_number(tenant_id: uuid.UUID) -> int:
    # Serialise numbering per business (transaction-scoped, pooler-safe); the unique key backs it.
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"quote-number:{tenant_id}"}
    )
    last = db.session.scalar(db.select(db.func.max(Quote.number)))
    return (last or 0) + 1


def create_quote(
    tenant: Tenant,
    *,
    customer: Customer,
    size_class: str,
    vehicle_id: uuid.UUID | None = None,
    address_id: uuid.UUID | None = None,
    request: QuoteRequest | None = None,
    actor_id: uuid.UUID | None,
    now: datetime,
) -> Quote:
    """A new draft quote, valid for 30 days, with the business's tax rate."""
    if size_class not in SIZE_CLASSES:
        raise ValidationFailed({"size_class": "Choose the vehicle size."})
    quote = Quote(
        tenant_id=tenant.id,
        number=_next_number(tenant.id),
        version=1,
        request_id=request.id if request else None,
        customer_id=customer.id,
        vehicle_id=vehicle_id,
        address_id=address_id,
        size_class=size_class,
        status="draft",
        expires_on=local_today(tenant, now) + timedelta(days=DEFAULT_VALID_DAYS),
        tax_rate_bps=tax_rate_bps(tenant),
        currency=tenant.currency,
        created_by=actor_id,
    )
    db.session.add(quote)
    db.session.flush()
    return quote


def quote_for_new_customer(tenant: Tenant, data: dict, *, actor_id: uuid.UUID | None, now: datetime) -> Quote:
    """From the dashboard: the customer (found by phone, or new), their vehicle and address."""
    region = customers.DEFAULT_REGION.get(tenant.currency, "US")
    errors: dict[str, str] = {}
    contact = vehicle = place = None
    try:
        contact = customers.clean_customer({k: data.get(k) for k in ("name", "phone", "email")}, region=region)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        vehicle = customers.clean_vehicle({k: data.get(k) for k in ("size_class", "year", "make", "model", "color")})
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        place = customers.geocode_address(data.get("address", ""))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    customer = booking_services.customer_for_booking(tenant, contact, may_update=True)
    car = customers.find_or_add_vehicle(customer, vehicle, may_update=True)
    address = customers.add_address(customer, place, may_update=True)
    return create_quote(
        tenant,
        customer=customer,
        size_class=car.size_class,
        vehicle_id=car.id,
        address_id=address.id,
        actor_id=actor_id,
        now=now,
    )


def quote_from_request(tenant: Tenant, request: QuoteRequest, *, actor_id: uuid.UUID | None, now: datetime) -> Quote:
    """Turn a request into a draft quote (the request's notes become the quote's notes to edit).
    The request row is locked first, so two clicks at once make one quote (the second finds it)."""
    db.session.scalar(
        db.select(QuoteRequest)
        .where(QuoteRequest.tenant_id == request.tenant_id, QuoteRequest.id == request.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    existing = db.session.scalar(
        db.select(Quote).where(Quote.request_id == request.id, Quote.status != "superseded").limit(1)
    )
    if existing is not None:
        return existing
    vehicle = request.vehicle
    quote = create_quote(
        tenant,
        customer=request.customer,
        size_class=vehicle.size_class,
        vehicle_id=vehicle.id,
        address_id=request.address_id,
        request=request,
        actor_id=actor_id,
        now=now,
    )
    request.status = "quoted"
    db.session.flush()
    return quote


def get_quote(quote_id: uuid.UUID, *, for_update: bool = False) -> Quote:
    stmt = db.select(Quote).where(Quote.tenant_id == _tid(), Quote.id == quote_id)
    if for_update:
        # Refresh the row under the lock: a copy already in the session (the route loaded it
        # before locking) would otherwise be the stale, pre-lock state.
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    quote = db.session.scalar(stmt) if _tid() else None
    if quote is None:
        raise NotFound("No such quote.")
    return quote


def current_version(quote: Quote) -> Quote:
    """Follow "replaced by" links to the version the customer should see now."""
    seen = 0
    while quote.superseded_by is not None and seen < 100:
        quote = get_quote(quote.superseded_by)
        seen += 1
    return quote


def _current_versions():
    """One row per quote number: its newest version that wasn't replaced (a sent v1 with a draft
    v2 is one quote, shown as v2), except that a version the customer accepted always wins (a
    draft started before the customer accepted can never be sent)."""
    return (
        db.select(Quote.tenant_id, Quote.id)
        .where(Quote.status != "superseded")
        .distinct(Quote.tenant_id, Quote.number)
        .order_by(Quote.tenant_id, Quote.number, (Quote.status == "accepted").desc(), Quote.version.desc())
        .subquery()
    )


def list_quotes(*, status: str | None = None, limit: int = 300) -> list[Quote]:
    """Current versions, one per quote number (see ``_current_versions``), newest first."""
    current = _current_versions()
    stmt = (
        db.select(Quote)
        .join(current, (Quote.tenant_id == current.c.tenant_id) & (Quote.id == current.c.id))
        .options(selectinload(Quote.lines))
        .order_by(Quote.created_at.desc())
        .limit(limit)
    )
    if status:
        stmt = stmt.where(Quote.status == status)
    return list(db.session.scalars(stmt))


def versions_of(quote: Quote) -> list[Quote]:
    return list(db.session.scalars(db.select(Quote).where(Quote.number == quote.number).order_by(Quote.version)))


def _editable(quote: Quote) -> None:
    if quote.status != "draft":
        raise QuoteNotEditable()


def _clean_line_fields(data: dict, *, custom: bool) -> dict:
    from app.payments.rules import parse_money

    errors: dict[str, str] = {}
    out: dict = {}
    qty = str(data.get("quantity") or "1").strip()
    if not re.fullmatch(r"[0-9]{1,4}", qty) or not 1 <= int(qty) <= 99:
        errors["quantity"] = "Quantity is a whole number from 1 to 99."
    else:
        out["quantity"] = int(qty)
    tier = " ".join(str(data.get("tier") or "").split())
    if len(tier) > 30:
        errors["tier"] = "Keep the option name under 30 characters."
    out["tier"] = tier or None
    out["optional"] = str(data.get("optional") or "").lower() in ("1", "on", "true", "yes")
    if custom or data.get("unit_price") not in (None, ""):
        try:
            out["unit_cents"] = parse_money(data.get("unit_price"), "unit_price", allow_zero=True)
        except ValidationFailed as exc:
            errors.update(exc.errors)
        else:
            if out["unit_cents"] > 10_000_000:
                errors["unit_price"] = "Use at most 100,000.00 a line."
    if custom:
        name = " ".join(str(data.get("name") or "").split())
        if not name:
            errors["name"] = "Name the work."
        elif len(name) > 120:
            errors["name"] = "Use at most 120 characters."
        out["name"] = name
        description = (data.get("description") or "").strip()
        if len(description) > 500:
            errors["description"] = "Use at most 500 characters."
        out["description"] = description or None
        minutes = str(data.get("duration_min") or "0").strip()
        if not re.fullmatch(r"[0-9]{1,4}", minutes) or int(minutes) > 1440:
            errors["duration_min"] = "Minutes on site: a whole number up to 1440."
        else:
            out["duration_min"] = int(minutes)
    if errors:
        raise ValidationFailed(errors)
    return out


def _next_position(quote: Quote) -> int:
    return max((line.position for line in quote.lines), default=0) + 1


def add_catalog_line(quote: Quote, package_id, data: dict) -> QuoteLine:
    """A package or add-on at its price and duration for the quote's vehicle size."""
    _editable(quote)
    if len(quote.lines) >= MAX_LINES:
        raise ValidationFailed({"package_id": f"A quote holds up to {MAX_LINES} lines."})
    try:
        package = db.session.get(Package, (quote.tenant_id, uuid.UUID(str(package_id))))
    except ValueError:
        package = None
    if package is None or not package.active:
        raise ValidationFailed({"package_id": "Choose a service."})
    price = package.price_for(quote.size_class)
    if price is None:
        size = SIZE_CLASSES[quote.size_class].lower()
        raise ValidationFailed({"package_id": f"{package.name} has no price for a {size}: add it as a custom line."})
    fields = _clean_line_fields(data, custom=False)
    line = QuoteLine(
        tenant_id=quote.tenant_id,
        quote_id=quote.id,
        position=_next_position(quote),
        kind=package.kind,
        package_id=package.id,
        name=package.name,
        description=package.description,
        quantity=fields["quantity"],
        unit_cents=fields.get("unit_cents", price.price_cents),
        duration_min=price.duration_min,
        optional=fields["optional"],
        tier=fields["tier"],
    )
    quote.lines.append(line)
    db.session.flush()
    return line


def add_custom_line(quote: Quote, data: dict) -> QuoteLine:
    """Free text: paint correction, odour treatment… with its price and time on site."""
    _editable(quote)
    if len(quote.lines) >= MAX_LINES:
        raise ValidationFailed({"name": f"A quote holds up to {MAX_LINES} lines."})
    fields = _clean_line_fields(data, custom=True)
    line = QuoteLine(
        tenant_id=quote.tenant_id, quote_id=quote.id, position=_next_position(quote), kind="custom", **fields
    )
    quote.lines.append(line)
    db.session.flush()
    return line


def _line(quote: Quote, line_id: uuid.UUID) -> QuoteLine:
    line = next((x for x in quote.lines if x.id == line_id), None)
    if line is None:
        raise NotFound("No such line.")
    return line


def update_line(quote: Quote, line_id: uuid.UUID, data: dict) -> QuoteLine:
    _editable(quote)
    line = _line(quote, line_id)
    fields = _clean_line_fields(data, custom=line.kind == "custom")
    for key, value in fields.items():
        setattr(line, key, value)
    db.session.flush()
    return line


def remove_line(quote: Quote, line_id: uuid.UUID) -> None:
    _editable(quote)
    quote.lines.remove(_line(quote, line_id))
    db.session.flush()


def update_details(tenant: Tenant, quote: Quote, data: dict, *, now: datetime) -> Quote:
    """Title, notes, expiry, discount and tax rate; a new vehicle size re-prices catalog lines."""
    from app.payments.rules import parse_money

    _editable(quote)
    errors: dict[str, str] = {}
    title = " ".join(str(data.get("title") or "").split())
    if len(title) > 120:
        errors["title"] = "Use at most 120 characters."
    notes = (data.get("notes") or "").replace("\r\n", "\n").strip()
    if len(notes) > 4000:
        errors["notes"] = "Use at most 4,000 characters."
    try:
        expires_on = date.fromisoformat(str(data.get("expires_on") or ""))
        if expires_on < local_today(tenant, now):
            errors["expires_on"] = "Pick today or a later day."
        elif expires_on > local_today(tenant, now) + timedelta(days=365):
            errors["expires_on"] = "A quote can stay open for up to a year."
    except ValueError:
        errors["expires_on"] = "Pick the last day the quote can be accepted."
        expires_on = quote.expires_on
    kind = data.get("discount_kind") or "none"
    discount_cents = discount_bps = 0
    try:
        if kind == "fixed":
            discount_cents = parse_money(data.get("discount_value"), "discount_value", allow_zero=True)
        elif kind == "percent":
            discount_bps = parse_percent_bps(data.get("discount_value"), "discount_value", maximum=10000)
        elif kind != "none":
            errors["discount_kind"] = "Choose a kind of discount."
    except ValidationFailed as exc:
        errors.update(exc.errors)
    try:
        tax = parse_percent_bps(data.get("tax_rate"), "tax_rate", maximum=5000)
    except ValidationFailed as exc:
        errors.update(exc.errors)
        tax = quote.tax_rate_bps
    size = data.get("size_class") or quote.size_class
    if size not in SIZE_CLASSES:
        errors["size_class"] = "Choose the vehicle size."
    elif size != quote.size_class:
        for line in quote.lines:
            if line.package_id is None:
                continue
            package = db.session.get(Package, (quote.tenant_id, line.package_id))
            price = package.price_for(size) if package else None
            if price is None:
                errors["size_class"] = f"{line.name} has no price for that size: remove it first."
                break
    if errors:
        raise ValidationFailed(errors)
    if size != quote.size_class:
        for line in quote.lines:
            if line.package_id is not None:
                price = db.session.get(Package, (quote.tenant_id, line.package_id)).price_for(size)
                line.unit_cents, line.duration_min = price.price_cents, price.duration_min
        quote.size_class = size
    quote.title, quote.notes, quote.expires_on = title or None, notes or None, expires_on
    quote.discount_cents, quote.discount_bps, quote.tax_rate_bps = discount_cents, discount_bps, tax
    db.session.flush()
    return quote


def _copy_lines(source: Quote, target: Quote) -> None:
    for line in source.lines:
        target.lines.append(
            QuoteLine(
                tenant_id=target.tenant_id,
                quote_id=target.id,
                position=line.position,
                kind=line.kind,
                package_id=line.package_id,
                name=line.name,
                description=line.description,
                quantity=line.quantity,
                unit_cents=line.unit_cents,
                duration_min=line.duration_min,
                optional=line.optional,
                tier=line.tier,
            )
        )


def _copy(source: Quote, **overrides) -> Quote:
    fields = {
        name: getattr(source, name)
        for name in (
            "tenant_id",
            "request_id",
            "customer_id",
            "vehicle_id",
            "address_id",
            "size_class",
            "title",
            "notes",
            "expires_on",
            "tax_rate_bps",
            "discount_cents",
            "discount_bps",
            "currency",
        )
    }
    quote = Quote(**{**fields, "status": "draft", **overrides})
    db.session.add(quote)
    db.session.flush()
    _copy_lines(source, quote)
    db.session.flush()
    return quote


def revise_quote(tenant: Tenant, quote: Quote, *, actor_id: uuid.UUID | None, now: datetime) -> Quote:
    """Edit a sent quote: a new draft version with the same number and lines. The sent version
    stays valid until the new one is sent, which replaces it."""
    if quote.status == "draft":
        return quote
    if quote.status in ("accepted", "superseded"):
        raise QuoteNotEditable(
            "This quote was accepted: it can't be changed." if quote.status == "accepted" else "A newer version exists."
        )
    newer = db.session.scalar(
        db.select(Quote).where(Quote.number == quote.number, Quote.version > quote.version, Quote.status == "draft")
    )
    if newer is not None:
        return newer
    last = db.session.scalar(db.select(db.func.max(Quote.version)).where(Quote.number == quote.number))
    expires_on = max(quote.expires_on, local_today(tenant, now) + timedelta(days=DEFAULT_VALID_DAYS))
    return _copy(quote, number=quote.number, version=last + 1, created_by=actor_id, expires_on=expires_on)


def duplicate_quote(tenant: Tenant, quote: Quote, *, actor_id: uuid.UUID | None, now: datetime) -> Quote:
    """A new quote (new number) with the same customer and lines, as a draft."""
    return _copy(
        quote,
        number=_next_number(tenant.id),
        version=1,
        request_id=None,
        created_by=actor_id,
        expires_on=local_today(tenant, now) + timedelta(days=DEFAULT_VALID_DAYS),
    )


def delete_draft(quote: Quote) -> None:
    _editable(quote)
    db.session.delete(quote)
    db.session.flush()


# Sending ---------------------------------------------------------------------------------------


def quote_link(tenant: Tenant, quote: Quote) -> str:
    from app.quotes.tokens import make_quote_token
    from app.urls import site_url

    return site_url(tenant.subdomain, f"/q/{make_quote_token(tenant.id, quote.id, quote.token_version)}")


def headline_amount(quote: Quote) -> str:
    """ "$420" or "from $380" when there are tiers or optional items."""
    by_tier = money.tier_totals(quote)
    lowest = min(t.total_cents for t in by_tier.values())
    prefix = "from " if len(by_tier) > 1 else ""
    return prefix + format_money(lowest, quote.currency)


def largest_total(quote: Quote) -> int:
    """The most the customer could accept: the dearest option with every extra ticked."""
    extras = [line.id for line in quote.lines if line.optional]
    return max(
        (money.quote_totals(quote, tier=name, option_ids=extras).total_cents for name in money.tier_totals(quote)),
        default=0,
    )


def send_quote(tenant: Tenant, quote: Quote, *, now: datetime) -> Quote:
    """Send a draft: by text, else e-mail, with the signed link. Sending version N replaces the
    earlier version: its link then says the quote was updated and points here."""
    quote = get_quote(quote.id, for_update=True)
    if quote.status != "draft":
        raise QuoteNotSendable("This version was already sent.")
    problems = []
    if not quote.lines:
        problems.append("add at least one line")
    if quote.address is None or quote.vehicle_id is None:
        problems.append("the customer's address and vehicle are missing")
    if is_past_expiry(tenant, quote, now):
        problems.append("move the expiry date to today or later")
    if any(t.duration_min <= 0 for t in money.tier_totals(quote).values()):
        problems.append("give the work a time on site (minutes), so the customer can pick a time")
    if largest_total(quote) > MAX_TOTAL_CENTS:
        limit = format_money(MAX_TOTAL_CENTS, quote.currency)
        problems.append(f"bring every option (with all its extras ticked) to at most {limit}")
    customer = quote.customer
    if not customer.reachable:  # anonymised, or a deletion pending (docs/data-rights.md)
        raise QuoteNotSendable("This customer was anonymised or asked to be deleted, so the quote can't be sent.")
    if not (customer.phone or customer.email):
        problems.append("the customer needs a mobile number or an e-mail")
    if problems:
        raise QuoteNotSendable("To send it, " + "; ".join(problems) + ".")
    older = db.session.scalars(
        db.select(Quote)
        .where(Quote.number == quote.number, Quote.version < quote.version, Quote.status != "superseded")
        .with_for_update()
    ).all()
    for old in older:
        if old.status == "accepted":
            raise QuoteNotSendable(f"The customer already accepted version {old.version}; this one can't replace it.")
    for old in older:
        old.status, old.superseded_by = "superseded", quote.id
    quote.status, quote.sent_at = "sent", now
    db.session.flush()
    from app.messaging.services import notify

    notify(
        tenant,
        customer,
        "quote_sent",
        {
            "quote_number": quote.label,
            "amount": headline_amount(quote),
            "quote_link": quote_link(tenant, quote),
            "expires": _expiry_text(quote),
        },
        dedupe_key=f"quote_sent:{quote.id}",
    )
    return quote


def _expiry_text(quote: Quote) -> str:
    return quote.expires_on.strftime("%b %-d")


# The customer's side ---------------------------------------------------------------------------


def record_view(quote: Quote, *, now: datetime) -> bool:
    """The first time the customer opens a sent quote: "viewed", once."""
    if quote.status != "sent":
        return False
    updated = db.session.execute(
        db.update(Quote)
        .where(Quote.tenant_id == quote.tenant_id, Quote.id == quote.id, Quote.status == "sent")
        .values(status="viewed", viewed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(quote)
    return bool(updated)


def hold_ran_out(quote: Quote) -> bool:
    """Accepted, but the booking it made expired before the deposit was paid."""
    return quote.status == "accepted" and quote.booking is not None and quote.booking.status == "expired"


def answerable(tenant: Tenant, quote: Quote, *, now: datetime) -> None:
    """Raise the customer's clear answer if this quote can't be accepted or declined now."""
    if quote.status == "superseded":
        raise QuoteClosed("This quote was updated. Please open the newest version.")
    if quote.status == "declined":
        raise QuoteClosed("You declined this quote. Get in touch if you've changed your mind.")
    if quote.status == "accepted" and not hold_ran_out(quote):
        raise QuoteClosed("You've already accepted this quote.")
    # Open, or accepted but its hold ran out before the deposit was paid: it can be accepted
    # (a time picked) again, but only until the quote's own expiry date.
    if quote.status == "expired" or is_past_expiry(tenant, quote, now):
        raise QuoteExpired(f"This quote expired on {quote.expires_on.strftime('%B %-d')}. Please get in touch.")
    if quote.status == "accepted":
        return
    if quote.status not in OPEN:
        raise NotFound("No such quote.")


@dataclass(frozen=True)
class Choice:
    tier: str | None
    option_ids: tuple[str, ...]
    totals: money.Totals
    deposit_cents: int


def choose(tenant: Tenant, quote: Quote, tier: str | None, option_ids) -> Choice:
    """Validate the customer's pick (a tier if there are tiers, optional lines of that choice)."""
    names = money.tiers(quote.lines)
    if names:
        if tier not in names:
            raise ValidationFailed({"tier": "Choose one of the options."})
    else:
        tier = None
    optional = {str(line.id) for line in quote.lines if line.optional and (line.tier is None or line.tier == tier)}
    picked = tuple(sorted({str(i) for i in option_ids or ()} & optional))
    result = money.quote_totals(quote, tier=tier, option_ids=picked)
    if result.duration_min <= 0:
        raise ValidationFailed({"tier": "This choice has no time on site. Please call us to book it."})
    return Choice(tier, picked, result, money.deposit(tenant, _main_package(quote, result), result.total_cents))


def _main_package(quote: Quote, result: money.Totals) -> Package | None:
    """The first package that counts: its own deposit rule (if any) applies, as at booking."""
    counted = set(result.line_ids)
    for line in quote.lines:
        if line.id in counted and line.kind == "package" and line.package_id is not None:
            return db.session.get(Package, (quote.tenant_id, line.package_id))
    return None


def decline_quote(tenant: Tenant, quote: Quote, reason: str | None, *, now: datetime) -> Quote:
    quote = get_quote(quote.id, for_update=True)
    answerable(tenant, quote, now=now)
    if quote.status == "accepted":
        raise QuoteClosed("You've already accepted this quote.")
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationFailed({"reason": "Tell us why, so we can do better (a few words is fine)."})
    if len(reason) > 500:
        raise ValidationFailed({"reason": "Use at most 500 characters."})
    quote.status, quote.declined_at, quote.decline_reason = "declined", now, reason
    db.session.flush()
    return quote


def accept_quote(
    tenant: Tenant,
    quote_id: uuid.UUID,
    *,
    tier: str | None,
    option_ids,
    starts_at: datetime,
    now: datetime,
) -> Booking:
    """Accept and book in one step: the quote row is locked first, so two concurrent accepts make
    one booking (the second finds it accepted). The time is re-checked exactly as online booking
    does it (route-aware, under the technician-day locks; the exclusion constraint last). With a
    deposit the booking is pending and held while the customer pays; else it is confirmed."""
    quote = get_quote(quote_id, for_update=True)
    answerable(tenant, quote, now=now)
    choice = choose(tenant, quote, tier, option_ids)
    if quote.booking is not None:
        # Accepting again after the hold ran out: make sure the old deposit page can't be paid
        # (best effort, as when a pending booking is canceled).
        from app.payments.services import close_open_checkout, deposit_payment

        close_open_checkout(quote.booking)
        old = deposit_payment(quote.booking)
        if old is not None and old.status == "pending" and old.stripe_checkout_session_id:
            # Stripe couldn't be reached: the old deposit page may still be paid. Booking again
            # now could leave two live deposits (and two bookings), so refuse until it can.
            raise OldDepositStillOpen()
    address = quote.address
    if address is None or quote.vehicle_id is None:
        raise QuoteNotSendable("This quote has no address. Please call us to book it.")
    if starts_at.tzinfo is None:
        raise ValidationFailed({"starts_at": "Please pick one of the offered times."})
    result = choice.totals
    summary = [f"From quote {quote.label}" + (f" ({choice.tier})" if choice.tier else "")]
    if result.discount_cents:
        summary.append(f"discount {format_money(result.discount_cents, quote.currency)}")
    if result.tax_cents:  # the items are the quote's lines; the price includes the tax
        summary.append(f"incl. tax {format_money(result.tax_cents, quote.currency)}")
    counted = set(result.line_ids)
    items = [
        {
            "package_id": line.package_id,
            "kind": line.kind,
            "name": (f"{line.quantity} × " if line.quantity > 1 else "") + line.name,
            "price_cents": line.quantity * line.unit_cents,
            "duration_min": line.quantity * line.duration_min,
        }
        for line in quote.lines
        if line.id in counted
    ]
    # Booking's own path (window, route-aware technician under the technician-day locks, jobs
    # quota, data-rights check, history and webhooks, deposit hold or confirmation).
    booking = booking_services.book_slot(
        tenant,
        customer_id=quote.customer_id,
        vehicle_id=quote.vehicle_id,
        address_id=quote.address_id,
        items=items,
        price_cents=result.total_cents,
        duration=timedelta(minutes=result.duration_min),
        starts_at=starts_at,
        now=now,
        source="quote",
        deposit_cents=choice.deposit_cents,
        currency=quote.currency,
        place={"lat": address.lat, "lng": address.lng},
        customer_notes=" · ".join(summary),
        actor_type="customer",
        detail={"quote_id": str(quote.id), "quote": quote.label},
    )
    quote.status = "accepted"
    quote.accepted_at = now
    quote.accepted_tier = choice.tier
    quote.accepted_line_ids = list(result.line_ids)
    quote.accepted_total_cents = result.total_cents
    quote.accepted_deposit_cents = choice.deposit_cents
    quote.booking_id = booking.id
    db.session.flush()
    return booking


# Expiry and reminders (hourly job, per business) -------------------------------------------------


def expire_and_remind(tenant: Tenant, *, now: datetime) -> tuple[int, int]:
    """Open quotes past their day become expired, and so do accepted ones whose booking's hold ran
    out unpaid; open ones ending within two days get one reminder (the dedupe key makes re-runs
    free). Returns (expired, reminded)."""
    from app.messaging.services import notify

    today = local_today(tenant, now)
    rows = db.session.scalars(
        db.select(Quote)
        .where(Quote.status.in_(OPEN), Quote.expires_on <= today + timedelta(days=REMIND_DAYS_BEFORE))
        .with_for_update(skip_locked=True)
    ).all()
    expired = reminded = 0
    # Accepted, but the booking's hold ran out unpaid and the quote's own date has passed: the
    # customer can no longer pick a time again, so the quote is released as expired (not won).
    lapsed = db.session.scalars(
        db.select(Quote)
        .join(Booking, (Booking.tenant_id == Quote.tenant_id) & (Booking.id == Quote.booking_id))
        .where(Quote.status == "accepted", Booking.status == "expired", Quote.expires_on < today)
        .with_for_update(of=Quote, skip_locked=True)
    ).all()
    for quote in lapsed:
        quote.status, quote.expired_at = "expired", now
        expired += 1
    for quote in rows:
        if quote.expires_on < today:
            quote.status, quote.expired_at = "expired", now
            expired += 1
            continue
        sent = notify(
            tenant,
            quote.customer,
            "quote_expiring",
            {
                "quote_number": quote.label,
                "amount": headline_amount(quote),
                "quote_link": quote_link(tenant, quote),
                "expires": _expiry_text(quote),
            },
            dedupe_key=f"quote_expiring:{quote.id}",
        )
        reminded += sent is not None
    db.session.flush()
    return expired, reminded


# The pipeline ----------------------------------------------------------------------------------


# A quote is won once the booking it made is real: confirmed (deposit paid, or none needed) or
# done. Accepted but still waiting for the deposit (or its hold ran out) is not won.
WON_BOOKING_STATUSES = ("confirmed", "in_progress", "completed")


@dataclass(frozen=True)
class Pipeline:
    counts: dict[str, int]
    values: dict[str, int]
    sent: int
    accepted: int  # won: accepted and its booking confirmed, in progress or completed
    declined: int
    accepted_value_cents: int
    conversion_pct: int | None  # won ÷ sent in the period, whole per cent
    awaiting_deposit: int = 0  # accepted in the period, booking not (yet) confirmed


def pipeline(tenant: Tenant, start: datetime, end: datetime) -> Pipeline:
    """Quotes by status now (count, and value: for accepted ones only those won), and over
    [start, end): how many quotes were first sent, how many of those were won, the rate and the
    value won."""
    current = list_quotes(limit=5000)
    booking_ids = [q.booking_id for q in current if q.status == "accepted" and q.booking_id]
    booking_status = (
        dict(db.session.execute(db.select(Booking.id, Booking.status).where(Booking.id.in_(booking_ids))).all())
        if booking_ids
        else {}
    )

    def won(q: Quote) -> bool:
        return q.status == "accepted" and booking_status.get(q.booking_id) in WON_BOOKING_STATUSES

    counts = {s: 0 for s in PIPELINE}
    values = {s: 0 for s in PIPELINE}
    for q in current:
        counts[q.status] += 1
        if q.status == "accepted":
            values[q.status] += (q.accepted_total_cents or 0) if won(q) else 0
        elif q.lines:
            values[q.status] += min(t.total_cents for t in money.tier_totals(q).values())
    first_sent = dict(
        db.session.execute(
            db.select(Quote.number, db.func.min(Quote.sent_at)).where(Quote.sent_at.is_not(None)).group_by(Quote.number)
        ).all()
    )
    numbers = {n for n, at in first_sent.items() if start <= at < end}
    outcome = {q.number: q for q in current if q.number in numbers}
    accepted = [q for q in outcome.values() if won(q)]
    declined = [q for q in outcome.values() if q.status == "declined"]
    awaiting = [q for q in outcome.values() if q.status == "accepted" and not won(q)]
    return Pipeline(
        counts=counts,
        values=values,
        sent=len(numbers),
        accepted=len(accepted),
        declined=len(declined),
        accepted_value_cents=sum(q.accepted_total_cents or 0 for q in accepted),
        conversion_pct=round(100 * len(accepted) / len(numbers)) if numbers else None,
        awaiting_deposit=len(awaiting),
    )
