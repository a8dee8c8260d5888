"""A local, in-memory stand-in for the slice of Twilio's REST API 2010-04-01 Fieldday calls (RELIABILITY.md §5).

It answers Messages (create, fetch, list), IncomingPhoneNumbers (list, fetch, update) and Account fetch with
Twilio's JSON shapes and error bodies (``{"code", "message", "more_info", "status"}``), keeps opt-outs like
Twilio's default Advanced Opt-Out (STOP/START/HELP keywords), and posts inbound-SMS and status-callback
webhooks signed with the SDK's own ``RequestValidator``. It never talks to the internet and has no security
beyond loopback. Like Twilio Messaging it does **not** honour idempotency: a retried create is a second message.

Pointing the official SDK at it (the recipe app code should use when ``TWILIO_API_BASE`` is set)
--------------------------------------------------------------------------------------------------
twilio-python has no base-URL option: every domain hard-codes ``https://<product>.twilio.com`` and
``Client(edge=…, region=…)`` only inserts sub-domain labels. Twilio's documented extension point is a custom
``http_client`` (``twilio.http.http_client.TwilioHttpClient`` subclass), which sees every absolute URL,
including the ``next_page_uri`` links of list pages. So::

    from urllib.parse import urlsplit
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class BaseUrlHttpClient(TwilioHttpClient):
        def __init__(self, base_url, **kwargs):
            super().__init__(**kwargs)
            self.base_url = base_url.rstrip("/")
            if self.session is not None:
                self.session.trust_env = False  # a local stand-in: never via HTTP(S)_PROXY
                self.session.mount("http://", self.session.get_adapter("https://"))  # same retry policy

        def request(self, method, url, *args, **kwargs):
            parts = urlsplit(url)
            if parts.hostname == "twilio.com" or (parts.hostname or "").endswith(".twilio.com"):
                url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
            return super().request(method, url, *args, **kwargs)

    client = Client(account_sid, auth_token, http_client=BaseUrlHttpClient(os.environ["TWILIO_API_BASE"], timeout=10))

Every ``*.twilio.com`` host is rewritten (not only ``api.``), so a call to an API the stand-in does not serve
gets a Twilio-shaped 404 instead of leaving the machine. Without ``TWILIO_API_BASE`` build a plain
``Client(sid, token, http_client=TwilioHttpClient(timeout=10))``. (``client.api.base_url = …`` also works, but it
is an undocumented attribute and covers only the ``api`` domain.) ``TwilioStandin.client()`` returns exactly this.

Retries (checked with twilio 9.13.0): the SDK never retries on an HTTP status. ``TwilioHttpClient(max_retries=N)``
hands ``N`` to requests' ``HTTPAdapter``, i.e. urllib3 ``Retry(total=N)`` with no status list: only connection
failures are retried, so a 500 or 429 reaches the caller after exactly one request. Retrying is the job's work,
guarded by the app's sent-markers.

Webhooks
--------
``inbound()`` and ``status_callback()`` POST form-encoded, signed requests (``X-Twilio-Signature``, HMAC-SHA1 of
the full URL plus sorted params with the auth token of the account that owns the number). The *public URL* is
what Twilio "called" and what is signed: for inbound the ``url`` argument, else the number's ``sms_url``, else
``<scheme of webhook_base>://<webhook_host or webhook_base host>/webhooks/twilio/sms``; for status callbacks the
``url`` argument, else the message's ``StatusCallback``. When ``webhook_base`` is set the request is *sent* to that
socket with ``Host: <public host>`` (and ``X-Forwarded-Proto: https`` when the public URL is https and the base
is http, as a TLS-terminating proxy would); otherwise straight to the public URL.

Command line (the offline demo)::

    python -m scripts.standins.twilio_standin --port 12112 --account-sid AC00000000000000000000000000000000 \\
        --auth-token standin_token --number +15125550180=fieldday:acme --webhook-base http://127.0.0.1:5000 \\
        --webhook-host app.localhost:5000 --auto-status sent,delivered --state .dev/twilio-standin.json

``--number E164[=FRIENDLY NAME]`` owns a number (Fieldday assigns numbers to businesses by the friendly name
``fieldday:<subdomain>``). ``GET /_standin/phone`` is a fake phone for people trying the demo: every phone
number that texted or was texted, each one's conversations with the business numbers (carrier auto-replies to
STOP/START/HELP included), and a reply box that texts the business as that customer (Twilio's keywords applied,
then the signed inbound webhook posted, exactly like ``inbound()``). ``GET /`` is the older all-texts inbox.

Control endpoints for other processes (loopback only): ``GET /_standin/health``, ``GET /_standin/messages``,
``POST /_standin/numbers`` (PhoneNumber, AccountSid, SmsUrl, FriendlyName), ``POST /_standin/inbound`` (From, To, Body),
``POST /_standin/messages/<sid>/status`` (Status, ErrorCode).
"""

from __future__ import annotations

import email.utils
import html
import re
import secrets
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from scripts.standins.base import (
    RecordedRequest,
    Standin,
    cli,
    html_page,
    json_response,
    loopback,
    post,
    public,
    serve,
)

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "standin_token"
SMS_PATH = "/webhooks/twilio/sms"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Twilio's default opt-out keywords on long codes (advanced-opt-out docs), matched on the whole trimmed body.
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_WORDS = {"START", "YES", "UNSTOP"}
HELP_WORDS = {"HELP", "INFO"}
AUTO_REPLIES = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages from this number. "
    "Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. Reply HELP for help. "
    "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "HELP": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
# Delivery progress; the stand-in's own record never moves backwards (callbacks may be posted in any order).
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
}
DEFAULT_ERROR = {"undelivered": 30003, "failed": 30008}  # unreachable handset / unknown error
PRICE_PER_SEGMENT = "0.00790"
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€\f")
# HTTP status -> Twilio error code for injected failures with no explicit code.
INJECTED_CODES = {401: 20003, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}
NUMBER_PARAMS = {
    "FriendlyName": "friendly_name",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "StatusCallback": "status_callback",
    "VoiceUrl": "voice_url",
}

A = f"/{API_VERSION}/Accounts/<account>"
ROUTES = [
    ("GET", f"{A}.json", "fetch_account"),
    ("POST", f"{A}/Messages.json", "create_message"),
    ("GET", f"{A}/Messages.json", "list_messages"),
    ("GET", f"{A}/Messages/<sid>.json", "fetch_message"),
    ("GET", f"{A}/IncomingPhoneNumbers.json", "list_numbers"),
    ("GET", f"{A}/IncomingPhoneNumbers/<sid>.json", "fetch_number"),
    ("POST", f"{A}/IncomingPhoneNumbers/<sid>.json", "update_number"),
    ("GET", "/", "phone_page"),
    ("GET", "/_standin/phone", "phone"),
    ("POST", "/_standin/phone", "phone_send"),
    ("GET", "/_standin/health", "health"),
    ("GET", "/_standin/messages", "state_json"),
    ("POST", "/_standin/numbers", "control_number"),
    ("POST", "/_standin/inbound", "control_inbound"),
    ("POST", "/_standin/messages/<sid>/status", "control_status"),
]


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None = None) -> str:
    return email.utils.format_datetime(moment or datetime.now(UTC))


def num_segments(body: str) -> int:
    """SMS segments as carriers count them: GSM-7 160/153 per part, otherwise UCS-2 70/67."""
    if all(c in GSM7 or c in GSM7_EXT for c in body):
        units, single, multi = sum(2 if c in GSM7_EXT else 1 for c in body), 160, 153
    else:
        units, single, multi = sum(2 if ord(c) > 0xFFFF else 1 for c in body), 70, 67
    return 1 if units <= single else -(-units // multi)


def digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


class TwilioApiError(Exception):
    """An answer in Twilio's error body."""

    def __init__(self, status: int, code: int, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
            **extra,
        }


def bad_request(code: int, message: str) -> TwilioApiError:
    return TwilioApiError(400, code, message)


class BaseUrlHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, with every ``*.twilio.com`` URL sent to ``base_url`` (see the module docstring)."""

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")
        if self.session is not None:
            self.session.trust_env = False
            self.session.mount("http://", self.session.get_adapter("https://"))

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        if parts.hostname == "twilio.com" or (parts.hostname or "").endswith(".twilio.com"):
            url = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().request(method, url, *args, **kwargs)


class Recorded(RecordedRequest):
    @property
    def account_sid(self) -> str | None:
        match = re.match(rf"/{API_VERSION}/Accounts/(AC\w+)", self.path)
        return match.group(1) if match else None


@dataclass
class Delivery:
    """One webhook the stand-in posted: ``status`` is the app's HTTP status, or the error text."""

    kind: str  # "inbound" or "status"
    url: str  # the public URL that was signed
    params: dict
    headers: dict
    status: int | str | None = None
    sid: str | None = None
    created: float = field(default_factory=time.time)


class TwilioStandin(Standin):
    """Thread-safe in-memory Twilio Messaging: a WSGI app plus test helpers. See the module docstring."""

    save_delay = 0.2  # a burst of sends is one write of the state file

    def __init__(
        self,
        *,
        account_sid=DEFAULT_ACCOUNT_SID,
        auth_token=DEFAULT_AUTH_TOKEN,
        webhook_base=None,
        webhook_host=None,
        state_file=None,
        auto_status=None,
        auto_status_delay=0.0,
    ):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.webhook_base = webhook_base
        self.webhook_host = webhook_host
        self.auto_status = list(auto_status or [])
        self.auto_status_delay = auto_status_delay
        rules = [Rule(path, methods=[m], endpoint=name) for m, path, name in ROUTES]
        self._urls = Map(rules, redirect_defaults=False, strict_slashes=False)
        super().__init__(state_file=state_file)
        self.requests: list[Recorded]
        self.deliveries: list[Delivery]

    def client(self, *, account_sid=None, auth_token=None, **http_kwargs) -> Client:
        """An official SDK client pointed at this stand-in, built as app code should (module docstring)."""
        http_kwargs.setdefault("timeout", 10)
        return Client(
            account_sid or self.account_sid,
            auth_token or self._token(account_sid or self.account_sid),
            http_client=BaseUrlHttpClient(self.url, **http_kwargs),
        )

    # -- test helpers ------------------------------------------------------------------------------

    def add_account(self, sid=None, auth_token=None, friendly_name=None) -> dict:
        """A (sub)account with its own credentials; a tenant may own one."""
        sid = sid or new_sid("AC")
        with self._lock:
            self._accounts[sid] = self._account(sid, auth_token or secrets.token_hex(16), friendly_name)
            self._save()
            return public(self._accounts[sid])

    def add_number(self, e164: str, *, account_sid=None, sms_url=None, friendly_name=None) -> dict:
        """Own ``e164`` (an IncomingPhoneNumber); ``sms_url`` is where inbound texts to it are posted."""
        if not E164.match(e164 or ""):
            raise ValueError(f"{e164!r} is not an E.164 number")
        account = account_sid or self.account_sid
        with self._lock:
            if account not in self._accounts:
                raise KeyError(account)
            existing = self._numbers.get(e164)
            if existing and existing["account_sid"] != account:
                raise ValueError(f"{e164} is owned by {existing['account_sid']}")
            if not existing:
                sid = new_sid("PN")
                now = rfc2822()
                existing = self._numbers[e164] = {
                    "account_sid": account,
                    "address_requirements": "none",
                    "api_version": API_VERSION,
                    "beta": False,
                    "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
                    "date_created": now,
                    "date_updated": now,
                    "friendly_name": friendly_name or self._pretty(e164),
                    "origin": "twilio",
                    "phone_number": e164,
                    "sid": sid,
                    "sms_application_sid": "",
                    "sms_fallback_method": "POST",
                    "sms_fallback_url": "",
                    "sms_method": "POST",
                    "sms_url": sms_url or "",
                    "status": "in-use",
                    "status_callback": "",
                    "status_callback_method": "POST",
                    "voice_url": "",
                    "uri": f"/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{sid}.json",
                }
            else:
                if sms_url is not None:
                    existing["sms_url"] = sms_url
                if friendly_name is not None:
                    existing["friendly_name"] = friendly_name
            self._save()
            return public(existing)

    def add_messaging_service(self, numbers, *, account_sid=None, friendly_name=None) -> dict:
        """A Messaging Service whose sender pool is ``numbers`` (already owned by the account)."""
        account = account_sid or self.account_sid
        with self._lock:
            for number in numbers:
                if self._numbers.get(number, {}).get("account_sid") != account:
                    raise ValueError(f"{number} is not owned by {account}")
            sid = new_sid("MG")
            self._services[sid] = {
                "sid": sid,
                "account_sid": account,
                "friendly_name": friendly_name or sid,
                "numbers": list(numbers),
            }
            self._save()
            return dict(self._services[sid])

    @property
    def numbers(self) -> dict[str, list[str]]:
        """Owned numbers per account sid."""
        with self._lock:
            owned: dict[str, list[str]] = {sid: [] for sid in self._accounts}
            for e164, record in self._numbers.items():
                owned[record["account_sid"]].append(e164)
            return owned

    @property
    def messages(self) -> list[dict]:
        """Every message created through the API (Twilio-shaped copies), oldest first."""
        with self._lock:
            return [public(m) for m in self._messages.values() if m["direction"] == "outbound-api"]

    @property
    def received(self) -> list[dict]:
        """Inbound messages (direction ``inbound``) that ``inbound()`` posted, oldest first."""
        with self._lock:
            return [public(m) for m in self._messages.values() if m["direction"] == "inbound"]

    @property
    def auto_replies(self) -> list[dict]:
        """Twilio's own STOP/START/HELP replies (not API messages; the app never sees them)."""
        with self._lock:
            return [dict(r) for r in self._auto_replies]

    def message(self, sid: str) -> dict:
        with self._lock:
            return public(self._messages[sid])

    def opt_out(self, e164: str, *, sender=None):
        """Block sends to ``e164`` from ``sender`` (one of our numbers), or from every number when None."""
        with self._lock:
            self._opt_outs.add((e164, sender or "*"))
            self._save()

    def opt_in(self, e164: str, *, sender=None):
        """Undo opt-outs of ``e164``: from ``sender`` only (and any account-wide one), or all when None."""
        with self._lock:
            self._opt_outs = {
                pair for pair in self._opt_outs if pair[0] != e164 or (sender and pair[1] not in (sender, "*"))
            }
            self._save()

    def opted_out(self, e164: str, sender=None) -> bool:
        with self._lock:
            return (e164, "*") in self._opt_outs or (sender is not None and (e164, sender) in self._opt_outs)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        times: int = 1,
        *,
        code=None,
        message=None,
        commit=False,
    ):
        """Answer the next ``times`` matching API requests (``re.search`` on the path) with a Twilio error body.

        ``commit=True`` carries the request out first (the message exists and will be delivered) and only the
        answer is lost, the way a timeout after Twilio accepted a send looks to the caller.
        """
        self._add_failure(
            method,
            path_regex,
            status,
            times,
            code=code or INJECTED_CODES.get(status, 20000 + status if status < 1000 else status),
            message=message or f"Injected failure ({status}) from the Twilio stand-in.",
            commit=commit,
        )

    def signature(self, url: str, params: dict, *, auth_token=None) -> str:
        """``X-Twilio-Signature`` for a POST of ``params`` to ``url`` (the full URL the app sees)."""
        return RequestValidator(auth_token or self.auth_token).compute_signature(url, params)

    def inbound(
        self,
        *,
        from_: str,
        to: str,
        body: str,
        message_sid=None,
        url=None,
        media_urls=(),
        headers=None,
    ) -> int:
        """A customer at ``from_`` texts ``to``: apply Twilio's opt-out keywords, then POST the signed webhook.

        Reusing ``message_sid`` replays the same message (a Twilio webhook retry). ``to`` need not be owned
        (then the default account signs), so the app's handling of unknown numbers can be tested.
        """
        with self._lock:
            number = self._numbers.get(to)
            account = number["account_sid"] if number else self.account_sid
            service = self._service_of(to)
            sid = message_sid or new_sid("SM")
            keyword = body.strip().upper().rstrip(".!")
            opt_type = None
            senders = service["numbers"] if service else [to]
            if keyword in OPT_OUT_WORDS:
                opt_type = "STOP"
                self._opt_outs.update((from_, sender) for sender in senders)
            elif keyword in OPT_IN_WORDS:
                opt_type = "START"
                self._opt_outs -= {(from_, sender) for sender in [*senders, "*"]}
            elif keyword in HELP_WORDS:
                opt_type = "HELP"
            if opt_type and sid not in self._messages:
                self._auto_replies.append(
                    {"from": to, "to": from_, "body": AUTO_REPLIES[opt_type], "date_created": rfc2822()}
                )
            if sid not in self._messages:
                now = rfc2822()
                self._messages[sid] = {
                    **self._message_fields(account, sid, body, from_, to, now),
                    "direction": "inbound",
                    "status": "received",
                    "date_sent": now,
                    "num_media": str(len(media_urls)),
                    "messaging_service_sid": service["sid"] if service else None,
                }
            params = {
                "ToCountry": "US",
                "ToState": "",
                "SmsMessageSid": sid,
                "NumMedia": str(len(media_urls)),
                "ToCity": "",
                "FromZip": "",
                "SmsSid": sid,
                "FromState": "",
                "SmsStatus": "received",
                "FromCity": "",
                "Body": body,
                "FromCountry": "US",
                "To": to,
                "ToZip": "",
                "NumSegments": str(num_segments(body)),
                "MessageSid": sid,
                "AccountSid": account,
                "From": from_,
                "ApiVersion": API_VERSION,
            }
            for index, media_url in enumerate(media_urls):
                params[f"MediaUrl{index}"] = media_url
                params[f"MediaContentType{index}"] = "image/jpeg"
            if service:
                params["MessagingServiceSid"] = service["sid"]
            if opt_type:
                params["OptOutType"] = opt_type
            target = url or (number or {}).get("sms_url") or self._default_webhook_url()
            token = self._token(account)
            self._save()
        return self._post("inbound", target, params, token, sid=sid, headers=headers)

    def set_status(self, message_sid: str, status: str, *, error_code=None) -> dict:
        """Move a message along (never backwards in the stand-in's own record); no webhook."""
        if status not in STATUS_RANK:
            raise ValueError(f"unknown status {status!r}; one of {sorted(STATUS_RANK)}")
        with self._lock:
            message = self._messages[message_sid]
            if STATUS_RANK[status] >= STATUS_RANK.get(message["status"], 0) and message["status"] != status:
                message["status"] = status
                message["date_updated"] = rfc2822()
                if message["from"] is None and status != "accepted":
                    message["from"] = message["_sender"]
                if status in ("sent", "delivered", "undelivered", "read") and not message["date_sent"]:
                    message["date_sent"] = message["date_updated"]
                if status in ("sent", "delivered", "read") and message["price"] is None:
                    price = float(PRICE_PER_SEGMENT) * int(message["num_segments"])
                    message["price"] = f"-{price:.5f}"
                if status in DEFAULT_ERROR:
                    message["error_code"] = int(error_code or DEFAULT_ERROR[status])
            self._save()
            return public(message)

    def status_callback(self, message_sid: str, status: str, *, url=None, error_code=None, headers=None) -> int:
        """Record ``status`` and POST Twilio's signed status callback to ``url`` or the message's StatusCallback.

        The callback carries the status asked for even when the stand-in's record is already further along,
        so tests can deliver callbacks out of order.
        """
        with self._lock:
            if message_sid not in self._messages:
                raise KeyError(message_sid)
            target = url or self._messages[message_sid]["_status_callback"]
            if not target:
                raise ValueError(f"{message_sid} has no StatusCallback; pass url=")
        message = self.set_status(message_sid, status, error_code=error_code)
        params = {
            "SmsSid": message_sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": message["to"],
            "MessageSid": message_sid,
            "AccountSid": message["account_sid"],
            "From": message["from"] or "",
            "ApiVersion": API_VERSION,
        }
        if message["messaging_service_sid"]:
            params["MessagingServiceSid"] = message["messaging_service_sid"]
        if status in DEFAULT_ERROR:
            params["ErrorCode"] = str(error_code or DEFAULT_ERROR[status])
        if status in ("delivered", "undelivered"):
            params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
        return self._post(
            "status", target, params, self._token(message["account_sid"]), sid=message_sid, headers=headers
        )

    # -- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        api = request.path != "/" and not request.path.startswith("/_standin/")  # any other path answers like Twilio
        try:
            name, args = self._urls.bind_to_environ(environ).match()
        except MethodNotAllowed:
            name, args = "_method_not_allowed", {}
        except HTTPException as exc:
            if not api:
                return exc(environ, start_response)
            name, args = None, {}
        if api:
            response = self._api(request, name, args)
        elif name == "_method_not_allowed":
            response = Response("Method not allowed", 405)
        else:
            response = getattr(self, f"_{name}")(request, **args)
        return response(environ, start_response)

    def _api(self, request: Request, name: str | None, args: dict) -> Response:
        params: dict = {}
        for key, value in [*request.args.items(multi=True), *request.form.items(multi=True)]:
            if key in params:
                params[key] = [*params[key], value] if isinstance(params[key], list) else [params[key], value]
            else:
                params[key] = value
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        recorded = Recorded(request.method, request.path, headers, params)
        with self._lock:
            self.requests.append(recorded)
        after: list = []
        try:
            status, body = self._answer(request, name, args, params, after)
        except TwilioApiError as exc:
            status, body = exc.status, exc.body
        except Exception as exc:  # a bug here should look like Twilio's 500, not an HTML page
            traceback.print_exc()
            status, body = 500, TwilioApiError(500, 20500, f"Stand-in error: {exc!r}").body
        recorded.status = status
        response = json_response(status, body)
        response.headers["Twilio-Request-Id"] = new_sid("RQ")
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        for task in after:  # after the caller has its answer, like Twilio's asynchronous callbacks
            response.call_on_close(task)
        return response

    def _answer(self, request: Request, name, args: dict, params: dict, after: list) -> tuple[int, dict]:
        auth = request.authorization
        user = auth.username if auth and auth.type == "basic" else None
        token = self._token(user) if user else None
        if not token or not secrets.compare_digest(token.encode(), (auth.password or "").encode()):
            raise TwilioApiError(401, 20003, "Authenticate", detail="Your AccountSid or AuthToken was incorrect.")
        failure = self._take_failure(request.method, request.path)
        if failure and not failure["commit"]:
            raise TwilioApiError(failure["status"], failure["code"], failure["message"])
        if name in (None, "_method_not_allowed") or args.get("account") != user:
            if name == "_method_not_allowed":
                raise TwilioApiError(405, 20004, "Method not allowed")
            raise TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")
        args = {k: v for k, v in args.items() if k != "account"}
        with self._lock:
            status, body = getattr(self, f"_api_{name}")(user, params, after, **args)
            if request.method == "POST":
                self._save()
        if failure:
            raise TwilioApiError(failure["status"], failure["code"], failure["message"])
        return status, body

    # -- API handlers (called with the lock held) ----------------------------------------------------

    def _api_fetch_account(self, account: str, params: dict, after: list) -> tuple[int, dict]:
        return 200, public(self._accounts[account])

    def _api_create_message(self, account: str, params: dict, after: list) -> tuple[int, dict]:
        to = str(params.get("To") or "").strip()
        from_ = str(params.get("From") or "").strip() or None
        service_sid = params.get("MessagingServiceSid") or None
        body = params.get("Body") or ""
        media = params.get("MediaUrl") or []
        media = media if isinstance(media, list) else [media]
        callback = params.get("StatusCallback") or None
        if not to:
            raise bad_request(21604, "A 'To' phone number is required.")
        if not E164.match(to):
            raise bad_request(21211, f"The 'To' number {to} is not a valid phone number.")
        service = self._services.get(service_sid) if service_sid else None
        if service_sid and (not service or service["account_sid"] != account):
            raise bad_request(21701, f"The Messaging Service Sid {service_sid} is invalid.")
        if not from_ and not service:
            raise bad_request(21603, "A 'From' phone number is required.")
        if from_ and self._numbers.get(from_, {}).get("account_sid") != account:
            raise bad_request(
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone number or short code "
                "for your account.",
            )
        if not isinstance(body, str) or (not body.strip() and not media):
            raise bad_request(21602, "Message body is required.")
        if len(body) > 1600:
            raise bad_request(21617, "The concatenated message body exceeds the 1600 character limit.")
        if callback and urlsplit(callback).scheme not in ("http", "https"):
            raise bad_request(21609, f"The StatusCallback URL {callback} is not a valid URL.")
        senders = [from_] if from_ else service["numbers"]
        if (to, "*") in self._opt_outs or any((to, sender) in self._opt_outs for sender in senders):
            raise bad_request(21610, "Attempt to send to unsubscribed recipient")
        sid = new_sid("SM")
        now = rfc2822()
        message = {
            **self._message_fields(account, sid, body, from_, to, now),
            "direction": "outbound-api",
            "status": "queued" if from_ else "accepted",
            "date_sent": None,
            "num_media": str(len(media)),
            "messaging_service_sid": service["sid"] if service else None,
            "_status_callback": callback,
            "_sender": from_ or (senders[0] if senders else None),
        }
        self._messages[sid] = message
        if callback and self.auto_status:
            after.append(lambda: self._auto(sid))
        return 201, public(message)

    def _api_fetch_message(self, account: str, params: dict, after: list, sid: str) -> tuple[int, dict]:
        message = self._messages.get(sid)
        if not message or message["account_sid"] != account:
            path = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json"
            raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")
        return 200, public(message)

    def _api_list_messages(self, account: str, params: dict, after: list) -> tuple[int, dict]:
        items = [m for m in self._messages.values() if m["account_sid"] == account]
        if params.get("To"):
            items = [m for m in items if m["to"] == params["To"]]
        if params.get("From"):
            items = [m for m in items if m["from"] == params["From"]]
        for key, keep in (("DateSent", lambda d, v: d == v), ("DateSent<", lambda d, v: d <= v)):
            if params.get(key):
                items = [m for m in items if keep(self._sent_day(m), str(params[key])[:10])]
        if params.get("DateSent>"):
            items = [m for m in items if self._sent_day(m) >= str(params["DateSent>"])[:10]]
        items.reverse()  # newest first, like Twilio
        return 200, self._page(account, "Messages", "messages", items, params, ("To", "From"))

    def _api_list_numbers(self, account: str, params: dict, after: list) -> tuple[int, dict]:
        items = [n for n in self._numbers.values() if n["account_sid"] == account]
        if params.get("PhoneNumber"):
            wanted = digits(params["PhoneNumber"])
            items = [n for n in items if wanted and wanted in digits(n["phone_number"])]
        if params.get("FriendlyName"):
            items = [n for n in items if n["friendly_name"] == params["FriendlyName"]]
        return 200, self._page(
            account, "IncomingPhoneNumbers", "incoming_phone_numbers", items, params, ("PhoneNumber", "FriendlyName")
        )

    def _number_by_sid(self, account: str, sid: str) -> dict:
        for number in self._numbers.values():
            if number["sid"] == sid and number["account_sid"] == account:
                return number
        path = f"/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{sid}.json"
        raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")

    def _api_fetch_number(self, account: str, params: dict, after: list, sid: str) -> tuple[int, dict]:
        return 200, public(self._number_by_sid(account, sid))

    def _api_update_number(self, account: str, params: dict, after: list, sid: str) -> tuple[int, dict]:
        number = self._number_by_sid(account, sid)
        for param, key in NUMBER_PARAMS.items():
            if param in params:
                number[key] = params[param]
        number["date_updated"] = rfc2822()
        return 200, public(number)

    # -- control endpoints and the phone page ----------------------------------------------------------

    def _health(self, request: Request) -> Response:
        with self._lock:
            body = {"ok": True, "messages": len(self._messages), "numbers": len(self._numbers)}
        return json_response(200, body)

    def _state_json(self, request: Request) -> Response:
        with self._lock:
            body = {
                "messages": self.messages,
                "received": self.received,
                "auto_replies": self.auto_replies,
                "numbers": self.numbers,
                "opt_outs": sorted(list(pair) for pair in self._opt_outs),
                "deliveries": [(d.kind, d.sid, d.url, d.status) for d in self.deliveries],
            }
        return json_response(200, body)

    def _control_number(self, request: Request) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        try:
            number = self.add_number(
                request.form.get("PhoneNumber", ""),
                account_sid=request.form.get("AccountSid") or None,
                sms_url=request.form.get("SmsUrl") or None,
                friendly_name=request.form.get("FriendlyName") or None,
            )
        except (KeyError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(201, number)

    def _control_inbound(self, request: Request) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        form = request.form
        try:
            status = self.inbound(from_=form.get("From", ""), to=form.get("To", ""), body=form.get("Body", ""))
        except Exception as exc:
            status = f"{type(exc).__name__}: {exc}"
        if "text/html" in request.headers.get("Accept", ""):
            return redirect("/", 303)
        return json_response(200, {"status": status})

    def _control_status(self, request: Request, sid: str) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        try:
            status = self.status_callback(
                sid, request.form.get("Status", "delivered"), error_code=request.form.get("ErrorCode") or None
            )
        except KeyError:
            return json_response(404, {"error": f"no message {sid}"})
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"status": status})

    def _phone_page(self, request: Request) -> Response:
        with self._lock:
            messages = [public(m) for m in reversed(self._messages.values())][:200]
            replies = list(self._auto_replies)[-20:]
            owned = sorted(self._numbers)
        rows = "".join(
            f"<li class='{html.escape(m['direction'])}'><b>{html.escape(m['from'] or '(service)')} → "
            f"{html.escape(m['to'])}</b> <small>{html.escape(m['status'])}</small>"
            f"<p>{html.escape(m['body'] or '')}</p></li>"
            for m in messages
        )
        auto = "".join(f"<li class='auto'>{html.escape(r['to'])}: {html.escape(r['body'])}</li>" for r in replies)
        options = "".join(f"<option>{html.escape(n)}</option>" for n in owned)
        body = (
            "<h1>Texts</h1>"
            '<p><a href="/_standin/phone">Open the fake phone</a> (one customer\'s conversations, with replies)</p>'
            '<form method="post" action="/_standin/inbound">'
            '<label>From (the customer) <input name="From" value="+15555550123" required></label>'
            f'<label>To (a business number) <select name="To">{options}</select></label>'
            '<label>Message <input name="Body" required></label><button type="submit">Send text</button></form>'
            f"<ul class='items'>{rows or '<li>No messages yet.</li>'}</ul>"
            f"{'<h2>Carrier auto-replies</h2><ul>' + auto + '</ul>' if auto else ''}"
        )
        return _html(200, "Twilio stand-in texts", body)

    def _phone(self, request: Request) -> Response:
        """A fake phone: pick a customer's number, read its texts per business number, reply as them."""
        number = self._as_e164(request.args.get("number", ""))
        with self._lock:
            owned = {e164: record["friendly_name"] for e164, record in self._numbers.items()}
            messages = [dict(m) for m in self._messages.values()]
            autos = [dict(r) for r in self._auto_replies]
            opted = set(self._opt_outs)
            deliveries = [d for d in self.deliveries if d.kind == "inbound"]
        threads: dict[str, dict[str, list[tuple]]] = {}  # customer -> business number -> [(order, side, text, note)]
        for order, m in enumerate(messages):
            if m["direction"] == "inbound":
                phone, business, side = m["from"], m["to"], "me"
            else:
                phone, business, side = m["to"], m["from"] or m.get("_sender") or "", "them"
            if phone in owned:
                continue  # between two of our own numbers: no customer's phone
            note = m["status"] if side == "them" else ""
            threads.setdefault(phone, {}).setdefault(business, []).append(
                (self._when(m["date_created"]), order, side, m["body"] or "", note)
            )
        for order, r in enumerate(autos, start=len(messages)):
            when = self._when(r.get("date_created"))
            threads.setdefault(r["to"], {}).setdefault(r["from"], []).append((when, order, "auto", r["body"], ""))
        if not number:
            items = "".join(
                f'<li><a href="/_standin/phone?{urlencode({"number": phone})}"><b>{html.escape(phone)}</b></a> '
                f"<small>{sum(len(t) for t in convs.values())} text(s)</small></li>"
                for phone, convs in sorted(threads.items())
            )
            body = (
                "<h1>Phone</h1><p>Pick the customer whose phone you hold (the number they booked with), "
                "or type one.</p>"
                '<form method="get" action="/_standin/phone"><label>Phone number '
                '<input name="number" placeholder="+15125550123" required></label>'
                '<button type="submit">Open</button></form>'
                f"<ul class='phones'>{items or '<li>No texts yet. Book on a demo business with a mobile number.</li>'}"
                '</ul><p><small><a href="/">All texts</a></small></p>'
            )
            return _html(200, "Phone · Twilio stand-in", body)
        convs = threads.get(number, {})
        for business in owned:  # a customer can text any business first
            convs.setdefault(business, [])
        last = next((d for d in reversed(deliveries) if d.params.get("From") == number), None)
        sections = []
        for business, items in sorted(convs.items(), key=lambda kv: (not kv[1], owned.get(kv[0], kv[0]))):
            name = owned.get(business) or "(not one of our numbers)"
            bubbles = "".join(
                f"<li class='{ {'me': 'inbound', 'them': 'outbound-api', 'auto': 'auto'}[side] }'>"
                f"{'<small>Carrier (automatic)</small>' if side == 'auto' else ''}"
                f"<p>{_linked(text)}</p>{f'<small>{html.escape(note)}</small>' if note else ''}</li>"
                for _, _, side, text, note in sorted(items, key=lambda x: (x[0], x[1]))
            )
            stopped = (number, business) in opted or (number, "*") in opted
            hidden = (
                f'<input type="hidden" name="From" value="{html.escape(number)}">'
                f'<input type="hidden" name="To" value="{html.escape(business)}">'
            )
            sections.append(
                f"<section><h2>{html.escape(business)} <small>{html.escape(name)}</small></h2>"
                f"<ul>{bubbles or '<li class=auto>No texts with this number yet.</li>'}</ul>"
                f"{STOPPED_NOTE if stopped else ''}"
                f'<form method="post" action="/_standin/phone">{hidden}'
                '<label>Text message <input name="Body" required autocomplete="off"></label>'
                '<button type="submit">Send</button></form>'
                f'<form method="post" action="/_standin/phone" class="quick">{hidden}'
                '<button name="Body" value="STOP" type="submit">STOP</button>'
                '<button name="Body" value="START" type="submit">START</button></form></section>'
            )
        status = ""
        if last is not None:
            ok = last.status == 200
            status = (
                f"<p class='test'>Your last text reached the app ({html.escape(str(last.status))})</p>"
                if ok
                else f"<p class='test'>Your last text did not reach the app: {html.escape(str(last.status))}</p>"
            )
        body = (
            f"<h1>{html.escape(number)}</h1>"
            f'<p><a href="/_standin/phone?{urlencode({"number": number})}">Refresh</a> · '
            '<a href="/_standin/phone">Other phones</a></p>'
            f"{status}{''.join(sections) or '<p>No business numbers yet.</p>'}"
        )
        return _html(200, f"{number} · Twilio stand-in", body)

    def _phone_send(self, request: Request) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        form = request.form
        sender, to, text = form.get("From", "").strip(), form.get("To", "").strip(), form.get("Body", "").strip()
        if not E164.match(sender) or not to or not text:
            return _html(400, "Phone · Twilio stand-in", "<h1>Missing number or message</h1>")
        try:
            self.inbound(from_=sender, to=to, body=text)
        except Exception:  # noqa: BLE001 - recorded as the delivery's status, shown on the phone
            pass
        return redirect(f"/_standin/phone?{urlencode({'number': sender})}", 303)

    @staticmethod
    def _as_e164(raw: str) -> str:
        """What a person types into the phone's number box: ``(512) 555-0142`` means +15125550142."""
        raw, d = raw.strip(), digits(raw)
        if raw.startswith("+"):
            return f"+{d}" if d else ""
        if len(d) == 10:
            return f"+1{d}"
        if len(d) == 11 and d.startswith("1"):
            return f"+{d}"
        return raw

    @staticmethod
    def _when(stamp: str | None) -> float:
        try:
            return email.utils.parsedate_to_datetime(stamp).timestamp() if stamp else 0.0
        except (TypeError, ValueError):
            return 0.0

    # -- internals -------------------------------------------------------------------------------------

    def _clear(self):
        self._accounts: dict[str, dict] = {
            self.account_sid: self._account(self.account_sid, self.auth_token, "Fieldday stand-in")
        }
        self._numbers: dict[str, dict] = {}
        self._services: dict[str, dict] = {}
        self._messages: dict[str, dict] = {}
        self._opt_outs: set[tuple[str, str]] = set()
        self._auto_replies: list[dict] = []

    @staticmethod
    def _account(sid: str, token: str, friendly_name: str | None) -> dict:
        now = rfc2822()
        return {
            "sid": sid,
            "auth_token": token,
            "friendly_name": friendly_name or sid,
            "owner_account_sid": sid,
            "status": "active",
            "type": "Full",
            "date_created": now,
            "date_updated": now,
            "uri": f"/{API_VERSION}/Accounts/{sid}.json",
        }

    def _token(self, account_sid: str) -> str | None:
        with self._lock:
            account = self._accounts.get(account_sid)
            return account["auth_token"] if account else None

    @staticmethod
    def _pretty(e164: str) -> str:
        d = digits(e164)
        return f"({d[1:4]}) {d[4:7]}-{d[7:]}" if e164.startswith("+1") and len(d) == 11 else e164

    def _service_of(self, e164: str) -> dict | None:
        return next((s for s in self._services.values() if e164 in s["numbers"]), None)

    @staticmethod
    def _message_fields(account: str, sid: str, body: str, from_, to: str, now: str) -> dict:
        base = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
        return {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_updated": now,
            "error_code": None,
            "error_message": None,
            "from": from_,
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": to,
            "uri": f"{base}.json",
        }

    @staticmethod
    def _sent_day(message: dict) -> str:
        stamp = message["date_sent"] or message["date_created"]
        return email.utils.parsedate_to_datetime(stamp).date().isoformat()

    @staticmethod
    def _page(account: str, resource: str, key: str, items: list, params: dict, filters: tuple) -> dict:
        try:
            size = max(1, min(1000, int(params.get("PageSize") or 50)))
            page = max(0, int(params.get("Page") or 0))
        except ValueError:
            raise bad_request(20001, "Invalid paging parameter") from None
        path = f"/{API_VERSION}/Accounts/{account}/{resource}.json"
        query = {k: params[k] for k in filters if params.get(k)}

        def uri(number: int, token: str | None = None) -> str:
            extra = {"PageToken": token} if token else {}
            return f"{path}?{urlencode({**query, 'PageSize': size, 'Page': number, **extra})}"

        start = page * size
        chunk = items[start : start + size]
        more = start + size < len(items)
        return {
            key: [public(item) for item in chunk],
            "end": start + len(chunk) - 1 if chunk else 0,
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, f"PA{chunk[-1]['sid']}") if more else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1, f"PB{chunk[0]['sid']}") if page and chunk else None,
            "start": start,
            "uri": uri(page, params.get("PageToken")),
        }

    def _default_webhook_url(self) -> str:
        if not self.webhook_base:
            raise RuntimeError("no url: set webhook_base, the number's sms_url, or pass url=")
        base = urlsplit(self.webhook_base)
        return f"{base.scheme}://{self.webhook_host or base.netloc}{SMS_PATH}"

    def _auto(self, sid: str):
        def run():
            for status in self.auto_status:
                if self.auto_status_delay:
                    time.sleep(self.auto_status_delay)
                try:
                    self.status_callback(sid, status)
                except Exception:  # recorded as a delivery; the stand-in must keep serving
                    pass

        threading.Thread(target=run, daemon=True, name=f"twilio-standin-status-{sid[-6:]}").start()

    def _post(self, kind: str, url: str, params: dict, token: str, *, sid=None, headers=None) -> int:
        """POST ``params`` signed for the public ``url``; via webhook_base when set. Returns the HTTP status."""
        if url.startswith("/"):
            url = self._default_webhook_url().removesuffix(SMS_PATH) + url
        public_url = urlsplit(url)
        connect = urlsplit(self.webhook_base) if self.webhook_base else public_url
        send = {
            "Host": public_url.netloc,
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "X-Home-Region": "us1",
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        }
        if public_url.scheme == "https" and connect.scheme == "http":
            send["X-Forwarded-Proto"] = "https"
        send.update(headers or {})
        send = {k: v for k, v in send.items() if v is not None}
        delivery = Delivery(kind, url, dict(params), send, sid=sid)
        with self._lock:
            self.deliveries.append(delivery)
        try:
            delivery.status = post(url, urlencode(params).encode(), send, via=self.webhook_base)
        except Exception as exc:
            delivery.status = f"{type(exc).__name__}: {exc}"
            raise
        return delivery.status

    def _state(self) -> dict:
        return {
            "accounts": self._accounts,
            "numbers": self._numbers,
            "services": self._services,
            "messages": self._messages,
            "opt_outs": sorted(list(pair) for pair in self._opt_outs),
            "auto_replies": self._auto_replies,
        }

    def _restore(self, state: dict):
        self._accounts.update(state["accounts"])
        self._numbers, self._services = state["numbers"], state["services"]
        self._messages = state["messages"]
        self._opt_outs = {tuple(pair) for pair in state["opt_outs"]}
        self._auto_replies = state["auto_replies"]


STOPPED_NOTE = "<p><small>You texted STOP: this number sends you nothing until you text START.</small></p>"
PAGE_CSS = (
    "body{margin:0;background:#f2f2f7;color:#1c1c1e;font:16px/1.45 system-ui,-apple-system,sans-serif}"
    "main{max-width:28rem;margin:0 auto;padding:1.25rem 1rem}"
    ".test{display:inline-block;background:#ffde92;color:#7a4b00;border-radius:4px;padding:.1rem .5rem;"
    "font-size:.8rem;font-weight:600}h1{font-size:1.8rem;margin:.75rem 0}"
    "label{display:block;margin:.6rem 0;font-size:.9rem}input,select{display:block;box-sizing:border-box;"
    "width:100%;margin-top:.25rem;padding:.6rem;font-size:1rem;border:1px solid #c7c7cc;border-radius:6px}"
    "button{width:100%;margin-top:.75rem;padding:.75rem;font-size:1rem;font-weight:600;color:#fff;"
    "background:#0a84ff;border:0;border-radius:6px}ul{list-style:none;padding:0}"
    "li{margin:.5rem 0;padding:.5rem .75rem;border-radius:12px;background:#e5e5ea}"
    "li.inbound{background:#0a84ff;color:#fff;margin-left:3rem}li.outbound-api{margin-right:3rem}"
    "li p{margin:.25rem 0 0;white-space:pre-wrap;overflow-wrap:anywhere}li.auto{background:#fff;font-size:.85rem}"
    "section{margin:1.5rem 0;padding-top:.5rem;border-top:1px solid #c7c7cc}h2{font-size:1.1rem}"
    "h2 small,li small{color:#6e6e73;font-weight:400}li.inbound small{color:#dbeafe}"
    "form.quick{display:flex;gap:.5rem}form.quick button{background:#8e8e93}ul.phones li{background:#fff}"
)


def _linked(text: str) -> str:
    """Escaped text with its http(s) links clickable (the manage-my-booking link in a confirmation)."""
    return re.sub(r"https?://[^\s<]+", lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', html.escape(text))


def _html(status: int, title: str, body: str) -> Response:
    return html_page(status, title, body, css=PAGE_CSS, label="Twilio stand-in")


def main(argv=None):
    parser = cli("Local Twilio stand-in for tests and the offline demo.", port=12112)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument(
        "--number", action="append", default=[], help="an owned number, E164[=FRIENDLY NAME] (repeatable)"
    )
    parser.add_argument("--webhook-base", help="where webhooks are sent, e.g. http://127.0.0.1:5000")
    parser.add_argument("--webhook-host", help="Host (and signed host) of inbound webhooks, e.g. app.localhost:5000")
    parser.add_argument("--auto-status", default="", help="statuses to call back after each send, e.g. sent,delivered")
    parser.add_argument("--auto-status-delay", type=float, default=0.5, help="seconds before each auto callback")
    args = parser.parse_args(argv)
    standin = TwilioStandin(
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        webhook_base=args.webhook_base,
        webhook_host=args.webhook_host,
        state_file=args.state,
        auto_status=[s for s in args.auto_status.split(",") if s],
        auto_status_delay=args.auto_status_delay,
    )
    for number in args.number:
        e164, _, friendly = number.partition("=")
        standin.add_number(e164.strip(), friendly_name=friendly.strip() or None)
    serve(standin, args, "Twilio", f"webhooks to {args.webhook_base or '(none)'}")


if __name__ == "__main__":
    main()
