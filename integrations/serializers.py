"""HTTP representations of integrations, file imports, flows, revisions and shares."""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from accounts.models import Dealership, User
from accounts.serializers import TenantPrimaryKeyRelatedField
from config.api.serializers import (
    JSON_FIELD_MAX_CHARS,
    BoundedJSONField,
    CamelModelSerializer,
    CamelSerializer,
    JSONDocumentListSerializer,
    JSONDocumentSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictJSONListField,
    StrictJSONObjectField,
    StrictKeysSerializer,
    StrictNumberField,
)
from connectors.models import Connection
from connectors.naming import IMPORT_PLACEHOLDERS, template_problems
from integrations.choices import (
    CONTAINER_TYPE,
    DataType,
    FileType,
    FrequencyUnit,
    IntegrationState,
    IntegrationStatus,
    ShareAccessLevel,
    SyncStrategy,
)
from integrations.models import (
    FTP_TEXT_MAX_LENGTH,
    MAPPING_NAME_MAX_LENGTH,
    SYNC_SETTINGS_DEFAULTS,
    FileImport,
    Flow,
    Integration,
    IntegrationShare,
    Revision,
    default_steps_progress,
)
from integrations.task_config import task_problems

# --- an integration's JSON parts ---------------------------------------------------------------
#
# Each part is a serializer: one declaration validates the request and documents it in the
# OpenAPI schema (config/api/serializers.py, "JSON documents a client sends").


class ScheduleSerializer(StrictKeysSerializer):
    """``schedule``: frequencyValue + frequencyUnit, rollingWindowDays, oneOff, runNow.

    Every key is optional on the way in, in camelCase or snake_case (``frequency_value``): a PATCH
    merges the keys it sends into the stored schedule, a POST or PUT fills in the rest with the
    defaults. The answer always holds the first four and never runNow (a one-time request).
    """

    unknown_key_message = "Unknown schedule key; known keys: {known}."

    frequency_value = StrictIntegerField(
        min_value=1,
        max_value=10_000,
        allow_null=True,
        required=False,
        message="Must be an integer from 1 to 10000, or null.",
    )
    frequency_unit = StrictChoiceField(
        choices=FrequencyUnit.choices, allow_null=True, allow_blank=True, required=False
    )
    rolling_window_days = StrictIntegerField(
        min_value=0, max_value=3650, required=False, message="Must be an integer from 0 to 3650."
    )
    one_off = StrictBooleanField(required=False)
    run_now = StrictBooleanField(
        write_only=True,
        required=False,
        help_text="Make the integration due now (nextRunAt = now); never answered.",
    )

    def to_representation(self, integration: Integration) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(integration)
        data["frequencyUnit"] = data["frequencyUnit"] or None
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The whole schedule, merged, as the service applies it (``{"schedule": {...}}``)."""
        stored = self.merge_base
        schedule: dict[str, Any] = {
            "frequency_value": None,
            "frequency_unit": "",
            "rolling_window_days": 0,
            "one_off": False,
        }
        if stored is not None:
            schedule.update({key: getattr(stored, key) for key in schedule})
        schedule.update(attrs)
        schedule["frequency_unit"] = schedule["frequency_unit"] or ""
        schedule["run_now"] = attrs.get("run_now", False)
        if bool(schedule["frequency_value"]) != bool(schedule["frequency_unit"]):
            raise serializers.ValidationError(
                "frequencyValue and frequencyUnit go together: set both or neither."
            )
        return {"schedule": schedule}


class SyncSettingsSerializer(StrictKeysSerializer):
    """``syncSettings``; the documented snake_case keys (``sold_grace_syncs``) are accepted too.

    Every key is optional on the way in: a PATCH merges the keys it sends into the stored
    settings, a POST or PUT fills in the rest with the defaults. The answer holds them all.
    """

    unknown_key_message = "Unknown setting; known settings: {known}."

    strategy = StrictChoiceField(choices=SyncStrategy.choices, required=False)
    sold_grace_syncs = StrictIntegerField(
        min_value=0,
        max_value=1000,
        required=False,
        message="Must be an integer from 0 to 1000 (0 turns the threshold off).",
    )
    sold_grace_hours = StrictNumberField(
        min_value=0,
        max_value=24 * 366,
        required=False,
        message="Must be a number of hours from 0 to 8784 (0 turns the threshold off).",
    )
    track_history = StrictBooleanField(required=False)
    min_rows_ratio = StrictNumberField(
        min_value=0, max_value=1, required=False, message="Must be a number from 0 to 1."
    )
    max_error_ratio = StrictNumberField(
        min_value=0, max_value=1, required=False, message="Must be a number from 0 to 1."
    )

    def to_representation(self, stored: dict[str, Any]) -> dict[str, Any]:
        return dict(super().to_representation({**SYNC_SETTINGS_DEFAULTS, **(stored or {})}))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        stored = self.merge_base
        return {**SYNC_SETTINGS_DEFAULTS, **(stored.sync_settings if stored else {}), **attrs}


class IntegrationConfigTaskSerializer(JSONDocumentSerializer):
    """One task of ``config.tasks``: its ``task_type``, and its own settings kept as sent."""

    max_chars = None

    task_type = StrictCharField(
        max_length=200, require_text=True, message="A non-empty task_type is required."
    )


class IntegrationConfigSerializer(JSONDocumentSerializer):
    """``config``: ``{"global": {...}, "tasks": [{"task_type": ...}, ...]}``; other keys are
    kept as sent."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # "global" is a Python keyword: it cannot be declared as a class attribute.
        return {
            "global": StrictJSONObjectField(default=dict),
            "tasks": IntegrationConfigTaskSerializer(
                many=True,
                default=list,
                error_messages={"not_a_list": "Must be a JSON array of task objects."},
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Each task's type and options, so a task the sync engine cannot run is refused now
        # rather than failing the integration's first run.
        problems = task_problems(attrs["tasks"])
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


STEP_TYPES = ("form", "connection", "url", "action")


class StepListSerializer(JSONDocumentListSerializer):
    """Install or uninstall step definitions: names unique, progress reset."""

    max_chars = JSON_FIELD_MAX_CHARS
    default_error_messages = {"not_a_list": "Must be a JSON array of step objects."}

    def validate(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: set[str] = set()
        for index, step in enumerate(steps):
            if step["name"] in seen:
                raise serializers.ValidationError(
                    {f"[{index}].name": [f"Step names must be unique; {step['name']!r} repeats."]}
                )
            seen.add(step["name"])
        return default_steps_progress(steps)


class StepSerializer(JSONDocumentSerializer):
    """One step: ``name``, ``type`` (form by default), a ``form`` definition for form steps, and
    any other keys (``description``, ``connectorId``, ``url``) kept as sent."""

    max_chars = None

    name = StrictCharField(
        max_length=200, require_text=True, message="A non-empty name is required."
    )
    type = StrictChoiceField(choices=[(kind, kind) for kind in STEP_TYPES], default="form")
    form = StrictJSONObjectField(required=False)

    class Meta:
        list_serializer_class = StepListSerializer


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
    type = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "vauto, homenet, elead or custom: an inventory feed with an SFTP login; a connector "
            "id: a data flow of that connector (taken from sourceAppId or destinationAppId when "
            f"absent); {CONTAINER_TYPE}: a container of flows, imports, exports and connections "
            "(the default when the body names no type, source or destination). Fixed once "
            "created."
        ),
    )
    name = serializers.CharField(required=False, max_length=200)
    config = IntegrationConfigSerializer(required=False)
    schedule = ScheduleSerializer(source="*", required=False)
    syncSettings = SyncSettingsSerializer(source="sync_settings", required=False)
    status = StatusField()
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    lastError = serializers.SerializerMethodField()
    dependsOn = TenantPrimaryKeyRelatedField(
        source="depends_on", queryset=Integration.objects.all(), many=True, required=False
    )
    settings = StrictJSONObjectField(required=False)
    flowGroupings = StrictJSONListField(source="flow_groupings", required=False)
    aliases = BoundedJSONField(required=False)
    installSteps = StepSerializer(source="install_steps", many=True, required=False)
    uninstallSteps = StepSerializer(source="uninstall_steps", many=True, required=False)

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


class ImportCsvOptionsSerializer(JSONDocumentSerializer):
    """``file.csv``: how the file is split into rows and columns."""

    max_chars = None

    columnDelimiter = StrictCharField(
        min_length=1,
        max_length=1,
        required=False,
        message="Must be a single character.",
        error_messages={"max_length": "Must be a single character."},
    )
    rowDelimiter = StrictChoiceField(
        choices=[("\n", "LF"), ("\r\n", "CRLF"), ("\r", "CR")],
        required=False,
        message='Must be "\\n", "\\r\\n" or "\\r".',
    )
    includeHeader = StrictBooleanField(required=False)
    wrapWithQuotes = StrictBooleanField(required=False)
    replaceTabWithSpace = StrictBooleanField(required=False)
    replaceNewlineWithSpace = StrictBooleanField(required=False)


def default_import_file() -> dict[str, Any]:
    """``file`` of an import that names none: a CSV file."""
    return {"type": FileType.CSV.value}


def default_import_mapping() -> dict[str, Any]:
    """``mapping`` of an import that names none: no fields."""
    return {"fields": []}


class ImportFileSerializer(JSONDocumentSerializer):
    """``file``: the file's format and options."""

    type = StrictChoiceField(choices=FileType.choices, default=FileType.CSV.value)
    skipAggregation = StrictBooleanField(required=False)
    lookups = StrictJSONListField(required=False)
    csv = ImportCsvOptionsSerializer(required=False)


# Control characters (C0, DEL and C1), refused in ``ftp.directoryPath`` as in file names.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_IMPORT_PLACEHOLDER_LIST = " ".join(f"{{{{{name}}}}}" for name in IMPORT_PLACEHOLDERS)


class ImportFtpSerializer(JSONDocumentSerializer):
    """``ftp``: where the file goes; ``fileName`` may hold templates such as ``{{timestamp}}``."""

    directoryPath = StrictCharField(
        max_length=FTP_TEXT_MAX_LENGTH["directoryPath"],
        allow_blank=True,
        required=False,
        help_text="A directory on the server, absolute or relative, with / between its parts; "
        "no .. part, backslash or control character.",
    )
    fileName = StrictCharField(
        max_length=FTP_TEXT_MAX_LENGTH["fileName"],
        allow_blank=True,
        required=False,
        help_text=f"The file's name; may hold the placeholders {_IMPORT_PLACEHOLDER_LIST}.",
    )

    def validate_directoryPath(self, value: str) -> str:
        # A ".." part could reach above the directories the connection is meant for; a
        # backslash is a separator on some servers and an ordinary character on others.
        problems: list[str] = []
        if ".." in value.split("/"):
            problems.append("May not contain a '..' part.")
        if "\\" in value:
            problems.append("May not contain backslashes; separate directories with /.")
        if _CONTROL_CHARACTERS.search(value):
            problems.append("May not contain control characters.")
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate_fileName(self, value: str) -> str:
        if value and (problems := template_problems(value, placeholders=IMPORT_PLACEHOLDERS)):
            raise serializers.ValidationError(problems)
        return value


class ImportMappingFieldSerializer(JSONDocumentSerializer):
    """One entry of ``mapping.fields``: the source column (``extract``) and the field it fills
    (``generate``)."""

    max_chars = None

    extract = StrictCharField(
        max_length=MAPPING_NAME_MAX_LENGTH, message="A non-empty string is required."
    )
    generate = StrictCharField(
        max_length=MAPPING_NAME_MAX_LENGTH, message="A non-empty string is required."
    )


class ImportMappingSerializer(JSONDocumentSerializer):
    """``mapping``: ``{"fields": [{"extract": "source", "generate": "target"}, ...]}``."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Declared here: a class attribute named "fields" reads like the serializer's own.
        return {"fields": ImportMappingFieldSerializer(many=True, default=list)}


class RouteIntegrationDefault:
    """The default ``integrationId`` of an import: the integration of the URL under
    ``/integrations/{integrationId}/imports``, none at ``/imports``."""

    requires_context = True

    def __call__(self, field: serializers.Field[Any, Any, Any, Any]) -> Integration | None:
        integration: Integration | None = field.context.get("route_integration")
        return integration

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# What ``entity`` holds: the plain name of what the import writes (``vehicles``, ``crm.deals``),
# never a path or a template. A blank entity (none named yet) is allowed before validators run.
ENTITY_NAME = RegexValidator(
    r"^[A-Za-z0-9_.\-]+\Z",
    message="Must be a plain entity name: letters, digits, _, - and . only (such as vehicles).",
)

# The document's own spellings of the ids, answered beside the camelCase names: each with the
# model attribute it reads. A request may send the last two for connectionId and integrationId;
# ``_id``, like ``id``, is read-only.
DOCUMENT_ID_SOURCES = {
    "_id": "id",
    "_integrationId": "integration_id",
    "_connectionId": "connection_id",
}
REQUEST_ID_ALIASES = {"_connectionId": "connectionId", "_integrationId": "integrationId"}


class FileImportSerializer(CamelModelSerializer):
    """A file import: file format, FTP location, field mapping, and the entity and filter of
    what it writes.

    ``_id``, ``_connectionId`` and ``_integrationId`` (the document's spellings) are answered
    beside ``id``, ``connectionId`` and ``integrationId``, and accepted in requests as aliases.
    A POST or PUT gives every field it leaves out its default; a PATCH changes only the fields
    it sends (each of file, ftp and mapping as a whole).
    """

    integrationId = TenantPrimaryKeyRelatedField(
        source="integration",
        queryset=Integration.objects.all(),
        allow_null=True,
        default=RouteIntegrationDefault(),
        help_text="The integration the import belongs to; under "
        "/integrations/{integrationId}/imports, that integration.",
    )
    connectionId = TenantPrimaryKeyRelatedField(
        source="connection", queryset=Connection.objects.all(), allow_null=True, default=None
    )
    file = ImportFileSerializer(default=default_import_file)
    ftp = ImportFtpSerializer(default=dict)
    mapping = ImportMappingSerializer(default=default_import_mapping)
    entity = StrictCharField(
        max_length=100,
        allow_blank=True,
        default="",
        validators=[ENTITY_NAME],
        help_text="What the import writes when it runs: vehicles, or an entity of the record "
        "store. Checked when the import runs.",
    )
    filter = StrictJSONObjectField(
        default=dict,
        help_text="Which records the import writes, as an export's filter: field -> value "
        "(equality) or field -> object of operators. Checked against the entity when the "
        "import runs.",
    )

    class Meta:
        model = FileImport
        fields = [
            "id",
            "name",
            "integrationId",
            "connectionId",
            "distributed",
            "api_identifier",
            "entity",
            "filter",
            "file",
            "ftp",
            "mapping",
            "created_at",
            "last_modified",
        ]
        read_only_fields = ["id", "api_identifier", "created_at", "last_modified"]
        extra_kwargs = {"distributed": {"default": False}}

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Added after the camelCase renaming, which would make "Id" of "_id"; each right after
        # the field it repeats.
        fields: dict[str, serializers.Field[Any, Any, Any, Any]] = {}
        for name, field in super().get_fields().items():
            fields[name] = field
            alias = f"_{name}"
            if alias in DOCUMENT_ID_SOURCES:
                fields[alias] = serializers.UUIDField(
                    source=DOCUMENT_ID_SOURCES[alias],
                    read_only=True,
                    allow_null=alias != "_id",
                    label=alias,
                    help_text=f"Same as {name}.",
                )
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            conflicts = {
                alias: [f"Conflicts with {name}; send one of them, or the same value in both."]
                for alias, name in REQUEST_ID_ALIASES.items()
                if alias in data and name in data and data[alias] != data[name]
            }
            if conflicts:
                raise serializers.ValidationError(conflicts)
            data = {REQUEST_ID_ALIASES.get(key, key): value for key, value in data.items()}
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        route_integration = self.context.get("route_integration")
        if (
            route_integration is not None
            and "integration" in attrs
            and attrs["integration"] != route_integration
        ):
            raise serializers.ValidationError(
                {"integrationId": ["An import under this URL belongs to its integration."]}
            )
        return attrs


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
