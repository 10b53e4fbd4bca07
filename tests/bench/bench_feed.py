"""The feed pipeline from file to store, against PostgreSQL: the numbers the README reports.

Two profiles of a vAuto-style feed (``feedgen``): "clean" (one format per column) and "messy"
(the value formats real exports mix). For each, three nights: a first load into an empty
inventory, the identical file again, and a file in which 10% of the rows changed and 1% are new
vehicles. Each is processed by ``feed_file_ingest`` (parse, map, normalise, merge, log) in a child
process, as a worker would, and its peak RSS is that child's. The messy profile loads a second
integration into a vehicle table whose statistics describe only the first.

The reference, measured in the same run on the same files, is what the data costs PostgreSQL:
``COPY`` of the file into an unlogged staging table plus one ``INSERT ... ON CONFLICT DO UPDATE``
of the raw text into a table with the vehicle columns, a primary key and a unique (integration,
key), as a careful engineer would load it without cleaning anything.
"""

from __future__ import annotations

import hashlib
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

# The changed file has no target of its own against this reference: it reports how a nightly
# file with some changes compares with loading the whole file raw.
TARGETS: dict[str, float | None] = {
    "first load": 0.5,
    "identical again": 2.0,
    "10% changed, 1% new": None,
}
PROFILES = ("clean", "messy")
RSS_LIMIT_MB = 1024
REFERENCE = "bench_reference_vehicles"
STAGING = "bench_reference_staging"
# The vehicle table's columns the feed fills, all text in the reference table.
REFERENCE_COLUMNS = {
    "vin": "VIN",
    "stock_number": "Stock #",
    "condition": "New/Used",
    "year": "Year",
    "make": "Make",
    "model": "Model",
    "trim": "Series",
    "body_style": "Body",
    "exterior_color": "Colour",
    "interior_color": "Interior Color",
    "mileage": "Odometer",
    "price": "Price",
    "msrp": "MSRP",
    "in_stock_date": "Inventory Date",
    "certified": "Certified",
    "engine": "Engine",
    "transmission": "Transmission",
    "drivetrain": "Drivetrain",
    "fuel_type": "Fuel",
    "doors": "Doors",
    "description": "Description",
    "features": "Features",
    "photo_urls": "Photo Url List",
    "vdp_url": "VDP URL",
    "dealer_id": "Dealer ID",
}


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(workdir: Path, rows: int, profile: str) -> list[tuple[str, Path]]:
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / f"feed-{profile}-{rows}.csv"
    variant = workdir / f"feed-{profile}-{rows}-changed.csv"
    messy = profile == "messy"
    for path, kwargs in ((base, {}), (variant, {"changed_ratio": 0.10, "new_ratio": 0.01})):
        if not path.exists():
            started = time.perf_counter()
            write_vauto_feed(path.with_suffix(".tmp"), rows, seed=7, messy=messy, **kwargs)
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
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return FeedFile.objects.create(
        account_id=integration.account_id,
        integration=integration,
        job=job,
        filename=path.name,
        stored_path=relative,
        size=path.stat().st_size,
        sha256=digest.hexdigest(),
        received_at=timezone.now(),
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


def _reference_setup() -> None:
    columns = ", ".join(f"{name} text" for name in REFERENCE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE}")
        cursor.execute(
            f"CREATE TABLE {REFERENCE} (id uuid PRIMARY KEY, integration_id uuid NOT NULL,"
            f" key text NOT NULL, {columns}, last_seen_at timestamptz NOT NULL,"
            " UNIQUE (integration_id, key))"
        )


def _reference(integration: Integration, path: Path) -> float:
    """COPY the file into an unlogged staging table, then one upsert of every row's raw text."""
    staging_columns = ", ".join(f"{_column(name)} text" for name in VAUTO_HEADER)
    targets = ", ".join(REFERENCE_COLUMNS)
    sources = ", ".join(_column(source) for source in REFERENCE_COLUMNS.values())
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in REFERENCE_COLUMNS)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE UNLOGGED TABLE {STAGING} ({staging_columns})")
        with (
            open(path, "rb") as source,
            cursor.cursor.copy(f"COPY {STAGING} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
        ):
            while block := source.read(1 << 20):
                copy.write(block)
        cursor.execute(
            f"INSERT INTO {REFERENCE} (id, integration_id, key, {targets}, last_seen_at)"
            f' SELECT gen_random_uuid(), %s, "VIN", {sources}, %s FROM {STAGING}'
            f" ON CONFLICT (integration_id, key) DO UPDATE SET {updates},"
            " last_seen_at = EXCLUDED.last_seen_at",
            [integration.pk, timezone.now()],
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
    rows = int(args.rows)
    profiles = {profile: _files(workdir, rows, profile) for profile in PROFILES}
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    storage = workdir / "store"
    settings.FEED_STORAGE_DIR = storage
    try:
        _run(profiles)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)
        shutil.rmtree(storage, ignore_errors=True)


def _run(profiles: dict[str, list[tuple[str, Path]]]) -> None:
    account = Account.objects.create(name="Bench Motors Group")
    dealership = Dealership.objects.create(
        account=account, name="Bench Motors", timezone="America/Chicago"
    )
    _reference_setup()
    missed = []
    peak_of_all = 0.0
    for profile, files in profiles.items():
        integration = Integration.objects.create(
            account=account,
            dealership=dealership,
            name=f"Bench feed ({profile})",
            type="vauto",
            data_type="inventory",
        )
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
            target = TARGETS[name]
            if (target is not None and ratio < target) or status != "completed":
                missed.append(f"{profile} {name}")
            print(
                f"{profile:>5} {name:>19}: pipeline {rate:>8,.0f} rows/s ({seconds:5.1f} s,"
                f" {status}; created {feed_file.records_created:,} updated"
                f" {feed_file.records_updated:,} unchanged {feed_file.records_unchanged:,}) |"
                f" reference {reference_rate:>8,.0f} rows/s ({reference_seconds:5.1f} s) |"
                f" {ratio:4.2f}x (target {f'{target}x' if target else 'none'}) |"
                f" worker peak RSS {peak:,.0f} MB",
                flush=True,
            )
    verdict = "ok" if peak_of_all <= RSS_LIMIT_MB else "MISSED"
    print(f"worker peak RSS: {peak_of_all:,.0f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    if missed:
        print(f"bench_feed: targets missed: {', '.join(missed)}")
