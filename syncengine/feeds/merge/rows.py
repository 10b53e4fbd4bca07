"""Rows of the frame contract as the merge needs them: content hashes, database values, history.

The parser hands the merge one ``pandas.DataFrame`` per chunk with the columns ``row_number``,
``key``, every column of ``syncengine.feeds.vehicles.VEHICLE_COLUMNS`` and ``extra`` (see
``FRAME_COLUMNS``). LIST columns are Arrow lists of strings (``normalize.LIST_DTYPE``), as the
parser makes them, or object columns of Python lists (frames built by hand): everything here
takes both and gives the same results for equal lists. Everything works on whole columns; the
only per-row Python is the joining of dict cells (which pandas cannot hash) and the JSON text of
the per-row staging path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from json.encoder import encode_basestring
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from pandas.util import hash_array

from syncengine.feeds.normalize import LIST_TYPE
from syncengine.feeds.vehicles import VEHICLE_FIELDS, Kind

KIND_BY_COLUMN: dict[str, Kind] = {field.column: field.kind for field in VEHICLE_FIELDS.values()}
NAME_BY_COLUMN: dict[str, str] = {field.column: field.name for field in VEHICLE_FIELDS.values()}

# The vehicle columns a frame carries, in the order they are staged.
CONTENT_COLUMNS: tuple[str, ...] = (*KIND_BY_COLUMN, "extra")
FRAME_COLUMNS: tuple[str, ...] = ("row_number", "key", *CONTENT_COLUMNS)
# Columns added to the contract after hashes were first stored. Each is hashed after all the
# others and only where it holds a value, so a vehicle without one keeps the hash it was stored
# with and an upgrade does not rewrite (or, with history, version) every vehicle. A frame made
# before a late column existed may lack it: it is null there.
LATE_COLUMNS: tuple[str, ...] = ("currency",)
_HASHED_COLUMNS: tuple[str, ...] = tuple(c for c in CONTENT_COLUMNS if c not in LATE_COLUMNS)

# Changing how a value is hashed changes every stored hash, so every vehicle would be rewritten
# once on its next file; bump the salt with any such change to make that explicit.
_HASH_SALT = np.uint64(0x52_41_49_4C_59_41_52_01)  # "RAILYAR" + version 1
# pandas' string hash is SipHash-2-4 keyed with these 16 bytes: stable across processes and runs
# (unlike Python's hash()), so a hash stored by one worker matches one computed by another.
_SIPHASH_KEY = "railyard.vehicle"
_NULL_HASH = np.uint64(0x9E37_79B9_7F4A_7C15)
_MIX_1 = np.uint64(0xBF58_476D_1CE4_E5B9)
_MIX_2 = np.uint64(0x94D0_49BB_1331_11EB)
_SHIFT_27 = np.uint64(27)
_SHIFT_30 = np.uint64(30)
_SHIFT_31 = np.uint64(31)
# List items and dict entries are joined with the ASCII unit and record separators, which
# normalised feed text never contains; the item count is hashed too, so [] differs from [""].
_ITEM_SEPARATOR = "\x1f"
_ENTRY_SEPARATOR = "\x1e"
_CENTS = Decimal("0.01")

U64Array = NDArray[np.uint64]


def _mix(values: U64Array) -> U64Array:
    """The splitmix64 finaliser: spreads every input bit over the whole word (wrapping math)."""
    values = values ^ (values >> _SHIFT_30)
    values = values * _MIX_1
    values = values ^ (values >> _SHIFT_27)
    values = values * _MIX_2
    return values ^ (values >> _SHIFT_31)


def _with_nulls(hashes: U64Array, nulls: NDArray[np.bool_]) -> U64Array:
    result: U64Array = np.where(nulls, _NULL_HASH, hashes)
    return result


def _hash_strings(values: NDArray[np.object_]) -> U64Array:
    # categorize=False: feed text is mostly distinct (VINs, URLs), where factorising first is
    # five times slower than hashing every cell.
    hashed: U64Array = hash_array(values, encoding="utf8", hash_key=_SIPHASH_KEY, categorize=False)
    return hashed


def _is_arrow_list(series: pd.Series) -> bool:
    dtype = series.dtype
    return isinstance(dtype, pd.ArrowDtype) and (
        pa.types.is_list(dtype.pyarrow_dtype) or pa.types.is_large_list(dtype.pyarrow_dtype)
    )


def list_array(series: pd.Series) -> pa.ListArray:
    """A LIST column as one Arrow array of lists of strings; null where a cell is None.

    An Arrow column is taken as it is (its chunks joined); an object column of Python lists is
    converted.
    """
    if _is_arrow_list(series):
        array = pa.array(series.array)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
    else:
        array = pa.array(object_values(series), type=LIST_TYPE)
    if array.type != LIST_TYPE:
        array = array.cast(LIST_TYPE)
    lists: pa.ListArray = array
    return lists


def object_values(series: pd.Series) -> NDArray[np.object_]:
    """The column as an object array with None for every missing value, whatever its dtype;
    a LIST column's cells are Python lists."""
    if _is_arrow_list(series):
        return np.fromiter(list_array(series).to_pylist(), dtype=object, count=len(series))
    # pandas-stubs reject na_value=None, which pandas documents and honours for every dtype.
    values: NDArray[np.object_] = series.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    return values


def _text_hash(series: pd.Series) -> U64Array:
    values = object_values(series)
    return _with_nulls(_hash_strings(values), pd.isna(values))


def _int_hash(series: pd.Series) -> U64Array:
    ints = series.astype("Int64")
    values = ints.to_numpy(dtype=np.int64, na_value=0).view(np.uint64)
    return _with_nulls(_mix(values), ints.isna().to_numpy())


def _money_hash(series: pd.Series) -> U64Array:
    # Hashing whole cents makes 19999.9 and 19999.90 (or a float64 and a Float64 column) equal.
    amounts = series.astype("Float64")
    floats = amounts.to_numpy(dtype=np.float64, na_value=0.0)
    cents = np.rint(np.nan_to_num(floats) * 100.0).astype(np.int64).view(np.uint64)
    return _with_nulls(_mix(cents), amounts.isna().to_numpy())


def _bool_hash(series: pd.Series) -> U64Array:
    flags = series.astype("boolean")
    values = flags.to_numpy(dtype=np.uint64, na_value=0) + np.uint64(1)
    return _with_nulls(_mix(values), flags.isna().to_numpy())


def _list_hash(series: pd.Series) -> U64Array:
    # A list hashes as its items joined with the unit separator, mixed with its length; a
    # missing list as an empty one.
    lists = list_array(series)
    joined = pc.fill_null(pc.binary_join(lists, _ITEM_SEPARATOR), "")
    counts = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.uint64)
    return _mix(_hash_strings(joined.to_numpy(zero_copy_only=False)) ^ _mix(counts))


def _extra_text(cell: dict[str, str] | None) -> str:
    if not cell:
        return ""
    # Sorted, so a partner reordering its unmapped columns does not look like a change.
    return _ITEM_SEPARATOR.join(
        f"{name}{_ENTRY_SEPARATOR}{value}" for name, value in sorted(cell.items())
    )


def _extra_hash(series: pd.Series) -> U64Array:
    cells = object_values(series)
    return _hash_strings(np.array([_extra_text(cell) for cell in cells], dtype=object))


_HASHERS: dict[Kind, Callable[[pd.Series], U64Array]] = {
    Kind.TEXT: _text_hash,
    Kind.KEY: _text_hash,
    Kind.CONDITION: _text_hash,
    Kind.DATE: _text_hash,
    Kind.CURRENCY: _text_hash,
    Kind.INT: _int_hash,
    Kind.MONEY: _money_hash,
    Kind.BOOL: _bool_hash,
    Kind.LIST: _list_hash,
}


def frame_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """A content column of ``frame``; a late column the frame lacks is all null."""
    if column in frame.columns or column not in LATE_COLUMNS:
        return frame[column]
    return pd.Series(np.full(len(frame), None, dtype=object), index=frame.index, dtype=object)


def content_hashes(frame: pd.DataFrame) -> NDArray[np.int64]:
    """One signed 64-bit content hash per row, over every canonical column and ``extra``.

    Deterministic across processes, runs and chunkings: it depends only on the row's values,
    compared as the store keeps them (money in whole cents, dates as ISO text, extra unordered).
    """
    combined = np.full(len(frame), _HASH_SALT, dtype=np.uint64)
    for position, column in enumerate(_HASHED_COLUMNS, start=1):
        kind = KIND_BY_COLUMN.get(column)
        column_hash = _extra_hash(frame[column]) if kind is None else _HASHERS[kind](frame[column])
        # Mixing the running hash with each column in turn makes the result order-sensitive, so
        # a value moving from one column to another is a change.
        combined = _mix(combined ^ column_hash ^ np.uint64(position))
    for position, column in enumerate(LATE_COLUMNS, start=len(_HASHED_COLUMNS) + 1):
        series = frame_column(frame, column)
        present = series.notna().to_numpy(dtype=bool)
        if present.any():
            column_hash = _HASHERS[KIND_BY_COLUMN[column]](series)
            mixed = _mix(combined ^ column_hash ^ np.uint64(position))
            combined = np.where(present, mixed, combined)
    hashes: NDArray[np.int64] = combined.view(np.int64)
    return hashes


def _json_list(cell: list[str] | None) -> str:
    # The C string encoder per item is twice as fast as json.dumps per list (a first load
    # encodes a few million lists); the output is the same.
    if not cell:
        return "[]"
    try:
        return "[" + ",".join(map(encode_basestring, cell)) + "]"
    except TypeError:  # an item that is not a string
        return json.dumps(cell, ensure_ascii=False, separators=(",", ":"))


def _json_dict(cell: dict[str, str] | None) -> str:
    if not cell:
        return "{}"
    try:
        return (
            "{"
            + ",".join(
                f"{encode_basestring(name)}:{encode_basestring(value)}"
                for name, value in cell.items()
            )
            + "}"
        )
    except TypeError:
        return json.dumps(cell, ensure_ascii=False, separators=(",", ":"))


def database_columns(frame: pd.DataFrame) -> list[list[Any]]:
    """Each content column as a list of values that psycopg's COPY and sqlite3 both accept.

    Money stays a float: PostgreSQL rounds its text to numeric(12, 2) and SQLite stores REAL,
    which is what Django itself writes there. Lists and extra become JSON text.
    """
    columns: list[list[Any]] = []
    for column in CONTENT_COLUMNS:
        kind = KIND_BY_COLUMN.get(column)
        series = frame_column(frame, column)
        if kind is None:
            columns.append([_json_dict(cell) for cell in object_values(series)])
        elif kind == Kind.LIST:
            columns.append([_json_list(cell) for cell in object_values(series)])
        elif kind == Kind.INT:
            columns.append(object_values(series.astype("Int64")).tolist())
        elif kind == Kind.MONEY:
            columns.append(object_values(series.astype("Float64").round(2)).tolist())
        elif kind == Kind.BOOL:
            columns.append(object_values(series.astype("boolean")).tolist())
        else:
            columns.append([_iso_text(cell) for cell in object_values(series)])
    return columns


def _iso_text(cell: Any) -> Any:
    # Text cells pass through; a date object (a parser that kept datetime.date) becomes ISO text.
    return cell.isoformat() if hasattr(cell, "isoformat") else cell


def history_value(column: str, value: Any) -> Any:
    """A value as a version row stores it: JSON-safe, and equal for equal stored values.

    Money is a string with two decimals (exact, as the API shows it), dates are ISO text.
    """
    if value is None or (not isinstance(value, list | dict) and pd.isna(value)):
        return None
    kind = KIND_BY_COLUMN.get(column)
    if kind == Kind.MONEY:
        return str(Decimal(str(value)).quantize(_CENTS, rounding=ROUND_HALF_UP))
    if kind == Kind.DATE:
        return _iso_text(value)
    if kind == Kind.INT:
        return int(value)
    if kind == Kind.BOOL:
        return bool(value)
    if kind == Kind.LIST:
        return list(value)
    if kind is None:
        return dict(value)
    return str(value)


def history_name(column: str) -> str:
    """The name a change is recorded under: the canonical (API) field name."""
    return NAME_BY_COLUMN.get(column, column)


def random_uuid_hex(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs as 32-digit hex, the form both databases accept.

    One ``os.urandom`` call and one hex conversion instead of ``count`` ``uuid.uuid4()`` calls:
    a first load creates a million of them.
    """
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = raw.tobytes().hex()
    return [digits[start : start + 32] for start in range(0, 32 * count, 32)]
