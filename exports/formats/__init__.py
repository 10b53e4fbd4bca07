"""Export file formats: CSV, JSON (array or JSON Lines), Parquet and XML, each streamed to a
binary sink in bounded memory, with optional gzip for the text formats and splitting into
parts at a size limit.

The entry points::

    options = format_options("CSV", {"delimiter": ";", "compression": "gzip"})
    writer = open_writer(options, sink=file, columns=columns)
    writer.write_rows(rows)          # tuples in column order, or dicts keyed by column name
    stats = writer.close()           # PartStats(rows, bytes, sha256)

    # or, splitting at options.max_part_bytes, with a sink per part from the caller:
    parts = write_parts(options, columns=columns, rows=rows, open_sink=open_part)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from exports.formats.base import (
    BinarySink,
    Column,
    ColumnType,
    CsvDialect,
    ExportDataError,
    PartStats,
    RowStream,
)
from exports.formats.options import (
    CSV,
    FORMATS,
    JSON,
    PARQUET,
    XML,
    FormatOptions,
    FormatOptionsError,
    format_options,
    format_options_problems,
    normalise_format,
)
from exports.formats.parquetfile import (
    COPY_TEXT_DIALECT,
    TRANSFER_DIALECT,
    ParquetFormatWriter,
    arrow_schema,
)
from exports.formats.textformats import CsvWriter, JsonWriter, XmlWriter, xml_name
from exports.formats.writer import FormatWriter

__all__ = [
    "COPY_TEXT_DIALECT",
    "CSV",
    "FORMATS",
    "JSON",
    "PARQUET",
    "TRANSFER_DIALECT",
    "XML",
    "BinarySink",
    "Column",
    "ColumnType",
    "CsvDialect",
    "ExportDataError",
    "FormatOptions",
    "FormatOptionsError",
    "FormatWriter",
    "PartStats",
    "RowStream",
    "arrow_schema",
    "format_options",
    "format_options_problems",
    "normalise_format",
    "open_writer",
    "write_parts",
    "xml_name",
]

Writer = FormatWriter | ParquetFormatWriter

_WRITERS: dict[str, Any] = {
    CSV: CsvWriter,
    JSON: JsonWriter,
    PARQUET: ParquetFormatWriter,
    XML: XmlWriter,
}


def open_writer(options: FormatOptions, *, sink: BinarySink, columns: Sequence[Column]) -> Writer:
    """A writer of ``options.format`` writing to ``sink``; nothing is written until rows are
    (or until ``close``, which writes an empty file: a header, ``[]``, an empty root element,
    or a Parquet file with the schema and no rows)."""
    writer: Writer = _WRITERS[options.format](sink, columns, options)
    return writer


def write_parts(
    options: FormatOptions,
    *,
    columns: Sequence[Column],
    rows: Iterable[Any],
    open_sink: Callable[[int], AbstractContextManager[BinarySink]],
    max_part_bytes: int | None = None,
) -> list[PartStats]:
    """Write ``rows`` as one file, or as several parts of at most ``max_part_bytes`` (default
    ``options.max_part_bytes``) each, split at row boundaries; every part is a whole file of
    its format (its own header, array, root element or Parquet footer).

    ``open_sink(n)`` gives the sink of part ``n`` (1, 2, ...) as a context manager: the part is
    written inside it, so the manager can commit an upload when the block ends and abort it
    when an error leaves it. There is always a first part, empty when there are no rows.
    """
    limit = options.max_part_bytes if max_part_bytes is None else max_part_bytes
    stream = rows if isinstance(rows, RowStream) else RowStream(rows)
    parts: list[PartStats] = []
    number = 1
    while True:
        with open_sink(number) as sink:
            writer = open_writer(options, sink=sink, columns=columns)
            more = writer.write_rows(stream, max_bytes=limit)
            parts.append(writer.close())
        if not more:
            return parts
        number += 1
