"""The file feed pipeline, a kind of run (``syncengine.jobs.lifecycle``): parse a received file in
chunks, map and validate its rows, merge them with the integration's strategy, and log what
happened on the file's row.

A file's run is created QUEUED when the file is received; the files of one integration are applied
in the order they were received (the lifecycle's per-owner queue). The merge is staged chunk by
chunk and applied in the transaction that ends the run, after the lifecycle has checked that the
claim is still this run's: a file is applied exactly once, never half, however many workers it
passed through. A broken file fails alone with a readable log entry and touches nothing; an
unexpected error marks the file, the job and the integration failed, and is recorded as an event.

Values that cannot be read are never dropped silently. A row the reader rejects (a malformed
row, no VIN and no stock number, a VIN that cannot identify a vehicle) is not imported: it counts
in ``records_errors`` and the file ends ``completed_with_errors``. Any other unreadable value (a
year, price, mileage, date, ...) is left empty and its row imported: the row counts in
``records_warnings`` and, without rejected rows, the file ends ``completed_with_warnings``. Both
are sampled in ``error_samples`` (row, severity, field, raw value, reason, the row's values), the
log's errors.csv.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from django.utils import timezone

from accounts.choices import EventType
from accounts.services import event_record
from config.storage import StorageUnavailable
from integrations.models import SYNC_SETTINGS_DEFAULTS, FileImport, Integration
from syncengine.choices import FEED_FILE_PROCESSED, FeedFileStatus, JobKind, JobStatus
from syncengine.feeds.frames import RejectedRow, RowNote
from syncengine.feeds.merge import MergeCounts, VehicleMerge
from syncengine.feeds.reader import FeedFileError, FeedOptions, open_feed
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import GO, Gate, Outcome, Run, RunFailure, RunKind
from syncengine.jobs.outcomes import feed_file_outcome
from syncengine.models import FeedFile, SyncJob

logger = logging.getLogger(__name__)

ERROR_SAMPLE_LIMIT = 100  # rejected rows sampled on the log row
WARNING_SAMPLE_LIMIT = 100  # values left empty sampled on the log row
WARNING_LIMIT = 200
# Rows per parsed chunk: large enough for vectorised parsing to pay, small enough that a chunk
# (its text columns and Arrow lists) stays under 100 MB next to the merge's state of the whole
# inventory.
CHUNK_ROWS = 50_000


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


# Bump when the reader, the mapping or the normaliser would turn the same bytes into different
# rows: a file equal to the last applied one is then read again instead of taken as unchanged.
READING_VERSION = 1


def reading_digest(settings: FeedSettings, today: date) -> str:
    """A digest of everything besides the bytes that decides what a file's rows become: the
    reading options, mappings, time zone, sync settings, the reader's version, and the year (the
    model years accepted end next year + 1)."""
    material = {
        "version": READING_VERSION,
        "provider": settings.provider,
        "options": asdict(settings.options),
        "mapping": settings.mapping_overrides,
        "timezone": settings.timezone,
        "sync": settings.sync,
        "year": today.year,
    }
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _last_applied_if_same(feed_file: FeedFile) -> FeedFile | None:
    """The integration's last applied file when it has this file's content (sha256) and was read
    with the same settings (``reading_digest``); None otherwise."""
    if not feed_file.sha256 or not feed_file.reading_digest or feed_file.force:
        return None
    last = (
        FeedFile.objects.filter(
            integration_id=feed_file.integration_id, status__in=FEED_FILE_PROCESSED
        )
        .exclude(pk=feed_file.pk)
        .order_by("-processed_at", "-pk")
        .first()
    )
    if (
        last is None
        or last.sha256 != feed_file.sha256
        or last.reading_digest != feed_file.reading_digest
    ):
        return None
    return last


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


@dataclass
class FileResult:
    """What a file's run found, for the hooks that write it on the file's row."""

    feed_file: FeedFile
    status: str  # FeedFileStatus the file ends with when its run ends as planned
    started: float | None = None  # time.monotonic() when its work started
    counts: MergeCounts | None = None


def _vehicle_stats(feed_file: FeedFile) -> dict[str, int]:
    return {
        "created": feed_file.records_created,
        "updated": feed_file.records_updated,
        "unchanged": feed_file.records_unchanged,
        "deleted": feed_file.records_removed,
        "sold": feed_file.records_sold,
        "skipped": feed_file.records_skipped,
        "errors": feed_file.records_errors,
        "warned": feed_file.records_warnings,
    }


class FileRuns(RunKind):
    """Ingestion of one received feed file (its ``FeedFile`` row names the run as ``job``)."""

    kind = JobKind.FILE
    task = "syncengine.tasks.ingest_feed_file"
    # New vehicles are written as the file is read and committed with the run's end.
    one_transaction = True

    def gate(self, job: SyncJob, now: datetime) -> Gate:
        if job.integration is not None and job.integration.deleted_at is not None:
            return Gate(end=True, reason="The integration was deleted.")
        return GO

    def work(self, run: Run) -> Outcome:
        feed_file = FeedFile.objects.select_related("integration", "integration__dealership").get(
            job_id=run.job.pk
        )
        return _file_work(run, feed_file)

    def classify(self, error: Exception) -> RunFailure:
        if isinstance(error, StorageUnavailable):
            # The bucket of the stored files did not answer: the file is still there.
            logger.warning("Feed file storage unavailable: %s", error)
            return RunFailure(f"The file storage did not answer: {error}", retryable=True)
        logger.exception("Feed file run failed")
        return RunFailure(f"Processing failed: {type(error).__name__}: {error}", retryable=False)

    def claimed(self, job: SyncJob) -> None:
        FeedFile.objects.filter(job=job).update(
            status=FeedFileStatus.PROCESSING, attempts=job.attempts
        )

    def released(self, job: SyncJob) -> None:
        FeedFile.objects.filter(job=job).update(status=FeedFileStatus.RECEIVED)

    def ended(self, job: SyncJob, outcome: Outcome, status: str) -> None:
        """The file's row gets its outcome: counts, status, duration, error."""
        result = outcome.detail if isinstance(outcome.detail, FileResult) else None
        if result is None:
            feed_file = FeedFile.objects.select_related("integration").filter(job=job).first()
            if feed_file is None:
                return
            result = FileResult(feed_file=feed_file, status=FeedFileStatus.FAILED)
            outcome.detail = result
        feed_file = result.feed_file
        if status == JobStatus.CANCELLED:
            feed_file.status = FeedFileStatus.CANCELLED
            feed_file.error = "Cancelled before it was applied; nothing was changed."
        elif status == JobStatus.FAILED:
            feed_file.status = (
                result.status if result.status not in FEED_FILE_PROCESSED else FeedFileStatus.FAILED
            )
            feed_file.error = outcome.error
        else:
            feed_file.status = result.status
            feed_file.error = ""
        counts = result.counts
        if counts is not None:
            feed_file.records_created = counts.created
            feed_file.records_updated = counts.updated
            feed_file.records_unchanged = counts.unchanged
            feed_file.records_removed = counts.removed
            feed_file.records_sold = counts.sold
            feed_file.records_skipped = counts.skipped
        feed_file.processed_at = timezone.now()
        if result.started is not None:
            feed_file.duration_ms = int((time.monotonic() - result.started) * 1000)
        feed_file.attempts = job.attempts
        feed_file.save()
        outcome.stats = {"vehicles": _vehicle_stats(feed_file)}
        outcome.progress = {"done": feed_file.records_total, "total": feed_file.records_total}
        # The file's own outcome, beside the run's integration.sync.completed|failed.
        if feed_file.status == FeedFileStatus.REJECTED:
            event_type, details = EventType.FILE_REJECTED, {"reason": feed_file.error}
        elif feed_file.status in FEED_FILE_PROCESSED:
            event_type, details = EventType.FILE_PROCESSED, {"stats": outcome.stats["vehicles"]}
        elif feed_file.status == FeedFileStatus.FAILED:
            event_type, details = EventType.FILE_FAILED, {"error": feed_file.error}
        else:  # cancelled: the run's event says so
            return
        event_record(
            account=job.account,
            type=event_type,
            integration_id=feed_file.integration_id,
            payload=_payload(feed_file, **details),
        )

    def payload(self, job: SyncJob, outcome: Outcome, status: str) -> dict[str, Any]:
        assert isinstance(outcome.detail, FileResult)  # ended() made sure
        feed_file = outcome.detail.feed_file
        return _payload(
            feed_file,
            status=feed_file.status,
            stats=_vehicle_stats(feed_file),
            error=feed_file.error or None,
        )

    def integration_error(self, job: SyncJob, outcome: Outcome) -> str:
        if isinstance(outcome.detail, FileResult):
            return f"{outcome.detail.feed_file.filename}: {outcome.error}"
        return outcome.error


FILE_RUNS = lifecycle.kind_register(FileRuns())


def _file_work(run: Run, feed_file: FeedFile) -> Outcome:
    """Read and stage the file; the merge is applied by the run's ending (``Outcome.commit``)."""
    started = time.monotonic()
    settings = feed_settings(feed_file.integration)
    feed_file.reading_digest = reading_digest(settings, date.today())
    merge: VehicleMerge | None = None
    try:
        merge = VehicleMerge(
            integration=feed_file.integration,
            feed_file=feed_file,
            strategy=settings.sync["strategy"],
            sold_grace_syncs=int(settings.sync["sold_grace_syncs"]),
            sold_grace_hours=float(settings.sync["sold_grace_hours"]),
            track_history=bool(settings.sync["track_history"]),
            now=timezone.now(),
        )
        last = _last_applied_if_same(feed_file)
        if last is not None and merge.assume_unchanged():
            return _unchanged_outcome(feed_file, last, merge, started)
        with (
            feed_file.local_copy() as stored,
            open_feed(
                stored,
                provider=settings.provider,
                options=settings.options,
                mapping_overrides=settings.mapping_overrides,
                timezone=settings.timezone,
                chunk_rows=CHUNK_ROWS,
            ) as reader,
        ):
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
                # Let the chunk go before the reader builds the next one.
                del chunk
                run.checkpoint(progress={"done": total})
                run.stop_if_cancelled()
        merge.flush()
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
    except FeedFileError as exc:
        if merge is not None:
            merge.discard()
        rejected = FileResult(feed_file=feed_file, status=FeedFileStatus.REJECTED, started=started)
        return Outcome(status=JobStatus.FAILED, error=str(exc), detail=rejected)
    except BaseException:
        if merge is not None:
            merge.discard()
        raise
    if refusal:
        merge.discard()
        rejected = FileResult(feed_file=feed_file, status=FeedFileStatus.REJECTED, started=started)
        return Outcome(status=JobStatus.FAILED, error=refusal, detail=rejected)
    if feed_file.records_errors:
        status = FeedFileStatus.COMPLETED_WITH_ERRORS
    elif feed_file.records_warnings:
        status = FeedFileStatus.COMPLETED_WITH_WARNINGS
    else:
        status = FeedFileStatus.COMPLETED
    return _applying(FileResult(feed_file=feed_file, status=status, started=started), merge)


def _applying(result: FileResult, merge: VehicleMerge, *, skipped: int | None = None) -> Outcome:
    """The outcome of a staged file: the merge is applied when the run commits."""

    def apply() -> None:
        result.counts = merge.apply()
        if skipped is not None:
            result.counts.skipped = skipped

    return Outcome(status=JobStatus.COMPLETED, commit=apply, cleanup=merge.discard, detail=result)


def _unchanged_outcome(
    feed_file: FeedFile, last: FeedFile, merge: VehicleMerge, started: float
) -> Outcome:
    """A file with the same bytes and reading settings as the last applied one: its rows are
    not read again. It has that file's rows, rejections and warnings; its vehicles are unchanged,
    and the ones that file lacked miss one more sync (``VehicleMerge.assume_unchanged``)."""
    feed_file.records_total = last.records_total
    feed_file.records_errors = last.records_errors
    feed_file.records_warnings = last.records_warnings
    feed_file.error_samples = last.error_samples
    received = timezone.localtime(last.received_at).isoformat(timespec="seconds")
    note = (
        f"Same content as {last.filename} (received {received}), the last file applied: its"
        " rows were not read again, and its counts, rejections and warnings apply."
    )
    feed_file.warnings = [note, *last.warnings][:WARNING_LIMIT]
    result = FileResult(feed_file=feed_file, status=last.status, started=started)
    return _applying(result, merge, skipped=last.records_skipped)


def feed_file_ingest(*, feed_file_id: str) -> FeedFile | None:
    """Apply one received file in this process, as its task does. Returns the file's row when
    this call ran it; None when it did not (it ended already, another worker has it, or it
    waits for an earlier run of its integration)."""
    row = FeedFile.objects.filter(pk=feed_file_id).values_list("job_id", "attempts").first()
    if row is None or row[0] is None:
        return None
    job = lifecycle.run_execute(row[0])
    if job is None or job.attempts == row[1]:
        return None
    return FeedFile.objects.select_related("integration").get(pk=feed_file_id)


def file_run_id(value: str) -> str:
    """The run a task of the ingest queue names: a run's id, or (tasks sent before runs were
    created with their file) a received file's."""
    if SyncJob.objects.filter(pk=value).exists():
        return value
    job_id = FeedFile.objects.filter(pk=value).values_list("job_id", flat=True).first()
    return str(job_id) if job_id else value
