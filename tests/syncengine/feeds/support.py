"""Writing feed files inside a test and reading them back the way the orchestrator does."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from syncengine.feeds.frames import RowNote
from syncengine.feeds.reader import FeedOptions, MappedColumn, RejectedRow, open_feed
from tests.bench.feedgen import vin_with_check_digit

GOOD_VIN = "1HGCM82633A004352"  # the textbook VIN; its check digit (3) is right


def vin(number: int) -> str:
    """A distinct VIN with a valid check digit."""
    return vin_with_check_digit(f"1HGCM82630A{number:06d}")


def csv_text(rows: list[list[str]], *, line_end: str = "\r\n", delimiter: str = ",") -> str:
    """Rows as a delimited file, quoted where needed, as spreadsheet exports write them."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=line_end).writerows(rows)
    return buffer.getvalue()


def write(
    tmp_path: Path, content: str | bytes, *, name: str = "inventory.csv", encoding: str = "utf-8"
) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


@dataclass
class FeedRead:
    """Everything a full read of a file produced."""

    frame: pd.DataFrame  # the chunks' frames, concatenated
    rejected: list[RejectedRow]
    row_warnings: list[str]
    file_warnings: list[str]
    columns: list[MappedColumn]
    chunk_sizes: list[int]
    dropped: list[RowNote]  # values left empty, in row order
    warned_rows: int  # imported rows with a value left empty

    def row(self, index: int = 0) -> dict[str, object]:
        return {str(key): value for key, value in self.frame.iloc[index].to_dict().items()}

    def field(self, name: str) -> MappedColumn:
        return next(column for column in self.columns if column.field == name)


def read(
    path: Path,
    *,
    provider: str = "vauto",
    options: FeedOptions | None = None,
    overrides: dict[str, str | None] | None = None,
    timezone: str = "America/Chicago",
    chunk_rows: int = 100_000,
) -> FeedRead:
    """Read the whole file, like the orchestrator: every chunk, in order."""
    with open_feed(
        path,
        provider=provider,
        options=options or FeedOptions(),
        mapping_overrides=overrides or {},
        timezone=timezone,
        chunk_rows=chunk_rows,
    ) as reader:
        chunks = list(reader.chunks())
        return FeedRead(
            frame=pd.concat([chunk.frame for chunk in chunks], ignore_index=True),
            rejected=[row for chunk in chunks for row in chunk.rejected],
            row_warnings=[warning for chunk in chunks for warning in chunk.warnings],
            file_warnings=list(reader.warnings),
            columns=reader.columns,
            chunk_sizes=[len(chunk.frame) + len(chunk.rejected) for chunk in chunks],
            dropped=[note for chunk in chunks for note in chunk.dropped],
            warned_rows=sum(chunk.warned_rows for chunk in chunks),
        )


def read_values(tmp_path: Path, values: dict[str, str], **kwargs: Any) -> FeedRead:
    """A one-vehicle vAuto feed with a good VIN and stock number plus ``values`` by header."""
    rows = [["VIN", "Stock #", *values], [GOOD_VIN, "A1", *values.values()]]
    return read(write(tmp_path, csv_text(rows)), **kwargs)
