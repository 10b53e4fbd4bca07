"""What every export file format shares: typed columns, the counting sink, the row stream.

A format writer turns rows into bytes written to a binary *sink* (any object with ``write``:
a local file, the storage connectors' atomic upload). Rows are tuples in column order or
mappings keyed by column name, holding Python values of the column's type:

=============  ==============================================================================
column type    Python value
=============  ==============================================================================
string         ``str``
integer        ``int``
decimal        ``decimal.Decimal`` (exact; money), or an ``int``
float          ``float`` (or ``int``)
boolean        ``bool``
date           ``datetime.date``
timestamp      ``datetime.datetime``, aware (naive ones are read as UTC)
string_list    ``list[str]`` (photo URLs, features)
json           anything JSON can hold (``dict``, ``list``, scalars)
=============  ==============================================================================

``None`` is a missing value in every type. Writers trust the types: the entity sources
(``exports.entities``) deliver values of the declared types.
"""

from __future__ import annotations

import hashlib
import itertools
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

Row = Sequence[Any] | Mapping[str, Any]


class ColumnType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    STRING_LIST = "string_list"
    JSON = "json"


@dataclass(frozen=True)
class Column:
    """One column of an export file: its name in the file and the type of its values.

    ``precision`` and ``scale`` size a decimal column (Parquet ``decimal128``); the canonical
    money columns are ``decimal(12, 2)``.
    """

    name: str
    type: ColumnType = ColumnType.STRING
    precision: int = 12
    scale: int = 2


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


@dataclass(frozen=True)
class PartStats:
    """What one file (one part) received: rows, bytes as stored, and their sha256."""

    rows: int
    bytes: int
    sha256: str


class ExportDataError(Exception):
    """Rows that cannot be written as declared (a value of the wrong type for its column).

    Not retryable: the same rows fail the same way.
    """


# A gzip member adds a 10-byte header and an 8-byte trailer to the deflate stream.
_GZIP_OVERHEAD = 18


def deflate_bound(size: int) -> int:
    """An upper bound of the deflate output for ``size`` input bytes (zlib's deflateBound,
    with a margin for a sync flush's empty block)."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 64


class CountingSink:
    """Writes to ``raw`` in blocks, optionally through gzip, counting and hashing what is stored.

    ``bytes_written`` and ``sha256`` describe what reached ``raw`` (the compressed bytes with
    gzip), which is what the destination stores. ``fits(n, limit)`` tells whether ``n`` more
    bytes keep the finished file within ``limit``: exactly without compression; with gzip it
    counts the input not yet flushed at deflate's worst case, and flushes (``Z_SYNC_FLUSH``) to
    learn the real size only when that bound is what would decide, so a part never ends up over
    its limit and the flushes happen only near its end.
    """

    BLOCK = 256 << 10

    def __init__(self, raw: BinarySink, *, gzip: bool = False) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.bytes_written = 0
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._unflushed = 0  # input handed to the compressor since its last flush
        self.closed = False

    def _emit(self, data: bytes) -> None:
        if data:
            self._raw.write(data)
            self._hash.update(data)
            self.bytes_written += len(data)

    def _drain(self) -> None:
        if not self._buffered:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._compressor is None:
            self._emit(data)
        else:
            self._unflushed += len(data)
            self._emit(self._compressor.compress(data))

    def write(self, data: bytes) -> int:
        self._buffer.append(bytes(data))
        self._buffered += len(data)
        if self._buffered >= self.BLOCK:
            self._drain()
        return len(data)

    def tell(self) -> int:
        """Bytes handed to the sink so far (before compression)."""
        return self.bytes_written + self._buffered if self._compressor is None else -1

    def flush(self) -> None:
        """Nothing to do: blocks are passed on when full and at ``close``."""

    def writable(self) -> bool:
        return True

    def size_after(self, size: int) -> int:
        """The largest the file can be once ``size`` more bytes are written and it is closed."""
        if self._compressor is None:
            return self.bytes_written + self._buffered + size
        header = 0 if self.bytes_written else _GZIP_OVERHEAD
        pending = self._unflushed + self._buffered + size
        return self.bytes_written + header + 8 + deflate_bound(pending)

    def fits(self, size: int, limit: int) -> bool:
        """Whether ``size`` more bytes keep the finished file within ``limit`` bytes."""
        if self.size_after(size) <= limit:
            return True
        if self._compressor is None or not (self._unflushed or self._buffered):
            return False
        self._drain()
        self._emit(self._compressor.flush(zlib.Z_SYNC_FLUSH))
        self._unflushed = 0
        return self.size_after(size) <= limit

    def close(self) -> None:
        """Pass on what is buffered and finish the gzip stream. The raw sink stays open: its
        owner closes (or commits) it."""
        if self.closed:
            return
        self._drain()
        if self._compressor is not None:
            self._emit(self._compressor.flush(zlib.Z_FINISH))
        self.closed = True

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class CsvDialect:
    """How rows are encoded as delimited text. Also the contract of an encoded row stream: a
    source that can encode rows itself (PostgreSQL's ``COPY``) must follow it exactly.

    ``null_is_distinct``: a missing value is an unquoted empty field and an empty string a
    quoted one (``""``), as PostgreSQL writes them; the Parquet writer reads rows that way.
    Files for people never set it: there a missing value and an empty string look alike.

    ``postgres_text``: PostgreSQL's text ``COPY`` format rather than CSV, the cheapest for
    the database to write and for the Parquet writer to read: fields never quoted, ``\\N`` a
    missing value, a backslash and the control characters a value holds escaped (``\\\\``,
    ``\\b``, ``\\f``, ``\\n``, ``\\r``, ``\\t``, ``\\v``), so a row is one line; values in
    PostgreSQL's own text forms: booleans ``t``/``f``, timestamps in UTC without an offset.
    """

    delimiter: str = ","
    quote_all: bool = False
    line_ending: str = "\n"
    replace_tab: bool = False
    replace_newline: bool = False
    null_is_distinct: bool = False
    postgres_text: bool = False


class RowStream:
    """The rows of one export, shared by the parts it is split into.

    A writer that fills a part takes rows one at a time and puts back the one that would not
    fit (``push_back``), so the next part starts with it. ``encoded`` is set when the rows are
    already delimited text (bytes, one row per item, line ending included) in that dialect.
    """

    def __init__(self, rows: Iterable[Any], *, encoded: CsvDialect | None = None) -> None:
        self._rows: Iterator[Any] = iter(rows)
        self._pending: list[Any] = []
        self.encoded = encoded

    def __iter__(self) -> RowStream:
        return self

    def __next__(self) -> Any:
        if self._pending:
            return self._pending.pop()
        return next(self._rows)

    def drain(self) -> Iterator[Any]:
        """The remaining rows as a plain iterator (no method call per row): the rows put back
        first, then the source itself, so rows a consumer does not take stay in the stream."""
        pending, self._pending = self._pending[::-1], []
        return itertools.chain(pending, self._rows) if pending else self._rows

    def push_back(self, row: Any) -> None:
        self._pending.append(row)

    def exhausted(self) -> bool:
        """Whether no row is left (reads one ahead and keeps it)."""
        if self._pending:
            return False
        try:
            self._pending.append(next(self._rows))
        except StopIteration:
            return True
        return False


def row_values(row: Row, names: Sequence[str]) -> Sequence[Any]:
    """A row as values in column order (mappings are looked up by column name)."""
    if isinstance(row, Mapping):
        return [row.get(name) for name in names]
    if len(row) != len(names):
        raise ExportDataError(f"A row has {len(row)} values for {len(names)} columns.")
    return row
