from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

SIZE_CLASSES = {
    "sedan": "Car or coupe",
    "suv": "SUV or crossover",
    "truck": "Truck, van or 3-row SUV",
}


SIZE_SHORT = {"sedan": "Car", "suv": "SUV", "truck": "Truck"}


class Customer(db.Model):
    __tablename__ = "customers"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str]
    phone: Mapped[str | None]
    email: Mapped[str | None]
    notes: Mapped[str | None]
    sms_opted_out_at: Mapped[datetime | None]
    # Data rights (app/customers/privacy.py): the person removed; a deletion asked for and when it runs.
    anonymised_at: Mapped[datetime | None]
    deletion_requested_at: Mapped[datetime | None]
    purge_after: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    addresses: Mapped[list[Address]] = relationship(
        back_populates="customer", order_by="Address.created_at", cascade="all, delete-orphan"
    )
    vehicles: Mapped[list[Vehicle]] = relationship(
        back_populates="customer", order_by="Vehicle.created_at", cascade="all, delete-orphan"
    )

    @property
    def reachable(self) -> bool:
        """False once anonymised or while a deletion is pending: no texts, e-mails or new bookings."""
        return self.anonymised_at is None and self.purge_after is None


class Address(db.Model):
    __tablename__ = "customer_addresses"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    label: Mapped[str | None]
    line1: Mapped[str]
    city: Mapped[str | None]
    region: Mapped[str | None]
    postal_code: Mapped[str | None]
    lat: Mapped[float]
    lng: Mapped[float]
    access_notes: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    customer: Mapped[Customer] = relationship(back_populates="addresses", overlaps="vehicles")

    @property
    def one_line(self) -> str:
        return ", ".join(p for p in (self.line1, self.city, self.region, self.postal_code) if p)


class Vehicle(db.Model):
    __tablename__ = "vehicles"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    year: Mapped[int | None]
    make: Mapped[str | None]
    model: Mapped[str | None]
    color: Mapped[str | None]
    plate: Mapped[str | None]
    size_class: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    customer: Mapped[Customer] = relationship(back_populates="vehicles", overlaps="addresses,customer")

    @property
    def label(self) -> str:
        parts = [str(self.year) if self.year else "", self.color or "", self.make or "", self.model or ""]
        text = " ".join(p for p in parts if p).strip()
        return text or SIZE_CLASSES[self.size_class]
