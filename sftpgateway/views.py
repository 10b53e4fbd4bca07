"""Thin HTTP glue for a feed integration's SFTP login: info, rotation, public keys, activity.

Every route is a resource nested under ``/api/v1/integrations/{integrationId}`` (the login itself
at ``sftp``, its keys and activity below it); the integration must be a live feed integration of
the caller's account, anything else is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account
from accounts.viewsets import TenantScopedMixin
from config.api.errors import NotFound
from config.api.routers import NestedViewSetMixin
from integrations.models import Integration
from integrations.views import IntegrationViewSet
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


class IntegrationSftpMixin(NestedViewSetMixin, TenantScopedMixin):
    """Nested under a feed integration of the caller's account (any other is a 404), whose
    SFTP credential it reaches."""

    parent_viewset = IntegrationViewSet

    def get_parent_queryset(self) -> QuerySet[Integration]:
        return selectors.feed_integrations(account=self.account)

    def get_credential(self) -> SftpCredential:
        credential = selectors.credential_for_integration(integration=self.get_parent())
        if credential is None:
            raise NotFound(
                "This integration has no SFTP credentials; POST .../sftp/rotate issues them."
            )
        return credential

    def get_tenant_queryset(self, account: Account) -> QuerySet[Any]:
        return SftpCredential.objects.filter(account=account)


@extend_schema_view(
    retrieve=extend_schema(
        summary="Get the SFTP login of a feed integration",
        description="Host, port, username and status; never the password.",
        operation_id="integration_sftp_retrieve",
        tags=TAG,
    )
)
class IntegrationSftpViewSet(
    IntegrationSftpMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[SftpCredential]
):
    """``/integrations/{integrationId}/sftp``: the one SFTP login of a feed integration."""

    serializer_class = SftpCredentialSerializer

    def get_object(self) -> SftpCredential:
        return self.get_credential()

    @extend_schema(
        summary="Rotate the SFTP password",
        description="Issues a new password, shown in this answer only. The old one stops working "
        "at once and sessions that logged in with it are disconnected.",
        operation_id="integration_sftp_rotate",
        request=None,
        responses={200: SftpSecretSerializer},
        tags=TAG,
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, **kwargs: Any) -> Response:
        issued = services.credential_rotate(integration=self.get_parent(), actor=self.actor)
        return Response(issued.as_response(), status=status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(
        summary="List the SFTP public keys", operation_id="integration_sftp_keys_list", tags=TAG
    ),
    create=extend_schema(
        summary="Add an SFTP public key",
        description="Ed25519, ECDSA or RSA (2048 bits or more); the key then logs in as the "
        "integration's username.",
        operation_id="integration_sftp_keys_create",
        request=SftpKeyCreateSerializer,
        responses={201: SftpKeySerializer},
        tags=TAG,
    ),
    retrieve=extend_schema(
        summary="Get an SFTP public key", operation_id="integration_sftp_key_retrieve", tags=TAG
    ),
    destroy=extend_schema(
        summary="Remove an SFTP public key",
        description="Sessions that logged in with it are disconnected.",
        operation_id="integration_sftp_key_destroy",
        tags=TAG,
    ),
)
class IntegrationSftpKeyViewSet(
    IntegrationSftpMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[SftpKey],
):
    """``/integrations/{integrationId}/sftp/keys[/{keyId}]``: public keys of the SFTP login."""

    serializer_class = SftpKeySerializer
    filterset_class = None
    lookup_url_kwarg = "keyId"
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

    def perform_destroy(self, instance: SftpKey) -> None:
        services.key_delete(key=instance, actor=self.actor)


@extend_schema_view(
    list=extend_schema(
        summary="SFTP activity of a feed integration",
        description="Logins, failed logins, bans of the partner's address (and the connections "
        "refused during one), uploads, partial uploads and refused requests, newest first. "
        "Filter with event=login&event=upload.",
        operation_id="integration_sftp_activity_list",
        tags=TAG,
    )
)
class IntegrationSftpActivityViewSet(
    IntegrationSftpMixin, mixins.ListModelMixin, viewsets.GenericViewSet[SftpActivity]
):
    """``/integrations/{integrationId}/sftp/activity``: what the gateway saw of this login."""

    serializer_class = SftpActivitySerializer
    filterset_class = SftpActivityFilter
    sort_fields = {"created_at": "created_at"}
    default_sort = ["-created_at", "-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[SftpActivity]:
        return selectors.integration_activity(integration=self.get_parent())
