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


# --- JSON documents a client sends inside a resource -------------------------------------------
#
# Parts of a resource that are JSON objects of their own (an integration's schedule, sync settings
# and config, a file import's file options and mapping) are serializers, not free JSON checked by
# hand: the same declaration validates a request and documents it in the OpenAPI schema, so the
# two cannot disagree. The fields below are strict about JSON types, as the schema states them
# (a string "5" is not the integer 5, "yes" is not true), and each answers one message naming
# what is expected; nested errors reach the client under their full path
# (``syncSettings.soldGraceSyncs``, ``mapping.fields[2].extract``).


def _messages(message: str | None, *keys: str, **kwargs: Any) -> dict[str, Any]:
    """``kwargs`` with ``message`` as the error message of each of ``keys`` (unless given)."""
    if message is not None:
        kwargs["error_messages"] = {
            **dict.fromkeys(keys, message),
            **kwargs.get("error_messages", {}),
        }
    return kwargs


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: ``true`` or ``false``, not ``"yes"``, ``1`` or ``"true"``."""

    default_error_messages = {"invalid": "Must be true or false.", "null": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a string, a float or a boolean); ``message`` answers every miss."""

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            **_messages(message, "invalid", "min_value", "max_value", "null", **kwargs)
        )

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictNumberField(serializers.FloatField):
    """A JSON number, kept as sent (an integer stays one); ``message`` answers every miss."""

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            **_messages(message, "invalid", "min_value", "max_value", "null", **kwargs)
        )

    def to_internal_value(self, data: Any) -> float:
        if not isinstance(data, (int, float)) or isinstance(data, bool) or data != data:
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string, kept exactly as sent (no trimming); a number is not one.

    ``message`` answers a missing, null, blank or non-string value; ``require_text`` refuses a
    string of spaces as blank.
    """

    default_error_messages = {
        "invalid": "Must be a string.",
        "max_length": "At most {max_length} characters.",
    }

    def __init__(
        self, *, message: str | None = None, require_text: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**_messages(message, "required", "null", "blank", "invalid", **kwargs))
        self.require_text = require_text

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.require_text and not data.strip():
            self.fail("blank")
        return data


class StrictChoiceField(serializers.ChoiceField):
    """One of the choices, compared as sent; the answer lists them."""

    def __init__(self, *, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        listed = ", ".join(str(choice) for choice in self.choices)
        default = f"Must be one of: {listed}."
        self.error_messages.update(invalid_choice=message or default, null=message or default)

    def to_internal_value(self, data: Any) -> Any:
        # ChoiceField would take the integer 1 for the choice "1"; the schema says string.
        if data == "" and self.allow_blank:
            return ""
        if not isinstance(data, str) or data not in self.choices:
            self.fail("invalid_choice", input=data)
        return data


class JSONDocumentListSerializer(serializers.ListSerializer[Any]):
    """A JSON array of documents; answers the stored array as it is."""

    default_error_messages = {"not_a_list": "Must be a JSON array."}
    max_chars: int | None = None

    def to_internal_value(self, data: Any) -> list[Any]:
        problem = (
            json_size_problem(data, max_chars=self.max_chars)
            if isinstance(data, list) and self.max_chars is not None
            else None
        )
        if problem:
            raise serializers.ValidationError([problem])
        return list(super().to_internal_value(data))

    def to_representation(self, data: Any) -> Any:
        return data


class JSONDocumentSerializer(serializers.Serializer[Any]):
    """A JSON object a client stores: the declared keys are validated, any other key is kept as
    sent (user JSON passes through), and the answer is the stored document.

    ``max_chars`` bounds the whole document, as ``BoundedJSONField`` does a free one; inner
    documents set it to None (their outer document is bounded).
    """

    default_error_messages = {"invalid": "Must be a JSON object."}
    max_chars: int | None = JSON_FIELD_MAX_CHARS

    def run_validation(self, data: Any = serializers.empty) -> Any:
        if data is not serializers.empty and getattr(self.root, "partial", False):
            # A PATCH replaces a document as a whole: it is checked as one of its own (required
            # keys, defaults filled in), not as a partial update of itself, which DRF would make
            # of every field under a partial root.
            whole = type(self)(data=data, context=self.context)
            whole.is_valid(raise_exception=True)
            return whole.validated_data
        return super().run_validation(data)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        problem = (
            json_size_problem(data, max_chars=self.max_chars)
            if isinstance(data, dict) and self.max_chars is not None
            else None
        )
        if problem:
            raise serializers.ValidationError([problem])
        validated = super().to_internal_value(data)
        return {**data, **validated}

    def to_representation(self, instance: Any) -> Any:
        return instance

    class Meta:
        list_serializer_class = JSONDocumentListSerializer


class StrictKeysSerializer(CamelSerializer):
    """A JSON object with a fixed set of keys (a block of settings such as ``syncSettings``).

    Keys are accepted in camelCase or snake_case (the documents spell them both ways). An unknown
    key, or one key sent in both spellings with different values, is refused; every error names
    the key as the client sent it.
    """

    default_error_messages = {"invalid": "Must be a JSON object."}
    unknown_key_message = "Unknown key; known keys: {known}."

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            return dict(super().to_internal_value(data))  # the "Must be a JSON object." answer
        writable = [name for name, field in self.fields.items() if not field.read_only]
        unknown = self.unknown_key_message.format(known=", ".join(writable))
        errors: dict[str, Any] = {}
        values: dict[str, Any] = {}
        sent_as: dict[str, str] = {}
        for key, value in data.items():
            name = camel(snake(str(key)))
            if name not in writable:
                errors[str(key)] = [unknown]
            elif name not in sent_as:
                values[name], sent_as[name] = value, str(key)
            elif values[name] != value:
                errors[str(key)] = [f"Conflicts with {sent_as[name]!r}."]
        try:
            validated: dict[str, Any] = dict(super().to_internal_value(values))
        except serializers.ValidationError as exc:
            # Serializer.to_internal_value reports a dict: field name -> its messages.
            detail: dict[str, Any] = exc.detail  # type: ignore[assignment]
            errors.update({sent_as.get(name, name): problem for name, problem in detail.items()})
            validated = {}
        if errors:
            raise serializers.ValidationError(errors)
        return validated

    @property
    def merge_base(self) -> Any:
        """The stored object a PATCH merges the sent keys into; None for a POST or PUT."""
        parent = self.parent
        return parent.instance if parent is not None and parent.partial else None
