"""Service packages and add-ons, priced and timed by vehicle size."""

from __future__ import annotations

import uuid

from app.catalog.models import Package, PackagePrice
from app.customers.models import SIZE_CLASSES
from app.errors import NotFound, ValidationFailed
from app.extensions import db


def list_packages(*, active_only: bool = False, kind: str | None = None) -> list[Package]:
    stmt = db.select(Package).order_by(Package.kind.desc(), Package.position, Package.name)
    if active_only:
        stmt = stmt.where(Package.active)
    if kind:
        stmt = stmt.where(Package.kind == kind)
    return list(db.session.scalars(stmt))


def get_package(package_id: uuid.UUID) -> Package:
    from tenants.context import current_tenant_id

    package = db.session.get(Package, (current_tenant_id(), package_id))
    if package is None:
        raise NotFound("No such service.")
    return package


def _clean_prices(prices: dict, kind: str = "package") -> dict[str, tuple[int, int]]:
    """{size: {"price_cents": int, "duration_min": int}} → validated; sizes left out are not offered."""
    errors: dict[str, str] = {}
    clean: dict[str, tuple[int, int]] = {}
    if not isinstance(prices, dict) or not prices:
        raise ValidationFailed({"prices": "Give a price and duration for at least one vehicle size."})
    for size, value in prices.items():
        if size not in SIZE_CLASSES:
            errors[f"prices.{size}"] = "Unknown vehicle size."
            continue
        try:
            cents, minutes = int(value["price_cents"]), int(value["duration_min"])
        except (KeyError, TypeError, ValueError):
            errors[f"prices.{size}"] = "Give price_cents and duration_min as whole numbers."
            continue
        if not 0 <= cents <= 10_000_000:
            errors[f"prices.{size}"] = "The price must be between 0 and 100,000.00."
        elif not 0 <= minutes <= 1440 or minutes % 5:
            errors[f"prices.{size}"] = "The duration must be 0–1440 minutes, in steps of 5."
        elif kind == "package" and minutes < 5:
            errors[f"prices.{size}"] = "A package takes time: give at least 5 minutes."
        else:
            clean[size] = (cents, minutes)
    if errors:
        raise ValidationFailed(errors)
    return clean


def create_package(
    tenant_id: uuid.UUID,
    *,
    name: str,
    kind: str = "package",
    description: str | None = None,
    prices: dict,
    position: int = 0,
    active: bool = True,
) -> Package:
    name = " ".join((name or "").split())
    if not name or len(name) > 120:
        raise ValidationFailed({"name": "Give the service a name (up to 120 characters)."})
    if kind not in ("package", "addon"):
        raise ValidationFailed({"kind": "A service is a package or an add-on."})
    clean = _clean_prices(prices, kind)
    package = Package(
        tenant_id=tenant_id,
        name=name,
        kind=kind,
        description=(description or "").strip() or None,
        position=position,
        active=active,
    )
    package.prices = [
        PackagePrice(tenant_id=tenant_id, size_class=s, price_cents=c, duration_min=m) for s, (c, m) in clean.items()
    ]
    db.session.add(package)
    db.session.flush()
    return package


def update_package(
    package: Package,
    *,
    name: str | None = None,
    description: str | None = None,
    prices: dict | None = None,
    active: bool | None = None,
    position: int | None = None,
) -> Package:
    if name is not None:
        name = " ".join(name.split())
        if not name or len(name) > 120:
            raise ValidationFailed({"name": "Give the service a name (up to 120 characters)."})
        package.name = name
    if description is not None:
        package.description = description.strip() or None
    if active is not None:
        package.active = bool(active)
    if position is not None:
        package.position = int(position)
    if prices is not None:
        clean = _clean_prices(prices, package.kind)
        package.prices.clear()
        db.session.flush()
        package.prices = [
            PackagePrice(tenant_id=package.tenant_id, size_class=s, price_cents=c, duration_min=m)
            for s, (c, m) in clean.items()
        ]
    db.session.flush()
    return package


def format_money(cents: int, currency: str = "USD") -> str:
    symbol = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "GBP": "£", "EUR": "€"}.get(currency, "")
    whole, rest = divmod(abs(cents), 100)
    text = f"{symbol}{whole:,}" + (f".{rest:02d}" if rest else "")
    return ("-" if cents < 0 else "") + text
