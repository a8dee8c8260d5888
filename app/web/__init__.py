"""Blueprints per audience. Each is bound to a pseudo-subdomain (see FielddayFlask)."""

from __future__ import annotations


def register_web(app) -> None:
    from app.web import api, assets, auth, dashboard, errors, filters, health, security, site, webhooks
    from app.web import api_keys as _api_keys  # noqa: F401  (Integrations: API keys)
    from app.web import billing as _billing  # noqa: F401  (the business's own subscription, on Plan & usage)
    from app.web import calendar as _calendar  # noqa: F401  (adds its routes to the dashboard blueprint)
    from app.web import customers as _customers  # noqa: F401
    from app.web import google as _google  # noqa: F401  (Integrations: Google Calendar; its push webhook)
    from app.web import google_tech as _google_tech  # noqa: F401  (a technician's own Google Calendar)
    from app.web import message_templates as _message_templates  # noqa: F401
    from app.web import messages as _messages  # noqa: F401
    from app.web import outgoing_webhooks as _outgoing_webhooks  # noqa: F401  (Integrations: webhooks)
    from app.web import payments as _payments  # noqa: F401
    from app.web import platform as _platform  # noqa: F401  (platform staff: jobs, businesses, audit log)
    from app.web import privacy as _privacy  # noqa: F401  (customer data rights, the business's full export)
    from app.web import quotes as _quotes  # noqa: F401  (dashboard builder and the customer's quote pages)
    from app.web import reports as _reports  # noqa: F401  (charts and CSV exports)
    from app.web import reviews as _reviews  # noqa: F401  (dashboard and booking-site pages)
    from app.web import routes as _routes  # noqa: F401
    from app.web import setup as _setup  # noqa: F401
    from app.web import short_links as _short_links  # noqa: F401  (/l/<code>: the short links in texts)
    from app.web import tech as _tech  # noqa: F401  (the technician's day: dashboard.my_day)

    assets.init_app(app)
    filters.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    health.init_app(app)
    app.register_blueprint(auth.bp, subdomain="app")
    app.register_blueprint(dashboard.bp, subdomain="app")
    app.register_blueprint(api.bp, subdomain="app", url_prefix="/api/v1")
    app.register_blueprint(site.bp, subdomain="site")
    app.register_blueprint(webhooks.bp, subdomain="app")
