"""Thin Celery wrappers for export runs (queue ``export``). Tasks take ids and are idempotent.

``run_export`` is a ``config.celery.RunTask``: one that cannot reach the database is retried by
Celery. Waiting for the export's previous run and retrying a failed attempt are the lifecycle's
(``syncengine.jobs.lifecycle``), not Celery retries.
"""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from config.celery import RunTask
from config.retention import prune_step
from exports import services
from syncengine.jobs import lifecycle


@shared_task(bind=True, base=RunTask, name="exports.tasks.run_export")
def run_export(self: Task, job_id: str) -> None:
    """Work one export run; a run already taken or ended is left alone."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    lifecycle.run_execute(job_id, redelivered=redelivered)


@shared_task(name="exports.tasks.export_runs_prune")
def export_runs_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: delete export and file-import runs older than JOB_RETENTION_DAYS, with
    their LOCAL files (``services.export_runs_prune``), a batch per step."""
    return prune_step(
        kind="export_runs",
        prune=services.export_runs_prune,
        task=export_runs_prune,
        run=run,
        cutoff=cutoff,
    )
