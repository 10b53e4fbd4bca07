"""The scheduler tick: start a job for every due integration and connection.

Schedules are data: ``Integration.next_run_at`` and ``Connection.next_sync_at`` are indexed, and
one beat tick (``syncengine.tasks.schedules_tick``) claims the due rows in batches with
``SELECT ... FOR NO KEY UPDATE SKIP LOCKED``, queues a job for each and advances its next run in
the same transaction. Two ticks at once (a second beat, a slow tick overlapping the next) split
the due rows between them: a row locked by one is skipped by the other, and once the first
commits, the row is no longer due when PostgreSQL re-checks it. So a run is never started twice.
SQLite ignores ``select_for_update``, but its transactions are IMMEDIATE (see settings), so ticks
take turns there.

The jobs are created QUEUED through ``syncengine.jobs.lifecycle`` and their tasks sent after the
commit; a lost message is the sweep's to re-send (the job row is the outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services import Actor
from config.db import rows_update
from connectors.choices import ConnectionStatus, SyncMode
from connectors.models import Connection
from connectors.registry import get_connector_for
from connectors.scheduling import connector_syncs, sync_interval
from integrations.choices import FrequencyUnit, IntegrationState, SyncStrategy
from integrations.models import Integration
from integrations.scheduling import add_interval
from syncengine.choices import JobKind, JobTrigger
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import ACTIVE_STATUSES, log_line
from syncengine.models import SyncJob
from syncengine.sync.launch import integration_default_mode, integration_strategy

logger = logging.getLogger(__name__)

# One tick stops after this many batches (500 rows each by default) and leaves the rest to the
# next tick, so a flood of due rows cannot keep one beat task running for ever.
MAX_BATCHES_PER_TICK = 200

_INTEGRATION_FIELDS = (
    "id",
    "account_id",
    "type",
    "sync_settings",
    "frequency_value",
    "frequency_unit",
    "one_off",
    "rolling_window_days",
    "next_run_at",
    "latest_job_id",
)


# The schedules of apps above this one (exports) are claimed by the same beat tick: each
# registers, from its AppConfig.ready(), a tick that returns how many runs it started.
_OTHER_TICKS: dict[str, Callable[[], int]] = {}


def schedule_register(name: str, tick: Callable[[], int]) -> None:
    """Have the beat tick run ``tick`` too, reporting its count under ``name``."""
    _OTHER_TICKS[name] = tick


def other_schedules_tick() -> dict[str, int]:
    return {name: tick() for name, tick in _OTHER_TICKS.items()}


@dataclass
class TickResult:
    integrations: int = 0  # jobs started for integrations
    connections: int = 0  # jobs started for connections


def schedules_tick(*, now: datetime | None = None) -> TickResult:
    """Start a job for every integration and connection due at ``now`` (default: the current
    time) and advance their schedules. Safe to run in several processes at once."""
    now = now or timezone.now()
    result = TickResult()
    batch_size = settings.SCHEDULER_BATCH_SIZE
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed, started = _integrations_batch(now=now, limit=batch_size)
        result.integrations += started
        if claimed < batch_size:
            break
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed, started = _connections_batch(now=now, limit=batch_size)
        result.connections += started
        if claimed < batch_size:
            break
    if result.integrations or result.connections:
        logger.info(
            "Scheduler started %d integration and %d connection jobs",
            result.integrations,
            result.connections,
        )
    return result


def next_run_after(
    *, due: datetime, frequency_value: int | None, frequency_unit: str, one_off: bool, now: datetime
) -> datetime | None:
    """The next run of a schedule that fired at ``due``: the first interval boundary from
    ``due`` that is after ``now``, so runs missed while nothing ticked are skipped, not
    replayed one per tick. None for a one-off schedule or one without a frequency."""
    if one_off or not frequency_value or not frequency_unit:
        return None
    if frequency_unit == FrequencyUnit.MONTHS:
        # Counted from ``due`` each time: Jan 31 2024 + 1 month is Feb 29, + 2 months Mar 31
        # (add_interval clamps to the month's end, so chaining would drift to the 29th).
        steps = 1
        while (candidate := add_interval(due, frequency_value * steps, frequency_unit)) <= now:
            steps += 1
        return candidate
    interval = add_interval(due, frequency_value, frequency_unit) - due
    return due + interval * (max(0, (now - due) // interval) + 1)


def _rolling_window(integration: Integration, now: datetime) -> dict[str, str] | None:
    """``rollingWindowDays``: a scheduled run reads the last N days only (0 means no window)."""
    if not integration.rolling_window_days:
        return None
    return {"from": (now - timedelta(days=integration.rolling_window_days)).date().isoformat()}


def _integration_runs_start(integrations: Sequence[Integration], *, now: datetime) -> list[SyncJob]:
    """Queue a scheduled job for each of these claimed (locked) integrations and advance their
    schedules. An integration whose previous job is still queued or running gets no second one:
    the due run is folded into it, and only the schedule moves on."""
    busy = set(
        SyncJob.objects.filter(
            integration_id__in=[integration.pk for integration in integrations],
            status__in=ACTIVE_STATUSES,
        ).values_list("integration_id", flat=True)
    )
    jobs: list[SyncJob] = []
    for integration in integrations:
        if integration.pk in busy:
            logger.info(
                "Integration %s is still syncing; its scheduled run is skipped", integration.pk
            )
        else:
            job = SyncJob(
                account_id=integration.account_id,
                integration_id=integration.pk,
                kind=JobKind.SYNC,
                trigger=JobTrigger.SCHEDULE,
                mode=integration_default_mode(integration),
                strategy=integration_strategy(integration),
                date_range=_rolling_window(integration, now),
                log=[log_line("Queued by the schedule.")],
            )
            jobs.append(job)
            integration.latest_job_id = job.pk
        integration.next_run_at = next_run_after(
            due=integration.next_run_at or now,
            frequency_value=integration.frequency_value,
            frequency_unit=integration.frequency_unit,
            one_off=integration.one_off,
            now=now,
        )
    lifecycle.runs_create(jobs)
    rows_update(integrations, ["next_run_at", "latest_job_id"])
    return jobs


def _integrations_batch(*, now: datetime, limit: int) -> tuple[int, int]:
    """Claim and start up to ``limit`` due integrations; returns (claimed, jobs started)."""
    with transaction.atomic():
        # Feed integrations (no source connection) run when a file arrives, never by schedule.
        due = list(
            Integration.all_objects.select_for_update(skip_locked=True, no_key=True)
            .filter(
                next_run_at__lte=now,
                state=IntegrationState.ACTIVE,
                deleted_at__isnull=True,
                source_connection__isnull=False,
            )
            .order_by("next_run_at")
            .only(*_INTEGRATION_FIELDS)[:limit]
        )
        if not due:
            return 0, 0
        jobs = _integration_runs_start(due, now=now)
    return len(due), len(jobs)


def _connections_batch(*, now: datetime, limit: int) -> tuple[int, int]:
    """Claim and start up to ``limit`` due connections with autoSync on."""
    with transaction.atomic():
        due = list(
            Connection.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(next_sync_at__lte=now, status=ConnectionStatus.ACTIVE, config__autoSync=True)
            .order_by("next_sync_at")
            .only("id", "account_id", "connector_id", "config", "next_sync_at")[:limit]
        )
        if not due:
            return 0, 0
        busy = set(
            SyncJob.objects.filter(
                connection_id__in=[connection.pk for connection in due],
                status__in=ACTIVE_STATUSES,
            ).values_list("connection_id", flat=True)
        )
        jobs: list[SyncJob] = []
        for connection in due:
            interval = sync_interval(connection.config.get("syncInterval"))
            if interval is None or not connector_syncs(
                connection.connector_id, connection.account_id
            ):
                # The schedule lost its interval, or the connector no longer syncs: drop it.
                connection.next_sync_at = None
                continue
            if connection.pk not in busy:
                jobs.append(_connection_job(connection))
            due_at = connection.next_sync_at or now
            elapsed = max(timedelta(0), now - due_at)
            connection.next_sync_at = due_at + interval * (elapsed // interval + 1)
        lifecycle.runs_create(jobs)
        rows_update(due, ["next_sync_at"])
    return len(due), len(jobs)


def _connection_job(connection: Connection) -> SyncJob:
    connector = get_connector_for(connection.connector_id, account_id=connection.account_id)
    incremental = connector is not None and SyncMode.INCREMENTAL in connector.sync_modes
    return SyncJob(
        account_id=connection.account_id,
        connection_id=connection.pk,
        kind=JobKind.SYNC,
        trigger=JobTrigger.SCHEDULE,
        mode=SyncMode.INCREMENTAL if incremental else SyncMode.FULL,
        strategy=SyncStrategy.MERGE,
        entities=[],
        log=[log_line("Queued by the schedule (autoSync).")],
    )


def integration_created_hook(integration: Integration, actor: Actor) -> dict[str, Any] | None:
    """``integrations.hooks`` callback: ``runNow`` at creation starts the first run at once
    instead of at the next tick. Runs in the create transaction; the task is sent after it
    commits. Nothing is added to the create response (``latestJobId`` already names the job)."""
    now = timezone.now()
    if (
        integration.next_run_at is None
        or integration.next_run_at > now
        or integration.source_connection_id is None
        or integration.state != IntegrationState.ACTIVE
        or integration.deleted_at is not None
    ):
        return None
    _integration_runs_start([integration], now=now)
    return None
