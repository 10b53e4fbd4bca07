"""One error vocabulary for the whole API.

Services raise :class:`ApplicationError` subclasses; views hold no try/except. The DRF exception
handler below turns those, DRF's own exceptions, Django's ``ValidationError`` and 404s, and any
unexpected exception into the documented envelope::

    {"error": {"code": "VALIDATION_ERROR", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """An error a client can act on; carries its HTTP status and envelope code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(ApplicationError):
    pass


class InvalidInput(ApplicationError):
    """Input that fails validation inside a service; ``details`` maps fields to messages."""

    code = "VALIDATION_ERROR"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "NOT_FOUND"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "CONFLICT"


class UpstreamError(ApplicationError):
    """The connected system (a tenant's database or API) failed to answer a request that needed
    it now; the message is the connector's."""

    status_code = status.HTTP_502_BAD_GATEWAY
    code = "UPSTREAM_ERROR"


_CODES_BY_EXCEPTION: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ValidationError, "VALIDATION_ERROR"),
    (exceptions.ParseError, "BAD_REQUEST"),
    (exceptions.AuthenticationFailed, "UNAUTHORIZED"),
    (exceptions.NotAuthenticated, "UNAUTHORIZED"),
    (exceptions.PermissionDenied, "FORBIDDEN"),
    (exceptions.NotFound, "NOT_FOUND"),
    (exceptions.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (exceptions.NotAcceptable, "NOT_ACCEPTABLE"),
    (exceptions.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    (exceptions.Throttled, "RATE_LIMITED"),
]

_MESSAGES = {
    "VALIDATION_ERROR": "The request is invalid; see details for each field.",
    "NOT_FOUND": "Not found.",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _join(prefix: str, key: str) -> str:
    if not prefix or key == prefix:
        return key or prefix
    if key.startswith((f"{prefix}.", f"{prefix}[")):
        return key  # the inner validator already named the full path
    if key.startswith("["):
        return f"{prefix}{key}"
    return f"{prefix}.{key}"


def flatten_validation_detail(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"schedule": {"frequencyUnit": [...]}}`` -> ``{"schedule.frequencyUnit": [...]}``.

    Nested serializers and list items become dotted paths (``mapping.fields[2].extract``), so
    every message sits under the exact path of the value that caused it.
    """
    flat: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a ListSerializer's errors, by the index of each item
                flat.update(flatten_validation_detail(value, f"{prefix}[{key}]"))
                continue
            name = "nonFieldErrors" if key in ("non_field_errors", "nonFieldErrors") else str(key)
            if name == "nonFieldErrors" and prefix:
                name = ""
            flat.update(flatten_validation_detail(value, _join(prefix, name) if name else prefix))
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for index, item in enumerate(detail):
            if item:
                flat.update(flatten_validation_detail(item, f"{prefix}[{index}]"))
    elif isinstance(detail, list):
        flat.setdefault(prefix or "nonFieldErrors", []).extend(str(item) for item in detail)
    else:
        flat.setdefault(prefix or "nonFieldErrors", []).append(str(detail))
    return flat


def _api_exception_body(exc: exceptions.APIException) -> dict[str, Any]:
    code = next((c for cls, c in _CODES_BY_EXCEPTION if isinstance(exc, cls)), "BAD_REQUEST")
    if isinstance(exc, exceptions.ValidationError):
        return error_body(code, _MESSAGES[code], flatten_validation_detail(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return error_body(code, "Too many requests; slow down.", {"retryAfterSeconds": exc.wait})  # type: ignore[attr-defined]
    if isinstance(exc, exceptions.ParseError) and "JSON parse error" in str(exc.detail):
        return error_body(code, "Malformed JSON in request body.", {"parser": str(exc.detail)})
    return error_body(code, str(exc.detail))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(error_body("NOT_FOUND", "Not found."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, SuspiciousOperation):
        body, code = refusal(exc)
        return Response(body, status=code)
    if isinstance(exc, DjangoValidationError):
        details = (
            exc.message_dict if hasattr(exc, "error_dict") else {"nonFieldErrors": exc.messages}
        )
        return Response(
            error_body("VALIDATION_ERROR", _MESSAGES["VALIDATION_ERROR"], details),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        return Response(_api_exception_body(exc), status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in %s", context.get("view"), exc_info=exc)
    return Response(
        error_body("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def payload_too_large_body() -> dict[str, Any]:
    limit = settings.API_MAX_BODY_BYTES
    return error_body(
        "PAYLOAD_TOO_LARGE",
        f"The request body is larger than the limit of {limit} bytes.",
        {"maxBytes": limit},
    )


def refusal(exc: SuspiciousOperation) -> tuple[dict[str, Any], int]:
    """The envelope and status for Django's own refusals of a request (its SuspiciousOperation
    family), whether raised inside a DRF view or before one."""
    if isinstance(exc, RequestDataTooBig):
        # RequestLimitsMiddleware answers first; this covers a body read some other way.
        return payload_too_large_body(), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    if isinstance(exc, DisallowedHost):
        message = "The Host header names a host this server does not answer to."
    elif isinstance(exc, TooManyFieldsSent):
        message = "Too many query or form parameters."
    else:
        message = "The request was refused as malformed."
    logger.warning("Refused a request: %s", exc)
    return error_body("BAD_REQUEST", message), status.HTTP_400_BAD_REQUEST


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400``: Django's refusals outside DRF views (a Host not in ALLOWED_HOSTS, for
    one) in the envelope rather than Django's HTML page."""
    if isinstance(exception, SuspiciousOperation):
        body, code = refusal(exception)
        return JsonResponse(body, status=code)
    return JsonResponse(
        error_body("BAD_REQUEST", "The request was refused as malformed."), status=400
    )


def json_permission_denied(
    request: HttpRequest, exception: Exception | None = None
) -> JsonResponse:
    return JsonResponse(
        error_body("FORBIDDEN", "You do not have permission to perform this action."),
        status=403,
    )


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404`` for URLs that match no route: the same envelope as the API's 404s."""
    return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."),
        status=500,
    )
