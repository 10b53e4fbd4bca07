"""Writes of the sync engine that other apps call: receiving a feed file."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services import event_record
from integrations.models import Integration
from syncengine.choices import FeedFileSource
from syncengine.models import FeedFile

logger = logging.getLogger(__name__)


def _storage_path(integration: Integration, filename: str) -> str:
    now = timezone.now()
    safe_name = Path(filename).name or "upload"
    return f"{integration.account_id}/{integration.pk}/{now:%Y/%m}/{uuid.uuid4().hex}-{safe_name}"


def dispatch_ingest(feed_file_id: uuid.UUID | str) -> None:
    """Enqueue ingestion. A broker failure is logged, not raised: the row is already committed
    and the sweep (``syncengine.tasks.feed_files_redispatch``) will dispatch it again."""
    from syncengine.tasks import ingest_feed_file

    try:
        ingest_feed_file.delay(str(feed_file_id))
    except Exception:
        logger.exception("Could not enqueue feed file %s; the sweep will retry", feed_file_id)


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
        feed_file = FeedFile.objects.create(
            account_id=integration.account_id,
            integration=integration,
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
            type="integration.file.received",
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
        transaction.on_commit(lambda: dispatch_ingest(feed_file.pk))
    return feed_file
