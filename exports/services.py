"""Write operations on export definitions, and the schedule arithmetic behind ``next_run_at``."""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
import zoneinfo
from typing import Any, TypedDict, Unpack

from django.db import transaction
from django.utils import timezone as django_timezone

from accounts.choices import AuditAction
from accounts.models import Account
from accounts.services import Actor, audit_object, diff, field_values
from config.api.errors import InvalidInput
from connectors.models import Connection
from exports.choices import DestinationType, ExportFrequency, ExportState
from exports.models import Export, destination_problems, schedule_problems
from integrations.models import Integration

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


def _check_destination(*, account: Account, destination: dict[str, Any]) -> None:
    if problems := destination_problems(destination):
        details = {f"destination.{key}": messages for key, messages in problems.items()}
        raise InvalidInput("The destination is invalid.", details=details)
    if destination["type"] != DestinationType.SFTP:
        return
    if not Connection.objects.filter(account=account, pk=destination["connectionId"]).exists():
        raise InvalidInput(
            "No connection with this id in this account.",
            details={"destination.connectionId": [_NOT_FOUND]},
        )


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
) -> Export:
    """Create an export definition, compute its first ``next_run_at`` and audit it.

    ``integration_id`` must name a live integration of ``account``; an SFTP destination's
    ``connectionId`` a connection of ``account``. Either failing is an ``InvalidInput``.
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
    )
    _check_schedule(export)
    _check_destination(account=account, destination=destination)
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
        _check_destination(account=account, destination=changes["destination"])
        export.destination = changes["destination"]
    for name in ("name", "format", "entities", "filter", "time", "timezone", "state"):
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
