"""The beat task that keeps sync jobs moving: nothing stays RUNNING forever, nothing QUEUED is lost.

- A running connector job whose heartbeat is older than SYNC_HEARTBEAT_TIMEOUT_SECONDS lost its
  worker: it goes back to the queue (the retry resumes from its last committed batch) or, after
  SYNC_MAX_ATTEMPTS, fails. File jobs are recovered by the feed sweep with their file.
- A queued job that is due but whose task never started (the broker lost it, Redis was down when
  it was sent) is dispatched again; running it twice is harmless, the claim is conditional.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.services import event_record
from syncengine import outcomes
from syncengine.choices import JobStatus, JobTrigger
from syncengine.jobs import job_log, queued_jobs_due, sync_jobs_dispatch
from syncengine.models import Snapshot, SyncJob

FILE_TRIGGERS = (JobTrigger.FILE, JobTrigger.REPROCESS)
SWEEP_LIMIT = 1000


def _recover(job_id: uuid.UUID, *, now: datetime, stale_before: datetime) -> str | None:
    """Requeue or fail one stale running job; which one it did, or None if it moved on."""
    with transaction.atomic():
        job = (
            SyncJob.objects.select_for_update(of=("self",))
            .select_related("account", "integration", "connection")
            .filter(pk=job_id, status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
            .first()
        )
        if job is None:
            return None
        silence = int((now - job.heartbeat_at).total_seconds()) if job.heartbeat_at else 0
        reason = f"The worker stopped answering (no heartbeat for {silence} s)."
        if job.cancel_requested_at is not None:
            job_log(job, f"{reason} It was being cancelled: cancelled.", save=False)
            job.status = JobStatus.CANCELLED
            job.completed_at = now
            job.save(update_fields=["status", "completed_at", "log"])
            Snapshot.objects.filter(job=job).delete()
            if job.integration_id:
                outcomes.integration_run_stopped(integration_id=job.integration_id)
            return "cancelled"
        if job.attempts < settings.SYNC_MAX_ATTEMPTS:
            job_log(
                job,
                f"{reason} Queued again; it resumes from its last committed batch.",
                level="warning",
                save=False,
            )
            job.status = JobStatus.QUEUED
            job.next_attempt_at = now
            job.heartbeat_at = None
            job.save(update_fields=["status", "next_attempt_at", "heartbeat_at", "log"])
            return "requeued"
        error = f"{reason} Gave up after {job.attempts} attempts."
        job_log(job, error, level="error", save=False)
        job.status = JobStatus.FAILED
        job.error = error
        job.completed_at = now
        job.save(update_fields=["status", "error", "completed_at", "log"])
        Snapshot.objects.filter(job=job).delete()
        if job.integration_id:
            outcomes.integration_run_failed(integration_id=job.integration_id, error=error)
        event_record(
            account=job.account,
            type="integration.sync.failed",
            integration_id=job.integration_id,
            payload={"jobId": str(job.pk), "status": JobStatus.FAILED, "error": error},
        )
        return "failed"


def sync_jobs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.SYNC_HEARTBEAT_TIMEOUT_SECONDS)
    counts = {"requeued": 0, "failed": 0, "cancelled": 0, "redispatched": 0}
    stale = (
        SyncJob.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
        .exclude(trigger__in=FILE_TRIGGERS)
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    requeued = []
    for job_id in list(stale):
        outcome = _recover(job_id, now=now, stale_before=stale_before)
        if outcome:
            counts[outcome] += 1
        if outcome == "requeued":
            requeued.append(job_id)
    quiet = now - timedelta(seconds=settings.SYNC_REDISPATCH_AFTER_SECONDS)
    lost = (
        SyncJob.objects.filter(queued_jobs_due(quiet))
        .exclude(trigger__in=FILE_TRIGGERS)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=quiet))
        .filter(created_at__lt=quiet)
        .values_list("pk", flat=True)[:SWEEP_LIMIT]
    )
    sync_jobs_dispatch(requeued)
    counts["redispatched"] = sync_jobs_dispatch(list(lost))
    return counts
