from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from accounts.choices import EventType
from accounts.models import Account
from accounts.viewsets import TenantScopedMixin, TenantViewSet
from config.api.routers import NestedViewSetMixin
from config.api.schema import error_response
from webhooks import selectors, services
from webhooks.choices import DeliveryStatus
from webhooks.filters import WebhookDeliveryFilter
from webhooks.models import Webhook, WebhookDelivery
from webhooks.serializers import (
    EventTypeSerializer,
    ReplayQuerySerializer,
    ReplayResultSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookTestResultSerializer,
    WebhookWithSecretSerializer,
    deliverable_event_types,
)

SIGNING_NOTES = (
    "Deliveries are signed as Standard Webhooks specifies: `webhook-id` (the event's id, the same "
    "on every retry and redelivery), `webhook-timestamp`, and `webhook-signature`: "
    '`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per signing secret.'
)


@extend_schema_view(
    list=extend_schema(summary="List webhook endpoints", tags=["webhooks"]),
    create=extend_schema(
        summary="Create a webhook endpoint",
        description="The answer carries the signing `secret`, shown this once. " + SIGNING_NOTES,
        responses={201: WebhookWithSecretSerializer},
        tags=["webhooks"],
    ),
    retrieve=extend_schema(summary="Get a webhook endpoint", tags=["webhooks"]),
    partial_update=extend_schema(
        summary="Update a webhook endpoint",
        description="`isActive: true` enables a disabled endpoint again; its pending deliveries "
        "then go out.",
        tags=["webhooks"],
    ),
    destroy=extend_schema(
        summary="Delete a webhook endpoint and its delivery log", tags=["webhooks"]
    ),
)
class WebhookViewSet(TenantViewSet):
    """The account's webhook endpoints."""

    serializer_class = WebhookSerializer
    filterset_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_url_kwarg = "webhookId"
    sort_fields = {"created_at": "created_at", "updated_at": "updated_at", "url": "url"}
    default_sort = ["-created_at"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[Webhook]:
        return selectors.webhook_list(account=account)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        webhook, secret = services.webhook_create(
            account=self.account, actor=self.actor, **serializer.validated_data
        )
        webhook.secret = secret  # type: ignore[attr-defined]
        return Response(WebhookWithSecretSerializer(webhook).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        webhook = serializer.instance
        assert isinstance(webhook, Webhook)
        serializer.instance = services.webhook_update(
            webhook=webhook, actor=self.actor, **serializer.validated_data
        )

    def perform_destroy(self, instance: Webhook) -> None:
        services.webhook_delete(webhook=instance, actor=self.actor)

    @extend_schema(
        summary="Rotate the signing secret",
        description="A new secret, shown this once. The previous one keeps signing beside it "
        "for 24 hours (two signatures in `webhook-signature`), then it is dropped.",
        request=None,
        responses={200: WebhookWithSecretSerializer},
        tags=["webhooks"],
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="rotate-secret",
        filterset_class=None,
        sort_fields={},
    )
    def rotate_secret(self, request: Request, webhookId: str) -> Response:
        webhook, secret = services.webhook_secret_rotate(
            webhook=self.get_object(), actor=self.actor
        )
        webhook.secret = secret  # type: ignore[attr-defined]
        return Response(WebhookWithSecretSerializer(webhook).data)

    @extend_schema(
        summary="Send a test event",
        description="Sends a `webhook.test` event to this endpoint at once (whether it is "
        "active or not) and answers with the attempt: 200 either way, `delivered` false with "
        "the status or the error. A test is not retried. " + SIGNING_NOTES,
        request=None,
        responses={200: WebhookTestResultSerializer},
        tags=["webhooks"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def test(self, request: Request, webhookId: str) -> Response:
        attempt = services.webhook_test(webhook=self.get_object(), actor=self.actor)
        delivery = attempt.delivery
        body = {
            "delivery_id": delivery.pk,
            "event_id": delivery.message_id,
            "delivered": delivery.status == DeliveryStatus.DELIVERED,
            "attempted_at": attempt.attempted_at,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "response_body": attempt.response_excerpt,
            "error": attempt.error,
        }
        return Response(WebhookTestResultSerializer(body).data)

    @extend_schema(
        summary="Replay events since a time",
        description="Queues every event since `since` that the endpoint subscribes to again "
        "(same `webhook-id` as the first time, in the order they happened), for an endpoint "
        "that was down or disabled. Events whose delivery is still pending are left to it. "
        "409 while the endpoint is disabled.",
        parameters=[ReplayQuerySerializer],
        request=None,
        responses={
            202: ReplayResultSerializer,
            409: error_response("CONFLICT: the endpoint is disabled."),
        },
        tags=["webhooks"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def replay(self, request: Request, webhookId: str) -> Response:
        webhook = self.get_object()
        query = ReplayQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since = query.validated_data["since"]
        queued = services.webhook_replay(webhook=webhook, actor=self.actor, since=since)
        return Response(
            ReplayResultSerializer({"since": since, "queued": queued}).data,
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        summary="List the event types",
        description="Every event an endpoint can subscribe to.",
        responses=EventTypeSerializer(many=True),
        tags=["webhooks"],
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="event-types",
        filterset_class=None,
        sort_fields={},
        pagination_class=None,
    )
    def event_types(self, request: Request) -> Response:
        labels = dict(EventType.choices)
        types = [{"type": kind, "description": labels[kind]} for kind in deliverable_event_types()]
        return Response(EventTypeSerializer(types, many=True).data)


@extend_schema_view(
    list=extend_schema(
        summary="List an endpoint's deliveries",
        description="Newest first, each with its attempts (time, HTTP status, latency, the "
        "first 2 kB of the answer, the error).",
        tags=["webhooks"],
    ),
    retrieve=extend_schema(
        summary="Get a delivery",
        parameters=[OpenApiParameter("deliveryId", OpenApiTypes.INT, OpenApiParameter.PATH)],
        tags=["webhooks"],
    ),
)
class WebhookDeliveryViewSet(
    NestedViewSetMixin,
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[WebhookDelivery],
):
    """``/webhooks/{webhookId}/deliveries``: the endpoint's delivery log."""

    parent_viewset = WebhookViewSet
    serializer_class = WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter
    lookup_url_kwarg = "deliveryId"
    lookup_value_regex = "[0-9]{1,18}"
    sort_fields = {"created_at": "id", "id": "id"}
    default_sort = ["-id"]

    def get_tenant_queryset(self, account: Account) -> QuerySet[WebhookDelivery]:
        return selectors.webhook_deliveries(webhook=self.get_parent())

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "list":
            return WebhookDeliverySerializer
        return WebhookDeliveryDetailSerializer

    @extend_schema(
        summary="Redeliver",
        description="Sends the delivery's event again, with the same `webhook-id` (receivers "
        "de-duplicate on it), on a fresh retry schedule. 409 while the endpoint is disabled or "
        "the delivery is being sent.",
        parameters=[OpenApiParameter("deliveryId", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None,
        responses={
            202: WebhookDeliveryDetailSerializer,
            409: error_response("CONFLICT: the endpoint is disabled or the delivery in flight."),
        },
        tags=["webhooks"],
    )
    @action(detail=True, methods=["post"], filterset_class=None, sort_fields={})
    def redeliver(self, request: Request, webhookId: str, deliveryId: str) -> Response:
        delivery = services.delivery_redeliver(delivery=self.get_object(), actor=self.actor)
        return Response(
            WebhookDeliveryDetailSerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )
