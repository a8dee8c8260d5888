"""Quote jobs: hourly, each business with open quotes ending soon expires the overdue ones and
reminds customers whose quote ends within two days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from app.extensions import db
from app.jobs import job
from app.quotes import services


@job("default")
def expire_and_remind(tenant_id: uuid.UUID) -> list[int]:
    from tenants.models import Tenant

    return list(services.expire_and_remind(db.session.get(Tenant, tenant_id), now=datetime.now(UTC)))


def sweep_quotes() -> int:
    """`flask cron`, hourly: businesses with sent quotes ending by the day after tomorrow (UTC,
    plus a day for time zones ahead). Ids only cross tenants here."""
    until = datetime.now(UTC).date() + timedelta(days=services.REMIND_DAYS_BEFORE + 1)
    ids = list(db.session.execute(text("SELECT public.tenants_with_open_quotes(:d)"), {"d": until}).scalars())
    db.session.rollback()
    for tenant_id in ids:
        expire_and_remind.enqueue(tenant_id)
    return len(ids)
