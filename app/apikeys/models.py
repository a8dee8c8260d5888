"""API keys: the secret is shown once at creation; only its SHA-256 and a short prefix are kept."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

SCOPE_LABELS = {"read": "Read", "write": "Write"}


class ApiKey(db.Model):
    __tablename__ = "api_keys"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"]),
        ForeignKeyConstraint(["tenant_id", "revoked_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str]
    prefix: Mapped[str]
    key_hash: Mapped[str]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(db.Text))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def display(self) -> str:
        """What people recognise a key by (the secret part is never shown again)."""
        return f"fd_live_{self.prefix}_…"

    @property
    def scope_label(self) -> str:
        return "Read and write" if "write" in self.scopes else "Read only"

    def __repr__(self) -> str:
        return f"<ApiKey {self.prefix}>"
