"""Customers, their vehicles and addresses."""

from __future__ import annotations

import uuid

import phonenumbers
from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.customers.models import SIZE_CLASSES, Address, Customer, Vehicle
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from tenants import quotas

DEFAULT_REGION = {"USD": "US", "CAD": "CA", "GBP": "GB", "EUR": "DE", "AUD": "AU", "NZD": "NZ"}


class CustomerLocked(FielddayError):
    """Vehicles and addresses of an anonymised customer (or one waiting to be deleted) can't change."""

    status = 409
    code = "customer_locked"
    message = "This customer's record can't be changed."


def check_editable(customer: Customer) -> None:
    """Refuse adding or changing a vehicle or an address of a customer who was anonymised (nothing
    personal goes back on that record) or who asked to be deleted (docs/data-rights.md)."""
    if customer.anonymised_at is not None:
        raise CustomerLocked(
            "This customer was anonymised: vehicles and addresses can't be added or changed. "
            "Add them as a new customer instead."
        )
    if customer.purge_after is not None:
        raise CustomerLocked(
            f"This customer is scheduled for deletion on {customer.purge_after:%B %-d, %Y}: vehicles and "
            "addresses can't be added or changed. Cancel the deletion on their page first."
        )


def normalise_phone(raw: str, *, region: str = "US", field: str = "phone") -> str:
    """E.164, or ValidationFailed naming ``field``."""
    raw = (raw or "").strip()
    if not raw:
        raise ValidationFailed({field: "Enter a mobile number."})
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ValidationFailed({field: "Enter a phone number, like (512) 555-0142."}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationFailed({field: "That phone number doesn't look right. Check the digits."})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(e164: str | None) -> str:
    if not e164:
        return ""
    number = phonenumbers.parse(e164, None)
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def get_customer(customer_id: uuid.UUID) -> Customer:
    customer = db.session.get(Customer, (_tenant(), customer_id))
    if customer is None:
        raise NotFound("No such customer.")
    return customer


def _tenant() -> uuid.UUID | None:
    from tenants.context import current_tenant_id

    return current_tenant_id()


def find_by_phone(phone: str) -> Customer | None:
    return db.session.scalar(db.select(Customer).where(Customer.phone == phone))


def clean_customer(data: dict, *, region: str) -> dict:
    """Validated customer fields from form/JSON data; raises ValidationFailed with every problem."""
    from app.accounts.services import normalise_email

    errors: dict[str, str] = {}
    clean: dict = {}
    name = " ".join((data.get("name") or "").split())
    if not name:
        errors["name"] = "Enter the customer's name."
    elif len(name) > 120:
        errors["name"] = "Use at most 120 characters."
    clean["name"] = name
    phone_raw, email_raw = (data.get("phone") or "").strip(), (data.get("email") or "").strip()
    clean["phone"] = clean["email"] = None
    if phone_raw:
        try:
            clean["phone"] = normalise_phone(phone_raw, region=region)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if email_raw:
        try:
            clean["email"] = normalise_email(email_raw)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if not phone_raw and not email_raw:
        errors["phone"] = "Enter a mobile number or an e-mail address."
    notes = (data.get("notes") or "").strip()
    clean["notes"] = notes[:2000] or None
    if errors:
        raise ValidationFailed(errors)
    return clean


def create_customer(tenant_id: uuid.UUID, data: dict, *, region: str) -> Customer:
    clean = clean_customer(data, region=region)
    if clean["phone"] and find_by_phone(clean["phone"]):
        raise ValidationFailed({"phone": "A customer with this number already exists."})
    quotas.check(tenant_id, "customers")  # the plan's customers (PlanLimitReached)
    customer = Customer(tenant_id=tenant_id, **clean)
    db.session.add(customer)
    db.session.flush()
    return customer


def update_customer(customer: Customer, data: dict, *, region: str) -> Customer:
    if customer.anonymised_at is not None:
        raise ValidationFailed({"name": "This customer was anonymised: add them as a new customer instead."})
    clean = clean_customer(data, region=region)
    if clean["phone"] and clean["phone"] != customer.phone:
        other = find_by_phone(clean["phone"])
        if other is not None and other.id != customer.id:
            raise ValidationFailed({"phone": "Another customer has this number."})
    for key, value in clean.items():
        setattr(customer, key, value)
    db.session.flush()
    return customer


def clean_vehicle(data: dict) -> dict:
    errors: dict[str, str] = {}
    size = data.get("size_class") or ""
    if size not in SIZE_CLASSES:
        errors["size_class"] = "Choose the vehicle size."
    year = str(data.get("year") or "").strip()
    year_n = None
    if year:
        if not year.isdigit() or not 1900 <= int(year) <= 2100:
            errors["year"] = "Enter a year like 2019."
        else:
            year_n = int(year)
    clean = {"size_class": size, "year": year_n}
    for key, limit in (("make", 40), ("model", 60), ("color", 30), ("plate", 15)):
        value = " ".join(str(data.get(key) or "").split())
        if len(value) > limit:
            errors[key] = f"Use at most {limit} characters."
        clean[key] = value or None
    if clean["plate"]:
        clean["plate"] = clean["plate"].upper()
    if errors:
        raise ValidationFailed(errors)
    return clean


def add_vehicle(customer: Customer, data: dict) -> Vehicle:
    check_editable(customer)
    vehicle = Vehicle(tenant_id=customer.tenant_id, customer_id=customer.id, **clean_vehicle(data))
    db.session.add(vehicle)
    db.session.flush()
    return vehicle


def find_or_add_vehicle(customer: Customer, data: dict, *, may_update: bool = True) -> Vehicle:
    """The customer's matching vehicle, or a new one. Only staff (``may_update``) refresh a
    matched vehicle's details; an anonymous booking never changes what is on file."""
    clean = clean_vehicle(data)
    for v in customer.vehicles:
        if not may_update:
            if all(getattr(v, k) == value for k, value in clean.items()):
                return v
            continue
        same_plate = clean["plate"] and v.plate == clean["plate"]
        same_car = (v.make, v.model, v.size_class) == (clean["make"], clean["model"], clean["size_class"])
        if same_plate or (not clean["plate"] and same_car and (clean["make"] or clean["model"])):
            for key, value in clean.items():
                if value is not None:
                    setattr(v, key, value)
            return v
    return add_vehicle(customer, data)


def add_address(
    customer: Customer, place: dict, *, access_notes: str | None = None, may_update: bool = True
) -> Address:
    """``place`` is a geocoded result: line1, city, region, postal_code, lat, lng. Only staff
    (``may_update``) change the notes (gate codes) of an address on file."""
    check_editable(customer)
    notes = (access_notes or "")[:500] or None
    for a in customer.addresses:
        if a.line1.lower() == place["line1"].lower() and abs(a.lat - place["lat"]) < 1e-4:
            if may_update:
                if notes:
                    a.access_notes = notes
                return a
            if not notes or a.access_notes == notes:
                return a
    address = Address(
        tenant_id=customer.tenant_id,
        customer_id=customer.id,
        line1=place["line1"],
        city=place.get("city"),
        region=place.get("region"),
        postal_code=place.get("postal_code"),
        lat=float(place["lat"]),
        lng=float(place["lng"]),
        access_notes=(access_notes or "")[:500] or None,
    )
    db.session.add(address)
    db.session.flush()
    return address


def _search_statement(query: str):
    q = (query or "").strip()[:100]
    # Anonymised customers are records kept for tax, not people: not listed, searched or counted.
    stmt = db.select(Customer).where(Customer.anonymised_at.is_(None))
    if q:
        # The user's text is matched literally: % and _ are not wildcards.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        digits = "".join(ch for ch in q if ch.isdigit())
        plate_match = db.select(Vehicle.customer_id).where(Vehicle.plate.ilike(like.upper(), escape="\\"))
        conditions = [
            Customer.name.ilike(like, escape="\\"),
            func.similarity(Customer.name, q) > 0.3,
            Customer.email.ilike(like, escape="\\"),
            Customer.id.in_(plate_match),
        ]
        if len(digits) >= 3:
            conditions.append(Customer.phone.like(f"%{digits}%"))
        stmt = stmt.where(or_(*conditions)).order_by(
            func.similarity(Customer.name, q).desc(), Customer.name, Customer.id
        )
    else:
        stmt = stmt.order_by(Customer.created_at.desc(), Customer.id)
    return stmt


def search_customers(query: str = "", *, limit: int = 50) -> list[Customer]:
    """By name, phone or plate: trigram similarity for typos, substring for partials."""
    return list(db.session.scalars(_search_statement(query).limit(limit)))


def page_customers(query: str = "", *, page: int = 1, per_page: int = 50) -> tuple[list[Customer], int]:
    """One page of ``search_customers`` results (with vehicles and addresses loaded) and the total."""
    stmt = _search_statement(query)
    total = db.session.scalar(db.select(func.count()).select_from(stmt.order_by(None).subquery()))
    stmt = stmt.options(selectinload(Customer.vehicles), selectinload(Customer.addresses))
    rows = db.session.scalars(stmt.limit(per_page).offset((max(page, 1) - 1) * per_page))
    return list(rows), total or 0


def count_customers() -> int:
    return db.session.scalar(db.select(func.count()).select_from(Customer).where(Customer.anonymised_at.is_(None))) or 0


def geocode_address(query: str, *, field: str = "address") -> dict:
    """A place for the typed address, or ValidationFailed naming ``field``."""
    from app.geo.geocoding import get_geocoder

    text = " ".join((query or "").split())
    if not text:
        raise ValidationFailed({field: "Enter the street address."})
    if len(text) > 200:
        raise ValidationFailed({field: "Use at most 200 characters."})
    place = get_geocoder().geocode(text)
    if place is None:
        raise ValidationFailed(
            {field: "We couldn't find that address. Use a street number and name, like 1100 Congress Ave."}
        )
    return place.as_dict()


def clean_access_notes(raw: str | None, *, field: str = "access_notes") -> str | None:
    notes = (raw or "").strip()
    if len(notes) > 500:
        raise ValidationFailed({field: "Use at most 500 characters."})
    return notes or None


def has_vehicle_fields(data: dict) -> bool:
    return any(str(data.get(k) or "").strip() for k in ("year", "make", "model", "color", "plate", "size_class"))


def register_customer(tenant_id: uuid.UUID, data: dict, *, region: str) -> Customer:
    """A new customer with an optional first vehicle and address, validated together: every
    problem is reported at once and nothing is written unless all of it is valid."""
    errors: dict[str, str] = {}
    clean: dict = {}
    try:
        clean = clean_customer(data, region=region)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if clean.get("phone") and find_by_phone(clean["phone"]):
        errors["phone"] = "A customer with this number already exists."
    vehicle = None
    if has_vehicle_fields(data):
        try:
            vehicle = clean_vehicle(data)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    place, notes = None, None
    try:
        notes = clean_access_notes(data.get("access_notes"))
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if (data.get("address") or "").strip():
        try:
            place = geocode_address(data["address"])
        except ValidationFailed as exc:
            errors.update(exc.errors)
    elif notes:
        errors["address"] = "Add the address these access notes are for."
    if errors:
        raise ValidationFailed(errors)
    quotas.check(tenant_id, "customers")  # the plan's customers (PlanLimitReached)
    try:
        with db.session.begin_nested():
            customer = Customer(tenant_id=tenant_id, **clean)
            db.session.add(customer)
            db.session.flush()
            if vehicle is not None:
                db.session.add(Vehicle(tenant_id=tenant_id, customer_id=customer.id, **vehicle))
            if place is not None:
                add_address(customer, place, access_notes=notes)
            db.session.flush()
    except IntegrityError as exc:
        if is_duplicate_phone(exc):
            raise ValidationFailed({"phone": "A customer with this number already exists."}) from None
        raise
    return customer


def is_duplicate_phone(exc: IntegrityError) -> bool:
    """Two people saving the same number at once: the unique index decides who loses."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None) == "uq_customers_phone"


def get_vehicle(customer: Customer, vehicle_id: uuid.UUID) -> Vehicle:
    vehicle = db.session.get(Vehicle, (customer.tenant_id, vehicle_id))
    if vehicle is None or vehicle.customer_id != customer.id:
        raise NotFound("No such vehicle.")
    return vehicle


def update_vehicle(vehicle: Vehicle, data: dict) -> Vehicle:
    """Replace a vehicle's details with validated ``data``."""
    check_editable(vehicle.customer)
    for key, value in clean_vehicle(data).items():
        setattr(vehicle, key, value)
    db.session.flush()
    return vehicle


def get_address(customer: Customer, address_id: uuid.UUID) -> Address:
    address = db.session.get(Address, (customer.tenant_id, address_id))
    if address is None or address.customer_id != customer.id:
        raise NotFound("No such address.")
    return address


def set_access_notes(address: Address, raw: str | None) -> Address:
    """Gate codes and parking notes change; keep the address, replace the notes."""
    check_editable(address.customer)
    address.access_notes = clean_access_notes(raw)
    db.session.flush()
    return address


def list_service_history(customer: Customer, *, limit: int = 200) -> list:
    """The customer's bookings, newest first."""
    from app.booking.models import Booking

    stmt = (
        db.select(Booking)
        .where(Booking.customer_id == customer.id)
        .options(
            selectinload(Booking.items),
            selectinload(Booking.vehicle),
            selectinload(Booking.address),
            selectinload(Booking.technician),
        )
        .order_by(Booking.starts_at.desc())
        .limit(limit)
    )
    return list(db.session.scalars(stmt))
