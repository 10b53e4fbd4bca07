"""End to end with a real Celery worker process and a real PostgreSQL source: a connection is
synced through the API into the record store, and a running sync is cancelled."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncengine.models import Record, SyncJob
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 25_000  # what SOURCE_SQL inserts

SOURCE_SQL = """
CREATE TABLE customers (
    id integer PRIMARY KEY,
    email text NOT NULL,
    balance numeric(10, 2),
    updated_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT n, 'customer' || n || '@example.com', n * 1.5,
    '2025-01-01'::timestamptz + n * interval '1 second'
FROM generate_series(1, 25000) AS n;
"""


@pytest.fixture(scope="module")
def source_database() -> Iterator[str]:
    with scratch_database("e2e_sync", SOURCE_SQL) as name:
        yield name


def create_connection(api, database: str) -> str:
    response = api.post(
        "/api/v1/integrations/connections",
        {
            "connectorId": "postgres",
            "name": "Warehouse",
            "config": {"host": PG_HOST, "port": PG_PORT, "database": database},
            "credentials": {"user": PG_USER},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["data"]["connectionId"]


def job_status(sync_url: str, api) -> dict:
    response = api.get(sync_url)
    assert response.status_code == 200
    return response.json()["data"]


def test_worker_syncs_a_postgres_table_into_the_record_store(api, source_database):
    connection_id = create_connection(api, source_database)
    with celery_worker(queues="sync"):
        response = api.post(
            f"/api/v1/integrations/connections/{connection_id}/sync",
            {"entities": ["customers"], "mode": "FULL"},
            format="json",
        )
        assert response.status_code == 202, response.json()
        sync_id = response.json()["data"]["syncId"]
        url = f"/api/v1/integrations/connections/{connection_id}/sync/{sync_id}"
        done = wait_for(
            lambda: (data := job_status(url, api))["status"] in ("COMPLETED", "FAILED") and data,
            timeout=120,
        )

        assert done["status"] == "COMPLETED", done
        assert done["stats"] == {
            "customers": {
                "created": ROWS,
                "updated": 0,
                "unchanged": 0,
                "deleted": 0,
                "errors": 0,
                "skipped": 0,
                "read": ROWS,
            }
        }
        assert done["progress"]["recordsDone"] == ROWS
        assert done["startedAt"] is not None
        assert done["completedAt"] is not None

        # A change at the source, then an incremental sync: only the changed row is read.
        with admin_connect(source_database) as conn:
            conn.execute("UPDATE customers SET balance = 0, updated_at = '2030-01-01' WHERE id = 7")
        response = api.post(
            f"/api/v1/integrations/connections/{connection_id}/sync",
            {"entities": ["customers"], "mode": "INCREMENTAL"},
            format="json",
        )
        assert response.status_code == 202
        sync_id = response.json()["data"]["syncId"]
        url = f"/api/v1/integrations/connections/{connection_id}/sync/{sync_id}"
        again = wait_for(
            lambda: (data := job_status(url, api))["status"] in ("COMPLETED", "FAILED") and data,
            timeout=120,
        )

    assert again["status"] == "COMPLETED", again
    assert again["stats"]["customers"]["updated"] == 1
    assert again["stats"]["customers"]["created"] == 0
    assert again["progress"]["recordsDone"] == 1
    assert Record.objects.filter(stream__connection_id=connection_id).count() == ROWS
    data = Record.objects.get(stream__connection_id=connection_id, key="7").data
    assert data["balance"] == "0.00"
    assert data["email"] == "customer7@example.com"


def test_cancel_stops_a_running_sync_and_keeps_the_committed_batches(api, source_database):
    connection_id = create_connection(api, source_database)
    # Small batches make the job run long enough to be cancelled in the middle.
    with celery_worker(queues="sync", SYNC_BATCH_SIZE="50", SYNC_BULK_BATCH_SIZE="50"):
        response = api.post(
            f"/api/v1/integrations/connections/{connection_id}/sync",
            {"entities": ["customers"]},
            format="json",
        )
        job_id = response.json()["data"]["syncId"]
        wait_for(
            lambda: SyncJob.objects.filter(
                pk=job_id, status="RUNNING", progress__recordsDone__gte=200
            ).exists(),
            timeout=60,
            interval=0.05,
        )

        response = api.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 200
        assert response.json()["data"]["cancelRequestedAt"] is not None

        job = wait_for(
            lambda: SyncJob.objects.filter(pk=job_id, status="CANCELLED").first(), timeout=60
        )

    stored = Record.objects.filter(stream__connection_id=connection_id).count()
    assert 0 < stored < ROWS
    assert stored == job.stats["customers"]["created"]
    assert job.completed_at is not None
    detail = api.get(f"/api/v1/jobs/{job_id}").json()["data"]
    assert detail["status"] == "CANCELLED"
    assert any("Cancel requested" in line["message"] for line in detail["log"])
    assert any("committed batches are kept" in line["message"] for line in detail["log"])
