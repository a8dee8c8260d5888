"""API keys and the per-business API allowance (DESIGN §5b; docs/api-and-webhooks.md).

A key is ``fd_live_<prefix>_<secret>``: 8 characters to recognise it by and 43 base-62 characters
(256 random bits). Only the SHA-256 of the whole key is stored. A slow password hash (argon2) buys
nothing here: it slows guessing of low-entropy human passwords, and 2^256 keys can't be guessed at any
speed. A fast, unsalted hash also lets the database find the key by an index lookup on every request,
instead of spending ~50 ms of CPU per API call (which would itself be a denial-of-service lever).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import string
import uuid
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import text

from app.apikeys.models import ApiKey
from app.audit import services as audit
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from tenants.models import Tenant
from tenants.plans import get_plan

log = logging.getLogger(__name__)

ALPHABET = string.ascii_letters + string.digits
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_LEN = 43  # 43 × log2(62) ≈ 256 bits
KEY_RE = re.compile(r"^fd_live_([a-z0-9]{8})_([A-Za-z0-9]{43})$")
SCOPE_CHOICES = {"read": ["read"], "read_write": ["read", "write"]}
# last_used_at is a hint for people, not an audit trail: one write a minute per key at most.
LAST_USED_EVERY = timedelta(minutes=1)

# Flask-Limiter bucket shared by every /api/v1 route, keyed by the business (app/web/api.py).
RATE_SCOPE = "api"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _generate() -> tuple[str, str]:
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(8))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LEN))
    return prefix, f"fd_live_{prefix}_{secret}"


def create_key(tenant_id: uuid.UUID, *, name: str, scopes: str, actor_id: uuid.UUID | None) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which exists nowhere else after this call."""
    name = " ".join(str(name or "").split())
    errors = {}
    if not name:
        errors["name"] = "Name the key after what uses it, like “Zapier” or “Website”."
    elif len(name) > 80:
        errors["name"] = "Keep the name under 80 characters."
    if scopes not in SCOPE_CHOICES:
        errors["scopes"] = "Choose what the key may do."
    if errors:
        raise ValidationFailed(errors)
    prefix, secret = _generate()
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(secret),
        scopes=SCOPE_CHOICES[scopes],
        created_by=actor_id,
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        tenant_id,
        "api_key.created",
        actor_id=actor_id,
        subject_type="api_key",
        subject_id=key.id,
        detail={"name": name, "prefix": prefix, "scopes": key.scopes},
    )
    return key, secret


def list_keys() -> list[ApiKey]:
    """The business's keys, live ones first, newest first."""
    return list(
        db.session.scalars(db.select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc()))
    )


def get_key(key_id: uuid.UUID, *, for_update: bool = False) -> ApiKey:
    from tenants.context import current_tenant_id

    stmt = db.select(ApiKey).where(ApiKey.tenant_id == current_tenant_id(), ApiKey.id == key_id)
    if for_update:
        stmt = stmt.with_for_update()
    key = db.session.scalar(stmt)
    if key is None:
        raise NotFound("No such API key.")
    return key


def revoke_key(key: ApiKey, *, actor_id: uuid.UUID | None, now: datetime) -> bool:
    """Revoke at once (the next request with it gets 401); False if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at, key.revoked_by = now, actor_id
    db.session.flush()
    audit.record(
        key.tenant_id,
        "api_key.revoked",
        actor_id=actor_id,
        subject_type="api_key",
        subject_id=key.id,
        detail={"name": key.name, "prefix": key.prefix},
    )
    return True


def find_key(presented: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant id, key id) of the live key presented, before any tenant context exists: the one
    cross-tenant read, through the narrow SECURITY DEFINER function. None for a malformed, unknown or
    revoked key. The hash is compared by the database's index, so timing reveals nothing about it."""
    if not KEY_RE.match(presented or ""):
        return None
    row = db.session.execute(
        text("SELECT tenant_id, key_id FROM public.tenant_for_api_key(:h)"), {"h": hash_key(presented)}
    ).first()
    return (row.tenant_id, row.key_id) if row else None


def mark_used(key: ApiKey, *, now: datetime) -> bool:
    """Record use at most once a minute per key; True if the row changed (the caller commits)."""
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_EVERY:
        return False
    key.last_used_at = now
    db.session.flush()
    return True


# The hourly allowance ------------------------------------------------------------------------------


def hourly_allowance(tenant: Tenant) -> int:
    return get_plan(tenant.plan).api_requests_per_hour


def limit_string(tenant: Tenant) -> str:
    return f"{hourly_allowance(tenant)} per hour"


def api_requests_this_hour(tenant: Tenant) -> int:
    """Requests this business made to /api/v1 in the current hourly window (sessions and keys together),
    read from the limiter's own counter. 0 if the counter can't be read (Redis down: the limiter then
    counts per process in memory, see docs/api-and-webhooks.md)."""
    from limits import parse

    from app.extensions import limiter

    item = parse(limit_string(tenant))
    args = [str(tenant.id), RATE_SCOPE]
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX")
    if prefix:
        args.insert(0, prefix)
    try:
        _reset, remaining = limiter.limiter.get_window_stats(item, *args)
    except Exception:  # noqa: BLE001 - a usage bar must never break a page
        log.warning("API usage for %s could not be read", tenant.id)
        return 0
    return max(0, item.amount - remaining)
