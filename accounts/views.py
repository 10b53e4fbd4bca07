from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts import services
from accounts.choices import ApiKeyScope
from accounts.filters import AuditEntryFilter, EventFilter
from accounts.models import Account, ApiKey, AuditEntry, Dealership, Event
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEntrySerializer,
    DealershipSerializer,
    EventSerializer,
)
from accounts.viewsets import TenantScopedMixin, TenantViewSet
from config.api.schema import error_response


@extend_schema_view(
    list=extend_schema(summary="List dealerships", tags=["dealerships"]),
    create=extend_schema(summary="Create a dealership", tags=["dealerships"]),
    retrieve=extend_schema(summary="Get a dealership", tags=["dealerships"]),
    partial_update=extend_schema(summary="Update a dealership", tags=["dealerships"]),
    destroy=extend_schema(
        summary="Delete a dealership",
        description="409 CONFLICT while integrations still belong to it.",
        responses={204: None, 409: error_response("CONFLICT: integrations still belong to it.")},
        tags=["dealerships"],
    ),
)
class DealershipViewSet(TenantViewSet):
    serializer_class = DealershipSerializer
    lookup_url_kwarg = "dealershipId"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    sort_fields = {"name": "name", "created_at": "created_at", "updated_at": "updated_at"}
    default_sort = ["name"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Dealership]:
        return Dealership.objects.filter(account=account)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = services.dealership_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.dealership_update(
            dealership=serializer.instance, actor=self.actor, **serializer.validated_data
        )

    def perform_destroy(self, instance: Dealership) -> None:
        services.dealership_delete(dealership=instance, actor=self.actor)


ADMIN_ONLY = "Needs an API key of scope `admin` (403 FORBIDDEN otherwise)."


@extend_schema_view(
    list=extend_schema(summary="List API keys", description=ADMIN_ONLY, tags=["api keys"]),
    retrieve=extend_schema(summary="Get an API key", description=ADMIN_ONLY, tags=["api keys"]),
    create=extend_schema(
        summary="Create an API key",
        description=(
            "The response holds the whole key; it is never shown again. `scope` defaults to "
            f"`write`. {ADMIN_ONLY}"
        ),
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        tags=["api keys"],
    ),
    destroy=extend_schema(
        summary="Revoke an API key",
        description=(
            "Takes effect at once, also for the key making the request: a key that revokes "
            f"itself gets this 204 and 401 from then on. {ADMIN_ONLY}"
        ),
        tags=["api keys"],
    ),
)
class ApiKeyViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = ApiKeySerializer
    lookup_url_kwarg = "apiKeyId"
    required_scope = ApiKeyScope.ADMIN
    sort_fields = {"created_at": "created_at", "name": "name", "last_used_at": "last_used_at"}
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[ApiKey]:
        return ApiKey.objects.filter(account=account)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        return ApiKeyCreateSerializer if self.action == "create" else ApiKeySerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, raw_key = services.api_key_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )
        api_key.key = raw_key  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: ApiKey) -> None:
        services.api_key_revoke(api_key=instance, actor=self.actor)


@extend_schema_view(
    list=extend_schema(summary="List events", tags=["events"]),
    retrieve=extend_schema(summary="Get an event", tags=["events"]),
)
class EventViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = EventSerializer
    lookup_url_kwarg = "eventId"
    filterset_class = EventFilter
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Event]:
        return Event.objects.filter(account=account)


@extend_schema_view(list=extend_schema(summary="List the account's audit trail", tags=["audit"]))
class AuditEntryViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    default_sort = ["-created_at", "-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[AuditEntry]:
        return AuditEntry.objects.filter(account=account)
