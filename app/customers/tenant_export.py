"""A business's full export (docs/data-rights.md): every table of the business as JSON Lines in one
zip with a manifest, built by a job inside the business's RLS context, stored under
``tenants/<id>/exports/`` and downloaded through a short presigned link.

Tables are found in the catalogue (every table with a ``tenant_id`` the app may read, plus the
business's own ``tenants`` row), so a table added later is exported without touching this file;
credentials never leave: columns named like a password, secret, token, hash or encrypted value are
left out, and the manifest lists what was left out of each table.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import uuid
import zipfile
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, ForeignKeyConstraint, func, select, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.audit import services as audit
from app.errors import FielddayError, NotFound
from app.extensions import db, get_redis
from app.media import storage

log = logging.getLogger(__name__)

FORMAT = "fieldday.tenant-export"
KEEP_FOR = timedelta(days=7)  # the archive in storage; each download link lives DOWNLOAD_LINK_S
DOWNLOAD_LINK_S = 300
STALE_AFTER = timedelta(hours=2)  # running this long: it died (the page offers a new one)
# Never picked up this long: its job was lost (Redis was down when it was queued, say).
QUEUED_STALE_AFTER = timedelta(minutes=15)
MAX_PER_DAY = 5
PENDING = ("queued", "running")
# Credentials never leave, whatever the table: by name here, and by pattern for tables added later.
SECRET_COLUMNS = {
    "users": {"password_hash"},
    "google_connections": {"refresh_token_enc"},
    "google_channels": {"token_sha256"},
    "google_calendars": {"sync_token"},
    "payments": {"checkout_url"},
    "api_keys": {"key_hash"},
    "webhook_endpoints": {"secret_enc"},
}
SECRET_PATTERN = re.compile(r"password|secret|token|hash|_enc$|^enc_|encrypted|private_key|signing|credential", re.I)


class DataExport(db.Model):
    __tablename__ = "data_exports"
    __table_args__ = (ForeignKeyConstraint(["tenant_id", "requested_by"], ["users.tenant_id", "users.id"]),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("tenants.id"), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    requested_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(default="queued")
    key: Mapped[str | None]
    size_bytes: Mapped[int | None]
    tables: Mapped[dict] = mapped_column(JSONB, default=dict)
    error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]

    def is_stale(self, now: datetime) -> bool:
        if self.created_at is None or self.status not in PENDING:
            return False
        return self.created_at < now - (QUEUED_STALE_AFTER if self.status == "queued" else STALE_AFTER)

    def shown_status(self, now: datetime) -> str:
        """What the page says: a ready archive past its expiry is gone, a pending one that died failed."""
        if self.status == "ready" and self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.is_stale(now):
            return "failed"
        return self.status


class TooManyExports(FielddayError):
    status = 429
    code = "too_many_exports"
    message = f"You can export your data {MAX_PER_DAY} times a day. Please use one of today's exports."


def list_exports(limit: int = 10) -> list[DataExport]:
    return list(db.session.scalars(select(DataExport).order_by(DataExport.created_at.desc()).limit(limit)))


def get_export(export_id: uuid.UUID) -> DataExport:
    from tenants.context import current_tenant_id

    export = db.session.get(DataExport, (current_tenant_id(), export_id)) if current_tenant_id() else None
    if export is None:
        raise NotFound("No such export.")
    return export


def request_export(tenant, *, actor_id: uuid.UUID | None, now: datetime) -> tuple[DataExport, bool]:
    """Queue a full export (after commit). A second click while one is being prepared gets that one
    back (``False``); at most a few a day, each one reads the whole business."""
    from tenants.models import Tenant

    # One at a time per business: the tenant row is the lock two clicks would meet on.
    db.session.scalar(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    recent = list(db.session.scalars(select(DataExport).where(DataExport.created_at > now - timedelta(days=1))))
    pending = [e for e in recent if e.status in PENDING and not e.is_stale(now)]
    if pending:
        return pending[0], False
    if len(recent) >= MAX_PER_DAY:
        raise TooManyExports()
    export = DataExport(tenant_id=tenant.id, requested_by=actor_id, status="queued", tables={})
    db.session.add(export)
    db.session.flush()
    audit.record(
        tenant.id, "data_export.requested", actor_id=actor_id, subject_type="data_export", subject_id=export.id
    )
    from app.customers.jobs import build_export_job
    from app.jobs import after_commit

    after_commit(build_export_job.enqueue, tenant.id, export.id)
    return export, True


def exportable_tables() -> list[tuple[str, list[str], list[str]]]:
    """(table, columns exported, columns left out) for every table the business has rows in."""
    rows = db.session.execute(
        text(
            """
            SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
              AND (c.relname = 'tenants' OR EXISTS (
                    SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'tenant_id'
                      AND NOT t.attisdropped))
              AND has_table_privilege(c.oid, 'SELECT')
              AND c.relrowsecurity AND c.relforcerowsecurity
            GROUP BY c.relname ORDER BY c.relname
            """
        )
    ).all()
    out = []
    for table, columns in rows:
        secret = {c for c in columns if c in SECRET_COLUMNS.get(table, set()) or SECRET_PATTERN.search(c)}
        out.append((table, [c for c in columns if c not in secret], sorted(secret)))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _progress_key(tenant_id: uuid.UUID, export_id: uuid.UUID) -> str:
    return f"fieldday:data-export:{tenant_id}:{export_id}"


def progress(export: DataExport) -> tuple[int, int] | None:
    """(tables done, tables in all) of a running export, from Redis (None if unknown)."""
    try:
        raw = get_redis().get(_progress_key(export.tenant_id, export.id))
    except Exception:  # noqa: BLE001 - progress is a nicety; the page still polls the status
        return None
    if not raw:
        return None
    done, _, total = (raw.decode() if isinstance(raw, bytes) else raw).partition("/")
    return int(done), int(total)


def _set_progress(export: DataExport, done: int, total: int) -> None:
    try:
        get_redis().set(_progress_key(export.tenant_id, export.id), f"{done}/{total}", ex=24 * 3600)
    except Exception:  # noqa: BLE001
        log.debug("export progress not stored", exc_info=True)


def build_export(export_id: uuid.UUID, *, now: datetime, commit) -> DataExport | None:
    """The job's work: read every table in one snapshot (REPEATABLE READ, under RLS), write the zip
    to a temporary file, upload it, mark the export ready. Safe to run again: a retry rebuilds."""
    from tenants.context import current_tenant_id
    from tenants.models import Tenant

    tenant_id = current_tenant_id()
    export = db.session.scalar(
        select(DataExport).where(DataExport.tenant_id == tenant_id, DataExport.id == export_id).with_for_update()
    )
    if export is None or export.status not in PENDING:
        return export
    export.status, export.started_at, export.error = "running", now, None
    commit()

    # One consistent snapshot of the whole business, times written in UTC.
    db.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    db.session.execute(text("SET LOCAL TIME ZONE 'UTC'"))
    tenant = db.session.get(Tenant, tenant_id)
    tables = exportable_tables()
    manifest_tables = {}
    counts = {}
    folder = f"fieldday-export-{tenant.subdomain}-{now:%Y-%m-%d}"
    with tempfile.TemporaryFile() as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for done, (table, columns, left_out) in enumerate(tables):
                _set_progress(export, done, len(tables))
                name = f"tables/{table}.jsonl"
                cols = ", ".join(_quote(c) for c in columns)
                where = " WHERE id = :tid" if table == "tenants" else ""  # RLS already limits it; belt and braces
                sql = text(f"SELECT row_to_json(x)::text FROM (SELECT {cols} FROM {_quote(table)}{where}) x")
                rows = 0
                with zf.open(f"{folder}/{name}", "w") as out:
                    result = db.session.execute(
                        sql.execution_options(stream_results=True, yield_per=1000),
                        {"tid": tenant_id} if where else {},
                    )
                    for (line,) in result:
                        row = _scrub(json.loads(line))  # JSON columns (Stripe events...) may nest a secret
                        out.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
                        rows += 1
                counts[table] = rows
                manifest_tables[table] = {"file": name, "rows": rows, "columns": columns, "left_out": left_out}
            manifest = {
                "format": FORMAT,
                "version": 1,
                "generated_at": now.isoformat(),
                "business": {
                    "id": str(tenant.id),
                    "name": tenant.name,
                    "subdomain": tenant.subdomain,
                    "time_zone": tenant.time_zone,
                    "currency": tenant.currency,
                },
                "notes": [
                    "One JSON object per line (JSON Lines), one file per table.",
                    "Instants are UTC (ISO 8601); *_local columns are wall-clock times in the business's time zone.",
                    "Money is in minor units (cents) of the business's currency.",
                    "Passwords, tokens, key hashes and secrets are never exported: see left_out per table.",
                    "Photos are not in the archive; booking_photos.key names each one in our storage.",
                ],
                "tables": manifest_tables,
            }
            zf.writestr(f"{folder}/manifest.json", json.dumps(manifest, indent=2))
            zf.writestr(f"{folder}/README.txt", _readme(tenant, now, manifest_tables))
        db.session.commit()  # ends the snapshot; the upload below may take a while
        size = tmp.tell()
        tmp.seek(0)
        key = f"tenants/{tenant_id}/exports/{export.id}.zip"
        storage.client().upload_fileobj(tmp, storage.bucket(), key, ExtraArgs={"ContentType": "application/zip"})
    export = db.session.get(DataExport, (tenant_id, export_id))
    export.status, export.key, export.size_bytes = "ready", key, size
    export.tables, export.finished_at, export.expires_at = counts, now, now + KEEP_FOR
    _set_progress(export, len(tables), len(tables))
    db.session.flush()
    from app.customers.jobs import send_export_ready
    from app.jobs import after_commit

    after_commit(send_export_ready.enqueue, tenant_id, export.id)
    return export


def _scrub(value, depth: int = 0):
    """Drop keys named like a secret anywhere inside a row's JSON values (a Stripe event carries
    ``client_secret``, for one); the row's own columns were already chosen by name."""
    if isinstance(value, dict):
        return {k: _scrub(v, depth + 1) for k, v in value.items() if not (depth and SECRET_PATTERN.search(k))}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def _readme(tenant, now: datetime, tables: dict) -> str:
    lines = [
        f"{tenant.name}: all your data in Fieldday, exported {now:%Y-%m-%d %H:%M} UTC.",
        "",
        "Each file in tables/ is one table, one JSON object per line. manifest.json lists the tables,",
        "their columns and row counts. Money is in cents; times are UTC.",
        "",
        "Tables:",
    ]
    lines += [f"  {name}: {info['rows']} rows" for name, info in tables.items()]
    return "\n".join(lines) + "\n"


def download_url(export: DataExport, *, now: datetime) -> str:
    """A presigned GET for a ready archive, valid five minutes; NotFound once it expired."""
    if export.shown_status(now) != "ready":
        raise NotFound("This export is no longer available. Start a new one.")
    filename = f"fieldday-export-{export.finished_at:%Y-%m-%d}.zip"
    return storage.client().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": storage.bucket(),
            "Key": export.key,
            "ResponseContentType": "application/zip",
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        },
        ExpiresIn=DOWNLOAD_LINK_S,
    )


def expire_exports(*, now: datetime) -> int:
    """Delete archives past their week from storage (then mark the rows), and give up on exports
    that never finished."""
    count = 0
    for export in db.session.scalars(
        select(DataExport).where(DataExport.status == "ready", DataExport.expires_at <= now).with_for_update()
    ):
        storage.delete_object(export.key)
        export.status = "expired"
        count += 1
    for export in db.session.scalars(select(DataExport).where(DataExport.status.in_(PENDING))):
        if not export.is_stale(now):
            continue
        export.status, export.error = "failed", "The export didn't finish."
        count += 1
    db.session.flush()
    return count


def read_archive(body: bytes) -> dict[str, list[dict]]:
    """The tables of an archive, for tests and support: {table: [row, ...]} plus "manifest"."""
    out: dict = {}
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        for name in zf.namelist():
            if name.endswith("manifest.json"):
                out["manifest"] = json.loads(zf.read(name))
            elif name.endswith(".jsonl"):
                table = name.rsplit("/", 1)[-1][: -len(".jsonl")]
                out[table] = [json.loads(line) for line in zf.read(name).splitlines() if line.strip()]
    return out
