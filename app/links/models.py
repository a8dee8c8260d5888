from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class ShortLink(db.Model):
    """``/l/<code>`` on the business's booking site, standing for ``target`` (a path and query on that
    same site, never a URL) until ``expires_at``."""

    __tablename__ = "short_links"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    code: Mapped[str] = mapped_column(primary_key=True)
    target: Mapped[str]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
