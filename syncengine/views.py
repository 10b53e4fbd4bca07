"""Thin HTTP glue: feed logs and reprocessing, field mappings, the vehicle store, sync jobs,
snapshots and the record store."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin
from config.api.routers import NestedViewSetMixin
from config.api.schema import error_response
from connectors.models import Connection
from connectors.views import ConnectionViewSet
from integrations.models import Integration
from integrations.views import IntegrationViewSet
from syncengine import selectors
from syncengine.feeds import services
from syncengine.feeds.ingest import mapping_overrides
from syncengine.filters import (
    AccountSyncJobFilter,
    FeedFileFilter,
    RecordFilter,
    SyncJobFilter,
    VehicleFilter,
)
from syncengine.models import (
    FeedFile,
    Record,
    Snapshot,
    SnapshotRecord,
    SyncJob,
    SyncStream,
    Vehicle,
)
from syncengine.serializers import (
    SYNC_JOB_DETAIL_SCHEMA,
    ConnectionSyncInputSerializer,
    DispatchedSerializer,
    FeedFileLogSerializer,
    JobDispatchedSerializer,
    MappingPreviewSerializer,
    MappingsSerializer,
    MappingsUpdateSerializer,
    RecordSerializer,
    ReprocessSerializer,
    SnapshotRecordSerializer,
    SnapshotSerializer,
    SyncJobDetailSerializer,
    SyncJobSerializer,
    SyncStreamSerializer,
    VehicleSerializer,
    VehicleVersionSerializer,
)
from syncengine.sync import launch


@extend_schema_view(
    list=extend_schema(
        summary="Processing log of an integration's files (newest first)", tags=["feeds"]
    ),
    retrieve=extend_schema(summary="One file's log entry", tags=["feeds"]),
)
class FeedLogViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[FeedFile],
):
    """``/integrations/{integrationId}/logs``: the files an integration received."""

    parent_viewset = IntegrationViewSet
    serializer_class = FeedFileLogSerializer
    filterset_class = FeedFileFilter
    lookup_url_kwarg = "logId"
    default_sort = ["-received_at", "-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[FeedFile]:
        return FeedFile.objects.filter(account=account, integration=self.get_parent())

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
        writer.writerow(["row", "severity", "field", "value", "reason", *columns])
        for sample in feed_file.error_samples:
            values = sample.get("values", {})
            writer.writerow(
                [
                    sample.get("row"),
                    sample.get("severity", "error"),
                    sample.get("field") or "",
                    sample.get("value") or "",
                    sample.get("reason"),
                    *(values.get(c, "") for c in columns),
                ]
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
    """Field mappings of an integration's feed: ``/mappings/{integrationId}`` and its preview."""

    serializer_class = MappingsUpdateSerializer
    lookup_url_kwarg = "integrationId"

    def get_tenant_queryset(self, account: Account) -> QuerySet[Integration]:
        return Integration.objects.filter(account=account)

    @extend_schema(
        summary="Preview how source fields map",
        responses=MappingPreviewSerializer,
        tags=["mappings"],
    )
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, **kwargs: Any) -> Response:
        return Response(selectors.mapping_preview(integration=self.get_object()))

    @extend_schema(
        summary="Update field mappings",
        description=(
            '`{"mappings": {"Source Column": "canonicalField"}}`; null removes an override. '
            "Applies to the next file and to reprocessing."
        ),
        request=MappingsUpdateSerializer,
        responses=MappingsSerializer,
        tags=["mappings"],
    )
    def partial_update(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_object()
        body = MappingsUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        file_import = services.integration_mappings_update(
            integration=integration, actor=self.actor, mappings=body.validated_data["mappings"]
        )
        mappings = {
            source: target
            for source, target in mapping_overrides(file_import).items()
            if target is not None
        }
        return Response(
            MappingsSerializer({"integrationId": integration.pk, "mappings": mappings}).data
        )


@extend_schema_view(
    list=extend_schema(summary="List vehicles", tags=["vehicles"]),
    retrieve=extend_schema(summary="Get a vehicle", tags=["vehicles"]),
)
class VehicleViewSet(TenantScopedMixin, viewsets.ReadOnlyModelViewSet[Vehicle]):
    serializer_class = VehicleSerializer
    lookup_url_kwarg = "vehicleId"
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
    def history(self, request: Request, **kwargs: Any) -> Response:
        versions = self.get_object().versions.order_by("-created_at", "-id")
        page = self.paginate_queryset(versions)
        return self.get_paginated_response(VehicleVersionSerializer(page, many=True).data)


# --- Sync jobs, snapshots and the record store -------------------------------------------------
#
# Most of these nest under an owner: /integrations/{integrationId}/... or
# /integrations/connections/{connectionId}/.... The owner is found through its own viewset's
# tenant-scoped queryset first (``NestedViewSetMixin.get_parent``), so another account's
# integration or connection is a 404 before anything else happens.


SNAPSHOT_ENTITY = OpenApiParameter(
    "entity",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    description="The entity to read; required when the snapshot holds more than one.",
)
JOB_SORT_FIELDS = {
    "created_at": "created_at",
    "started_at": "started_at",
    "completed_at": "completed_at",
}
JOB_DETAIL = OpenApiResponse(response=SYNC_JOB_DETAIL_SCHEMA, description="The job with its log.")
JOB_CONFLICT = error_response("CONFLICT: a job is already queued or running; details name it.")


class _OwnerScopedMixin(NestedViewSetMixin, TenantScopedMixin):
    """A view nested under one integration or one connection of the caller's account."""

    def owner(self) -> dict[str, Any]:
        """``{"integration": ...}`` or ``{"connection": ...}``; a 404 outside the account."""
        raise NotImplementedError

    def owned_queryset(
        self,
        *,
        account: Account,
        integration: Integration | None = None,
        connection: Connection | None = None,
    ) -> QuerySet[Any]:
        raise NotImplementedError

    def get_tenant_queryset(self, account: Account) -> QuerySet[Any]:
        return self.owned_queryset(account=account, **self.owner())


class _IntegrationScopedMixin(_OwnerScopedMixin):
    parent_viewset = IntegrationViewSet

    def owner(self) -> dict[str, Any]:
        return {"integration": self.get_parent()}


class _ConnectionScopedMixin(_OwnerScopedMixin):
    parent_viewset = ConnectionViewSet

    def owner(self) -> dict[str, Any]:
        return {"connection": self.get_parent()}


@extend_schema_view(
    list=extend_schema(
        summary="List a connection's sync jobs (newest first)",
        tags=["connection syncs"],
    ),
    retrieve=extend_schema(
        summary="Get a sync job's status, stats, progress and log",
        responses=JOB_DETAIL,
        tags=["connection syncs"],
    ),
)
class ConnectionSyncViewSet(
    _ConnectionScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[SyncJob],
):
    """Syncs of a connection: ``/integrations/connections/{connectionId}/sync``."""

    serializer_class = SyncJobSerializer
    filterset_class = SyncJobFilter
    lookup_url_kwarg = "syncId"
    sort_fields = JOB_SORT_FIELDS
    default_sort = ["-created_at"]

    def owned_queryset(self, **owner: Any) -> QuerySet[SyncJob]:
        return selectors.sync_job_list(**owner)

    def get_serializer_class(self) -> type[SyncJobSerializer]:
        return SyncJobDetailSerializer if self.action == "retrieve" else SyncJobSerializer

    @extend_schema(
        summary="Start a sync of a connection's entities into its record store",
        description=(
            "Queues a job and answers 202 with it; poll `GET .../sync/{syncId}`. Every key of "
            "the body is optional: all entities, FULL mode and the merge strategy by default. "
            "400 VALIDATION_ERROR for a `dateRange` when the connector cannot read by date range "
            "(rather than a full read); 409 CONFLICT while another job of the connection is "
            "queued or running."
        ),
        request=ConnectionSyncInputSerializer,
        responses={202: SyncJobSerializer, 409: JOB_CONFLICT},
        tags=["connection syncs"],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        connection = self.owner()["connection"]
        body = ConnectionSyncInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        job = launch.connection_sync_start(
            connection=connection,
            actor=self.actor,
            entities=values.get("entities") or [],
            mode=values["mode"],
            date_range=values.get("date_range"),
            strategy=values["strategy"],
        )
        return Response(SyncJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class IntegrationSyncViewSet(_IntegrationScopedMixin, viewsets.GenericViewSet[SyncJob]):
    """A manual sync of an integration: ``POST /integrations/{integrationId}/sync``."""

    serializer_class = SyncJobSerializer

    def owned_queryset(self, **owner: Any) -> QuerySet[SyncJob]:
        return selectors.sync_job_list(**owner)

    @extend_schema(
        summary="Trigger a sync of an integration",
        description=(
            "Queues a job of the integration and answers 202 with its id. 400 BAD_REQUEST for "
            "an inactive integration; 409 CONFLICT while one of its jobs is queued or running."
        ),
        request=None,
        responses={202: JobDispatchedSerializer, 409: JOB_CONFLICT},
        tags=["integration syncs"],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job = launch.integration_sync_start(
            integration=self.owner()["integration"], actor=self.actor
        )
        return Response(
            {"jobId": job.pk, "status": "dispatched", "message": "Sync job has been dispatched"},
            status=status.HTTP_202_ACCEPTED,
        )


@extend_schema_view(
    list=extend_schema(
        summary="List an integration's jobs (newest first)",
        tags=["integration syncs"],
    ),
)
class IntegrationJobViewSet(
    _IntegrationScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[SyncJob]
):
    serializer_class = SyncJobSerializer
    filterset_class = SyncJobFilter
    sort_fields = JOB_SORT_FIELDS
    default_sort = ["-created_at"]

    def owned_queryset(self, **owner: Any) -> QuerySet[SyncJob]:
        return selectors.sync_job_list(**owner)


@extend_schema_view(
    list=extend_schema(summary="List the account's sync jobs (newest first)", tags=["jobs"]),
    retrieve=extend_schema(summary="Get a job with its log", responses=JOB_DETAIL, tags=["jobs"]),
)
class SyncJobViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[SyncJob],
):
    """Every job of the account: integration runs, file ingestion and connection syncs."""

    serializer_class = SyncJobSerializer
    filterset_class = AccountSyncJobFilter
    lookup_url_kwarg = "jobId"
    sort_fields = JOB_SORT_FIELDS
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SyncJob]:
        return selectors.sync_job_list(account=account)

    def get_serializer_class(self) -> type[SyncJobSerializer]:
        return SyncJobSerializer if self.action == "list" else SyncJobDetailSerializer

    @extend_schema(
        summary="Cancel a job",
        description=(
            "A queued job is CANCELLED at once. A running job gets `cancelRequestedAt` and "
            "stops at its next batch boundary, keeping what it committed; until then its status "
            "stays RUNNING. Cancelling a cancelled job changes nothing; 409 CONFLICT for a job "
            "that already completed or failed."
        ),
        request=None,
        responses={200: JOB_DETAIL, 409: error_response("CONFLICT: the job already ended.")},
        tags=["jobs"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def cancel(self, request: Request, **kwargs: Any) -> Response:
        job = launch.sync_job_cancel(job=self.get_object(), actor=self.actor)
        return Response(SyncJobDetailSerializer(job).data)


SNAPSHOT_LIST_NOTES = (
    "Complete snapshots only: one that a SNAPSHOT job is still writing is not listed until the "
    "job finishes (a retry of the job may discard it and start over)."
)
SNAPSHOT_DETAIL_NOTES = "404 for a snapshot still being written, as for one that does not exist."


class _SnapshotViewSet(
    _OwnerScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Snapshot],
):
    """Snapshots are immutable: there is nothing to write here. Only complete ones are served
    (``selectors.snapshot_list``)."""

    serializer_class = SnapshotSerializer
    lookup_url_kwarg = "snapshotId"
    sort_fields = {"created_at": "created_at"}
    default_sort = ["-created_at"]

    def owned_queryset(self, **owner: Any) -> QuerySet[Snapshot]:
        return selectors.snapshot_list(**owner)


class _SnapshotRecordViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[SnapshotRecord],
):
    """The records of a snapshot, nested under it: the snapshot is found through its own
    (owner-scoped, complete-only) viewset first."""

    serializer_class = SnapshotRecordSerializer
    sort_fields: dict[str, str] = {}
    default_sort = ["position"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SnapshotRecord]:
        if getattr(self, "swagger_fake_view", False):
            return SnapshotRecord.objects.none()
        return selectors.snapshot_records(
            snapshot=self.get_parent(), entity=self.request.query_params.get("entity")
        )


class _RecordViewSet(_OwnerScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Record]):
    serializer_class = RecordSerializer
    filterset_class = RecordFilter
    sort_fields = {"key": "key", "created_at": "created_at", "updated_at": "updated_at"}
    # (stream, key) is the unique index: the default order costs no sort.
    default_sort = ["stream_id", "key"]

    def owned_queryset(self, **owner: Any) -> QuerySet[Record]:
        return selectors.record_list(**owner)


class _StreamViewSet(_OwnerScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[SyncStream]):
    serializer_class = SyncStreamSerializer
    sort_fields: dict[str, str] = {}
    default_sort = ["entity"]

    def owned_queryset(self, **owner: Any) -> QuerySet[SyncStream]:
        return selectors.sync_stream_counts(**owner)


@extend_schema_view(
    list=extend_schema(
        summary="List an integration's snapshots (newest first)",
        description=SNAPSHOT_LIST_NOTES,
        tags=["snapshots"],
    ),
    retrieve=extend_schema(
        summary="Get a snapshot of an integration",
        description=SNAPSHOT_DETAIL_NOTES,
        tags=["snapshots"],
    ),
)
class IntegrationSnapshotViewSet(_IntegrationScopedMixin, _SnapshotViewSet):
    pass


@extend_schema_view(
    list=extend_schema(
        summary="List a connection's snapshots (newest first)",
        description=SNAPSHOT_LIST_NOTES,
        tags=["snapshots"],
    ),
    retrieve=extend_schema(
        summary="Get a snapshot of a connection",
        description=SNAPSHOT_DETAIL_NOTES,
        tags=["snapshots"],
    ),
)
class ConnectionSnapshotViewSet(_ConnectionScopedMixin, _SnapshotViewSet):
    pass


SNAPSHOT_RECORDS_NOTES = (
    "Records of one entity in the order they were read, paginated. 400 when `entity` is "
    "missing and the snapshot holds several entities, or names one it does not hold; 404 while "
    "the snapshot is still being written."
)


@extend_schema_view(
    list=extend_schema(
        summary="Read an integration snapshot's records",
        description=SNAPSHOT_RECORDS_NOTES,
        parameters=[SNAPSHOT_ENTITY],
        tags=["snapshots"],
    ),
)
class IntegrationSnapshotRecordViewSet(_SnapshotRecordViewSet):
    parent_viewset = IntegrationSnapshotViewSet


@extend_schema_view(
    list=extend_schema(
        summary="Read a connection snapshot's records",
        description=SNAPSHOT_RECORDS_NOTES,
        parameters=[SNAPSHOT_ENTITY],
        tags=["snapshots"],
    ),
)
class ConnectionSnapshotRecordViewSet(_SnapshotRecordViewSet):
    parent_viewset = ConnectionSnapshotViewSet


@extend_schema_view(
    list=extend_schema(
        summary="List an integration's records in the record store",
        tags=["record store"],
    ),
)
class IntegrationRecordViewSet(_IntegrationScopedMixin, _RecordViewSet):
    pass


@extend_schema_view(
    list=extend_schema(
        summary="List a connection's records in the record store",
        tags=["record store"],
    ),
)
class ConnectionRecordViewSet(_ConnectionScopedMixin, _RecordViewSet):
    pass


@extend_schema_view(
    list=extend_schema(
        summary="List an integration's streams: cursor, last sync and record count per entity",
        tags=["record store"],
    ),
)
class IntegrationStreamViewSet(_IntegrationScopedMixin, _StreamViewSet):
    pass


@extend_schema_view(
    list=extend_schema(
        summary="List a connection's streams: cursor, last sync and record count per entity",
        tags=["record store"],
    ),
)
class ConnectionStreamViewSet(_ConnectionScopedMixin, _StreamViewSet):
    pass
