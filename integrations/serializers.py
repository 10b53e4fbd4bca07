"""HTTP representations of integrations, file imports, flows, revisions and shares."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from accounts.models import Dealership, User
from accounts.serializers import TenantPrimaryKeyRelatedField
from config.api.serializers import (
    BoundedJSONField,
    CamelModelSerializer,
    CamelSerializer,
    StrictJSONListField,
    StrictJSONObjectField,
)
from connectors.models import Connection
from integrations import validators
from integrations.choices import (
    DataType,
    FrequencyUnit,
    IntegrationState,
    IntegrationStatus,
    ShareAccessLevel,
    SyncStrategy,
)
from integrations.models import FileImport, Flow, Integration, IntegrationShare, Revision

# --- composite fields ------------------------------------------------------------------------


class _MergingField(serializers.Field):
    """A JSON part that a PATCH merges into the stored value and a PUT or POST replaces."""

    @property
    def base_instance(self) -> Any:
        parent = self.parent
        return parent.instance if parent is not None and parent.partial else None


# Every key is optional on the way in (a PATCH merges the keys it sends); the answer always
# holds the first four and never runNow.
@extend_schema_field(
    inline_serializer(
        "Schedule",
        {
            "frequencyValue": serializers.IntegerField(
                allow_null=True, min_value=1, max_value=10_000, required=False
            ),
            "frequencyUnit": serializers.ChoiceField(
                choices=FrequencyUnit.choices, allow_null=True, required=False
            ),
            "rollingWindowDays": serializers.IntegerField(
                min_value=0, max_value=3650, required=False
            ),
            "oneOff": serializers.BooleanField(required=False),
            "runNow": serializers.BooleanField(
                write_only=True,
                required=False,
                help_text="Make the integration due now (nextRunAt = now); never answered.",
            ),
        },
    )
)
class ScheduleField(_MergingField):
    """``schedule``: frequencyValue + frequencyUnit, rollingWindowDays, oneOff, runNow.

    snake_case keys (``frequency_value``) are accepted too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", **kwargs)

    def to_representation(self, integration: Integration) -> dict[str, Any]:
        return {
            "frequencyValue": integration.frequency_value,
            "frequencyUnit": integration.frequency_unit or None,
            "rollingWindowDays": integration.rolling_window_days,
            "oneOff": integration.one_off,
        }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        instance = self.base_instance
        base = (
            {
                "frequency_value": instance.frequency_value,
                "frequency_unit": instance.frequency_unit,
                "rolling_window_days": instance.rolling_window_days,
                "one_off": instance.one_off,
            }
            if instance is not None
            else None
        )
        return {"schedule": validators.normalize_schedule(data, base=base)}


# Every key is optional on the way in; the answer holds them all.
@extend_schema_field(
    inline_serializer(
        "SyncSettings",
        {
            "strategy": serializers.ChoiceField(choices=SyncStrategy.choices, required=False),
            "soldGraceSyncs": serializers.IntegerField(min_value=0, max_value=1000, required=False),
            "soldGraceHours": serializers.FloatField(min_value=0, max_value=8784, required=False),
            "trackHistory": serializers.BooleanField(required=False),
            "minRowsRatio": serializers.FloatField(min_value=0, max_value=1, required=False),
            "maxErrorRatio": serializers.FloatField(min_value=0, max_value=1, required=False),
        },
    )
)
class SyncSettingsField(_MergingField):
    """``syncSettings``; the documented snake_case keys (``sold_grace_syncs``) are accepted too."""

    def to_representation(self, stored: dict[str, Any]) -> dict[str, Any]:
        return validators.present_sync_settings(stored)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        instance = self.base_instance
        return validators.normalize_sync_settings(
            data, base=instance.sync_settings if instance is not None else None
        )


@extend_schema_field(
    inline_serializer(
        "IntegrationConfig",
        {
            "global": serializers.DictField(),
            "tasks": serializers.ListField(child=serializers.DictField()),
        },
    )
)
class ConfigField(BoundedJSONField):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return validators.normalize_config(super().to_internal_value(data))


@extend_schema_field(serializers.ListField(child=serializers.DictField()))
class StepsField(BoundedJSONField):
    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        return validators.normalize_steps(
            super().to_internal_value(data), field=self.field_name or "steps"
        )


@extend_schema_field(
    serializers.ChoiceField(
        choices=IntegrationStatus.choices,
        help_text="Set by runs. Writing active or inactive sets state (the feed API's wording).",
    )
)
class StatusField(serializers.Field):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, integration: Integration) -> str:
        return integration.status

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if data not in IntegrationState.values:
            raise serializers.ValidationError(
                "status is set by runs; only active or inactive may be written (they set state)."
            )
        return {"state": data}


class ConnectionAttributeField(serializers.CharField):
    """One attribute of the integration's source or destination connection; null without one.

    Not ``source="source_connection.name", default=None``: DRF skips a field's default in the
    answer to a PATCH, so the key would be missing there.
    """

    def __init__(self, *, attribute: str, **kwargs: Any) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)
        self.attribute = attribute

    def to_representation(self, connection: Any) -> str:
        return str(getattr(connection, self.attribute))


# --- integrations ------------------------------------------------------------------------------


class IntegrationSerializer(CamelModelSerializer):
    dealershipId = TenantPrimaryKeyRelatedField(
        source="dealership", queryset=Dealership.objects.all(), required=False, allow_null=True
    )
    sourceAppId = TenantPrimaryKeyRelatedField(
        source="source_connection",
        queryset=Connection.objects.all(),
        required=False,
        allow_null=True,
    )
    sourceAppName = ConnectionAttributeField(source="source_connection", attribute="name")
    sourceAppType = ConnectionAttributeField(source="source_connection", attribute="connector_id")
    destinationAppId = TenantPrimaryKeyRelatedField(
        source="destination_connection",
        queryset=Connection.objects.all(),
        required=False,
        allow_null=True,
    )
    destinationAppName = ConnectionAttributeField(source="destination_connection", attribute="name")
    destinationAppType = ConnectionAttributeField(
        source="destination_connection", attribute="connector_id"
    )
    dataType = serializers.ChoiceField(source="data_type", choices=DataType.choices, required=False)
    type = serializers.CharField(required=False, max_length=64)
    name = serializers.CharField(required=False, max_length=200)
    config = ConfigField(required=False)
    schedule = ScheduleField(required=False)
    syncSettings = SyncSettingsField(source="sync_settings", required=False)
    status = StatusField()
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    lastError = serializers.SerializerMethodField()
    dependsOn = TenantPrimaryKeyRelatedField(
        source="depends_on", queryset=Integration.objects.all(), many=True, required=False
    )
    settings = StrictJSONObjectField(required=False)
    flowGroupings = StrictJSONListField(source="flow_groupings", required=False)
    aliases = BoundedJSONField(required=False)
    installSteps = StepsField(source="install_steps", required=False)
    uninstallSteps = StepsField(source="uninstall_steps", required=False)

    class Meta:
        model = Integration
        fields = [
            "id",
            "account_id",
            "dealershipId",
            "name",
            "type",
            "sourceAppId",
            "sourceAppName",
            "sourceAppType",
            "destinationAppId",
            "destinationAppName",
            "destinationAppType",
            "dataType",
            "config",
            "schedule",
            "next_run_at",
            "historical_sync_start_date",
            "syncSettings",
            "state",
            "status",
            "isActive",
            "last_sync_at",
            "lastError",
            "consecutive_failures",
            "latest_job_id",
            "import_dependency_status",
            "dependsOn",
            "settings",
            "version",
            "tag",
            "update_in_progress",
            "flowGroupings",
            "aliases",
            "installSteps",
            "uninstallSteps",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "account_id",
            "next_run_at",
            "last_sync_at",
            "consecutive_failures",
            "latest_job_id",
            "import_dependency_status",
            "created_at",
            "updated_at",
        ]

    def get_lastError(self, integration: Integration) -> str | None:
        return integration.last_error or None

    def validate_aliases(self, value: Any) -> Any:
        if not isinstance(value, (list, dict)):
            raise serializers.ValidationError("Must be a JSON array or object.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        state = self.initial_data.get("state") if isinstance(self.initial_data, dict) else None
        status = self.initial_data.get("status") if isinstance(self.initial_data, dict) else None
        if state and status and state != status:
            raise serializers.ValidationError(
                {"status": ["Conflicts with state; send one of them."]}
            )
        return attrs


class IntegrationCreatedSerializer(IntegrationSerializer):
    """The create (and clone) answer: the integration, plus the SFTP login of a feed type."""

    sftp = inline_serializer(
        "SftpLogin",
        {
            "host": serializers.CharField(),
            "port": serializers.IntegerField(),
            "username": serializers.CharField(),
            "password": serializers.CharField(help_text="Shown only in this response."),
        },
        required=False,
        help_text="For vauto, homenet, elead and custom integrations: the partner's SFTP login.",
    )

    class Meta(IntegrationSerializer.Meta):
        fields = [*IntegrationSerializer.Meta.fields, "sftp"]


class CloneSerializer(CamelSerializer):
    name = serializers.CharField(required=False, max_length=200, help_text="Name of the copy.")


class RevisionCreateSerializer(CamelSerializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)


class RevisionSerializer(CamelModelSerializer):
    createdBy = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = [
            "id",
            "integration_id",
            "number",
            "description",
            "content_hash",
            "createdBy",
            "created_at",
        ]
        read_only_fields = fields

    def get_createdBy(self, revision: Revision) -> dict[str, str]:
        return {"type": revision.actor_type, "name": revision.actor_name}


class RevisionDetailSerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = [*RevisionSerializer.Meta.fields, "snapshot"]
        read_only_fields = fields


class StepSubmitSerializer(CamelSerializer):
    step = serializers.CharField(
        required=False, max_length=200, help_text="Name of the step; defaults to the next one."
    )
    formData = StrictJSONObjectField(required=False)
    connectionId = TenantPrimaryKeyRelatedField(
        queryset=Connection.objects.all(), required=False, allow_null=True
    )


class StepsDocumentSerializer(CamelSerializer):
    steps = serializers.ListField(child=serializers.DictField())
    currentStep = serializers.CharField(allow_null=True)
    completed = serializers.BooleanField()


class ShareSerializer(CamelModelSerializer):
    userId: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        source="user", read_only=True
    )
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = IntegrationShare
        fields = [
            "id",
            "integration_id",
            "userId",
            "username",
            "email",
            "access_level",
            "created_at",
        ]
        read_only_fields = ["id", "integration_id", "created_at"]


class ShareCreateSerializer(CamelSerializer):
    email = serializers.EmailField(required=False, max_length=254)
    userId = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    accessLevel = serializers.ChoiceField(
        choices=ShareAccessLevel.choices, default=ShareAccessLevel.MONITOR
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        account = self.context["account"]
        users = User.objects.filter(account=account, is_active=True)
        if "userId" in attrs:
            user = users.filter(pk=attrs["userId"]).first()
        elif "email" in attrs:
            user = users.filter(email__iexact=attrs["email"]).first()
        else:
            raise serializers.ValidationError({"email": ["Give the email or userId of a user."]})
        if user is None:
            raise serializers.ValidationError(
                {"email" if "email" in attrs else "userId": ["No such user in this account."]}
            )
        return {"user": user, "access_level": attrs["accessLevel"]}


class TemplateLinkSerializer(serializers.Serializer):
    signedURL = serializers.URLField()
    key = serializers.CharField()
    expiresAt = serializers.DateTimeField()


# --- file imports and flows --------------------------------------------------------------------


class _JSONPartField(BoundedJSONField):
    normalize: Any = None

    def to_internal_value(self, data: Any) -> Any:
        return type(self).normalize(super().to_internal_value(data))


@extend_schema_field(OpenApiTypes.OBJECT)
class ImportFileField(_JSONPartField):
    normalize = staticmethod(validators.normalize_import_file)


@extend_schema_field(OpenApiTypes.OBJECT)
class ImportFtpField(_JSONPartField):
    normalize = staticmethod(validators.normalize_import_ftp)


@extend_schema_field(
    inline_serializer(
        "ImportMapping",
        {
            "fields": serializers.ListField(
                required=False,
                child=inline_serializer(
                    "ImportMappingField",
                    {
                        "extract": serializers.CharField(
                            max_length=validators.MAPPING_NAME_MAX_LENGTH
                        ),
                        "generate": serializers.CharField(
                            max_length=validators.MAPPING_NAME_MAX_LENGTH
                        ),
                    },
                ),
            )
        },
    )
)
class ImportMappingField(_JSONPartField):
    normalize = staticmethod(validators.normalize_import_mapping)


class FileImportSerializer(CamelModelSerializer):
    """A file import: file format, FTP location, field mapping. ``_connectionId`` and
    ``_integrationId`` are accepted as aliases of ``connectionId`` and ``integrationId``."""

    integrationId = TenantPrimaryKeyRelatedField(
        source="integration", queryset=Integration.objects.all(), required=False, allow_null=True
    )
    connectionId = TenantPrimaryKeyRelatedField(
        source="connection", queryset=Connection.objects.all(), required=False, allow_null=True
    )
    file = ImportFileField(required=False)
    ftp = ImportFtpField(required=False)
    mapping = ImportMappingField(required=False)

    class Meta:
        model = FileImport
        fields = [
            "id",
            "name",
            "integrationId",
            "connectionId",
            "distributed",
            "api_identifier",
            "file",
            "ftp",
            "mapping",
            "created_at",
            "last_modified",
        ]
        read_only_fields = ["id", "api_identifier", "created_at", "last_modified"]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            aliases = {"_connectionId": "connectionId", "_integrationId": "integrationId"}
            data = {aliases.get(key, key): value for key, value in data.items() if key != "_id"}
        return super().to_internal_value(data)


class FlowSerializer(CamelModelSerializer):
    integrationId = TenantPrimaryKeyRelatedField(
        source="integration", queryset=Integration.objects.all()
    )
    importId = TenantPrimaryKeyRelatedField(
        source="file_import", queryset=FileImport.objects.all(), required=False, allow_null=True
    )
    settings = StrictJSONObjectField(required=False)

    class Meta:
        model = Flow
        fields = [
            "id",
            "integrationId",
            "name",
            "description",
            "disabled",
            "importId",
            "settings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        # A TextField column: the API sets the limit.
        extra_kwargs = {"description": {"max_length": 2000}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        integration = attrs.get("integration") or getattr(self.instance, "integration", None)
        file_import = attrs.get("file_import")
        if (
            file_import is not None
            and integration is not None
            and file_import.integration_id
            not in (
                None,
                integration.pk,
            )
        ):
            raise serializers.ValidationError(
                {"importId": ["This import belongs to another integration."]}
            )
        return attrs
