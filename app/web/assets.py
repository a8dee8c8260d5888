"""Static files built by npm (scripts/build-assets.mjs) with hashed names and a manifest."""

from __future__ import annotations

import json
import os

from flask import Blueprint, current_app, g, url_for

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")
DIST_DIR = os.path.join(STATIC_DIR, "dist")


class AssetsBlueprint(Blueprint):
    def get_send_file_max_age(self, filename):
        # Every served name carries its content hash: browsers may keep it for a year.
        return 365 * 24 * 3600


# Only built files are served; sources under static/src are not public.
bp = AssetsBlueprint("assets", __name__, static_folder=DIST_DIR, static_url_path="/static")


def _manifest() -> dict:
    cached = current_app.extensions.get("asset_manifest")
    if cached is None or current_app.debug:
        path = os.path.join(DIST_DIR, "manifest.json")
        try:
            with open(path) as fh:
                cached = json.load(fh)
        except FileNotFoundError:
            raise RuntimeError("static assets are not built: run `npm ci && npm run build`") from None
        current_app.extensions["asset_manifest"] = cached
    return cached


def asset_url(name: str) -> str:
    filename = _manifest()[name]
    audience = g.get("audience")
    endpoint = {"app": "assets.static", "site": "site_assets.static"}.get(audience, "other_assets.static")
    return url_for(endpoint, filename=filename)


def init_app(app) -> None:
    app.register_blueprint(bp, subdomain="app")
    app.register_blueprint(bp, subdomain="site", name="site_assets")
    # So the 404 page of an unknown or reserved subdomain is styled too (assets are public).
    app.register_blueprint(bp, subdomain="invalid", name="other_assets")
    app.context_processor(lambda: {"asset_url": asset_url})
