"""Request-level limits, checked before anything else reads the request.

- A body larger than ``API_MAX_BODY_BYTES`` is answered 413 PAYLOAD_TOO_LARGE without being read:
  at once when ``Content-Length`` announces it, and after at most one byte past the limit when
  the body comes chunked (WSGI gives a chunked body no length, and Django would otherwise read
  it as empty). A ``Content-Length`` smaller than the body only means less is read.
- A NUL character in the path, a query parameter (name or value) or a header value is answered
  400: PostgreSQL cannot compare or store it, so it could only fail deeper down.

Request bodies themselves (NUL, lone surrogates, nesting depth) are checked by the JSON parser
(``config.api.parsers``), the one place every body is decoded.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.api.errors import error_body, payload_too_large_body
from config.api.parsers import printable

# Read in pieces so a chunked body is never held beyond the limit plus one piece.
_READ_SIZE = 64 * 1024


def payload_too_large() -> JsonResponse:
    return JsonResponse(payload_too_large_body(), status=413)


def _nul_problem(request: HttpRequest) -> tuple[str, str] | None:
    """``(where, message)`` for the first NUL character in the path, a query parameter or a
    header; ``where`` is the parameter's or the header's name."""
    if "\x00" in request.path:
        return "path", "The URL path must not contain NUL (%00) characters."
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return printable(name), "Must not contain NUL (%00) characters."
    for key, value in request.META.items():
        if key.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
            return key[5:].replace("_", "-").title(), "Must not contain NUL characters."
    return None


def _read_chunked_body(request: HttpRequest, limit: int) -> bytes | None:
    """The whole chunked body, or None when it is longer than ``limit``."""
    stream = request.META["wsgi.input"]
    pieces: list[bytes] = []
    size = 0
    while size <= limit:
        piece = stream.read(min(_READ_SIZE, limit + 1 - size))
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)
        size += len(piece)
    return None


class RequestLimitsMiddleware:
    """First in ``MIDDLEWARE``: the limits above, answered in the API's error envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        limit: int = settings.API_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return payload_too_large()
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not length and "wsgi.input" in request.META:
            body = _read_chunked_body(request, limit)
            if body is None:
                return payload_too_large()
            # From here on the request looks as if it had come with its length.
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = io.BytesIO(body)
        problem = _nul_problem(request)
        if problem is not None:
            where, message = problem
            return JsonResponse(
                error_body(
                    "VALIDATION_ERROR",
                    "The request is invalid; see details for each field.",
                    {where: [message]},
                ),
                status=400,
            )
        return self.get_response(request)
