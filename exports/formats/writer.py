"""The interface every format writer has, and the text formats' common loop."""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from exports.formats.base import (
    BinarySink,
    Column,
    CountingSink,
    CsvDialect,
    PartStats,
    RowStream,
    row_values,
)
from exports.formats.options import FormatOptions


def iso_timestamp(value: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; a fraction of a second only when there is one, without
    trailing zeros (as PostgreSQL prints times): ``2025-01-15T10:00:00.1234Z``."""
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def plain_decimal(value: Decimal | int) -> str:
    """A decimal in positional notation: ``1E+2`` is written ``100``."""
    text = str(value)
    return format(value, "f") if "E" in text else text


class FormatWriter(ABC):
    """Writes rows as one file of its format to a binary sink, in bounded memory.

    ``write_rows`` may be called several times; ``close`` finishes the file (footer, gzip
    trailer; the sink itself stays open for its owner) and returns what was written. Given
    ``max_bytes``, ``write_rows`` stops at a row boundary before the file would grow past it
    and answers True: the rows it did not take stay in the ``RowStream`` for the next part.
    A part always takes at least one row, so a row larger than the limit is a part alone.
    """

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        self.columns = list(columns)
        self.names = [column.name for column in self.columns]
        self.options = options
        self.sink = CountingSink(sink, gzip=options.gzip)
        self.rows_written = 0

    @abstractmethod
    def write_rows(self, rows: Iterable[Any], *, max_bytes: int | None = None) -> bool:
        """Write rows; True when it stopped because the file is full and rows remain."""

    @abstractmethod
    def close(self) -> PartStats:
        """Finish the file and tell its rows, bytes and sha256."""


class TextWriter(FormatWriter):
    """A text format: a header, rows (each encoded alone, so its size is known before it is
    written), a separator between rows and a footer."""

    separator = b""

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        super().__init__(sink, columns, options)
        self._started = False
        self._closed_stats: PartStats | None = None

    @abstractmethod
    def header(self) -> bytes: ...

    @abstractmethod
    def footer(self) -> bytes: ...

    def footer_room(self) -> int:
        """The most bytes the footer can take (it may depend on the rows written)."""
        return len(self.footer())

    @abstractmethod
    def encode(self, values: Sequence[Any]) -> bytes:
        """One row (values in column order) as bytes, its line ending included."""

    def accepts(self, dialect: CsvDialect | None) -> bool:
        """Whether rows already encoded in ``dialect`` can be written as they are."""
        return False

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.sink.write(self.header())

    def _budget(self, max_bytes: int | None, extra: int) -> float:
        """Bytes that can surely still be added before ``max_bytes`` (with ``extra`` kept)."""
        if max_bytes is None:
            return math.inf
        return max_bytes - self.sink.size_after(extra)

    def write_rows(self, rows: Iterable[Any], *, max_bytes: int | None = None) -> bool:
        self._start()
        stream = rows if isinstance(rows, RowStream) else None
        if max_bytes is not None and stream is None:
            raise TypeError("Splitting into parts needs a RowStream, which keeps the next row.")
        encoded = stream is not None and self.accepts(stream.encoded)
        source = stream.drain() if stream is not None else iter(rows)
        encode, names, separator, sink = self.encode, self.names, self.separator, self.sink
        reserve = self.footer_room() + len(separator)
        # Rows are checked against a running budget, and only when one might not fit does the
        # sink work out exactly (with gzip, by flushing) whether it does; a compressed row can
        # take a little more than its size, hence the margin.
        gzip = self.options.gzip
        budget = self._budget(max_bytes, reserve)
        count = self.rows_written
        batch: list[Any] = []
        try:
            for row in source:
                data = row if encoded else encode(row_values(row, names))
                size = len(data) + len(separator)
                if gzip:
                    size += (size >> 11) + 1
                if size > budget:
                    sink.write(b"".join(batch))
                    batch.clear()
                    assert max_bytes is not None
                    assert stream is not None
                    if count and not sink.fits(len(data) + reserve, max_bytes):
                        stream.push_back(row)
                        return True
                    budget = self._budget(max_bytes, reserve)
                if count and separator:
                    batch.append(separator)
                batch.append(data)
                count += 1
                budget -= size
                if len(batch) >= 512:
                    sink.write(b"".join(batch))
                    batch.clear()
            return False
        finally:
            if batch:
                sink.write(b"".join(batch))
            self.rows_written = count

    def close(self) -> PartStats:
        if self._closed_stats is None:
            self._start()
            self.sink.write(self.footer())
            self.sink.close()
            self._closed_stats = PartStats(
                rows=self.rows_written, bytes=self.sink.bytes_written, sha256=self.sink.sha256
            )
        return self._closed_stats


Converter = Callable[[Any], Any]


def converters(
    columns: Sequence[Column], by_type: dict[str, Converter]
) -> list[tuple[int, Converter]]:
    """(position, converter) for the columns whose type needs one."""
    return [
        (index, by_type[column.type])
        for index, column in enumerate(columns)
        if column.type in by_type
    ]
