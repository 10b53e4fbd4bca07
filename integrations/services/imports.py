"""Writes to file imports and flows."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import Account
from accounts.services import Actor, resource_create, resource_delete, resource_update
from integrations.models import FileImport, Flow

IMPORT_FIELDS = [
    "name",
    "integration",
    "connection",
    "distributed",
    "entity",
    "filter",
    "file",
    "ftp",
    "mapping",
]
FLOW_FIELDS = ["name", "integration", "description", "disabled", "file_import", "settings"]


def file_import_create(*, account: Account, actor: Actor, **values: Any) -> FileImport:
    """A new file import of the account, audited."""
    return resource_create(
        instance=FileImport(account=account, **values),
        actor=actor,
        resource_type="import",
        fields=IMPORT_FIELDS,
    )


def file_import_update(*, file_import: FileImport, actor: Actor, **values: Any) -> FileImport:
    """Set the fields of ``values`` (a PUT's are all of them, defaults included); audited."""
    return resource_update(
        instance=file_import,
        actor=actor,
        resource_type="import",
        fields=IMPORT_FIELDS,
        values=values,
    )


def file_import_delete(*, file_import: FileImport, actor: Actor) -> None:
    resource_delete(instance=file_import, actor=actor, resource_type="import", fields=IMPORT_FIELDS)


@transaction.atomic
def file_import_clone(
    *, file_import: FileImport, actor: Actor, name: str | None = None
) -> FileImport:
    """A copy with a new id and API identifier, in the same integration."""
    clone = FileImport(
        account=file_import.account,
        integration=file_import.integration,
        connection=file_import.connection,
        name=name or f"{file_import.name} (copy)",
        distributed=file_import.distributed,
        entity=file_import.entity,
        filter=file_import.filter,
        file=file_import.file,
        ftp=file_import.ftp,
        mapping=file_import.mapping,
    )
    return resource_create(
        instance=clone, actor=actor, resource_type="import", fields=IMPORT_FIELDS
    )


def flow_create(*, account: Account, actor: Actor, **values: Any) -> Flow:
    return resource_create(
        instance=Flow(account=account, **values),
        actor=actor,
        resource_type="flow",
        fields=FLOW_FIELDS,
    )


def flow_update(*, flow: Flow, actor: Actor, **values: Any) -> Flow:
    return resource_update(
        instance=flow, actor=actor, resource_type="flow", fields=FLOW_FIELDS, values=values
    )


def flow_delete(*, flow: Flow, actor: Actor) -> None:
    resource_delete(instance=flow, actor=actor, resource_type="flow", fields=FLOW_FIELDS)
