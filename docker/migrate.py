"""The migration job (docker/entrypoint.sh migrate): safe to run any number of times.

1. Only when DATABASE_ADMIN_URL is set (first deployment, or after changing role passwords):
   run scripts/db_roles.sh as the server admin, creating fieldday_owner, fieldday_app and
   fieldday_definer with the passwords from OWNER_PASSWORD and APP_PASSWORD.
2. ``flask db upgrade`` as the owner role (DATABASE_OWNER_URL; migrations/env.py uses it).
3. GRANT SELECT ON alembic_version to the app role, so /readyz (which connects as the app role)
   can tell whether the schema is at the code's head.

Exits 0 when the schema is at head, non-zero on any failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bootstrap_roles(admin_url: str) -> None:
    parts = urlsplit(admin_url.replace("postgresql+psycopg://", "postgresql://"))
    env = {
        **os.environ,
        "PGHOST": parts.hostname or "",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": unquote(parts.username or ""),
        "PGPASSWORD": unquote(parts.password or ""),
        "PGSSLMODE": os.environ.get("PGSSLMODE", "require"),
        # Flexible Server's admin has CREATEROLE but is no superuser. On PostgreSQL 16 it must be
        # able to SET ROLE to the roles it creates to run CREATE DATABASE ... OWNER and ALTER SCHEMA
        # ... OWNER in db_roles.sql; this grants that membership as each role is created.
        "PGOPTIONS": os.environ.get("PGOPTIONS", "-c createrole_self_grant=set,inherit"),
    }
    for name in ("OWNER_PASSWORD", "APP_PASSWORD"):
        if not env.get(name):
            raise SystemExit(f"migrate: DATABASE_ADMIN_URL is set, so {name} must be too")
    print("migrate: creating/updating database roles as the server admin", flush=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "db_roles.sh")], env=env, check=True)


def main() -> int:
    if os.environ.get("DATABASE_ADMIN_URL"):
        bootstrap_roles(os.environ["DATABASE_ADMIN_URL"])

    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    from app import create_app
    from app.web.health import script_heads
    from tenants.rls import APP_ROLE

    app = create_app()
    with app.app_context():
        upgrade()
        # env.py's fileConfig(alembic.ini) replaced our log handlers: back to JSON lines.
        from app.observability import configure_logging

        configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
        heads = script_heads(str(ROOT / "migrations"))
        engine = create_engine(app.config["DATABASE_OWNER_URL"])
        try:
            with engine.begin() as conn:
                conn.execute(text(f"GRANT SELECT ON alembic_version TO {APP_ROLE}"))
                current = {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}
        finally:
            engine.dispose()
    if current != set(heads):
        print(f"migrate: database at {sorted(current)}, code expects {sorted(heads)}", file=sys.stderr)
        return 1
    print(f"migrate: schema at head {', '.join(sorted(heads))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
