from typing import Any

import pytest
from django.test import override_settings

from accounts.choices import EventType
from accounts.services import event_record
from tests.webhooks.receiver import webhook_receiver
from webhooks import delivery
from webhooks.models import Webhook


@pytest.fixture(autouse=True)
def _plain_http_allowed():
    """Test receivers speak plain HTTP on loopback (the test settings allow loopback)."""
    with override_settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_TIMEOUT_SECONDS=2):
        yield


@pytest.fixture
def receiver():
    with webhook_receiver() as server:
        yield server


@pytest.fixture
def subscribe(api):
    """Create an endpoint through the API; returns (webhook row, secret)."""

    def make(url: str, **body: Any) -> tuple[Webhook, str]:
        body.setdefault("events", ["*"])
        response = api.post("/api/v1/webhooks", {"url": url, **body}, format="json")
        assert response.status_code == 201, response.content
        data = response.json()["data"]
        return Webhook.objects.get(pk=data["id"]), data["secret"]

    return make


def record(account: Any, type: str = EventType.SYNC_COMPLETED, **kwargs: Any) -> Any:
    kwargs.setdefault("payload", {"jobId": "job-1", "status": "completed"})
    return event_record(account=account, type=type, **kwargs)


def drain(webhook: Webhook) -> delivery.DrainResult:
    """What a worker's drain task does, in this process."""
    return delivery.endpoint_drain(webhook.pk)
