"""The official Google libraries, configured once (DESIGN §7, RELIABILITY §4).

``GOOGLE_API_BASE`` points the OAuth flow, the token and revoke endpoints and the Calendar API at the
project's stand-in in tests and the offline demo; empty means Google. The Calendar client is built from
the discovery document bundled with google-api-python-client (``static_discovery=True``), so nothing is
fetched at start-up. Refresh tokens are Fernet-encrypted at rest with ``FERNET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from app.errors import FielddayError

# The client logs every discovery and request at INFO; our own lines say what matters.
logging.getLogger("googleapiclient").setLevel(logging.WARNING)

SCOPES = [
    # Read the calendar list, events and free/busy of calendars the user picks...
    "https://www.googleapis.com/auth/calendar.readonly",
    # ...and write Fieldday's bookings as events.
    "https://www.googleapis.com/auth/calendar.events",
]
AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
TOKEN_URI = "https://oauth2.googleapis.com/token"
REVOKE_URI = "https://oauth2.googleapis.com/revoke"
TIMEOUT_S = 20


class GoogleUnavailable(FielddayError):
    status = 409
    code = "google_unavailable"
    message = "Google Calendar isn't set up on this server yet."


def configured() -> bool:
    cfg = current_app.config
    return bool(cfg.get("GOOGLE_CLIENT_ID") and cfg.get("GOOGLE_CLIENT_SECRET") and _keys())


def endpoints() -> dict[str, str]:
    base = (current_app.config.get("GOOGLE_API_BASE") or "").rstrip("/")
    if base:
        return {
            "auth": f"{base}/o/oauth2/auth",
            "token": f"{base}/token",
            "revoke": f"{base}/revoke",
            "api": f"{base}/",
        }
    return {"auth": AUTH_URI, "token": TOKEN_URI, "revoke": REVOKE_URI, "api": ""}


def _allow_loopback_http(token_uri: str) -> None:
    # oauthlib refuses plain-HTTP token URLs. Only the local stand-in is ever plain HTTP, and only on
    # loopback; a real deployment talks to https://oauth2.googleapis.com and never reaches this.
    parts = urlsplit(token_uri)
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")


def flow(redirect_uri: str, *, state: str | None = None, code_verifier: str | None = None):
    """google-auth-oauthlib's web flow (PKCE on), for the consent URL and the code exchange."""
    from google_auth_oauthlib.flow import Flow

    if not configured():
        raise GoogleUnavailable()
    cfg, ends = current_app.config, endpoints()
    _allow_loopback_http(ends["token"])
    return Flow.from_client_config(
        {
            "web": {
                "client_id": cfg["GOOGLE_CLIENT_ID"],
                "client_secret": cfg["GOOGLE_CLIENT_SECRET"],
                "auth_uri": ends["auth"],
                "token_uri": ends["token"],
                "redirect_uris": [redirect_uri],
            }
        },
        scopes=SCOPES,
        redirect_uri=redirect_uri,
        state=state,
        code_verifier=code_verifier,
    )


def credentials(refresh_token: str):
    from google.oauth2.credentials import Credentials

    cfg = current_app.config
    return Credentials(
        None,
        refresh_token=refresh_token,
        client_id=cfg["GOOGLE_CLIENT_ID"],
        client_secret=cfg["GOOGLE_CLIENT_SECRET"],
        token_uri=endpoints()["token"],
        scopes=SCOPES,
    )


def calendar_service(refresh_token: str):
    """A Calendar v3 client for one connection (the access token is refreshed on first use)."""
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    http = google_auth_httplib2.AuthorizedHttp(credentials(refresh_token), http=httplib2.Http(timeout=TIMEOUT_S))
    options = {"api_endpoint": endpoints()["api"]} if endpoints()["api"] else None
    return build("calendar", "v3", http=http, static_discovery=True, cache_discovery=False, client_options=options)


def revoke(refresh_token: str) -> bool:
    """Tell Google to forget the grant (disconnect). False if Google says it was already gone."""
    import requests

    try:
        # In the form body, as Google documents it: a token in the query string ends up in URLs, and
        # from there in exception texts and logs.
        r = requests.post(
            endpoints()["revoke"],
            data={"token": refresh_token},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=TIMEOUT_S,
        )
    except requests.RequestException as exc:
        current_app.logger.warning(
            "google revoke failed: %s", type(exc).__name__
        )  # never the text: it can hold the request
        return False
    return r.status_code == 200


# Encryption at rest -----------------------------------------------------------------------------


def _keys() -> list[bytes]:
    cfg = current_app.config
    raw = [k.strip() for k in (cfg.get("FERNET_KEY") or "").split(",") if k.strip()]
    if not raw and cfg.get("ENV_NAME") != "production":
        digest = hashlib.sha256(("fernet:" + cfg["SECRET_KEY"]).encode()).digest()
        raw = [base64.urlsafe_b64encode(digest).decode()]
    return [k.encode() for k in raw]


def _fernet() -> MultiFernet:
    keys = _keys()
    if not keys:
        raise GoogleUnavailable()
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise GoogleUnavailable("The stored Google token can't be read with this server's key.") from None
