"""The entities an account can export, their columns, and their rows as a bounded stream.

Two kinds of entity:

- ``vehicles``: the inventory, one row per vehicle with the API's vehicle fields: ``id``,
  ``integrationId``, ``dealershipId``, ``key``, ``status``, every canonical field
  (``syncengine.feeds.vehicles.VEHICLE_FIELDS``), ``extra`` (the unmapped source columns, as JSON),
  ``firstSeenAt``, ``lastSeenAt``, ``soldAt``, ``removedAt``, ``createdAt``, ``updatedAt``.
- every entity of the account's record store (``SyncStream.entity``: ``contracts``, ``orders``),
  optionally limited to one integration or connection. A record's columns are its store
  columns, ``_key``, ``_integrationId``, ``_connectionId``, ``_createdAt``, ``_updatedAt``
  (the leading ``_`` keeps them apart from the record's own fields), then the record's fields:
  the ones the export names in ``fields`` (dotted paths such as ``data.plan``), or else every
  top-level key found in the entity's records, in alphabetical order. Discovering them reads
  the entity's records once, in the database; it also finds each field's type: a field
  holding only whole numbers is an integer column, only numbers a float column, only booleans
  a boolean, only strings a string, objects or lists JSON; a field of mixed scalar types is
  text. Text in records (dates included) stays text.

Rows are read in chunks through a server-side cursor (``QuerySet.iterator``), or on
PostgreSQL through ``COPY (SELECT ...) TO STDOUT``: for CSV as CSV in the export's dialect, with
each value in the exported text form; for Parquet in PostgreSQL's text format, which the Parquet
writer types in bulk. Either way memory does not grow with the row count. Rows come in storage
order.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Func, QuerySet, TextField
from django.db.models.functions import Cast

from accounts.models import Account
from exports.formats import (
    COPY_TEXT_DIALECT,
    CSV,
    PARQUET,
    Column,
    ColumnType,
    CsvDialect,
    ExportDataError,
    FormatOptions,
    RowStream,
)
from exports.formats.textformats import json_text
from exports.querying import (
    FilterField,
    FilterSchema,
    compile_filter,
    filter_problems,
    pg_json,
)
from syncengine.feeds.vehicles import VEHICLE_FIELDS, Kind
from syncengine.models import Record, SyncStream, Vehicle

Problems = dict[str, list[str]]

VEHICLES = "vehicles"
CHUNK_ROWS = 2_000
# A record store entity whose records hold more distinct top-level keys than this must name
# the fields it exports: a file with thousands of mostly empty columns helps nobody.
MAX_DISCOVERED_FIELDS = 500

_KIND_TYPES = {
    Kind.TEXT: ColumnType.STRING,
    Kind.KEY: ColumnType.STRING,
    Kind.CONDITION: ColumnType.STRING,
    Kind.CURRENCY: ColumnType.STRING,
    Kind.INT: ColumnType.INTEGER,
    Kind.MONEY: ColumnType.DECIMAL,
    Kind.DATE: ColumnType.DATE,
    Kind.BOOL: ColumnType.BOOLEAN,
    Kind.LIST: ColumnType.STRING_LIST,
}


@dataclass(frozen=True)
class SourceField:
    """A column of an entity and where its values come from: a model field (``lookup``) or a
    path into the record's JSON (``path``)."""

    column: Column
    lookup: str | None = None
    path: tuple[str, ...] = ()
    is_uuid: bool = False


def _vehicle_fields() -> list[SourceField]:
    def field(name: str, lookup: str, kind: ColumnType, *, is_uuid: bool = False) -> SourceField:
        return SourceField(Column(name, kind), lookup=lookup, is_uuid=is_uuid)

    fields = [
        field("id", "id", ColumnType.STRING, is_uuid=True),
        field("integrationId", "integration_id", ColumnType.STRING, is_uuid=True),
        field("dealershipId", "dealership_id", ColumnType.STRING, is_uuid=True),
        field("key", "key", ColumnType.STRING),
        field("status", "status", ColumnType.STRING),
    ]
    fields += [
        field(name, canonical.column, _KIND_TYPES[canonical.kind])
        for name, canonical in VEHICLE_FIELDS.items()
    ]
    fields += [
        field("extra", "extra", ColumnType.JSON),
        field("firstSeenAt", "first_seen_at", ColumnType.TIMESTAMP),
        field("lastSeenAt", "last_seen_at", ColumnType.TIMESTAMP),
        field("soldAt", "sold_at", ColumnType.TIMESTAMP),
        field("removedAt", "removed_at", ColumnType.TIMESTAMP),
        field("createdAt", "created_at", ColumnType.TIMESTAMP),
        field("updatedAt", "updated_at", ColumnType.TIMESTAMP),
    ]
    return fields


VEHICLE_SOURCE_FIELDS: dict[str, SourceField] = {f.column.name: f for f in _vehicle_fields()}
RECORD_META_FIELDS: dict[str, SourceField] = {
    f.column.name: f
    for f in [
        SourceField(Column("_key"), lookup="key"),
        SourceField(Column("_integrationId"), lookup="stream__integration_id", is_uuid=True),
        SourceField(Column("_connectionId"), lookup="stream__connection_id", is_uuid=True),
        SourceField(Column("_createdAt", ColumnType.TIMESTAMP), lookup="created_at"),
        SourceField(Column("_updatedAt", ColumnType.TIMESTAMP), lookup="updated_at"),
    ]
}

VEHICLE_FILTER_SCHEMA = FilterSchema(
    entity=VEHICLES,
    fields={
        name: FilterField(lookup=f.lookup or name, type=f.column.type, is_uuid=f.is_uuid)
        for name, f in VEHICLE_SOURCE_FIELDS.items()
    },
    json_prefixes={"extra": "extra"},
)


def record_filter_schema(entity: str) -> FilterSchema:
    return FilterSchema(
        entity=entity,
        fields={
            name: FilterField(lookup=f.lookup or name, type=f.column.type, is_uuid=f.is_uuid)
            for name, f in RECORD_META_FIELDS.items()
        },
        json_column="data",
    )


def filter_schema(entity: str) -> FilterSchema:
    """What a filter of ``entity`` may name."""
    return VEHICLE_FILTER_SCHEMA if entity == VEHICLES else record_filter_schema(entity)


# --- which entities exist --------------------------------------------------------------------


def _streams(
    *,
    account_id: Any,
    entity: str | None = None,
    integration_id: Any = None,
    connection_id: Any = None,
) -> QuerySet[SyncStream]:
    streams = SyncStream.objects.filter(account_id=account_id)
    if entity is not None:
        streams = streams.filter(entity=entity)
    if integration_id is not None:
        streams = streams.filter(integration_id=integration_id)
    if connection_id is not None:
        streams = streams.filter(connection_id=connection_id)
    return streams


def known_entities(
    *, account: Account, integration_id: Any = None, connection_id: Any = None
) -> list[str]:
    """The entities ``account`` can export: ``vehicles``, then its record store's entities
    (those of one integration or connection when one is given), sorted."""
    names = (
        _streams(account_id=account.pk, integration_id=integration_id, connection_id=connection_id)
        .order_by("entity")
        .values_list("entity", flat=True)
        .distinct()
    )
    return [VEHICLES, *(name for name in names if name != VEHICLES)]


def entities_problems(
    *,
    account: Account,
    entities: Sequence[str],
    integration_id: Any = None,
    connection_id: Any = None,
) -> list[str]:
    """What is wrong with an export's entities for ``account`` (empty when each exists),
    listing the entities it has."""
    known = known_entities(
        account=account, integration_id=integration_id, connection_id=connection_id
    )
    unknown = [name for name in entities if name not in known]
    if not unknown:
        return []
    names = ", ".join(repr(name) for name in unknown)
    return [f"No entity {names} in this account; it has: {', '.join(known)}."]


def fields_problems(entity: str, fields: Any) -> list[str]:
    """What is wrong with an export's ``fields`` (the columns to write) for ``entity``."""
    if fields is None:
        return []
    if not isinstance(fields, list) or not fields:
        return ["Must be a non-empty list of field names."]
    problems = []
    for name in fields:
        if not isinstance(name, str) or not name.strip():
            problems.append("Each field must be a non-empty string.")
        elif entity == VEHICLES and name not in VEHICLE_SOURCE_FIELDS:
            problems.append(
                f"{name!r} is not a field of vehicles; use: {', '.join(VEHICLE_SOURCE_FIELDS)}."
            )
        elif entity != VEHICLES and name.startswith("_") and name not in RECORD_META_FIELDS:
            problems.append(
                f"{name!r} is not a field of the record store; its own fields are "
                f"{', '.join(RECORD_META_FIELDS)} (other names are paths into the records)."
            )
        elif any(not part or '"' in part for part in name.split(".")):
            problems.append(f'{name!r}: each part of a dotted path must be non-empty, without ".')
    if len(set(fields)) != len(fields):
        problems.append("A field is named twice.")
    return problems


def export_problems(
    *,
    account: Account,
    entities: Sequence[str],
    filter: Mapping[str, Any] | None = None,
    fields: Any = None,
    integration_id: Any = None,
    connection_id: Any = None,
) -> Problems:
    """Everything the data side checks when an export (or a file import that reads an entity)
    is created or changed, keyed as the API reports it: ``entities``, ``filter.<field>``
    (for each entity the filter must fit), ``fields``. Empty when valid."""
    problems: Problems = {}
    if messages := entities_problems(
        account=account,
        entities=entities,
        integration_id=integration_id,
        connection_id=connection_id,
    ):
        problems["entities"] = messages
    for entity in dict.fromkeys(entities):
        for name, messages in filter_problems(filter_schema(entity), filter or {}).items():
            key = f"filter.{name}" if name != "_" else "filter"
            for message in messages:
                if message not in problems.setdefault(key, []):
                    problems[key].append(message)
        for message in fields_problems(entity, fields):
            if message not in problems.setdefault("fields", []):
                problems["fields"].append(message)
    return {key: messages for key, messages in problems.items() if messages}


# --- record fields and their types -----------------------------------------------------------

_PG_DISCOVER = """
    SELECT field.key, json_typeof(field.value),
           bool_and(json_typeof(field.value) <> 'number' OR field.value::text ~ '^-?[0-9]+$')
    FROM {table} AS record,
         json_each(CASE WHEN json_typeof({document}) = 'object' THEN {document} END) AS field
    WHERE record.stream_id = ANY(%s)
    GROUP BY 1, 2
"""
# The kinds of value at several paths, in one scan of the records: each record is paired with
# each path (``{paths}``: ``(0, %s::text[]), (1, %s::text[]), ...``).
_PG_PATH_TYPES = """
    SELECT path.i, json_typeof({document} #> path.p),
           bool_and(json_typeof({document} #> path.p) <> 'number'
                    OR ({document} #>> path.p) ~ '^-?[0-9]+$')
    FROM {table} AS record, (VALUES {paths}) AS path(i, p)
    WHERE record.stream_id = ANY(%s)
    GROUP BY 1, 2
"""
_SQLITE_DISCOVER = """
    SELECT field.key, field.type, 1
    FROM {table} AS record, json_each(record.data) AS field
    WHERE json_type(record.data) = 'object' AND record.stream_id IN ({streams})
    GROUP BY 1, 2
"""
_SQLITE_PATH_TYPES = """
    SELECT path.i, json_type(record.data, path.p), 1
    FROM {table} AS record, ({paths}) AS path
    WHERE record.stream_id IN ({streams})
    GROUP BY 1, 2
"""
# Both databases' JSON type names, as one vocabulary.
_JSON_KINDS = {
    "string": "string",
    "text": "string",
    "boolean": "boolean",
    "true": "boolean",
    "false": "boolean",
    "integer": "integer",
    "real": "float",
    "array": "json",
    "object": "json",
}


def _kind(name: str, whole: Any) -> str | None:
    if name == "number":
        return "integer" if whole else "float"
    return _JSON_KINDS.get(name)  # null (and a missing value) says nothing of the type


def column_type(kinds: set[str]) -> ColumnType:
    """The column type of a record field that held values of these kinds."""
    if "json" in kinds:
        return ColumnType.JSON
    if kinds == {"integer"}:
        return ColumnType.INTEGER
    if kinds and kinds <= {"integer", "float"}:
        return ColumnType.FLOAT
    if kinds == {"boolean"}:
        return ColumnType.BOOLEAN
    return ColumnType.STRING


def _record_table() -> str:
    return connection.ops.quote_name(Record._meta.db_table)


def _discover_fields(stream_ids: list[int]) -> dict[str, set[str]]:
    """Every top-level key of the streams' records with the kinds of value it holds."""
    found: dict[str, set[str]] = {}
    if not stream_ids:
        return found
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = _PG_DISCOVER.format(table=_record_table(), document=pg_json("record.data"))
            cursor.execute(sql, [stream_ids])
        else:
            marks = ", ".join(["%s"] * len(stream_ids))
            sql = _SQLITE_DISCOVER.format(table=_record_table(), streams=marks)
            cursor.execute(sql, stream_ids)
        for key, name, whole in cursor.fetchall():
            kinds = found.setdefault(key, set())
            if (kind := _kind(name, whole)) is not None:
                kinds.add(kind)
    return found


def _path_kinds(stream_ids: list[int], paths: Sequence[Sequence[str]]) -> list[set[str]]:
    """The kinds of value each path into the streams' records holds, in one query."""
    kinds: list[set[str]] = [set() for _ in paths]
    if not stream_ids or not paths:
        return kinds
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s, %s::text[])"] * len(paths))
            sql = _PG_PATH_TYPES.format(
                table=_record_table(), document=pg_json("record.data"), paths=values
            )
            params: list[Any] = [value for i, path in enumerate(paths) for value in (i, list(path))]
            cursor.execute(sql, [*params, stream_ids])
        else:
            selects = " UNION ALL ".join(["SELECT %s AS i, %s AS p"] * len(paths))
            marks = ", ".join(["%s"] * len(stream_ids))
            sql = _SQLITE_PATH_TYPES.format(table=_record_table(), paths=selects, streams=marks)
            params = [
                value
                for i, path in enumerate(paths)
                for value in (i, "$" + "".join(f'."{part}"' for part in path))
            ]
            cursor.execute(sql, [*params, *stream_ids])
        for index, name, whole in cursor.fetchall():
            if name is not None and (kind := _kind(name, whole)) is not None:
                kinds[index].add(kind)
    return kinds


def _record_fields(stream_ids: list[int], fields: Sequence[str] | None) -> list[SourceField]:
    if fields is None:
        discovered = _discover_fields(stream_ids)
        if len(discovered) > MAX_DISCOVERED_FIELDS:
            raise ExportDataError(
                f"The records hold {len(discovered)} different fields; name the ones to export "
                f"in the export's fields (at most {MAX_DISCOVERED_FIELDS} are found by themselves)."
            )
        return [
            *RECORD_META_FIELDS.values(),
            *(
                SourceField(Column(key, column_type(kinds)), path=(key,))
                for key, kinds in sorted(discovered.items())
            ),
        ]
    paths = {name: tuple(name.split(".")) for name in fields if name not in RECORD_META_FIELDS}
    kinds = dict(zip(paths, _path_kinds(stream_ids, list(paths.values())), strict=True))
    return [
        RECORD_META_FIELDS[name]
        if name in RECORD_META_FIELDS
        else SourceField(Column(name, column_type(kinds[name])), path=paths[name])
        for name in fields
    ]


# --- the rows --------------------------------------------------------------------------------


def _dig(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _decoded(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # What orjson refuses and the store may hold: a lone surrogate escape ("\\ud800").
        return json.loads(text)


def _record_value(column: Column, value: Any) -> Any:
    """A record's value as its column's type (discovered a moment before the rows are read)."""
    if value is None:
        return None
    kind = column.type
    if kind == ColumnType.STRING:
        return value if isinstance(value, str) else json_text(value)
    if kind == ColumnType.JSON:
        return value
    ok = {
        ColumnType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        ColumnType.FLOAT: isinstance(value, int | float) and not isinstance(value, bool),
        ColumnType.BOOLEAN: isinstance(value, bool),
    }.get(kind, False)
    if not ok:
        raise ExportDataError(
            f"The field {column.name!r} holds {value!r:.60} where the export found only "
            f"{kind} values: its records changed while the export ran. Run it again."
        )
    return float(value) if kind == ColumnType.FLOAT else value


@dataclass
class EntitySource:
    """The rows of one entity of one account, filtered in the database, with their columns.

    Build it with ``entity_source``. ``stream(options)`` gives the rows for a format writer
    (encoded by PostgreSQL itself where the format allows); ``rows()`` gives typed tuples.
    """

    entity: str
    fields: list[SourceField]
    queryset: QuerySet[Any]

    @property
    def columns(self) -> list[Column]:
        return [field.column for field in self.fields]

    @property
    def is_vehicles(self) -> bool:
        return self.entity == VEHICLES

    def rows(self, *, chunk_size: int = CHUNK_ROWS) -> Iterator[tuple[Any, ...]]:
        """Typed rows in column order, read ``chunk_size`` at a time."""
        if self.is_vehicles:
            yield from self._vehicle_rows(chunk_size)
        else:
            yield from self._record_rows(chunk_size)

    def _vehicle_rows(self, chunk_size: int) -> Iterator[tuple[Any, ...]]:
        lookups = [field.lookup or field.column.name for field in self.fields]
        uuids = [index for index, field in enumerate(self.fields) if field.is_uuid]
        for row in self.queryset.values_list(*lookups).iterator(chunk_size=chunk_size):
            if uuids:
                values = list(row)
                for index in uuids:
                    if values[index] is not None:
                        values[index] = str(values[index])
                row = tuple(values)
            yield row

    def _record_rows(self, chunk_size: int) -> Iterator[tuple[Any, ...]]:
        meta = [field.lookup for field in self.fields if field.lookup is not None]
        # The store keeps records as JSON text; read the text and decode it here, once a row.
        rows = self.queryset.annotate(_document=Cast("data", TextField())).values_list(
            *meta, "_document"
        )
        plan = []
        position = 0
        for field in self.fields:
            if field.lookup is not None:
                plan.append((field, position))
                position += 1
            else:
                plan.append((field, -1))
        for row in rows.iterator(chunk_size=chunk_size):
            text = row[-1]
            data = _decoded(text) if text is not None else None
            values = []
            for field, index in plan:
                if index >= 0:
                    value = row[index]
                    values.append(str(value) if field.is_uuid and value is not None else value)
                else:
                    values.append(_record_value(field.column, _dig(data, field.path)))
            yield tuple(values)

    def stream(self, options: FormatOptions) -> RowStream:
        """The rows for a writer of ``options.format``: encoded by PostgreSQL's ``COPY``,
        as CSV when the dialect allows and for Parquet in its text format, typed tuples
        otherwise."""
        dialect = _copy_dialect(options, len(self.fields))
        if dialect is not None and self.is_vehicles and connection.vendor == "postgresql":
            return RowStream(self._copy_rows(dialect), encoded=dialect)
        return RowStream(self.rows())

    def _copy_rows(self, dialect: CsvDialect) -> Iterator[bytes]:
        aliases = {
            f"_export_{index}": _pg_text(field, dialect) for index, field in enumerate(self.fields)
        }
        query = self.queryset.annotate(**aliases).values_list(*aliases)
        try:
            sql, params = query.query.sql_with_params()
        except EmptyResultSet:  # a filter Django knows matches nothing
            return
        if dialect.postgres_text:
            copy_options = ["FORMAT text"]
        else:
            copy_options = ["FORMAT csv", f"DELIMITER '{dialect.delimiter}'"]
            if dialect.quote_all:
                copy_options.append("FORCE_QUOTE *")
        statement = f"COPY ({sql}) TO STDOUT WITH ({', '.join(copy_options)})"
        ending = dialect.line_ending.encode()
        with _reading_connection() as (reader, own), reader.cursor() as cursor:
            # The text forms rendered above (dates, times) are the ISO ones whatever the
            # server's DateStyle; on the caller's connection only until its transaction ends.
            cursor.execute(f"SET {'' if own else 'LOCAL '}DateStyle = 'ISO, YMD'")
            with reader.wrap_database_errors, cursor.cursor.copy(statement, params) as copy:
                if ending == b"\n":
                    yield from copy
                else:
                    # One COPY message is one row; swap its final line feed.
                    for row in copy:
                        yield bytes(row[:-1]) + ending


# COPY's CSV delimiter must be one byte; these are the ones passed through unchanged.
_COPY_DELIMITERS = frozenset(",;|\t: ")


def _copy_dialect(options: FormatOptions, width: int) -> CsvDialect | None:
    # One column needs the writers' own encoding: COPY writes a missing value (in its text
    # format an empty string) as a blank line, which CSV readers (pyarrow's too) skip.
    if width < 2:
        return None
    if options.format == PARQUET:
        return COPY_TEXT_DIALECT
    dialect = options.dialect
    if options.format != CSV or dialect.delimiter not in _COPY_DELIMITERS:
        return None
    return dialect


def _pg_text(field: SourceField, dialect: CsvDialect) -> Func:
    """The column's value as PostgreSQL renders it in the exported text form, which is the
    one the writers give typed values (``exports.formats``): ISO dates, ISO 8601 UTC times
    with a Z, true/false, exact decimals, JSON text for lists and objects. In the text COPY
    format (``CsvDialect.postgres_text``, for Parquet) values keep PostgreSQL's own forms,
    which cost it less: t/f, and times in UTC without an offset."""
    kind = field.column.type
    if dialect.postgres_text:
        template = "%(expressions)s"
        if kind == ColumnType.TIMESTAMP:
            template = "(%(expressions)s) AT TIME ZONE 'UTC'"
        return Func(F(field.lookup or ""), template=template, output_field=TextField())
    if field.is_uuid or kind in (
        ColumnType.INTEGER,
        ColumnType.DECIMAL,
        ColumnType.FLOAT,
        ColumnType.DATE,
        ColumnType.STRING_LIST,
        ColumnType.JSON,
    ):
        template = "(%(expressions)s)::text"
    elif kind == ColumnType.BOOLEAN:
        template = "CASE WHEN %(expressions)s THEN 'true' WHEN NOT %(expressions)s THEN 'false' END"
    elif kind == ColumnType.TIMESTAMP:
        template = "replace(((%(expressions)s) AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'"
    else:
        template = "%(expressions)s"
        if dialect.replace_tab:
            template = f"replace({template}, E'\\t', ' ')"
        if dialect.replace_newline:
            template = f"regexp_replace({template}, E'\\r\\n|\\r|\\n', ' ', 'g')"
    if not dialect.null_is_distinct:
        # CSV for people: a missing value and an empty string are one empty field, quoted when
        # every field is.
        template = f"COALESCE({template}, '')" if dialect.quote_all else f"NULLIF({template}, '')"
    return Func(F(field.lookup or ""), template=template, output_field=TextField())


@contextmanager
def _reading_connection() -> Iterator[tuple[Any, bool]]:
    """The connection a COPY stream reads on, and whether it is the stream's own. Inside the
    caller's transaction, the caller's (the export sees what the caller sees); otherwise one
    of its own, because a COPY holds its connection until the last row and the caller's must
    stay free for progress writes meanwhile."""
    if connection.in_atomic_block:
        yield connection, False
        return
    reader = connection.copy()
    try:
        yield reader, True
    finally:
        reader.close()


def entity_source(
    *,
    account: Account,
    entity: str,
    filter: Mapping[str, Any] | None = None,
    fields: Sequence[str] | None = None,
    integration_id: uuid.UUID | str | None = None,
    connection_id: uuid.UUID | str | None = None,
) -> EntitySource:
    """The rows ``entity`` of ``account`` exports, with ``filter`` compiled to the query.

    ``fields`` picks and orders the columns (vehicles: any of its fields; records: store
    columns and dotted paths). ``integration_id`` / ``connection_id`` limit a record-store
    entity to one integration's or connection's records (vehicles: ``integration_id`` to
    one integration's inventory). ``FilterError`` for a filter that does not fit the entity,
    ``ExportDataError`` for an entity the account does not have.
    """
    schema = filter_schema(entity)
    condition = compile_filter(schema, filter)
    if entity == VEHICLES:
        vehicles = Vehicle.objects.filter(account=account)
        if integration_id is not None:
            vehicles = vehicles.filter(integration_id=integration_id)
        chosen = (
            [VEHICLE_SOURCE_FIELDS[name] for name in fields]
            if fields
            else list(VEHICLE_SOURCE_FIELDS.values())
        )
        return EntitySource(entity, chosen, vehicles.filter(condition).order_by())
    stream_ids = list(
        _streams(
            account_id=account.pk,
            entity=entity,
            integration_id=integration_id,
            connection_id=connection_id,
        ).values_list("pk", flat=True)
    )
    if not stream_ids:
        known = known_entities(
            account=account, integration_id=integration_id, connection_id=connection_id
        )
        raise ExportDataError(f"No entity {entity!r} in this account; it has: {', '.join(known)}.")
    records = Record.objects.filter(stream_id__in=stream_ids).filter(condition).order_by()
    return EntitySource(entity, _record_fields(stream_ids, fields), records)
