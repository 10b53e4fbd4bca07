"""Pulling feed files from a partner's storage (an ``sftp_pull``, ``sftp``, ``s3`` or
``azure_blob`` source connection: any connector that ``feeds_files``) into an inventory
integration's file pipeline, the same one the SFTP gateway feeds.

A remote file is taken once per (path, size, mtime): a PulledFile row remembers it. A file
whose content this integration already took (same sha256, say re-uploaded or touched) is
remembered too but not ingested again. Taken files go through
``syncengine.feeds.services.feed_file_receive`` exactly as gateway uploads do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from config.api.errors import BadRequest
from config.storage import feed_storage, storage_local_path
from connectors.files import FileSource, RemoteFile, RemoteFileError, file_source_for
from connectors.models import Connection
from connectors.registry import ConnectorError
from connectors.services import resolve_credentials
from integrations.models import Integration
from syncengine.choices import FeedFileSource
from syncengine.feeds.services import feed_file_receive
from syncengine.jobs.lifecycle import job_log
from syncengine.models import PulledFile, SyncJob

logger = logging.getLogger(__name__)

# Known (path, size, mtime) are looked up this many paths per query (SQLite's variable limit).
LOOKUP_CHUNK = 500
# Where downloads land before they are handed over, in a folder feed storage: inside it, so the
# hand-over is a hard link on the same file system instead of a second copy.
INCOMING_DIR = ".incoming"


@dataclass
class PullResult:
    """What one pull did: files taken into the pipeline, skipped (already taken, or content
    already taken), failed (each logged on the job)."""

    taken: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    feed_file_ids: list[str] = field(default_factory=list)


def _taken_keys(integration: Integration, files: list[RemoteFile]) -> set[tuple[str, int, int]]:
    paths = sorted({remote.path for remote in files})
    keys: set[tuple[str, int, int]] = set()
    for start in range(0, len(paths), LOOKUP_CHUNK):
        rows = PulledFile.objects.filter(
            integration=integration, remote_path__in=paths[start : start + LOOKUP_CHUNK]
        ).values_list("remote_path", "size", "mtime")
        keys.update(rows)
    return keys


def _source(connection: Connection) -> FileSource:
    try:
        credentials = resolve_credentials(connection)
    except BadRequest as error:
        # A missing ${VARIABLE} stays missing until someone sets it.
        raise ConnectorError(error.message, retryable=False) from error
    return file_source_for(
        connection.connector_id, config=connection.config, credentials=credentials
    )


def pull_files(
    *,
    job: SyncJob,
    integration: Integration,
    connection: Connection,
    should_stop: Callable[[], bool],
) -> PullResult:
    """Take the new files of ``connection``'s remote folder into ``integration``, oldest first.

    ``should_stop`` is asked before each file (a cancel stops between files, never inside one).
    A file that fails (vanished, unreadable, changed while downloading) fails alone and is
    logged on the job; the others go on. Failures of the connection itself (host key,
    credentials, folder, a dropped connection) raise ``ConnectorError``.
    """
    connector = _source(connection)
    result = PullResult()
    with _incoming() as incoming, connector.session():
        files = connector.list_files()
        job_log(
            job,
            f"{len(files)} file(s) match {connector.pattern} in {connector.location}.",
        )
        taken_before = _taken_keys(integration, files)
        for remote in files:
            if should_stop():
                job_log(job, "Stopped before taking the remaining files, as requested.")
                break
            if (remote.path, remote.size, remote.mtime) in taken_before:
                result.skipped += 1
                continue
            try:
                _take(
                    job=job,
                    integration=integration,
                    connection=connection,
                    connector=connector,
                    remote=remote,
                    incoming=incoming,
                    result=result,
                )
            except RemoteFileError as error:
                result.failed += 1
                result.errors.append(error.message)
                job_log(job, error.message, level="error")
    job_log(
        job,
        f"Pull finished: {result.taken} taken, {result.skipped} skipped, {result.failed} failed.",
    )
    return result


@contextlib.contextmanager
def _incoming() -> Iterator[Path]:
    """The folder downloads land in: ``INCOMING_DIR`` of a folder feed storage, or a private
    temporary folder when the storage is remote (the hand-over then uploads the download)."""
    folder = storage_local_path(feed_storage(), INCOMING_DIR)
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="railyard-pull-") as temporary:
            yield Path(temporary)
        return
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def _take(
    *,
    job: SyncJob,
    integration: Integration,
    connection: Connection,
    connector: FileSource,
    remote: RemoteFile,
    incoming: Path,
    result: PullResult,
) -> None:
    """Download one file and hand it over (or only remember it, when its content is known)."""
    fd, temp_name = tempfile.mkstemp(dir=incoming, prefix="pull-", suffix=".part")
    os.close(fd)
    local_path = Path(temp_name)
    # In a folder storage the stored copy is this very inode (a hard link): readable like a
    # gateway upload's.
    local_path.chmod(0o640)
    try:
        sha256 = connector.download(remote, local_path)
        size = local_path.stat().st_size
        if size != remote.size:
            # Still being written (or replaced) on the server: what arrived is not the file.
            # Nothing is recorded, so the next pull takes it whole.
            raise RemoteFileError(
                f"{remote.path} changed while it was downloaded ({remote.size} bytes listed, "
                f"{size} read); it will be taken on the next pull."
            )
        duplicate = PulledFile.objects.filter(integration=integration, sha256=sha256).exists()
        with transaction.atomic():
            feed_file = None
            if not duplicate:
                feed_file = feed_file_receive(
                    integration=integration,
                    source_path=local_path,
                    filename=remote.name,
                    size=size,
                    sha256=sha256,
                    remote_address=connector.origin[:64],
                    source=FeedFileSource.PULL,
                )
            pulled = PulledFile.objects.create(
                connection=connection,
                integration=integration,
                remote_path=remote.path,
                size=remote.size,
                mtime=remote.mtime,
                sha256=sha256,
                feed_file=feed_file,
                pulled_at=timezone.now(),
            )
    finally:
        with contextlib.suppress(FileNotFoundError):
            local_path.unlink()
    if feed_file is None:
        result.skipped += 1
        job_log(
            job,
            f"{remote.path}: same content (sha256 {sha256[:12]}...) as a file already taken; "
            "remembered, not ingested again.",
        )
    else:
        result.taken += 1
        result.feed_file_ids.append(str(feed_file.pk))
        job_log(job, f"Took {remote.path} ({size} bytes, sha256 {sha256[:12]}...).")
    if connector.archive_folder is not None:
        _archive(job=job, connector=connector, remote=remote, pulled=pulled)


def _archive(
    *, job: SyncJob, connector: FileSource, remote: RemoteFile, pulled: PulledFile
) -> None:
    """Move the file out of the pulled folder; if that fails it stays there, already taken,
    and later pulls skip it."""
    try:
        archived_to = connector.archive(remote)
    except RemoteFileError as error:
        job_log(job, f"{error.message} The file stays where it is, taken.", level="error")
        return
    PulledFile.objects.filter(pk=pulled.pk).update(archived_to=archived_to)
    job_log(job, f"Moved {remote.path} to {archived_to}.")
