"""Imports every model so SQLAlchemy knows all mappers (and Alembic all tables)."""

from app.accounts.models import Invitation, User, UserSession  # noqa: F401
from app.audit.models import AuditEntry  # noqa: F401
from tenants.models import Tenant  # noqa: F401
