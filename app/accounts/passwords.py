"""argon2id password hashing (RELIABILITY §7) and a password-strength check."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

_hashers: dict[str, PasswordHasher] = {
    # RFC 9106 low-memory profile: argon2id, t=3, 64 MiB, p=4.
    "default": PasswordHasher(),
    # Tests only: the same algorithm at a cost that keeps the suite quick.
    "fast": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
}

COMMON = frozenset(
    """
    password password1 password123 12345678 123456789 1234567890 qwerty123 qwertyuiop
    iloveyou11 letmein123 welcome123 admin12345 changeme123 passw0rd123 football123
    monkey1234 sunshine12 princess12 abc123abc1 11111111111 0000000000 detailing1
    carwash123 fieldday123
    """.split()
)

MIN_LENGTH = 10


def _hasher() -> PasswordHasher:
    return _hashers[current_app.config.get("PASSWORD_HASH_PROFILE", "default")]


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why ``password`` is too weak, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > 256:
        return "Use at most 256 characters."
    lowered = password.lower()
    if lowered in COMMON or len(set(password)) < 4:
        return "That password is too easy to guess. Try a short phrase."
    local = email.split("@")[0].lower()
    if (local and len(local) >= 4 and local in lowered) or (
        name and len(name) >= 4 and name.lower().replace(" ", "") in lowered
    ):
        return "Don't use your name or e-mail in your password."
    return None
