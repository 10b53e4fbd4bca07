"""The kind of run the lifecycle drives for connector syncs and file pulls."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from accounts.choices import EventType
from accounts.services import event_record
from connectors.models import Connection
from connectors.registry import ConnectorError
from integrations.choices import ImportDependencyStatus
from syncengine.choices import JobKind, JobStatus
from syncengine.feeds.pull import pull_files
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import (
    GO,
    Gate,
    Outcome,
    Run,
    RunFailure,
    RunKind,
    job_log,
)
from syncengine.models import Snapshot, SyncJob
from syncengine.sync import dependencies
from syncengine.sync.runner.context import (
    EntityStats,
    RunContext,
    beat,
    context_for,
    error_budget_exceeded,
    should_stop,
)
from syncengine.sync.runner.entities import sync_entities

logger = logging.getLogger(__name__)


class SyncRuns(RunKind):
    """Connector syncs of an integration or a connection, and file pulls of an integration
    whose source is a connection that feeds files (``sftp_pull``, ``sftp``, ``s3``,
    ``azure_blob``)."""

    kind = JobKind.SYNC
    task = "syncengine.tasks.run_sync_job"

    def gate(self, job: SyncJob, now: datetime) -> Gate:
        integration = job.integration
        if integration is None:
            return GO
        if not integration.is_active:
            return Gate(
                end=True,
                reason="The integration is inactive or deleted; the run did not start.",
                counts_as_failure=False,
            )
        if not integration.depends_on.exists():
            return GO
        check = dependencies.dependency_check(integration=integration, job=job, now=now)
        job.dependency_checks += 1
        job.dependency_status = check.status
        SyncJob.objects.filter(pk=job.pk).update(
            dependency_checks=job.dependency_checks, dependency_status=check.status
        )
        if check.status == ImportDependencyStatus.READY:
            job_log(job, "Import dependencies are ready.")
            return GO
        if check.status == ImportDependencyStatus.WAITING:
            return Gate(wait=dependencies.recheck_delay(job.dependency_checks), reason=check.reason)
        return Gate(end=True, reason=f"Import dependencies failed: {check.reason}")

    def work(self, run: Run) -> Outcome:
        ctx = context_for(run)
        if ctx.source.feeds_files:
            pull(ctx)
        else:
            sync_entities(ctx)
        job = run.job
        job.progress = {**job.progress, "entity": None, "entitiesDone": len(job.entities_done)}
        stats = {name: entity.as_json() for name, entity in ctx.stats.items()}
        over_budget = error_budget_exceeded(ctx)
        return Outcome(
            status=JobStatus.FAILED if over_budget else JobStatus.COMPLETED,
            error=over_budget or "",
            stats=stats,
            progress=job.progress,
            detail=ctx,
        )

    def classify(self, error: Exception) -> RunFailure:
        if isinstance(error, ConnectorError):
            return RunFailure(error.message, retryable=error.retryable)
        logger.exception("Sync run failed")
        return super().classify(error)

    def claimed(self, job: SyncJob) -> None:
        if job.attempts == 1:
            payload = self.payload(job, Outcome(), "")
            payload.pop("status", None)
            event_record(
                account=job.account,
                type=EventType.SYNC_STARTED,
                integration_id=job.integration_id,
                payload={**payload, "entities": job.entities},
            )

    def ended(self, job: SyncJob, outcome: Outcome, status: str) -> None:
        if status == JobStatus.COMPLETED:
            source = job.connection_id
            if job.integration is not None:
                source = job.integration.source_connection_id
            if source is not None:
                Connection.objects.filter(pk=source).update(last_sync_at=timezone.now())
        else:
            # Only a complete snapshot is a point-in-time copy.
            Snapshot.objects.filter(job=job).delete()


SYNC_RUNS = lifecycle.kind_register(SyncRuns())


def sync_job_run(job_id: Any) -> SyncJob | None:
    """Run one queued sync job in this process, as its task does (see ``lifecycle``)."""
    return lifecycle.run_execute(job_id)


def pull(ctx: RunContext) -> None:
    assert ctx.integration is not None  # connections of file sources cannot sync on their own
    result = pull_files(
        job=ctx.job,
        integration=ctx.integration,
        connection=ctx.connection,
        should_stop=lambda: should_stop(ctx),
    )
    ctx.stats["files"] = EntityStats(
        created=result.taken,
        unchanged=result.skipped,
        errors=result.failed,
        # Files tried: a run whose files all fail is over the error budget and fails.
        read=result.taken + result.failed,
    )
    ctx.records_done = result.taken + result.skipped + result.failed
    job_log(
        ctx.job,
        f"files: {result.taken} taken, {result.skipped} already taken, {result.failed} failed.",
    )
    beat(ctx, entity=None, total_entities=1)
