"""The run lifecycle with real worker processes: a worker killed mid-file, files of one feed in
the order they arrived, a file waiting its turn, a worker that cannot reach the database, and a
destination write that holds no transaction open."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from accounts.services import Actor
from connectors.services import connection_create
from integrations.models import Integration
from syncengine.feeds.services import feed_file_receive
from syncengine.jobs.sweep import jobs_sweep
from syncengine.models import FeedFile, SyncJob, Vehicle
from syncengine.sync.launch import integration_sync_start
from tests.bench.feedgen import write_vauto_feed
from tests.factories import DealershipFactory, IntegrationFactory
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database
from tests.worker import celery_worker, wait_for, worker_children

pytestmark = pytest.mark.django_db(transaction=True)

ACTOR = Actor.system("tests")


@pytest.fixture
def feed(tenant) -> Integration:
    dealership = DealershipFactory(account=tenant.account, timezone="America/Chicago")
    return IntegrationFactory(account=tenant.account, dealership=dealership, type="vauto")


@pytest.fixture
def ingest_queue():
    """The real broker's ``ingest`` queue, emptied before and after."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("ingest")
    yield client
    client.delete("ingest")
    client.close()


def receive(integration: Integration, path: Path) -> FeedFile:
    """The file arrives as the gateway hands it over; its task is sent after the commit."""
    return feed_file_receive(
        integration=integration,
        source_path=path,
        filename=path.name,
        size=path.stat().st_size,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        remote_address="127.0.0.1",
    )


def generated(directory: Path, name: str, rows: int, **variation: Any) -> Path:
    path = directory / name
    write_vauto_feed(path, rows, seed=11, **variation)
    return path


def vins(path: Path) -> set[str]:
    with open(path, encoding="utf-8", newline="") as file:
        return {row["VIN"].upper() for row in csv.DictReader(file)}


def logs(api, integration: Integration) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/integrations/{integration.pk}/logs?limit=100")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_a_file_whose_worker_is_killed_is_applied_once_by_the_task_delivered_again(
    api, feed, tmp_path, ingest_queue
):
    # Given a worker running a 120,000-row file, its pool process killed after the first chunk
    rows = 120_000
    path = generated(tmp_path, "inventory.csv", rows)
    with celery_worker(queues="ingest", pool="prefork", concurrency=1) as worker:
        feed_file = receive(feed, path)
        wait_for(
            lambda: SyncJob.objects.filter(
                integration=feed, status="RUNNING", progress__done__gte=50_000
            ).exists(),
            timeout=120,
            interval=0.05,
        )
        (pool_process,) = worker_children(worker)
        os.kill(pool_process, signal.SIGKILL)

        # When the worker's next pool process gets the task again (no sweep runs here)
        done = wait_for(
            lambda: FeedFile.objects.filter(pk=feed_file.pk, status="completed").first(),
            timeout=180,
        )

    # Then the file is applied exactly once, by a second attempt, and the log entry says so
    assert (done.records_total, done.records_created, done.attempts) == (rows, rows, 2)
    assert Vehicle.objects.filter(integration=feed).count() == rows
    (entry,) = logs(api, feed)
    assert (entry["status"], entry["attempts"], entry["recordsCreated"]) == (
        "completed",
        2,
        rows,
    )
    job = SyncJob.objects.get(integration=feed)
    assert (job.status, job.attempts) == ("COMPLETED", 2)
    assert any(f"pid {pool_process}) is gone" in line["message"] for line in job.log)


def test_files_received_back_to_back_are_applied_in_the_order_they_arrived(
    api, feed, tmp_path, ingest_queue
):
    # Given files A, B (right after A) and C (once A is applied) of one integration, and two
    # workers that could each take one
    a = generated(tmp_path, "a.csv", 20_000)
    b = generated(tmp_path, "b.csv", 20_000, new_ratio=0.05)
    c = generated(tmp_path, "c.csv", 20_000, new_ratio=0.10, changed_ratio=0.05)
    with celery_worker(queues="ingest", pool="prefork", concurrency=2):
        first = receive(feed, a)
        second = receive(feed, b)
        wait_for(
            lambda: FeedFile.objects.filter(pk=first.pk, status="completed").exists(),
            timeout=120,
        )
        third = receive(feed, c)
        wait_for(
            lambda: FeedFile.objects.filter(pk=third.pk, status="completed").exists(),
            timeout=180,
        )

    # Then they were applied A, B, C, once each, and the inventory is C's
    applied = list(FeedFile.objects.filter(integration=feed).order_by("processed_at"))
    assert [entry.pk for entry in applied] == [first.pk, second.pk, third.pk]
    assert [entry.status for entry in applied] == ["completed"] * 3
    assert [entry["attempts"] for entry in logs(api, feed)] == [1, 1, 1]
    latest = Vehicle.objects.filter(integration=feed, vin__in=vins(c))
    assert latest.count() == len(vins(c))
    assert not latest.exclude(status="active", missing_syncs=0).exists()
    only_in_b = vins(b) - vins(c)
    assert only_in_b
    assert set(
        Vehicle.objects.filter(integration=feed, vin__in=only_in_b).values_list(
            "missing_syncs", flat=True
        )
    ) == {1}


def test_a_file_waiting_its_turn_is_not_sent_again_and_spends_no_attempt(
    feed, tmp_path, ingest_queue, settings
):
    # Given a file being applied by the worker and a second one waiting behind it
    settings.JOB_REDISPATCH_AFTER_SECONDS = 0  # the sweep sends anything silent at all
    big = generated(tmp_path, "big.csv", 60_000)
    again = generated(tmp_path, "again.csv", 60_000, changed_ratio=0.1)
    with celery_worker(queues="ingest"):
        first = receive(feed, big)
        wait_for(
            lambda: FeedFile.objects.filter(pk=first.pk, status="processing").exists(),
            timeout=60,
            interval=0.05,
        )
        second = receive(feed, again)

        # When the sweep runs while the first is applied
        sweeps = []
        while True:
            counts = jobs_sweep()
            if not FeedFile.objects.filter(pk=first.pk, status="processing").exists():
                break  # the first ended during this sweep, which then proves nothing
            sweeps.append(counts)
            # Then the waiting file has its one message (the worker is busy) and no other
            assert ingest_queue.llen("ingest") <= 1
            assert FeedFile.objects.get(pk=second.pk).attempts == 0
        wait_for(
            lambda: FeedFile.objects.filter(pk=second.pk, status="completed").exists(),
            timeout=120,
        )

    assert sweeps, "the first file ended before the sweep could run"
    assert all(sweep["redispatched"] == 0 for sweep in sweeps)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.attempts, second.attempts) == (1, 1)
    assert first.processed_at is not None
    assert second.processed_at is not None
    assert first.processed_at < second.processed_at
    assert SyncJob.objects.filter(integration=feed).count() == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_database_url() -> str:
    if connection.vendor == "postgresql":
        return f"postgres://postgres@127.0.0.1:{closed_port()}/railyard"
    return "sqlite:////nonexistent-railyard-directory/railyard.sqlite3"


def test_a_worker_that_cannot_reach_the_database_keeps_the_task_for_a_worker_that_can(
    feed, tmp_path, ingest_queue
):
    # Given a file received while the only worker cannot reach the database
    path = tmp_path / "inventory.csv"
    write_vauto_feed(path, 50, seed=3)
    log = tmp_path / "worker.log"
    with celery_worker(queues="ingest", log=log, DATABASE_URL=unreachable_database_url()):
        feed_file = receive(feed, path)
        # When its task fails to reach the database
        wait_for(lambda: b"Retry in" in log.read_bytes(), timeout=60)

    # Then the task was kept (to try again), nothing was written, and a worker that can reach
    # the database applies the file, once
    feed_file.refresh_from_db()
    assert (feed_file.status, feed_file.attempts) == ("received", 0)
    with celery_worker(queues="ingest"):
        done = wait_for(
            lambda: FeedFile.objects.filter(pk=feed_file.pk, status="completed").first(),
            timeout=120,
        )
    assert (done.records_created, done.attempts) == (50, 1)


DESTINATION_SQL = "CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL);"
SOURCE_SQL = """
CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL);
INSERT INTO customers SELECT n, 'customer' || n || '@example.com' FROM generate_series(1, 20) n;
"""


def idle_in_transaction(database: str) -> list[tuple[Any, ...]]:
    """Sessions of ``database`` that opened a transaction and are waiting for their client."""
    with admin_connect() as conn:
        return conn.execute(
            "SELECT pid, query FROM pg_stat_activity"
            " WHERE datname = %s AND state LIKE 'idle in transaction%%'",
            [database],
        ).fetchall()


def blocked_on_a_lock(database: str) -> bool:
    with admin_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [database],
        ).fetchone()
    return bool(row and row[0])


def test_a_slow_destination_holds_no_transaction_of_ours_open(tenant):
    if connection.vendor != "postgresql":
        pytest.skip("the destination is a PostgreSQL table")
    with (
        scratch_database("lifecycle_source", SOURCE_SQL) as source,
        scratch_database("lifecycle_target", DESTINATION_SQL) as target,
    ):

        def postgres(name: str, database: str):
            return connection_create(
                account=tenant.account,
                actor=ACTOR,
                connector_id="postgres",
                name=name,
                config={"host": PG_HOST, "port": PG_PORT, "database": database},
                credentials={"user": PG_USER},
            )

        integration = IntegrationFactory(
            account=tenant.account,
            dealership=None,
            type="postgres",
            data_type="records",
            source_connection=postgres("Shop", source),
            destination_connection=postgres("Warehouse", target),
        )
        # Given a destination that cannot take writes for now (its table is locked)
        with (
            psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=target) as holder,
            celery_worker(queues="sync"),
        ):
            holder.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            job = integration_sync_start(integration=integration, actor=ACTOR, mode="FULL")

            # When the run is writing to it
            wait_for(lambda: blocked_on_a_lock(target), timeout=60, interval=0.1)

            # Then no session of Railyard's database sits in an open transaction meanwhile
            database = connection.settings_dict["NAME"]
            for _ in range(10):
                assert idle_in_transaction(database) == []
            holder.rollback()  # the destination takes writes again

            done = wait_for(
                lambda: SyncJob.objects.filter(
                    pk=job.pk, status__in=["COMPLETED", "FAILED"]
                ).first(),
                timeout=60,
            )
        assert done.status == "COMPLETED", done.error
        with admin_connect(target) as conn:
            assert conn.execute("SELECT count(*) FROM customers").fetchone() == (20,)
