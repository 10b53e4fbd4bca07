import uuid
from typing import Any

from rest_framework import serializers

from accounts.choices import ApiKeyScope
from accounts.models import ApiKey, AuditEntry, Dealership, Event
from accounts.services import DEALERSHIP_FIELDS
from config.api.serializers import CamelModelSerializer, camel


class DealershipSerializer(CamelModelSerializer):
    class Meta:
        model = Dealership
        fields = ["id", "account_id", *DEALERSHIP_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "account_id", "created_at", "updated_at"]


class ApiKeySerializer(CamelModelSerializer):
    """An API key as listed: never its secret. Name and scope are fixed at creation."""

    prefix = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["id", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields

    def get_prefix(self, api_key: ApiKey) -> str:
        return f"ry_{api_key.prefix}_"


class ApiKeyCreateSerializer(CamelModelSerializer):
    """What a client sends to create an API key."""

    scope = serializers.ChoiceField(
        choices=ApiKeyScope.choices,
        default=ApiKeyScope.WRITE,
        help_text=(
            "What the key may do; each scope includes the ones before it. `read`: GET, HEAD and "
            "OPTIONS only. `write`: also create, change and delete resources. `admin`: also "
            "list, create and revoke the account's API keys. Default `write`."
        ),
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scope"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The whole key. Shown only once.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class AuditEntrySerializer(CamelModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "integration_id",
            "resource_type",
            "resource_id",
            "action",
            "actor",
            "changes",
            "created_at",
        ]
        read_only_fields = fields

    def get_actor(self, entry: AuditEntry) -> dict[str, str]:
        return {"type": entry.actor_type, "id": entry.actor_id, "name": entry.actor_name}

    def to_representation(self, instance: AuditEntry) -> dict[str, Any]:
        # Changes are kept by model field (sync_settings); the API names fields camelCase.
        data = super().to_representation(instance)
        data["changes"] = {camel(name): change for name, change in (instance.changes or {}).items()}
        return data


class EventSerializer(CamelModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "type", "integration_id", "payload", "created_at"]
        read_only_fields = fields


class TenantPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A reference by id to an object of the request's account; anything else is 'not found'.

    The serializer's context must hold ``account``. ``queryset`` is the unscoped queryset.
    """

    default_error_messages = {
        "does_not_exist": 'No object with id "{pk_value}" in this account.',
        "incorrect_type": "Must be an id (UUID), not {data_type}.",
    }

    def get_queryset(self) -> Any:
        queryset = super().get_queryset()
        assert queryset is not None, "a TenantPrimaryKeyRelatedField needs a queryset"
        account = self.context.get("account")
        return queryset.filter(account=account) if account is not None else queryset.none()

    def to_internal_value(self, data: Any) -> Any:
        try:
            uuid.UUID(str(data))
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)
