"""The vehicle merge against the hand-written PostgreSQL reference, at a million rows.

Three cases, each as rows/s through ``VehicleMerge`` (every chunk staged, then applied) beside the
reference measured in the same run: the same rows ``COPY``-ed into a staging table and written by
one ``INSERT ... ON CONFLICT DO UPDATE`` into a copy of the vehicle table (same indexes).

1. first load into an empty store;
2. the identical data again (a nightly file where nothing changed);
3. 10% of the rows changed and 1% new.

Targets: the first load at least 0.5x the reference's rate, cases 2 and 3 at least 2x, and the
process's peak RSS at most 1 GB (the parser shares the process, so the merge aims at ~400 MB).

Frames follow the parser's frame contract (``syncengine.feeds.merge.rows.FRAME_COLUMNS``) and are
made in memory, deterministically from a seed, one chunk of 100,000 rows at a time; making them is
not timed. The benchmark runs in a throwaway test database (``test_<name>``), created and migrated
here and dropped afterwards.
"""

from __future__ import annotations

import gc
import json
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.test.utils import setup_databases, teardown_databases
from numpy.typing import NDArray

# The runner (tests.bench) sets Django up before it imports a benchmark.
from accounts.models import Account, Dealership
from integrations.models import Integration
from syncengine.feeds.merge import MergeCounts, VehicleMerge
from syncengine.feeds.merge.rows import object_values
from syncengine.feeds.vehicles import VEHICLE_COLUMNS
from syncengine.models import Vehicle
from tests.bench import feedgen

CHUNK_ROWS = 100_000
SEED = 20_260_301
TARGETS = {"first load": 0.5, "identical again": 2.0, "10% changed, 1% new": 2.0}
RSS_LIMIT_MB = 1024

# The same vocabulary as the feed files the other benchmarks generate.
MAKES = {make: models for make, _, models in feedgen.MAKES}
TRIMS, BODIES, COLOURS, INTERIORS = (
    feedgen.TRIMS,
    feedgen.BODIES,
    feedgen.COLOURS,
    feedgen.INTERIORS,
)
ENGINES, TRANSMISSIONS = feedgen.ENGINES, feedgen.TRANSMISSIONS
DRIVETRAINS, FUELS, FEATURES, WORDS = (
    feedgen.DRIVETRAINS,
    feedgen.FUELS,
    feedgen.FEATURES,
    feedgen.WORDS,
)


@dataclass(frozen=True)
class Variant:
    """Which inventory a file holds: ``changed_every`` > 0 changes every n-th vehicle's price
    and mileage; ``new_rows`` vehicles the base inventory lacks are appended."""

    changed_every: int = 0
    new_rows: int = 0


class Draws:
    """Pseudo-random values that depend only on (seed, serial, draw): a vehicle is the same in
    every file, whichever chunk it falls in and however many rows that chunk has."""

    def __init__(self, serials: np.ndarray) -> None:
        self.serials: NDArray[np.uint64] = serials.astype(np.uint64)
        self.stream = 0

    def integers(self, low: int, high: int, columns: int = 0) -> np.ndarray:
        self.stream += 1
        width = max(columns, 1)
        counters: NDArray[np.uint64] = np.add.outer(
            self.serials << np.uint64(6), np.arange(width, dtype=np.uint64)
        )
        mixed = _mix(counters ^ np.uint64(SEED * 1_000_003 + self.stream * 7_919))
        values = (mixed % np.uint64(high - low)).astype(np.int64) + low
        return values if columns else values[:, 0]

    def pick(self, choices: list[str]) -> np.ndarray:
        return np.asarray(choices, dtype=object)[self.integers(0, len(choices))]


def _mix(values: NDArray[np.uint64]) -> NDArray[np.uint64]:
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def vehicle_frame(serials: np.ndarray, *, first_row: int, variant: Variant) -> pd.DataFrame:
    """Rows for the vehicles ``serials``: the same serial always gives the same vehicle."""
    size = len(serials)
    rng = Draws(serials)
    keys = [f"1FTW{serial:013d}" for serial in serials.tolist()]
    makes = rng.pick(list(MAKES))
    models = np.array(
        [MAKES[make][serial % 5] for make, serial in zip(makes, serials, strict=True)]
    )
    years = rng.integers(2012, 2026)
    mileage = rng.integers(3_000, 140_000)
    price = (rng.integers(9_000, 75_000) // 5 * 5).astype(np.float64)
    if variant.changed_every:
        changed = serials % variant.changed_every == 3
        price = np.where(changed, price - 100.0, price)
        mileage = np.where(changed, mileage + 57, mileage)
    days = rng.integers(0, 365)
    stock = [f"{serial % 10_000_000:07d}" for serial in serials.tolist()]
    word_counts = rng.integers(8, 14)
    word_picks = rng.integers(0, len(WORDS), 14)
    feature_counts = rng.integers(2, 6)
    feature_picks = rng.integers(0, len(FEATURES), 5)
    photo_counts = rng.integers(10, 19)
    base_day = np.datetime64("2025-01-01")
    frame = pd.DataFrame(
        {
            "row_number": np.arange(first_row, first_row + size, dtype=np.int64),
            "key": pd.Series(keys, dtype=object),
            "vin": pd.Series(keys, dtype=object),
            "stock_number": pd.Series(stock, dtype=object),
            "condition": pd.Series(np.where(years >= 2025, "new", "used"), dtype=object),
            "year": pd.Series(years, dtype="Int64"),
            "make": pd.Series(makes, dtype=object),
            "model": pd.Series(models, dtype=object),
            "trim": pd.Series(rng.pick(TRIMS), dtype=object),
            "body_style": pd.Series(rng.pick(BODIES), dtype=object),
            "exterior_color": pd.Series(rng.pick(COLOURS), dtype=object),
            "interior_color": pd.Series(rng.pick(INTERIORS), dtype=object),
            "mileage": pd.Series(mileage, dtype="Int64"),
            "price": pd.Series(price, dtype="Float64"),
            "msrp": pd.Series(price + 2_500.0, dtype="Float64"),
            "invoice": pd.Series([None] * size, dtype="Float64"),
            "book_value": pd.Series(np.round(price * 0.87, 2), dtype="Float64"),
            "currency": pd.Series([None] * size, dtype=object),
            "in_stock_date": pd.Series(
                np.datetime_as_string(base_day + days.astype("timedelta64[D]")), dtype=object
            ),
            "certified": pd.Series(rng.integers(0, 100) < 20, dtype="boolean"),
            "engine": pd.Series(rng.pick(ENGINES), dtype=object),
            "transmission": pd.Series(rng.pick(TRANSMISSIONS), dtype=object),
            "drivetrain": pd.Series(rng.pick(DRIVETRAINS), dtype=object),
            "fuel_type": pd.Series(rng.pick(FUELS), dtype=object),
            "doors": pd.Series(np.array([2, 4, 4, 4])[rng.integers(0, 4)], dtype="Int64"),
            "description": pd.Series(
                [
                    " ".join(WORDS[pick] for pick in picks[:count]) + ". Call us, open daily!"
                    for picks, count in zip(word_picks.tolist(), word_counts.tolist(), strict=True)
                ],
                dtype=object,
            ),
            "features": pd.Series(
                [
                    [FEATURES[pick] for pick in picks[:count]]
                    for picks, count in zip(
                        feature_picks.tolist(), feature_counts.tolist(), strict=True
                    )
                ],
                dtype=object,
            ),
            "photo_urls": pd.Series(
                [
                    [f"https://p.rly.io/{number}{index:02d}.jpg" for index in range(count)]
                    for number, count in zip(stock, photo_counts.tolist(), strict=True)
                ],
                dtype=object,
            ),
            "vdp_url": pd.Series([f"https://example-motors.com/v/{key}" for key in keys]),
            "extra": pd.Series([{"Dealer ID": "48213"}] * size, dtype=object),
        }
    )
    frame["vdp_url"] = frame["vdp_url"].astype(object)
    return frame


def chunks(rows: int, variant: Variant) -> Iterator[pd.DataFrame]:
    """The file, a chunk at a time (the parser's chunk size), new vehicles at its end."""
    serials = np.concatenate(
        [np.arange(rows, dtype=np.int64), np.arange(rows, rows + variant.new_rows, dtype=np.int64)]
    )
    for start in range(0, len(serials), CHUNK_ROWS):
        yield vehicle_frame(
            serials[start : start + CHUNK_ROWS], first_row=start + 1, variant=variant
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the merge ------------------------------------------------------------------------------


def merge_file(
    integration: Integration, rows: int, variant: Variant, now: datetime
) -> tuple[float, MergeCounts]:
    """Read the store, stage every chunk and apply: seconds spent in the merge (not in making
    frames)."""
    started = time.perf_counter()
    merge = VehicleMerge(
        integration=integration,
        feed_file=None,
        strategy="merge",
        sold_grace_syncs=2,
        sold_grace_hours=0,
        track_history=False,
        now=now,
    )
    seconds = time.perf_counter() - started
    for chunk in chunks(rows, variant):
        started = time.perf_counter()
        merge.stage(chunk)
        seconds += time.perf_counter() - started
    started = time.perf_counter()
    counts = merge.apply()
    return seconds + time.perf_counter() - started, counts


# --- the reference --------------------------------------------------------------------------

REFERENCE = "bench_reference_vehicle"
REFERENCE_STAGING = "bench_reference_staging"
# What a hand-written loader would do: every row upserted, whether or not it changed.
_REFERENCE_UPSERT = """
    INSERT INTO {table} (id, account_id, integration_id, dealership_id, status, {columns},
        missing_syncs, first_seen_at, last_seen_at, created_at, updated_at)
    SELECT gen_random_uuid(), %s, %s, %s, 'active', {columns}, 0, %s, %s, %s, %s
    FROM {staging}
    ON CONFLICT (integration_id, key) DO UPDATE SET {updates},
        last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at
"""


def _reference_columns() -> list[str]:
    return ["key", *VEHICLE_COLUMNS, "extra"]


def reference_setup() -> None:
    """A copy of the vehicle table with all its indexes and constraints, and a staging table."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE}")
        cursor.execute(f"CREATE TABLE {REFERENCE} (LIKE {Vehicle._meta.db_table} INCLUDING ALL)")


def reference_file(integration: Integration, rows: int, variant: Variant, now: datetime) -> float:
    """The hand-written baseline: COPY every row into a temporary table, one upsert of all."""
    columns = _reference_columns()
    staging_types = ", ".join(
        f'"{column}" {Vehicle._meta.get_field(column).db_type(connection)}' for column in columns
    )
    names = ", ".join(f'"{column}"' for column in columns)
    seconds = 0.0
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {REFERENCE_STAGING} ({staging_types})")
        for chunk in chunks(rows, variant):
            started = time.perf_counter()
            values = []
            for column in columns:
                cells = object_values(chunk[column])
                if column in ("features", "photo_urls", "extra"):
                    values.append([json.dumps(cell) for cell in cells])
                else:
                    values.append(cells.tolist())
            with cursor.cursor.copy(f"COPY {REFERENCE_STAGING} ({names}) FROM STDIN") as copy:
                for row in zip(*values, strict=True):
                    copy.write_row(row)
            seconds += time.perf_counter() - started
        started = time.perf_counter()
        with transaction.atomic():
            updates = ", ".join(f'"{column}" = EXCLUDED."{column}"' for column in columns[1:])
            sql = _REFERENCE_UPSERT.format(
                table=REFERENCE, staging=REFERENCE_STAGING, columns=names, updates=updates
            )
            params = [integration.account_id, integration.pk, integration.dealership_id]
            cursor.execute(sql, [*params, now, now, now, now])
        seconds += time.perf_counter() - started
        cursor.execute(f"DROP TABLE {REFERENCE_STAGING}")
    return seconds


# --- the run --------------------------------------------------------------------------------


def _analyze() -> None:
    """Statistics after each file, as autovacuum would gather them before the next night's."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Vehicle._meta.db_table}")
        cursor.execute(f"ANALYZE {REFERENCE}")


def run(args: Any) -> None:
    """Measure the three cases and print rates, ratios to the reference, and peak RSS."""
    if connection.vendor != "postgresql":
        print("bench_merge: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    rows = int(args.rows)
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        _run(rows)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)


def _run(rows: int) -> None:
    account = Account.objects.create(name="Bench Motors Group")
    dealership = Dealership.objects.create(account=account, name="Bench Motors")
    integration = Integration.objects.create(
        account=account, dealership=dealership, name="Bench feed", type="vauto"
    )
    reference_setup()
    start = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    cases = [
        ("first load", Variant()),
        ("identical again", Variant()),
        ("10% changed, 1% new", Variant(changed_every=10, new_rows=rows // 100)),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone() or ("?",)
    print(f"rows: {rows:,}; PostgreSQL {version}; chunks of {CHUNK_ROWS:,}")
    print(f"peak RSS before: {peak_rss_mb():.0f} MB")
    # The merge cases run first, so the peak RSS they leave is the merge's (with frames of the
    # parser's chunk size in memory, as in a worker); the reference runs afterwards.
    results = []
    for night, (name, variant) in enumerate(cases):
        gc.collect()
        seconds, counts = merge_file(integration, rows, variant, start + timedelta(days=night))
        _analyze()
        results.append((seconds, counts))
        print(
            f"{name:>20}: merge {seconds:6.1f} s; created {counts.created:,} updated"
            f" {counts.updated:,} unchanged {counts.unchanged:,} sold {counts.sold:,};"
            f" peak RSS {peak_rss_mb():.0f} MB"
        )
    merge_peak = peak_rss_mb()
    failures = []
    for night, ((name, variant), (merge_seconds, _)) in enumerate(zip(cases, results, strict=True)):
        gc.collect()
        reference_seconds = reference_file(
            integration, rows, variant, start + timedelta(days=night)
        )
        _analyze()
        file_rows = rows + variant.new_rows
        merge_rate = file_rows / merge_seconds
        reference_rate = file_rows / reference_seconds
        ratio = merge_rate / reference_rate
        target = TARGETS[name]
        if ratio < target:
            failures.append(name)
        print(
            f"{name:>20}: merge {merge_rate:>9,.0f} rows/s ({merge_seconds:5.1f} s) | reference"
            f" {reference_rate:>9,.0f} rows/s ({reference_seconds:5.1f} s) | {ratio:5.2f}x"
            f" (target {target}x: {'ok' if ratio >= target else 'MISSED'})"
        )
    verdict = "ok" if merge_peak <= RSS_LIMIT_MB else "MISSED"
    print(f"peak RSS of the merge runs: {merge_peak:.0f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    if failures or merge_peak > RSS_LIMIT_MB:
        print(f"bench_merge: targets missed: {', '.join(failures) or 'peak RSS'}")
