"""The file feed pipeline: claim a received file, parse it in chunks, map and validate its rows,
merge them with the integration's strategy, and log what happened.

A broken file fails alone with a readable log entry and touches nothing; an unexpected error
marks the file, the job and the integration failed, and is recorded as an event.

Values that cannot be read are never dropped silently. A row the reader rejects (a malformed
row, no VIN and no stock number, a VIN that cannot identify a vehicle) is not imported: it counts
in ``records_errors`` and the file ends ``completed_with_errors``. Any other unreadable value (a
year, price, mileage, date, ...) is left empty and its row imported: the row counts in
``records_warnings`` and, without rejected rows, the file ends ``completed_with_warnings``. Both
are sampled in ``error_samples`` (row, severity, field, raw value, reason, the row's values), the
log's errors.csv.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import event_record
from integrations.choices import IntegrationStatus
from integrations.models import FileImport, Integration
from integrations.validators import SYNC_SETTINGS_DEFAULTS
from syncengine.choices import (
    FEED_FILE_PROCESSED,
    FeedFileSource,
    FeedFileStatus,
    JobStatus,
    JobTrigger,
)
from syncengine.feeds.frames import RejectedRow, RowNote
from syncengine.feeds.reader import FeedFileError, FeedOptions, open_feed
from syncengine.merge import MergeCounts, VehicleMerge
from syncengine.models import FeedFile, SyncJob
from syncengine.outcomes import (
    feed_file_outcome,
    integration_run_failed,
    integration_run_succeeded,
)

logger = logging.getLogger(__name__)

ERROR_SAMPLE_LIMIT = 100  # rejected rows sampled on the log row
WARNING_SAMPLE_LIMIT = 100  # values left empty sampled on the log row
WARNING_LIMIT = 200
# Rows per parsed chunk: large enough for vectorised parsing to pay, small enough that a chunk
# (photo lists included) stays near 100 MB next to the merge's state of the whole inventory.
CHUNK_ROWS = 50_000


class IntegrationBusy(Exception):
    """Another job of the same integration is running; the file waits for its turn."""


@dataclass
class FeedSettings:
    """What the integration says about reading and merging its files."""

    provider: str
    options: FeedOptions
    mapping_overrides: dict[str, str | None]
    timezone: str
    sync: dict[str, Any] = field(default_factory=dict)


def feed_import(integration: Integration) -> FileImport | None:
    """The integration's file import definition: file options and custom mappings."""
    return integration.file_imports.order_by("created_at", "pk").first()


def mapping_overrides(file_import: FileImport | None) -> dict[str, str | None]:
    """``{source column: canonical field or None}`` from the import's ``mapping.fields``."""
    if file_import is None:
        return {}
    overrides: dict[str, str | None] = {}
    for item in (file_import.mapping or {}).get("fields", []):
        overrides[item["extract"]] = item.get("generate") or None
    return overrides


def feed_settings(integration: Integration) -> FeedSettings:
    file_import = feed_import(integration)
    file_options = file_import.file if file_import is not None else {}
    return FeedSettings(
        provider=integration.type,
        options=FeedOptions.from_import_file(file_options or {}),
        mapping_overrides=mapping_overrides(file_import),
        timezone=integration.dealership.timezone if integration.dealership else "UTC",
        sync={**SYNC_SETTINGS_DEFAULTS, **integration.sync_settings},
    )


def _claim(feed_file_id: str) -> FeedFile | None:
    """Take a received file for processing; None if another worker has it or it is done."""
    claimed = FeedFile.objects.filter(pk=feed_file_id, status=FeedFileStatus.RECEIVED).update(
        status=FeedFileStatus.PROCESSING, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return FeedFile.objects.select_related("integration", "integration__dealership").get(
        pk=feed_file_id
    )


def _start_job(feed_file: FeedFile) -> SyncJob:
    trigger = (
        JobTrigger.REPROCESS if feed_file.source == FeedFileSource.REPROCESS else JobTrigger.FILE
    )
    now = timezone.now()
    try:
        with transaction.atomic():
            job = SyncJob.objects.create(
                account_id=feed_file.account_id,
                integration_id=feed_file.integration_id,
                trigger=trigger,
                entities=["vehicles"],
                status=JobStatus.RUNNING,
                attempts=1,
                started_at=now,
                heartbeat_at=now,
            )
    except IntegrityError:
        # The partial unique index allows one running job per integration.
        FeedFile.objects.filter(pk=feed_file.pk).update(status=FeedFileStatus.RECEIVED)
        raise IntegrationBusy(str(feed_file.integration_id)) from None
    FeedFile.objects.filter(pk=feed_file.pk).update(job=job)
    Integration.all_objects.filter(pk=feed_file.integration_id).update(
        status=IntegrationStatus.RUNNING, latest_job_id=job.pk
    )
    feed_file.job = job
    return job


def _previous_total(feed_file: FeedFile) -> int | None:
    previous = (
        FeedFile.objects.filter(
            integration_id=feed_file.integration_id,
            status__in=FEED_FILE_PROCESSED,
        )
        .exclude(pk=feed_file.pk)
        .order_by("-processed_at")
        .values_list("records_total", flat=True)
        .first()
    )
    return previous


def _payload(feed_file: FeedFile, **extra: Any) -> dict[str, Any]:
    return {
        "integration": {"id": str(feed_file.integration_id), "name": feed_file.integration.name},
        "file": {
            "id": str(feed_file.pk),
            "filename": feed_file.filename,
            "status": feed_file.status,
            "outcome": feed_file_outcome(feed_file.status),
            "recordsErrors": feed_file.records_errors,
            "recordsWarnings": feed_file.records_warnings,
        },
        "jobId": str(feed_file.job_id) if feed_file.job_id else None,
        **extra,
    }


def _rejected_sample(rejected: RejectedRow) -> dict[str, Any]:
    return {
        "row": rejected.row_number,
        "severity": "error",
        "field": rejected.field,
        "value": rejected.value,
        "reason": rejected.reason,
        "values": rejected.values,
    }


def _dropped_sample(note: RowNote) -> dict[str, Any]:
    # The reason says the row was kept: errors.csv lists rejected rows and kept ones alike.
    return {
        "row": note.row_number,
        "severity": "warning",
        "field": note.field,
        "value": note.value,
        "reason": f"{note.message}; the row was imported without it",
        "values": note.values,
    }


def _finish(
    feed_file: FeedFile,
    *,
    status: str,
    started: float,
    error: str = "",
    counts: MergeCounts | None = None,
) -> None:
    """Write the outcome to the file's log row, its job and its integration, in one transaction."""
    now = timezone.now()
    succeeded = status in FEED_FILE_PROCESSED
    feed_file.status = status
    feed_file.processed_at = now
    feed_file.duration_ms = int((time.monotonic() - started) * 1000)
    feed_file.error = error
    if counts is not None:
        feed_file.records_created = counts.created
        feed_file.records_updated = counts.updated
        feed_file.records_unchanged = counts.unchanged
        feed_file.records_removed = counts.removed
        feed_file.records_sold = counts.sold
        feed_file.records_skipped = counts.skipped
    stats = {
        "vehicles": {
            "created": feed_file.records_created,
            "updated": feed_file.records_updated,
            "unchanged": feed_file.records_unchanged,
            "deleted": feed_file.records_removed,
            "sold": feed_file.records_sold,
            "skipped": feed_file.records_skipped,
            "errors": feed_file.records_errors,
            "warned": feed_file.records_warnings,
        }
    }
    with transaction.atomic():
        feed_file.save()
        if feed_file.job_id:
            SyncJob.objects.filter(pk=feed_file.job_id).update(
                status=JobStatus.COMPLETED if succeeded else JobStatus.FAILED,
                completed_at=now,
                stats=stats,
                error=error,
                progress={"done": feed_file.records_total, "total": feed_file.records_total},
            )
        if succeeded:
            integration = integration_run_succeeded(
                integration_id=feed_file.integration_id, now=now
            )
        else:
            integration = integration_run_failed(
                integration_id=feed_file.integration_id, error=f"{feed_file.filename}: {error}"
            )
        if status == FeedFileStatus.REJECTED:
            event_record(
                account=integration.account,
                type="integration.file.rejected",
                integration_id=integration.pk,
                payload=_payload(feed_file, reason=error),
            )
        event_record(
            account=integration.account,
            type="integration.sync.completed" if succeeded else "integration.sync.failed",
            integration_id=integration.pk,
            payload=_payload(
                feed_file, status=status, stats=stats["vehicles"], error=error or None
            ),
        )


def _guard_row_count(feed_file: FeedFile, rows: int, settings: FeedSettings) -> str | None:
    """Refuse a file much smaller than the last one: a truncated export must not wipe a lot."""
    if feed_file.force or settings.sync["strategy"] not in ("overwrite", "merge"):
        return None
    previous = _previous_total(feed_file)
    ratio = float(settings.sync["min_rows_ratio"])
    if previous and ratio and rows < previous * ratio:
        return (
            f"The file has {rows} rows, fewer than {ratio:.0%} of the previous file's {previous}; "
            "nothing was changed. Reprocess it with force to apply it anyway."
        )
    return None


def feed_file_ingest(*, feed_file_id: str) -> FeedFile | None:
    """Process one received feed file; idempotent (a file is claimed once).

    Raises ``IntegrationBusy`` when another job of the integration runs (the task retries).
    """
    feed_file = _claim(feed_file_id)
    if feed_file is None:
        return None
    started = time.monotonic()
    integration = feed_file.integration
    job = _start_job(feed_file)
    if integration.deleted_at is not None:
        _finish(
            feed_file,
            status=FeedFileStatus.FAILED,
            started=started,
            error="The integration was deleted.",
        )
        return feed_file
    settings = feed_settings(integration)
    merge: VehicleMerge | None = None
    try:
        merge = VehicleMerge(
            integration=integration,
            feed_file=feed_file,
            strategy=settings.sync["strategy"],
            sold_grace_syncs=int(settings.sync["sold_grace_syncs"]),
            sold_grace_hours=float(settings.sync["sold_grace_hours"]),
            track_history=bool(settings.sync["track_history"]),
            now=timezone.now(),
        )
        with open_feed(
            feed_file.path,
            provider=settings.provider,
            options=settings.options,
            mapping_overrides=settings.mapping_overrides,
            timezone=settings.timezone,
            chunk_rows=CHUNK_ROWS,
        ) as reader:
            warnings = list(reader.warnings)
            rejected_samples: list[dict[str, Any]] = []
            dropped_samples: list[dict[str, Any]] = []
            total = errors = warned = 0
            for chunk in reader.chunks():
                merge.stage(chunk.frame)
                total += len(chunk.frame) + len(chunk.rejected)
                errors += len(chunk.rejected)
                warned += chunk.warned_rows
                warnings.extend(chunk.warnings[: max(0, WARNING_LIMIT - len(warnings))])
                room = max(0, ERROR_SAMPLE_LIMIT - len(rejected_samples))
                rejected_samples.extend(map(_rejected_sample, chunk.rejected[:room]))
                room = max(0, WARNING_SAMPLE_LIMIT - len(dropped_samples))
                dropped_samples.extend(map(_dropped_sample, chunk.dropped[:room]))
                SyncJob.objects.filter(pk=job.pk).update(
                    progress={"done": total}, heartbeat_at=timezone.now()
                )
                # Let the chunk go before the reader builds the next one.
                del chunk
        feed_file.records_total = total
        feed_file.records_errors = errors
        feed_file.records_warnings = warned
        # In file order; a rejected row has no warnings of its own (it is not read further).
        feed_file.error_samples = sorted(
            rejected_samples + dropped_samples, key=lambda sample: sample["row"]
        )
        if merge.duplicates:
            warnings.append(
                f"{merge.duplicates} rows repeat a vehicle already in the file; the last one wins."
            )
        feed_file.warnings = warnings[:WARNING_LIMIT]
        refusal = _guard_row_count(feed_file, merge.rows_staged, settings)
        if refusal:
            merge.discard()
            _finish(feed_file, status=FeedFileStatus.REJECTED, started=started, error=refusal)
            return feed_file
        counts = merge.apply()
    except FeedFileError as exc:
        if merge is not None:
            merge.discard()
        _finish(feed_file, status=FeedFileStatus.REJECTED, started=started, error=str(exc))
        return feed_file
    except Exception as exc:
        logger.exception("Feed file %s failed", feed_file.pk)
        if merge is not None:
            merge.discard()
        _finish(
            feed_file,
            status=FeedFileStatus.FAILED,
            started=started,
            error=f"Processing failed: {type(exc).__name__}: {exc}",
        )
        return feed_file
    if feed_file.records_errors:
        status = FeedFileStatus.COMPLETED_WITH_ERRORS
    elif feed_file.records_warnings:
        status = FeedFileStatus.COMPLETED_WITH_WARNINGS
    else:
        status = FeedFileStatus.COMPLETED
    _finish(feed_file, status=status, started=started, counts=counts)
    return feed_file
