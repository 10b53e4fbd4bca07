"""What a finished run leaves on its integration: status, last sync, failure streak, auto-pause.

Shared by file ingestion and connector syncs so both count failures the same way. Callers run
these inside the transaction that ends the job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from accounts.services import event_record
from integrations.choices import IntegrationState, IntegrationStatus
from integrations.models import Integration
from syncengine.choices import FEED_FILE_PROCESSED, FeedFileStatus


def feed_file_outcome(status: str) -> str | None:
    """How a file ended, in the words its events use: "processed" (applied to the store, a
    success for its integration even with rejected rows or values left empty), "rejected"
    (refused as a whole, nothing changed) or "failed"; None while it is not finished."""
    if status in FEED_FILE_PROCESSED:
        return "processed"
    if status == FeedFileStatus.REJECTED:
        return "rejected"
    if status == FeedFileStatus.FAILED:
        return "failed"
    return None


def integration_run_succeeded(*, integration_id: Any, now: datetime) -> Integration:
    integration = Integration.all_objects.select_for_update().get(pk=integration_id)
    integration.status = IntegrationStatus.COMPLETED
    integration.last_sync_at = now
    integration.last_error = ""
    integration.consecutive_failures = 0
    integration.save(
        update_fields=["status", "last_sync_at", "last_error", "consecutive_failures", "updated_at"]
    )
    return integration


def integration_run_failed(*, integration_id: Any, error: str) -> Integration:
    """Count a failed run; after AUTO_PAUSE_AFTER_FAILURES in a row the integration is paused
    (state inactive, so schedules skip it) and ``integration.paused`` is recorded."""
    integration = Integration.all_objects.select_for_update().get(pk=integration_id)
    integration.status = IntegrationStatus.ERRORED
    integration.last_error = error
    integration.consecutive_failures += 1
    fields = ["status", "last_error", "consecutive_failures", "updated_at"]
    limit = settings.AUTO_PAUSE_AFTER_FAILURES
    if (
        limit
        and integration.consecutive_failures >= limit
        and integration.state == IntegrationState.ACTIVE
    ):
        integration.state = IntegrationState.INACTIVE
        fields.append("state")
        event_record(
            account=integration.account,
            type="integration.paused",
            integration_id=integration.pk,
            payload={
                "integration": {"id": str(integration.pk), "name": integration.name},
                "reason": f"{integration.consecutive_failures} consecutive failed runs.",
                "consecutiveFailures": integration.consecutive_failures,
                "lastError": error,
            },
        )
    integration.save(update_fields=fields)
    return integration


def integration_run_stopped(*, integration_id: Any) -> None:
    """A cancelled run: the integration is no longer running; its last outcome stands."""
    integration = Integration.all_objects.select_for_update().get(pk=integration_id)
    if integration.status == IntegrationStatus.RUNNING:
        integration.status = (
            IntegrationStatus.COMPLETED if integration.last_sync_at else IntegrationStatus.PENDING
        )
        integration.save(update_fields=["status", "updated_at"])
