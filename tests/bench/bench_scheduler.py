"""The scheduler tick against PostgreSQL: 10,000 due integrations, two beat ticks at once.

Two forked processes (two beats, as a duplicated beat deployment would run) each call
``schedules_tick`` at the same moment over the same due rows; the time is taken from their start
until both have returned, that is until every due integration has its job committed and its task
sent to the broker. Then: how many integrations got more than one job (duplicates), how many jobs
were never dispatched, and whether paused or not-yet-due integrations were left alone. Targets:
under 10 s and zero duplicates.

The broker is a Redis database of its own (``BENCH_REDIS_DB``, default 15, on the server of
``REDIS_URL``), whose ``sync`` queue is purged before and after, so no worker ever runs the bench's
jobs. ``BENCH_SCHEDULER_DUE`` changes the number of due integrations.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test.utils import setup_databases, teardown_databases
from django.utils import timezone
from kombu import Queue

from accounts.models import Account
from config.celery import app
from connectors.models import Connection
from integrations.choices import IntegrationState
from integrations.models import Integration
from syncengine.models import SyncJob
from syncengine.sync.scheduler import schedules_tick

TARGET_SECONDS = 10.0
TICKS = 2
SOURCE_CONNECTOR = "http_json"  # a source that reads incrementally


def _broker_url(db: int) -> str:
    """The bench's own Redis database on the server the settings point at."""
    url = settings.CELERY_BROKER_URL
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        return urlunsplit(parts._replace(path=f"/{db}"))
    if parts.scheme in ("redis+socket", "unix"):  # the embedded server's unix socket
        return f"redis+socket://{parts.path}?virtual_host={db}"
    raise RuntimeError(f"bench_scheduler needs a Redis broker, not {url!r}")


def _purge_sync_queue() -> int:
    with app.connection_for_write() as broker:
        return int(Queue("sync").bind(broker.default_channel).purge() or 0)


def _populate(due: int, now: datetime) -> list[Any]:
    """The due integrations, plus a fifth as many the tick must leave alone; returns the ids
    of the latter."""
    account = Account.objects.create(name="Bench Scheduling Group")
    source = Connection.objects.create(
        account=account, connector_id=SOURCE_CONNECTOR, name="Bench API"
    )

    def integration(n: int, **fields: Any) -> Integration:
        return Integration(
            account=account,
            name=f"Bench {n}",
            type=SOURCE_CONNECTOR,
            data_type="records",
            source_connection=source,
            frequency_value=1,
            frequency_unit="hours",
            **fields,
        )

    rows = [integration(n, next_run_at=now - timedelta(seconds=n % 3600)) for n in range(due)]
    # Paused ones that are due, and active ones due in five minutes.
    left_alone = [
        integration(n, next_run_at=now - timedelta(minutes=5), state=IntegrationState.INACTIVE)
        for n in range(due, due + due // 10)
    ] + [
        integration(n, next_run_at=now + timedelta(minutes=5))
        for n in range(due + due // 10, due + due // 5)
    ]
    Integration.objects.bulk_create(rows + left_alone, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE integrations_integration")
    return [row.pk for row in left_alone]


def _tick_in_child(now: datetime, start: Any, pipe: Pipe) -> None:
    start.wait()
    started = time.perf_counter()
    result = schedules_tick(now=now)
    pipe.send((result.integrations, time.perf_counter() - started))
    pipe.close()
    connection.close()


def _ticks(now: datetime) -> tuple[float, list[tuple[int, float]]]:
    """Run TICKS ticks in forked processes released together; wall seconds and their results."""
    connection.close()  # each child opens its own connection
    context = multiprocessing.get_context("fork")
    start = context.Barrier(TICKS + 1)
    pipes, children = [], []
    for _ in range(TICKS):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_tick_in_child, args=(now, start, sender))
        child.start()
        pipes.append(receiver)
        children.append(child)
    start.wait()
    started = time.perf_counter()
    results = [pipe.recv() for pipe in pipes]
    seconds = time.perf_counter() - started
    for child in children:
        child.join()
    return seconds, results


def run(args: Any) -> None:
    if connection.vendor != "postgresql":
        print("bench_scheduler: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    due = int(os.environ.get("BENCH_SCHEDULER_DUE", "10000"))
    broker = _broker_url(int(os.environ.get("BENCH_REDIS_DB", "15")))
    app.conf.update(broker_url=broker)
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        _purge_sync_queue()
        _run(due)
    finally:
        _purge_sync_queue()
        connection.close()
        teardown_databases(old_config, verbosity=0)


def _run(due: int) -> None:
    now = timezone.now()
    left_alone = _populate(due, now)
    seconds, results = _ticks(now)
    sent = _purge_sync_queue()

    jobs = SyncJob.objects.count()
    duplicates = (
        SyncJob.objects.values("integration_id")
        .annotate(jobs=Count("id"))
        .filter(jobs__gt=1)
        .count()
    )
    undispatched = SyncJob.objects.filter(dispatched_at__isnull=True).count()
    wrongly_started = SyncJob.objects.filter(integration_id__in=left_alone).count()
    still_due = Integration.objects.filter(
        next_run_at__lte=now, state=IntegrationState.ACTIVE
    ).count()
    split = " + ".join(f"{started:,} in {tick_seconds:.1f} s" for started, tick_seconds in results)
    print(
        f"{due:,} due integrations, {TICKS} concurrent ticks: {seconds:.2f} s until all were"
        f" dispatched (target < {TARGET_SECONDS:.0f} s: "
        f"{'ok' if seconds < TARGET_SECONDS else 'MISSED'}) | ticks: {split}",
        flush=True,
    )
    print(
        f"jobs {jobs:,}, tasks on the broker {sent:,}, undispatched {undispatched:,}, "
        f"duplicates {duplicates:,} (target 0: {'ok' if duplicates == 0 else 'MISSED'}), "
        f"left due {still_due:,}, jobs of paused or not-due integrations {wrongly_started:,}",
        flush=True,
    )
    if seconds >= TARGET_SECONDS or duplicates or undispatched or jobs != due or wrongly_started:
        print("bench_scheduler: targets missed")
