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
from syncengine.feeds import ingest
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


@worker_ready.connect
def _worker_ready(**_: Any) -> None:
    # A worker killed and started again on the same machine: its runs are taken back now,
    # not after the heartbeat timeout.
    lifecycle.runs_recover_local()
