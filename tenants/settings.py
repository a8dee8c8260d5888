"""A tenant's business details and branding."""

from __future__ import annotations

import re
import uuid

from flask import Response, abort

from app.audit import services as audit
from app.errors import ValidationFailed
from app.extensions import db
from app.media import storage
from tenants.models import Tenant
from tenants.provisioning import CURRENCIES, time_zones

HEX = re.compile(r"^#[0-9a-f]{6}$")
MAX_LOGO_BYTES = 1_000_000
FIELDS = ("name", "tagline", "contact_phone", "contact_email", "time_zone", "currency", "brand_color")


def validate_settings(data) -> tuple[dict, dict[str, str]]:
    errors: dict[str, str] = {}
    clean: dict = {}
    name = " ".join((data.get("name") or "").split())
    if not name:
        errors["name"] = "Enter your business name."
    elif len(name) > 120:
        errors["name"] = "Use at most 120 characters."
    clean["name"] = name
    tagline = " ".join((data.get("tagline") or "").split())
    if len(tagline) > 160:
        errors["tagline"] = "Keep the tagline under 160 characters."
    clean["tagline"] = tagline or None
    phone = (data.get("contact_phone") or "").strip()
    if phone and not re.fullmatch(r"[+0-9 ()\-.]{7,25}", phone):
        errors["contact_phone"] = "Enter a phone number, like +1 512 555 0100."
    clean["contact_phone"] = phone or None
    email = (data.get("contact_email") or "").strip()
    if email:
        from app.accounts.services import normalise_email

        try:
            email = normalise_email(email)
        except ValidationFailed:
            errors["contact_email"] = "Enter a valid e-mail address."
    clean["contact_email"] = email or None
    tz = data.get("time_zone") or ""
    if tz not in time_zones():
        errors["time_zone"] = "Choose your time zone from the list."
    clean["time_zone"] = tz
    currency = data.get("currency") or ""
    if currency not in CURRENCIES:
        errors["currency"] = "Choose a currency from the list."
    clean["currency"] = currency
    color = (data.get("brand_color") or "").strip().lower()
    if not HEX.match(color):
        errors["brand_color"] = "Pick a colour (a hex value like #0f766e)."
    clean["brand_color"] = color
    return clean, errors


def update_settings(tenant: Tenant, data, *, actor_id: uuid.UUID) -> Tenant:
    """Update business details and branding; all fields or none."""
    clean, errors = validate_settings(data)
    if errors:
        raise ValidationFailed(errors)
    changed = {k: v for k, v in clean.items() if getattr(tenant, k) != v}
    for key, value in changed.items():
        setattr(tenant, key, value)
    if changed:
        audit.record(
            tenant.id,
            "tenant.settings_changed",
            actor_id=actor_id,
            subject_type="tenant",
            subject_id=tenant.id,
            detail={"fields": sorted(changed)},
        )
    db.session.flush()
    return tenant


def _sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def set_logo(tenant: Tenant, upload, *, actor_id: uuid.UUID) -> str:
    """Store a PNG, JPEG or WebP logo under the tenant's prefix in object storage."""
    if upload is None or not upload.filename:
        raise ValidationFailed({"logo": "Choose an image file to upload."})
    body = upload.read(MAX_LOGO_BYTES + 1)
    if len(body) > MAX_LOGO_BYTES:
        raise ValidationFailed({"logo": "That image is over 1 MB. Please use a smaller one."})
    content_type = _sniff_image(body[:16])
    if content_type is None:
        raise ValidationFailed({"logo": "Upload a PNG, JPEG or WebP image."})
    key = storage.tenant_key(tenant.id, "branding", storage.IMAGE_TYPES[content_type])
    storage.put_object(key, body, content_type)
    old = tenant.logo_key
    tenant.logo_key, tenant.logo_content_type = key, content_type
    audit.record(tenant.id, "tenant.logo_changed", actor_id=actor_id, subject_type="tenant", subject_id=tenant.id)
    db.session.flush()
    if old:
        try:
            storage.delete_object(old)
        except Exception:  # noqa: BLE001 - an orphan is harmless; a failed save is not
            pass
    return key


def remove_logo(tenant: Tenant, *, actor_id: uuid.UUID) -> None:
    if tenant.logo_key:
        tenant.logo_key = tenant.logo_content_type = None
        audit.record(tenant.id, "tenant.logo_removed", actor_id=actor_id, subject_type="tenant", subject_id=tenant.id)
        db.session.flush()


def logo_response(tenant: Tenant) -> Response:
    if not tenant.logo_key or not tenant.logo_key.startswith(f"tenants/{tenant.id}/"):
        abort(404)
    body = storage.get_object(tenant.logo_key)
    response = Response(body, mimetype=tenant.logo_content_type or "application/octet-stream")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
