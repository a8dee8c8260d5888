from __future__ import annotations

import uuid

from app.audit.models import AuditEntry
from app.extensions import db


def record(
    tenant_id: uuid.UUID,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    subject_type: str | None = None,
    subject_id: uuid.UUID | None = None,
    detail: dict | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append one audit entry in the caller's transaction."""
    entry = AuditEntry(
        tenant_id=tenant_id,
        actor_id=actor_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=detail or {},
        ip=ip,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def list_recent(limit: int = 50) -> list[AuditEntry]:
    return list(db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.created_at.desc()).limit(limit)))
