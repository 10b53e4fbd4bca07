"""Delivery: payloads, retries on the schedule, Retry-After, 410, disabling after days of
failure, the egress policy at each attempt, per-integration order, and endpoints independent of
each other. Every test sends real HTTP to a receiver on 127.0.0.1."""

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.choices import EventType
from accounts.models import Event
from tests.factories import IntegrationFactory
from tests.webhooks.conftest import drain, record
from tests.webhooks.receiver import webhook_receiver
from webhooks import delivery, dispatch, sender
from webhooks.choices import DeliveryStatus
from webhooks.models import Webhook, WebhookDelivery
from webhooks.payloads import PAYLOAD_MAX_BYTES
from webhooks.schedule import SCHEDULE_SECONDS
from webhooks.signing import secret_generate

pytestmark = pytest.mark.django_db


def waited(delivery: WebhookDelivery) -> float:
    """Seconds from a delivery's last attempt to its next one."""
    assert delivery.next_attempt_at is not None
    assert delivery.last_attempt_at is not None
    return (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()


def make_due(webhook: Webhook) -> None:
    """The time of the next retry has come."""
    WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now()
    )


def failing(status: int, headers: dict[str, str] | None = None, times: int = 10**6):
    def answer(path: str, count: int):
        if count < times:
            return status, headers or {}, b'{"error": "not now"}'
        return 200, {}, b"ok"

    return answer


def test_payload_names_account_integration_job_and_outcome(tenant, subscribe, receiver):
    integration = IntegrationFactory(account=tenant.account, name="Lot feed")
    webhook, secret = subscribe(f"{receiver.url}/hook")
    event = record(
        tenant.account,
        integration_id=integration.pk,
        payload={
            "jobId": "8d3b",
            "connection": {"id": "c1", "name": "Shop"},
            "status": "completed",
            "stats": {"created": 3, "updated": 1},
        },
    )

    drain(webhook)

    payload = receiver.on("/hook")[0].verified_with(secret)
    assert payload["type"] == "integration.sync.completed"
    assert payload["id"] == str(event.pk)
    assert payload["timestamp"].endswith("Z")
    assert payload["data"]["account"] == {"id": str(tenant.account.pk), "name": tenant.account.name}
    assert payload["data"]["integration"] == {"id": str(integration.pk), "name": "Lot feed"}
    assert payload["data"]["jobId"] == "8d3b"
    assert payload["data"]["connection"]["name"] == "Shop"
    assert payload["data"]["stats"] == {"created": 3, "updated": 1}


def test_a_large_payload_is_capped_with_a_link_to_the_event(tenant, subscribe, receiver):
    webhook, secret = subscribe(f"{receiver.url}/hook")
    event = record(
        tenant.account,
        payload={"jobId": "j1", "status": "failed", "samples": ["x" * 1000] * 60},
    )

    drain(webhook)

    [request] = receiver.on("/hook")
    assert len(request.body) <= PAYLOAD_MAX_BYTES
    data = request.verified_with(secret)["data"]
    assert data["truncated"] is True
    assert data["omitted"] == ["samples"]
    assert data["url"] == f"/api/v1/events/{event.pk}"
    assert data["jobId"] == "j1"
    assert data["status"] == "failed"


def test_failures_are_retried_on_the_schedule_with_the_same_webhook_id(tenant, subscribe, api):
    with webhook_receiver(failing(500, times=2)) as receiver:
        webhook, secret = subscribe(f"{receiver.url}/hook")
        event = record(tenant.account)

        drain(webhook)
        first = WebhookDelivery.objects.get()
        make_due(webhook)
        drain(webhook)
        second = WebhookDelivery.objects.get()
        make_due(webhook)
        drain(webhook)

    assert first.status == DeliveryStatus.PENDING
    wait = waited(first)
    assert SCHEDULE_SECONDS[1] * 0.9 <= wait <= SCHEDULE_SECONDS[1] * 1.1
    wait = waited(second)
    assert SCHEDULE_SECONDS[2] * 0.9 <= wait <= SCHEDULE_SECONDS[2] * 1.1
    assert len({request.webhook_id for request in receiver.requests}) == 1
    assert receiver.requests[0].webhook_id == str(event.pk)
    for request in receiver.requests:
        request.verified_with(secret)
    done = api.get(f"/api/v1/webhooks/{webhook.pk}/deliveries").json()["data"][0]
    assert done["status"] == "delivered"
    assert [attempt["statusCode"] for attempt in done["attempts"]] == [500, 500, 200]
    assert done["attempts"][0]["responseBody"] == '{"error": "not now"}'


def test_a_delivery_fails_after_the_last_attempt_of_the_schedule(tenant, subscribe):
    with webhook_receiver(failing(502)) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        for _ in SCHEDULE_SECONDS:
            make_due(webhook)
            drain(webhook)

    failed = WebhookDelivery.objects.get()
    assert failed.status == DeliveryStatus.FAILED
    assert failed.attempt_count == len(SCHEDULE_SECONDS) == len(receiver.requests)
    assert failed.next_attempt_at is None
    assert "502" in failed.last_error


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(tenant, subscribe, status):
    with webhook_receiver(failing(status, {"Retry-After": "42"}, times=1)) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        drain(webhook)

    waiting = WebhookDelivery.objects.get()
    assert waiting.status == DeliveryStatus.PENDING
    wait = waited(waiting)
    assert 41 <= wait <= 43
    assert waiting.step == 0  # a Retry-After does not use up the schedule


def test_a_timeout_is_a_failed_attempt(tenant, subscribe):
    def slow(path, count):
        time.sleep(1.5)
        return 200, {}, b"late"

    with override_settings(WEBHOOK_TIMEOUT_SECONDS=0.5), webhook_receiver(slow) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        drain(webhook)

    waiting = WebhookDelivery.objects.get()
    assert waiting.status == DeliveryStatus.PENDING
    assert "No answer within" in waiting.last_error


def test_410_disables_the_endpoint_at_once_and_records_webhook_disabled(api, tenant, subscribe):
    with webhook_receiver(failing(410)) as gone, webhook_receiver() as watcher:
        webhook, _ = subscribe(f"{gone.url}/hook")
        observer, _ = subscribe(f"{watcher.url}/watch", events=["webhook.disabled"])
        record(tenant.account)
        record(tenant.account)
        drain(webhook)
        drain(observer)

    assert len(gone.requests) == 1
    shown = api.get(f"/api/v1/webhooks/{webhook.pk}").json()["data"]
    assert shown["isActive"] is False
    assert "410" in shown["disabledReason"]
    disabled = Event.objects.get(type=EventType.WEBHOOK_DISABLED)
    assert disabled.payload["webhook"]["id"] == str(webhook.pk)
    assert watcher.requests[0].json["type"] == "webhook.disabled"
    statuses = sorted(
        WebhookDelivery.objects.filter(webhook=webhook).values_list("status", flat=True)
    )
    assert statuses == [DeliveryStatus.FAILED, DeliveryStatus.PENDING]


def test_an_endpoint_failing_for_five_days_is_disabled(api, tenant, subscribe):
    with webhook_receiver(failing(500)) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        drain(webhook)
        assert Webhook.objects.get(pk=webhook.pk).is_active
        Webhook.objects.filter(pk=webhook.pk).update(
            failing_since=timezone.now() - timedelta(days=5, minutes=1)
        )
        make_due(webhook)
        drain(webhook)

    stored = Webhook.objects.get(pk=webhook.pk)
    assert not stored.is_active
    assert "5 days" in stored.disabled_reason
    assert Event.objects.filter(type=EventType.WEBHOOK_DISABLED).count() == 1

    # Enabled again: the pending delivery goes out, the failure clock starts over.
    with webhook_receiver() as healthy:
        api.patch(
            f"/api/v1/webhooks/{webhook.pk}",
            {"isActive": True, "url": f"{healthy.url}/hook"},
            format="json",
        )
        make_due(webhook)
        drain(webhook)
    stored.refresh_from_db()
    assert stored.is_active
    assert stored.failing_since is None
    assert stored.disabled_reason == ""
    assert len(healthy.requests) == 1


def test_a_success_resets_the_failure_clock(tenant, subscribe):
    with webhook_receiver(failing(500, times=1)) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account)
        drain(webhook)
        assert Webhook.objects.get(pk=webhook.pk).failing_since is not None
        make_due(webhook)
        drain(webhook)

    assert Webhook.objects.get(pk=webhook.pk).failing_since is None


def test_the_egress_policy_is_checked_again_at_each_delivery(tenant, subscribe, receiver):
    webhook, _ = subscribe(f"{receiver.url}/hook")
    record(tenant.account)

    with override_settings(EGRESS_ALLOW="", EGRESS_DENY=""):
        drain(webhook)

    assert receiver.requests == []
    refused = WebhookDelivery.objects.get()
    assert refused.status == DeliveryStatus.PENDING
    assert "egress policy" in refused.last_error
    assert "loopback" in refused.last_error


def test_events_of_one_integration_arrive_in_order_even_across_a_failure(tenant, subscribe):
    lot = IntegrationFactory(account=tenant.account)
    other = IntegrationFactory(account=tenant.account)

    def first_fails(path, count):
        return (500, {}, b"") if count == 0 else (200, {}, b"")

    with webhook_receiver(first_fails) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        lot_events = [record(tenant.account, integration_id=lot.pk) for _ in range(3)]
        other_event = record(tenant.account, integration_id=other.pk)
        drain(webhook)
        # The first event of the lot failed: the lot's others wait behind it, the other
        # integration's event does not.
        after_first_drain = [request.json["id"] for request in receiver.requests]
        make_due(webhook)
        drain(webhook)

    assert after_first_drain == [str(lot_events[0].pk), str(other_event.pk)]
    lot_ids = [str(event.pk) for event in lot_events]
    delivered = [
        request.json["id"] for request in receiver.requests[1:] if request.json["id"] in lot_ids
    ]
    assert delivered == lot_ids


def test_an_unordered_endpoint_does_not_wait_behind_a_failure(tenant, subscribe):
    lot = IntegrationFactory(account=tenant.account)

    def first_fails(path, count):
        return (500, {}, b"") if count == 0 else (200, {}, b"")

    with webhook_receiver(first_fails) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook", ordered=False)
        events = [record(tenant.account, integration_id=lot.pk) for _ in range(3)]
        drain(webhook)

    assert [request.json["id"] for request in receiver.requests] == [str(e.pk) for e in events]
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2


def test_a_busy_endpoint_never_holds_back_another(tenant, subscribe):
    """Every slot of a slow endpoint is taken (a drain is sending to it): a drain of that
    endpoint ends at once, and the other endpoint's drain delivers."""
    with webhook_receiver() as slow_receiver, webhook_receiver() as healthy_receiver:
        slow, _ = subscribe(f"{slow_receiver.url}/slow")
        healthy, _ = subscribe(f"{healthy_receiver.url}/healthy")
        record(tenant.account)
        held = dispatch.endpoint_slot(slow.pk, lease_seconds=30)
        assert held is not None
        try:
            busy = delivery.endpoint_drain(slow.pk)
            sent = delivery.endpoint_drain(healthy.pk)
        finally:
            held.release()

    assert busy.busy
    assert slow_receiver.requests == []
    assert sent.delivered == 1
    assert len(healthy_receiver.requests) == 1


def test_a_dead_endpoint_only_delays_itself(tenant, subscribe):
    with webhook_receiver() as healthy_receiver:
        dead, _ = subscribe("http://127.0.0.1:9/dead")  # nothing listens on the discard port
        healthy, _ = subscribe(f"{healthy_receiver.url}/healthy")
        for _ in range(5):
            record(tenant.account)
        drain(dead)
        drain(healthy)

    assert len(healthy_receiver.requests) == 5
    dead_rows = WebhookDelivery.objects.filter(webhook=dead)
    # Ordered: the first delivery failed and the four behind it wait for its retry.
    assert dead_rows.filter(attempt_count=1).count() == 1
    assert dead_rows.filter(status=DeliveryStatus.PENDING).count() == 5
    assert "Could not connect" in dead_rows.get(attempt_count=1).last_error


def test_an_endpoint_that_trickles_its_answer_is_cut_off_at_the_attempt_timeout(settings):
    # Given an endpoint that answers 200 at once, then sends its body a byte at a time, slowly
    # enough for every single read to beat the timeout
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n")
            for _ in range(4096):
                if stop.wait(0.2):
                    break
                try:
                    connection.sendall(b"x")
                except OSError:
                    break

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"

    # When one attempt is made
    with override_settings(WEBHOOK_ALLOW_HTTP=True), sender.http_client() as client:
        result = sender.attempt_send(
            client, url=url, message_id="msg_1", body="{}", secrets_signing=[secret_generate()]
        )
    stop.set()
    server.join(timeout=10)
    listener.close()

    # Then it ends with the status and the little of the body that came in time
    assert result.status_code == 200
    assert result.delivered
    assert 0 < len(result.excerpt) < 100


def test_a_chain_waiting_for_its_retry_never_holds_back_another_integrations_events(
    tenant, subscribe
):
    # Given an ordered endpoint whose first event of one integration failed, with more of that
    # integration's events waiting behind it than a drain claims at once
    lot = IntegrationFactory(account=tenant.account)
    other = IntegrationFactory(account=tenant.account)

    with webhook_receiver(failing(503, {"Retry-After": "3600"}, times=1)) as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook")
        record(tenant.account, integration_id=lot.pk)
        drain(webhook)
        for _ in range(delivery.BATCH_SIZE * 2):
            record(tenant.account, integration_id=lot.pk)
        late = record(tenant.account, integration_id=other.pk)

        # When the endpoint is drained before the retry is due
        drain(webhook)

    # Then the other integration's event goes out, and the waiting chain stays untouched
    assert [request.json["id"] for request in receiver.requests[1:]] == [str(late.pk)]
    assert (
        WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).count()
        == delivery.BATCH_SIZE * 2 + 1
    )


def test_a_drain_sends_a_backlog_in_full_batches_while_its_time_lasts(tenant, subscribe):
    with webhook_receiver() as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook", ordered=False)
        for _ in range(delivery.BATCH_SIZE * 3 + 1):
            record(tenant.account)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(delivery, "DRAIN_SECONDS", 600.0)
            result = drain(webhook)

    assert result.delivered == delivery.BATCH_SIZE * 3 + 1
    assert not result.handed_over
    assert len(receiver.requests) == delivery.BATCH_SIZE * 3 + 1


def test_a_drain_whose_time_is_up_hands_over_to_the_next(tenant, subscribe):
    """Past DRAIN_SECONDS a drain stops (after one attempt at least) and sends the next drain of
    its endpoint, which queues behind the other endpoints' drains, rather than keep its worker."""
    with webhook_receiver() as receiver:
        webhook, _ = subscribe(f"{receiver.url}/hook", ordered=False)
        for _ in range(3):
            record(tenant.account)
        woken: list[tuple[object, dict]] = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(delivery, "DRAIN_SECONDS", 0.0)
            patch.setattr(delivery, "endpoint_kick", lambda pk, **kw: woken.append((pk, kw)))
            results = [drain(webhook) for _ in range(3)]

    assert [result.delivered for result in results] == [1, 1, 1]
    assert [result.handed_over for result in results] == [True, True, False]
    assert woken == [(webhook.pk, {}), (webhook.pk, {})]
    assert len({request.webhook_id for request in receiver.requests}) == 3
