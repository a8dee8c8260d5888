from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


class Package(db.Model):
    __tablename__ = "packages"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(default="package")
    name: Mapped[str]
    description: Mapped[str | None]
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    # None: the business's deposit rule; "none", "percent" (1–100) or "fixed" (cents) override it.
    deposit_kind: Mapped[str | None]
    deposit_value: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    prices: Mapped[list[PackagePrice]] = relationship(back_populates="package", cascade="all, delete-orphan")

    def price_for(self, size_class: str) -> PackagePrice | None:
        return next((p for p in self.prices if p.size_class == size_class), None)


class PackagePrice(db.Model):
    __tablename__ = "package_prices"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "package_id"], ["packages.tenant_id", "packages.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    package_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    size_class: Mapped[str] = mapped_column(primary_key=True)
    price_cents: Mapped[int]
    duration_min: Mapped[int]

    package: Mapped[Package] = relationship(back_populates="prices")
