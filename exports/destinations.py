"""Where an export's files go: its ``destination`` object turned into a file destination.

``{"type": "S3", "connectionId": ..., "bucket": ..., "path": ..., "prefix": ...}`` names the
connection to write through (S3, AZURE_BLOB and SFTP: a connection of the matching connector in
the export's account) and the folder there:

- S3 / AZURE_BLOB: the bucket or container given, and inside it ``path`` then ``prefix`` (the
  connection's own prefix when the destination gives neither);
- SFTP: ``path`` as the remote folder (the connection's ``directory`` when absent), then
  ``prefix`` inside it;
- LOCAL: ``EXPORT_LOCAL_DIR/<account id>/`` then ``path`` and ``prefix``, and nothing outside
  that folder (``..``, absolute paths and links that lead out are refused).

File names below that folder come from ``fileNameTemplate`` (``connectors.naming``).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from connectors.files import (
    FileDestination,
    LocalDestination,
    file_destination_for,
    prefix_clean,
    prefix_join,
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
        return LocalDestination(account_id=export.account_id, prefix=_folder(destination))
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


LOCAL_SCHEME = "local:"


def local_file(*, account_id: Any, uri: str) -> Path | None:
    """The file on disk of a LOCAL run's file (its ``local:<path in the account's folder>``
    URI, so a destination edited since still finds it); None for another scheme, or a path
    that would lead out of the account's folder."""
    if not uri.startswith(LOCAL_SCHEME):
        return None
    try:
        return LocalDestination(account_id=account_id).local_path(uri[len(LOCAL_SCHEME) :])
    except ConnectorError:
        return None
