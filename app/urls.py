"""Absolute URLs for the app host and tenants' booking sites (e-mails, cross-host links)."""

from __future__ import annotations

from flask import current_app


def _origin(host: str) -> str:
    cfg = current_app.config
    port = str(cfg.get("PUBLIC_PORT") or "")
    scheme = cfg["PUBLIC_SCHEME"]
    default = (scheme == "http" and port == "80") or (scheme == "https" and port == "443")
    return f"{scheme}://{host}" + ("" if not port or default else f":{port}")


def app_url(path: str = "/") -> str:
    return _origin(f"app.{current_app.config['BASE_DOMAIN']}") + path


def site_url(subdomain: str, path: str = "/") -> str:
    return _origin(f"{subdomain}.{current_app.config['BASE_DOMAIN']}") + path


def site_host(subdomain: str) -> str:
    return f"{subdomain}.{current_app.config['BASE_DOMAIN']}"
