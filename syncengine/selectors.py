"""Reads of the sync engine worth naming."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Case, Count, F, Q, QuerySet, When

from accounts.models import Account
from config.api.errors import InvalidInput
from connectors.models import Connection
from integrations.models import Integration
from syncengine.feeds.ingest import feed_import, feed_settings, mapping_overrides
from syncengine.feeds.merge.rows import object_values
from syncengine.feeds.reader import FeedFileError, open_feed
from syncengine.feeds.vehicles import VEHICLE_FIELDS
from syncengine.models import (
    FeedFile,
    Record,
    Snapshot,
    SnapshotRecord,
    SyncJob,
    SyncStream,
    Vehicle,
)
from syncengine.serializers import vehicle_row

PREVIEW_ROWS = 10

logger = logging.getLogger(__name__)


def vehicle_list(*, account: Account) -> QuerySet[Vehicle]:
    return Vehicle.objects.filter(account=account)


def latest_feed_file(*, integration: Integration) -> FeedFile | None:
    """The newest received file whose stored copy can still be read."""
    for feed_file in integration.feed_files.exclude(stored_path="").order_by("-received_at")[:5]:
        if feed_file.has_stored_copy:
            return feed_file
    return None


def mapping_preview(*, integration: Integration) -> dict[str, Any]:
    """How the integration's latest file maps: every source column with its canonical field and
    where that mapping comes from, what maps to nothing, and the first rows as they would be
    stored."""
    settings = feed_settings(integration)
    overrides = {k: v for k, v in mapping_overrides(feed_import(integration)).items() if v}
    preview: dict[str, Any] = {
        "integrationId": integration.pk,
        "provider": integration.type,
        "overrides": overrides,
        "fileId": None,
        "filename": None,
        "columns": [],
        "unmappedColumns": [],
        "unmappedFields": sorted(VEHICLE_FIELDS),
        "rows": [],
        "rejected": [],
        "warnings": [],
        "error": None,
    }
    feed_file = latest_feed_file(integration=integration)
    if feed_file is None:
        return preview
    preview["fileId"] = feed_file.pk
    preview["filename"] = feed_file.filename
    try:
        with (
            feed_file.local_copy() as stored,
            open_feed(
                stored,
                provider=settings.provider,
                options=settings.options,
                mapping_overrides=settings.mapping_overrides,
                timezone=settings.timezone,
            ) as reader,
        ):
            chunk = reader.preview(PREVIEW_ROWS)
            columns = reader.columns
            preview["warnings"] = list(reader.warnings) + list(chunk.warnings)
    except FeedFileError as exc:
        preview["error"] = str(exc)
        return preview
    except Exception as exc:
        # The preview must describe a file that cannot be read, like its log entry does, not fail.
        logger.exception("Mapping preview of %s failed", feed_file.pk)
        preview["error"] = f"The latest file could not be read: {type(exc).__name__}: {exc}"
        return preview
    mapped = {column.field for column in columns if column.field}
    preview["columns"] = [
        {"source": c.source, "position": c.position, "field": c.field, "origin": c.origin}
        for c in columns
    ]
    preview["unmappedColumns"] = [c.source for c in columns if not c.field]
    preview["unmappedFields"] = sorted(set(VEHICLE_FIELDS) - mapped)
    # Plain Python values: None for missing ones, lists for the Arrow list columns.
    columns_values = {str(name): object_values(chunk.frame[name]) for name in chunk.frame.columns}
    preview["rows"] = [
        vehicle_row(dict(zip(columns_values, values, strict=True)))
        for values in zip(*columns_values.values(), strict=True)
    ]
    preview["rejected"] = [
        {"row": r.row_number, "reason": r.reason, "values": r.values} for r in chunk.rejected
    ]
    return preview


# --- Sync jobs, snapshots and the record store -------------------------------------------------


def _owned_by(*, integration: Integration | None = None, connection: Connection | None = None) -> Q:
    """Rows of one integration, or of one connection's own syncs (not of an integration that
    happens to read from that connection)."""
    if integration is not None:
        return Q(integration=integration)
    if connection is not None:
        return Q(connection=connection, integration__isnull=True)
    raise ValueError("An owner is required: an integration or a connection.")


def sync_job_list(
    *,
    account: Account,
    integration: Integration | None = None,
    connection: Connection | None = None,
) -> QuerySet[SyncJob]:
    """Jobs of an account (or of one of its integrations or connections), each annotated with
    the id of the snapshot it made once that snapshot is complete (``snapshot_list`` serves no
    other): one LEFT JOIN instead of a query per job."""
    jobs = SyncJob.objects.filter(account=account)
    if integration is not None or connection is not None:
        jobs = jobs.filter(_owned_by(integration=integration, connection=connection))
    return jobs.annotate(
        snapshot_pk=Case(When(snapshot__complete=True, then=F("snapshot__id")), default=None)
    )


def snapshot_list(
    *,
    account: Account,
    integration: Integration | None = None,
    connection: Connection | None = None,
) -> QuerySet[Snapshot]:
    """Complete snapshots only. One still being written is not a point-in-time copy yet, and
    a retry of its job deletes it and starts a new one, so it is neither listed nor served."""
    return Snapshot.objects.filter(
        _owned_by(integration=integration, connection=connection),
        account=account,
        complete=True,
    )


def snapshot_entity(*, snapshot: Snapshot, entity: str | None) -> str | None:
    """The entity a records request reads: the one asked for, or the only one the snapshot
    holds. Records of several entities are never interleaved in one list."""
    held = sorted(snapshot.entities or {})
    if entity:
        if entity not in held:
            choices = f"Must be one of: {', '.join(held)}." if held else "It holds no records."
            raise InvalidInput(
                f"The snapshot has no entity {entity!r}.", details={"entity": [choices]}
            )
        return entity
    if len(held) > 1:
        raise InvalidInput(
            "This snapshot holds several entities; say which one to read.",
            details={"entity": [f"Required: one of {', '.join(held)}."]},
        )
    return held[0] if held else None


def snapshot_records(*, snapshot: Snapshot, entity: str | None) -> QuerySet[SnapshotRecord]:
    """One entity's records of a snapshot, in the order they were read."""
    name = snapshot_entity(snapshot=snapshot, entity=entity)
    if name is None:
        return SnapshotRecord.objects.none()
    return SnapshotRecord.objects.filter(snapshot=snapshot, entity=name).order_by("position")


def record_list(
    *,
    account: Account,
    integration: Integration | None = None,
    connection: Connection | None = None,
) -> QuerySet[Record]:
    streams = sync_stream_list(account=account, integration=integration, connection=connection)
    return Record.objects.filter(stream__in=streams.values("pk")).select_related("stream")


def sync_stream_list(
    *,
    account: Account,
    integration: Integration | None = None,
    connection: Connection | None = None,
) -> QuerySet[SyncStream]:
    return SyncStream.objects.filter(
        _owned_by(integration=integration, connection=connection), account=account
    )


def sync_stream_counts(
    *,
    account: Account,
    integration: Integration | None = None,
    connection: Connection | None = None,
) -> QuerySet[SyncStream]:
    """Streams with their record counts, counted by one grouped query."""
    return sync_stream_list(
        account=account, integration=integration, connection=connection
    ).annotate(record_count=Count("records"))
