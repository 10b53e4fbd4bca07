"""Export definitions: which entities to write, in which format, on which schedule, to where.

Running an export (writing the file, uploading it) is the job of a run row and a worker; this
module only holds the definition and the invariants every definition keeps, whoever writes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models

from accounts.models import Account, validate_timezone
from exports.choices import (
    DestinationType,
    ExportFormat,
    ExportFrequency,
    ExportState,
    FilterOperator,
)
from integrations.models import Integration

# The key each destination type cannot do without; every type may also carry the optional keys.
DESTINATION_REQUIRED_KEY: dict[str, str] = {
    DestinationType.S3: "bucket",
    DestinationType.AZURE_BLOB: "container",
    DestinationType.LOCAL: "path",
    DestinationType.SFTP: "connectionId",
}
DESTINATION_OPTIONAL_KEYS = ("connectionId", "path", "prefix", "fileNameTemplate")
# The connector a destination's connection must be of; LOCAL needs no connection.
DESTINATION_CONNECTOR: dict[str, str] = {
    DestinationType.S3: "s3",
    DestinationType.AZURE_BLOB: "azure_blob",
    DestinationType.SFTP: "sftp",
}

Problems = dict[str, list[str]]

_SCALAR_HINT = "a string, number, boolean or null"
_OPERATORS = ", ".join(FilterOperator.values)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _has_parent_segment(path: str) -> bool:
    return ".." in path.replace("\\", "/").split("/")


def destination_problems(destination: Any) -> Problems:
    """What is wrong with a destination object, keyed by its keys (empty when it is valid)."""
    if not isinstance(destination, dict):
        return {"type": ["The destination must be a JSON object."]}
    kind = destination.get("type")
    if kind is None:
        return {"type": ["This field is required."]}
    if not isinstance(kind, str) or kind not in DestinationType.values:
        kinds = ", ".join(DestinationType.values)
        return {"type": [f"{kind!r} is not a destination type; use one of: {kinds}."]}
    required = DESTINATION_REQUIRED_KEY[kind]
    allowed = {"type", required, *DESTINATION_OPTIONAL_KEYS}
    problems: Problems = {}
    for key in sorted(set(destination) - allowed):
        problems[key] = [f"{kind} destinations take only: {', '.join(sorted(allowed))}."]
    if required not in destination:
        problems[required] = [f"This field is required for {kind} destinations."]
    for key in (required, *DESTINATION_OPTIONAL_KEYS):
        if key not in destination:
            continue
        value = destination[key]
        if not isinstance(value, str) or not value.strip():
            problems[key] = ["Must be a non-empty string."]
        elif key in ("path", "prefix") and _has_parent_segment(value):
            problems[key] = ["May not contain '..' segments."]
    connection_id = destination.get("connectionId")
    if kind == DestinationType.LOCAL and "connectionId" in destination:
        problems["connectionId"] = ["LOCAL destinations write on this server; they take none."]
    elif (
        "connectionId" not in problems and isinstance(connection_id, str) and connection_id.strip()
    ):
        try:
            uuid.UUID(connection_id)
        except ValueError:
            problems["connectionId"] = [
                f"Must be the id (a UUID) of a {DESTINATION_CONNECTOR[kind]} connection."
            ]
    return problems


def _condition_problems(condition: Any) -> list[str]:
    if _is_scalar(condition):
        return []
    if not isinstance(condition, dict):
        return [f"Must be {_SCALAR_HINT}, or an object of operators ({_OPERATORS})."]
    if not condition:
        return [f"Give at least one operator ({_OPERATORS})."]
    messages = []
    for operator, operand in condition.items():
        if operator not in FilterOperator.values:
            messages.append(f"Unknown operator {operator!r}; use one of: {_OPERATORS}.")
        elif operator == FilterOperator.IN:
            if not isinstance(operand, list) or not operand or not all(map(_is_scalar, operand)):
                messages.append(f"The in operator takes a non-empty list of {_SCALAR_HINT} values.")
        elif not _is_scalar(operand):
            messages.append(f"The {operator} operator takes {_SCALAR_HINT}.")
    return messages


def filter_problems(filter_: Any) -> Problems:
    """What is wrong with a record filter, keyed by the filtered field (empty when valid).

    A filter maps record fields to a value (equality) or to an object of operators, for example
    ``{"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}}``; the keys are the user's own.
    """
    if not isinstance(filter_, dict):
        return {"_": ["The filter must be a JSON object."]}
    problems: Problems = {}
    for field, condition in filter_.items():
        messages = _condition_problems(condition)
        if messages:
            problems[field] = messages
    return problems


def entities_problems(entities: Any) -> list[str]:
    """What is wrong with a list of entity names (empty when valid)."""
    if not isinstance(entities, list):
        return ["Must be a list of entity names."]
    if not entities:
        return ["Give at least one entity."]
    if not all(isinstance(name, str) and name.strip() for name in entities):
        return ["Each entity must be a non-empty string."]
    return []


def schedule_problems(*, frequency: str, day: int | None) -> Problems:
    """What is wrong with a schedule's day for its frequency, keyed ``day`` (empty when valid).

    WEEKLY runs on a day of the week (0 Monday to 6 Sunday), MONTHLY on a day of the month (1 to
    31, clamped to the month's last day); the other frequencies take no day.
    """
    if frequency == ExportFrequency.WEEKLY:
        if day is None or not 0 <= day <= 6:
            return {"day": ["WEEKLY schedules need a day of the week: 0 (Monday) to 6 (Sunday)."]}
    elif frequency == ExportFrequency.MONTHLY:
        if day is None or not 1 <= day <= 31:
            return {"day": ["MONTHLY schedules need a day of the month: 1 to 31."]}
    elif day is not None:
        return {"day": ["Only WEEKLY and MONTHLY schedules take a day."]}
    return {}


def _flatten(problems: Problems) -> list[str]:
    return [f"{key}: {message}" for key, messages in problems.items() for message in messages]


def validate_destination(value: Any) -> None:
    if problems := destination_problems(value):
        raise ValidationError(_flatten(problems))


def validate_filter(value: Any) -> None:
    if problems := filter_problems(value):
        raise ValidationError(_flatten(problems))


def validate_entities(value: Any) -> None:
    if problems := entities_problems(value):
        raise ValidationError(problems)


class Export(models.Model):
    """A scheduled (or manual-only) export of an account's records to files at a destination.

    The schedule is stored as columns; ``next_run_at`` is derived from it in the export's time
    zone and indexed so a scheduler tick can claim due rows. ``filter`` and ``destination`` keep
    the user's JSON as sent (camelCase keys included), once validated.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="exports")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="exports"
    )
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    entities = models.JSONField(
        validators=[validate_entities], help_text="Names of the entities to export."
    )
    filter = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_filter],
        help_text="Record filter: field -> value, or field -> {operator: value}.",
    )

    frequency = models.CharField(
        max_length=10,
        choices=ExportFrequency.choices,
        blank=True,
        help_text="Blank for an export that only runs when triggered.",
    )
    day = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(31)],
        help_text="WEEKLY: 0 (Monday) to 6 (Sunday). MONTHLY: 1 to 31, clamped to the month's end.",
    )
    time = models.TimeField(
        default=dt.time(0, 0), help_text="Local time of day; HOURLY uses only its minute."
    )
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)

    destination = models.JSONField(validators=[validate_destination])
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Format options as sent (delimiter, compression, maxFileSizeMb, ...); "
        "checked by exports.formats.format_options.",
    )
    fields = models.JSONField(
        null=True,
        blank=True,
        help_text="The columns to write, in order (null: every field of the entity).",
    )
    state = models.CharField(
        max_length=10, choices=ExportState.choices, default=ExportState.ACTIVE, db_index=True
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if problems := schedule_problems(frequency=self.frequency, day=self.day):
            raise ValidationError(problems)


class ExportFile(models.Model):
    """A file an export run delivered: where it is, what it holds and its checksum.

    Written in the run's ending transaction, once every file of the run is visible at its
    destination: a run that did not complete has none. ``number`` (1, 2, ...) orders a run's
    files and names one in the API (``.../runs/{runId}/files/{n}``).
    """

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(
        "syncengine.SyncJob", on_delete=models.CASCADE, related_name="export_files"
    )
    number = models.PositiveIntegerField()
    entity = models.CharField(max_length=200)
    part = models.PositiveIntegerField(default=1)
    destination_type = models.CharField(max_length=10, choices=DestinationType.choices)
    uri = models.CharField(max_length=2048, help_text="s3://bucket/key, local:path, ...")
    path = models.CharField(max_length=1024, help_text="Relative to the destination's root.")
    bytes = models.BigIntegerField()
    rows = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="exportfile_run_number")
        ]

    def __str__(self) -> str:
        return self.uri
