"""``Authorization: Bearer <api key>`` authentication."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiKey
from accounts.services import hash_api_key, parse_api_key
from accounts.throttling import auth_failure_record, auth_failures_check, client_address

# Recording last use on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyUser(AnonymousUser):
    """The principal of a request authenticated by an API key (no Django user behind it)."""

    def __init__(self, api_key: ApiKey) -> None:
        super().__init__()
        self.api_key = api_key

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return str(self.api_key)


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer ry_<prefix>_<secret>``.

    Failed attempts are counted per client address and per key prefix, and an address or prefix
    over its budget is answered 429 before the key is looked at (``accounts.throttling``). A
    revoked key presented with its right secret is a 401 but not a failed attempt: it guesses
    nothing.
    """

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        address = client_address(request)
        raw_key = _raw_key(header)
        parsed = parse_api_key(raw_key) if raw_key else None
        auth_failures_check(address=address, prefix=parsed[0] if parsed else None)
        if raw_key is None:
            auth_failure_record(address=address, prefix=None)
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Bearer <api key>'."
            )
        api_key = (
            ApiKey.objects.select_related("account").filter(prefix=parsed[0]).first()
            if parsed
            else None
        )
        if api_key is None or not hmac.compare_digest(api_key.key_hash, hash_api_key(raw_key)):
            auth_failure_record(address=address, prefix=api_key.prefix if api_key else None)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def _raw_key(header: list[bytes]) -> str | None:
    """The key of a ``Bearer <key>`` header split in words; None if the header is malformed."""
    if len(header) != 2:
        return None
    try:
        return header[1].decode()
    except UnicodeDecodeError:
        return None
