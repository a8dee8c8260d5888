from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

# Delivery states only move forward (W4): a late "sent" never undoes "delivered".
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3, "skipped": 3}


class Message(db.Model):
    """A text (or e-mail) to or from a customer. Outbound rows are the outbox: written in the
    transaction that makes them due, sent by a job, and never twice for one ``dedupe_key``."""

    __tablename__ = "messages"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "sent_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    direction: Mapped[str]
    channel: Mapped[str] = mapped_column(default="sms")
    kind: Mapped[str]
    subject: Mapped[str | None]  # e-mails
    body: Mapped[str]
    to_addr: Mapped[str]
    from_addr: Mapped[str | None]
    status: Mapped[str]
    provider_sid: Mapped[str | None]
    error_code: Mapped[str | None]
    error_message: Mapped[str | None]
    dedupe_key: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(default=0)
    sent_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    status_at: Mapped[datetime | None]


class MessageTemplate(db.Model):
    """An owner's wording of one automatic message (``app.messaging.templating`` has the defaults)."""

    __tablename__ = "message_templates"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "updated_by"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(primary_key=True)
    body: Mapped[str]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
