"""Standard Webhooks secrets and signatures, through the ``standardwebhooks`` package.

A secret is ``whsec_`` + the base64 of 32 random bytes (the specification allows 24 to 64). The
signature header carries one ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` per secret that
signs: the current one and, for 24 hours after a rotation, the previous one.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook as StandardWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def secret_generate() -> str:
    """A new signing secret in the Standard Webhooks format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(
    *, message_id: str, body: str, secrets_signing: Sequence[str], moment: datetime
) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` of one attempt."""
    # The package reads the moment as UTC and signs its whole seconds, as the header states.
    moment = datetime.fromtimestamp(int(moment.timestamp()), tz=UTC)
    signatures = [
        StandardWebhook(secret).sign(msg_id=message_id, timestamp=moment, data=body)
        for secret in secrets_signing
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
