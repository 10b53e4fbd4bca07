"""Write operations on export definitions and their runs, and the schedule arithmetic behind
``next_run_at``."""

from __future__ import annotations

import calendar
import datetime as dt
import logging
import uuid
import zoneinfo
from typing import Any, TypedDict, Unpack

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone as django_timezone

from accounts.choices import AuditAction
from accounts.models import Account
from accounts.services import Actor, audit_object, audit_record, diff, field_values
from config.api.errors import Conflict, InvalidInput
from config.retention import Pruned
from connectors.files import prefix_errors
from connectors.models import Connection
from connectors.naming import template_problems
from exports.choices import DestinationType, ExportFrequency, ExportState
from exports.destinations import local_file_delete
from exports.entities import export_problems
from exports.formats import format_options_problems
from exports.import_runs import import_run_problems
from exports.models import (
    DESTINATION_CONNECTOR,
    Export,
    ExportFile,
    destination_problems,
    schedule_problems,
)
from integrations.models import FileImport, Integration
from syncengine.choices import JobKind, JobStatus, JobTrigger
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob

logger = logging.getLogger(__name__)

AUDITED_FIELDS = [
    "name",
    "integration",
    "format",
    "entities",
    "filter",
    "frequency",
    "day",
    "time",
    "timezone",
    "next_run_at",
    "destination",
    "options",
    "fields",
    "state",
]
SCHEDULE_FIELDS = ("frequency", "day", "time", "timezone")

_HOUR = dt.timedelta(hours=1)
_NOT_FOUND = "Not found."


def schedule_next_run_at(
    *,
    frequency: str,
    day: int | None,
    time: dt.time,
    timezone: str,
    now: dt.datetime,
) -> dt.datetime | None:
    """The first run strictly after ``now`` (UTC), or None for a manual-only schedule.

    Wall-clock times are read in ``timezone``: HOURLY runs at ``time``'s minute of every hour,
    DAILY at ``time``, WEEKLY on weekday ``day`` (0 = Monday), MONTHLY on day ``day`` of the
    month, clamped to the month's last day (31 runs on 30 April and 28 or 29 February).
    A wall-clock time skipped by a daylight-saving change runs that many minutes later.
    """
    if not frequency:
        return None
    zone = zoneinfo.ZoneInfo(timezone)
    now = now.astimezone(dt.UTC)
    local_now = now.astimezone(zone)

    def at(date: dt.date, hour: int = time.hour) -> dt.datetime:
        local = dt.datetime.combine(date, dt.time(hour, time.minute), tzinfo=zone)
        return local.astimezone(dt.UTC)

    if frequency == ExportFrequency.HOURLY:
        # Step in UTC so a daylight-saving change neither skips nor repeats an hour.
        candidate = at(local_now.date(), local_now.hour)
        while candidate <= now:
            candidate += _HOUR
        return candidate
    if frequency == ExportFrequency.DAILY:
        date = local_now.date()
        return at(date) if at(date) > now else at(date + dt.timedelta(days=1))
    if frequency == ExportFrequency.WEEKLY:
        assert day is not None
        date = local_now.date() + dt.timedelta(days=(day - local_now.weekday()) % 7)
        return at(date) if at(date) > now else at(date + dt.timedelta(days=7))
    if frequency == ExportFrequency.MONTHLY:
        assert day is not None
        year, month = local_now.year, local_now.month
        while True:
            last_day = calendar.monthrange(year, month)[1]
            candidate = at(dt.date(year, month, min(day, last_day)))
            if candidate > now:
                return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise ValueError(f"Unknown export frequency {frequency!r}")


def _refresh_next_run_at(export: Export) -> None:
    export.next_run_at = schedule_next_run_at(
        frequency=export.frequency,
        day=export.day,
        time=export.time,
        timezone=export.timezone,
        now=django_timezone.now(),
    )


def _account_integration(
    *, account: Account, integration_id: uuid.UUID | None
) -> Integration | None:
    if integration_id is None:
        return None
    integration = Integration.objects.filter(account=account, pk=integration_id).first()
    if integration is None:
        raise InvalidInput(
            "No live integration with this id in this account.",
            details={"integrationId": [_NOT_FOUND]},
        )
    return integration


def _check_destination(*, account: Account, destination: dict[str, Any]) -> dict[str, Any]:
    """The destination, checked; S3 and AZURE_BLOB without a ``connectionId`` get the
    account's one connection of that connector (stored, so the export keeps writing through
    it). ``InvalidInput`` names the key at fault."""
    problems = destination_problems(destination)
    for key in ("path", "prefix"):
        if key not in problems and (messages := prefix_errors(destination.get(key))):
            problems[key] = messages
    template = destination.get("fileNameTemplate") if isinstance(destination, dict) else None
    if (
        "fileNameTemplate" not in problems
        and isinstance(template, str)
        and (messages := template_problems(template))
    ):
        problems["fileNameTemplate"] = messages
    if problems:
        details = {f"destination.{key}": messages for key, messages in problems.items()}
        raise InvalidInput("The destination is invalid.", details=details)
    kind = destination["type"]
    if kind == DestinationType.LOCAL:
        return destination
    connector_id = DESTINATION_CONNECTOR[kind]
    connection_id = destination.get("connectionId")
    if connection_id is None:
        candidates = list(
            Connection.objects.filter(account=account, connector_id=connector_id).values_list(
                "pk", flat=True
            )[:2]
        )
        if len(candidates) != 1:
            found = "has none" if not candidates else "has several: name one"
            raise InvalidInput(
                f"{kind} destinations write through a connection of the {connector_id} "
                f"connector; this account {found}.",
                details={
                    "destination.connectionId": [
                        f"The id of a {connector_id} connection of this account (this account "
                        f"{found})."
                    ]
                },
            )
        return {**destination, "connectionId": str(candidates[0])}
    connection = Connection.objects.filter(account=account, pk=connection_id).first()
    if connection is None:
        raise InvalidInput(
            "No connection with this id in this account.",
            details={"destination.connectionId": [_NOT_FOUND]},
        )
    if connection.connector_id != connector_id:
        raise InvalidInput(
            f"{kind} destinations write through a connection of the {connector_id} connector.",
            details={
                "destination.connectionId": [
                    f"This connection is of the {connection.connector_id} connector; {kind} "
                    f"destinations need one of the {connector_id} connector."
                ]
            },
        )
    return destination


def _check_data(export: Export) -> None:
    """The entities exist in the account, the filter and fields fit them, the format options
    are the format's: ``InvalidInput`` otherwise, listing what is known."""
    problems: dict[str, list[str]] = {}
    for key, messages in format_options_problems(export.format, export.options).items():
        problems[key if key == "format" else f"options.{key}"] = messages
    problems.update(
        export_problems(
            account=export.account,
            entities=export.entities,
            filter=export.filter,
            fields=export.fields,
            integration_id=export.integration_id,
        )
    )
    template = export.destination.get("fileNameTemplate")
    if template and len(set(export.entities)) > 1 and "{{entity}}" not in template:
        problems["destination.fileNameTemplate"] = [
            "With several entities the template must contain {{entity}}: each entity's file "
            "would have the same name otherwise."
        ]
    if problems:
        raise InvalidInput("The export is invalid.", details=problems)


def _check_schedule(export: Export) -> None:
    if problems := schedule_problems(frequency=export.frequency, day=export.day):
        details = {f"schedule.{key}": messages for key, messages in problems.items()}
        raise InvalidInput("The schedule is invalid.", details=details)


def _audit(export: Export, *, actor: Actor, action: str, changes: dict[str, Any]) -> None:
    audit_object(export, actor=actor, resource_type="export", action=action, changes=changes)


@transaction.atomic
def export_create(
    *,
    account: Account,
    actor: Actor,
    name: str,
    format: str,
    entities: list[str],
    destination: dict[str, Any],
    filter: dict[str, Any] | None = None,
    frequency: str | None = None,
    day: int | None = None,
    time: dt.time | None = None,
    timezone: str = "UTC",
    integration_id: uuid.UUID | None = None,
    state: str = ExportState.ACTIVE,
    options: dict[str, Any] | None = None,
    fields: list[str] | None = None,
) -> Export:
    """Create an export definition, compute its first ``next_run_at`` and audit it.

    ``integration_id`` must name a live integration of ``account``; a destination's
    ``connectionId`` a connection of ``account`` of the destination's connector; the entities
    must exist in the account (``vehicles`` or its record store's) with a filter and fields
    that fit them, and ``options`` must be the format's. Any failing is an ``InvalidInput``.
    """
    export = Export(
        account=account,
        integration=_account_integration(account=account, integration_id=integration_id),
        name=name,
        format=format,
        entities=entities,
        filter=filter if filter is not None else {},
        frequency=frequency or "",
        day=day,
        time=time or dt.time(0, 0),
        timezone=timezone,
        destination=destination,
        state=state,
        options=options if options is not None else {},
        fields=fields,
    )
    _check_schedule(export)
    export.destination = _check_destination(account=account, destination=destination)
    _check_data(export)
    _refresh_next_run_at(export)
    export.full_clean()
    export.save()
    _audit(
        export,
        actor=actor,
        action=AuditAction.CREATED,
        changes=diff({}, field_values(export, AUDITED_FIELDS)),
    )
    return export


class ExportChanges(TypedDict, total=False):
    """The fields ``export_update`` may change; absent keys are left alone."""

    name: str
    integration_id: uuid.UUID | None
    format: str
    entities: list[str]
    filter: dict[str, Any]
    frequency: str | None
    day: int | None
    time: dt.time
    timezone: str
    destination: dict[str, Any]
    state: str
    options: dict[str, Any]
    fields: list[str] | None


@transaction.atomic
def export_update(*, export: Export, actor: Actor, **changes: Unpack[ExportChanges]) -> Export:
    """Change an export; schedule keys merge into the stored schedule, ``destination`` replaces.

    ``next_run_at`` is recomputed from now when the schedule or the state changes, and only
    then, so an unrelated edit never moves a run that is already due. Changing the frequency
    drops the stored day unless the change gives a new one.
    """
    # Merge into the row as it is now, locked, so concurrent PATCHes of the schedule both count.
    export = Export.objects.select_related("account").select_for_update().get(pk=export.pk)
    account = export.account
    before = field_values(export, AUDITED_FIELDS)
    if "integration_id" in changes:
        export.integration = _account_integration(
            account=account, integration_id=changes["integration_id"]
        )
    if "destination" in changes:
        export.destination = _check_destination(account=account, destination=changes["destination"])
    for name in (
        "name",
        "format",
        "entities",
        "filter",
        "time",
        "timezone",
        "state",
        "options",
        "fields",
    ):
        if name in changes:
            setattr(export, name, changes[name])
    if "frequency" in changes:
        export.frequency = changes["frequency"] or ""
    if "day" in changes:
        export.day = changes["day"]
    elif export.frequency != before["frequency"]:
        # A weekday and a day of the month are different things: a new frequency needs its own.
        export.day = None
    _check_schedule(export)
    after = field_values(export, AUDITED_FIELDS)
    data = ("integration", "format", "entities", "filter", "options", "fields")
    if any(before[name] != after[name] for name in data):
        # Only then: an unrelated edit must not fail because records have since gone.
        _check_data(export)
    if any(before[name] != after[name] for name in (*SCHEDULE_FIELDS, "state")):
        _refresh_next_run_at(export)
    export.full_clean()
    export.save()
    changes_made = diff(before, field_values(export, AUDITED_FIELDS))
    if changes_made:
        _audit(export, actor=actor, action=AuditAction.UPDATED, changes=changes_made)
    return export


@transaction.atomic
def export_delete(*, export: Export, actor: Actor) -> None:
    """Delete an export definition, auditing what it was."""
    _audit(
        export,
        actor=actor,
        action=AuditAction.DELETED,
        changes=diff(field_values(export, AUDITED_FIELDS), {}),
    )
    export.delete()


# --- runs ---------------------------------------------------------------------------------------


def _run_queue(
    *,
    owner: Export | FileImport,
    noun: str,
    kind: str,
    actor: Actor,
    trigger: str,
    entities: list[str],
) -> SyncJob:
    """Queue a run of an export or a file import (``owner``, locked so two requests cannot both
    pass the check) and audit it; another queued or running run of it is a ``Conflict``."""
    type(owner).objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
    field = "export" if isinstance(owner, Export) else "file_import"
    owned: dict[str, Any] = {field: owner}
    active = lifecycle.active_job(**owned)
    if active is not None:
        raise Conflict(
            f"A run of this {noun} is already {active.status.lower()}: {active.pk}.",
            details={"runId": [str(active.pk)], "status": [active.status]},
        )
    run = lifecycle.run_create(
        kind=kind,
        message=f"Queued by {actor.name or actor.type}.",
        account_id=owner.account_id,
        trigger=trigger,
        entities=entities,
        **owned,
    )
    audit_record(
        account=owner.account,
        actor=actor,
        resource_type=noun,
        resource_id=owner.pk,
        action="run",
        changes={"runId": str(run.pk), "trigger": trigger},
        integration_id=owner.integration_id,
    )
    return run


def export_run_start(*, export: Export, actor: Actor, trigger: str = JobTrigger.MANUAL) -> SyncJob:
    """Queue a run of ``export`` (its task is sent once the transaction commits) and audit it.

    At most one run of an export is queued or running: another is a ``Conflict`` naming it.
    A paused export runs when asked to; only its schedule is paused.
    """
    with transaction.atomic():
        return _run_queue(
            owner=export,
            noun="export",
            kind=JobKind.EXPORT,
            actor=actor,
            trigger=trigger,
            entities=list(export.entities),
        )


def file_import_run_start(
    *, file_import: FileImport, actor: Actor, trigger: str = JobTrigger.MANUAL
) -> SyncJob:
    """Queue a run of ``file_import`` (its task is sent once the transaction commits) and audit
    it. An import that cannot run (no entity, no connection that receives files, ...) is an
    ``InvalidInput`` naming each problem; at most one run of an import is queued or running:
    another is a ``Conflict`` naming it."""
    if problems := import_run_problems(file_import):
        raise InvalidInput("The import cannot run.", details=problems)
    with transaction.atomic():
        return _run_queue(
            owner=file_import,
            noun="import",
            kind=JobKind.FILE_IMPORT,
            actor=actor,
            trigger=trigger,
            entities=[file_import.entity],
        )


def export_run_cancel(*, run: SyncJob, actor: Actor) -> SyncJob:
    """Cancel a run: a queued one never starts; a running one stops at its next check, its
    uploads discarded. Cancelling an ended run is a ``Conflict``."""
    return lifecycle.run_cancel(job=run, actor=actor)


# --- retention (config.retention) ---------------------------------------------------------------


def export_runs_prune(*, cutoff: dt.datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` export and file-import runs that ended before ``cutoff``, oldest
    first (the retention, ``JOB_RETENTION_DAYS``), with their file records and, for a LOCAL
    destination, their files in the export storage.

    Kept however old: runs in progress, and the latest run of each export or import that
    completed or failed. A LOCAL file stays when a run kept names the same file, or when it was
    written again after its run ended (a later run delivered a file of that name and owns it
    now). Runs with LOCAL files wait while an export run of their account is running (it may
    be replacing one of those files right now), and a run whose file the storage fails to
    remove stays, for the next run of the prune.
    """
    later = SyncJob.objects.filter(
        status__in=[JobStatus.COMPLETED, JobStatus.FAILED],
        completed_at__gt=OuterRef("completed_at"),
    )
    superseded = (
        Q(export__isnull=False) & Exists(later.filter(export_id=OuterRef("export_id")))
    ) | (
        Q(file_import__isnull=False)
        & Exists(later.filter(file_import_id=OuterRef("file_import_id")))
    )
    local_files = ExportFile.objects.filter(
        run_id=OuterRef("pk"), destination_type=DestinationType.LOCAL
    )
    writing = SyncJob.objects.filter(
        account_id=OuterRef("account_id"), export__isnull=False, status=JobStatus.RUNNING
    )
    prunable = (
        SyncJob.objects.filter(Q(export__isnull=False) | Q(file_import__isnull=False))
        .filter(
            status__in=[JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED],
            created_at__lt=cutoff,
            completed_at__lt=cutoff,
        )
        .filter(superseded)
        .exclude(Exists(local_files) & Exists(writing))
    )
    with transaction.atomic():
        runs = list(
            prunable.order_by("created_at", "pk").values_list("pk", "account_id", "completed_at")[
                :limit
            ]
        )
        keys = [key for key, _, _ in runs]
        files = ExportFile.objects.filter(run_id__in=keys, destination_type=DestinationType.LOCAL)
        named_elsewhere = set(
            ExportFile.objects.filter(
                destination_type=DestinationType.LOCAL,
                uri__in=files.values("uri"),
                run__account_id__in={account for _, account, _ in runs},
            )
            .exclude(run_id__in=keys)
            .values_list("run__account_id", "uri")
        )
        uris: dict[Any, list[str]] = {}
        for run_id, uri in files.values_list("run_id", "uri"):
            uris.setdefault(run_id, []).append(uri)
        kept = set()
        for key, account_id, completed_at in runs:
            for uri in uris.get(key, []):
                if (account_id, uri) in named_elsewhere:
                    continue
                try:
                    local_file_delete(
                        account_id=account_id, uri=uri, delivered_before=completed_at or cutoff
                    )
                except Exception:
                    logger.warning("Could not remove the export file %s", uri, exc_info=True)
                    kept.add(key)
                    break
        deleted = [key for key in keys if key not in kept]
        SyncJob.objects.filter(pk__in=deleted).delete()
    return Pruned(rows=len(deleted), more=len(keys) == limit and bool(deleted))
