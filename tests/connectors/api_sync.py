"""Syncing a connection as a user does: through the API, with the job worked in this process as
the worker's task works it (``lifecycle.run_execute``), and read back through the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone

from syncengine.jobs import lifecycle
from syncengine.models import Record

CONNECTIONS = "/api/v1/integrations/connections"


def connection_create(
    api, connector_id: str, *, name: str, config: dict[str, Any], credentials: dict[str, Any]
) -> str:
    """Create a connection through the API; its id."""
    response = api.post(
        CONNECTIONS,
        {"connectorId": connector_id, "name": name, "config": config, "credentials": credentials},
        format="json",
    )
    assert response.status_code == 201, response.content
    return str(response.json()["data"]["connectionId"])


def stored(connection_id: str, entity: str | None = None) -> int:
    """How many records the connection's store holds (of ``entity``, or in all)."""
    records = Record.objects.filter(stream__connection_id=connection_id)
    if entity is not None:
        records = records.filter(stream__entity=entity)
    return records.count()


def sync(api, connection_id: str, mode: str = "FULL", **body: Any) -> dict[str, Any]:
    """Start a sync, work it, and answer the job's detail."""
    response = api.post(
        f"{CONNECTIONS}/{connection_id}/sync", {"mode": mode, **body}, format="json"
    )
    assert response.status_code == 202, response.content
    return work(api, connection_id, response.json()["data"]["syncId"])


def work(api, connection_id: str, sync_id: str) -> dict[str, Any]:
    lifecycle.run_execute(sync_id)
    response = api.get(f"{CONNECTIONS}/{connection_id}/sync/{sync_id}")
    assert response.status_code == 200
    return dict(response.json()["data"])


def retry(api, connection_id: str, sync_id: str) -> dict[str, Any]:
    """Work a requeued job again once its backoff has run out."""
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        return work(api, connection_id, sync_id)


def counts(job: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Created, updated, unchanged and read of each entity of a job."""
    keys = ("created", "updated", "unchanged", "read")
    return {entity: {key: stats[key] for key in keys} for entity, stats in job["stats"].items()}


def streams(api, connection_id: str) -> dict[str, dict[str, Any]]:
    """The connection's record store streams by entity: cursor and record count."""
    response = api.get(f"{CONNECTIONS}/{connection_id}/streams")
    assert response.status_code == 200
    return {stream["entity"]: stream for stream in response.json()["data"]}
