"""File import runs, a kind of run (``syncengine.jobs.lifecycle``): a file import that writes.

An import names the records it writes (``entity``: ``vehicles`` or an entity of the record
store, with an optional ``filter`` as an export's), maps them (``mapping.fields``: ``extract``, a
field or dotted path of the records, becomes the column ``generate``), writes one file of
``file.type`` (csv with the ``file.csv`` options, json or xml), names it from ``ftp.fileName``
(``file-{{timestamp}}.csv``) and uploads it into ``ftp.directoryPath`` through the import's
connection (``sftp``, ``s3`` or ``azure_blob``). The writing, the atomic delivery, the files
recorded, retries and events are those of an export run (``exports.runs.FileRuns``).
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Any

from django.conf import settings
from django.utils import timezone

from connectors.files import FileDestination, file_destination_for, prefix_clean, prefix_join
from connectors.naming import IMPORT_PLACEHOLDERS, render_file_name, template_problems
from connectors.registry import ConnectorError, get_connector
from connectors.services import resolve_credentials
from exports.entities import EntitySource, entity_source, export_problems
from exports.formats import CSV, JSON, XML, FormatOptions, FormatOptionsError, format_options
from exports.runs import FilePlan, FileRuns
from integrations.models import FileImport
from syncengine.choices import JobKind
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob

# ``file.type`` -> the format written; an import of another type (xlsx) only reads.
WRITTEN_TYPES = {"csv": CSV, "json": JSON, "xml": XML}
DEFAULT_FILE_NAME = "{{importName}}-{{timestamp}}.{{ext}}"


def import_options(file_import: FileImport) -> FormatOptions:
    """The format options of the file an import writes (``FormatOptionsError`` when wrong)."""
    file = file_import.file or {}
    file_type = str(file.get("type") or "csv")
    written = WRITTEN_TYPES.get(file_type)
    if written is None:
        raise FormatOptionsError(
            {
                "file.type": [
                    f"A {file_type} file can be read but not written; use csv, json or xml."
                ]
            }
        )
    given: dict[str, Any] = {"maxFileSizeMb": settings.EXPORT_MAX_FILE_SIZE_MB}
    if written == CSV:
        given.update(file.get("csv") or {})
    return format_options(written, given)


def _mapping(file_import: FileImport) -> list[tuple[str, str]]:
    """``(extract, generate)`` of each mapped field, in order."""
    fields = (file_import.mapping or {}).get("fields") or []
    return [(str(item["extract"]), str(item["generate"])) for item in fields]


def import_run_problems(file_import: FileImport) -> dict[str, list[str]]:
    """Why ``file_import`` cannot run (empty when it can), by field: no entity, an entity the
    account does not have, a filter that does not fit it, mapped fields the entity lacks, a
    type that is only read, a file name template that cannot name a file, a connection that
    cannot receive files."""
    problems: dict[str, list[str]] = {}
    if not file_import.entity:
        problems["entity"] = [
            "Name the records the import writes: vehicles or an entity of the record store."
        ]
    else:
        mapping = _mapping(file_import)
        for field, messages in export_problems(
            account=file_import.account,
            entities=[file_import.entity],
            filter=file_import.filter or None,
            fields=[extract for extract, _ in mapping] or None,
            integration_id=file_import.integration_id,
        ).items():
            name = {"entities": "entity", "fields": "mapping.fields"}.get(field, field)
            problems.setdefault(name, []).extend(messages)
        generated = [generate for _, generate in mapping]
        if len(set(generated)) != len(generated):
            problems.setdefault("mapping.fields", []).append("A generated field is named twice.")
    try:
        import_options(file_import)
    except FormatOptionsError as error:
        for field, messages in error.problems.items():
            key = field if field.startswith("file.") else f"file.csv.{field}"
            problems.setdefault(key, []).extend(messages)
    template = (file_import.ftp or {}).get("fileName") or DEFAULT_FILE_NAME
    if template_errors := template_problems(template, placeholders=IMPORT_PLACEHOLDERS):
        problems["ftp.fileName"] = template_errors
    connection = file_import.connection
    connector = get_connector(connection.connector_id) if connection is not None else None
    if connection is None:
        problems["connectionId"] = [
            "The import needs a connection to write through (sftp, s3 or azure_blob)."
        ]
    elif connector is None or not connector.writes_files:
        problems["connectionId"] = [
            f"A {connection.connector_id} connection cannot receive files; use sftp, s3 or "
            "azure_blob."
        ]
    return problems


def import_destination(file_import: FileImport) -> FileDestination:
    """The import's connection, pointed at ``ftp.directoryPath``: on SFTP an absolute path is
    the folder itself and a relative one lies below the connection's ``directory``; in a
    bucket or container it is the folder below the connection's ``prefix``."""
    connection = file_import.connection
    if connection is None:
        raise ConnectorError("The import has no connection to write through.", retryable=False)
    config = dict(connection.config or {})
    folder = str((file_import.ftp or {}).get("directoryPath") or "")
    if connection.connector_id == "sftp":
        if folder.startswith("/"):
            config["directory"] = posixpath.normpath(folder)
        elif prefix_clean(folder):
            config["directory"] = posixpath.join(
                str(config.get("directory") or "."), prefix_clean(folder)
            )
    elif prefix_clean(folder):
        config["prefix"] = prefix_join(prefix_clean(config.get("prefix")), prefix_clean(folder))
    return file_destination_for(
        connection.connector_id, config=config, credentials=resolve_credentials(connection)
    )


def _renamed(source: EntitySource, names: list[str]) -> EntitySource:
    """``source`` with its columns named ``names`` (the mapping's ``generate``), in order."""
    fields = [
        dataclasses.replace(field, column=dataclasses.replace(field.column, name=name))
        for field, name in zip(source.fields, names, strict=True)
    ]
    return dataclasses.replace(source, fields=fields)


class ImportRuns(FileRuns):
    """A run of one file import (``SyncJob.file_import``): its own queue, like an export's."""

    kind = JobKind.FILE_IMPORT
    task = "exports.tasks.run_export"

    def plan(self, job: SyncJob) -> FilePlan:
        file_import = FileImport.objects.select_related("account", "connection").get(
            pk=_import_id(job)
        )
        if problems := import_run_problems(file_import):
            raise FormatOptionsError(problems)
        options = import_options(file_import)
        mapping = _mapping(file_import)
        started_at = job.started_at or timezone.now()

        def source_for(entity: str) -> EntitySource:
            source = entity_source(
                account=file_import.account,
                entity=entity,
                filter=file_import.filter or None,
                fields=[extract for extract, _ in mapping] or None,
                integration_id=file_import.integration_id,
            )
            return _renamed(source, [generate for _, generate in mapping]) if mapping else source

        def path_for(entity: str, part: int) -> str:
            return render_file_name(
                (file_import.ftp or {}).get("fileName") or DEFAULT_FILE_NAME,
                export_name=file_import.name,
                entity=entity,
                started_at=started_at,
                run_id=str(job.pk),
                part=part,
                ext=options.extension,
                placeholders=IMPORT_PLACEHOLDERS,
            )

        return FilePlan(
            entities=[file_import.entity],
            options=options,
            source_for=source_for,
            path_for=path_for,
            destination=import_destination(file_import),
        )

    def destination_type(self, job: SyncJob) -> str:
        connection = job.file_import.connection if job.file_import else None
        return connection.connector_id.upper() if connection is not None else ""

    def event_integration_id(self, job: SyncJob) -> Any:
        return job.file_import.integration_id if job.file_import else None

    def owner_payload(self, job: SyncJob) -> dict[str, Any]:
        file_import = job.file_import
        return {
            "importId": str(job.file_import_id),
            "importName": file_import.name if file_import else None,
            "format": str((file_import.file or {}).get("type") or "csv") if file_import else None,
        }


def _import_id(job: SyncJob) -> Any:
    assert job.file_import_id is not None, "an import run names its import"
    return job.file_import_id


IMPORT_RUNS = lifecycle.kind_register(ImportRuns())
