"""The SFTP subsystem: one partner's directory as the whole world, and uploads that land whole.

Paths are resolved like a chroot: the client's ``/`` is ``SFTP_ROOT_DIR/<username>``, ``..``
stops at it, and every path is resolved (symlinks included) and checked to stay inside it.

A name may have up to 255 bytes (UTF-8), as on the file systems under it; a longer one gets an
SFTP error that says so. A file opened for writing is written to a hidden temporary name next to
its real name (cut by bytes to fit), hashing as it goes. A clean close fsyncs it, renames it into
place and, before the close is answered, hands it to the sync engine. A session that ends with
the file still open (a killed client, a dropped connection) never delivers it: the partial file
is moved aside for operators.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import posixpath
import re
import secrets
import stat
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.conf import settings
from django.db import connections
from django.utils import timezone
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_INIT,
    CMD_OPEN,
    CMD_RENAME,
    CMD_VERSION,
    CMD_WRITE,
    SFTP_BAD_MESSAGE,
    SFTP_FAILURE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
    SFTPError,
)

from sftpgateway import services
from sftpgateway.choices import ActivityEvent
from sftpgateway.text import NAME_MAX_BYTES, cut_bytes, name_bytes, printable
from syncengine.models import FeedFile

if TYPE_CHECKING:
    from sftpgateway.server import Session

logger = logging.getLogger(__name__)

SFTP_VERSION = 3
# What OpenSSH's own sftp-server announces for its limits (256 KiB messages). A client that
# knows limits@openssh.com (OpenSSH 8.7+) then writes 255 KiB per request instead of 32 KiB,
# which cuts the per-request work of this Python server eightfold.
MAX_MESSAGE_LENGTH = 256 * 1024
MAX_READ_WRITE_LENGTH = MAX_MESSAGE_LENGTH - 1024
MAX_OPEN_HANDLES = 64
EXTENSIONS = (
    ("posix-rename@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
)

# The gateway's own temporary names: hidden, never listed, never ingested.
TEMP_NAME = re.compile(r"^\..*\.ry-[0-9a-f]{12}\.part$", re.DOTALL)
TEMP_NAME_EXTRA_BYTES = len(".") + len(".ry-") + 12 + len(".part")
# A partner's own temporary names: kept as uploaded, ingested once renamed to a real name.
NOT_INGESTED_SUFFIXES = (".part", ".tmp", ".filepart")
HASH_CHUNK = 1024 * 1024


def is_ingestable(virtual_path: str) -> bool:
    """Whether a completed file at this path is a feed: no hidden part, no temporary suffix."""
    parts = [part for part in virtual_path.split("/") if part]
    if not parts or any(part.startswith(".") for part in parts):
        return False
    return not parts[-1].lower().endswith(NOT_INGESTED_SUFFIXES)


class PathRefused(Exception):
    """A path that would leave the partner's root (through a symlink) or is not allowed."""


class NameRefused(Exception):
    """A name the gateway cannot store or record; the message is the client's SFTP error."""


def _recordable_length() -> int:
    """The longest relative path a received-file row holds (its ``filename`` column)."""
    return int(FeedFile._meta.get_field("filename").max_length or 255)


class Jail:
    """Maps the client's paths into one root directory and refuses anything that leaves it."""

    def __init__(self, root: Path) -> None:
        self.root = os.path.realpath(root)

    @staticmethod
    def normalize(path: str) -> str:
        """The client's path as an absolute, normalized virtual path (``..`` stops at ``/``)."""
        if "\x00" in path:
            raise PathRefused("NUL byte in path")
        for part in path.split("/"):
            if name_bytes(part) > NAME_MAX_BYTES:
                raise NameRefused(
                    f"The name {printable(cut_bytes(part, 40))}... has {name_bytes(part)} bytes; "
                    f"names may have at most {NAME_MAX_BYTES} bytes (UTF-8)."
                )
        virtual = posixpath.normpath(posixpath.join("/", path))
        # normpath keeps exactly two leading slashes (POSIX allows them a special meaning).
        return "/" + virtual.lstrip("/")

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def real(self, path: str, *, follow: bool) -> str:
        """The real path of a client path; ``follow`` also resolves a symlink in the last part.

        The directories leading to it are always resolved and must stay inside the root. The
        returned path is the resolved one, so the operation does not follow links again.
        """
        virtual = self.normalize(path)
        if virtual == "/":
            return self.root
        candidate = os.path.join(self.root, virtual.lstrip("/"))
        parent = os.path.realpath(os.path.dirname(candidate))
        if not self.inside(parent):
            raise PathRefused(f"{virtual} leads outside the root")
        target = os.path.join(parent, os.path.basename(candidate))
        if follow:
            target = os.path.realpath(target)
            if not self.inside(target):
                raise PathRefused(f"{virtual} leads outside the root")
        return target

    def virtual(self, real: str) -> str:
        relative = os.path.relpath(real, self.root)
        return "/" if relative == "." else "/" + relative.replace(os.sep, "/")


class _RecentDigests:
    """sha256 of files completed lately, by inode, so a rename after upload needs no re-read."""

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[int, int, int, int], str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def remember(self, st: os.stat_result, digest: str) -> None:
        with self._lock:
            self._items[self._key(st)] = digest
            self._items.move_to_end(self._key(st))
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, st: os.stat_result) -> str | None:
        with self._lock:
            return self._items.get(self._key(st))


recent_digests = _RecentDigests()


def _hash_fd(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, HASH_CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def partial_dir(username: str) -> Path:
    """Where partial uploads are kept: outside every partner's root, for operators only."""
    base = Path(Path(settings.SFTP_PARTIAL_DIR))
    return base / username


class ReadHandle(SFTPHandle):
    """A file opened for reading (downloads, and clients that read back what they wrote)."""

    def __init__(self, fd: int, flags: int) -> None:
        super().__init__(flags)
        self.fd = fd

    def read(self, offset: int, length: int) -> bytes | int:
        try:
            return os.pread(self.fd, min(length, MAX_READ_WRITE_LENGTH), offset)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    def write(self, offset: int, data: bytes) -> int:
        return SFTP_PERMISSION_DENIED

    def stat(self) -> Any:
        return SFTPAttributes.from_stat(os.fstat(self.fd))

    def chattr(self, attr: Any) -> int:
        return SFTP_OK

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class UploadHandle(SFTPHandle):
    """A file being uploaded: written to a hidden temporary file, delivered on a clean close."""

    def __init__(
        self, *, sftp: GatewaySFTPInterface, final_path: str, virtual_path: str, flags: int
    ) -> None:
        super().__init__(flags)
        self.sftp = sftp
        self.final_path = final_path
        self.virtual_path = virtual_path
        directory, name = os.path.split(final_path)
        # Names can be up to 255 bytes; the marker and the random part must still fit, so the
        # name is cut by bytes (never inside a character).
        stem = cut_bytes(name, NAME_MAX_BYTES - TEMP_NAME_EXTRA_BYTES)
        self.temp_path = os.path.join(directory, f".{stem}.ry-{secrets.token_hex(6)}.part")
        self.fd = os.open(
            self.temp_path,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o640,
        )
        self.append = bool(flags & os.O_APPEND)
        self.max_size = int(settings.SFTP_MAX_FILE_SIZE)
        self.size = 0
        # Hashing happens as the data arrives, as long as it arrives in order (it does for
        # OpenSSH, curl and WinSCP); otherwise the finished file is hashed once more at close.
        self.digest = hashlib.sha256()
        self.hashed = 0
        self.in_order = True
        self.times: tuple[int, int] | None = None
        self.error = ""
        self.done = False
        sftp.session.count("open_uploads", 1)

    # --- requests --------------------------------------------------------------------------

    def load_existing(self, source: str) -> None:
        """Start from the current content (resume, append, in-place edit): copy, never modify.

        The existing file may be hard-linked into the feed store, so it is never written to.
        """
        with open(source, "rb") as existing:
            offset = 0
            while chunk := existing.read(HASH_CHUNK):
                os.pwrite(self.fd, chunk, offset)
                offset += len(chunk)
        self.size = offset
        self.in_order = False

    def write(self, offset: int, data: bytes) -> int:
        if self.error:
            return SFTP_FAILURE
        if self.append:
            offset = self.size
        end = offset + len(data)
        if end > self.max_size:
            self.fail(f"The file exceeds the maximum upload size of {self.max_size} bytes.")
            return SFTP_FAILURE
        try:
            view = memoryview(data)
            written = 0
            while written < len(data):
                written += os.pwrite(self.fd, view[written:], offset + written)
        except OSError as exc:
            self.fail(f"Could not write the file: {os.strerror(exc.errno or errno.EIO)}.")
            return SFTP_FAILURE
        if self.in_order and offset == self.hashed:
            self.digest.update(data)
            self.hashed = end
        else:
            self.in_order = False
        self.size = max(self.size, end)
        return SFTP_OK

    def read(self, offset: int, length: int) -> bytes | int:
        if self.error:
            return SFTP_FAILURE
        return os.pread(self.fd, min(length, MAX_READ_WRITE_LENGTH), offset)

    def stat(self) -> Any:
        if self.error:
            return SFTP_FAILURE
        return SFTPAttributes.from_stat(os.fstat(self.fd))

    def chattr(self, attr: Any) -> int:
        if self.error:
            return SFTP_FAILURE
        if attr._flags & attr.FLAG_SIZE:
            if attr.st_size > self.max_size:
                self.fail(f"The file exceeds the maximum upload size of {self.max_size} bytes.")
                return SFTP_FAILURE
            os.ftruncate(self.fd, attr.st_size)
            self.size = attr.st_size
            self.in_order = False
        if attr._flags & attr.FLAG_AMTIME:
            self.times = (attr.st_atime, attr.st_mtime)
        # Permissions and owners are the gateway's business: the files must stay readable by
        # the worker that ingests them.
        return SFTP_OK

    def fsync(self) -> int:
        if self.error:
            return SFTP_FAILURE
        os.fsync(self.fd)
        return SFTP_OK

    # --- endings -----------------------------------------------------------------------------

    def _release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if not self.done:
            self.done = True
            self.sftp.session.count("open_uploads", -1)

    def fail(self, reason: str) -> None:
        """Give up on this upload and keep nothing of it (too large, disk error)."""
        if self.error:
            return
        self.error = reason
        self._release()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)
        self.sftp.record(
            ActivityEvent.UPLOAD_FAILED, path=self.virtual_path.lstrip("/"), detail=reason
        )

    def complete(self) -> tuple[int, str]:
        """The client closed the file: fsync, rename into place, deliver. Returns the status."""
        if self.error:
            return SFTP_FAILURE, self.error
        try:
            size = os.fstat(self.fd).st_size
            digest = (
                self.digest.hexdigest()
                if self.in_order and self.hashed == size
                else _hash_fd(self.fd)
            )
            os.fsync(self.fd)
            if self.times is not None:
                os.utime(self.fd, self.times)
            finished = os.fstat(self.fd)
            self._release()
            os.replace(self.temp_path, self.final_path)
            _fsync_directory(os.path.dirname(self.final_path))
        except OSError as exc:
            logger.exception("Upload of %s failed at close", self.final_path)
            self.fail(f"Could not store the file: {os.strerror(exc.errno or errno.EIO)}.")
            return SFTP_FAILURE, self.error
        recent_digests.remember(finished, digest)
        return self.sftp.deliver(
            real_path=self.final_path, virtual_path=self.virtual_path, size=size, sha256=digest
        )

    def abort(self, reason: str) -> None:
        """The session ended with the file open: move what arrived aside, never ingest it."""
        if self.error or self.done:
            return
        self._release()
        username = self.sftp.session.username
        target_dir = partial_dir(username)
        prefix = f"{timezone.now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}-"
        name = cut_bytes(os.path.basename(self.final_path), NAME_MAX_BYTES - len(prefix))
        target = target_dir / f"{prefix}{name}"
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            size = os.path.getsize(self.temp_path)
            os.replace(self.temp_path, target)
        except OSError:
            logger.exception("Could not move the partial upload %s aside", self.temp_path)
            return
        logger.warning(
            "Partial upload of %s by %s (%d bytes): %s; kept as %s",
            self.virtual_path,
            username,
            size,
            reason,
            target,
        )
        self.sftp.record(
            ActivityEvent.PARTIAL,
            path=self.virtual_path.lstrip("/"),
            size=size,
            detail=f"{reason[:300]}; kept aside as {target.name}",
        )

    def close(self) -> None:
        # paramiko closes handles left open when the session ends; the client's own CLOSE goes
        # through complete() (see GatewaySFTPServer), so a close here is never a finished file.
        self.abort("the session ended before the file was closed")


F = TypeVar("F", bound=Callable[..., Any])


def _sftp_errors(method: F) -> F:
    """Turn refusals and OS errors into SFTP status codes, as paramiko expects."""

    @functools.wraps(method)
    def wrapper(self: GatewaySFTPInterface, *args: Any) -> Any:
        try:
            return method(self, *args)
        except PathRefused as exc:
            self.record(ActivityEvent.REFUSED, detail=f"{method.__name__}: {exc}")
            return SFTP_PERMISSION_DENIED
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno)

    return cast(F, wrapper)


class GatewaySFTPInterface(SFTPServerInterface):
    """The file operations of one SFTP session, confined to the partner's root directory."""

    def __init__(self, server: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.session: Session = server.session
        self.jail = Jail(self.session.ensure_root())

    def session_started(self) -> None:
        # The supervisor checks the session caps and logs the login as soon as the channel is
        # open; no file operation runs before that (and none at all for a refused session).
        self.session.admitted.wait(timeout=10)
        if not self.session.logged_in:
            self.session.close("the session was not admitted")

    def session_ended(self) -> None:
        # Each session thread opened its own database connection; give it back.
        connections.close_all()

    def record(self, event: str, **fields: Any) -> None:
        self.session.record(event, **fields)

    # --- delivery ------------------------------------------------------------------------------

    def deliver(
        self, *, real_path: str, virtual_path: str, size: int, sha256: str
    ) -> tuple[int, str]:
        """A complete file is in place: ingest it (feeds) or just log it (temporary names)."""
        filename = virtual_path.lstrip("/")
        if not is_ingestable(virtual_path):
            self.record(
                ActivityEvent.UPLOAD,
                path=filename,
                size=size,
                sha256=sha256,
                detail="Temporary or hidden name: kept, not ingested until renamed.",
            )
            return SFTP_OK, ""
        return self._ingest(real_path=real_path, filename=filename, size=size, sha256=sha256)

    def _ingest(
        self, *, real_path: str, filename: str, size: int, sha256: str, detail: str = ""
    ) -> tuple[int, str]:
        session = self.session
        try:
            services.upload_receive(
                credential=session.credential,
                source_path=Path(real_path),
                filename=filename,
                size=size,
                sha256=sha256,
                remote_address=session.remote_address,
                detail=detail,
            )
        except Exception:
            # The file is in place but not recorded; the client is told, and uploads it again.
            logger.exception("Could not record the upload %s of %s", filename, session.username)
            return SFTP_FAILURE, "The file was stored but could not be recorded; upload it again."
        logger.info(
            "Received %s from %s (%s, %d bytes, sha256 %s)",
            filename,
            session.username,
            session.remote_address,
            size,
            sha256,
        )
        return SFTP_OK, ""

    # --- SFTPServerInterface -----------------------------------------------------------------

    def canonicalize(self, path: str) -> str:
        try:
            return Jail.normalize(path)
        except (PathRefused, NameRefused):
            return "/"

    @staticmethod
    def check_recordable(virtual_path: str) -> None:
        """A feed's relative path must fit its received-file row, or it could be stored but
        never recorded: refuse it before the upload instead."""
        limit = _recordable_length()
        if is_ingestable(virtual_path) and len(virtual_path.lstrip("/")) > limit:
            raise NameRefused(
                f"The path has {len(virtual_path.lstrip('/'))} characters; a feed's path "
                f"(directories included) may have at most {limit}."
            )

    @_sftp_errors
    def open(self, path: str, flags: int, attr: Any) -> Any:
        if not flags & (os.O_WRONLY | os.O_RDWR):
            real = self.jail.real(path, follow=True)
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                return SFTP_FAILURE
            return ReadHandle(fd, flags)
        virtual = Jail.normalize(path)
        real = self.jail.real(path, follow=False)
        if virtual == "/" or TEMP_NAME.match(os.path.basename(real)):
            return SFTP_PERMISSION_DENIED
        self.check_recordable(virtual)
        try:
            existing = os.lstat(real)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if stat.S_ISLNK(existing.st_mode):
                raise PathRefused(f"{virtual} is a symbolic link")
            if not stat.S_ISREG(existing.st_mode):
                return SFTP_FAILURE
            if flags & os.O_CREAT and flags & os.O_EXCL:
                return SFTP_FAILURE
        elif not flags & os.O_CREAT:
            return SFTP_NO_SUCH_FILE
        if not os.path.isdir(os.path.dirname(real)):
            return SFTP_NO_SUCH_FILE
        handle = UploadHandle(sftp=self, final_path=real, virtual_path=virtual, flags=flags)
        if existing is not None and not flags & os.O_TRUNC:
            try:
                handle.load_existing(real)
            except OSError:
                handle.fail("Could not read the existing file to resume it.")
                return SFTP_FAILURE
        return handle

    @_sftp_errors
    def list_folder(self, path: str) -> Any:
        real = self.jail.real(path, follow=True)
        entries = []
        with os.scandir(real) as listing:
            for entry in listing:
                if TEMP_NAME.match(entry.name):
                    continue
                entries.append(
                    SFTPAttributes.from_stat(entry.stat(follow_symlinks=False), entry.name)
                )
        return entries

    @_sftp_errors
    def stat(self, path: str) -> Any:
        return SFTPAttributes.from_stat(os.stat(self.jail.real(path, follow=True)))

    @_sftp_errors
    def lstat(self, path: str) -> Any:
        return SFTPAttributes.from_stat(os.lstat(self.jail.real(path, follow=False)))

    @_sftp_errors
    def remove(self, path: str) -> int:
        real = self.jail.real(path, follow=False)
        if real == self.jail.root or stat.S_ISDIR(os.lstat(real).st_mode):
            return SFTP_FAILURE
        # Unlinking never touches the stored copy of a received feed (a separate hard link).
        os.unlink(real)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        return self.rename_with_reason(oldpath, newpath)[0]

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self.rename_with_reason(oldpath, newpath)[0]

    def rename_with_reason(self, oldpath: str, newpath: str) -> tuple[int, str]:
        """Rename, replacing an existing file of the new name (partners re-upload the same name
        every night, and many clients rename a temporary upload over yesterday's file).

        Renaming a temporary or hidden name to a feed name completes an upload: it is ingested
        before the rename is answered. Returns the status and, on failure, a message.
        """
        try:
            return self._rename(oldpath, newpath)
        except PathRefused as exc:
            self.record(ActivityEvent.REFUSED, detail=f"rename: {exc}")
            return SFTP_PERMISSION_DENIED, ""
        except NameRefused as exc:
            self.record(ActivityEvent.REFUSED, detail=f"rename: {exc}")
            return SFTP_FAILURE, str(exc)
        except OSError as exc:
            return SFTPServer.convert_errno(exc.errno), ""

    def _rename(self, oldpath: str, newpath: str) -> tuple[int, str]:
        old_real = self.jail.real(oldpath, follow=False)
        new_real = self.jail.real(newpath, follow=False)
        if self.jail.root in (old_real, new_real):
            return SFTP_PERMISSION_DENIED, ""
        if TEMP_NAME.match(os.path.basename(old_real)) or TEMP_NAME.match(
            os.path.basename(new_real)
        ):
            return SFTP_PERMISSION_DENIED, ""
        source = os.lstat(old_real)
        try:
            target = os.lstat(new_real)
        except FileNotFoundError:
            target = None
        if target is not None and (stat.S_ISDIR(target.st_mode) or stat.S_ISDIR(source.st_mode)):
            return SFTP_FAILURE, "The new name exists and one of the two is a directory."
        old_virtual, new_virtual = self.jail.virtual(old_real), self.jail.virtual(new_real)
        if stat.S_ISREG(source.st_mode) and not is_ingestable(old_virtual):
            self.check_recordable(new_virtual)
        os.replace(old_real, new_real)
        completes_upload = (
            stat.S_ISREG(source.st_mode)
            and not is_ingestable(old_virtual)
            and is_ingestable(new_virtual)
        )
        if not completes_upload:
            return SFTP_OK, ""
        digest = recent_digests.get(source)
        if digest is None:
            fd = os.open(new_real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                digest = _hash_fd(fd)
            finally:
                os.close(fd)
        return self._ingest(
            real_path=new_real,
            filename=new_virtual.lstrip("/"),
            size=source.st_size,
            sha256=digest,
            detail=f"Renamed from {old_virtual.lstrip('/')}.",
        )

    @_sftp_errors
    def mkdir(self, path: str, attr: Any) -> int:
        real = self.jail.real(path, follow=False)
        if TEMP_NAME.match(os.path.basename(real)):
            return SFTP_PERMISSION_DENIED
        os.mkdir(real, 0o750)
        return SFTP_OK

    @_sftp_errors
    def rmdir(self, path: str) -> int:
        real = self.jail.real(path, follow=False)
        if real == self.jail.root:
            return SFTP_PERMISSION_DENIED
        os.rmdir(real)
        return SFTP_OK

    @_sftp_errors
    def chattr(self, path: str, attr: Any) -> int:
        real = self.jail.real(path, follow=True)
        if attr._flags & attr.FLAG_SIZE:
            # Truncating in place would change a file that may share its inode with the stored
            # copy of a received feed; uploads change content through a new file instead.
            return SFTP_OP_UNSUPPORTED
        if attr._flags & attr.FLAG_AMTIME:
            os.utime(real, (attr.st_atime, attr.st_mtime), follow_symlinks=False)
        return SFTP_OK

    @_sftp_errors
    def readlink(self, path: str) -> Any:
        real = self.jail.real(path, follow=False)
        if not os.path.islink(real):
            return SFTP_FAILURE
        resolved = os.path.realpath(real)
        if not self.jail.inside(resolved):
            raise PathRefused(f"{Jail.normalize(path)} points outside the root")
        return self.jail.virtual(resolved)

    def symlink(self, target_path: str, path: str) -> int:
        self.record(ActivityEvent.REFUSED, path=path[:1024], detail="Symbolic links are refused.")
        return SFTP_PERMISSION_DENIED


class GatewaySFTPServer(SFTPServer):
    """paramiko's SFTP server with the gateway's rules for writes, closes and extensions.

    paramiko answers a CLOSE with OK whatever happens; here the answer waits for the file to be
    stored and recorded, and says so when it was not.
    """

    def __init__(self, channel: Any, name: str, server: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, name, server, GatewaySFTPInterface, *args, **kwargs)
        self.session: Session = server.session

    def _send_server_version(self) -> int:
        kind, data = self._read_packet()
        if kind != CMD_INIT:
            raise SFTPError("Incompatible sftp protocol")
        version = int(struct.unpack(">I", data[:4])[0])
        message = Message()
        message.add_int(SFTP_VERSION)
        for name, value in EXTENSIONS:
            message.add_string(name)
            message.add_string(value)
        self._send_packet(CMD_VERSION, message)
        return version

    def _process(self, kind: int, request_number: int, msg: Any) -> None:
        self.session.touch()
        try:
            self._dispatch(kind, request_number, msg)
        except NameRefused as exc:
            # paramiko would answer a bare "Failure"; the client is told what is wrong.
            self.server.record(ActivityEvent.REFUSED, detail=str(exc))
            self._send_status(request_number, SFTP_FAILURE, str(exc))
        finally:
            self.session.touch()

    def _dispatch(self, kind: int, request_number: int, msg: Any) -> None:
        if kind == CMD_WRITE:
            self._write(request_number, msg)
        elif kind == CMD_CLOSE:
            self._close(request_number, msg)
        elif kind == CMD_OPEN and len(self.file_table) >= MAX_OPEN_HANDLES:
            self._send_status(request_number, SFTP_FAILURE, "Too many open files.")
        elif kind == CMD_RENAME:
            oldpath, newpath = msg.get_text(), msg.get_text()
            self._send_status(request_number, *self.server.rename_with_reason(oldpath, newpath))
        elif kind == CMD_EXTENDED:
            self._extended(request_number, msg)
        else:
            super()._process(kind, request_number, msg)

    def _send_status(self, request_number: int, code: int, desc: str | None = None) -> None:
        # An empty message means "the standard text for this code".
        super()._send_status(request_number, code, desc or None)

    def _write(self, request_number: int, msg: Any) -> None:
        handle = msg.get_binary()
        offset = msg.get_int64()
        data = msg.get_binary()
        upload = self.file_table.get(handle)
        if upload is None:
            self._send_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
            return
        code = upload.write(offset, data)
        self._send_status(request_number, code, getattr(upload, "error", ""))

    def _close(self, request_number: int, msg: Any) -> None:
        handle = msg.get_binary()
        if self.folder_table.pop(handle, None) is not None:
            self._send_status(request_number, SFTP_OK)
            return
        opened = self.file_table.pop(handle, None)
        if opened is None:
            self._send_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
            return
        if isinstance(opened, UploadHandle):
            self._send_status(request_number, *opened.complete())
            return
        opened.close()
        self._send_status(request_number, SFTP_OK)

    def _extended(self, request_number: int, msg: Any) -> None:
        tag = msg.get_text()
        if tag == "limits@openssh.com":
            reply = Message()
            reply.add_int(request_number)
            reply.add_int64(MAX_MESSAGE_LENGTH)
            reply.add_int64(MAX_READ_WRITE_LENGTH)
            reply.add_int64(MAX_READ_WRITE_LENGTH)
            reply.add_int64(MAX_OPEN_HANDLES)
            self._send_packet(CMD_EXTENDED_REPLY, reply)
        elif tag == "posix-rename@openssh.com":
            oldpath, newpath = msg.get_text(), msg.get_text()
            self._send_status(request_number, *self.server.rename_with_reason(oldpath, newpath))
        elif tag == "fsync@openssh.com":
            opened = self.file_table.get(msg.get_binary())
            if opened is None:
                self._send_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
            elif isinstance(opened, UploadHandle):
                self._send_status(request_number, opened.fsync())
            else:
                self._send_status(request_number, SFTP_OK)
        else:
            self._send_status(request_number, SFTP_OP_UNSUPPORTED)

    def finish_subsystem(self) -> None:
        # Before paramiko closes what is still open: an upload that was never closed by the
        # client is partial, not finished.
        for opened in list(self.file_table.values()):
            if isinstance(opened, UploadHandle):
                opened.abort("the connection ended before the file was closed")
            else:
                opened.close()
        self.file_table: dict[bytes, Any] = {}
        self.folder_table: dict[bytes, Any] = {}
        # sshd reports how the subsystem ended; scp (SFTP mode) fails without an exit status.
        with contextlib.suppress(Exception):
            self.sock.send_exit_status(0)
        try:
            super().finish_subsystem()
        finally:
            self.session.count("subsystems", -1)
