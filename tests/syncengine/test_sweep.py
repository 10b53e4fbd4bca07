"""The outbox sweep: a file whose task was lost is dispatched again; a dead worker's file too."""

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from syncengine.models import FeedFile, SyncJob
from syncengine.services import feed_files_redispatch
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingest_queue():
    """The length of the real broker's ``ingest`` queue (Redis list)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("ingest")
    yield lambda: client.llen("ingest")
    client.delete("ingest")
    client.close()


def test_a_file_left_received_is_dispatched_again(feed, upload, ingest_queue):
    feed_file = upload(feed, vauto_rows(ROW_A))
    FeedFile.objects.filter(pk=feed_file.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )

    dispatched = feed_files_redispatch()

    assert dispatched == 1
    assert ingest_queue() == 1
    feed_file.refresh_from_db()
    assert feed_file.dispatched_at is not None
    assert feed_files_redispatch() == 0  # just dispatched: not again until the quiet period passes


def test_a_fresh_upload_is_left_to_its_own_task(feed, upload, ingest_queue):
    upload(feed, vauto_rows(ROW_A))

    assert feed_files_redispatch() == 0
    assert ingest_queue() == 0


def test_a_file_whose_worker_died_is_queued_again_then_given_up(feed, upload, ingest_queue):
    feed_file = upload(feed, vauto_rows(ROW_A))
    stale = timezone.now() - timedelta(hours=1)
    job = SyncJob.objects.create(
        account=feed.account, integration=feed, trigger="file", status="RUNNING", heartbeat_at=stale
    )
    FeedFile.objects.filter(pk=feed_file.pk).update(
        status="processing", job=job, attempts=1, received_at=stale
    )

    feed_files_redispatch()

    job.refresh_from_db()
    feed_file.refresh_from_db()
    assert job.status == "FAILED"
    assert feed_file.status == "received"
    assert ingest_queue() == 1

    FeedFile.objects.filter(pk=feed_file.pk).update(
        status="processing", attempts=settings.FEED_MAX_ATTEMPTS
    )
    job.status, job.heartbeat_at = "RUNNING", stale
    job.save()
    feed_files_redispatch()
    feed_file.refresh_from_db()
    assert feed_file.status == "failed"
    assert "Gave up" in feed_file.error
