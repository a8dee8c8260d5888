from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db

PAYMENT_STATUS_LABELS = {
    "unpaid": "Unpaid",
    "partly_paid": "Partly paid",
    "paid": "Paid",
    "action_required": "Card needs authentication",
    "failed": "Card declined",
    "refunded": "Refunded",
}
METHOD_LABELS = {"card": "Card", "cash": "Cash", "check": "Check"}
KIND_LABELS = {"deposit": "Deposit", "balance": "Balance"}
STATUS_LABELS = {
    "pending": "Pending",
    "succeeded": "Paid",
    "action_required": "Needs authentication",
    "failed": "Failed",
    "canceled": "Not completed",
}


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "recorded_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str]
    method: Mapped[str]
    status: Mapped[str]
    amount_cents: Mapped[int]
    tip_cents: Mapped[int] = mapped_column(default=0)
    refunded_cents: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str]
    application_fee_cents: Mapped[int] = mapped_column(default=0)
    attempt: Mapped[int] = mapped_column(default=1)
    stripe_account_id: Mapped[str | None]
    stripe_checkout_session_id: Mapped[str | None]
    checkout_url: Mapped[str | None]
    stripe_payment_intent_id: Mapped[str | None]
    stripe_customer_id: Mapped[str | None]
    stripe_payment_method_id: Mapped[str | None]
    card_brand: Mapped[str | None]
    card_last4: Mapped[str | None]
    failure_code: Mapped[str | None]
    failure_message: Mapped[str | None]
    note: Mapped[str | None]
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    customer_notified_at: Mapped[datetime | None]
    receipt_sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    paid_at: Mapped[datetime | None]

    booking = relationship("Booking", viewonly=True)
    refunds: Mapped[list[Refund]] = relationship(viewonly=True, order_by="Refund.created_at")

    @property
    def total_cents(self) -> int:
        return self.amount_cents + self.tip_cents

    @property
    def refundable_cents(self) -> int:
        return self.total_cents - self.refunded_cents if self.status == "succeeded" else 0

    @property
    def status_label(self) -> str:
        if self.status == "succeeded" and self.refunded_cents:
            return "Refunded" if self.refunded_cents >= self.total_cents else "Partly refunded"
        return STATUS_LABELS[self.status]

    @property
    def method_label(self) -> str:
        if self.method == "card" and self.card_last4:
            return f"{(self.card_brand or 'Card').title()} •••• {self.card_last4}"
        return METHOD_LABELS[self.method]


class Refund(db.Model):
    __tablename__ = "refunds"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "payment_id"], ["payments.tenant_id", "payments.id"]),
        ForeignKeyConstraint(["tenant_id", "created_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    payment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    amount_cents: Mapped[int]
    status: Mapped[str]
    reason: Mapped[str | None]
    request_key: Mapped[str]
    stripe_refund_id: Mapped[str | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class StripeEvent(db.Model):
    __tablename__ = "stripe_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[str] = mapped_column(primary_key=True)
    type: Mapped[str]
    account: Mapped[str]
    payload: Mapped[dict] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None]
