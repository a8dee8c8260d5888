"""Google Calendar: a connection per technician (or the business's own account), the calendars chosen
in it with their sync state, push channels, what we exported per booking, and changes made in Google
that wait for the owner (DESIGN §7)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


class GoogleConnection(db.Model):
    __tablename__ = "google_connections"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "technician_id"], ["technicians.tenant_id", "technicians.id"]),
        ForeignKeyConstraint(["tenant_id", "connected_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    technician_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    account_email: Mapped[str | None]
    refresh_token_enc: Mapped[str | None]
    scopes: Mapped[str | None]
    status: Mapped[str] = mapped_column(default="connected")
    problem: Mapped[str | None]
    owner_notified_at: Mapped[datetime | None]
    connected_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    connected_at: Mapped[datetime] = mapped_column(server_default=func.now())
    disconnected_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    technician = relationship("Technician", viewonly=True)
    calendars: Mapped[list[GoogleCalendar]] = relationship(
        viewonly=True, order_by="(GoogleCalendar.is_primary.desc(), GoogleCalendar.summary)"
    )

    @property
    def is_connected(self) -> bool:
        return self.status == "connected"

    @property
    def label(self) -> str:
        return self.technician.name if self.technician_id and self.technician else "The business"


class GoogleCalendar(db.Model):
    __tablename__ = "google_calendars"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "connection_id"], ["google_connections.tenant_id", "google_connections.id"]),
        ForeignKeyConstraint(["tenant_id", "technician_id"], ["technicians.tenant_id", "technicians.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    connection_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    google_id: Mapped[str]
    summary: Mapped[str] = mapped_column(default="")
    access_role: Mapped[str] = mapped_column(default="reader")
    is_primary: Mapped[bool] = mapped_column(default=False)
    time_zone: Mapped[str | None]
    technician_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    blocks_time: Mapped[bool] = mapped_column(default=False)
    receives_bookings: Mapped[bool] = mapped_column(default=False)
    missing_since: Mapped[datetime | None]
    sync_token: Mapped[str | None]
    sync_status: Mapped[str] = mapped_column(default="idle")
    sync_requested_at: Mapped[datetime | None]
    last_synced_at: Mapped[datetime | None]
    last_full_sync_at: Mapped[datetime | None]
    sync_error: Mapped[str | None]
    sync_error_at: Mapped[datetime | None]
    events_seen: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    connection = relationship("GoogleConnection", viewonly=True)

    @property
    def can_write(self) -> bool:
        return self.access_role in ("owner", "writer")

    @property
    def free_busy_only(self) -> bool:
        return self.access_role == "freeBusyReader"

    @property
    def in_use(self) -> bool:
        return self.blocks_time or self.receives_bookings


class GoogleChannel(db.Model):
    __tablename__ = "google_channels"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "calendar_id"], ["google_calendars.tenant_id", "google_calendars.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    calendar_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    token_sha256: Mapped[str]
    resource_id: Mapped[str | None]
    expires_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class GoogleExportedEvent(db.Model):
    __tablename__ = "google_exported_events"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(["tenant_id", "calendar_id"], ["google_calendars.tenant_id", "google_calendars.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    calendar_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    google_event_id: Mapped[str]
    written_start: Mapped[datetime | None]
    written_end: Mapped[datetime | None]
    written_deleted: Mapped[bool] = mapped_column(default=False)
    written_at: Mapped[datetime | None]
    error: Mapped[str | None]


class GoogleProposedChange(db.Model):
    __tablename__ = "google_proposed_changes"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "booking_id"], ["bookings.tenant_id", "bookings.id"]),
        ForeignKeyConstraint(
            ["tenant_id", "exported_event_id"], ["google_exported_events.tenant_id", "google_exported_events.id"]
        ),
        ForeignKeyConstraint(["tenant_id", "decided_by"], ["users.tenant_id", "users.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    booking_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    exported_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str]
    proposed_start: Mapped[datetime | None]
    proposed_end: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(default="open")
    outcome: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    booking = relationship("Booking", viewonly=True)


from app.calendar import hooks as _hooks  # noqa: E402,F401  (bookings that change are written to Google)
