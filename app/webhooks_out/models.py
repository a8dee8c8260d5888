"""Outgoing webhook endpoints (the business's URLs) and one row per delivery of an event to one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

EVENT_LABELS = {
    "booking.created": "Booking created",
    "booking.confirmed": "Booking confirmed",
    "booking.rescheduled": "Booking moved",
    "booking.cancelled": "Booking cancelled",
    "booking.completed": "Job completed",
}
EVENTS = tuple(EVENT_LABELS)


class WebhookEndpoint(db.Model):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    url: Mapped[str]
    description: Mapped[str | None]
    events: Mapped[list[str]] = mapped_column(ARRAY(db.Text))
    secret_enc: Mapped[str]
    enabled: Mapped[bool] = mapped_column(default=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None]
    owner_notified_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.url}>"


DELIVERY_STATUS_LABELS = {"pending": "Waiting", "succeeded": "Delivered", "failed": "Failed"}


class WebhookDelivery(db.Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "endpoint_id"], ["webhook_endpoints.tenant_id", "webhook_endpoints.id"]),
        ForeignKeyConstraint(["tenant_id", "resent_from"], ["webhook_deliveries.tenant_id", "webhook_deliveries.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str]
    body: Mapped[str]
    status: Mapped[str] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_status: Mapped[int | None]
    response_excerpt: Mapped[str | None]
    error: Mapped[str | None]
    resent_from: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]

    @property
    def status_label(self) -> str:
        if self.status == "pending" and self.attempts:
            return "Retrying"
        return DELIVERY_STATUS_LABELS[self.status]
