"""Serializer base classes that speak the API's camelCase while models stay snake_case."""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.datetimes import DateTimeField


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class CamelCaseMixin:
    """Exposes every snake_case field as camelCase (``dealership_id`` -> ``dealershipId``).

    Declared fields that are already camelCase are left alone; validation errors are keyed by
    the camelCase names, so clients see the names they sent.
    """

    def get_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().get_fields()  # type: ignore[misc]
        renamed: dict[str, Any] = {}
        for name, field in fields.items():
            public = camel(name)
            if public != name and field.source is None:
                field.source = name
            renamed[public] = field
        return renamed


class CamelModelSerializer(CamelCaseMixin, serializers.ModelSerializer[Any]):
    # Model date-times are accepted with the API's offset rule (config.api.datetimes).
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: DateTimeField,
    }


class CamelSerializer(CamelCaseMixin, serializers.Serializer[Any]):
    pass


# Free-form JSON a client stores with an object (a connection's config, an integration's settings,
# a flow's settings, an export's filter): at most this many characters as compact JSON. The body
# limit bounds a whole request; this keeps one stored document to a size every later reader (the
# worker, the template download, the admin) handles with ease.
JSON_FIELD_MAX_CHARS = 256 * 1024


def json_size_problem(value: Any, *, max_chars: int = JSON_FIELD_MAX_CHARS) -> str | None:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str))
    if size > max_chars:
        return f"Too large: {size} characters as JSON; at most {max_chars}."
    return None


class BoundedJSONField(serializers.JSONField):
    """A free-form JSON value of at most ``JSON_FIELD_MAX_CHARS`` characters."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        problem = json_size_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class StrictJSONObjectField(BoundedJSONField):
    """A JSON value that must be an object (dict); user keys pass through unchanged."""

    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value


@extend_schema_field({"type": "array", "items": {}})
class StrictJSONListField(BoundedJSONField):
    default_error_messages = {"not_list": "Must be a JSON array."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, list):
            self.fail("not_list")
        return value
