"""Runs: one row per run of any kind (connector sync, feed file, export run), written only by
the lifecycle (``syncengine.jobs.lifecycle``)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from accounts.models import Account
from connectors.choices import SyncMode
from connectors.models import Connection
from integrations.models import Integration
from syncengine.choices import (
    JobKind,
    JobStatus,
    JobTrigger,
)


class SyncJob(models.Model):
    """One run of any kind (a connector sync, a feed file's ingestion): a row first, a Celery
    task second. ``syncengine.jobs.lifecycle`` is the only writer of its status.

    A job belongs to an integration (file ingestion, integration syncs), to a connection
    (connection syncs), to an export (export runs, which have neither) or to a file import
    (its runs, likewise), its owner. At most one job per owner is RUNNING at a time:
    partial unique indexes guarantee it, not a check-then-act. The others wait in the order
    they were created. ``attempts`` counts claims, and is the fencing token
    of the current one: every write of a running run is conditional on it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sync_jobs")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_jobs"
    )
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_jobs"
    )
    # A string reference: exports sit above this app, and only their runs name one.
    export = models.ForeignKey(
        "exports.Export",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        db_index=False,  # the (export, -created_at) index serves its lookups
    )
    # A file import's runs (which write its file) belong to it, as an export's to the export.
    file_import = models.ForeignKey(
        "integrations.FileImport",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        db_index=False,  # the (file_import, -created_at) index serves its lookups
    )
    kind = models.CharField(max_length=10, choices=JobKind.choices, default=JobKind.SYNC)
    trigger = models.CharField(max_length=10, choices=JobTrigger.choices)
    mode = models.CharField(max_length=12, choices=SyncMode.choices, default=SyncMode.FULL)
    strategy = models.CharField(max_length=12, blank=True)
    entities = models.JSONField(default=list, blank=True)
    date_range = models.JSONField(
        null=True, blank=True, help_text='{"from": ..., "to": ...} as given, ISO dates.'
    )
    status = models.CharField(
        max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    # {entity: {created, updated, unchanged, deleted, errors, skipped, errorSamples}}
    stats = models.JSONField(default=dict, blank=True)
    # {recordsDone, recordsTotal, entitiesDone, entitiesTotal, entity}
    progress = models.JSONField(default=dict, blank=True)
    # {entity: cursor} committed by this job, and the entities it finished (a retry skips them).
    cursors = models.JSONField(default=dict, blank=True)
    entities_done = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True)
    dependency_status = models.CharField(max_length=10, blank=True)
    dependency_checks = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its task was last sent (with a countdown, when that task is due).",
    )
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="A queued job does not start before this (backoff)."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claimant = models.JSONField(
        null=True,
        blank=True,
        help_text="The worker process holding the claim (host, pid, and what tells a live "
        "process from a dead one on the same machine).",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration"],
                condition=Q(status=JobStatus.RUNNING),
                name="syncjob_one_running_per_integration",
            ),
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(status=JobStatus.RUNNING),
                name="syncjob_one_running_per_connection",
            ),
            models.UniqueConstraint(
                fields=["export"],
                condition=Q(status=JobStatus.RUNNING),
                name="syncjob_one_running_per_export",
            ),
            models.UniqueConstraint(
                fields=["file_import"],
                condition=Q(status=JobStatus.RUNNING),
                name="syncjob_one_running_per_import",
            ),
        ]
        indexes = [
            models.Index(fields=["integration", "-created_at"]),
            models.Index(fields=["connection", "-created_at"]),
            models.Index(fields=["export", "-created_at"]),
            models.Index(fields=["file_import", "-created_at"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.trigger} job {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
