"""Thin Celery wrappers around the gateway's services."""

from __future__ import annotations

from celery import shared_task

from config.retention import prune_step
from sftpgateway import services


@shared_task(name="sftpgateway.tasks.activity_prune")
def activity_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: drop activity rows older than ``SFTP_ACTIVITY_RETENTION_DAYS`` (default
    90), a batch per step."""
    return prune_step(
        kind="sftp_activity",
        prune=services.activity_prune,
        task=activity_prune,
        run=run,
        cutoff=cutoff,
    )
