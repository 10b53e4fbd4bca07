"""The run lifecycle in one process: files of a feed wait their turn in the order they arrived,
the run that ends sends the next, reprocessing joins the queue, a dead worker's claim is taken
over at once and a live one is not, and a run whose claim was taken over applies nothing."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
from django.utils import timezone

from syncengine.feeds import ingest
from syncengine.feeds.ingest import feed_file_ingest
from syncengine.feeds.merge import VehicleMerge
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C

pytestmark = pytest.mark.django_db


def refreshed(feed_file: FeedFile) -> FeedFile:
    return FeedFile.objects.get(pk=feed_file.pk)


def test_a_file_received_after_another_waits_for_it(feed, upload):
    first = upload(feed, vauto_rows(ROW_A, ROW_B))
    second = upload(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

    # Its task comes first: it waits, spending no attempt
    assert feed_file_ingest(feed_file_id=str(second.pk)) is None
    waiting = refreshed(second)
    assert (waiting.status, waiting.attempts) == ("received", 0)
    log = SyncJob.objects.get(pk=second.job_id).log
    assert f"An earlier job of this integration is queued ({first.job_id})" in log[-1]["message"]

    assert feed_file_ingest(feed_file_id=str(first.pk)) is not None
    assert feed_file_ingest(feed_file_id=str(second.pk)) is not None

    first, second = refreshed(first), refreshed(second)
    assert (first.status, first.attempts, second.status, second.attempts) == (
        "completed",
        1,
        "completed",
        1,
    )
    assert first.processed_at is not None
    assert second.processed_at is not None
    assert first.processed_at < second.processed_at
    assert Vehicle.objects.filter(integration=feed, missing_syncs=0).count() == 3


def test_the_run_that_ends_sends_the_next_waiting_file(
    feed, upload, ingest_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(feed, vauto_rows(ROW_A))
        second = upload(feed, vauto_rows(ROW_A, ROW_B))
    with django_capture_on_commit_callbacks(execute=True):
        # The second's task comes first: it waits, sending nothing, and its message is spent.
        feed_file_ingest(feed_file_id=str(second.pk))
    sent = ingest_queue()

    with django_capture_on_commit_callbacks(execute=True):
        feed_file_ingest(feed_file_id=str(first.pk))

    assert ingest_queue() == sent + 1
    assert SyncJob.objects.get(pk=second.job_id).dispatched_at is not None


def test_the_run_that_ends_sends_nothing_to_a_file_whose_message_is_on_its_way(
    feed, upload, ingest_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(feed, vauto_rows(ROW_A))
        upload(feed, vauto_rows(ROW_A, ROW_B))
    sent = ingest_queue()

    with django_capture_on_commit_callbacks(execute=True):
        feed_file_ingest(feed_file_id=str(first.pk))

    assert ingest_queue() == sent  # the second's own message is still there: no duplicate


def test_a_reprocess_joins_the_queue_behind_the_files_waiting(api, feed, upload):
    applied = upload(feed, vauto_rows(ROW_A))
    feed_file_ingest(feed_file_id=str(applied.pk))
    waiting = upload(feed, vauto_rows(ROW_A, ROW_B))

    response = api.post(f"/api/v1/integrations/{feed.pk}/logs/{applied.pk}/reprocess")
    assert response.status_code == 202, response.content
    rerun = FeedFile.objects.get(pk=response.json()["data"]["logId"])

    assert feed_file_ingest(feed_file_id=str(rerun.pk)) is None
    feed_file_ingest(feed_file_id=str(waiting.pk))
    feed_file_ingest(feed_file_id=str(rerun.pk))
    assert [
        entry.pk for entry in FeedFile.objects.filter(integration=feed).order_by("processed_at")
    ] == [applied.pk, waiting.pk, rerun.pk]
    # The reprocessed file is the latest truth: the vehicle only the waiting file had is missed.
    assert Vehicle.objects.get(integration=feed, stock_number="00124").missing_syncs == 1


def test_a_waiting_file_can_be_cancelled_and_the_next_goes_on(api, feed, upload):
    first = upload(feed, vauto_rows(ROW_A))
    second = upload(feed, vauto_rows(ROW_A, ROW_B))
    third = upload(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

    response = api.post(f"/api/v1/jobs/{second.job_id}/cancel")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["status"] == "CANCELLED"
    assert refreshed(second).status == "cancelled"
    for feed_file in (first, third):
        feed_file_ingest(feed_file_id=str(feed_file.pk))
    assert [refreshed(entry).status for entry in (first, second, third)] == [
        "completed",
        "cancelled",
        "completed",
    ]


def dead_process_claim() -> dict:
    """A claim of a process of this machine that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    claim = {**lifecycle.claimant_me(), "pid": child.pid}
    ticks = lifecycle._start_ticks(child.pid)
    child.wait()
    claim["started"] = ticks[1] if ticks else "0"
    return claim


def claimed(feed_file: FeedFile, claimant: dict) -> SyncJob:
    """The file's run as a worker left it: claimed (attempt 1), beating a moment ago."""
    now = timezone.now()
    runs = SyncJob.objects.filter(feed_files=feed_file)
    runs.update(status="RUNNING", attempts=1, started_at=now, heartbeat_at=now, claimant=claimant)
    FeedFile.objects.filter(pk=feed_file.pk).update(status="processing", attempts=1)
    return runs.get()


def test_a_run_whose_worker_process_is_gone_is_taken_over_at_once(feed, upload):
    if not lifecycle._machine():
        pytest.skip("needs /proc to tell a dead process")
    feed_file = upload(feed, vauto_rows(ROW_A, ROW_B))
    job = claimed(feed_file, dead_process_claim())

    lifecycle.run_execute(job.pk, redelivered=True)

    done = refreshed(feed_file)
    assert (done.status, done.attempts, done.records_created) == ("completed", 2, 2)
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("COMPLETED", 2)
    assert any("is gone" in line["message"] for line in job.log)


def test_a_run_whose_worker_is_alive_is_left_to_it(feed, upload, ingest_queue):
    if not lifecycle._machine():
        pytest.skip("needs /proc to tell a live process")
    feed_file = upload(feed, vauto_rows(ROW_A))
    parent = lifecycle._start_ticks(lifecycle.os.getppid())
    assert parent is not None
    live = {**lifecycle.claimant_me(), "pid": lifecycle.os.getppid(), "started": parent[1]}
    job = claimed(feed_file, live)

    lifecycle.run_execute(job.pk)
    lifecycle.run_execute(job.pk, redelivered=True)

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("RUNNING", 1)
    assert Vehicle.objects.filter(integration=feed).count() == 0


def test_a_run_whose_claim_was_taken_over_applies_nothing(feed, upload, monkeypatch):
    feed_file = upload(feed, vauto_rows(ROW_A, ROW_B))
    guard = ingest._guard_row_count
    # The other worker writes in this test's transaction, which the savepoint of a merge that
    # copies new vehicles in would roll back with them: that way is tested with a real second
    # connection in test_file_transaction.py.
    monkeypatch.setattr(
        VehicleMerge, "__init__", functools.partialmethod(VehicleMerge.__init__, direct=False)
    )

    def taken_over_before_the_apply(*args, **kwargs):
        # Another worker took the run over (attempt 2) while this one staged the file.
        SyncJob.objects.filter(pk=feed_file.job_id).update(attempts=2)
        return guard(*args, **kwargs)

    monkeypatch.setattr(ingest, "_guard_row_count", taken_over_before_the_apply)

    feed_file_ingest(feed_file_id=str(feed_file.pk))

    assert Vehicle.objects.filter(integration=feed).count() == 0
    job = SyncJob.objects.get(pk=feed_file.job_id)
    assert (job.status, job.attempts) == ("RUNNING", 2)
    assert refreshed(feed_file).status == "processing"
