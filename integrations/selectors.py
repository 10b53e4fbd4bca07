"""Reads of integrations worth naming: the tenant-scoped querysets, the template document
(what revisions snapshot and the template download contains) and the dependency graph."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Account
from config.api.serializers import camel
from connectors.models import Connection
from integrations.models import FileImport, Flow, Integration, default_steps_progress
from integrations.related import related_resources

TEMPLATE_VERSION = 1

# Run state and timestamps are not part of a definition: they change without anyone editing it.
VOLATILE_KEYS = frozenset(
    {
        "createdAt",
        "updatedAt",
        "lastModified",
        "lastRunAt",
        "lastSyncAt",
        "lastTestedAt",
        "nextRunAt",
        "state",
        "status",
    }
)


def integration_list(*, account: Account) -> QuerySet[Integration]:
    return (
        Integration.objects.filter(account=account)
        .select_related("source_connection", "destination_connection")
        .prefetch_related("depends_on")
    )


def integration_get(*, account: Account, integration_id: Any) -> Integration:
    """A live integration of ``account``; anything else (another account's, deleted) is a 404."""
    return get_object_or_404(Integration, pk=integration_id, account=account)


def integration_connections(*, integration: Integration) -> QuerySet[Connection]:
    """Connections the integration uses: its source, its destination and registered ones."""
    return Connection.objects.filter(
        Q(pk=integration.source_connection_id)
        | Q(pk=integration.destination_connection_id)
        | Q(registered_integrations=integration)
    ).distinct()


def _connection_definition(connection: Connection) -> dict[str, Any]:
    return {
        "id": str(connection.pk),
        "connectorId": connection.connector_id,
        "name": connection.name,
        "config": connection.config,
        "credentialKeys": sorted(connection.credential_keys),
    }


def _import_definition(file_import: FileImport) -> dict[str, Any]:
    return {
        "id": str(file_import.pk),
        "name": file_import.name,
        "apiIdentifier": file_import.api_identifier,
        "connectionId": str(file_import.connection_id) if file_import.connection_id else None,
        "distributed": file_import.distributed,
        "file": file_import.file,
        "ftp": file_import.ftp,
        "mapping": file_import.mapping,
        "entity": file_import.entity,
        "filter": file_import.filter,
    }


def _flow_definition(flow: Flow) -> dict[str, Any]:
    return {
        "id": str(flow.pk),
        "name": flow.name,
        "description": flow.description,
        "disabled": flow.disabled,
        "importId": str(flow.file_import_id) if flow.file_import_id else None,
        "settings": flow.settings,
    }


def _without_run_state(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop run state from each resource's top level; user JSON below it is left untouched."""
    return [{k: v for k, v in resource.items() if k not in VOLATILE_KEYS} for resource in resources]


def integration_template(*, integration: Integration) -> dict[str, Any]:
    """The integration's whole definition as one JSON document (no secrets, no run state)."""
    definition = {
        "id": str(integration.pk),
        "name": integration.name,
        "type": integration.type,
        "dealershipId": str(integration.dealership_id) if integration.dealership_id else None,
        "sourceAppId": str(integration.source_connection_id)
        if integration.source_connection_id
        else None,
        "destinationAppId": (
            str(integration.destination_connection_id)
            if integration.destination_connection_id
            else None
        ),
        "dataType": integration.data_type,
        "config": integration.config,
        "schedule": {
            "frequencyValue": integration.frequency_value,
            "frequencyUnit": integration.frequency_unit or None,
            "rollingWindowDays": integration.rolling_window_days,
            "oneOff": integration.one_off,
        },
        "historicalSyncStartDate": integration.historical_sync_start_date,
        "syncSettings": {
            camel(key): value for key, value in integration.effective_sync_settings.items()
        },
        "dependsOn": sorted(str(pk) for pk in integration.depends_on.values_list("pk", flat=True)),
        "settings": integration.settings,
        "version": integration.version,
        "tag": integration.tag,
        "flowGroupings": integration.flow_groupings,
        "aliases": integration.aliases,
        "installSteps": default_steps_progress(integration.install_steps),
        "uninstallSteps": default_steps_progress(integration.uninstall_steps),
    }
    document = {
        "templateVersion": TEMPLATE_VERSION,
        "integration": definition,
        "connections": [
            _connection_definition(c)
            for c in integration_connections(integration=integration).order_by("pk")
        ],
        "imports": [_import_definition(i) for i in integration.file_imports.order_by("pk")],
        "flows": [_flow_definition(f) for f in integration.flows.order_by("pk")],
        **{
            name: _without_run_state(resources)
            for name, resources in related_resources(integration).items()
        },
    }
    # A JSON round trip turns datetimes into strings, so the document is what a client sees.
    return json.loads(json.dumps(document, cls=DjangoJSONEncoder))


def template_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _ref(obj: Any, **extra: Any) -> dict[str, Any]:
    return {"id": str(obj.pk), "name": obj.name, **extra}


def integration_dependencies(*, integration: Integration) -> dict[str, Any]:
    """What the integration uses, and what uses it."""
    connections = []
    registered = set(integration.connections.values_list("pk", flat=True))
    for connection in integration_connections(integration=integration).order_by("name"):
        roles = [
            role
            for role, used in (
                ("source", connection.pk == integration.source_connection_id),
                ("destination", connection.pk == integration.destination_connection_id),
                ("registered", connection.pk in registered),
            )
            if used
        ]
        connections.append(_ref(connection, connectorId=connection.connector_id, roles=roles))
    used_by: dict[str, Any] = {
        "integrations": [
            _ref(i) for i in integration.dependents.filter(deleted_at__isnull=True).order_by("name")
        ],
        "flows": [_ref(f) for f in integration.flows.order_by("name")],
        "imports": [_ref(i) for i in integration.file_imports.order_by("name")],
    }
    for name, objects in related_resources(integration).items():
        used_by[name] = [{"id": obj.get("id"), "name": obj.get("name")} for obj in objects]
    return {
        "uses": {
            "integrations": [_ref(i) for i in integration.depends_on.order_by("name")],
            "connections": connections,
            "dealership": _ref(integration.dealership) if integration.dealership else None,
        },
        "usedBy": used_by,
    }
