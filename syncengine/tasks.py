"""Thin Celery wrappers around the sync engine's services. Tasks take ids and are idempotent.

The tasks that run a run (``ingest_feed_file``, ``run_sync_job``) are ``config.celery.RunTask``s:
one that cannot reach the database is retried with a backoff, not acknowledged away. Waiting for
a busy integration and retrying a failed attempt are not Celery retries: the run goes back to its
queue (``syncengine.jobs.lifecycle``).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.app.task import Task
from celery.signals import worker_ready

from config.celery import RunTask
from config.retention import prune_step
from syncengine.feeds import ingest, services
from syncengine.jobs import lifecycle, sweep
from syncengine.sync import scheduler


def _redelivered(task: Task) -> bool:
    """Whether the broker delivers this message again because a worker died holding it."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


@shared_task(bind=True, base=RunTask, name="syncengine.tasks.ingest_feed_file")
def ingest_feed_file(self: Task, job_id: str) -> None:
    """Parse, map, validate and merge one received feed file (queue ``ingest``)."""
    lifecycle.run_execute(ingest.file_run_id(job_id), redelivered=_redelivered(self))


@shared_task(bind=True, base=RunTask, name="syncengine.tasks.run_sync_job")
def run_sync_job(self: Task, job_id: str) -> None:
    """Run one sync job (queue ``sync``); a job already taken or ended is left alone."""
    lifecycle.run_execute(job_id, redelivered=_redelivered(self))


@shared_task(name="syncengine.tasks.schedules_tick")
def schedules_tick() -> dict[str, int]:
    """Beat, every SCHEDULER_TICK_SECONDS: start a job for each due integration, connection and
    export."""
    result = scheduler.schedules_tick()
    return {
        "integrations": result.integrations,
        "connections": result.connections,
        **scheduler.other_schedules_tick(),
    }


@shared_task(name="syncengine.tasks.jobs_sweep")
def jobs_sweep() -> dict[str, int]:
    """Beat, every JOB_SWEEP_SECONDS: take back runs of lost workers, re-send lost messages."""
    return sweep.jobs_sweep()


@shared_task(name="syncengine.tasks.feed_files_prune")
def feed_files_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: remove stored copies of received files older than
    FEED_FILE_RETENTION_DAYS (``services.feed_files_purge``), a batch per step."""
    return prune_step(
        kind="feed_files",
        prune=services.feed_files_purge,
        task=feed_files_prune,
        run=run,
        cutoff=cutoff,
    )


@shared_task(name="syncengine.tasks.runs_prune")
def runs_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: delete sync and file runs older than JOB_RETENTION_DAYS
    (``services.runs_prune``), a batch per step."""
    return prune_step(
        kind="runs", prune=services.runs_prune, task=runs_prune, run=run, cutoff=cutoff
    )


@shared_task(name="syncengine.tasks.vehicle_versions_prune")
def vehicle_versions_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: delete vehicle versions older than VEHICLE_VERSION_RETENTION_DAYS, each
    vehicle's latest excepted (``services.vehicle_versions_prune``), a batch per step."""
    return prune_step(
        kind="vehicle_versions",
        prune=services.vehicle_versions_prune,
        task=vehicle_versions_prune,
        run=run,
        cutoff=cutoff,
    )


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    # A worker killed and started again on the same machine: its runs are taken back now,
    # not after the heartbeat timeout.
    lifecycle.runs_recover_local()
