"""Thin Celery wrappers around the sync engine's services. Tasks take ids and are idempotent."""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from syncengine import ingest, scheduler, services, sweep, sync

# A file waits (sync.BUSY_RETRY_SECONDS at a time) while another job of its integration runs:
# files of one feed apply in order.
BUSY_MAX_RETRIES = 360


@shared_task(bind=True, name="syncengine.tasks.ingest_feed_file", max_retries=BUSY_MAX_RETRIES)
def ingest_feed_file(self: Task, feed_file_id: str) -> None:
    """Parse, map, validate and merge one received feed file (queue ``ingest``)."""
    try:
        ingest.feed_file_ingest(feed_file_id=feed_file_id)
    except ingest.IntegrationBusy as exc:
        raise self.retry(exc=exc, countdown=sync.BUSY_RETRY_SECONDS) from exc


@shared_task(name="syncengine.tasks.feed_files_redispatch")
def feed_files_redispatch() -> int:
    """Beat: re-dispatch files left ``received`` and recover files whose worker died."""
    return services.feed_files_redispatch()


@shared_task(name="syncengine.tasks.run_sync_job")
def run_sync_job(job_id: str) -> None:
    """Run one queued sync job (queue ``sync``); a job already taken or ended is left alone.
    Retries, dependency waits and a busy integration re-dispatch the job with a countdown."""
    sync.sync_job_run(job_id)


@shared_task(name="syncengine.tasks.schedules_tick")
def schedules_tick() -> dict[str, int]:
    """Beat, every SCHEDULER_TICK_SECONDS: start a job for each due integration and connection."""
    result = scheduler.schedules_tick()
    return {"integrations": result.integrations, "connections": result.connections}


@shared_task(name="syncengine.tasks.sync_jobs_sweep")
def sync_jobs_sweep() -> dict[str, int]:
    """Beat: retry or fail running jobs without a heartbeat; dispatch queued jobs never started."""
    return sweep.sync_jobs_sweep()
