"""Thin Celery wrappers (queue ``webhooks``). Tasks take ids and are idempotent: a drain sent
twice finds the second time nothing to claim, or no free slot."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.conf import settings

from config.celery import RunTask
from webhooks import delivery, services


@shared_task(base=RunTask, name="webhooks.tasks.webhook_endpoint_drain")
def webhook_endpoint_drain(webhook_id: str) -> dict[str, Any]:
    """Send one endpoint's due deliveries for a turn of at most a second
    (``webhooks.delivery``)."""
    return asdict(delivery.endpoint_drain(webhook_id))


@shared_task(name="webhooks.tasks.webhook_deliveries_sweep")
def webhook_deliveries_sweep() -> int:
    """Beat, every WEBHOOK_SWEEP_SECONDS: wake endpoints with due deliveries nobody is
    sending (a lost message, a dead worker's lease, a retry further ahead than a drain waits)."""
    return delivery.deliveries_sweep()


@shared_task(name="webhooks.tasks.webhook_deliveries_prune")
def webhook_deliveries_prune() -> int:
    """Beat, nightly: drop deliveries older than WEBHOOK_RETENTION_DAYS, in batches."""
    return services.webhook_deliveries_prune(older_than_days=settings.WEBHOOK_RETENTION_DAYS)
