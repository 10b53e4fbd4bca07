"""The feed pipeline from file to store, against PostgreSQL: the numbers the README reports.

Three nights of a vAuto-style feed (``feedgen``): a first load into an empty inventory, the
identical file again, and a file in which 10% of the rows changed and 1% are new vehicles. Each is
processed by ``feed_file_ingest`` (parse, map, normalise, merge, log) in a child process, as a
worker would, and its peak RSS is that child's. The reference, measured in the same run on the
same files: PostgreSQL ``COPY`` of the file into a staging table plus one ``INSERT ... ON CONFLICT
DO UPDATE`` that cleans the values in SQL into a table shaped like the vehicle store (same
columns and indexes), so that both sides end with the same kind of inventory.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import time
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases
from django.utils import timezone

from accounts.models import Account, Dealership
from integrations.models import Integration
from syncengine.choices import JobKind, JobTrigger
from syncengine.feeds.ingest import feed_file_ingest
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile
from tests.bench.feedgen import VAUTO_HEADER, write_vauto_feed

TARGETS = {"first load": 0.5, "identical again": 2.0, "10% changed, 1% new": 2.0}
RSS_LIMIT_MB = 1024
REFERENCE = "bench_reference_vehicles"
STAGING = "bench_reference_staging"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(workdir: Path, rows: int) -> list[tuple[str, Path]]:
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / f"feed-{rows}.csv"
    variant = workdir / f"feed-{rows}-changed.csv"
    for path, kwargs in ((base, {}), (variant, {"changed_ratio": 0.10, "new_ratio": 0.01})):
        if not path.exists():
            started = time.perf_counter()
            write_vauto_feed(path.with_suffix(".tmp"), rows, seed=7, **kwargs)
            path.with_suffix(".tmp").rename(path)
            print(f"generated {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return [("first load", base), ("identical again", base), ("10% changed, 1% new", variant)]


def _receive(integration: Integration, path: Path) -> FeedFile:
    """A received-file row and its queued run, with its stored copy, as the gateway leaves them
    (no task is sent)."""
    relative = f"bench/{time.monotonic_ns()}-{path.name}"
    target = Path(settings.FEED_STORAGE_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    job = lifecycle.run_create(
        kind=JobKind.FILE,
        dispatch=False,
        account_id=integration.account_id,
        integration_id=integration.pk,
        trigger=JobTrigger.FILE,
        entities=["vehicles"],
    )
    return FeedFile.objects.create(
        account_id=integration.account_id,
        integration=integration,
        job=job,
        filename=path.name,
        stored_path=relative,
        size=path.stat().st_size,
        received_at=timezone.now(),
        force=True,
    )


def _ingest_in_child(feed_file_id: str, pipe: Pipe) -> None:
    started = time.perf_counter()
    feed_file = feed_file_ingest(feed_file_id=feed_file_id)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = feed_file.status if feed_file else "not claimed"
    pipe.send((seconds, peak, status))
    pipe.close()


def _ingest(feed_file: FeedFile) -> tuple[float, float, str]:
    """Process the file in a forked child (a fresh worker's memory), return seconds and peak MB."""
    connection.close()  # the child opens its own connection
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_ingest_in_child, args=(str(feed_file.pk), sender))
    child.start()
    result: tuple[float, float, str] = receiver.recv()
    child.join()
    return result


# The hand-written SQL a careful engineer would use instead of Railyard: the raw file into a text
# staging table, then one statement that cleans each column and upserts into a table shaped like
# the vehicle store (same columns, same indexes), so both end with the same kind of inventory.
_REFERENCE_UPSERT = """
INSERT INTO {table} (
    id, account_id, integration_id, dealership_id, key, status, vin, stock_number, condition,
    year, make, model, trim, body_style, exterior_color, interior_color, mileage, price, msrp,
    in_stock_date, certified, engine, transmission, drivetrain, fuel_type, doors, description,
    features, photo_urls, vdp_url, extra, missing_syncs, first_seen_at, last_seen_at,
    created_at, updated_at
)
SELECT
    gen_random_uuid(), %s, %s, %s, upper("VIN"), 'active', upper("VIN"), "Stock #",
    CASE lower("New/Used") WHEN 'new' THEN 'new' WHEN 'used' THEN 'used'
        WHEN 'certified' THEN 'cpo' END,
    NULLIF("Year", '')::int, "Make", "Model", "Series", "Body", "Colour", "Interior Color",
    NULLIF(regexp_replace("Odometer", '[^0-9]', '', 'g'), '')::int,
    NULLIF(regexp_replace("Price", '[^0-9.]', '', 'g'), '')::numeric,
    NULLIF(regexp_replace("MSRP", '[^0-9.]', '', 'g'), '')::numeric,
    to_date(NULLIF("Inventory Date", ''), 'MM/DD/YYYY'),
    lower("Certified") IN ('yes', 'y', 'true', '1'),
    "Engine", "Transmission", "Drivetrain", "Fuel", NULLIF("Doors", '')::int, "Description",
    to_jsonb(string_to_array("Features", ',')), to_jsonb(string_to_array("Photo Url List", '|')),
    "VDP URL", jsonb_build_object('Dealer ID', "Dealer ID"), 0, %s, %s, %s, %s
FROM {staging}
ON CONFLICT (integration_id, key) DO UPDATE SET
    stock_number = EXCLUDED.stock_number, condition = EXCLUDED.condition, year = EXCLUDED.year,
    make = EXCLUDED.make, model = EXCLUDED.model, trim = EXCLUDED.trim,
    body_style = EXCLUDED.body_style, exterior_color = EXCLUDED.exterior_color,
    interior_color = EXCLUDED.interior_color, mileage = EXCLUDED.mileage,
    price = EXCLUDED.price, msrp = EXCLUDED.msrp, in_stock_date = EXCLUDED.in_stock_date,
    certified = EXCLUDED.certified, engine = EXCLUDED.engine,
    transmission = EXCLUDED.transmission, drivetrain = EXCLUDED.drivetrain,
    fuel_type = EXCLUDED.fuel_type, doors = EXCLUDED.doors, description = EXCLUDED.description,
    features = EXCLUDED.features, photo_urls = EXCLUDED.photo_urls, vdp_url = EXCLUDED.vdp_url,
    extra = EXCLUDED.extra, last_seen_at = EXCLUDED.last_seen_at, updated_at = EXCLUDED.updated_at
"""


def _reference_setup() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE}")
        cursor.execute(f"CREATE TABLE {REFERENCE} (LIKE syncengine_vehicle INCLUDING ALL)")


def _reference(integration: Integration, path: Path) -> float:
    """COPY the file into a staging table, then one cleaning upsert of every row."""
    staging_columns = ", ".join(f"{_column(name)} text" for name in VAUTO_HEADER)
    now = timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGING} ({staging_columns})")
        with (
            open(path, "rb") as source,
            cursor.cursor.copy(f"COPY {STAGING} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := source.read(1 << 20):
                copy.write(block)
        cursor.execute(
            _REFERENCE_UPSERT.format(table=REFERENCE, staging=STAGING),
            [integration.account_id, integration.pk, integration.dealership_id, now, now, now, now],
        )
        cursor.execute(f"DROP TABLE {STAGING}")
    return time.perf_counter() - started


def _analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE syncengine_vehicle")
        cursor.execute(f"ANALYZE {REFERENCE}")


def run(args: Any) -> None:
    if connection.vendor != "postgresql":
        print("bench_feed: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    workdir = Path(args.workdir or "/tmp/railyard-bench") / "bench_feed"
    files = _files(workdir, int(args.rows))
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    storage = workdir / "store"
    settings.FEED_STORAGE_DIR = storage
    try:
        _run(files)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)
        shutil.rmtree(storage, ignore_errors=True)


def _run(files: list[tuple[str, Path]]) -> None:
    account = Account.objects.create(name="Bench Motors Group")
    dealership = Dealership.objects.create(
        account=account, name="Bench Motors", timezone="America/Chicago"
    )
    integration = Integration.objects.create(
        account=account,
        dealership=dealership,
        name="Bench feed",
        type="vauto",
        data_type="inventory",
    )
    _reference_setup()
    missed = []
    peak_of_all = 0.0
    for name, path in files:
        feed_file = _receive(integration, path)
        seconds, peak, status = _ingest(feed_file)
        feed_file.refresh_from_db()
        _analyze()
        reference_seconds = _reference(integration, path)
        _analyze()
        rows = feed_file.records_total
        rate, reference_rate = rows / seconds, rows / reference_seconds
        ratio = rate / reference_rate
        peak_of_all = max(peak_of_all, peak)
        if ratio < TARGETS[name] or status != "completed":
            missed.append(name)
        print(
            f"{name:>20}: pipeline {rate:>8,.0f} rows/s ({seconds:5.1f} s, {status}; created"
            f" {feed_file.records_created:,} updated {feed_file.records_updated:,} unchanged"
            f" {feed_file.records_unchanged:,}) | reference {reference_rate:>8,.0f} rows/s"
            f" ({reference_seconds:5.1f} s) | {ratio:4.2f}x (target {TARGETS[name]}x) |"
            f" worker peak RSS {peak:,.0f} MB",
            flush=True,
        )
    verdict = "ok" if peak_of_all <= RSS_LIMIT_MB else "MISSED"
    print(f"worker peak RSS: {peak_of_all:,.0f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    if missed:
        print(f"bench_feed: targets missed: {', '.join(missed)}")
