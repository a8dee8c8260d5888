"""Dispatch jobs: the solver runs here, never in a request (it takes seconds)."""

from __future__ import annotations

import uuid

from app.dispatch import services
from app.jobs import job


@job("default", timeout=300)
def solve_day(tenant_id: uuid.UUID, plan_id: str) -> str:
    plan = services.run_plan(uuid.UUID(plan_id))
    return plan.status if plan is not None else "missing"
