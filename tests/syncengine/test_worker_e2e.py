"""End to end with a real Celery worker process: a received file is ingested by the worker."""

import pytest

from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C, VIN_A
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_worker_ingests_a_received_file(feed, upload):
    with celery_worker(queues="ingest"):
        feed_file = upload(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

        done = wait_for(
            lambda: FeedFile.objects.filter(pk=feed_file.pk, status="completed").first(), timeout=90
        )

    assert (done.records_total, done.records_created, done.records_errors) == (3, 3, 0)
    assert Vehicle.objects.filter(integration=feed, status="active").count() == 3
    assert Vehicle.objects.get(vin=VIN_A).stock_number == "00123"
    job = SyncJob.objects.get(pk=done.job_id)
    assert job.status == "COMPLETED"
    assert job.stats["vehicles"]["created"] == 3
