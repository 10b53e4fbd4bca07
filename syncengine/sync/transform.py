"""What an integration does to the records it moves: its field mappings, then its ``config.tasks``.

Tasks Railyard runs, in the order they are listed (``entity`` limits a task to one entity):

- ``{"task_type": "sync", "entity": "customers", "destinationEntity": "stripe_customers"}``
  chooses the entities to sync (all the source offers when no sync task is given) and, for a
  destination connector, the table or object the records go to (the entity's name by default);
- ``{"task_type": "rename", "fields": {"email": "email_address"}}``;
- ``{"task_type": "drop", "fields": ["metadata"]}``;
- ``{"task_type": "set", "values": {"source": "stripe"}}``;
- ``{"task_type": "filter", "field": "status", "equals": "active"}`` (or ``"in": [...]``,
  ``"notEquals": ...``): records that do not match are counted as skipped, never written.

A task of another type fails the run with a readable error instead of being ignored.

Records are validated before they are written: a record that is not an object, lacks its primary
key or has a key that cannot be stored (too long, or holding a NUL character, which PostgreSQL
text cannot hold) is rejected, counted per entity and sampled, never dropped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.registry import ConnectorError

TASK_TYPES = ("sync", "rename", "drop", "set", "filter")
KEY_MAX_LENGTH = 500
ERROR_SAMPLE_LIMIT = 20
SAMPLE_VALUE_LIMIT = 2000

Step = Callable[[dict[str, Any]], dict[str, Any] | None]


@dataclass
class EntityPlan:
    """How one entity's records are transformed and where they go."""

    entity: str
    destination_entity: str
    steps: list[Step] = field(default_factory=list)

    def apply(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """The transformed record, or None when a filter leaves it out."""
        current = record
        for step in self.steps:
            stepped = step(current)
            if stepped is None:
                return None
            current = stepped
        return current


@dataclass
class Rejected:
    reason: str
    record: Any


def _rename(mapping: dict[str, str | None]) -> Step:
    def step(record: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in record.items():
            if name in mapping:
                target = mapping[name]
                if target:
                    result[target] = value
            else:
                result.setdefault(name, value)
        return result

    return step


def _drop(fields: list[str]) -> Step:
    dropped = set(fields)
    return lambda record: {name: value for name, value in record.items() if name not in dropped}


def _set(values: dict[str, Any]) -> Step:
    return lambda record: {**record, **values}


def _filter(task: dict[str, Any]) -> Step:
    name = task["field"]
    if "equals" in task:
        expected = task["equals"]
        return lambda record: record if record.get(name) == expected else None
    if "notEquals" in task:
        unexpected = task["notEquals"]
        return lambda record: record if record.get(name) != unexpected else None
    allowed = task["in"]
    return lambda record: record if record.get(name) in allowed else None


def _task_error(index: int, message: str) -> ConnectorError:
    return ConnectorError(f"config.tasks[{index}]: {message}", retryable=False)


def _check_task(index: int, task: Any) -> dict[str, Any]:
    if not isinstance(task, dict):
        raise _task_error(index, "must be an object.")
    task_type = task.get("task_type")
    if task_type not in TASK_TYPES:
        raise _task_error(
            index,
            f"Railyard does not run task_type {task_type!r}; it runs {', '.join(TASK_TYPES)}.",
        )
    if task_type == "sync" and not isinstance(task.get("entity"), str):
        raise _task_error(index, 'a sync task needs "entity" (the source entity to sync).')
    if task_type == "rename" and not (
        isinstance(task.get("fields"), dict)
        and all(isinstance(value, str) and value for value in task["fields"].values())
    ):
        raise _task_error(index, 'a rename task needs "fields": {"old name": "new name"}.')
    if task_type == "drop" and not (
        isinstance(task.get("fields"), list)
        and all(isinstance(value, str) for value in task["fields"])
    ):
        raise _task_error(index, 'a drop task needs "fields": ["name", ...].')
    if task_type == "set" and not isinstance(task.get("values"), dict):
        raise _task_error(index, 'a set task needs "values": {"field": value}.')
    if task_type == "filter":
        conditions = [key for key in ("equals", "notEquals", "in") if key in task]
        if not isinstance(task.get("field"), str) or len(conditions) != 1:
            raise _task_error(
                index, 'a filter task needs "field" and one of "equals", "notEquals" or "in".'
            )
        if "in" in task and not isinstance(task["in"], list):
            raise _task_error(index, '"in" must be a list of values.')
    return task


def sync_entities(tasks: list[Any]) -> list[tuple[str, str]]:
    """``(entity, destination entity)`` of each sync task, in order; empty when there are none."""
    chosen: dict[str, str] = {}
    for index, raw in enumerate(tasks):
        task = _check_task(index, raw)
        if task["task_type"] == "sync":
            chosen[task["entity"]] = str(task.get("destinationEntity") or task["entity"])
    return list(chosen.items())


def entity_plan(
    entity: str,
    *,
    mappings: dict[str, str | None] | None = None,
    tasks: list[Any] | None = None,
) -> EntityPlan:
    """The steps for ``entity``: field mappings (``extract`` -> ``generate``; no target drops the
    field), then each task that applies to it."""
    tasks = tasks or []
    destination = dict(sync_entities(tasks)).get(entity, entity)
    plan = EntityPlan(entity=entity, destination_entity=destination)
    if mappings:
        plan.steps.append(_rename(dict(mappings)))
    for index, raw in enumerate(tasks):
        task = _check_task(index, raw)
        if task.get("entity") not in (None, entity) or task["task_type"] == "sync":
            continue
        if task["task_type"] == "rename":
            plan.steps.append(_rename(task["fields"]))
        elif task["task_type"] == "drop":
            plan.steps.append(_drop(task["fields"]))
        elif task["task_type"] == "set":
            plan.steps.append(_set(task["values"]))
        elif task["task_type"] == "filter":
            plan.steps.append(_filter(task))
    return plan


def record_key(record: Any, primary_key: list[str]) -> str | Rejected:
    """The record's store key from its primary key fields, or why it cannot have one."""
    if not isinstance(record, dict):
        return Rejected(f"The record is a {type(record).__name__}, not an object.", record)
    if not primary_key:
        return Rejected("The entity has no primary key to identify records by.", record)
    values = []
    for name in primary_key:
        value = record.get(name)
        if value is None or value == "":
            return Rejected(f'The record has no value for its primary key "{name}".', record)
        if isinstance(value, dict | list):
            return Rejected(f'The primary key "{name}" is not a scalar value.', record)
        if "\x00" in str(value):
            # PostgreSQL text cannot hold NUL: storing the key would fail the whole batch (and
            # the job), where rejecting it costs only this record.
            return Rejected(f'The primary key "{name}" contains a NUL character.', record)
        values.append(value)
    key = str(values[0]) if len(values) == 1 else json.dumps(values, default=str)
    if len(key) > KEY_MAX_LENGTH:
        return Rejected(f"The primary key is longer than {KEY_MAX_LENGTH} characters.", record)
    return key


def error_sample(rejected: Rejected) -> dict[str, Any]:
    """A JSON-safe, size-limited sample of a rejected record for the job's stats."""
    try:
        text = json.dumps(rejected.record, default=str)
    except (TypeError, ValueError):
        text = repr(rejected.record)
    if len(text) > SAMPLE_VALUE_LIMIT:
        text = text[:SAMPLE_VALUE_LIMIT] + "…"
    return {"reason": rejected.reason, "record": text}
