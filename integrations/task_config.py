"""The tasks an integration's ``config.tasks`` may hold and the options each takes: one definition
that the API checks when an integration is created or updated and the sync engine
(``syncengine.sync.transform``) checks again before it applies them, for rows stored before a rule
existed.

Record tasks, applied in the order they are listed:

- ``sync``: ``entity`` (required) and ``destinationEntity``;
- ``rename``: ``fields``, ``{"old name": "new name"}``;
- ``drop``: ``fields``, ``["name", ...]``;
- ``set``: ``values``, ``{"field": value}``;
- ``filter``: ``field`` and one of ``equals``, ``notEquals`` or ``in`` (a list).

Event tasks turn an entity's records into what an analytics destination takes, after the record
tasks whatever their position; at most one applies to an entity:

- ``track_events``: ``event_field``, ``event_name``, ``event_mapping``, ``distinct_id_field``,
  ``time_field``, ``include_anonymous``, ``properties``;
- ``user_properties``: ``distinct_id_field``, ``properties``;
- ``group_properties``: ``group_key`` (required), ``group_id_field``, ``properties``.

Every task but ``sync`` may name an ``entity`` to apply to one entity only. An event task with an
option it does not take is refused, so a misspelt option is not silently replaced by its default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RECORD_TASK_TYPES = ("sync", "rename", "drop", "set", "filter")
EVENT_TASK_TYPES = ("track_events", "user_properties", "group_properties")
TASK_TYPES = RECORD_TASK_TYPES + EVENT_TASK_TYPES

# The options of each event task besides task_type and entity.
EVENT_TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "track_events": (
        "event_field",
        "event_name",
        "event_mapping",
        "distinct_id_field",
        "time_field",
        "include_anonymous",
        "properties",
    ),
    "user_properties": ("distinct_id_field", "properties"),
    "group_properties": ("group_key", "group_id_field", "properties"),
}

Problems = dict[str, list[str]]


def task_problems(tasks: Any) -> Problems:
    """What is wrong with ``config.tasks``, by path (``config.tasks[0].task_type``); empty when
    every task can run."""
    if not isinstance(tasks, list):
        return {"config.tasks": ["Must be a JSON array of task objects."]}
    problems: Problems = {}
    # Entity (None: every entity) -> index of the event task that applies to it.
    shaped: dict[str | None, int] = {}
    for index, task in enumerate(tasks):
        path = f"config.tasks[{index}]"
        found = _task_problems(path, task)
        problems.update(found)
        if found or task["task_type"] not in EVENT_TASK_TYPES:
            continue
        entity = task.get("entity")
        overlapping = [shaped[None]] if None in shaped else []
        if entity is None:
            overlapping += [other for other in shaped.values() if other not in overlapping]
        elif entity in shaped:
            overlapping.append(shaped[entity])
        if overlapping:
            scope = f"entity {entity!r}" if entity is not None else "every entity"
            problems[f"{path}.entity"] = [
                f"config.tasks[{overlapping[0]}] already turns the records of {scope} into "
                "events or profile updates; one event task applies to an entity (give each its "
                '"entity").'
            ]
        shaped.setdefault(entity, index)
    return problems


def _task_problems(path: str, task: Any) -> Problems:
    if not isinstance(task, dict):
        return {path: ["Must be a task object with a task_type."]}
    task_type = task.get("task_type")
    if task_type not in TASK_TYPES:
        return {
            f"{path}.task_type": [
                f"Railyard does not run task_type {task_type!r}; it runs {', '.join(TASK_TYPES)}."
            ]
        }
    problems: Problems = {}

    def problem(option: str, message: str) -> None:
        problems.setdefault(f"{path}.{option}", []).append(message)

    if task_type == "sync":
        if not _text(task.get("entity")):
            problem("entity", "A sync task needs the source entity to sync.")
        if "destinationEntity" in task and not _text(task["destinationEntity"]):
            problem("destinationEntity", "Must be a non-empty string.")
        return problems
    if "entity" in task and not _text(task["entity"]):
        problem("entity", "Must be a non-empty string (the entity this task applies to).")
    if task_type == "rename" and not (
        isinstance(task.get("fields"), dict)
        and all(_text(value) for value in task["fields"].values())
    ):
        problem("fields", 'A rename task needs "fields": {"old name": "new name"}.')
    elif task_type == "drop" and not (
        isinstance(task.get("fields"), list)
        and all(isinstance(value, str) for value in task["fields"])
    ):
        problem("fields", 'A drop task needs "fields": ["name", ...].')
    elif task_type == "set" and not isinstance(task.get("values"), dict):
        problem("values", 'A set task needs "values": {"field": value}.')
    elif task_type == "filter":
        conditions = [key for key in ("equals", "notEquals", "in") if key in task]
        if not isinstance(task.get("field"), str) or len(conditions) != 1:
            problem("field", 'A filter task needs "field" and one of "equals", "notEquals", "in".')
        elif "in" in task and not isinstance(task["in"], list):
            problem("in", "Must be a list of values.")
    elif task_type in EVENT_TASK_TYPES:
        _event_task_problems(task, problem)
    return problems


def _event_task_problems(task: dict[str, Any], problem: Callable[[str, str], None]) -> None:
    task_type = task["task_type"]
    allowed = EVENT_TASK_OPTIONS[task_type]
    for option in task:
        if option not in ("task_type", "entity", *allowed):
            problem(option, f"A {task_type} task takes {', '.join(allowed)} (and entity).")
    for option in ("event_field", "event_name", "distinct_id_field", "time_field"):
        if option in task and not _text(task[option]):
            problem(option, "Must be a non-empty string.")
    if "group_id_field" in task and not _text(task["group_id_field"]):
        problem("group_id_field", "Must be a non-empty string.")
    if task_type == "group_properties" and not _text(task.get("group_key")):
        problem(
            "group_key", "A group_properties task needs the project's group key (e.g. company_id)."
        )
    mapping = task.get("event_mapping")
    if "event_mapping" in task and not (
        isinstance(mapping, dict) and all(_text(name) for name in mapping.values())
    ):
        problem(
            "event_mapping", 'Must map event names to new names: {"order_completed": "Purchase"}.'
        )
    if "include_anonymous" in task and not isinstance(task["include_anonymous"], bool):
        problem("include_anonymous", "Must be true or false.")
    properties = task.get("properties")
    if "properties" in task and not (
        (isinstance(properties, list) and properties and all(_text(p) for p in properties))
        or (
            isinstance(properties, dict)
            and properties
            and all(_text(name) for name in properties.values())
        )
    ):
        problem(
            "properties",
            'Must list the fields to send (["total_price", ...]) or map them to property names '
            '({"total_price": "Amount"}).',
        )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
