"""The OpenAPI 3.1 document for /api/v1, kept next to the routes it describes.
tests/test_api_spec.py checks every /api/v1 route is documented here."""

from __future__ import annotations

from app.booking.models import STATUS_LABELS
from app.customers.models import SIZE_CLASSES

ID = {"type": "string", "format": "uuid"}
SIZE = {"enum": list(SIZE_CLASSES)}  # derived from the models, so the document cannot drift
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}
PRICES = {
    "type": "object",
    "description": "Per vehicle size (sedan, suv, truck); sizes left out are not offered.",
    "additionalProperties": {
        "type": "object",
        "required": ["price_cents", "duration_min"],
        "properties": {"price_cents": {"type": "integer", "minimum": 0}, "duration_min": {"type": "integer"}},
    },
}
SCHEMAS = {
    "Error": ERROR,
    "ApiKey": {
        "type": "object",
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "prefix": {"type": "string"},
            "scopes": {"type": "array", "items": {"enum": ["read", "write"]}},
        },
    },
    "User": {"type": "object", "properties": {k: {"type": "string"} for k in ("id", "name", "email", "role")}},
    "Package": {
        "type": "object",
        "properties": {
            "id": ID,
            "kind": {"enum": ["package", "addon"]},
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "active": {"type": "boolean"},
            "prices": PRICES,
        },
    },
    "NewPackage": {
        "type": "object",
        "required": ["name", "prices"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"enum": ["package", "addon"]},
            "description": {"type": "string"},
            "prices": PRICES,
            "position": {"type": "integer"},
        },
    },
    "Technician": {"type": "object", "properties": {"id": ID, "name": {"type": "string"}, "hours": {"type": "array"}}},
    "Customer": {
        "type": "object",
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "phone": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
        },
    },
    "NewCustomer": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "phone": {"type": "string"},
            "email": {"type": "string"},
            "notes": {"type": "string"},
        },
    },
    "Vehicle": {
        "type": "object",
        "properties": {
            "id": ID,
            "customer_id": ID,
            "size_class": SIZE,
            "year": {"type": ["integer", "null"]},
            "make": {"type": ["string", "null"]},
            "model": {"type": ["string", "null"]},
            "color": {"type": ["string", "null"]},
            "plate": {"type": ["string", "null"]},
            "label": {"type": "string"},
        },
    },
    "NewVehicle": {
        "type": "object",
        "required": ["size_class"],
        "properties": {
            "size_class": SIZE,
            "year": {"type": "integer"},
            "make": {"type": "string"},
            "model": {"type": "string"},
            "color": {"type": "string"},
            "plate": {"type": "string"},
        },
    },
    "Booking": {
        "type": "object",
        "properties": {
            "id": ID,
            "reference": {"type": "string"},
            "status": {"enum": list(STATUS_LABELS)},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "technician_id": ID,
            "customer_id": ID,
            "price_cents": {"type": "integer"},
            "currency": {"type": "string"},
        },
    },
    "NewBooking": {
        "type": "object",
        "required": ["package_id", "size_class", "starts_at", "customer", "address"],
        "properties": {
            "package_id": ID,
            "addon_ids": {"type": "array", "items": ID},
            "size_class": SIZE,
            "vehicle": {"type": "object"},
            "starts_at": {"type": "string", "format": "date-time"},
            "technician_id": ID,
            "customer": {"$ref": "#/components/schemas/NewCustomer"},
            "address": {"type": "string"},
            "access_notes": {"type": "string"},
            "notes": {"type": "string"},
        },
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "Malformed request",
        401: "Not logged in, or the API key is missing, unknown or revoked",
        402: "The plan's limit is reached (code `plan_limit_reached`); the message says which and what to do",
        404: "Not found (including other businesses' ids)",
        409: "That time was just taken",
        422: "Invalid input; `fields` names each problem",
    }
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


# Every operation: how to authenticate, and the answers any of them can give (docs/api-and-webhooks.md).
SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "fd_live_<prefix>_<secret>",
        "description": "A business's API key (Integrations → API keys). GET needs the read scope, "
        "every other method the write scope.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "fd_session",
        "description": "A logged-in owner's or admin's session; writes also need the X-CSRFToken header.",
    },
}
RATE_HEADERS = {
    "X-RateLimit-Limit": "The business's API requests per hour (from its plan)",
    "X-RateLimit-Remaining": "Requests left in this hour's window",
    "X-RateLimit-Reset": "When the window resets (Unix seconds)",
}


def _header(description: str) -> dict:
    return {"description": description, "schema": {"type": "integer"}}


def _secure(paths: dict) -> dict:
    """Every operation names both schemes and documents 401, 403 and 429 with their headers."""
    challenge = {"WWW-Authenticate": {"description": "Bearer challenge", "schema": {"type": "string"}}}
    limited = {"Retry-After": _header("Seconds until the hourly window resets")}
    limited |= {k: _header(v) for k, v in RATE_HEADERS.items()}
    common = {
        "401": {**_errors(401)["401"], "headers": challenge},
        "403": {
            **_json(_ref("Error"), "The API key lacks the scope this method needs, or the user's role can't"),
            "headers": challenge,
        },
        "429": {
            **_json(_ref("Error"), "The business used its hourly API allowance (all its keys and sessions)"),
            "headers": limited,
        },
    }
    for operations in paths.values():
        for operation in operations.values():
            operation["security"] = [{"apiKey": []}, {"session": []}]
            operation["responses"] = {**operation["responses"], **common}
    return paths


def _path_id(name: str = "id") -> list[dict]:
    return [{"name": name, "in": "path", "required": True, "schema": ID}]


QUERY_TYPES = {
    "date": {"type": "string", "format": "date"},
    "start": {"type": "string", "format": "date-time"},
    "end": {"type": "string", "format": "date-time"},
    "days": {"type": "integer", "minimum": 1, "maximum": 62},
    "duration_min": {"type": "integer", "minimum": 5, "maximum": 720},
    "size_class": SIZE,
    "package_id": ID,
    "technician_id": ID,
    "addon_ids": {"type": "array", "items": ID},
}


def _query(*names: str, required: tuple[str, ...] = ()) -> list[dict]:
    return [
        {"name": n, "in": "query", "required": n in required, "schema": QUERY_TYPES.get(n, {"type": "string"})}
        for n in names
    ]


def document() -> dict:
    listing = lambda key, item: _json({"type": "object", "properties": {key: {"type": "array", "items": _ref(item)}}})  # noqa: E731
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "Fieldday API",
            "version": "1",
            "description": "A business's API key (Authorization: Bearer fd_live_…) or a logged-in session (with "
            "X-CSRFToken on writes). Each business has an hourly allowance by plan, shared by all its keys and "
            "sessions; every answer carries X-RateLimit-* headers. Money is integer cents; times are ISO 8601 "
            "with an offset.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"apiKey": []}, {"session": []}],
        "paths": {
            "/me": {
                "get": {
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "description": "A session gives the user; a key gives the key (the other is null).",
                                "properties": {
                                    "user": {"oneOf": [_ref("User"), {"type": "null"}]},
                                    "api_key": {"oneOf": [_ref("ApiKey"), {"type": "null"}]},
                                    "tenant": {"type": "object"},
                                },
                            }
                        )
                    }
                }
            },
            "/settings": {
                "get": {"responses": {"200": _json({"type": "object"})}},
                "patch": {
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": _json({"type": "object"}), **_errors(400, 422)},
                },
            },
            "/users": {"get": {"responses": {"200": listing("users", "User")}}},
            "/users/{user_id}": {
                "get": {"parameters": _path_id("user_id"), "responses": {"200": _json(_ref("User")), **_errors(404)}}
            },
            "/packages": {
                "get": {"responses": {"200": listing("packages", "Package")}},
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": _ref("NewPackage")}}},
                    "responses": {"201": _json(_ref("Package"), "Created"), **_errors(400, 422)},
                },
            },
            "/packages/{package_id}": {
                "get": {
                    "parameters": _path_id("package_id"),
                    "responses": {"200": _json(_ref("Package")), **_errors(404)},
                }
            },
            "/technicians": {"get": {"responses": {"200": listing("technicians", "Technician")}}},
            "/technicians/{technician_id}": {
                "get": {
                    "parameters": _path_id("technician_id"),
                    "responses": {"200": _json(_ref("Technician")), **_errors(404)},
                }
            },
            "/customers": {
                "get": {
                    "parameters": _query("q"),
                    "responses": {"200": listing("customers", "Customer"), **_errors(422)},
                },
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": _ref("NewCustomer")}}},
                    "responses": {"201": _json(_ref("Customer"), "Created"), **_errors(400, 402, 422)},
                },
            },
            "/customers/{customer_id}": {
                "get": {
                    "parameters": _path_id("customer_id"),
                    "responses": {"200": _json(_ref("Customer")), **_errors(404)},
                }
            },
            "/customers/{customer_id}/vehicles": {
                "get": {
                    "parameters": _path_id("customer_id"),
                    "responses": {"200": listing("vehicles", "Vehicle"), **_errors(404)},
                },
                "post": {
                    "parameters": _path_id("customer_id"),
                    "requestBody": {"content": {"application/json": {"schema": _ref("NewVehicle")}}},
                    "responses": {"201": _json(_ref("Vehicle"), "Created"), **_errors(400, 404, 422)},
                },
            },
            "/availability": {
                "get": {
                    "parameters": _query(
                        "date",
                        "days",
                        "package_id",
                        "addon_ids",
                        "size_class",
                        "technician_id",
                        required=("date", "package_id", "size_class"),
                    ),
                    "responses": {"200": _json({"type": "object"}, "Offered start times per day"), **_errors(422)},
                }
            },
            "/availability/explain": {
                "get": {
                    "parameters": _query("date", "technician_id", "duration_min", required=("date", "technician_id")),
                    "responses": {
                        "200": _json({"type": "object"}, "Every candidate time and why"),
                        **_errors(404, 422),
                    },
                }
            },
            "/bookings": {
                "get": {
                    "parameters": _query("start", "end"),
                    "responses": {"200": listing("bookings", "Booking"), **_errors(422)},
                },
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": _ref("NewBooking")}}},
                    "responses": {"201": _json(_ref("Booking"), "Booked"), **_errors(400, 402, 409, 422)},
                },
            },
            "/bookings/{booking_id}": {
                "get": {
                    "parameters": _path_id("booking_id"),
                    "responses": {"200": _json(_ref("Booking")), **_errors(404)},
                }
            },
            "/bookings/{booking_id}/move": {
                "post": {
                    "parameters": _path_id("booking_id"),
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["starts_at"],
                                    "properties": {
                                        "starts_at": {"type": "string", "format": "date-time"},
                                        "technician_id": ID,
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": _json(_ref("Booking")), **_errors(400, 404, 409, 422)},
                }
            },
            "/bookings/{booking_id}/status": {
                "post": {
                    "parameters": _path_id("booking_id"),
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {"status": {"type": "string"}},
                                }
                            }
                        }
                    },
                    "responses": {"200": _json(_ref("Booking")), **_errors(400, 404, 409)},
                }
            },
        },
    }
    _secure(doc["paths"])
    return doc
