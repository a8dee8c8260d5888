"""A local, in-memory stand-in for the slice of Google's OAuth 2.0 and Calendar API v3 Fieldday calls
(RELIABILITY.md §4). It never talks to the internet and has no security beyond loopback.

It serves the OAuth web flow (``/o/oauth2/auth`` consent page redirecting back with ``code`` and ``state``,
PKCE S256 checked; ``/token`` for the code exchange and refreshes, answering ``400 invalid_grant`` for a
revoked or unknown refresh token; ``/revoke``), and the Calendar API at the paths the official client uses
once ``client_options={"api_endpoint": url + "/"}`` is set (no ``/calendar/v3`` prefix; the prefixed form is
accepted too): ``users/me/calendarList``, ``calendars/<id>/events`` (list with ``syncToken`` /
``nextSyncToken`` / ``pageToken``, ``singleEvents`` expanding simple ``RRULE`` recurrences into instances
with moved or cancelled exceptions, ``410 fullSyncRequired`` for an invalidated sync token; insert with a
client-chosen id, get, patch, delete), ``calendars/<id>/events/watch``, ``channels/stop`` and ``freeBusy``
(with per-calendar ``errors``). Errors use Google's JSON envelope (``{"error": {"code", "message",
"errors": [{"domain", "reason", "message"}], "status"}}``).

Pointing the official libraries at it (what app code does when ``GOOGLE_API_BASE`` is set)::

    creds = google.oauth2.credentials.Credentials(None, refresh_token=rt, client_id=cid, client_secret=secret,
                                                  token_uri=base + "/token")
    service = googleapiclient.discovery.build("calendar", "v3", credentials=creds, static_discovery=True,
                                              cache_discovery=False, client_options={"api_endpoint": base + "/"})
    flow = google_auth_oauthlib.flow.Flow.from_client_config(
        {"web": {"client_id": cid, "client_secret": secret, "auth_uri": base + "/o/oauth2/auth",
                 "token_uri": base + "/token"}}, scopes=[...], redirect_uri=callback)

``flow.fetch_token`` goes through oauthlib, which refuses plain-HTTP token URLs unless
``OAUTHLIB_INSECURE_TRANSPORT`` is set; the app sets it only when the token URL is on loopback.

Push notifications: ``notify(channel_id, state)`` POSTs Google's header-only notification
(``X-Goog-Channel-ID``, ``X-Goog-Channel-Token``, ``X-Goog-Resource-State``, ``X-Goog-Resource-ID``,
``X-Goog-Message-Number``...) to the channel's address, via ``webhook_base`` with the address's Host when set;
``push_headers()`` returns the same headers for a test client. With ``auto_push`` every change to a watched
calendar notifies its channels (the demo).

Command line (the offline demo; a page at ``/`` lists calendars and lets you add, move and delete events)::

    python -m scripts.standins.google_standin --port 12113 --client-id fieldday-demo.apps.googleusercontent.com \\
        --client-secret standin-secret --webhook-base http://127.0.0.1:5000 --auto-push --state .dev/google.json
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import re
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from scripts.standins.base import Standin, cli, html_page, json_response, loopback, post, public, serve

DEFAULT_CLIENT_ID = "fieldday-standin.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "standin-secret"
DEFAULT_USER = "detailer@example.com"
ACCESS_TTL_S = 3600
CODE_TTL_S = 600
CHANNEL_TTL_S = 7 * 24 * 3600
EXPAND_DAYS = 365  # singleEvents without timeMax: how far recurrences are expanded
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")  # base32hex, as Google requires for client-chosen ids

ROUTES = [
    ("GET", "/o/oauth2/auth", "authorize_page"),
    ("POST", "/o/oauth2/approve", "approve"),
    ("POST", "/token", "token"),
    ("POST", "/revoke", "revoke"),
    ("GET", "/users/me/calendarList", "api:calendar_list"),
    ("GET", "/users/me/calendarList/<path:cal>", "api:calendar_list_get"),
    ("GET", "/calendars/<path:cal>/events/<eid>", "api:get_event"),
    ("PATCH", "/calendars/<path:cal>/events/<eid>", "api:patch_event"),
    ("PUT", "/calendars/<path:cal>/events/<eid>", "api:patch_event"),
    ("DELETE", "/calendars/<path:cal>/events/<eid>", "api:delete_event"),
    ("POST", "/calendars/<path:cal>/events/watch", "api:watch"),
    ("GET", "/calendars/<path:cal>/events", "api:list_events"),
    ("POST", "/calendars/<path:cal>/events", "api:insert_event"),
    ("POST", "/channels/stop", "api:stop_channel"),
    ("POST", "/freeBusy", "api:freebusy"),
    ("GET", "/", "home_page"),
    ("POST", "/_standin/events", "control_add_event"),
    ("POST", "/_standin/events/<path:cal>/<eid>/move", "control_move_event"),
    ("POST", "/_standin/events/<path:cal>/<eid>/delete", "control_delete_event"),
    ("GET", "/_standin/health", "health"),
    ("GET", "/_standin/state", "state_json"),
]


class GoogleApiError(Exception):
    """An answer in Google's JSON error envelope."""

    STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}

    def __init__(self, code: int, message: str, reason: str = "invalid", domain: str = "global"):
        super().__init__(message)
        self.code = code
        self.body = {
            "error": {
                "code": code,
                "message": message,
                "errors": [{"domain": domain, "reason": reason, "message": message}],
                "status": self.STATUS.get(code, "UNKNOWN"),
            }
        }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a time needs its offset")
    return moment.astimezone(UTC)


def _bounds(when: dict) -> tuple[datetime, bool]:
    """(instant, all_day) of an event's start or end; an all-day date counts from 00:00 UTC for filtering."""
    if "date" in when:
        return datetime.combine(date.fromisoformat(when["date"]), datetime.min.time(), tzinfo=UTC), True
    return parse_time(when["dateTime"]), False


@dataclass
class Recorded:
    method: str
    path: str
    params: dict
    body: dict | None
    status: int | None = None


@dataclass
class Delivery:
    channel_id: str
    state: str
    url: str
    headers: dict
    status: int | str | None = None
    created: float = field(default_factory=time.time)


class GoogleStandin(Standin):
    """Thread-safe in-memory Google OAuth + Calendar: a WSGI app plus test helpers (module docstring)."""

    def __init__(
        self,
        *,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        webhook_base=None,
        auto_push=False,
        state_file=None,
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_base = webhook_base
        self.auto_push = auto_push
        rules = [Rule(p, methods=[m], endpoint=n) for m, p, n in ROUTES]
        rules += [Rule("/calendar/v3" + p, methods=[m], endpoint=n) for m, p, n in ROUTES if n.startswith("api:")]
        self._urls = Map(rules, strict_slashes=False, merge_slashes=False)
        super().__init__(state_file=state_file)
        self.requests: list[Recorded]
        self.deliveries: list[Delivery]

    def _clear(self):
        """Forget users, calendars, events, tokens and channels: one account with its primary calendar remains."""
        self._users: dict[str, dict] = {}
        self._calendars: dict[str, dict] = {}
        self._codes: dict[str, dict] = {}
        self._refresh: dict[str, dict] = {}
        self._access: dict[str, dict] = {}
        self._channels: dict[str, dict] = {}
        self._sync_tokens: dict[str, tuple[str, int]] = {}
        self._freebusy_errors: dict[str, str] = {}
        self._version = 0
        self.add_user(DEFAULT_USER)

    # -- set-up helpers --------------------------------------------------------------------------

    def add_user(self, email: str, *, time_zone: str = "America/New_York") -> dict:
        """A Google account with its primary calendar (whose id is the e-mail address)."""
        with self._lock:
            user = self._users.setdefault(email, {"email": email, "calendars": {}})
            if email not in self._calendars:
                self.add_calendar(email, summary=email, owner=email, time_zone=time_zone, primary=True)
            return user

    def add_calendar(
        self,
        cal_id: str | None = None,
        *,
        summary: str = "Calendar",
        owner: str = DEFAULT_USER,
        time_zone: str = "America/New_York",
        primary: bool = False,
        access_role: str = "owner",
    ) -> str:
        """A calendar ``owner`` can see with ``access_role`` (owner, writer, reader or freeBusyReader)."""
        with self._lock:
            cal_id = cal_id or f"c_{secrets.token_hex(8)}@group.calendar.google.com"
            self._calendars.setdefault(
                cal_id, {"id": cal_id, "summary": summary, "timeZone": time_zone, "events": {}, "log": []}
            )
            self._users.setdefault(owner, {"email": owner, "calendars": {}})
            self._users[owner]["calendars"][cal_id] = {"accessRole": access_role, "primary": primary}
            return cal_id

    def share_calendar(self, cal_id: str, email: str, access_role: str = "reader") -> None:
        with self._lock:
            self.add_user(email)
            self._users[email]["calendars"][cal_id] = {"accessRole": access_role, "primary": False}

    def delete_calendar(self, cal_id: str) -> None:
        """The calendar is gone: every call naming it answers 404 and it leaves every calendar list."""
        with self._lock:
            self._calendars.pop(cal_id, None)
            for user in self._users.values():
                user["calendars"].pop(cal_id, None)

    def add_event(
        self,
        cal_id: str,
        start,
        end,
        *,
        summary: str = "Busy",
        transparent: bool = False,
        recurrence: list[str] | None = None,
        event_id: str | None = None,
        attendees: list[dict] | None = None,
        private: dict | None = None,
        time_zone: str | None = None,
    ) -> dict:
        """An event, as if typed into Google Calendar. ``start``/``end`` are datetimes (timed) or dates (all
        day); ``recurrence`` takes ``RRULE:FREQ=DAILY|WEEKLY;COUNT=n`` or ``;UNTIL=…``."""
        body = {"summary": summary, "start": self._when(start, time_zone), "end": self._when(end, time_zone)}
        if transparent:
            body["transparency"] = "transparent"
        if recurrence:
            body["recurrence"] = recurrence
        if attendees:
            body["attendees"] = attendees
        if private:
            body["extendedProperties"] = {"private": dict(private)}
        if event_id:
            body["id"] = event_id
        with self._lock:
            return self._store_new(cal_id, body)

    def update_event(self, cal_id: str, event_id: str, **changes) -> dict:
        """Change an event (or one recurring instance, by its instance id) as a user would in Google."""
        for key in ("start", "end"):
            if key in changes and not isinstance(changes[key], dict):
                changes[key] = self._when(changes[key], None)
        with self._lock:
            return self._patch(cal_id, event_id, changes)

    def move_event(self, cal_id: str, event_id: str, start: datetime, end: datetime | None = None) -> dict:
        with self._lock:
            event = self._current(cal_id, event_id)
            old_start, _ = _bounds(event["start"])
            old_end, _ = _bounds(event["end"])
        end = end or start + (old_end - old_start)
        return self.update_event(cal_id, event_id, start=start, end=end)

    def delete_event(self, cal_id: str, event_id: str) -> None:
        with self._lock:
            self._patch(cal_id, event_id, {"status": "cancelled"})

    def events(self, cal_id: str, *, include_cancelled: bool = False) -> list[dict]:
        """Current events of a calendar (recurring masters unexpanded), without private bookkeeping."""
        with self._lock:
            cal = self._calendar(cal_id)
            return [public(e) for e in cal["events"].values() if include_cancelled or e.get("status") != "cancelled"]

    def instances(self, cal_id: str, event_id: str) -> list[dict]:
        """A recurring event's instances as ``singleEvents=true`` lists them (ids ``<event>_<start>``)."""
        with self._lock:
            master = self._calendar(cal_id)["events"][event_id]
            return [public(i) for i in self._instances(master, None, None)]

    def invalidate_sync_tokens(self, cal_id: str | None = None) -> None:
        """Every sync token issued so far (for one calendar, or all) now answers 410 GONE."""
        with self._lock:
            for token, (cal, _) in list(self._sync_tokens.items()):
                if cal_id is None or cal == cal_id:
                    self._sync_tokens[token] = (cal, -1)

    def revoke_user_tokens(self, email: str = DEFAULT_USER) -> None:
        """The user removed Fieldday's access in their Google account: refreshes answer invalid_grant."""
        with self._lock:
            for rt in self._refresh.values():
                if rt["user"] == email:
                    rt["revoked"] = True
            for at in self._access.values():
                if at["user"] == email:
                    at["expires"] = 0

    def expire_access_tokens(self) -> None:
        with self._lock:
            for at in self._access.values():
                at["expires"] = 0

    def set_freebusy_error(self, cal_id: str, reason: str | None = "backendError") -> None:
        with self._lock:
            if reason:
                self._freebusy_errors[cal_id] = reason
            else:
                self._freebusy_errors.pop(cal_id, None)

    def fail_next(self, method: str, path: str, status: int = 500, *, times: int = 1, reason: str = "backendError"):
        """The next ``times`` API calls matching ``method`` and the ``path`` regex answer ``status``."""
        self._add_failure(method, path, status, times, reason=reason)

    @property
    def channels(self) -> dict[str, dict]:
        with self._lock:
            return copy.deepcopy(self._channels)

    def active_channels(self, cal_id: str | None = None) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(c)
                for c in self._channels.values()
                if not c["stopped"] and (cal_id is None or c["calendar"] == cal_id)
            ]

    def refresh_tokens(self, email: str | None = None) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._refresh.values() if email is None or r["user"] == email]

    # -- the OAuth consent, as a helper --------------------------------------------------------------

    def authorize(self, auth_url: str, *, user: str = DEFAULT_USER, approve: bool = True) -> str:
        """What the browser ends up with after the consent screen: the redirect URL back to the app."""
        from urllib.parse import parse_qs

        query = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
        with self._lock:
            return self._decide(query, user, approve)

    def _decide(self, query: dict, user: str, approve: bool) -> str:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri:
            raise GoogleApiError(400, "invalid_request: unknown client or missing redirect_uri", "invalid_client")
        back = {"state": query["state"]} if "state" in query else {}
        if not approve:
            return f"{redirect_uri}?{urlencode({'error': 'access_denied', **back})}"
        self.add_user(user)
        code = "4/" + secrets.token_urlsafe(24)
        self._codes[code] = {
            "user": user,
            "client_id": query["client_id"],
            "redirect_uri": redirect_uri,
            "scope": query.get("scope", ""),
            "challenge": query.get("code_challenge"),
            "method": query.get("code_challenge_method", "plain"),
            "offline": query.get("access_type") == "offline",
            "expires": time.time() + CODE_TTL_S,
        }
        return f"{redirect_uri}?{urlencode({**back, 'code': code, 'scope': query.get('scope', '')})}"

    # -- push notifications ----------------------------------------------------------------------------

    def push_headers(self, channel_id: str, state: str = "exists", *, token: str | None = None) -> dict:
        """The headers of Google's notification for a channel (it has no body)."""
        with self._lock:
            ch = self._channels[channel_id]
            ch["messages"] += 1
            headers = {
                "X-Goog-Channel-ID": channel_id,
                "X-Goog-Channel-Expiration": datetime.fromtimestamp(ch["expiration"] / 1000, UTC).strftime(
                    "%a, %d %b %Y %H:%M:%S GMT"
                ),
                "X-Goog-Resource-ID": ch["resourceId"],
                "X-Goog-Resource-URI": f"{self.url}/calendars/{ch['calendar']}/events?alt=json",
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(ch["messages"]),
            }
            token = ch.get("token") if token is None else token
            if token:
                headers["X-Goog-Channel-Token"] = token
            return headers

    def notify(self, channel_id: str, state: str = "exists", *, token: str | None = None) -> int | str:
        """POST a notification to the channel's address (via ``webhook_base`` when set). Returns the status."""
        headers = self.push_headers(channel_id, state, token=token)
        with self._lock:
            address = self._channels[channel_id]["address"]
        send = {"Host": urlsplit(address).netloc, "Content-Length": "0", "User-Agent": "APIs-Google", **headers}
        delivery = Delivery(channel_id, state, address, send)
        with self._lock:
            self.deliveries.append(delivery)
        try:
            delivery.status = post(address, b"", send, via=self.webhook_base)
        except Exception as exc:  # noqa: BLE001 - recorded; Google just drops a failed notification
            delivery.status = f"{type(exc).__name__}: {exc}"
        return delivery.status

    def _changed(self, cal_id: str) -> None:
        if not self.auto_push:
            return
        targets = [cid for cid, c in self._channels.items() if c["calendar"] == cal_id and not c["stopped"]]
        for cid in targets:
            threading.Thread(target=self.notify, args=(cid,), daemon=True).start()

    # -- WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            name, args = self._urls.bind_to_environ(environ).match()
        except HTTPException as exc:
            if request.path.startswith(("/_standin", "/o/")) or request.path == "/":
                return exc(environ, start_response)
            body = GoogleApiError(404, "Not Found", "notFound").body
            return json_response(404, body)(environ, start_response)
        if name.startswith("api:"):
            response = self._api(request, name[4:], args)
        else:
            response = getattr(self, f"_{name}")(request, **args)
        return response(environ, start_response)

    def _api(self, request: Request, name: str, args: dict) -> Response:
        params = request.args.to_dict()
        body = None
        if request.data:
            try:
                body = json.loads(request.data)
            except ValueError:
                return json_response(400, GoogleApiError(400, "Parse Error", "parseError").body)
        recorded = Recorded(request.method, request.path, params, body)
        with self._lock:
            self.requests.append(recorded)
        try:
            with self._lock:
                user = self._authenticate(request)
                failure = self._take_failure(request.method, request.path)
                if failure:
                    raise GoogleApiError(failure["status"], f"Injected {failure['status']}", failure["reason"])
                status, answer = getattr(self, f"_api_{name}")(user, params, body or {}, **args)
                changed = args.get("cal") if request.method != "GET" and name != "watch" else None
                self._save()
        except GoogleApiError as exc:
            status, answer, changed = exc.code, exc.body, None
        except Exception as exc:  # a bug here should look like Google's 500, not an HTML page
            traceback.print_exc()
            status, answer, changed = 500, GoogleApiError(500, f"Stand-in error: {exc!r}", "backendError").body, None
        recorded.status = status
        response = json_response(status, answer) if answer is not None else Response(status=status)
        if changed:
            response.call_on_close(lambda: self._changed(changed))
        return response

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        grant = self._access.get(token)
        if not grant or grant["expires"] < time.time() or self._refresh.get(grant["rt"], {}).get("revoked"):
            raise GoogleApiError(401, "Request had invalid authentication credentials.", "authError")
        return grant["user"]

    # -- OAuth endpoints -------------------------------------------------------------------------------

    def _authorize_page(self, request: Request) -> Response:
        query = request.args.to_dict()
        if query.get("client_id") != self.client_id:
            return _html(400, "Error 401: invalid_client", "<h1>Error 401: invalid_client</h1><p>Unknown client.</p>")
        with self._lock:
            users = sorted(self._users)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
        )
        options = "".join(f"<option>{html.escape(u)}</option>" for u in users)
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in query.get("scope", "").split())
        body = (
            "<h1>Sign in with Google</h1><p>Fieldday wants to:</p>"
            f"<ul>{scopes}</ul>"
            f'<form method="post" action="/o/oauth2/approve">{hidden}'
            f'<label>Account <select name="_user" data-testid="google-account">{options}</select></label>'
            '<label>…or another e-mail <input name="_new_user" placeholder="you@example.com"></label>'
            '<button name="_decision" value="allow" data-testid="google-allow">Allow</button> '
            '<button name="_decision" value="deny" class="secondary" data-testid="google-deny">Cancel</button></form>'
        )
        return _html(200, "Sign in – Google Accounts (stand-in)", body)

    def _approve(self, request: Request) -> Response:
        form = request.form.to_dict()
        user = form.pop("_new_user", "").strip() or form.pop("_user", DEFAULT_USER)
        form.pop("_user", None)
        approve = form.pop("_decision", "allow") == "allow"
        try:
            with self._lock:
                target = self._decide(form, user, approve)
        except GoogleApiError as exc:
            return _html(400, "Error", f"<h1>Error</h1><p>{html.escape(str(exc))}</p>")
        return redirect(target, 302)

    def _client_ok(self, request: Request, form: dict) -> bool:
        auth = request.authorization
        cid, secret = (auth.username, auth.password) if auth else (form.get("client_id"), form.get("client_secret"))
        return cid == self.client_id and secrets.compare_digest(str(secret or ""), self.client_secret)

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        with self._lock:
            self.requests.append(Recorded("POST", "/token", {"grant_type": form.get("grant_type")}, None))
            if not self._client_ok(request, form):
                return json_response(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            grant = form.get("grant_type")
            if grant == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)
                if not code or code["expires"] < time.time() or code["redirect_uri"] != form.get("redirect_uri"):
                    return json_response(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                if code["challenge"]:
                    verifier = form.get("code_verifier", "")
                    if code["method"] == "S256":
                        digest = hashlib.sha256(verifier.encode()).digest()
                        verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                    if not secrets.compare_digest(verifier, code["challenge"]):
                        return json_response(
                            400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
                        )
                rt = None
                if code["offline"]:
                    rt = "1//" + secrets.token_urlsafe(32)
                    self._refresh[rt] = {"user": code["user"], "scope": code["scope"], "revoked": False, "token": rt}
                body = self._issue(code["user"], rt, code["scope"])
                if rt:
                    body["refresh_token"] = rt
                self._save()
                return json_response(200, body)
            if grant == "refresh_token":
                rt = self._refresh.get(form.get("refresh_token", ""))
                if not rt or rt["revoked"]:
                    return json_response(
                        400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                    )
                return json_response(200, self._issue(rt["user"], rt["token"], rt["scope"]))
            return json_response(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})

    def _issue(self, user: str, rt: str | None, scope: str) -> dict:
        at = "ya29." + secrets.token_urlsafe(32)
        self._access[at] = {"user": user, "rt": rt, "expires": time.time() + ACCESS_TTL_S}
        return {"access_token": at, "expires_in": ACCESS_TTL_S, "scope": scope, "token_type": "Bearer"}

    def _revoke(self, request: Request) -> Response:
        # Google takes the token as a form field (its docs) or, older clients, in the query string.
        token = request.form.get("token") or request.args.get("token", "")
        with self._lock:
            # Recorded with its query string only (the form body holds the secret).
            self.requests.append(Recorded("POST", "/revoke", request.args.to_dict(), None))
            if token in self._refresh:
                self._refresh[token]["revoked"] = True
                for at in self._access.values():
                    if at["rt"] == token:
                        at["expires"] = 0
            elif token in self._access:
                rt = self._access[token]["rt"]
                if rt in self._refresh:
                    self._refresh[rt]["revoked"] = True
                self._access[token]["expires"] = 0
            else:
                return json_response(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
            self._save()
        return json_response(200, {})

    # -- Calendar API handlers (lock held) -------------------------------------------------------------

    def _calendar(self, cal_id: str) -> dict:
        cal = self._calendars.get(cal_id)
        if cal is None:
            raise GoogleApiError(404, "Not Found", "notFound")
        return cal

    def _visible(self, user: str, cal_id: str, *, write: bool = False, events: bool = True) -> dict:
        if cal_id == "primary":
            cal_id = user
        role = self._users.get(user, {}).get("calendars", {}).get(cal_id, {}).get("accessRole")
        cal = self._calendar(cal_id) if role else None
        if cal is None:
            raise GoogleApiError(404, "Not Found", "notFound")
        if events and role == "freeBusyReader":
            raise GoogleApiError(403, "Forbidden", "forbidden")
        if write and role not in ("owner", "writer"):
            raise GoogleApiError(403, "You need to have writer access to this calendar.", "requiredAccessLevel")
        return cal

    def _api_calendar_list(self, user: str, params: dict, body: dict) -> tuple[int, dict]:
        items = []
        for cal_id, entry in self._users.get(user, {}).get("calendars", {}).items():
            cal = self._calendars.get(cal_id)
            if cal is None:
                continue
            item = {
                "kind": "calendar#calendarListEntry",
                "id": cal_id,
                "summary": cal["summary"],
                "timeZone": cal["timeZone"],
                "accessRole": entry["accessRole"],
                "etag": f'"{self._version}"',
            }
            if entry.get("primary"):
                item["primary"] = True
            items.append(item)
        return 200, {"kind": "calendar#calendarList", "etag": f'"{self._version}"', "items": items}

    def _api_calendar_list_get(self, user: str, params: dict, body: dict, cal: str) -> tuple[int, dict]:
        cal_id = user if cal == "primary" else cal
        _, answer = self._api_calendar_list(user, params, body)
        entry = next((item for item in answer["items"] if item["id"] == cal_id), None)
        if entry is None:
            raise GoogleApiError(404, "Not Found", "notFound")
        return 200, entry

    def _api_list_events(self, user: str, params: dict, body: dict, cal: str) -> tuple[int, dict]:
        calendar = self._visible(user, cal)
        single = params.get("singleEvents") == "true"
        sync_token = params.get("syncToken")
        if sync_token and any(params.get(k) for k in ("timeMin", "timeMax", "updatedMin", "q", "orderBy")):
            raise GoogleApiError(400, "Sync token cannot be combined with time bounds.", "invalid")
        page_size = min(int(params.get("maxResults") or 250), 2500)
        page_token = params.get("pageToken")
        if page_token:
            state = json.loads(base64.urlsafe_b64decode(page_token.encode()).decode())
            offset, since, snap = state["o"], state["s"], state["v"]
        else:
            offset, snap = 0, self._version
            since = None
            if sync_token:
                found = self._sync_tokens.get(sync_token)
                if found is None or found[0] != calendar["id"] or found[1] < 0:
                    raise GoogleApiError(
                        410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired"
                    )
                since = found[1]
        if since is None:
            t_min = parse_time(params["timeMin"]) if params.get("timeMin") else None
            t_max = parse_time(params["timeMax"]) if params.get("timeMax") else None
            items = self._snapshot(calendar, single, t_min, t_max, params.get("showDeleted") == "true")
        else:
            items = self._changes(calendar, single, since)
        wanted = params.get("privateExtendedProperty")
        if wanted and "=" in wanted:
            key, value = wanted.split("=", 1)
            items = [e for e in items if e.get("extendedProperties", {}).get("private", {}).get(key) == value]
        page = items[offset : offset + page_size]
        answer = {
            "kind": "calendar#events",
            "summary": calendar["summary"],
            "timeZone": calendar["timeZone"],
            "updated": rfc3339(datetime.now(UTC)),
            "items": page,
        }
        if offset + page_size < len(items):
            state = {"o": offset + page_size, "s": since, "v": snap}
            answer["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        else:
            token = "CP" + secrets.token_urlsafe(18)
            self._sync_tokens[token] = (calendar["id"], snap)
            answer["nextSyncToken"] = token
        return 200, answer

    def _snapshot(self, cal: dict, single: bool, t_min, t_max, show_deleted: bool) -> list[dict]:
        out = []
        for event in cal["events"].values():
            candidates = self._instances(event, t_min, t_max) if single and event.get("recurrence") else [event]
            for e in candidates:
                if e.get("status") == "cancelled" and not show_deleted:
                    continue
                if e.get("status") != "cancelled" and not self._overlaps(e, t_min, t_max):
                    continue
                out.append(public(e))
        out.sort(key=lambda e: (e.get("start", {}).get("dateTime") or e.get("start", {}).get("date") or "", e["id"]))
        return out

    def _changes(self, cal: dict, single: bool, since: int) -> list[dict]:
        """Everything changed after version ``since``: deleted events come back as ``status: cancelled``."""
        seen: dict[str, dict] = {}
        for version, eid in cal["log"]:
            if version <= since:
                continue
            master_id = eid.split("_")[0]
            master = cal["events"].get(master_id)
            if master is None:
                continue
            if single and master.get("recurrence"):
                if eid == master_id:  # the series changed: every instance did
                    for inst in self._instances(master, None, None, include_cancelled=True):
                        seen[inst["id"]] = inst
                else:
                    inst = next(
                        (i for i in self._instances(master, None, None, include_cancelled=True) if i["id"] == eid),
                        None,
                    )
                    if inst is not None:
                        seen[inst["id"]] = inst
            elif eid == master_id:
                seen[eid] = master
            else:
                seen[master_id] = master
        return [public(e) for e in seen.values()]

    def _instances(self, master: dict, t_min, t_max, *, include_cancelled: bool = False) -> list[dict]:
        """The series expanded with its exceptions (moved or cancelled instances)."""
        rule = dict(
            part.split("=", 1) for part in master["recurrence"][0].removeprefix("RRULE:").split(";") if "=" in part
        )
        step = {"DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1)}[rule.get("FREQ", "DAILY")]
        step *= int(rule.get("INTERVAL", 1))
        start, all_day = _bounds(master["start"])
        end, _ = _bounds(master["end"])
        count = int(rule["COUNT"]) if "COUNT" in rule else None
        until = parse_time(self._until(rule["UNTIL"])) if "UNTIL" in rule else None
        horizon = (t_max or (t_min or datetime.now(UTC)) + timedelta(days=EXPAND_DAYS)) + timedelta(days=1)
        out, n, cursor = [], 0, start
        while cursor < horizon and (count is None or n < count) and (until is None or cursor <= until):
            stamp = cursor.strftime("%Y%m%d") if all_day else cursor.strftime("%Y%m%dT%H%M%SZ")
            inst_id = f"{master['id']}_{stamp}"
            original = {"date": cursor.date().isoformat()} if all_day else {"dateTime": rfc3339(cursor)}
            inst = {
                k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "id", "_exceptions", "_v")
            }
            inst.update(
                id=inst_id,
                recurringEventId=master["id"],
                originalStartTime=original,
                start=self._shift(master["start"], cursor - start, all_day),
                end=self._shift(master["end"], cursor - start, all_day),
            )
            if master.get("status") == "cancelled":
                inst["status"] = "cancelled"
            inst.update(copy.deepcopy(master.get("_exceptions", {}).get(inst_id, {})))
            if (include_cancelled or inst.get("status") != "cancelled") and (
                inst.get("status") == "cancelled" or self._overlaps(inst, t_min, t_max)
            ):
                out.append(inst)
            cursor += step
            n += 1
        del end
        return out

    @staticmethod
    def _until(value: str) -> str:
        if "T" in value:
            return f"{value[:4]}-{value[4:6]}-{value[6:8]}T{value[9:11]}:{value[11:13]}:{value[13:15]}Z"
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}T23:59:59Z"

    @staticmethod
    def _shift(when: dict, delta: timedelta, all_day: bool) -> dict:
        if all_day:
            return {"date": (date.fromisoformat(when["date"]) + delta).isoformat()}
        shifted = {"dateTime": rfc3339(parse_time(when["dateTime"]) + delta)}
        if "timeZone" in when:
            shifted["timeZone"] = when["timeZone"]
        return shifted

    @staticmethod
    def _overlaps(event: dict, t_min, t_max) -> bool:
        start, _ = _bounds(event["start"])
        end, _ = _bounds(event["end"])
        return (t_min is None or end > t_min) and (t_max is None or start < t_max)

    def _api_get_event(self, user: str, params: dict, body: dict, cal: str, eid: str) -> tuple[int, dict]:
        calendar = self._visible(user, cal)
        return 200, public(self._current(calendar["id"], eid))

    def _current(self, cal_id: str, eid: str) -> dict:
        cal = self._calendar(cal_id)
        master = cal["events"].get(eid.split("_")[0])
        if master is None:
            raise GoogleApiError(404, "Not Found", "notFound")
        if "_" in eid and master.get("recurrence"):
            inst = next(
                (i for i in self._instances(master, None, None, include_cancelled=True) if i["id"] == eid), None
            )
            if inst is None:
                raise GoogleApiError(404, "Not Found", "notFound")
            return inst
        return master

    def _api_insert_event(self, user: str, params: dict, body: dict, cal: str) -> tuple[int, dict]:
        calendar = self._visible(user, cal, write=True)
        return 200, public(self._store_new(calendar["id"], body))

    def _store_new(self, cal_id: str, body: dict) -> dict:
        cal = self._calendar(cal_id)
        eid = body.get("id") or secrets.token_hex(13)
        if not EVENT_ID.match(eid):
            raise GoogleApiError(400, "Invalid resource id value.", "invalid")
        if eid in cal["events"]:
            raise GoogleApiError(409, "The requested identifier already exists.", "duplicate")
        for key in ("start", "end"):
            if key not in body or not ({"date", "dateTime"} & set(body[key])):
                raise GoogleApiError(400, "Missing start or end time.", "required")
        start, _ = _bounds(body["start"])
        end, _ = _bounds(body["end"])
        if end <= start:
            raise GoogleApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        now = rfc3339(datetime.now(UTC))
        event = {
            "kind": "calendar#event",
            "id": eid,
            "status": "confirmed",
            "created": now,
            "updated": now,
            "htmlLink": f"{self.url}/?event={eid}",
            "iCalUID": f"{eid}@google.com",
            "sequence": 0,
            **{k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "kind")},
        }
        cal["events"][eid] = event
        self._touch(cal, event, eid)
        return event

    def _touch(self, cal: dict, master: dict, eid: str) -> None:
        self._version += 1
        master["_v"] = self._version
        master["etag"] = f'"{self._version}"'
        master["updated"] = rfc3339(datetime.now(UTC))
        cal["log"].append((self._version, eid))

    def _api_patch_event(self, user: str, params: dict, body: dict, cal: str, eid: str) -> tuple[int, dict]:
        calendar = self._visible(user, cal, write=True)
        return 200, public(self._patch(calendar["id"], eid, body))

    def _patch(self, cal_id: str, eid: str, changes: dict) -> dict:
        cal = self._calendar(cal_id)
        master_id = eid.split("_")[0]
        master = cal["events"].get(master_id)
        if master is None:
            raise GoogleApiError(404, "Not Found", "notFound")
        changes = {k: copy.deepcopy(v) for k, v in changes.items() if k not in ("id", "kind", "etag")}
        if eid != master_id and master.get("recurrence"):
            self._current(cal_id, eid)  # 404 for an instance that never existed
            master.setdefault("_exceptions", {}).setdefault(eid, {}).update(changes)
            self._touch(cal, master, eid)
            return self._current(cal_id, eid)
        for key, value in changes.items():
            if key == "extendedProperties":
                for scope, props in value.items():
                    master.setdefault("extendedProperties", {}).setdefault(scope, {}).update(props)
            else:
                master[key] = value
        master["sequence"] = master.get("sequence", 0) + 1
        self._touch(cal, master, master_id)
        return master

    def _api_delete_event(self, user: str, params: dict, body: dict, cal: str, eid: str) -> tuple[int, None]:
        calendar = self._visible(user, cal, write=True)
        current = self._current(calendar["id"], eid)
        if current.get("status") == "cancelled":
            raise GoogleApiError(410, "Resource has been deleted", "deleted")
        self._patch(calendar["id"], eid, {"status": "cancelled"})
        return 204, None

    def _api_watch(self, user: str, params: dict, body: dict, cal: str) -> tuple[int, dict]:
        calendar = self._visible(user, cal)
        channel_id = body.get("id", "")
        if not channel_id or not body.get("address") or body.get("type") not in ("web_hook", "webhook"):
            raise GoogleApiError(400, "Channel id, type web_hook and address are required.", "required")
        if channel_id in self._channels:
            raise GoogleApiError(400, f"Channel id {channel_id} not unique", "channelIdNotUnique")
        ttl = int((body.get("params") or {}).get("ttl") or CHANNEL_TTL_S)
        expiration = int((time.time() + min(ttl, 30 * 24 * 3600)) * 1000)
        channel = {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": "r" + secrets.token_urlsafe(16),
            "resourceUri": f"{self.url}/calendars/{calendar['id']}/events?alt=json",
            "token": body.get("token"),
            "expiration": str(expiration),
        }
        self._channels[channel_id] = {
            **channel,
            "expiration": expiration,
            "calendar": calendar["id"],
            "address": body["address"],
            "user": user,
            "stopped": False,
            "messages": 0,
        }
        threading.Thread(target=self.notify, args=(channel_id, "sync"), daemon=True).start() if self.auto_push else None
        return 200, channel

    def _api_stop_channel(self, user: str, params: dict, body: dict) -> tuple[int, None]:
        ch = self._channels.get(body.get("id", ""))
        if ch is None or ch["resourceId"] != body.get("resourceId") or ch["stopped"]:
            raise GoogleApiError(404, f"Channel '{body.get('id')}' not found for project", "notFound")
        ch["stopped"] = True
        return 204, None

    def _api_freebusy(self, user: str, params: dict, body: dict) -> tuple[int, dict]:
        t_min, t_max = parse_time(body["timeMin"]), parse_time(body["timeMax"])
        calendars = {}
        for item in body.get("items", []):
            cal_id = item.get("id", "")
            key = user if cal_id == "primary" else cal_id
            if key in self._freebusy_errors:
                calendars[cal_id] = {"errors": [{"domain": "global", "reason": self._freebusy_errors[key]}], "busy": []}
                continue
            if key not in self._users.get(user, {}).get("calendars", {}) or key not in self._calendars:
                calendars[cal_id] = {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            busy = []
            for e in self._snapshot(self._calendars[key], True, t_min, t_max, False):
                if e.get("transparency") == "transparent":
                    continue
                start, _ = _bounds(e["start"])
                end, _ = _bounds(e["end"])
                busy.append({"start": rfc3339(max(start, t_min)), "end": rfc3339(min(end, t_max))})
            calendars[cal_id] = {"busy": busy}
        return 200, {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    @staticmethod
    def _when(value, time_zone) -> dict:
        if isinstance(value, datetime):
            when = {"dateTime": value.isoformat() if value.tzinfo else rfc3339(value.replace(tzinfo=UTC))}
            if time_zone:
                when["timeZone"] = time_zone
            return when
        if isinstance(value, date):
            return {"date": value.isoformat()}
        return dict(value)

    # -- the demo page and control endpoints ---------------------------------------------------------

    def _health(self, request: Request) -> Response:
        with self._lock:
            return json_response(200, {"ok": True, "calendars": len(self._calendars), "channels": len(self._channels)})

    def _state_json(self, request: Request) -> Response:
        with self._lock:
            body = {
                "calendars": {cid: [public(e) for e in c["events"].values()] for cid, c in self._calendars.items()},
                "channels": {cid: {k: v for k, v in c.items() if k != "token"} for cid, c in self._channels.items()},
            }
        return json_response(200, body)

    def _home_page(self, request: Request) -> Response:
        with self._lock:
            cals = [
                (cid, c["summary"], c["timeZone"], list(c["events"].values())) for cid, c in self._calendars.items()
            ]
        parts = ["<h1>Google Calendar (stand-in)</h1>"]
        options = "".join(f'<option value="{html.escape(c)}">{html.escape(s)}</option>' for c, s, _, _ in cals)
        parts.append(
            '<form method="post" action="/_standin/events" class="card"><h2>New event</h2>'
            f'<label>Calendar <select name="calendar">{options}</select></label>'
            '<label>Title <input name="summary" value="Dentist"></label>'
            "<label>Starts (local, YYYY-MM-DDTHH:MM) "
            '<input name="start" required placeholder="2026-12-01T10:00"></label>'
            '<label>Minutes <input name="minutes" value="60"></label>'
            '<label><input type="checkbox" name="all_day"> All day</label>'
            '<label><input type="checkbox" name="transparent"> Show me as free</label>'
            "<button>Add event</button></form>"
        )
        for cid, summary, tz, events in cals:
            rows = []
            for e in sorted(events, key=lambda e: json.dumps(e.get("start"))):
                ours = "fieldday_booking" in e.get("extendedProperties", {}).get("private", {})
                when = e["start"].get("dateTime") or e["start"].get("date")
                q = html.escape(cid)
                eid = html.escape(e["id"])
                actions = ""
                if e.get("status") != "cancelled":
                    actions = (
                        f'<form method="post" action="/_standin/events/{q}/{eid}/move" class="inline">'
                        '<input name="start" placeholder="YYYY-MM-DDTHH:MM" required><button>Move</button></form>'
                        f'<form method="post" action="/_standin/events/{q}/{eid}/delete" class="inline">'
                        "<button>Delete</button></form>"
                    )
                rows.append(
                    f"<li class='{'ours' if ours else ''} {html.escape(e.get('status', ''))}'>"
                    f"<b>{html.escape(e.get('summary') or '(no title)')}</b> {html.escape(when)}"
                    f"{' · free' if e.get('transparency') == 'transparent' else ''}"
                    f"{' · repeats' if e.get('recurrence') else ''}{' · Fieldday' if ours else ''}"
                    f" <small>{html.escape(e.get('status', ''))}</small>{actions}</li>"
                )
            parts.append(
                f"<section class='card'><h2>{html.escape(summary)}</h2>"
                f"<p class='muted'>{html.escape(cid)} · {html.escape(tz)}</p>"
                f"<ul>{''.join(rows) or '<li>No events.</li>'}</ul></section>"
            )
        return _html(200, "Google Calendar stand-in", "".join(parts))

    def _local(self, cal_id: str, value: str) -> datetime:
        from zoneinfo import ZoneInfo

        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self._calendar(cal_id)["timeZone"]))
        return moment

    def _control_add_event(self, request: Request) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        f = request.form
        try:
            cal = f["calendar"]
            start = self._local(cal, f["start"])
            if f.get("all_day"):
                self.add_event(
                    cal,
                    start.date(),
                    start.date() + timedelta(days=1),
                    summary=f.get("summary") or "Busy",
                    transparent=bool(f.get("transparent")),
                )
            else:
                end = start + timedelta(minutes=int(f.get("minutes") or 60))
                self.add_event(
                    cal, start, end, summary=f.get("summary") or "Busy", transparent=bool(f.get("transparent"))
                )
            self._changed(cal)
            self._save()
        except (KeyError, ValueError, GoogleApiError) as exc:
            return json_response(400, {"error": str(exc)})
        return redirect("/", 303)

    def _control_move_event(self, request: Request, cal: str, eid: str) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        try:
            self.move_event(cal, eid, self._local(cal, request.form["start"]))
            self._changed(cal)
            self._save()
        except (KeyError, ValueError, GoogleApiError) as exc:
            return json_response(400, {"error": str(exc)})
        return redirect("/", 303)

    def _control_delete_event(self, request: Request, cal: str, eid: str) -> Response:
        if not loopback(request):
            return json_response(403, {"error": "loopback only"})
        try:
            self.delete_event(cal, eid)
            self._changed(cal)
            self._save()
        except GoogleApiError as exc:
            return json_response(400, {"error": str(exc)})
        return redirect("/", 303)

    # -- persistence (the demo) --------------------------------------------------------------------------

    def _state(self) -> dict:
        return {
            "users": self._users,
            "calendars": self._calendars,
            "refresh": self._refresh,
            "channels": self._channels,
            "version": self._version,
        }

    def _restore(self, state: dict):
        self._users, self._calendars = state["users"], state["calendars"]
        for cal in self._calendars.values():
            cal["log"] = [tuple(x) for x in cal["log"]]
        self._refresh, self._channels, self._version = state["refresh"], state["channels"], state["version"]


PAGE_CSS = (
    "body{margin:0;background:#f1f3f4;color:#202124;font:15px/1.45 system-ui,-apple-system,sans-serif}"
    "main{max-width:44rem;margin:0 auto;padding:1rem}.test{display:inline-block;background:#fde293;color:#7a4b00;"
    "border-radius:4px;padding:.1rem .5rem;font-size:.8rem;font-weight:600}.card{background:#fff;border-radius:8px;"
    "padding:.75rem 1rem;margin:.75rem 0;box-shadow:0 1px 2px rgba(0,0,0,.15)}label{display:block;margin:.4rem 0}"
    "input,select{font:inherit;padding:.35rem}button{font:inherit;padding:.4rem .8rem;background:#1a73e8;color:#fff;"
    "border:0;border-radius:4px;margin:.2rem}button.secondary{background:#5f6368}ul{list-style:none;padding:0}"
    "li{padding:.35rem 0;border-bottom:1px solid #eee}li.ours{border-left:4px solid #0f766e;padding-left:.5rem}"
    "li.cancelled{opacity:.5;text-decoration:line-through}form.inline{display:inline}.muted{color:#5f6368}"
)


def _html(status: int, title: str, body: str) -> Response:
    return html_page(status, title, body, css=PAGE_CSS, label="Google stand-in")


def main(argv=None):
    parser = cli("Local Google OAuth + Calendar stand-in for tests and the demo.", port=12113)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--webhook-base", help="where push notifications are sent, e.g. http://127.0.0.1:5000")
    parser.add_argument("--auto-push", action="store_true", help="notify watch channels on every change")
    parser.add_argument("--user", action="append", default=[], help="another Google account (repeatable)")
    args = parser.parse_args(argv)
    standin = GoogleStandin(
        client_id=args.client_id,
        client_secret=args.client_secret,
        webhook_base=args.webhook_base,
        auto_push=args.auto_push,
        state_file=args.state,
    )
    for email in args.user:
        standin.add_user(email)
    serve(standin, args, "Google", f"pushes to {args.webhook_base or '(channel addresses)'}")


if __name__ == "__main__":
    main()
