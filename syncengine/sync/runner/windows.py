"""What an attempt reads of an entity: its cursor and date window, whether it resumes an earlier
attempt, how many records that is, and the cursor that is safe to commit after each batch."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from connectors.choices import SyncMode
from connectors.registry import ConnectorError, EntitySpec
from integrations.choices import SyncStrategy
from syncengine.models import SyncJob, SyncStream
from syncengine.sync.launch import parse_moment
from syncengine.sync.runner.context import RunContext, stream_of

logger = logging.getLogger(__name__)


def since(job: SyncJob) -> datetime | None:
    """For a retry: the job's start, so the writers recognise records an earlier attempt wrote."""
    return job.started_at if job.attempts > 1 else None


def records_total(ctx: RunContext, pending: list[EntitySpec]) -> int | None:
    """The records the job will have read when it ends: those read already (by an earlier
    attempt) plus what this attempt will read, when the source can count each entity's read
    window (``Connector.count()``); None as soon as one cannot be counted."""
    waiting = {spec.name for spec in pending}
    total = sum(stats.read for entity, stats in ctx.stats.items() if entity not in waiting)
    for spec in pending:
        stream = None if ctx.snapshot is not None else stream_of(ctx, spec.name)
        cursor, date_range, resuming = window_of(ctx, spec, stream)
        try:
            count = ctx.source.count(
                spec.name, cursor=cursor, date_range=date_range_values(date_range)
            )
        except ConnectorError as error:
            # The read itself will say what is wrong, or succeed; progress just has no total.
            logger.info("Could not count %s of job %s: %s", spec.name, ctx.job.pk, error.message)
            return None
        if count is None:
            return None
        total += count + (ctx.stats[spec.name].read if resuming else 0)
    return total


def window_of(
    ctx: RunContext, spec: EntitySpec, stream: SyncStream | None
) -> tuple[Any, tuple[Any, Any] | None, bool]:
    """``(cursor, date_range, resuming)`` of this attempt's read of ``spec``.

    ``resuming``: a retry goes on after the cursor an earlier attempt committed, so the counts
    of that attempt stand. Otherwise the entity is read from the start of its window (a first
    attempt, an overwrite starting over, a source that is not read in cursor order) and its
    counts start over too, so a retry counts no record twice."""
    job = ctx.job
    cursor, date_range = read_window(ctx, stream.cursor if stream else None, spec.name)
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


def read_window(ctx: RunContext, stream_cursor: Any, entity: str) -> tuple[Any, Any]:
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


def date_range_values(date_range: tuple[Any, Any] | None) -> tuple[Any, Any] | None:
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
