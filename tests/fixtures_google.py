"""Google stand-in fixtures (RELIABILITY.md §4): one server per test session, forgotten state per test.

Load with ``pytest_plugins = ["tests.fixtures_google"]``. ``google_fake`` has one Google account
(``GOOGLE_USER``, primary calendar id = the address); tests add calendars, events and failures on it.
"""

from __future__ import annotations

import pytest

from scripts.standins.google_standin import GoogleStandin

GOOGLE_CLIENT_ID = "fieldday-test.apps.googleusercontent.com"
GOOGLE_CLIENT_SECRET = "standin-secret"
GOOGLE_USER = "detailer@example.com"
FERNET_KEY = "YmFzZTY0LWZlcm5ldC1rZXktZm9yLXRlc3RzLW9ubHk="  # 32 bytes, urlsafe base64: tests only


@pytest.fixture(scope="session")
def google_standin_server():
    server = GoogleStandin(client_id=GOOGLE_CLIENT_ID, client_secret=GOOGLE_CLIENT_SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def google_fake(google_standin_server):
    """The running stand-in with one account and its empty primary calendar; no tokens, channels or failures."""
    server = google_standin_server
    server.webhook_base, server.auto_push = None, False
    server.reset()
    yield server
    server.webhook_base, server.auto_push = None, False
