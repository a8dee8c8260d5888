"""Quotes (DESIGN §5a): requests from the booking site with photos, quotes with versions, and
their lines (packages, add-ons or free text; optional items; alternative tiers)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

STATUS_LABELS = {
    "draft": "Draft",
    "sent": "Sent",
    "viewed": "Viewed",
    "accepted": "Accepted",
    "declined": "Declined",
    "expired": "Expired",
    "superseded": "Replaced by a newer version",
}
# The pipeline, in order (superseded versions are history, not pipeline).
PIPELINE = ("draft", "sent", "viewed", "accepted", "declined", "expired")
OPEN = ("sent", "viewed")
LINE_KINDS = {"package": "Package", "addon": "Add-on", "custom": "Custom"}


class QuoteRequest(db.Model):
    __tablename__ = "quote_requests"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "vehicle_id"], ["vehicles.tenant_id", "vehicles.id"]),
        ForeignKeyConstraint(["tenant_id", "address_id"], ["customer_addresses.tenant_id", "customer_addresses.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vehicle_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    address_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    wanted: Mapped[str]
    condition_notes: Mapped[str | None]
    status: Mapped[str] = mapped_column(default="new")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    customer = relationship("Customer", viewonly=True)
    vehicle = relationship("Vehicle", viewonly=True)
    address = relationship("Address", viewonly=True)


class QuoteRequestPhoto(db.Model):
    __tablename__ = "quote_request_photos"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "request_id"], ["quote_requests.tenant_id", "quote_requests.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    key: Mapped[str]
    content_type: Mapped[str]
    size_bytes: Mapped[int | None]
    status: Mapped[str] = mapped_column(default="pending")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Quote(db.Model):
    __tablename__ = "quotes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "request_id"], ["quote_requests.tenant_id", "quote_requests.id"]),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "vehicle_id"], ["vehicles.tenant_id", "vehicles.id"]),
        ForeignKeyConstraint(["tenant_id", "address_id"], ["customer_addresses.tenant_id", "customer_addresses.id"]),
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "superseded_by"], ["quotes.tenant_id", "quotes.id"]),
        ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    number: Mapped[int]
    version: Mapped[int] = mapped_column(default=1)
    request_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vehicle_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    address_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    size_class: Mapped[str]
    status: Mapped[str] = mapped_column(default="draft")
    title: Mapped[str | None]
    notes: Mapped[str | None]
    expires_on: Mapped[date]
    tax_rate_bps: Mapped[int] = mapped_column(default=0)
    discount_cents: Mapped[int] = mapped_column(default=0)
    discount_bps: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str]
    token_version: Mapped[int] = mapped_column(default=1)
    sent_at: Mapped[datetime | None]
    viewed_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    accepted_tier: Mapped[str | None]
    accepted_line_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    accepted_total_cents: Mapped[int | None]
    accepted_deposit_cents: Mapped[int | None]
    declined_at: Mapped[datetime | None]
    decline_reason: Mapped[str | None]
    expired_at: Mapped[datetime | None]
    booking_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    superseded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    customer = relationship("Customer", viewonly=True)
    vehicle = relationship("Vehicle", viewonly=True)
    address = relationship("Address", viewonly=True)
    booking = relationship("Booking", viewonly=True)
    lines: Mapped[list[QuoteLine]] = relationship(
        cascade="all, delete-orphan", order_by="(QuoteLine.position, QuoteLine.name)"
    )

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def label(self) -> str:
        return f"Q-{self.number}" + (f" v{self.version}" if self.version > 1 else "")


class QuoteLine(db.Model):
    __tablename__ = "quote_lines"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "quote_id"], ["quotes.tenant_id", "quotes.id"]),
        ForeignKeyConstraint(["tenant_id", "package_id"], ["packages.tenant_id", "packages.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    quote_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str]
    package_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str]
    description: Mapped[str | None]
    quantity: Mapped[int] = mapped_column(default=1)
    unit_cents: Mapped[int]
    duration_min: Mapped[int] = mapped_column(default=0)
    optional: Mapped[bool] = mapped_column(default=False)
    tier: Mapped[str | None]

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_cents
