"""One place that turns errors into responses: JSON for /api and JSON requests, a page
otherwise. Never a stack trace."""

from __future__ import annotations

import logging

import psycopg
from flask import g, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.errors import FielddayError, ValidationFailed

log = logging.getLogger(__name__)

TITLES = {
    400: "That request didn't look right",
    401: "Please log in",
    402: "Your plan's limit is reached",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "That upload is too large",
    422: "Please check your input",
    429: "Too many attempts",
    500: "Something went wrong on our side",
    503: "Temporarily unavailable",
}

MESSAGES = {
    400: "The request was incomplete or malformed.",
    404: "We couldn't find that page. Check the address, or go back and try again.",
    405: "That action isn't available here.",
    413: "That request is larger than we accept.",
    429: "You've tried that too many times. Wait a minute and try again.",
    500: "We've been notified. Please try again in a moment.",
    503: "We're having a short hiccup. Please try again in a few seconds.",
}


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def render_error(status: int, message: str, *, code: str | None = None, errors: dict | None = None, headers=None):
    if wants_json():
        body = {"error": {"status": status, "code": code or _code(status), "message": message}}
        if errors:
            body["error"]["fields"] = errors
        response = jsonify(body)
    else:
        template = "site/error.html" if g.get("audience") == "site" and g.get("tenant") else "errors/error.html"
        response = render_template(
            template, status=status, title=TITLES.get(status, "Error"), message=message, tenant=g.get("tenant")
        )
    if isinstance(response, str):
        from flask import make_response

        response = make_response(response)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        402: "plan_limit_reached",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
        422: "invalid",
        429: "rate_limited",
        500: "server_error",
        503: "unavailable",
    }.get(status, "error")


def init_app(app) -> None:
    @app.errorhandler(FielddayError)
    def domain_error(exc: FielddayError):
        errors = exc.errors if isinstance(exc, ValidationFailed) else ({exc.field: exc.message} if exc.field else None)
        return render_error(exc.status, exc.message, code=exc.code, errors=errors)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_error(
            400,
            "This form expired or came from another page. Reload the page and try again.",
            code="csrf_failed",
        )

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded):
        # A limit with its own words (the API's hourly allowance) says them; log-in limits keep ours.
        own = getattr(getattr(exc, "limit", None), "error_message", None)
        return render_error(429, exc.description if own else MESSAGES[429], code="rate_limited")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        message = MESSAGES.get(status) or exc.description or TITLES.get(status, "Error")
        if status == 400 and exc.description and "browser" not in exc.description.lower():
            message = exc.description
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return render_error(status, message, headers=headers)

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError):
        log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
        _rollback()
        return render_error(503, MESSAGES[503], headers={"Retry-After": "5"})

    @app.errorhandler(RedisError)
    def redis_unavailable(exc: RedisError):
        # Redis down (RELIABILITY F2) under something that needs it there and then (a CSV import's
        # preview, say): "try again", not a 500. Work with a durable row is queued after commit instead.
        log.warning("redis unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        _rollback()
        return render_error(503, MESSAGES[503], headers={"Retry-After": "5"})

    @app.errorhandler(DBAPIError)
    def database_error(exc: DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        _rollback()
        if isinstance(exc.orig, psycopg.DataError) and (sqlstate is None or sqlstate.startswith("22")):
            # Input PostgreSQL can't store (a NUL byte, a number out of range): the client's to fix.
            return render_error(422, "Some of the input contains characters or values we can't store.", code="invalid")
        if sqlstate in {"57014", "55P03", "40P01", "40001"}:  # timeouts, lock waits, deadlock, serialization
            return render_error(503, MESSAGES[503], headers={"Retry-After": "2"})
        log.exception("database error (sqlstate %s)", sqlstate)
        return render_error(500, MESSAGES[500])

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        _rollback()
        return render_error(500, MESSAGES[500])

    @app.errorhandler(InternalServerError)
    def internal(exc):
        return render_error(500, MESSAGES[500])


def _rollback() -> None:
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection may be gone; the pool will recover
        pass
