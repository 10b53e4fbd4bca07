"""PostgreSQL as a source (tables and views of one schema) and as a destination (upserts).

Talks to the customer's server with psycopg 3 directly, never through Django's connection: the
database is theirs, not Railyard's. Identifiers are always quoted with ``psycopg.sql``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_loads
from psycopg.types.string import TextLoader

from connectors.choices import ConnectorCategory, SyncMode
from connectors.network import checked_addresses
from connectors.registry import (
    Connector,
    ConnectorError,
    CopyBatch,
    EntitySpec,
    FieldSpec,
    ReadBatch,
    TestResult,
    register,
)

CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "railyard"
# A path that can never be a file (/dev/null is not a directory), so libpq reads no ~/.pgpass and
# does not warn about the password file either.
NO_PASSFILE = "/dev/null/railyard-no-passfile"
# Column names taken as the cursor of an entity when the config names none (timestamp-typed only).
CURSOR_COLUMN_NAMES = ("updated_at", "modified_at", "updatedAt")
TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone", "date"}
# information_schema data types -> JSON Schema types, as discovery reports them.
_JSON_TYPES: dict[str, str | None] = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "real": "number",
    "double precision": "number",
    "interval": "number",  # seconds
    "boolean": "boolean",
    "json": None,  # any JSON value
    "jsonb": None,
    "ARRAY": "array",
}


def _json_type(data_type: str) -> str | None:
    """The JSON type a column's values take in records: text, dates, times, uuids and numeric
    (kept exact, as its text) are strings."""
    return _JSON_TYPES.get(data_type, "string")


# Connection failures that another attempt cannot fix: wrong database, role or password.
_PERMANENT_CONNECT_FAILURES = re.compile(
    r"does not exist|password authentication failed|no pg_hba\.conf entry|"
    r"permission denied|authentication failed|not permitted to log in",
    re.IGNORECASE,
)
_NOT_RETRYABLE = (
    pg_errors.InsufficientPrivilege,
    pg_errors.InvalidPassword,
    pg_errors.InvalidAuthorizationSpecification,
    pg_errors.InvalidCatalogName,
    pg_errors.UndefinedTable,
    pg_errors.UndefinedColumn,
    pg_errors.DataError,
    pg_errors.IntegrityError,
    pg_errors.SyntaxError,
)


def _readable(error: psycopg.Error) -> str:
    """psycopg's connect errors read 'connection failed: connection to server at ... failed:
    FATAL:  role "x" does not exist'; keep the part a person can act on."""
    message = str(error).strip()
    message = re.sub(r"^connection failed:\s*", "", message)
    message = re.sub(
        r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed:\s*', "", message
    )
    message = re.sub(r"^(FATAL|ERROR):\s*", "", message)
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return message[:1].upper() + message[1:] if message else type(error).__name__


def _connector_error(error: psycopg.Error) -> ConnectorError:
    if isinstance(error, _NOT_RETRYABLE):
        retryable = False
    elif isinstance(error, psycopg.OperationalError):
        # Connect failures carry no SQLSTATE; the server's message says whether it was refused
        # (retry later) or rejected (fix the config first).
        retryable = not _PERMANENT_CONNECT_FAILURES.search(str(error))
    else:
        # A dropped connection surfaces as an InterfaceError; anything else is a bug or bad data.
        retryable = isinstance(error, psycopg.InterfaceError)
    return ConnectorError(_readable(error), retryable=retryable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


def _json_loads(data: bytes | str) -> Any:
    # orjson parses json/jsonb values several times faster; it refuses only what the standard
    # library accepts beyond JSON (NaN, integers beyond 64 bits), which takes those.
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    return json.loads(data)


# How a value of a column type becomes JSON-safe, by type name. Types whose values psycopg already
# loads as JSON-safe Python values (numbers, text, booleans, parsed json) are left alone; so are
# numeric and uuid, loaded as their text (the same as str() of a Decimal or UUID, except that a
# tiny numeric keeps its digits: 0.00000001 rather than 1E-8). Other types go through _jsonable.
_JSON_SAFE_TYPES = {
    "int2", "int4", "int8", "oid", "float4", "float8", "bool", "text", "varchar", "bpchar",
    "name", "json", "jsonb", "numeric", "uuid",
}  # fmt: skip
_ISOFORMAT_TYPES: dict[str, Callable[[Any], Any]] = {
    "timestamptz": datetime.isoformat,
    "timestamp": datetime.isoformat,
    "date": date.isoformat,
    "time": time_of_day.isoformat,
    "timetz": time_of_day.isoformat,
}


def _converters(
    conn: psycopg.Connection[Any], description: list[psycopg.Column]
) -> list[tuple[int, Callable[[Any], Any]]]:
    """(column index, converter) of the columns whose values are not JSON-safe as loaded."""
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(description):
        info = conn.adapters.types.get(column.type_code)
        name = info.name if info is not None else ""
        if name in _JSON_SAFE_TYPES:
            continue
        converters.append((index, _ISOFORMAT_TYPES.get(name, _jsonable)))
    return converters


def _records(
    names: list[str],
    rows: list[tuple[Any, ...]],
    converters: list[tuple[int, Callable[[Any], Any]]],
) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts, converted column by column (a few list comprehensions a batch
    rather than a function call per value)."""
    if not converters:
        return [dict(zip(names, row, strict=True)) for row in rows]
    columns = list(zip(*rows, strict=True))
    for index, convert in converters:
        columns[index] = tuple(
            None if value is None else convert(value) for value in columns[index]
        )
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _range_bound(value: Any, *, end: bool) -> tuple[Any, bool]:
    """A date range bound as (value, inclusive). A bare date as the end means the whole day."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        value = date.fromisoformat(value)
    if end and isinstance(value, date) and not isinstance(value, datetime):
        return value + timedelta(days=1), False
    return value, True


@dataclass(frozen=True)
class _Table:
    name: str
    is_view: bool
    columns: list[tuple[str, str]]  # (name, data type) in column order
    primary_key: list[str]
    nullable: frozenset[str] = frozenset()


@register
class PostgresConnector(Connector):
    id = "postgres"
    name = "PostgreSQL"
    category = ConnectorCategory.DATABASES
    description = (
        "Tables and views of one PostgreSQL schema, read in full or incrementally by a cursor "
        "column; as a destination, records are upserted by primary key."
    )
    features = ["tables", "views", "incremental", "upsert"]
    entities = []  # discovered per connection
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL, SyncMode.SNAPSHOT]
    config_properties = {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 5432},
        "database": {"type": "string", "minLength": 1},
        "schema": {"type": "string", "minLength": 1, "default": "public"},
        "sslmode": {"type": "string", "enum": ["disable", "prefer", "require"]},
        "tables": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Only these tables and views are entities; all of the schema if unset.",
        },
        "cursorFields": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "Entity -> the column incremental reads resume from.",
        },
        "primaryKeys": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
            },
            "description": "Entity -> key columns; needed for views and tables without a PK.",
        },
    }
    config_required = ["host", "database"]
    credentials_schema = {
        "type": "object",
        "properties": {
            "user": {"type": "string", "minLength": 1},
            "password": {"type": "string"},
        },
        "required": ["user"],
        "additionalProperties": False,
    }
    is_source = True
    is_destination = True
    supports_delete = True
    filters_by_date = True

    # --- connecting ----------------------------------------------------------------------

    @property
    def schema(self) -> str:
        return str(self.config.get("schema") or "public")

    def _connect(self) -> psycopg.Connection[Any]:
        host = str(self.config["host"])
        port = int(self.config.get("port") or 5432)
        # libpq connects to the addresses the egress policy checked (hostaddr), keeping the name
        # for TLS. Everything it would otherwise take from the platform's own environment is set
        # explicitly: PGPASSWORD and ~/.pgpass (an empty password and no passfile), the
        # platform's Kerberos tickets (no GSSAPI) and its client certificates.
        addresses = checked_addresses(host, port)
        params: dict[str, Any] = {
            "host": ",".join([host] * len(addresses)),
            "hostaddr": ",".join(str(address) for address in addresses),
            "port": port,
            "dbname": self.config["database"],
            "user": self.credentials.get("user"),
            "password": self.credentials.get("password") or "",
            "passfile": NO_PASSFILE,
            "gssencmode": "disable",
            "require_auth": "password,md5,scram-sha-256,none",
            "sslcertmode": "disable",
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": APPLICATION_NAME,
        }
        if self.config.get("sslmode"):
            params["sslmode"] = self.config["sslmode"]
        return psycopg.connect(**params)

    # --- test ----------------------------------------------------------------------------

    def test(self) -> TestResult:
        started = time.monotonic()
        try:
            with self._connect() as conn:
                version_row = conn.execute("SHOW server_version").fetchone()
                version = str(version_row[0]).split(" ")[0] if version_row else None
                schema_row = conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.schema]
                ).fetchone()
                if schema_row is None:
                    return TestResult(
                        success=False,
                        latency_ms=_elapsed_ms(started),
                        version=version,
                        error=f'Schema "{self.schema}" does not exist in this database.',
                    )
                privileges = conn.execute(
                    """
                    SELECT coalesce(bool_or(has_table_privilege(c.oid, 'SELECT')), false),
                           coalesce(bool_or(has_table_privilege(c.oid, 'INSERT')), false)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                    """,
                    [self.schema],
                ).fetchone()
        except psycopg.Error as error:
            return TestResult(
                success=False, latency_ms=_elapsed_ms(started), error=_readable(error)
            )
        permissions = []
        if privileges and privileges[0]:
            permissions.append("read")
        if privileges and privileges[1]:
            permissions.append("write")
        return TestResult(
            success=True,
            latency_ms=_elapsed_ms(started),
            version=version,
            permissions=permissions,
        )

    # --- discover ------------------------------------------------------------------------

    def _tables(self, conn: psycopg.Connection[Any]) -> dict[str, _Table]:
        """Tables and views of the schema, limited to config ``tables`` when it is set."""
        rows = conn.execute(
            """
            SELECT t.table_name, t.table_type, c.column_name, c.data_type, c.is_nullable
            FROM information_schema.tables t
            JOIN information_schema.columns c
              ON c.table_schema = t.table_schema AND c.table_name = t.table_name
            WHERE t.table_schema = %s AND t.table_type IN ('BASE TABLE', 'VIEW')
            ORDER BY t.table_name, c.ordinal_position
            """,
            [self.schema],
        ).fetchall()
        keys = conn.execute(
            """
            SELECT tc.table_name, kcu.column_name
            FROM information_schema.table_constraints tc
            JOIN information_schema.key_column_usage kcu
              ON kcu.constraint_schema = tc.constraint_schema
             AND kcu.constraint_name = tc.constraint_name
             AND kcu.table_name = tc.table_name
            WHERE tc.table_schema = %s AND tc.constraint_type = 'PRIMARY KEY'
            ORDER BY tc.table_name, kcu.ordinal_position
            """,
            [self.schema],
        ).fetchall()
        wanted = set(self.config.get("tables") or [])
        columns: dict[str, list[tuple[str, str]]] = {}
        kinds: dict[str, bool] = {}
        nullable: dict[str, set[str]] = {}
        for table_name, table_type, column_name, data_type, is_nullable in rows:
            if wanted and table_name not in wanted:
                continue
            columns.setdefault(table_name, []).append((column_name, data_type))
            kinds[table_name] = table_type == "VIEW"
            if is_nullable == "YES":
                nullable.setdefault(table_name, set()).add(column_name)
        primary_keys: dict[str, list[str]] = {}
        for table_name, column_name in keys:
            primary_keys.setdefault(table_name, []).append(column_name)
        configured_keys: dict[str, list[str]] = self.config.get("primaryKeys") or {}
        return {
            name: _Table(
                name=name,
                is_view=kinds[name],
                columns=table_columns,
                primary_key=list(configured_keys.get(name) or primary_keys.get(name, [])),
                nullable=frozenset(nullable.get(name, ())),
            )
            for name, table_columns in columns.items()
        }

    def _cursor_field(self, table: _Table) -> str | None:
        configured: dict[str, str] = self.config.get("cursorFields") or {}
        if table.name in configured:
            return configured[table.name]
        types = dict(table.columns)
        for candidate in CURSOR_COLUMN_NAMES:
            if types.get(candidate) in TIMESTAMP_TYPES:
                return candidate
        return None

    def _spec(self, table: _Table) -> EntitySpec:
        return EntitySpec(
            name=table.name,
            primary_key=table.primary_key,
            cursor_field=self._cursor_field(table),
            fields=[column for column, _ in table.columns],
            field_specs=tuple(
                FieldSpec(column, _json_type(data_type), column in table.nullable)
                for column, data_type in table.columns
            ),
        )

    def _table(self, conn: psycopg.Connection[Any], entity: str) -> _Table:
        table = self._tables(conn).get(entity)
        if table is None:
            raise ConnectorError(
                f'Unknown entity "{entity}": no such table or view in schema "{self.schema}".',
                retryable=False,
            )
        return table

    def discover(self) -> list[EntitySpec]:
        try:
            with self._connect() as conn:
                tables = self._tables(conn)
        except psycopg.Error as error:
            raise _connector_error(error) from error
        return [self._spec(table) for table in tables.values()]

    # --- read ----------------------------------------------------------------------------

    def _window(
        self,
        spec: EntitySpec,
        *,
        cursor: Any,
        date_range: tuple[Any, Any] | None,
        alias: str | None = None,
    ) -> tuple[sql.Composable, list[Any], sql.Composable]:
        """`` WHERE ...`` (possibly empty) with its parameters and `` ORDER BY ...`` of a read of
        ``spec`` after ``cursor`` and within ``date_range``: cursor order, then key order."""
        cursor_field = spec.cursor_field
        if cursor_field is not None and cursor_field not in spec.fields:
            raise ConnectorError(
                f'Cursor column "{cursor_field}" is not a column of "{spec.name}".',
                retryable=False,
            )
        if cursor_field is None and (cursor is not None or date_range is not None):
            raise ConnectorError(
                f'"{spec.name}" has no cursor column: set config cursorFields.{spec.name} to '
                "read it incrementally or by date range.",
                retryable=False,
            )
        conditions: list[sql.Composable] = []
        params: list[Any] = []

        def column_of(name: str) -> sql.Identifier:
            return sql.Identifier(alias, name) if alias else sql.Identifier(name)

        if cursor_field is not None:
            column = column_of(cursor_field)
            if cursor is not None:
                conditions.append(sql.SQL("{} > %s").format(column))
                params.append(cursor)
            if date_range is not None:
                start, end = date_range
                if start is not None:
                    value, _ = _range_bound(start, end=False)
                    conditions.append(sql.SQL("{} >= %s").format(column))
                    params.append(value)
                if end is not None:
                    value, inclusive = _range_bound(end, end=True)
                    operator = "<=" if inclusive else "<"
                    conditions.append(sql.SQL("{} " + operator + " %s").format(column))
                    params.append(value)
        where: sql.Composable = sql.SQL("")
        if conditions:
            where = sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conditions))
        names = dict.fromkeys(name for name in [cursor_field, *spec.primary_key] if name)
        order: sql.Composable = sql.SQL("")
        if names:
            order = sql.SQL(" ORDER BY {}").format(
                sql.SQL(", ").join(column_of(name) for name in names)
            )
        return where, params, order

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        try:
            yield from self._read(
                entity, cursor=cursor, date_range=date_range, batch_size=batch_size
            )
        except psycopg.Error as error:
            raise _connector_error(error) from error

    def _read(
        self,
        entity: str,
        *,
        cursor: Any,
        date_range: tuple[Any, Any] | None,
        batch_size: int,
    ) -> Iterator[ReadBatch]:
        with self._connect() as conn:
            conn.read_only = True
            table = self._table(conn, entity)
            spec = self._spec(table)
            where, params, order = self._window(spec, cursor=cursor, date_range=date_range)
            query = sql.SQL("SELECT * FROM {}.{}{}{}").format(
                sql.Identifier(self.schema), sql.Identifier(entity), where, order
            )
            cursor_field = spec.cursor_field
            # numeric and uuid as their text: no Decimal or UUID to build and turn back.
            conn.adapters.register_loader("numeric", TextLoader)
            conn.adapters.register_loader("uuid", TextLoader)
            set_json_loads(_json_loads, conn)
            highest = cursor
            with conn.cursor(name="railyard_read") as rows:
                rows.itersize = batch_size
                rows.execute(query, params)
                description = rows.description or []
                names = [column.name for column in description]
                converters = _converters(conn, description)
                while batch := rows.fetchmany(batch_size):
                    records = _records(names, batch, converters)
                    if cursor_field is not None:
                        # Rows come in cursor order, so the last one holds the batch's maximum.
                        last = records[-1][cursor_field]
                        if last is not None:
                            highest = last
                    yield ReadBatch(records=records, cursor=highest)

    def count(
        self, entity: str, *, cursor: Any = None, date_range: tuple[Any, Any] | None = None
    ) -> int | None:
        try:
            with self._connect() as conn:
                conn.read_only = True
                spec = self._spec(self._table(conn, entity))
                where, params, _ = self._window(spec, cursor=cursor, date_range=date_range)
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}{}").format(
                        sql.Identifier(self.schema), sql.Identifier(entity), where
                    ),
                    params,
                ).fetchone()
        except psycopg.Error as error:
            raise _connector_error(error) from error
        return int(row[0]) if row else None

    # --- bulk copy -----------------------------------------------------------------------

    def can_copy(self, entity: str) -> bool:
        """Whether the bulk path can take ``entity``: a ``_copyable`` table none of whose keys
        the store would refuse. The bulk load does not validate keys one by one; when a text key
        is empty or too long, the Python path runs instead and rejects those rows with samples."""
        try:
            with self._connect() as conn:
                conn.read_only = True
                table = self._table(conn, entity)
                return _copyable(table, self.config) and not self._has_unstorable_keys(conn, table)
        except psycopg.Error as error:
            raise _connector_error(error) from error

    def _has_unstorable_keys(self, conn: psycopg.Connection[Any], table: _Table) -> bool:
        """Whether a row's text primary key is empty or longer than the store's key limit: one
        query that stops at the first such row. Integer and uuid keys cannot be either."""
        key = table.primary_key[0]
        if dict(table.columns).get(key) not in _TEXT_KEY_TYPES:
            return False
        query = sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE {key} = '' OR length({key}) > %s)"
        ).format(table=sql.Identifier(self.schema, table.name), key=sql.Identifier(key))
        row = conn.execute(query, [STORE_KEY_MAX_LENGTH]).fetchone()
        return bool(row and row[0])

    def copy_rows(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_rows: int = 50_000,
        leading: tuple[Any, ...] = (),
        ordered: bool = True,
    ) -> Iterator[CopyBatch]:
        try:
            yield from self._copy_rows(
                entity,
                cursor=cursor,
                date_range=date_range,
                batch_rows=batch_rows,
                leading=leading,
                ordered=ordered,
            )
        except psycopg.Error as error:
            raise _connector_error(error) from error

    def _copy_rows(
        self,
        entity: str,
        *,
        cursor: Any,
        date_range: tuple[Any, Any] | None,
        batch_rows: int,
        leading: tuple[Any, ...],
        ordered: bool,
    ) -> Iterator[CopyBatch]:
        """The server writes each record's JSON (``row_to_json``, with the columns ``read()``
        turns to text turned to text in SQL, so both give the same JSON) and its hash; this
        process only cuts the stream into batches and reads the cursor of a batch's last lines."""
        with self._connect() as conn:
            conn.read_only = True
            table = self._table(conn, entity)
            if not _copyable(table, self.config):
                raise ConnectorError(f'"{entity}" cannot be copied in bulk.', retryable=False)
            spec = self._spec(table)
            where, params, order = self._window(
                spec, cursor=cursor, date_range=date_range, alias="t"
            )
            cursor_field = spec.cursor_field
            safe, highest = cursor, cursor
            if not ordered:
                # Storage order: rows stream from the first one instead of after a sort. No
                # batch has a cursor to resume after; the highest is taken before reading, so a
                # row changed during the read is read again next time, never missed.
                order = sql.SQL("")
                safe = None
                if cursor_field is not None:
                    maximum = conn.execute(
                        sql.SQL("SELECT max({}) FROM {}.{} AS t{}").format(
                            sql.Identifier("t", cursor_field),
                            sql.Identifier(self.schema),
                            sql.Identifier(entity),
                            where,
                        ),
                        params,
                    ).fetchone()
                    if maximum is not None and maximum[0] is not None:
                        highest = _jsonable(maximum[0])
                cursor_field = None
            # Each row's JSON is built once (OFFSET 0 keeps the planner from pulling the
            # subquery up and building it twice, for the text and for its hash) and before the
            # sort, from a LATERAL row of the columns as read() gives them; the ordered subquery
            # is scanned in order, nothing above it reorders.
            query = sql.SQL(
                "COPY (SELECT {}{}key, doc, hashtextextended(doc, 0) FROM "
                "(SELECT {}::text AS key, row_to_json(r)::text AS doc FROM {}.{} AS t, "
                "LATERAL (SELECT {}) AS r{}{} OFFSET 0) AS d) TO STDOUT"
            ).format(
                sql.SQL(", ").join(sql.Literal(value) for value in leading),
                sql.SQL(", ") if leading else sql.SQL(""),
                sql.Identifier("t", spec.primary_key[0]),
                sql.Identifier(self.schema),
                sql.Identifier(entity),
                sql.SQL(", ").join(_copy_column(name, kind) for name, kind in table.columns),
                where,
                order,
            )
            rows: list[Any] = []
            with conn.cursor().copy(query, params) as copy:
                for row in copy:
                    rows.append(row)
                    if len(rows) >= batch_rows:
                        safe, highest = _batch_cursors(rows, cursor_field, safe, highest)
                        yield CopyBatch(b"".join(rows), len(rows), safe, highest)
                        rows = []
            if rows:
                safe, highest = _batch_cursors(rows, cursor_field, safe, highest)
                yield CopyBatch(b"".join(rows), len(rows), safe, highest)

    # --- write ---------------------------------------------------------------------------

    def _writable(self, conn: psycopg.Connection[Any], entity: str) -> _Table:
        table = self._table(conn, entity)
        if table.is_view:
            raise ConnectorError(
                f'"{entity}" is a view; records can only be written to a table.',
                retryable=False,
            )
        if not table.primary_key:
            raise ConnectorError(
                f'"{entity}" has no primary key to match records on: add one or set config '
                f"primaryKeys.{entity}.",
                retryable=False,
            )
        return table

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        if not records:
            return 0
        try:
            with self._connect() as conn:
                table = self._writable(conn, entity)
                columns = {name for name, _ in table.columns}
                # Records with different keys get separate statements, so a key a record leaves
                # out keeps its stored value instead of being overwritten with NULL.
                groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
                for record in records:
                    groups.setdefault(tuple(record), []).append(record)
                with conn.transaction(), conn.cursor() as statement:
                    for keys, group in groups.items():
                        unknown = sorted(set(keys) - columns)
                        if unknown:
                            raise ConnectorError(
                                f'"{entity}" has no column(s) {", ".join(unknown)}.',
                                retryable=False,
                            )
                        missing = [key for key in table.primary_key if key not in keys]
                        if missing:
                            raise ConnectorError(
                                f'Records for "{entity}" lack primary key column(s) '
                                f"{', '.join(missing)}.",
                                retryable=False,
                            )
                        statement.executemany(
                            self._upsert(table, keys),
                            [[_adapted(record[key]) for key in keys] for record in group],
                        )
        except psycopg.Error as error:
            raise _connector_error(error) from error
        return len(records)

    def delete(self, entity: str, records: list[dict[str, Any]]) -> int:
        if not records:
            return 0
        try:
            with self._connect() as conn:
                table = self._writable(conn, entity)
                missing = sorted(
                    {key for record in records for key in table.primary_key if key not in record}
                )
                if missing:
                    raise ConnectorError(
                        f'Records to remove from "{entity}" lack primary key column(s) '
                        f"{', '.join(missing)}.",
                        retryable=False,
                    )
                query = sql.SQL("DELETE FROM {}.{} WHERE {}").format(
                    sql.Identifier(self.schema),
                    sql.Identifier(table.name),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(key)) for key in table.primary_key
                    ),
                )
                with conn.transaction(), conn.cursor() as statement:
                    statement.executemany(
                        query,
                        [
                            [_adapted(record[key]) for key in table.primary_key]
                            for record in records
                        ],
                    )
                    removed = statement.rowcount
        except psycopg.Error as error:
            raise _connector_error(error) from error
        return max(int(removed), 0)

    def _upsert(self, table: _Table, keys: tuple[str, ...]) -> sql.Composed:
        updates = [key for key in keys if key not in table.primary_key]
        conflict = sql.SQL(", ").join(sql.Identifier(key) for key in table.primary_key)
        action: sql.Composable
        if updates:
            action = sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(key)) for key in updates
                )
            )
        else:
            action = sql.SQL("DO NOTHING")
        return sql.SQL("INSERT INTO {}.{} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            sql.Identifier(self.schema),
            sql.Identifier(table.name),
            sql.SQL(", ").join(sql.Identifier(key) for key in keys),
            sql.SQL(", ").join(sql.Placeholder() for _ in keys),
            conflict,
            action,
        )


# Column types whose row_to_json value is what read() gives (after its own conversions).
_COPY_JSON_TYPES = {
    "integer", "bigint", "smallint", "text", "character varying", "character", "uuid",
    "boolean", "double precision", "real", "json", "jsonb", "date",
    "timestamp with time zone", "timestamp without time zone",
}  # fmt: skip
# Primary key types whose ::text is the key read() records get (str() of the value).
_COPY_KEY_TYPES = {"integer", "bigint", "smallint", "text", "character varying", "uuid"}
# Key types whose values may be empty or longer than the store takes (``can_copy`` checks them).
_TEXT_KEY_TYPES = {"text", "character varying", "character"}
# The longest key the record store takes: syncengine's Record.key max_length, which
# syncengine.sync.transform.record_key enforces as KEY_MAX_LENGTH (connectors cannot import the sync
# engine: apps depend one way; a test keeps the three equal).
STORE_KEY_MAX_LENGTH = 500


def _copyable(table: _Table, config: dict[str, Any]) -> bool:
    """A table with a real single-column key whose columns all map to JSON as read() maps them
    (views and configured keys may repeat a key, which a bulk load cannot take)."""
    kinds = dict(table.columns)
    return (
        not table.is_view
        and not (config.get("primaryKeys") or {}).get(table.name)
        and len(table.primary_key) == 1
        and kinds.get(table.primary_key[0]) in _COPY_KEY_TYPES
        and all(kind in _COPY_JSON_TYPES or kind in ("numeric", "bytea") for kind in kinds.values())
    )


def _copy_column(name: str, kind: str) -> sql.Composable:
    column = sql.Identifier("t", name)
    if kind == "numeric":  # read() loads numeric as its text
        return sql.SQL("{}::text AS {}").format(column, sql.Identifier(name))
    if kind == "bytea":  # read() gives base64 without line breaks
        return sql.SQL("translate(encode({}, 'base64'), E'\\n', '') AS {}").format(
            column, sql.Identifier(name)
        )
    return sql.SQL("{} AS {}").format(column, sql.Identifier(name))


def _line_cursor(row: Any, cursor_field: str) -> Any:
    """The cursor value of one COPY line: from its JSON text (the line's last field but one),
    whose backslashes COPY's text format doubled."""
    doc = bytes(row).rstrip(b"\n").rsplit(b"\t", 2)[1].replace(b"\\\\", b"\\")
    return _json_loads(doc).get(cursor_field)


def _batch_cursors(
    rows: list[Any], cursor_field: str | None, safe: Any, highest: Any
) -> tuple[Any, Any]:
    """(safe cursor, highest cursor) after a batch in cursor order: the highest value strictly
    below the batch's last one (records sharing the last value may go on in the next batch)."""
    if cursor_field is None:
        return safe, highest
    last = _line_cursor(rows[-1], cursor_field)
    if last is None:
        return safe, highest
    for row in reversed(rows[:-1]):
        value = _line_cursor(row, cursor_field)
        if value != last:
            return (value if value is not None else safe), last
    return safe, last


def _adapted(value: Any) -> Any:
    # Nested objects go to json/jsonb columns; psycopg would otherwise reject a dict.
    if isinstance(value, dict):
        return Jsonb(value)
    return value


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
