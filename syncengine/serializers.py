"""HTTP representations of feed logs, vehicles and their history, field mappings, sync jobs,
snapshots and the record store."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.errors import InvalidInput
from config.api.serializers import CamelModelSerializer, CamelSerializer
from connectors.choices import SyncMode
from integrations.choices import SyncStrategy
from integrations.models import MAPPING_NAME_MAX_LENGTH
from syncengine.choices import JobKind
from syncengine.feeds.vehicles import VEHICLE_FIELDS
from syncengine.models import (
    FeedFile,
    Record,
    Snapshot,
    SnapshotRecord,
    SyncJob,
    SyncStream,
    Vehicle,
    VehicleVersion,
)
from syncengine.sync.launch import parse_date_range

ERROR_SAMPLES_SCHEMA = {
    "type": "array",
    "description": "The first rejected rows (severity error, at most 100) and values left empty "
    "(severity warning, at most 100), in file order; also downloadable as errors.csv. Logs "
    "written before warnings were sampled have only row, reason and values.",
    "items": {
        "type": "object",
        "properties": {
            "row": {
                "type": "integer",
                "description": "Data row number, from 1 (the header not counted).",
            },
            "severity": {
                "type": "string",
                "description": "error: the row was not imported. warning: the row was imported "
                "with this field left empty.",
                "example": "warning",
            },
            "field": {
                "type": "string",
                "nullable": True,
                "description": "The vehicle field whose value could not be read; null when the "
                "row as a whole was malformed.",
                "example": "price",
            },
            "value": {
                "type": "string",
                "nullable": True,
                "description": "That value as the file has it.",
                "example": "abc",
            },
            "reason": {
                "type": "string",
                "example": "price abc is not an amount; the row was imported without it",
            },
            "values": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The row's values by source column: all of a rejected row's, "
                "the key columns and the value for a warning.",
            },
        },
        "required": ["row", "reason", "values"],
    },
}


@extend_schema_field(ERROR_SAMPLES_SCHEMA)
class ErrorSamplesField(serializers.JSONField):
    """A log's samples of rejected rows and values left empty, as stored."""


class FeedFileLogSerializer(CamelModelSerializer):
    """One received file and what processing it did (the feed's sync log, extended)."""

    jobId = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    # The feed API's spelling, kept for clients written against it.
    processed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    error_samples = ErrorSamplesField(read_only=True)

    class Meta:
        model = FeedFile
        fields = [
            "id",
            "filename",
            "size",
            "sha256",
            "source",
            "received_at",
            "processed_at",
            "status",
            "attempts",
            "records_total",
            "records_created",
            "records_updated",
            "records_unchanged",
            "records_removed",
            "records_sold",
            "records_skipped",
            "records_errors",
            "records_warnings",
            "warnings",
            "duration_ms",
            "error",
            "error_samples",
            "jobId",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "status": {
                "help_text": "completed: every row imported as it was. completed_with_warnings: "
                "every row imported, some with a value left empty because it could not be read "
                "(recordsWarnings). completed_with_errors: some rows were not imported "
                "(recordsErrors). The three were applied to the store; rejected (the file as a "
                "whole, nothing changed) and failed were not."
            },
            "attempts": {
                "help_text": "Times a worker started applying the file: 2 or more when a worker "
                "was lost or an attempt failed and was retried. Waiting for an earlier file of "
                "the integration is not an attempt."
            },
            "records_errors": {"help_text": "Rows not imported; sampled in errorSamples."},
            "records_warnings": {
                "help_text": "Rows imported with one or more values left empty because they "
                "could not be read; sampled in errorSamples."
            },
        }

    def get_error(self, feed_file: FeedFile) -> str | None:
        return feed_file.error or None


class ReprocessSerializer(CamelSerializer):
    force = serializers.BooleanField(
        default=False, help_text="Apply the file even if the row-count guard would reject it."
    )


class DispatchedSerializer(CamelSerializer):
    logId = serializers.UUIDField()
    status = serializers.CharField()
    message = serializers.CharField()


class VehicleSerializer(CamelModelSerializer):
    integrationId = serializers.UUIDField(source="integration_id", read_only=True)
    dealershipId = serializers.UUIDField(source="dealership_id", read_only=True, allow_null=True)

    class Meta:
        model = Vehicle
        fields = [
            "id",
            "integrationId",
            "dealershipId",
            "key",
            "status",
            *(field.column for field in VEHICLE_FIELDS.values()),
            "extra",
            "first_seen_at",
            "last_seen_at",
            "missing_syncs",
            "sold_at",
            "removed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class VehicleVersionSerializer(CamelModelSerializer):
    feedFileId = serializers.UUIDField(source="feed_file_id", read_only=True, allow_null=True)

    class Meta:
        model = VehicleVersion
        fields = ["id", "change_type", "changes", "feedFileId", "created_at"]
        read_only_fields = fields


class MappingsUpdateSerializer(CamelSerializer):
    mappings = serializers.DictField(
        child=serializers.CharField(allow_null=True, max_length=MAPPING_NAME_MAX_LENGTH),
        allow_empty=False,
        help_text='{"Source Column": "canonicalField"}; null removes an override. Column names '
        f"of at most {MAPPING_NAME_MAX_LENGTH} characters.",
    )

    def validate_mappings(self, mappings: dict[str, str | None]) -> dict[str, str | None]:
        long = [column for column in mappings if len(column) > MAPPING_NAME_MAX_LENGTH]
        if long:
            raise serializers.ValidationError(
                {column[:40]: [f"At most {MAPPING_NAME_MAX_LENGTH} characters."] for column in long}
            )
        return mappings


class MappedColumnSerializer(CamelSerializer):
    source = serializers.CharField()  # type: ignore[assignment]  # the column, not a DRF source
    position = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    origin = serializers.ChoiceField(choices=["default", "custom"], allow_null=True)


class MappingsSerializer(CamelSerializer):
    """An integration's field mappings: ``{"Source Column": "canonicalField"}`` as set."""

    integrationId = serializers.UUIDField()
    mappings = serializers.DictField(child=serializers.CharField())


class MappingPreviewSerializer(CamelSerializer):
    """The effective mapping and the latest file's first rows as they would be stored."""

    integrationId = serializers.UUIDField()
    provider = serializers.CharField()
    overrides = serializers.DictField(child=serializers.CharField())
    fileId = serializers.UUIDField(allow_null=True)
    filename = serializers.CharField(allow_null=True)
    columns = MappedColumnSerializer(many=True)
    unmappedColumns = serializers.ListField(child=serializers.CharField())
    unmappedFields = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(child=serializers.DictField())
    rejected = serializers.ListField(child=serializers.DictField())
    warnings = serializers.ListField(child=serializers.CharField())
    error = serializers.CharField(allow_null=True)


def vehicle_row(record: dict[str, Any]) -> dict[str, Any]:
    """A normalised feed row in the API's camelCase vehicle shape."""
    row = {name: record.get(field.column) for name, field in VEHICLE_FIELDS.items()}
    row["key"] = record.get("key")
    row["extra"] = record.get("extra") or {}
    return row


# --- Sync jobs -------------------------------------------------------------------------------

# SyncMode's values, each labelled by itself. The connector catalog already publishes
# SyncMode.choices as the schema's SyncModesEnum, and drf-spectacular warns (and the schema test
# fails) when one choice set gets a second name such as ModeEnum; a choice set of its own is
# documented under its own name.
MODE_CHOICES = [(mode, mode) for mode in SyncMode.values]

DATE_RANGE_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {
        "from": {
            "type": "string",
            "maxLength": 64,
            "description": "ISO 8601 date or datetime.",
            "example": "2025-01-01",
        },
        "to": {
            "type": "string",
            "maxLength": 64,
            "description": "ISO 8601 date or datetime.",
            "example": "2025-01-15",
        },
    },
    "additionalProperties": False,
}


@extend_schema_field(DATE_RANGE_SCHEMA)
class DateRangeField(serializers.Field):
    """``{"from", "to"}`` checked by ``jobs.parse_date_range``; stored as given."""

    def to_internal_value(self, data: Any) -> dict[str, str] | None:
        try:
            return parse_date_range(data)
        except InvalidInput as exc:
            # Details are already keyed dateRange.from / dateRange.to; the error handler keeps
            # a full path as it is.
            raise serializers.ValidationError(exc.details or exc.message) from exc

    def to_representation(self, value: Any) -> Any:
        return value


JOB_LOG_SCHEMA = {
    "type": "array",
    "description": "The job's log lines, oldest first (the last 500).",
    "items": {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "level": {"type": "string", "example": "info"},
            "message": {"type": "string"},
        },
    },
}


@extend_schema_field(JOB_LOG_SCHEMA)
class JobLogField(serializers.JSONField):
    """The job's log lines as stored, oldest first."""


class RejectUnknownKeysMixin:
    """A body with a key the serializer does not declare is a 400 naming that key, rather than
    a silently ignored misspelling (``entites``, ``date_range``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = set(self.fields)  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


class ConnectionSyncInputSerializer(RejectUnknownKeysMixin, CamelSerializer):
    """Body of ``POST /integrations/connections/:connectionId/sync``; all optional."""

    entities = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        allow_null=True,
        help_text="Entities to sync; empty or absent means every entity the connector offers.",
    )
    mode = serializers.ChoiceField(choices=MODE_CHOICES, default=SyncMode.FULL)
    date_range = DateRangeField(
        required=False,
        allow_null=True,
        help_text="Only records whose date falls in this range; a bare date `to` includes that "
        "whole day. 400 for a connector that cannot read by date range.",
    )
    strategy = serializers.ChoiceField(
        choices=SyncStrategy.choices,
        default=SyncStrategy.MERGE,
        help_text="overwrite deletes records the source no longer has; merge keeps them; "
        "update_only touches existing records only.",
    )


class SyncJobSerializer(CamelModelSerializer):
    """A sync job. `syncId`, `jobId` and `id` are the same value."""

    syncId = serializers.UUIDField(source="id", read_only=True)
    jobId = serializers.UUIDField(source="id", read_only=True)
    integrationId = serializers.UUIDField(source="integration_id", read_only=True, allow_null=True)
    connectionId = serializers.UUIDField(source="connection_id", read_only=True, allow_null=True)
    kind = serializers.ChoiceField(
        choices=JobKind.choices,
        read_only=True,
        help_text="sync (a connector sync or a file pull), file (a feed file's ingestion), "
        "export (an export run: exportId) or import (a file import run: importId).",
    )
    exportId = serializers.UUIDField(source="export_id", read_only=True, allow_null=True)
    importId = serializers.UUIDField(source="file_import_id", read_only=True, allow_null=True)
    mode = serializers.ChoiceField(choices=MODE_CHOICES, read_only=True)
    entities = serializers.ListField(child=serializers.CharField(), read_only=True)
    date_range = DateRangeField(read_only=True)
    maxAttempts = serializers.SerializerMethodField(method_name="get_max_attempts")
    error = serializers.SerializerMethodField()
    dependencyStatus = serializers.SerializerMethodField(method_name="get_dependency_status")
    stats = serializers.DictField(
        read_only=True,
        help_text="Per entity: created, updated, unchanged, deleted, errors, skipped and read "
        "(records read from the source), with errorSamples and warnings when there are any. "
        "A feed file's job counts its one entity, vehicles, with sold instead of read, errors "
        "(rows not imported) and warned (rows imported with a value left empty); its samples "
        "are on the file's log.",
    )
    progress = serializers.DictField(
        read_only=True,
        help_text="Sync jobs: recordsDone, recordsTotal (null when the source cannot count "
        "ahead), entitiesDone, entitiesTotal and the entity being read. Feed file jobs: done "
        "and total rows.",
    )
    snapshotId = serializers.SerializerMethodField(
        method_name="get_snapshot_id",
        help_text="The snapshot a SNAPSHOT job took; null until that snapshot is complete.",
    )

    class Meta:
        model = SyncJob
        fields = [
            "id",
            "syncId",
            "jobId",
            "integrationId",
            "connectionId",
            "kind",
            "exportId",
            "importId",
            "trigger",
            "mode",
            "strategy",
            "entities",
            "date_range",
            "status",
            "attempts",
            "maxAttempts",
            "error",
            "dependencyStatus",
            "created_at",
            "started_at",
            "completed_at",
            "next_attempt_at",
            "cancel_requested_at",
            "stats",
            "progress",
            "snapshotId",
        ]
        read_only_fields = fields

    def get_max_attempts(self, job: SyncJob) -> int:
        return int(settings.JOB_MAX_ATTEMPTS)

    def get_error(self, job: SyncJob) -> str | None:
        return job.error or None

    def get_dependency_status(self, job: SyncJob) -> str | None:
        return job.dependency_status or None

    def get_snapshot_id(self, job: SyncJob) -> uuid.UUID | None:
        # Lists annotate it (selectors.sync_job_list); a job fresh from a service does not.
        # Only a complete snapshot is served, so one still being written is not named yet.
        if hasattr(job, "snapshot_pk"):
            return job.snapshot_pk
        return (
            Snapshot.objects.filter(job_id=job.pk, complete=True)
            .values_list("pk", flat=True)
            .first()
        )


class SyncJobDetailSerializer(SyncJobSerializer):
    """A job with its log: what it did, retried, waited for, and why it stopped.

    Documented as SyncJob plus ``log`` (``SYNC_JOB_DETAIL_SCHEMA``) rather than as a component
    of its own, which would repeat the job's enums under a second component name.
    """

    log = JobLogField(read_only=True)

    class Meta(SyncJobSerializer.Meta):
        fields = [*SyncJobSerializer.Meta.fields, "log"]
        read_only_fields = fields


SYNC_JOB_DETAIL_SCHEMA = {
    "allOf": [
        {"$ref": "#/components/schemas/SyncJob"},
        {
            "type": "object",
            "required": ["log"],
            "properties": {"log": JOB_LOG_SCHEMA},
        },
    ]
}


class JobDispatchedSerializer(CamelSerializer):
    """The answer to a manual sync."""

    jobId = serializers.UUIDField()
    status = serializers.CharField()
    message = serializers.CharField()


# --- Snapshots and the record store ----------------------------------------------------------


class SnapshotSerializer(CamelModelSerializer):
    """An immutable point-in-time copy made by a SNAPSHOT job."""

    jobId = serializers.UUIDField(source="job_id", read_only=True)
    integrationId = serializers.UUIDField(source="integration_id", read_only=True, allow_null=True)
    connectionId = serializers.UUIDField(source="connection_id", read_only=True, allow_null=True)
    entities = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text="{entity: record count}"
    )

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "jobId",
            "integrationId",
            "connectionId",
            "created_at",
            "completed_at",
            "complete",
            "entities",
            "record_count",
        ]
        read_only_fields = fields


class SnapshotRecordSerializer(CamelModelSerializer):
    # The model keeps records as JSON text; declared here so they are answered as JSON.
    data = serializers.JSONField(  # type: ignore[assignment]
        read_only=True, help_text="The record as the source gave it."
    )

    class Meta:
        model = SnapshotRecord
        fields = ["entity", "position", "data"]
        read_only_fields = fields


class RecordSerializer(CamelModelSerializer):
    """A record of the store, keyed by the source's primary key."""

    entity = serializers.CharField(source="stream.entity", read_only=True)
    # The model keeps records as JSON text; declared here so they are answered as JSON.
    data = serializers.JSONField(  # type: ignore[assignment]
        read_only=True, help_text="The record as the source gave it."
    )

    class Meta:
        model = Record
        fields = ["key", "entity", "data", "created_at", "updated_at"]
        read_only_fields = fields


class SyncStreamSerializer(CamelModelSerializer):
    """One entity of the record store with the cursor its last committed batch reached."""

    cursor = serializers.JSONField(read_only=True, allow_null=True)
    recordCount = serializers.IntegerField(source="record_count", read_only=True)

    class Meta:
        model = SyncStream
        fields = ["entity", "cursor", "cursor_updated_at", "last_synced_at", "recordCount"]
        read_only_fields = fields
