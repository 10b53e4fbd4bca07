"""Encryption at rest for secrets the platform must be able to read back (connector credentials).

``FIELD_ENCRYPTION_KEY`` holds one or more comma-separated secrets; each is stretched into a Fernet
key. The first encrypts; all decrypt, so keys can be rotated by prepending a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    """Ciphertext that none of the configured keys can open."""


def _fernet_key(secret: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())


@cache
def _cipher(keys: str) -> MultiFernet:
    secrets = [part.strip() for part in keys.split(",") if part.strip()]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def encrypt_json(value: Any) -> str:
    payload = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return _cipher(settings.FIELD_ENCRYPTION_KEY).encrypt(payload).decode()


def decrypt_json(token: str) -> Any:
    if not token:
        return None
    try:
        payload = _cipher(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode())
    except InvalidToken:
        raise DecryptionError(
            "The stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY."
        ) from None
    return json.loads(payload)
