"""Sync jobs as the API and the admin ask for them: validate a request, queue the run, cancel it.

The run itself, from QUEUED to its end, belongs to ``syncengine.jobs.lifecycle``: a row committed
first, its task sent after the commit, so a broker failure never loses a run (the sweep sends
it again).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction

from accounts.services import Actor, audit_record
from config.api.datetimes import moment_problem
from config.api.errors import BadRequest, Conflict, InvalidInput
from connectors.choices import ConnectionStatus, SyncMode
from connectors.discovery import entities_check
from connectors.feeds import FEED_TYPES
from connectors.models import Connection
from connectors.registry import get_connector_for
from integrations.choices import SyncStrategy
from integrations.models import SYNC_SETTINGS_DEFAULTS, Integration
from syncengine.choices import JobKind, JobTrigger
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import active_job
from syncengine.models import SyncJob

logger = logging.getLogger(__name__)

INACTIVE_MESSAGE = "Cannot trigger sync for an inactive integration. Resume the integration first."


def _busy(job: SyncJob, owner: str) -> Conflict:
    return Conflict(
        f"A sync job of this {owner} is already {job.status.lower()}: {job.pk}.",
        details={"jobId": [str(job.pk)], "status": [job.status]},
    )


def parse_moment(raw: str) -> datetime | date | None:
    """An ISO 8601 date, or datetime (``Z`` accepted; UTC when it has no zone); None if neither."""
    try:
        return date.fromisoformat(raw)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date_range(value: Any) -> dict[str, str] | None:
    """Validate ``{"from": date, "to": date}`` (ISO dates or datetimes, either side optional)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(
            "dateRange must be an object.", details={"dateRange": ["Must be an object."]}
        )
    unknown = sorted(set(value) - {"from", "to"})
    if unknown:
        raise InvalidInput(
            "dateRange takes only from and to.",
            details={f"dateRange.{key}": ["Unknown key."] for key in unknown},
        )
    parsed: dict[str, datetime | date] = {}
    errors: dict[str, list[str]] = {}
    for side in ("from", "to"):
        raw = value.get(side)
        if raw is None:
            continue
        moment = parse_moment(raw) if isinstance(raw, str) else None
        problem = moment_problem(moment) if isinstance(moment, datetime) else None
        if moment is None:
            errors[f"dateRange.{side}"] = ["Must be an ISO 8601 date (2025-01-15) or datetime."]
        elif problem:
            errors[f"dateRange.{side}"] = [problem]
        else:
            parsed[side] = moment
    if not errors and "from" in parsed and "to" in parsed:
        # A bare date means a whole day, as the connectors read it: ``from`` from its start,
        # ``to`` through its end. So 2025-01-01T10:00Z .. 2025-01-01 is ten hours to midnight.
        start, end = _as_datetime(parsed["from"]), _range_end(parsed["to"])
        if start >= end:
            errors["dateRange.to"] = ["Must not be before dateRange.from."]
    if errors:
        raise InvalidInput("The date range is invalid.", details=errors)
    return {side: value[side] for side in ("from", "to") if value.get(side) is not None}


def _as_datetime(moment: datetime | date) -> datetime:
    """The moment a range starts: a bare date from its first instant (UTC when no zone)."""
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _range_end(moment: datetime | date) -> datetime:
    """The first moment after a range ending at ``moment``: a bare date is inclusive through
    the end of that day, so the range ends at the next midnight; a datetime includes itself."""
    step = timedelta.resolution if isinstance(moment, datetime) else timedelta(days=1)
    try:
        return _as_datetime(moment) + step
    except OverflowError:  # the last day Python can represent
        return datetime.max.replace(tzinfo=UTC)


def connection_sync_start(
    *,
    connection: Connection,
    actor: Actor,
    entities: list[str] | None = None,
    mode: str = SyncMode.FULL,
    date_range: dict[str, Any] | None = None,
    strategy: str = SyncStrategy.MERGE,
    trigger: str = JobTrigger.MANUAL,
) -> SyncJob:
    """Queue a sync of a connection's entities into its record store.

    ``entities`` empty means every entity the connector offers. A ``date_range`` for a
    connector that cannot read by date (``filters_by_date``) is ``InvalidInput``, not a silent
    full read. Raises ``Conflict`` while another job of the connection is queued or running.
    """
    connector = get_connector_for(connection.connector_id, account_id=connection.account_id)
    if connector is None or not connector.is_source:
        raise BadRequest(
            f"Connections of {connection.connector_id!r} do not sync: it is not a source "
            "connector (feed files arrive over SFTP)."
        )
    if connector.feeds_files:
        raise BadRequest(
            f"A {connection.connector_id} connection feeds files into an integration's file "
            "pipeline: create an inventory integration with this connection as sourceAppId and "
            "sync the integration."
        )
    errors: dict[str, list[str]] = {}
    if mode not in connector.sync_modes:
        allowed = ", ".join(connector.sync_modes)
        errors["mode"] = [f"{connector.name} supports {allowed}."]
    entities = list(dict.fromkeys(entities or []))
    if connector.entities:
        unknown = [entity for entity in entities if entity not in connector.entities]
        if unknown:
            errors["entities"] = [
                f"Unknown entities {', '.join(unknown)}; "
                f"{connector.name} offers {', '.join(connector.entities)}."
            ]
    if strategy not in SyncStrategy.values:
        errors["strategy"] = [f"Must be one of {', '.join(SyncStrategy.values)}."]
    if date_range and not connector.filters_by_date:
        # Reading everything instead would look like success while ignoring what was asked.
        errors["dateRange"] = [
            f"{connector.name} cannot read by date range; leave dateRange out to read everything."
        ]
    if errors:
        message = "The sync request is invalid."
        if list(errors) == ["dateRange"]:
            message = f"{connector.name} cannot read by date range."
        raise InvalidInput(message, details=errors)
    if connection.status != ConnectionStatus.ACTIVE:
        raise BadRequest(
            f"Cannot sync a connection whose status is {connection.status}; set it to ACTIVE first."
        )
    if not connector.entities:
        # Entities found by discovery (a database's tables): checked against the kept list.
        entities_check(connection=connection, names=entities, field="entities")
    with transaction.atomic():
        # Lock the connection row so two requests cannot both pass the busy check.
        Connection.objects.select_for_update().filter(pk=connection.pk).first()
        running = active_job(connection=connection)
        if running is not None:
            raise _busy(running, "connection")
        job = lifecycle.run_create(
            kind=JobKind.SYNC,
            message=f"Queued by {actor.name or actor.type}: {mode} sync.",
            account_id=connection.account_id,
            connection=connection,
            trigger=trigger,
            mode=mode,
            strategy=strategy,
            entities=entities,
            date_range=date_range,
        )
        audit_record(
            account=connection.account,
            actor=actor,
            resource_type="connection",
            resource_id=connection.pk,
            action="sync",
            changes={"jobId": str(job.pk), "mode": mode, "entities": entities},
        )
    return job


def integration_sync_start(
    *,
    integration: Integration,
    actor: Actor,
    trigger: str = JobTrigger.MANUAL,
    mode: str | None = None,
) -> SyncJob:
    """Queue a run of an integration (a manual sync).

    An inactive integration is refused with the documented message; a queued or running job of the
    integration is a ``Conflict`` naming it.
    """
    if not integration.is_active:
        raise BadRequest(INACTIVE_MESSAGE)
    if integration.source_connection_id is None:
        if integration.type in FEED_TYPES:
            raise BadRequest(
                f"This {integration.type} integration runs when its partner uploads a file over "
                "SFTP. To run the pipeline again, reprocess a file: "
                "POST /api/v1/integrations/{id}/logs/{logId}/reprocess."
            )
        raise BadRequest("The integration has no source (sourceAppId) to sync from.")
    with transaction.atomic():
        Integration.all_objects.select_for_update().filter(pk=integration.pk).first()
        running = active_job(integration=integration)
        if running is not None:
            raise _busy(running, "integration")
        job = lifecycle.run_create(
            kind=JobKind.SYNC,
            message=f"Queued by {actor.name or actor.type}.",
            account_id=integration.account_id,
            integration=integration,
            trigger=trigger,
            mode=mode or integration_default_mode(integration),
            strategy=integration_strategy(integration),
        )
        Integration.all_objects.filter(pk=integration.pk).update(latest_job_id=job.pk)
    return job


def integration_strategy(integration: Integration) -> str:
    settings_ = {**SYNC_SETTINGS_DEFAULTS, **(integration.sync_settings or {})}
    return str(settings_["strategy"])


def integration_default_mode(integration: Integration) -> str:
    """Scheduled and manual integration runs read incrementally when the source can."""
    connector = get_connector_for(integration.type, account_id=integration.account_id)
    if connector is not None and SyncMode.INCREMENTAL in connector.sync_modes:
        return SyncMode.INCREMENTAL
    return SyncMode.FULL


def sync_job_cancel(*, job: SyncJob, actor: Actor) -> SyncJob:
    """Cancel a job (``lifecycle.run_cancel``): a queued one never starts; a running one stops
    at its next checkpoint, keeps what it committed and ends CANCELLED. Cancelling a cancelled
    job changes nothing; a finished one is a ``Conflict``."""
    return lifecycle.run_cancel(job=job, actor=actor)
