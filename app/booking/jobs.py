"""Booking jobs: holds that expire and free their slot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.booking import services
from app.jobs import job


@job("default")
def expire_hold(tenant_id: uuid.UUID, booking_id: str) -> bool:
    return services.expire_hold(uuid.UUID(booking_id), now=datetime.now(UTC))
