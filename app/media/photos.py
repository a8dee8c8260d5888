"""Before/after photos of a job (DESIGN §9, RELIABILITY §7 "Media" and case M1).

The bytes never pass through the app: the phone asks for a presigned POST whose policy pins the
key (chosen here, under ``tenants/<tenant_id>/``), the exact content type and a size range, and
uploads straight to object storage; then it tells us it is done and we HEAD the object before
calling it stored. Reads go through a tenant-checked route that mints a short-lived GET URL, so
nothing in the bucket is ever public.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from app.booking.models import Booking
from app.errors import FielddayError, NotFound, ValidationFailed
from app.extensions import db
from app.media import storage
from app.media.models import BookingPhoto

PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic"}
KINDS = ("before", "after")
MIN_BYTES = 1
MAX_BYTES = 12 * 1024 * 1024
UPLOAD_EXPIRES_S = 300
READ_EXPIRES_S = 300
GIB = 1024**3


class PhotoNotStored(FielddayError):
    status = 422
    code = "photo_not_stored"
    message = "The photo didn't reach storage. Please take it again."


@dataclass
class UploadTicket:
    photo: BookingPhoto
    url: str
    fields: dict[str, str]


def photo_key(tenant_id: uuid.UUID, booking_id: uuid.UUID, content_type: str) -> str:
    """``tenants/<tenant>/bookings/<booking>/<random>.<ext>``: the client never names a key."""
    return storage.tenant_key(tenant_id, f"bookings/{booking_id}", PHOTO_TYPES[content_type])


def clean_upload_request(kind: str | None, content_type: str | None, size: int | str | None = None) -> tuple[str, str]:
    """Refuse what we can before signing anything: the kind, the type, and a size if one is given."""
    errors = {}
    kind = (kind or "").strip().lower()
    content_type = (content_type or "").strip().lower()
    if kind not in KINDS:
        errors["kind"] = "Say whether this is a before or an after photo."
    if content_type not in PHOTO_TYPES:
        errors["content_type"] = "Photos must be JPEG, PNG, WebP or HEIC images."
    if size not in (None, ""):
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = -1
        if not MIN_BYTES <= size <= MAX_BYTES:
            errors["size"] = f"Photos can be up to {MAX_BYTES // (1024 * 1024)} MB."
    if errors:
        raise ValidationFailed(errors)
    return kind, content_type


def media_bytes_used(*, in_flight: bool = False) -> int:
    """Bytes of stored photos for the current tenant, of jobs and of quote requests alike: one
    total against the plan's media quota (RLS scopes both sums). ``in_flight`` also counts every
    upload ticket still valid as a whole photo (MAX_BYTES): its size is known only once it lands."""
    from app.quotes.models import QuoteRequestPhoto

    total = 0
    for model in (BookingPhoto, QuoteRequestPhoto):
        stored = db.func.coalesce(db.func.sum(model.size_bytes), 0)
        if in_flight:
            fresh = (model.status == "pending") & (
                model.created_at > db.func.now() - timedelta(seconds=UPLOAD_EXPIRES_S)
            )
            stored = stored + db.func.count().filter(fresh) * MAX_BYTES
        total += int(db.session.scalar(db.select(stored).select_from(model)) or 0)
    return total


def check_room(tenant_id: uuid.UUID, media_gb: int, *, message: str) -> None:
    """Refuse an upload unless one more photo of the largest size fits beside every stored photo and
    every upload still in flight, under the business's storage lock (DESIGN §5b: checked inside the
    creating transaction, so two uploads at the last megabytes can't both pass)."""
    db.session.execute(
        db.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"quota:storage:{tenant_id}"}
    )
    if media_bytes_used(in_flight=True) + MAX_BYTES > media_gb * GIB:
        raise ValidationFailed(message)


def start_upload(
    booking: Booking,
    *,
    kind: str,
    content_type: str,
    uploaded_by: uuid.UUID | None,
    media_gb: int | None = None,
    size: int | str | None = None,
    expires_in: int = UPLOAD_EXPIRES_S,
) -> UploadTicket:
    """A pending photo row and a presigned POST for it: 1 byte .. 12 MB, exactly this type and
    key, valid ``expires_in`` seconds."""
    kind, content_type = clean_upload_request(kind, content_type, size)
    if media_gb is not None:
        check_room(
            booking.tenant_id, media_gb, message={"size": f"Your plan's {media_gb} GB of photo storage is full."}
        )
    key = photo_key(booking.tenant_id, booking.id, content_type)
    photo = BookingPhoto(
        tenant_id=booking.tenant_id,
        booking_id=booking.id,
        kind=kind,
        key=key,
        content_type=content_type,
        uploaded_by=uploaded_by,
        status="pending",
    )
    db.session.add(photo)
    db.session.flush()
    post = storage.client().generate_presigned_post(
        storage.bucket(),
        key,
        Fields={"Content-Type": content_type},
        # boto3 adds the bucket and the exact key to these conditions itself.
        Conditions=[["content-length-range", MIN_BYTES, MAX_BYTES], {"Content-Type": content_type}],
        ExpiresIn=expires_in,
    )
    return UploadTicket(photo=photo, url=post["url"], fields=post["fields"])


def get_photo(photo_id: uuid.UUID) -> BookingPhoto:
    from tenants.context import current_tenant_id

    photo = db.session.get(BookingPhoto, (current_tenant_id(), photo_id)) if current_tenant_id() else None
    if photo is None:
        raise NotFound("No such photo.")
    return photo


def finish_upload(photo: BookingPhoto) -> BookingPhoto:
    """Mark a photo stored once storage has it, within the limits and of the type we signed for.
    Otherwise the row (and any stray object) is deleted and ``PhotoNotStored`` raised: the caller
    commits that deletion."""
    if photo.status == "stored":
        return photo
    reason = None
    try:
        head = storage.client().head_object(Bucket=storage.bucket(), Key=photo.key)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status not in (403, 404):
            raise
        head, reason = None, "The photo didn't reach storage. Please take it again."
    if head is not None:
        size = int(head.get("ContentLength") or 0)
        stored_type = (head.get("ContentType") or "").split(";")[0].strip().lower()
        if not MIN_BYTES <= size <= MAX_BYTES:
            reason = f"Photos can be up to {MAX_BYTES // (1024 * 1024)} MB."
        elif stored_type != photo.content_type:
            reason = "Photos must be JPEG, PNG, WebP or HEIC images."
        if reason:
            storage.delete_object(photo.key)
    if reason:
        db.session.delete(photo)
        db.session.flush()
        raise PhotoNotStored(reason)
    photo.size_bytes = size
    photo.status = "stored"
    db.session.flush()
    return photo


def list_photos(booking_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[BookingPhoto]]:
    """Stored photos per booking, oldest first (pending uploads are not shown)."""
    out: dict[uuid.UUID, list[BookingPhoto]] = {b: [] for b in booking_ids}
    if not booking_ids:
        return out
    rows = db.session.scalars(
        db.select(BookingPhoto)
        .where(BookingPhoto.booking_id.in_(booking_ids), BookingPhoto.status == "stored")
        .order_by(BookingPhoto.created_at, BookingPhoto.id)
    )
    for photo in rows:
        out[photo.booking_id].append(photo)
    return out


def read_url(photo: BookingPhoto, *, expires_in: int = READ_EXPIRES_S) -> str:
    """A presigned GET for a stored photo, valid ``expires_in`` seconds."""
    return storage.client().generate_presigned_url(
        "get_object",
        Params={"Bucket": storage.bucket(), "Key": photo.key, "ResponseContentType": photo.content_type},
        ExpiresIn=expires_in,
    )


def storage_origin(config) -> str:
    """The origin browsers reach object storage at, for the CSP of pages that upload to it or
    show its images. Worked out the way boto3 signs URLs (no network: dummy keys, presign only)."""
    endpoint = config.get("S3_ENDPOINT_URL") or ""
    if endpoint:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"
    import boto3
    from botocore.config import Config as BotoConfig

    client = boto3.client(
        "s3",
        region_name=config.get("S3_REGION") or "us-east-1",
        aws_access_key_id="origin-only",
        aws_secret_access_key="origin-only",
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = client.generate_presigned_url("get_object", Params={"Bucket": config.get("S3_BUCKET") or "b", "Key": "k"})
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
