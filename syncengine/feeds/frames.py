"""Turning parsed rows into chunks of the frame contract, with their rejections and warnings.

The frame contract (the merge relies on it): columns "row_number" (int64, the 1-based data row),
"key" (str: the VIN, else "stock:" + stock number), every column of ``VEHICLE_COLUMNS``, and
"extra" (dict of the unmapped columns' non-empty values). TEXT/KEY/CONDITION/DATE/CURRENCY
columns hold str or None (dates "YYYY-MM-DD", currencies ISO 4217 codes), INT is "Int64", MONEY
"Float64" (cents), BOOL "boolean", LIST ``normalize.LIST_DTYPE`` (Arrow lists of strings, an
empty list for nothing, never null; the merge also takes object columns of Python lists). Keys
are not deduplicated: the merge lets the last row win.

What happens to a value that cannot be read (see ``normalize.Effect``): a key that cannot
identify a vehicle rejects its row (``RejectedRow``, with the field, the raw value and the
reason); any other unreadable value is left empty and its row is imported (a ``RowNote`` with
``dropped``, counted in ``FeedChunk.warned_rows``); a doubtful but usable value is kept and only
noted in the row warnings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from syncengine.feeds.currencies import CODE_VALUES
from syncengine.feeds.dialect import Dialect
from syncengine.feeds.errors import FeedFileError
from syncengine.feeds.mapping import MappedColumn
from syncengine.feeds.normalize import (
    Effect,
    Encoded,
    FieldValues,
    Issue,
    empty_lists,
    encode,
    gc_paused,
    normalize,
    split_lists,
)
from syncengine.feeds.vehicles import VEHICLE_FIELDS, Kind

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


@dataclass
class RejectedRow:
    """A row that was not imported, and why."""

    row_number: int  # 1-based data row number (header not counted)
    reason: str  # e.g. "no VIN and no stock number"
    values: dict[str, str]  # the row's raw values by source column, each cut to 500 characters
    field: str | None = None  # the canonical field whose value rejected the row, if one did
    value: str | None = None  # that raw value


@dataclass(frozen=True)
class RowNote:
    """A value of an imported row that was left empty (``dropped``) or is doubtful."""

    row_number: int
    order: int  # the field's position in VEHICLE_FIELDS: notes sort into reading order
    field: str  # canonical field name
    value: str  # the raw value, cut to 500 characters
    message: str  # e.g. "price abc is not an amount"
    dropped: bool
    values: dict[str, str]  # the row's key columns and this value, by source column

    @property
    def sort_key(self) -> tuple[int, int]:
        return self.row_number, self.order


@dataclass
class FeedChunk:
    """Up to ``chunk_rows`` rows of the file: the accepted ones as a frame, the rest rejected."""

    frame: pd.DataFrame
    rejected: list[RejectedRow]
    warnings: list[str]  # row-level, e.g. "Row 12: VIN 1HGCM82633A004352 fails its check digit"
    # Values left empty, in row order (at most ROW_WARNING_LIMIT), and how many imported rows
    # had one or more.
    dropped: list[RowNote] = field(default_factory=list)
    warned_rows: int = 0


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
    notes: list[RowNote]  # each issue's first ROW_WARNING_LIMIT rows, enough for the chunk's
    note_count: int  # row warnings in all, listed or not
    note_last_row: int  # the last row with a warning (0: none)
    file_notes: list[str]  # from the stream, e.g. a switch to Windows-1252 mid-file
    warned_rows: int = 0  # imported rows with a value left empty


def combine(pieces: list[Piece]) -> FeedChunk:
    """Join batches into one chunk; row warnings in row order, at most ``ROW_WARNING_LIMIT``."""
    frames = [piece.frame for piece in pieces]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    every_note = sorted((note for piece in pieces for note in piece.notes), key=_sort_key)
    notes = every_note[:ROW_WARNING_LIMIT]
    warnings = [note for piece in pieces for note in piece.file_notes]
    warnings += [f"Row {note.row_number}: {note.message}" for note in notes]
    unlisted = sum(piece.note_count for piece in pieces) - len(notes)
    if unlisted:
        last_row = max(piece.note_last_row for piece in pieces)
        warnings.append(f"{unlisted} more row warnings, up to row {last_row}, are not listed.")
    return FeedChunk(
        frame=frame,
        rejected=[row for piece in pieces for row in piece.rejected],
        warnings=warnings,
        dropped=[note for note in every_note if note.dropped][:ROW_WARNING_LIMIT],
        warned_rows=sum(piece.warned_rows for piece in pieces),
    )


def _sort_key(note: RowNote) -> tuple[int, int]:
    return note.sort_key


def _masked(kind: Kind, data: npt.NDArray[Any], missing: npt.NDArray[np.bool_]) -> pd.Series:
    if kind == Kind.INT:
        return pd.Series(pd.arrays.IntegerArray(data.astype(np.int64), missing))
    if kind == Kind.MONEY:
        return pd.Series(pd.arrays.FloatingArray(data.astype(np.float64), missing))
    return pd.Series(pd.arrays.BooleanArray(data.astype(bool), missing))


def _empty_column(kind: Kind, rows: int) -> pd.Series:
    """The column of a field no source column maps to."""
    if kind == Kind.LIST:
        return empty_lists(rows)
    if kind in MASKED_DTYPES:
        return _masked(kind, np.zeros(rows, dtype=np.int64), np.ones(rows, dtype=bool))
    return pd.Series(np.full(rows, None, dtype=object), dtype=object)


def _column(kind: Kind, values: FieldValues, codes: npt.NDArray[np.intp]) -> pd.Series:
    """A field's column for the rows whose source values have ``codes``."""
    if kind in MASKED_DTYPES:
        return _masked(kind, values.data[codes], values.missing[codes])
    return pd.Series(values.data[codes], dtype=object)


KeyCells = Callable[[npt.NDArray[np.intp]], list[dict[str, str]]]


@dataclass
class RowIssues:
    """Row warnings of accepted rows (at most ``ROW_WARNING_LIMIT`` listed per issue), how many
    there are in all, the last row they concern, and which rows had a value left empty."""

    notes: list[RowNote]
    count: int
    last_row: int
    dropped: npt.NDArray[np.bool_]


def _row_issues(
    issues: list[tuple[npt.NDArray[np.bool_], Issue]],
    *,
    name: str,
    source: str,
    order: int,
    encoded: Encoded,
    codes: npt.NDArray[np.intp],
    row_numbers: npt.NDArray[np.int64],
    key_cells: KeyCells,
    context: dict[str, npt.NDArray[np.object_]] | None = None,
) -> RowIssues:
    """The notes of ``issues`` (each with its mask over the accepted rows), at most
    ``ROW_WARNING_LIMIT`` per issue; ``context`` fills more ``{names}`` of the messages."""
    result = RowIssues(notes=[], count=0, last_row=0, dropped=np.zeros(len(codes), dtype=bool))
    for rows, issue in issues:
        all_hits = np.flatnonzero(rows)
        if not len(all_hits):
            continue
        dropped = issue.effect == Effect.DROPPED
        if dropped:
            result.dropped |= rows
        result.count += len(all_hits)
        result.last_row = max(result.last_row, int(row_numbers[all_hits[-1]]))
        hits = all_hits[:ROW_WARNING_LIMIT]
        texts = encoded.values.iloc[codes[hits]].str.slice(0, RAW_VALUE_CHARS)
        cells = key_cells(hits)
        for hit, value, row_cells in zip(hits, texts.to_numpy(dtype=object), cells, strict=True):
            shown = value[:100]
            extra = {key: column[hit] for key, column in (context or {}).items()}
            message = issue.message.format(value=repr(shown) if " " in shown else shown, **extra)
            result.notes.append(
                RowNote(
                    row_number=int(row_numbers[hit]),
                    order=order,
                    field=name,
                    value=value,
                    message=message,
                    dropped=dropped,
                    values={**row_cells, source: value},
                )
            )
    return result


def _field_issues(
    values: FieldValues, codes: npt.NDArray[np.intp]
) -> list[tuple[npt.NDArray[np.bool_], Issue]]:
    """Each issue of a field that concerns some of the rows ``codes``, with its row mask."""
    return [
        (issue.mask[codes], issue)
        for issue in values.issues
        if issue.effect != Effect.REJECTED and issue.mask.any()
    ]


Normalized = tuple[Encoded, FieldValues]


def _merge(into: RowIssues, more: RowIssues) -> None:
    into.notes.extend(more.notes)
    into.count += more.count
    into.last_row = max(into.last_row, more.last_row)
    into.dropped |= more.dropped


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
        key_issues, key_issue = self._key_issues(keys["vin"], len(raw))
        key_issue[ragged] = -1
        rejected_mask = ragged | (key_issue >= 0)
        rejected_mask[keyless[~blank]] = True
        accepted = np.flatnonzero(~rejected_mask & has_key)

        rejected = self._rejected(
            raw,
            np.flatnonzero(rejected_mask),
            ragged,
            fields_seen,
            key_issues=key_issues,
            key_issue=key_issue,
        )
        for position in range(layout.columns, layout.read_width):
            del columns[position]
        with gc_paused():
            frame, issues = self._frame(columns, keys, accepted, raw.row_numbers, has_vin)
        return Piece(
            frame=frame,
            rejected=rejected,
            notes=issues.notes,
            note_count=issues.count,
            note_last_row=issues.last_row,
            file_notes=file_notes,
            warned_rows=int(issues.dropped.sum()),
        )

    @staticmethod
    def _key_issues(vin: Normalized | None, rows: int) -> tuple[list[Issue], npt.NDArray[np.int8]]:
        """The VIN issues that reject a row, and per row the first of them it has (-1: none)."""
        key_issue = np.full(rows, -1, dtype=np.int8)
        if vin is None:
            return [], key_issue
        encoded, values = vin
        issues = [
            issue for issue in values.issues if issue.effect == Effect.REJECTED and issue.mask.any()
        ]
        for number, issue in enumerate(issues):
            key_issue[issue.mask[encoded.codes] & (key_issue < 0)] = number
        return issues, key_issue

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
        return encoded, self._normalize(name, encoded)

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
        *,
        key_issues: list[Issue],
        key_issue: npt.NDArray[np.int8],
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
            field_name = value = None
            if ragged[position]:
                count = int(fields_seen[position])
                at_least = "at least " if count >= layout.read_width else ""
                reason = f"row has {at_least}{count} fields, {header_phrase} {layout.columns}"
            elif key_issue[position] >= 0:
                vin_position = self._fields["vin"]
                field_name = "vin"
                value = str(raw.columns[vin_position].iat[position]).strip()[:RAW_VALUE_CHARS]
                shown = value[:100]
                reason = key_issues[key_issue[position]].message.format(
                    value=repr(shown) if " " in shown else shown
                )
            else:
                reason = "no VIN and no stock number"
            row_number = int(raw.row_numbers[position])
            rejected.append(
                RejectedRow(
                    row_number=row_number,
                    reason=reason,
                    values=row_values,
                    field=field_name,
                    value=value,
                )
            )
        return rejected

    def _frame(
        self,
        columns: dict[int, pd.Series],
        keys: dict[str, Normalized | None],
        accepted: npt.NDArray[np.intp],
        row_numbers: npt.NDArray[np.int64],
        has_vin: npt.NDArray[np.bool_],
    ) -> tuple[pd.DataFrame, RowIssues]:
        """The accepted rows' frame, one field at a time (so one field's temporaries at a time),
        and the row warnings (see ``_row_issues``)."""
        rows = len(accepted)
        accepted_numbers = row_numbers[accepted]
        data: dict[str, pd.Series] = {
            "row_number": pd.Series(accepted_numbers, dtype=np.int64),
            "key": pd.Series(self._keys(keys, accepted, has_vin), dtype=object),
        }
        issues = RowIssues(notes=[], count=0, last_row=0, dropped=np.zeros(rows, dtype=bool))
        key_cells = self._key_cell_reader(keys, accepted)
        amounts: dict[str, tuple[int, Encoded, FieldValues, npt.NDArray[np.intp]]] = {}
        for order, (name, vehicle_field) in enumerate(VEHICLE_FIELDS.items()):
            position = self._fields.get(name)
            if position is None or vehicle_field.kind == Kind.CURRENCY:
                # The currency column is filled after the amounts, whose currencies it gathers.
                data[vehicle_field.column] = _empty_column(vehicle_field.kind, rows)
                continue
            if vehicle_field.kind == Kind.LIST:
                source = columns.pop(position).iloc[accepted]
                data[vehicle_field.column] = split_lists(source, urls=name == "photoUrls")
                continue
            normalized = keys.get(name) or self._normalized(name, columns)
            assert normalized is not None
            del columns[position]
            encoded, values = normalized
            codes = encoded.codes[accepted]
            data[vehicle_field.column] = _column(vehicle_field.kind, values, codes)
            if vehicle_field.kind == Kind.MONEY:
                amounts[name] = (order, encoded, values, codes)
            _merge(
                issues,
                _row_issues(
                    _field_issues(values, codes),
                    name=name,
                    source=self._layout.names[position],
                    order=order,
                    encoded=encoded,
                    codes=codes,
                    row_numbers=accepted_numbers,
                    key_cells=key_cells,
                ),
            )
        self._currencies(columns, data, amounts, accepted, accepted_numbers, issues, key_cells)
        data["extra"] = pd.Series(self._extra(columns, accepted), dtype=object)
        return pd.DataFrame(data), issues

    def _currencies(
        self,
        columns: dict[int, pd.Series],
        data: dict[str, pd.Series],
        amounts: dict[str, tuple[int, Encoded, FieldValues, npt.NDArray[np.intp]]],
        accepted: npt.NDArray[np.intp],
        accepted_numbers: npt.NDArray[np.int64],
        issues: RowIssues,
        key_cells: KeyCells,
    ) -> None:
        """The currency column, and the amounts in another currency left empty.

        A row's currency is its currency column's, else the first currency its amounts name
        (price, msrp, invoice, book value). An amount in a different currency than its row's is
        left empty with a warning: one vehicle has one currency.
        """
        order = list(VEHICLE_FIELDS).index("currency")
        currency = np.zeros(len(accepted), dtype=np.int16)
        position = self._fields.get("currency")
        if position is not None:
            encoded = encode(columns.pop(position))
            values = self._normalize("currency", encoded)
            codes = encoded.codes[accepted]
            assert values.currency is not None
            currency = values.currency[codes]
            _merge(
                issues,
                _row_issues(
                    _field_issues(values, codes),
                    name="currency",
                    source=self._layout.names[position],
                    order=order,
                    encoded=encoded,
                    codes=codes,
                    row_numbers=accepted_numbers,
                    key_cells=key_cells,
                ),
            )
        named = {
            name: values.currency[codes]
            for name, (_, _, values, codes) in amounts.items()
            if values.currency is not None and values.currency.any()
        }
        for per_row in named.values():
            currency = np.where(currency == 0, per_row, currency)
        data["currency"] = pd.Series(CODE_VALUES[currency], dtype=object)
        for name, per_row in named.items():
            other = (per_row != 0) & (per_row != currency)
            if not other.any():
                continue
            field_order, encoded, values, codes = amounts[name]
            message = f"{name} {{value}} is not in the vehicle's currency, {{currency}}"
            column = VEHICLE_FIELDS[name].column
            data[column] = _masked(Kind.MONEY, values.data[codes], values.missing[codes] | other)
            _merge(
                issues,
                _row_issues(
                    [(other, Issue(other, message))],
                    name=name,
                    source=self._layout.names[self._fields[name]],
                    order=field_order,
                    encoded=encoded,
                    codes=codes,
                    row_numbers=accepted_numbers,
                    key_cells=key_cells,
                    context={"currency": CODE_VALUES[currency]},
                ),
            )

    def _normalize(self, name: str, encoded: Encoded) -> FieldValues:
        kind = VEHICLE_FIELDS[name].kind
        return normalize(
            encoded, name=name, kind=kind, timezone=self._timezone, today=dt.date.today()
        )

    def _key_cell_reader(
        self, keys: dict[str, Normalized | None], accepted: npt.NDArray[np.intp]
    ) -> KeyCells:
        """A function giving, for some accepted rows, their raw VIN and stock number by source
        column: what identifies the row in a warning's sample."""
        sources = [
            (self._layout.names[self._fields[name]], normalized[0])
            for name, normalized in keys.items()
            if normalized is not None
        ]

        def cells(hits: npt.NDArray[np.intp]) -> list[dict[str, str]]:
            rows: list[dict[str, str]] = [{} for _ in hits]
            for source, encoded in sources:
                texts = encoded.values.iloc[encoded.codes[accepted[hits]]]
                for row, text in zip(rows, texts.to_numpy(dtype=object), strict=True):
                    if text:
                        row[source] = text[:RAW_VALUE_CHARS]
            return rows

        return cells

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
