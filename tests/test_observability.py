"""Structured logs (app/observability.py): one JSON line per request with its request and tenant ids,
secrets and card data redacted, X-Request-ID echoed; OpenTelemetry only with a connection string."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from app import observability

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def json_logs(app):
    """Capture what the root handler writes, formatted as in production (LOG_FORMAT=json)."""
    # The session's migration (alembic's fileConfig) replaced the root handlers: install ours again.
    observability.configure_logging("text", "INFO")
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_fieldday", False))
    stream, old_stream, old_formatter = io.StringIO(), handler.stream, handler.formatter
    handler.setStream(stream)
    handler.setFormatter(observability.JsonFormatter())

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    handler.setStream(old_stream)
    handler.setFormatter(old_formatter)


def test_a_request_logs_one_json_line_with_request_and_tenant_ids(make_tenant, visitor, json_logs):
    t = make_tenant()
    r = visitor(t.host).client.get("/", base_url=f"http://{t.host}", headers={"X-Request-ID": "req-abc.123"})
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-abc.123"
    access = [line for line in json_logs() if line["logger"] == "fieldday.access"]
    assert len(access) == 1, access
    line = access[0]
    assert line["request_id"] == "req-abc.123" and line["tenant_id"] == str(t.id)
    assert line["level"] == "INFO" and line["message"] == "GET / 200"
    assert line["http"]["host"] == t.host and line["http"]["status"] == 200 and line["http"]["duration_ms"] >= 0


def test_request_id_is_minted_when_missing_or_unsafe(client, json_logs):
    minted = client.get("/healthz", base_url="http://app.localhost").headers["X-Request-ID"]
    assert len(minted) == 32 and minted.isalnum()
    for bad in ('<script>"x"</script>', "x" * 200, "a b"):
        unsafe = client.get("/healthz", base_url="http://app.localhost", headers={"X-Request-ID": bad})
        assert unsafe.headers["X-Request-ID"] != bad and unsafe.headers["X-Request-ID"].isalnum()
    other = client.get("/healthz", base_url="http://app.localhost").headers["X-Request-ID"]
    assert other != minted


def test_logs_inside_a_request_carry_its_ids(app, make_tenant, json_logs):
    t = make_tenant()
    with app.test_request_context("/", base_url=f"http://{t.host}", headers={"X-Request-ID": "inner-1"}):
        from tenants.context import tenant_context

        with tenant_context(t.id):
            logging.getLogger("app.booking").warning("slot taken")
    (line,) = [x for x in json_logs() if x["message"] == "slot taken"]
    assert line["request_id"] == "inner-1" and line["tenant_id"] == str(t.id) and line["level"] == "WARNING"


def test_secrets_and_card_numbers_are_redacted(json_logs):
    log = logging.getLogger("app.test")
    log.info(
        "login password=hunter2 token: abc123 with card 4242 4242 4242 4242 cvc=123 db postgresql://u:s3cret@db/x"
        " Authorization: Bearer eyJhbGciOi.payload.sig",
        extra={
            "card": {"number": "4000002500003155", "exp_month": 12},
            "payload": {"email": "a@b.test", "password": "hunter2", "client_secret": "pi_123_secret_456"},
            "api_key": "sk_live_abc",
        },
    )
    try:
        raise ValueError("stripe said: card_number=4111111111111111 rejected")
    except ValueError:
        log.exception("charge failed for 5555-5555-5555-4444")
    raw = "\n".join(json.dumps(x) for x in json_logs())
    for secret in ("hunter2", "abc123", "4242 4242", "s3cret", "eyJhbGciOi", "4000002500003155", "pi_123_secret_456"):
        assert secret not in raw, secret
    for secret in ("sk_live_abc", "4111111111111111", "5555-5555-5555-4444", "cvc=123"):
        assert secret not in raw, secret
    first, second = json_logs()[-2:]
    assert first["card"] == "[REDACTED]" and first["api_key"] == "[REDACTED]"
    assert first["payload"]["email"] == "a@b.test" and first["payload"]["password"] == "[REDACTED]"
    assert "postgresql://u:[REDACTED]@db/x" in first["message"]
    assert "ValueError" in second["exception"] and "[REDACTED]" in second["exception"]


def test_ordinary_numbers_and_ids_are_kept():
    text = "booking 3f2b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b at 2026-11-23T10:00 for 18000 cents, order 1234567890123"
    assert observability.redact_text(text) == text  # 1234567890123 fails the Luhn check: not a card


def test_manage_booking_tokens_are_not_logged_from_the_path(make_tenant, visitor, json_logs):
    t = make_tenant()
    visitor(t.host).client.get("/b/sekret-token-value", base_url=f"http://{t.host}")
    (line,) = [x for x in json_logs() if x["logger"] == "fieldday.access"]
    assert "sekret-token-value" not in json.dumps(line) and line["http"]["path"] == "/b/[REDACTED]"


def test_json_is_the_production_default_and_text_elsewhere():
    code = "from app.config import Config; print(Config.LOG_FORMAT)"
    env = {k: v for k, v in os.environ.items() if k not in {"LOG_FORMAT", "FIELDDAY_ENV"}}
    out = {
        name: subprocess.run(
            [sys.executable, "-c", code], env={**env, "FIELDDAY_ENV": name}, cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        for name in ("production", "development", "test")
    }
    assert out == {"production": "json", "development": "text", "test": "text"}


def test_no_telemetry_without_a_connection_string(app):
    assert app.config["APPLICATIONINSIGHTS_CONNECTION_STRING"] == ""
    assert not observability.telemetry_enabled()
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


def test_with_a_connection_string_traces_go_to_the_configured_endpoint(services):
    """In a child process (OpenTelemetry providers are global): a request's span reaches a local
    stand-in for the Application Insights ingestion endpoint, and nothing else is contacted."""
    received: list[tuple[str, bytes]] = []

    class Ingest(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ingest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    script = textwrap.dedent(
        f"""
        from app import create_app
        from app.config import TestConfig
        from opentelemetry import trace
        app = create_app(TestConfig, {{
            "SQLALCHEMY_DATABASE_URI": {services.pg.url("fieldday_app")!r},
            "REDIS_URL": {services.redis.url!r},
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:{port}/",
        }})
        from app import observability
        assert observability.telemetry_enabled()
        r = app.test_client().get("/", base_url="http://app.localhost/")
        assert r.status_code in (200, 302), r.status_code
        trace.get_tracer_provider().force_flush()
        """
    )
    env = {
        **os.environ,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no call home in tests
        "FIELDDAY_ENV": "test",
    }
    try:
        proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    finally:
        server.shutdown()
    assert any(path.startswith("/v2.1/track") for path, _ in received), received
    assert any(b"RemoteDependency" in body or b"Request" in body for _, body in received)
