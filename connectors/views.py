from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Account
from accounts.services import Actor
from accounts.tenancy import request_account, request_actor
from accounts.viewsets import TenantViewSet
from config.api.schema import error_response
from connectors import selectors, services
from connectors.discovery import connection_entities
from connectors.filters import ConnectionFilter
from connectors.models import Connection
from connectors.serializers import (
    ConnectionInputSerializer,
    ConnectionSerializer,
    ConnectionTestResultSerializer,
    ConnectorQuerySerializer,
    ConnectorSerializer,
    CustomConnectorInputSerializer,
    DiscoveredEntitySerializer,
)

CONNECTOR_ID = OpenApiParameter("connectorId", OpenApiTypes.STR, OpenApiParameter.PATH)
CUSTOM_CONNECTOR_NOTES = (
    "An account registers its own connector from a manifest, so that an API is added without a "
    'release: `{"manifest": {...}}`, or the manifest as YAML or JSON text '
    '(`{"manifest": "id: acme\\nname: Acme\\n..."}`). It is listed in this account\'s '
    "catalog only, with `custom` true and status BETA, and its connections are created, tested, "
    "discovered and synced like any other. Every request it makes passes the installation's "
    "egress policy. An invalid manifest is a 400 VALIDATION_ERROR naming each field "
    "(`manifest.streams.0.path`)."
)
SHIPPED_READ_ONLY = error_response(
    "METHOD_NOT_ALLOWED: the connector ships with Railyard; only an account's own connectors "
    "change."
)


class ConnectorViewSet(viewsets.ViewSet):
    """The connector catalog: the connectors Railyard ships, the same for every account, and
    the account's own, registered from manifests."""

    lookup_field = "connectorId"
    lookup_value_regex = "[^/]+"

    @property
    def account(self) -> Account:
        account = request_account(self.request)
        assert account is not None, "IsAccountMember guarantees an account"
        return account

    @property
    def actor(self) -> Actor:
        return request_actor(self.request)

    @extend_schema(
        summary="List available connectors",
        operation_id="connectors_list",
        description="The connectors Railyard ships and this account's own (`custom` true).",
        parameters=[ConnectorQuerySerializer],
        responses=ConnectorSerializer(many=True),
        tags=["connectors"],
    )
    def list(self, request: Request) -> Response:
        query = ConnectorQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        connectors = selectors.connector_list(
            account=self.account, category=query.validated_data.get("category")
        )
        return Response(ConnectorSerializer(connectors, many=True).data)

    @extend_schema(
        summary="Get a connector",
        operation_id="connectors_retrieve",
        description="Another account's own connector is a 404.",
        parameters=[CONNECTOR_ID],
        responses=ConnectorSerializer,
        tags=["connectors"],
    )
    def retrieve(self, request: Request, connectorId: str) -> Response:
        connector = selectors.connector_get(account=self.account, connector_id=connectorId)
        return Response(ConnectorSerializer(connector).data)

    @extend_schema(
        summary="Register a connector from a manifest",
        operation_id="connectors_create",
        description=CUSTOM_CONNECTOR_NOTES,
        request=CustomConnectorInputSerializer,
        responses={201: ConnectorSerializer},
        tags=["connectors"],
    )
    def create(self, request: Request) -> Response:
        payload = CustomConnectorInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        custom = services.custom_connector_create(
            account=self.account, actor=self.actor, **payload.validated_data
        )
        connector = selectors.connector_get(account=self.account, connector_id=custom.connector_id)
        return Response(ConnectorSerializer(connector).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace an account's own connector",
        operation_id="connectors_update",
        description=(
            "Replaces the manifest of one of this account's own connectors; its `id` cannot "
            "change. Its connections use the new manifest from their next test, discovery or "
            "sync, and discover their entities again. 405 METHOD_NOT_ALLOWED for a connector "
            "Railyard ships."
        ),
        parameters=[CONNECTOR_ID],
        request=CustomConnectorInputSerializer,
        responses={200: ConnectorSerializer, 405: SHIPPED_READ_ONLY},
        tags=["connectors"],
    )
    def update(self, request: Request, connectorId: str) -> Response:
        custom = selectors.custom_connector_get(account=self.account, connector_id=connectorId)
        payload = CustomConnectorInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.custom_connector_update(
            custom_connector=custom, actor=self.actor, **payload.validated_data
        )
        connector = selectors.connector_get(account=self.account, connector_id=connectorId)
        return Response(ConnectorSerializer(connector).data)

    @extend_schema(
        summary="Replace an account's own connector",
        operation_id="connectors_partial_update",
        description=(
            "The same as PUT: the manifest is the connector's one field and is replaced whole."
        ),
        parameters=[CONNECTOR_ID],
        request=CustomConnectorInputSerializer,
        responses={200: ConnectorSerializer, 405: SHIPPED_READ_ONLY},
        tags=["connectors"],
    )
    def partial_update(self, request: Request, connectorId: str) -> Response:
        return self.update(request, connectorId)

    @extend_schema(
        summary="Delete an account's own connector",
        operation_id="connectors_destroy",
        description=(
            "409 CONFLICT while connections of it are left (`details.connections`); 405 "
            "METHOD_NOT_ALLOWED for a connector Railyard ships."
        ),
        parameters=[CONNECTOR_ID],
        responses={
            204: None,
            405: SHIPPED_READ_ONLY,
            409: error_response("CONFLICT: connections of the connector are left."),
        },
        tags=["connectors"],
    )
    def destroy(self, request: Request, connectorId: str) -> Response:
        custom = selectors.custom_connector_get(account=self.account, connector_id=connectorId)
        services.custom_connector_delete(custom_connector=custom, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and "connectorId" in (
            self.kwargs or {}
        ):
            # A shipped connector only reads; the route's other methods are for an account's own.
            response["Allow"] = "GET, HEAD, OPTIONS"
        return response


CONNECTION_WRITE_NOTES = (
    "`credentials` is write-only: it is stored encrypted and never returned; `credentialKeys` "
    "says which keys are set. A credential value may be an environment reference such as "
    "`${STRIPE_API_KEY}`, stored as given and resolved only when the connection is used."
)


@extend_schema_view(
    list=extend_schema(
        summary="List connections", operation_id="connections_list", tags=["connections"]
    ),
    create=extend_schema(
        summary="Create a connection",
        operation_id="connections_create",
        description=CONNECTION_WRITE_NOTES,
        request=ConnectionInputSerializer,
        responses={201: ConnectionSerializer},
        tags=["connections"],
    ),
    retrieve=extend_schema(
        summary="Get a connection", operation_id="connections_retrieve", tags=["connections"]
    ),
    partial_update=extend_schema(
        summary="Update a connection",
        operation_id="connections_partial_update",
        description=(
            "`config`, when sent, replaces the whole config object. `credentials` is merged key "
            "by key into the stored credentials; a key sent as null is removed. `connectorId` "
            "cannot change. " + CONNECTION_WRITE_NOTES
        ),
        request=ConnectionInputSerializer,
        responses={200: ConnectionSerializer},
        tags=["connections"],
    ),
    destroy=extend_schema(
        summary="Delete a connection",
        operation_id="connections_destroy",
        description="409 CONFLICT while an integration or a file import still uses it.",
        responses={
            204: None,
            409: error_response("CONFLICT: an integration or a file import still uses it."),
        },
        tags=["connections"],
    ),
)
class ConnectionViewSet(TenantViewSet):
    serializer_class = ConnectionSerializer
    filterset_class = ConnectionFilter
    lookup_url_kwarg = "connectionId"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    sort_fields = {"created_at": "created_at", "updated_at": "updated_at", "name": "name"}
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Connection]:
        return selectors.connection_list(account=account)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = ConnectionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = services.connection_create(
            account=self.account, actor=self.actor, **payload.validated_data
        )
        return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        connection = self.get_object()
        payload = ConnectionInputSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        connection = services.connection_update(
            connection=connection, actor=self.actor, **payload.validated_data
        )
        return Response(ConnectionSerializer(connection).data)

    def perform_destroy(self, instance: Connection) -> None:
        services.connection_delete(connection=instance, actor=self.actor)

    @extend_schema(
        summary="Test a connection",
        operation_id="connections_test",
        description=(
            "Reaches the connected system with the stored credentials. The answer is 200 either "
            "way: `success` false carries a readable `error`. The connection's status becomes "
            "ACTIVE or ERROR and the result is kept as its last test; the first success records "
            "`integration.connected`. 400 for feed connectors, which have nothing to test."
        ),
        request=None,
        responses={200: ConnectionTestResultSerializer},
        tags=["connections"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def test(self, request: Request, connectionId: str) -> Response:
        result = services.connection_test(connection=self.get_object(), actor=self.actor)
        return Response(ConnectionTestResultSerializer(services.connection_test_data(result)).data)

    @extend_schema(
        summary="Discover a connection's entities",
        operation_id="connections_entities",
        description=(
            "The entities the connection's source offers, each with its fields (name, JSON "
            "type, nullable), primary key, cursor field and sync modes. Kept on the connection "
            "after the first discovery; `?refresh=true` asks the source again. Syncs and "
            "integrations that name an entity are checked against this list. 502 "
            "UPSTREAM_ERROR when the source cannot be asked."
        ),
        parameters=[
            OpenApiParameter(
                "refresh",
                OpenApiTypes.BOOL,
                description="Ask the source again instead of answering the kept list.",
            )
        ],
        responses={
            200: DiscoveredEntitySerializer(many=True),
            502: error_response("UPSTREAM_ERROR: the source could not be asked."),
        },
        tags=["connections"],
    )
    @action(detail=True, methods=["get"], filterset_class=None, sort_fields={})
    def entities(self, request: Request, connectionId: str) -> Response:
        refresh = request.query_params.get("refresh", "").lower() in ("1", "true", "yes")
        entities = connection_entities(connection=self.get_object(), refresh=refresh)
        page = self.paginate_queryset(entities)
        return self.get_paginated_response(DiscoveredEntitySerializer(page, many=True).data)
