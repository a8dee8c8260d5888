"""Short links for texts (docs/messages.md, "Short links").

Our customer links carry a signed token (``/b/<token>`` is ~150 characters), which alone pushes a
confirmation past one SMS segment; Twilio bills per segment. A text therefore carries
``<site>/l/<code>`` instead, and the booking site redirects that to the long link. E-mails keep the
long links (no segments there, and one less hop).

* The code is 10 base62 characters from ``secrets`` (62**10 ≈ 2**59.5): as unguessable as we need
  even before the redirect's per-IP rate limit. It is as much a key to the page as the token.
* A short link stands only for a path (+ query) on the same business's booking site: ``target_of``
  refuses anything else, the database CHECK refuses an absolute or protocol-relative target, and the
  redirect answers with that path alone. It can't become an open redirect.
* Rows are the business's own (RLS); the redirect looks a code up within the host's business.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.links.models import ShortLink

ALPHABET = string.ascii_letters + string.digits  # base62: no "-" or "_" for a phone to trip over
CODE_LENGTH = 10
CODE_RE = re.compile(r"[0-9A-Za-z]{10,32}")
SAMPLE_CODE = "k7Qx2mPz9R"  # what the template preview shows: a short link of the real length
# A path (+ query) on the site: one "/", then URL characters only (RFC 3986 unreserved, sub-delims,
# ":", "@", "%", "/", "?"). Never "//" or "/\" next: browsers read both as another host.
TARGET_RE = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
MAX_TARGET = 2000
DEFAULT_LIFETIME = timedelta(days=120)
# Expired rows stay this long so an old text still gets the "this link expired" page (with the
# business's phone) rather than a bare "not found"; then shortening in that business drops them.
KEEP_EXPIRED = timedelta(days=90)


class NotOurLink(ValueError):
    """Only a page of the business's own booking site can have a short link."""


def _origin(tenant) -> str:
    from app.urls import site_url

    return site_url(tenant.subdomain, "")


def short_url(tenant, code: str) -> str:
    from app.urls import site_url

    return site_url(tenant.subdomain, f"/l/{code}")


def sample_url(tenant) -> str:
    """A short link as the business's texts will carry it (for previews and lengths)."""
    return short_url(tenant, SAMPLE_CODE)


def target_of(tenant, url: str) -> str:
    """The path (+ query) of ``url`` if it is a page of this business's booking site, else NotOurLink."""
    origin = _origin(tenant)
    if not isinstance(url, str) or not url.startswith(origin + "/"):
        raise NotOurLink("Only a page of the business's own booking site can be shortened.")
    target = url[len(origin) :]
    if not safe_target(target):
        raise NotOurLink("That address can't be shortened.")
    return target


def safe_target(target: str) -> bool:
    """A same-site path the redirect may answer with (checked again before every redirect)."""
    return isinstance(target, str) and len(target) <= MAX_TARGET and TARGET_RE.fullmatch(target) is not None


def is_ours(tenant, value) -> bool:
    try:
        target_of(tenant, value)
    except NotOurLink:
        return False
    return True


def lifetime(target: str) -> timedelta:
    """As long as the link it stands for: the signed token's own max age (manage, pay and receipt
    links 400 days, review links 180). Quote links carry no timestamp and a quote may stay open up
    to a year (and its page still leads to the booking after), so 400 days too; any other page 120."""
    from app.booking import tokens as booking_tokens
    from app.payments import tokens as payment_tokens
    from app.reviews import tokens as review_tokens

    by_prefix = (
        ("/b/", booking_tokens.MAX_AGE_S),
        ("/pay/", payment_tokens.MAX_AGE_S),
        ("/r/", payment_tokens.MAX_AGE_S),
        ("/review/", review_tokens.MAX_AGE_S),
        ("/q/", booking_tokens.MAX_AGE_S),
    )
    for prefix, seconds in by_prefix:
        if target.startswith(prefix):
            return timedelta(seconds=seconds)
    return DEFAULT_LIFETIME


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def shorten(tenant, url: str, *, now: datetime | None = None) -> str:
    """A new short link for ``url`` (a page of the business's own site; NotOurLink otherwise)."""
    target = target_of(tenant, url)
    now = now or datetime.now(UTC)
    for _ in range(5):  # a clash is a 1-in-2**59 event; never loop for ever on a bug
        code = new_code()
        made = db.session.execute(
            insert(ShortLink)
            .values(tenant_id=tenant.id, code=code, target=target, created_at=now, expires_at=now + lifetime(target))
            .on_conflict_do_nothing(index_elements=["tenant_id", "code"])
            .returning(ShortLink.code)
        ).scalar()
        if made is not None:
            return short_url(tenant, code)
    raise RuntimeError("no free short-link code after 5 tries")


def shorten_in(tenant, body: str, urls: Iterable, *, now: datetime | None = None) -> str:
    """``body`` (a rendered text) with each of ``urls`` that is a page of the business's own site
    replaced by a short link: one code per distinct link however often the text shows it. Other
    values (a Google review URL...) and links a short one wouldn't shorten stay as they are."""
    now = now or datetime.now(UTC)
    short_length = len(sample_url(tenant))
    ours = {u for u in urls if isinstance(u, str) and u in body and len(u) > short_length and is_ours(tenant, u)}
    if not ours:
        return body
    _purge(tenant.id, now)
    # Longest first, so a link that begins another one can never split it.
    for url in sorted(ours, key=len, reverse=True):
        body = body.replace(url, shorten(tenant, url, now=now))
    return body


def resolve(tenant_id: uuid.UUID, code: str) -> ShortLink | None:
    """This business's link with ``code`` (by key, and RLS keeps it to the current business anyway)."""
    if not isinstance(code, str) or not CODE_RE.fullmatch(code):
        return None
    return db.session.get(ShortLink, (tenant_id, code))


def _purge(tenant_id: uuid.UUID, now: datetime) -> None:
    db.session.execute(
        db.delete(ShortLink).where(ShortLink.tenant_id == tenant_id, ShortLink.expires_at < now - KEEP_EXPIRED)
    )
