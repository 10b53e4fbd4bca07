"""Writes of the sync engine that other apps call: receiving a feed file (and its run), reprocessing
one, field mappings."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
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
from integrations.models import FileImport, Integration
from syncengine.choices import FeedFileSource, JobKind, JobTrigger
from syncengine.feeds.vehicles import VEHICLE_FIELDS
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile, SyncJob

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
    """Keep an immutable copy of a completed upload, record it, and enqueue its ingestion.

    The copy is a hard link where the file system allows (the gateway renames new uploads over
    old ones, so the linked inode never changes), a copy otherwise. The row is committed before
    this returns; the task is sent after the commit.
    """
    relative = _storage_path(integration, filename)
    target = Path(settings.FEED_STORAGE_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source_path, target)
    except OSError:
        shutil.copyfile(source_path, target)
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
    if not feed_file.stored_path or not feed_file.path.exists():
        raise BadRequest("The stored copy of this file is gone; it cannot be reprocessed.")
    with transaction.atomic():
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
