"""Review links: signed, no login, bound to the business and the booking, with their own salt so
no other link (manage, pay, receipt) opens the review page or the reverse."""

from __future__ import annotations

import uuid

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.accounts.errors import TokenInvalid

# Long enough for a late first review and the 60-day edit window after it (docs/reviews.md).
MAX_AGE_S = 180 * 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="review")


def make_review_token(tenant_id: uuid.UUID, booking_id: uuid.UUID) -> str:
    return _serializer().dumps({"t": str(tenant_id), "b": str(booking_id)})


def read_review_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_S)
        return uuid.UUID(data["t"]), uuid.UUID(data["b"])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid("This review link is invalid or has expired.") from None
