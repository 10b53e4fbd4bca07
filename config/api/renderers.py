"""The ``{"data": ...}`` envelope, applied once for every successful response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer


class Enveloped(dict[str, Any]):
    """A response body that is already in its final envelope (paginated lists)."""


def envelope(data: Any, response: Any) -> Any:
    if response is None or response.status_code >= 400 or response.status_code == 204:
        return data
    if isinstance(data, Enveloped) or data is None:
        return data
    return {"data": data}


class EnvelopeJSONRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        response = (renderer_context or {}).get("response")
        return super().render(envelope(data, response), accepted_media_type, renderer_context)


class EnvelopeBrowsableAPIRenderer(BrowsableAPIRenderer):
    def get_default_renderer(self, view: Any) -> EnvelopeJSONRenderer:
        return EnvelopeJSONRenderer()
