"""A remote SFTP server as a file store: a source of feed files by glob (with an optional archive
folder) and a destination of atomic uploads (a temporary name, then a rename).

The server's host key is pinned in the config and checked before any credential is sent: a
server that presents another key is refused. Nothing is looked up on this machine (no SSH agent,
no ~/.ssh keys, no known_hosts), so a connection behaves the same on every worker. The TCP
connection goes through the egress policy (``connectors.network.checked_connection``).

``sftp`` is the store; ``sftp_pull`` (``connectors.sftp_pull``) is the same client as a source
only, with its own config names.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import io
import posixpath
import secrets
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from paramiko.ssh_exception import IncompatiblePeer

from connectors.files import (
    SOURCE_CONFIG_PROPERTIES,
    FileSink,
    FileStore,
    RemoteFile,
    RemoteFileError,
    name_matches,
    numbered_name,
    relative_path_clean,
)
from connectors.network import checked_connection
from connectors.registry import ConnectorError, register

CONNECT_TIMEOUT_SECONDS = 15
# Each SFTP request (a listing, a read) must answer within this; a stalled server is a timeout,
# not a job that hangs until the worker's hard limit.
IO_TIMEOUT_SECONDS = 60
KEEPALIVE_SECONDS = 30
# A large SSH window and packets let a download stream at disk speed instead of waiting for
# window adjustments (the gateway measured 44 MB/s with paramiko's 2 MiB default, 109 with this).
WINDOW_SIZE = 2**27
MAX_PACKET_SIZE = 2**18 - 2**12
DOWNLOAD_CHUNK = 1024 * 1024
# Read requests kept in flight while downloading (32 KiB each): 4 MiB, enough to fill a fast
# link without buffering a whole large file in memory when the disk is slower.
PREFETCH_REQUESTS = 128

# "SHA256:" and 43 base64 characters, as `ssh-keygen -lf` prints it (padding dropped).
_FINGERPRINT_PATTERN = r"SHA256:[A-Za-z0-9+/]{43}=?"
_KEY_LINE_PATTERN = r"(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+) [A-Za-z0-9+/]+={0,3}( .*)?"
HOST_KEY_PATTERN = rf"^\s*({_FINGERPRINT_PATTERN}|{_KEY_LINE_PATTERN})\s*$"
# The host key algorithms paramiko may negotiate for a pinned RSA key (SHA-1 ssh-rsa is gone).
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")

# Config keys of every SFTP connection (the folder key differs: sftp_pull says "path").
SSH_CONFIG_PROPERTIES: dict[str, Any] = {
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 22},
    "username": {"type": "string", "minLength": 1},
    "hostKey": {
        "type": "string",
        "pattern": HOST_KEY_PATTERN,
        "description": "The server's pinned host key: a public key line (\"ssh-ed25519 "
        'AAAA...") or its fingerprint as `ssh-keygen -lf` prints it ("SHA256:...").',
    },
}
SSH_CREDENTIALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "password": {"type": "string", "minLength": 1},
        "privateKey": {"type": "string", "minLength": 1},
        "passphrase": {"type": "string"},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class HostKeyPin:
    """The pinned server key: a whole public key, or only its SHA-256 fingerprint."""

    fingerprint: str
    key_type: str | None = None

    @classmethod
    def parse(cls, value: str) -> HostKeyPin:
        text = (value or "").strip()
        if text.startswith("SHA256:"):
            return cls(fingerprint=text.rstrip("="))
        parts = text.split()
        if len(parts) < 2:
            raise ConnectorError(
                'hostKey must be a public key line ("ssh-ed25519 AAAA...") or a SHA256: '
                "fingerprint.",
                retryable=False,
            )
        key_type, blob_text = parts[0], parts[1]
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except (binascii.Error, ValueError):
            raise ConnectorError("hostKey is not valid base64.", retryable=False) from None
        # The blob names its own type first; a line whose two disagree was pasted wrong.
        try:
            embedded_type = paramiko.Message(blob).get_text()
        except Exception:
            embedded_type = ""
        if embedded_type != key_type:
            raise ConnectorError(
                f"hostKey says {key_type} but holds a {embedded_type or 'malformed'} key.",
                retryable=False,
            )
        return cls(fingerprint=_fingerprint(blob), key_type=key_type)

    def host_key_types(self) -> list[str] | None:
        """Ask the server for the pinned key's type, so a server with several host keys shows
        the one that was pinned. None: any type (only a fingerprint is pinned)."""
        if self.key_type is None:
            return None
        if self.key_type == "ssh-rsa":
            return list(_RSA_ALGORITHMS)
        return [self.key_type]


def _fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return f"SHA256:{digest.rstrip('=')}"


def _private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """Load an OpenSSH or PEM private key of any type paramiko supports, from memory only."""
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            raise ConnectorError(
                "credentials.privateKey is encrypted: set credentials.passphrase.",
                retryable=False,
            ) from None
        except (paramiko.SSHException, ValueError, TypeError):
            continue
    raise ConnectorError(
        "credentials.privateKey could not be read: not an OpenSSH or PEM Ed25519, ECDSA or RSA "
        "private key, or the passphrase is wrong.",
        retryable=False,
    )


def _network_error(error: BaseException, where: str) -> ConnectorError:
    """Reaching the server failed: refused, timed out, unreachable, dropped. Retrying can help,
    except when the name does not resolve at all."""
    if isinstance(error, socket.gaierror):
        temporary = error.errno == socket.EAI_AGAIN
        return ConnectorError(
            f"Could not resolve {where}: {error.strerror or error}.", retryable=temporary
        )
    if isinstance(error, TimeoutError | socket.timeout):
        return ConnectorError(f"Timed out talking to {where}.", retryable=True)
    if isinstance(error, ConnectionRefusedError):
        return ConnectorError(f"Connection refused by {where}.", retryable=True)
    if isinstance(error, EOFError):
        return ConnectorError(f"{where} closed the connection.", retryable=True)
    detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return ConnectorError(f"Connection to {where} failed: {detail}.", retryable=True)


def _hang_up(transport: paramiko.Transport) -> None:
    """Disconnect at once. ``Transport.close()`` alone leaves the TCP connection up until the
    reader thread's next socket timeout, and a server that caps sessions per user would still
    count this one against the next login."""
    with contextlib.suppress(OSError):
        transport.sock.shutdown(socket.SHUT_RDWR)
    transport.close()


class _Session:
    """One logged-in SSH transport and its SFTP client."""

    def __init__(self, transport: paramiko.Transport, sftp: paramiko.SFTPClient) -> None:
        self.transport = transport
        self.sftp = sftp

    @property
    def alive(self) -> bool:
        return self.transport.is_active()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sftp.close()
        with contextlib.suppress(Exception):
            _hang_up(self.transport)


@register
class SftpConnector(FileStore):
    id = "sftp"
    name = "SFTP"
    description = (
        "Files on a remote SFTP server (pinned host key): a source of feed files matching a glob, "
        "optionally moved to an archive folder once taken, and a destination of exports, each "
        "written to a temporary name and renamed into place when complete."
    )
    config_properties = {
        **SSH_CONFIG_PROPERTIES,
        "directory": {
            "type": "string",
            "minLength": 1,
            "default": ".",
            "description": "The remote folder files are read from and written to (relative "
            "paths start at the login folder).",
        },
        **SOURCE_CONFIG_PROPERTIES,
        "archivePath": {
            "type": "string",
            "minLength": 1,
            "description": "Folder taken files are moved to, created if missing; relative to "
            "directory unless absolute.",
        },
    }
    config_required = ["host", "username", "hostKey"]
    credentials_schema = SSH_CREDENTIALS_SCHEMA
    folder_key = "directory"
    default_folder = "."

    def __init__(self, *, config: dict[str, Any], credentials: dict[str, Any]) -> None:
        super().__init__(config=config, credentials=credentials)
        self._open: _Session | None = None

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, list[str]]:
        errors = super().validate_config(config)
        if isinstance(config, dict) and "pattern" not in errors:
            pattern = config.get("pattern")
            if isinstance(pattern, str) and "/" in pattern:
                errors["pattern"] = ["pattern matches file names: it may not contain /."]
        return errors

    # --- config ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self.config.get("host") or "")

    @property
    def port(self) -> int:
        return int(self.config.get("port") or 22)

    @property
    def folder(self) -> str:
        return str(self.config.get(self.folder_key) or self.default_folder)

    @property
    def archive_folder(self) -> str | None:
        archive = self.config.get("archivePath")
        if not archive:
            return None
        return posixpath.normpath(posixpath.join(self.folder, str(archive)))

    @property
    def location(self) -> str:
        return self.uri(self.folder)

    def uri(self, path: str) -> str:
        """``sftp://host:port/abs/path``, or ``.../~/path`` for a path from the login folder."""
        clean = posixpath.normpath(path)
        if clean.startswith("/"):
            return f"sftp://{self._where}{clean}"
        return f"sftp://{self._where}/~" + ("" if clean == "." else f"/{clean}")

    @property
    def origin(self) -> str:
        return self.host

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    # --- sessions ----------------------------------------------------------------------------

    def _connect(self) -> _Session:
        if not self.host or not self.config.get("username"):
            raise ConnectorError("config.host and config.username are required.", retryable=False)
        pin = HostKeyPin.parse(str(self.config.get("hostKey") or ""))
        password = self.credentials.get("password")
        private_key_text = self.credentials.get("privateKey")
        if not password and not private_key_text:
            raise ConnectorError(
                "Set credentials.password or credentials.privateKey.", retryable=False
            )
        private_key = (
            _private_key(private_key_text, self.credentials.get("passphrase"))
            if private_key_text
            else None
        )
        try:
            sock = checked_connection(self.host, self.port, timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError as error:
            raise _network_error(error, self._where) from error
        transport = paramiko.Transport(
            sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
        )
        try:
            transport.banner_timeout = CONNECT_TIMEOUT_SECONDS
            transport.auth_timeout = CONNECT_TIMEOUT_SECONDS
            key_types = pin.host_key_types()
            if key_types is not None:
                try:
                    transport.get_security_options().key_types = key_types
                except ValueError:
                    raise ConnectorError(
                        f"Host keys of type {pin.key_type} are not supported.", retryable=False
                    ) from None
            transport.start_client(timeout=CONNECT_TIMEOUT_SECONDS)
            self._check_host_key(transport, pin)
            self._authenticate(transport, password=password, private_key=private_key)
            transport.set_keepalive(KEEPALIVE_SECONDS)
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise ConnectorError(f"{self._where} refused the SFTP subsystem.", retryable=False)
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(IO_TIMEOUT_SECONDS)
        except ConnectorError:
            _hang_up(transport)
            raise
        except IncompatiblePeer as error:
            _hang_up(transport)
            wanted = f" of type {pin.key_type}" if pin.key_type else ""
            raise ConnectorError(
                f"{self._where} offers no host key{wanted} or no algorithm in common: {error}",
                retryable=False,
            ) from error
        except paramiko.SSHException as error:
            _hang_up(transport)
            raise ConnectorError(
                f"SSH negotiation with {self._where} failed: {error}", retryable=True
            ) from error
        except (OSError, EOFError) as error:
            _hang_up(transport)
            raise _network_error(error, self._where) from error
        return _Session(transport, sftp)

    def _check_host_key(self, transport: paramiko.Transport, pin: HostKeyPin) -> None:
        """Refuse the server unless it proved it holds the pinned key (the key exchange checked
        its signature); this runs before any credential is sent."""
        key = transport.get_remote_server_key()
        seen = _fingerprint(key.asbytes())
        if seen != pin.fingerprint:
            raise ConnectorError(
                f"Host key mismatch: {self._where} presented {key.get_name()} key {seen}, "
                f"but config.hostKey pins {pin.fingerprint}. If the server's key really "
                "changed, confirm it with its operator and update hostKey.",
                retryable=False,
            )

    def _authenticate(
        self,
        transport: paramiko.Transport,
        *,
        password: str | None,
        private_key: paramiko.PKey | None,
    ) -> None:
        username = str(self.config["username"])
        if private_key is not None:
            try:
                transport.auth_publickey(username, private_key)
                return
            except paramiko.AuthenticationException:
                if not password:
                    raise ConnectorError(
                        f"{self._where} refused the private key of {username}.", retryable=False
                    ) from None
        try:
            transport.auth_password(username, password)
        except paramiko.AuthenticationException:
            raise ConnectorError(
                f"Authentication failed: {self._where} refused the login of {username}.",
                retryable=False,
            ) from None
        if not transport.is_authenticated():
            raise ConnectorError(
                f"{self._where} asks {username} for more than a password or a key.",
                retryable=False,
            )

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Keep one SSH session open for every call made inside the block."""
        if self._open is not None:
            yield self
            return
        self._open = self._connect()
        try:
            yield self
        finally:
            self.close()

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    @contextlib.contextmanager
    def _sftp(self) -> Iterator[paramiko.SFTPClient]:
        with self.session():
            assert self._open is not None
            yield self._open.sftp

    def _remote_error(self, error: Exception, what: str) -> ConnectorError:
        """An SFTP request failed: a dead connection is retryable, anything else is about
        this path (missing, not allowed)."""
        if self._open is None or not self._open.alive or isinstance(error, socket.timeout):
            return _network_error(error, self._where)
        code = getattr(error, "errno", None)
        if code == errno.ENOENT:
            return RemoteFileError(f"{what}: no such file or folder on {self._where}.")
        if code == errno.EACCES:
            return RemoteFileError(f"{what}: permission denied on {self._where}.")
        return RemoteFileError(f"{what}: {error or type(error).__name__}.")

    def _folder_error(self, error: Exception, folder: str) -> ConnectorError:
        failure = self._remote_error(error, f"Remote folder {folder}")
        if isinstance(failure, RemoteFileError):
            # The folder is the config, not one file: a missing one fails the whole run.
            return ConnectorError(failure.message, retryable=False)
        return failure

    # --- source --------------------------------------------------------------------------------

    def list_files(self) -> list[RemoteFile]:
        """Regular files of the folder whose name matches the pattern, oldest first."""
        folder = self.folder
        with self._sftp() as sftp:
            try:
                entries = sftp.listdir_attr(folder)
            except (OSError, EOFError) as error:
                raise self._folder_error(error, folder) from error
        files = [
            RemoteFile(
                path=posixpath.join(folder, entry.filename),
                name=entry.filename,
                size=int(entry.st_size or 0),
                mtime=int(entry.st_mtime or 0),
            )
            for entry in entries
            if entry.st_mode is not None
            and stat.S_ISREG(entry.st_mode)
            and name_matches(entry.filename, self.pattern)
        ]
        files.sort(key=lambda remote: (remote.mtime, remote.name))
        return files

    def download(self, remote: RemoteFile, local_path: Path) -> str:
        """Stream ``remote`` into ``local_path`` (created or replaced); returns its sha256."""
        digest = hashlib.sha256()
        remote_errors = (OSError, EOFError, paramiko.SSHException)
        # Errors of the local file (a full disk) propagate as they are: they are not the server's.
        with self._sftp() as sftp, open(local_path, "wb") as target:
            try:
                source = sftp.open(remote.path, "rb")
                # Many reads in flight at once: without them each 32 KiB costs a round trip.
                source.prefetch(remote.size, max_concurrent_requests=PREFETCH_REQUESTS)
            except remote_errors as error:
                raise self._remote_error(error, f"Downloading {remote.path}") from error
            try:
                while True:
                    try:
                        chunk = source.read(DOWNLOAD_CHUNK)
                    except remote_errors as error:
                        raise self._remote_error(error, f"Downloading {remote.path}") from error
                    if not chunk:
                        break
                    digest.update(chunk)
                    target.write(chunk)
            finally:
                with contextlib.suppress(*remote_errors):
                    source.close()
        return digest.hexdigest()

    def archive(self, remote: RemoteFile) -> str:
        """Move a taken file into the archive folder (created if missing); a name already
        there gets a numbered suffix. Returns the new remote path."""
        archive = self.archive_folder
        if archive is None:
            raise ConnectorError("config.archivePath is not set.", retryable=False)
        with self._sftp() as sftp:
            try:
                self._ensure_folder(sftp, archive)
                target = posixpath.join(archive, remote.name)
                number = 0
                while self._exists(sftp, target):
                    number += 1
                    target = posixpath.join(archive, numbered_name(remote.name, number))
                sftp.rename(remote.path, target)
            except (OSError, EOFError, paramiko.SSHException) as error:
                raise self._remote_error(error, f"Archiving {remote.path}") from error
        return target

    @staticmethod
    def _exists(sftp: paramiko.SFTPClient, path: str) -> bool:
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def _ensure_folder(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        missing = []
        current = folder
        while current not in ("", "/", ".") and not self._exists(sftp, current):
            missing.append(current)
            current = posixpath.dirname(current)
        for path in reversed(missing):
            try:
                sftp.mkdir(path)
            except OSError:
                # Another run may have made it in the meantime; only a real failure remains.
                if not self._exists(sftp, path):
                    raise

    # --- destination ---------------------------------------------------------------------------

    def _target(self, path: str) -> tuple[str, str]:
        relative = relative_path_clean(path)
        return relative, posixpath.join(self.folder, relative)

    def upload(self, path: str) -> FileSink:
        """Write to a hidden temporary name beside the target, rename it into place when
        complete; on failure the temporary file is removed."""
        relative, target = self._target(path)
        return _SftpSink(store=self, target=target, relative=relative)

    def remove(self, path: str) -> None:
        _relative, target = self._target(path)
        with self._sftp() as sftp:
            try:
                sftp.remove(target)
            except FileNotFoundError:
                return
            except (OSError, EOFError, paramiko.SSHException) as error:
                raise self._remote_error(error, f"Deleting {target}") from error

    def _check_listing(self) -> None:
        with self._sftp() as sftp:
            try:
                attributes = sftp.stat(self.folder)
                if attributes.st_mode is None or not stat.S_ISDIR(attributes.st_mode):
                    raise ConnectorError(
                        f"Remote path {self.folder} is not a folder.", retryable=False
                    )
                sftp.listdir(self.folder)
            except (OSError, EOFError) as error:
                raise self._folder_error(error, self.folder) from error

    def _version(self) -> str | None:
        return self._open.transport.remote_version or None if self._open else None


class _SftpSink(FileSink):
    """An upload to ``target``: a hidden ``.name.<random>.part`` file beside it, renamed over
    the target (``posix-rename``, atomic on OpenSSH and most servers) once complete."""

    def __init__(self, *, store: SftpConnector, target: str, relative: str) -> None:
        super().__init__(uri=store.uri(target), path=relative)
        self._store = store
        self._target = target
        folder, name = posixpath.split(target)
        self._temporary = posixpath.join(folder, f".{name}.{secrets.token_hex(4)}.part")
        # The sink holds the store's session open until it is delivered or discarded.
        self._session = contextlib.ExitStack()
        self._file: paramiko.SFTPFile | None = None
        self._sftp: paramiko.SFTPClient | None = None
        try:
            self._sftp = self._session.enter_context(store._sftp())
            store._ensure_folder(self._sftp, folder)
            self._file = self._sftp.open(self._temporary, "wb")
            # Writes go out without waiting for each one's answer; close() collects them.
            self._file.set_pipelined(True)
        except (OSError, EOFError, paramiko.SSHException) as error:
            failure = store._remote_error(error, f"Writing {target}")
            self._discard()
            raise _as_connection_failure(failure) from error
        except BaseException:
            self._discard()
            raise

    def _write(self, data: memoryview) -> None:
        assert self._file is not None
        try:
            self._file.write(bytes(data))
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise self._store._remote_error(error, f"Writing {self._target}") from error

    def _commit(self) -> None:
        assert self._file is not None
        assert self._sftp is not None
        try:
            self._file.close()
            self._file = None
            try:
                # posix-rename replaces an existing target in one step.
                self._sftp.posix_rename(self._temporary, self._target)
            except OSError:
                # A server without posix-rename: a plain rename, which refuses an existing
                # target, so that one goes first (the only non-atomic moment).
                if self._store._exists(self._sftp, self._target):
                    self._sftp.remove(self._target)
                self._sftp.rename(self._temporary, self._target)
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise self._store._remote_error(error, f"Writing {self._target}") from error
        self._session.close()

    def _discard(self) -> None:
        try:
            if self._file is not None:
                with contextlib.suppress(Exception):
                    self._file.close()
                self._file = None
            if self._sftp is not None:
                with contextlib.suppress(Exception):
                    self._sftp.remove(self._temporary)
        finally:
            self._session.close()


def _as_connection_failure(failure: ConnectorError) -> ConnectorError:
    # An upload that cannot even start fails the delivery, not one file of a listing.
    if isinstance(failure, RemoteFileError):
        return ConnectorError(failure.message, retryable=False)
    return failure
