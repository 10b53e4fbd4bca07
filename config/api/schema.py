"""drf-spectacular post-processing: document the response envelope and the error envelope."""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "ErrorEnvelope"
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
    "400": "Malformed JSON, or invalid input (VALIDATION_ERROR with per-field details).",
    "401": "Missing, unknown or revoked API key.",
    "404": "No such object in this account.",
    "429": "Rate limit exceeded for this API key.",
}


def _wrap(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.rsplit("/", 1)[-1].startswith("Paginated"):
        return schema
    if schema.get("type") == "string" and schema.get("format") == "binary":
        return schema
    return {"type": "object", "required": ["data"], "properties": {"data": schema}}


def postprocess_envelopes(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    error_ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
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
            if method in ("get", "delete") and "{" in path:
                wanted.pop("400")
            if not operation.get("security", True):
                wanted.pop("401", None)
            for code, description in wanted.items():
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
    return result
