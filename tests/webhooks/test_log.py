"""The delivery log, the test send, redelivery, replay, pruning and the admin screens."""

import threading
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.choices import EventType
from accounts.models import Event
from tests.factories import UserFactory
from tests.webhooks.conftest import drain, record
from tests.webhooks.receiver import webhook_receiver
from webhooks import services
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookMessage
from webhooks.services import webhook_deliveries_prune

pytestmark = pytest.mark.django_db


def test_the_test_endpoint_answers_with_the_attempt(api, subscribe, receiver):
    webhook, secret = subscribe(f"{receiver.url}/hook")

    response = api.post(f"/api/v1/webhooks/{webhook.pk}/test")

    assert response.status_code == 200, response.content
    result = response.json()["data"]
    assert result["delivered"] is True
    assert result["statusCode"] == 200
    assert result["responseBody"] == "thanks"
    assert result["latencyMs"] >= 0
    payload = receiver.on("/hook")[0].verified_with(secret)
    assert payload["type"] == "webhook.test"
    assert payload["id"] == result["eventId"]


def test_a_failed_test_says_why_and_is_not_retried(api, subscribe):
    webhook, _ = subscribe("http://127.0.0.1:9/dead")

    result = api.post(f"/api/v1/webhooks/{webhook.pk}/test").json()["data"]

    assert result["delivered"] is False
    assert result["statusCode"] is None
    assert "Could not connect" in result["error"]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED
    assert webhook.__class__.objects.get(pk=webhook.pk).failing_since is None


def test_deliveries_are_listed_with_attempts_and_filtered(api, tenant, subscribe):
    def sync_fails(path, count):
        return (500, {}, b"down") if count == 0 else (200, {}, b"ok")

    with webhook_receiver(sync_fails) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook", ordered=False)
        record(tenant.account, type=EventType.SYNC_FAILED, payload={"error": "boom"})
        drain(webhook)
        record(tenant.account, type=EventType.SYNC_COMPLETED)
        drain(webhook)
    url = f"/api/v1/webhooks/{webhook.pk}/deliveries"

    listed = api.get(url).json()
    pending = api.get(url, {"status": "pending"}).json()["data"]
    completed = api.get(url, {"eventType": "integration.sync.completed"}).json()["data"]
    future = api.get(url, {"since": (timezone.now() + timedelta(hours=1)).isoformat()})
    bad = api.get(url, {"status": "lost"})

    assert listed["meta"]["pagination"]["total"] == 2
    newest, oldest = listed["data"]
    assert oldest["eventType"] == "integration.sync.failed"
    assert oldest["status"] == "pending"
    [attempt] = oldest["attempts"]
    assert attempt["statusCode"] == 500
    assert attempt["responseBody"] == "down"
    assert attempt["latencyMs"] >= 0
    assert attempt["attemptedAt"]
    assert [item["id"] for item in pending] == [oldest["id"]]
    assert [item["id"] for item in completed] == [newest["id"]]
    assert future.json()["data"] == []
    assert bad.status_code == 400
    detail = api.get(f"{url}/{oldest['id']}").json()["data"]
    assert detail["payload"]["data"]["error"] == "boom"


def test_redeliver_sends_the_same_event_with_the_same_webhook_id(api, tenant, subscribe):
    with webhook_receiver() as receiver:
        webhook, secret = subscribe(f"{receiver.url}/hook")
        event = record(tenant.account)
        drain(webhook)
        delivery = WebhookDelivery.objects.get()

        response = api.post(f"/api/v1/webhooks/{webhook.pk}/deliveries/{delivery.pk}/redeliver")
        drain(webhook)

    assert response.status_code == 202, response.content
    assert response.json()["data"]["status"] == "pending"
    first, again = receiver.on("/hook")
    assert first.webhook_id == again.webhook_id == str(event.pk)
    assert first.body == again.body
    again.verified_with(secret)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert list(delivery.attempts.values_list("trigger", flat=True)) == ["event", "redelivery"]


def test_redeliver_is_404_for_another_endpoints_delivery(api, tenant, subscribe, receiver):
    first, _ = subscribe(f"{receiver.url}/a")
    second, _ = subscribe(f"{receiver.url}/b")
    record(tenant.account)
    of_first = WebhookDelivery.objects.get(webhook=first)

    response = api.post(f"/api/v1/webhooks/{second.pk}/deliveries/{of_first.pk}/redeliver")

    assert response.status_code == 404
    assert WebhookDelivery.objects.get(pk=of_first.pk).trigger == "event"


def test_replay_sends_everything_since_a_time_in_order(api, tenant, subscribe):
    with webhook_receiver() as down:
        webhook, secret = subscribe(f"{down.url}/hook", events=["integration.sync.*"])
        before = record(tenant.account)
        WebhookDelivery.objects.update(status=DeliveryStatus.FAILED)
        since = timezone.now()
        events = [record(tenant.account) for _ in range(3)]
        record(tenant.account, type=EventType.INTEGRATION_CREATED, payload={})
        WebhookDelivery.objects.update(status=DeliveryStatus.FAILED)

        response = api.post(
            f"/api/v1/webhooks/{webhook.pk}/replay?since={since.isoformat().replace('+00:00', 'Z')}"
        )
        drain(webhook)

    assert response.status_code == 202, response.content
    assert response.json()["data"]["queued"] == 3
    received = [request.verified_with(secret)["id"] for request in down.requests]
    assert received == [str(event.pk) for event in events]
    assert str(before.pk) not in received
    assert api.post(f"/api/v1/webhooks/{webhook.pk}/replay").status_code == 400


def test_replay_and_redeliver_wait_for_a_disabled_endpoint(api, tenant, subscribe, receiver):
    webhook, _ = subscribe(f"{receiver.url}/hook")
    record(tenant.account)
    delivery = WebhookDelivery.objects.get()
    api.patch(f"/api/v1/webhooks/{webhook.pk}", {"isActive": False}, format="json")

    replay = api.post(f"/api/v1/webhooks/{webhook.pk}/replay?since=2020-01-01T00:00:00Z")
    redeliver = api.post(f"/api/v1/webhooks/{webhook.pk}/deliveries/{delivery.pk}/redeliver")

    assert replay.status_code == 409
    assert redeliver.status_code == 409
    assert WebhookDelivery.objects.count() == 1


def test_pruning_deletes_old_deliveries_in_batches(tenant, subscribe, receiver):
    webhook, _ = subscribe(f"{receiver.url}/hook")
    for _ in range(5):
        record(tenant.account)
    drain(webhook)
    old = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(
        pk__in=list(WebhookDelivery.objects.values_list("pk", flat=True)[:3])
    ).update(created_at=old)
    WebhookMessage.objects.update(created_at=old)

    deleted = webhook_deliveries_prune(older_than_days=30, batch_size=2)

    assert deleted == 3
    assert WebhookDelivery.objects.count() == 2
    assert WebhookAttempt.objects.count() == 2
    assert WebhookMessage.objects.count() == 2


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))
    return client


def test_admin_lists_deliveries_with_attempts_and_redelivers(operator, tenant, subscribe):
    with webhook_receiver() as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        drain(webhook)
        delivery = WebhookDelivery.objects.get()

        pages = [
            operator.get(reverse("admin:webhooks_webhook_changelist")),
            operator.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk])),
            operator.get(reverse("admin:webhooks_webhookdelivery_changelist")),
            operator.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])),
        ]
        response = operator.post(
            reverse("admin:webhooks_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
            follow=True,
        )
        drain(webhook)

    assert [page.status_code for page in pages] == [200] * 4
    assert "thanks" in pages[3].content.decode()  # the attempt's answer
    secret_token = webhook.secret_encrypted
    assert secret_token not in pages[1].content.decode()
    assert any("queued again" in str(m) for m in get_messages(response.wsgi_request))
    assert len(receiver.requests) == 2


def test_pruning_keeps_pending_deliveries_however_old(api, tenant, subscribe):
    # Given two old deliveries, one delivered long ago and just redelivered, one still pending
    with webhook_receiver() as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook", ordered=False)
        record(tenant.account)
        drain(webhook)
        waiting = record(tenant.account)
        old = timezone.now() - timedelta(days=31)
        WebhookDelivery.objects.update(created_at=old)
        WebhookMessage.objects.update(created_at=old)
        redelivered = WebhookDelivery.objects.get(status=DeliveryStatus.DELIVERED)
        api.post(f"/api/v1/webhooks/{webhook.pk}/deliveries/{redelivered.pk}/redeliver")

        # When the prune runs, and then the endpoint's drain
        deleted = webhook_deliveries_prune(older_than_days=30)
        drain(webhook)

    # Then nothing was pruned: both went out, with their messages
    assert deleted == 0
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2
    assert [request.webhook_id for request in receiver.requests[1:]] == [
        str(redelivered.message_id),
        str(waiting.pk),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_replay_and_the_prune_at_once_lose_nothing(api, tenant, subscribe, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time: no interleaving to test")
    # Given events older than the retention whose deliveries were delivered long ago
    with webhook_receiver() as receiver:
        webhook, secret = subscribe(f"{receiver.url}/hook")
        events = [record(tenant.account) for _ in range(3)]
        drain(webhook)
        old = timezone.now() - timedelta(days=40)
        for number, event in enumerate(events):
            Event.objects.filter(pk=event.pk).update(created_at=old + timedelta(seconds=number))
        WebhookMessage.objects.update(created_at=old)
        WebhookDelivery.objects.update(created_at=old)

        # When a replay of them is between reading what is stored and writing its deliveries
        # while the prune runs
        reading_done, prune_done = threading.Event(), threading.Event()
        real_names = services.integration_names

        def names_then_wait(events_missing):
            reading_done.set()
            assert prune_done.wait(timeout=30)
            return real_names(events_missing)

        monkeypatch.setattr(services, "integration_names", names_then_wait)
        since = (old - timedelta(days=1)).isoformat().replace("+00:00", "Z")
        answers: list[object] = []

        def replay() -> None:
            try:
                answers.append(api.post(f"/api/v1/webhooks/{webhook.pk}/replay?since={since}"))
            except Exception as error:  # what the request raised is the test's finding
                answers.append(error)
            finally:
                connection.close()

        worker = threading.Thread(target=replay)
        worker.start()
        assert reading_done.wait(timeout=30)
        webhook_deliveries_prune(older_than_days=30)
        prune_done.set()
        worker.join(timeout=60)
        drain(webhook)

    # Then the replay went through and its events were sent again, none lost
    [answer] = answers
    assert getattr(answer, "status_code", answer) == 202
    replayed = [request.verified_with(secret)["id"] for request in receiver.requests[3:]]
    assert replayed == [str(event.pk) for event in events]
    assert WebhookMessage.objects.count() == 3
