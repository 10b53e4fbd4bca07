"""Connector syncs, a kind of run (``syncengine.lifecycle``): read a source connector entity by
entity, batch by batch, into the record store (or a snapshot), and forward what changed to a
destination connector.

The lifecycle claims, beats, fences, retries and ends the run; this module is its work. Each batch
is committed together with its cursor and the run's checkpoint, so a retry resumes after the last
committed batch, and a cancel or a lost worker never undoes what was committed. The source's read
and the destination's write happen outside any database transaction: a batch is read, its changes
are worked out against the store, sent to the destination, and only then committed, so a slow
source or destination holds no lock and no open transaction, and a batch the destination did not
take is not recorded as done. Retryable connector errors (timeouts, 5xx, 429) put the run back in
the queue with an exponential backoff; others fail it at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.choices import EventType
from accounts.services import event_record
from connectors.choices import SyncMode
from connectors.models import Connection
from connectors.registry import Connector, ConnectorError, EntitySpec, get_connector
from connectors.services import resolve_credentials
from integrations.choices import ImportDependencyStatus, SyncStrategy
from integrations.models import SYNC_SETTINGS_DEFAULTS, Integration
from syncengine import bulk, dependencies, lifecycle, transform
from syncengine.choices import JobKind, JobStatus
from syncengine.ingest import feed_import, mapping_overrides
from syncengine.jobs import parse_moment
from syncengine.lifecycle import (
    GO,
    Gate,
    Outcome,
    Run,
    RunCancelled,
    RunFailure,
    RunKind,
    RunLost,
    job_log,
)
from syncengine.models import Snapshot, SyncJob, SyncStream
from syncengine.pull import pull_files
from syncengine.store import UNSET, BatchResult, RecordStoreWriter, SnapshotWriter, stream_for

logger = logging.getLogger(__name__)


@dataclass
class EntityStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: int = 0
    skipped: int = 0
    read: int = 0
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "errors": self.errors,
            "skipped": self.skipped,
            "read": self.read,
        }
        if self.error_samples:
            data["errorSamples"] = self.error_samples
        if self.warnings:
            data["warnings"] = self.warnings
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntityStats:
        return cls(
            created=data.get("created", 0),
            updated=data.get("updated", 0),
            unchanged=data.get("unchanged", 0),
            deleted=data.get("deleted", 0),
            errors=data.get("errors", 0),
            skipped=data.get("skipped", 0),
            read=data.get("read", 0),
            error_samples=list(data.get("errorSamples", [])),
            warnings=list(data.get("warnings", [])),
        )


@dataclass
class RunContext:
    """Everything a run needs, resolved once when it starts."""

    run: Run
    job: SyncJob
    source: Connector
    integration: Integration | None
    connection: Connection
    destination: Connector | None
    strategy: str
    sync_settings: dict[str, Any]
    tasks: list[Any]
    mappings: dict[str, str | None]
    now: datetime
    stats: dict[str, EntityStats] = field(default_factory=dict)
    # Files a pull went through (entity syncs count records read in their stats).
    records_done: int = 0
    records_total: int | None = None
    snapshot: Snapshot | None = None
    discovered: list[EntitySpec] | None = None


# --- the kind of run --------------------------------------------------------------------------


class SyncRuns(RunKind):
    """Connector syncs of an integration or a connection, and file pulls of an integration
    whose source is a connection that feeds files (``sftp_pull``, ``sftp``, ``s3``,
    ``azure_blob``)."""

    kind = JobKind.SYNC
    task = "syncengine.tasks.run_sync_job"

    def gate(self, job: SyncJob, now: datetime) -> Gate:
        integration = job.integration
        if integration is None:
            return GO
        if not integration.is_active:
            return Gate(
                end=True,
                reason="The integration is inactive or deleted; the run did not start.",
                counts_as_failure=False,
            )
        if not integration.depends_on.exists():
            return GO
        check = dependencies.dependency_check(integration=integration, job=job, now=now)
        job.dependency_checks += 1
        job.dependency_status = check.status
        SyncJob.objects.filter(pk=job.pk).update(
            dependency_checks=job.dependency_checks, dependency_status=check.status
        )
        if check.status == ImportDependencyStatus.READY:
            job_log(job, "Import dependencies are ready.")
            return GO
        if check.status == ImportDependencyStatus.WAITING:
            return Gate(wait=dependencies.recheck_delay(job.dependency_checks), reason=check.reason)
        return Gate(end=True, reason=f"Import dependencies failed: {check.reason}")

    def work(self, run: Run) -> Outcome:
        ctx = _context(run)
        if ctx.source.feeds_files:
            _pull(ctx)
        else:
            _sync_entities(ctx)
        job = run.job
        job.progress = {**job.progress, "entity": None, "entitiesDone": len(job.entities_done)}
        stats = {name: entity.as_json() for name, entity in ctx.stats.items()}
        over_budget = _error_budget_exceeded(ctx)
        return Outcome(
            status=JobStatus.FAILED if over_budget else JobStatus.COMPLETED,
            error=over_budget or "",
            stats=stats,
            progress=job.progress,
            detail=ctx,
        )

    def classify(self, error: Exception) -> RunFailure:
        if isinstance(error, ConnectorError):
            return RunFailure(error.message, retryable=error.retryable)
        logger.exception("Sync run failed")
        return super().classify(error)

    def claimed(self, job: SyncJob) -> None:
        if job.attempts == 1:
            payload = self.payload(job, Outcome(), "")
            payload.pop("status", None)
            event_record(
                account=job.account,
                type=EventType.SYNC_STARTED,
                integration_id=job.integration_id,
                payload={**payload, "entities": job.entities},
            )

    def ended(self, job: SyncJob, outcome: Outcome, status: str) -> None:
        if status == JobStatus.COMPLETED:
            source = job.connection_id
            if job.integration is not None:
                source = job.integration.source_connection_id
            if source is not None:
                Connection.objects.filter(pk=source).update(last_sync_at=timezone.now())
        else:
            # Only a complete snapshot is a point-in-time copy.
            Snapshot.objects.filter(job=job).delete()


SYNC_RUNS = lifecycle.kind_register(SyncRuns())


def sync_job_run(job_id: Any) -> SyncJob | None:
    """Run one queued sync job in this process, as its task does (see ``lifecycle``)."""
    return lifecycle.run_execute(job_id)


# --- running ----------------------------------------------------------------------------------


def _connector(connection: Connection) -> Connector:
    connector_class = get_connector(connection.connector_id)
    if connector_class is None:
        raise ConnectorError(
            f"The connector {connection.connector_id!r} is not installed.", retryable=False
        )
    return connector_class(config=connection.config, credentials=resolve_credentials(connection))


def _context(run: Run) -> RunContext:
    job = run.job
    integration = job.integration
    destination: Connector | None = None
    if integration is not None:
        connection = integration.source_connection
        if connection is None:
            raise ConnectorError("The integration has no source (sourceAppId).", retryable=False)
        target = integration.destination_connection
        if target is not None:
            target_class = get_connector(target.connector_id)
            if target_class is not None and target_class.is_destination:
                destination = _connector(target)
        sync_settings = {**SYNC_SETTINGS_DEFAULTS, **(integration.sync_settings or {})}
        tasks = list((integration.config or {}).get("tasks") or [])
        mappings = mapping_overrides(feed_import(integration))
    else:
        assert job.connection is not None  # a job belongs to an integration or a connection
        connection = job.connection
        sync_settings = dict(SYNC_SETTINGS_DEFAULTS)
        tasks, mappings = [], {}
    return RunContext(
        run=run,
        job=job,
        source=_connector(connection),
        integration=integration,
        connection=connection,
        destination=destination,
        strategy=job.strategy or str(sync_settings["strategy"]) or SyncStrategy.MERGE,
        sync_settings=sync_settings,
        tasks=tasks,
        mappings=mappings,
        now=timezone.now(),
        stats={entity: EntityStats.from_json(data) for entity, data in job.stats.items()},
    )


def _entities(ctx: RunContext) -> list[tuple[str, str]]:
    """``(entity, destination entity)`` pairs this run syncs, in order."""
    chosen = transform.sync_entities(ctx.tasks)
    if ctx.job.entities:
        destinations = dict(chosen)
        return [(entity, destinations.get(entity, entity)) for entity in ctx.job.entities]
    if chosen:
        return chosen
    if ctx.source.entities:
        return [(entity, entity) for entity in ctx.source.entities]
    return [(spec.name, spec.name) for spec in _discovered(ctx)]


def _discovered(ctx: RunContext) -> list[EntitySpec]:
    """The source's entities, asked for once per run (a database source reads its catalog)."""
    if ctx.discovered is None:
        try:
            ctx.discovered = ctx.source.discover()
        except NotImplementedError:
            ctx.discovered = []
    return ctx.discovered


def _specs(ctx: RunContext, entities: list[str]) -> dict[str, EntitySpec]:
    specs = {spec.name: spec for spec in _discovered(ctx)}
    missing = [entity for entity in entities if entity not in specs]
    if missing:
        raise ConnectorError(
            f"Unknown entities for {ctx.connection.connector_id}: {', '.join(missing)}.",
            retryable=False,
        )
    return specs


def _sync_entities(ctx: RunContext) -> None:
    job = ctx.job
    pairs = _entities(ctx)
    specs = _specs(ctx, [entity for entity, _ in pairs])
    if job.mode == SyncMode.SNAPSHOT:
        _snapshot_start(ctx)
    for entity, _ in pairs:
        ctx.stats.setdefault(entity, EntityStats())
    pending = [
        (entity, destination_entity)
        for entity, destination_entity in pairs
        if entity not in job.entities_done or job.mode == SyncMode.SNAPSHOT
    ]
    ctx.records_total = _records_total(ctx, [specs[entity] for entity, _ in pending])
    _beat(ctx, entity=None, total_entities=len(pairs))
    for entity, destination_entity in pending:
        _sync_entity(ctx, specs[entity], destination_entity, total_entities=len(pairs))
    if ctx.snapshot is not None:
        Snapshot.objects.filter(pk=ctx.snapshot.pk).update(
            complete=True, completed_at=timezone.now()
        )


def _stream(ctx: RunContext, entity: str) -> SyncStream:
    job = ctx.job
    return stream_for(
        account_id=job.account_id,
        integration_id=job.integration_id,
        connection_id=None if job.integration_id else job.connection_id,
        entity=entity,
    )


def _records_total(ctx: RunContext, pending: list[EntitySpec]) -> int | None:
    """The records the job will have read when it ends: those read already (by an earlier
    attempt) plus what this attempt will read, when the source can count each entity's read
    window (``Connector.count()``); None as soon as one cannot be counted."""
    waiting = {spec.name for spec in pending}
    total = sum(stats.read for entity, stats in ctx.stats.items() if entity not in waiting)
    for spec in pending:
        stream = None if ctx.snapshot is not None else _stream(ctx, spec.name)
        cursor, date_range, resuming = _window_of(ctx, spec, stream)
        try:
            count = ctx.source.count(
                spec.name, cursor=cursor, date_range=_date_range_values(date_range)
            )
        except ConnectorError as error:
            # The read itself will say what is wrong, or succeed; progress just has no total.
            logger.info("Could not count %s of job %s: %s", spec.name, ctx.job.pk, error.message)
            return None
        if count is None:
            return None
        total += count + (ctx.stats[spec.name].read if resuming else 0)
    return total


def _window_of(
    ctx: RunContext, spec: EntitySpec, stream: SyncStream | None
) -> tuple[Any, tuple[Any, Any] | None, bool]:
    """``(cursor, date_range, resuming)`` of this attempt's read of ``spec``.

    ``resuming``: a retry goes on after the cursor an earlier attempt committed, so the counts
    of that attempt stand. Otherwise the entity is read from the start of its window (a first
    attempt, an overwrite starting over, a source that is not read in cursor order) and its
    counts start over too, so a retry counts no record twice."""
    job = ctx.job
    cursor, date_range = _read_window(ctx, stream.cursor if stream else None, spec.name)
    if ctx.snapshot is not None:
        cursor = None
    resuming = (
        job.attempts > 1
        and spec.ordered
        and cursor is not None
        and spec.name in job.cursors
        and cursor == job.cursors[spec.name]
    )
    return cursor, date_range, resuming


def _read_window(ctx: RunContext, stream_cursor: Any, entity: str) -> tuple[Any, Any]:
    """``(cursor, date_range)`` to read ``entity`` with, by mode, date range and rolling window.

    A retry of this job resumes from the cursor its last committed batch reached."""
    job = ctx.job
    resume = job.cursors.get(entity) if job.attempts > 1 else None
    date_range = None
    if job.date_range:
        date_range = (job.date_range.get("from"), job.date_range.get("to"))
    elif ctx.integration is not None and ctx.integration.rolling_window_days:
        start = ctx.now - timedelta(days=ctx.integration.rolling_window_days)
        if job.mode == SyncMode.INCREMENTAL:
            # Re-read the whole window: late changes inside it are picked up, unchanged
            # records cost a hash comparison.
            return resume, (start.isoformat(), None)
    if job.mode == SyncMode.INCREMENTAL:
        # An explicit date range replaces the saved cursor: it says which records to read.
        saved = None if date_range is not None else stream_cursor
        return (resume if resume is not None else saved), date_range
    if job.mode == SyncMode.FULL and ctx.strategy != SyncStrategy.OVERWRITE:
        # An overwrite must see every record to know which ones are gone, so it starts over.
        return resume, date_range
    return None, date_range


def _sync_entity(
    ctx: RunContext, spec: EntitySpec, destination_entity: str, *, total_entities: int
) -> None:
    job, entity = ctx.job, spec.name
    stats = ctx.stats[entity]
    plan = transform.entity_plan(entity, mappings=ctx.mappings, tasks=ctx.tasks)
    snapshot_writer: SnapshotWriter | None = None
    writer: RecordStoreWriter | None = None
    if ctx.snapshot is not None:
        snapshot_writer = SnapshotWriter(ctx.snapshot, entity)
    else:
        writer = RecordStoreWriter(
            _stream(ctx, entity), strategy=ctx.strategy, now=ctx.now, since=_since(job)
        )
    # A read bounded by a date range leaves the stream's cursor where it was: it did not read
    # all that came after.
    cursor, date_range, resuming = _window_of(ctx, spec, writer.stream if writer else None)
    if not resuming:
        ctx.stats[entity] = EntityStats()
        stats = ctx.stats[entity]
    job_log(
        job,
        f"{entity}: reading"
        + (f" after cursor {cursor!r}" if cursor is not None else " from the start")
        + (f" within {date_range[0]} .. {date_range[1]}" if date_range else "")
        + ".",
    )
    if (
        writer is not None
        and ctx.destination is None
        and not plan.steps
        and bulk.bulk_available()
        and ctx.source.can_copy(entity)
    ):
        _copy_entity(
            ctx,
            spec,
            writer.stream,
            cursor=cursor,
            date_range=date_range,
            resuming=resuming,
            total=total_entities,
        )
        return
    # A source not read in cursor order commits no cursor until the entity is read through.
    tracker = CursorTracker(spec.cursor_field if spec.ordered else None, start=cursor)
    for batch in ctx.source.read(
        entity,
        cursor=cursor,
        date_range=_date_range_values(date_range),
        batch_size=settings.SYNC_BATCH_SIZE,
    ):
        rows: list[tuple[str, dict[str, Any]]] = []
        keep: list[dict[str, Any]] = []
        for record in batch.records:
            stats.read += 1
            key = transform.record_key(record, spec.primary_key)
            if isinstance(key, transform.Rejected):
                stats.errors += 1
                if len(stats.error_samples) < transform.ERROR_SAMPLE_LIMIT:
                    stats.error_samples.append(transform.error_sample(key))
                continue
            transformed = plan.apply(record)
            if transformed is None:
                stats.skipped += 1
                continue
            rows.append((key, transformed))
            keep.append(transformed)
        safe_cursor = tracker.advance(batch.records, batch.cursor)
        if snapshot_writer is not None:
            with transaction.atomic():
                stats.created += snapshot_writer.write(keep)
                job.cursors[entity] = safe_cursor
                _checkpoint(ctx, entity=entity, total_entities=total_entities)
        else:
            assert writer is not None
            written = writer.plan(rows)
            if ctx.destination is not None and written.result.changed:
                # Outside any transaction: a slow destination keeps nothing of ours open or
                # locked, and the batch is committed (with its cursor) only once it took it.
                ctx.destination.write(destination_entity, written.result.changed)
            with transaction.atomic():
                result = writer.commit(written, cursor=safe_cursor if date_range is None else UNSET)
                _count(stats, result, resuming=resuming)
                job.cursors[entity] = safe_cursor
                _checkpoint(ctx, entity=entity, total_entities=total_entities)
        ctx.run.stop_if_cancelled()
    if writer is not None:
        final = tracker.final()
        if date_range is None and final is not None and final != tracker.committed:
            writer.write([], cursor=final)
        deleted, warning = writer.finish(
            # Only a read of everything can tell which records are gone.
            full=job.mode == SyncMode.FULL and date_range is None and cursor is None,
            min_rows_ratio=float(ctx.sync_settings.get("min_rows_ratio") or 0),
            forward=_forward_deletes(ctx, destination_entity),
        )
        _entity_done(ctx, entity, deleted=deleted, warning=warning, total_entities=total_entities)
        return
    _entity_done(ctx, entity, total_entities=total_entities)


def _since(job: SyncJob) -> datetime | None:
    """For a retry: the job's start, so the writers recognise records an earlier attempt wrote."""
    return job.started_at if job.attempts > 1 else None


def _count(stats: EntityStats, result: BatchResult, *, resuming: bool) -> None:
    """Add a batch's outcome to its entity's counts. A record an earlier attempt already wrote
    and this one reads again unchanged was counted by that attempt when this one resumes after
    its cursor, so it is not counted (nor read) twice; when this attempt starts the entity over,
    it counts as what the earlier attempt did to it, created or updated."""
    again = result.again_created + result.again_updated
    stats.unchanged += result.unchanged - again
    stats.skipped += result.skipped
    if resuming:
        stats.read -= again
        stats.created += result.created
        stats.updated += result.updated
    else:
        stats.created += result.created + result.again_created
        stats.updated += result.updated + result.again_updated


def _forward_deletes(
    ctx: RunContext, destination_entity: str
) -> Callable[[list[dict[str, Any]]], object] | None:
    """What removes the records an overwrite dropped from the store from the destination too;
    None without a destination, or (logged) when the destination cannot remove records."""
    destination = ctx.destination
    if destination is None:
        return None
    if not destination.supports_delete:

        def log_only(records: list[dict[str, Any]]) -> None:
            job_log(
                ctx.job,
                f"{destination_entity}: {len(records)} record(s) removed from the store stay in "
                "the destination, which cannot remove records.",
                level="warning",
            )

        return log_only
    return lambda records: destination.delete(destination_entity, records)


def _entity_done(
    ctx: RunContext,
    entity: str,
    *,
    deleted: int = 0,
    warning: str | None = None,
    total_entities: int,
) -> None:
    """An entity read through: the overwrite's deletions (or why there were none) counted, its
    summary logged, the job's progress saved."""
    job, stats = ctx.job, ctx.stats[entity]
    stats.deleted += deleted
    if warning:
        stats.warnings.append(warning)
        job_log(job, f"{entity}: {warning}", level="warning")
    job.entities_done = [*job.entities_done, entity]
    job_log(
        job,
        f"{entity}: {stats.read} read, {stats.created} created, {stats.updated} updated, "
        f"{stats.unchanged} unchanged, {stats.deleted} deleted, {stats.skipped} skipped, "
        f"{stats.errors} rejected.",
    )
    _beat(ctx, entity=None, total_entities=total_entities)


def _copy_entity(
    ctx: RunContext,
    spec: EntitySpec,
    stream: SyncStream,
    *,
    cursor: Any,
    date_range: tuple[Any, Any] | None,
    resuming: bool,
    total: int,
) -> None:
    """The bulk path (``syncengine.bulk``): records go from the source's ``COPY`` lines to the
    store's without becoming Python objects. Same batches, cursors, cancel and counts."""
    job, entity = ctx.job, spec.name
    stats = ctx.stats[entity]
    full = job.mode == SyncMode.FULL and date_range is None and cursor is None
    writer = bulk.BulkRecordWriter(
        stream, strategy=ctx.strategy, full=full, now=ctx.now, since=_since(job)
    )
    job_log(job, f"{entity}: copying in bulk.")
    highest = cursor
    # A full overwrite that fails starts its entity over (it must see every record), so it has
    # no use for resumable cursor order: it reads in storage order, without waiting for a sort.
    ordered = not (full and ctx.strategy == SyncStrategy.OVERWRITE)
    batches = ctx.source.copy_rows(
        entity,
        cursor=cursor,
        date_range=_date_range_values(date_range),
        batch_rows=settings.SYNC_BULK_BATCH_SIZE,
        leading=(stream.pk,),
        ordered=ordered,
    )
    for batch in bulk.prefetched(batches, on_idle=ctx.run.beat):
        with transaction.atomic():
            result = writer.write(
                batch, cursor=batch.cursor if ordered and date_range is None else UNSET
            )
            stats.read += batch.count
            _count(stats, result, resuming=resuming)
            if ordered:
                job.cursors[entity] = batch.cursor
            _checkpoint(ctx, entity=entity, total_entities=total)
        highest = batch.highest
        ctx.run.stop_if_cancelled()
    if date_range is None and highest is not None and highest != job.cursors.get(entity, cursor):
        SyncStream.objects.filter(pk=stream.pk).update(
            cursor=highest, cursor_updated_at=timezone.now()
        )
    deleted, warning = writer.finish(
        full=full, min_rows_ratio=float(ctx.sync_settings.get("min_rows_ratio") or 0)
    )
    _entity_done(ctx, entity, deleted=deleted, warning=warning, total_entities=total)


def _date_range_values(date_range: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
    """ISO strings to the dates and datetimes the connectors compare with."""
    if date_range is None:
        return None

    def parse(value: Any) -> Any:
        return parse_moment(value) if isinstance(value, str) else value

    return (parse(date_range[0]), parse(date_range[1]))


class CursorTracker:
    """The cursor that is safe to commit after each batch.

    Records come in cursor order, but records sharing the last cursor value of a batch may go on
    in the next batch; committing that value and resuming with ``> cursor`` would lose them. So
    after a batch the committed cursor is the highest value strictly below the batch's last one
    (every record up to it has been read), and the last value is committed once the read ends.
    """

    def __init__(self, field_name: str | None, *, start: Any) -> None:
        self.field_name = field_name
        self.committed = start
        self._last: Any = start
        # The last cursor value of the batch before: below this batch's last value, everything
        # up to it is read (a batch whose records all share one value still moves the cursor).
        self._previous: Any = None

    def advance(self, records: list[dict[str, Any]], batch_cursor: Any) -> Any:
        if batch_cursor is not None:
            self._last = batch_cursor
        if self.field_name is None or not records:
            return self.committed
        values: list[Any] = [
            record[self.field_name]
            for record in records
            if isinstance(record, dict) and record.get(self.field_name) is not None
        ]
        if not values:
            return self.committed
        last = values[-1]
        candidates = values if self._previous is None else [self._previous, *values]
        self._previous = last
        try:
            below = [value for value in candidates if value < last]
        except TypeError:
            return self.committed
        if below:
            self.committed = max(below)
        return self.committed

    def final(self) -> Any:
        return self._last


# --- checkpoints and cancel -------------------------------------------------------------------


def _beat(ctx: RunContext, *, entity: str | None, total_entities: int) -> None:
    """Save stats and progress with a heartbeat; stop if a cancel was asked for (the checkpoint
    itself stops a run whose claim was taken over)."""
    _checkpoint(ctx, entity=entity, total_entities=total_entities)
    ctx.run.stop_if_cancelled()


def _checkpoint(ctx: RunContext, *, entity: str | None, total_entities: int) -> None:
    """Save stats, progress and cursors with a heartbeat. Called inside each batch's
    transaction, so what the job says it did is exactly what was committed, and a run whose
    claim was taken over (``RunLost``) rolls its batch back instead of committing it."""
    job = ctx.job
    done = (
        ctx.records_done
        if ctx.source.feeds_files
        else sum(stats.read for stats in ctx.stats.values())
    )
    ctx.run.checkpoint(
        stats={name: stats.as_json() for name, stats in ctx.stats.items()},
        progress={
            "recordsDone": done,
            "recordsTotal": ctx.records_total,
            "entitiesDone": len(job.entities_done),
            "entitiesTotal": total_entities,
            "entity": entity,
        },
        cursors=job.cursors,
        entities_done=job.entities_done,
    )


def _should_stop(ctx: RunContext) -> bool:
    try:
        _beat(ctx, entity=None, total_entities=1)
    except (RunCancelled, RunLost):
        return True
    return False


# --- snapshots and file pulls -----------------------------------------------------------------


def _snapshot_start(ctx: RunContext) -> None:
    """A fresh snapshot for this attempt (a retry discards what a failed attempt copied)."""
    job = ctx.job
    Snapshot.objects.filter(job=job).delete()
    ctx.stats = {}
    job.entities_done = []
    ctx.snapshot = Snapshot.objects.create(
        account_id=job.account_id,
        integration_id=job.integration_id,
        connection_id=None if job.integration_id else job.connection_id,
        job=job,
    )


def _pull(ctx: RunContext) -> None:
    assert ctx.integration is not None  # connections of file sources cannot sync on their own
    result = pull_files(
        job=ctx.job,
        integration=ctx.integration,
        connection=ctx.connection,
        should_stop=lambda: _should_stop(ctx),
    )
    ctx.stats["files"] = EntityStats(
        created=result.taken,
        unchanged=result.skipped,
        errors=result.failed,
        # Files tried: a run whose files all fail is over the error budget and fails.
        read=result.taken + result.failed,
    )
    ctx.records_done = result.taken + result.skipped + result.failed
    job_log(
        ctx.job,
        f"files: {result.taken} taken, {result.skipped} already taken, {result.failed} failed.",
    )
    _beat(ctx, entity=None, total_entities=1)


# --- endings ----------------------------------------------------------------------------------


def _error_budget_exceeded(ctx: RunContext) -> str | None:
    ratio = float(ctx.sync_settings.get("max_error_ratio", 0.1))
    read = sum(stats.read for stats in ctx.stats.values())
    errors = sum(stats.errors for stats in ctx.stats.values())
    if errors and read and errors / read > ratio:
        return (
            f"{errors} of {read} records were rejected ({errors / read:.1%}), more than the "
            f"error budget of {ratio:.0%} (syncSettings.max_error_ratio)."
        )
    return None
