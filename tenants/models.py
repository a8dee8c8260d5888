from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    subdomain: Mapped[str]
    name: Mapped[str]
    time_zone: Mapped[str]
    currency: Mapped[str]
    plan: Mapped[str] = mapped_column(default="starter")
    brand_color: Mapped[str] = mapped_column(default="#0f766e")
    tagline: Mapped[str | None]
    contact_phone: Mapped[str | None]
    contact_email: Mapped[str | None]
    logo_key: Mapped[str | None]
    logo_content_type: Mapped[str | None]
    lead_time_min: Mapped[int] = mapped_column(default=120)
    horizon_days: Mapped[int] = mapped_column(default=60)
    buffer_min: Mapped[int] = mapped_column(default=15)
    arrival_window_min: Mapped[int] = mapped_column(default=60)
    slot_step_min: Mapped[int] = mapped_column(default=30)
    hold_min: Mapped[int] = mapped_column(default=15)
    cancel_cutoff_hours: Mapped[int] = mapped_column(default=24)
    max_reschedules: Mapped[int] = mapped_column(default=2)
    deposits_enabled: Mapped[bool] = mapped_column(default=False)
    deposit_kind: Mapped[str] = mapped_column(default="percent")
    deposit_value: Mapped[int] = mapped_column(default=25)
    stripe_account_id: Mapped[str | None]
    stripe_charges_enabled: Mapped[bool] = mapped_column(default=False)
    stripe_details_submitted: Mapped[bool] = mapped_column(default=False)
    stripe_connected_at: Mapped[datetime | None]
    sms_number: Mapped[str | None]
    reminder_hour: Mapped[int] = mapped_column(default=17)
    google_review_url: Mapped[str | None]
    tax_rate_bps: Mapped[int] = mapped_column(default=0)  # default for new quotes (0008)
    # The business's own Fieldday subscription (Stripe Billing on the platform account, 0012).
    billing_customer_id: Mapped[str | None]
    subscription_id: Mapped[str | None]
    subscription_status: Mapped[str] = mapped_column(default="none")
    subscription_period_end: Mapped[datetime | None]
    subscription_cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    subscription_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    @property
    def takes_card_payments(self) -> bool:
        """Connected to Stripe with charges enabled: deposits and card balances can run."""
        return bool(self.stripe_account_id and self.stripe_charges_enabled)

    def __repr__(self) -> str:
        return f"<Tenant {self.subdomain}>"
