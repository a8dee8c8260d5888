from __future__ import annotations

import uuid
from datetime import datetime, time

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

ACTIVE_STATUSES = ("pending", "confirmed", "in_progress")
STATUS_LABELS = {
    "pending": "Awaiting deposit",
    "confirmed": "Confirmed",
    "in_progress": "In progress",
    "completed": "Completed",
    "canceled": "Canceled",
    "no_show": "No-show",
    "expired": "Expired",
}
# DESIGN §5: pending → confirmed → in_progress → completed; or canceled, no_show, expired.
TRANSITIONS = {
    "pending": {"confirmed", "canceled", "expired"},
    "confirmed": {"in_progress", "canceled", "no_show"},
    "in_progress": {"completed"},
    "completed": set(),
    "canceled": set(),
    "no_show": set(),
    "expired": set(),
}


class Technician(db.Model):
    __tablename__ = "technicians"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    name: Mapped[str]
    color: Mapped[str] = mapped_column(default="#0f766e")
    home_address: Mapped[str | None]
    home_lat: Mapped[float | None]
    home_lng: Mapped[float | None]
    skills: Mapped[list[str]] = mapped_column(ARRAY(db.Text), default=list)
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    hours: Mapped[list[WorkingHours]] = relationship(
        order_by="(WorkingHours.weekday, WorkingHours.start_local)", cascade="all, delete-orphan"
    )


class WorkingHours(db.Model):
    __tablename__ = "working_hours"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "technician_id"], ["technicians.tenant_id", "technicians.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    technician_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    weekday: Mapped[int]
    start_local: Mapped[time]
    end_local: Mapped[time]


class BusyBlock(db.Model):
    __tablename__ = "busy_blocks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "technician_id"], ["technicians.tenant_id", "technicians.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    technician_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    during = mapped_column(TSTZRANGE, nullable=False)
    source: Mapped[str] = mapped_column(default="manual")
    external_id: Mapped[str | None]
    summary: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Booking(db.Model):
    __tablename__ = "bookings"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "vehicle_id"], ["vehicles.tenant_id", "vehicles.id"]),
        ForeignKeyConstraint(["tenant_id", "address_id"], ["customer_addresses.tenant_id", "customer_addresses.id"]),
        ForeignKeyConstraint(["tenant_id", "technician_id"], ["technicians.tenant_id", "technicians.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    reference: Mapped[str]
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    vehicle_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    address_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    technician_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    during = mapped_column(TSTZRANGE, nullable=False)
    arrival_window_min: Mapped[int] = mapped_column(default=0)
    price_cents: Mapped[int]
    currency: Mapped[str]
    deposit_cents: Mapped[int] = mapped_column(default=0)
    payment_status: Mapped[str] = mapped_column(default="unpaid")
    hold_expires_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(default="site")
    reschedule_count: Mapped[int] = mapped_column(default=0)
    token_version: Mapped[int] = mapped_column(default=1)
    customer_notes: Mapped[str | None]
    on_way_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    eta_at: Mapped[datetime | None]
    eta_texted_for: Mapped[datetime | None]  # the last ETA we texted the customer
    eta_texted_at: Mapped[datetime | None]
    route_position: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    customer = relationship("Customer", viewonly=True)
    vehicle = relationship("Vehicle", viewonly=True)
    address = relationship("Address", viewonly=True)
    technician = relationship("Technician", viewonly=True)
    items: Mapped[list[BookingItem]] = relationship(cascade="all, delete-orphan", order_by="BookingItem.kind.desc()")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class BookingItem(db.Model):
    __tablename__ = "booking_items"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "package_id"], ["packages.tenant_id", "packages.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    package_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str]
    name: Mapped[str]
    price_cents: Mapped[int]
    duration_min: Mapped[int]


class BookingEvent(db.Model):
    __tablename__ = "booking_events"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    actor_type: Mapped[str]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    from_status: Mapped[str | None]
    to_status: Mapped[str]
    detail: Mapped[dict] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
