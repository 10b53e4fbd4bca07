"""``sort=field:asc|desc[,field:dir...]`` on list endpoints.

A view declares ``sort_fields`` (public name -> model field; snake_case and camelCase spellings
both accepted) and ``default_sort``.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import F, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from config.api.serializers import camel


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class SortFilter(BaseFilterBackend):
    param = "sort"

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        fields: dict[str, str] = getattr(view, "sort_fields", {})
        default: list[str] = list(getattr(view, "default_sort", ["-created_at"]))
        raw = request.query_params.get(self.param)
        if not raw or not fields:
            return queryset.order_by(*default, "pk") if default else queryset
        ordering = []
        for part in raw.split(","):
            name, _, direction = part.strip().partition(":")
            field = fields.get(_snake(name))
            direction = direction or "asc"
            if field is None or direction not in ("asc", "desc"):
                allowed = ", ".join(sorted(fields))
                raise ValidationError(
                    {
                        self.param: [
                            f"Unknown sort {part!r}; use field:asc|desc with one of: {allowed}."
                        ]
                    }
                )
            expr = F(field)
            ordering.append(
                expr.desc(nulls_last=True) if direction == "desc" else expr.asc(nulls_last=True)
            )
        return queryset.order_by(*ordering, "pk")

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        fields = sorted(getattr(view, "sort_fields", {}))
        if not fields:
            return []
        names = sorted({*fields, *(camel(field) for field in fields)})
        one = f"({'|'.join(re.escape(name) for name in names)})(:(asc|desc))?"
        return [
            {
                "name": self.param,
                "required": False,
                "in": "query",
                "description": "Sort as field:asc|desc, comma-separated. Fields: "
                + ", ".join(fields),
                "schema": {"type": "string", "pattern": f"^{one}(,{one})*$"},
            }
        ]
