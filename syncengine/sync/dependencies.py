"""Import dependencies: an integration with ``dependsOn`` runs on fresh upstream data.

Before a run starts, each upstream integration must have completed an import (a file ingested or
a sync completed) since this integration's last completed run (any time, before its first run).
The check moves ``importDependencyStatus`` through ``checking`` to ``ready`` (the run proceeds),
``waiting`` (re-checked with a doubling delay, for at most SYNC_DEPENDENCY_MAX_WAIT_SECONDS) or
``error`` (an upstream failed, is paused or deleted, or the wait ran out: the run does not start,
and the reason is on the job).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from integrations.choices import ImportDependencyStatus
from integrations.models import Integration
from syncengine.choices import JobStatus
from syncengine.models import SyncJob

MAX_RECHECK_SECONDS = 600


@dataclass(frozen=True)
class DependencyCheck:
    status: str  # ImportDependencyStatus
    reason: str = ""


def _upstream_state(upstream: Integration, since: datetime | None) -> DependencyCheck:
    name = f'"{upstream.name}" ({upstream.pk})'
    if upstream.deleted_at is not None:
        return DependencyCheck(ImportDependencyStatus.ERROR, f"Upstream {name} was deleted.")
    finished = SyncJob.objects.filter(
        integration=upstream, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]
    )
    if since is not None:
        finished = finished.filter(completed_at__gte=since)
    latest = finished.order_by("-completed_at").only("status", "error").first()
    if latest is not None and latest.status == JobStatus.COMPLETED:
        return DependencyCheck(ImportDependencyStatus.READY)
    if not upstream.is_active:
        return DependencyCheck(
            ImportDependencyStatus.ERROR, f"Upstream {name} is paused and has no fresh import."
        )
    if latest is not None and latest.status == JobStatus.FAILED:
        return DependencyCheck(
            ImportDependencyStatus.ERROR,
            f"Upstream {name} failed its last import: {latest.error or 'no reason recorded'}",
        )
    return DependencyCheck(
        ImportDependencyStatus.WAITING, f"Waiting for upstream {name} to complete an import."
    )


def dependency_check(*, integration: Integration, job: SyncJob, now: datetime) -> DependencyCheck:
    """Check every upstream of ``integration`` for ``job`` and record the outcome on both."""
    Integration.all_objects.filter(pk=integration.pk).update(
        import_dependency_status=ImportDependencyStatus.CHECKING
    )
    upstreams = list(Integration.all_objects.filter(dependents=integration).order_by("name"))
    states = [_upstream_state(upstream, integration.last_sync_at) for upstream in upstreams]
    errors = [state.reason for state in states if state.status == ImportDependencyStatus.ERROR]
    waiting = [state.reason for state in states if state.status == ImportDependencyStatus.WAITING]
    if errors:
        result = DependencyCheck(ImportDependencyStatus.ERROR, " ".join(errors))
    elif waiting:
        waited = (now - job.created_at).total_seconds()
        if waited >= settings.SYNC_DEPENDENCY_MAX_WAIT_SECONDS:
            result = DependencyCheck(
                ImportDependencyStatus.ERROR,
                f"Gave up after waiting {int(waited)} s for upstream imports. " + " ".join(waiting),
            )
        else:
            result = DependencyCheck(ImportDependencyStatus.WAITING, " ".join(waiting))
    else:
        result = DependencyCheck(ImportDependencyStatus.READY)
    Integration.all_objects.filter(pk=integration.pk).update(import_dependency_status=result.status)
    return result


def recheck_delay(checks: int) -> timedelta:
    """Delay before re-check number ``checks + 1``: doubling from SYNC_DEPENDENCY_RETRY_SECONDS."""
    seconds = settings.SYNC_DEPENDENCY_RETRY_SECONDS * 2 ** max(0, checks - 1)
    return timedelta(seconds=min(seconds, MAX_RECHECK_SECONDS))
