"""The platform staff's area (docs/platform-and-billing.md): their own audit log, finding a business,
one business's plan and usage as counts, and plan changes.

Reads go through SECURITY DEFINER functions (migration 0012) that answer only when the actor is an
active platform admin, and return names, plans, dates and counts: never a customer, booking or team
member row. A plan change is the one write into a business, made inside that business's tenant
context so its own audit log gets the entry too.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text

from app.audit import services as audit
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.plans import PLANS

ACCESS = "page.access"  # the action of a page view or form post; every other action is a change
REASON_MAX = 500


@dataclass(frozen=True)
class Actor:
    """A platform admin (an account in some business) and where the request came from."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    ip: str | None = None


@dataclass(frozen=True)
class AuditRow:
    id: uuid.UUID
    created_at: datetime
    actor_email: str
    action: str
    target_tenant_id: uuid.UUID | None
    target_name: str | None
    detail: dict
    ip: str | None


@dataclass(frozen=True)
class TenantRow:
    id: uuid.UUID
    subdomain: str
    name: str
    plan: str
    subscription_status: str
    created_at: datetime
    owner_email: str | None


@dataclass(frozen=True)
class TenantSummary:
    id: uuid.UUID
    subdomain: str
    name: str
    plan: str
    time_zone: str
    created_at: datetime
    owner_email: str | None
    subscription_status: str
    subscription_period_end: datetime | None
    subscription_cancel_at_period_end: bool
    billing_customer_id: str | None
    subscription_id: str | None
    technicians: int
    customers: int
    bookings_this_month: int


WRITE = text("SELECT public.platform_audit_write(:t, :u, :action, :target, CAST(:detail AS jsonb), CAST(:ip AS inet))")


def _params(actor: Actor, action: str, target: uuid.UUID | None, detail: dict | None) -> dict:
    return {
        "t": actor.tenant_id,
        "u": actor.user_id,
        "action": action,
        "target": target,
        "detail": json.dumps(detail or {}, default=str),
        "ip": actor.ip,
    }


def record(actor: Actor, action: str, *, target: uuid.UUID | None = None, detail: dict | None = None) -> uuid.UUID:
    """Append a change to the platform log in the caller's transaction (it commits with the change)."""
    return db.session.execute(WRITE, _params(actor, action, target, detail)).scalar_one()


def record_access(actor: Actor, *, target: uuid.UUID | None, detail: dict) -> uuid.UUID:
    """Append a page access in its own transaction: it stays even when the request's work rolls back."""
    with db.engine.begin() as conn:
        return conn.execute(WRITE, _params(actor, ACCESS, target, detail)).scalar_one()


def recent(
    actor: Actor, *, target: uuid.UUID | None = None, changes_only: bool = False, limit: int = 200
) -> list[AuditRow]:
    rows = db.session.execute(
        text("SELECT * FROM public.platform_audit_recent(:t, :u, :target, :changes, :limit)"),
        {"t": actor.tenant_id, "u": actor.user_id, "target": target, "changes": changes_only, "limit": limit},
    )
    return [AuditRow(**{**row._mapping, "ip": str(row.ip) if row.ip else None}) for row in rows]


def find_tenants(actor: Actor, query: str, *, limit: int = 50) -> list[TenantRow]:
    """Businesses whose name, subdomain or owner's e-mail contains ``query`` (any case); newest first.
    An empty query lists the newest."""
    rows = db.session.execute(
        text("SELECT * FROM public.platform_find_tenants(:t, :u, :q, :limit)"),
        {"t": actor.tenant_id, "u": actor.user_id, "q": (query or "")[:200], "limit": limit},
    )
    return [TenantRow(**row._mapping) for row in rows]


def tenant_summary(actor: Actor, tenant_id: uuid.UUID) -> TenantSummary | None:
    row = db.session.execute(
        text("SELECT * FROM public.platform_tenant_summary(:t, :u, :id)"),
        {"t": actor.tenant_id, "u": actor.user_id, "id": tenant_id},
    ).first()
    return TenantSummary(**row._mapping) if row else None


@dataclass(frozen=True)
class PlanChange:
    old_plan: str
    new_plan: str
    billing_note: str


def change_plan(actor: Actor, tenant_id: uuid.UUID, plan: str, reason: str, *, request_key: str) -> PlanChange:
    """Set a business's plan (a live Stripe subscription follows), with a reason. Written to the
    platform log and to the business's own audit log, in one transaction. Flushes; the caller commits."""
    from app.billing import services as billing

    plan, reason = (plan or "").strip(), " ".join((reason or "").split())
    errors = {}
    if plan not in PLANS:
        errors["plan"] = "Choose a plan."
    if len(reason) < 3:
        errors["reason"] = "Say why (a support ticket, an agreement, a correction)."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"Keep the reason under {REASON_MAX} characters."
    if errors:
        raise ValidationFailed(errors)
    with tenant_context(tenant_id, db.session):
        tenant = db.session.get(Tenant, tenant_id, with_for_update=True, populate_existing=True)
        if tenant is None:
            raise NotFound()
        old = tenant.plan
        if old == plan:
            raise ValidationFailed({"plan": f"This business is already on {PLANS[plan].name}."})
        note = billing.platform_plan_change(tenant, plan, request_key=request_key)
        tenant.plan = plan
        audit.record(
            tenant.id,
            "plan.changed_by_platform",
            subject_type="tenant",
            subject_id=tenant.id,
            detail={"from": old, "to": plan, "reason": reason, "by": "Fieldday support"},
        )
        db.session.flush()
    record(
        actor,
        "tenant.plan_changed",
        target=tenant_id,
        detail={"from": old, "to": plan, "reason": reason, "billing": note},
    )
    return PlanChange(old, plan, note)
