"""Probes, served on every host (the platform probes by IP or an internal name).

``/healthz`` (liveness): 200 when PostgreSQL and Redis answer, 503 otherwise.
``/readyz`` (readiness): the same, plus the schema is at the migration scripts' head, so a
new revision never takes traffic before the migration job has run. Both answer JSON with
each check.
"""

from __future__ import annotations

import functools
import os

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import db, get_redis

bp = Blueprint("health", __name__)
# The tenancy layer skips host resolution for endpoints named "healthz" (tenants/web.py), so
# the readiness probe lives in its own blueprint under that endpoint name, at /readyz.
ready_bp = Blueprint("ready", __name__)


def _check_postgres() -> str:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        return f"error: {type(exc).__name__}"


def _check_redis() -> str:
    try:
        get_redis().ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"


@functools.cache
def script_heads(migrations_dir: str) -> frozenset[str]:
    """The head revision(s) of the migration scripts shipped with this code."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", migrations_dir)
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def _migrations_dir() -> str:
    migrate = current_app.extensions.get("migrate")
    directory = getattr(migrate, "directory", None) or "migrations"
    return directory if os.path.isabs(directory) else os.path.join(current_app.root_path, "..", directory)


def _check_migrations() -> str:
    try:
        heads = script_heads(os.path.abspath(_migrations_dir()))
        with db.engine.connect() as conn:
            current = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except Exception as exc:  # noqa: BLE001 - no table, no privilege, no database: not ready
        return f"error: {type(exc).__name__}"
    if current == set(heads):
        return "ok"
    return f"error: database at {','.join(sorted(current)) or 'nothing'}, code expects {','.join(sorted(heads))}"


def _answer(checks: dict[str, str]):
    healthy = all(v == "ok" for v in checks.values())
    response = jsonify(status="ok" if healthy else "unavailable", checks=checks)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    return _answer({"postgres": _check_postgres(), "redis": _check_redis()})


@ready_bp.get("/readyz", endpoint="healthz")
def readyz():
    checks = {"postgres": _check_postgres(), "redis": _check_redis()}
    checks["migrations"] = _check_migrations() if checks["postgres"] == "ok" else "error: postgres unavailable"
    return _answer(checks)


def init_app(app) -> None:
    for audience in ("app", "site", "apex", "invalid"):
        app.register_blueprint(bp, subdomain=audience, name=f"health_{audience}")
        app.register_blueprint(ready_bp, subdomain=audience, name=f"ready_{audience}")
