"""HTTP shapes of webhook endpoints, their deliveries and attempts, and the event catalog."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.choices import EventType
from config.api.datetimes import DateTimeField
from config.api.serializers import (
    CamelModelSerializer,
    CamelSerializer,
    StrictBooleanField,
    StrictCharField,
)
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, event_type_matches

MAX_EVENT_PATTERNS = 100
MAX_INTEGRATION_IDS = 100


def deliverable_event_types() -> list[str]:
    """Every event type an endpoint can subscribe to."""
    return list(EventType.values)


class EventPatternField(StrictCharField):
    """An event type, ``prefix.*`` or ``*``; a pattern that matches no event type is refused."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        known = deliverable_event_types()
        if value in known or value == "*":
            return value
        if "*" in value[:-1] or (value.endswith("*") and not value.endswith(".*")):
            raise serializers.ValidationError(
                "Wildcards are `*` alone or a trailing `.*` (integration.sync.*)."
            )
        if value.endswith(".*") and any(event_type_matches(value, kind) for kind in known):
            return value
        raise serializers.ValidationError(
            f"{value!r} is no event type; GET /api/v1/webhooks/event-types lists them."
        )


class WebhookSerializer(CamelModelSerializer):
    """An endpoint as the API shows it and takes it; the secret is never shown here."""

    url = serializers.URLField(
        max_length=2000,
        help_text="https:// (http:// too when the operator sets WEBHOOK_ALLOW_HTTP); the host "
        "must pass the egress policy, now and at every delivery.",
    )
    description = StrictCharField(max_length=500, required=False, allow_blank=True)
    events = serializers.ListField(
        child=EventPatternField(max_length=100),
        min_length=1,
        max_length=MAX_EVENT_PATTERNS,
        help_text="Event types, `prefix.*` wildcards (integration.sync.*) or `*` for all.",
    )
    integration_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=MAX_INTEGRATION_IDS,
        help_text="Only events of these integrations of the account (events of no integration, "
        "such as a connection's or webhook.disabled, still pass); empty or absent for all.",
    )
    is_active = StrictBooleanField(
        required=False,
        help_text="false stops deliveries: those already queued wait, pending, and true again "
        "resumes them; events that happen meanwhile are not queued for this endpoint "
        "(`POST .../replay?since=` sends them afterwards).",
    )
    ordered = StrictBooleanField(
        required=False,
        help_text="Deliver the events of one integration in the order they happened (default). "
        "false sends them independently, for throughput.",
    )
    previous_secret_expires_at = DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="After a rotation, until when the previous secret signs too.",
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "description",
            "events",
            "integration_ids",
            "is_active",
            "ordered",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["disabled_at", "disabled_reason", "failing_since"]

    def validate_events(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookWithSecretSerializer(WebhookSerializer):
    """An endpoint just created, or whose secret was just rotated: the secret, shown once."""

    secret = serializers.CharField(
        read_only=True,
        help_text="Signing secret (Standard Webhooks: whsec_ + base64). Shown once; keep it.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(CamelModelSerializer):
    response_body = serializers.CharField(
        source="response_excerpt", read_only=True, help_text="The first 2 kB of the answer."
    )

    class Meta:
        model = WebhookAttempt
        fields = [
            "attempted_at",
            "trigger",
            "status_code",
            "latency_ms",
            "response_body",
            "error",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(CamelModelSerializer):
    webhook_id = serializers.UUIDField(read_only=True)
    event_id = serializers.UUIDField(
        source="message_id",
        read_only=True,
        help_text="The event's id: the `webhook-id` header of every attempt.",
    )
    event_type = serializers.CharField(source="message.event_type", read_only=True)
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "webhook_id",
            "event_id",
            "event_type",
            "integration_id",
            "trigger",
            "status",
            "ordered",
            "attempt_count",
            "next_attempt_at",
            "delivered_at",
            "last_status_code",
            "last_error",
            "created_at",
            "attempts",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.SerializerMethodField(help_text="The body sent, as JSON.")

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_payload(self, delivery: WebhookDelivery) -> Any:
        return json.loads(delivery.message.body)


class WebhookTestResultSerializer(CamelSerializer):
    """The attempt of a test send."""

    delivery_id = serializers.IntegerField()
    event_id = serializers.UUIDField()
    delivered = serializers.BooleanField(help_text="The endpoint answered 2xx.")
    attempted_at = DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    response_body = serializers.CharField(
        allow_blank=True, help_text="The first 2 kB of the answer."
    )
    error = serializers.CharField(
        allow_blank=True, help_text="Why there was no answer; empty otherwise."
    )


class EventTypeSerializer(CamelSerializer):
    type = serializers.CharField()
    description = serializers.CharField()


class ReplayQuerySerializer(CamelSerializer):
    since = DateTimeField(help_text="ISO 8601; events at or after it are sent again.")


class ReplayResultSerializer(CamelSerializer):
    since = DateTimeField()
    queued = serializers.IntegerField(help_text="Deliveries queued.")
