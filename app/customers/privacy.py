"""Customer data rights (GDPR/CCPA; docs/data-rights.md): export one customer's data, anonymise
them, and delete them after a 30-day grace period.

What a customer leaves behind, table by table (every table with a ``customer_id`` or hanging off
one of their bookings):

==========================  =================================  ======================================
table                       anonymise                          purge (after the grace period)
==========================  =================================  ======================================
customers                   name replaced, contact + notes     row deleted, or kept as the anonymised
                            removed, ``anonymised_at`` set     shell when money records point at it
customer_addresses          street, postcode, notes removed;   deleted unless a kept booking uses it
                            pin rounded to ~1 km
vehicles                    plate removed                      deleted unless a kept booking uses it
bookings                    customer notes removed             kept (anonymised) when they have
                                                               payments or a Google event; else deleted
booking_items               kept (package names and prices)    with their booking
booking_events              free-text reasons removed          with their booking
booking_photos              objects deleted from storage,      same
                            rows deleted
payments / refunds          kept; staff notes and refund       kept (tax records)
                            reasons scrubbed of the person
messages                    bodies, subjects and addresses     deleted
                            removed (rows kept: SMS counts)
short_links                 those in our texts to them deleted same (before the texts go)
reviews                     author renamed, comment and        deleted
                            reply removed (ratings kept)
quote_requests (+ photos)   text removed; photos deleted       deleted (photos first)
quotes / quote_lines        notes, decline reasons removed     deleted
route_plans (jsonb)         the stops' name/address/pin        same
stripe_events (jsonb)       names, e-mails, phones, addresses  same
webhook_deliveries (body)   customer/address blocks, needles   same
google_exported_events      the event is rewritten in Google   with their booking, or rewritten
audit_log                   nothing personal is ever written   kept
==========================  =================================  ======================================

No request objects here: callers pass the actor and ``now``; services flush, callers commit.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from app.audit import services as audit
from app.booking.models import ACTIVE_STATUSES, Booking, BookingEvent, BookingItem, Technician
from app.customers.models import Customer
from app.errors import FielddayError
from app.extensions import db
from app.media import storage
from app.media.models import BookingPhoto
from app.messaging.models import Message
from app.payments.models import Payment, Refund
from app.quotes.models import Quote, QuoteLine, QuoteRequest, QuoteRequestPhoto
from app.reviews.models import Review

log = logging.getLogger(__name__)

ANON_NAME = "Anonymised customer"
ANON_AUTHOR = "Former customer"
ANON_ADDRESS = "Address removed"
REMOVED = "[removed]"
GRACE = timedelta(days=30)
# Photo links in an export: long enough for the business to send the file and the customer to open
# it (a week is also the longest a SigV4 presigned URL can live); the file holds their data anyway.
PHOTO_LINK_S = 7 * 24 * 3600
# Keys of provider payloads (Stripe) that hold a person: their values are removed wherever they sit.
PERSONAL_KEYS = {"name", "email", "phone", "line1", "line2", "postal_code", "receipt_email", "customer_email"}
EXPORT_FORMAT = "fieldday.customer-export"


class CustomerUnavailable(FielddayError):
    """A customer being deleted (or anonymised) can't be booked or messaged."""

    status = 409
    code = "customer_unavailable"
    message = "We can't take this booking online. Please call us to book."


class StillBooked(FielddayError):
    status = 409
    code = "customer_has_upcoming_bookings"
    message = "This customer has upcoming bookings. Cancel or complete them first."


class AlreadyAnonymised(FielddayError):
    status = 409
    code = "already_anonymised"
    message = "This customer was already anonymised."


def check_bookable(customer: Customer, *, staff: bool) -> None:
    """Refuse a booking (or quote request) for a customer who asked to be deleted. Anonymous visitors
    get the generic answer: knowing a phone number must not tell anyone about that request."""
    if customer.reachable:
        return
    if not staff:
        raise CustomerUnavailable()
    if customer.anonymised_at is not None:
        raise CustomerUnavailable("This customer was anonymised: add them as a new customer to book them.")
    raise CustomerUnavailable(
        f"This customer is scheduled for deletion on {customer.purge_after:%B %-d, %Y}. "
        "Cancel the deletion on their page to book them."
    )


# Scope: what belongs to the customer ------------------------------------------------------------


def _booking_ids(customer: Customer) -> list[uuid.UUID]:
    return list(db.session.scalars(select(Booking.id).where(Booking.customer_id == customer.id)))


def _request_ids(customer: Customer) -> list[uuid.UUID]:
    return list(db.session.scalars(select(QuoteRequest.id).where(QuoteRequest.customer_id == customer.id)))


def _message_scope(customer: Customer):
    """Their thread, plus texts from their number that arrived before anyone matched it to them."""
    loose = [Message.from_addr == a for a in (customer.phone, customer.email) if a]
    loose += [Message.to_addr == a for a in (customer.phone, customer.email) if a]
    if not loose:
        return Message.customer_id == customer.id
    return or_(Message.customer_id == customer.id, (Message.customer_id.is_(None) & or_(*loose)))


def _review_scope(customer: Customer, booking_ids: list[uuid.UUID]):
    """Reviews they wrote (linked to them, or to one of their bookings)."""
    if not booking_ids:
        return Review.customer_id == customer.id
    return or_(Review.customer_id == customer.id, Review.booking_id.in_(booking_ids))


def upcoming_bookings(customer: Customer, *, now: datetime) -> list[Booking]:
    """Active bookings not yet over: these block anonymising and deleting (docs/data-rights.md)."""
    return list(
        db.session.scalars(
            select(Booking)
            .where(
                Booking.customer_id == customer.id,
                Booking.status.in_(ACTIVE_STATUSES),
                (Booking.ends_at > now) | (Booking.status == "in_progress"),
            )
            .order_by(Booking.starts_at)
        )
    )


def _check_no_upcoming(customer: Customer, *, now: datetime) -> None:
    upcoming = upcoming_bookings(customer, now=now)
    if upcoming:
        refs = ", ".join(b.reference for b in upcoming[:5]) + (" …" if len(upcoming) > 5 else "")
        raise StillBooked(
            f"{customer.name} has {len(upcoming)} upcoming "
            f"{'booking' if len(upcoming) == 1 else 'bookings'} ({refs}). Cancel or complete "
            f"{'it' if len(upcoming) == 1 else 'them'} first, so you decide about deposits and the customer "
            "hears from you."
        )


# Export -------------------------------------------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def _local(dt: datetime | None, tz: ZoneInfo) -> str | None:
    return dt.astimezone(tz).isoformat() if dt is not None else None


def photo_read_url(key: str, content_type: str, *, expires_in: int = PHOTO_LINK_S) -> str:
    return storage.client().generate_presigned_url(
        "get_object",
        Params={"Bucket": storage.bucket(), "Key": key, "ResponseContentType": content_type},
        ExpiresIn=expires_in,
    )


def export_customer(tenant, customer: Customer, *, now: datetime, dashboard_link=None) -> dict:
    """Everything we hold about one customer, as plain JSON-ready data. Instants are UTC ISO 8601,
    with the business's local time beside them for bookings; money is integer cents.
    ``dashboard_link(kind, id)`` gives the staff-only photo links (``booking_photo`` /
    ``request_photo``); each photo also gets a presigned link that works for a week without a login."""
    tz = ZoneInfo(tenant.time_zone)
    bookings = list(
        db.session.scalars(
            select(Booking).where(Booking.customer_id == customer.id).order_by(Booking.starts_at, Booking.id)
        )
    )
    booking_ids = [b.id for b in bookings]
    refs = {b.id: b.reference for b in bookings}
    techs = {t.id: t.name for t in db.session.scalars(select(Technician))} if bookings else {}
    items: dict[uuid.UUID, list] = {b: [] for b in booking_ids}
    events: dict[uuid.UUID, list] = {b: [] for b in booking_ids}
    if booking_ids:
        for i in db.session.scalars(select(BookingItem).where(BookingItem.booking_id.in_(booking_ids))):
            items[i.booking_id].append(
                {"kind": i.kind, "name": i.name, "price_cents": i.price_cents, "duration_min": i.duration_min}
            )
        for e in db.session.scalars(
            select(BookingEvent)
            .where(BookingEvent.booking_id.in_(booking_ids))
            .order_by(BookingEvent.created_at, BookingEvent.id)
        ):
            events[e.booking_id].append(
                {
                    "at": _iso(e.created_at),
                    "by": e.actor_type,
                    "from_status": e.from_status,
                    "to_status": e.to_status,
                    **({"reason": e.detail["reason"]} if isinstance(e.detail, dict) and e.detail.get("reason") else {}),
                }
            )
    payments = (
        list(
            db.session.scalars(
                select(Payment).where(Payment.booking_id.in_(booking_ids)).order_by(Payment.created_at, Payment.id)
            )
        )
        if booking_ids
        else []
    )
    refunds: dict[uuid.UUID, list] = {p.id: [] for p in payments}
    if payments:
        for r in db.session.scalars(
            select(Refund).where(Refund.payment_id.in_(list(refunds))).order_by(Refund.created_at, Refund.id)
        ):
            refunds[r.payment_id].append(
                {
                    "id": str(r.id),
                    "amount_cents": r.amount_cents,
                    "status": r.status,
                    "reason": r.reason,
                    "created_at": _iso(r.created_at),
                }
            )
    messages = db.session.scalars(
        select(Message).where(_message_scope(customer)).order_by(Message.created_at, Message.id)
    )
    reviews = db.session.scalars(
        select(Review).where(_review_scope(customer, booking_ids)).order_by(Review.created_at, Review.id)
    )
    requests = list(
        db.session.scalars(
            select(QuoteRequest).where(QuoteRequest.customer_id == customer.id).order_by(QuoteRequest.created_at)
        )
    )
    quotes = list(
        db.session.scalars(select(Quote).where(Quote.customer_id == customer.id).order_by(Quote.number, Quote.version))
    )
    photos = []
    if booking_ids:
        for p in db.session.scalars(
            select(BookingPhoto)
            .where(BookingPhoto.booking_id.in_(booking_ids), BookingPhoto.status == "stored")
            .order_by(BookingPhoto.created_at, BookingPhoto.id)
        ):
            photos.append(_photo_entry("booking_photo", p, now, dashboard_link, booking_reference=refs[p.booking_id]))
    if requests:
        for p in db.session.scalars(
            select(QuoteRequestPhoto)
            .where(QuoteRequestPhoto.request_id.in_([r.id for r in requests]), QuoteRequestPhoto.status == "stored")
            .order_by(QuoteRequestPhoto.created_at, QuoteRequestPhoto.id)
        ):
            photos.append(_photo_entry("request_photo", p, now, dashboard_link, quote_request_id=str(p.request_id)))

    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "generated_at": _iso(now),
        "business": {"name": tenant.name, "time_zone": tenant.time_zone, "currency": tenant.currency},
        "notes": "Instants are UTC (ISO 8601); *_local fields are in the business's time zone. "
        "Money is in minor units (cents) of the currency shown. Photo links work until url_expires_at.",
        "customer": {
            "id": str(customer.id),
            "name": customer.name,
            "phone": customer.phone,
            "email": customer.email,
            "notes": customer.notes,
            "sms_opted_out_at": _iso(customer.sms_opted_out_at),
            "created_at": _iso(customer.created_at),
            "updated_at": _iso(customer.updated_at),
            "anonymised_at": _iso(customer.anonymised_at),
            "deletion_requested_at": _iso(customer.deletion_requested_at),
            "purge_after": _iso(customer.purge_after),
        },
        "addresses": [
            {
                "id": str(a.id),
                "label": a.label,
                "line1": a.line1,
                "city": a.city,
                "region": a.region,
                "postal_code": a.postal_code,
                "lat": a.lat,
                "lng": a.lng,
                "access_notes": a.access_notes,
                "created_at": _iso(a.created_at),
            }
            for a in customer.addresses
        ],
        "vehicles": [
            {
                "id": str(v.id),
                "year": v.year,
                "make": v.make,
                "model": v.model,
                "color": v.color,
                "plate": v.plate,
                "size_class": v.size_class,
                "created_at": _iso(v.created_at),
            }
            for v in customer.vehicles
        ],
        "bookings": [
            {
                "id": str(b.id),
                "reference": b.reference,
                "status": b.status,
                "starts_at": _iso(b.starts_at),
                "ends_at": _iso(b.ends_at),
                "starts_at_local": _local(b.starts_at, tz),
                "ends_at_local": _local(b.ends_at, tz),
                "time_zone": tenant.time_zone,
                "arrival_window_min": b.arrival_window_min,
                "technician": techs.get(b.technician_id),
                "vehicle_id": str(b.vehicle_id),
                "address_id": str(b.address_id),
                "items": items[b.id],
                "price_cents": b.price_cents,
                "deposit_cents": b.deposit_cents,
                "currency": b.currency,
                "payment_status": b.payment_status,
                "source": b.source,
                "customer_notes": b.customer_notes,
                "on_way_at": _iso(b.on_way_at),
                "started_at": _iso(b.started_at),
                "finished_at": _iso(b.finished_at),
                "created_at": _iso(b.created_at),
                "history": events[b.id],
            }
            for b in bookings
        ],
        "payments": [
            {
                "id": str(p.id),
                "booking_id": str(p.booking_id),
                "booking_reference": refs.get(p.booking_id),
                "kind": p.kind,
                "method": p.method,
                "status": p.status,
                "amount_cents": p.amount_cents,
                "tip_cents": p.tip_cents,
                "refunded_cents": p.refunded_cents,
                "currency": p.currency,
                "card_brand": p.card_brand,
                "card_last4": p.card_last4,
                "note": p.note,
                "created_at": _iso(p.created_at),
                "paid_at": _iso(p.paid_at),
                "refunds": refunds[p.id],
            }
            for p in payments
        ],
        "messages": [
            {
                "id": str(m.id),
                "direction": m.direction,
                "channel": m.channel,
                "kind": m.kind,
                "subject": m.subject,
                "body": m.body,
                "to": m.to_addr,
                "from": m.from_addr,
                "status": m.status,
                "booking_reference": refs.get(m.booking_id) if m.booking_id else None,
                "created_at": _iso(m.created_at),
                "sent_at": _iso(m.sent_at),
            }
            for m in messages
        ],
        "reviews": [
            {
                "id": str(r.id),
                "booking_reference": refs.get(r.booking_id),
                "rating": r.rating,
                "quality": r.quality,
                "punctuality": r.punctuality,
                "value": r.value,
                "comment": r.comment,
                "author_name": r.author_name,
                "reply": r.reply,
                "created_at": _iso(r.created_at),
                "updated_at": _iso(r.updated_at),
            }
            for r in reviews
        ],
        "quote_requests": [
            {
                "id": str(r.id),
                "wanted": r.wanted,
                "condition_notes": r.condition_notes,
                "status": r.status,
                "vehicle_id": str(r.vehicle_id),
                "address_id": str(r.address_id),
                "created_at": _iso(r.created_at),
            }
            for r in requests
        ],
        "quotes": [
            {
                "id": str(q.id),
                "label": q.label,
                "status": q.status,
                "title": q.title,
                "notes": q.notes,
                "currency": q.currency,
                "expires_on": q.expires_on.isoformat(),
                "tax_rate_bps": q.tax_rate_bps,
                "discount_cents": q.discount_cents,
                "discount_bps": q.discount_bps,
                "sent_at": _iso(q.sent_at),
                "accepted_at": _iso(q.accepted_at),
                "accepted_total_cents": q.accepted_total_cents,
                "declined_at": _iso(q.declined_at),
                "decline_reason": q.decline_reason,
                "booking_reference": refs.get(q.booking_id) if q.booking_id else None,
                "created_at": _iso(q.created_at),
                "lines": [
                    {
                        "kind": line.kind,
                        "name": line.name,
                        "description": line.description,
                        "quantity": line.quantity,
                        "unit_cents": line.unit_cents,
                        "optional": line.optional,
                        "tier": line.tier,
                    }
                    for line in q.lines
                ],
            }
            for q in quotes
        ],
        "photos": photos,
    }


def _photo_entry(kind: str, photo, now: datetime, dashboard_link, **where) -> dict:
    entry = {
        "id": str(photo.id),
        "source": "booking" if kind == "booking_photo" else "quote_request",
        **where,
        **({"kind": photo.kind} if kind == "booking_photo" else {}),
        "content_type": photo.content_type,
        "size_bytes": photo.size_bytes,
        "created_at": _iso(photo.created_at),
        "url": photo_read_url(photo.key, photo.content_type),
        "url_expires_at": _iso(now + timedelta(seconds=PHOTO_LINK_S)),
    }
    if dashboard_link is not None:
        entry["dashboard_url"] = dashboard_link(kind, photo.id)
    return entry


# Anonymising ---------------------------------------------------------------------------------------


@dataclass
class Erasure:
    """What one anonymise or purge did (counts only: this goes into the audit log)."""

    photos_deleted: int = 0
    messages: int = 0
    bookings_kept: int = 0
    bookings_deleted: int = 0
    rows_deleted: dict[str, int] = field(default_factory=dict)

    def detail(self) -> dict:
        out = {"photos_deleted": self.photos_deleted, "messages": self.messages, "bookings_kept": self.bookings_kept}
        if self.bookings_deleted or self.rows_deleted:
            out["bookings_deleted"] = self.bookings_deleted
            out["rows_deleted"] = self.rows_deleted
        return out


def _needles(customer: Customer, *, with_name_parts: bool) -> list[str]:
    """The strings that identify the person, longest first (so a full name goes before its parts)."""
    from app.customers.services import format_phone

    found: set[str] = set()
    if customer.anonymised_at is None:
        found.add(customer.name)
        if with_name_parts:
            found.update(p for p in customer.name.split() if len(p) >= 3)
    for value in (customer.email, customer.phone):
        if value:
            found.add(value)
    if customer.phone:
        found.add(format_phone(customer.phone))
        found.add(customer.phone.lstrip("+"))
        if customer.phone.startswith("+1"):
            found.add(customer.phone[2:])
    for a in customer.addresses:
        if a.line1 != ANON_ADDRESS:
            found.add(a.line1)
        if a.access_notes:
            found.add(a.access_notes)
    for v in customer.vehicles:
        if v.plate:
            found.add(v.plate)
    return sorted((n for n in found if n and len(n.strip()) >= 3), key=len, reverse=True)


def scrub_text(value: str | None, needles: list[str]) -> str | None:
    """``value`` with every needle (case-insensitive, as a whole word: a customer named Ron leaves
    "Front seats" alone) replaced by ``[removed]``."""
    if not value or not needles:
        return value
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in needles) + r")(?!\w)", re.IGNORECASE)
    return pattern.sub(REMOVED, value)


def scrub_json(value, needles: list[str], *, personal_keys: frozenset | set = frozenset()):
    """A copy of a JSON value with the needles removed from every string, and the values under
    ``personal_keys`` replaced wholesale (a billing name from Stripe need not match ours)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in personal_keys and isinstance(v, str | int | float) and v not in ("", None):
                out[k] = REMOVED
            else:
                out[k] = scrub_json(v, needles, personal_keys=personal_keys)
        return out
    if isinstance(value, list):
        return [scrub_json(v, needles, personal_keys=personal_keys) for v in value]
    if isinstance(value, str):
        return scrub_text(value, needles)
    return value


def _round_pin(x: float) -> float:
    # About a kilometre: past days' maps and drive-time reports still work, no house is pinned.
    return round(x, 2)


def delete_photo_objects(customer: Customer) -> int:
    """Delete the customer's photos (their jobs' before/after photos and their quote requests'):
    the objects in storage first, then the rows. A failure half-way raises before any row goes, so
    the next run finds the rows again and deletes what is left (deleting a missing key is a no-op)."""
    booking_ids = _booking_ids(customer)
    request_ids = _request_ids(customer)
    job_photos = (
        list(db.session.scalars(select(BookingPhoto).where(BookingPhoto.booking_id.in_(booking_ids))))
        if booking_ids
        else []
    )
    request_photos = (
        list(db.session.scalars(select(QuoteRequestPhoto).where(QuoteRequestPhoto.request_id.in_(request_ids))))
        if request_ids
        else []
    )
    prefix = f"tenants/{customer.tenant_id}/"
    for photo in job_photos + request_photos:
        if not photo.key.startswith(prefix):  # the CHECK constraint already makes this impossible
            raise RuntimeError(f"photo {photo.id} has a key outside its business's prefix")
        storage.delete_object(photo.key)
    for photo in job_photos + request_photos:
        db.session.delete(photo)
    db.session.flush()
    return len(job_photos) + len(request_photos)


def anonymise_customer(tenant, customer: Customer, *, actor_id: uuid.UUID | None, now: datetime) -> Erasure:
    """Remove the person and keep the money records (docs/data-rights.md). Refused while they have
    upcoming bookings; their photos are deleted from storage."""
    if customer.anonymised_at is not None:
        raise AlreadyAnonymised()
    _check_no_upcoming(customer, now=now)
    result = _anonymise(customer, now=now)
    audit.record(
        customer.tenant_id,
        "customer.anonymised",
        actor_id=actor_id,
        subject_type="customer",
        subject_id=customer.id,
        detail=result.detail(),
    )
    return result


def _anonymise(customer: Customer, *, now: datetime) -> Erasure:
    """The scrub itself: idempotent, safe to run again on an anonymised customer (the purge does)."""
    result = Erasure()
    needles = _needles(customer, with_name_parts=True)
    blob_needles = _needles(customer, with_name_parts=False)
    booking_ids = _booking_ids(customer)
    request_ids = _request_ids(customer)
    result.photos_deleted = delete_photo_objects(customer)

    # Messages first: the scope matches loose texts by the phone number we are about to remove.
    _drop_short_links(customer)
    for m in db.session.scalars(select(Message).where(_message_scope(customer))):
        m.body, m.subject, m.error_message = REMOVED, None, None
        if m.direction == "out":
            m.to_addr = REMOVED
        else:
            m.from_addr = REMOVED
        m.customer_id = customer.id
        result.messages += 1

    customer.name = ANON_NAME
    customer.phone = customer.email = customer.notes = None
    customer.sms_opted_out_at = None
    customer.anonymised_at = customer.anonymised_at or now
    for a in customer.addresses:
        a.label = a.city = a.region = a.postal_code = a.access_notes = None
        a.line1 = ANON_ADDRESS
        a.lat, a.lng = _round_pin(a.lat), _round_pin(a.lng)
    for v in customer.vehicles:
        v.plate = None

    if booking_ids:
        db.session.execute(
            Booking.__table__.update()
            .where(Booking.tenant_id == customer.tenant_id, Booking.id.in_(booking_ids))
            # A new token version ends the links we sent them (manage, pay): nobody adds to the record.
            .values(customer_notes=None, token_version=Booking.token_version + 1)
        )
        for e in db.session.scalars(select(BookingEvent).where(BookingEvent.booking_id.in_(booking_ids))):
            detail = dict(e.detail or {})
            if e.actor_type in ("customer", "user") and detail.get("reason"):
                detail["reason"] = REMOVED  # typed by a person: may name someone
            detail = scrub_json(detail, needles)
            if detail != e.detail:
                e.detail = detail
        for p in db.session.scalars(select(Payment).where(Payment.booking_id.in_(booking_ids))):
            p.note = scrub_text(p.note, needles)
            p.checkout_url = None  # a pay link is the customer's, and a bearer link besides
            p.failure_message = scrub_text(p.failure_message, needles)
            for r in db.session.scalars(select(Refund).where(Refund.payment_id == p.id)):
                r.reason = scrub_text(r.reason, needles)
        result.bookings_kept = len(booking_ids)
    for r in db.session.scalars(select(Review).where(_review_scope(customer, booking_ids))):
        r.author_name, r.comment = ANON_AUTHOR, None
        r.reply = r.replied_at = r.replied_by = None
    if request_ids:
        for q in db.session.scalars(select(QuoteRequest).where(QuoteRequest.id.in_(request_ids))):
            q.wanted, q.condition_notes = REMOVED, None
    quote_ids = []
    for q in db.session.scalars(select(Quote).where(Quote.customer_id == customer.id)):
        quote_ids.append(q.id)
        q.token_version += 1  # the quote link we sent them stops working
        q.notes = None
        q.title = scrub_text(q.title, needles)
        if q.decline_reason:
            q.decline_reason = REMOVED
    if quote_ids:
        for line in db.session.scalars(select(QuoteLine).where(QuoteLine.quote_id.in_(quote_ids))):
            line.description = scrub_text(line.description, needles)
            line.name = scrub_text(line.name, needles)[:120]
    _scrub_route_plans(booking_ids, blob_needles)
    _scrub_stripe_events(booking_ids, blob_needles)
    _scrub_webhook_deliveries(customer.id, {str(a.id) for a in customer.addresses}, blob_needles)
    _rewrite_google_events(customer.tenant_id, booking_ids)
    db.session.flush()
    return result


def _drop_short_links(customer: Customer) -> None:
    """The short links our texts to them carried (app/links): each opens one of their pages (manage,
    pay, receipt, review, quote), and the text that held it is about to go. Found by the codes in
    those texts, so an old link now answers "we couldn't find that link"."""
    from app.links.models import ShortLink
    from app.links.services import CODE_RE

    bodies = db.session.scalars(
        select(Message.body).where(_message_scope(customer), Message.direction == "out", Message.channel == "sms")
    )
    codes = {c for body in bodies for c in _SHORT_CODE.findall(body or "") if CODE_RE.fullmatch(c)}
    if codes:
        db.session.execute(
            ShortLink.__table__.delete().where(
                ShortLink.tenant_id == customer.tenant_id, ShortLink.code.in_(sorted(codes))
            )
        )


_SHORT_CODE = re.compile(r"/l/([0-9A-Za-z]{10,32})(?![0-9A-Za-z])")


def _scrub_route_plans(booking_ids: list[uuid.UUID], needles: list[str]) -> None:
    """Day plans keep a copy of each stop (name, address, pin): rewrite the customer's stops."""
    from app.dispatch.models import RoutePlan

    if not booking_ids:
        return
    ids = {str(b) for b in booking_ids}
    like = [RoutePlan.current.cast(db.Text).contains(b) | RoutePlan.proposed.cast(db.Text).contains(b) for b in ids]
    for plan in db.session.scalars(select(RoutePlan).where(or_(*like))):
        for attr in ("current", "proposed"):
            value = getattr(plan, attr)
            if value is None:
                continue
            cleaned = scrub_json(_anonymise_stops(value, ids), needles)
            if cleaned != value:
                setattr(plan, attr, cleaned)


def _anonymise_stops(value, ids: set[str]):
    if isinstance(value, dict):
        out = {k: _anonymise_stops(v, ids) for k, v in value.items()}
        if str(value.get("booking_id")) in ids:
            if "customer" in out:
                out["customer"] = ANON_NAME
            if "address" in out:
                out["address"] = ANON_ADDRESS
            for k in ("lat", "lng"):
                if isinstance(out.get(k), int | float):
                    out[k] = _round_pin(out[k])
        return out
    if isinstance(value, list):
        return [_anonymise_stops(v, ids) for v in value]
    return value


def _scrub_stripe_events(booking_ids: list[uuid.UUID], needles: list[str]) -> None:
    """Stripe's event payloads (Checkout sessions, charges) carry the payer's name, e-mail, phone and
    billing address: remove them from the events of the customer's bookings."""
    from app.payments.models import StripeEvent

    markers = [str(b) for b in booking_ids] + needles
    if not markers:
        return
    like = [StripeEvent.payload.cast(db.Text).contains(m) for m in markers]
    for event in db.session.scalars(select(StripeEvent).where(or_(*like))):
        cleaned = scrub_json(event.payload, needles, personal_keys=PERSONAL_KEYS)
        if cleaned != event.payload:
            event.payload = cleaned


def _scrub_webhook_deliveries(customer_id: uuid.UUID, address_ids: set[str], needles: list[str]) -> None:
    """The outgoing-webhook delivery log keeps each event's exact body, whose ``customer`` block names
    the person and whose ``address`` block has their street and pin: blank the contact fields, the
    street line, round the pin, and remove the needles elsewhere (a resend sends this)."""
    import json

    from sqlalchemy import text

    if db.session.scalar(text("SELECT to_regclass('public.webhook_deliveries')")) is None:
        return
    rows = db.session.execute(
        text("SELECT id, body FROM webhook_deliveries WHERE strpos(body, :cid) > 0"), {"cid": str(customer_id)}
    ).all()
    for delivery_id, body in rows:
        try:
            cleaned = json.dumps(scrub_json(_blank_person(json.loads(body), str(customer_id), address_ids), needles))
        except ValueError:
            cleaned = scrub_text(body, needles)
        # The receiver's answer may echo the body back: it is a debugging aid, so it goes.
        db.session.execute(
            text("UPDATE webhook_deliveries SET body = :body, response_excerpt = NULL WHERE id = :id"),
            {"body": cleaned, "id": delivery_id},
        )


def _blank_person(value, customer_id: str, address_ids: set[str] = frozenset()):
    if isinstance(value, dict):
        out = {k: _blank_person(v, customer_id, address_ids) for k, v in value.items()}
        if str(value.get("id")) == customer_id:
            for key in ("name", "phone", "email", "notes"):
                if out.get(key):
                    out[key] = ANON_NAME if key == "name" else None
        elif str(value.get("id")) in address_ids:
            if out.get("line"):
                out["line"] = ANON_ADDRESS  # street, city and postcode in one string
            for key in ("lat", "lng"):
                if isinstance(out.get(key), int | float):
                    out[key] = _round_pin(out[key])
        return out
    if isinstance(value, list):
        return [_blank_person(v, customer_id, address_ids) for v in value]
    return value


def _rewrite_google_events(tenant_id: uuid.UUID, booking_ids: list[uuid.UUID]) -> None:
    """Events we wrote to Google name the customer and their street: after commit, write them again
    (the export job reads the anonymised booking)."""
    from app.calendar.models import GoogleExportedEvent

    if not booking_ids:
        return
    live = set(
        db.session.scalars(
            select(GoogleExportedEvent.booking_id).where(
                GoogleExportedEvent.booking_id.in_(booking_ids), GoogleExportedEvent.written_deleted.is_(False)
            )
        )
    )
    if not live:
        return
    from app.calendar.jobs import export_booking_job
    from app.jobs import after_commit

    for booking_id in sorted(live, key=str):
        after_commit(export_booking_job.enqueue, tenant_id, booking_id)


# Deleting -----------------------------------------------------------------------------------------


def schedule_deletion(customer: Customer, *, actor_id: uuid.UUID | None, now: datetime) -> Customer:
    """ "Delete customer": purged after a 30-day grace period, cancellable until then. Meanwhile they
    can't be booked or messaged. Refused while they have upcoming bookings."""
    if customer.purge_after is not None:
        return customer
    _check_no_upcoming(customer, now=now)
    customer.deletion_requested_at = now
    customer.purge_after = now + GRACE
    audit.record(
        customer.tenant_id,
        "customer.deletion_scheduled",
        actor_id=actor_id,
        subject_type="customer",
        subject_id=customer.id,
        detail={"purge_after": customer.purge_after.isoformat()},
    )
    db.session.flush()
    return customer


class DeletionAlreadyRan(FielddayError):
    status = 409
    code = "deletion_already_ran"
    message = "This customer's deletion already ran: their data is gone and can't be brought back."


class DeletionRunning(FielddayError):
    status = 409
    code = "deletion_running"
    message = "This customer's data is being deleted right now, so the deletion can no longer be canceled."


def cancel_deletion(customer: Customer, *, actor_id: uuid.UUID | None) -> bool:
    """Undo a pending deletion; False when none was pending. The purge holds the customer's row
    while it runs: we wait for it (DeletionRunning past the lock timeout), then read the row again
    (DeletionAlreadyRan when the purge got there first)."""
    from sqlalchemy.exc import OperationalError

    was_pending = customer.purge_after is not None
    try:
        with db.session.begin_nested():
            row = db.session.execute(
                select(Customer.purge_after, Customer.anonymised_at)
                .where(Customer.tenant_id == customer.tenant_id, Customer.id == customer.id)
                .with_for_update()
            ).first()
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in ("55P03", "57014"):  # lock or statement timeout
            raise DeletionRunning() from exc
        raise
    if row is None:
        raise DeletionAlreadyRan()
    db.session.refresh(customer)
    if customer.purge_after is None:
        if was_pending and customer.anonymised_at is not None:
            raise DeletionAlreadyRan()
        return False
    from tenants import quotas

    # A pending deletion freed its place on the plan (tenants/quotas.py): coming back takes one again.
    quotas.check(customer.tenant_id, "customers", notify=False)
    customer.deletion_requested_at = customer.purge_after = None
    audit.record(
        customer.tenant_id,
        "customer.deletion_canceled",
        actor_id=actor_id,
        subject_type="customer",
        subject_id=customer.id,
    )
    db.session.flush()
    return True


def due_customer_ids(*, now: datetime) -> list[uuid.UUID]:
    return list(
        db.session.scalars(
            select(Customer.id).where(Customer.purge_after <= now).order_by(Customer.purge_after, Customer.id)
        )
    )


def purge_customer(customer_id: uuid.UUID, *, now: datetime) -> Erasure | None:
    """Carry out a deletion whose grace period is over (the hourly job, one customer at a time).

    Order: the photos in storage first, then rows; all rows change in the caller's transaction, so
    a crash (or a storage error) anywhere leaves the customer due and the next run starts again.
    Money records stay: bookings with payments (and their payments, refunds, items) are kept with
    the person removed, as are bookings whose Google Calendar event must be rewritten; everything
    else that is the customer's is deleted. None when nothing is due (a re-run is a no-op)."""
    from app.calendar.models import GoogleExportedEvent

    customer = db.session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())
    if customer is None or customer.purge_after is None or customer.purge_after > now:
        return None
    tenant_id = customer.tenant_id
    booking_ids = _booking_ids(customer)
    keep: set[uuid.UUID] = set()
    if booking_ids:
        keep |= set(db.session.scalars(select(Payment.booking_id).where(Payment.booking_id.in_(booking_ids))))
        keep |= set(
            db.session.scalars(
                select(GoogleExportedEvent.booking_id).where(
                    GoogleExportedEvent.booking_id.in_(booking_ids), GoogleExportedEvent.written_deleted.is_(False)
                )
            )
        )
    result = Erasure()
    result.photos_deleted = delete_photo_objects(customer)
    deleted: dict[str, int] = {}

    def _delete(model, *where) -> None:
        count = db.session.execute(model.__table__.delete().where(*where)).rowcount
        if count:
            deleted[model.__tablename__] = deleted.get(model.__tablename__, 0) + count

    _drop_short_links(customer)  # found through the texts, which go next
    _delete(Message, Message.tenant_id == customer.tenant_id, _message_scope(customer))
    _delete(Review, Review.tenant_id == customer.tenant_id, _review_scope(customer, booking_ids))
    _delete(Quote, Quote.tenant_id == customer.tenant_id, Quote.customer_id == customer.id)
    _delete(QuoteRequest, QuoteRequest.tenant_id == customer.tenant_id, QuoteRequest.customer_id == customer.id)
    gone = [b for b in booking_ids if b not in keep]
    if gone:
        # Day plans copy each stop (name, street, pin) and have no foreign key: scrub the stops of the
        # bookings about to go, which _anonymise below no longer finds.
        _scrub_route_plans(gone, _needles(customer, with_name_parts=False))
        _delete(Booking, Booking.tenant_id == customer.tenant_id, Booking.id.in_(gone))
    db.session.expire_all()
    customer = db.session.get(Customer, (customer.tenant_id, customer.id))
    scrub = _anonymise(customer, now=now)
    result.messages = scrub.messages
    used_vehicles = set(db.session.scalars(select(Booking.vehicle_id).where(Booking.customer_id == customer.id)))
    used_addresses = set(db.session.scalars(select(Booking.address_id).where(Booking.customer_id == customer.id)))
    for v in list(customer.vehicles):
        if v.id not in used_vehicles:
            db.session.delete(v)
            deleted["vehicles"] = deleted.get("vehicles", 0) + 1
    for a in list(customer.addresses):
        if a.id not in used_addresses:
            db.session.delete(a)
            deleted["customer_addresses"] = deleted.get("customer_addresses", 0) + 1
    db.session.flush()
    db.session.expire(customer, ["addresses", "vehicles"])
    result.bookings_kept, result.bookings_deleted = len(keep), len(gone)
    if not keep:
        db.session.delete(customer)
        deleted["customers"] = 1
    else:
        # The anonymised shell the kept money records point at; nothing is due any more.
        customer.deletion_requested_at = customer.purge_after = None
    result.rows_deleted = deleted
    db.session.flush()
    audit.record(tenant_id, "customer.purged", subject_type="customer", subject_id=customer_id, detail=result.detail())
    log.info("purged customer %s of tenant %s: %s", customer_id, tenant_id, result.detail())
    return result


def purge_due(*, now: datetime, commit=None) -> int:
    """Purge every due customer of the current business, one at a time. ``commit`` (the job's) is
    called after each, so one customer's trouble (say, storage down) never holds back the others'
    completed work; a failed one stays due for the next run."""
    done = 0
    for customer_id in due_customer_ids(now=now):
        try:
            with db.session.begin_nested():
                if purge_customer(customer_id, now=now) is not None:
                    done += 1
        except Exception:  # noqa: BLE001 - logged; the customer stays due and the next run retries
            log.exception("purge of customer %s failed; the next run tries again", customer_id)
            continue
        if commit is not None:
            commit()
    return done


def list_pending_deletions(limit: int = 100) -> list[Customer]:
    return list(
        db.session.scalars(
            select(Customer).where(Customer.purge_after.is_not(None)).order_by(Customer.purge_after).limit(limit)
        )
    )


def count_anonymised() -> int:
    return db.session.scalar(select(func.count()).select_from(Customer).where(Customer.anonymised_at.is_not(None))) or 0
