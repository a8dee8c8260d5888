"""Jobs used by the job tests (RQ imports jobs by dotted path, so they live in a module)."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from app.accounts.models import User
from app.extensions import db, get_redis
from app.jobs import job


@job("default")
def whoami(tenant_id: uuid.UUID, user_id: str) -> dict:
    """What the job can see: its RLS setting, how many users, and whether user_id resolves."""
    setting = db.session.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar()
    users = db.session.execute(text("SELECT count(*) FROM users")).scalar()
    found = db.session.get(User, (tenant_id, uuid.UUID(user_id))) is not None
    any_tenant_row = db.session.execute(text("SELECT count(*) FROM users WHERE id = :u"), {"u": user_id}).scalar()
    result = {"setting": setting, "users": users, "found": found, "visible": any_tenant_row}
    get_redis().rpush("test:whoami", str(result))
    return result
