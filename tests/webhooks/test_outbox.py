"""The outbox: deliveries are written with the event, in its transaction; a rolled-back change
leaves none; a lost message (Redis down) costs a sweep, never a delivery."""

import pytest
from django.db import transaction

from accounts.choices import EventType
from accounts.models import Event
from tests.factories import IntegrationFactory
from tests.webhooks.conftest import drain, record
from webhooks import delivery, dispatch
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookDelivery, WebhookMessage

pytestmark = pytest.mark.django_db


@transaction.atomic
def change_that_fails_after_its_event(account):
    record(account)
    raise RuntimeError("the change fails after its event")


def test_an_event_writes_one_delivery_per_subscribed_endpoint(tenant, subscribe, receiver):
    every, _ = subscribe(f"{receiver.url}/every")
    syncs, _ = subscribe(f"{receiver.url}/syncs", events=["integration.sync.*"])
    files, _ = subscribe(f"{receiver.url}/files", events=["integration.file.*"])

    event = record(tenant.account, type=EventType.SYNC_STARTED)

    assert set(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == {every.pk, syncs.pk}
    assert WebhookMessage.objects.get().pk == event.pk
    assert not WebhookDelivery.objects.filter(webhook=files).exists()


def test_integration_filter(tenant, subscribe, receiver):
    lot, other = (
        IntegrationFactory(account=tenant.account),
        IntegrationFactory(account=tenant.account),
    )
    webhook, _ = subscribe(f"{receiver.url}/lot", integrationIds=[str(lot.pk)])

    record(tenant.account, integration_id=lot.pk)
    record(tenant.account, integration_id=other.pk)
    record(tenant.account, type=EventType.INTEGRATION_CONNECTED, payload={"connection": {}})

    types = WebhookDelivery.objects.filter(webhook=webhook).values_list(
        "message__integration_id", flat=True
    )
    assert sorted(map(str, types), key=str) == sorted([str(lot.pk), "None"])


def test_a_rolled_back_change_leaves_no_delivery(tenant, subscribe, receiver):
    subscribe(f"{receiver.url}/hook")

    with pytest.raises(RuntimeError):
        change_that_fails_after_its_event(tenant.account)

    assert not Event.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert not WebhookMessage.objects.exists()


def test_the_drain_is_sent_when_the_event_commits_and_never_for_a_rollback(
    tenant, subscribe, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    webhook, _ = subscribe(f"{receiver.url}/hook")
    kicked: list[object] = []
    monkeypatch.setattr("webhooks.services.endpoint_kick", kicked.append)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        change_that_fails_after_its_event(tenant.account)
    assert kicked == []

    with django_capture_on_commit_callbacks(execute=True):
        record(tenant.account)
    assert kicked == [webhook.pk]


def test_a_lost_message_is_sent_by_the_sweep(
    tenant, subscribe, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    webhook, secret = subscribe(f"{receiver.url}/hook")

    def redis_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    # Redis is down when the event commits: the drain cannot be sent, the row stays.
    with monkeypatch.context() as patch:
        patch.setattr(dispatch.redis_client(), "set", redis_down)
        with django_capture_on_commit_callbacks(execute=True):
            event = record(tenant.account)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    assert receiver.requests == []

    # Redis is back: the sweep finds the due delivery and wakes its endpoint.
    kicked: list[object] = []
    monkeypatch.setattr(delivery, "endpoint_kick", kicked.append)
    assert delivery.deliveries_sweep() == 1
    assert kicked == [webhook.pk]
    drain(webhook)

    [request] = receiver.on("/hook")
    assert request.verified_with(secret)["id"] == str(event.pk)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_webhook_test_events_go_only_to_the_tested_endpoint(api, subscribe, receiver):
    first, _ = subscribe(f"{receiver.url}/first")
    subscribe(f"{receiver.url}/second")

    api.post(f"/api/v1/webhooks/{first.pk}/test")

    assert [request.path for request in receiver.requests] == ["/first"]
    assert WebhookDelivery.objects.count() == 1
