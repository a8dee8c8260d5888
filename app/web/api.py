"""JSON API at ``app.<base>/api/v1`` (session auth for now; API keys arrive later)."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, g, jsonify, request
from flask_login import current_user

from app.accounts import services as accounts
from app.errors import FielddayError, ValidationFailed
from app.extensions import db
from tenants import settings as tenant_settings

bp = Blueprint("api", __name__)

SETTINGS_FIELDS = set(tenant_settings.FIELDS)


class Unauthorized(FielddayError):
    status = 401
    code = "unauthorized"
    message = "Log in, or send an API key."


@bp.before_request
def require_auth():
    if request.endpoint == "api.openapi":
        return None
    if not current_user.is_authenticated or g.get("tenant") is None:
        raise Unauthorized()
    if current_user.role not in ("owner", "admin"):
        abort(403)
    return None


def tenant_json(t) -> dict:
    return {
        "id": str(t.id),
        "subdomain": t.subdomain,
        "name": t.name,
        "tagline": t.tagline,
        "time_zone": t.time_zone,
        "currency": t.currency,
        "plan": t.plan,
        "brand_color": t.brand_color,
        "contact_phone": t.contact_phone,
        "contact_email": t.contact_email,
        "has_logo": bool(t.logo_key),
    }


def user_json(u) -> dict:
    return {"id": str(u.id), "name": u.name, "email": u.email, "role": u.role, "active": u.is_active}


def json_body() -> dict:
    body = request.get_json(silent=True)
    if body is None:
        raise FielddayError("The body must be a JSON object (Content-Type: application/json).", field="body")
    if not isinstance(body, dict):
        raise FielddayError("The body must be a JSON object.", field="body")
    return body


@bp.get("/me")
def me():
    return jsonify(user=user_json(current_user), tenant=tenant_json(g.tenant))


@bp.get("/settings")
def get_settings():
    return jsonify(tenant_json(g.tenant))


@bp.patch("/settings")
def patch_settings():
    body = json_body()
    unknown = sorted(set(body) - SETTINGS_FIELDS)
    if unknown:
        raise ValidationFailed({k: "Unknown field." for k in unknown}, f"Unknown field: {unknown[0]}.")
    merged = {k: getattr(g.tenant, k) for k in SETTINGS_FIELDS} | body
    bad_types = [k for k, v in body.items() if v is not None and not isinstance(v, str)]
    if bad_types:
        raise ValidationFailed({k: "Must be a string." for k in bad_types})
    tenant_settings.update_settings(g.tenant, {k: (v or "") for k, v in merged.items()}, actor_id=current_user.id)
    db.session.commit()
    return jsonify(tenant_json(g.tenant))


@bp.get("/users")
def list_users():
    return jsonify(users=[user_json(u) for u in accounts.list_users()])


@bp.get("/users/<uuid:user_id>")
def get_user(user_id: uuid.UUID):
    return jsonify(user_json(accounts.get_user(user_id)))


@bp.get("/openapi.json")
def openapi():
    user = {"type": "object", "properties": {k: {"type": "string"} for k in ("id", "name", "email", "role")}}
    tenant = {"type": "object", "properties": {k: {"type": ["string", "null"]} for k in sorted(SETTINGS_FIELDS)}}
    error = {"type": "object", "properties": {"error": {"type": "object"}}}
    return jsonify(
        {
            "openapi": "3.1.0",
            "info": {"title": "Fieldday API", "version": "1"},
            "servers": [{"url": "/api/v1"}],
            "paths": {
                "/me": {"get": {"responses": {"200": {"description": "The current user and business"}}}},
                "/settings": {
                    "get": {
                        "responses": {
                            "200": {
                                "description": "Business settings",
                                "content": {"application/json": {"schema": tenant}},
                            }
                        }
                    },
                    "patch": {
                        "requestBody": {
                            "content": {"application/json": {"schema": {**tenant, "additionalProperties": False}}}
                        },
                        "responses": {
                            "200": {"description": "Updated"},
                            "422": {"description": "Invalid", "content": {"application/json": {"schema": error}}},
                        },
                    },
                },
                "/users": {"get": {"responses": {"200": {"description": "Team members"}}}},
                "/users/{id}": {
                    "get": {
                        "parameters": [
                            {
                                "name": "id",
                                "in": "path",
                                "required": True,
                                "schema": {"type": "string", "format": "uuid"},
                            }
                        ],
                        "responses": {
                            "200": {"description": "A team member", "content": {"application/json": {"schema": user}}},
                            "404": {"description": "Not found (including other businesses' ids)"},
                        },
                    }
                },
            },
        }
    )
