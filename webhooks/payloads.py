"""The body of a webhook message: ``{"type", "id", "timestamp", "data"}``.

``data`` names the account, the integration (id and name) and whatever the event recorded: the
connection, the job or run id, the outcome (status, stats, counts, error). A body over
``PAYLOAD_MAX_BYTES`` keeps the keys that fit, lists the ones left out under ``omitted`` and
links the whole event in the API (``url``, ``truncated: true``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from accounts.models import Event
from integrations.models import Integration

PAYLOAD_MAX_BYTES = 20_000
# Room kept for the envelope, the link and the list of omitted keys of a capped body.
_CAPPED_ROOM = 2_000
# Always kept, in this order, when they fit: what identifies the event's objects and outcome.
_FIRST_KEYS = ("account", "integration", "connection", "jobId", "runId", "status", "error")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def _size(value: Any) -> int:
    return len(_dumps(value).encode())


def event_url(event_id: Any) -> str:
    """Where the whole event is in the API (a path: the API's host is the caller's own)."""
    return f"/api/v1/events/{event_id}"


def integration_names(events: Iterable[Event]) -> dict[Any, str]:
    """The names of the integrations ``events`` name without saying it, in one query."""
    wanted = {
        event.integration_id
        for event in events
        if event.integration_id is not None
        and not isinstance((event.payload or {}).get("integration"), dict)
    }
    if not wanted:
        return {}
    return dict(Integration.all_objects.filter(pk__in=wanted).values_list("pk", "name"))


def message_body(event: Event, *, names: Mapping[Any, str] | None = None) -> str:
    """The JSON text every endpoint receives for ``event``; ``names`` from
    ``integration_names`` when bodies are built for many events at once."""
    data: dict[str, Any] = {"account": {"id": str(event.account_id), "name": event.account.name}}
    data.update(event.payload or {})
    if event.integration_id is not None and not isinstance(data.get("integration"), dict):
        if names is None:
            names = integration_names([event])
        data["integration"] = {
            "id": str(event.integration_id),
            "name": names.get(event.integration_id),
        }
    body = {
        "type": event.type,
        "id": str(event.pk),
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    text = _dumps(body)
    if len(text.encode()) <= PAYLOAD_MAX_BYTES:
        return text
    return _dumps({**body, "data": _capped(data, event.pk)})


def _capped(data: dict[str, Any], event_id: Any) -> dict[str, Any]:
    budget = PAYLOAD_MAX_BYTES - _CAPPED_ROOM
    kept: dict[str, Any] = {}
    omitted: list[str] = []
    keys = [key for key in _FIRST_KEYS if key in data]
    keys += [key for key in data if key not in _FIRST_KEYS]
    for key in keys:
        size = _size({key: data[key]})
        if size <= budget:
            kept[key] = data[key]
            budget -= size
        else:
            omitted.append(key)
    return {**kept, "truncated": True, "omitted": omitted[:50], "url": event_url(event_id)}
