"""Thin Celery wrappers for export runs (queue ``export``). Tasks take ids and are idempotent.

``run_export`` is a ``config.celery.RunTask``: one that cannot reach the database is retried by
Celery. Waiting for the export's previous run and retrying a failed attempt are the lifecycle's
(``syncengine.jobs.lifecycle``), not Celery retries.
"""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task

from config.celery import RunTask
from syncengine.jobs import lifecycle


@shared_task(bind=True, base=RunTask, name="exports.tasks.run_export")
def run_export(self: Task, job_id: str) -> None:
    """Work one export run; a run already taken or ended is left alone."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    lifecycle.run_execute(job_id, redelivered=redelivered)
