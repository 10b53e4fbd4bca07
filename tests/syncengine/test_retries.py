"""What a retry keeps: every row, the counts of committed batches, the error budget, the start
time; and what a run that may not start leaves on its integration."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.services import Actor
from integrations.choices import IntegrationState, IntegrationStatus
from integrations.models import Integration
from syncengine.choices import JobStatus
from syncengine.models import Record, SyncJob, SyncStream
from syncengine.sync.launch import connection_sync_start, integration_sync_start
from tests.connectors.fakehttp import Answer, Request, json_server
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.syncengine.memory import Dataset, connection_for, customers, run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("memory_connector")]

ACTOR = Actor.system("tests")


def retry(job: SyncJob) -> SyncJob:
    """Run the job again once its backoff has run out."""
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        return run(job)


def stored_keys(connection) -> set[str]:
    return set(Record.objects.filter(stream__connection=connection).values_list("key", flat=True))


def test_an_api_read_out_of_cursor_order_loses_no_row_on_retry(tenant):
    # The API pages by id; its cursor field goes up and down. Page 2 fails once.
    rows = [{"id": n, "updated": updated} for n, updated in enumerate([3, 5, 6, 4, 7], start=1)]
    failures = [503]

    def answer(request: Request) -> Answer:
        page = int(request.param("page") or 1)
        if page == 2 and failures:
            return failures.pop(), {}, {"error": "unavailable"}
        return 200, {}, rows[(page - 1) * 3 : page * 3]

    with json_server(answer) as url:
        connection = ConnectionFactory(
            account=tenant.account,
            connector_id="http_json",
            config={
                "baseUrl": url,
                "entities": {
                    "items": {
                        "path": "/items",
                        "cursorField": "updated",
                        "pagination": {"type": "page", "pageSize": 3},
                    }
                },
            },
        )
        job = run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))
        assert job.status == JobStatus.QUEUED
        # Nothing after the first page is safe to resume from: no cursor was committed.
        assert SyncStream.objects.get(connection=connection).cursor is None

        job = retry(job)

    assert job.status == JobStatus.COMPLETED, job.error
    assert stored_keys(connection) == {"1", "2", "3", "4", "5"}
    assert job.stats["items"]["created"] == 5
    assert job.stats["items"]["read"] == 5
    assert SyncStream.objects.get(connection=connection).cursor == 7


def test_the_error_budget_counts_the_reads_of_every_attempt(tenant):
    # 1 rejected record in 12 is within the default budget (10%), retry or not.
    rows = customers(12)
    rows[1]["id"] = None
    connection = connection_for(tenant, Dataset(records={"customers": rows}, fail_after=(3, True)))

    job = retry(run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL")))

    assert job.status == JobStatus.COMPLETED, job.error
    stats = job.stats["customers"]
    assert (stats["errors"], stats["read"]) == (1, 12)
    assert stats["created"] == 11
    assert job.progress["recordsDone"] == 12


def test_a_retry_keeps_the_start_time_of_the_job(tenant):
    connection = connection_for(
        tenant, Dataset(records={"customers": customers(6)}, fail_after=(1, True))
    )
    job = run(connection_sync_start(connection=connection, actor=ACTOR))
    started = job.started_at

    job = retry(job)

    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 2
    assert started is not None
    assert job.started_at == started
    assert job.completed_at is not None
    assert job.completed_at > started


def test_an_integration_paused_before_its_retry_is_not_left_running(tenant):
    connection = connection_for(
        tenant, Dataset(records={"customers": customers(6)}, fail_after=(1, True))
    )
    integration = IntegrationFactory(
        account=tenant.account, type="test_memory", source_connection=connection
    )
    job = run(integration_sync_start(integration=integration, actor=ACTOR))
    integration.refresh_from_db()
    assert (job.status, integration.status) == (JobStatus.QUEUED, IntegrationStatus.RUNNING)
    Integration.objects.filter(pk=integration.pk).update(state=IntegrationState.INACTIVE)

    job = retry(job)

    integration.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert integration.status != IntegrationStatus.RUNNING
    assert integration.consecutive_failures == 0
    assert "inactive" in integration.last_error


def exact(stats: dict) -> tuple[int, int, int, int]:
    return stats["created"], stats["updated"], stats["unchanged"], stats["read"]


def test_a_full_overwrite_that_starts_over_counts_what_the_failed_attempt_wrote(tenant):
    # Attempt 1 writes two batches (4 records) and fails; attempt 2 reads all 6 again.
    connection = connection_for(
        tenant, Dataset(records={"customers": customers(6)}, fail_after=(2, True))
    )

    job = retry(
        run(connection_sync_start(connection=connection, actor=ACTOR, strategy="overwrite"))
    )

    assert job.status == JobStatus.COMPLETED
    assert exact(job.stats["customers"]) == (6, 0, 0, 6)
    assert job.progress["recordsDone"] == 6


def test_a_resumed_incremental_counts_each_record_once(tenant):
    # Two records share each cursor value, so the resumed read repeats the last committed one.
    rows = customers(6)
    for row in rows:
        row["updated"] = f"2025-01-01T00:00:{(row['id'] + 1) // 2:02d}"
    dataset = Dataset(records={"customers": rows}, fail_after=(2, True))
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))
    rows[0]["name"] = "Changed before the retry"  # already read: not seen again

    job = retry(job)

    assert job.status == JobStatus.COMPLETED
    assert dataset.reads[-1]["cursor"] is not None  # resumed, not started over
    assert exact(job.stats["customers"]) == (6, 0, 0, 6)


def test_records_changed_by_the_failed_attempt_count_as_updated(tenant):
    rows = customers(6)
    dataset = Dataset(records={"customers": rows})
    connection = connection_for(tenant, dataset)
    run(connection_sync_start(connection=connection, actor=ACTOR, strategy="overwrite"))
    for row in rows:
        row["name"] += " (new)"
    dataset.fail_after = (2, True)

    job = retry(
        run(connection_sync_start(connection=connection, actor=ACTOR, strategy="overwrite"))
    )

    assert job.status == JobStatus.COMPLETED
    assert exact(job.stats["customers"]) == (0, 6, 0, 6)
