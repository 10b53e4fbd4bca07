"""The Parquet writer: typed columns, row groups of a bounded size, snappy by default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from exports.formats.base import (
    BinarySink,
    Column,
    ColumnType,
    CountingSink,
    CsvDialect,
    ExportDataError,
    PartStats,
    RowStream,
    row_values,
)
from exports.formats.options import FormatOptions
from exports.formats.textformats import json_text

# Rows are turned into Arrow arrays this many at a time; a row group is written once it holds
# ``rowGroupSize`` rows or this many bytes of Arrow data, whichever comes first, so a wide row
# cannot make a row group (held in memory until written) large.
BATCH_ROWS = 10_000
ROW_GROUP_MAX_BYTES = 64 << 20
# Encoded rows (PostgreSQL's COPY) are parsed by pyarrow's CSV reader this many bytes at a time.
ENCODED_CHUNK_BYTES = 8 << 20
# The footer (schema and row group metadata) is small; leave this much room for it.
FOOTER_RESERVE = 256 << 10

# The dialect an encoded source must use to feed this writer: standard CSV where a missing
# value is an unquoted empty field and an empty string a quoted one, booleans true/false,
# timestamps ISO 8601, lists and objects JSON text.
TRANSFER_DIALECT = CsvDialect(null_is_distinct=True)


def arrow_type(column: Column) -> pa.DataType:
    """The Parquet (Arrow) type of a column."""
    return {
        ColumnType.STRING: pa.string(),
        ColumnType.INTEGER: pa.int64(),
        ColumnType.DECIMAL: pa.decimal128(column.precision, column.scale),
        ColumnType.FLOAT: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.DATE: pa.date32(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        ColumnType.STRING_LIST: pa.list_(pa.string()),
        ColumnType.JSON: pa.string(),
    }[column.type]


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([pa.field(column.name, arrow_type(column)) for column in columns])


def _json_cell(value: Any) -> Any:
    return value if value is None or isinstance(value, str) else json_text(value)


def _decimal_cell(column: Column) -> Any:
    exponent = Decimal(1).scaleb(-column.scale)

    def convert(value: Any) -> Any:
        if value is None:
            return None
        return Decimal(str(value)).quantize(exponent)

    return convert


def arrow_array(column: Column, values: Sequence[Any]) -> pa.Array:
    """``values`` as an Arrow array of the column's type; ``ExportDataError`` names the column
    and a value that does not fit it."""
    kind = arrow_type(column)
    if column.type == ColumnType.JSON:
        values = [_json_cell(value) for value in values]
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    if column.type == ColumnType.DECIMAL:
        try:
            return pa.array([_decimal_cell(column)(value) for value in values], type=kind)
        except (ArithmeticError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    for value in values:
        try:
            pa.array([value], type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            raise ExportDataError(
                f"Column {column.name!r} ({column.type}) cannot hold the value {value!r:.100}."
            ) from None
    raise ExportDataError(f"Column {column.name!r} ({column.type}) could not be converted.")


def _json_string_lists(texts: pa.Array) -> pa.Array:
    """JSON array texts (``["a", "b"]``, as PostgreSQL prints ``jsonb``) as list<string>.

    Vectorised for the usual case, arrays of strings without escapes: there every ``"``
    delimits a string, and the text splits on the ``", "`` between consecutive strings.
    Anything else (escapes, numbers, nested values) is decoded row by row.
    """
    list_type = pa.list_(pa.string())
    texts = texts.cast(pa.string())
    quotes = pc.count_substring(texts, '"')
    separators = pc.count_substring(texts, '", "')
    simple = pc.and_(
        pc.and_(pc.starts_with(texts, '["'), pc.ends_with(texts, '"]')),
        pc.and_(
            pc.invert(pc.match_substring(texts, "\\")),
            pc.equal(quotes, pc.multiply(pc.add(separators, 1), 2)),
        ),
    )
    empty = pc.equal(texts, "[]")
    handled = pc.or_(simple, empty)
    if pc.all(pc.or_(handled, pc.is_null(texts))).as_py() is not False:
        split = pc.split_pattern(pc.utf8_slice_codeunits(texts, 2, -2), '", "')
        return pc.if_else(empty, pa.scalar([], list_type), split)
    decoded = [None if text is None else orjson.loads(text) for text in texts.to_pylist()]
    return pa.array(
        [
            None if value is None else [None if item is None else str(item) for item in value]
            for value in decoded
        ],
        type=list_type,
    )


class ParquetFormatWriter:
    """Parquet with the columns' types (``arrow_type``), row groups of at most ``rowGroupSize``
    rows (and about 64 MB of data), compressed with ``compression`` (snappy by default).

    Rows are typed values, or, from a source that encodes them (PostgreSQL's ``COPY``), CSV in
    ``TRANSFER_DIALECT`` that pyarrow's CSV reader types in bulk. A part is closed at a row
    group boundary when one more row group as large as the last would pass the size limit.
    """

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        self.columns = list(columns)
        self.names = [column.name for column in self.columns]
        self.options = options
        self.sink = CountingSink(sink)
        self.schema = arrow_schema(self.columns)
        codec = None if options.compression == "none" else options.compression
        self._writer = pq.ParquetWriter(self.sink, self.schema, compression=codec)
        self.rows_written = 0
        self._group_rows = options.row_group_size
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._last_group_bytes = 0
        self._stats: PartStats | None = None

    # -- filling row groups -------------------------------------------------------------------

    def _add(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes

    def _group_full(self) -> bool:
        return self._pending_rows >= self._group_rows or self._pending_bytes >= ROW_GROUP_MAX_BYTES

    def _write_group(self) -> None:
        if not self._pending_rows:
            return
        table = pa.concat_tables(self._pending)
        before = self.sink.tell()
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._last_group_bytes = self.sink.tell() - before
        self.rows_written += table.num_rows
        self._pending.clear()
        self._pending_rows = 0
        self._pending_bytes = 0

    def _room_for_another_group(self, max_bytes: int | None) -> bool:
        if max_bytes is None:
            return True
        return self.sink.tell() + self._last_group_bytes + FOOTER_RESERVE <= max_bytes

    def _typed_table(self, rows: list[Sequence[Any]]) -> pa.Table:
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.columns]
        arrays = [
            arrow_array(column, values)
            for column, values in zip(self.columns, columns, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _encoded_table(self, chunk: list[bytes]) -> pa.Table:
        schema = self.schema
        read_types = {
            field.name: pa.string() if pa.types.is_list(field.type) else field.type
            for field in schema
        }
        table = pacsv.read_csv(
            pa.py_buffer(b"".join(chunk)),
            read_options=pacsv.ReadOptions(column_names=self.names, use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=read_types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["true"],
                false_values=["false"],
            ),
        )
        arrays = [
            _json_string_lists(table.column(index).combine_chunks())
            if pa.types.is_list(field.type)
            else table.column(index)
            for index, field in enumerate(schema)
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    def _take(self, table: pa.Table, max_bytes: int | None) -> bool:
        """Add rows; write the row group once full. True when the part has no room for
        another row group."""
        self._add(table)
        if not self._group_full():
            return False
        self._write_group()
        return not self._room_for_another_group(max_bytes)

    def write_rows(self, rows: Iterable[Any], *, max_bytes: int | None = None) -> bool:
        if max_bytes is not None and not isinstance(rows, RowStream):
            raise TypeError("Splitting into parts needs a RowStream, which keeps the next row.")
        stream = rows if isinstance(rows, RowStream) else None
        if stream is not None and stream.encoded == TRANSFER_DIALECT:
            return self._write_encoded(stream, max_bytes)
        batch: list[Any] = []
        for row in stream.drain() if stream is not None else rows:
            batch.append(row_values(row, self.names))
            if len(batch) < min(BATCH_ROWS, self._group_rows):
                continue
            full = self._take(self._typed_table(batch), max_bytes)
            batch = []
            if full and stream is not None and not stream.exhausted():
                return True
        if batch:
            self._add(self._typed_table(batch))
        return False

    def _write_encoded(self, stream: RowStream, max_bytes: int | None) -> bool:
        """Encoded rows: this thread reads the next chunk from the source while a second one
        types and writes the previous chunk (pyarrow lets go of the GIL while it parses and
        compresses), so reading the database and writing the file overlap. One chunk at most
        is in flight; when it fills the part, the chunk read meanwhile goes back to the stream.
        The database is read on this thread only."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer") as worker:
            in_flight: Future[bool] | None = None
            batch: list[Any] = []
            batch_bytes = 0
            for row in stream.drain():
                batch.append(row)
                batch_bytes += len(row)
                if batch_bytes < ENCODED_CHUNK_BYTES:
                    continue
                if in_flight is not None and in_flight.result():
                    for kept in reversed(batch):
                        stream.push_back(kept)
                    return True
                in_flight = worker.submit(self._take_encoded, batch, max_bytes)
                batch, batch_bytes = [], 0
            full = in_flight is not None and in_flight.result()
        if batch:
            if full:
                for kept in reversed(batch):
                    stream.push_back(kept)
                return True
            self._add(self._encoded_table(batch))
        return False

    def _take_encoded(self, batch: list[Any], max_bytes: int | None) -> bool:
        return self._take(self._encoded_table(batch), max_bytes)

    def close(self) -> PartStats:
        if self._stats is None:
            self._write_group()
            self._writer.close()
            self.sink.close()
            self._stats = PartStats(
                rows=self.rows_written, bytes=self.sink.bytes_written, sha256=self.sink.sha256
            )
        return self._stats
