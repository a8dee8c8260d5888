"""``/l/<code>`` on a booking site: the short links our texts carry (app/links/services.py), sent on
to the long link on the same site. An expired link gets a page saying so, with the business's
phone and e-mail; an unknown one (or another business's) the same page as a 404."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import g, make_response, redirect, render_template

from app.extensions import limiter
from app.links import services as links
from app.web import site

# Codes are unguessable by size (2**59.5); the limit only keeps a guesser from trying at scale.
# Generous for people: one customer opens a handful of links, a busy carrier NAT shares an IP.
LIMIT_PER_IP = "60 per minute"


@site.bp.get("/l/<code>", endpoint="short_link")
@limiter.limit(LIMIT_PER_IP)
def short_link(code: str):
    g.referrer_policy = "no-referrer"  # the code is a key to the page: it never travels in a Referer
    link = links.resolve(g.tenant.id, code)
    if link is not None and link.expires_at > datetime.now(UTC) and links.safe_target(link.target):
        response = redirect(link.target, code=302)  # a path: the browser stays on this very host
    else:
        expired = link is not None
        page = render_template("site/short_link.html", tenant=g.tenant, expired=expired)
        response = make_response(page, 410 if expired else 404)
    response.headers["Cache-Control"] = "no-store"  # the next tap must ask us again (expiry, revocation)
    return response
