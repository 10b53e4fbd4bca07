"""A connection sync from a PostgreSQL table into the record store, against PostgreSQL.

The source is a table of ``--rows`` rows (10 columns: integer key, text, numeric, integer,
double, boolean, two timestamptz of which ``updated_at`` is the cursor, jsonb) in a scratch
database of its own. A postgres connection of the bench account reads it, and the job runner
(``connection_sync_start`` then ``sync_job_run``, in a forked child as a worker would run it, so
its peak RSS is the run's) syncs it in FULL mode with the overwrite strategy: first into an empty
store, then again with nothing changed.

The reference, measured in the same run: the same rows moved between the two databases by
``COPY (SELECT ...) TO STDOUT`` piped into ``COPY ... FROM STDIN`` (psycopg 3) into a table of the
same columns and primary key. It is measured before and after the syncs and the faster of the two
counts, so machine noise cannot flatter the ratio.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from multiprocessing.connection import Connection as Pipe
from typing import Any
from unittest import mock

import psycopg
from django.db import connection
from django.test.utils import setup_databases, teardown_databases

from accounts.models import Account
from accounts.services import Actor
from connectors.choices import SyncMode
from connectors.services import connection_create
from integrations.choices import SyncStrategy
from syncengine.jobs import lifecycle
from syncengine.models import Record, SyncJob
from syncengine.sync import launch
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database

TARGETS = {"full sync into an empty store": 0.5}
RSS_LIMIT_MB = 1024
TABLE = "items"
REFERENCE = "bench_sync_reference"

_COLUMNS = """
    id integer PRIMARY KEY,
    sku text NOT NULL,
    name text NOT NULL,
    price numeric(12, 2),
    quantity integer,
    weight double precision,
    active boolean NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    attributes jsonb
"""

_FILL = """
INSERT INTO items
SELECT g, 'SKU-' || lpad(g::text, 8, '0'), 'Item number ' || g || ' ' || md5(g::text),
    round((random() * 10000)::numeric, 2), (random() * 1000)::int, random() * 100, g %% 3 <> 0,
    timestamptz '2024-01-01' + g * interval '17 seconds',
    timestamptz '2024-06-01' + g * interval '13 seconds',
    CASE WHEN g %% 4 = 0 THEN NULL ELSE jsonb_build_object(
        'color', (ARRAY['red', 'green', 'blue'])[1 + g %% 3], 'size', g %% 50,
        'tags', jsonb_build_array('a', 'b')) END
FROM generate_series(1, %s) AS g
"""

# What the connector reads: every column, in cursor order.
_SELECT = "SELECT * FROM items ORDER BY updated_at, id"


def _source(name: str, rows: int) -> None:
    started = time.perf_counter()
    with admin_connect(name) as conn:
        conn.execute(f"CREATE TABLE {TABLE} ({_COLUMNS})")
        conn.execute(_FILL, [rows])
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    print(f"source table of {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)


def _reference(source: str) -> float:
    """COPY the rows out of the source into a table of the same shape in the store's database."""
    target = connection.settings_dict
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {REFERENCE}")
        cursor.execute(f"CREATE TABLE {REFERENCE} ({_COLUMNS})")
    connection.close()
    with (
        psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=source) as reader,
        psycopg.connect(
            host=target["HOST"] or PG_HOST,
            port=target["PORT"] or PG_PORT,
            user=target["USER"] or PG_USER,
            password=target["PASSWORD"] or None,
            dbname=target["NAME"],
        ) as writer,
    ):
        started = time.perf_counter()
        with (
            reader.cursor().copy(f"COPY ({_SELECT}) TO STDOUT") as out,
            writer.cursor().copy(f"COPY {REFERENCE} FROM STDIN") as into,
        ):
            for block in out:
                into.write(block)
        writer.commit()
        seconds = time.perf_counter() - started
        writer.execute(f"DROP TABLE {REFERENCE}")
        writer.commit()
    return seconds


def _run_in_child(job_id: str, pipe: Pipe) -> None:
    from syncengine.sync.runner import sync_job_run

    started = time.perf_counter()
    sync_job_run(job_id)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pipe.send((seconds, peak))
    pipe.close()


def _sync(connection_: Any, actor: Actor) -> tuple[float, float, SyncJob]:
    """Queue a FULL overwrite sync of the table and run it in a forked child."""
    # The child runs the job itself, as a worker would: nothing is sent to a broker.
    with mock.patch.object(lifecycle, "runs_dispatch"):
        job = launch.connection_sync_start(
            connection=connection_,
            actor=actor,
            entities=[TABLE],
            mode=SyncMode.FULL,
            strategy=SyncStrategy.OVERWRITE,
        )
    connection.close()  # the child opens its own connection
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_run_in_child, args=(str(job.pk), sender))
    child.start()
    seconds, peak = receiver.recv()
    child.join()
    job.refresh_from_db()
    return seconds, peak, job


def run(args: Any) -> None:
    if connection.vendor != "postgresql":
        print("bench_sync: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    rows = int(args.rows)
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        with scratch_database("bench_sync") as source:
            _source(source, rows)
            _run(source, rows)
    finally:
        connection.close()
        teardown_databases(old_config, verbosity=0)


def _run(source: str, rows: int) -> None:
    account = Account.objects.create(name="Bench Sync Group")
    actor = Actor.system("bench")
    source_connection = connection_create(
        account=account,
        actor=actor,
        connector_id="postgres",
        name="Bench source",
        config={"host": PG_HOST, "port": PG_PORT, "database": source, "tables": [TABLE]},
        credentials={"user": PG_USER},
    )
    reference_seconds = _reference(source)
    runs = []
    for name in ("full sync into an empty store", "the same again, nothing changed"):
        seconds, peak, job = _sync(source_connection, actor)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Record._meta.db_table}")
        runs.append((name, seconds, peak, job))
    reference_seconds = min(reference_seconds, _reference(source))
    reference_rate = rows / reference_seconds
    print(
        f"reference COPY TO | COPY FROM: {reference_rate:>9,.0f} rows/s ({reference_seconds:.1f} s)"
    )
    missed = []
    peak_of_all = 0.0
    full_rate = 0.0
    for name, seconds, peak, job in runs:
        rate = rows / seconds
        ratio = rate / reference_rate
        stats = job.stats.get(TABLE, {})
        peak_of_all = max(peak_of_all, peak)
        target = TARGETS.get(name)
        line = (
            f"{name:>32}: {rate:>9,.0f} rows/s ({seconds:5.1f} s, {job.status}; created"
            f" {stats.get('created', 0):,} updated {stats.get('updated', 0):,} unchanged"
            f" {stats.get('unchanged', 0):,} deleted {stats.get('deleted', 0):,})"
            f" | {ratio:4.2f}x the reference"
        )
        if target is not None:
            line += f" (target {target}x)"
            full_rate = rate
            if ratio < target:
                missed.append(name)
        else:
            line += f", {rate / full_rate:4.2f}x the full sync"
        if job.status != "COMPLETED":
            missed.append(name)
            line += f" error: {job.error}"
        print(f"{line} | peak RSS {peak:,.0f} MB", flush=True)
    stored = Record.objects.count()
    if stored != rows:
        missed.append(f"the store holds {stored:,} records, not {rows:,}")
    verdict = "ok" if peak_of_all <= RSS_LIMIT_MB else "MISSED"
    print(f"sync peak RSS: {peak_of_all:,.0f} MB (limit {RSS_LIMIT_MB} MB: {verdict})")
    if missed:
        print(f"bench_sync: targets missed: {', '.join(missed)}")
