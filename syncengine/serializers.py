"""HTTP representations of feed logs, vehicles and their history, and field mappings."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from config.api.serializers import CamelModelSerializer, CamelSerializer
from syncengine.models import FeedFile, Vehicle, VehicleVersion
from syncengine.vehicles import VEHICLE_FIELDS


class FeedFileLogSerializer(CamelModelSerializer):
    """One received file and what processing it did (seed 000's sync log, extended)."""

    jobId = serializers.UUIDField(source="job_id", read_only=True, allow_null=True)
    error = serializers.SerializerMethodField()
    # Seed 000 spelling, kept for clients written against it.
    processed_at = serializers.DateTimeField(read_only=True, allow_null=True)

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
            "records_total",
            "records_created",
            "records_updated",
            "records_unchanged",
            "records_removed",
            "records_sold",
            "records_skipped",
            "records_errors",
            "warnings",
            "duration_ms",
            "error",
            "error_samples",
            "jobId",
        ]
        read_only_fields = fields

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
        child=serializers.CharField(allow_null=True),
        allow_empty=False,
        help_text='{"Source Column": "canonicalField"}; null removes an override.',
    )


class MappedColumnSerializer(CamelSerializer):
    source = serializers.CharField()  # type: ignore[assignment]  # the column, not a DRF source
    position = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    origin = serializers.ChoiceField(choices=["default", "custom"], allow_null=True)


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
