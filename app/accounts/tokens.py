"""Signed, expiring links for password reset and invitations (itsdangerous).

A reset token carries a fingerprint of the current password hash, so it stops
working the moment the password changes: each link works once.
"""

from __future__ import annotations

import hashlib
import uuid

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.accounts.errors import TokenInvalid


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:20]


def make_reset_token(tenant_id: uuid.UUID, user_id: uuid.UUID, password_hash: str) -> str:
    return _serializer("password-reset").dumps(
        {"t": str(tenant_id), "u": str(user_id), "f": _fingerprint(password_hash)}
    )


def read_reset_token(token: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    max_age = current_app.config["PASSWORD_RESET_MAX_AGE_S"]
    try:
        data = _serializer("password-reset").loads(token, max_age=max_age)
        return uuid.UUID(data["t"]), uuid.UUID(data["u"]), data["f"]
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid() from None


def reset_fingerprint_matches(password_hash: str, fingerprint: str) -> bool:
    return _fingerprint(password_hash) == fingerprint


def make_invite_token(tenant_id: uuid.UUID, invitation_id: uuid.UUID) -> str:
    return _serializer("invitation").dumps({"t": str(tenant_id), "i": str(invitation_id)})


def read_invite_token(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    max_age = current_app.config["INVITE_MAX_AGE_S"]
    try:
        data = _serializer("invitation").loads(token, max_age=max_age)
        return uuid.UUID(data["t"]), uuid.UUID(data["i"])
    except (BadSignature, KeyError, ValueError, TypeError):
        raise TokenInvalid() from None
