"""Stripe stand-in fixtures (RELIABILITY.md §3): one server per test session, forgotten state per test.

Load with ``pytest_plugins = ["tests.fixtures_stripe"]`` (or ``-p tests.fixtures_stripe``).
"""

from __future__ import annotations

import pytest
import stripe

from scripts.standins.stripe_standin import StripeStandin

STRIPE_API_KEY = "sk_test_standin"
STRIPE_WEBHOOK_SECRET = "whsec_standin"
STRIPE_BILLING_WEBHOOK_SECRET = "whsec_billing_standin"  # the platform (Billing) endpoint's own secret


@pytest.fixture(scope="session")
def stripe_standin_server():
    server = StripeStandin(api_key=STRIPE_API_KEY, webhook_secret=STRIPE_WEBHOOK_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_fake(stripe_standin_server):
    """The running stand-in with no objects, requests, events, failures or webhook target."""
    server = stripe_standin_server
    server.reset()
    server.webhook_url = server.webhook_host = None
    server.webhook_secret = STRIPE_WEBHOOK_SECRET
    server.billing_webhook_url, server.billing_webhook_secret = None, STRIPE_BILLING_WEBHOOK_SECRET
    yield server
    server.webhook_url = server.webhook_host = server.billing_webhook_url = None


@pytest.fixture
def stripe_client(stripe_fake):
    url = stripe_fake.url
    return stripe.StripeClient(
        STRIPE_API_KEY, base_addresses={"api": url, "connect": url, "files": url}, max_network_retries=2
    )
