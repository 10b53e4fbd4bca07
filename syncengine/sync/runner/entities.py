"""Entity by entity, batch by batch: read from the source, worked out against the record store
(or a snapshot), sent to the destination, then committed with the cursor and the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.choices import SyncMode
from connectors.registry import ConnectorError, EntitySpec
from integrations.choices import SyncStrategy
from syncengine.jobs.lifecycle import (
    job_log,
)
from syncengine.models import Snapshot, SyncStream
from syncengine.sync import bulk, transform
from syncengine.sync.runner.context import EntityStats, RunContext, beat, checkpoint, stream_of
from syncengine.sync.runner.windows import (
    CursorTracker,
    date_range_values,
    records_total,
    since,
    window_of,
)
from syncengine.sync.store import UNSET, BatchResult, RecordStoreWriter, SnapshotWriter


def entities_of(ctx: RunContext) -> list[tuple[str, str]]:
    """``(entity, destination entity)`` pairs this run syncs, in order."""
    chosen = transform.sync_entities(ctx.tasks)
    if ctx.job.entities:
        destinations = dict(chosen)
        return [(entity, destinations.get(entity, entity)) for entity in ctx.job.entities]
    if chosen:
        return chosen
    if ctx.source.entities:
        return [(entity, entity) for entity in ctx.source.entities]
    return [(spec.name, spec.name) for spec in discovered(ctx)]


def discovered(ctx: RunContext) -> list[EntitySpec]:
    """The source's entities, asked for once per run (a database source reads its catalog)."""
    if ctx.discovered is None:
        try:
            ctx.discovered = ctx.source.discover()
        except NotImplementedError:
            ctx.discovered = []
    return ctx.discovered


def specs_of(ctx: RunContext, entities: list[str]) -> dict[str, EntitySpec]:
    specs = {spec.name: spec for spec in discovered(ctx)}
    missing = [entity for entity in entities if entity not in specs]
    if missing:
        raise ConnectorError(
            f"Unknown entities for {ctx.connection.connector_id}: {', '.join(missing)}.",
            retryable=False,
        )
    return specs


def sync_entities(ctx: RunContext) -> None:
    job = ctx.job
    pairs = entities_of(ctx)
    specs = specs_of(ctx, [entity for entity, _ in pairs])
    if job.mode == SyncMode.SNAPSHOT:
        snapshot_start(ctx)
    for entity, _ in pairs:
        ctx.stats.setdefault(entity, EntityStats())
    pending = [
        (entity, destination_entity)
        for entity, destination_entity in pairs
        if entity not in job.entities_done or job.mode == SyncMode.SNAPSHOT
    ]
    ctx.records_total = records_total(ctx, [specs[entity] for entity, _ in pending])
    beat(ctx, entity=None, total_entities=len(pairs))
    for entity, destination_entity in pending:
        sync_entity(ctx, specs[entity], destination_entity, total_entities=len(pairs))
    if ctx.snapshot is not None:
        Snapshot.objects.filter(pk=ctx.snapshot.pk).update(
            complete=True, completed_at=timezone.now()
        )


def snapshot_start(ctx: RunContext) -> None:
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


def sync_entity(
    ctx: RunContext, spec: EntitySpec, destination_entity: str, *, total_entities: int
) -> None:
    job, entity = ctx.job, spec.name
    stats = ctx.stats[entity]
    plan = transform.entity_plan(
        entity, mappings=ctx.mappings, tasks=ctx.tasks, cursor_field=spec.cursor_field
    )
    snapshot_writer: SnapshotWriter | None = None
    writer: RecordStoreWriter | None = None
    if ctx.snapshot is not None:
        snapshot_writer = SnapshotWriter(ctx.snapshot, entity)
    else:
        writer = RecordStoreWriter(
            stream_of(ctx, entity), strategy=ctx.strategy, now=ctx.now, since=since(job)
        )
    # A read bounded by a date range leaves the stream's cursor where it was: it did not read
    # all that came after.
    cursor, date_range, resuming = window_of(ctx, spec, writer.stream if writer else None)
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
        copy_entity(
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
        date_range=date_range_values(date_range),
        batch_size=settings.SYNC_BATCH_SIZE,
    ):
        rows: list[tuple[str, dict[str, Any]]] = []
        keep: list[dict[str, Any]] = []
        for record in batch.records:
            stats.read += 1
            key = transform.record_key(record, spec.primary_key)
            if isinstance(key, transform.Rejected):
                count_rejected(stats, key)
                continue
            transformed = plan.apply(record, key)
            if isinstance(transformed, transform.Rejected):
                count_rejected(stats, transformed)
                continue
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
                checkpoint(ctx, entity=entity, total_entities=total_entities)
        else:
            assert writer is not None
            written = writer.plan(rows)
            if ctx.destination is not None and written.result.changed:
                # Outside any transaction: a slow destination keeps nothing of ours open or
                # locked, and the batch is committed (with its cursor) only once it took it.
                ctx.destination.write(destination_entity, written.result.changed)
            with transaction.atomic():
                result = writer.commit(written, cursor=safe_cursor if date_range is None else UNSET)
                count_batch(stats, result, resuming=resuming)
                job.cursors[entity] = safe_cursor
                checkpoint(ctx, entity=entity, total_entities=total_entities)
        ctx.run.stop_if_cancelled()
    if writer is not None:
        final = tracker.final()
        if date_range is None and final is not None and final != tracker.committed:
            writer.write([], cursor=final)
        deleted, warning = writer.finish(
            # Only a read of everything can tell which records are gone.
            full=job.mode == SyncMode.FULL and date_range is None and cursor is None,
            min_rows_ratio=float(ctx.sync_settings.get("min_rows_ratio") or 0),
            forward=forward_deletes(ctx, destination_entity),
        )
        entity_done(ctx, entity, deleted=deleted, warning=warning, total_entities=total_entities)
        return
    entity_done(ctx, entity, total_entities=total_entities)


def count_rejected(stats: EntityStats, rejected: transform.Rejected) -> None:
    stats.errors += 1
    if len(stats.error_samples) < transform.ERROR_SAMPLE_LIMIT:
        stats.error_samples.append(transform.error_sample(rejected))


def count_batch(stats: EntityStats, result: BatchResult, *, resuming: bool) -> None:
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


def forward_deletes(
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


def entity_done(
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
    beat(ctx, entity=None, total_entities=total_entities)


def copy_entity(
    ctx: RunContext,
    spec: EntitySpec,
    stream: SyncStream,
    *,
    cursor: Any,
    date_range: tuple[Any, Any] | None,
    resuming: bool,
    total: int,
) -> None:
    """The bulk path (``syncengine.sync.bulk``): records go from the source's ``COPY`` lines to the
    store's without becoming Python objects. Same batches, cursors, cancel and counts."""
    job, entity = ctx.job, spec.name
    stats = ctx.stats[entity]
    full = job.mode == SyncMode.FULL and date_range is None and cursor is None
    writer = bulk.BulkRecordWriter(
        stream, strategy=ctx.strategy, full=full, now=ctx.now, since=since(job)
    )
    job_log(job, f"{entity}: copying in bulk.")
    highest = cursor
    # A full overwrite that fails starts its entity over (it must see every record), so it has
    # no use for resumable cursor order: it reads in storage order, without waiting for a sort.
    ordered = not (full and ctx.strategy == SyncStrategy.OVERWRITE)
    batches = ctx.source.copy_rows(
        entity,
        cursor=cursor,
        date_range=date_range_values(date_range),
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
            count_batch(stats, result, resuming=resuming)
            if ordered:
                job.cursors[entity] = batch.cursor
            checkpoint(ctx, entity=entity, total_entities=total)
        highest = batch.highest
        ctx.run.stop_if_cancelled()
    if date_range is None and highest is not None and highest != job.cursors.get(entity, cursor):
        SyncStream.objects.filter(pk=stream.pk).update(
            cursor=highest, cursor_updated_at=timezone.now()
        )
    deleted, warning = writer.finish(
        full=full, min_rows_ratio=float(ctx.sync_settings.get("min_rows_ratio") or 0)
    )
    entity_done(ctx, entity, deleted=deleted, warning=warning, total_entities=total)
