"""PostgreSQL as a source (tables and views of one schema) and as a destination (upserts).

Talks to the customer's server with psycopg 3 directly, never through Django's connection: the
database is theirs, not Railyard's. Identifiers are always quoted with ``psycopg.sql``.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import (
    Connector,
    ConnectorError,
    EntitySpec,
    ReadBatch,
    TestResult,
    register,
)

CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "railyard"
# Column names taken as the cursor of an entity when the config names none (timestamp-typed only).
CURSOR_COLUMN_NAMES = ("updated_at", "modified_at", "updatedAt")
TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone", "date"}

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

    # --- connecting ----------------------------------------------------------------------

    @property
    def schema(self) -> str:
        return str(self.config.get("schema") or "public")

    def _connect(self) -> psycopg.Connection[Any]:
        params: dict[str, Any] = {
            "host": self.config["host"],
            "port": int(self.config.get("port") or 5432),
            "dbname": self.config["database"],
            "user": self.credentials.get("user"),
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "application_name": APPLICATION_NAME,
        }
        if self.credentials.get("password"):
            params["password"] = self.credentials["password"]
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
            SELECT t.table_name, t.table_type, c.column_name, c.data_type
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
        for table_name, table_type, column_name, data_type in rows:
            if wanted and table_name not in wanted:
                continue
            columns.setdefault(table_name, []).append((column_name, data_type))
            kinds[table_name] = table_type == "VIEW"
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
            spec = self._spec(self._table(conn, entity))
            cursor_field = spec.cursor_field
            if cursor_field is not None and cursor_field not in spec.fields:
                raise ConnectorError(
                    f'Cursor column "{cursor_field}" is not a column of "{entity}".',
                    retryable=False,
                )
            if cursor_field is None and (cursor is not None or date_range is not None):
                raise ConnectorError(
                    f'"{entity}" has no cursor column: set config cursorFields.{entity} to '
                    "read it incrementally or by date range.",
                    retryable=False,
                )
            conditions: list[sql.Composable] = []
            params: list[Any] = []
            if cursor_field is not None:
                column = sql.Identifier(cursor_field)
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
            order = [name for name in [cursor_field, *spec.primary_key] if name is not None]
            query = sql.SQL("SELECT * FROM {}.{}").format(
                sql.Identifier(self.schema), sql.Identifier(entity)
            )
            if conditions:
                query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(conditions))
            if order:
                query = sql.SQL("{} ORDER BY {}").format(
                    query, sql.SQL(", ").join(sql.Identifier(name) for name in dict.fromkeys(order))
                )
            highest = cursor
            with conn.cursor(name="railyard_read", row_factory=dict_row) as rows:
                rows.itersize = batch_size
                rows.execute(query, params)
                while batch := rows.fetchmany(batch_size):
                    if cursor_field is not None:
                        # Rows come in cursor order, so the last one holds the batch's maximum.
                        last = batch[-1][cursor_field]
                        if last is not None:
                            highest = _jsonable(last)
                    records = [
                        {key: _jsonable(value) for key, value in row.items()} for row in batch
                    ]
                    yield ReadBatch(records=records, cursor=highest)

    # --- write ---------------------------------------------------------------------------

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        if not records:
            return 0
        try:
            with self._connect() as conn:
                table = self._table(conn, entity)
                if table.is_view:
                    raise ConnectorError(
                        f'"{entity}" is a view; records can only be written to a table.',
                        retryable=False,
                    )
                if not table.primary_key:
                    raise ConnectorError(
                        f'"{entity}" has no primary key to upsert on: add one or set config '
                        f"primaryKeys.{entity}.",
                        retryable=False,
                    )
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


def _adapted(value: Any) -> Any:
    # Nested objects go to json/jsonb columns; psycopg would otherwise reject a dict.
    if isinstance(value, dict):
        return Jsonb(value)
    return value


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
