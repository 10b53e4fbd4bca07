"""A sync run's context: what it reads from and writes to, its counts, and its checkpoints
(saved with each batch's commit, with a heartbeat and a cancel check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from connectors.models import Connection
from connectors.registry import Connector, ConnectorError, EntitySpec, get_connector_for
from connectors.services import resolve_credentials
from integrations.choices import SyncStrategy
from integrations.models import SYNC_SETTINGS_DEFAULTS, Integration
from syncengine.feeds.ingest import feed_import, mapping_overrides
from syncengine.jobs.lifecycle import (
    Run,
    RunCancelled,
    RunLost,
)
from syncengine.models import Snapshot, SyncJob, SyncStream
from syncengine.sync.store import stream_for


@dataclass
class EntityStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: int = 0
    skipped: int = 0
    read: int = 0
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "errors": self.errors,
            "skipped": self.skipped,
            "read": self.read,
        }
        if self.error_samples:
            data["errorSamples"] = self.error_samples
        if self.warnings:
            data["warnings"] = self.warnings
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntityStats:
        return cls(
            created=data.get("created", 0),
            updated=data.get("updated", 0),
            unchanged=data.get("unchanged", 0),
            deleted=data.get("deleted", 0),
            errors=data.get("errors", 0),
            skipped=data.get("skipped", 0),
            read=data.get("read", 0),
            error_samples=list(data.get("errorSamples", [])),
            warnings=list(data.get("warnings", [])),
        )


@dataclass
class RunContext:
    """Everything a run needs, resolved once when it starts."""

    run: Run
    job: SyncJob
    source: Connector
    integration: Integration | None
    connection: Connection
    destination: Connector | None
    strategy: str
    sync_settings: dict[str, Any]
    tasks: list[Any]
    mappings: dict[str, str | None]
    now: datetime
    stats: dict[str, EntityStats] = field(default_factory=dict)
    # Files a pull went through (entity syncs count records read in their stats).
    records_done: int = 0
    records_total: int | None = None
    snapshot: Snapshot | None = None
    discovered: list[EntitySpec] | None = None


def connector_for(connection: Connection) -> Connector:
    connector_class = get_connector_for(connection.connector_id, account_id=connection.account_id)
    if connector_class is None:
        raise ConnectorError(
            f"The connector {connection.connector_id!r} is not installed.", retryable=False
        )
    return connector_class(config=connection.config, credentials=resolve_credentials(connection))


def context_for(run: Run) -> RunContext:
    job = run.job
    integration = job.integration
    destination: Connector | None = None
    if integration is not None:
        connection = integration.source_connection
        if connection is None:
            raise ConnectorError("The integration has no source (sourceAppId).", retryable=False)
        target = integration.destination_connection
        if target is not None:
            target_class = get_connector_for(target.connector_id, account_id=target.account_id)
            if target_class is not None and target_class.is_destination:
                destination = connector_for(target)
        sync_settings = {**SYNC_SETTINGS_DEFAULTS, **(integration.sync_settings or {})}
        tasks = list((integration.config or {}).get("tasks") or [])
        mappings = mapping_overrides(feed_import(integration))
    else:
        assert job.connection is not None  # a job belongs to an integration or a connection
        connection = job.connection
        sync_settings = dict(SYNC_SETTINGS_DEFAULTS)
        tasks, mappings = [], {}
    return RunContext(
        run=run,
        job=job,
        source=connector_for(connection),
        integration=integration,
        connection=connection,
        destination=destination,
        strategy=job.strategy or str(sync_settings["strategy"]) or SyncStrategy.MERGE,
        sync_settings=sync_settings,
        tasks=tasks,
        mappings=mappings,
        now=timezone.now(),
        stats={entity: EntityStats.from_json(data) for entity, data in job.stats.items()},
    )


def checkpoint(ctx: RunContext, *, entity: str | None, total_entities: int) -> None:
    """Save stats, progress and cursors with a heartbeat. Called inside each batch's
    transaction, so what the job says it did is exactly what was committed, and a run whose
    claim was taken over (``RunLost``) rolls its batch back instead of committing it."""
    job = ctx.job
    done = (
        ctx.records_done
        if ctx.source.feeds_files
        else sum(stats.read for stats in ctx.stats.values())
    )
    ctx.run.checkpoint(
        stats={name: stats.as_json() for name, stats in ctx.stats.items()},
        progress={
            "recordsDone": done,
            "recordsTotal": ctx.records_total,
            "entitiesDone": len(job.entities_done),
            "entitiesTotal": total_entities,
            "entity": entity,
        },
        cursors=job.cursors,
        entities_done=job.entities_done,
    )


def beat(ctx: RunContext, *, entity: str | None, total_entities: int) -> None:
    """Save stats and progress with a heartbeat; stop if a cancel was asked for (the checkpoint
    itself stops a run whose claim was taken over)."""
    checkpoint(ctx, entity=entity, total_entities=total_entities)
    ctx.run.stop_if_cancelled()


def should_stop(ctx: RunContext) -> bool:
    try:
        beat(ctx, entity=None, total_entities=1)
    except (RunCancelled, RunLost):
        return True
    return False


def error_budget_exceeded(ctx: RunContext) -> str | None:
    ratio = float(ctx.sync_settings.get("max_error_ratio", 0.1))
    read = sum(stats.read for stats in ctx.stats.values())
    errors = sum(stats.errors for stats in ctx.stats.values())
    if errors and read and errors / read > ratio:
        return (
            f"{errors} of {read} records were rejected ({errors / read:.1%}), more than the "
            f"error budget of {ratio:.0%} (syncSettings.max_error_ratio)."
        )
    return None


def stream_of(ctx: RunContext, entity: str) -> SyncStream:
    job = ctx.job
    return stream_for(
        account_id=job.account_id,
        integration_id=job.integration_id,
        connection_id=None if job.integration_id else job.connection_id,
        entity=entity,
    )
