"""Configuration, read from environment variables in one place."""

from __future__ import annotations

import os


def env_bool(name: str, default: bool) -> bool:
    """Parse a boolean strictly: a typo must not silently flip a security setting."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


class Config:
    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-secret-key-change-me")
    BASE_DOMAIN = os.environ.get("BASE_DOMAIN", "localhost").strip().lower().rstrip(".")
    # Scheme and port used when we build links for e-mails and cross-host redirects.
    PUBLIC_SCHEME = os.environ.get("PUBLIC_SCHEME", "http")
    PUBLIC_PORT = os.environ.get("PUBLIC_PORT", "5000")

    # The app role (no table ownership, no BYPASSRLS) serves requests and jobs;
    # the owner role only runs migrations.
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL",
        "postgresql+psycopg://fieldday_app:fieldday_app@127.0.0.1:5432/fieldday",
    )
    DATABASE_OWNER_URL = os.environ.get(
        "DATABASE_OWNER_URL",
        "postgresql+psycopg://fieldday_owner:fieldday_owner@127.0.0.1:5432/fieldday",
    )
    DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 10_000)
    DB_LOCK_TIMEOUT_MS = env_int("DB_LOCK_TIMEOUT_MS", 5_000)
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "fieldday")
    S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "fieldday-secret")
    S3_BUCKET = os.environ.get("S3_BUCKET", "fieldday-media")
    S3_REGION = os.environ.get("S3_REGION", "us-east-1")

    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "console")  # "smtp" or "console"
    SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
    SMTP_PORT = env_int("SMTP_PORT", 25)
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME", "")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
    SMTP_STARTTLS = env_bool("SMTP_STARTTLS", False)
    EMAIL_ALLOW_TEST_DOMAINS = True
    MAIL_FROM = os.environ.get("MAIL_FROM", "Fieldday <no-reply@fieldday.localhost>")

    # Sessions: host-only cookie (no Domain), so booking sites never receive it.
    SESSION_COOKIE_NAME = os.environ.get("SESSION_COOKIE_NAME", "fd_session")
    SESSION_COOKIE_DOMAIN = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
    PERMANENT_SESSION_LIFETIME = 60 * 60 * 24 * 14
    REMEMBER_COOKIE_DURATION = 0

    MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 10 * 1024 * 1024)
    MAX_FORM_MEMORY_SIZE = 500_000
    WTF_CSRF_TIME_LIMIT = 60 * 60 * 8

    # Map tiles for the customer's pin (e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png). Empty: the
    # map shows the pin on a plain background (tests, offline demo). Its origin is added to the CSP.
    MAP_TILE_URL = os.environ.get("MAP_TILE_URL", "")
    MAP_TILE_ATTRIBUTION = os.environ.get("MAP_TILE_ATTRIBUTION", "© OpenStreetMap contributors")

    # Stripe Connect (DESIGN §6). STRIPE_API_BASE points the official SDK at the project's own
    # stand-in (scripts/standins/stripe_standin.py); empty means api.stripe.com. The Connect
    # endpoint's signing secret is the one of the webhook endpoint created with connect=true.
    STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
    STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")
    STRIPE_CONNECT_WEBHOOK_SECRET = os.environ.get("STRIPE_CONNECT_WEBHOOK_SECRET", "")
    # Stripe Billing on the platform account (the businesses' own subscriptions; docs/platform-and-billing.md):
    # the secret of the platform endpoint /webhooks/stripe/billing. Prices are found by lookup key, no ids here.
    STRIPE_BILLING_WEBHOOK_SECRET = os.environ.get("STRIPE_BILLING_WEBHOOK_SECRET", "")
    STRIPE_MAX_NETWORK_RETRIES = env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
    STRIPE_TIMEOUT_S = env_int("STRIPE_TIMEOUT_S", 20)
    # Where our forms may send the browser (CSP form-action): hosted Checkout, onboarding, the billing portal.
    STRIPE_FORM_ORIGINS = os.environ.get(
        "STRIPE_FORM_ORIGINS", "https://checkout.stripe.com https://connect.stripe.com https://billing.stripe.com"
    )

    # Twilio (DESIGN §9). TWILIO_API_BASE points the official SDK at the project's stand-in
    # (scripts/standins/twilio_standin.py); empty means api.twilio.com.
    TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
    TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
    TWILIO_API_BASE = os.environ.get("TWILIO_API_BASE", "")

    # Google Calendar (DESIGN §7). GOOGLE_API_BASE points the official libraries (OAuth, token, revoke
    # and the Calendar API) at the project's stand-in (scripts/standins/google_standin.py); empty
    # means Google. FERNET_KEY encrypts refresh tokens at rest (comma-separated: newest first, for
    # rotation); outside production an empty key is derived from SECRET_KEY.
    GOOGLE_CLIENT_ID = os.environ.get("GOOGLE_CLIENT_ID", "")
    GOOGLE_CLIENT_SECRET = os.environ.get("GOOGLE_CLIENT_SECRET", "")
    GOOGLE_API_BASE = os.environ.get("GOOGLE_API_BASE", "")
    FERNET_KEY = os.environ.get("FERNET_KEY", "")
    # Push notifications need an address Google can reach (https in production); off: 15-minute polls only.
    GOOGLE_PUSH = env_bool("GOOGLE_PUSH", True)
    GOOGLE_SYNC_DAYS = env_int("GOOGLE_SYNC_DAYS", 60)

    # Routing (DESIGN §8, §10): travel times from straight lines (default), an OSRM server or
    # Mapbox's Matrix API; the solver's time limit per day plan.
    ROUTING_PROVIDER = os.environ.get("ROUTING_PROVIDER", "haversine")
    ROUTING_OSRM_URL = os.environ.get("ROUTING_OSRM_URL", "")
    MAPBOX_TOKEN = os.environ.get("MAPBOX_TOKEN", "")
    ROUTING_TIME_LIMIT_S = env_int("ROUTING_TIME_LIMIT_S", 5)

    # Outgoing webhooks (docs/api-and-webhooks.md): never to private addresses. The allowlist names hosts
    # exempt from that check (a local receiver in tests or development); ProductionConfig pins it empty
    # and https on. Failed attempts in a row before an endpoint is turned off and the owner told.
    OUTGOING_WEBHOOKS_HTTPS_ONLY = env_bool("OUTGOING_WEBHOOKS_HTTPS_ONLY", True)
    OUTGOING_WEBHOOKS_ALLOWED_HOSTS = tuple(
        h.strip().lower() for h in os.environ.get("OUTGOING_WEBHOOKS_ALLOWED_HOSTS", "").split(",") if h.strip()
    )
    OUTGOING_WEBHOOKS_TIMEOUT_S = 5
    OUTGOING_WEBHOOKS_DISABLE_AFTER = 20

    RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_HEADERS_ENABLED = True
    # If Redis is down, fall back to per-process memory limits instead of failing logins.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    LOGIN_LIMIT_PER_EMAIL = os.environ.get("LOGIN_LIMIT_PER_EMAIL", "10 per minute")
    LOGIN_LIMIT_PER_IP = os.environ.get("LOGIN_LIMIT_PER_IP", "30 per minute")

    PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 0)
    HSTS = env_bool("HSTS", False)

    PASSWORD_HASH_PROFILE = "default"  # argon2id RFC 9106 low-memory
    INVITE_MAX_AGE_S = 7 * 24 * 3600
    PASSWORD_RESET_MAX_AGE_S = 3600

    RQ_QUEUES = ["default", "email"]
    JOBS_SYNC = False  # run jobs inline (only for one-off scripts; tests use a real worker)

    # --- Deployment and operations (issue 11; app/observability.py, /readyz) ---
    # json in production (one object per line for Log Analytics), readable text elsewhere.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "json" if os.environ.get("FIELDDAY_ENV") == "production" else "text")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    # Set: traces, metrics and logs go to Application Insights. Empty: nothing is sent anywhere.
    APPLICATIONINSIGHTS_CONNECTION_STRING = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_NAME = "__Host-fd_session"
    SESSION_COOKIE_SECURE = True
    PUBLIC_SCHEME = "https"
    PUBLIC_PORT = os.environ.get("PUBLIC_PORT", "")
    HSTS = True
    EMAIL_ALLOW_TEST_DOMAINS = False
    OUTGOING_WEBHOOKS_HTTPS_ONLY = True
    OUTGOING_WEBHOOKS_ALLOWED_HOSTS = ()
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "smtp")
    PROXY_FIX_HOPS = env_int("PROXY_FIX_HOPS", 1)

    @classmethod
    def check(cls) -> None:
        missing = [n for n in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL") if not os.environ.get(n)]
        if missing:
            raise RuntimeError(f"production refuses to start without: {', '.join(missing)}")


class TestConfig(Config):
    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key"
    MAIL_BACKEND = "smtp"
    PASSWORD_HASH_PROFILE = "fast"
    # The whole suite logs in from 127.0.0.1; the per-IP limit has its own test (H8).
    LOGIN_LIMIT_PER_IP = "10000 per minute"


def load_config(name: str | None = None) -> type[Config]:
    name = name or os.environ.get("FIELDDAY_ENV", "development")
    configs = {"development": Config, "production": ProductionConfig, "test": TestConfig}
    if name not in configs:
        raise ValueError(f"FIELDDAY_ENV must be one of {sorted(configs)}, got {name!r}")
    cfg = configs[name]
    if cfg is ProductionConfig:
        ProductionConfig.check()
    return cfg
