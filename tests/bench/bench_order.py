"""Files of one integration in the order they arrive, with real worker processes.

Twenty vAuto feeds of 5,000 rows (``feedgen``: one inventory, each file with a different share of
new and changed vehicles) are received back to back for one integration, as the gateway hands
them over, while a worker with two pool processes (either could take any file) applies them.
Prints whether they were applied in the order they were received, the attempts of each (one is
right: waiting for the file before is not an attempt), the seconds until the last one was
applied, and whether the inventory ends on the last file (its vehicles active, none missed).
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases

from accounts.models import Account, Dealership
from integrations.models import Integration
from syncengine.feeds.services import feed_file_receive
from syncengine.models import FeedFile, Vehicle
from tests.bench.feedgen import write_vauto_feed
from tests.worker import celery_worker

FILES = 20
ROWS = 5_000


def _files(workdir: Path) -> list[Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(FILES):
        path = workdir / f"order-{number:02d}.csv"
        if not path.exists():
            write_vauto_feed(
                path.with_suffix(".tmp"),
                ROWS,
                seed=5,
                new_ratio=0.01 * (number + 1),
                changed_ratio=0.02 * (number % 5),
            )
            path.with_suffix(".tmp").rename(path)
        paths.append(path)
    return paths


def _receive(integration: Integration, path: Path) -> FeedFile:
    data = path.read_bytes()
    return feed_file_receive(
        integration=integration,
        source_path=path,
        filename=path.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        remote_address="127.0.0.1",
    )


def run(args: Any) -> None:
    if connection.vendor != "postgresql":
        print("bench_order: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    workdir = Path(args.workdir or "/tmp/railyard-bench") / "bench_order"
    paths = _files(workdir)
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    storage = workdir / "store"
    settings.FEED_STORAGE_DIR = storage
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("ingest")
    try:
        _run(paths)
    finally:
        broker.delete("ingest")
        broker.close()
        connection.close()
        teardown_databases(old_config, verbosity=0)
        shutil.rmtree(storage, ignore_errors=True)


def _run(paths: list[Path]) -> None:
    account = Account.objects.create(name="Bench order group")
    dealership = Dealership.objects.create(
        account=account, name="Bench Motors", timezone="America/Chicago"
    )
    integration = Integration.objects.create(
        account=account, dealership=dealership, name="Bench order", type="vauto"
    )
    storage = str(settings.FEED_STORAGE_DIR)
    with celery_worker(queues="ingest", pool="prefork", concurrency=2, FEED_STORAGE_DIR=storage):
        started = time.perf_counter()
        received = [_receive(integration, path).pk for path in paths]
        deadline = time.monotonic() + 600
        ended = ("completed", "completed_with_warnings", "completed_with_errors", "failed")
        while time.monotonic() < deadline:
            if FeedFile.objects.filter(pk__in=received, status__in=ended).count() == FILES:
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    applied = list(
        FeedFile.objects.filter(pk__in=received)
        .order_by("processed_at")
        .values_list("pk", "status", "attempts")
    )
    by_id = {pk: (status, attempts) for pk, status, attempts in applied}
    in_order = [pk for pk, _, _ in applied] == received
    attempts = [by_id[pk][1] for pk in received]
    statuses = {status for status, _ in by_id.values()}
    with open(paths[-1], encoding="utf-8", newline="") as file:
        last = {row["VIN"].upper() for row in csv.DictReader(file)}
    current = Vehicle.objects.filter(
        integration=integration, vin__in=last, status="active", missing_syncs=0
    ).count()
    print(
        f"{FILES} files of {ROWS:,} rows received back to back, 2 pool processes:"
        f" applied in upload order: {'yes' if in_order else 'NO'}"
        f" | attempts {attempts} | statuses {sorted(statuses)}"
        f" | {seconds:.1f} s until the last was applied"
        f" | inventory on the last file: {'yes' if current == len(last) else 'NO'}"
        f" ({current:,} of {len(last):,})",
        flush=True,
    )
    if not in_order or set(attempts) != {1} or current != len(last):
        print("bench_order: targets missed")
