"""Files in and out: the interface every storage connector speaks, and the local destination.

As a **source** a store lists the files of one folder whose name matches a glob, downloads one
into a local file (answering its sha256) and optionally moves a taken file to an archive folder.
Remembering what was taken is the file pipeline's job (``syncengine.feeds.pull``, with PulledFile
rows); a store only answers what is there.

As a **destination** a store delivers a file atomically::

    with destination.upload("vehicles/2025-01-01.csv") as sink:
        for chunk in chunks:
            sink.write(chunk)
    sink.delivered  # DeliveredFile(uri=..., path=..., bytes=..., sha256=...)

Nothing is visible at the destination until the ``with`` block ends without an exception; an
exception (a cancel included) discards what was written. Each store keeps memory bounded: parts
are streamed as they fill, never the whole file.

The paths given to ``upload()`` are relative to the store's root (a bucket's prefix, an SFTP
directory, an account's export folder) and may not leave it.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io
import os
import posixpath
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from django.conf import settings

from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import (
    Connector,
    ConnectorError,
    EntitySpec,
    ReadBatch,
    TestResult,
    get_connector,
)

FILE_FIELDS = ["path", "name", "size", "mtime"]
# What a connection test writes (and removes again) to prove it may write and delete. The dot
# hides it from a partner's glob, as it does from ours.
PROBE_PREFIX = ".railyard-probe-"
PROBE_CONTENT = b"Railyard connection test: this file is removed right after it is written.\n"

# Config keys every storage connector takes as a source.
SOURCE_CONFIG_PROPERTIES: dict[str, Any] = {
    "pattern": {
        "type": "string",
        "minLength": 1,
        "default": "*",
        "description": "Glob on file names, case-insensitive (*.csv, inventory_*.txt). Names "
        "starting with a dot match only a pattern that does.",
    },
}


class RemoteFileError(ConnectorError):
    """One remote file could not be read or moved (vanished, no permission) while the
    connection itself is fine: the caller can go on with the other files."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class RemoteFile:
    """A regular file of the remote folder; ``mtime`` in whole seconds since the epoch.
    ``path`` is what the store needs to find it again (an SFTP path, an object key)."""

    path: str
    name: str
    size: int
    mtime: int

    def as_record(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "size": self.size, "mtime": self.mtime}


@dataclass(frozen=True)
class DeliveredFile:
    """A file a destination now shows whole: where (``uri``, and ``path`` relative to the
    destination's root), how many bytes, and their sha256."""

    uri: str
    path: str
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "path": self.path, "bytes": self.bytes, "sha256": self.sha256}


def name_matches(name: str, pattern: str) -> bool:
    """Whether a file name matches a source's glob: case-insensitive, and a hidden name (a
    leading dot: temporary uploads, probes) only when the pattern asks for one."""
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def relative_path_clean(path: str) -> str:
    """``path`` as a clean relative POSIX path inside a destination's root.

    Refused (``ConnectorError``, not retryable): empty, absolute, ``..`` segments, backslashes
    and control characters. ``a//b`` and ``./a`` become ``a/b`` and ``a``.
    """
    text = str(path)
    if any(ord(char) < 32 or ord(char) == 127 for char in text) or "\\" in text:
        raise ConnectorError(
            f"File path {text!r} contains a backslash or a control character.", retryable=False
        )
    if text.startswith("/"):
        raise ConnectorError(
            f"File path {text!r} is absolute; paths are relative to the destination.",
            retryable=False,
        )
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ConnectorError(
            f"File path {text!r} leaves the destination folder (..).", retryable=False
        )
    if not parts:
        raise ConnectorError("File path is empty.", retryable=False)
    return "/".join(parts)


def prefix_clean(prefix: str | None) -> str:
    """A configured prefix or folder as ``a/b`` (no leading or trailing slash; empty for the
    root); ``..`` is refused like in a file path."""
    text = str(prefix or "").strip("/")
    return relative_path_clean(text) if text else ""


def prefix_join(prefix: str, relative: str) -> str:
    return f"{prefix}/{relative}" if prefix else relative


def prefix_errors(value: Any) -> list[str]:
    """Config validation of a prefix or folder: the messages ``prefix_clean`` would raise."""
    if not isinstance(value, str) or not value.strip("/"):
        return []
    try:
        prefix_clean(value)
    except ConnectorError as error:
        return [error.message]
    return []


def numbered_name(name: str, number: int) -> str:
    """``feed.csv`` -> ``feed-1.csv``: the name an archived file takes when its name is taken."""
    stem, dot, extension = name.rpartition(".")
    if not stem:
        stem, dot, extension = name, "", ""
    return f"{stem}-{number}{dot}{extension}"


# --- the sink: one atomic upload -------------------------------------------------------------


class FileSink(io.RawIOBase):
    """One file being delivered: a writable binary stream whose content becomes visible at the
    destination only on ``commit()`` (the end of its ``with`` block).

    Subclasses implement ``_write`` (take these bytes; stream whatever is due), ``_commit``
    (make the file visible) and ``_discard`` (leave nothing behind; never raises).

    ``close()`` only ends writing, as for any stream a wrapper (``gzip``, ``io.TextIOWrapper``,
    pyarrow) closes; it neither delivers nor discards.
    """

    def __init__(self, *, uri: str, path: str) -> None:
        super().__init__()
        self.uri = uri
        self.path = path
        self._digest = hashlib.sha256()
        self._bytes = 0
        self._state = "open"
        self._delivered: DeliveredFile | None = None

    # --- io.RawIOBase ------------------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._state != "open" or self.closed:
            state = "closed" if self._state == "open" else self._state
            raise ValueError(f"The upload of {self.path} is {state}; it takes no more data.")
        with memoryview(data) as view, view.cast("B") as octets:
            size = len(octets)
            if size:
                self._digest.update(octets)
                self._write(octets)
                self._bytes += size
        return size

    def tell(self) -> int:
        return self._bytes

    # --- delivery ----------------------------------------------------------------------------

    @property
    def delivered(self) -> DeliveredFile:
        """The delivered file; only once the upload is committed."""
        if self._delivered is None:
            raise ValueError(f"The upload of {self.path} is {self._state}, not delivered.")
        return self._delivered

    def commit(self) -> DeliveredFile:
        """Make the file visible at the destination, whole; on failure nothing is left."""
        if self._state == "committed":
            return self.delivered
        if self._state != "open":
            raise ValueError(f"The upload of {self.path} is {self._state}; it cannot be delivered.")
        self._state = "committing"
        try:
            self._commit()
        except BaseException:
            self._state = "open"
            self.abort()
            raise
        self._state = "committed"
        self._delivered = DeliveredFile(
            uri=self.uri, path=self.path, bytes=self._bytes, sha256=self._digest.hexdigest()
        )
        super().close()
        return self._delivered

    def abort(self) -> None:
        """Discard everything written so far; nothing becomes visible. Never raises."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        with contextlib.suppress(Exception):
            self._discard()
        super().close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    # --- what each store implements ----------------------------------------------------------

    def _write(self, data: memoryview) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError


class PartBuffer:
    """Bytes collected until a part is full: the only buffering a part-wise upload (S3
    multipart, Azure blocks) needs, so memory stays at about one part whatever the file size."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._buffer = bytearray()

    def add(self, data: memoryview) -> Iterator[bytes]:
        """Take ``data``; yield each part that is now full."""
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self.part_size])
            del self._buffer[: self.part_size]
            yield part

    def rest(self) -> bytes:
        """What is left (the last part, possibly empty), emptying the buffer."""
        rest = bytes(self._buffer)
        self._buffer = bytearray()
        return rest


# --- the interfaces ----------------------------------------------------------------------------


class FileSource(Protocol):
    """What the file pipeline (``syncengine.feeds.pull``) needs of a source of files."""

    feeds_files: ClassVar[bool]

    @property
    def pattern(self) -> str: ...

    @property
    def archive_folder(self) -> str | None: ...

    @property
    def location(self) -> str: ...

    @property
    def origin(self) -> str: ...

    def session(self) -> contextlib.AbstractContextManager[Any]: ...

    def list_files(self) -> list[RemoteFile]: ...

    def download(self, remote: RemoteFile, local_path: Path) -> str: ...

    def archive(self, remote: RemoteFile) -> str: ...


class FileDestination(Protocol):
    """What an export needs of a destination: atomic uploads under one root."""

    @property
    def location(self) -> str: ...

    def upload(self, path: str) -> FileSink: ...

    def remove(self, path: str) -> None: ...


class FileStore(Connector):
    """Base of the storage connectors (``s3``, ``azure_blob``, ``sftp``): a source of files by
    glob for the file pipeline and a destination of atomic uploads for exports.

    A subclass implements the file operations (``list_files``, ``download``, ``archive``,
    ``upload``, ``remove``, ``_check_listing``) and describes where it points (``location``,
    ``origin``); ``read()``, ``discover()`` and ``test()`` are shared.
    """

    category = ConnectorCategory.STORAGE
    features = ["files", "incremental", "archive", "upload"]
    entities = ["files"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL]
    is_source = True
    feeds_files = True
    writes_files = True

    # --- config ------------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        return str(self.config.get("pattern") or "*")

    @property
    def archive_folder(self) -> str | None:
        """Where taken files are moved, or None when they stay."""
        raise NotImplementedError

    @property
    def location(self) -> str:
        """Where this connection points, for logs and messages (``s3://bucket/prefix``)."""
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """The host files come from (kept as a received file's remote address)."""
        raise NotImplementedError

    # --- sessions ----------------------------------------------------------------------------

    _sessions = 0

    @contextlib.contextmanager
    def session(self) -> Iterator[Self]:
        """Keep one connection open for every call made inside the block (blocks may nest;
        the outermost one closes it)."""
        self._sessions += 1
        try:
            yield self
        finally:
            self._sessions -= 1
            if self._sessions == 0:
                self.close()

    def close(self) -> None:
        """Release the connection (a later call opens a new one)."""

    # --- files -------------------------------------------------------------------------------

    def list_files(self) -> list[RemoteFile]:
        """Files of the folder whose name matches the pattern, oldest first (mtime, name)."""
        raise NotImplementedError

    def download(self, remote: RemoteFile, local_path: Path) -> str:
        """Stream ``remote`` into ``local_path`` (created or replaced); returns its sha256."""
        raise NotImplementedError

    def archive(self, remote: RemoteFile) -> str:
        """Move a taken file into the archive folder; a name already there gets a numbered
        suffix. Returns where it went."""
        raise NotImplementedError

    def upload(self, path: str) -> FileSink:
        """An atomic upload of ``path`` (relative to the root); see ``FileSink``."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        """Delete ``path`` (relative to the root); a file that is not there is no error."""
        raise NotImplementedError

    def _check_listing(self) -> None:
        """Prove the folder can be listed (one page is enough); raise ``ConnectorError``."""
        raise NotImplementedError

    def _version(self) -> str | None:
        return None

    # --- Connector ---------------------------------------------------------------------------

    def test(self) -> TestResult:
        """What a run needs: list the folder, write a probe file and delete it again.
        ``permissions`` says how far it got (read, write, delete)."""
        started = time.monotonic()
        permissions: list[str] = []
        version = None
        step = "Listing"
        try:
            with self.session():
                self._check_listing()
                version = self._version()
                permissions.append("read")
                step = "Writing a test file"
                probe = f"{PROBE_PREFIX}{secrets.token_hex(6)}"
                with self.upload(probe) as sink:
                    sink.write(PROBE_CONTENT)
                permissions.append("write")
                step = "Deleting the test file"
                self.remove(probe)
                permissions.append("delete")
        except ConnectorError as error:
            message = error.message if step == "Listing" else f"{step} failed: {error.message}"
            return TestResult(
                success=False,
                latency_ms=_since(started),
                version=version,
                permissions=permissions,
                error=message,
            )
        return TestResult(
            success=True, latency_ms=_since(started), version=version, permissions=permissions
        )

    def discover(self) -> list[EntitySpec]:
        return [
            EntitySpec(name="files", primary_key=["path"], cursor_field="mtime", fields=FILE_FIELDS)
        ]

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        """Metadata of the matching files in (mtime, name) order; with a cursor, only files
        modified after it. ``date_range`` is not used: the mtime cursor covers resuming."""
        if entity != "files":
            raise ConnectorError(
                f'Unknown entity "{entity}": {self.id} offers "files".', retryable=False
            )
        files = self.list_files()
        if cursor is not None:
            try:
                after = int(float(cursor))
            except (TypeError, ValueError):
                raise ConnectorError(
                    f"The files cursor must be an mtime in seconds, not {cursor!r}.",
                    retryable=False,
                ) from None
            files = [remote for remote in files if remote.mtime > after]
        size = max(1, batch_size)
        for start in range(0, len(files), size):
            batch = files[start : start + size]
            yield ReadBatch(
                records=[remote.as_record() for remote in batch], cursor=batch[-1].mtime
            )


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def file_source_for(
    connector_id: str, *, config: dict[str, Any], credentials: dict[str, Any]
) -> FileSource:
    """A connection's connector as the file pipeline uses it (``feeds_files``); any other
    connector is a ``ConnectorError``."""
    connector = get_connector(connector_id)
    if connector is None or not connector.feeds_files:
        raise ConnectorError(
            f"A {connector_id} connection is not a source of files.", retryable=False
        )
    source: Any = connector(config=config, credentials=credentials)
    return source


def file_destination_for(
    connector_id: str, *, config: dict[str, Any], credentials: dict[str, Any]
) -> FileDestination:
    """A connection's connector as exports use it (``writes_files``); any other connector is
    a ``ConnectorError``."""
    connector = get_connector(connector_id)
    if connector is None or not connector.writes_files:
        raise ConnectorError(f"A {connector_id} connection cannot receive files.", retryable=False)
    destination: Any = connector(config=config, credentials=credentials)
    return destination


# --- the local destination ---------------------------------------------------------------------


def local_exports_root(account_id: Any) -> Path:
    """``EXPORT_LOCAL_DIR/<account id>`` (``DATA_DIR/exports/...`` by default): the one folder
    LOCAL exports of an account write to."""
    account = str(account_id)
    if not account or "/" in account or account in (".", ".."):
        raise ValueError(f"Not an account id: {account!r}")
    return Path(settings.EXPORT_LOCAL_DIR) / account


class LocalDestination:
    """An account's folder on this server (``EXPORT_LOCAL_DIR/<account id>/``) as a file
    destination: the same atomic uploads as the remote stores, written to a temporary name,
    synced to disk and renamed into place.

    Paths stay inside the folder: ``..``, absolute paths and symbolic links that lead out of it
    are refused.
    """

    def __init__(self, *, account_id: Any, prefix: str = "") -> None:
        self.root = local_exports_root(account_id)
        self.prefix = prefix_clean(prefix)

    @property
    def location(self) -> str:
        return f"local:{prefix_join(self.prefix, '') or '/'}"

    def _relative(self, path: str) -> str:
        return prefix_join(self.prefix, relative_path_clean(path))

    def local_path(self, path: str) -> Path:
        """The file of ``path`` (relative to this destination) on disk, checked to be inside
        the account's folder; a symbolic link leading out is refused."""
        relative = self._relative(path)
        self.root.mkdir(parents=True, exist_ok=True)
        root = self.root.resolve()
        target = (root / relative).resolve()
        if target != root and root not in target.parents:
            raise ConnectorError(
                f"File path {path!r} leads out of the export folder.", retryable=False
            )
        return target

    def upload(self, path: str) -> FileSink:
        relative = relative_path_clean(path)
        target = self.local_path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _local_error(error, prefix_join(self.prefix, relative)) from error
        # The folders just made may not be links out of the root (made by someone else between
        # the check and the mkdir); check again now that they exist.
        target = self.local_path(path)
        return _LocalSink(
            target=target, uri=f"local:{prefix_join(self.prefix, relative)}", path=relative
        )

    def remove(self, path: str) -> None:
        target = self.local_path(path)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()

    def open(self, path: str) -> io.BufferedReader:
        """Read a delivered file (for the API's downloads)."""
        return open(self.local_path(path), "rb")


def _local_error(error: OSError, path: str) -> ConnectorError:
    # A full disk may clear up; permissions and the like will not.
    retryable = error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EAGAIN)
    return ConnectorError(f"Writing {path} failed: {error.strerror or error}.", retryable=retryable)


class _LocalSink(FileSink):
    def __init__(self, *, target: Path, uri: str, path: str) -> None:
        super().__init__(uri=uri, path=path)
        self._target = target
        # The temporary file sits beside the target (a rename within one file system is
        # atomic) and is hidden by its leading dot.
        descriptor, temporary = _mkstemp(target)
        self._temporary = Path(temporary)
        self._file = os.fdopen(descriptor, "wb")

    def _write(self, data: memoryview) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise _local_error(error, self.path) from error

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._temporary.chmod(0o640)
            os.replace(self._temporary, self._target)
            # The rename is durable only once the folder's entry is on disk too.
            folder = os.open(self._target.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError as error:
            raise _local_error(error, self.path) from error

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._temporary.unlink()


def _mkstemp(target: Path) -> tuple[int, str]:
    name = f".{target.name}.{secrets.token_hex(4)}.part"
    temporary = target.parent / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(temporary, flags, 0o600), str(temporary)
    except OSError as error:
        raise _local_error(error, posixpath.basename(str(target))) from error
