"""Schedules of exports: the scheduler tick starts a run of every due export.

``Export.next_run_at`` is indexed; each tick (``syncengine.tasks.schedules_tick``) claims the due
rows in batches with ``SELECT ... FOR NO KEY UPDATE SKIP LOCKED``, queues a run for each and
advances ``next_run_at`` in the same transaction, exactly as integrations' schedules are claimed
(``syncengine.sync.scheduler``): two ticks at once split the due rows, and a row one of them
advanced is no longer due for the other, so a run is never started twice.

The next run is the first wall-clock occurrence of the schedule after the tick, read in the
export's time zone (``services.schedule_next_run_at``): at a daylight-saving change a time that
does not exist runs once, that many minutes later, and a time that happens twice runs once, at
its first occurrence. Runs missed while nothing ticked are not replayed one by one.

An export whose previous run is still queued or running gets no second one: the due run is
skipped (and logged) and only the schedule moves on, so a run slower than its schedule never
overlaps the next.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.db import rows_update
from exports.choices import ExportState
from exports.models import Export
from exports.services import schedule_next_run_at
from syncengine.choices import JobKind, JobTrigger
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import ACTIVE_STATUSES, log_line
from syncengine.models import SyncJob

logger = logging.getLogger(__name__)

# One tick stops after this many batches and leaves the rest to the next tick.
MAX_BATCHES_PER_TICK = 200


def exports_schedule_tick(*, now: datetime | None = None) -> int:
    """Queue a run of every export due at ``now`` and advance its ``next_run_at``; returns how
    many runs were queued. Safe to call in several processes at once."""
    now = now or timezone.now()
    started = 0
    batch_size = settings.SCHEDULER_BATCH_SIZE
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed, queued = _batch(now=now, limit=batch_size)
        started += queued
        if claimed < batch_size:
            break
    if started:
        logger.info("Scheduler started %d export runs", started)
    return started


def _batch(*, now: datetime, limit: int) -> tuple[int, int]:
    """Claim up to ``limit`` due exports, queue their runs; returns (claimed, runs queued)."""
    with transaction.atomic():
        due = list(
            Export.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(next_run_at__lte=now, state=ExportState.ACTIVE)
            .exclude(frequency="")
            .order_by("next_run_at")[:limit]
        )
        if not due:
            return 0, 0
        busy = set(
            SyncJob.objects.filter(
                export_id__in=[export.pk for export in due], status__in=ACTIVE_STATUSES
            ).values_list("export_id", flat=True)
        )
        runs: list[SyncJob] = []
        for export in due:
            if export.pk in busy:
                logger.info("Export %s is still running; its scheduled run is skipped", export.pk)
            else:
                runs.append(
                    SyncJob(
                        account_id=export.account_id,
                        export_id=export.pk,
                        kind=JobKind.EXPORT,
                        trigger=JobTrigger.SCHEDULE,
                        entities=list(export.entities),
                        log=[log_line("Queued by the schedule.")],
                    )
                )
            export.next_run_at = schedule_next_run_at(
                frequency=export.frequency,
                day=export.day,
                time=export.time,
                timezone=export.timezone,
                now=now,
            )
        lifecycle.runs_create(runs)
        rows_update(due, ["next_run_at"])
    return len(due), len(runs)
