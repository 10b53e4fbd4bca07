"""Detecting how a feed file is written: its delimiter, its line endings and its header row.

Detection looks at the first MiB of the (UTF-8) file. Partners' files are comma-, pipe-, tab- or
semicolon-delimited (semicolons come from Excel in European locales), with CRLF, LF or, from old
Mac exports, bare CR line endings, and quoted fields may span lines. The scan below is quote-aware
like pandas' C tokenizer: a quote opens a quoted field only at the start of a field, a doubled
quote inside one is a literal quote, and a quote elsewhere (``20" wheels``) is just a character.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field

from syncengine.feeds.errors import FeedFileError

CANDIDATE_DELIMITERS = (",", "\t", "|", ";")  # in order of preference when counts tie
DELIMITER_NAMES = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon", " ": "space"}
LINE_ENDING_NAMES = {"\r\n": "CRLF", "\n": "LF", "\r": "CR"}
SAMPLE_RECORDS = 50


@dataclass
class Record:
    """One record (row) of the sample: byte offsets and delimiter counts outside quotes."""

    start: int
    end: int  # just after the line break
    line_ending: str  # "" when the sample ended first
    counts: Counter[str] = field(default_factory=Counter)
    blank: bool = True  # nothing but whitespace and delimiters
    open_quote: bool = False  # the sample ended inside a quoted field of this record

    @property
    def complete(self) -> bool:
        return bool(self.line_ending)


@dataclass(frozen=True)
class Dialect:
    """How to read the file: decided by detection, or given by the file options."""

    delimiter: str
    line_ending: str  # the first line break seen: "\r\n", "\n" or "\r"
    header: tuple[str, ...] | None  # the header's fields, or None for a header-less feed
    header_end: int  # bytes before the first data row (the header and blank lines before it)
    width: int  # fields per row: the header's, or the most common one of a header-less feed
    has_rows: bool  # False only when the whole file was sampled and nothing follows the header


def _scan(sample: bytes, delimiters: str, *, cr_only: bool, limit: int) -> list[Record]:
    """Split ``sample`` into up to ``limit`` records, counting each delimiter outside quotes."""
    specials = re.escape(delimiters) + ('"\r' if cr_only else '"\r\n')
    pattern = re.compile(b"[" + specials.encode() + b"]")
    filler = (" \t" + delimiters).encode()  # what a blank row may consist of
    records: list[Record] = []
    record = Record(start=0, end=len(sample), line_ending="")
    field_start = 0
    in_quotes = False
    skip_to = -1
    for match in pattern.finditer(sample):
        index = match.start()
        if index < skip_to:
            continue
        char = chr(sample[index])
        if in_quotes:
            if char == '"':
                if sample[index + 1 : index + 2] == b'"':
                    skip_to = index + 2  # a doubled quote: a literal quote inside the field
                else:
                    in_quotes = False
            continue
        if char == '"':
            in_quotes = index == field_start
            record.blank = False
        elif char in delimiters:
            record.counts[char] += 1
            field_start = index + 1
        else:
            end = index + 1
            if char == "\r" and not cr_only and sample[end : end + 1] == b"\n":
                end += 1
            if record.blank and sample[record.start : index].translate(None, filler).strip():
                record.blank = False
            record.end, record.line_ending = end, sample[index:end].decode()
            records.append(record)
            if len(records) >= limit:
                return records
            record = Record(start=end, end=len(sample), line_ending="")
            field_start = end
    if record.start < len(sample):
        if sample[record.start :].translate(None, filler).strip():
            record.blank = False
        record.open_quote = in_quotes
        records.append(record)
    return records


def _choose_delimiter(records: list[Record]) -> str:
    """The candidate found the same number of times on most rows, preferring more columns.

    The first record (the header, or a header-less feed's first row) sets the expected count; a
    comma that appears in a free-text column changes from row to row and loses to the real one.
    """
    best: tuple[float, int, int] | None = None
    chosen = ","
    rows = records[1:] or records
    for preference, delimiter in enumerate(CANDIDATE_DELIMITERS):
        expected = records[0].counts[delimiter]
        if not expected:
            continue
        agreement = sum(row.counts[delimiter] == expected for row in rows) / len(rows)
        score = (round(agreement, 2), expected, -preference)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _fields(record_bytes: bytes, delimiter: str) -> list[str]:
    """The fields of one record, as the csv module (and pandas) read them."""
    text = record_bytes.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    return next(reader, [])


def detect_dialect(
    sample: bytes,
    *,
    whole_file: bool,
    delimiter: str | None,
    row_delimiter: str | None,
    include_header: bool,
) -> Dialect:
    """Detect what the options leave open from the start of the file (``sample``).

    Raises ``FeedFileError`` for a file with nothing in it, or one that ends inside a quoted
    field of its first row.
    """
    cr_only = row_delimiter == "\r"
    candidates = delimiter or "".join(CANDIDATE_DELIMITERS)
    records = [
        record
        for record in _scan(sample, candidates, cr_only=cr_only, limit=SAMPLE_RECORDS + 1)
        if not record.blank
    ]
    if not records:
        if not whole_file:
            raise FeedFileError("The file starts with over 1 MB of blank lines.")
        raise FeedFileError("The file is empty.")
    first = records[0]
    if not first.complete:
        if first.open_quote and whole_file:
            raise FeedFileError(
                "The file ends inside a quoted field (a quote is never closed): the upload "
                "looks truncated."
            )
        if not whole_file:
            raise FeedFileError(
                "The first row is longer than 1 MB; this does not look like a delimited feed file."
            )
    complete = [record for record in records if record.complete] or records
    chosen = delimiter or _choose_delimiter(complete)
    line_ending = row_delimiter or next(
        (record.line_ending for record in records if record.complete), "\n"
    )
    if include_header:
        header = tuple(_fields(sample[first.start : first.end], chosen))
        rest = sample[first.end :]
        return Dialect(
            delimiter=chosen,
            line_ending=line_ending,
            header=header,
            header_end=first.end,
            width=len(header),
            has_rows=not whole_file or bool(rest.strip()),
        )
    widths = Counter(record.counts[chosen] + 1 for record in complete[:SAMPLE_RECORDS])
    return Dialect(
        delimiter=chosen,
        line_ending=line_ending,
        header=None,
        header_end=0,
        width=widths.most_common(1)[0][0],
        has_rows=True,
    )
