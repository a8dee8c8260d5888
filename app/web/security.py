"""Security headers on every response (RELIABILITY §7, ASVS 5.0 V3.4)."""

from __future__ import annotations

from flask import g, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def widen(csp: str, extra: dict[str, list[str]] | None) -> str:
    """Add sources to some directives for one response only. A view sets ``g.csp_extra``, e.g. the
    technician's page uploads photos straight to object storage and shows them from there
    (DESIGN §9): {"connect-src": [origin], "img-src": [origin]}. Every other page keeps the base."""
    if not extra:
        return csp
    directives = []
    for directive in csp.split("; "):
        name = directive.split(" ", 1)[0]
        directives.append(" ".join([directive, *extra.get(name, [])]))
    return "; ".join(directives)


def init_app(app) -> None:
    from urllib.parse import urlsplit

    tiles = urlsplit(app.config.get("MAP_TILE_URL") or "")
    tile_origin = f"{tiles.scheme}://{tiles.netloc}".replace("{s}", "*") if tiles.netloc else ""
    csp = CSP.replace("img-src 'self' data: blob:", f"img-src 'self' data: blob: {tile_origin}".rstrip())
    # Paying a deposit and connecting Stripe post a form that redirects to Stripe's hosted pages;
    # browsers check form-action along the redirect chain, so those origins are allowed there.
    form_origins = app.config.get("STRIPE_FORM_ORIGINS", "").split()
    api_base = urlsplit(app.config.get("STRIPE_API_BASE") or "")
    if api_base.netloc:  # the local stand-in serves its hosted pages from its own origin
        form_origins.append(f"{api_base.scheme}://{api_base.netloc}")
    if form_origins:
        csp = csp.replace("form-action 'self'", "form-action 'self' " + " ".join(form_origins))

    @app.after_request
    def add_security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", widen(csp, g.get("csp_extra")))
        h["X-Content-Type-Options"] = "nosniff"
        h["X-Frame-Options"] = "DENY"
        h["Referrer-Policy"] = g.get("referrer_policy", "strict-origin-when-cross-origin")
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(self), payment=()"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        if app.config["HSTS"]:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if g.get("audience") == "app" and request.endpoint and not request.endpoint.endswith("static"):
            # Dashboard pages carry private data: never cache them anywhere.
            h.setdefault("Cache-Control", "no-store")
        return response
