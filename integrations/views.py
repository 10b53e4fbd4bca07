"""Thin HTTP glue for integrations, the resources nested under one, file imports and flows."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

from django.core import signing
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.models import Account, AuditEntry
from accounts.serializers import AuditEntrySerializer, TenantPrimaryKeyRelatedField
from accounts.viewsets import TenantScopedMixin, TenantViewSet
from config.api.routers import NestedViewSetMixin
from config.api.schema import error_response
from connectors import selectors as connection_selectors
from connectors.models import Connection
from connectors.serializers import ConnectionSerializer
from integrations import selectors
from integrations.filters import FileImportFilter, FlowFilter, IntegrationFilter
from integrations.models import FileImport, Flow, Integration, IntegrationShare, Revision
from integrations.serializers import (
    CloneSerializer,
    FileImportSerializer,
    FlowSerializer,
    IntegrationCreatedSerializer,
    IntegrationSerializer,
    RevisionCreateSerializer,
    RevisionDetailSerializer,
    RevisionSerializer,
    ShareCreateSerializer,
    ShareSerializer,
    StepsDocumentSerializer,
    StepSubmitSerializer,
    TemplateLinkSerializer,
)
from integrations.services import imports as import_services
from integrations.services import integrations as services
from integrations.services.revisions import revision_create

TEMPLATE_SALT = "integrations.template"
TEMPLATE_LINK_LIFETIME = timedelta(hours=1)
TAG = ["integrations"]
STEPS_COMPLETE = error_response("CONFLICT: every step is already complete.")


def _template_zip(integration: Integration) -> HttpResponse:
    document = selectors.integration_template(integration=integration)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("integration.json", json.dumps(document, indent=2, sort_keys=True))
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{integration.pk}.zip"'
    return response


def _steps_document(steps: list[dict[str, Any]]) -> dict[str, Any]:
    pending = next((step for step in steps if not step.get("completed")), None)
    return {
        "steps": steps,
        "currentStep": pending["name"] if pending else None,
        "completed": bool(steps) and pending is None,
    }


class ConnectionIdsSerializer(BaseSerializer[Any]):
    """A JSON array of connection ids of the caller's account (the body of a register)."""

    def to_internal_value(self, data: Any) -> list[Connection]:
        if not isinstance(data, list) or not data:
            raise ValidationError(
                {"nonFieldErrors": ["Send a non-empty JSON array of connection ids."]}
            )
        field = TenantPrimaryKeyRelatedField(queryset=Connection.objects.all())
        field.bind("connections", self)
        connections, errors = [], {}
        for index, item in enumerate(data):
            try:
                connections.append(field.to_internal_value(item))
            except ValidationError as exc:
                errors[f"[{index}]"] = exc.detail
        if errors:
            raise ValidationError(errors)
        return connections


@extend_schema_view(
    list=extend_schema(summary="List integrations", tags=TAG),
    create=extend_schema(
        summary="Create an integration",
        description=(
            "What the body names decides the kind of integration: a feed `type` (vauto, homenet, "
            "elead, custom; needs `dealershipId`) gets an SFTP login, shown once in `sftp`; a "
            "`sourceAppId` or `destinationAppId` (or a connector id as `type`, with `dataType`) "
            'makes a connector integration; a body with neither, such as `{"name": ...}`, '
            "creates an integration container (`type: container`, `dataType: records` unless "
            "sent, no SFTP login) that groups flows, imports, exports and connections."
        ),
        responses={201: IntegrationCreatedSerializer},
        tags=TAG,
    ),
    retrieve=extend_schema(summary="Get an integration", tags=TAG),
    update=extend_schema(
        summary="Replace an integration",
        description="PUT replaces schedule and syncSettings as sent (defaults for the rest).",
        tags=TAG,
    ),
    partial_update=extend_schema(
        summary="Update an integration",
        description=(
            "PATCH merges the keys of schedule and syncSettings into the stored ones. "
            "`status: active|inactive` sets state."
        ),
        tags=TAG,
    ),
    destroy=extend_schema(
        summary="Delete an integration (soft)",
        description="It leaves the API and the scheduler; operators can restore it.",
        tags=TAG,
    ),
)
class IntegrationViewSet(TenantViewSet):
    """Integrations, and the verbs and documents of one (its own fields): clone, template,
    dependencies, install and uninstall steps. The rows that belong to an integration are
    resources nested under it (``Integration*ViewSet`` below and in other apps)."""

    serializer_class = IntegrationSerializer
    filterset_class = IntegrationFilter
    lookup_url_kwarg = "integrationId"
    sort_fields = {
        "created_at": "created_at",
        "updated_at": "updated_at",
        "last_sync_at": "last_sync_at",
        "name": "name",
    }
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Integration]:
        return selectors.integration_list(account=account)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        integration = services.integration_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )
        # Credentials provisioned with it (the SFTP login of a feed) are shown in this answer only.
        body = {**self.get_serializer(integration).data, **getattr(integration, "provisioned", {})}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        integration = serializer.instance
        assert integration is not None
        services.integration_update(
            integration=integration, actor=self.actor, **serializer.validated_data
        )
        serializer.instance = self.get_queryset().get(pk=integration.pk)

    def perform_destroy(self, instance: Integration) -> None:
        services.integration_delete(integration=instance, actor=self.actor)

    @extend_schema(
        summary="Clone an integration",
        request=CloneSerializer,
        responses={201: IntegrationCreatedSerializer},
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, **kwargs: Any) -> Response:
        body = CloneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        clone = services.integration_clone(
            integration=self.get_object(), actor=self.actor, name=body.validated_data.get("name")
        )
        data = {**self.get_serializer(clone).data, **getattr(clone, "provisioned", {})}
        return Response(data, status=status.HTTP_201_CREATED)

    def _steps(self, kind: str) -> Response:
        integration = self.get_object()
        return Response(_steps_document(getattr(integration, services.STEP_FIELDS[kind])))

    def _submit_step(self, request: Request, kind: str) -> Response:
        integration = self.get_object()
        body = StepSubmitSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        integration = services.integration_step_submit(
            integration=integration,
            actor=self.actor,
            kind=kind,
            step_name=body.validated_data.get("step"),
            form_data=body.validated_data.get("formData"),
            connection=body.validated_data.get("connectionId"),
        )
        return Response(_steps_document(getattr(integration, services.STEP_FIELDS[kind])))

    @extend_schema(
        summary="Installation steps and progress", responses=StepsDocumentSerializer, tags=TAG
    )
    @action(detail=True, methods=["get"], url_path="installSteps")
    def install_steps(self, request: Request, **kwargs: Any) -> Response:
        return self._steps("install")

    @extend_schema(
        summary="Complete the next installation step",
        description="A `form` step takes `formData`; a `connection` step takes `connectionId`.",
        request=StepSubmitSerializer,
        responses={200: StepsDocumentSerializer, 409: STEPS_COMPLETE},
        tags=TAG,
    )
    @install_steps.mapping.post
    def submit_install_step(self, request: Request, **kwargs: Any) -> Response:
        return self._submit_step(request, "install")

    @extend_schema(
        summary="Uninstallation steps and progress", responses=StepsDocumentSerializer, tags=TAG
    )
    @action(detail=True, methods=["get"], url_path="uninstallSteps")
    def uninstall_steps(self, request: Request, **kwargs: Any) -> Response:
        return self._steps("uninstall")

    @extend_schema(
        summary="Complete the next uninstallation step",
        description="Completing the last step deletes the integration (soft delete).",
        request=StepSubmitSerializer,
        responses={200: StepsDocumentSerializer, 409: STEPS_COMPLETE},
        tags=TAG,
    )
    @uninstall_steps.mapping.post
    def submit_uninstall_step(self, request: Request, **kwargs: Any) -> Response:
        return self._submit_step(request, "uninstall")

    @extend_schema(
        summary="Download an integration's template",
        description=(
            "A zip holding integration.json: the definition, its flows, imports, exports "
            "and connections (without credentials)."
        ),
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        tags=TAG,
    )
    @action(detail=True, methods=["get"])
    def template(self, request: Request, **kwargs: Any) -> HttpResponse:
        return _template_zip(self.get_object())

    @extend_schema(
        summary="Get a signed link to the integration's template",
        description="The link works without an API key for one hour.",
        request=None,
        responses=TemplateLinkSerializer,
        tags=TAG,
    )
    @template.mapping.post
    def template_link(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_object()
        token = signing.dumps(
            {"i": str(integration.pk), "a": str(self.account.pk)}, salt=TEMPLATE_SALT
        )
        url = request.build_absolute_uri(
            reverse("integration-template-detail", kwargs={"token": token})
        )
        expires_at = timezone.now() + TEMPLATE_LINK_LIFETIME
        return Response({"signedURL": url, "key": f"{integration.pk}.zip", "expiresAt": expires_at})

    @extend_schema(
        summary="Resources used by or using an integration", responses=OpenApiTypes.OBJECT, tags=TAG
    )
    @action(detail=True, methods=["get"])
    def dependencies(self, request: Request, **kwargs: Any) -> Response:
        return Response(selectors.integration_dependencies(integration=self.get_object()))


class IntegrationNestedMixin(NestedViewSetMixin, TenantScopedMixin):
    """A resource nested under ``/integrations/{integrationId}``: the integration is found among
    the caller's live integrations first (``get_parent()``), another account's is a 404."""

    parent_viewset = IntegrationViewSet
    # Lists of an integration's rows are short: no filters, one fixed order.
    filterset_class = None
    sort_fields: dict[str, str] = {}


@extend_schema_view(list=extend_schema(summary="Flows of an integration", tags=TAG))
class IntegrationFlowViewSet(
    IntegrationNestedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Flow]
):
    serializer_class = FlowSerializer
    default_sort = ["created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Flow]:
        return Flow.objects.filter(integration=self.get_parent())


IMPORT_PUT_DESCRIPTION = (
    "PUT replaces the whole import: a field left out takes its default (file: a CSV file, "
    "ftp: {{}}, mapping: no fields, connectionId: null, integrationId: {integration}, "
    'distributed: false, entity: "", filter: {{}}); name is required. PATCH changes only the '
    "fields it sends."
)


@extend_schema_view(
    list=extend_schema(summary="File imports of an integration", tags=TAG),
    retrieve=extend_schema(summary="Get a file import of an integration", tags=TAG),
    update=extend_schema(
        summary="Replace a file import of an integration",
        description=IMPORT_PUT_DESCRIPTION.format(integration="the integration of the URL"),
        tags=TAG,
    ),
    partial_update=extend_schema(summary="Update a file import of an integration", tags=TAG),
)
class IntegrationImportViewSet(
    IntegrationNestedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[FileImport],
):
    """``/integrations/{integrationId}/imports``: the file imports of one live integration; an
    import is read and written here as at ``/imports/{importId}``, except that it stays in the
    integration of the URL."""

    serializer_class = FileImportSerializer
    lookup_url_kwarg = "importId"
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[FileImport]:
        return FileImport.objects.filter(integration=self.get_parent())

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "route_integration": self.get_parent()}

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = import_services.file_import_update(
            file_import=serializer.instance, actor=self.actor, **serializer.validated_data
        )


@extend_schema_view(
    list=extend_schema(
        summary="Connections of an integration",
        description="Its source, its destination and the connections registered with it.",
        tags=TAG,
    )
)
class IntegrationConnectionViewSet(
    IntegrationNestedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[Connection]
):
    serializer_class = ConnectionSerializer
    lookup_url_kwarg = "connectionId"
    default_sort = ["name"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Connection]:
        return selectors.integration_connections(integration=self.get_parent())

    def _account_connection(self) -> Connection:
        """The connection of the URL among the account's (registering one that is not yet
        registered is the point)."""
        return get_object_or_404(
            connection_selectors.connection_list(account=self.account),
            pk=self.kwargs["connectionId"],
        )

    @extend_schema(
        operation_id="integrations_connections_register_many",
        summary="Register connections with an integration",
        request={
            "application/json": {"type": "array", "items": {"type": "string", "format": "uuid"}}
        },
        responses=ConnectionSerializer(many=True),
        tags=TAG,
    )
    @action(detail=False, methods=["put"], url_path="register")
    def register_many(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_parent()
        body = ConnectionIdsSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        services.integration_connections_register(
            integration=integration, actor=self.actor, connections=body.validated_data
        )
        return self.list(request)

    @extend_schema(
        operation_id="integrations_connection_register",
        summary="Register a connection with an integration",
        request=None,
        responses=ConnectionSerializer,
        tags=TAG,
    )
    @action(detail=True, methods=["put"], url_path="register")
    def register(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_parent()
        connection = self._account_connection()
        services.integration_connections_register(
            integration=integration, actor=self.actor, connections=[connection]
        )
        return Response(ConnectionSerializer(connection).data)

    @extend_schema(
        operation_id="integrations_connection_unregister",
        summary="Unregister a connection from an integration",
        request=None,
        responses={204: None},
        tags=TAG,
    )
    @register.mapping.delete
    def unregister(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_parent()
        connection = self._account_connection()
        services.integration_connection_unregister(
            integration=integration, actor=self.actor, connection=connection
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="Users with access to an integration", tags=TAG),
    create=extend_schema(
        summary="Share an integration with a user of the account",
        request=ShareCreateSerializer,
        responses={
            201: ShareSerializer,
            409: error_response("CONFLICT: the user already has access to it."),
        },
        tags=TAG,
    ),
    destroy=extend_schema(summary="Remove a user's access to an integration", tags=TAG),
)
class IntegrationShareViewSet(
    IntegrationNestedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[IntegrationShare],
):
    """``/integrations/{integrationId}/ashares``: the users an integration is shared with."""

    serializer_class = ShareSerializer
    lookup_url_kwarg = "shareId"
    default_sort = ["created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[IntegrationShare]:
        return IntegrationShare.objects.filter(integration=self.get_parent()).select_related("user")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        integration = self.get_parent()
        body = ShareCreateSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        share = services.integration_share_create(
            integration=integration, actor=self.actor, **body.validated_data
        )
        return Response(ShareSerializer(share).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: IntegrationShare) -> None:
        services.integration_share_delete(share=instance, actor=self.actor)


@extend_schema_view(
    list=extend_schema(summary="Revisions of an integration", tags=TAG),
    retrieve=extend_schema(summary="One revision with its snapshot", tags=TAG),
)
class IntegrationRevisionViewSet(
    IntegrationNestedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Revision],
):
    lookup_url_kwarg = "revisionId"
    default_sort = ["-number"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Revision]:
        return Revision.objects.filter(integration=self.get_parent())

    def get_serializer_class(self) -> type[RevisionSerializer]:
        return RevisionSerializer if self.action == "list" else RevisionDetailSerializer

    @extend_schema(
        summary="Create a revision (snapshot) of an integration",
        description=(
            "With `ignoreIfNoChanges=true` the snapshot is skipped (204) when the definition "
            "equals the latest revision; with false (the default) a snapshot is always taken."
        ),
        parameters=[OpenApiParameter("ignoreIfNoChanges", OpenApiTypes.BOOL, default=False)],
        request=RevisionCreateSerializer,
        responses={201: RevisionDetailSerializer, 204: None},
        tags=TAG,
    )
    @action(detail=False, methods=["post"], url_path="create")
    def create_revision(self, request: Request, **kwargs: Any) -> Response:
        integration = self.get_parent()
        raw_flag = request.query_params.get("ignoreIfNoChanges", "false").lower()
        if raw_flag not in ("true", "false", "1", "0", ""):
            raise ValidationError({"ignoreIfNoChanges": ["Must be true or false."]})
        body = RevisionCreateSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        revision = revision_create(
            integration=integration,
            actor=self.actor,
            description=body.validated_data.get("description", ""),
            ignore_if_no_changes=raw_flag in ("true", "1", ""),
        )
        if revision is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(RevisionDetailSerializer(revision).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Audit log of an integration (newest first)", tags=TAG)
)
class IntegrationAuditViewSet(
    IntegrationNestedMixin, mixins.ListModelMixin, viewsets.GenericViewSet[AuditEntry]
):
    serializer_class = AuditEntrySerializer
    default_sort = ["-created_at", "-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[AuditEntry]:
        # The trail outlives its integration; the URL reaches it only while the integration lives.
        return AuditEntry.objects.filter(account=account, integration_id=self.get_parent().pk)


class TemplateDownloadViewSet(viewsets.ViewSet):
    """The target of a signed template link: no API key, the signature is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    lookup_field = "token"
    lookup_value_regex = "[^/]+"

    @extend_schema(
        summary="Download a template through a signed link",
        auth=[],
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        tags=TAG,
    )
    def retrieve(self, request: Request, token: str) -> HttpResponse:
        try:
            claims = signing.loads(token, salt=TEMPLATE_SALT, max_age=TEMPLATE_LINK_LIFETIME)
        except signing.BadSignature:
            raise ValidationError({"token": ["This link is invalid or has expired."]}) from None
        integration = get_object_or_404(Integration, pk=claims["i"], account_id=claims["a"])
        return _template_zip(integration)


@extend_schema_view(
    list=extend_schema(summary="List file imports", tags=["imports"]),
    create=extend_schema(summary="Create a file import", tags=["imports"]),
    retrieve=extend_schema(summary="Get a file import", tags=["imports"]),
    update=extend_schema(
        summary="Replace a file import",
        description=IMPORT_PUT_DESCRIPTION.format(integration="null"),
        tags=["imports"],
    ),
    partial_update=extend_schema(summary="Update a file import", tags=["imports"]),
    destroy=extend_schema(summary="Delete a file import", tags=["imports"]),
)
class FileImportViewSet(TenantViewSet):
    serializer_class = FileImportSerializer
    filterset_class = FileImportFilter
    lookup_url_kwarg = "importId"
    sort_fields = {"created_at": "created_at", "last_modified": "last_modified", "name": "name"}
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[FileImport]:
        return FileImport.objects.filter(account=account)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = import_services.file_import_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = import_services.file_import_update(
            file_import=serializer.instance, actor=self.actor, **serializer.validated_data
        )

    def perform_destroy(self, instance: FileImport) -> None:
        import_services.file_import_delete(file_import=instance, actor=self.actor)

    @extend_schema(
        summary="Clone a file import",
        request=CloneSerializer,
        responses={201: FileImportSerializer},
        tags=["imports"],
    )
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, **kwargs: Any) -> Response:
        body = CloneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        clone = import_services.file_import_clone(
            file_import=self.get_object(), actor=self.actor, name=body.validated_data.get("name")
        )
        return Response(self.get_serializer(clone).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List flows", tags=["flows"]),
    create=extend_schema(summary="Create a flow", tags=["flows"]),
    retrieve=extend_schema(summary="Get a flow", tags=["flows"]),
    update=extend_schema(summary="Replace a flow", tags=["flows"]),
    partial_update=extend_schema(summary="Update a flow", tags=["flows"]),
    destroy=extend_schema(summary="Delete a flow", tags=["flows"]),
)
class FlowViewSet(TenantViewSet):
    serializer_class = FlowSerializer
    filterset_class = FlowFilter
    lookup_url_kwarg = "flowId"
    sort_fields = {"created_at": "created_at", "updated_at": "updated_at", "name": "name"}
    default_sort = ["created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Flow]:
        return Flow.objects.filter(account=account, integration__deleted_at__isnull=True)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        serializer.instance = import_services.flow_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = import_services.flow_update(
            flow=serializer.instance, actor=self.actor, **serializer.validated_data
        )

    def perform_destroy(self, instance: Flow) -> None:
        import_services.flow_delete(flow=instance, actor=self.actor)
