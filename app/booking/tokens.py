"""Manage-my-booking links: signed, no login, bound to tenant, booking and a version that
the owner can bump to revoke old links."""

from __future__ import annotations

import uuid

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.accounts.errors import TokenInvalid

MAX_AGE_S = 400 * 24 * 3600


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="manage-booking")


def make_manage_token(tenant_id: uuid.UUID, booking_id: uuid.UUID, version: int) -> str:
    return _serializer().dumps({"t": str(tenant_id), "b": str(booking_id), "v": version})


def read_manage_token(token: str) -> tuple[uuid.UUID, uuid.UUID, int]:
    try:
        data = _serializer().loads(token, max_age=MAX_AGE_S)
        return uuid.UUID(data["t"]), uuid.UUID(data["b"]), int(data["v"])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid("This booking link is invalid or has expired.") from None
