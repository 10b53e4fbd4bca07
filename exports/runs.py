"""Runs that write files (``FileRuns``): export runs here, file import runs in
``exports.import_runs``; kinds of run of ``syncengine.jobs.lifecycle``. A run writes each entity
as files of its format and delivers them, all or nothing, to its destination.

The lifecycle claims, beats, fences, retries and ends the run; this module is its work:

1. For each entity, rows stream from the database (``exports.entities``: ``COPY`` or a
   server-side cursor, the filter applied in SQL) into the format writer, which writes into an
   atomic upload of the destination (``connectors.files``: S3 multipart, Azure staged blocks,
   SFTP and local temporary names). A file reaching ``maxFileSizeMb`` is closed and the rows
   go on in a new part (``{{part}}``). Memory stays bounded: rows are never collected, and an
   upload holds at most one of its store's parts.
2. Every ``CHECK_EVERY_ROWS`` rows the run checks for a cancel and, at most once every
   ``CHECKPOINT_SECONDS``, records its progress (rows done per entity) through the fenced
   ``Run.checkpoint``: a run whose claim was taken over stops there.
3. Only when every file is written are they committed (made visible), one after the other; the
   run's files are recorded in the ending's transaction. A failure, a cancel or a lost claim
   before that aborts every upload, and one after a commit removes what was committed, so a run
   that does not complete leaves nothing at the destination. A retry (timeouts, 5xx and
   throttling are retryable: the connectors say so) starts again from the first row with fresh
   uploads; it never appends to an earlier attempt's.

File names come from a template (an export's ``fileNameTemplate``, an import's ``ftp.fileName``)
rendered with the run's start (the first attempt's, so a retry writes the same names).
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.choices import EventType
from accounts.services import event_record
from connectors.files import FileDestination, FileSink
from connectors.naming import NamingError, render_file_name
from connectors.registry import ConnectorError
from exports.destinations import file_destination
from exports.entities import EntitySource, entity_source
from exports.formats import (
    ExportDataError,
    FormatOptions,
    FormatOptionsError,
    PartStats,
    RowStream,
    format_options,
    write_parts,
)
from exports.models import Export, ExportFile
from exports.querying import FilterError
from syncengine.choices import JobKind, JobStatus
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import Outcome, Run, RunCancelled, RunFailure, RunKind
from syncengine.models import SyncJob

logger = logging.getLogger(__name__)

# How often the run looks for a cancel (in rows), and how often it records its progress.
CHECK_EVERY_ROWS = 5_000
CHECKPOINT_SECONDS = 1.0


@dataclass
class PendingFile:
    """A file written and not yet visible (``sink`` open), or delivered once committed."""

    entity: str
    part: int
    sink: FileSink
    stats: PartStats | None = None


@dataclass
class RunResult:
    """What the run wrote: rows per entity and every file, in order."""

    rows: dict[str, int] = field(default_factory=dict)
    files: list[PendingFile] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # the last one saved

    def file_documents(self) -> list[dict[str, Any]]:
        documents = []
        for file in self.files:
            delivered = file.sink.delivered
            assert file.stats is not None
            documents.append(
                {
                    "entity": file.entity,
                    "part": file.part,
                    "uri": delivered.uri,
                    "bytes": delivered.bytes,
                    "rows": file.stats.rows,
                    "sha256": delivered.sha256,
                }
            )
        return documents

    def stats(self) -> dict[str, dict[str, int]]:
        """``{entity: {rows, files, bytes}}``, what the run row keeps."""
        stats = {
            entity: {"rows": rows, "files": 0, "bytes": 0} for entity, rows in self.rows.items()
        }
        for file in self.files:
            stats[file.entity]["files"] += 1
            stats[file.entity]["bytes"] += file.stats.bytes if file.stats else 0
        return stats


class _Progress:
    """Counts the rows as the writers take them; checks for a cancel and checkpoints."""

    def __init__(self, run: Run, entities: list[str]) -> None:
        self.run = run
        self.entities = entities
        self.rows: dict[str, int] = dict.fromkeys(entities, 0)
        self.done = 0
        self.current: str | None = None
        self._saved_at = 0.0

    def document(self) -> dict[str, Any]:
        return {
            "entity": self.current,
            "entitiesDone": self.done,
            "entitiesTotal": len(self.entities),
            "rowsDone": sum(self.rows.values()),
            "rows": dict(self.rows),
        }

    def save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._saved_at >= CHECKPOINT_SECONDS:
            self._saved_at = now
            self.run.checkpoint(progress=self.document())

    def counted(self, entity: str, rows: Iterator[Any]) -> Iterator[Any]:
        """``rows``, counted; between chunks of CHECK_EVERY_ROWS the run may stop (a cancel,
        a lost claim), which leaves the writer at a row boundary."""
        self.current = entity
        count = self.rows[entity]
        for row in rows:
            yield row
            count += 1
            if count % CHECK_EVERY_ROWS == 0:
                self.rows[entity] = count
                self.run.stop_if_cancelled()
                self.save()
        self.rows[entity] = count


@dataclass
class FilePlan:
    """What a run writes: its entities in order, each read from ``source_for(entity)``, into
    files of ``options`` named ``path_for(entity, part)`` at ``destination``."""

    entities: list[str]
    options: FormatOptions
    source_for: Callable[[str], EntitySource]
    path_for: Callable[[str, int], str]
    destination: FileDestination


def run_options(export: Export) -> FormatOptions:
    """The export's format options, the installation's EXPORT_MAX_FILE_SIZE_MB by default."""
    given = {"maxFileSizeMb": settings.EXPORT_MAX_FILE_SIZE_MB, **(export.options or {})}
    return format_options(export.format, given)


def _session(destination: FileDestination) -> contextlib.AbstractContextManager[Any]:
    """One connection for the whole run where the store keeps one (SFTP)."""
    session = getattr(destination, "session", None)
    return session() if session is not None else contextlib.nullcontext()


def _discard(destination: FileDestination, files: list[PendingFile]) -> int:
    """Abort what is still being written and remove what was already committed; never raises.
    Returns how many committed files were removed."""
    removed = 0
    for file in files:
        if not _committed(file.sink):
            file.sink.abort()
            continue
        try:
            destination.remove(file.sink.path)
            removed += 1
        except Exception:
            logger.warning("Could not remove %s after the run failed", file.sink.uri, exc_info=True)
    return removed


def _committed(sink: FileSink) -> bool:
    try:
        sink.delivered  # noqa: B018 - raises until the upload is committed
    except ValueError:
        return False
    return True


def _write(run: Run, plan: FilePlan) -> RunResult:
    """Write every entity into uploads, then commit them all; on any exception, leave nothing."""
    options, destination = plan.options, plan.destination
    entities = list(dict.fromkeys(plan.entities))
    progress = _Progress(run, entities)
    result = RunResult()
    rendered: set[str] = set()
    progress.save(force=True)
    try:
        with _session(destination):
            for entity in entities:
                source = plan.source_for(entity)
                stream = source.stream(options)
                rows = RowStream(progress.counted(entity, stream.drain()), encoded=stream.encoded)
                opened: list[PendingFile] = []

                def open_part(part: int, entity: str = entity, opened: list[PendingFile] = opened):
                    path = plan.path_for(entity, part)
                    if path in rendered:
                        # (refused at create time; a template from before that check)
                        raise NamingError(
                            f"Two files of this run would both be named {path}; the template "
                            "needs {{entity}} when the run writes several entities."
                        )
                    rendered.add(path)
                    pending = PendingFile(entity=entity, part=part, sink=destination.upload(path))
                    opened.append(pending)
                    result.files.append(pending)
                    # Committed with the others once every entity is written, not here.
                    return contextlib.nullcontext(pending.sink)

                parts = write_parts(options, columns=source.columns, rows=rows, open_sink=open_part)
                for pending, stats in zip(opened, parts, strict=True):
                    pending.stats = stats
                result.rows[entity] = sum(stats.rows for stats in parts)
                progress.rows[entity] = result.rows[entity]
                progress.done += 1
                progress.save(force=True)
            progress.current = None
            run.stop_if_cancelled()
            # The claim must still be this run's before anything becomes visible.
            progress.save(force=True)
            result.progress = progress.document()
            for pending in result.files:
                pending.sink.commit()
    except BaseException:
        removed = _discard(destination, result.files)
        if result.files:
            note = f" ({removed} already committed were removed)" if removed else ""
            with contextlib.suppress(Exception):
                run.log(
                    f"The run's {len(result.files)} upload(s) were discarded{note}; nothing of "
                    "this attempt is left at the destination.",
                    level="warning",
                )
        raise
    return result


class FileRuns(RunKind, ABC):
    """What every run that writes files shares: the work, its outcome, the files recorded in
    the ending's transaction, failures classified, events. A subclass says what it writes
    (``plan``), what a run is of (``owner_payload``) and what its ending updates."""

    completed_event = EventType.EXPORT_COMPLETED
    failed_event = EventType.EXPORT_FAILED

    @abstractmethod
    def plan(self, job: SyncJob) -> FilePlan:
        """What the run writes and where."""

    @abstractmethod
    def destination_type(self, job: SyncJob) -> str:
        """What the run's files record as their destination (S3, SFTP, LOCAL, ...)."""

    @abstractmethod
    def owner_payload(self, job: SyncJob) -> dict[str, Any]:
        """What identifies the run's export or import in its events."""

    def work(self, run: Run) -> Outcome:
        job = run.job
        plan = self.plan(job)
        destination = plan.destination
        destination_type = self.destination_type(job)
        try:
            result = _write(run, plan)
        except RunCancelled:
            return Outcome(
                status=JobStatus.CANCELLED,
                message="Cancelled; its uploads were discarded and nothing was delivered.",
            )
        token = run.token

        def record_files() -> None:
            ExportFile.objects.bulk_create(
                ExportFile(
                    run_id=job.pk,
                    number=number,
                    entity=document["entity"],
                    part=document["part"],
                    destination_type=destination_type,
                    uri=document["uri"],
                    path=file.sink.path,
                    bytes=document["bytes"],
                    rows=document["rows"],
                    sha256=document["sha256"],
                )
                for number, (file, document) in enumerate(
                    zip(result.files, result.file_documents(), strict=True), start=1
                )
            )

        def unless_completed() -> None:
            # The ending may not have recorded the files (a cancel that came after the last
            # check, a claim taken over): then they must not stay at the destination.
            ended = SyncJob.objects.filter(pk=job.pk).values_list("status", "attempts").first()
            if ended is not None and ended[1] == token and ended[0] != JobStatus.COMPLETED:
                _discard(destination, result.files)

        return Outcome(
            status=JobStatus.COMPLETED,
            message=_summary(result),
            stats=result.stats(),
            progress=result.progress,
            commit=record_files,
            cleanup=unless_completed,
            detail=result,
        )

    def classify(self, error: Exception) -> RunFailure:
        if isinstance(error, ConnectorError):
            return RunFailure(error.message, retryable=error.retryable)
        if isinstance(error, (ExportDataError, NamingError, FilterError, FormatOptionsError)):
            return RunFailure(str(error), retryable=False)
        return super().classify(error)  # (the lifecycle logs it with its traceback)

    def claimed(self, job: SyncJob) -> None:
        if job.attempts == 1:
            event_record(
                account=job.account,
                type=EventType.EXPORT_STARTED,
                integration_id=self.event_integration_id(job),
                payload=self._base_payload(job),
            )

    def _base_payload(self, job: SyncJob) -> dict[str, Any]:
        return {"runId": str(job.pk), **self.owner_payload(job), "trigger": job.trigger}

    def payload(self, job: SyncJob, outcome: Outcome, status: str) -> dict[str, Any]:
        payload = {**self._base_payload(job), "status": status}
        result = outcome.detail if isinstance(outcome.detail, RunResult) else None
        if result is not None and status == JobStatus.COMPLETED:
            files = result.file_documents()
            payload["rows"] = sum(result.rows.values())
            payload["rowsByEntity"] = dict(result.rows)
            payload["files"] = files
            payload["bytes"] = sum(file["bytes"] for file in files)
        if outcome.error:
            payload["error"] = outcome.error
        return payload


class ExportRuns(FileRuns):
    """A run of one export (``SyncJob.export``): its own queue, apart from its integration's."""

    kind = JobKind.EXPORT
    task = "exports.tasks.run_export"

    def plan(self, job: SyncJob) -> FilePlan:
        export = Export.objects.select_related("account").get(pk=_export_id(job))
        options = run_options(export)
        started_at = job.started_at or timezone.now()

        def source_for(entity: str) -> EntitySource:
            return entity_source(
                account=export.account,
                entity=entity,
                filter=export.filter,
                fields=export.fields,
                integration_id=export.integration_id,
            )

        def path_for(entity: str, part: int) -> str:
            return render_file_name(
                export.destination.get("fileNameTemplate"),
                export_name=export.name,
                entity=entity,
                started_at=started_at,
                run_id=str(job.pk),
                part=part,
                ext=options.extension,
                timezone=export.timezone,
            )

        return FilePlan(
            entities=list(export.entities),
            options=options,
            source_for=source_for,
            path_for=path_for,
            destination=file_destination(export),
        )

    def destination_type(self, job: SyncJob) -> str:
        return str(job.export.destination["type"]) if job.export else ""

    def ended(self, job: SyncJob, outcome: Outcome, status: str) -> None:
        if status in (JobStatus.COMPLETED, JobStatus.FAILED):
            Export.objects.filter(pk=_export_id(job)).update(last_run_at=timezone.now())

    def event_integration_id(self, job: SyncJob) -> Any:
        # ``job.export`` is read once per job object and kept on it for the other hooks.
        return job.export.integration_id if job.export else None

    def owner_payload(self, job: SyncJob) -> dict[str, Any]:
        export = job.export
        return {
            "exportId": str(job.export_id),
            "exportName": export.name if export else None,
            "format": export.format if export else None,
        }


def _export_id(job: SyncJob) -> Any:
    assert job.export_id is not None, "an export run names its export"
    return job.export_id


def _summary(result: RunResult) -> str:
    files = len(result.files)
    size = sum(file.stats.bytes for file in result.files if file.stats)
    rows = sum(result.rows.values())
    return f"Delivered {files} file(s), {rows} row(s), {size} bytes."


EXPORT_RUNS = lifecycle.kind_register(ExportRuns())
