"""Twilio stand-in fixtures (RELIABILITY.md §5): one server per test session, forgotten state per test.

Load with ``pytest_plugins = ["tests.fixtures_twilio"]`` (or ``-p tests.fixtures_twilio``). ``twilio_fake`` owns
``TWILIO_NUMBER`` on the default account; tests add tenants' numbers with ``twilio_fake.add_number(...)`` and set
``webhook_base``/``webhook_host`` to reach a live app.
"""

from __future__ import annotations

import pytest

from scripts.standins.twilio_standin import TwilioStandin

TWILIO_ACCOUNT_SID = "AC" + "0" * 32
TWILIO_AUTH_TOKEN = "standin_token"
TWILIO_NUMBER = "+15005550006"


@pytest.fixture(scope="session")
def twilio_standin_server():
    server = TwilioStandin(account_sid=TWILIO_ACCOUNT_SID, auth_token=TWILIO_AUTH_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def twilio_fake(twilio_standin_server):
    """The running stand-in owning only TWILIO_NUMBER: no messages, opt-outs, failures or webhook target."""
    server = twilio_standin_server
    server.webhook_base = server.webhook_host = None
    server.auto_status, server.auto_status_delay = [], 0.0
    server.reset()
    server.add_number(TWILIO_NUMBER)
    yield server
    server.webhook_base = server.webhook_host = None
    server.auto_status = []


@pytest.fixture
def twilio_client(twilio_fake):
    """The official SDK client, pointed at the stand-in the way app code does when TWILIO_API_BASE is set."""
    return twilio_fake.client()
