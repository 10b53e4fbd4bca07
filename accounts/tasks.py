"""Thin Celery wrappers around the accounts' services: the retention of events and audit
entries (``config.retention``: nightly from beat, then in batches that continue themselves)."""

from __future__ import annotations

from celery import shared_task

from accounts import services
from config.retention import prune_step


@shared_task(name="accounts.tasks.events_prune")
def events_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: drop events older than ``EVENT_RETENTION_DAYS``, a batch per step."""
    return prune_step(
        kind="events", prune=services.events_prune, task=events_prune, run=run, cutoff=cutoff
    )


@shared_task(name="accounts.tasks.audit_prune")
def audit_prune(run: str | None = None, cutoff: str | None = None) -> int:
    """Beat, nightly: drop audit entries older than ``AUDIT_RETENTION_DAYS``, a batch per step."""
    return prune_step(
        kind="audit", prune=services.audit_prune, task=audit_prune, run=run, cutoff=cutoff
    )
