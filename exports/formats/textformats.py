"""CSV, JSON (an array, or JSON Lines) and XML writers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from exports.formats.base import BinarySink, Column, ColumnType, CsvDialect
from exports.formats.options import FormatOptions
from exports.formats.writer import (
    TextWriter,
    converters,
    iso_timestamp,
    plain_decimal,
)


def json_text(value: Any) -> str:
    """JSON text of a list or object cell, in the layout PostgreSQL prints ``jsonb`` in."""
    return json.dumps(value, ensure_ascii=False, default=str)


_NEWLINES = re.compile(r"\r\n|\r|\n")


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


# --- CSV -----------------------------------------------------------------------------------


class CsvWriter(TextWriter):
    """RFC 4180 CSV in UTF-8: fields holding the delimiter, a quote, a carriage return or a
    line feed are quoted and their quotes doubled (all fields with ``quoteAll``).

    A missing value and an empty string are both an empty field. Booleans are ``true`` /
    ``false``, timestamps ISO 8601 in UTC, decimals exact, lists and objects JSON text.
    """

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        super().__init__(sink, columns, options)
        dialect = options.dialect
        self._buffer = io.StringIO()
        # csv quotes a field holding a character of its line terminator; "\r\n" makes it quote
        # every field with a carriage return or line feed, whatever line ending the file uses,
        # which each row's ending is then swapped for.
        self._csv = csv.writer(
            self._buffer,
            delimiter=dialect.delimiter,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_ALL if dialect.quote_all else csv.QUOTE_MINIMAL,
            lineterminator="\r\n",
        )
        self._ending = dialect.line_ending
        text_fixes = []
        if dialect.replace_tab:
            text_fixes.append(lambda text: text.replace("\t", " "))
        if dialect.replace_newline:
            text_fixes.append(lambda text: _NEWLINES.sub(" ", text))

        def fix(text: str) -> str:
            for each in text_fixes:
                text = each(text)
            return text

        def as_text(convert: Any) -> Any:
            return (lambda value: fix(convert(value))) if text_fixes else convert

        by_type: dict[str, Any] = {
            ColumnType.BOOLEAN: _bool_text,
            ColumnType.TIMESTAMP: iso_timestamp,
            ColumnType.DECIMAL: plain_decimal,
            ColumnType.STRING_LIST: as_text(json_text),
            ColumnType.JSON: as_text(
                lambda value: value if isinstance(value, str) else json_text(value)
            ),
        }
        if text_fixes:
            by_type[ColumnType.STRING] = fix
        self._converters = converters(self.columns, by_type)

    def accepts(self, dialect: CsvDialect | None) -> bool:
        return dialect == self.options.dialect

    def _line(self, values: Sequence[Any]) -> bytes:
        self._csv.writerow(values)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        # "replace": a lone surrogate (from a JSON "\\ud800" escape) is no UTF-8 at all.
        return (text[:-2] + self._ending).encode("utf-8", "replace")

    def header(self) -> bytes:
        return self._line(self.names) if self.options.include_header else b""

    def footer(self) -> bytes:
        return b""

    def encode(self, values: Sequence[Any]) -> bytes:
        if self._converters:
            values = list(values)
            for index, convert in self._converters:
                value = values[index]
                if value is not None:
                    values[index] = convert(value)
        return self._line(values)


# --- JSON ----------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(plain_decimal(value)) if value.is_finite() else None
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _stdlib_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime):
        return iso_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def json_row(names: Sequence[str], values: Sequence[Any]) -> bytes:
    """One row as a JSON object: numbers as numbers (decimals exact), timestamps ISO 8601."""
    row = dict(zip(names, values, strict=True))
    try:
        return orjson.dumps(row, default=_json_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # What orjson refuses (integers past 64 bits, text with lone surrogates) the standard
        # library writes, escaping everything outside ASCII.
        return json.dumps(row, default=_stdlib_default, allow_nan=False).encode()


class JsonWriter(TextWriter):
    """One JSON array of row objects, or JSON Lines (one object per line) with ``jsonLines``."""

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        super().__init__(sink, columns, options)
        self._lines = options.json_lines
        self.separator = b"" if self._lines else b","

    def header(self) -> bytes:
        return b"" if self._lines else b"["

    def footer(self) -> bytes:
        if self._lines:
            return b""
        return b"\n]\n" if self.rows_written else b"]\n"

    def footer_room(self) -> int:
        return 3

    def encode(self, values: Sequence[Any]) -> bytes:
        data = json_row(self.names, values)
        return data + b"\n" if self._lines else b"\n" + data


# --- XML -----------------------------------------------------------------------------------

_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_REST = _START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
_NOT_NAME_CHAR = re.compile(f"[^{_REST}]")
_NAME_START = re.compile(f"[{_START}]")
# Characters XML 1.0 cannot hold, even escaped: C0 controls but tab, LF and CR; surrogates;
# U+FFFE and U+FFFF.
_INVALID_XML_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_name(name: str) -> str:
    """``name`` as a valid XML element name (without a namespace prefix): every character a
    name cannot hold becomes ``_``, and a name that cannot start as it does (a digit, a dot)
    or starts with the reserved ``xml`` gets a leading ``_``."""
    cleaned = _NOT_NAME_CHAR.sub("_", name)
    if not cleaned or not _NAME_START.match(cleaned) or cleaned[:3].lower() == "xml":
        cleaned = "_" + cleaned
    return cleaned


def xml_names(names: Sequence[str]) -> list[str]:
    """Element names for columns: sanitised, and made unique with ``_2``, ``_3`` suffixes."""
    taken: set[str] = set()
    result = []
    for name in names:
        candidate = base = xml_name(name)
        counter = 2
        while candidate in taken:
            candidate = f"{base}_{counter}"
            counter += 1
        taken.add(candidate)
        result.append(candidate)
    return result


def xml_escaped(text: str) -> str:
    """``text`` as XML character data: markup characters escaped, a carriage return kept as
    ``&#13;`` (a parser would read a raw one as a line feed), characters XML 1.0 cannot hold
    dropped."""
    if _INVALID_XML_CHARS.search(text):
        text = _INVALID_XML_CHARS.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;") if "\r" in text else text


class XmlWriter(TextWriter):
    """XML 1.0 in UTF-8: ``<rows><row><column>value</column>...</row>...</rows>``.

    Root and row element names come from ``rootElement`` / ``rowElement``; column names are
    sanitised into element names (``xml_names``). A missing value leaves its element out; an
    empty string is an empty element. Lists are ``<item>`` children; objects are JSON text.
    Characters XML cannot hold are dropped and markup escaped (``xml_escaped``), so every file
    is well-formed; rows are written as text, one at a time.
    """

    def __init__(self, sink: BinarySink, columns: Sequence[Column], options: FormatOptions):
        super().__init__(sink, columns, options)
        self._root = xml_name(options.root_element)
        row = xml_name(options.row_element)
        self._open, self._close, self._empty = f"<{row}>", f"</{row}>\n", f"<{row}/>\n"
        self._fields = [
            (f"<{name}>", f"</{name}>", f"<{name}/>", column.type)
            for name, column in zip(xml_names(self.names), self.columns, strict=True)
        ]

    def header(self) -> bytes:
        return f"<?xml version='1.0' encoding='UTF-8'?>\n<{self._root}>\n".encode()

    def footer(self) -> bytes:
        return f"</{self._root}>\n".encode()

    def encode(self, values: Sequence[Any]) -> bytes:
        parts = [self._open]
        for (start, end, empty, kind), value in zip(self._fields, values, strict=True):
            if value is None:
                continue
            if kind == ColumnType.STRING_LIST and isinstance(value, list):
                items = "".join(
                    "<item/>" if item is None else f"<item>{xml_escaped(_item_text(item))}</item>"
                    for item in value
                )
                parts.append(f"{start}{items}{end}" if items else empty)
                continue
            text = value if isinstance(value, str) else _xml_value(kind, value)
            parts.append(f"{start}{xml_escaped(text)}{end}" if text else empty)
        if len(parts) == 1:
            return self._empty.encode()
        parts.append(self._close)
        return "".join(parts).encode("utf-8", "replace")


def _item_text(item: Any) -> str:
    return item if isinstance(item, str) else json_text(item)


def _xml_value(kind: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return _bool_text(value)
    if isinstance(value, dt.datetime):
        return iso_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, int | float) and kind != ColumnType.JSON:
        return str(value)
    return json_text(value)
