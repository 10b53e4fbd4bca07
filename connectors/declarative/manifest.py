"""Reading and checking a connector manifest: its JSON Schema (``manifest.schema.json``, shipped
with the project), then what a schema cannot say (unique stream names, templates that name
values the manifest declares, paging parameters that are actually sent).

What the engine can express beyond plain GET paging, each described in the schema: a POST body
with templates (search APIs that page in the body, HubSpot), headers that carry the cursor
(``If-Modified-Since``, Xero), a cursor written in the API's own date format (``cursor.format``:
a SOQL literal, epoch milliseconds), date windows, and queries restarted from the last cursor
where an API pages only so far into one query (``pagination.restartAfter``).

Sync APIs that hand back their own position (Plaid's ``/transactions/sync``) are expressed with
``cursor.responsePath`` (the opaque cursor of each answer, sent back as ``{{ cursor }}`` and
saved as the stream's cursor once it is read through), ``pagination.type: responseCursor``
with ``hasMorePath`` (a page whose flag is not true is the last; ``hasMorePath`` stops any
paging type), ``recordSelector`` as a list (several lists of one answer, such as added and
modified, read as upserts), ``deletedRecordSelector`` (records the API deleted, read as records
marked ``_deleted: true``, since the sync engine deletes only what a FULL overwrite no longer
sees), ``errors.codePath`` / ``errors.messagePath`` (the API's error code and message in an
error answer) and ``pagination.restartOn`` (error codes that start the read over from the
position it started at).

A manifest may also describe a destination (``destination``, instead of or besides ``streams``):
how the records a sync hands over are written. A batch of records is sent in requests of at most
``batchSize`` records (``mode: batch``, the body a template such as
``{"entity": "{{ entity }}", "records": "{{ records }}"}``) or one request per record
(``mode: record``, a path such as ``/items/{{ record.id }}`` with PUT or PATCH). ``upsertKey``
names the field that identifies a record (``{{ key }}``, ``{{ keys }}``; every record must have
it); ``successStatuses`` the statuses that mean a request was taken. Errors are classified by the
same ``errors`` section as a read's (429 waited out, then retryable; 5xx retryable; any other
error status fails the run) and name the batch or record that failed. The checks here: the
templates name only what a write request has (records in a batch request, a record in a record
request, a key only with an upsertKey), the body sends the records, and a batch size belongs to
batch mode.

Errors are keyed by the dotted path of the field they concern (``streams.0.pagination.type``),
the way the API reports invalid input, so a manifest author sees every problem at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from connectors.declarative import templates

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


class ManifestError(Exception):
    """A manifest that cannot be used; ``errors`` maps each field's dotted path (``_`` for the
    manifest as a whole) to what is wrong with it."""

    def __init__(self, errors: dict[str, list[str]], *, source: str = "The manifest") -> None:
        self.errors = errors
        self.message = f"{source} is invalid: " + "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in sorted(errors.items())
        )
        super().__init__(self.message)


@cache
def manifest_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def manifest_load(text: str, *, source: str = "The manifest") -> dict[str, Any]:
    """Parse YAML or JSON text (JSON is YAML) and check it; raises ``ManifestError``."""
    try:
        manifest = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ManifestError({"_": [f"Not YAML or JSON{where}."]}, source=source) from None
    manifest_check(manifest, source=source)
    return dict(manifest)


def manifest_file_load(path: Path) -> dict[str, Any]:
    return manifest_load(path.read_text(encoding="utf-8"), source=f"Manifest {path.name}")


def manifest_check(manifest: Any, *, source: str = "The manifest") -> None:
    errors = manifest_errors(manifest)
    if errors:
        raise ManifestError(errors, source=source)


def manifest_errors(manifest: Any) -> dict[str, list[str]]:
    """Every problem of ``manifest`` by field; empty when it can be used."""
    errors = _schema_errors(manifest)
    if errors:
        return errors
    return _meaning_errors(manifest)


def _schema_errors(manifest: Any) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if isinstance(manifest, dict) and "streams" not in manifest and "destination" not in manifest:
        # A manifest reads streams, writes to a destination, or both.
        errors["streams"] = ["This field is required."]
    validator = jsonschema.Draft202012Validator(manifest_schema())
    for error in validator.iter_errors(manifest):
        for leaf in _leaves(error):
            path = [str(part) for part in leaf.absolute_path]
            message = leaf.message
            if leaf.validator == "oneOf" and not leaf.context:
                # Valid under several alternatives: those that differ by what they require.
                names = [", ".join(each.get("required", [])) for each in leaf.validator_value]
                message = "Give only one of: " + "; ".join(name for name in names if name) + "."
            elif leaf.validator == "required":
                # "'path' is a required property": key it by the missing field
                missing = message.split("'")[1] if "'" in message else ""
                path, message = [*path, missing] if missing else path, "This field is required."
            elif leaf.validator == "additionalProperties":
                extra = sorted(set(leaf.instance) - set(leaf.schema.get("properties", {})))
                for name in extra:
                    key = ".".join([*path, name])
                    errors.setdefault(key, []).append("Unknown field.")
                continue
            key = ".".join(path) or "_"
            if message not in errors.get(key, []):
                errors.setdefault(key, []).append(message)
    return dict(sorted(errors.items()))


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors that say what is wrong: ``oneOf`` answers with its best alternative's errors
    rather than "is not valid under any of the given schemas"."""
    if error.validator == "oneOf" and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        return [best] if best is not None else [error]
    return [error]


def _meaning_errors(manifest: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    config_keys = set((manifest.get("config") or {}).get("properties") or {})
    credential_keys = (
        set(manifest["credentials"]["properties"]) if "credentials" in manifest else set()
    )

    def check_names(field: str, value: Any, *, allowed: set[str]) -> None:
        for name in templates.names(value):
            root, _, rest = name.partition(".")
            if root not in allowed:
                add(field, f"{{{{ {name} }}}} cannot be used here.")
            elif root == "config" and rest.split(".")[0] not in config_keys:
                add(field, f"{{{{ {name} }}}}: config declares no {rest.split('.')[0]!r}.")
            elif root == "credentials" and rest.split(".")[0] not in credential_keys:
                add(field, f"{{{{ {name} }}}}: credentials declare no {rest.split('.')[0]!r}.")
            elif templates.ROOTS[root] is not None and rest not in (templates.ROOTS[root] or {""}):
                add(field, f"{{{{ {name} }}}} is not a value the engine provides.")

    connection_values = {"config", "credentials"}
    for field in ("baseUrl", "headers"):
        check_names(field, manifest.get(field), allowed=connection_values)
    authentication = manifest.get("authentication") or {"type": "none"}
    for key, value in authentication.items():
        check_names(f"authentication.{key}", value, allowed=connection_values)
    refresh_key = authentication.get("refreshTokenCredential")
    if refresh_key is not None and refresh_key not in credential_keys:
        add("authentication.refreshTokenCredential", f"credentials declare no {refresh_key!r}.")
    for key, value in (manifest.get("check") or {}).items():
        check_names(f"check.{key}", value, allowed=connection_values)
    check_names(
        "rateLimit.key", (manifest.get("rateLimit") or {}).get("key"), allowed=connection_values
    )

    if "destination" in manifest:
        _destination_errors(manifest["destination"], add, check_names, connection_values)

    seen: dict[str, int] = {}
    for number, stream in enumerate(manifest.get("streams") or []):
        prefix = f"streams.{number}"
        name = stream["name"]
        if name in seen:
            add(f"{prefix}.name", f"Stream {seen[name]} is named {name!r} too.")
        seen.setdefault(name, number)
        request_values = {"config", "credentials", "cursor", "page", "stream"}
        if "window" in stream:
            request_values.add("window")
            check_names(
                f"{prefix}.window.start", stream["window"]["start"], allowed=connection_values
            )
        for key in ("path", "headers", "params", "body"):
            check_names(f"{prefix}.{key}", stream.get(key), allowed=request_values)
        sent = set(
            templates.names([stream.get(key) for key in ("path", "params", "body", "headers")])
        )
        cursor = stream.get("cursor")
        pagination = stream.get("pagination") or {"type": "none"}
        if cursor is not None:
            check_names(f"{prefix}.cursor.start", cursor.get("start"), allowed=connection_values)
        elif "cursor" in sent:
            add(f"{prefix}.cursor", "{{ cursor }} is used, so the stream needs a cursor.")
        if cursor is not None and "format" in cursor and cursor.get("type") != "datetime":
            add(f"{prefix}.cursor.format", "Only a datetime cursor has a format.")
        from_answer = cursor is not None and "responsePath" in cursor
        if from_answer:
            for key in ("type", "format", "ordered", "inclusive"):
                if key in cursor:
                    add(
                        f"{prefix}.cursor.{key}",
                        "A cursor taken from the answer is only sent back: it has no type, "
                        "format or order.",
                    )
            if "cursor" not in sent:
                add(
                    f"{prefix}.cursor.responsePath",
                    "Send the API's cursor back as {{ cursor }} in the path, params, body or "
                    "headers.",
                )
            if "window" in stream:
                add(f"{prefix}.window", "Date windows need a cursor field, not the API's cursor.")
        if pagination["type"] == "responseCursor" and not from_answer:
            add(
                f"{prefix}.pagination.type",
                "responseCursor paging needs the stream's cursor taken from the answer "
                "(cursor.responsePath).",
            )
        if "restartOn" in pagination and "codePath" not in (manifest.get("errors") or {}):
            add(
                f"{prefix}.pagination.restartOn",
                "Error codes are read at errors.codePath, which the manifest does not give.",
            )
        if "restartAfter" in pagination and (
            cursor is None or "field" not in cursor or "cursor" not in sent
        ):
            add(
                f"{prefix}.pagination.restartAfter",
                "Restarting a query needs a cursor, sent as {{ cursor }} in the path, params "
                "or body.",
            )
        kind = pagination["type"]
        needs = {"page": ["page.size", "page.number"], "offset": ["page.size", "page.offset"]}
        needs["cursor"] = ["page.cursor"]
        for needed in needs.get(kind, []):
            if needed not in sent:
                add(
                    f"{prefix}.pagination",
                    f"{kind} paging needs {{{{ {needed} }}}} in the stream's path, params or body.",
                )
        if "window" in stream and not {"window.start", "window.end"} & sent:
            add(
                f"{prefix}.window", "Send {{ window.start }} or {{ window.end }} in params or body."
            )
        fields = set((stream.get("schema") or {}).get("properties") or {})
        fields |= set(stream.get("addFields") or {})
        if fields:
            keys = (
                [stream["primaryKey"]]
                if isinstance(stream["primaryKey"], str)
                else stream["primaryKey"]
            )
            for key in keys:
                if key not in fields:
                    add(f"{prefix}.primaryKey", f"{key!r} is not a field of the stream's schema.")
            if cursor is not None and "field" in cursor and cursor["field"] not in fields:
                add(
                    f"{prefix}.cursor.field",
                    f"{cursor['field']!r} is not a field of the stream's schema.",
                )
    return dict(sorted(errors.items()))


def _destination_errors(
    destination: dict[str, Any],
    add: Callable[[str, str], None],
    check_names: Callable[..., None],
    connection_values: set[str],
) -> None:
    """What the schema cannot say about a ``destination``: which templates its requests may use,
    that the body sends the records, and that a batch size belongs to batch mode."""
    prefix = "destination"
    per_record = destination.get("mode") == "record"
    values = {*connection_values, "entity", "upsertKey", "batch"}
    values |= {"record", "key"} if per_record else {"records", "keys"}
    for key in ("path", "body", "params"):
        check_names(f"{prefix}.{key}", destination.get(key), allowed=values)
    headers = destination.get("headers") or {}
    check_names(f"{prefix}.headers", list(headers.values()), allowed=values)
    check_names(f"{prefix}.headers", list(headers), allowed=connection_values)
    for key in ("batchSize", "upsertKey"):
        if isinstance(destination.get(key), str):
            check_names(f"{prefix}.{key}", destination[key], allowed=connection_values)
    if per_record and "batchSize" in destination:
        add(f"{prefix}.batchSize", "A request per record (mode record) has no batch size.")
    sent = {
        name.split(".")[0]
        for name in templates.names(
            [destination.get(key) for key in ("path", "body", "params", "headers")]
        )
    }
    if "upsertKey" not in destination and sent & {"key", "keys", "upsertKey"}:
        add(f"{prefix}.upsertKey", "{{ key }}, {{ keys }} and {{ upsertKey }} need an upsertKey.")
    if "body" in destination:
        needed = "record" if per_record else "records"
        body_names = {name.split(".")[0] for name in templates.names(destination["body"])}
        if needed not in body_names:
            add(f"{prefix}.body", f"The body must send the records: use {{{{ {needed} }}}}.")
