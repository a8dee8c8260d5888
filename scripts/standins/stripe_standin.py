"""A local, in-memory stand-in for the slice of the Stripe API Fieldday calls (RELIABILITY.md §3).

Tests and the offline demo point the official SDK at it with
``StripeClient(key, base_addresses={"api": url, "connect": url, "files": url})``. It honours ``Stripe-Account``
and ``Idempotency-Key``, answers Stripe's error envelopes, serves hosted Checkout and onboarding pages and signs
webhooks with the SDK's own signer. Billing on the platform account too: prices by lookup key, Checkout in
subscription mode, subscriptions, invoices and a cut-down customer portal; the platform's own events go to
``billing_webhook_url`` (its own secret) when set. It never talks to the internet and has no security beyond loopback.

    python -m scripts.standins.stripe_standin --port 12111 --api-key sk_test_standin --secret whsec_standin \\
        --webhook-url http://127.0.0.1:5000/webhooks/stripe/connect --webhook-host app.localhost:5000 \\
        --billing-webhook-url http://127.0.0.1:5000/webhooks/stripe/billing --billing-secret whsec_billing \\
        --state .dev/stripe-standin.json
"""

from __future__ import annotations

import copy
import html
import json
import re
import secrets
import string
import threading
import time
import traceback
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import stripe
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from scripts.standins.base import RecordedRequest, Standin, cli, html_page, json_response, post, public, serve

PREFIXES = {
    "account": "acct",
    "checkout.session": "cs_test",
    "customer": "cus",
    "payment_method": "pm",
    "payment_intent": "pi",
    "charge": "ch",
    "refund": "re",
    # Stripe Billing on the platform account (the businesses' own Fieldday subscriptions).
    "product": "prod",
    "price": "price",
    "subscription": "sub",
    "invoice": "in",
    "billing_portal.session": "bps",
}
LABELS = {"payment_method": "PaymentMethod"}  # how Stripe names a kind in "No such …" messages
# Test cards: brand and outcome; "auth" succeeds on-session but needs authentication off-session.
CARDS = {
    "4242424242424242": ("visa", "ok"),
    "5555555555554444": ("mastercard", "ok"),
    "4000002500003155": ("visa", "auth"),
    "4000000000000002": ("visa", "Your card was declined."),
    "4000000000009995": ("visa", "Your card has insufficient funds."),
}
SYMBOLS = {"usd": "$", "cad": "$", "aud": "$", "gbp": "£", "eur": "€"}
ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"}
CURRENCY_BY_COUNTRY = {"CA": "cad", "AU": "aud", "GB": "gbp"}
SESSION_MIN_S, SESSION_MAX_S, LINK_TTL_S = 30 * 60, 24 * 3600, 300
INJECTED = {402: ("card_error", "card_declined"), 429: ("invalid_request_error", "rate_limit")}  # fail_next types
AUTH_DECLINE = "Your card was declined. This transaction requires authentication."
ALNUM = string.ascii_letters + string.digits

# (methods, path, endpoint, defaults); /v1 endpoints are API handlers, the rest hosted pages and controls.
ROUTES = [
    ("POST", "/v1/accounts", "create_account", None),
    ("GET", "/v1/accounts/<oid>", "get_object", {"kind": "account"}),
    ("POST", "/v1/account_links", "create_account_link", None),
    ("POST", "/v1/checkout/sessions", "create_session", None),
    ("GET", "/v1/checkout/sessions/<oid>", "get_object", {"kind": "checkout.session"}),
    ("POST", "/v1/checkout/sessions/<oid>/expire", "expire_session", None),
    ("POST", "/v1/customers", "create_customer", None),
    ("GET", "/v1/customers/<oid>", "get_object", {"kind": "customer"}),
    ("GET", "/v1/customers/<customer>/payment_methods", "list_payment_methods", None),
    ("GET", "/v1/payment_methods", "list_payment_methods", None),
    ("GET", "/v1/payment_methods/<oid>", "get_object", {"kind": "payment_method"}),
    ("POST", "/v1/payment_intents", "create_payment_intent", None),
    ("GET", "/v1/payment_intents/<oid>", "get_object", {"kind": "payment_intent"}),
    ("GET", "/v1/charges/<oid>", "get_object", {"kind": "charge"}),
    ("POST", "/v1/refunds", "create_refund", None),
    ("GET", "/v1/refunds/<oid>", "get_object", {"kind": "refund"}),
    ("GET,POST", "/checkout/pay/<oid>", "checkout_page", None),
    ("GET,POST", "/connect/onboard/<token>", "onboard_page", None),
    ("GET", "/_standin/health", "health", None),
    ("POST", "/_standin/accounts/<oid>/complete", "complete_account_page", None),
    # Billing: products, prices (looked up by lookup_key), subscriptions, invoices, the customer portal.
    ("POST", "/v1/products", "create_product", None),
    ("GET", "/v1/products/<oid>", "get_object", {"kind": "product"}),
    ("POST", "/v1/prices", "create_price", None),
    ("GET", "/v1/prices", "list_prices", None),
    ("GET", "/v1/prices/<oid>", "get_object", {"kind": "price"}),
    ("GET", "/v1/subscriptions/<oid>", "get_object", {"kind": "subscription"}),
    ("POST", "/v1/subscriptions/<oid>", "update_subscription", None),
    ("DELETE", "/v1/subscriptions/<oid>", "cancel_subscription", None),
    ("GET", "/v1/invoices/<oid>", "get_object", {"kind": "invoice"}),
    ("POST", "/v1/billing_portal/sessions", "create_portal_session", None),
    ("GET,POST", "/billing/portal/<oid>", "portal_page", None),
    ("POST", "/_standin/subscriptions/<oid>/<action>", "subscription_control_page", None),
]
PERIOD_S = 30 * 24 * 3600  # a "month" of a monthly price
SUBSCRIPTION_LIVE = ("active", "trialing", "past_due", "unpaid", "incomplete")


def new_id(prefix: str, length: int = 24) -> str:
    return f"{prefix}_" + "".join(secrets.choice(ALNUM) for _ in range(length))


def money(amount: int, currency: str) -> str:
    currency = (currency or "usd").lower()
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount // 100}.{amount % 100:02d}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{currency.upper()} {value}"


class ApiError(Exception):
    """An answer in Stripe's error envelope."""

    def __init__(self, status: int, type_: str, message: str, *, code=None, param=None, **extra):
        super().__init__(message)
        self.status = status
        self.error = {"type": type_, "code": code, "message": message, "param": param, **extra}


def invalid(message: str, param=None, code=None, status=400) -> ApiError:
    return ApiError(status, "invalid_request_error", message, code=code, param=param)


class CardDeclined(Exception):
    """The hosted page (or complete_checkout) got a card that declines; nothing was created."""


def decode_params(pairs) -> dict:
    """Decode Stripe's form encoding (``a[b][0][c]=v``) into nested dicts, with all-digit keys as lists."""
    root: dict = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *re.findall(r"\[([^\]]*)\]", key[len(head) :])]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1] or str(len(node))] = value
    return _listify(root)


def _listify(value):
    if not isinstance(value, dict):
        return value
    value = {k: _listify(v) for k, v in value.items()}
    if value and all(k.isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    return value


def to_int(value, param: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param) from None


def to_bool(value) -> bool:
    return value in (True, "true")


def required(params: dict, name: str):
    value = params.get(name)
    if value in (None, "", {}, []):
        raise invalid(f"Missing required param: {name}.", name, code="parameter_missing")
    return value


def metadata(params: dict, name: str = "metadata") -> dict:
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", name)
    return {k: v for k, v in value.items() if v != ""}


class Recorded(RecordedRequest):
    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")

    @property
    def stripe_account(self) -> str | None:
        return self.headers.get("Stripe-Account")


@dataclass
class _Call:
    method: str
    account: str | None
    params: dict
    idempotency_key: str | None
    request_id: str = field(default_factory=lambda: new_id("req", 14))
    events: list = field(default_factory=list)  # emitted while answering; delivered before the response

    @property
    def request(self) -> dict:
        return {"id": self.request_id, "idempotency_key": self.idempotency_key}


class StripeStandin(Standin):
    """Thread-safe in-memory Stripe: a WSGI app plus test helpers. See the module docstring."""

    def __init__(
        self,
        *,
        api_key="sk_test_standin",
        webhook_secret="whsec_standin",
        webhook_url=None,
        webhook_host=None,
        public_url=None,
        state_file=None,
        billing_webhook_url=None,
        billing_webhook_secret=None,
    ):
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.webhook_host = webhook_host
        # The platform's own events (no ``account``: Billing) go to their own endpoint when it is set,
        # signed with its own secret, as Stripe does for a platform endpoint beside a Connect one.
        self.billing_webhook_url = billing_webhook_url
        self.billing_webhook_secret = billing_webhook_secret
        self.public_url = public_url
        self.clock_offset = 0
        self.events: list[dict] = []
        rules = [Rule(path, methods=m.split(","), endpoint=name, defaults=d) for m, path, name, d in ROUTES]
        self._urls = Map(rules, redirect_defaults=False)
        super().__init__(state_file=state_file)
        self.requests: list[Recorded]
        self.deliveries: list[tuple[str, int | str]]  # (event id, the app's HTTP status or the error)

    # -- test helpers -----------------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def advance(self, seconds: int):
        """Move the stand-in's clock forward and expire the Checkout Sessions whose time has come."""
        pending: list = []
        with self._lock:
            self.clock_offset += seconds
            for obj in list(self._store.values()):
                if obj["object"] == "checkout.session":
                    self._lazy_expire(obj, pending)
            self._save()
        self._deliver_all(pending)

    def fail_next(self, method: str, path_regex: str, status: int = 500, times: int = 1, *, sdk_retry=False):
        """Answer the next ``times`` matching API requests (``re.search`` on the path) with an error envelope.

        The answer carries ``Stripe-Should-Retry: false`` unless ``sdk_retry``, so by default the SDK does not
        retry and the error reaches the caller. Injected answers are never stored as idempotent results.
        """
        self._add_failure(method, path_regex, status, times, retry="true" if sdk_retry else "false")

    def objects(self, kind: str) -> list[dict]:
        if kind not in PREFIXES:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(PREFIXES)}")
        with self._lock:
            return [public(obj) for obj in self._store.values() if obj["object"] == kind]

    def signed(self, event_or_payload, *, secret=None, timestamp=None) -> tuple[bytes, dict]:
        payload = event_or_payload if isinstance(event_or_payload, bytes) else json.dumps(event_or_payload).encode()
        header = stripe.WebhookSignature.generate_signature_header(
            payload.decode(), secret or self.webhook_secret, timestamp=timestamp
        )
        return payload, {"Content-Type": "application/json", "Stripe-Signature": header}

    def _target(self, event: dict) -> tuple[str | None, str | None]:
        """Where an event goes and the secret it is signed with: a platform event (no ``account``) to
        billing_webhook_url when set, everything else to webhook_url."""
        if not event.get("account") and self.billing_webhook_url:
            return self.billing_webhook_url, self.billing_webhook_secret
        return self.webhook_url, None

    def deliver(self, event_id: str) -> int:
        """(Re)send one event, signed, to its endpoint; record and return the app's HTTP status."""
        with self._lock:
            event = next((e for e in self.events if e["id"] == event_id), None)
        if event is None:
            raise KeyError(event_id)
        url, secret = self._target(event)
        if not url:
            raise RuntimeError("webhook_url is not set")
        body, headers = self.signed(event, secret=secret)
        headers["Host"] = self.webhook_host or urlsplit(url).netloc
        try:
            status = post(url, body, headers)
        except Exception as exc:
            with self._lock:
                self.deliveries.append((event_id, f"{type(exc).__name__}: {exc}"))
            raise
        with self._lock:
            self.deliveries.append((event_id, status))
        return status

    def complete_checkout(self, session_id: str, card="4242424242424242", email=None) -> dict:
        """Pay an open session as the hosted page would; raises CardDeclined for a declining card."""
        pending: list = []
        try:
            with self._lock:
                session = self._get(self._owner.get(session_id), "checkout.session", session_id)
                self._lazy_expire(session, pending)
                if session["status"] != "open":
                    raise ValueError(f"Checkout Session {session_id} is {session['status']}")
                self._pay(session, card, email, pending)
                self._save()
                return public(session)
        finally:
            self._deliver_all(pending)

    def complete_onboarding(self, account_id: str) -> dict:
        pending: list = []
        with self._lock:
            account = self._get(None, "account", account_id)
            self._complete_account(account, pending)
            self._save()
            result = public(account)
        self._deliver_all(pending)
        return result

    def fail_subscription_payment(self, subscription_id: str) -> dict:
        """A renewal whose card is declined: a new open invoice, the subscription ``past_due``, and
        ``invoice.payment_failed`` then ``customer.subscription.updated`` (Smart Retries would follow)."""
        return self._subscription_control(subscription_id, "payment_failed")

    def recover_subscription_payment(self, subscription_id: str) -> dict:
        """The open invoice gets paid (a retry or a new card): ``active`` again, ``invoice.paid`` and
        ``customer.subscription.updated``."""
        return self._subscription_control(subscription_id, "payment_recovered")

    def end_subscription(self, subscription_id: str) -> dict:
        """Retries exhausted (or canceled in the Dashboard): ``customer.subscription.deleted``."""
        return self._subscription_control(subscription_id, "delete")

    def _subscription_control(self, subscription_id: str, action: str) -> dict:
        pending: list = []
        with self._lock:
            sub = self._get(self._owner.get(subscription_id), "subscription", subscription_id)
            acct = self._owner[sub["id"]]
            if sub["status"] in ("canceled", "incomplete_expired"):
                raise ValueError(f"subscription {subscription_id} is {sub['status']}")
            if action == "payment_failed":
                invoice = self._invoice(acct, sub, paid=False, reason="subscription_cycle")
                sub["status"] = "past_due"
                self._emit(pending, "invoice.payment_failed", invoice, acct)
                self._emit(pending, "customer.subscription.updated", sub, acct)
            elif action == "payment_recovered":
                self._settle_open_invoice(sub, pending)
            elif action == "delete":
                self._end_subscription(sub, pending)
            else:
                raise ValueError(f"unknown action {action!r}")
            self._save()
            result = public(sub)
        self._deliver_all(pending)
        return result

    def _settle_open_invoice(self, sub: dict, pending: list):
        acct = self._owner[sub["id"]]
        invoice = self._store.get(sub["latest_invoice"])
        if invoice and invoice["status"] == "open":
            invoice.update(status="paid", paid=True, amount_paid=invoice["amount_due"], amount_remaining=0)
            invoice.update(next_payment_attempt=None)
            self._emit(pending, "invoice.paid", invoice, acct)
        if sub["status"] in ("past_due", "unpaid"):
            sub["status"] = "active"
            self._emit(pending, "customer.subscription.updated", sub, acct)

    # -- WSGI ---------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            name, args = self._urls.bind_to_environ(environ).match()
        except HTTPException as exc:
            if not request.path.startswith("/v1/"):
                return exc(environ, start_response)
            name, args = None, {}
        if request.path.startswith("/v1/"):
            response = self._api(request, name, args)
        else:
            response = getattr(self, f"_{name}")(request, **args)
        return response(environ, start_response)

    def _api(self, request: Request, name: str | None, args: dict) -> Response:
        params = decode_params([*request.args.items(multi=True), *request.form.items(multi=True)])
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        recorded = Recorded(request.method, request.path, headers, params)
        with self._lock:
            self.requests.append(recorded)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        call = _Call(request.method, request.headers.get("Stripe-Account") or None, params, key)
        status, body, extra = self._answer(request, name, args, call)
        recorded.status = status
        self._deliver_all(call.events)  # before answering, so tests see a deterministic order
        headers = {"Request-Id": call.request_id, "Stripe-Version": stripe.api_version, **extra}
        return json_response(status, body, headers)

    def _answer(self, request: Request, name: str | None, args: dict, call: _Call) -> tuple[int, dict, dict]:
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ").strip()
            message = f"Invalid API Key provided: {given[:8]}{'*' * 8}{given[-4:]}" if given else "No API key provided."
            return 401, {"error": ApiError(401, "invalid_request_error", message).error}, {}
        injected = self._injected(request.method, request.path)
        if injected:
            return injected
        if name is None:
            error = invalid(f"Unrecognized request URL ({request.method}: {request.path}).", status=404)
            return 404, {"error": error.error}, {}
        if not call.idempotency_key:
            return self._run(name, args, call)
        scope = json.dumps([call.account or "platform", call.idempotency_key])
        fingerprint = json.dumps([request.method, request.path, call.params], sort_keys=True)
        echo = {"Idempotency-Key": call.idempotency_key}
        with self._lock:
            key_lock = self._key_locks.setdefault(scope, threading.Lock())
        with key_lock:  # concurrent requests with one key run one at a time, so only the first creates
            with self._lock:
                stored = self._idempotency.get(scope)
            if stored and stored["fingerprint"] != fingerprint:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{call.idempotency_key}' if you meant to execute a different "
                    "request."
                )
                return 400, {"error": ApiError(400, "idempotency_error", message).error}, echo
            if stored:
                return stored["status"], stored["body"], {**echo, "Idempotent-Replayed": "true"}
            status, body, headers = self._run(name, args, call)
            # Like Stripe, keep results of requests that ran; validation failures may be retried with the key.
            if status < 400 or status == 402:
                with self._lock:
                    self._idempotency[scope] = {"fingerprint": fingerprint, "status": status, "body": body}
                    self._save()
            return status, body, {**headers, **echo}

    def _run(self, name: str, args: dict, call: _Call) -> tuple[int, dict, dict]:
        try:
            with self._lock:
                try:
                    if call.account and self._kind(call.account) != "account":
                        raise invalid(
                            f"The provided key '{self.api_key[:8]}****' does not have access to account "
                            f"'{call.account}' (or that account does not exist).",
                            code="account_invalid",
                            status=403,
                        )
                    return 200, getattr(self, f"_{name}")(call, **args), {}
                finally:
                    if call.method == "POST":
                        self._save()
        except ApiError as exc:
            return exc.status, {"error": exc.error}, {}
        except Exception as exc:  # a bug here should look like Stripe's 500, not an HTML page
            traceback.print_exc()
            return 500, {"error": ApiError(500, "api_error", f"Stand-in error: {exc!r}").error}, {}

    def _injected(self, method: str, path: str) -> tuple[int, dict, dict] | None:
        rule = self._take_failure(method, path)
        if rule is None:
            return None
        status = rule["status"]
        type_, code = INJECTED.get(status, ("api_error" if status >= 500 else "invalid_request_error", None))
        error = ApiError(status, type_, f"Injected failure ({status}) from the Stripe stand-in.", code=code)
        return status, {"error": error.error}, {"Stripe-Should-Retry": rule["retry"]}

    # -- store --------------------------------------------------------------------------------------

    def _clear(self):
        self._store: dict[str, dict] = {}
        self._owner: dict[str, str | None] = {}  # object id -> connected account (None: platform)
        self._links: dict[str, dict] = {}
        self._idempotency: dict[str, dict] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self.events.clear()
        self.clock_offset = 0

    def _state(self) -> dict:
        return {
            "objects": self._store,
            "owners": self._owner,
            "links": self._links,
            "events": self.events,
            "idempotency": self._idempotency,
        }

    def _restore(self, state: dict):
        self._store, self._owner, self._links = state["objects"], state["owners"], state["links"]
        self.events[:] = state["events"]
        self._idempotency = state["idempotency"]

    def _kind(self, oid) -> str | None:
        obj = self._store.get(oid) if isinstance(oid, str) else None
        return obj and obj["object"]

    def _add(self, account: str | None, kind: str, fields: dict) -> dict:
        obj = {"id": new_id(PREFIXES[kind]), "object": kind, **fields, "livemode": False, "created": self.now()}
        self._store[obj["id"]] = obj
        self._owner[obj["id"]] = account
        return obj

    def _get(self, account: str | None, kind: str, oid, param: str | None = None) -> dict:
        """The object, if it is of ``kind`` and on ``account``; else 404 (or 400 naming ``param``)."""
        if param and not oid:
            raise invalid(f"Missing required param: {param}.", param, code="parameter_missing")
        if self._kind(oid) != kind or (kind != "account" and self._owner.get(oid) != account):
            label = LABELS.get(kind, kind)
            raise invalid(
                f"No such {label}: '{oid}'", param or "id", code="resource_missing", status=400 if param else 404
            )
        return self._store[oid]

    def _get_object(self, call: _Call, oid: str, kind: str) -> dict:
        obj = self._get(call.account, kind, oid)
        if kind == "checkout.session":
            self._lazy_expire(obj, call.events)
        out = public(obj)
        paths = call.params.get("expand") or []
        for path in [paths] if isinstance(paths, str) else paths:
            self._expand_path(out, path.split("."))
        return out

    def _expand_path(self, out: dict, parts: list[str]):
        ref = out.get(parts[0])
        if isinstance(ref, str) and ref in self._store:
            ref = out[parts[0]] = public(self._store[ref])
        if isinstance(ref, dict) and len(parts) > 1:
            self._expand_path(ref, parts[1:])

    def _emit(self, pending: list, type_: str, obj: dict, account: str | None, request: dict | None = None):
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": self.now(),
            "type": type_,
            "livemode": False,
            **({"account": account} if account else {}),
            "pending_webhooks": 1,
            "request": request or {"id": None, "idempotency_key": None},
            "data": {"object": public(obj)},
        }
        self.events.append(event)
        pending.append(event)

    def _deliver_all(self, events: list):
        """Send events outside the lock (the app may call back in); failures are only recorded."""
        for event in events:
            if not self._target(event)[0]:
                continue
            try:
                self.deliver(event["id"])
            except Exception:
                pass

    # -- accounts -----------------------------------------------------------------------------------

    def _create_account(self, call: _Call) -> dict:
        p = call.params
        country = (p.get("country") or "US").upper()
        fields = {
            "type": p.get("type") or "standard",
            "country": country,
            "email": p.get("email") or None,
            "default_currency": CURRENCY_BY_COUNTRY.get(country, "usd"),
            "charges_enabled": False,
            "details_submitted": False,
            "payouts_enabled": False,
            "business_profile": p.get("business_profile") or {},
            "metadata": metadata(p),
        }
        return public(self._add(None, "account", fields))

    def _create_account_link(self, call: _Call) -> dict:
        p = call.params
        account = self._get(None, "account", p.get("account"), "account")
        if p.get("type") not in ("account_onboarding", "account_update"):
            raise invalid("Invalid type: must be one of account_onboarding or account_update", "type")
        token = secrets.token_urlsafe(18)
        expires_at = self.now() + LINK_TTL_S
        self._links[token] = {
            "account": account["id"],
            "refresh_url": required(p, "refresh_url"),
            "return_url": required(p, "return_url"),
            "expires_at": expires_at,
            "state": "new",
        }
        url = f"{self._base()}/connect/onboard/{token}"
        return {"object": "account_link", "created": self.now(), "expires_at": expires_at, "url": url}

    def _complete_account(self, account: dict, pending: list):
        account.update(charges_enabled=True, details_submitted=True, payouts_enabled=True)
        self._emit(pending, "account.updated", account, account["id"])

    # -- checkout -----------------------------------------------------------------------------------

    def _create_session(self, call: _Call) -> dict:
        p, acct = call.params, call.account
        mode = p.get("mode")
        if mode not in ("payment", "subscription"):
            raise invalid("The stand-in supports mode=payment and mode=subscription.", "mode")
        required(p, "success_url")
        if mode == "subscription":
            for param in ("payment_intent_data", "customer_creation"):
                if p.get(param):
                    raise invalid(f"You can not pass `{param}` in `subscription` mode.", param)
        items, currency, total = [], None, 0
        for i, item in enumerate(required(p, "line_items")):
            name = f"line_items[{i}]"
            if mode == "subscription":
                line = self._subscription_line(acct, item, name)
                if currency and line["currency"] != currency:
                    raise invalid("All line items must use the same currency.", f"{name}[price]")
                currency = line["currency"]
                items.append(line)
                total += line["unit_amount"] * line["quantity"]
                continue
            data = item.get("price_data") or {}
            if not data:
                raise invalid(f"Missing required param: {name}[price_data].", f"{name}[price_data]")
            unit = to_int(data.get("unit_amount"), f"{name}[price_data][unit_amount]")
            quantity = to_int(item.get("quantity", 1), f"{name}[quantity]")
            item_currency = str(required(data, "currency")).lower()
            if currency and item_currency != currency:
                raise invalid("All line items must use the same currency.", f"{name}[price_data][currency]")
            currency = item_currency
            product = (data.get("product_data") or {}).get("name")
            if not product:
                raise invalid(f"Missing required param: {name}[price_data][product_data][name].", name)
            items.append({"name": product, "unit_amount": unit, "quantity": quantity})
            total += unit * quantity
        if total < 50:
            message = f"The Checkout Session's total amount due must add up to at least {money(50, currency)}"
            raise invalid(message, "line_items", code="amount_too_small")
        now = self.now()
        expires_at = to_int(p.get("expires_at", now + SESSION_MAX_S), "expires_at")
        if not now + SESSION_MIN_S <= expires_at <= now + SESSION_MAX_S:
            message = "The `expires_at` timestamp must be 30 minutes to 24 hours from Checkout Session creation."
            raise invalid(message, "expires_at")
        if p.get("customer") and p.get("customer_email"):
            raise invalid("You may only specify one of these parameters: customer, customer_email.", "customer")
        customer = self._get(acct, "customer", p["customer"], "customer")["id"] if p.get("customer") else None
        intent_data = p.get("payment_intent_data") or {}
        self._fee(intent_data.get("application_fee_amount"), acct, total, "payment_intent_data[application_fee_amount]")
        session = self._add(
            acct,
            "checkout.session",
            {
                "url": None,
                "status": "open",
                "payment_status": "unpaid",
                "amount_subtotal": total,
                "amount_total": total,
                "currency": currency,
                "customer": customer,
                "customer_email": p.get("customer_email") or None,
                "customer_details": None,
                "payment_intent": None,
                "metadata": metadata(p),
                "client_reference_id": p.get("client_reference_id") or None,
                "expires_at": expires_at,
                "success_url": p["success_url"],
                "cancel_url": p.get("cancel_url") or None,
                "mode": mode,
                "subscription": None,
                "invoice": None,
                "_line_items": items,
                "_payment_intent_data": intent_data,
                "_subscription_data": p.get("subscription_data") or {},
            },
        )
        session["url"] = f"{self._base()}/checkout/pay/{session['id']}"
        return public(session)

    def _expire_session(self, call: _Call, oid: str) -> dict:
        session = self._get(call.account, "checkout.session", oid)
        self._lazy_expire(session, call.events)
        if session["status"] != "open":
            raise invalid('Only Checkout Sessions with a status in ["open"] can be expired.')
        self._expire(session, call.events, call.request)
        return public(session)

    def _lazy_expire(self, session: dict, pending: list):
        if session["status"] == "open" and self.now() >= session["expires_at"]:
            self._expire(session, pending)

    def _expire(self, session: dict, pending: list, request: dict | None = None):
        session.update(status="expired", url=None)  # Stripe keeps the URL only while the session is open
        self._emit(pending, "checkout.session.expired", session, self._owner[session["id"]], request)

    def _pay(self, session: dict, card: str, email: str | None, pending: list):
        """What the hosted page's Pay does: raises CardDeclined, or completes the session and emits events."""
        number = re.sub(r"\D", "", card or "")
        brand, outcome = CARDS.get(number, (None, "Your card number is invalid."))
        if outcome not in ("ok", "auth"):
            raise CardDeclined(outcome)
        if session["mode"] == "subscription":
            self._pay_subscription(session, number, brand, email, pending)
            return
        acct, data = self._owner[session["id"]], session["_payment_intent_data"]
        customer = session["customer"]
        email = email or session["customer_email"] or (customer and self._store[customer]["email"])
        if not customer:
            customer = self._add(acct, "customer", self._customer_fields({"email": email}))["id"]
        method = self._payment_method(acct, number, brand, customer if data.get("setup_future_usage") else None, email)
        totals = {"amount": session["amount_total"], "currency": session["currency"]}
        intent = self._new_intent(acct, {**data, **totals, "customer": customer, "payment_method": method["id"]})
        self._charge(acct, intent)
        session.update(status="complete", payment_status="paid", url=None, customer=customer)
        session.update(payment_intent=intent["id"], customer_details={"email": email})
        self._emit(pending, "checkout.session.completed", session, acct)
        self._emit(pending, "payment_intent.succeeded", intent, acct)

    # -- customers and payment methods --------------------------------------------------------------

    @staticmethod
    def _customer_fields(p: dict) -> dict:
        return {
            "email": p.get("email") or None,
            "name": p.get("name") or None,
            "phone": p.get("phone") or None,
            "description": p.get("description") or None,
            "metadata": metadata(p),
            "invoice_settings": {"default_payment_method": None},
        }

    def _create_customer(self, call: _Call) -> dict:
        return public(self._add(call.account, "customer", self._customer_fields(call.params)))

    def _payment_method(self, acct, number: str, brand: str, customer: str | None, email: str | None) -> dict:
        card = {"brand": brand, "last4": number[-4:], "exp_month": 12, "exp_year": time.gmtime().tm_year + 3}
        fields = {
            "type": "card",
            "card": {**card, "funding": "credit", "country": "US"},
            "customer": customer,
            "billing_details": {"email": email},
            "_number": number,
        }
        return self._add(acct, "payment_method", fields)

    def _list_payment_methods(self, call: _Call, customer: str | None = None) -> dict:
        p = call.params
        customer = customer or p.get("customer")
        if customer:
            self._get(call.account, "customer", customer, "customer")
        limit = to_int(p.get("limit", 10), "limit")
        found = [
            public(pm)
            for oid, pm in reversed(self._store.items())
            if pm["object"] == "payment_method" and self._owner[oid] == call.account
            if (not customer or pm["customer"] == customer) and pm["type"] == p.get("type", pm["type"])
        ]
        url = f"/v1/customers/{customer}/payment_methods" if customer else "/v1/payment_methods"
        return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": url}

    # -- payment intents, charges, refunds ----------------------------------------------------------

    def _fee(self, value, acct: str | None, amount: int, param="application_fee_amount") -> int | None:
        if value in (None, ""):
            return None
        fee = to_int(value, param)
        if not acct:  # Stripe refuses a fee on a platform charge: a missing Stripe-Account is a bug worth catching
            raise invalid("Can only apply an application_fee_amount on a direct charge (Stripe-Account header).", param)
        if not 0 <= fee <= amount:
            raise invalid("The application fee must be between 0 and the amount of the payment.", param)
        return fee

    def _new_intent(self, acct: str | None, p: dict) -> dict:
        """A PaymentIntent from create params, not yet confirmed."""
        amount = to_int(required(p, "amount"), "amount")
        currency = str(required(p, "currency")).lower()
        if amount < 50:
            raise invalid(
                f"Amount must be at least {money(50, currency)} {currency}", "amount", code="amount_too_small"
            )
        customer = self._get(acct, "customer", p["customer"], "customer") if p.get("customer") else None
        method = (
            self._get(acct, "payment_method", p["payment_method"], "payment_method")
            if p.get("payment_method")
            else None
        )
        if method and method["customer"] and not customer:
            raise invalid("The PaymentMethod is attached to a Customer; pass that Customer too.", "customer")
        if method and customer and method["customer"] not in (None, customer["id"]):
            raise invalid(f"The PaymentMethod {method['id']} does not belong to the Customer.", "payment_method")
        fields = {
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "status": "requires_confirmation" if method else "requires_payment_method",
            "customer": customer and customer["id"],
            "payment_method": method and method["id"],
            "application_fee_amount": self._fee(p.get("application_fee_amount"), acct, amount),
            "metadata": metadata(p),
            "description": p.get("description") or None,
            "setup_future_usage": p.get("setup_future_usage") or None,
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
        }
        intent = self._add(acct, "payment_intent", fields)
        intent["client_secret"] = f"{intent['id']}_secret_{new_id('x')[2:]}"
        return intent

    def _charge(self, acct, intent: dict) -> dict:
        method = self._store[intent["payment_method"]]
        copied = {k: copy.deepcopy(intent[k]) for k in ("amount", "currency", "customer", "application_fee_amount")}
        fields = {"amount_refunded": 0, "payment_intent": intent["id"], "payment_method": method["id"]}
        fields.update(metadata=dict(intent["metadata"]), paid=True, refunded=False, status="succeeded")
        card = {k: method["card"][k] for k in ("brand", "last4")}
        charge = self._add(
            acct, "charge", {**copied, **fields, "payment_method_details": {"type": "card", "card": card}}
        )
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
        return charge

    def _create_payment_intent(self, call: _Call) -> dict:
        p, acct = call.params, call.account
        confirm, off_session = to_bool(p.get("confirm")), to_bool(p.get("off_session"))
        if off_session and not confirm:
            raise invalid("`off_session` can only be used with `confirm=true`.", "off_session")
        if confirm and not p.get("payment_method"):
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method.", "payment_method"
            )
        intent = self._new_intent(acct, p)
        method = intent["payment_method"] and self._store[intent["payment_method"]]
        if not confirm:
            return public(intent)
        needs_auth = CARDS[method["_number"]][1] == "auth"
        if needs_auth and off_session:
            codes = {"code": "authentication_required", "decline_code": "authentication_required"}
            error = {"type": "card_error", **codes, "message": AUTH_DECLINE, "payment_method": public(method)}
            intent.update(status="requires_payment_method", payment_method=None, last_payment_error=error)
            self._emit(call.events, "payment_intent.payment_failed", intent, acct, call.request)
            raise ApiError(
                402, "card_error", AUTH_DECLINE, **codes, payment_intent=public(intent), payment_method=public(method)
            )
        if needs_auth:
            intent.update(status="requires_action", next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}})
            return public(intent)
        if intent["setup_future_usage"] and intent["customer"] and not method["customer"]:
            method["customer"] = intent["customer"]
        self._charge(acct, intent)
        self._emit(call.events, "payment_intent.succeeded", intent, acct, call.request)
        return public(intent)

    def _create_refund(self, call: _Call) -> dict:
        p, acct = call.params, call.account
        if p.get("charge"):
            charge = self._get(acct, "charge", p["charge"], "charge")
        elif p.get("payment_intent"):
            intent = self._get(acct, "payment_intent", p["payment_intent"], "payment_intent")
            if not intent["latest_charge"]:
                raise invalid(
                    f"PaymentIntent {intent['id']} does not have a successful charge to refund.", "payment_intent"
                )
            charge = self._store[intent["latest_charge"]]
        else:
            raise invalid("One of the following params should be provided for this request: payment_intent or charge.")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = to_int(p.get("amount", remaining), "amount")
        if amount <= 0:
            raise invalid("Invalid positive integer", "amount")
        if amount > remaining:
            raise invalid(
                f"Refund amount ({money(amount, charge['currency'])}) is greater than unrefunded amount on charge "
                f"({money(remaining, charge['currency'])})",
                "amount",
                code="amount_too_large",
            )
        reason = p.get("reason") or None
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise invalid("Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer", "reason")
        refund = self._add(
            acct,
            "refund",
            {
                "amount": amount,
                "currency": charge["currency"],
                "status": "succeeded",
                "payment_intent": charge["payment_intent"],
                "charge": charge["id"],
                "reason": reason,
                "metadata": metadata(p),
            },
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit(call.events, "charge.refunded", charge, acct, call.request)
        return public(refund)

    # -- billing: products, prices, subscriptions, invoices ----------------------------------------

    def _create_product(self, call: _Call) -> dict:
        p = call.params
        fields = {"name": required(p, "name"), "active": p.get("active", "true") != "false", "metadata": metadata(p)}
        return public(self._add(call.account, "product", fields))

    def _create_price(self, call: _Call) -> dict:
        p, acct = call.params, call.account
        if p.get("product"):
            product = self._get(acct, "product", p["product"], "product")
        elif (p.get("product_data") or {}).get("name"):
            product = self._add(acct, "product", {"name": p["product_data"]["name"], "active": True, "metadata": {}})
        else:
            raise invalid("Missing required param: product.", "product", code="parameter_missing")
        amount = to_int(required(p, "unit_amount"), "unit_amount")
        if amount < 0:
            raise invalid("Invalid non-negative integer", "unit_amount")
        recurring = p.get("recurring") or None
        if recurring is not None:
            interval = recurring.get("interval")
            if interval not in ("day", "week", "month", "year"):
                raise invalid("Invalid recurring[interval]: must be one of day, week, month, or year", "recurring")
            recurring = {
                "interval": interval,
                "interval_count": to_int(recurring.get("interval_count", 1), "recurring"),
            }
        key = p.get("lookup_key") or None
        holder = next(
            (o for o in self._store.values() if o["object"] == "price" and key and o["lookup_key"] == key), None
        )
        if holder is not None:  # lookup keys are unique per account; transfer_lookup_key moves one
            if not to_bool(p.get("transfer_lookup_key")):
                raise invalid(
                    f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key", code="lookup_key_in_use"
                )
            holder["lookup_key"] = None
        fields = {
            "product": product["id"],
            "unit_amount": amount,
            "currency": str(required(p, "currency")).lower(),
            "recurring": recurring,
            "type": "recurring" if recurring else "one_time",
            "lookup_key": key,
            "nickname": p.get("nickname") or None,
            "active": p.get("active", "true") != "false",
            "metadata": metadata(p),
        }
        return public(self._add(acct, "price", fields))

    def _list_prices(self, call: _Call) -> dict:
        p = call.params
        keys = p.get("lookup_keys") or []
        keys = [keys] if isinstance(keys, str) else keys
        if len(keys) > 10:
            raise invalid("You can specify up to 10 lookup_keys.", "lookup_keys")
        active = p.get("active")
        limit = to_int(p.get("limit", 10), "limit")
        found = [
            public(price)
            for oid, price in reversed(self._store.items())
            if price["object"] == "price" and self._owner[oid] == call.account
            if (not keys or price["lookup_key"] in keys) and (active is None or price["active"] == to_bool(active))
            if not p.get("product") or price["product"] == p["product"]
        ]
        return {"object": "list", "data": found[:limit], "has_more": len(found) > limit, "url": "/v1/prices"}

    def _recurring_price(self, acct, price_id, param: str) -> dict:
        price = self._get(acct, "price", price_id, param)
        if not price["recurring"]:
            raise invalid(f"The price `{price_id}` is not recurring; subscriptions need a recurring price.", param)
        if not price["active"]:
            raise invalid(f"The price `{price_id}` is not active.", param)
        return price

    def _subscription_line(self, acct, item: dict, name: str) -> dict:
        """A Checkout line item in subscription mode: a recurring Price by id."""
        if item.get("price_data"):
            raise invalid("The stand-in takes `price` (an id) in subscription mode.", f"{name}[price_data]")
        price = self._recurring_price(acct, item.get("price"), f"{name}[price]")
        quantity = to_int(item.get("quantity", 1), f"{name}[quantity]")
        return {
            "name": self._store[price["product"]]["name"],
            "unit_amount": price["unit_amount"],
            "quantity": quantity,
            "currency": price["currency"],
            "price": price["id"],
            "interval": price["recurring"]["interval"],
        }

    def _item(self, sub_id: str, price: dict, quantity: int, start: int) -> dict:
        return {
            "id": new_id("si", 14),
            "object": "subscription_item",
            "price": public(price),
            "quantity": quantity,
            "subscription": sub_id,
            "current_period_start": start,
            "current_period_end": start + PERIOD_S,
        }

    def _invoice(self, acct, sub: dict, *, paid: bool, reason: str) -> dict:
        amount = sum(i["price"]["unit_amount"] * i["quantity"] for i in sub["items"]["data"])
        fields = {
            "customer": sub["customer"],
            "status": "paid" if paid else "open",
            "paid": paid,
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount,
            "currency": sub["currency"],
            "attempt_count": 1,
            "attempted": True,
            "billing_reason": reason,
            "next_payment_attempt": None if paid else self.now() + 3 * 24 * 3600,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub["id"]}},
        }
        invoice = self._add(acct, "invoice", fields)
        sub["latest_invoice"] = invoice["id"]
        return invoice

    def _pay_subscription(self, session: dict, number: str, brand: str, email: str | None, pending: list):
        """The hosted page's Subscribe: a customer with the card as default, an active subscription and
        its first paid invoice; then checkout.session.completed and the subscription's own events."""
        acct = self._owner[session["id"]]
        customer = session["customer"]
        email = email or session["customer_email"] or (customer and self._store[customer]["email"])
        if not customer:
            customer = self._add(acct, "customer", self._customer_fields({"email": email}))["id"]
        method = self._payment_method(acct, number, brand, customer, email)
        self._store[customer]["invoice_settings"]["default_payment_method"] = method["id"]
        now = self.now()
        sub = self._add(
            acct,
            "subscription",
            {
                "customer": customer,
                "status": "active",
                "currency": session["currency"],
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "start_date": now,
                "default_payment_method": method["id"],
                "latest_invoice": None,
                "metadata": metadata(session["_subscription_data"]),
            },
        )
        lines = [(self._store[line["price"]], line["quantity"]) for line in session["_line_items"]]
        data = [self._item(sub["id"], price, quantity, now) for price, quantity in lines]
        sub["items"] = {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        }
        invoice = self._invoice(acct, sub, paid=True, reason="subscription_create")
        session.update(status="complete", payment_status="paid", url=None, customer=customer)
        session.update(subscription=sub["id"], invoice=invoice["id"], customer_details={"email": email})
        self._emit(pending, "checkout.session.completed", session, acct)
        self._emit(pending, "customer.subscription.created", sub, acct)
        self._emit(pending, "invoice.paid", invoice, acct)

    def _update_subscription(self, call: _Call, oid: str) -> dict:
        p, acct = call.params, call.account
        sub = self._get(acct, "subscription", oid)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid("A canceled subscription can only update its cancellation_details and metadata.")
        behaviour = p.get("proration_behavior", "create_prorations")
        if behaviour not in ("create_prorations", "none", "always_invoice"):
            message = "Invalid proration_behavior: must be one of create_prorations, none, or always_invoice"
            raise invalid(message, "proration_behavior")
        items = p.get("items") or []
        for i, change in enumerate(items if isinstance(items, list) else []):
            name = f"items[{i}]"
            current = next((x for x in sub["items"]["data"] if x["id"] == change.get("id")), None)
            if change.get("id") and current is None:
                raise invalid(f"No such subscription item: '{change['id']}'", f"{name}[id]", code="resource_missing")
            if to_bool(change.get("deleted")):
                sub["items"]["data"].remove(current)
                continue
            price = self._recurring_price(acct, change.get("price"), f"{name}[price]") if change.get("price") else None
            if price and price["currency"] != sub["currency"]:
                raise invalid("The price's currency must match the subscription's.", f"{name}[price]")
            quantity = to_int(change.get("quantity", current["quantity"] if current else 1), f"{name}[quantity]")
            if current is None:
                if price is None:
                    raise invalid(f"Missing required param: {name}[price].", f"{name}[price]")
                start = sub["items"]["data"][0]["current_period_start"] if sub["items"]["data"] else self.now()
                sub["items"]["data"].append(self._item(sub["id"], price, quantity, start))
            else:
                current.update(quantity=quantity, **({"price": public(price)} if price else {}))
        if not sub["items"]["data"]:
            raise invalid("A subscription needs at least one item.", "items")
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = to_bool(p["cancel_at_period_end"])
            end = sub["items"]["data"][0]["current_period_end"]
            sub["cancel_at"] = end if sub["cancel_at_period_end"] else None
            sub["canceled_at"] = self.now() if sub["cancel_at_period_end"] else None
        if "metadata" in p:
            sub["metadata"] = {**sub["metadata"], **(p["metadata"] or {})}
            sub["metadata"] = {k: v for k, v in sub["metadata"].items() if v != ""}
        sub["_last_proration_behavior"] = behaviour
        self._emit(call.events, "customer.subscription.updated", sub, acct, call.request)
        return public(sub)

    def _cancel_subscription(self, call: _Call, oid: str) -> dict:
        sub = self._get(call.account, "subscription", oid)
        if sub["status"] in ("canceled", "incomplete_expired"):
            raise invalid(f"This subscription ({oid}) is already canceled.")
        self._end_subscription(sub, call.events, call.request)
        return public(sub)

    def _end_subscription(self, sub: dict, pending: list, request: dict | None = None):
        now = self.now()
        sub.update(status="canceled", canceled_at=sub["canceled_at"] or now, ended_at=now, cancel_at_period_end=False)
        self._emit(pending, "customer.subscription.deleted", sub, self._owner[sub["id"]], request)

    def _create_portal_session(self, call: _Call) -> dict:
        p = call.params
        customer = self._get(call.account, "customer", p.get("customer"), "customer")
        fields = {"customer": customer["id"], "return_url": p.get("return_url") or None, "url": None}
        session = self._add(call.account, "billing_portal.session", fields)
        session["url"] = f"{self._base()}/billing/portal/{session['id']}"
        return public(session)

    # -- hosted pages and control endpoints ----------------------------------------------------------

    def _base(self) -> str:
        return (self.public_url or self.url).rstrip("/")

    def _checkout_page(self, request: Request, oid: str) -> Response:
        pending: list = []
        with self._lock:
            session = self._store.get(oid)
            if not session or session["object"] != "checkout.session":
                return _html(404, "Not found", "<h1>Not found</h1><p>This checkout link is not valid.</p>")
            self._lazy_expire(session, pending)
            error = None
            if request.method == "POST" and session["status"] == "open":
                try:
                    self._pay(session, request.form.get("card", ""), request.form.get("email") or None, pending)
                except CardDeclined as exc:
                    error = str(exc)
            self._save()
            status = session["status"]
            success_url = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
            page = self._checkout_html(session, error) if status == "open" else None
        self._deliver_all(pending)  # before the redirect, so the app has seen the payment when the buyer returns
        if status == "complete" and request.method == "POST":
            return redirect(success_url, 303)
        if status == "complete":
            return _html(200, "Paid", "<h1>Payment complete</h1><p>This checkout session has already been paid.</p>")
        if status == "expired":
            return _html(410, "Expired", "<h1>Session expired</h1><p>This checkout session has expired.</p>")
        return _html(200, "Checkout", page)

    def _checkout_html(self, session: dict, error: str | None) -> str:
        esc, currency = html.escape, session["currency"]
        total = money(session["amount_total"], currency)
        subscribing = session["mode"] == "subscription"
        if subscribing:  # recurring prices: the hosted page says how often, and the button subscribes
            total += f" per {session['_line_items'][0]['interval']}"
        customer = session["customer"]
        email = session["customer_email"] or (customer and self._store[customer]["email"]) or ""
        rows = ""
        for item in session["_line_items"]:
            name = item["name"] + (f" × {item['quantity']}" if item["quantity"] > 1 else "")
            amount = money(item["unit_amount"] * item["quantity"], currency)
            rows += f"<li><span>{esc(name)}</span><span>{esc(amount)}</span></li>"
        alert = f'<p class="error" role="alert" data-testid="checkout-error">{esc(error)}</p>' if error else ""
        back = f'<a class="back" href="{esc(session["cancel_url"])}">Back</a>' if session["cancel_url"] else ""
        return (
            f'<h1 data-testid="checkout-total">{esc(total)}</h1><ul class="items">{rows}</ul>{alert}'
            '<form method="post" data-testid="checkout-form">'
            f'<label>Email<input type="email" name="email" value="{esc(email)}" autocomplete="email" '
            'data-testid="checkout-email"></label>'
            '<label>Card number<input name="card" inputmode="numeric" autocomplete="cc-number" '
            'placeholder="4242 4242 4242 4242" data-testid="checkout-card" required></label>'
            f'<button type="submit">{"Subscribe" if subscribing else "Pay " + esc(total)}</button></form>{back}'
        )

    def _onboard_page(self, request: Request, token: str) -> Response:
        pending: list = []
        with self._lock:
            link = self._links.get(token)
            if link is None:
                return _html(404, "Not found", "<h1>Not found</h1><p>This onboarding link is not valid.</p>")
            account = self._store[link["account"]]
            target = link["refresh_url"]  # a used or expired link sends the user back to mint a new one
            if request.method == "GET" and link["state"] == "new" and self.now() <= link["expires_at"]:
                link["state"], target = "visited", None
            elif request.method == "POST" and link["state"] == "visited":
                link["state"], target = "used", link["return_url"]
                self._complete_account(account, pending)
            self._save()
        self._deliver_all(pending)
        if target:
            return redirect(target, 303 if request.method == "POST" else 302)
        body = (
            "<h1>Stripe test onboarding</h1>"
            f"<p>Stripe test onboarding: {html.escape(account['email'] or account['id'])}</p>"
            '<form method="post"><button type="submit" data-testid="onboard-submit">Submit details</button></form>'
            f'<a class="back" href="{html.escape(link["return_url"])}">Not now</a>'
        )
        return _html(200, "Stripe test onboarding", body)

    def _health(self, request: Request) -> Response:
        with self._lock:
            body = {"ok": True, "objects": len(self._store), "events": len(self.events)}
        return Response(json.dumps(body), 200, mimetype="application/json")

    def _complete_account_page(self, request: Request, oid: str) -> Response:
        if request.remote_addr not in ("127.0.0.1", "::1"):
            return Response(json.dumps({"error": "loopback only"}), 403, mimetype="application/json")
        try:
            body, status = self.complete_onboarding(oid), 200
        except ApiError as exc:
            body, status = {"error": exc.error}, exc.status
        return Response(json.dumps(body), status, mimetype="application/json")

    def _subscription_control_page(self, request: Request, oid: str, action: str) -> Response:
        """Loopback control for the demo: payment_failed, payment_recovered or delete a subscription."""
        if request.remote_addr not in ("127.0.0.1", "::1"):
            return Response(json.dumps({"error": "loopback only"}), 403, mimetype="application/json")
        try:
            body, status = self._subscription_control(oid, action), 200
        except ApiError as exc:
            body, status = {"error": exc.error}, exc.status
        except ValueError as exc:
            body, status = {"error": {"message": str(exc)}}, 400
        return Response(json.dumps(body), status, mimetype="application/json")

    def _portal_page(self, request: Request, oid: str) -> Response:
        """The customer portal, cut down: each subscription with cancel or renew at period end, and a new
        card (which also pays an open invoice, as the real portal's retry does)."""
        pending: list = []
        with self._lock:
            session = self._store.get(oid)
            if not session or session["object"] != "billing_portal.session":
                return _html(404, "Not found", "<h1>Not found</h1><p>This billing link is not valid.</p>")
            acct, customer = self._owner[oid], session["customer"]
            subs = [
                o
                for o in self._store.values()
                if o["object"] == "subscription" and o["customer"] == customer and o["status"] in SUBSCRIPTION_LIVE
            ]
            error = None
            if request.method == "POST":
                sub = next((s for s in subs if s["id"] == request.form.get("subscription")), None)
                action = request.form.get("action")
                if sub is None:
                    error = "That subscription is no longer active."
                elif action in ("cancel", "renew"):
                    sub["cancel_at_period_end"] = action == "cancel"
                    end = sub["items"]["data"][0]["current_period_end"]
                    sub["cancel_at"] = end if action == "cancel" else None
                    sub["canceled_at"] = self.now() if action == "cancel" else None
                    self._emit(pending, "customer.subscription.updated", sub, acct)
                elif action == "card":
                    number = re.sub(r"\D", "", request.form.get("card", ""))
                    brand, outcome = CARDS.get(number, (None, "Your card number is invalid."))
                    if outcome not in ("ok", "auth"):
                        error = outcome
                    else:
                        method = self._payment_method(acct, number, brand, customer, self._store[customer]["email"])
                        self._store[customer]["invoice_settings"]["default_payment_method"] = method["id"]
                        sub["default_payment_method"] = method["id"]
                        self._settle_open_invoice(sub, pending)
                self._save()
            page = self._portal_html(session, subs, error)
        self._deliver_all(pending)
        if request.method == "POST" and error is None:
            return redirect(request.path, 303)
        return _html(200 if error is None else 402, "Billing", page)

    def _portal_html(self, session: dict, subs: list, error: str | None) -> str:
        esc = html.escape
        rows = ""
        for sub in subs:
            item = sub["items"]["data"][0]
            price = item["price"]
            name = self._store[price["product"]]["name"] if price["product"] in self._store else price["id"]
            amount = money(price["unit_amount"] * item["quantity"], price["currency"])
            ends = time.strftime("%b %d, %Y", time.gmtime(item["current_period_end"]))
            state = f"Cancels on {ends}" if sub["cancel_at_period_end"] else f"Renews on {ends}"
            if sub["status"] == "past_due":
                state = "Payment failed: update your card"
            action, label = ("renew", "Renew plan") if sub["cancel_at_period_end"] else ("cancel", "Cancel plan")
            hidden = f'<input type="hidden" name="subscription" value="{esc(sub["id"])}">'
            rows += (
                f'<section data-testid="portal-subscription"><h1>{esc(name)}</h1>'
                f'<p>{esc(amount)} per {esc(price["recurring"]["interval"])} · <span data-testid="portal-state">'
                f"{esc(state)}</span></p>"
                f'<form method="post">{hidden}<input type="hidden" name="action" value="{action}">'
                f'<button type="submit" data-testid="portal-{action}">{label}</button></form>'
                f'<form method="post">{hidden}<input type="hidden" name="action" value="card">'
                '<label>New card<input name="card" inputmode="numeric" placeholder="4242 4242 4242 4242" '
                'data-testid="portal-card" required></label><button type="submit">Update card</button></form></section>'
            )
        if not rows:
            rows = "<h1>Billing</h1><p>No active subscription.</p>"
        alert = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
        back = f'<a class="back" href="{esc(session["return_url"])}">Return</a>' if session["return_url"] else ""
        return f"{alert}{rows}{back}"


PAGE_CSS = (
    "body{margin:0;background:#f6f8fa;color:#1a1f36;font:16px/1.45 system-ui,-apple-system,sans-serif}"
    "main{max-width:26rem;margin:0 auto;padding:1.25rem 1rem}"
    ".test{display:inline-block;background:#ffde92;color:#7a4b00;border-radius:4px;padding:.1rem .5rem;"
    "font-size:.8rem;font-weight:600}"
    "h1{font-size:2rem;margin:.75rem 0}ul.items{list-style:none;padding:0;margin:0 0 1rem}"
    "ul.items li{display:flex;justify-content:space-between;padding:.35rem 0;border-bottom:1px solid #e3e8ee}"
    "label{display:block;margin:.75rem 0;font-size:.9rem;color:#3c4257}"
    "input{display:block;box-sizing:border-box;width:100%;margin-top:.25rem;padding:.7rem;font-size:1rem;"
    "border:1px solid #cfd7df;border-radius:6px}"
    "button{width:100%;margin-top:1rem;padding:.85rem;font-size:1.05rem;font-weight:600;color:#fff;"
    "background:#635bff;border:0;border-radius:6px}"
    ".error{color:#df1b41;font-weight:600}.back{display:inline-block;margin-top:1.25rem;color:#635bff}"
)


def _html(status: int, title: str, body: str) -> Response:
    return html_page(status, title, body, css=PAGE_CSS, label="Stripe stand-in")


def main(argv=None):
    parser = cli("Local Stripe stand-in for tests and the offline demo.", port=12111)
    parser.add_argument("--api-key", default="sk_test_standin")
    parser.add_argument("--secret", default="whsec_standin", help="webhook signing secret")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-host", help="Host header for webhook deliveries")
    parser.add_argument("--billing-webhook-url", help="endpoint for the platform's own (Billing) events")
    parser.add_argument("--billing-secret", help="signing secret of the Billing endpoint")
    parser.add_argument("--public-url", help="base for hosted page URLs (default: the listening URL)")
    args = parser.parse_args(argv)
    standin = StripeStandin(
        api_key=args.api_key,
        webhook_secret=args.secret,
        webhook_url=args.webhook_url,
        webhook_host=args.webhook_host,
        public_url=args.public_url,
        state_file=args.state,
        billing_webhook_url=args.billing_webhook_url,
        billing_webhook_secret=args.billing_secret,
    )
    serve(standin, args, "Stripe", f"webhooks to {args.webhook_url or '(none)'}")


if __name__ == "__main__":
    main()
