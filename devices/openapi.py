"""The OpenAPI 3.1 description of the device API, served at /api/v1/openapi.json.

Written by hand next to the views (devices/api.py); tests check real responses against it and
fuzz the API from it (tests/test_device_api_openapi.py, tests/test_device_api_hostile_input.py).
"""

from datetime import timedelta

from vendors.attestation import (
    ED25519_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    MAX_BATCH_NAME,
    SIGNED_AT,
    SIGNED_AT_TOLERANCE,
)

from .activation import ANSWERED_ERRORS, MAX_CLAIM_CODE
from .api import MAX_METRIC_VALUE

B64URL = "^[A-Za-z0-9_-]+$"
SLUG = "^[A-Za-z0-9_-]+$"
# base64url without padding: any length except 4k + 1.
B64URL_UNPADDED = "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$"
# Identifier values and batch names: no C0, DEL or C1 control characters (PostgreSQL cannot store NUL).
PLAIN_TEXT = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
# Command output: the same, but tab, line feed and carriage return are allowed.
MULTILINE_TEXT = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"

_error = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def _error_response(description, headers=None):
    response = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_retry_after = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}

_device = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["unregistered", "registered", "claimed"]},
    },
}

# The activation answer names the device only: it is unauthenticated, and whether a unit is
# claimed is for its key's calls (the heartbeat) to tell.
_activated_device = {
    "type": "object",
    "required": ["id"],
    "additionalProperties": False,
    "properties": {"id": {"type": "string", "format": "uuid"}},
}

_operation = {
    "oneOf": [
        {
            "type": "object",
            "required": ["operation_id", "status"],
            "additionalProperties": False,
            "properties": {
                "operation_id": {"type": "string", "format": "uuid"},
                "status": {"const": "assigning"},
            },
        },
        {
            "type": "object",
            "required": ["operation_id", "status", "device", "server_public_key"],
            "additionalProperties": False,
            "properties": {
                "operation_id": {"type": "string", "format": "uuid"},
                "status": {"const": "assigned"},
                "device": {"$ref": "#/components/schemas/ActivatedDevice"},
                "server_public_key": {"type": "string", "pattern": B64URL, "minLength": 43, "maxLength": 43},
            },
        },
        {
            "type": "object",
            "required": ["operation_id", "status", "error"],
            "additionalProperties": False,
            "properties": {
                "operation_id": {"type": "string", "format": "uuid"},
                "status": {"const": "failed"},
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"enum": [str(code) for code in ANSWERED_ERRORS]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    ]
}


def _b64url_bytes(size, description):
    """A string holding `size` bytes, base64url without padding."""
    length = -(-size * 4 // 3)
    return {"type": "string", "pattern": B64URL, "minLength": length, "maxLength": length, "description": description}


_activation_request = {
    "type": "object",
    "required": ["vendor", "model", "identifiers", "public_key"],
    "additionalProperties": False,
    "properties": {
        "vendor": {"type": "string", "pattern": SLUG, "minLength": 1, "maxLength": 50, "example": "acme"},
        "model": {"type": "string", "pattern": SLUG, "minLength": 1, "maxLength": 50, "example": "hub-2"},
        "identifiers": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 3,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$", "maxLength": 32},
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": PLAIN_TEXT},
            "example": {"serial_number": "AH2-260001", "mac_address": "02:AC:E0:00:00:01"},
        },
        "public_key": {
            "type": "string",
            "description": "The device's X25519 public key: 32 bytes, base64url without padding.",
            "pattern": B64URL,
            "minLength": 43,
            "maxLength": 43,
        },
        "claim_code": {
            "type": ["string", "null"],
            "description": "For models that require one: the unit's 11-digit claim code (spaces and dashes are "
            "ignored). Any string is accepted here; one that is not the unit's code fails the operation as "
            "not_approved.",
            "minLength": 1,
            "maxLength": MAX_CLAIM_CODE,
            "pattern": PLAIN_TEXT,
            "example": "8294-816-4301",
        },
        "attestation": {
            "type": ["object", "null"],
            "description": "For models that require factory attestation: the factory's certificate of the unit key "
            "and the unit key's signature of this request (docs/device-api.md).",
            "required": ["batch", "unit_public_key", "certificate", "signed_at", "signature"],
            "additionalProperties": False,
            "properties": {
                "batch": {"type": "string", "minLength": 1, "maxLength": MAX_BATCH_NAME, "pattern": PLAIN_TEXT},
                "unit_public_key": _b64url_bytes(ED25519_KEY_BYTES, "The unit's Ed25519 public key."),
                "certificate": _b64url_bytes(
                    ED25519_SIGNATURE_BYTES, "The batch key's Ed25519 signature of the unit's certificate."
                ),
                "signed_at": {
                    "type": "string",
                    "pattern": f"^{SIGNED_AT.pattern}$",
                    "description": f"RFC 3339 UTC; within {SIGNED_AT_TOLERANCE // timedelta(minutes=1)} minutes "
                    "of the server's clock.",
                    "example": "2026-12-01T12:00:00Z",
                },
                "signature": _b64url_bytes(ED25519_SIGNATURE_BYTES, "The unit key's Ed25519 signature of the request."),
            },
        },
    },
}

_heartbeat_request = {
    "type": "object",
    "required": ["metrics"],
    "additionalProperties": False,
    "properties": {
        "metrics": {
            "type": "object",
            "maxProperties": 32,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.:-]+$", "maxLength": 64},
            "additionalProperties": {"type": "number", "minimum": -MAX_METRIC_VALUE, "maximum": MAX_METRIC_VALUE},
            "example": {"temperature": 21.5, "uptime": 3600},
        },
        "config_version": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": 2147483647,
            "description": "The configuration version the device has applied (null or absent: none reported).",
        },
    },
}

_command = {
    "type": "object",
    "required": ["id", "name", "arguments", "status", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "arguments": {"type": "object"},
        "status": {"type": "string", "enum": ["queued", "delivered", "succeeded", "failed", "expired"]},
        "created_at": {"type": "string", "format": "date-time"},
    },
}

_command_result = {
    "type": "object",
    "required": ["status"],
    "additionalProperties": False,
    "properties": {
        "status": {"type": "string", "enum": ["succeeded", "failed"]},
        "output": {"type": "string", "maxLength": 4000, "pattern": MULTILINE_TEXT},
    },
}

_unauthorized = _error_response("Missing, wrong or revoked key (no hint which).")


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "Device API",
        "version": "1",
        "description": "Activation (X25519 key exchange, HKDF-SHA256) and authenticated device calls. "
        "See docs/device-api.md.",
    },
    "paths": {
        "/api/v1/activations": {
            "post": {
                "operationId": "startActivation",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "description": "Hold the request up to this many seconds for the operation to finish.",
                        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ActivationRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Finished within ?wait=N.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operation"}}},
                    },
                    "202": {
                        "description": "Accepted; poll Location after Retry-After seconds.",
                        "headers": {
                            "Location": {"required": True, "schema": {"type": "string"}},
                            "Retry-After": {"required": True, "schema": {"type": "string"}},
                        },
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operation"}}},
                    },
                    "400": _error_response("Malformed request (code invalid_request, with fields)."),
                    "413": _error_response("Body over 16 KB."),
                    "429": _error_response("Rate limited, per address or per identity.", _retry_after),
                },
            }
        },
        "/api/v1/activations/{operation_id}": {
            "get": {
                "operationId": "getActivation",
                "parameters": [
                    {
                        "name": "operation_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The operation: assigning, assigned or failed.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Operation"}}},
                    },
                    "404": _error_response("Unknown operation id."),
                },
            }
        },
        "/api/v1/device/heartbeat": {
            "post": {
                "operationId": "heartbeat",
                "security": [{"deviceKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HeartbeatRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Seen.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["device", "server_time", "commands_pending", "config_version"],
                                    "properties": {
                                        "device": {"$ref": "#/components/schemas/Device"},
                                        "server_time": {"type": "string", "format": "date-time"},
                                        "commands_pending": {
                                            "type": "boolean",
                                            "description": "Commands wait: GET /api/v1/device/commands.",
                                        },
                                        "config_version": {
                                            "type": "integer",
                                            "description": "The desired configuration version; fetch "
                                            "/api/v1/device/config when it differs from the one applied.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "400": _error_response("Malformed heartbeat."),
                    "401": _error_response("Missing, wrong or revoked key (no hint which)."),
                    "413": _error_response("Body over 16 KB."),
                },
            }
        },
        "/api/v1/device/commands": {
            "get": {
                "operationId": "pendingCommands",
                "security": [{"deviceKey": []}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["commands"],
                            "properties": {
                                "commands": {"type": "array", "items": {"$ref": "#/components/schemas/Command"}}
                            },
                        },
                        "The commands to run now, oldest first (queued ones become delivered).",
                    ),
                    "401": _unauthorized,
                },
            }
        },
        "/api/v1/device/commands/{command_id}/result": {
            "post": {
                "operationId": "reportCommandResult",
                "security": [{"deviceKey": []}],
                "parameters": [
                    {
                        "name": "command_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CommandResult"}}},
                },
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["command"],
                            "properties": {"command": {"$ref": "#/components/schemas/Command"}},
                        },
                        "Recorded.",
                    ),
                    "400": _error_response("Malformed result (code invalid_request, with fields)."),
                    "401": _unauthorized,
                    "404": _error_response("This device has no such command."),
                    "409": _error_response("The command already has a result, or expired."),
                    "413": _error_response("Body over 16 KB."),
                },
            }
        },
        "/api/v1/device/config": {
            "get": {
                "operationId": "desiredConfiguration",
                "security": [{"deviceKey": []}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["version", "config"],
                            "properties": {"version": {"type": "integer", "minimum": 0}, "config": {"type": "object"}},
                        },
                        "The configuration to run and its version (0: the model's defaults).",
                    ),
                    "401": _unauthorized,
                },
            }
        },
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "responses": {
                    "200": {
                        "description": "Up.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {"status": {"const": "ok"}},
                                }
                            }
                        },
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "ActivationRequest": _activation_request,
            "HeartbeatRequest": _heartbeat_request,
            "Command": _command,
            "CommandResult": _command_result,
            "Operation": _operation,
            "Device": _device,
            "ActivatedDevice": _activated_device,
            "Error": _error,
        },
        "securitySchemes": {
            "deviceKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "base64url (no padding) of the 32-byte device key derived at activation.",
            }
        },
    },
}

# Any call may be answered 503 while the portal cannot reach PostgreSQL or Redis (portal/unavailable.py).
UNAVAILABLE = _error_response("PostgreSQL or Redis is unreachable for a moment: retry later.", _retry_after)
for _operations in OPENAPI["paths"].values():
    for _operation_description in _operations.values():
        _operation_description["responses"]["503"] = UNAVAILABLE
