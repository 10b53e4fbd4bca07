"""The two ways staged rows reach PostgreSQL store the same values.

PostgreSQL gets a slice's rows as one ``COPY`` text buffer built column by column with Arrow
kernels (``copytext``); SQLite, and PostgreSQL before it, get one tuple a row
(``rows.database_columns``). These tests stage the same frames both ways into two staging tables
and compare every stored value: frames read from generated messy feeds, and frames holding the
values text encodings get wrong (backslashes, tabs, line breaks, quotes, control characters,
nulls, non-ASCII text, empty and missing lists and dicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from django.db import connection

from syncengine.feeds.merge.copytext import content_arrays
from syncengine.feeds.merge.rows import CONTENT_COLUMNS, database_columns
from syncengine.feeds.merge.tables import MergeTables
from tests.bench.feedgen import write_vauto_feed
from tests.syncengine.feeds.merge.conftest import car, frame
from tests.syncengine.feeds.support import read

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY text is PostgreSQL's"),
]

COLUMNS = ("row_number", "key", *CONTENT_COLUMNS)


def _stored(tables: MergeTables) -> list[tuple[Any, ...]]:
    names = ", ".join(f'"{column}"' for column in COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {names} FROM {tables.rows} ORDER BY row_number")  # noqa: S608
        return cursor.fetchall()


def _both_ways(chunk: pd.DataFrame) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows stored by the per-row path and by the columnar path."""
    stored = []
    for columnar in (False, True):
        tables = MergeTables()
        tables.create()
        try:
            leading = [chunk["row_number"].tolist(), chunk["key"].tolist()]
            if columnar:
                tables.copy_columns(tables.rows, COLUMNS, [*leading, *content_arrays(chunk)])
                tables.wait()
            else:
                rows = list(zip(*leading, *database_columns(chunk), strict=True))
                tables.write(tables.rows, COLUMNS, rows)
            stored.append(_stored(tables))
        finally:
            tables.drop()
    return stored[0], stored[1]


@pytest.mark.parametrize("seed", [3, 11])
def test_messy_feeds_are_stored_alike(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "messy.csv"
    write_vauto_feed(path, 2_000, seed=seed, messy=True)
    chunk = read(path).frame

    per_row, columnar = _both_ways(chunk)

    assert len(per_row) == 2_000
    assert columnar == per_row


AWKWARD = [
    "back\\slash",
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    'quote " inside',
    "control \x01 and \x1f",
    "\\N",
    "ünïcödé ✓ 日本",
    "",
    "trailing backslash \\",
]


def test_awkward_values_are_stored_alike() -> None:
    rows = []
    for number, text in enumerate(AWKWARD):
        rows.append(
            car(
                f"1HGCM82633A{number:06d}",
                description=text,
                trim=text or None,
                features=[text, "plain"] if text else [],
                photo_urls=[f"https://x.example/{number}?a={text}"],
                extra={text or "blank": text, "second": "two"} if number % 2 else {},
                price=None if number % 3 else 12_995.5,
                mileage=None if number % 4 else 120,
                certified=None if number % 5 else True,
                in_stock_date=None if number % 2 else "2026-02-14",
            )
        )
    rows.append(car("5YJSA1E27HF000337", features=None, extra=None, photo_urls=None))

    per_row, columnar = _both_ways(frame(rows))

    assert len(per_row) == len(rows)
    assert columnar == per_row
    descriptions = [row[COLUMNS.index("description")] for row in columnar]
    assert descriptions[: len(AWKWARD)] == AWKWARD
