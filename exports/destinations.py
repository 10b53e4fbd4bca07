"""Where an export's files go: its ``destination`` object turned into a file destination.

``{"type": "S3", "connectionId": ..., "bucket": ..., "path": ..., "prefix": ...}`` names the
connection to write through (S3, AZURE_BLOB and SFTP: a connection of the matching connector in
the export's account) and the folder there:

- S3 / AZURE_BLOB: the bucket or container given, and inside it ``path`` then ``prefix`` (the
  connection's own prefix when the destination gives neither);
- SFTP: ``path`` as the remote folder (the connection's ``directory`` when absent), then
  ``prefix`` inside it;
- LOCAL: Railyard's own export storage (``config.storage.export_storage``: the folder
  ``EXPORT_LOCAL_DIR``, or the bucket of ``EXPORT_STORAGE_URL``), below ``<account id>/`` then
  ``path`` and ``prefix``, and nothing outside the account's folder (``..``, absolute paths and,
  in a folder, links that lead out are refused).

File names below that folder come from ``fileNameTemplate`` (``connectors.naming``).
"""

from __future__ import annotations

import posixpath
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage

from config.storage import export_storage
from connectors.files import (
    FileDestination,
    FileSink,
    LocalDestination,
    file_destination_for,
    prefix_clean,
    prefix_join,
    relative_path_clean,
)
from connectors.models import Connection
from connectors.registry import ConnectorError
from connectors.services import resolve_credentials
from exports.choices import DestinationType
from exports.models import DESTINATION_CONNECTOR, Export


def _folder(destination: dict[str, Any]) -> str:
    """``path`` then ``prefix`` as one clean relative folder (empty for the root)."""
    return prefix_join(
        prefix_clean(destination.get("path")), prefix_clean(destination.get("prefix"))
    )


def destination_connection(export: Export) -> Connection | None:
    """The connection an export writes through (None for LOCAL); a ``ConnectorError`` when it
    is gone or no longer of the destination's connector."""
    destination = export.destination
    kind = destination["type"]
    if kind == DestinationType.LOCAL:
        return None
    connection = Connection.objects.filter(
        account_id=export.account_id,
        pk=destination.get("connectionId"),
        connector_id=DESTINATION_CONNECTOR[kind],
    ).first()
    if connection is None:
        raise ConnectorError(
            f"The destination's {DESTINATION_CONNECTOR[kind]} connection "
            f"{destination.get('connectionId')} no longer exists in this account.",
            retryable=False,
        )
    return connection


def file_destination(export: Export) -> FileDestination:
    """The destination an export run uploads to."""
    destination = export.destination
    kind = destination["type"]
    if kind == DestinationType.LOCAL:
        return local_destination(account_id=export.account_id, prefix=_folder(destination))
    connection = destination_connection(export)
    assert connection is not None
    config = dict(connection.config or {})
    if kind == DestinationType.SFTP:
        directory = str(destination.get("path") or config.get("directory") or ".")
        prefix = prefix_clean(destination.get("prefix"))
        config["directory"] = posixpath.join(directory, prefix) if prefix else directory
    else:
        config["bucket" if kind == DestinationType.S3 else "container"] = destination[
            "bucket" if kind == DestinationType.S3 else "container"
        ]
        if destination.get("path") or destination.get("prefix"):
            config["prefix"] = _folder(destination)
    return file_destination_for(
        connection.connector_id, config=config, credentials=resolve_credentials(connection)
    )


# --- LOCAL: the export storage ------------------------------------------------------------------

LOCAL_SCHEME = "local:"


def _account_folder(account_id: Any) -> str:
    account = str(account_id)
    if not account or "/" in account or account in (".", ".."):
        raise ValueError(f"Not an account id: {account!r}")
    return account


class _FolderDestination(LocalDestination):
    """An account's folder of a folder export storage: ``LocalDestination``'s atomic uploads
    (temporary name, fsync, rename) and its checks against links leading out, rooted where the
    storage is."""

    def __init__(self, *, storage: FileSystemStorage, account_id: Any, prefix: str = "") -> None:
        super().__init__(account_id=account_id, prefix=prefix)
        self.root = Path(storage.path(_account_folder(account_id)))


class StoredDestination:
    """An account's folder of a remote export storage (an S3 bucket) as a file destination.

    A file is written to a private temporary file and stored when the run commits, so the
    storage shows it whole or not at all (S3 completes a multipart upload at once). Names are
    ``<account id>/<prefix>/<path>``, the path checked like every destination's (no ``..``, not
    absolute), so an account never reaches another's files. URIs are the folder storage's
    (``local:<prefix>/<path>``): where the files are is the installation's choice, not the
    export's.
    """

    def __init__(self, *, storage: Storage, account_id: Any, prefix: str = "") -> None:
        self.storage = storage
        self.account = _account_folder(account_id)
        self.prefix = prefix_clean(prefix)

    @property
    def location(self) -> str:
        return f"{LOCAL_SCHEME}{prefix_join(self.prefix, '') or '/'}"

    def name_of(self, path: str) -> str:
        """The stored name of ``path`` (relative to this destination)."""
        return f"{self.account}/{prefix_join(self.prefix, relative_path_clean(path))}"

    def upload(self, path: str) -> FileSink:
        relative = relative_path_clean(path)
        return _StoredSink(
            storage=self.storage,
            name=self.name_of(path),
            uri=f"{LOCAL_SCHEME}{prefix_join(self.prefix, relative)}",
            path=relative,
        )

    def remove(self, path: str) -> None:
        self.storage.delete(self.name_of(path))

    def open(self, path: str) -> IO[bytes]:
        """Read a delivered file (for the API's downloads)."""
        return self.storage.open(self.name_of(path), "rb")


class _StoredSink(FileSink):
    def __init__(self, *, storage: Storage, name: str, uri: str, path: str) -> None:
        super().__init__(uri=uri, path=path)
        self._storage = storage
        self._name = name
        # Closed (and so removed) by _commit or _discard, whichever ends the upload.
        self._file = tempfile.TemporaryFile(prefix="railyard-export-")  # noqa: SIM115

    def _write(self, data: memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise _storage_error(error, self.path) from error

    def _commit(self) -> None:
        try:
            self._file.flush()
            self._file.seek(0)
            self._storage.save(self._name, File(self._file, name=self._name))
        except Exception as error:
            raise _storage_error(error, self.path) from error
        finally:
            self._file.close()

    def _discard(self) -> None:
        self._file.close()


def _storage_error(error: Exception, path: str) -> ConnectorError:
    # Railyard's own storage: an outage or a full disk passes, so the run is retried; a
    # misconfiguration shows on every attempt, in the run's log.
    return ConnectorError(
        f"Storing {path} failed: {type(error).__name__}: {error}.", retryable=True
    )


def local_destination(*, account_id: Any, prefix: str = "") -> FileDestination:
    """An account's LOCAL destination in the export storage."""
    storage = export_storage()
    if isinstance(storage, FileSystemStorage):
        return _FolderDestination(storage=storage, account_id=account_id, prefix=prefix)
    return StoredDestination(storage=storage, account_id=account_id, prefix=prefix)


def _local_relative(uri: str) -> str | None:
    if not uri.startswith(LOCAL_SCHEME):
        return None
    try:
        return relative_path_clean(uri[len(LOCAL_SCHEME) :])
    except ConnectorError:
        return None


def local_file_open(*, account_id: Any, uri: str) -> tuple[IO[bytes], str] | None:
    """A LOCAL run's file (its ``local:<path in the account's folder>`` URI, so a destination
    edited since still finds it) opened for reading, with its file name; None for another
    scheme, a path that would lead out of the account's folder, or a file no longer stored."""
    relative = _local_relative(uri)
    if relative is None:
        return None
    destination = local_destination(account_id=account_id)
    try:
        if isinstance(destination, _FolderDestination):
            path = destination.local_path(relative)
            if not path.is_file():
                return None
            return path.open("rb"), path.name
        assert isinstance(destination, StoredDestination)
        return destination.open(relative), posixpath.basename(relative)
    except (ConnectorError, FileNotFoundError):
        return None


def local_file_delete(*, account_id: Any, uri: str, delivered_before: datetime) -> bool:
    """Remove a LOCAL run's file from the export storage, unless it was written again since
    ``delivered_before`` (a later run delivered a file of the same name: it is that run's now).
    Returns whether the file is gone."""
    relative = _local_relative(uri)
    if relative is None:
        return False
    destination = local_destination(account_id=account_id)
    if isinstance(destination, _FolderDestination):
        # Found like a download: a link leading out of the account's folder is not followed.
        try:
            path = destination.local_path(relative)
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        except ConnectorError:
            return False
        except FileNotFoundError:
            return True
        if modified > delivered_before:
            return False
        path.unlink(missing_ok=True)
        return True
    assert isinstance(destination, StoredDestination)
    name = destination.name_of(relative)
    if not destination.storage.exists(name):
        return True
    if destination.storage.get_modified_time(name) > delivered_before:
        return False
    destination.storage.delete(name)
    return True
