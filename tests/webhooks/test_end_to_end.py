"""End to end with a real Celery worker: a feed file received for an integration is ingested by
the worker, and a receiver that verifies signatures with the ``standardwebhooks`` package gets
every event of the run, in order, from the ``webhooks`` queue."""

import pytest
import redis
from django.conf import settings

from syncengine.models import FeedFile
from tests.syncengine.conftest import _feed_storage, feed, upload, vauto_rows  # noqa: F401
from tests.syncengine.test_pipeline import ROW_A, ROW_B
from tests.webhooks.receiver import webhook_receiver
from tests.worker import celery_worker, wait_for
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db(transaction=True)

# A file run records no integration.sync.started (a connector sync does).
RUN_EVENTS = ["integration.file.received", "integration.sync.completed"]


@pytest.fixture(autouse=True)
def _empty_queue():
    """Drains other tests queued on the shared broker name nothing of this test's."""
    redis.Redis.from_url(settings.REDIS_URL).delete("webhooks")


def test_a_receiver_gets_every_event_of_a_run_in_order(feed, upload, subscribe):  # noqa: F811
    with webhook_receiver() as receiver:
        _, secret = subscribe(
            f"{receiver.url}/hook",
            events=["integration.file.*", "integration.sync.*"],
            integrationIds=[str(feed.pk)],
        )
        storage = str(settings.FEED_STORAGE_DIR)
        with celery_worker(
            queues="ingest,webhooks",
            pool="prefork",
            concurrency=2,
            FEED_STORAGE_DIR=storage,
            WEBHOOK_ALLOW_HTTP="true",
        ):
            feed_file = upload(feed, vauto_rows(ROW_A, ROW_B))
            wait_for(
                lambda: FeedFile.objects.filter(pk=feed_file.pk, status="completed").exists(),
                timeout=90,
            )
            wait_for(
                lambda: (
                    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 0
                    and len(receiver.requests) >= len(RUN_EVENTS)
                ),
                timeout=60,
            )

    payloads = [request.verified_with(secret) for request in receiver.requests]
    types = [payload["type"] for payload in payloads]
    assert [kind for kind in types if kind in RUN_EVENTS] == RUN_EVENTS
    completed = payloads[types.index("integration.sync.completed")]
    assert completed["data"]["integration"]["id"] == str(feed.pk)
    assert completed["data"]["jobId"] == str(FeedFile.objects.get(pk=feed_file.pk).job_id)
    assert len({request.webhook_id for request in receiver.requests}) == len(receiver.requests)
