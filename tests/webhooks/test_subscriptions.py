"""Webhook endpoints: create (secret shown once, stored encrypted), read, change, delete; the URL
rules and the egress policy; the event catalog; tenancy."""

import socket
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.choices import ApiKeyScope, EventType
from accounts.models import AuditEntry
from accounts.services import api_key_create, event_record
from config.crypto import decrypt_json
from tests.factories import IntegrationFactory
from webhooks.models import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db


def test_create_shows_the_secret_once_and_stores_it_encrypted(api, receiver):
    response = api.post(
        "/api/v1/webhooks",
        {
            "url": f"{receiver.url}/hooks",
            "events": ["integration.sync.*", "integration.connected"],
            "description": "ERP",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    secret = data["secret"]
    assert secret.startswith("whsec_")
    assert data["events"] == ["integration.sync.*", "integration.connected"]
    assert data["isActive"] is True
    assert data["ordered"] is True
    assert data["integrationIds"] == []
    webhook = Webhook.objects.get(pk=data["id"])
    assert secret not in webhook.secret_encrypted
    assert decrypt_json(webhook.secret_encrypted) == secret
    shown = api.get(f"/api/v1/webhooks/{webhook.pk}").json()["data"]
    listed = api.get("/api/v1/webhooks").json()["data"]
    assert "secret" not in shown
    assert secret not in str(listed)
    assert AuditEntry.objects.filter(resource_type="webhook", resource_id=str(webhook.pk)).exists()


def test_update_and_delete(api, subscribe, receiver):
    webhook, _ = subscribe(f"{receiver.url}/a")

    changed = api.patch(
        f"/api/v1/webhooks/{webhook.pk}",
        {"events": ["integration.file.*"], "ordered": False, "description": "files"},
        format="json",
    )
    deleted = api.delete(f"/api/v1/webhooks/{webhook.pk}")

    assert changed.status_code == 200, changed.content
    assert changed.json()["data"]["events"] == ["integration.file.*"]
    assert changed.json()["data"]["ordered"] is False
    assert deleted.status_code == 204
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "at least"),
        (["integration.nope"], "no event type"),
        (["integration.*.started"], "Wildcards"),
        (["nothing.*"], "no event type"),
        ("integration.created", "list"),
    ],
)
def test_unknown_events_are_refused(api, receiver, events, message):
    response = api.post(
        "/api/v1/webhooks", {"url": f"{receiver.url}/x", "events": events}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    details = response.json()["error"]["details"]
    assert any(key.startswith("events") for key in details)
    assert message.lower() in str(details).lower()
    assert not Webhook.objects.exists()


def test_plain_http_needs_the_operator(api, receiver):
    with override_settings(WEBHOOK_ALLOW_HTTP=False):
        refused = api.post(
            "/api/v1/webhooks", {"url": f"{receiver.url}/x", "events": ["*"]}, format="json"
        )

    assert refused.status_code == 400
    assert "https" in refused.json()["error"]["details"]["url"][0]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.2/hook",  # denied below: the policy's decision, for a loopback address
        "ftp://127.0.0.1/hook",
        "https://no-such-host.invalid/hook",
        "https://" + "ü" * 60 + ".com/hook",  # a label IDNA cannot encode: no lookup at all
    ],
)
def test_urls_the_egress_policy_refuses_are_refused_at_create_time(api, url, settings, monkeypatch):
    # (Which ranges the policy refuses by default, metadata addresses included, is decided and
    # tested in tests/config/test_egress.py; nothing here leaves loopback, not even a DNS query.)
    settings.EGRESS_DENY = f"{settings.EGRESS_DENY},127.0.0.2"
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    response = api.post("/api/v1/webhooks", {"url": url, "events": ["*"]}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["url"]
    assert not Webhook.objects.exists()


def test_integration_filter_takes_only_the_accounts_integrations(
    api, tenant, other_tenant, receiver
):
    mine = IntegrationFactory(account=tenant.account)
    theirs = IntegrationFactory(account=other_tenant.account)

    accepted = api.post(
        "/api/v1/webhooks",
        {"url": f"{receiver.url}/x", "events": ["*"], "integrationIds": [str(mine.pk)]},
        format="json",
    )
    refused = api.post(
        "/api/v1/webhooks",
        {"url": f"{receiver.url}/x", "events": ["*"], "integrationIds": [str(theirs.pk)]},
        format="json",
    )

    assert accepted.status_code == 201
    assert accepted.json()["data"]["integrationIds"] == [str(mine.pk)]
    assert refused.status_code == 400
    assert str(theirs.pk) in refused.json()["error"]["details"]["integrationIds"][0]


def test_event_type_catalog_lists_every_deliverable_event(api):
    response = api.get("/api/v1/webhooks/event-types")

    assert response.status_code == 200
    types = {item["type"] for item in response.json()["data"]}
    assert set(EventType.values) <= types
    assert {"integration.sync.completed", "integration.file.processed", "webhook.test"} <= types


def test_another_accounts_webhook_is_404_and_unchanged(
    api, tenant, other_tenant, subscribe, receiver
):
    webhook, _ = subscribe(f"{receiver.url}/mine")
    event_record(account=tenant.account, type=EventType.SYNC_COMPLETED, payload={})
    delivery = WebhookDelivery.objects.get(webhook=webhook)
    intruder = other_tenant.client
    deliveries = f"/api/v1/webhooks/{webhook.pk}/deliveries"

    answers = [
        intruder.get(f"/api/v1/webhooks/{webhook.pk}"),
        intruder.patch(f"/api/v1/webhooks/{webhook.pk}", {"isActive": False}, format="json"),
        intruder.delete(f"/api/v1/webhooks/{webhook.pk}"),
        intruder.post(f"/api/v1/webhooks/{webhook.pk}/rotate-secret"),
        intruder.post(f"/api/v1/webhooks/{webhook.pk}/test"),
        intruder.get(f"/api/v1/webhooks/{webhook.pk}/deliveries"),
        intruder.post(f"/api/v1/webhooks/{webhook.pk}/replay?since=2020-01-01T00:00:00Z"),
        intruder.get(f"{deliveries}/{delivery.pk}"),
        intruder.post(f"{deliveries}/{delivery.pk}/redeliver"),
    ]

    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert intruder.get("/api/v1/webhooks").json()["data"] == []
    stored = Webhook.objects.get(pk=webhook.pk)
    assert stored.is_active
    assert stored.previous_secret_encrypted == ""
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.trigger == "event"


def test_a_read_key_can_list_but_not_create(tenant, receiver):
    _, raw_key = api_key_create(account=tenant.account, name="ro", scope=ApiKeyScope.READ)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    listed = client.get("/api/v1/webhooks")
    created = client.post(
        "/api/v1/webhooks", {"url": f"{receiver.url}/x", "events": ["*"]}, format="json"
    )

    assert listed.status_code == 200
    assert created.status_code == 403
    assert not Webhook.objects.exists()
