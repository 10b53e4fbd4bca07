from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin, TenantViewSet
from config.api.routers import NestedViewSetMixin
from config.api.schema import error_response
from exports import selectors, services
from exports.destinations import local_file_open
from exports.filters import ExportFilter, IntegrationExportFilter
from exports.models import Export, ExportFile
from exports.serializers import (
    ExportFileSerializer,
    ExportRunDetailSerializer,
    ExportRunSerializer,
    ExportSerializer,
    ImportRunDetailSerializer,
    ImportRunSerializer,
)
from integrations.models import FileImport
from integrations.views import FileImportViewSet, IntegrationViewSet
from syncengine.models import SyncJob

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

    @extend_schema(
        summary="Manually trigger an export",
        description="Queues a run of the export and answers 202 with it; follow it at "
        "`GET .../exports/{exportId}/runs/{runId}`. 409 CONFLICT while a run of the export is "
        "queued or running (`details.runId` names it). A paused export runs when asked to.",
        request=None,
        responses={
            202: ExportRunSerializer,
            409: error_response("CONFLICT: a run of the export is already queued or running."),
        },
        tags=["exports"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def run(self, request: Request, **kwargs: Any) -> Response:
        run = services.export_run_start(export=self.get_object(), actor=self.actor)
        return Response(ExportRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


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


RUN_SORT_FIELDS = {"created_at": "created_at", "started_at": "started_at"}


@extend_schema_view(
    list=extend_schema(summary="List an export's runs (newest first)", tags=["exports"]),
    retrieve=extend_schema(
        summary="Get an export run: status, rows, files, progress and log",
        responses=ExportRunDetailSerializer,
        tags=["exports"],
    ),
)
class ExportRunViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[SyncJob],
):
    """``/integrations/exports/{exportId}/runs``: the runs of one export of the account."""

    parent_viewset = ExportViewSet
    serializer_class = ExportRunSerializer
    lookup_url_kwarg = "runId"
    sort_fields = RUN_SORT_FIELDS
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SyncJob]:
        return selectors.export_run_list(export=self.get_parent())

    def get_serializer_class(self) -> type[ExportRunSerializer]:
        return ExportRunSerializer if self.action == "list" else ExportRunDetailSerializer

    @extend_schema(
        summary="Cancel an export run",
        description="A queued run is CANCELLED at once. A running run gets `cancelRequestedAt`, "
        "stops at its next check (within a few thousand rows), discards its uploads and ends "
        "CANCELLED with nothing delivered. Cancelling a cancelled run changes nothing; 409 "
        "CONFLICT for a run that already completed or failed.",
        request=None,
        responses={
            200: ExportRunDetailSerializer,
            409: error_response("CONFLICT: the run already ended."),
        },
        tags=["exports"],
    )
    @action(detail=True, methods=["post"], sort_fields={})
    def cancel(self, request: Request, **kwargs: Any) -> Response:
        run = services.export_run_cancel(run=self.get_object(), actor=self.actor)
        run = self.get_queryset().get(pk=run.pk)
        return Response(ExportRunDetailSerializer(run).data)


FILE_ID = OpenApiParameter(
    "fileId",
    OpenApiTypes.INT,
    OpenApiParameter.PATH,
    description="The file's number in the run (n: 1, 2, ...), as `files[].n` gives it.",
)


@extend_schema_view(
    list=extend_schema(summary="List the files an export run delivered", tags=["exports"]),
)
class ExportRunFileViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet[ExportFile],
):
    """``.../runs/{runId}/files``: a run's files; a LOCAL one can be downloaded."""

    parent_viewset = ExportRunViewSet
    serializer_class = ExportFileSerializer
    lookup_field = "number"
    lookup_url_kwarg = "fileId"
    lookup_value_regex = "[0-9]{1,9}"
    sort_fields: dict[str, str] = {}
    default_sort = ["number"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[ExportFile]:
        return selectors.export_run_files(run=self.get_parent())

    @extend_schema(
        summary="Download a file of an export run (LOCAL destinations)",
        description="The file's bytes as delivered. 404 for a file at a remote destination "
        "(S3, Azure Blob, SFTP: fetch it there, at its `uri`) and for one no longer stored.",
        parameters=[FILE_ID],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: error_response("NOT_FOUND: no such file, or not a LOCAL one."),
        },
        tags=["exports"],
    )
    def retrieve(self, request: Request, **kwargs: Any) -> FileResponse:
        file = self.get_object()
        opened = local_file_open(account_id=self.account.pk, uri=file.uri)
        if opened is None:
            raise Http404
        content, name = opened
        return FileResponse(
            content,  # FileResponse closes it
            as_attachment=True,
            filename=name,
            content_type="application/octet-stream",
        )


# --- file import runs ----------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        summary="Run a file import",
        description="Queues a run that writes the import's file and answers 202 with it: the "
        "records of its `entity` (with its `filter`), mapped by `mapping.fields`, written as "
        "`file.type` with the `file.csv` options, named from `ftp.fileName` and uploaded into "
        "`ftp.directoryPath` through its connection (sftp, s3 or azure_blob). Follow it at "
        "`GET /imports/{importId}/runs/{runId}`. 400 when the import cannot run (each problem "
        "by field); 409 CONFLICT while a run of it is queued or running.",
        request=None,
        responses={
            202: ImportRunSerializer,
            409: error_response("CONFLICT: a run of the import is already queued or running."),
        },
        tags=["imports"],
    )
)
class ImportRunStartViewSet(
    NestedViewSetMixin, TenantScopedMixin, viewsets.GenericViewSet[SyncJob]
):
    """``POST /imports/{importId}/run``: start a run of one file import of the account."""

    parent_viewset = FileImportViewSet
    serializer_class = ImportRunSerializer
    filterset_class = None
    sort_fields: dict[str, str] = {}

    def get_tenant_queryset(self, account: Account) -> QuerySet[SyncJob]:
        return selectors.import_run_list(file_import=self.get_parent())

    def create(self, request: Request, **kwargs: Any) -> Response:
        file_import = self.get_parent()
        assert isinstance(file_import, FileImport)
        run = services.file_import_run_start(file_import=file_import, actor=self.actor)
        return Response(ImportRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List a file import's runs (newest first)", tags=["imports"]),
    retrieve=extend_schema(
        summary="Get a file import run: status, rows, file, progress and log",
        responses=ImportRunDetailSerializer,
        tags=["imports"],
    ),
)
class ImportRunViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[SyncJob],
):
    """``/imports/{importId}/runs``: the runs of one file import of the account."""

    parent_viewset = FileImportViewSet
    serializer_class = ImportRunSerializer
    lookup_url_kwarg = "runId"
    sort_fields = RUN_SORT_FIELDS
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SyncJob]:
        return selectors.import_run_list(file_import=self.get_parent())

    def get_serializer_class(self) -> type[ImportRunSerializer]:
        return ImportRunSerializer if self.action == "list" else ImportRunDetailSerializer

    @extend_schema(
        summary="Cancel a file import run",
        description="A queued run is CANCELLED at once; a running one stops at its next check, "
        "discards its upload and ends CANCELLED with nothing delivered. 409 CONFLICT for a run "
        "that already completed or failed.",
        request=None,
        responses={
            200: ImportRunDetailSerializer,
            409: error_response("CONFLICT: the run already ended."),
        },
        tags=["imports"],
    )
    @action(detail=True, methods=["post"], sort_fields={})
    def cancel(self, request: Request, **kwargs: Any) -> Response:
        run = services.export_run_cancel(run=self.get_object(), actor=self.actor)
        run = self.get_queryset().get(pk=run.pk)
        return Response(ImportRunDetailSerializer(run).data)
