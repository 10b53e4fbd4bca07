"""Connection syncs of a real PostgreSQL table through the runner.

On PostgreSQL the store takes these through the bulk path (``syncengine.sync.bulk``), on SQLite
through the Python path (``syncengine.sync.store``): the same tests hold for both, and the stored
records are what the connector's ``read()`` gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from accounts.services import Actor
from connectors import registry
from connectors.postgres import PostgresConnector
from connectors.services import connection_create
from integrations.models import Integration
from syncengine.choices import JobStatus
from syncengine.models import Record, SyncJob, SyncStream
from syncengine.sync.launch import connection_sync_start, integration_sync_start
from syncengine.sync.runner import sync_job_run
from tests.factories import IntegrationFactory
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database
from tests.syncengine.memory import DATASETS, Dataset, MemoryConnector

ACTOR = Actor.system("tests")

SOURCE_SQL = """
CREATE TABLE parts (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2),
    weight double precision,
    active boolean NOT NULL,
    photo bytea,
    attributes jsonb,
    updated_at timestamptz NOT NULL
);
CREATE TABLE notes (code text PRIMARY KEY, body text, changed date NOT NULL);
"""

FILL_SQL = """
TRUNCATE parts;
INSERT INTO parts
SELECT n, 'Part ' || n || E' with "quotes", a tab\\t and a backslash \\\\', n * 1.25, n / 3.0,
    n % 2 = 0, decode('00ff10', 'hex'), jsonb_build_object('n', n, 'tags', jsonb_build_array('a')),
    '2025-01-01'::timestamptz + (n / 3) * interval '1 hour'
FROM generate_series(1, 30) AS n;
"""


@pytest.fixture
def source(settings) -> Iterator[str]:
    settings.SYNC_BATCH_SIZE = 4
    settings.SYNC_BULK_BATCH_SIZE = 4
    with scratch_database("store_sync", SOURCE_SQL + FILL_SQL) as name:
        yield name


def execute(database: str, statement: str) -> None:
    with admin_connect(database) as conn:
        conn.execute(statement)


@pytest.fixture
def connection(tenant, source):
    return connection_create(
        account=tenant.account,
        actor=ACTOR,
        connector_id="postgres",
        name="Parts",
        config={"host": PG_HOST, "port": PG_PORT, "database": source},
        credentials={"user": PG_USER},
    )


def sync(connection, **options) -> SyncJob:
    job = connection_sync_start(connection=connection, actor=ACTOR, entities=["parts"], **options)
    sync_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, job.error
    return job


def stored(connection, entity: str = "parts") -> dict[str, dict]:
    return {
        record.key: record.data
        for record in Record.objects.filter(stream__connection=connection, stream__entity=entity)
    }


def test_stores_what_the_connector_reads(connection, source):
    job = sync(connection, strategy="overwrite")

    assert job.stats["parts"]["created"] == 30
    assert (job.progress["recordsDone"], job.progress["recordsTotal"]) == (30, 30)
    reader = PostgresConnector(
        config={"host": PG_HOST, "port": PG_PORT, "database": source},
        credentials={"user": PG_USER},
    )
    read = {str(record["id"]): record for batch in reader.read("parts") for record in batch.records}
    assert stored(connection) == read
    record = stored(connection)["7"]
    assert record["price"] == "8.75"
    assert record["photo"] == "AP8Q"
    assert record["attributes"] == {"n": 7, "tags": ["a"]}
    assert record["name"] == 'Part 7 with "quotes", a tab\t and a backslash \\'
    stream = SyncStream.objects.get(connection=connection, entity="parts")
    assert stream.cursor == read["30"]["updated_at"]


def test_counts_created_updated_unchanged_and_deleted(connection, source):
    sync(connection, strategy="overwrite")
    assert sync(connection, strategy="overwrite").stats["parts"]["unchanged"] == 30

    execute(
        source,
        "UPDATE parts SET price = 0 WHERE id IN (3, 4); DELETE FROM parts WHERE id = 5; "
        "INSERT INTO parts VALUES (31, 'New', 1, 1, true, NULL, NULL, '2030-01-01')",
    )
    job = sync(connection, strategy="overwrite")

    assert job.stats["parts"] == {
        "created": 1,
        "updated": 2,
        "unchanged": 27,
        "deleted": 1,
        "errors": 0,
        "skipped": 0,
        "read": 30,
    }
    records = stored(connection)
    assert "5" not in records
    assert records["3"]["price"] == "0.00"
    assert len(records) == 30


def test_merge_keeps_and_update_only_skips(connection, source):
    sync(connection, strategy="merge")
    execute(
        source,
        "DELETE FROM parts WHERE id = 1; "
        "INSERT INTO parts VALUES (40, 'New', 1, 1, true, NULL, NULL, '2030-01-01')",
    )

    merged = sync(connection, strategy="merge")
    assert merged.stats["parts"]["deleted"] == 0
    assert merged.stats["parts"]["created"] == 1
    assert "1" in stored(connection)

    execute(
        source,
        "INSERT INTO parts VALUES (41, 'Newer', 1, 1, true, NULL, NULL, '2030-01-02'); "
        "UPDATE parts SET name = 'Renamed' WHERE id = 2",
    )
    updated = sync(connection, strategy="update_only")
    assert updated.stats["parts"]["skipped"] == 1
    assert updated.stats["parts"]["updated"] == 1
    assert "41" not in stored(connection)
    assert stored(connection)["2"]["name"] == "Renamed"


def test_a_truncated_source_does_not_wipe_the_store(connection, source):
    sync(connection, strategy="overwrite")
    execute(source, "DELETE FROM parts WHERE id > 3")

    job = sync(connection, strategy="overwrite")

    assert job.stats["parts"]["deleted"] == 0
    assert "Deleted nothing" in job.stats["parts"]["warnings"][0]
    assert len(stored(connection)) == 30


def test_incremental_reads_only_what_changed_after_the_cursor(connection, source):
    sync(connection, mode="INCREMENTAL")
    execute(source, "UPDATE parts SET name = 'Late', updated_at = '2031-01-01' WHERE id = 9")

    job = sync(connection, mode="INCREMENTAL")

    assert (job.progress["recordsDone"], job.progress["recordsTotal"]) == (1, 1)
    assert job.stats["parts"]["updated"] == 1
    assert stored(connection)["9"]["name"] == "Late"


def test_a_table_keyed_by_text_with_a_date_cursor(connection, source):
    execute(
        source, "INSERT INTO notes VALUES ('a-1', 'one', '2025-01-01'), ('b-2', NULL, '2025-01-02')"
    )

    job = connection_sync_start(connection=connection, actor=ACTOR, entities=["notes"])
    sync_job_run(job.pk)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error
    assert stored(connection, "notes") == {
        "a-1": {"code": "a-1", "body": "one", "changed": "2025-01-01"},
        "b-2": {"code": "b-2", "body": None, "changed": "2025-01-02"},
    }


@dataclass
class Notes:
    """An integration from the steerable in-memory connector into a real ``notes`` table."""

    rows: list[dict[str, Any]]
    integration: Integration
    source: str

    def run(self) -> SyncJob:
        job = integration_sync_start(integration=self.integration, actor=ACTOR, mode="FULL")
        sync_job_run(job.pk)
        job.refresh_from_db()
        assert job.status == JobStatus.COMPLETED, job.error
        return job

    def table(self) -> list[tuple[str, str]]:
        with admin_connect(self.source) as conn:
            return conn.execute("SELECT code, body FROM notes ORDER BY code").fetchall()


@pytest.fixture
def notes(tenant, source, monkeypatch) -> Notes:
    monkeypatch.setitem(registry._REGISTRY, MemoryConnector.id, MemoryConnector)
    rows = [{"code": f"n-{n}", "body": f"note {n}", "changed": f"2025-01-0{n}"} for n in (1, 2, 3)]
    DATASETS["notes"] = Dataset(
        records={"notes": rows}, primary_key=["code"], cursor_field="changed"
    )
    memory = connection_create(
        account=tenant.account,
        actor=ACTOR,
        connector_id="test_memory",
        name="Notes app",
        config={"dataset": "notes"},
    )
    warehouse = connection_create(
        account=tenant.account,
        actor=ACTOR,
        connector_id="postgres",
        name="Warehouse",
        config={"host": PG_HOST, "port": PG_PORT, "database": source},
        credentials={"user": PG_USER},
    )
    integration = IntegrationFactory(
        account=tenant.account,
        dealership=None,
        type="test_memory",
        data_type="records",
        source_connection=memory,
        destination_connection=warehouse,
    )
    return Notes(rows=rows, integration=integration, source=source)


def test_an_integration_writes_changed_records_into_a_postgres_destination(notes):
    for body in ("note 2", "changed"):
        notes.rows[1]["body"] = body
        job = notes.run()

    assert job.stats["notes"]["updated"] == 1
    assert job.stats["notes"]["unchanged"] == 2
    assert notes.table() == [("n-1", "note 1"), ("n-2", "changed"), ("n-3", "note 3")]


def test_an_overwrite_removes_what_the_source_dropped_from_the_destination_too(notes):
    notes.integration.sync_settings = {"strategy": "overwrite"}
    notes.integration.save(update_fields=["sync_settings"])
    notes.run()
    # A row the integration never wrote is not the integration's to remove.
    execute(notes.source, "INSERT INTO notes VALUES ('other', 'kept', '2025-02-01')")
    del notes.rows[0]

    job = notes.run()

    assert job.stats["notes"]["deleted"] == 1
    assert notes.table() == [("n-2", "note 2"), ("n-3", "note 3"), ("other", "kept")]


def test_a_destination_that_cannot_remove_records_says_so(notes, tenant):
    # The in-memory connector is a destination without supports_delete.
    notes.integration.destination_connection = connection_create(
        account=tenant.account,
        actor=ACTOR,
        connector_id="test_memory",
        name="Notes copy",
        config={"dataset": "notes"},
    )
    notes.integration.sync_settings = {"strategy": "overwrite"}
    notes.integration.save(update_fields=["destination_connection", "sync_settings"])
    notes.run()
    del notes.rows[0]

    job = notes.run()

    assert job.stats["notes"]["deleted"] == 1
    assert any(
        "1 record(s) removed from the store stay in the destination" in line["message"]
        and line["level"] == "warning"
        for line in job.log
    )


def test_text_keys_the_store_refuses_are_rejected_not_bulk_loaded(connection, source):
    """The bulk path does not check keys one by one: a table holding an empty or too long text
    key is read through the Python path, which rejects those rows with samples."""
    execute(
        source,
        "INSERT INTO notes SELECT 'n-' || n, 'note', '2025-01-01' FROM generate_series(1, 28) n; "
        "INSERT INTO notes VALUES ('', 'empty key', '2025-01-02'), "
        "(repeat('k', 501), 'long key', '2025-01-03')",
    )
    reader = PostgresConnector(
        config={"host": PG_HOST, "port": PG_PORT, "database": source},
        credentials={"user": PG_USER},
    )
    assert reader.can_copy("notes") is False
    assert reader.can_copy("parts") is True  # an integer key cannot be refused

    job = connection_sync_start(connection=connection, actor=ACTOR, entities=["notes"])
    sync_job_run(job.pk)
    job.refresh_from_db()

    assert job.status == JobStatus.COMPLETED, job.error
    stats = job.stats["notes"]
    assert (stats["created"], stats["errors"]) == (28, 2)
    reasons = sorted(sample["reason"] for sample in stats["errorSamples"])
    assert reasons == [
        "The primary key is longer than 500 characters.",
        'The record has no value for its primary key "code".',
    ]
    assert set(stored(connection, "notes")) == {f"n-{n}" for n in range(1, 29)}

    execute(source, "DELETE FROM notes WHERE code = '' OR length(code) > 500")
    assert reader.can_copy("notes") is True
