"""Signatures: the specification's published test vector, a real delivery verified with the
``standardwebhooks`` package, and secret rotation with its 24-hour overlap."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks import WebhookVerificationError

from tests.webhooks.conftest import drain, record
from webhooks.models import Webhook
from webhooks.signing import signature_headers

pytestmark = pytest.mark.django_db

# The test vector published with the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_matches_the_specifications_test_vector():
    headers = signature_headers(
        message_id=SPEC_ID,
        body=SPEC_BODY,
        secrets_signing=[SPEC_SECRET],
        moment=datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC),
    )

    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_a_delivery_verifies_with_the_standardwebhooks_package(tenant, subscribe, receiver):
    webhook, secret = subscribe(f"{receiver.url}/hook")
    event = record(tenant.account)

    drain(webhook)

    [request] = receiver.on("/hook")
    payload = request.verified_with(secret)
    assert payload["id"] == str(event.pk) == request.webhook_id
    assert payload["type"] == "integration.sync.completed"
    with pytest.raises(WebhookVerificationError):
        StandardWebhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    tampered = request.body.replace(b"completed", b"c0mpleted")
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(tampered, request.headers)


def test_rotation_signs_with_both_secrets_for_a_day_then_only_the_new_one(
    api, tenant, subscribe, receiver
):
    webhook, old_secret = subscribe(f"{receiver.url}/hook")

    rotated = api.post(f"/api/v1/webhooks/{webhook.pk}/rotate-secret")
    new_secret = rotated.json()["data"]["secret"]
    record(tenant.account)
    drain(webhook)

    assert rotated.status_code == 200
    assert new_secret.startswith("whsec_")
    assert new_secret != old_secret
    expires = datetime.fromisoformat(rotated.json()["data"]["previousSecretExpiresAt"])
    assert timedelta(hours=23) < expires - timezone.now() <= timedelta(hours=24)
    [during] = receiver.on("/hook")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    during.verified_with(old_secret)
    during.verified_with(new_secret)

    # A day later the previous secret no longer signs.
    Webhook.objects.filter(pk=webhook.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    record(tenant.account)
    drain(webhook)

    after = receiver.on("/hook")[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    after.verified_with(new_secret)
    with pytest.raises(WebhookVerificationError):
        after.verified_with(old_secret)
