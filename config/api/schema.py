"""drf-spectacular post-processing: document the response envelope and the error envelope, and
the ``Prefer: return=minimal`` header every update honours (config.api.prefer).

Every operation gets the error answers any request can get (400, 401, 403, 404, 413, 415, 429,
as they apply); an answer only some operations give (409 CONFLICT) is declared on the view with
``error_response``, next to the code that raises it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse

from config.api.prefer import (
    MINIMAL_RESPONSE_DESCRIPTION,
    PREFER_HEADER_DESCRIPTION,
    UPDATE_METHODS,
)
from config.api.routers import UUID_PATTERN

ERROR_COMPONENT = "ErrorEnvelope"
UUID_REGEX = f"^{UUID_PATTERN}$"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [
                        "BAD_REQUEST",
                        "VALIDATION_ERROR",
                        "UNAUTHORIZED",
                        "FORBIDDEN",
                        "NOT_FOUND",
                        "METHOD_NOT_ALLOWED",
                        "NOT_ACCEPTABLE",
                        "UNSUPPORTED_MEDIA_TYPE",
                        "CONFLICT",
                        "PAYLOAD_TOO_LARGE",
                        "RATE_LIMITED",
                        "INTERNAL_ERROR",
                    ],
                },
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Per-field messages for VALIDATION_ERROR; context otherwise.",
                },
            },
        }
    },
}
ERROR_RESPONSES = {
    "400": (
        "Malformed JSON or invalid input (VALIDATION_ERROR with per-field details), a NUL "
        "character anywhere in the request, JSON nested too deeply, or an invalid query "
        "parameter."
    ),
    "401": "Missing, unknown or revoked API key.",
    "403": "The API key's scope does not cover this request (details name the scope needed).",
    "404": "No such object in this account.",
    "413": "The request body is larger than the server's limit (PAYLOAD_TOO_LARGE).",
    "415": "The request body is not JSON (UNSUPPORTED_MEDIA_TYPE).",
    "429": "Rate limit exceeded for this API key, or too many failed authentications.",
}


def error_response(description: str) -> OpenApiResponse:
    """An error answer in the envelope, for ``extend_schema(responses={409: ...})``."""
    return OpenApiResponse(
        response={"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}, description=description
    )


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.rsplit("/", 1)[-1].startswith("Paginated"):
        return schema
    if schema.get("type") == "string" and schema.get("format") == "binary":
        return schema
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def _needs_credentials(operation: dict[str, Any]) -> bool:
    """drf-spectacular lists ``{}`` among the security options of an operation open to anyone."""
    security = operation.get("security") or []
    return bool(security) and {} not in security


def _document_prefer(operation: dict[str, Any]) -> None:
    """The ``Prefer: return=minimal`` header of an update and its 204 (config.api.prefer)."""
    operation.setdefault("parameters", []).append(
        {
            "in": "header",
            "name": "Prefer",
            "required": False,
            "schema": {"type": "string", "enum": ["return=minimal", "return=representation"]},
            "description": PREFER_HEADER_DESCRIPTION,
        }
    )
    operation["responses"].setdefault("204", {"description": MINIMAL_RESPONSE_DESCRIPTION})


def postprocess_envelopes(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    error_ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if method.upper() in UPDATE_METHODS and "200" in responses:
                _document_prefer(operation)
            for parameter in operation.get("parameters", []):
                # Ids in paths are UUIDs (config.api.routers): say so, not only by the pattern.
                if parameter["in"] == "path" and parameter["schema"].get("pattern") == UUID_REGEX:
                    parameter["schema"]["format"] = "uuid"
            for code, response in responses.items():
                if not code.startswith("2"):
                    continue
                content = response.get("content", {})
                media = content.get("application/json")
                if media and "schema" in media:
                    media["schema"] = _wrap(media["schema"])
            wanted = dict(ERROR_RESPONSES)
            if "{" not in path:
                wanted.pop("404")
            if "requestBody" not in operation:
                wanted.pop("413")
                wanted.pop("415")
            if not _needs_credentials(operation):
                wanted.pop("401")
                wanted.pop("403")
            for code, description in wanted.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
    return result
