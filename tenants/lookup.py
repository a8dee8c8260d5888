"""Narrow, named cross-tenant lookups (DESIGN §3). Each calls one SECURITY DEFINER
function that returns the least it can; nothing else in the code reads across tenants."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text

from app.extensions import db


def tenant_id_for_subdomain(subdomain: str) -> uuid.UUID | None:
    if not subdomain:
        return None
    return db.session.execute(text("SELECT public.tenant_id_for_subdomain(:s)"), {"s": subdomain}).scalar()


@dataclass(frozen=True)
class LoginAccount:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    subdomain: str
    business_name: str


def login_accounts(email: str) -> list[LoginAccount]:
    """The active accounts (one per business) that use ``email``."""
    if not email:
        return []
    rows = db.session.execute(
        text("SELECT tenant_id, user_id, subdomain, business_name FROM public.login_accounts(:e)"),
        {"e": email},
    )
    return [LoginAccount(*row) for row in rows]
