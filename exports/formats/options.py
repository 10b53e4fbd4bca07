"""The options of each file format: their names, defaults, validation and parsed form.

Options are the user's JSON as sent, camelCase. CSV also takes the names a file import's
``file.csv`` uses (``columnDelimiter``, ``rowDelimiter``, ``wrapWithQuotes``, ...), so an
import's options can be handed over unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exports.formats.base import CsvDialect

Problems = dict[str, list[str]]

CSV, JSON, PARQUET, XML = "CSV", "JSON", "PARQUET", "XML"
FORMATS = (CSV, JSON, PARQUET, XML)

DEFAULT_MAX_FILE_SIZE_MB = 256
MAX_FILE_SIZE_MB_LIMIT = 5 * 1024 * 1024  # 5 TiB, the largest object S3 stores
DEFAULT_ROW_GROUP_SIZE = 100_000
ROW_GROUP_SIZE_RANGE = (1_000, 1_000_000)
XML_NAME_MAX_LENGTH = 100

TEXT_COMPRESSION = ("none", "gzip")
PARQUET_COMPRESSION = ("snappy", "zstd", "gzip", "none")
LINE_ENDINGS = ("\n", "\r\n", "\r")

# Option -> the name a file import's ``file.csv`` gives it.
CSV_ALIASES = {
    "delimiter": "columnDelimiter",
    "lineEnding": "rowDelimiter",
    "quoteAll": "wrapWithQuotes",
}
COMMON_OPTIONS = ("compression", "maxFileSizeMb")
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {
    CSV: (
        "delimiter",
        "includeHeader",
        "quoteAll",
        "lineEnding",
        "replaceTabWithSpace",
        "replaceNewlineWithSpace",
        *CSV_ALIASES.values(),
    ),
    JSON: ("jsonLines",),
    PARQUET: ("rowGroupSize",),
    XML: ("rootElement", "rowElement"),
}


@dataclass(frozen=True)
class FormatOptions:
    """The parsed options of one format; every field has its default."""

    format: str
    compression: str = "none"
    max_file_size_mb: float = DEFAULT_MAX_FILE_SIZE_MB
    dialect: CsvDialect = field(default_factory=CsvDialect)
    include_header: bool = True
    json_lines: bool = False
    root_element: str = "rows"
    row_element: str = "row"
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE

    @property
    def max_part_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)

    @property
    def gzip(self) -> bool:
        return self.format != PARQUET and self.compression == "gzip"

    @property
    def extension(self) -> str:
        """The file name extension: ``csv``, ``json`` (``jsonl`` for JSON Lines), ``parquet``,
        ``xml``; ``.gz`` added for gzip."""
        base = {CSV: "csv", JSON: "jsonl" if self.json_lines else "json"}.get(
            self.format, self.format.lower()
        )
        return f"{base}.gz" if self.gzip else base


class FormatOptionsError(ValueError):
    """Options that are not valid for their format; ``problems`` maps option to messages."""

    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in problems.items()))
        self.problems = problems


def normalise_format(format: str) -> str | None:
    """``CSV`` for ``csv`` or ``CSV`` (exports spell formats in capitals, file imports in
    lower case); None for a format that is not one of the four."""
    upper = format.upper() if isinstance(format, str) else ""
    return upper if upper in FORMATS else None


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_csv(options: Mapping[str, Any], problems: Problems) -> None:
    for name, alias in CSV_ALIASES.items():
        if name in options and alias in options and options[name] != options[alias]:
            problems[alias] = [f"Conflicts with {name}; give one of them."]
    for key in ("delimiter", "columnDelimiter"):
        if key in options:
            value = options[key]
            if not isinstance(value, str) or len(value) != 1:
                problems[key] = ["Must be a single character."]
            elif value in '"\r\n':
                problems[key] = ["May not be a quote, carriage return or line feed."]
    for key in ("lineEnding", "rowDelimiter"):
        if key in options and options[key] not in LINE_ENDINGS:
            problems[key] = ['Must be "\\n", "\\r\\n" or "\\r".']
    for key in (
        "includeHeader",
        "quoteAll",
        "wrapWithQuotes",
        "replaceTabWithSpace",
        "replaceNewlineWithSpace",
    ):
        if key in options and not _is_bool(options[key]):
            problems[key] = ["Must be true or false."]


def _check_xml_name(options: Mapping[str, Any], key: str, problems: Problems) -> None:
    if key not in options:
        return
    value = options[key]
    if not isinstance(value, str) or not value.strip():
        problems[key] = ["Must be a non-empty string (an XML element name)."]
    elif len(value) > XML_NAME_MAX_LENGTH:
        problems[key] = [f"At most {XML_NAME_MAX_LENGTH} characters."]


def format_options_problems(format: str, options: Any) -> Problems:
    """What is wrong with ``options`` for ``format``, keyed by option (empty when valid)."""
    kind = normalise_format(format)
    if kind is None:
        return {"format": [f"{format!r} is not a format; use one of: {', '.join(FORMATS)}."]}
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        return {"options": ["Must be a JSON object."]}
    problems: Problems = {}
    allowed = (*COMMON_OPTIONS, *FORMAT_OPTIONS[kind])
    for key in options:
        if key not in allowed:
            problems[str(key)] = [f"Not an option of {kind}; use: {', '.join(allowed)}."]
    if "compression" in options:
        choices = PARQUET_COMPRESSION if kind == PARQUET else TEXT_COMPRESSION
        value = options["compression"]
        if value is not None and value not in choices:
            problems["compression"] = [f"Must be one of: {', '.join(choices)}."]
    if "maxFileSizeMb" in options:
        value = options["maxFileSizeMb"]
        if not _is_number(value) or not 1 <= value <= MAX_FILE_SIZE_MB_LIMIT:
            problems["maxFileSizeMb"] = [f"Must be a number from 1 to {MAX_FILE_SIZE_MB_LIMIT}."]
    if kind == CSV:
        _check_csv(options, problems)
    elif kind == JSON:
        if "jsonLines" in options and not _is_bool(options["jsonLines"]):
            problems["jsonLines"] = ["Must be true or false."]
    elif kind == XML:
        _check_xml_name(options, "rootElement", problems)
        _check_xml_name(options, "rowElement", problems)
    elif "rowGroupSize" in options:
        low, high = ROW_GROUP_SIZE_RANGE
        value = options["rowGroupSize"]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            problems["rowGroupSize"] = [f"Must be a whole number from {low:,} to {high:,}."]
    return problems


def format_options(format: str, options: Mapping[str, Any] | None = None) -> FormatOptions:
    """The parsed options, defaults filled in; ``FormatOptionsError`` when they are invalid."""
    if problems := format_options_problems(format, options):
        raise FormatOptionsError(problems)
    kind = normalise_format(format)
    assert kind is not None
    given = dict(options or {})

    def pick(name: str, default: Any) -> Any:
        alias = CSV_ALIASES.get(name)
        if name in given:
            return given[name]
        if alias is not None and alias in given:
            return given[alias]
        return default

    compression = given.get("compression") or ("snappy" if kind == PARQUET else "none")
    dialect = CsvDialect(
        delimiter=pick("delimiter", ","),
        quote_all=pick("quoteAll", False),
        line_ending=pick("lineEnding", "\n"),
        replace_tab=given.get("replaceTabWithSpace", False),
        replace_newline=given.get("replaceNewlineWithSpace", False),
    )
    return FormatOptions(
        format=kind,
        compression=compression,
        max_file_size_mb=given.get("maxFileSizeMb", DEFAULT_MAX_FILE_SIZE_MB),
        dialect=dialect,
        include_header=given.get("includeHeader", True),
        json_lines=given.get("jsonLines", False),
        root_element=given.get("rootElement", "rows"),
        row_element=given.get("rowElement", "row"),
        row_group_size=given.get("rowGroupSize", DEFAULT_ROW_GROUP_SIZE),
    )
