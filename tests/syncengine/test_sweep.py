"""The sweep for files: a file whose task was lost is sent again; a dead worker's file is queued
again, then given up; a file waiting its turn is never sent on its own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from syncengine.jobs.sweep import jobs_sweep
from syncengine.models import FeedFile, SyncJob
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B

pytestmark = pytest.mark.django_db


def test_a_file_whose_task_was_lost_is_dispatched_again(feed, upload, ingest_queue, settings):
    feed_file = upload(feed, vauto_rows(ROW_A))
    sent = timezone.now() - timedelta(seconds=settings.JOB_REDISPATCH_AFTER_SECONDS + 1)
    SyncJob.objects.filter(pk=feed_file.job_id).update(dispatched_at=sent)

    dispatched = jobs_sweep()["redispatched"]

    assert dispatched == 1
    assert ingest_queue() == 1
    feed_file = FeedFile.objects.get(pk=feed_file.pk)
    assert feed_file.dispatched_at is not None
    assert feed_file.dispatched_at > sent
    assert jobs_sweep()["redispatched"] == 0  # just sent: not again until the quiet period passes


def test_a_fresh_upload_is_left_to_its_own_task(
    feed, upload, ingest_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload(feed, vauto_rows(ROW_A))
    assert ingest_queue() == 1

    assert jobs_sweep()["redispatched"] == 0
    assert ingest_queue() == 1


def test_a_file_whose_task_could_not_be_sent_is_sent_at_the_next_sweep(feed, upload, ingest_queue):
    # The commit's own send never happened (the broker was down): nothing to wait for.
    feed_file = upload(feed, vauto_rows(ROW_A))
    assert FeedFile.objects.get(pk=feed_file.pk).dispatched_at is None

    assert jobs_sweep()["redispatched"] == 1
    assert ingest_queue() == 1


def test_a_file_waiting_its_turn_is_not_sent_again(feed, upload, ingest_queue, settings):
    # Given a file being applied and one received after it, both long silent
    settings.JOB_REDISPATCH_AFTER_SECONDS = 0
    first = upload(feed, vauto_rows(ROW_A))
    second = upload(feed, vauto_rows(ROW_A, ROW_B))
    SyncJob.objects.filter(pk=first.job_id).update(
        status="RUNNING", attempts=1, heartbeat_at=timezone.now()
    )
    ingest_queue_before = ingest_queue()

    # When the sweep runs again and again
    counts = [jobs_sweep()["redispatched"] for _ in range(3)]

    # Then the waiting file is not sent on its own, and it spent no attempt
    assert counts == [0, 0, 0]
    assert ingest_queue() == ingest_queue_before
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("received", 0)


def test_a_file_whose_worker_died_is_queued_again_then_given_up(
    feed, upload, ingest_queue, settings
):
    feed_file = upload(feed, vauto_rows(ROW_A))
    stale = timezone.now() - timedelta(hours=1)
    SyncJob.objects.filter(pk=feed_file.job_id).update(
        status="RUNNING", attempts=1, heartbeat_at=stale, started_at=stale
    )
    FeedFile.objects.filter(pk=feed_file.pk).update(status="processing", attempts=1)
    ingest_queue_before = ingest_queue()

    counts = jobs_sweep()

    job = SyncJob.objects.get(pk=feed_file.job_id)
    feed_file.refresh_from_db()
    assert counts["requeued"] == 1
    assert job.status == "QUEUED"
    assert "no heartbeat for 3600 s" in job.log[-1]["message"]
    assert (feed_file.status, feed_file.attempts) == ("received", 1)
    assert ingest_queue() == ingest_queue_before + 1

    SyncJob.objects.filter(pk=job.pk).update(
        status="RUNNING", attempts=settings.JOB_MAX_ATTEMPTS, heartbeat_at=stale
    )
    FeedFile.objects.filter(pk=feed_file.pk).update(status="processing")

    assert jobs_sweep()["failed"] == 1

    feed_file.refresh_from_db()
    assert feed_file.status == "failed"
    assert "Gave up" in feed_file.error
    feed.refresh_from_db()
    assert feed.consecutive_failures == 1
