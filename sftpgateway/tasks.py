"""Thin Celery wrappers around the gateway's services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from sftpgateway import services


@shared_task(name="sftpgateway.tasks.activity_prune")
def activity_prune() -> int:
    """Drop activity rows older than ``SFTP_ACTIVITY_RETENTION_DAYS`` (default 90)."""
    days = int(settings.SFTP_ACTIVITY_RETENTION_DAYS)
    return services.activity_prune(older_than_days=days)
