"""``flask billing prices``: the Stripe Products and Prices the Plan page sells, found by lookup key."""

from __future__ import annotations

import click
from flask.cli import AppGroup


@click.group("billing", cls=AppGroup)
def billing_cli():
    """Stripe Billing for the businesses' own Fieldday subscriptions."""


@billing_cli.command("prices")
@click.option("--pro", "pro_cents", default=4900, show_default=True, help="Pro, in cents per month.")
@click.option("--teams", "teams_cents", default=9900, show_default=True, help="Teams, in cents per month.")
@click.option("--currency", default="usd", show_default=True)
def billing_prices(pro_cents: int, teams_cents: int, currency: str):
    """Create the missing monthly Prices (lookup keys fieldday_pro, fieldday_teams). Safe to re-run:
    an existing Price is kept (change a price in Stripe by creating a new one with the lookup key)."""
    import stripe

    from app.billing import services
    from app.errors import FielddayError

    try:
        for line in services.create_missing_prices({"pro": pro_cents, "teams": teams_cents}, currency.lower()):
            click.echo(line)
    except (stripe.StripeError, FielddayError) as exc:
        raise click.ClickException(str(exc)) from None
