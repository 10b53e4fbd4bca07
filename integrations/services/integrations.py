"""Writes to integrations: create, update, soft delete and restore, clone, connections, shares,
install and uninstall steps. Each runs in one transaction with its audit row and event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.models import Account
from accounts.services import Actor, audit_record, diff, event_record, field_values
from config.api.errors import BadRequest, Conflict, InvalidInput
from connectors.discovery import entities_check
from connectors.feeds import FEED_TYPES
from connectors.models import Connection
from connectors.registry import get_connector_for
from integrations.choices import CONTAINER_TYPE, DataType, IntegrationState, IntegrationStatus
from integrations.hooks import run_created_hooks, run_deleted_hooks
from integrations.models import (
    SYNC_SETTINGS_DEFAULTS,
    FileImport,
    Flow,
    Integration,
    IntegrationShare,
    default_steps_progress,
)
from integrations.scheduling import compute_next_run_at

AUDIT_FIELDS = [
    "name",
    "type",
    "dealership",
    "source_connection",
    "destination_connection",
    "data_type",
    "config",
    "frequency_value",
    "frequency_unit",
    "rolling_window_days",
    "one_off",
    "next_run_at",
    "historical_sync_start_date",
    "sync_settings",
    "state",
    "depends_on",
    "connections",
    "settings",
    "version",
    "tag",
    "update_in_progress",
    "flow_groupings",
    "aliases",
    "install_steps",
    "uninstall_steps",
]

# Definition fields a clone copies as they are; run state (status, counters, last error) starts
# afresh, relations are copied separately and install progress is reset.
CLONED_FIELDS = [
    field
    for field in AUDIT_FIELDS
    if field
    not in {
        "name",
        "next_run_at",
        "depends_on",
        "connections",
        "update_in_progress",
        "install_steps",
        "uninstall_steps",
    }
]


def _summary(integration: Integration) -> dict[str, Any]:
    return {"id": str(integration.pk), "name": integration.name, "type": integration.type}


def _audit(integration: Integration, actor: Actor, action: str, changes: dict[str, Any]) -> None:
    audit_record(
        account=integration.account,
        actor=actor,
        resource_type="integration",
        resource_id=integration.pk,
        action=action,
        changes=changes,
        integration_id=integration.pk,
    )


def _event(integration: Integration, type: str, **payload: Any) -> None:
    event_record(
        account=integration.account,
        type=type,
        integration_id=integration.pk,
        payload={"integration": _summary(integration), **payload},
    )


def _check_dependencies(integration: Integration, upstream: list[Integration]) -> None:
    """Refuse self-dependencies and cycles: a dependency graph must stay acyclic."""
    if any(candidate.pk == integration.pk for candidate in upstream):
        raise InvalidInput(
            "An integration cannot depend on itself.",
            details={"dependsOn": ["An integration cannot depend on itself."]},
        )
    pending = [candidate.pk for candidate in upstream]
    seen = set()
    while pending:
        current = pending.pop()
        if current == integration.pk:
            raise InvalidInput(
                "These dependencies would form a cycle.",
                details={"dependsOn": ["These dependencies would form a cycle."]},
            )
        if current in seen:
            continue
        seen.add(current)
        pending.extend(
            Integration.depends_on.through.objects.filter(from_integration_id=current).values_list(
                "to_integration_id", flat=True
            )
        )


def _apply_schedule(integration: Integration, schedule: dict[str, Any]) -> None:
    changed = (
        schedule["frequency_value"] != integration.frequency_value
        or schedule["frequency_unit"] != integration.frequency_unit
        or schedule["one_off"] != integration.one_off
        or integration._state.adding
    )
    integration.frequency_value = schedule["frequency_value"]
    integration.frequency_unit = schedule["frequency_unit"]
    integration.rolling_window_days = schedule["rolling_window_days"]
    integration.one_off = schedule["one_off"]
    if changed or schedule["run_now"]:
        integration.next_run_at = compute_next_run_at(
            frequency_value=integration.frequency_value,
            frequency_unit=integration.frequency_unit,
            run_now=schedule["run_now"],
            now=timezone.now(),
        )


TYPES_HINT = f"vauto, homenet, elead, custom, {CONTAINER_TYPE} or a connector id"


def _resolve_type_and_defaults(values: dict[str, Any]) -> None:
    """Fill in ``type``, ``dataType`` and ``name`` of a new integration, or say what is missing.

    The body decides the kind: a feed type (an SFTP feed of a dealership), a connector id or a
    source / destination connection (a data flow), or none of these: an integration container,
    which groups flows, imports, exports and connections, has no feed (no SFTP login is issued)
    and needs only a name.
    """
    source: Connection | None = values.get("source_connection")
    destination: Connection | None = values.get("destination_connection")
    integration_type = values.get("type") or (source or destination or Connection()).connector_id
    errors: dict[str, list[str]] = {}
    if not integration_type or integration_type == CONTAINER_TYPE:
        integration_type = CONTAINER_TYPE
        if not values.get("name"):
            errors["name"] = [
                "Name the integration container, or give a type "
                f"({TYPES_HINT}) or a sourceAppId / destinationAppId."
            ]
        values.setdefault("data_type", DataType.RECORDS)
    elif (
        integration_type not in FEED_TYPES
        and get_connector_for(
            integration_type, account_id=(source or destination or Connection()).account_id
        )
        is None
    ):
        errors["type"] = [
            f"Unknown type {integration_type!r}; use {TYPES_HINT} "
            "(GET /api/v1/integrations/connectors)."
        ]
    elif integration_type in FEED_TYPES:
        if values.get("dealership") is None:
            errors["dealershipId"] = [
                "An inventory feed belongs to a dealership; dealershipId is required."
            ]
        values.setdefault("data_type", DataType.INVENTORY)
    elif not values.get("data_type"):
        errors["dataType"] = ["This field is required."]
    if errors:
        raise InvalidInput("The integration is incomplete.", details=errors)
    values["type"] = integration_type
    if not values.get("name"):
        connector = get_connector_for(
            integration_type, account_id=(source or destination or Connection()).account_id
        )
        if source and destination:
            values["name"] = f"{source.name} → {destination.name}"
        else:
            values["name"] = f"{connector.name if connector else integration_type} integration"


@transaction.atomic
def _task_entities_check(source: Connection | None, config: dict[str, Any] | None) -> None:
    """Refuse (400) tasks of ``config.tasks`` that name an entity the source connection does not
    have, listing the ones it has: the connector's own list, or its discovered entities (asked
    once more when a name is missing; a source that cannot be asked now is not a refusal)."""
    if source is None or not isinstance(config, dict):
        return
    tasks = config.get("tasks") or []
    named = [
        (index, task["entity"])
        for index, task in enumerate(tasks)
        if isinstance(task, dict) and isinstance(task.get("entity"), str) and task["entity"]
    ]
    if not named:
        return
    connector = get_connector_for(source.connector_id, account_id=source.account_id)
    if connector is None or not connector.is_source:
        return
    if not connector.entities:
        for index, entity in named:
            entities_check(connection=source, names=[entity], field=f"config.tasks[{index}].entity")
        return
    errors = {
        f"config.tasks[{index}].entity": [
            f"{entity}: not an entity of {connector.name}; it has: {', '.join(connector.entities)}."
        ]
        for index, entity in named
        if entity not in connector.entities
    }
    if errors:
        raise InvalidInput("Unknown entities for the source connection.", details=errors)


def integration_create(*, account: Account, actor: Actor, **values: Any) -> Integration:
    """Create an integration from validated API values; records ``integration.created``."""
    _resolve_type_and_defaults(values)
    _task_entities_check(values.get("source_connection"), values.get("config"))
    depends_on = values.pop("depends_on", [])
    schedule = values.pop("schedule", None)
    values.setdefault("sync_settings", dict(SYNC_SETTINGS_DEFAULTS))
    integration = Integration(account=account, **values)
    _apply_schedule(
        integration,
        schedule
        or {
            "frequency_value": None,
            "frequency_unit": "",
            "rolling_window_days": 0,
            "one_off": False,
            "run_now": False,
        },
    )
    integration.save()
    if depends_on:
        _check_dependencies(integration, depends_on)
        integration.depends_on.set(depends_on)
    _audit(
        integration, actor, AuditAction.CREATED, diff({}, field_values(integration, AUDIT_FIELDS))
    )
    _event(integration, "integration.created")
    # What other apps provision for it (SFTP credentials), shown once in the create response.
    integration.provisioned = run_created_hooks(integration, actor)  # type: ignore[attr-defined]
    return integration


def integration_update(*, integration: Integration, actor: Actor, **values: Any) -> Integration:
    """Apply validated changes; composite values (schedule, syncSettings) arrive already merged."""
    if "config" in values or "source_connection" in values:
        # Before the row lock: discovery may ask the source.
        _task_entities_check(
            values.get("source_connection", integration.source_connection),
            values.get("config", integration.config),
        )
    return _integration_update(integration=integration, actor=actor, **values)


@transaction.atomic
def _integration_update(*, integration: Integration, actor: Actor, **values: Any) -> Integration:
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    before = field_values(integration, AUDIT_FIELDS)
    depends_on = values.pop("depends_on", None)
    schedule = values.pop("schedule", None)
    if "type" in values and values["type"] != integration.type:
        raise InvalidInput(
            "The type of an integration cannot change; create a new integration instead.",
            details={"type": ["Cannot change after creation."]},
        )
    for name, value in values.items():
        setattr(integration, name, value)
    if integration.type in FEED_TYPES and integration.dealership_id is None:
        raise InvalidInput(
            "An inventory feed belongs to a dealership.",
            details={"dealershipId": ["An inventory feed belongs to a dealership."]},
        )
    if schedule is not None:
        _apply_schedule(integration, schedule)
    integration.save()
    if depends_on is not None:
        _check_dependencies(integration, depends_on)
        integration.depends_on.set(depends_on)
    changes = diff(before, field_values(integration, AUDIT_FIELDS))
    if changes:
        _audit(integration, actor, AuditAction.UPDATED, changes)
        _event(integration, "integration.updated", changes=sorted(changes))
    return integration


@transaction.atomic
def integration_delete(*, integration: Integration, actor: Actor) -> None:
    """Soft delete: the integration leaves the API and the scheduler; its data stays."""
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    integration.deleted_at = timezone.now()
    integration.next_run_at = None
    integration.save(update_fields=["deleted_at", "next_run_at", "updated_at"])
    run_deleted_hooks(integration, actor)
    _audit(
        integration,
        actor,
        AuditAction.DELETED,
        {"deletedAt": {"before": None, "after": integration.deleted_at.isoformat()}},
    )
    _event(integration, "integration.deleted")


@transaction.atomic
def integration_restore(*, integration: Integration, actor: Actor) -> Integration:
    """Undo a soft delete (operators, from the admin)."""
    integration = Integration.all_objects.select_for_update().get(pk=integration.pk)
    if integration.deleted_at is None:
        return integration
    deleted_at = integration.deleted_at
    integration.deleted_at = None
    integration.next_run_at = compute_next_run_at(
        frequency_value=integration.frequency_value,
        frequency_unit=integration.frequency_unit,
        run_now=False,
        now=timezone.now(),
    )
    integration.save(update_fields=["deleted_at", "next_run_at", "updated_at"])
    _audit(
        integration,
        actor,
        AuditAction.RESTORED,
        {"deletedAt": {"before": deleted_at.isoformat(), "after": None}},
    )
    _event(integration, "integration.restored")
    return integration


@transaction.atomic
def integration_clone(
    *, integration: Integration, actor: Actor, name: str | None = None
) -> Integration:
    """Copy an integration's definition, flows and file imports; run state starts afresh."""
    clone = Integration(
        account=integration.account,
        name=name or f"{integration.name} (copy)",
        status=IntegrationStatus.PENDING,
        install_steps=default_steps_progress(integration.install_steps),
        uninstall_steps=default_steps_progress(integration.uninstall_steps),
        **{field: getattr(integration, field) for field in CLONED_FIELDS},
    )
    clone.next_run_at = compute_next_run_at(
        frequency_value=clone.frequency_value,
        frequency_unit=clone.frequency_unit,
        run_now=False,
        now=timezone.now(),
    )
    clone.save()
    clone.depends_on.set(integration.depends_on.all())
    clone.connections.set(integration.connections.all())
    cloned_imports: dict[Any, FileImport] = {}
    for file_import in integration.file_imports.all():
        cloned_imports[file_import.pk] = FileImport.objects.create(
            account=clone.account,
            integration=clone,
            connection=file_import.connection,
            name=file_import.name,
            distributed=file_import.distributed,
            file=file_import.file,
            ftp=file_import.ftp,
            mapping=file_import.mapping,
            entity=file_import.entity,
            filter=file_import.filter,
        )
    Flow.objects.bulk_create(
        Flow(
            account=clone.account,
            integration=clone,
            name=flow.name,
            description=flow.description,
            disabled=flow.disabled,
            file_import=cloned_imports.get(flow.file_import_id),
            settings=flow.settings,
        )
        for flow in integration.flows.all()
    )
    changes = diff({}, field_values(clone, AUDIT_FIELDS))
    changes["clonedFrom"] = {"before": None, "after": str(integration.pk)}
    _audit(clone, actor, AuditAction.CREATED, changes)
    _event(clone, "integration.created", clonedFrom=str(integration.pk))
    clone.provisioned = run_created_hooks(clone, actor)  # type: ignore[attr-defined]
    return clone


# --- registered connections ---------------------------------------------------------


@transaction.atomic
def integration_connections_register(
    *, integration: Integration, actor: Actor, connections: list[Connection]
) -> None:
    """Register connections with the integration (already registered ones are kept)."""
    before = field_values(integration, ["connections"])
    integration.connections.add(*connections)
    changes = diff(before, field_values(integration, ["connections"]))
    if changes:
        _audit(integration, actor, AuditAction.UPDATED, changes)


@transaction.atomic
def integration_connection_unregister(
    *, integration: Integration, actor: Actor, connection: Connection
) -> None:
    if not integration.connections.filter(pk=connection.pk).exists():
        raise BadRequest("This connection is not registered with the integration.")
    before = field_values(integration, ["connections"])
    integration.connections.remove(connection)
    _audit(
        integration,
        actor,
        AuditAction.UPDATED,
        diff(before, field_values(integration, ["connections"])),
    )


# --- shares ("ashares") -------------------------------------------------------------


@transaction.atomic
def integration_share_create(
    *, integration: Integration, actor: Actor, user: Any, access_level: str
) -> IntegrationShare:
    if IntegrationShare.objects.filter(integration=integration, user=user).exists():
        raise Conflict(f"{user.get_username()} already has access to this integration.")
    share = IntegrationShare.objects.create(
        integration=integration, user=user, access_level=access_level
    )
    audit_record(
        account=integration.account,
        actor=actor,
        resource_type="integration_share",
        resource_id=share.pk,
        action=AuditAction.CREATED,
        changes={
            "user": {"before": None, "after": user.get_username()},
            "accessLevel": {"before": None, "after": access_level},
        },
        integration_id=integration.pk,
    )
    return share


@transaction.atomic
def integration_share_delete(*, share: IntegrationShare, actor: Actor) -> None:
    audit_record(
        account=share.integration.account,
        actor=actor,
        resource_type="integration_share",
        resource_id=share.pk,
        action=AuditAction.DELETED,
        changes={"user": {"before": share.user.get_username(), "after": None}},
        integration_id=share.integration_id,
    )
    share.delete()


# --- install and uninstall steps ----------------------------------------------------

STEP_FIELDS = {"install": "install_steps", "uninstall": "uninstall_steps"}


@transaction.atomic
def integration_step_submit(
    *,
    integration: Integration,
    actor: Actor,
    kind: str,
    step_name: str | None,
    form_data: dict[str, Any] | None,
    connection: Connection | None,
) -> Integration:
    """Complete the next pending install (or uninstall) step with what the user submitted.

    Steps complete in order. A ``connection`` step registers the given connection; a ``form``
    step stores the submitted values on the step. Completing the last uninstall step removes
    the integration (a soft delete).
    """
    integration = Integration.objects.select_for_update().get(pk=integration.pk)
    field = STEP_FIELDS[kind]
    steps: list[dict[str, Any]] = [dict(step) for step in getattr(integration, field)]
    pending = next((step for step in steps if not step.get("completed")), None)
    if not steps:
        raise BadRequest(f"This integration defines no {kind} steps.")
    if pending is None:
        raise Conflict(f"Every {kind} step is already complete.")
    if step_name is not None and step_name != pending["name"]:
        raise InvalidInput(
            f"Steps complete in order; the next {kind} step is {pending['name']!r}.",
            details={"step": [f"Expected {pending['name']!r}."]},
        )
    if pending["type"] == "connection":
        if connection is None:
            raise InvalidInput(
                "This step registers a connection.",
                details={"connectionId": ["This field is required."]},
            )
        wanted = pending.get("connectorId")
        if wanted and connection.connector_id != wanted:
            raise InvalidInput(
                f"This step needs a {wanted} connection.",
                details={"connectionId": [f"Must be a connection of connector {wanted!r}."]},
            )
        integration.connections.add(connection)
        pending["connectionId"] = str(connection.pk)
    elif pending["type"] == "form":
        if form_data is None:
            raise InvalidInput(
                "This step submits a form.", details={"formData": ["This field is required."]}
            )
        pending["submitted"] = form_data
    pending["completed"] = True
    pending["completedAt"] = timezone.now().isoformat()
    setattr(integration, field, steps)
    integration.save(update_fields=[field, "updated_at"])
    _audit(
        integration,
        actor,
        AuditAction.UPDATED,
        {f"{kind}Steps.{pending['name']}": {"before": "pending", "after": "completed"}},
    )
    if all(step.get("completed") for step in steps):
        if kind == "install":
            _event(integration, "integration.installed")
        else:
            integration.state = IntegrationState.INACTIVE
            integration.save(update_fields=["state", "updated_at"])
            _event(integration, "integration.uninstalled")
            integration_delete(integration=integration, actor=actor)
    return integration
