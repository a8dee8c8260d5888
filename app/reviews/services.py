"""Reviews: the request after every finished job (no sentiment gating), the customer's review
through a signed link, the owner's reply, and the figures the booking site shows (docs/reviews.md).

Services flush; the request or job commits. Every read names the tenant as well as relying on
row-level security, so a slip in one layer still shows nobody another business's reviews.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlalchemy.orm import selectinload

from app.booking.models import Booking
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.reviews.errors import NotReviewable, ReviewLocked
from app.reviews.models import SUB_RATINGS, Review
from app.reviews.tokens import make_review_token

if TYPE_CHECKING:
    from app.messaging.models import Message

EDIT_WINDOW = timedelta(days=60)
COMMENT_MAX = 2000
REPLY_MAX = 2000
NAME_MAX = 80
GOOGLE_URL_MAX = 508  # "https://" and at most 500 more: the database's own check
FILTERS = {"all": "All", "needs_reply": "Needs a reply", "low": "1–3 stars"}


# Asking ---------------------------------------------------------------------------------------------


def review_link(tenant, booking: Booking) -> str:
    """The absolute address of the review page for this booking on the business's own site."""
    from app.urls import site_url

    return site_url(tenant.subdomain, f"/review/{make_review_token(tenant.id, booking.id)}")


def request_review(booking: Booking) -> Message | None:
    """Ask the customer for a review (every customer, whatever we guess of their mood): once per
    booking, by text or else e-mail through ``notify``. None when the job isn't finished or the
    request was made before."""
    from app.messaging import services as messaging
    from tenants.models import Tenant

    if booking.status != "completed":
        return None
    tenant = db.session.get(Tenant, booking.tenant_id)
    values = {
        "review_link": review_link(tenant, booking),
        "service": ", ".join(item.name for item in booking.items),
        "reference": booking.reference,
    }
    return messaging.notify(
        tenant,
        booking.customer,
        "review_request",
        values,
        booking_id=booking.id,
        dedupe_key=f"review_request:{booking.id}",
    )


# The customer's review --------------------------------------------------------------------------------


def default_author_name(customer) -> str:
    """First name and last initial ("Casey C."): enough to be a person, not enough to find them."""
    parts = (customer.name if customer is not None else "").split()
    if not parts:
        return "A customer"
    if len(parts) == 1:
        return parts[0][:NAME_MAX]
    return f"{parts[0]} {parts[-1][0].upper()}."[:NAME_MAX]


def _stars(raw, field: str, label: str, errors: dict[str, str], *, required: bool) -> int | None:
    text = str(raw).strip() if raw is not None else ""
    if not text:
        if required:
            errors[field] = f"Choose {label}: from 1 to 5 stars."
        return None
    if text not in ("1", "2", "3", "4", "5"):  # not isdigit(): "²" is a digit int() refuses
        errors[field] = f"{label[0].upper()}{label[1:]} must be from 1 to 5 stars."
        return None
    return int(text)


def clean_review(data: Mapping, *, customer=None) -> dict:
    """Validated review fields from a form; raises ValidationFailed naming every bad field."""
    errors: dict[str, str] = {}
    clean: dict = {"rating": _stars(data.get("rating"), "rating", "a rating", errors, required=True)}
    for key, label in SUB_RATINGS.items():
        clean[key] = _stars(data.get(key), key, label.lower(), errors, required=False)
    comment = (data.get("comment") or "").replace("\x00", "").replace("\r\n", "\n").strip()
    if len(comment) > COMMENT_MAX:
        errors["comment"] = f"Keep your comment to {COMMENT_MAX:,} characters (this one has {len(comment):,})."
    clean["comment"] = comment or None
    name = " ".join((data.get("author_name") or "").replace("\x00", "").split())
    if len(name) > NAME_MAX:
        errors["author_name"] = f"Use at most {NAME_MAX} characters for your name."
    clean["author_name"] = name or default_author_name(customer)
    if errors:
        raise ValidationFailed(errors)
    return clean


def get_review_for_booking(booking: Booking) -> Review | None:
    return db.session.scalar(
        db.select(Review).where(Review.tenant_id == booking.tenant_id, Review.booking_id == booking.id)
    )


def can_edit(review: Review | None, *, now: datetime) -> bool:
    """A customer may change their review for EDIT_WINDOW after first posting it."""
    return review is None or now - review.created_at <= EDIT_WINDOW


def edit_deadline(review: Review) -> datetime:
    return review.created_at + EDIT_WINDOW


def submit_review(booking: Booking, data: Mapping, *, now: datetime) -> Review:
    """Post or change the review of a finished booking. The owner's reply is kept on an edit."""
    if booking.status != "completed":
        raise NotReviewable()
    # One review per booking: lock the booking so two tabs posting at once make one row.
    db.session.execute(
        db.select(Booking.id).where(Booking.tenant_id == booking.tenant_id, Booking.id == booking.id).with_for_update()
    )
    review = get_review_for_booking(booking)
    if review is not None and not can_edit(review, now=now):
        raise ReviewLocked(
            f"Reviews can be changed for {EDIT_WINDOW.days} days after posting, so this one stands as it is."
        )
    clean = clean_review(data, customer=booking.customer)
    if review is None:
        review = Review(
            tenant_id=booking.tenant_id,
            booking_id=booking.id,
            customer_id=booking.customer_id,
            created_at=now,
            updated_at=now,
            **clean,
        )
        db.session.add(review)
    else:
        for key, value in clean.items():
            setattr(review, key, value)
        review.updated_at = now
    db.session.flush()
    return review


# The owner ---------------------------------------------------------------------------------------------


def get_review(tenant_id: uuid.UUID, review_id: uuid.UUID) -> Review:
    review = db.session.get(Review, (tenant_id, review_id))
    if review is None:
        raise NotFound("No such review.")
    return review


def reply(review: Review, text: str, *, actor_id: uuid.UUID, now: datetime) -> Review:
    """Add or change the business's public reply to a review."""
    body = (text or "").replace("\x00", "").replace("\r\n", "\n").strip()
    if not body:
        raise ValidationFailed({"reply": "Write a reply first."})
    if len(body) > REPLY_MAX:
        raise ValidationFailed({"reply": f"Keep your reply to {REPLY_MAX:,} characters (this one has {len(body):,})."})
    review.reply = body
    review.replied_at = now
    review.replied_by = actor_id
    db.session.flush()
    return review


def remove_reply(review: Review) -> Review:
    review.reply = review.replied_at = review.replied_by = None
    db.session.flush()
    return review


def clean_google_review_url(raw: str) -> str | None:
    """An https address for "review us on Google", or None to clear it; ValidationFailed otherwise."""
    url = (raw or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() == "http":
        raise ValidationFailed({"google_review_url": "Use the secure address: it starts with https://, not http://."})
    if parts.scheme.lower() != "https":
        raise ValidationFailed({"google_review_url": "Paste the full address, starting with https://."})
    if any(c.isspace() or ord(c) < 32 for c in url) or len(url) > GOOGLE_URL_MAX:
        message = f"That doesn't look like a web address (no spaces, at most {GOOGLE_URL_MAX} characters)."
        raise ValidationFailed({"google_review_url": message})
    if "." not in (parts.hostname or "") or len(url) < 12 or parts.username or parts.password:
        raise ValidationFailed({"google_review_url": "That doesn't look like a web address, like https://g.page/r/…"})
    return "https://" + url[len("https://") :]


def set_google_review_url(tenant, raw: str) -> str | None:
    tenant.google_review_url = clean_google_review_url(raw)
    db.session.flush()
    return tenant.google_review_url


# What the site and the dashboard show ---------------------------------------------------------------


@dataclass(frozen=True)
class ReviewStats:
    count: int
    average: Decimal | None  # one decimal, half up
    quality: Decimal | None
    punctuality: Decimal | None
    value: Decimal | None
    needs_reply: int
    low: int  # 1–3 stars


def review_stats(tenant_id: uuid.UUID) -> ReviewStats:
    """Count and averages (one decimal) over all of a business's reviews."""

    def avg(col):
        return func.round(func.avg(col), 1)

    row = db.session.execute(
        db.select(
            func.count(),
            avg(Review.rating),
            avg(Review.quality),
            avg(Review.punctuality),
            avg(Review.value),
            func.count().filter(Review.reply.is_(None)),
            func.count().filter(Review.rating <= 3),
        ).where(Review.tenant_id == tenant_id)
    ).one()
    return ReviewStats(*row)


def _filtered(tenant_id: uuid.UUID, show: str):
    stmt = db.select(Review).where(Review.tenant_id == tenant_id)
    if show == "needs_reply":
        stmt = stmt.where(Review.reply.is_(None))
    elif show == "low":
        stmt = stmt.where(Review.rating <= 3)
    return stmt


def page_reviews(
    tenant_id: uuid.UUID, *, page: int = 1, per_page: int = 20, show: str = "all"
) -> tuple[list[Review], int]:
    """One page of reviews, newest first, and how many there are in all (for ``show``)."""
    stmt = _filtered(tenant_id, show if show in FILTERS else "all")
    total = db.session.scalar(db.select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.options(selectinload(Review.booking), selectinload(Review.customer))
        .order_by(Review.created_at.desc(), Review.id)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    return list(rows), total


def recent_reviews(tenant_id: uuid.UUID, limit: int = 5) -> list[Review]:
    return page_reviews(tenant_id, per_page=limit)[0]
