"""Per-tenant scoping: the one place that decides which account a request acts for."""

from __future__ import annotations

from rest_framework.request import Request

from accounts.models import Account, ApiKey
from accounts.services import Actor


def request_account(request: Request) -> Account | None:
    if isinstance(request.auth, ApiKey):
        return request.auth.account
    user = request.user
    if user is not None and user.is_authenticated:
        return getattr(user, "account", None)
    return None


def request_actor(request: Request) -> Actor:
    if isinstance(request.auth, ApiKey):
        return Actor.for_api_key(request.auth)
    return Actor.for_user(request.user)
