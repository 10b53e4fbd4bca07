"""Thin HTTP glue: feed logs and reprocessing, field mappings, and the vehicle store."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin
from integrations.models import Integration
from integrations.selectors import integration_get
from integrations.serializers import FileImportSerializer
from syncengine import selectors, services
from syncengine.filters import FeedFileFilter, VehicleFilter
from syncengine.models import FeedFile, Vehicle
from syncengine.serializers import (
    DispatchedSerializer,
    FeedFileLogSerializer,
    MappingPreviewSerializer,
    MappingsUpdateSerializer,
    ReprocessSerializer,
    VehicleSerializer,
    VehicleVersionSerializer,
)


@extend_schema_view(
    list=extend_schema(
        summary="Processing log of an integration's files (newest first)", tags=["feeds"]
    ),
    retrieve=extend_schema(summary="One file's log entry", tags=["feeds"]),
)
class FeedLogViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[FeedFile],
):
    serializer_class = FeedFileLogSerializer
    filterset_class = FeedFileFilter
    default_sort = ["-received_at", "-id"]

    def integration(self) -> Integration:
        return integration_get(account=self.account, integration_id=self.kwargs["integration_id"])

    def get_tenant_queryset(self, account: Account) -> QuerySet[FeedFile]:
        if getattr(self, "swagger_fake_view", False):
            return FeedFile.objects.none()
        return FeedFile.objects.filter(account=account, integration=self.integration())

    @extend_schema(
        summary="Download a file's rejected rows as CSV",
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
        tags=["feeds"],
    )
    @action(detail=True, methods=["get"], url_path="errors.csv", filterset_class=None)
    def errors_csv(self, request: Request, **kwargs: Any) -> HttpResponse:
        feed_file = self.get_object()
        buffer = io.StringIO()
        columns = sorted(
            {key for sample in feed_file.error_samples for key in sample.get("values", {})}
        )
        writer = csv.writer(buffer)
        writer.writerow(["row", "reason", *columns])
        for sample in feed_file.error_samples:
            values = sample.get("values", {})
            writer.writerow(
                [sample.get("row"), sample.get("reason"), *(values.get(c, "") for c in columns)]
            )
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{feed_file.pk}-errors.csv"'
        return response

    @extend_schema(
        summary="Process a stored file again with the current mappings",
        description="A new log entry and job; `force` applies it even past the row-count guard.",
        request=ReprocessSerializer,
        responses={202: DispatchedSerializer},
        tags=["feeds"],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def reprocess(self, request: Request, **kwargs: Any) -> Response:
        feed_file = self.get_object()
        body = ReprocessSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        rerun = services.feed_file_reprocess(
            feed_file=feed_file, actor=self.actor, force=body.validated_data["force"]
        )
        return Response(
            {
                "logId": rerun.pk,
                "status": "dispatched",
                "message": "The file has been queued for processing.",
            },
            status=status.HTTP_202_ACCEPTED,
        )


class MappingViewSet(TenantScopedMixin, viewsets.GenericViewSet[Integration]):
    """Seed 000's field mappings: ``/mappings/<integrationId>`` and its preview."""

    serializer_class = MappingsUpdateSerializer
    lookup_url_kwarg = "integration_id"

    def get_tenant_queryset(self, account: Account) -> QuerySet[Integration]:
        return Integration.objects.filter(account=account)

    @extend_schema(
        summary="Preview how source fields map",
        responses=MappingPreviewSerializer,
        tags=["mappings"],
    )
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, integration_id: str) -> Response:
        return Response(selectors.mapping_preview(integration=self.get_object()))

    @extend_schema(
        summary="Update field mappings",
        description=(
            '`{"mappings": {"Source Column": "canonicalField"}}`; null removes an override. '
            "Applies to the next file and to reprocessing."
        ),
        request=MappingsUpdateSerializer,
        responses=FileImportSerializer,
        tags=["mappings"],
    )
    def partial_update(self, request: Request, integration_id: str) -> Response:
        integration = self.get_object()
        body = MappingsUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        file_import = services.integration_mappings_update(
            integration=integration, actor=self.actor, mappings=body.validated_data["mappings"]
        )
        return Response(FileImportSerializer(file_import).data)


@extend_schema_view(
    list=extend_schema(summary="List vehicles", tags=["vehicles"]),
    retrieve=extend_schema(summary="Get a vehicle", tags=["vehicles"]),
)
class VehicleViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet[Vehicle]):
    serializer_class = VehicleSerializer
    filterset_class = VehicleFilter
    sort_fields = {
        "updated_at": "updated_at",
        "created_at": "created_at",
        "price": "price",
        "year": "year",
        "mileage": "mileage",
        "make": "make",
        "in_stock_date": "in_stock_date",
        "stock_number": "stock_number",
    }
    default_sort = ["-updated_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Vehicle]:
        return selectors.vehicle_list(account=account)

    @extend_schema(
        summary="A vehicle's change history",
        responses=VehicleVersionSerializer(many=True),
        tags=["vehicles"],
    )
    @action(detail=True, methods=["get"], filterset_class=None, sort_fields={})
    def history(self, request: Request, pk: str) -> Response:
        versions = self.get_object().versions.order_by("-created_at", "-id")
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(VehicleVersionSerializer(page, many=True).data)
