from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.serializers import BaseSerializer

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin, TenantViewSet
from config.api.routers import NestedViewSetMixin
from exports import selectors, services
from exports.filters import ExportFilter, IntegrationExportFilter
from exports.models import Export
from exports.serializers import ExportSerializer
from integrations.views import IntegrationViewSet

SORT_FIELDS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "name": "name",
    "next_run_at": "next_run_at",
}


@extend_schema_view(
    list=extend_schema(summary="List configured exports", tags=["exports"]),
    create=extend_schema(summary="Create a data export", tags=["exports"]),
    retrieve=extend_schema(summary="Get an export", tags=["exports"]),
    partial_update=extend_schema(
        summary="Update an export",
        description="`schedule` keys merge into the stored schedule and recompute `nextRunAt`; "
        "`destination` is replaced as a whole.",
        tags=["exports"],
    ),
    destroy=extend_schema(summary="Delete an export", tags=["exports"]),
)
class ExportViewSet(TenantViewSet):
    """Export definitions of the account: entities written as files on a schedule."""

    serializer_class = ExportSerializer
    filterset_class = ExportFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_url_kwarg = "exportId"
    sort_fields = SORT_FIELDS
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Export]:
        return selectors.export_list(account=account)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = services.export_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        export = serializer.instance
        assert isinstance(export, Export)
        serializer.instance = services.export_update(
            export=export, actor=self.actor, **serializer.validated_data
        )

    def perform_destroy(self, instance: Export) -> None:
        services.export_delete(export=instance, actor=self.actor)


@extend_schema_view(
    list=extend_schema(
        summary="List the exports of an integration",
        operation_id="integration_exports_list",
        tags=["exports"],
    )
)
class IntegrationExportViewSet(
    NestedViewSetMixin, TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Export]
):
    """``/integrations/{integrationId}/exports``: the exports linked to one live integration."""

    parent_viewset = IntegrationViewSet
    serializer_class = ExportSerializer
    filterset_class = IntegrationExportFilter
    sort_fields = SORT_FIELDS
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Export]:
        return selectors.integration_exports(integration=self.get_parent())
