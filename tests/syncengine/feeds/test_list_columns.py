"""List columns (features, photo URLs) are Arrow lists, split by pyarrow kernels.

``split_lists`` must give every row exactly what ``split_items`` (the per-row definition) gives:
these tests compare the two on generated messy feeds and on values where Arrow's idea of
whitespace, case or separators could differ from Python's. The merge must hash and stage an
Arrow list column exactly as it does an object column of the same Python lists (frames built by
hand, and hashes stored before the columns were Arrow).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from syncengine.feeds import normalize
from syncengine.feeds.merge.copytext import content_arrays, copy_text
from syncengine.feeds.merge.rows import (
    CONTENT_COLUMNS,
    content_hashes,
    database_columns,
    history_value,
    object_values,
)
from syncengine.feeds.normalize import (
    LIST_DTYPE,
    NULL_SENTINELS,
    PYTHON_WHITESPACE,
    split_items,
    split_lists,
)
from tests.bench.feedgen import write_vauto_feed
from tests.syncengine.feeds.merge.conftest import car, frame
from tests.syncengine.feeds.support import read

# Every character but the surrogates, which UTF-8 text cannot hold.
EVERY_CHARACTER = "".join(
    chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code < 0xE000
)
LIST_COLUMNS = ("features", "photo_urls")


def _arrow_and_reference(values: list[str], *, urls: bool) -> tuple[list[list[str]], ...]:
    column = pd.Series(values, dtype="large_string[pyarrow]")
    split = split_lists(column, urls=urls)
    assert split.dtype == LIST_DTYPE
    assert split.index.equals(pd.RangeIndex(len(values)))
    return split.tolist(), [split_items(value, urls=urls) for value in values]


def test_python_whitespace_is_what_strip_and_regex_treat_as_whitespace():
    # Given every character this Python knows
    # When it tells which are whitespace: str.strip() and the re module's \s
    stripped = {char for char in EVERY_CHARACTER if not char.strip()}
    matched = set(re.findall(r"\s", EVERY_CHARACTER))

    # Then both are exactly the characters the Arrow kernels are given
    assert stripped == set(PYTHON_WHITESPACE)
    assert matched == set(PYTHON_WHITESPACE)


def test_the_patterns_spell_out_every_case_python_folds():
    # Given the classes the URL pattern has for the letters of "https"
    letters = normalize._URL_COMMA_PATTERN.split("*", 1)[1]
    classes = re.findall(r"\[([^\]]+)\]", letters)

    # Then each holds every character Python's IGNORECASE matches to its letter (the long s,
    # U+017F, is an "s")
    for letter, spelled in zip("https", classes, strict=True):
        folded = set(re.findall(letter, EVERY_CHARACTER, re.IGNORECASE))
        assert set(spelled) == folded

    # And no character outside ASCII lowers to a letter of a null sentinel, so the sentinel
    # pattern's ASCII cases are all the cases there are
    beyond_ascii = "".join(char for char in EVERY_CHARACTER if not char.isascii())
    assert set(beyond_ascii.lower()) & set("".join(NULL_SENTINELS)) == set()


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_generated_messy_feeds_split_like_the_reference(tmp_path: Path, seed: int):
    # Given a messy generated feed's raw list columns
    path = tmp_path / "messy.csv"
    write_vauto_feed(path, 3_000, seed=seed, messy=True)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)

    for source, urls in (("Photo Url List", True), ("Features", False)):
        values = raw[source].tolist()
        for as_urls in (urls, not urls):
            # When they are split with Arrow kernels and row by row
            arrow, reference = _arrow_and_reference(values, urls=as_urls)

            # Then every list is the same
            assert arrow == reference, (source, as_urls)
            assert any(len(items) > 1 for items in arrow)


AWKWARD = [
    "",
    " ",
    "|",
    "||",
    ";",
    ",",
    " , ",
    "a",
    "a|",
    "|a",
    "|a|",
    ",a,",
    "a,",
    ",a",
    "a||b",
    "a,,b",
    "a;;b",
    "a;b|c",
    "a; b | c ;",
    "a,b;c",
    "a, b |c,d",
    "3.5L V6, 24V|Tow Package",
    "N/A",
    " n/a ",
    "#N/A",
    "#n/A",
    "NULL",
    "NuLl",
    "nan",
    "NaN",
    "NONE",
    "None",
    "-",
    " - ",
    "na",
    "nA",
    "n/a|b",
    "none,x",
    "nonee",
    "\u212aa",  # Kelvin sign, which lowers to "k"
    "\u0130",  # dotted capital I, which lowers to two characters
    "https://a/1.jpg,https://a/2,x.jpg",
    "https://a/1.jpg, HTTP://a/2.jpg",
    "https://a/1.jpg,HTTPS://a/2.jpg",
    "https://a/1.jpg,hTtP://a/2.jpg",
    "https://a/1,2.jpg",
    "https://a/w_640,h_480/1.jpg,https://a/w_640,h_480/2.jpg",
    "https://a/1.jpg,\thttps://a/2.jpg",
    "https://a/1.jpg,\nhttps://a/2.jpg",
    "https://a/1.jpg,\xa0https://a/2.jpg",
    "https://a/1.jpg,\u3000https://a/2.jpg",
    "https://a/1.jpg,\x1chttps://a/2.jpg",
    "https://a/1.jpg,\x85https://a/2.jpg",
    "https://a/1.jpg,\u200bhttps://a/2.jpg",  # a zero-width space is not whitespace
    "https://a/1.jpg,http\u017f://a/2.jpg",  # the long s
    "https://a/1.jpg,ftp://a/2.jpg",
    "https://a/1.jpg,http:/a/2.jpg",
    "https://a/1.jpg,https:// a/2.jpg",
    "https://a/1.jpg,,https://a/2.jpg",
    "https://a/1.jpg,https://",
    ",https://a/1.jpg",
    "https://a/1.jpg,",
    "https://a/1.jpg|https://a/2,x.jpg",
    "https://a/1.jpg;https://a/2.jpg,https://a/3.jpg",
    "tab\tinside|new\nline|carriage\rreturn",
    "\tpadded\t|\npadded\n",
    "a\x1c|\x1db\x1e|\x1f",
    "\x1f\x1e\x1d\x1c",
    "a\x0b|\x0cb",
    "\x85a\x85,b",
    "\u200ba\u200b|b",  # not whitespace: kept
    "\ufeffa|b",
    "\u180ea|b\u180e",  # Mongolian vowel separator: not whitespace in this Python
    "a\u2028|\u2029b",
    "Heated Seats , Sunroof ,Navigation",
    "ünïcödé|日本語 ✓|Ωmega",
    "  Çà va , dĳ ",
    "emoji 🚗|🚙",
    "a\x00b|c",
    "\x00",
    'quote " and back\\slash|x',
    "x" * 100_000 + "|" + "y" * 50_000,
    ", ".join(f"https://img.example/{number}.jpg" for number in range(500)),
    " | ".join(f"Feature {number}" for number in range(500)),
]
# Whitespace, and characters close to it that are not: both must split alike.
SPACES = [*PYTHON_WHITESPACE, "\u200b", "\u180e", "\ufeff", "\x00", "\x01"]


def _awkward_values() -> list[str]:
    values = list(AWKWARD)
    for space in SPACES:
        values += [
            f"{space}a{space}|{space}b{space}",
            f"{space}a{space},{space}b{space}",
            f"{space}{space}",
            f"{space}N/A{space}",
            f"{space}none",
            f"https://a/1.jpg,{space}https://a/2.jpg{space}",
            f"https://a/1.jpg{space},https://a/2.jpg",
            f"a{space};{space}b",
            f"{space}|{space}",
        ]
    return values


@pytest.mark.parametrize("urls", [True, False])
def test_awkward_values_split_like_the_reference(urls: bool):
    # Given values with every separator, sentinel and whitespace oddity
    values = _awkward_values()

    # When they are split with Arrow kernels and row by row
    arrow, reference = _arrow_and_reference(values, urls=urls)

    # Then every list is the same
    for value, got, expected in zip(values, arrow, reference, strict=True):
        assert got == expected, repr(value[:200])


def test_batches_join_without_seams(monkeypatch: pytest.MonkeyPatch):
    # Given more rows than a batch holds, the last batch short
    monkeypatch.setattr(normalize, "_LIST_BATCH_ROWS", 7)
    values = _awkward_values()

    # When they are split batch by batch
    arrow, reference = _arrow_and_reference(values, urls=True)

    # Then the lists are those of one pass
    assert arrow == reference


def test_any_column_of_text_is_split():
    # Given the same values as plain Python strings (a missing value among them), as pandas'
    # string dtype, and a slice of a longer column
    values = ["a|b", None, " N/A ", "c, d"]
    expected = [["a", "b"], [], [], ["c", "d"]]
    longer = pd.Series(["x", *values], dtype="large_string[pyarrow]").iloc[1:]

    for column in (
        pd.Series(values, dtype=object),
        pd.Series(values, dtype="string"),
        longer,
    ):
        # When they are split
        split = split_lists(column, urls=False)

        # Then each is a list column like any other, numbered from 0
        assert split.tolist() == expected
        assert split.index.equals(pd.RangeIndex(4))
    assert split_lists(pd.Series([], dtype=object), urls=True).tolist() == []


# --- the merge takes Arrow lists and Python lists alike ------------------------------------------


def _with_python_lists(chunk: pd.DataFrame) -> pd.DataFrame:
    """``chunk`` with its list columns as object columns of Python lists."""
    copy = chunk.copy()
    for column in LIST_COLUMNS:
        copy[column] = pd.Series(
            [list(cell) for cell in chunk[column].tolist()], index=chunk.index, dtype=object
        )
    return copy


def _with_arrow_lists(chunk: pd.DataFrame) -> pd.DataFrame:
    """``chunk`` with its list columns as Arrow lists (a missing list becomes an empty one)."""
    copy = chunk.copy()
    for column in LIST_COLUMNS:
        cells = [list(cell) if cell is not None else [] for cell in chunk[column]]
        copy[column] = pd.Series(cells, index=chunk.index, dtype=LIST_DTYPE)
    return copy


def _staged(chunk: pd.DataFrame) -> tuple[list[int], list[list[Any]], bytes]:
    """What the merge makes of ``chunk``: hashes, per-row values, and COPY text."""
    copy = bytes(copy_text(content_arrays(chunk)))
    return content_hashes(chunk).tolist(), database_columns(chunk), copy


AWKWARD_LISTS = [
    ['Sun "roof"', "back\\slash", "ünï"],
    ["tab\there", "line\nbreak", "carriage\rreturn"],
    ["control \x01 and \x1f", "\\N"],
    [],
    [""],
    ["", ""],
    ["a\x1fb"],
    ["日本語 ✓", "emoji 🚗"],
]


def _awkward_frame() -> pd.DataFrame:
    rows = [
        car(
            f"1HGCM82633A{number:06d}",
            features=items,
            photo_urls=[f"https://x.example/{number}/{item}" for item in items],
        )
        for number, items in enumerate(AWKWARD_LISTS)
    ]
    return frame(rows)


@pytest.mark.parametrize("seed", [2, 13])
def test_a_read_frame_is_hashed_and_staged_alike_with_python_lists(tmp_path: Path, seed: int):
    # Given a frame read from a messy feed (Arrow lists), and the same with Python lists
    path = tmp_path / "messy.csv"
    write_vauto_feed(path, 2_000, seed=seed, messy=True)
    chunk = read(path, chunk_rows=700).frame
    assert all(chunk[column].dtype == LIST_DTYPE for column in LIST_COLUMNS)

    # When both, and slices of both, are hashed and staged
    # Then every hash, every per-row value and every COPY line is the same
    for start, stop in ((0, len(chunk)), (650, 1_450), (1_999, 2_000)):
        arrow = chunk.iloc[start:stop]
        assert _staged(arrow) == _staged(_with_python_lists(arrow))


def test_awkward_lists_are_hashed_and_staged_alike():
    # Given lists holding quotes, backslashes, control characters, separators and empty items,
    # as Python lists (a missing list among them) and as Arrow lists
    python = _awkward_frame()
    python.loc[3, "features"] = None
    arrow = _with_arrow_lists(python)

    # When both, and a slice of both, are hashed and staged
    # Then every hash, every per-row value and every COPY line is the same
    assert _staged(arrow) == _staged(python)
    assert _staged(arrow.iloc[2:6]) == _staged(python.iloc[2:6])
    hashes, values, _ = _staged(arrow)
    assert len(set(hashes)) == len(hashes)
    features = values[CONTENT_COLUMNS.index("features")]
    assert features[0] == '["Sun \\"roof\\"","back\\\\slash","ünï"]'
    assert features[3] == "[]"


def test_a_stored_hash_matches_with_arrow_lists():
    # The hash stored for a vehicle before list columns were Arrow is the one computed now.
    python = frame([car("1HGCM82633A000001")])
    assert content_hashes(_with_arrow_lists(python)).tolist() == [6555894780923925555]


def test_object_values_of_a_list_column_are_python_lists():
    # Given an Arrow list column
    chunk = _with_arrow_lists(_awkward_frame())

    # When its values are taken for the history
    values = object_values(chunk["features"])

    # Then they are Python lists, as history rows store them
    assert values.dtype == np.object_
    assert all(type(cell) is list for cell in values)
    assert values.tolist() == AWKWARD_LISTS
    assert history_value("features", values[0]) == AWKWARD_LISTS[0]


def test_list_columns_of_large_types_are_read_too():
    # Given a list column of large Arrow types (another producer's choice)
    lists = pa.array([["a", "b"], [], None], type=pa.large_list(pa.large_string()))
    column = pd.Series(pd.arrays.ArrowExtensionArray(lists))

    # When its values are taken
    # Then they are Python lists, a missing one None
    assert object_values(column).tolist() == [["a", "b"], [], None]
