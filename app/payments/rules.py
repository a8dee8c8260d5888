"""Deposit rules and platform fees: pure arithmetic on integer cents (DESIGN §4, §6)."""

from __future__ import annotations

import re

from app.errors import ValidationFailed
from tenants.plans import get_plan

# Stripe refuses card charges below 50 minor units in the currencies we serve
# (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
STRIPE_MIN_CENTS = 50

RULE_KINDS = {"percent": "A percentage of the booking", "fixed": "A fixed amount"}


def deposit_for(tenant, package, total_cents: int) -> int:
    """The deposit a customer pays online for a booking worth ``total_cents``: the package's
    own rule if it has one, else the business's. 0 means "no deposit, confirm at once"."""
    if not tenant.deposits_enabled or not tenant.takes_card_payments or total_cents < STRIPE_MIN_CENTS:
        return 0
    kind, value = tenant.deposit_kind, tenant.deposit_value
    if package is not None and package.deposit_kind is not None:
        kind, value = package.deposit_kind, package.deposit_value
    if kind == "none" or not value:
        return 0
    amount = value if kind == "fixed" else (total_cents * value + 99) // 100  # percent rounds up to a cent
    return min(max(amount, STRIPE_MIN_CENTS), total_cents)


def platform_fee(plan_code: str, amount_cents: int) -> int:
    """Fieldday's application fee on a charge, by plan (basis points, rounded down)."""
    return amount_cents * get_plan(plan_code).platform_fee_bps // 10_000


def parse_money(raw: str | None, field: str, *, allow_zero: bool = False) -> int:
    """ "45", "45.5", "$1,045.50" → cents. Never a float on the way."""
    text = (raw or "").strip().replace("$", "").replace(",", "")
    if not text:
        raise ValidationFailed({field: "Enter an amount."})
    match = re.fullmatch(r"(\d{0,9})(?:\.(\d{1,2}))?", text)
    if match is None or not (match.group(1) or match.group(2)):
        raise ValidationFailed({field: "Enter an amount like 45 or 45.50."})
    cents = int(match.group(1) or "0") * 100 + int((match.group(2) or "").ljust(2, "0"))
    if cents > 100_000_000:
        raise ValidationFailed({field: "That amount is too large."})
    if cents == 0 and not allow_zero:
        raise ValidationFailed({field: "Enter an amount above zero."})
    return cents


def parse_rule(kind: str | None, raw: str | None, *, allow_none: bool = False, field: str = "deposit_value"):
    """Validate a deposit rule from a form: returns (kind, value)."""
    kinds = set(RULE_KINDS) | ({"none"} if allow_none else set())
    if kind not in kinds:
        raise ValidationFailed({"deposit_kind": "Choose how the deposit is worked out."})
    if kind == "none":
        return "none", None
    if kind == "percent":
        text = (raw or "").strip().rstrip("%").strip()
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise ValidationFailed({field: "A percentage deposit is a whole number from 1 to 100 %."})
        return "percent", int(text)
    cents = parse_money(raw, field, allow_zero=True)
    if 0 < cents < STRIPE_MIN_CENTS:
        raise ValidationFailed({field: "Card payments start at 0.50: use 0 for no deposit, or 0.50 or more."})
    return "fixed", cents
