"""``limit`` / ``offset`` pagination with the documented ``meta.pagination`` block."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.renderers import Enveloped

MAX_OFFSET = 2**62


def _parse_bound(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"Must be an integer, got {raw!r}."]}) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError({name: [f"Must be {bound}, got {value}."]})
    return value


class LimitOffsetEnvelopePagination(LimitOffsetPagination):
    default_limit = settings.API_PAGE_SIZE
    max_limit = settings.API_MAX_PAGE_SIZE

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        self.page_limit = _parse_bound(request, "limit", self.default_limit, 1, self.max_limit)
        # Bounded so that offset + limit still fits the database's 64-bit integers.
        self.page_offset = _parse_bound(request, "offset", 0, 0, MAX_OFFSET)
        self.count = self.get_count(queryset)
        return list(queryset[self.page_offset : self.page_offset + self.page_limit])

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            Enveloped(
                data=data,
                meta={
                    "pagination": {
                        "total": self.count,
                        "limit": self.page_limit,
                        "offset": self.page_offset,
                        "hasMore": self.page_offset + self.page_limit < (self.count or 0),
                    }
                },
            )
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": schema,
                "meta": {
                    "type": "object",
                    "properties": {
                        "pagination": {
                            "type": "object",
                            "properties": {
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "hasMore": {"type": "boolean"},
                            },
                        }
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "required": False,
                "in": "query",
                "description": (
                    f"Items per page (default {self.default_limit}, max {self.max_limit})."
                ),
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": "offset",
                "required": False,
                "in": "query",
                "description": "Items to skip (default 0).",
                "schema": {"type": "integer", "minimum": 0},
            },
        ]
