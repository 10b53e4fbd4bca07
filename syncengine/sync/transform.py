"""What an integration does to the records it moves: its field mappings, then its ``config.tasks``
(``integrations.task_config`` says which tasks there are and what each needs).

Record tasks, in the order they are listed (``entity`` limits a task to one entity):

- ``{"task_type": "sync", "entity": "customers", "destinationEntity": "stripe_customers"}``
  chooses the entities to sync (all the source offers when no sync task is given) and, for a
  destination connector, the table or object the records go to (the entity's name by default);
- ``{"task_type": "rename", "fields": {"email": "email_address"}}``;
- ``{"task_type": "drop", "fields": ["metadata"]}``;
- ``{"task_type": "set", "values": {"source": "stripe"}}``;
- ``{"task_type": "filter", "field": "status", "equals": "active"}`` (or ``"in": [...]``,
  ``"notEquals": ...``): records that do not match are counted as skipped, never written.

Event tasks then give each record of an entity the shape an analytics destination (``mixpanel``)
takes, so the destination only batches and sends. Field options name a field of the record, or a
path into it (``customer.id``).

- ``track_events``: ``{"event": name, "properties": {..., "time", "distinct_id",
  "$insert_id"}}``. The name is the record's ``event_field`` (default ``event``), else the task's
  ``event_name``, else one made of the entity's name (``default_event_name``: ``orders`` ->
  ``order_completed``); ``event_mapping`` then renames it (names it does not hold stay). The
  distinct id is ``distinct_id_field``, by default the first of ``distinct_id``, ``user_id``,
  ``customer_id``, ``customer.id``, ``email`` the record has; a record without one (or with a
  placeholder Mixpanel refuses, such as ``null`` or ``anonymous``) is skipped unless
  ``include_anonymous`` is true, when its event has the empty distinct id Mixpanel keeps out of
  per-user analysis. ``time`` (milliseconds since the epoch) is read from ``time_field``, by
  default ``created_at`` and then the entity's cursor field: a record's creation keeps its
  event's time when the record changes later, so the re-sent event replaces the first one
  instead of adding to it. ``$insert_id`` is derived from the entity and the record's key, so an
  event sent again (a retry, a changed record) is de-duplicated by Mixpanel. A record without a
  readable time, or dated before 1971 or more than an hour ahead, is rejected.
- ``user_properties``: ``{"$distinct_id": id, "$set": {...}}``; the id is
  ``distinct_id_field``, by default the record's ``distinct_id`` or ``user_id``, else its key
  (the entity holds the users).
- ``group_properties``: ``{"$group_key": group_key, "$group_id": id, "$set": {...}}``; the id is
  ``group_id_field``, by default the record's key.

Properties are every field of the record (the event name's field aside), or those ``properties``
lists (``["total_price"]``) or maps to names of their own (``{"total_price": "Amount"}``). Records
without a distinct or group id are counted as skipped.

A task of another type, or one missing what it needs, fails the run with a readable error
instead of being ignored (the API refuses such tasks; this guards rows stored before it did).

Records are validated before they are written: a record that is not an object, lacks its primary
key or has a key that cannot be stored (too long, or holding a NUL character, which PostgreSQL
text cannot hold) is rejected, counted per entity and sampled, never dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.registry import ConnectorError
from integrations.task_config import task_problems

KEY_MAX_LENGTH = 500
ERROR_SAMPLE_LIMIT = 20
SAMPLE_VALUE_LIMIT = 2000

DISTINCT_ID_FIELDS = ("distinct_id", "user_id", "customer_id", "customer.id", "email")
USER_ID_FIELDS = ("distinct_id", "user_id")
# Values Mixpanel refuses as a distinct id because they mean "nobody" (compared lowercased).
PLACEHOLDER_IDS = frozenset(
    ("anon", "anonymous", "nil", "none", "null", "n/a", "00000000-0000-0000-0000-000000000000")
)
# Mixpanel refuses events dated before 1971 or more than an hour ahead of its clock.
EARLIEST_EVENT_MS = int(datetime(1971, 1, 1, tzinfo=UTC).timestamp() * 1000)
FUTURE_LEEWAY = timedelta(hours=1)
# A number of at least this many is a time in milliseconds, not seconds (2001 in milliseconds
# is 10^12; as seconds, 10^11 is the year 5138).
_MILLISECONDS_FROM = 10**11
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


@dataclass
class Rejected:
    reason: str
    record: Any


Step = Callable[[dict[str, Any], str], dict[str, Any] | Rejected | None]


@dataclass
class EntityPlan:
    """How one entity's records are transformed and where they go."""

    entity: str
    destination_entity: str
    steps: list[Step] = field(default_factory=list)

    def apply(self, record: dict[str, Any], key: str = "") -> dict[str, Any] | Rejected | None:
        """The transformed record; None when a filter or an event task leaves it out (skipped),
        ``Rejected`` when it cannot become what its event task makes. ``key`` is the record's
        store key (``record_key``)."""
        current = record
        for step in self.steps:
            stepped = step(current, key)
            if stepped is None or isinstance(stepped, Rejected):
                return stepped
            current = stepped
        return current


def _rename(mapping: dict[str, str | None]) -> Step:
    def step(record: dict[str, Any], key: str) -> dict[str, Any]:
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
    return lambda record, key: {
        name: value for name, value in record.items() if name not in dropped
    }


def _set(values: dict[str, Any]) -> Step:
    return lambda record, key: {**record, **values}


def _filter(task: dict[str, Any]) -> Step:
    name = task["field"]
    if "equals" in task:
        expected = task["equals"]
        return lambda record, key: record if record.get(name) == expected else None
    if "notEquals" in task:
        unexpected = task["notEquals"]
        return lambda record, key: record if record.get(name) != unexpected else None
    allowed = task["in"]
    return lambda record, key: record if record.get(name) in allowed else None


# --- event tasks -------------------------------------------------------------------------------

_MISSING = object()


def _value(record: dict[str, Any], path: str) -> Any:
    """The field ``path`` of a record: a field of that name, else a dotted path into nested
    objects (``customer.id``); ``_MISSING`` when there is none."""
    if path in record:
        return record[path]
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _identifier(record: dict[str, Any], paths: tuple[str, ...] | list[str]) -> str | None:
    """The first usable id among the fields ``paths``, as text."""
    for path in paths:
        value = _value(record, path)
        if value is _MISSING or value is None or isinstance(value, dict | list | bool):
            continue
        text = str(value).strip()
        if text and text.lower() not in PLACEHOLDER_IDS:
            return text
    return None


def _epoch_ms(value: Any) -> int | None:
    """A moment as milliseconds since the epoch, as Mixpanel takes ``time``: from an ISO 8601
    text (a naive one is UTC), a date, or a number of seconds or milliseconds."""
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.match(text):
            value = float(text)
        else:
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return round(value if abs(value) >= _MILLISECONDS_FROM else value * 1000)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    return None


def default_event_name(entity: str) -> str:
    """The event name of an entity's records when neither the record nor the task names one:
    the last part of the entity's name (after a schema's dot), lowercased and made singular (a
    trailing ``ies`` becomes ``y``; a trailing ``s`` is dropped, but not that of ``ss``),
    followed by ``_completed``: ``orders`` -> ``order_completed``, ``public.payments`` ->
    ``payment_completed``, ``activities`` -> ``activity_completed``."""
    name = entity.rsplit(".", 1)[-1].strip().lower()
    if name.endswith("ies") and len(name) > 3:
        name = name[:-3] + "y"
    elif name.endswith("s") and not name.endswith("ss") and len(name) > 1:
        name = name[:-1]
    return f"{name}_completed"


def insert_id(entity: str, key: str) -> str:
    """The ``$insert_id`` of the event a record becomes: the same for every sending of it, 32
    hexadecimal characters (Mixpanel takes at most 36 letters, digits and dashes)."""
    return hashlib.sha256(f"{entity}\x00{key}".encode()).hexdigest()[:32]


def _properties(
    spec: list[str] | dict[str, str] | None, *, leave_out: str | None = None
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What picks a record's properties: every field (but ``leave_out``), or those ``spec``
    lists or maps to names of their own."""
    if spec is None:
        return lambda record: {name: value for name, value in record.items() if name != leave_out}
    pairs = [(path, path) for path in spec] if isinstance(spec, list) else list(spec.items())

    def pick(record: dict[str, Any]) -> dict[str, Any]:
        picked: dict[str, Any] = {}
        for path, name in pairs:
            value = _value(record, path)
            if value is not _MISSING:
                picked[name] = value
        return picked

    return pick


def _track_events(task: dict[str, Any], *, entity: str, cursor_field: str | None) -> Step:
    event_field = str(task.get("event_field") or "event")
    fallback_name = str(task.get("event_name") or default_event_name(entity))
    mapping: dict[str, str] = dict(task.get("event_mapping") or {})
    id_fields = [task["distinct_id_field"]] if "distinct_id_field" in task else DISTINCT_ID_FIELDS
    time_fields = (
        [task["time_field"]]
        if "time_field" in task
        else list(dict.fromkeys(name for name in ("created_at", cursor_field) if name))
    )
    include_anonymous = bool(task.get("include_anonymous", False))
    pick_all = _properties(task.get("properties"))
    # A record's own event name is its event's name, not one of its properties as well.
    pick_unnamed = _properties(task.get("properties"), leave_out=event_field)

    def step(record: dict[str, Any], key: str) -> dict[str, Any] | Rejected | None:
        named = _value(record, event_field)
        from_record = isinstance(named, str) and bool(named.strip())
        name = named.strip() if from_record else fallback_name
        distinct_id = _identifier(record, id_fields)
        if distinct_id is None:
            if not include_anonymous:
                return None
            distinct_id = ""
        moment = next(
            (
                found
                for found in (_epoch_ms(_value(record, path)) for path in time_fields)
                if found is not None
            ),
            None,
        )
        if moment is None:
            where = " or ".join(time_fields) or "time_field"
            return Rejected(f"The record has no readable time in {where} for its event.", record)
        latest = int((datetime.now(UTC) + FUTURE_LEEWAY).timestamp() * 1000)
        if not EARLIEST_EVENT_MS <= moment <= latest:
            return Rejected(
                "The event's time is before 1971 or more than an hour ahead, which Mixpanel "
                "refuses.",
                record,
            )
        pick = pick_unnamed if from_record else pick_all
        properties = {
            **pick(record),
            "time": moment,
            "distinct_id": distinct_id,
            "$insert_id": insert_id(entity, key),
        }
        return {"event": mapping.get(name, name), "properties": properties}

    return step


def _user_properties(task: dict[str, Any]) -> Step:
    chosen = task.get("distinct_id_field")
    pick = _properties(task.get("properties"))

    def step(record: dict[str, Any], key: str) -> dict[str, Any] | None:
        distinct_id = _identifier(record, [chosen] if chosen else USER_ID_FIELDS)
        if distinct_id is None and not chosen:
            distinct_id = key or None
        if distinct_id is None:
            return None
        return {"$distinct_id": distinct_id, "$set": pick(record)}

    return step


def _group_properties(task: dict[str, Any]) -> Step:
    chosen = task.get("group_id_field")
    pick = _properties(task.get("properties"))

    def step(record: dict[str, Any], key: str) -> dict[str, Any] | None:
        group_id = _identifier(record, [chosen]) if chosen else (key or None)
        if group_id is None:
            return None
        return {"$group_key": task["group_key"], "$group_id": group_id, "$set": pick(record)}

    return step


# --- plans -------------------------------------------------------------------------------------


def _checked(tasks: list[Any]) -> list[dict[str, Any]]:
    """The tasks, or the first problem ``integrations.task_config`` finds as a run's error."""
    problems = task_problems(tasks)
    if problems:
        path, messages = next(iter(problems.items()))
        raise ConnectorError(f"{path}: {messages[0]}", retryable=False)
    return tasks


def sync_entities(tasks: list[Any]) -> list[tuple[str, str]]:
    """``(entity, destination entity)`` of each sync task, in order; empty when there are none."""
    chosen: dict[str, str] = {}
    for task in _checked(tasks):
        if task["task_type"] == "sync":
            chosen[task["entity"]] = str(task.get("destinationEntity") or task["entity"])
    return list(chosen.items())


def entity_plan(
    entity: str,
    *,
    mappings: dict[str, str | None] | None = None,
    tasks: list[Any] | None = None,
    cursor_field: str | None = None,
) -> EntityPlan:
    """The steps for ``entity``: field mappings (``extract`` -> ``generate``; no target drops the
    field), then each record task that applies to it, then its event task. ``cursor_field`` is
    the entity's (a default event time)."""
    tasks = _checked(tasks or [])
    destination = dict(sync_entities(tasks)).get(entity, entity)
    plan = EntityPlan(entity=entity, destination_entity=destination)
    if mappings:
        plan.steps.append(_rename(dict(mappings)))
    shape: Step | None = None
    for task in tasks:
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
        elif task["task_type"] == "track_events":
            shape = _track_events(task, entity=entity, cursor_field=cursor_field)
        elif task["task_type"] == "user_properties":
            shape = _user_properties(task)
        elif task["task_type"] == "group_properties":
            shape = _group_properties(task)
    if shape is not None:
        plan.steps.append(shape)
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
