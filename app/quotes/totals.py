"""A quote's money, worked out in one place (DESIGN §4: integer cents, never floats).

Pure functions: the dashboard builder, the printable page, the customer's page, the accept step
and the pipeline figures all call ``totals``, so the number a customer accepts is the number
they were shown and the number the booking charges.

Rules:
* A line belongs to every tier (``tier`` None) or to one named tier. When a quote has tiers the
  customer picks one; lines of the other tiers don't count.
* An optional line counts only when the customer ticks it.
* The discount is either a fixed amount or a percentage (basis points, half-up to the cent) of
  the subtotal, never more than the subtotal.
* Tax is the tax rate (basis points) of the discounted subtotal, rounded half-up to the cent.
* The deposit follows the business's deposit rules (app/payments/rules.py) on the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class LineLike(Protocol):
    id: Any
    quantity: int
    unit_cents: int
    duration_min: int
    optional: bool
    tier: str | None


@dataclass(frozen=True)
class Totals:
    subtotal_cents: int
    discount_cents: int
    tax_cents: int
    total_cents: int
    duration_min: int
    line_ids: tuple  # the lines that count, in order


def half_up(amount: int, bps: int) -> int:
    """``amount × bps / 10 000`` rounded half-up to a whole cent (both non-negative)."""
    return (amount * bps + 5_000) // 10_000


def tiers(lines: Iterable[LineLike]) -> list[str]:
    """The tier labels in the order they first appear."""
    return list(dict.fromkeys(line.tier for line in lines if line.tier))


def chosen_lines(lines: Sequence[LineLike], tier: str | None, option_ids: Iterable = ()) -> list[LineLike]:
    """The lines that count for ``tier`` with the ticked optional lines ``option_ids``."""
    ticked = {str(i) for i in option_ids}
    return [
        line
        for line in lines
        if (line.tier is None or line.tier == tier) and (not line.optional or str(line.id) in ticked)
    ]


def totals(
    lines: Sequence[LineLike],
    *,
    tier: str | None = None,
    option_ids: Iterable = (),
    discount_cents: int = 0,
    discount_bps: int = 0,
    tax_rate_bps: int = 0,
) -> Totals:
    """Subtotal, discount, tax and total of one choice (tier + ticked optional lines)."""
    if discount_cents < 0 or discount_bps < 0 or tax_rate_bps < 0:
        raise ValueError("discounts and tax rates are never negative")
    counted = chosen_lines(lines, tier, option_ids)
    subtotal = sum(line.quantity * line.unit_cents for line in counted)
    discount = min(subtotal, discount_cents + half_up(subtotal, discount_bps))
    taxable = subtotal - discount
    tax = half_up(taxable, tax_rate_bps)
    return Totals(
        subtotal_cents=subtotal,
        discount_cents=discount,
        tax_cents=tax,
        total_cents=taxable + tax,
        duration_min=sum(line.quantity * line.duration_min for line in counted),
        line_ids=tuple(line.id for line in counted),
    )


def quote_totals(quote, *, tier: str | None = None, option_ids: Iterable = ()) -> Totals:
    """``totals`` with a quote's own discount and tax rate."""
    return totals(
        quote.lines,
        tier=tier,
        option_ids=option_ids,
        discount_cents=quote.discount_cents,
        discount_bps=quote.discount_bps,
        tax_rate_bps=quote.tax_rate_bps,
    )


def tier_totals(quote) -> dict[str | None, Totals]:
    """Each tier's total without optional items (``{None: …}`` when the quote has no tiers)."""
    names = tiers(quote.lines) or [None]
    return {name: quote_totals(quote, tier=name) for name in names}


def deposit(tenant, package, total_cents: int) -> int:
    """The deposit for an accepted quote: the business's rules (or the main package's own)."""
    from app.payments.rules import deposit_for

    return deposit_for(tenant, package, total_cents)
