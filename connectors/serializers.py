"""HTTP shapes of the catalog and of connections.

Connections have an input serializer (what a client may send) and an output serializer (what the
API answers): ``credentials`` exists only on the way in, and ``status`` ERROR only on the way out.
"""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import (
    JSON_FIELD_MAX_CHARS,
    CamelModelSerializer,
    CamelSerializer,
    StrictJSONObjectField,
    json_size_problem,
)
from connectors.choices import ConnectionStatus, ConnectorCategory, ConnectorStatus, SyncMode
from connectors.models import Connection


class ConnectorSerializer(CamelSerializer):
    """A catalog entry: what the connector is and the JSON Schemas a connection must satisfy."""

    connectorId = serializers.CharField(source="id", read_only=True)
    name = serializers.CharField(read_only=True)
    category = serializers.ChoiceField(choices=ConnectorCategory.choices, read_only=True)
    status = serializers.ChoiceField(choices=ConnectorStatus.choices, read_only=True)
    description = serializers.CharField(read_only=True)
    features = serializers.ListField(child=serializers.CharField(), read_only=True)
    entities = serializers.ListField(child=serializers.CharField(), read_only=True)
    sync_modes = serializers.ListField(
        child=serializers.ChoiceField(choices=SyncMode.choices), read_only=True
    )
    config_schema = serializers.DictField(
        read_only=True, help_text="JSON Schema of a connection's config."
    )
    credentials_schema = serializers.DictField(
        read_only=True, help_text="JSON Schema of a connection's credentials."
    )
    secret_fields = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Credential keys; stored encrypted and never returned.",
    )
    is_source = serializers.BooleanField(
        read_only=True,
        help_text="Its entities can be read (a connection sync, an integration's source).",
    )
    is_destination = serializers.BooleanField(
        read_only=True, help_text="Records can be written to it (an integration's destination)."
    )
    custom = serializers.BooleanField(
        read_only=True,
        help_text="Registered by this account from its own manifest (listed for it alone); "
        "false for the connectors Railyard ships.",
    )
    manifest = serializers.DictField(
        read_only=True,
        allow_null=True,
        help_text="The manifest that describes the connector, as JSON: an account's own "
        "connector, or one Railyard ships as a manifest; null for connectors written in code.",
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": True},
            {"type": "string", "minLength": 1, "maxLength": JSON_FIELD_MAX_CHARS},
        ]
    }
)
class ManifestField(serializers.Field):
    """A connector manifest as a JSON object, or as its YAML or JSON text; checked by the
    service (``connectors.services.custom_manifest_read``), which reports each field."""

    default_error_messages = {
        "invalid": "Must be a connector manifest: a JSON object, or its YAML or JSON text."
    }

    def to_internal_value(self, data: Any) -> dict[str, Any] | str:
        if isinstance(data, dict):
            if problem := json_size_problem(data):
                raise serializers.ValidationError(problem)
            return data
        if isinstance(data, str) and data.strip():
            if len(data) > JSON_FIELD_MAX_CHARS:
                raise serializers.ValidationError(
                    f"Too long: {len(data)} characters; at most {JSON_FIELD_MAX_CHARS}."
                )
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class CustomConnectorInputSerializer(CamelSerializer):
    """What an account sends to register its own connector, or to replace its manifest."""

    manifest = ManifestField(
        help_text="The connector manifest, as a JSON object or as YAML or JSON text, in the "
        "format of the manifests Railyard ships (the `manifest` of "
        "GET /api/v1/integrations/connectors/shopify is one). Its `id` becomes the connectorId: "
        "not one Railyard ships, not one the account has already, and unchanged when "
        "replacing. The connector is listed BETA whatever its `status` says."
    )


class ConnectorQuerySerializer(serializers.Serializer):
    """Query parameters of the catalog list."""

    category = serializers.ChoiceField(
        choices=ConnectorCategory.choices, required=False, help_text="Only this category."
    )


class ConnectionSerializer(CamelModelSerializer):
    """A connection as the API shows it; credentials appear only as the keys that are set."""

    connectionId = serializers.UUIDField(source="id", read_only=True)
    config = serializers.DictField(read_only=True)
    credential_keys = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Sorted keys of the credentials that are set; their values are never returned.",
    )

    class Meta:
        model = Connection
        fields = [
            "connectionId",
            "connector_id",
            "name",
            "status",
            "config",
            "credential_keys",
            "last_sync_at",
            "next_sync_at",
            "last_tested_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConnectionInputSerializer(CamelSerializer):
    """What a client sends to create (connectorId and name required) or update a connection."""

    connector_id = serializers.CharField(max_length=64, help_text="A connector id of the catalog.")
    name = serializers.CharField(max_length=200)
    status = serializers.ChoiceField(
        choices=[
            (value, label)
            for value, label in ConnectionStatus.choices
            if value != ConnectionStatus.ERROR
        ],
        required=False,
        help_text="ERROR is set by the platform, never by a client.",
    )
    config = StrictJSONObjectField(
        required=False, help_text="Connector settings, validated against its configSchema."
    )
    credentials = StrictJSONObjectField(
        required=False,
        write_only=True,
        help_text=(
            "Secrets, validated against the connector's credentialsSchema and stored encrypted. "
            "A value may be an environment reference such as ${STRIPE_API_KEY}, resolved only "
            "when the connection is used."
        ),
    )


class ConnectionTestResultSerializer(CamelSerializer):
    """What a connection test found; ``error`` is present only when it failed."""

    success = serializers.BooleanField(read_only=True)
    latency = serializers.IntegerField(read_only=True, help_text="Milliseconds the test took.")
    version = serializers.CharField(
        read_only=True, allow_null=True, help_text="The remote system's version, when known."
    )
    permissions = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text='What the credentials allow, e.g. ["read", "write"].',
    )
    # Not read_only: the schema would then mark it required, and a success answers without it.
    error = serializers.CharField(
        required=False, help_text="Why the test failed, readable by a person; only on failure."
    )


class DiscoveredFieldSerializer(CamelSerializer):
    name = serializers.CharField(read_only=True)
    type = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="JSON Schema type: string, integer, number, boolean, object or array; null "
        "when the source does not say.",
    )
    nullable = serializers.BooleanField(read_only=True)


class DiscoveredEntitySerializer(CamelSerializer):
    """An entity the connection's source offers."""

    name = serializers.CharField(read_only=True)
    primaryKey = serializers.ListField(child=serializers.CharField(), read_only=True)
    cursorField = serializers.CharField(
        read_only=True, allow_null=True, help_text="What incremental reads go by; null if none."
    )
    syncModes = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="FULL, INCREMENTAL (entities with a cursor field) and SNAPSHOT, as the "
        "connector supports them.",
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Declared here: a class attribute named "fields" reads like the serializer's own.
        return {
            **super().get_fields(),
            "fields": DiscoveredFieldSerializer(many=True, read_only=True),
        }
