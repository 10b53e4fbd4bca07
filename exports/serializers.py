from __future__ import annotations

import datetime as dt
import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import validate_timezone
from config.api.serializers import CamelModelSerializer, CamelSerializer, StrictJSONObjectField
from connectors.naming import DEFAULT_TEMPLATE, PLACEHOLDERS
from exports import selectors
from exports.choices import DestinationType, ExportFrequency, FilterOperator
from exports.formats.options import COMMON_OPTIONS, FORMAT_OPTIONS
from exports.models import (
    DESTINATION_CONNECTOR,
    DESTINATION_OPTIONAL_KEYS,
    DESTINATION_REQUIRED_KEY,
    Export,
    ExportFile,
    destination_problems,
    filter_problems,
)
from exports.selectors import export_run_rows
from integrations.models import Integration
from syncengine.choices import JobStatus, JobTrigger
from syncengine.models import SyncJob

_CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# Longest value of each destination key: S3 bucket and Azure container names end at 63
# characters, object keys and paths at 1024, a file name at 255, a connection id is a UUID.
DESTINATION_MAX_LENGTH = {
    "bucket": 63,
    "container": 63,
    "path": 1024,
    "prefix": 1024,
    "fileNameTemplate": 255,
    "connectionId": 36,
}


@extend_schema_field({"type": "string", "pattern": _CLOCK_TIME.pattern, "example": "02:00"})
class ClockTimeField(serializers.Field):
    """A time of day as ``HH:MM`` on a 24-hour clock."""

    default_error_messages = {
        "invalid": "Must be a time of day as HH:MM on a 24-hour clock, for example 02:00."
    }

    def to_internal_value(self, data: Any) -> dt.time:
        match = _CLOCK_TIME.match(data) if isinstance(data, str) else None
        if match is None:
            self.fail("invalid")
        assert match is not None
        return dt.time(int(match[1]), int(match[2]))

    def to_representation(self, value: dt.time) -> str:
        return value.strftime("%H:%M")


class EntityNameField(serializers.CharField):
    """An entity name; unlike a plain CharField it does not turn numbers into strings."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "enum": DestinationType.values},
            **{
                key: {"type": "string", "maxLength": DESTINATION_MAX_LENGTH[key]}
                for key in sorted({*DESTINATION_REQUIRED_KEY.values(), *DESTINATION_OPTIONAL_KEYS})
            },
        },
        "description": "Where the files go. Required per type: "
        + ", ".join(f"{kind}: {key}" for kind, key in DESTINATION_REQUIRED_KEY.items())
        + ". S3, AZURE_BLOB and SFTP write through a connection of this account of the "
        "matching connector ("
        + ", ".join(f"{kind}: {connector}" for kind, connector in DESTINATION_CONNECTOR.items())
        + "), named by connectionId; S3 and AZURE_BLOB without one use the account's only "
        "connection of that connector, and the response names it. Files go under path, then "
        "prefix (for SFTP, path is the remote folder; for LOCAL, a folder in this account's "
        "export folder on the server, which nothing leaves). fileNameTemplate names each file "
        "with the placeholders "
        + ", ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS)
        + f"; default {DEFAULT_TEMPLATE}. Replaced as a whole on PATCH.",
        "example": {"type": "S3", "bucket": "exports-bucket", "path": "/contracts/"},
    }
)
class DestinationField(StrictJSONObjectField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": "Record filter: field -> value (equality), or field -> object of operators ("
        + ", ".join(FilterOperator.values)
        + "; in takes a list). Passed through as sent.",
        "example": {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}},
    }
)
class FilterField(StrictJSONObjectField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": True,
        "description": "Options of the format. Every format: "
        + ", ".join(COMMON_OPTIONS)
        + " (compression: none or gzip for CSV, JSON and XML; snappy, zstd, gzip or none for "
        "PARQUET; maxFileSizeMb splits larger files into parts). "
        + "; ".join(f"{kind}: {', '.join(names)}" for kind, names in FORMAT_OPTIONS.items())
        + ". An unknown option is a 400.",
        "example": {"delimiter": ";", "compression": "gzip", "maxFileSizeMb": 100},
    }
)
class FormatOptionsField(StrictJSONObjectField):
    pass


class ExportScheduleSerializer(CamelSerializer):
    """When an export runs; ``nextRunAt`` is computed from it in its time zone."""

    frequency = serializers.ChoiceField(
        choices=ExportFrequency.choices,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Null (or blank) for an export that only runs when triggered.",
    )
    day = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=31,
        help_text="WEEKLY: 0 (Monday) to 6 (Sunday). MONTHLY: 1 to 31, clamped to the month's "
        "last day. Not used by other frequencies.",
    )
    time = ClockTimeField(
        required=False, help_text="Local time of day, HH:MM. HOURLY uses only the minute."
    )
    timezone = serializers.CharField(
        required=False,
        max_length=64,
        validators=[validate_timezone],
        help_text="IANA time zone the time is read in (default UTC).",
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["frequency"] = data["frequency"] or None
        return data


class ExportSerializer(CamelModelSerializer):
    """An export definition: which entities, in which file format, when, and where to."""

    export_id = serializers.UUIDField(source="id", read_only=True)
    integration_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="An integration of this account the export belongs to.",
    )
    entities = serializers.ListField(
        child=EntityNameField(max_length=100), allow_empty=False, max_length=100
    )
    filter = FilterField(required=False)
    schedule = ExportScheduleSerializer(
        source="*",
        required=False,
        help_text="Merged key by key on PATCH; nextRunAt is recomputed when it changes.",
    )
    destination = DestinationField()
    options = FormatOptionsField(required=False)
    # The export's "fields"; DRF takes declared fields off the class, so the name is free.
    fields = serializers.ListField(  # type: ignore[assignment]
        child=EntityNameField(max_length=200),
        required=False,
        allow_null=True,
        allow_empty=False,
        max_length=500,
        help_text="The columns to write, in order: fields of vehicles, or for a record store "
        "entity its store columns (_key, _createdAt, ...) and dotted paths into the records "
        "(data.plan). Null: every field.",
    )

    class Meta:
        model = Export
        fields = [
            "id",
            "export_id",
            "name",
            "format",
            "entities",
            "filter",
            "schedule",
            "destination",
            "options",
            "fields",
            "integration_id",
            "state",
            "next_run_at",
            "last_run_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "next_run_at", "last_run_at", "created_at", "updated_at"]

    def validate_filter(self, value: dict[str, Any]) -> dict[str, Any]:
        if problems := filter_problems(value):
            raise serializers.ValidationError(problems)
        return value

    def validate_destination(self, value: dict[str, Any]) -> dict[str, Any]:
        problems = destination_problems(value)
        for key, max_length in DESTINATION_MAX_LENGTH.items():
            text = value.get(key)
            if key not in problems and isinstance(text, str) and len(text) > max_length:
                problems[key] = [f"At most {max_length} characters."]
        if problems:
            raise serializers.ValidationError(problems)
        return value


def integration_export_documents(integration: Integration) -> list[dict[str, Any]]:
    """An integration's exports as the API represents them, for its template and revisions."""
    exports = selectors.integration_exports(integration=integration)
    return [dict(item) for item in ExportSerializer(exports, many=True).data]


# --- runs ---------------------------------------------------------------------------------------


class ExportFileSerializer(CamelModelSerializer):
    """A file a run delivered."""

    n = serializers.IntegerField(
        source="number", read_only=True, help_text="Its number in the run, from 1."
    )

    class Meta:
        model = ExportFile
        fields = ["n", "entity", "part", "uri", "path", "bytes", "rows", "sha256"]
        read_only_fields = fields


RUN_STATUSES = list(JobStatus.values)
RUN_TRIGGERS = [JobTrigger.MANUAL.value, JobTrigger.SCHEDULE.value]


@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(RUN_STATUSES)})$"})
class RunStatusField(serializers.CharField):
    """A run's status (a pattern rather than an enum: see ``ExportRunSerializer.status``)."""


@extend_schema_field({"type": "string", "pattern": f"^({'|'.join(RUN_TRIGGERS)})$"})
class RunTriggerField(serializers.CharField):
    """What started a run."""


class ExportRunSerializer(CamelModelSerializer):
    """A run of an export: its status, what it wrote and where, and its progress."""

    run_id = serializers.UUIDField(source="id", read_only=True)
    export_id = serializers.UUIDField(read_only=True)
    # Patterns rather than enums: the job status and trigger enums are named by the sync job
    # components already, and the schema's enum naming would collide.
    status = RunStatusField(read_only=True, help_text=", ".join(RUN_STATUSES) + ".")
    trigger = RunTriggerField(read_only=True, help_text="manual (the API, the admin) or schedule.")
    duration_ms = serializers.SerializerMethodField(
        method_name="get_duration_ms",
        help_text="From its first start to its end; null until it ends.",
    )
    rows = serializers.SerializerMethodField(
        help_text="Rows written per entity (while it runs: rows done so far)."
    )
    files = ExportFileSerializer(source="export_files", many=True, read_only=True)
    bytes = serializers.SerializerMethodField(help_text="Bytes of all its files.")
    error = serializers.SerializerMethodField(help_text="Why it failed; null otherwise.")
    progress = serializers.DictField(
        read_only=True,
        help_text="entity (being written), entitiesDone, entitiesTotal, rowsDone and rows "
        "(per entity so far).",
    )

    class Meta:
        model = SyncJob
        fields = [
            "id",
            "run_id",
            "export_id",
            "status",
            "trigger",
            "attempts",
            "created_at",
            "started_at",
            "completed_at",
            "duration_ms",
            "cancel_requested_at",
            "rows",
            "files",
            "bytes",
            "error",
            "progress",
        ]
        read_only_fields = fields

    def get_duration_ms(self, run: SyncJob) -> int | None:
        if run.started_at is None or run.completed_at is None:
            return None
        return int((run.completed_at - run.started_at).total_seconds() * 1000)

    def get_rows(self, run: SyncJob) -> dict[str, int]:
        return export_run_rows(run)

    def get_bytes(self, run: SyncJob) -> int:
        return sum(file.bytes for file in run.export_files.all())

    def get_error(self, run: SyncJob) -> str | None:
        return run.error or None if run.status == JobStatus.FAILED else None


class ImportRunSerializer(ExportRunSerializer):
    """A run of a file import: the file it wrote and where, as an export run says it."""

    import_id = serializers.UUIDField(source="file_import_id", read_only=True)

    class Meta(ExportRunSerializer.Meta):
        fields = [
            "import_id" if name == "export_id" else name for name in ExportRunSerializer.Meta.fields
        ]
        read_only_fields = fields


class ImportRunDetailSerializer(ImportRunSerializer):
    """An import run with its log."""

    log = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta(ImportRunSerializer.Meta):
        fields = [*ImportRunSerializer.Meta.fields, "log"]
        read_only_fields = fields


class ExportRunDetailSerializer(ExportRunSerializer):
    """A run with its log."""

    log = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta(ExportRunSerializer.Meta):
        fields = [*ExportRunSerializer.Meta.fields, "log"]
        read_only_fields = fields
