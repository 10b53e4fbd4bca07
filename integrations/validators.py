"""Validation and normalisation of an integration's JSON parts: config, schedule, sync settings,
install/uninstall step definitions, and file-import options.

Each function takes what the client sent and returns the stored form, or raises a DRF
``ValidationError`` whose details name the offending key (``syncSettings.strategy``), so a bad
request is a 400 with field details rather than a 500 later in a worker.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError

from config.api.serializers import camel, snake
from integrations.choices import FileType, FrequencyUnit, SyncStrategy


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- sync settings ---------------------------------------------------------------------------

SYNC_SETTINGS_DEFAULTS: dict[str, Any] = {
    "strategy": SyncStrategy.MERGE.value,
    "sold_grace_syncs": 2,
    "sold_grace_hours": 0,
    "track_history": False,
    "min_rows_ratio": 0.5,
    "max_error_ratio": 0.1,
}


def _check_sync_setting(key: str, value: Any) -> str | None:
    if key == "strategy":
        if value not in SyncStrategy.values:
            return f"Must be one of: {', '.join(SyncStrategy.values)}."
    elif key == "sold_grace_syncs":
        if not _is_int(value) or not 0 <= value <= 1000:
            return "Must be an integer from 0 to 1000 (0 turns the threshold off)."
    elif key == "sold_grace_hours":
        if not _is_number(value) or not 0 <= value <= 24 * 366:
            return "Must be a number of hours from 0 to 8784 (0 turns the threshold off)."
    elif key == "track_history":
        if not isinstance(value, bool):
            return "Must be true or false."
    elif key in ("min_rows_ratio", "max_error_ratio") and (
        not _is_number(value) or not 0 <= value <= 1
    ):
        return "Must be a number from 0 to 1."
    return None


def normalize_sync_settings(
    data: Any, *, base: dict[str, Any] | None = None, field: str = "syncSettings"
) -> dict[str, Any]:
    """Merge ``data`` (snake_case or camelCase keys) over ``base`` (or the defaults).

    Stored keys are snake_case, as the feed documents spell them.
    """
    if not isinstance(data, dict):
        raise ValidationError({field: ["Must be a JSON object."]})
    result = {**SYNC_SETTINGS_DEFAULTS, **(base or {})}
    errors: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        canonical = snake(key)
        if canonical not in SYNC_SETTINGS_DEFAULTS:
            known = ", ".join(camel(name) for name in SYNC_SETTINGS_DEFAULTS)
            errors[f"{field}.{key}"] = [f"Unknown setting; known settings: {known}."]
            continue
        if canonical in seen and data[seen[canonical]] != value:
            errors[f"{field}.{key}"] = [f"Conflicts with {seen[canonical]!r}."]
            continue
        seen[canonical] = key
        problem = _check_sync_setting(canonical, value)
        if problem:
            errors[f"{field}.{key}"] = [problem]
        else:
            result[canonical] = value
    if errors:
        raise ValidationError(errors)
    return result


def present_sync_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """The API form: every setting, camelCase."""
    return {camel(key): value for key, value in {**SYNC_SETTINGS_DEFAULTS, **stored}.items()}


# --- config ----------------------------------------------------------------------------------


def normalize_config(data: Any) -> dict[str, Any]:
    """``{"global": {...}, "tasks": [{"task_type": ...}, ...]}``; other keys pass through."""
    if not isinstance(data, dict):
        raise ValidationError({"config": ["Must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    global_settings = data.get("global", {})
    if not isinstance(global_settings, dict):
        errors["config.global"] = ["Must be a JSON object."]
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list):
        errors["config.tasks"] = ["Must be a JSON array of task objects."]
    else:
        for index, task in enumerate(tasks):
            if not isinstance(task, dict):
                errors[f"config.tasks[{index}]"] = ["Must be a JSON object."]
            elif not isinstance(task.get("task_type"), str) or not task["task_type"].strip():
                errors[f"config.tasks[{index}].task_type"] = ["A non-empty task_type is required."]
    if errors:
        raise ValidationError(errors)
    return {**data, "global": global_settings, "tasks": tasks}


# --- schedule --------------------------------------------------------------------------------

SCHEDULE_KEYS = ("frequency_value", "frequency_unit", "rolling_window_days", "one_off", "run_now")


def normalize_schedule(data: Any, *, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate a schedule object (camelCase or snake_case keys) merged over ``base``.

    Returns the snake_case keys of ``SCHEDULE_KEYS``; ``run_now`` is a one-time request.
    """
    if not isinstance(data, dict):
        raise ValidationError({"schedule": ["Must be a JSON object."]})
    result: dict[str, Any] = {
        "frequency_value": None,
        "frequency_unit": "",
        "rolling_window_days": 0,
        "one_off": False,
        **(base or {}),
        "run_now": False,
    }
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        canonical = snake(key)
        path = f"schedule.{key}"
        if canonical not in SCHEDULE_KEYS:
            known = ", ".join(camel(name) for name in SCHEDULE_KEYS)
            errors[path] = [f"Unknown schedule key; known keys: {known}."]
        elif canonical == "frequency_value":
            if value is not None and (not _is_int(value) or not 1 <= value <= 10_000):
                errors[path] = ["Must be an integer from 1 to 10000, or null."]
            else:
                result[canonical] = value
        elif canonical == "frequency_unit":
            if value not in (None, "", *FrequencyUnit.values):
                errors[path] = [f"Must be one of: {', '.join(FrequencyUnit.values)}."]
            else:
                result[canonical] = value or ""
        elif canonical == "rolling_window_days":
            if not _is_int(value) or not 0 <= value <= 3650:
                errors[path] = ["Must be an integer from 0 to 3650."]
            else:
                result[canonical] = value
        elif not isinstance(value, bool):
            errors[path] = ["Must be true or false."]
        else:
            result[canonical] = value
    if not errors and bool(result["frequency_value"]) != bool(result["frequency_unit"]):
        errors["schedule"] = ["frequencyValue and frequencyUnit go together: set both or neither."]
    if errors:
        raise ValidationError(errors)
    return result


# --- install / uninstall steps ---------------------------------------------------------------

STEP_TYPES = ("form", "connection", "url", "action")
STEP_PROGRESS_KEYS = ("completed", "completedAt", "submitted", "connectionId")


def default_steps_progress(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step definitions with their progress reset (nothing completed, nothing submitted)."""
    return [
        {
            **{key: value for key, value in step.items() if key not in STEP_PROGRESS_KEYS},
            "completed": False,
            "completedAt": None,
        }
        for step in steps
    ]


def normalize_steps(data: Any, *, field: str) -> list[dict[str, Any]]:
    """Step definitions ``[{"name", "type", "description", ...}]``, progress reset."""
    if not isinstance(data, list):
        raise ValidationError({field: ["Must be a JSON array of step objects."]})
    errors: dict[str, list[str]] = {}
    steps = []
    names: set[str] = set()
    for index, step in enumerate(data):
        path = f"{field}[{index}]"
        if not isinstance(step, dict):
            errors[path] = ["Must be a JSON object."]
            continue
        name = step.get("name")
        if not isinstance(name, str) or not name.strip():
            errors[f"{path}.name"] = ["A non-empty name is required."]
            continue
        if name in names:
            errors[f"{path}.name"] = [f"Step names must be unique; {name!r} repeats."]
            continue
        names.add(name)
        step_type = step.get("type", "form")
        if step_type not in STEP_TYPES:
            errors[f"{path}.type"] = [f"Must be one of: {', '.join(STEP_TYPES)}."]
            continue
        if "form" in step and not isinstance(step["form"], dict):
            errors[f"{path}.form"] = ["Must be a JSON object."]
            continue
        steps.append({**step, "type": step_type})
    if errors:
        raise ValidationError(errors)
    return default_steps_progress(steps)


# --- file imports --------------------------------------------------------------------------

CSV_OPTION_TYPES: dict[str, type] = {
    "columnDelimiter": str,
    "rowDelimiter": str,
    "includeHeader": bool,
    "wrapWithQuotes": bool,
    "replaceTabWithSpace": bool,
    "replaceNewlineWithSpace": bool,
}
ROW_DELIMITERS = ("\n", "\r\n", "\r")


def normalize_import_file(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError({"file": ["Must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    file_type = data.get("type", FileType.CSV.value)
    if file_type not in FileType.values:
        errors["file.type"] = [f"Must be one of: {', '.join(FileType.values)}."]
    if "skipAggregation" in data and not isinstance(data["skipAggregation"], bool):
        errors["file.skipAggregation"] = ["Must be true or false."]
    if "lookups" in data and not isinstance(data["lookups"], list):
        errors["file.lookups"] = ["Must be a JSON array."]
    csv = data.get("csv", {})
    if not isinstance(csv, dict):
        errors["file.csv"] = ["Must be a JSON object."]
    else:
        for key, expected in CSV_OPTION_TYPES.items():
            if key in csv and not isinstance(csv[key], expected):
                kind = "true or false" if expected is bool else "a string"
                errors[f"file.csv.{key}"] = [f"Must be {kind}."]
        delimiter = csv.get("columnDelimiter")
        if isinstance(delimiter, str) and len(delimiter) != 1:
            errors["file.csv.columnDelimiter"] = ["Must be a single character."]
        row_delimiter = csv.get("rowDelimiter")
        if isinstance(row_delimiter, str) and row_delimiter not in ROW_DELIMITERS:
            errors["file.csv.rowDelimiter"] = ['Must be "\\n", "\\r\\n" or "\\r".']
    if errors:
        raise ValidationError(errors)
    return {**data, "type": file_type}


# Longest accepted ftp.directoryPath and ftp.fileName (a path, and a name on common file systems).
FTP_TEXT_MAX_LENGTH = {"directoryPath": 1024, "fileName": 255}
# Longest column or field name of a mapping entry.
MAPPING_NAME_MAX_LENGTH = 255


def normalize_import_ftp(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationError({"ftp": ["Must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    for key, max_length in FTP_TEXT_MAX_LENGTH.items():
        if key not in data:
            continue
        if not isinstance(data[key], str):
            errors[f"ftp.{key}"] = ["Must be a string."]
        elif len(data[key]) > max_length:
            errors[f"ftp.{key}"] = [f"At most {max_length} characters."]
    if errors:
        raise ValidationError(errors)
    return data


def normalize_import_mapping(data: Any) -> dict[str, Any]:
    """``{"fields": [{"extract": "source", "generate": "target"}, ...]}``."""
    if not isinstance(data, dict):
        raise ValidationError({"mapping": ["Must be a JSON object."]})
    fields = data.get("fields", [])
    if not isinstance(fields, list):
        raise ValidationError({"mapping.fields": ["Must be a JSON array."]})
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(fields):
        if not isinstance(item, dict):
            errors[f"mapping.fields[{index}]"] = ["Must be a JSON object."]
            continue
        for key in ("extract", "generate"):
            if not isinstance(item.get(key), str) or not item[key]:
                errors[f"mapping.fields[{index}].{key}"] = ["A non-empty string is required."]
            elif len(item[key]) > MAPPING_NAME_MAX_LENGTH:
                errors[f"mapping.fields[{index}].{key}"] = [
                    f"At most {MAPPING_NAME_MAX_LENGTH} characters."
                ]
    if errors:
        raise ValidationError(errors)
    return {**data, "fields": fields}
