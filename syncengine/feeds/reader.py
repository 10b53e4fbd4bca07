"""Reading a partner's inventory feed file into canonical vehicle rows, chunk by chunk.

``open_feed`` detects how the file is written (``source.py``, ``dialect.py``), maps its columns
(``mapping.py``) and returns a ``FeedReader`` whose ``chunks()`` parse the file with pandas' C
engine in bounded batches and normalise them (``normalize.py``) into frames of the contract the
merge relies on (``frames.py``).

How ragged and truncated rows are told apart: every column is read as text with the header
replaced by a synthetic one a few columns wider than the file's, so a row with extra fields fills
the spare columns instead of stopping the parser, and a short row is padded with blanks. pandas
cannot say whether a blank came from the file or from padding, which matters for the last row:
a short last row without a final line break is a truncated upload. So when the file does not end
with a line break, the stream appends one more field holding ``END_MARKER``; the column the marker
lands in is the number of fields the last row really had.
"""

from __future__ import annotations

import codecs
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from syncengine.feeds.dialect import DELIMITER_NAMES, LINE_ENDING_NAMES, Dialect, detect_dialect
from syncengine.feeds.errors import FeedFileError
from syncengine.feeds.frames import (
    END_MARKER,
    ChunkBuilder,
    FeedChunk,
    Layout,
    Piece,
    RawChunk,
    RejectedRow,
    combine,
)
from syncengine.feeds.mapping import MappedColumn, map_columns, resolve_headers
from syncengine.feeds.source import FeedStream

if TYPE_CHECKING:
    from pandas._typing import ReadCsvBuffer

__all__ = [
    "FeedChunk",
    "FeedFileError",
    "FeedOptions",
    "FeedReader",
    "MappedColumn",
    "RejectedRow",
    "open_feed",
]

SAMPLE_BYTES = 1 << 20
PARSE_ROWS = 50_000  # rows parsed and normalised at a time (see FeedReader.chunks)
# The first chunk's rows: a small one reaches the merge (and through it the database, which
# writes while the rest is parsed) in a fifth of the time.
FIRST_CHUNK_ROWS = 10_000
SPARE_COLUMNS = 8  # how many fields beyond the header a ragged row can show before being cut
ROW_DELIMITERS = ("\n", "\r\n", "\r")


def _canonical_encoding(name: str) -> str | None:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return {"utf-8-sig": "utf-8", "cp1252": "windows-1252"}.get(codec, codec)


def _usable_delimiter(value: Any) -> str | None:
    """A single ASCII punctuation, space or tab character (what the C parser can split on)."""
    if value in ("\\t", "tab"):  # a tab typed into a JSON form
        return "\t"
    if (
        isinstance(value, str)
        and len(value) == 1
        and value.isascii()
        and value not in '"\r\n'
        and not value.isalnum()
    ):
        return value
    return None


@dataclass(frozen=True)
class FeedOptions:
    """How to read a feed file; None means detect it from the file."""

    column_delimiter: str | None = None
    row_delimiter: str | None = None  # "\n" | "\r\n" | "\r" | None: detect
    include_header: bool = True  # False: no header row; columns map by position
    encoding: str | None = None  # None: detect (UTF-8, UTF-8 with BOM, Windows-1252)

    @classmethod
    def from_import_file(cls, file: dict[str, Any]) -> FeedOptions:
        """Options from a file import's ``file`` object: ``{"type": "csv", "csv":
        {"columnDelimiter", "rowDelimiter", "includeHeader", ...}, "encoding"?}``.

        Missing or unusable values fall back to detection and defaults; this never raises, as a
        bad option must not stop the worker before it can log the file.
        """
        csv_options = file.get("csv") if isinstance(file.get("csv"), dict) else {}
        assert isinstance(csv_options, dict)
        row_delimiter = csv_options.get("rowDelimiter")
        include_header = csv_options.get("includeHeader")
        encoding = file.get("encoding") or csv_options.get("encoding")
        return cls(
            column_delimiter=_usable_delimiter(csv_options.get("columnDelimiter")),
            row_delimiter=row_delimiter if row_delimiter in ROW_DELIMITERS else None,
            include_header=include_header if isinstance(include_header, bool) else True,
            encoding=_canonical_encoding(encoding) if isinstance(encoding, str) else None,
        )


class FeedReader:
    """An opened feed file: its columns, file-level warnings, and its rows in chunks.

    A context manager; leaving it closes whatever file it still has open.
    """

    def __init__(
        self,
        *,
        path: Path,
        options: FeedOptions,
        layout: Layout,
        columns: list[MappedColumn],
        warnings: list[str],
        timezone: str,
        chunk_rows: int,
    ) -> None:
        self.columns = columns
        self.warnings = warnings
        self._path = path
        self._options = options
        self._layout = layout
        self._chunk_rows = chunk_rows
        self._streams: list[FeedStream] = []
        self._builder = ChunkBuilder(layout=layout, columns=columns, timezone=timezone)

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (and its archive) if a read left it open."""
        for stream in self._streams:
            stream.close()
        self._streams = []

    # --- reading -------------------------------------------------------------------------------

    def _open(self) -> FeedStream:
        stream = FeedStream(self._path, encoding=self._options.encoding)
        self._streams.append(stream)
        layout = self._layout
        dialect = layout.dialect
        line_break = "\r" if self._options.row_delimiter == "\r" else "\n"
        if dialect.header_end:
            stream.head(dialect.header_end)
        stream.begin(
            skip=dialect.header_end,
            prefix=layout.synthetic_header(line_break),
            marker=(dialect.delimiter + END_MARKER + line_break).encode(),
        )
        return stream

    def _raw_chunks(
        self, stream: FeedStream, chunk_rows: int, first_rows: int | None = None
    ) -> Iterator[RawChunk]:
        """The parsed rows in batches of ``chunk_rows`` (the first of ``first_rows``)."""
        layout = self._layout
        try:
            with pd.read_csv(
                # FeedStream has the one method the C parser calls (read); the stubs' buffer
                # protocol also lists seek/fileno/readline, which only other engines use.
                cast("ReadCsvBuffer[bytes]", stream),
                sep=layout.dialect.delimiter,
                header=0,
                usecols=list(range(layout.read_width)),
                index_col=False,
                # Every column as text (pyarrow strings: the C parser's fast path); "NA", "null"
                # or "00123" are for the normalisers to interpret, not for pandas.
                dtype="large_string[pyarrow]",
                na_filter=False,
                keep_default_na=False,
                quotechar='"',
                doublequote=True,
                skip_blank_lines=True,
                lineterminator="\r" if self._options.row_delimiter == "\r" else None,
                encoding="utf-8",
                engine="c",
                chunksize=chunk_rows,
            ) as chunks:
                size = first_rows or chunk_rows
                while True:
                    try:
                        frame = chunks.get_chunk(size)
                    except StopIteration:
                        break
                    size = chunk_rows
                    raw = RawChunk(
                        row_numbers=frame.index.to_numpy(dtype=np.int64) + 1,
                        columns={
                            position: frame.iloc[:, position]
                            for position in range(layout.read_width)
                        },
                    )
                    del frame
                    yield raw
        except pd.errors.ParserError as exc:
            message = str(exc)
            if "EOF inside string" in message:
                found = re.search(r"starting at row (\d+)", message)
                where = f" (the quote opened in row {found.group(1)})" if found else ""
                raise FeedFileError(
                    f"The file ends inside a quoted field{where}: a quote is never closed, so "
                    "the upload looks truncated."
                ) from exc
            raise FeedFileError(f"The file cannot be parsed: {message}") from exc

    def chunks(self) -> Iterator[FeedChunk]:
        """The whole file in chunks of up to ``chunk_rows`` rows, normalised.

        Raises ``FeedFileError`` (possibly after some chunks) when the file turns out unusable:
        truncated, undecodable, or without a single data row.

        The file is parsed and normalised in batches of at most ``PARSE_ROWS`` rows that are
        joined into chunks: memory then holds one batch of raw text, not a chunk's worth. The
        first chunk is one batch of at most ``FIRST_CHUNK_ROWS`` rows, so that the caller has
        rows to work on early.
        """
        stream = self._open()
        pieces: list[Piece] = []
        parsed = rows = 0
        first = min(self._chunk_rows, FIRST_CHUNK_ROWS)
        limit = first
        try:
            for raw in self._raw_chunks(stream, min(self._chunk_rows, PARSE_ROWS), first):
                parsed += len(raw)
                pieces.append(self._build(raw, stream))
                del raw  # released before the next batch is parsed
                if parsed >= limit:
                    chunk = combine(pieces)
                    rows += len(chunk.frame) + len(chunk.rejected)
                    pieces, parsed, limit = [], 0, self._chunk_rows
                    yield chunk
        finally:
            stream.close()
        if pieces:
            chunk = combine(pieces)
            rows += len(chunk.frame) + len(chunk.rejected)
            yield chunk
        if not rows:
            if self._layout.dialect.header is None:
                raise FeedFileError("The file has no rows.")
            raise FeedFileError("The file has a header but no rows.")

    def preview(self, rows: int = 10) -> FeedChunk:
        """The first ``rows`` rows, normalised (for the mapping preview); empty if none."""
        stream = self._open()
        try:
            for raw in self._raw_chunks(stream, max(rows, 1)):
                return combine([self._build(raw, stream)])
        finally:
            stream.close()
        return combine([self._build(self._builder.empty(), stream)])

    def _build(self, raw: RawChunk, stream: FeedStream) -> Piece:
        # What the stream says while decoding (a switch to Windows-1252 mid-file), unless the
        # detection pass over the file's start already said it.
        file_notes = [warning for warning in stream.warnings if warning not in self.warnings]
        stream.warnings.clear()
        return self._builder.build(raw, ends_file=stream.marker_appended, file_notes=file_notes)


def _describe(dialect: Dialect, stream: FeedStream, options: FeedOptions) -> str:
    """One line on how the file is read, saying which parts were detected."""
    delimiter = DELIMITER_NAMES.get(dialect.delimiter, repr(dialect.delimiter))
    parts = {
        "encoding": (stream.encoding_label, options.encoding is not None),
        "delimiter": (f"{delimiter}-delimited", options.column_delimiter is not None),
        "line endings": (
            f"{LINE_ENDING_NAMES[dialect.line_ending]} line endings",
            options.row_delimiter is not None,
        ),
    }
    detected = [text for text, configured in parts.values() if not configured]
    configured = [text for text, configured in parts.values() if configured]
    sentence = []
    if detected:
        sentence.append("detected " + ", ".join(detected))
    if configured:
        sentence.append("set by the file options: " + ", ".join(configured))
    packing = f" ({stream.packing})" if stream.packing else ""
    text = "; ".join(sentence)
    return f"Read the file{packing}: {text}."


def _checked(options: FeedOptions) -> FeedOptions:
    """The options with canonical values; ``FeedFileError`` for one that cannot be used."""
    delimiter = encoding = None
    if options.column_delimiter is not None:
        delimiter = _usable_delimiter(options.column_delimiter)
        if delimiter is None:
            raise FeedFileError(
                f"The file options' column delimiter {options.column_delimiter!r} cannot be used."
            )
    if options.row_delimiter is not None and options.row_delimiter not in ROW_DELIMITERS:
        raise FeedFileError(
            f"The file options' row delimiter {options.row_delimiter!r} cannot be used."
        )
    if options.encoding is not None:
        encoding = _canonical_encoding(options.encoding)
        if encoding is None:
            raise FeedFileError(f"The file options name an unknown encoding, {options.encoding!r}.")
    return FeedOptions(
        column_delimiter=delimiter,
        row_delimiter=options.row_delimiter,
        include_header=options.include_header,
        encoding=encoding,
    )


def open_feed(
    path: Path,
    *,
    provider: str,
    options: FeedOptions,
    mapping_overrides: dict[str, str | None],
    timezone: str,
    chunk_rows: int = 100_000,
) -> FeedReader:
    """Open a feed file: detect its format, map its columns, and return its reader.

    Raises ``FeedFileError`` when the file is unusable as a whole: empty, header-only, damaged,
    or without a column that maps to vin or stockNumber.
    """
    path = Path(path)
    warnings: list[str] = []
    options = _checked(options)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        warnings.append(f"Unknown time zone {timezone!r}; dates were read in UTC.")
        timezone = "UTC"
    if path.stat().st_size == 0:
        raise FeedFileError("The file is empty (0 bytes).")

    stream = FeedStream(path, encoding=options.encoding)
    try:
        sample, whole_file = stream.head(SAMPLE_BYTES)
        dialect = detect_dialect(
            sample,
            whole_file=whole_file,
            delimiter=options.column_delimiter,
            row_delimiter=options.row_delimiter,
            include_header=options.include_header,
        )
        warnings.append(_describe(dialect, stream, options))
        warnings.extend(stream.warnings)
    finally:
        stream.close()

    if dialect.header is not None:
        if not dialect.has_rows:
            raise FeedFileError("The file has a header but no rows.")
        raw_names = list(dialect.header)
        while raw_names and not raw_names[-1].strip():
            raw_names.pop()  # a trailing delimiter on every line: an empty last column
        names, header_warnings = resolve_headers(raw_names)
        warnings.extend(header_warnings)
    else:
        names = [f"column_{position + 1}" for position in range(dialect.width)]
    columns, mapping_warnings = map_columns(
        names,
        provider=provider,
        overrides=mapping_overrides,
        positional=dialect.header is None,
    )
    warnings.extend(mapping_warnings)
    if not any(column.field in ("vin", "stockNumber") for column in columns):
        shown = ", ".join(repr(name) for name in names[:30])
        raise FeedFileError(
            "No column maps to vin or stockNumber, so no row can be identified. The columns "
            f"are: {shown}. Add a field mapping for the VIN or stock number column."
        )
    layout = Layout(
        dialect=dialect,
        columns=len(names),
        read_width=max(dialect.width, len(names)) + SPARE_COLUMNS,
        names=tuple(names),
    )
    return FeedReader(
        path=path,
        options=options,
        layout=layout,
        columns=columns,
        warnings=warnings,
        timezone=timezone,
        chunk_rows=chunk_rows,
    )
