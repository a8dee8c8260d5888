from __future__ import annotations

import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import INET, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

ROLES = ("owner", "admin", "tech")
ROLE_LABELS = {"owner": "Owner", "admin": "Admin", "tech": "Technician"}


class User(UserMixin, db.Model):
    __tablename__ = "users"

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str]
    name: Mapped[str]
    role: Mapped[str]
    password_hash: Mapped[str]
    session_version: Mapped[int] = mapped_column(default=1)
    is_active_flag: Mapped[bool] = mapped_column("is_active", default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_login_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    is_platform_admin: Mapped[bool] = mapped_column(default=False)  # set by `flask platform-admin` only

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_flag

    def get_id(self) -> str:
        # The session version is part of the id: bumping it (logout everywhere,
        # password change) invalidates every cookie issued before.
        return f"{self.tenant_id}.{self.id}.{self.session_version}"

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else self.name


class Invitation(db.Model):
    __tablename__ = "invitations"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "invited_by"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    email: Mapped[str]
    name: Mapped[str | None]
    role: Mapped[str]
    invited_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    def status(self, now: datetime) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"


class UserSession(db.Model):
    """One logged-in device. Logging out ends it, so a replayed cookie is worthless."""

    __tablename__ = "user_sessions"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "user_id"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ended_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None]
