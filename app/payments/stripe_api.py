"""The official Stripe SDK, configured once per app (DESIGN §6, RELIABILITY §3).

``STRIPE_API_BASE`` points it at the project's stand-in in tests and the offline demo; in
production it is empty and the SDK talks to api.stripe.com. Every call on a connected account
goes through :func:`on_account`, so the ``Stripe-Account`` header is never forgotten.
"""

from __future__ import annotations

import logging

import stripe
from flask import current_app

from app.payments.errors import PaymentsUnavailable

# The SDK logs every request at INFO; our own log lines say what matters (never link URLs).
logging.getLogger("stripe").setLevel(logging.WARNING)


def client() -> stripe.StripeClient:
    app = current_app._get_current_object()
    cached = app.extensions.get("stripe_client")
    if cached is not None:
        return cached
    key = app.config["STRIPE_SECRET_KEY"]
    if not key:
        raise PaymentsUnavailable("Card payments aren't set up on this server yet.")
    kwargs: dict = {}
    if base := app.config.get("STRIPE_API_BASE"):
        kwargs["base_addresses"] = {"api": base, "connect": base, "files": base, "meter_events": base}
    made = stripe.StripeClient(
        key,
        max_network_retries=app.config["STRIPE_MAX_NETWORK_RETRIES"],
        http_client=stripe.new_default_http_client(timeout=app.config["STRIPE_TIMEOUT_S"]),
        **kwargs,
    )
    app.extensions["stripe_client"] = made
    return made


def livemode() -> bool:
    key = current_app.config["STRIPE_SECRET_KEY"]
    return key.startswith(("sk_live_", "rk_live_"))


def on_account(account_id: str, idempotency_key: str | None = None) -> dict:
    """Request options for a direct charge on a connected account."""
    options: dict = {"stripe_account": account_id}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options
