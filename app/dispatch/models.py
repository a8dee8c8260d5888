from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class RoutePlan(db.Model):
    """One optimisation of a business's day: the order as booked, the solver's proposal, and
    whether the owner approved it (which locks each technician's order)."""

    __tablename__ = "route_plans"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "requested_by"], ["users.tenant_id", "users.id"]),
        ForeignKeyConstraint(["tenant_id", "approved_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    day: Mapped[date]
    status: Mapped[str] = mapped_column(default="queued")
    requested_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    requested_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
    approved_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    approved_at: Mapped[datetime | None]
    current: Mapped[dict | None] = mapped_column(JSONB)
    proposed: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None]
