"""A remote SFTP server as a source of feed files only: list what matches a glob, download it,
and optionally move it to an archive folder once taken.

The same client as the ``sftp`` store (``connectors.sftp``: pinned host key, the egress policy,
nothing looked up on this machine), with the config names it has always had (``path`` for the
folder) and a connection test that asks only for what a pull needs.

``read("files")`` answers file metadata in (mtime, name) order, like any source; the file
pipeline (``syncengine.feeds.pull``) uses ``list_files()``, ``download()`` and ``archive()`` inside
one ``session()``.
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
import stat
import time

import paramiko

from connectors.files import SOURCE_CONFIG_PROPERTIES, RemoteFile, RemoteFileError
from connectors.registry import ConnectorError, TestResult, register
from connectors.sftp import (
    HOST_KEY_PATTERN,
    SSH_CONFIG_PROPERTIES,
    SSH_CREDENTIALS_SCHEMA,
    SftpConnector,
)

# What the file pipeline and older imports find here.
__all__ = [
    "HOST_KEY_PATTERN",
    "RemoteFile",
    "RemoteFileError",
    "SftpPullConnector",
]


@register
class SftpPullConnector(SftpConnector):
    id = "sftp_pull"
    name = "SFTP pull"
    description = (
        "Pulls files matching a glob from a remote SFTP server (pinned host key) into an "
        "inventory integration's file pipeline; optionally moves taken files to an archive folder."
    )
    features = ["files", "incremental", "archive"]
    writes_files = False
    config_properties = {
        **SSH_CONFIG_PROPERTIES,
        "path": {
            "type": "string",
            "minLength": 1,
            "default": "/",
            "description": "The remote folder to pull from (relative paths start at the login "
            "folder).",
        },
        **SOURCE_CONFIG_PROPERTIES,
        "archivePath": {
            "type": "string",
            "minLength": 1,
            "description": "Folder taken files are moved to, created if missing; relative to "
            "path unless absolute.",
        },
    }
    credentials_schema = SSH_CREDENTIALS_SCHEMA
    folder_key = "path"
    default_folder = "/"

    def test(self) -> TestResult:
        """The folder exists and is a folder (``read``), and with an archive folder, whether a
        folder can be made there (``write``)."""
        started = time.monotonic()
        try:
            with self._sftp() as sftp:
                assert self._open is not None
                version = self._open.transport.remote_version or None
                try:
                    attributes = sftp.stat(self.folder)
                except (OSError, EOFError) as error:
                    failure = self._remote_error(error, f"Remote folder {self.folder}")
                    return TestResult(
                        success=False,
                        latency_ms=_since(started),
                        version=version,
                        error=failure.message,
                    )
                if attributes.st_mode is None or not stat.S_ISDIR(attributes.st_mode):
                    return TestResult(
                        success=False,
                        latency_ms=_since(started),
                        version=version,
                        error=f"Remote path {self.folder} is not a folder.",
                    )
                permissions = ["read"]
                if self.archive_folder is not None and self._archive_writable(sftp):
                    permissions.append("write")
        except ConnectorError as error:
            return TestResult(success=False, latency_ms=_since(started), error=error.message)
        return TestResult(
            success=True, latency_ms=_since(started), version=version, permissions=permissions
        )

    def _archive_writable(self, sftp: paramiko.SFTPClient) -> bool:
        """Whether a folder can be made in the archive folder (or the archive folder itself,
        when it does not exist yet); the probe is removed again."""
        archive = self.archive_folder
        assert archive is not None
        probe = (
            posixpath.join(archive, f".railyard-probe-{secrets.token_hex(4)}")
            if self._exists(sftp, archive)
            else archive
        )
        try:
            sftp.mkdir(probe)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            sftp.rmdir(probe)
        return True


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
