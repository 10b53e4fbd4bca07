"""Serializer base classes that speak the API's camelCase while models stay snake_case."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


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
    pass


class CamelSerializer(CamelCaseMixin, serializers.Serializer[Any]):
    pass


@extend_schema_field(OpenApiTypes.OBJECT)
class StrictJSONObjectField(serializers.JSONField):
    """A JSON value that must be an object (dict); user keys pass through unchanged."""

    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value


@extend_schema_field({"type": "array", "items": {}})
class StrictJSONListField(serializers.JSONField):
    default_error_messages = {"not_list": "Must be a JSON array."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, list):
            self.fail("not_list")
        return value
