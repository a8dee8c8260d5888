"""Tenant provisioning: a business, its owner and sensible defaults, in one transaction."""

from __future__ import annotations

import uuid
import zoneinfo
from functools import lru_cache

from sqlalchemy.exc import IntegrityError

from app.accounts import services as accounts
from app.accounts.models import User
from app.audit import services as audit
from app.errors import ValidationFailed
from app.extensions import db
from tenants.context import activate
from tenants.hosts import subdomain_problem
from tenants.lookup import tenant_id_for_subdomain
from tenants.models import Tenant

# Currencies Stripe settles in that our first markets use; integer minor units each.
CURRENCIES = {
    "USD": "US dollar",
    "CAD": "Canadian dollar",
    "GBP": "Pound sterling",
    "EUR": "Euro",
    "AUD": "Australian dollar",
    "NZD": "New Zealand dollar",
}


@lru_cache(maxsize=1)
def time_zones() -> frozenset[str]:
    return frozenset(
        z
        for z in zoneinfo.available_timezones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )


def validate_business(name: str, subdomain: str, time_zone: str, currency: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not " ".join((name or "").split()):
        errors["business_name"] = "Enter your business name."
    elif len(name) > 120:
        errors["business_name"] = "Use at most 120 characters."
    problem = subdomain_problem(subdomain)
    if problem:
        errors["subdomain"] = problem
    if time_zone not in time_zones():
        errors["time_zone"] = "Choose your time zone from the list."
    if currency not in CURRENCIES:
        errors["currency"] = "Choose a currency from the list."
    return errors


def provision_tenant(
    *,
    business_name: str,
    subdomain: str,
    time_zone: str,
    currency: str,
    owner_email: str,
    owner_name: str,
    password: str,
    plan: str = "starter",
) -> tuple[Tenant, User]:
    """Create a tenant and its owner. Leaves the new tenant active in the session."""
    subdomain = (subdomain or "").strip().lower()
    errors = validate_business(business_name, subdomain, time_zone, currency)
    if "subdomain" not in errors and tenant_id_for_subdomain(subdomain):
        errors["subdomain"] = f"{subdomain} is already taken. Try another."
    # Validate the owner too, so one submit shows every problem at once.
    try:
        accounts.normalise_email(owner_email)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if not " ".join((owner_name or "").split()):
        errors["name"] = "Enter your name."
    from app.accounts.passwords import password_problem

    problem = password_problem(password, email=owner_email or "", name=owner_name or "")
    if problem:
        errors["password"] = problem
    if errors:
        raise ValidationFailed(errors)

    tenant_id = uuid.uuid4()
    activate(tenant_id, db.session)
    tenant = Tenant(
        id=tenant_id,
        subdomain=subdomain,
        name=" ".join(business_name.split()),
        time_zone=time_zone,
        currency=currency,
        plan=plan,
        contact_email=accounts.normalise_email(owner_email),
        tagline="Mobile detailing that comes to you",
    )
    try:
        with db.session.begin_nested():
            db.session.add(tenant)
            db.session.flush()
    except IntegrityError:
        # Lost a race for the same subdomain: same answer as the check above.
        raise ValidationFailed({"subdomain": f"{subdomain} is already taken. Try another."}) from None
    owner = accounts.create_user(tenant_id, email=owner_email, name=owner_name, role="owner", password=password)
    audit.record(
        tenant_id,
        "tenant.created",
        actor_id=owner.id,
        subject_type="tenant",
        subject_id=tenant_id,
        detail={"subdomain": subdomain},
    )
    return tenant, owner


def get_current_tenant(tenant_id: uuid.UUID) -> Tenant | None:
    return db.session.get(Tenant, tenant_id)
