"""The outbox: deliveries are written with the event, in its transaction; a rolled-back change
leaves none; a lost message (Redis down) costs a sweep, never a delivery."""

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from accounts.choices import EventType
from accounts.models import Event
from tests.factories import IntegrationFactory
from tests.webhooks.conftest import drain, record
from tests.webhooks.receiver import webhook_receiver
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
    monkeypatch.setattr("webhooks.services.endpoints_kick", kicked.extend)

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

    # Redis is down when the event commits (nothing listens where it is): the drain cannot be
    # sent, the row stays.
    with monkeypatch.context() as patch:
        patch.setattr(dispatch, "redis_client", lambda: redis.Redis(port=9, socket_timeout=1))
        with django_capture_on_commit_callbacks(execute=True):
            event = record(tenant.account)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    assert receiver.requests == []

    # Redis is back: the sweep finds the due delivery and wakes its endpoint.
    kicked: list[object] = []
    monkeypatch.setattr(delivery, "endpoints_kick", kicked.extend)
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


def test_an_event_behind_a_retry_wakes_no_drain_and_goes_out_with_the_retry(
    tenant, subscribe, monkeypatch, django_capture_on_commit_callbacks
):
    # Given an ordered endpoint whose first event of a lot failed and waits for its retry
    lot = IntegrationFactory(account=tenant.account)
    other = IntegrationFactory(account=tenant.account)

    def first_fails(path, count):
        return (503, {"Retry-After": "3600"}, b"") if count == 0 else (200, {}, b"")

    with webhook_receiver(first_fails) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        first = record(tenant.account, integration_id=lot.pk)
        drain(webhook)
        kicked: list[object] = []
        monkeypatch.setattr("webhooks.services.endpoints_kick", kicked.extend)

        # When another event of the lot commits, and then one of another integration
        with django_capture_on_commit_callbacks(execute=True):
            second = record(tenant.account, integration_id=lot.pk)
        kicked_behind_retry = list(kicked)
        with django_capture_on_commit_callbacks(execute=True):
            unrelated = record(tenant.account, integration_id=other.pk)
        drain(webhook)
        # The retry falls due (its wake, or the sweep): both of the lot go out, in order.
        WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).update(
            next_attempt_at=timezone.now()
        )
        drain(webhook)

    # Then the event behind the retry woke no drain, the other integration's did
    assert kicked_behind_retry == []
    assert kicked == [webhook.pk]
    ids = [request.json["id"] for request in receiver.requests]
    assert ids == [str(first.pk), str(unrelated.pk), str(first.pk), str(second.pk)]
