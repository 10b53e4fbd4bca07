"""``Prefer: return=minimal`` (RFC 7240) on the API's updates.

A client that sends it with a PUT or a PATCH gets ``204 No Content`` and
``Preference-Applied: return=minimal`` instead of ``200`` with the updated object, as the
integration-container API answers a PATCH; the change itself is made exactly as without it. Every
other preference (and ``return=representation``) leaves the answer as it is: RFC 7240 lets a
server ignore what it does not support.

It is one middleware rather than code in each view so that every PUT and PATCH of the API, of
any app, behaves alike; ``config.api.schema`` documents the header and the 204 on each of them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

API_PREFIX = "/api/"
UPDATE_METHODS = ("PUT", "PATCH")
PREFER_HEADER_DESCRIPTION = (
    "`return=minimal`: answer a successful update with 204 No Content (and "
    "`Preference-Applied: return=minimal`) instead of the updated object. Other preferences "
    "are ignored."
)
MINIMAL_RESPONSE_DESCRIPTION = "Updated; no body, as the request's `Prefer: return=minimal` asked."


def prefers_minimal(header: str) -> bool:
    """Whether a ``Prefer`` header value holds ``return=minimal`` (names are case-insensitive,
    values may be quoted, preferences may carry parameters after ``;``)."""
    for preference in header.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


class PreferReturnMinimalMiddleware:
    """Answers a successful API update 204 when the client prefers a minimal answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.method in UPDATE_METHODS
            and response.status_code == 200
            and request.path.startswith(API_PREFIX)
            and prefers_minimal(request.headers.get("Prefer", ""))
        ):
            response.status_code = 204
            response.content = b""
            for header in ("Content-Type", "Content-Length"):
                if response.has_header(header):
                    del response[header]
            response["Preference-Applied"] = "return=minimal"
        return response
