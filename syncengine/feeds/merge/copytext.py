"""Staged rows as PostgreSQL ``COPY`` text, built a column at a time with Arrow compute kernels.

Writing a slice of 20,000 staged rows through ``copy.write_row`` costs a Python tuple, a
``json`` string per list and per dict, and a psycopg adaptation per cell: about half a
first load's Python time. Here every column becomes an Arrow string array in one pass (lists and
extra become JSON text with string kernels), the columns are joined with tabs, the rows with line
breaks, and ``COPY`` gets one buffer per slice. The values PostgreSQL stores are the ones the
per-row path (``rows.database_columns``, still used on SQLite) gives it; tests compare both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from syncengine.feeds.merge.rows import (
    CONTENT_COLUMNS,
    KIND_BY_COLUMN,
    frame_column,
    list_array,
    object_values,
)
from syncengine.feeds.vehicles import Kind

NULL = "\\N"
# COPY's text format: a backslash, a tab, a line break or a carriage return in a value is
# written as a backslash escape (the backslash first, so the others' are not doubled).
_COPY_SPECIAL = r"[\\\t\n\r]"
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
# A JSON string's escapes, then COPY's escape of each of their backslashes: JSON text is staged
# as it comes out of here, with no second pass. Other control characters need \u00XX; a value
# with one (rare) is encoded by the json module instead.
_JSON_SPECIAL = r'[\\"\x00-\x1f]'
_JSON_IN_COPY_ESCAPES = (
    ("\\", "\\\\\\\\"),
    ('"', '\\\\"'),
    ("\n", "\\\\n"),
    ("\r", "\\\\r"),
    ("\t", "\\\\t"),
    ("\b", "\\\\b"),
    ("\f", "\\\\f"),
)
_OTHER_CONTROLS = r"[\x00-\x07\x0b\x0e-\x1f]"
_TEXT_MAP = pa.map_(pa.string(), pa.string())


def _holds(values: pa.Array, characters: str) -> bool:
    """Whether a string of ``values`` holds one of ``characters`` (a regex character class).

    The strings' bytes are searched as one string: on short strings (list items) a search per
    string costs several times the scan itself.
    """
    string_type = values.type
    if not (pa.types.is_string(string_type) or pa.types.is_large_string(string_type)):
        return bool(pc.any(pc.match_substring_regex(values, characters)).as_py())
    if not len(values):
        return False
    width = np.dtype(np.int64 if pa.types.is_large_string(string_type) else np.int32)
    _, offset_buffer, data = values.buffers()
    offsets = np.frombuffer(
        offset_buffer, dtype=width, count=len(values) + 1, offset=values.offset * width.itemsize
    )
    start, end = int(offsets[0]), int(offsets[-1])
    if end == start:
        return False
    whole = pa.Array.from_buffers(
        pa.large_string(),
        1,
        [
            None,
            pa.py_buffer(np.array([0, end - start], dtype=np.int64)),
            data.slice(start, end - start),
        ],
    )
    return bool(pc.match_substring_regex(whole, characters)[0].as_py())


def _escaped(values: pa.Array, special: str, escapes: Sequence[tuple[str, str]]) -> pa.Array:
    """``values`` with ``escapes`` applied; one scan when no value holds a ``special``
    character (the usual case)."""
    if not _holds(values, special):
        return values
    for plain, escaped in escapes:
        values = pc.replace_substring(values, plain, escaped)
    return values


def _json_strings(values: pa.Array) -> pa.Array:
    """Each string as a JSON string literal (quoted, escaped), escaped again for COPY text;
    null stays null."""
    escaped = _escaped(values, _JSON_SPECIAL, _JSON_IN_COPY_ESCAPES)
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    if escaped is values:
        return quoted
    odd = pc.match_substring_regex(values, _OTHER_CONTROLS)
    if not pc.any(odd).as_py():
        return quoted
    strings = values.to_pylist()
    literals = quoted.to_pylist()
    for position in np.flatnonzero(odd.to_numpy(zero_copy_only=False)):
        literal = json.dumps(strings[position], ensure_ascii=False)
        literals[position] = literal.replace("\\", "\\\\")
    return pa.array(literals, type=pa.string())


class _Staged:
    """An Arrow string array already in COPY text (JSON built here): no second escaping pass."""

    def __init__(self, array: pa.Array) -> None:
        self.array = array


def _json_lists(lists: pa.ListArray) -> _Staged:
    """Lists of strings as JSON arrays; a missing or empty list is ``[]``."""
    # The items of just these lists: a slice of a chunk's column shares the chunk's items.
    offsets = np.asarray(lists.offsets)
    first, last = int(offsets[0]), int(offsets[-1])
    items = lists.values.slice(first, last - first)
    starts = pa.array(offsets - first, type=pa.int32())
    escaped = _escaped(items, _JSON_SPECIAL, _JSON_IN_COPY_ESCAPES)
    if escaped is items or not _holds(items, _OTHER_CONTROLS):
        # Quoting each list once ('["' + items joined with '","' + '"]') rather than each item.
        joined = pc.binary_join(pa.ListArray.from_arrays(starts, escaped), '","')
        text = pc.binary_join_element_wise('["', joined, '"]', "")
        # A missing list has a null length, so its text is null here and "[]" below.
        text = pc.if_else(pc.equal(pc.list_value_length(lists), 0), "[]", text)
    else:
        # The offsets carry no nulls: a missing list is an empty one here, "[]".
        joined = pc.binary_join(pa.ListArray.from_arrays(starts, _json_strings(items)), ",")
        text = pc.binary_join_element_wise("[", joined, "]", "")
    return _Staged(pc.fill_null(text, "[]"))


def _json_objects(cells: NDArray[np.object_]) -> _Staged:
    """Dicts of strings as JSON objects; a missing or empty dict is ``{}``."""
    maps = pa.array(cells, type=_TEXT_MAP)
    entries = pc.binary_join_element_wise(_json_strings(maps.keys), _json_strings(maps.items), ":")
    joined = pc.binary_join(pa.ListArray.from_arrays(maps.offsets, entries), ",")
    text = pc.binary_join_element_wise("{", joined, "}", "")
    return _Staged(pc.fill_null(text, "{}"))


def _text(values: Any) -> pa.Array:
    """Text cells (a date object, should a parser keep one, becomes ISO text)."""
    array = pa.array(values, from_pandas=True)
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return array


def content_arrays(frame: pd.DataFrame) -> list[pa.Array | _Staged]:
    """The frame's content columns as Arrow strings with nulls, in ``CONTENT_COLUMNS`` order:
    what ``rows.database_columns`` gives psycopg, written the way PostgreSQL reads it."""
    arrays: list[pa.Array | _Staged] = []
    for column in CONTENT_COLUMNS:
        kind = KIND_BY_COLUMN.get(column)
        series = frame_column(frame, column)
        if kind is None:
            arrays.append(_json_objects(object_values(series)))
        elif kind == Kind.LIST:
            arrays.append(_json_lists(list_array(series)))
        elif kind == Kind.INT:
            arrays.append(pa.array(series.astype("Int64"), from_pandas=True).cast(pa.string()))
        elif kind == Kind.MONEY:
            amounts = series.astype("Float64").round(2)
            arrays.append(pa.array(amounts, from_pandas=True).cast(pa.string()))
        elif kind == Kind.BOOL:
            arrays.append(pa.array(series.astype("boolean"), from_pandas=True).cast(pa.string()))
        else:
            arrays.append(_text(object_values(series)))
    return arrays


def copy_text(columns: Sequence[pa.Array | _Staged | Sequence[Any]]) -> memoryview:
    """Rows of ``COPY ... FROM STDIN`` text: the columns (Arrow arrays, or sequences Arrow can
    read: str, int or None values) joined with tabs, one line a row, nulls as ``\\N``."""
    prepared = []
    for column in columns:
        if isinstance(column, _Staged):
            prepared.append(column.array)
            continue
        array = column if isinstance(column, pa.Array) else pa.array(column)
        if not pa.types.is_string(array.type):
            array = array.cast(pa.string())
        else:
            array = _escaped(array, _COPY_SPECIAL, _COPY_ESCAPES)
        prepared.append(pc.fill_null(array, NULL))
    if not prepared or not len(prepared[0]):
        return memoryview(b"")
    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*prepared, "\t"), "\n", "")
    one_list = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    return memoryview(pc.binary_join(one_list, "")[0].as_buffer())
