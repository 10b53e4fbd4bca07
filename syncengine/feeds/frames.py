"""Turning parsed rows into chunks of the frame contract, with their rejections and warnings.

The frame contract (the merge relies on it): columns "row_number" (int64, the 1-based data row),
"key" (str: the VIN, else "stock:" + stock number), every column of ``VEHICLE_COLUMNS``, and
"extra" (dict of the unmapped columns' non-empty values). TEXT/KEY/CONDITION/DATE columns hold
str or None (dates "YYYY-MM-DD"), INT is "Int64", MONEY "Float64" (cents), BOOL "boolean", LIST
columns hold lists (never None). Keys are not deduplicated: the merge lets the last row win.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from syncengine.feeds.dialect import Dialect
from syncengine.feeds.errors import FeedFileError
from syncengine.feeds.mapping import MappedColumn
from syncengine.feeds.normalize import (
    Encoded,
    FieldValues,
    encode,
    gc_paused,
    normalize,
    split_lists,
)
from syncengine.vehicles import VEHICLE_FIELDS, Kind

# Appended as one more field when a file does not end with a line break: the column it lands in
# is the number of fields the last row really had (see FeedStream and check_last_row).
END_MARKER = "\x1frailyard:end-of-file\x1f"
RAW_VALUE_CHARS = 500
# Rejected rows beyond this many per batch keep their number and reason but not their values: a
# file that rejects every row (a missing header column makes every row ragged) must not hold a
# million dicts of strings. The orchestrator keeps only the first hundred samples anyway.
REJECTED_VALUES_LIMIT = 1000
ROW_WARNING_LIMIT = 1000  # per chunk; the orchestrator keeps far fewer
MASKED_DTYPES = {Kind.INT: "Int64", Kind.MONEY: "Float64", Kind.BOOL: "boolean"}

Note = tuple[int, int, str]  # (row number, field order, message): sorts into reading order


@dataclass
class RejectedRow:
    """A row that was not imported, and why."""

    row_number: int  # 1-based data row number (header not counted)
    reason: str  # e.g. "no VIN and no stock number"
    values: dict[str, str]  # the row's raw values by source column, each cut to 500 characters


@dataclass
class FeedChunk:
    """Up to ``chunk_rows`` rows of the file: the accepted ones as a frame, the rest rejected."""

    frame: pd.DataFrame
    rejected: list[RejectedRow]
    warnings: list[str]  # row-level, e.g. "Row 12: VIN 1HGCM82633A004352 fails its check digit"


@dataclass(frozen=True)
class Layout:
    """Where things are in the parsed rows."""

    dialect: Dialect
    columns: int  # the file's columns (trailing blank headers dropped)
    read_width: int  # columns read: the file's row width plus spare ones for ragged rows
    names: tuple[str, ...]  # source names of the file's columns

    def synthetic_header(self, line_break: str) -> bytes:
        """The header pandas reads instead of the file's: ``read_width`` plain names."""
        prefix = "k" if self.dialect.delimiter == "c" else "c"
        names = [f"{prefix}{position}" for position in range(self.read_width)]
        return (self.dialect.delimiter.join(names) + line_break).encode()


@dataclass
class RawChunk:
    """Parsed rows before normalisation: every column read, as text, by position.

    Building takes each column out of ``columns`` once it is done with it, so the raw text is
    released while the normalised frame grows.
    """

    row_numbers: npt.NDArray[np.int64]
    columns: dict[int, pd.Series]

    def __len__(self) -> int:
        return len(self.row_numbers)


@dataclass
class Piece:
    """One parsed batch, normalised; batches are joined into chunks."""

    frame: pd.DataFrame
    rejected: list[RejectedRow]
    notes: list[Note]  # each issue's first ROW_WARNING_LIMIT rows, enough for the chunk's list
    note_count: int  # row warnings in all, listed or not
    note_last_row: int  # the last row with a warning (0: none)
    file_notes: list[str]  # from the stream, e.g. a switch to Windows-1252 mid-file


def combine(pieces: list[Piece]) -> FeedChunk:
    """Join batches into one chunk; row warnings in row order, at most ``ROW_WARNING_LIMIT``."""
    frames = [piece.frame for piece in pieces]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    notes = sorted(note for piece in pieces for note in piece.notes)[:ROW_WARNING_LIMIT]
    warnings = [note for piece in pieces for note in piece.file_notes]
    warnings += [message for _, _, message in notes]
    unlisted = sum(piece.note_count for piece in pieces) - len(notes)
    if unlisted:
        last_row = max(piece.note_last_row for piece in pieces)
        warnings.append(f"{unlisted} more row warnings, up to row {last_row}, are not listed.")
    return FeedChunk(
        frame=frame,
        rejected=[row for piece in pieces for row in piece.rejected],
        warnings=warnings,
    )


def _masked(kind: Kind, data: npt.NDArray[Any], missing: npt.NDArray[np.bool_]) -> pd.Series:
    if kind == Kind.INT:
        return pd.Series(pd.arrays.IntegerArray(data.astype(np.int64), missing))
    if kind == Kind.MONEY:
        return pd.Series(pd.arrays.FloatingArray(data.astype(np.float64), missing))
    return pd.Series(pd.arrays.BooleanArray(data.astype(bool), missing))


def _empty_column(kind: Kind, rows: int) -> pd.Series:
    """The column of a field no source column maps to."""
    if kind == Kind.LIST:
        return pd.Series([[] for _ in range(rows)], dtype=object)
    if kind in MASKED_DTYPES:
        return _masked(kind, np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool))
    return pd.Series(np.full(rows, None, dtype=object), dtype=object)


def _column(kind: Kind, values: FieldValues, codes: npt.NDArray[np.intp]) -> pd.Series:
    """A field's column for the rows whose source values have ``codes``."""
    if kind in MASKED_DTYPES:
        return _masked(kind, values.data[codes], values.missing[codes])
    return pd.Series(values.data[codes], dtype=object)


def _notes(
    values: FieldValues,
    encoded: Encoded,
    codes: npt.NDArray[np.intp],
    row_numbers: npt.NDArray[np.int64],
    order: int,
) -> tuple[list[Note], int, int]:
    """The row warnings of one field's issues (at most ``ROW_WARNING_LIMIT`` per issue), how
    many there are in all, and the last row they concern."""
    notes = []
    count = last_row = 0
    for issue in values.issues:
        if not issue.mask.any():
            continue
        all_hits = np.flatnonzero(issue.mask[codes])
        if not len(all_hits):
            continue
        count += len(all_hits)
        last_row = max(last_row, int(row_numbers[all_hits[-1]]))
        hits = all_hits[:ROW_WARNING_LIMIT]
        texts = encoded.values.iloc[codes[hits]].str.slice(0, 100).to_numpy(dtype=object)
        for hit, value in zip(hits, texts, strict=True):
            message = issue.message.format(value=repr(value) if " " in value else value)
            notes.append((int(row_numbers[hit]), order, f"Row {row_numbers[hit]}: {message}"))
    return notes, count, last_row


Normalized = tuple[Encoded, FieldValues]


class ChunkBuilder:
    """Normalises parsed batches of one file (its layout and column mapping) into pieces."""

    def __init__(self, *, layout: Layout, columns: list[MappedColumn], timezone: str) -> None:
        self._layout = layout
        self._timezone = timezone
        self._fields = {column.field: column.position for column in columns if column.field}
        self._unmapped = [column for column in columns if column.field is None]

    def empty(self) -> RawChunk:
        """A batch of no rows (for a preview of a file without any)."""
        return RawChunk(
            row_numbers=np.zeros(0, dtype=np.int64),
            columns={
                position: pd.Series([], dtype="large_string[pyarrow]")
                for position in range(self._layout.read_width)
            },
        )

    def build(self, raw: RawChunk, *, ends_file: bool, file_notes: list[str]) -> Piece:
        """Reject, normalise and frame one batch. ``ends_file``: the stream appended the end
        marker, so the file's last row may be in this batch."""
        layout = self._layout
        columns = raw.columns
        if ends_file and len(raw):
            self._check_last_row(columns, int(raw.row_numbers[-1]))

        # A row with more fields than the header: the spare columns hold something.
        ragged = np.zeros(len(raw), dtype=bool)
        fields_seen = np.zeros(len(raw), dtype=np.int64)
        for position in range(layout.columns, layout.read_width):
            spare = columns[position]
            filled = (spare != "").to_numpy(dtype=bool)
            if filled.any():  # rare: look closer, a lone space is still nothing
                filled = (spare.str.strip() != "").to_numpy(dtype=bool)
                ragged |= filled
                fields_seen[filled] = position + 1

        keys = {name: self._normalized(name, columns) for name in ("vin", "stockNumber")}
        has_vin = self._present(keys["vin"], len(raw))
        has_key = has_vin | self._present(keys["stockNumber"], len(raw))
        keyless = np.flatnonzero(~has_key & ~ragged)
        # Rows with nothing in them (",,,,," lines Excel leaves at the end) are skipped quietly.
        blank = np.ones(len(keyless), dtype=bool)
        for position in range(layout.columns) if len(keyless) else ():
            blank &= (columns[position].iloc[keyless].str.strip() == "").to_numpy(dtype=bool)
        rejected_mask = ragged.copy()
        rejected_mask[keyless[~blank]] = True
        accepted = np.flatnonzero(~ragged & has_key)

        rejected = self._rejected(raw, np.flatnonzero(rejected_mask), ragged, fields_seen)
        for position in range(layout.columns, layout.read_width):
            del columns[position]
        with gc_paused():
            frame, notes, count, last_row = self._frame(
                columns, keys, accepted, raw.row_numbers, has_vin
            )
        return Piece(
            frame=frame,
            rejected=rejected,
            notes=notes,
            note_count=count,
            note_last_row=last_row,
            file_notes=file_notes,
        )

    def _check_last_row(self, columns: dict[int, pd.Series], row_number: int) -> None:
        """Find the end marker in the last row: fewer fields than the header means truncated."""
        for position, column in columns.items():
            if column.iat[-1] == END_MARKER:
                if position < self._layout.columns:
                    raise FeedFileError(
                        f"The last row (row {row_number}) has {position} of "
                        f"{self._layout.columns} fields and the file does not end with a line "
                        "break: the upload looks truncated."
                    )
                cleared = column.copy()
                cleared.iat[-1] = ""
                columns[position] = cleared
                return

    def _normalized(self, name: str, columns: dict[int, pd.Series]) -> Normalized | None:
        """The encoded source column of field ``name`` and its normalised values, if mapped."""
        position = self._fields.get(name)
        if position is None:
            return None
        encoded = encode(columns[position])
        kind = VEHICLE_FIELDS[name].kind
        values = normalize(
            encoded, name=name, kind=kind, timezone=self._timezone, today=dt.date.today()
        )
        return encoded, values

    @staticmethod
    def _present(normalized: Normalized | None, rows: int) -> npt.NDArray[np.bool_]:
        if normalized is None:
            return np.zeros(rows, dtype=bool)
        encoded, values = normalized
        return ~values.missing[encoded.codes]

    def _rejected(
        self,
        raw: RawChunk,
        positions: npt.NDArray[np.intp],
        ragged: npt.NDArray[np.bool_],
        fields_seen: npt.NDArray[np.int64],
    ) -> list[RejectedRow]:
        layout = self._layout
        header_phrase = "the header has" if layout.dialect.header is not None else "rows have"
        sampled = positions[:REJECTED_VALUES_LIMIT]
        cells = [
            raw.columns[index].iloc[sampled].str.slice(0, RAW_VALUE_CHARS).to_numpy(dtype=object)
            for index in range(layout.read_width)
        ]
        rejected = []
        for order, position in enumerate(positions):
            row_values: dict[str, str] = {}
            if order < len(sampled):
                row_values = {name: cells[index][order] for index, name in enumerate(layout.names)}
                for index in range(layout.columns, layout.read_width):
                    if cells[index][order].strip():
                        row_values[f"column_{index + 1}"] = cells[index][order]
            if ragged[position]:
                count = int(fields_seen[position])
                at_least = "at least " if count >= layout.read_width else ""
                reason = f"row has {at_least}{count} fields, {header_phrase} {layout.columns}"
            else:
                reason = "no VIN and no stock number"
            row_number = int(raw.row_numbers[position])
            rejected.append(RejectedRow(row_number=row_number, reason=reason, values=row_values))
        return rejected

    def _frame(
        self,
        columns: dict[int, pd.Series],
        keys: dict[str, Normalized | None],
        accepted: npt.NDArray[np.intp],
        row_numbers: npt.NDArray[np.int64],
        has_vin: npt.NDArray[np.bool_],
    ) -> tuple[pd.DataFrame, list[Note], int, int]:
        """The accepted rows' frame, one field at a time (so one field's temporaries at a time),
        and the row warnings (see ``_notes``)."""
        rows = len(accepted)
        accepted_numbers = row_numbers[accepted]
        data: dict[str, pd.Series] = {
            "row_number": pd.Series(accepted_numbers, dtype=np.int64),
            "key": pd.Series(self._keys(keys, accepted, has_vin), dtype=object),
        }
        notes: list[Note] = []
        count = last_row = 0
        for order, (name, vehicle_field) in enumerate(VEHICLE_FIELDS.items()):
            position = self._fields.get(name)
            if position is None:
                data[vehicle_field.column] = _empty_column(vehicle_field.kind, rows)
                continue
            if vehicle_field.kind == Kind.LIST:
                items = split_lists(columns.pop(position).iloc[accepted], urls=name == "photoUrls")
                data[vehicle_field.column] = pd.Series(items, dtype=object)
                continue
            normalized = keys.get(name) or self._normalized(name, columns)
            assert normalized is not None
            del columns[position]
            encoded, values = normalized
            codes = encoded.codes[accepted]
            data[vehicle_field.column] = _column(vehicle_field.kind, values, codes)
            field_notes, field_count, field_last_row = _notes(
                values, encoded, codes, accepted_numbers, order
            )
            notes.extend(field_notes)
            count += field_count
            last_row = max(last_row, field_last_row)
        data["extra"] = pd.Series(self._extra(columns, accepted), dtype=object)
        return pd.DataFrame(data), notes, count, last_row

    @staticmethod
    def _keys(
        keys: dict[str, Normalized | None],
        accepted: npt.NDArray[np.intp],
        has_vin: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.object_]:
        """The VIN, else "stock:" + the stock number."""
        result = np.empty(len(accepted), dtype=object)
        with_vin = has_vin[accepted]
        vin, stock = keys["vin"], keys["stockNumber"]
        if vin is not None:
            encoded, values = vin
            result[with_vin] = values.data[encoded.codes[accepted[with_vin]]]
        if stock is not None and not with_vin.all():
            encoded, values = stock
            numbers = values.data[encoded.codes[accepted[~with_vin]]]
            result[~with_vin] = [f"stock:{number}" for number in numbers]
        return result

    def _extra(
        self, columns: dict[int, pd.Series], accepted: npt.NDArray[np.intp]
    ) -> list[dict[str, str]]:
        """Per row, the unmapped columns that have a value."""
        if not self._unmapped:
            return [{} for _ in range(len(accepted))]
        cells = []
        for column in self._unmapped:
            source = encode(columns.pop(column.position))
            text = source.values.to_numpy(dtype=object, copy=True)
            text[~source.present] = None
            cells.append(text[source.codes[accepted]])
        if len(cells) == 1:  # the usual case: one dealer id or age column
            name = self._unmapped[0].source
            return [{} if value is None else {name: value} for value in cells[0]]
        names = [column.source for column in self._unmapped]
        return [
            {name: value for name, value in zip(names, row, strict=True) if value is not None}
            for row in zip(*cells, strict=True)
        ]
