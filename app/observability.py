"""Logs, request ids and (when configured) OpenTelemetry export to Azure Monitor.

* Every log line carries ``request_id`` and ``tenant_id``: JSON lines in production
  (``LOG_FORMAT=json``, what Container Apps ships to Log Analytics), readable text in dev and tests.
* Secrets and card data never reach a log: values under sensitive keys (password, token, secret,
  authorization, card, cvc, number, ...), ``user:password@`` in URLs and card-like digit runs are
  replaced before any handler, including the OpenTelemetry one, sees the record.
* ``X-Request-ID`` is taken from the caller (the Container Apps ingress sets one) when it looks
  sane, minted otherwise, and echoed on every response.
* Traces, metrics and logs go to Application Insights only when
  ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set; without it nothing is imported or sent.

The JSON formatter is a small ``logging.Formatter`` subclass rather than python-json-logger:
we need redaction and our two context fields anyway, and that is most of the work.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
# Key fragments whose values are never logged. "number" covers card numbers sent as {"number": ...}.
SENSITIVE_KEY = re.compile(
    r"pass(word|wd)?|pwd|secret|token|authori[sz]ation|cookie|card|cvc|cvv|number|api[_-]?key|private[_-]?key"
    r"|signature|credential|connection[_-]?string|fernet",
    re.IGNORECASE,
)
# key=value, key: value, "key": "value" in free text (one token or a quoted string).
_KV_TEXT = re.compile(
    r"""(?P<key>["']?[A-Za-z_][\w.-]*["']?)(?P<sep>\s*[:=]\s*)(?P<val>"[^"]*"|'[^']*'|[^\s,;&}\]]+)""",
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@", re.IGNORECASE)
# 13-19 digits, optionally grouped by spaces or dashes: the shape of a card number.
_CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "tenant_id"}


def _luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if alt:
            d = d * 2 - 9 if d > 4 else d * 2
        total, alt = total + d, not alt
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def is_sensitive_key(key: str) -> bool:
    return bool(SENSITIVE_KEY.search(key))


def redact_text(text: str) -> str:
    """Remove secrets from free text: key=value pairs, auth headers, URL passwords, card numbers."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)

    def kv(m: re.Match) -> str:
        key = m["key"].strip("\"'")
        if not is_sensitive_key(key):
            return m.group(0)
        quote = m["val"][0] if m["val"][:1] in {'"', "'"} else ""
        return f"{m['key']}{m['sep']}{quote}{REDACTED}{quote}"

    text = _KV_TEXT.sub(kv, text)
    return _CARD.sub(_mask_card, text)


def redact(value: Any, key: str = "") -> Any:
    """Redact a structured value: sensitive keys lose their values, strings are scrubbed."""
    if key and is_sensitive_key(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# --------------------------------------------------------------------------- context


def current_request_id() -> str | None:
    """This request's id: the caller's X-Request-ID if it looks sane, else a new one."""
    if not has_request_context():
        return None
    rid = g.get("request_id")
    if rid is None:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        g.request_id = rid
    return rid


def current_tenant() -> str | None:
    if has_request_context():
        tenant = g.get("tenant")
        if tenant is not None:
            return str(tenant.id)
    from tenants.context import current_tenant_id

    tid = current_tenant_id()
    return str(tid) if tid else None


class ContextFilter(logging.Filter):
    """Adds request_id and tenant_id, and scrubs the record in place, so every handler after
    this one (the OpenTelemetry exporter included) only ever sees the redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_fieldday_scrubbed", False):
            return True
        try:
            record.request_id = current_request_id()
            record.tenant_id = current_tenant()
        except Exception:  # noqa: BLE001 - logging must never fail because the context is odd
            record.request_id = getattr(record, "request_id", None)
            record.tenant_id = getattr(record, "tenant_id", None)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the raw text
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            record.exc_info = None  # the text above is the redacted traceback; no re-formatting
        for key in set(vars(record)) - _STANDARD_ATTRS:
            if not key.startswith("_"):
                setattr(record, key, redact(getattr(record, key), key))
        record._fieldday_scrubbed = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, tenant_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "tenant_id": getattr(record, "tenant_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The readable dev format, with the request and tenant appended when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = [f"{k}={getattr(record, k)}" for k in ("request_id", "tenant_id") if getattr(record, k, None)]
        return f"{line} [{' '.join(ctx)}]" if ctx else line


# --------------------------------------------------------------------------- set-up


def configure_logging(fmt: str, level: str = "INFO") -> None:
    """Point the root logger at stderr in ``fmt`` (json|text), with context and redaction."""
    if fmt not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, got {fmt!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_fieldday", False)), None)
    if handler is None:
        # Replace basicConfig's stream handler (create_app sets one) with ours; keep any others
        # (pytest's capture handlers, the OpenTelemetry exporter).
        for h in list(root.handlers):
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.stdout):
                root.removeHandler(h)
        handler = logging.StreamHandler(sys.stderr)
        handler._fieldday = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    _add_context_filter(root)
    root.setLevel(level.upper())
    # Alembic's env.py runs logging.config.fileConfig(alembic.ini), which replaces the root handlers
    # and disables every logger that existed before; calling this again after a migration undoes it.
    for existing in list(logging.root.manager.loggerDict.values()):
        if isinstance(existing, logging.Logger):
            existing.disabled = False


def _add_context_filter(root: logging.Logger) -> None:
    for h in root.handlers:
        if not any(isinstance(f, ContextFilter) for f in h.filters):
            h.addFilter(ContextFilter())


_telemetry_configured = False


def configure_telemetry(app: Flask) -> bool:
    """Azure Monitor (traces, metrics, logs) when a connection string is set; else nothing."""
    global _telemetry_configured
    conn = app.config.get("APPLICATIONINSIGHTS_CONNECTION_STRING") or ""
    if not conn:
        return False
    if not _telemetry_configured:  # global providers: once per process (each gunicorn worker, each worker)
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=conn,
            enable_live_metrics=False,
            # The app object exists already; the global Flask patch would only catch later apps.
            instrumentation_options={"flask": {"enabled": False}},
        )
        _telemetry_configured = True
        _add_context_filter(logging.getLogger())  # the exporter's handler gets redacted records too
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz")
    return True


def telemetry_enabled() -> bool:
    return _telemetry_configured


def init_app(app: Flask) -> None:
    configure_logging(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))
    access = logging.getLogger("fieldday.access")

    def start_clock() -> None:
        g.request_started = time.perf_counter()
        current_request_id()

    # First of all before-request hooks, so the tenant resolver's own logs carry the id.
    app.before_request_funcs.setdefault(None, []).insert(0, start_clock)

    @app.after_request
    def echo_and_log(response):
        rid = current_request_id()
        response.headers["X-Request-ID"] = rid
        if request.endpoint and request.endpoint.split(".")[-1] in {"healthz", "readyz"}:
            return response  # probes every few seconds would drown the log
        started = g.get("request_started")
        path = request.path
        for key, value in (request.view_args or {}).items():
            if is_sensitive_key(key):  # manage-my-booking tokens live in the path
                path = path.replace(str(value), REDACTED)
        access.info(
            "%s %s %s",
            request.method,
            path,
            response.status_code,
            extra={
                "http": {
                    "method": request.method,
                    "host": request.host,
                    "path": path,
                    "route": request.url_rule.rule if request.url_rule else None,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
                }
            },
        )
        return response

    configure_telemetry(app)
