"""The sync job runner, in process, with a steerable in-memory source (see memory.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Event
from accounts.services import Actor
from integrations.choices import IntegrationState, IntegrationStatus
from syncengine.choices import JobStatus
from syncengine.models import Record, Snapshot, SyncJob, SyncStream
from syncengine.sync.launch import connection_sync_start, integration_sync_start, sync_job_cancel
from tests.factories import IntegrationFactory
from tests.syncengine.memory import Dataset, connection_for, customers, run

ACTOR = Actor.system("tests")


pytestmark = pytest.mark.usefixtures("memory_connector")


def records(job_or_stream_owner, entity: str) -> dict[str, dict]:
    stream = SyncStream.objects.get(entity=entity, **job_or_stream_owner)
    return {record.key: record.data for record in Record.objects.filter(stream=stream)}


def events(account, kind: str) -> list[Event]:
    return list(Event.objects.filter(account=account, type=kind).order_by("created_at"))


# --- connection syncs ---------------------------------------------------------------------------


def test_full_sync_stores_every_record_with_exact_stats_and_events(tenant):
    connection = connection_for(tenant, Dataset(records={"customers": customers(5)}))
    job = run(connection_sync_start(connection=connection, actor=ACTOR))

    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 1
    assert job.stats["customers"] == {
        "created": 5,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "errors": 0,
        "skipped": 0,
        "read": 5,
    }
    # The in-memory source cannot count ahead of reading, so there is no total.
    assert (job.progress["recordsDone"], job.progress["recordsTotal"]) == (5, None)
    assert job.started_at is not None
    assert job.completed_at is not None
    stored = records({"connection": connection}, "customers")
    assert stored["3"] == {"id": 3, "name": "Customer 3", "updated": "2025-01-01T00:00:03"}
    connection.refresh_from_db()
    assert connection.last_sync_at is not None
    assert len(events(tenant.account, "integration.sync.started")) == 1
    (completed,) = events(tenant.account, "integration.sync.completed")
    assert completed.payload["stats"]["customers"]["created"] == 5
    assert completed.payload["connection"]["id"] == str(connection.pk)


def test_second_full_sync_counts_unchanged_updated_and_overwrite_deletes(tenant):
    dataset = Dataset(records={"customers": customers(4)})
    connection = connection_for(tenant, dataset)
    run(connection_sync_start(connection=connection, actor=ACTOR))

    dataset.records["customers"][0]["name"] = "Renamed"
    del dataset.records["customers"][3]
    job = run(connection_sync_start(connection=connection, actor=ACTOR, strategy="overwrite"))

    assert job.stats["customers"] == {
        "created": 0,
        "updated": 1,
        "unchanged": 2,
        "deleted": 1,
        "errors": 0,
        "skipped": 0,
        "read": 3,
    }
    stored = records({"connection": connection}, "customers")
    assert set(stored) == {"1", "2", "3"}
    assert stored["1"]["name"] == "Renamed"


def test_merge_keeps_records_the_source_no_longer_has(tenant):
    dataset = Dataset(records={"customers": customers(3)})
    connection = connection_for(tenant, dataset)
    run(connection_sync_start(connection=connection, actor=ACTOR))
    dataset.records["customers"].pop()

    job = run(connection_sync_start(connection=connection, actor=ACTOR, strategy="merge"))

    assert job.stats["customers"]["deleted"] == 0
    assert set(records({"connection": connection}, "customers")) == {"1", "2", "3"}


def test_incremental_reads_after_the_saved_cursor(tenant):
    dataset = Dataset(records={"customers": customers(3)})
    connection = connection_for(tenant, dataset)
    first = run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))
    assert first.stats["customers"]["created"] == 3
    stream = SyncStream.objects.get(connection=connection, entity="customers")
    assert stream.cursor == "2025-01-01T00:00:03"

    dataset.records["customers"] += customers(2, start=4, day=2)
    second = run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))

    assert dataset.reads[-1]["cursor"] == "2025-01-01T00:00:03"
    assert second.stats["customers"]["created"] == 2
    assert second.stats["customers"]["unchanged"] == 0
    stream.refresh_from_db()
    assert stream.cursor == "2025-01-02T00:00:05"


def test_date_range_is_passed_to_the_source(tenant):
    dataset = Dataset(records={"customers": customers(1)})
    connection = connection_for(tenant, dataset)
    job = connection_sync_start(
        connection=connection,
        actor=ACTOR,
        mode="INCREMENTAL",
        date_range={"from": "2025-01-01", "to": "2025-01-15"},
    )
    run(job)
    (read,) = dataset.reads
    assert str(read["dateRange"][0]) == "2025-01-01"
    assert str(read["dateRange"][1]) == "2025-01-15"


def test_retryable_error_requeues_with_backoff_and_resumes_from_the_committed_cursor(
    tenant, settings
):
    settings.JOB_RETRY_BACKOFF_SECONDS = 30
    # Records 2..4 share one cursor value across a batch boundary: resuming with "> cursor"
    # from the last record of a batch would lose some of them.
    rows = customers(6)
    for record in rows[1:4]:
        record["updated"] = "2025-01-01T00:00:02"
    dataset = Dataset(records={"customers": rows}, fail_after=(2, True))
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))

    assert job.status == JobStatus.QUEUED
    assert job.attempts == 1
    assert "timed out" in job.error
    assert job.next_attempt_at is not None
    assert job.next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert any("Retrying in 30 s" in line["message"] for line in job.log)
    assert len(records({"connection": connection}, "customers")) == 4

    # Not yet due: a dispatch before the backoff is over does not start it.
    assert run(job).status == JobStatus.QUEUED
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        job = run(job)

    assert job.status == JobStatus.COMPLETED
    assert job.attempts == 2
    # It resumed below the shared value, not from the start and not after it.
    assert dataset.reads[-1]["cursor"] == "2025-01-01T00:00:01"
    assert set(records({"connection": connection}, "customers")) == {"1", "2", "3", "4", "5", "6"}
    stats = job.stats["customers"]
    assert stats["created"] == 6
    assert stats["created"] + stats["updated"] + stats["unchanged"] >= 6


def test_error_that_a_retry_cannot_fix_fails_at_once(tenant):
    dataset = Dataset(records={"customers": customers(4)}, fail_after=(1, False))
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR))

    assert job.status == JobStatus.FAILED
    assert job.attempts == 1
    assert job.error == "The source timed out."
    (failed,) = events(tenant.account, "integration.sync.failed")
    assert failed.payload["error"] == "The source timed out."


def test_retries_give_up_after_max_attempts(tenant, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    dataset = Dataset(records={"customers": customers(2)}, fail_after=(0, True))
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR))
    assert job.status == JobStatus.QUEUED
    dataset.fail_after = (0, True)
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        job = run(job)
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    assert "gave up after 2 attempts" in job.error


def test_rejected_records_are_counted_with_samples_within_the_error_budget(tenant):
    rows = customers(20)
    rows[4]["id"] = None
    connection = connection_for(tenant, Dataset(records={"customers": rows}))
    job = run(connection_sync_start(connection=connection, actor=ACTOR))

    assert job.status == JobStatus.COMPLETED
    stats = job.stats["customers"]
    assert stats["errors"] == 1
    assert stats["created"] == 19
    (sample,) = stats["errorSamples"]
    assert 'no value for its primary key "id"' in sample["reason"]
    assert "Customer 5" in sample["record"]


def test_errors_beyond_the_budget_fail_the_job(tenant):
    rows = customers(10)
    for record in rows[:2]:
        record["id"] = None
    connection = connection_for(tenant, Dataset(records={"customers": rows}))
    job = run(connection_sync_start(connection=connection, actor=ACTOR))

    assert job.status == JobStatus.FAILED
    assert "2 of 10 records were rejected" in job.error
    assert job.stats["customers"]["errors"] == 2


# --- cancel ------------------------------------------------------------------------------------


def test_cancelled_queued_job_never_starts(tenant):
    dataset = Dataset(records={"customers": customers(3)})
    connection = connection_for(tenant, dataset)
    job = connection_sync_start(connection=connection, actor=ACTOR)
    sync_job_cancel(job=job, actor=ACTOR)

    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert job.started_at is None
    assert dataset.reads == []
    assert not SyncStream.objects.filter(connection=connection).exists()


def test_running_job_stops_at_the_next_batch_keeps_what_it_committed_and_stays_cancelled(tenant):
    dataset = Dataset(records={"customers": customers(10)})
    connection = connection_for(tenant, dataset)
    job = connection_sync_start(connection=connection, actor=ACTOR)

    def cancel_during_second_batch(entity, number):
        if number == 1:
            sync_job_cancel(job=SyncJob.objects.get(pk=job.pk), actor=ACTOR)

    dataset.before_batch = cancel_during_second_batch
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert job.completed_at is not None
    # Both batches read before the cancel was seen are committed; nothing after.
    assert set(records({"connection": connection}, "customers")) == {"1", "2", "3", "4"}
    assert job.stats["customers"]["created"] == 4
    assert run(job).status == JobStatus.CANCELLED
    assert not events(tenant.account, "integration.sync.completed")


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_is_an_immutable_copy_and_leaves_the_store_alone(tenant):
    dataset = Dataset(records={"customers": customers(3), "invoices": customers(2)})
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR, mode="SNAPSHOT"))

    assert job.status == JobStatus.COMPLETED
    snapshot = Snapshot.objects.get(job=job)
    assert snapshot.complete
    assert snapshot.entities == {"customers": 3, "invoices": 2}
    assert snapshot.record_count == 5
    positions = [
        (position, data["id"])
        for position, data in snapshot.records.filter(entity="customers")
        .order_by("position")
        .values_list("position", "data")
    ]
    assert positions == [(0, 1), (1, 2), (2, 3)]
    assert not Record.objects.filter(stream__connection=connection).exists()


# --- integration runs --------------------------------------------------------------------------


def integration_for(tenant, dataset: Dataset, **values):
    source = connection_for(tenant, dataset, name="source")
    return IntegrationFactory(
        account=tenant.account,
        dealership=None,
        type="test_memory",
        data_type="customers",
        source_connection=source,
        **values,
    )


def test_integration_run_applies_tasks_and_forwards_changes_to_the_destination(tenant):
    dataset = Dataset(
        records={
            "customers": [
                {"id": 1, "email": "a@example.com", "status": "active", "updated": "1"},
                {"id": 2, "email": "b@example.com", "status": "closed", "updated": "2"},
                {"id": 3, "email": "c@example.com", "status": "active", "updated": "3"},
            ]
        }
    )
    target = Dataset()
    integration = integration_for(
        tenant,
        dataset,
        destination_connection=connection_for(tenant, target, name="target"),
        config={
            "global": {},
            "tasks": [
                {"task_type": "sync", "entity": "customers", "destinationEntity": "people"},
                {"task_type": "filter", "field": "status", "equals": "active"},
                {"task_type": "rename", "fields": {"email": "email_address"}},
                {"task_type": "set", "values": {"source": "memory"}},
                {"task_type": "drop", "fields": ["updated"]},
            ],
        },
    )
    job = run(integration_sync_start(integration=integration, actor=ACTOR))

    assert job.status == JobStatus.COMPLETED, job.error
    assert job.stats["customers"]["created"] == 2
    assert job.stats["customers"]["skipped"] == 1
    assert target.written["people"] == [
        {"id": 1, "email_address": "a@example.com", "status": "active", "source": "memory"},
        {"id": 3, "email_address": "c@example.com", "status": "active", "source": "memory"},
    ]
    integration.refresh_from_db()
    assert integration.status == IntegrationStatus.COMPLETED
    assert integration.last_sync_at is not None
    assert integration.latest_job_id == job.pk

    # Integration runs read incrementally: nothing new, nothing read.
    job = run(integration_sync_start(integration=integration, actor=ACTOR))
    assert job.mode == "INCREMENTAL"
    assert job.progress["recordsDone"] == 0
    # A full read finds nothing changed: nothing is sent again.
    job = run(integration_sync_start(integration=integration, actor=ACTOR, mode="FULL"))
    assert job.stats["customers"]["unchanged"] == 2
    assert len(target.written["people"]) == 2


def test_unknown_task_type_fails_the_run_readably(tenant):
    integration = integration_for(
        tenant,
        Dataset(records={"customers": customers(1)}),
        config={"global": {}, "tasks": [{"task_type": "send_sms"}]},
    )
    job = run(integration_sync_start(integration=integration, actor=ACTOR))
    assert job.status == JobStatus.FAILED
    assert "does not run task_type 'send_sms'" in job.error


def test_consecutive_failures_pause_the_integration(tenant, settings):
    settings.AUTO_PAUSE_AFTER_FAILURES = 3
    dataset = Dataset(records={"customers": customers(1)})
    integration = integration_for(tenant, dataset)
    for attempt in range(3):
        dataset.fail_after = (0, False)
        job = run(integration_sync_start(integration=integration, actor=ACTOR))
        assert job.status == JobStatus.FAILED
        integration.refresh_from_db()
        assert integration.consecutive_failures == attempt + 1
        assert integration.last_error == "The source timed out."
        assert integration.status == IntegrationStatus.ERRORED

    assert integration.state == IntegrationState.INACTIVE
    (paused,) = events(tenant.account, "integration.paused")
    assert paused.payload["consecutiveFailures"] == 3


def test_a_success_resets_the_failure_streak(tenant):
    dataset = Dataset(records={"customers": customers(1)}, fail_after=(0, False))
    integration = integration_for(tenant, dataset)
    run(integration_sync_start(integration=integration, actor=ACTOR))
    run(integration_sync_start(integration=integration, actor=ACTOR))
    integration.refresh_from_db()
    assert integration.consecutive_failures == 0
    assert integration.last_error == ""


def test_a_job_waits_while_another_job_of_its_integration_runs(tenant):
    integration = integration_for(tenant, Dataset(records={"customers": customers(1)}))
    SyncJob.objects.create(
        account=tenant.account, integration=integration, trigger="file", status=JobStatus.RUNNING
    )
    job = SyncJob.objects.create(account=tenant.account, integration=integration, trigger="manual")
    job = run(job)
    assert job.status == JobStatus.QUEUED
    # It waits its turn: no countdown of its own and no attempt spent; the running job's
    # ending sends it.
    assert job.next_attempt_at is None
    assert job.attempts == 0
    assert "Another job of this integration is running" in job.log[-1]["message"]


# --- edges: cancel meets retry, date ranges, fencing, retry counts ------------------------------


def test_a_cancel_followed_by_a_retryable_error_ends_cancelled_not_queued(tenant):
    dataset = Dataset(records={"customers": customers(6)}, fail_after=(1, True))
    connection = connection_for(tenant, dataset)
    job = connection_sync_start(connection=connection, actor=ACTOR)

    def cancel_then_fail(entity, number):
        if number == 1:
            sync_job_cancel(job=SyncJob.objects.get(pk=job.pk), actor=ACTOR)

    dataset.before_batch = cancel_then_fail
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert job.next_attempt_at is None
    assert set(records({"connection": connection}, "customers")) == {"1", "2"}
    # Nothing holds the connection: a new sync is accepted.
    assert connection_sync_start(connection=connection, actor=ACTOR).status == JobStatus.QUEUED


def test_a_queued_job_with_a_cancel_request_ends_cancelled_when_its_task_comes(tenant):
    connection = connection_for(tenant, Dataset(records={"customers": customers(1)}))
    job = connection_sync_start(connection=connection, actor=ACTOR)
    SyncJob.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())

    assert run(job).status == JobStatus.CANCELLED


def test_a_date_range_read_leaves_the_stream_cursor_alone(tenant):
    dataset = Dataset(records={"customers": customers(3, day=5)})
    connection = connection_for(tenant, dataset)
    run(connection_sync_start(connection=connection, actor=ACTOR, mode="INCREMENTAL"))
    stream = SyncStream.objects.get(connection=connection, entity="customers")
    saved = stream.cursor

    dataset.records["customers"] += customers(1, start=9, day=20)
    run(
        connection_sync_start(
            connection=connection,
            actor=ACTOR,
            mode="INCREMENTAL",
            date_range={"from": "2025-01-15", "to": "2025-01-31"},
        )
    )

    stream.refresh_from_db()
    assert stream.cursor == saved


def test_a_run_the_sweep_handed_to_another_worker_stops_writing(tenant):
    dataset = Dataset(records={"customers": customers(8)})
    connection = connection_for(tenant, dataset)
    job = connection_sync_start(connection=connection, actor=ACTOR)

    def taken_over(entity, number):
        if number == 1:
            # The sweep gave up on this run and another worker claimed the job (attempt 2).
            SyncJob.objects.filter(pk=job.pk).update(attempts=2)

    dataset.before_batch = taken_over
    run(job)

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.attempts == 2
    # The batch it was writing when it lost the job is rolled back, not committed.
    assert set(records({"connection": connection}, "customers")) == {"1", "2"}


def test_a_full_overwrite_retry_counts_each_record_once(tenant):
    dataset = Dataset(records={"customers": customers(6)}, fail_after=(2, True))
    connection = connection_for(tenant, dataset)
    job = run(connection_sync_start(connection=connection, actor=ACTOR, strategy="overwrite"))
    assert job.status == JobStatus.QUEUED

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        job = run(job)

    assert job.status == JobStatus.COMPLETED
    assert dataset.reads[-1]["cursor"] is None  # an overwrite starts its entity over
    stats = job.stats["customers"]
    assert stats["created"] + stats["updated"] + stats["unchanged"] == 6


def test_a_cancel_after_the_last_batch_still_ends_cancelled(tenant, monkeypatch):
    from syncengine.sync.runner import kind

    connection = connection_for(tenant, Dataset(records={"customers": customers(2)}))
    job = connection_sync_start(connection=connection, actor=ACTOR)
    budget = kind.error_budget_exceeded

    def cancel_at_the_end(ctx):
        sync_job_cancel(job=SyncJob.objects.get(pk=job.pk), actor=ACTOR)
        return budget(ctx)

    monkeypatch.setattr(kind, "error_budget_exceeded", cancel_at_the_end)
    job = run(job)

    assert job.status == JobStatus.CANCELLED
    assert len(records({"connection": connection}, "customers")) == 2
