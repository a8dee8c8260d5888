"""What the local stand-ins for Stripe, Twilio and Google share (RELIABILITY.md §3-§5).

Each stand-in is a WSGI app plus test helpers, subclassing :class:`Standin`, which owns:

- the server: ``start(host, port)`` serves it from a werkzeug server in a daemon thread (``port=0`` picks a
  free port; ``url`` is then set), ``stop()`` shuts it down and writes the state file;
- the test-helper bookkeeping: ``requests`` (what the SDK sent), ``deliveries`` (what the stand-in posted
  back), ``fail_next`` rules and ``reset()``;
- the JSON state file of the demo (``state_file``): loaded at construction, written atomically by ``_save()``
  (at once, or gathered for ``save_delay`` seconds) and at ``stop()``; a stand-in says what goes in it with
  ``_state()`` and how it comes back with ``_restore()``;
- outgoing callbacks (webhooks, push notifications): :func:`post` sends one signed request, possibly through
  another socket than the public URL it was signed for;
- the command line: :func:`cli` gives ``--host``, ``--port`` and ``--state``; :func:`serve` runs until
  Ctrl-C or SIGTERM, then stops (saving the state file).

Signing, routes, error envelopes and records stay with each vendor's stand-in.
"""

from __future__ import annotations

import argparse
import copy
import html
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


def public(obj: dict) -> dict:
    """A copy without the stand-in's private fields (keys starting with ``_``)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def json_response(status: int, body, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, indent=2), status, headers=headers, mimetype="application/json")


def html_page(status: int, title: str, body: str, *, css: str, label: str) -> Response:
    """A page of a stand-in's own (hosted checkout, consent screen, fake phone), marked as test mode."""
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{css}</style></head>"
        f'<body><main><p class="test">Test mode · {label}</p>{body}</main></body></html>'
    )
    return Response(page, status, mimetype="text/html")


def loopback(request: Request) -> bool:
    """Whether a control endpoint's caller is on this machine."""
    return request.remote_addr in ("127.0.0.1", "::1")


def post(url: str, body: bytes, headers: dict, *, via: str | None = None, timeout: float = 15) -> int:
    """POST ``body`` to ``url`` and return the HTTP status; connection errors are raised.

    ``url`` is the public address (its path and query are requested; ``headers`` carry its Host and signature);
    ``via`` (``scheme://host:port``), when given, is the socket actually connected to, e.g. the local app behind
    the public host name. One attempt: callers record the outcome and decide about retries.
    """
    target = urlsplit(url)
    connect = urlsplit(via) if via else target
    connection_class = http.client.HTTPSConnection if connect.scheme == "https" else http.client.HTTPConnection
    conn = connection_class(connect.hostname, connect.port, timeout=timeout)
    try:
        conn.request("POST", (target.path or "/") + (f"?{target.query}" if target.query else ""), body, headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass
class RecordedRequest:
    """One API request as the stand-in received it (headers without Authorization); vendors add properties."""

    method: str
    path: str
    headers: dict[str, str]
    params: dict
    status: int | None = None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        if getattr(self.server, "log_requests", False):
            super().log_request(*args, **kwargs)


class Standin:
    """A thread-safe in-memory stand-in served by werkzeug; subclasses are WSGI apps (``__call__``).

    Subclasses set their own attributes, then call ``super().__init__(state_file=...)``, which calls
    ``_clear()`` (the vendor's empty state) and loads the state file when it exists.
    """

    save_delay = 0.0  # seconds to gather changes into one write of the state file (0: write at once)

    def __init__(self, *, state_file: str | None = None):
        self.state_file = state_file
        self.url = ""
        self.requests: list = []
        self.deliveries: list = []
        self._failures: list[dict] = []
        self._lock = threading.RLock()
        self._save_timer: threading.Timer | None = None
        self._server = self._thread = None
        self._clear()
        if state_file and os.path.exists(state_file):
            self._load()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False) -> Self:
        self._server = make_server(host, port, self, threaded=True, request_handler=_QuietHandler)
        self._server.log_requests = log_requests
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = self._thread = None
        self._flush()

    def reset(self):
        """Forget everything: the vendor's state, requests, deliveries and failures not yet injected."""
        with self._lock:
            self.requests.clear()
            self.deliveries.clear()
            self._failures.clear()
            self._clear()
        self._save()

    def _clear(self):
        """Set the vendor's state to empty (at construction and on ``reset()``)."""
        raise NotImplementedError

    # -- injected failures -------------------------------------------------------------------------

    def _add_failure(self, method: str, path_regex: str, status: int, times: int, **extra):
        rule = {"method": method.upper(), "path": re.compile(path_regex), "status": status, "left": times, **extra}
        with self._lock:
            self._failures.append(rule)

    def _take_failure(self, method: str, path: str) -> dict | None:
        """The first ``fail_next`` rule matching this request (``re.search`` on the path), used up by one."""
        with self._lock:
            for rule in self._failures:
                if rule["left"] > 0 and rule["method"] == method and rule["path"].search(path):
                    rule["left"] -= 1
                    return rule
        return None

    def clear_failures(self) -> None:
        """Forget failures set with ``fail_next`` that haven't happened yet."""
        with self._lock:
            self._failures.clear()

    # -- the state file ----------------------------------------------------------------------------

    def _state(self) -> dict:
        """What the state file holds (JSON-ready); called with the lock held."""
        raise NotImplementedError

    def _restore(self, state: dict) -> None:
        """Take back what ``_state()`` returned, read from the file."""
        raise NotImplementedError

    def _save(self):
        """Persist (only with a state file): now, or within ``save_delay`` so a burst of changes is one write."""
        if not self.state_file:
            return
        if not self.save_delay:
            self._flush()
            return
        with self._lock:
            if self._save_timer is None:
                self._save_timer = threading.Timer(self.save_delay, self._flush)
                self._save_timer.daemon = True
                self._save_timer.start()

    def _flush(self):
        with self._lock:
            timer, self._save_timer = self._save_timer, None
            if timer:
                timer.cancel()
            if not self.state_file:
                return
            state = self._state()
            os.makedirs(os.path.dirname(os.path.abspath(self.state_file)), exist_ok=True)
            tmp = f"{self.state_file}.tmp"
            with open(tmp, "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.state_file)

    def _load(self):
        with open(self.state_file) as f:
            self._restore(json.load(f))


def cli(description: str, port: int) -> argparse.ArgumentParser:
    """The stand-ins' common options; each adds its vendor's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--state", help="JSON file to load at start and save after changes")
    return parser


def serve(standin: Standin, args: argparse.Namespace, name: str, sends_to: str) -> None:
    """Serve in the foreground with request logging until Ctrl-C or SIGTERM; stop() then saves the state."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    standin.start(args.host, args.port, log_requests=True)
    print(f"{name} stand-in on {standin.url}, {sends_to}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
