"""Where outgoing webhooks may go (SSRF guard) and the one HTTP call that sends them.

A URL is refused if its host is, or resolves to, an address that isn't on the public internet:
private, loopback, link-local (169.254.169.254 is the cloud metadata service), multicast, reserved,
unspecified, shared (100.64/10), and IPv6 forms that embed such an IPv4 address (::ffff:10.0.0.1,
6to4, Teredo, NAT64). The check runs when the URL is saved (a clear form error) and again before every
send, and the send connects to the address that was checked, so a DNS answer that changes between the
check and the connection (DNS rebinding) can't redirect it. TLS still verifies the certificate against
the host name (SNI). Redirects are never followed; timeouts are short, and the whole exchange has a
wall-clock deadline (a receiver that trickles its answer a byte at a time can't hold a worker).

``OUTGOING_WEBHOOKS_ALLOWED_HOSTS`` names hosts exempt from the address check (the tests' receiver on
127.0.0.1); it is empty by default and ProductionConfig pins it empty.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")
EXCERPT_BYTES = 1000
USER_AGENT = "Fieldday-Webhooks/1 (+https://fieldday.app/docs/webhooks)"


class UnsafeUrl(Exception):
    """The URL may not be used; the message says why, in words for the owner."""


class SendFailed(Exception):
    """The request didn't produce an HTTP answer (DNS, connection, TLS, timeout)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower-case host name or IP literal, without brackets
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[IP, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str


def parse(url: str, *, https_only: bool) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of a well-formed absolute URL, or UnsafeUrl saying what's wrong."""
    url = (url or "").strip()
    if not url:
        raise UnsafeUrl("Enter the URL that should receive the events.")
    if len(url) > 2000:
        raise UnsafeUrl("That URL is too long (2,000 characters at most).")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeUrl("A URL can't contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("That isn't a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("Enter a full URL starting with https://, like https://example.com/fieldday-hook.")
    if https_only and scheme != "https":
        raise UnsafeUrl("Use an https:// URL: events carry your customers' details, so they only go over HTTPS.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Leave the user name and password out of the URL; check our signature instead.")
    if parts.fragment:
        raise UnsafeUrl("Leave out the #fragment: it is never sent to a server.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname.lower().rstrip(".")
    if not host.isascii():
        # An international name goes on the wire (DNS, Host, SNI) in its ASCII form, xn--….
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeUrl("That host name isn't valid.") from None
    return scheme, host, port or (443 if scheme == "https" else 80), path


def blocked_reason(ip: IP) -> str | None:
    """Why ``ip`` isn't a public internet address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if ip in NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for inner in embedded:
            if inner is not None and (reason := blocked_reason(inner)):
                return reason
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback (this server itself)", ip.is_loopback),
        ("link-local (used for cloud metadata)", ip.is_link_local),
        ("site-local (an internal network)", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("multicast", ip.is_multicast),
        ("private (an internal network)", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not on the public internet", not ip.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


def resolve(host: str, port: int) -> tuple[IP, ...]:
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UnsafeUrl(f"We couldn't find the host {host} (DNS lookup failed).") from None
    seen: list[IP] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise UnsafeUrl(f"We couldn't find the host {host} (DNS lookup failed).")
    return tuple(seen)


def check(url: str, *, https_only: bool, allowed_hosts: tuple[str, ...] | list[str] = ()) -> Target:
    """Parse, resolve and check ``url``; every address the host resolves to must be public (one bad
    answer among good ones is how rebinding attacks hide)."""
    scheme, host, port, path = parse(url, https_only=https_only)
    addresses = resolve(host, port)
    if host not in {h.strip().lower() for h in allowed_hosts}:
        for ip in addresses:
            if reason := blocked_reason(ip):
                shown = host if host == str(ip) else f"{host} ({ip})"
                raise UnsafeUrl(
                    f"{shown} is {reason}. Webhooks only go to public internet addresses: "
                    "use the address your server has on the internet."
                )
    return Target(scheme, host, port, path, addresses)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    https_only: bool,
    allowed_hosts: tuple[str, ...] | list[str] = (),
) -> Answer:
    """POST ``body`` to ``url`` through the address just checked. Raises UnsafeUrl or SendFailed.

    Socket timeouts bound each read, not the exchange: a receiver sending its status line and headers a
    byte every few seconds would hold the worker (and the delivery's row lock) until RQ kills the job,
    whose attempt is then never recorded and is swept again every minute. So the exchange runs in a
    thread with a deadline; past it the connection is shut and the attempt fails like a timeout."""
    target = check(url, https_only=https_only, allowed_hosts=allowed_hosts)
    outcome: dict = {}
    opened: list = []

    def run() -> None:
        try:
            outcome["answer"] = _exchange(target, body, headers, timeout_s, opened)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="webhook-send", daemon=True)
    worker.start()
    worker.join(timeout_s + 1)
    if worker.is_alive():
        for conn in opened:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except (AttributeError, OSError):
                pass
        raise SendFailed(f"No complete answer within {timeout_s:g} seconds.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["answer"]


def _exchange(target: Target, body: bytes, headers: dict[str, str], timeout_s: float, opened: list) -> Answer:
    ip = str(target.addresses[0])
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s, total=timeout_s)
    common = {"timeout": timeout, "retries": False, "maxsize": 1, "block": False}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            ip,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            **common,
        )
    else:
        pool = urllib3.HTTPConnectionPool(ip, target.port, **common)

    class Watched(pool.ConnectionCls):  # type: ignore[name-defined, misc]
        def connect(self) -> None:
            opened.append(self)  # so the deadline can shut its socket
            super().connect()

    pool.ConnectionCls = Watched
    sent = {"User-Agent": USER_AGENT, **headers, "Host": target.host_header, "Connection": "close"}
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers=sent,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            head = response.read(EXCERPT_BYTES, decode_content=False) or b""
        finally:
            response.release_conn()
            response.close()
    except NewConnectionError:  # (a subclass of ConnectTimeoutError: first)
        raise SendFailed(f"Couldn't connect to {target.host_header}.") from None
    except (ConnectTimeoutError, ReadTimeoutError, TimeoutError):
        raise SendFailed(f"No answer within {timeout_s:g} seconds.") from None
    except SSLError as exc:
        raise SendFailed(f"The TLS connection failed: {_reason(exc)}") from None
    except (ProtocolError, HTTPError, OSError, http.client.HTTPException, ValueError) as exc:
        # ValueError: whatever else can't be put on the wire; recorded as a failed attempt, never a crash
        # (a crashing job records nothing, so the sweep would retry it every minute for ever).
        raise SendFailed(f"The connection failed: {_reason(exc)}") from None
    finally:
        pool.close()
    return Answer(response.status, _printable(head))


def _reason(exc: BaseException) -> str:
    text = str(exc.args[-1] if exc.args else exc) or type(exc).__name__
    return _printable(text.encode())[:200]


def _printable(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)[:EXCERPT_BYTES]
