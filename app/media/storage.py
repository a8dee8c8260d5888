"""S3-compatible object storage through boto3. Keys always live under
``tenants/<tenant_id>/`` and are chosen by the server, never the client."""

from __future__ import annotations

import secrets
import uuid

import boto3
from botocore.config import Config as BotoConfig
from flask import current_app

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def client():
    cfg = current_app.config
    cached = current_app.extensions.get("s3")
    if cached is None:
        cached = boto3.client(
            "s3",
            endpoint_url=cfg["S3_ENDPOINT_URL"] or None,
            aws_access_key_id=cfg["S3_ACCESS_KEY_ID"],
            aws_secret_access_key=cfg["S3_SECRET_ACCESS_KEY"],
            region_name=cfg["S3_REGION"],
            config=BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=3,
                read_timeout=10,
                retries={"max_attempts": 2},
            ),
        )
        current_app.extensions["s3"] = cached
    return cached


def bucket() -> str:
    return current_app.config["S3_BUCKET"]


def tenant_key(tenant_id: uuid.UUID, folder: str, ext: str) -> str:
    return f"tenants/{tenant_id}/{folder}/{secrets.token_urlsafe(16)}.{ext}"


def put_object(key: str, body: bytes, content_type: str) -> None:
    client().put_object(Bucket=bucket(), Key=key, Body=body, ContentType=content_type)


def get_object(key: str) -> bytes:
    return client().get_object(Bucket=bucket(), Key=key)["Body"].read()


def delete_object(key: str) -> None:
    client().delete_object(Bucket=bucket(), Key=key)


def ensure_bucket() -> None:
    s3 = client()
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket() not in existing:
        s3.create_bucket(Bucket=bucket())
