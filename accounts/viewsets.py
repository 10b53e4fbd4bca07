"""Base viewsets that scope every query to the request's account."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import mixins, viewsets
from rest_framework.generics import GenericAPIView

from accounts.models import Account
from accounts.services import Actor
from accounts.tenancy import request_account, request_actor
from config.api.routers import UUID_PATTERN


class TenantScopedMixin(GenericAPIView[Any]):
    """Limits every queryset to the request's account; another account's object is a 404.

    Subclasses implement ``get_tenant_queryset(account)`` instead of ``get_queryset``.
    """

    lookup_value_regex = UUID_PATTERN
    # The API key scope every action needs (accounts.permissions.required_scope); None: read for
    # safe methods, write otherwise. Declared here so ``@action(required_scope=...)`` is accepted.
    required_scope: str | None = None

    @property
    def account(self) -> Account:
        account = request_account(self.request)
        assert account is not None, "IsAccountMember guarantees an account"
        return account

    @property
    def actor(self) -> Actor:
        return request_actor(self.request)

    def get_tenant_queryset(self, account: Account) -> QuerySet[Any]:
        raise NotImplementedError

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not getattr(self, "swagger_fake_view", False) and self.request is not None:
            context["account"] = request_account(self.request)
        return context

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.get_tenant_queryset(
                Account(pk="00000000-0000-0000-0000-000000000000")
            ).none()
        return self.get_tenant_queryset(self.account)


class TenantViewSet(
    TenantScopedMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """CRUD over one account's objects. Writes go through ``perform_*`` hooks calling services."""
