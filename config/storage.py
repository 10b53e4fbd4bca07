"""Railyard's own file stores, behind Django's storage API (``settings.STORAGES``).

- ``feeds``: the received feed files (``FEED_STORAGE_DIR``, or ``FEED_STORAGE_URL``);
- ``exports``: the files of LOCAL export destinations (``EXPORT_LOCAL_DIR``, or
  ``EXPORT_STORAGE_URL``).

Either is a folder on this machine's file system (``FolderStorage``) unless its URL names an S3
bucket (``s3://bucket/prefix``, django-storages' ``S3Storage``), which lets SFTP gateways, workers
and web processes run on hosts that share no file system.

Writers go through ``storage_put`` (a hard link into a folder storage, an upload otherwise).
Readers that need a file on disk (pandas and pyarrow read paths) go through
``storage_local_copy``: the stored file itself on a folder storage, a temporary download
otherwise, removed when the block ends. A file that is not stored is a ``FileNotFoundError``; a
remote storage that cannot be read is a ``StorageUnavailable`` (a retry may help).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.core.signals import setting_changed
from django.utils.functional import cached_property

FEEDS = "feeds"
EXPORTS = "exports"
COPY_CHUNK = 1024 * 1024


class StorageUnavailable(Exception):
    """A remote storage could not be read (unreachable, refused, throttled): unlike a file that
    is not there, trying again later may help."""


class FolderStorage(FileSystemStorage):
    """A ``FileSystemStorage`` rooted at the folder a setting names (``FEED_STORAGE_DIR``,
    ``EXPORT_LOCAL_DIR``), read when the storage is first used and again whenever that setting
    changes, as ``FileSystemStorage`` does for ``MEDIA_ROOT``."""

    def __init__(self, *, setting: str, **options: Any) -> None:
        self.setting = setting
        super().__init__(**options)
        setting_changed.connect(self._folder_changed)

    @cached_property
    def base_location(self) -> str:
        return str(getattr(settings, self.setting))

    def _folder_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == self.setting:
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)


def feed_storage() -> Storage:
    """Where received feed files are kept."""
    return storages[FEEDS]


def export_storage() -> Storage:
    """Where LOCAL export destinations write."""
    return storages[EXPORTS]


def storage_local_path(storage: Storage, name: str) -> Path | None:
    """The file of ``name`` on this machine's file system; None for a remote storage (Django's
    storages that cannot be opened as a local file do not implement ``path()``)."""
    try:
        return Path(storage.path(name))
    except NotImplementedError:
        return None


def storage_put(storage: Storage, name: str, source: Path) -> str:
    """Keep an immutable copy of the local file ``source`` under ``name``; returns the name it
    is stored as.

    In a folder the copy is a hard link where the file system allows (the SFTP gateway renames
    new uploads over old ones, so the linked inode never changes), a plain copy otherwise.
    Elsewhere it is an upload (S3: multipart for large files); the object is visible only
    once complete.
    """
    target = storage_local_path(storage, name)
    if target is None:
        with open(source, "rb") as content:
            return storage.save(name, File(content, name=name))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return name


def storage_download(storage: Storage, name: str, target: Path) -> None:
    """Copy the stored ``name`` into the local file ``target``; ``FileNotFoundError`` when it
    is not stored."""
    with storage.open(name, "rb") as stored:
        remote = getattr(stored, "obj", None)
        if remote is not None and hasattr(remote, "download_file"):
            # S3: straight into the target, in parallel ranges, instead of through the
            # storage file's own spool file and a second copy.
            remote.download_file(str(target), Config=getattr(storage, "transfer_config", None))
            return
        with open(target, "wb") as local:
            shutil.copyfileobj(stored, local, COPY_CHUNK)


@contextlib.contextmanager
def storage_local_copy(storage: Storage, name: str) -> Iterator[Path]:
    """The stored ``name`` as a file on this machine for the duration of the block: the file
    itself in a folder storage, otherwise a private temporary download (under ``TMPDIR``)
    removed when the block ends, however it ends."""
    local = storage_local_path(storage, name)
    if local is not None:
        if not local.is_file():
            raise FileNotFoundError(f"The stored file {name} is gone.")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="railyard-stored-") as folder:
        target = Path(folder) / (Path(name).name or "stored")
        try:
            storage_download(storage, name, target)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise StorageUnavailable(
                f"The stored file {name} could not be read: {type(error).__name__}: {error}"
            ) from error
        yield target


def storage_exists(storage: Storage, name: str) -> bool:
    """Whether ``name`` is stored (an empty name never is)."""
    return bool(name) and storage.exists(name)
