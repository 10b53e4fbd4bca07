"""The SQL side of the merge: its temporary tables, bulk writes into them, and the store's state.

PostgreSQL and SQLite share every statement; they differ only in how rows get in and out in bulk
(``COPY`` on PostgreSQL, ``executemany`` and ``fetchmany`` on SQLite) and in column types, which
are taken from the model's own fields so the shared statements need no casts.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    NotSupportedError,
    connection,
    connections,
    models,
)
from numpy.typing import NDArray

from integrations.models import Integration
from syncengine.choices import VehicleStatus
from syncengine.feeds.merge.copytext import copy_text
from syncengine.feeds.merge.keys import KeyIndex, KeyNames, key_digests
from syncengine.feeds.merge.rows import CONTENT_COLUMNS
from syncengine.models import Vehicle, VehicleVersion

# Status codes of the in-memory state (one byte a vehicle).
ACTIVE, SOLD, REMOVED = 0, 1, 2
STATUS_BY_CODE = {
    ACTIVE: VehicleStatus.ACTIVE,
    SOLD: VehicleStatus.SOLD,
    REMOVED: VehicleStatus.REMOVED,
}

# What apply() does with a staged row.
INSERT = "n"  # a new vehicle
REWRITE = "u"  # content or status changed: every column is written
RESET = "t"  # same content, but it had missed syncs: only the bookkeeping is reset

# What apply() does with a vehicle the file lacks.
MISSING = "m"  # merge: one more missed sync, sold when the grace is over
REMOVE = "r"  # overwrite: removed

# A staged row: what the merge decided for it, then its content.
LEADING_COLUMNS: tuple[str, ...] = (
    "row_number",
    "action",
    "change_type",
    "changes",
    "id",
    "key",
    "content_hash",
)
STAGED_COLUMNS: tuple[str, ...] = (*LEADING_COLUMNS, *CONTENT_COLUMNS)

_STATE_BATCH = 50_000
# COPY buffers the helper thread may still have to send when the caller stages more.
_IN_FLIGHT = 2

# Statement templates: braces name identifiers (filled in by _render with quoted names), every
# value is a bound %s parameter.
_INSERT = "INSERT INTO {table} ({columns}) VALUES ({placeholders})"
_COPY_IN = "COPY {table} ({columns}) FROM STDIN"
_DELETE_ROWS = "DELETE FROM {rows} WHERE row_number IN ({placeholders})"
_LOCK_INTEGRATION = "SELECT 1 FROM {integration} WHERE id = %s{lock}"
_STATE = """
    SELECT {key}, content_hash,
        CASE status WHEN %s THEN 0 WHEN %s THEN 1 ELSE 2 END,
        CASE WHEN missing_syncs > 0 THEN 1 ELSE 0 END
    FROM {vehicle} WHERE integration_id = %s
"""


def quote(name: str) -> str:
    """An identifier quoted for the default connection."""
    return connection.ops.quote_name(name)


def _column_type(field: models.Field[Any, Any] | models.ForeignObjectRel) -> str:
    db_type = field.db_type(connection) if isinstance(field, models.Field) else None
    if db_type is None:  # only relations without a column of their own; none are staged
        raise NotSupportedError(f"{field.name} has no column type")
    return db_type


@dataclass(frozen=True)
class VehicleState:
    """What the merge needs to know about an integration's stored vehicles, in compact columns.

    Position ``i`` is one vehicle: ``index`` finds it by key, ``names`` holds its key,
    ``hashes`` its content hash (meaningful where ``hashed``), ``status`` its status code,
    ``missing`` whether it has missed a sync. About 45 bytes a vehicle in all.
    """

    index: KeyIndex
    names: KeyNames
    hashes: NDArray[np.int64]
    hashed: NDArray[np.bool_]
    status: NDArray[np.int8]
    missing: NDArray[np.bool_]


class MergeTables:
    """The two temporary tables of one merge, on the default database connection.

    Temporary tables live in the connection's own schema, so concurrent merges never see each
    other's rows and a worker that dies takes its tables with it. Staging runs in autocommit,
    or in the caller's transaction when the merge copies new vehicles in directly (each
    chunk's rows are written as they come); ``apply()`` reads them in its transaction.
    """

    def __init__(self) -> None:
        if connection.vendor not in ("postgresql", "sqlite"):
            raise NotSupportedError(f"The vehicle merge has no {connection.vendor} support.")
        self.postgresql = connection.vendor == "postgresql"
        suffix = uuid.uuid4().hex[:16]
        self.rows = quote(f"merge_rows_{suffix}")
        self.absent = quote(f"merge_absent_{suffix}")
        self.vehicle = quote(Vehicle._meta.db_table)
        self.version = quote(VehicleVersion._meta.db_table)
        self.created = False
        self.indexed = False
        # The COPYs of the last staged slices, sent in order by a helper thread while the caller
        # parses and normalises the next one (PostgreSQL and the parser then use both cores).
        # psycopg's connections are thread-safe: another statement issued meanwhile waits for
        # the COPY, and every method below waits for all of them before it touches the tables.
        self._sender: ThreadPoolExecutor | None = None
        self._sending: deque[Future[None]] = deque()
        content = [quote(column) for column in CONTENT_COLUMNS]
        self.names = {
            "vehicle": self.vehicle,
            "version": self.version,
            "rows": self.rows,
            "absent": self.absent,
            "key": quote("key"),
            "columns": ", ".join(content),
            "staged_columns": ", ".join(f"s.{column}" for column in content),
            "assignments": ", ".join(f"{column} = s.{column}" for column in content),
        }

    def create(self) -> None:
        """Create both tables. Their columns have the store's own types (``jsonb``, ``uuid``...)."""
        big = _column_type(models.BigIntegerField())
        code = _column_type(models.CharField(max_length=1))
        types = {
            "row_number": big,
            "action": code,
            "change_type": _column_type(VehicleVersion._meta.get_field("change_type")),
            "changes": _column_type(VehicleVersion._meta.get_field("changes")),
            "id": _column_type(Vehicle._meta.get_field("id")),
            "key": _column_type(Vehicle._meta.get_field("key")),
            "content_hash": big,
        }
        for column in CONTENT_COLUMNS:
            types[column] = _column_type(Vehicle._meta.get_field(column))
        definition = ", ".join(f"{quote(column)} {types[column]}" for column in STAGED_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {self.rows} ({definition})")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.absent} (key {types['key']}, action {code})"
            )
        self.created = True

    def drop(self) -> None:
        """Drop both tables; harmless when they are already gone."""
        sender, self._sender = self._sender, None
        try:
            self.wait()
        except DatabaseError:
            pass  # the caller is discarding: the error that made it do so is the one to see
        finally:
            if sender is not None:
                sender.shutdown()
        if not self.created:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.rows}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.absent}")
        self.created = False

    def write(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append rows: ``COPY`` on PostgreSQL (the fastest way in), ``executemany`` on SQLite."""
        self.wait()
        if not rows:
            return
        names = {
            "table": table,
            "columns": ", ".join(quote(column) for column in columns),
            "placeholders": ", ".join(["%s"] * len(columns)),
        }
        with connection.cursor() as cursor:
            if self.postgresql:
                with cursor.cursor.copy(_COPY_IN.format_map(names)) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(_INSERT.format_map(names), rows)

    def copy_columns(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> None:
        """Append rows given column by column (PostgreSQL only): one ``COPY`` buffer of text
        built by Arrow kernels (see ``copytext``) instead of a tuple per row, sent in the
        background; ``wait()`` (which every other method calls) returns once all are in. At
        most ``_IN_FLIGHT`` buffers wait to be sent: the caller never runs further ahead of the
        database than that (nor holds more text)."""
        payload = copy_text(values)
        self._drain(_IN_FLIGHT - 1)
        if not payload:
            return
        sql = _COPY_IN.format(table=table, columns=", ".join(quote(column) for column in columns))
        # ``connection`` is a per-thread proxy: the thread gets this thread's wrapper and its
        # psycopg connection, the one that holds the temporary tables.
        wrapper = connections[DEFAULT_DB_ALIAS]
        wrapper.ensure_connection()
        raw = wrapper.connection
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge-copy")
        self._sending.append(self._sender.submit(_send, wrapper, raw, sql, payload))

    def wait(self) -> None:
        """Wait for the COPYs in flight, if any; the first error, if one failed, is raised
        here, once every one has ended."""
        self._drain(0)

    def _drain(self, keep: int) -> None:
        """Wait for the oldest COPYs until at most ``keep`` are in flight; the first error of
        those waited for is raised once they have all ended."""
        first: BaseException | None = None
        while len(self._sending) > keep:
            try:
                self._sending.popleft().result()
            except BaseException as error:
                first = first or error
        if first is not None:
            raise first

    def delete_rows(self, row_numbers: Sequence[int]) -> None:
        """Forget staged rows a later row of the same vehicle superseded (last row wins)."""
        self.wait()
        with connection.cursor() as cursor:
            # Batches stay under SQLite's bound-parameter limit; repeats are rare anyway.
            for start in range(0, len(row_numbers), 500):
                batch = row_numbers[start : start + 500]
                sql = _DELETE_ROWS.format(
                    rows=self.rows, placeholders=", ".join(["%s"] * len(batch))
                )
                cursor.execute(sql, list(batch))

    def analyze(self) -> None:
        """Make the joins with the store safe whatever the planner believes.

        The staging tables get an index on their key (built once, after the rows are in: a
        bulk build costs less than keeping it up during COPY), so even a nested loop driven by
        the store's side looks rows up instead of scanning the staging table once per vehicle:
        the store's statistics can be stale or skewed (a table analysed while it held another
        integration's rows estimates this one's at 1 row). Then row counts for the planner:
        autovacuum never analyses temporary tables. Only the columns statements filter and join
        on: sampling the JSON columns costs seconds."""
        if not self.postgresql:
            return
        self.wait()
        key = self.names["key"]
        with connection.cursor() as cursor:
            if not self.indexed:
                cursor.execute(f"CREATE INDEX ON {self.rows} ({key}, action)")
                cursor.execute(f"CREATE INDEX ON {self.absent} ({key}, action)")
                self.indexed = True
            cursor.execute(f"ANALYZE {self.rows} (action, {key})")
            cursor.execute(f"ANALYZE {self.absent}")

    def lock_integration(self, integration_id: uuid.UUID) -> None:
        """Hold the integration's row against deletion until the transaction ends: on
        PostgreSQL ``FOR KEY SHARE``, the lock a foreign key check takes for each row it
        checks, taken once by ``apply()`` for all the vehicles the merge writes (see
        ``Vehicle.integration``), so for the ending's moment, not the whole file. Raises
        ``IntegrityError`` when the integration is gone: the transaction, copies included, is
        rolled back."""
        sql = _LOCK_INTEGRATION.format(
            integration=quote(Integration._meta.db_table),
            lock=" FOR KEY SHARE" if self.postgresql else "",
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [db_uuid(integration_id)])
            if cursor.fetchone() is None:
                raise IntegrityError(f"Integration {integration_id} does not exist any more.")

    def execute(self, template: str, params: Sequence[Any], **fragments: str) -> int:
        """Run one statement; the number of rows it wrote.

        ``template`` names identifiers in braces (``{vehicle}``, ``{rows}``, ``{key}``,
        ``{columns}``...), and so may the ``fragments`` it includes (a shared ``{where}``).
        """
        self.wait()
        names = {**self.names}
        names.update((name, text.format_map(self.names)) for name, text in fragments.items())
        with connection.cursor() as cursor:
            cursor.execute(template.format_map(names), list(params))
            return int(cursor.rowcount)


def _send(wrapper: Any, raw: Any, sql: str, payload: memoryview) -> None:
    with wrapper.wrap_database_errors, raw.cursor() as cursor, cursor.copy(sql) as copy:
        copy.write(payload)


def load_state(integration_id: uuid.UUID) -> VehicleState:
    """Read an integration's vehicles (key, hash, status, missed syncs) once, in one pass.

    Rows arrive in batches that are turned into numpy columns at once, so the Python objects of
    only one batch exist at a time.
    """
    # The CASE yields the status codes ACTIVE, SOLD and REMOVED.
    sql = _STATE.format(key=quote("key"), vehicle=quote(Vehicle._meta.db_table))
    params = [VehicleStatus.ACTIVE.value, VehicleStatus.SOLD.value, db_uuid(integration_id)]
    names = KeyNames()
    highs: list[NDArray[np.uint64]] = []
    lows: list[NDArray[np.uint64]] = []
    hashes: list[NDArray[np.int64]] = []
    hashed: list[NDArray[np.bool_]] = []
    status: list[NDArray[np.int8]] = []
    missing: list[NDArray[np.bool_]] = []
    for batch in _state_batches(sql, params):
        keys = [row[0] for row in batch]
        names.extend(keys)
        high, low = key_digests(np.array(keys, dtype=object))
        highs.append(high)
        lows.append(low)
        hash_values = [row[1] for row in batch]
        hashed.append(np.fromiter((value is not None for value in hash_values), np.bool_))
        hashes.append(
            np.fromiter((value or 0 for value in hash_values), np.int64, len(hash_values))
        )
        status.append(np.fromiter((row[2] for row in batch), np.int8, len(batch)))
        missing.append(np.fromiter((row[3] for row in batch), np.bool_, len(batch)))
    names.freeze()
    index = KeyIndex()
    if highs:
        high, low = np.concatenate(highs), np.concatenate(lows)
        index.add(high, low, np.arange(len(high), dtype=np.int64))
    return VehicleState(
        index=index,
        names=names,
        hashes=np.concatenate(hashes) if hashes else np.empty(0, np.int64),
        hashed=np.concatenate(hashed) if hashed else np.empty(0, np.bool_),
        status=np.concatenate(status) if status else np.empty(0, np.int8),
        missing=np.concatenate(missing) if missing else np.empty(0, np.bool_),
    )


def _state_batches(sql: str, params: list[Any]) -> Iterator[list[tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY streams the result: a plain cursor would buffer all of it in libpq first.
            with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT", params) as copy:
                copy.set_types(["text", "int8", "int4", "int4"])
                batch: list[tuple[Any, ...]] = []
                for row in copy.rows():
                    batch.append(row)
                    if len(batch) == _STATE_BATCH:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        else:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(_STATE_BATCH):
                yield [tuple(row) for row in rows]


def db_uuid(value: uuid.UUID | str | None) -> Any:
    """A UUID as this connection stores it (native on PostgreSQL, 32 hex digits on SQLite)."""
    return models.UUIDField().get_db_prep_value(value, connection)


def db_datetime(value: Any) -> Any:
    """An aware datetime as this connection stores it (UTC text on SQLite)."""
    return models.DateTimeField().get_db_prep_value(value, connection)
