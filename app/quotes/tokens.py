"""Customers' quote links: signed (unguessable without the secret), bound to the business, the
quote version and a token version the owner can bump to revoke old links. A quote link carries no
timestamp, so it is the same link every time it is shown (the quote's own expiry date decides
whether it can still be accepted). Request links let a
customer add photos to the request they just sent, for a day."""

from __future__ import annotations

import uuid

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from app.accounts.errors import TokenInvalid

REQUEST_MAX_AGE_S = 24 * 3600


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _quote_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="quote")


def make_quote_token(tenant_id: uuid.UUID, quote_id: uuid.UUID, version: int) -> str:
    return _quote_serializer().dumps({"t": str(tenant_id), "q": str(quote_id), "v": version})


def read_quote_token(token: str) -> tuple[uuid.UUID, uuid.UUID, int]:
    try:
        data = _quote_serializer().loads(token)
        return uuid.UUID(data["t"]), uuid.UUID(data["q"]), int(data["v"])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid("This quote link is invalid.") from None


def make_request_token(tenant_id: uuid.UUID, request_id: uuid.UUID) -> str:
    return _serializer("quote-request").dumps({"t": str(tenant_id), "r": str(request_id)})


def read_request_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        data = _serializer("quote-request").loads(token, max_age=REQUEST_MAX_AGE_S)
        return uuid.UUID(data["t"]), uuid.UUID(data["r"])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid("This link is invalid or has expired.") from None
