"""Fieldday: the application factory."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Config, load_config
from tenants.hosts import HostError, classify_host


class FielddayFlask(Flask):
    """Routes by audience: the host decides which blueprints can match.

    ``app.<base>`` binds the URL map with subdomain ``app``; a tenant's booking
    site binds it with ``site``; anything else binds ``invalid`` so nothing but
    the health check matches, and the tenancy layer answers 400 or 404.
    Rules are registered with these pseudo-subdomains, so the dashboard's ``/``
    and the booking site's ``/`` coexist without a port-sensitive SERVER_NAME.
    """

    def create_url_adapter(self, request):
        if request is None:
            return super().create_url_adapter(request)
        try:
            info = classify_host(request.host, self.config["BASE_DOMAIN"])
            audience = info.audience
        except HostError as exc:
            info, audience = exc, "invalid"
        request.environ["fieldday.host"] = info
        return self.url_map.bind_to_environ(request.environ, subdomain=audience)


def create_app(config: type[Config] | None = None, overrides: dict | None = None) -> Flask:
    """Build the app from a config class (default: FIELDDAY_ENV) plus explicit overrides."""
    app = FielddayFlask(__name__, static_folder=None)
    app.config.from_object(config or load_config())
    app.config.update(overrides or {})
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 10,
        "connect_args": {
            "options": f"-c statement_timeout={app.config['DB_STATEMENT_TIMEOUT_MS']}"
            f" -c lock_timeout={app.config['DB_LOCK_TIMEOUT_MS']}"
            " -c idle_in_transaction_session_timeout=60000",
            "connect_timeout": 5,
        },
        **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
    }
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    from app import cli, extensions, jobs, mail, models  # noqa: F401  (models registers mappers)
    from app.web import register_web
    from tenants import web as tenant_web

    extensions.db.init_app(app)
    extensions.migrate.init_app(app, extensions.db, directory=_migrations_dir())
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    extensions.init_redis(app)
    extensions.login_manager.init_app(app)
    tenant_web.init_app(app)
    register_web(app)
    jobs.init_app(app)
    cli.init_app(app)
    from app import observability

    observability.init_app(app)
    return app


def _migrations_dir() -> str:
    import os

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
