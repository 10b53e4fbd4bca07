"""Writes of the sync engine that other apps call: receiving a feed file (and its run), reprocessing
one, field mappings; and the retention of received files, runs and vehicle versions."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.choices import EventType
from accounts.services import (
    Actor,
    audit_record,
    event_record,
    resource_create,
    resource_update,
)
from config.api.errors import BadRequest, InvalidInput
from config.retention import Pruned, prune_oldest
from config.storage import feed_storage, storage_put
from integrations.models import FileImport, Integration
from syncengine.choices import (
    FEED_FILE_PROCESSED,
    FeedFileSource,
    FeedFileStatus,
    JobKind,
    JobStatus,
    JobTrigger,
)
from syncengine.feeds.vehicles import VEHICLE_FIELDS
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile, Snapshot, SyncJob, VehicleVersion

logger = logging.getLogger(__name__)


def _storage_path(integration: Integration, filename: str) -> str:
    now = timezone.now()
    prefix = f"{uuid.uuid4().hex}-"
    # A name on disk holds 255 bytes, the prefix takes 33: the stored copy's name is cut by
    # bytes, on a character boundary (the row keeps the whole name).
    encoded = (Path(filename).name or "upload").encode("utf-8", "surrogateescape")
    safe_name = encoded[: 255 - len(prefix)].decode("utf-8", "ignore")
    return f"{integration.account_id}/{integration.pk}/{now:%Y/%m}/{prefix}{safe_name}"


def dispatch_ingest(feed_file_id: uuid.UUID | str) -> None:
    """Send the task of a received file's run. A broker failure is logged, not raised: the rows
    are committed, and the sweep (``syncengine.tasks.jobs_sweep``) sends it again."""
    job_id = FeedFile.objects.filter(pk=feed_file_id).values_list("job_id", flat=True).first()
    if job_id is not None:
        lifecycle.runs_dispatch([job_id])


def _file_run(*, account_id: Any, integration_id: Any, trigger: str, message: str) -> SyncJob:
    """The QUEUED run of a file being recorded: it joins its integration's queue, behind the
    files received before it. Its task is sent by ``dispatch_ingest`` after the commit."""
    return lifecycle.run_create(
        kind=JobKind.FILE,
        dispatch=False,
        message=message,
        account_id=account_id,
        integration_id=integration_id,
        trigger=trigger,
        entities=["vehicles"],
    )


def feed_file_receive(
    *,
    integration: Integration,
    source_path: Path,
    filename: str,
    size: int,
    sha256: str,
    remote_address: str = "",
    source: str = FeedFileSource.SFTP,
) -> FeedFile:
    """Keep an immutable copy of a completed upload in the feed file storage, record it, and
    enqueue its ingestion.

    In a folder storage the copy is a hard link where the file system allows, a copy otherwise;
    in a bucket, an upload (``config.storage.storage_put``). The copy is stored before the row
    exists, and the row is committed before this returns; the task is sent after the commit.
    """
    relative = storage_put(feed_storage(), _storage_path(integration, filename), source_path)
    with transaction.atomic():
        job = _file_run(
            account_id=integration.account_id,
            integration_id=integration.pk,
            trigger=JobTrigger.FILE,
            message=f"Queued: {filename} was received.",
        )
        feed_file = FeedFile.objects.create(
            account_id=integration.account_id,
            integration=integration,
            job=job,
            source=source,
            filename=filename,
            stored_path=relative,
            size=size,
            sha256=sha256,
            received_at=timezone.now(),
            remote_address=remote_address,
        )
        event_record(
            account=integration.account,
            type=EventType.FILE_RECEIVED,
            integration_id=integration.pk,
            payload={
                "integration": {"id": str(integration.pk), "name": integration.name},
                "file": {
                    "id": str(feed_file.pk),
                    "filename": filename,
                    "size": size,
                    "sha256": sha256,
                },
            },
        )
        # robust: whatever happens while enqueueing, the upload itself has been recorded.
        transaction.on_commit(lambda: dispatch_ingest(feed_file.pk), robust=True)
    return feed_file


def feed_file_reprocess(*, feed_file: FeedFile, actor: Actor, force: bool = False) -> FeedFile:
    """Run a stored file again with the integration's current mappings and settings.

    The run is a new log entry (its own counts, its own job) that joins the end of the
    integration's queue of files; ``force`` lets it past the row-count guard that protects an
    inventory from a truncated file.
    """
    gone = BadRequest("The stored copy of this file is gone; it cannot be reprocessed.")
    with transaction.atomic():
        # Locked, so the retention (feed_files_purge) either purged the copy before (and the
        # row says so) or sees the new run's row, which keeps the copy, once this commits.
        feed_file = FeedFile.objects.select_for_update().get(pk=feed_file.pk)
        if not feed_file.has_stored_copy:
            raise gone
        job = _file_run(
            account_id=feed_file.account_id,
            integration_id=feed_file.integration_id,
            trigger=JobTrigger.REPROCESS,
            message=f"Queued by {actor.name or actor.type}: reprocess {feed_file.filename}.",
        )
        rerun = FeedFile.objects.create(
            account_id=feed_file.account_id,
            integration_id=feed_file.integration_id,
            job=job,
            source=FeedFileSource.REPROCESS,
            filename=feed_file.filename,
            stored_path=feed_file.stored_path,
            size=feed_file.size,
            sha256=feed_file.sha256,
            received_at=timezone.now(),
            force=force,
        )
        audit_record(
            account=feed_file.account,
            actor=actor,
            resource_type="feed_file",
            resource_id=rerun.pk,
            action="reprocessed",
            changes={
                "reprocessOf": {"before": None, "after": str(feed_file.pk)},
                "force": {"before": None, "after": force},
            },
            integration_id=feed_file.integration_id,
        )
        transaction.on_commit(lambda: dispatch_ingest(rerun.pk), robust=True)
    return rerun


def integration_mappings_update(
    *, integration: Integration, actor: Actor, mappings: dict[str, str | None]
) -> FileImport:
    """Merge ``{source column: canonical field}`` overrides into the integration's file import
    (the import's ``mapping.fields``); ``None`` removes an override. Applies to the next file and
    to reprocessing."""
    unknown = {
        source: [f"{field!r} is not a canonical vehicle field."]
        for source, field in mappings.items()
        if field is not None and field not in VEHICLE_FIELDS
    }
    if unknown:
        known = ", ".join(VEHICLE_FIELDS)
        raise InvalidInput(
            f"Unknown canonical fields; known fields: {known}.",
            details={f"mappings.{source}": messages for source, messages in unknown.items()},
        )
    with transaction.atomic():
        file_import = (
            integration.file_imports.select_for_update().order_by("created_at", "pk").first()
        )
        if file_import is None:
            file_import = FileImport(
                account_id=integration.account_id,
                integration=integration,
                name=f"{integration.name} feed",
            )
        current = {
            item["extract"]: item["generate"]
            for item in (file_import.mapping or {}).get("fields", [])
        }
        for source, field in mappings.items():
            if field is None:
                current.pop(source, None)
            else:
                current[source] = field
        values = {
            "mapping": {
                **(file_import.mapping or {}),
                "fields": [
                    {"extract": source, "generate": field} for source, field in current.items()
                ],
            }
        }
        if file_import.pk and not file_import._state.adding:
            return resource_update(
                instance=file_import,
                actor=actor,
                resource_type="import",
                fields=["mapping"],
                values=values,
            )
        file_import.mapping = values["mapping"]
        return resource_create(
            instance=file_import, actor=actor, resource_type="import", fields=["name", "mapping"]
        )


# --- retention (config.retention) ---------------------------------------------------------------

ACTIVE_RUN = (JobStatus.QUEUED, JobStatus.RUNNING)
ENDED_RUN = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def _last_applied() -> Q:
    """The integration's last applied file (by ``processed_at``): the next file is compared
    with its row (its row count, and whether it is the same file), and a mapping change is
    tried on its copy."""
    later = FeedFile.objects.filter(
        integration_id=OuterRef("integration_id"),
        status__in=FEED_FILE_PROCESSED,
        processed_at__gt=OuterRef("processed_at"),
    )
    return Q(~Exists(later), status__in=FEED_FILE_PROCESSED)


def _keeps_its_copy(cutoff: datetime) -> Q:
    """Rows whose stored copy must stay: received within the retention, not finished (its
    run is queued or running: it is about to be read), or the last applied file."""
    return (
        Q(received_at__gte=cutoff)
        | Q(status__in=[FeedFileStatus.RECEIVED, FeedFileStatus.PROCESSING])
        | Q(job__status__in=ACTIVE_RUN)
        | _last_applied()
    )


def feed_files_purge(*, cutoff: datetime, limit: int) -> Pruned:
    """Remove up to ``limit`` stored copies of files received before ``cutoff`` from the feed
    file storage (the retention, ``FEED_FILE_RETENTION_DAYS``), and mark their rows purged: the
    rows stay, with their counts and samples, and say the copy is gone (``stored_path`` empty,
    ``purged_at``), so reprocessing refuses them and the mapping preview passes them by.

    A copy is shared by its file's reprocess runs; it goes only when no row naming it must
    keep it (``_keeps_its_copy``). Its rows are locked and checked again before it goes, so a
    reprocess either sees the row purged or its new run keeps the copy. A copy the storage
    fails to remove keeps its rows as they were, for the next run.
    """
    keeper = FeedFile.objects.filter(stored_path=OuterRef("stored_path")).filter(
        _keeps_its_copy(cutoff)
    )
    purgeable = (
        FeedFile.objects.filter(received_at__lt=cutoff)
        .exclude(stored_path="")
        .filter(~Exists(keeper))
        .order_by("stored_path")
        .values_list("stored_path", flat=True)
        .distinct()
    )
    storage = feed_storage()
    with transaction.atomic():
        names = list(purgeable[:limit])
        if not names:
            return Pruned(rows=0, more=False)
        # Lock every row of these copies (a reprocess locks the row it copies), then check
        # again: a run created meanwhile keeps its copy.
        list(
            FeedFile.objects.select_for_update()
            .filter(stored_path__in=names)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        removed = []
        for name in purgeable.filter(stored_path__in=names):
            try:
                storage.delete(name)
            except Exception:
                logger.warning("Could not remove the stored feed file %s", name, exc_info=True)
                continue
            removed.append(name)
        rows = FeedFile.objects.filter(stored_path__in=removed).update(
            stored_path="", purged_at=timezone.now()
        )
    return Pruned(rows=rows, more=len(names) == limit and bool(removed))


def vehicle_versions_prune(*, cutoff: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` vehicle versions written before ``cutoff``, oldest first (the
    retention, ``VEHICLE_VERSION_RETENTION_DAYS``). A vehicle's latest version is never
    deleted: it is the vehicle's current state in its history."""
    later = VehicleVersion.objects.filter(vehicle_id=OuterRef("vehicle_id"), pk__gt=OuterRef("pk"))
    return prune_oldest(
        VehicleVersion.objects.filter(created_at__lt=cutoff).filter(Exists(later)),
        date_field="created_at",
        limit=limit,
    )


def _superseded() -> Q:
    """Ended runs after which their owner (an integration, else a connection) completed or
    failed another: the latest such run stays, for import dependencies compare with it."""
    later = SyncJob.objects.filter(
        status__in=[JobStatus.COMPLETED, JobStatus.FAILED],
        completed_at__gt=OuterRef("completed_at"),
    )
    of_integration = later.filter(integration_id=OuterRef("integration_id"))
    of_connection = later.filter(integration__isnull=True, connection_id=OuterRef("connection_id"))
    return (Q(integration__isnull=False) & Exists(of_integration)) | (
        Q(integration__isnull=True) & Exists(of_connection)
    )


def runs_prune(*, cutoff: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` sync and file runs that ended before ``cutoff``, oldest first (the
    retention, ``JOB_RETENTION_DAYS``), with their logs: a file run's received-file rows go with
    it. Export and import runs are ``exports``'.

    Kept however old: runs in progress, the latest run of each owner that completed or failed,
    runs holding a snapshot (a snapshot is data, not a log), and file runs whose file is still
    stored (``FEED_FILE_RETENTION_DAYS`` decides) or is its integration's last applied one.
    """
    holding_a_file = FeedFile.objects.filter(job_id=OuterRef("pk")).filter(
        ~Q(stored_path="") | _last_applied()
    )
    prunable = (
        SyncJob.objects.filter(
            export__isnull=True,
            file_import__isnull=True,
            status__in=ENDED_RUN,
            created_at__lt=cutoff,
            completed_at__lt=cutoff,
        )
        .filter(_superseded())
        .exclude(Exists(Snapshot.objects.filter(job_id=OuterRef("pk"))))
        .exclude(Exists(holding_a_file))
    )
    with transaction.atomic():
        keys = list(prunable.order_by("created_at", "pk").values_list("pk", flat=True)[:limit])
        FeedFile.objects.filter(job_id__in=keys).delete()
        SyncJob.objects.filter(pk__in=keys).delete()
    return Pruned(rows=len(keys), more=len(keys) == limit)
