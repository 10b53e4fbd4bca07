"""End to end with a real Celery worker: a feed file received for an integration, a connection
syncing a real PostgreSQL table, and an export to LOCAL are each worked by the worker, and a
receiver that verifies signatures with the ``standardwebhooks`` package gets every event of the
run, in order, from the ``webhooks`` queue. A receiver that is down through several retries of
the schedule (the schedule's time moved on, not waited for) gets everything once it is back."""

import socket

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from syncengine.models import FeedFile, SyncJob
from tests.exports.conftest import put_records
from tests.factories import IntegrationFactory
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, scratch_database
from tests.syncengine.conftest import _feed_storage, feed, upload, vauto_rows  # noqa: F401
from tests.syncengine.test_pipeline import ROW_A, ROW_B
from tests.webhooks.conftest import record
from tests.webhooks.receiver import webhook_receiver
from tests.worker import celery_worker, wait_for
from webhooks.choices import DeliveryStatus
from webhooks.delivery import deliveries_sweep
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from webhooks.schedule import SCHEDULE_SECONDS

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


PARTS_SQL = """
CREATE TABLE parts (id integer PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO parts
SELECT n, 'Part ' || n, '2025-01-01'::timestamptz + n * interval '1 minute'
FROM generate_series(1, 200) AS n;
"""


def delivered(webhook: Webhook) -> int:
    return WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.DELIVERED).count()


def test_a_receiver_gets_the_events_of_a_connection_sync_in_order(api, subscribe):
    with scratch_database("webhooks_e2e", PARTS_SQL) as database, webhook_receiver() as receiver:
        webhook, secret = subscribe(f"{receiver.url}/hook", events=["integration.sync.*"])
        created = api.post(
            "/api/v1/integrations/connections",
            {
                "connectorId": "postgres",
                "name": "Parts warehouse",
                "config": {"host": PG_HOST, "port": PG_PORT, "database": database},
                "credentials": {"user": PG_USER},
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        connection_id = created.json()["data"]["connectionId"]
        with celery_worker(
            queues="sync,webhooks", pool="prefork", concurrency=2, WEBHOOK_ALLOW_HTTP="true"
        ):
            started = api.post(
                f"/api/v1/integrations/connections/{connection_id}/sync",
                {"entities": ["parts"], "mode": "FULL"},
                format="json",
            )
            assert started.status_code == 202, started.content
            sync_id = started.json()["data"]["syncId"]
            wait_for(
                lambda: SyncJob.objects.filter(pk=sync_id, status="COMPLETED").exists(),
                timeout=120,
            )
            wait_for(lambda: delivered(webhook) == 2, timeout=60)

    payloads = [request.verified_with(secret) for request in receiver.requests]
    assert [payload["type"] for payload in payloads] == [
        "integration.sync.started",
        "integration.sync.completed",
    ]
    assert [payload["data"]["jobId"] for payload in payloads] == [sync_id, sync_id]
    completed = payloads[1]["data"]
    assert completed["connection"]["id"] == connection_id
    assert completed["status"] == "COMPLETED"
    assert completed["stats"]["parts"]["created"] == 200


def test_a_receiver_gets_the_events_of_an_export_run_in_order(
    tenant, api, subscribe, settings, tmp_path
):
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports"
    put_records(tenant.account, "contracts", [(f"c-{n}", {"n": n}) for n in range(20)])
    export = api.post(
        "/api/v1/integrations/exports",
        {
            "name": "Contracts",
            "format": "CSV",
            "entities": ["contracts"],
            "destination": {"type": "LOCAL", "path": "out"},
        },
        format="json",
    ).json()["data"]
    with webhook_receiver() as receiver:
        webhook, secret = subscribe(f"{receiver.url}/hook", events=["integration.export.*"])
        with celery_worker(
            queues="export,webhooks",
            pool="prefork",
            concurrency=2,
            EXPORT_LOCAL_DIR=str(settings.EXPORT_LOCAL_DIR),
            WEBHOOK_ALLOW_HTTP="true",
        ):
            run = api.post(f"/api/v1/integrations/exports/{export['id']}/run").json()["data"]
            wait_for(
                lambda: SyncJob.objects.filter(pk=run["runId"], status="COMPLETED").exists(),
                timeout=90,
            )
            wait_for(lambda: delivered(webhook) == 2, timeout=60)

    payloads = [request.verified_with(secret) for request in receiver.requests]
    assert [payload["type"] for payload in payloads] == [
        "integration.export.started",
        "integration.export.completed",
    ]
    assert [payload["data"]["runId"] for payload in payloads] == [run["runId"], run["runId"]]
    completed = payloads[1]["data"]
    assert completed["rows"] == 20
    shown = api.get(f"/api/v1/integrations/exports/{export['id']}/runs/{run['runId']}")
    assert [file["sha256"] for file in completed["files"]] == [
        file["sha256"] for file in shown.json()["data"]["files"]
    ]


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _retries_fall_due(webhook: Webhook) -> int:
    """The schedule's time moves on to the next retries (rather than the test waiting for
    them): the pending deliveries fall due, and the beat's sweep wakes the endpoint. Returns
    how many attempts there were before."""
    attempts = WebhookAttempt.objects.filter(delivery__webhook=webhook).count()
    WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now()
    )
    assert deliveries_sweep() >= 1
    return attempts


def test_a_receiver_down_for_a_long_time_gets_everything_afterwards(api, tenant, subscribe):
    # Given an ordered endpoint on a port nothing listens on, and the events of two lots
    lots = [IntegrationFactory(account=tenant.account) for _ in range(2)]
    port = _unused_port()
    webhook, secret = subscribe(f"http://127.0.0.1:{port}/hook")
    up = {"now": False}

    def answer(path: str, count: int):
        return (200, {}, b"thanks") if up["now"] else (503, {}, b"maintenance")

    def head_attempts() -> int:
        return sum(heads.values_list("attempt_count", flat=True))

    def next_round() -> None:
        before = head_attempts()
        _retries_fall_due(webhook)
        wait_for(lambda: head_attempts() >= before + 2, timeout=60)

    with celery_worker(
        queues="webhooks",
        pool="prefork",
        concurrency=2,
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_TIMEOUT_SECONDS="2",
    ):
        events = [
            record(tenant.account, integration_id=lots[number % 2].pk, payload={"n": number})
            for number in range(6)
        ]
        heads = WebhookDelivery.objects.filter(message_id__in=[event.pk for event in events[:2]])

        # When its connections are refused for the first attempts, then it answers 503 until
        # the schedule waits 30 minutes between retries: down for over ten minutes of it
        wait_for(lambda: head_attempts() >= 2, timeout=60)
        next_round()
        with webhook_receiver(answer, port=port) as receiver:
            while min(heads.values_list("step", flat=True)) < 3:
                next_round()
            waits = [
                (head.next_attempt_at - head.last_attempt_at).total_seconds()
                for head in heads
                if head.next_attempt_at is not None and head.last_attempt_at is not None
            ]
            # and then it is back, and the next retries fall due
            up["now"] = True
            while_down = len(receiver.requests)
            _retries_fall_due(webhook)
            wait_for(lambda: delivered(webhook) == len(events), timeout=60)

    # Then it gets every event once, signed, each lot's in the order they happened
    assert len(waits) == 2
    assert min(waits) >= SCHEDULE_SECONDS[3] * 0.9
    back = [request.verified_with(secret)["id"] for request in receiver.requests[while_down:]]
    assert sorted(back) == sorted(str(event.pk) for event in events)
    for lot in lots:
        in_lot = [str(event.pk) for event in events if event.integration_id == lot.pk]
        assert [pk for pk in back if pk in in_lot] == in_lot
    # and the delivery log shows what the first event went through
    log = api.get(f"/api/v1/webhooks/{webhook.pk}/deliveries", {"limit": 100}).json()["data"]
    first = next(item for item in log if item["eventId"] == str(events[0].pk))
    codes = [attempt["statusCode"] for attempt in first["attempts"]]
    assert codes[:2] == [None, None]
    assert codes[-1] == 200
    assert set(codes[2:-1]) == {503}
    assert "Could not connect" in first["attempts"][0]["error"]
