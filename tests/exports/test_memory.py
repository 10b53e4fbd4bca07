"""Exports stream: the memory a writer (and an entity's row stream) holds does not grow with the
number of rows. Measured with tracemalloc (Python's allocations) on a small and a ten times
larger run; the worker's whole RSS at a million rows is in the benchmark (tests/bench)."""

from __future__ import annotations

import datetime as dt
import tracemalloc
from decimal import Decimal

import pytest

from exports.entities import entity_source
from exports.formats import Column, ColumnType, format_options, write_parts
from tests.exports.conftest import put_records

COLUMNS = [
    Column("id", ColumnType.INTEGER),
    Column("vin"),
    Column("price", ColumnType.DECIMAL),
    Column("certified", ColumnType.BOOLEAN),
    Column("seenAt", ColumnType.TIMESTAMP),
    Column("photoUrls", ColumnType.STRING_LIST),
    Column("description"),
    Column("extra", ColumnType.JSON),
]
SEEN = dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC)


class NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


class NullParts:
    def __call__(self, number: int) -> _Part:
        return _Part()


class _Part:
    def __enter__(self) -> NullSink:
        return NullSink()

    def __exit__(self, *exc: object) -> None:
        return None


def rows(count: int):
    for n in range(count):
        yield (
            n,
            f"1FTW{n:013d}",
            Decimal(n % 90_000) + Decimal("0.99"),
            n % 3 == 0,
            SEEN,
            [f"https://p.example/{n}/{i}.jpg" for i in range(5)],
            f'Vehicle {n}, "clean"\nsecond line',
            {"Dealer ID": "48213"},
        )


def peak_bytes(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bounded(small: int, large: int) -> bool:
    """The ten-times-larger run's peak is not ten times the small one's (a little noise and
    a few lazily created objects are allowed)."""
    return large < small * 1.5 + 512 * 1024


@pytest.mark.parametrize(
    ("format_", "options"),
    [
        ("CSV", {}),
        ("CSV", {"compression": "gzip"}),
        ("JSON", {}),
        ("JSON", {"jsonLines": True}),
        ("XML", {}),
        ("PARQUET", {"rowGroupSize": 1_000}),
    ],
)
def test_a_writers_memory_does_not_grow_with_the_rows(format_, options):
    parsed = format_options(format_, options)

    def export(count):
        return lambda: write_parts(parsed, columns=COLUMNS, rows=rows(count), open_sink=NullParts())

    small, large = peak_bytes(export(2_000)), peak_bytes(export(20_000))
    assert bounded(small, large), (small, large)


def test_an_entitys_row_stream_does_not_grow_with_the_rows(account):
    # Given two entities of the record store, one ten times the other's size
    def records(count):
        return [
            (f"k{n:06d}", {"n": n, "name": f"customer {n}", "tags": ["a", "b"]})
            for n in range(count)
        ]

    put_records(account, "small", records(3_000))
    put_records(account, "large", records(30_000))
    parsed = format_options("JSON", {"jsonLines": True})

    def export(entity):
        def run():
            source = entity_source(account=account, entity=entity)
            write_parts(
                parsed, columns=source.columns, rows=source.stream(parsed), open_sink=NullParts()
            )

        return run

    # When each is exported, then the larger one's peak is about the smaller one's
    small, large = peak_bytes(export("small")), peak_bytes(export("large"))
    assert bounded(small, large), (small, large)
