"""The Parquet writer: typed columns, row groups of a bounded size, snappy by default."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
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
# ``rowGroupSize`` rows or this many bytes of data, whichever comes first, so a wide row
# cannot make a row group (held in memory until written) large.
BATCH_ROWS = 10_000
ROW_GROUP_MAX_BYTES = 64 << 20
# Encoded rows (PostgreSQL's COPY) go to the thread that types them in chunks of this many
# bytes, at most this many waiting, so reading the database goes on while a row group is
# compressed and memory stays bounded.
ENCODED_CHUNK_BYTES = 8 << 20
ENCODED_CHUNKS_QUEUED = 2
# pyarrow's CSV reader parses a chunk in blocks of this many bytes (or the longest row's):
# blocks that stay in the CPU's caches parse about twice as fast as one large block.
PARSE_BLOCK_BYTES = 1 << 20
# The footer (schema and row group metadata) is small; leave this much room for it.
FOOTER_RESERVE = 256 << 10

# The dialects an encoded source may feed this writer in. TRANSFER_DIALECT: standard CSV where
# a missing value is an unquoted empty field and an empty string a quoted one, booleans
# true/false, timestamps ISO 8601, lists and objects JSON text. COPY_TEXT_DIALECT:
# PostgreSQL's text COPY format (``CsvDialect.postgres_text``), the cheapest for the database
# to write and for this writer to read.
TRANSFER_DIALECT = CsvDialect(null_is_distinct=True)
COPY_TEXT_DIALECT = CsvDialect(delimiter="\t", null_is_distinct=True, postgres_text=True)


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


def _value_bytes(texts: pa.Array) -> bytes:
    """The UTF-8 of a string array's values, one after the other."""
    if not len(texts) or texts.buffers()[2] is None:
        return b""
    offsets = pa.Array.from_buffers(
        pa.int32(), len(texts) + 1, [None, texts.buffers()[1]], offset=texts.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return texts.buffers()[2].slice(start, end - start).to_pybytes()


def _json_string_lists(texts: pa.Array) -> pa.Array:
    """JSON array texts (``["a", "b"]``, as PostgreSQL prints ``jsonb``) as list<string>.

    Vectorised for the usual case, arrays of strings without escapes: when every text is
    ``[]`` or starts with ``["`` and ends with ``"]``, it splits on the ``", "`` between
    consecutive strings. Each such text holds at least two ``"`` per item it splits into, so
    when the texts hold no backslash and exactly two ``"`` per item in all, no item holds a
    ``"`` either, and the split is the decoding. Anything else (escapes, numbers, nested
    values) is decoded row by row.
    """
    list_type = pa.list_(pa.string())
    texts = texts.cast(pa.string())
    empty = pc.equal(texts, "[]")
    shaped = pc.and_(pc.starts_with(texts, '["'), pc.ends_with(texts, '"]'))
    if pc.all(pc.or_(shaped, empty)).as_py() is not False:
        split = pc.split_pattern(pc.utf8_slice_codeunits(texts, 2, -2), '", "')
        if pc.any(empty).as_py():
            split = pc.if_else(empty, pa.scalar([], list_type), split)
        data = _value_bytes(texts)
        items = pc.sum(pc.list_value_length(split)).as_py() or 0
        if b"\\" not in data and data.count(b'"') == 2 * items:
            return split
    decoded = [None if text is None else orjson.loads(text) for text in texts.to_pylist()]
    return pa.array(
        [
            None if value is None else [None if item is None else str(item) for item in value]
            for value in decoded
        ],
        type=list_type,
    )


# PostgreSQL's text COPY escapes other than ``\\`` (``CsvDialect.postgres_text``).
_COPY_ESCAPES = [(f"\\{code}", char) for code, char in zip("nrtbfv", "\n\r\t\b\f\v", strict=True)]


def _copy_unescaped(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text COPY column's values as they are stored, the escapes that occur replaced. An
    escaped backslash (``\\\\``) stands as NUL (which text values cannot hold) while the
    others are replaced, so that one followed by an n does not become a line feed."""
    data = b"".join(_value_bytes(chunk) for chunk in texts.chunks)
    if b"\\" not in data:
        return texts
    backslash = b"\\\\" in data
    if backslash:
        texts = pc.replace_substring(texts, "\\\\", "\x00")
    for escape, char in _COPY_ESCAPES:
        if escape.encode() in data:
            texts = pc.replace_substring(texts, escape, char)
    return pc.replace_substring(texts, "\x00", "\\") if backslash else texts


@dataclass(frozen=True)
class _EncodedReading:
    """How pyarrow's CSV reader reads the rows of one encoded dialect."""

    parse: pacsv.ParseOptions
    null: str
    true: str
    false: str
    # PostgreSQL's text format: backslash escapes, timestamps without an offset.
    postgres_text: bool


_READINGS = {
    TRANSFER_DIALECT: _EncodedReading(
        parse=pacsv.ParseOptions(newlines_in_values=True),
        null="",
        true="true",
        false="false",
        postgres_text=False,
    ),
    COPY_TEXT_DIALECT: _EncodedReading(
        parse=pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False),
        null="\\N",
        true="t",
        false="f",
        postgres_text=True,
    ),
}

_CSV_COLUMN = re.compile(r"In CSV column #(\d+): ")


class ParquetFormatWriter:
    """Parquet with the columns' types (``arrow_type``), row groups of at most ``rowGroupSize``
    rows (and about 64 MB of data), compressed with ``compression`` (snappy by default).

    Rows are typed values, or, from a source that encodes them (PostgreSQL's ``COPY``), text
    in ``TRANSFER_DIALECT`` or ``COPY_TEXT_DIALECT`` that pyarrow's CSV reader parses and
    pyarrow's compute functions type in bulk. A part is closed at a row group boundary when
    one more row group as large as the last would pass the size limit.
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
        self._part_full = False
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
        if stream is not None and stream.encoded in _READINGS:
            return self._write_encoded(stream, _READINGS[stream.encoded], max_bytes)
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

    # -- encoded rows -------------------------------------------------------------------------

    def _chunks(self, rows: Iterator[Any]) -> Iterator[tuple[list[bytes], bool]]:
        """The rows in chunks of about ENCODED_CHUNK_BYTES, each with whether it ends a row
        group. A group ends after ``rowGroupSize`` rows or about ROW_GROUP_MAX_BYTES of
        encoded rows, so a chunk never straddles two groups."""
        group_rows = group_bytes = 0
        while True:
            budget = min(ENCODED_CHUNK_BYTES, ROW_GROUP_MAX_BYTES - group_bytes)
            chunk: list[bytes] = []
            size = 0
            for row in islice(rows, self._group_rows - group_rows):
                # Kept as bytes: a chunk of thousands of memoryviews (as psycopg gives COPY
                # rows) keeps the cyclic garbage collector walking them, which costs more
                # than the copy.
                row = bytes(row)
                chunk.append(row)
                size += len(row)
                if size >= budget:
                    break
            if not chunk:
                return
            group_rows += len(chunk)
            group_bytes += size
            ends_group = group_rows >= self._group_rows or group_bytes >= ROW_GROUP_MAX_BYTES
            if ends_group:
                group_rows = group_bytes = 0
            yield chunk, ends_group

    def _write_encoded(
        self, stream: RowStream, reading: _EncodedReading, max_bytes: int | None
    ) -> bool:
        """Encoded rows: this thread reads them from the source in chunks while a second one
        types the chunks and writes the row groups (pyarrow lets go of the GIL while it
        parses and compresses), so reading the database and writing the file overlap. The
        database is read on this thread only.

        Once a row group fills the part, the second thread leaves the chunks queued after it
        alone, and they go back to the stream for the next part."""
        queued: deque[tuple[Future[bool], list[bytes]]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer") as worker:
            try:
                for chunk, ends_group in self._chunks(stream.drain()):
                    future = worker.submit(self._take_chunk, chunk, ends_group, reading, max_bytes)
                    queued.append((future, chunk))
                    while queued and (len(queued) > ENCODED_CHUNKS_QUEUED or queued[0][0].done()):
                        if not queued[0][0].result():
                            break
                        queued.popleft()
                    if self._part_full:
                        break
                left = [chunk for future, chunk in queued if not future.result()]
            finally:
                for future, _ in queued:
                    future.cancel()
        for chunk in reversed(left):
            for row in reversed(chunk):
                stream.push_back(row)
        return self._part_full and not stream.exhausted()

    def _take_chunk(
        self,
        chunk: list[bytes],
        ends_group: bool,
        reading: _EncodedReading,
        max_bytes: int | None,
    ) -> bool:
        """On the second thread: type a chunk and, when it ends a row group, write the group.
        False (the chunk left alone) once the part is full."""
        if self._part_full:
            return False
        self._add(self._encoded_table(chunk, reading))
        if ends_group:
            self._write_group()
            self._part_full = not self._room_for_another_group(max_bytes)
        return True

    def _encoded_table(self, rows: list[bytes], reading: _EncodedReading) -> pa.Table:
        """Encoded rows (each a whole line) as a table of the schema: parsed with lists as
        their JSON text and the text format's timestamps without their zone (UTC), then
        typed."""
        read_types = {}
        for field in self.schema:
            kind = field.type
            if pa.types.is_list(kind):
                kind = pa.string()
            elif reading.postgres_text and pa.types.is_timestamp(kind):
                kind = pa.timestamp(kind.unit)
            read_types[field.name] = kind
        try:
            parsed = pacsv.read_csv(
                pa.py_buffer(b"".join(rows)),
                # The rows come a chunk at a time to a thread of their own: pyarrow's threads
                # would only compete with the database and the reading of the rows.
                read_options=pacsv.ReadOptions(
                    column_names=self.names,
                    use_threads=False,
                    block_size=max(PARSE_BLOCK_BYTES, max(map(len, rows)) + 1),
                ),
                parse_options=reading.parse,
                convert_options=pacsv.ConvertOptions(
                    column_types=read_types,
                    null_values=[reading.null],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    true_values=[reading.true],
                    false_values=[reading.false],
                ),
            )
        except pa.ArrowInvalid as error:
            raise ExportDataError(self._reading_error(str(error))) from None
        arrays = []
        for index, field in enumerate(self.schema):
            column = parsed.column(index)
            if reading.postgres_text and pa.types.is_string(column.type):
                column = _copy_unescaped(column)
            if pa.types.is_list(field.type):
                column = _json_string_lists(column.combine_chunks())
            elif column.type != field.type:
                column = column.cast(field.type)
            arrays.append(column)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _reading_error(self, message: str) -> str:
        """pyarrow's message on a value it cannot convert, naming the column."""
        found = _CSV_COLUMN.match(message)
        if found is None or int(found[1]) >= len(self.columns):
            return f"A row could not be read: {message}"
        column = self.columns[int(found[1])]
        return f"Column {column.name!r} ({column.type}): {message[found.end() :]}"

    def close(self) -> PartStats:
        if self._stats is None:
            self._write_group()
            self._writer.close()
            self.sink.close()
            self._stats = PartStats(
                rows=self.rows_written, bytes=self.sink.bytes_written, sha256=self.sink.sha256
            )
        return self._stats
