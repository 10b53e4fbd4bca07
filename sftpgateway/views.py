"""Thin HTTP glue for a feed integration's SFTP login: info, rotation, public keys, activity.

Every route sits under ``/api/v1/integrations/<integrationId>/sftp``; the integration must be a
live feed integration of the caller's account, anything else is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin
from config.api.errors import NotFound
from integrations.models import Integration
from sftpgateway import selectors, services
from sftpgateway.filters import SftpActivityFilter
from sftpgateway.models import SftpActivity, SftpCredential, SftpKey
from sftpgateway.serializers import (
    SftpActivitySerializer,
    SftpCredentialSerializer,
    SftpKeyCreateSerializer,
    SftpKeySerializer,
    SftpSecretSerializer,
)

TAG = ["sftp"]
INTEGRATION_ID = OpenApiParameter("integrationId", OpenApiTypes.UUID, OpenApiParameter.PATH)
KEY_ID = OpenApiParameter("keyId", OpenApiTypes.UUID, OpenApiParameter.PATH)


class IntegrationSftpMixin(TenantScopedMixin):
    """Finds the feed integration of the URL within the caller's account, and its credential."""

    def get_integration(self) -> Integration:
        return generics.get_object_or_404(
            selectors.feed_integrations(account=self.account), pk=self.kwargs["integrationId"]
        )

    def get_credential(self) -> SftpCredential:
        credential = selectors.credential_for_integration(integration=self.get_integration())
        if credential is None:
            raise NotFound(
                "This integration has no SFTP credentials; POST .../sftp/rotate issues them."
            )
        return credential

    def get_tenant_queryset(self, account: Account) -> QuerySet[Any]:
        return SftpCredential.objects.filter(account=account)


@extend_schema_view(
    get=extend_schema(
        summary="Get the SFTP login of a feed integration",
        description="Host, port, username and status; never the password.",
        operation_id="integration_sftp_retrieve",
        parameters=[INTEGRATION_ID],
        tags=TAG,
    )
)
class SftpCredentialView(IntegrationSftpMixin, generics.GenericAPIView[SftpCredential]):
    serializer_class = SftpCredentialSerializer

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_credential()).data)


@extend_schema_view(
    post=extend_schema(
        summary="Rotate the SFTP password",
        description="Issues a new password, shown in this answer only. The old one stops working "
        "at once and sessions that logged in with it are disconnected.",
        operation_id="integration_sftp_rotate",
        parameters=[INTEGRATION_ID],
        request=None,
        responses={200: SftpSecretSerializer},
        tags=TAG,
    )
)
class SftpRotateView(IntegrationSftpMixin, generics.GenericAPIView[SftpCredential]):
    serializer_class = SftpSecretSerializer

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        issued = services.credential_rotate(integration=self.get_integration(), actor=self.actor)
        return Response(issued.as_response(), status=status.HTTP_200_OK)


@extend_schema_view(
    get=extend_schema(
        summary="List the SFTP public keys",
        operation_id="integration_sftp_keys_list",
        parameters=[INTEGRATION_ID],
        tags=TAG,
    ),
    post=extend_schema(
        summary="Add an SFTP public key",
        description="Ed25519, ECDSA or RSA (2048 bits or more); the key then logs in as the "
        "integration's username.",
        operation_id="integration_sftp_keys_create",
        parameters=[INTEGRATION_ID],
        request=SftpKeyCreateSerializer,
        responses={201: SftpKeySerializer},
        tags=TAG,
    ),
)
class SftpKeyListView(IntegrationSftpMixin, generics.ListCreateAPIView[SftpKey]):
    serializer_class = SftpKeySerializer
    filterset_class = None
    sort_fields = {"created_at": "created_at", "name": "name"}
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SftpKey]:
        if getattr(self, "swagger_fake_view", False):
            return SftpKey.objects.none()
        return selectors.credential_keys(credential=self.get_credential())

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        credential = self.get_credential()
        body = SftpKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = services.key_add(credential=credential, actor=self.actor, **body.validated_data)
        return Response(self.get_serializer(key).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(
        summary="Get an SFTP public key",
        operation_id="integration_sftp_key_retrieve",
        parameters=[INTEGRATION_ID, KEY_ID],
        tags=TAG,
    ),
    delete=extend_schema(
        summary="Remove an SFTP public key",
        description="Sessions that logged in with it are disconnected.",
        operation_id="integration_sftp_key_destroy",
        parameters=[INTEGRATION_ID, KEY_ID],
        tags=TAG,
    ),
)
class SftpKeyDetailView(IntegrationSftpMixin, generics.RetrieveDestroyAPIView[SftpKey]):
    serializer_class = SftpKeySerializer
    lookup_url_kwarg = "keyId"

    def get_tenant_queryset(self, account: Account) -> QuerySet[SftpKey]:
        if getattr(self, "swagger_fake_view", False):
            return SftpKey.objects.none()
        return selectors.credential_keys(credential=self.get_credential())

    def perform_destroy(self, instance: SftpKey) -> None:
        services.key_delete(key=instance, actor=self.actor)


@extend_schema_view(
    get=extend_schema(
        summary="SFTP activity of a feed integration",
        description="Logins, failed logins, bans of the partner's address (and the connections "
        "refused during one), uploads, partial uploads and refused requests, newest first. "
        "Filter with event=login&event=upload.",
        operation_id="integration_sftp_activity_list",
        parameters=[INTEGRATION_ID],
        tags=TAG,
    )
)
class SftpActivityListView(IntegrationSftpMixin, generics.ListAPIView[SftpActivity]):
    serializer_class = SftpActivitySerializer
    filterset_class = SftpActivityFilter
    sort_fields = {"created_at": "created_at"}
    default_sort = ["-created_at", "-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SftpActivity]:
        if getattr(self, "swagger_fake_view", False):
            return SftpActivity.objects.none()
        return selectors.integration_activity(integration=self.get_integration())
