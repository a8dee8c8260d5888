"""JSON API at ``app.<base>/api/v1``: a logged-in owner's or admin's session (with X-CSRFToken on
writes), or a business's API key as ``Authorization: Bearer fd_live_…`` (docs/api-and-webhooks.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, abort, current_app, g, has_request_context, jsonify, request
from flask_login import current_user
from sqlalchemy import event

from app.accounts import services as accounts
from app.apikeys import services as apikeys
from app.apikeys.models import ApiKey
from app.audit.models import AuditEntry
from app.booking import services as booking_services
from app.booking.models import BookingEvent
from app.catalog import services as catalog
from app.customers import services as customer_services
from app.errors import FielddayError, ValidationFailed
from app.extensions import csrf, db, limiter
from app.geo.geocoding import get_geocoder
from tenants import settings as tenant_settings
from tenants.context import activate
from tenants.models import Tenant

bp = Blueprint("api", __name__)

SETTINGS_FIELDS = set(tenant_settings.FIELDS)
REALM = 'Bearer realm="Fieldday API"'
READ_METHODS = ("GET", "HEAD", "OPTIONS")


class Unauthorized(FielddayError):
    status = 401
    code = "unauthorized"
    message = "Log in, or send an API key."


class InsufficientScope(FielddayError):
    status = 403
    code = "insufficient_scope"
    message = "This API key can only read. Create a key that can read and write to change things."


# Authentication -------------------------------------------------------------------------------------------


def authenticate_api_key():
    """Bearer keys, resolved right after the tenancy layer's resolve_tenant (tenants/web.py) and with
    its mechanism: the key's business becomes the transaction's tenant and ``g.tenant``. It has to run
    before Flask-Limiter's check, which counts the request against that business. With a key the
    session is not consulted at all: the request has no user (``current_user`` is anonymous)."""
    if request.blueprint != "api" or request.endpoint == "api.openapi" or g.get("audience") != "app":
        return None
    header = request.headers.get("Authorization")
    if header is None:
        return None
    g.api_auth = "key"
    g._login_user = current_app.login_manager.anonymous_user()  # never the session's user
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        g.www_authenticate = f'{REALM}, error="invalid_request"'
        raise Unauthorized("Send the API key as “Authorization: Bearer fd_live_…”.")
    found = apikeys.find_key(token.strip())
    key = None
    if found is not None:
        activate(found[0], db.session)
        g.tenant = db.session.get(Tenant, found[0])
        key = db.session.get(ApiKey, found)
    if key is None or key.revoked_at is not None or g.tenant is None:
        activate(None, db.session)
        g.tenant = None
        g.www_authenticate = f'{REALM}, error="invalid_token"'
        raise Unauthorized("That API key isn't valid: it is unknown, mistyped or revoked.")
    g.api_key = key
    if apikeys.mark_used(key, now=_now()):
        db.session.commit()
    return None


@bp.record_once
def _install(state) -> None:
    from tenants.web import resolve_tenant

    funcs = state.app.before_request_funcs.setdefault(None, [])
    at = funcs.index(resolve_tenant) + 1 if resolve_tenant in funcs else 0
    funcs.insert(at, authenticate_api_key)


# Bearer requests carry no cookie, so they can't be forged cross-site; sessions keep CSRF (below).
csrf.exempt(bp)


@bp.before_request
def require_auth():
    if request.endpoint == "api.openapi":
        return None
    key = g.get("api_key")
    if key is not None:
        needed = "read" if request.method in READ_METHODS else "write"
        if needed not in key.scopes:
            g.www_authenticate = f'{REALM}, error="insufficient_scope", scope="{needed}"'
            raise InsufficientScope()
        return None
    if not current_user.is_authenticated or g.get("tenant") is None:
        raise Unauthorized()
    if current_user.role not in ("owner", "admin"):
        abort(403)
    csrf.protect()
    return None


@bp.after_request
def challenge(response):
    if response.status_code == 401 or g.get("www_authenticate"):
        response.headers.setdefault("WWW-Authenticate", g.get("www_authenticate") or REALM)
    return response


def _actor_id() -> uuid.UUID | None:
    """The user behind a session request; None with an API key (its id goes into the history rows)."""
    return current_user.id if current_user.is_authenticated else None


@event.listens_for(AuditEntry, "before_insert")
@event.listens_for(BookingEvent, "before_insert")
def _note_api_key(mapper, connection, target) -> None:
    # Audit rows and booking history written during a key's request name the key (there is no user).
    if has_request_context() and (key := g.get("api_key")) is not None:
        target.detail = {**(target.detail or {}), "api_key_id": str(key.id), "api_key": key.display}


# Rate limit: one hourly allowance per business, from its plan, shared by all its keys and sessions.


def _limit_value() -> str:
    tenant = g.get("tenant")
    return apikeys.limit_string(tenant) if tenant is not None else "1 per hour"


def _limit_key() -> str:
    tenant = g.get("tenant")
    return str(tenant.id) if tenant is not None else ""


def _limit_message() -> str:
    tenant = g.get("tenant")
    allowance = apikeys.hourly_allowance(tenant) if tenant is not None else 0
    return (
        f"This business has used its {allowance:,} API requests for this hour. "
        "Retry after the time in the Retry-After header, or move to a bigger plan."
    )


def _not_counted() -> bool:
    # The session cookie names its business even when it no longer logs anyone in (logged out everywhere,
    # a removed person's old cookie): such a request gets 401 and must not use up that business's hour.
    if g.get("tenant") is None:
        return True
    return g.get("api_key") is None and not current_user.is_authenticated


limiter.shared_limit(
    _limit_value,
    scope=apikeys.RATE_SCOPE,
    key_func=_limit_key,
    exempt_when=_not_counted,
    error_message=_limit_message,
)(bp)


def tenant_json(t) -> dict:
    return {
        "id": str(t.id),
        "subdomain": t.subdomain,
        "name": t.name,
        "tagline": t.tagline,
        "time_zone": t.time_zone,
        "currency": t.currency,
        "plan": t.plan,
        "brand_color": t.brand_color,
        "contact_phone": t.contact_phone,
        "contact_email": t.contact_email,
        "has_logo": bool(t.logo_key),
    }


def user_json(u) -> dict:
    return {"id": str(u.id), "name": u.name, "email": u.email, "role": u.role, "active": u.is_active}


def json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        raise FielddayError("The body must be a JSON object (Content-Type: application/json).", field="body")
    if not isinstance(body, dict):
        raise FielddayError("The body must be a JSON object.", field="body")
    return body


TEXT = (str, type(None))
NUMBER_OR_TEXT = (int, str, type(None))
CUSTOMER_TYPES = {"name": TEXT, "phone": TEXT, "email": TEXT, "notes": TEXT}
VEHICLE_TYPES = {"size_class": TEXT, "year": NUMBER_OR_TEXT, "make": TEXT, "model": TEXT, "color": TEXT, "plate": TEXT}


def check_types(obj: dict, spec: dict, prefix: str = "") -> None:
    """Validate JSON value types at the edge, so services only ever see what they expect.
    ``spec`` maps a field to a tuple of types, or to a nested spec for an object."""
    errors: dict[str, str] = {}
    for field, kind in spec.items():
        if field not in obj:
            continue
        value, name = obj[field], prefix + field
        if isinstance(kind, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                errors[name] = "Must be an object."
                continue
            try:
                check_types(value, kind, name + ".")
            except ValidationFailed as exc:
                errors.update(exc.errors)
        elif kind == "ids":
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                errors[name] = "Must be a list of ids."
        elif isinstance(value, bool) or not isinstance(value, kind):
            errors[name] = "Must be text." if kind in (TEXT, (str,)) else "Has the wrong type."
        elif isinstance(value, str) and "\x00" in value:
            errors[name] = "Contains a character we can't store."
    if errors:
        raise ValidationFailed(errors)


def api_key_json(k) -> dict:
    return {"id": str(k.id), "name": k.name, "prefix": k.prefix, "scopes": list(k.scopes)}


@bp.get("/me")
def me():
    """Who is calling: the logged-in user, or (with a key) the key itself and no user."""
    key = g.get("api_key")
    if key is not None:
        return jsonify(user=None, api_key=api_key_json(key), tenant=tenant_json(g.tenant))
    return jsonify(user=user_json(current_user), api_key=None, tenant=tenant_json(g.tenant))


@bp.get("/settings")
def get_settings():
    return jsonify(tenant_json(g.tenant))


@bp.patch("/settings")
def patch_settings():
    body = json_body()
    check_types(body, {k: TEXT for k in body if k in SETTINGS_FIELDS})
    unknown = sorted(set(body) - SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed({k: "Unknown field." for k in unknown}, f"Unknown field: {unknown[0]}.")
    merged = {k: getattr(g.tenant, k) for k in SETTINGS_FIELDS} | body
    bad_types = [k for k, v in body.items() if v is not None and not isinstance(v, str)]
    if bad_types:
        raise ValidationFailed({k: "Must be a string." for k in bad_types})
    tenant_settings.update_settings(g.tenant, {k: (v or "") for k, v in merged.items()}, actor_id=_actor_id())
    db.session.commit()
    return jsonify(tenant_json(g.tenant))


@bp.get("/users")
def list_users():
    return jsonify(users=[user_json(u) for u in accounts.list_users()])


@bp.get("/users/<uuid:user_id>")
def get_user(user_id: uuid.UUID):
    return jsonify(user_json(accounts.get_user(user_id)))


@bp.get("/openapi.json")
def openapi():
    from app.web.openapi import document

    return jsonify(document())


# Booking ---------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(value, field: str) -> datetime:
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationFailed({field: "Give an ISO 8601 time with its offset, like 2026-12-01T15:00:00Z."}) from None
    if dt.tzinfo is None:
        raise ValidationFailed({field: "Give the time with its offset (Z or +hh:mm)."})
    try:
        result = dt.astimezone(UTC)
    except OverflowError:
        result = None
    if result is None or not 2000 <= result.year <= 2100:
        raise ValidationFailed({field: "Give a time between the years 2000 and 2100."})
    return result


def _day(value, field: str = "date") -> date:
    try:
        day = date.fromisoformat(str(value or ""))
    except ValueError:
        raise ValidationFailed({field: "Give a day as YYYY-MM-DD."}) from None
    if not 2000 <= day.year <= 2100:
        raise ValidationFailed({field: "Give a day between the years 2000 and 2100."})
    return day


def _uuid_or_none(value, field: str):
    if value in (None, ""):
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed({field: "Not a valid id."}) from None


def package_json(p) -> dict:
    return {
        "id": str(p.id),
        "kind": p.kind,
        "name": p.name,
        "description": p.description,
        "active": p.active,
        "position": p.position,
        "prices": {pr.size_class: {"price_cents": pr.price_cents, "duration_min": pr.duration_min} for pr in p.prices},
    }


def technician_json(t) -> dict:
    return {
        "id": str(t.id),
        "name": t.name,
        "color": t.color,
        "active": t.active,
        "skills": t.skills,
        "home": {"address": t.home_address, "lat": t.home_lat, "lng": t.home_lng},
        "hours": [
            {"weekday": h.weekday, "start": h.start_local.strftime("%H:%M"), "end": h.end_local.strftime("%H:%M")}
            for h in t.hours
        ],
    }


def customer_json(c, *, full: bool = False) -> dict:
    out = {"id": str(c.id), "name": c.name, "phone": c.phone, "email": c.email}
    if full:
        out["vehicles"] = [
            {
                "id": str(v.id),
                "label": v.label,
                "size_class": v.size_class,
                "plate": v.plate,
                "year": v.year,
                "make": v.make,
                "model": v.model,
                "color": v.color,
            }
            for v in c.vehicles
        ]
        out["addresses"] = [
            {"id": str(a.id), "line": a.one_line, "lat": a.lat, "lng": a.lng, "access_notes": a.access_notes}
            for a in c.addresses
        ]
    return out


def booking_json(b) -> dict:
    return {
        "id": str(b.id),
        "reference": b.reference,
        "status": b.status,
        "starts_at": b.starts_at.isoformat(),
        "ends_at": b.ends_at.isoformat(),
        "technician_id": str(b.technician_id),
        "customer_id": str(b.customer_id),
        "vehicle_id": str(b.vehicle_id),
        "address_id": str(b.address_id),
        "price_cents": b.price_cents,
        "currency": b.currency,
        "hold_expires_at": b.hold_expires_at.isoformat() if b.hold_expires_at else None,
        "items": [
            {"name": i.name, "kind": i.kind, "price_cents": i.price_cents, "duration_min": i.duration_min}
            for i in b.items
        ],
    }


@bp.get("/packages")
def list_packages():
    return jsonify(packages=[package_json(p) for p in catalog.list_packages()])


@bp.post("/packages")
def create_package():
    body = json_body()
    check_types(
        body,
        {"name": TEXT, "kind": TEXT, "description": TEXT, "position": (int, type(None)), "prices": (dict, type(None))},
    )
    package = catalog.create_package(
        g.tenant.id,
        name=body.get("name", ""),
        kind=body.get("kind", "package"),
        description=body.get("description"),
        prices=body.get("prices") or {},
        position=body.get("position") or 0,
    )
    db.session.commit()
    return jsonify(package_json(package)), 201


@bp.get("/packages/<uuid:package_id>")
def get_package(package_id: uuid.UUID):
    return jsonify(package_json(catalog.get_package(package_id)))


@bp.get("/technicians")
def list_technicians():
    return jsonify(technicians=[technician_json(t) for t in booking_services.list_technicians(active_only=False)])


@bp.get("/technicians/<uuid:technician_id>")
def get_technician(technician_id: uuid.UUID):
    return jsonify(technician_json(booking_services.get_technician(technician_id)))


@bp.get("/customers")
def list_customers():
    return jsonify(customers=[customer_json(c) for c in customer_services.search_customers(request.args.get("q", ""))])


@bp.post("/customers")
def create_customer():
    body = json_body()
    check_types(body, CUSTOMER_TYPES)
    region = customer_services.DEFAULT_REGION.get(g.tenant.currency, "US")
    customer = customer_services.create_customer(g.tenant.id, body, region=region)
    db.session.commit()
    return jsonify(customer_json(customer, full=True)), 201


@bp.get("/customers/<uuid:customer_id>")
def get_customer(customer_id: uuid.UUID):
    return jsonify(customer_json(customer_services.get_customer(customer_id), full=True))


def vehicle_json(v) -> dict:
    return {
        "id": str(v.id),
        "customer_id": str(v.customer_id),
        "label": v.label,
        "size_class": v.size_class,
        "year": v.year,
        "make": v.make,
        "model": v.model,
        "color": v.color,
        "plate": v.plate,
    }


@bp.get("/customers/<uuid:customer_id>/vehicles")
def list_vehicles(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    return jsonify(vehicles=[vehicle_json(v) for v in customer.vehicles])


@bp.post("/customers/<uuid:customer_id>/vehicles")
def add_vehicle(customer_id: uuid.UUID):
    customer = customer_services.get_customer(customer_id)
    body = json_body()
    check_types(body, VEHICLE_TYPES)
    vehicle = customer_services.add_vehicle(customer, body)
    db.session.commit()
    return jsonify(vehicle_json(vehicle)), 201


@bp.get("/availability")
def availability():
    args = request.args
    first = _day(args.get("date"))
    days = min(max(args.get("days", 1, type=int) or 1, 1), 62)
    priced = booking_services.price_selection(
        args.get("package_id"), args.getlist("addon_ids"), args.get("size_class", "")
    )
    tech = _uuid_or_none(args.get("technician_id"), "technician_id")
    by_day = booking_services.slots_for_days(
        g.tenant, first, days, priced.duration, now=_now(), technician_ids=[tech] if tech else None
    )
    return jsonify(
        duration_min=int(priced.duration.total_seconds() // 60),
        price_cents=priced.price_cents,
        days=[
            {
                "date": d.isoformat(),
                "slots": [
                    {
                        "starts_at": s.start.isoformat(),
                        "local": s.local.isoformat(),
                        "technician_ids": [str(x) for x in s.technician_ids],
                    }
                    for s in slots
                ],
            }
            for d, slots in by_day.items()
        ],
    )


@bp.get("/availability/explain")
def explain():
    args = request.args
    day = _day(args.get("date"))
    minutes = args.get("duration_min", 60, type=int)
    if minutes is None or not 5 <= minutes <= 720:
        raise ValidationFailed({"duration_min": "Give the job length in minutes, from 5 to 720."})
    tech = _uuid_or_none(args.get("technician_id"), "technician_id")
    if tech is None:
        raise ValidationFailed({"technician_id": "Choose a technician."})
    rows = booking_services.explain_day(g.tenant, tech, day, timedelta(minutes=minutes), now=_now())
    return jsonify(
        times=[
            {"local": c.local.isoformat(), "starts_at": c.start.isoformat(), "offered": c.offered, "reason": c.reason}
            for c in rows
        ]
    )


@bp.get("/bookings")
def list_bookings():
    start = _instant(request.args.get("start", _now().isoformat()), "start")
    end = _instant(request.args.get("end", (start + timedelta(days=7)).isoformat()), "end")
    if not timedelta(0) < end - start <= timedelta(days=62):
        raise ValidationFailed({"end": "Ask for a range of up to 62 days, ending after it starts."})
    return jsonify(bookings=[booking_json(b) for b in booking_services.list_bookings(start, end)])


@bp.get("/bookings/<uuid:booking_id>")
def get_booking(booking_id: uuid.UUID):
    return jsonify(booking_json(booking_services.get_booking(booking_id)))


@bp.post("/bookings")
def create_booking():
    body = json_body()
    check_types(
        body,
        {
            "package_id": TEXT,
            "addon_ids": "ids",
            "size_class": TEXT,
            "technician_id": TEXT,
            "starts_at": TEXT,
            "address": TEXT,
            "access_notes": TEXT,
            "notes": TEXT,
            "customer": CUSTOMER_TYPES,
            "vehicle": VEHICLE_TYPES,
        },
    )
    place = None
    if body.get("address"):
        found = get_geocoder().geocode(str(body["address"]))
        if found is None:
            raise ValidationFailed({"address": "We couldn't place that address."})
        place = found.as_dict()
    customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    req = booking_services.BookingRequest(
        package_id=body.get("package_id"),
        addon_ids=body.get("addon_ids") or [],
        vehicle={"size_class": body.get("size_class", ""), **(v if isinstance(v := body.get("vehicle"), dict) else {})},
        place=place,
        access_notes=body.get("access_notes"),
        customer=customer,
        starts_at=_instant(body.get("starts_at"), "starts_at"),
        technician_id=_uuid_or_none(body.get("technician_id"), "technician_id"),
        notes=body.get("notes"),
        source="api",
    )
    booking = booking_services.book(g.tenant, req, now=_now(), actor_type="user", actor_id=_actor_id())
    db.session.commit()
    from app.booking.jobs import schedule_hold_expiry

    schedule_hold_expiry(booking)
    return jsonify(booking_json(booking)), 201


@bp.post("/bookings/<uuid:booking_id>/move")
def move_booking(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id, for_update=True)
    body = json_body()
    check_types(body, {"starts_at": TEXT, "technician_id": TEXT})
    booking_services.reschedule_booking(
        g.tenant,
        booking,
        _instant(body.get("starts_at"), "starts_at"),
        actor_type="user",
        actor_id=_actor_id(),
        now=_now(),
        technician_id=_uuid_or_none(body.get("technician_id"), "technician_id"),
    )
    db.session.commit()
    return jsonify(booking_json(booking))


@bp.post("/bookings/<uuid:booking_id>/status")
def set_booking_status(booking_id: uuid.UUID):
    booking = booking_services.get_booking(booking_id, for_update=True)
    body = json_body()
    to = str(body.get("status") or "")
    if to == "canceled":
        booking_services.cancel_booking(g.tenant, booking, actor_type="user", actor_id=_actor_id(), now=_now())
    else:
        booking_services.transition(booking, to, actor_type="user", actor_id=_actor_id())
    db.session.commit()
    return jsonify(booking_json(booking))
