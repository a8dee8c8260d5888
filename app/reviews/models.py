from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

SUB_RATINGS = {"quality": "Quality", "punctuality": "Punctuality", "value": "Value"}


class Review(db.Model):
    """A customer's review of one finished booking (one per booking, editable for a while through
    the link we texted them). The owner's reply lives on the same row and survives their edits."""

    __tablename__ = "reviews"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"]),
        ForeignKeyConstraint(["tenant_id", "replied_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    rating: Mapped[int]
    quality: Mapped[int | None]
    punctuality: Mapped[int | None]
    value: Mapped[int | None]
    comment: Mapped[str | None]
    author_name: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    reply: Mapped[str | None]
    replied_at: Mapped[datetime | None]
    replied_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    booking = relationship("Booking", viewonly=True)
    customer = relationship("Customer", viewonly=True)

    @property
    def sub_ratings(self) -> list[tuple[str, int]]:
        """The sub-ratings the customer gave, as (label, stars)."""
        return [(label, getattr(self, key)) for key, label in SUB_RATINGS.items() if getattr(self, key)]

    @property
    def edited(self) -> bool:
        return self.updated_at is not None and self.created_at is not None and self.updated_at > self.created_at
