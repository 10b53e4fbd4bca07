"""Thin Celery wrappers (queue ``webhooks``). Tasks take ids and are idempotent: a drain sent
twice finds the second time nothing to claim, or no free slot."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery import shared_task
from django.utils import timezone

from config.celery import RunTask
from config.retention import Pruned, prune_step
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


def _deliveries_prune(*, cutoff: datetime, limit: int) -> Pruned:
    # The service works through every batch itself (each its own transaction, skipping rows a
    # redelivery or a replay holds), so one step is the whole run.
    days = max(0, (timezone.now() - cutoff).days)
    deleted = services.webhook_deliveries_prune(older_than_days=days, batch_size=limit)
    return Pruned(rows=deleted, more=False)


@shared_task(name="webhooks.tasks.webhook_deliveries_prune")
def webhook_deliveries_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: drop deliveries older than WEBHOOK_RETENTION_DAYS, in batches; a pending
    delivery is never dropped (``webhooks.services.webhook_deliveries_prune``)."""
    return prune_step(
        kind="webhook_deliveries",
        prune=_deliveries_prune,
        task=webhook_deliveries_prune,
        run=run,
        cutoff=cutoff,
    )
