"""Host → audience classification (DESIGN §2). Pure: no database, no Flask."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Names a tenant can never take: our own hosts, and the ones mail, DNS and
# certificate tooling (or a phishing attempt) would expect to be ours.
RESERVED_SUBDOMAINS = frozenset(
    """
    app api www admin static mail smtp imap pop webmail ftp ns ns1 ns2 dns mx
    assets cdn media img images files uploads help support status docs blog
    billing pay payments secure login auth account accounts signup register
    dashboard webhooks hooks internal test dev staging prod demo root system
    fieldday localhost autoconfig autodiscover
    """.split()
)

SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")


class HostError(Exception):
    status = 400


class BadHost(HostError):
    """The host is not under our base domain: 400."""

    status = 400


class UnknownHost(HostError):
    """Under the base domain but not a host we serve (nested, reserved): 404."""

    status = 404


@dataclass(frozen=True)
class HostInfo:
    audience: str  # "app" | "site" | "apex"
    subdomain: str | None = None


def normalise_host(raw: str) -> str:
    """Lower-case, strip the port and any trailing dot."""
    host = (raw or "").strip().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    host = host.rsplit(":", 1)[0] if ":" in host else host
    return host.rstrip(".")


def classify_host(raw_host: str, base_domain: str) -> HostInfo:
    host = normalise_host(raw_host)
    base = base_domain.lower().rstrip(".")
    if host == base:
        return HostInfo("apex")
    suffix = "." + base
    if not host.endswith(suffix):
        raise BadHost(f"host {host!r} is not under {base!r}")
    label = host[: -len(suffix)]
    if label == "app":
        return HostInfo("app")
    if "." in label:
        raise UnknownHost("nested subdomains are not served")
    if label in RESERVED_SUBDOMAINS or not SUBDOMAIN_RE.match(label):
        raise UnknownHost("not a tenant subdomain")
    return HostInfo("site", label)


def subdomain_problem(name: str) -> str | None:
    """Why ``name`` cannot be a tenant's subdomain, or None if it can (availability aside)."""
    if not name:
        return "Choose a web address for your booking site."
    if len(name) < 3:
        return "Use at least 3 characters."
    if len(name) > 40:
        return "Use at most 40 characters."
    if not SUBDOMAIN_RE.match(name):
        return "Use lower-case letters, digits and hyphens; start and end with a letter or digit."
    if "--" in name:
        return "Avoid two hyphens in a row."
    if name in RESERVED_SUBDOMAINS:
        return f"“{name}” is reserved. Please choose another."
    return None
