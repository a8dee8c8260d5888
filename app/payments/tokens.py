"""Links customers open without logging in: pay what is owed, and see a receipt. Signed,
bound to the business and the booking (or payment); salts keep each kind to its own page."""

from __future__ import annotations

import uuid

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.accounts.errors import TokenInvalid

MAX_AGE_S = 400 * 24 * 3600


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def make_pay_token(tenant_id: uuid.UUID, booking_id: uuid.UUID) -> str:
    return _serializer("pay-link").dumps({"t": str(tenant_id), "b": str(booking_id)})


def read_pay_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    return _read("pay-link", token, "b")


def make_receipt_token(tenant_id: uuid.UUID, booking_id: uuid.UUID) -> str:
    return _serializer("receipt").dumps({"t": str(tenant_id), "b": str(booking_id)})


def read_receipt_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    return _read("receipt", token, "b")


def _read(salt: str, token: str, key: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        data = _serializer(salt).loads(token, max_age=MAX_AGE_S)
        return uuid.UUID(data["t"]), uuid.UUID(data[key])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid("This link is invalid or has expired.") from None
