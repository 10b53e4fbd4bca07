"""Operator screens: endpoints (enable, disable, delete; secrets never shown) and the delivery
log, read-only, each delivery with its event as a definition list, its attempts, and a redeliver
action and button."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.safestring import SafeString

from accounts.services import Actor
from config.api.errors import Conflict, NotFound
from config.console import (
    ObjectAction,
    OperatorAdmin,
    RecordAdmin,
    changelist_link,
    empty,
    json_field,
    moment,
    value_html,
)
from webhooks import services
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(OperatorAdmin):
    """Operators see endpoints, why one was disabled, and can enable or disable one. Secrets are
    never shown. Endpoints are created through the API (which shows the secret once); changes
    here go through the services, so they are audited."""

    list_display = ["url", "account", "is_active", "ordered", "failing_since", "created_at"]
    list_filter = ["is_active", "ordered"]
    search_fields = ["url", "description", "account__name"]
    list_select_related = ["account"]
    fields = [
        "account",
        "url",
        "description",
        "events_shown",
        "integration_ids_shown",
        "deliveries",
        "is_active",
        "ordered",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "account",
        "url",
        "events_shown",
        "integration_ids_shown",
        "deliveries",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]

    events_shown = json_field("events", "event types")
    integration_ids_shown = json_field("integration_ids", "integrations (none: all)")

    @admin.display(description="delivery log")
    def deliveries(self, webhook: Webhook) -> SafeString:
        return changelist_link(
            "webhooks.webhookdelivery", "deliveries to this endpoint", webhook__id__exact=webhook.pk
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Webhook, form: ModelForm[Webhook], change: bool
    ) -> None:
        stored = Webhook.objects.get(pk=obj.pk)
        services.webhook_update(
            webhook=stored,
            actor=Actor.for_user(request.user),
            description=obj.description,
            is_active=obj.is_active,
            ordered=obj.ordered,
        )

    def delete_model(self, request: HttpRequest, obj: Webhook) -> None:
        services.webhook_delete(webhook=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        actor = Actor.for_user(request.user)
        for webhook in queryset:
            services.webhook_delete(webhook=webhook, actor=actor)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "trigger", "status_code", "latency_ms", "error", "response_excerpt"]
    readonly_fields = [
        "attempted_at",
        "trigger",
        "status_code",
        "latency_ms",
        "error",
        "response_excerpt",
    ]
    extra = 0
    can_delete = False
    ordering = ["attempted_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RecordAdmin):
    """The delivery log of every endpoint, each delivery with its event and attempts; read-only,
    with a redeliver action (same ``webhook-id``, fresh retry schedule)."""

    list_display = [
        "id",
        "webhook",
        "event_type",
        "status",
        "trigger",
        "attempt_count",
        "last_status_code",
        "next_attempt",
        "created",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["webhook__url", "message__event_type", "message__id"]
    list_select_related = ["webhook", "message"]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "webhook",
                    "event_type",
                    "event_id",
                    "integration_id",
                    "ordered",
                    "trigger",
                    "status",
                ]
            },
        ),
        (
            "Attempts",
            {
                "fields": [
                    "step",
                    "attempt_count",
                    "next_attempt_at",
                    "claimed_until",
                    "first_attempt_at",
                    "last_attempt_at",
                    "delivered_at",
                    "last_status_code",
                    "last_error",
                    "created_at",
                ]
            },
        ),
        ("Event", {"fields": ["body"]}),
    ]
    readonly_fields = ["event_type", "event_id", "body"]

    @admin.display(description="event type", ordering="message__event_type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.message.event_type

    @admin.display(description="event id (webhook-id)")
    def event_id(self, delivery: WebhookDelivery) -> str:
        return str(delivery.message_id)

    @admin.display(description="body, as sent")
    def body(self, delivery: WebhookDelivery) -> SafeString:
        try:
            return value_html(json.loads(delivery.message.body))
        except ValueError:
            return empty(delivery.message.body)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, delivery: WebhookDelivery) -> SafeString:
        return moment(delivery.next_attempt_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, delivery: WebhookDelivery) -> SafeString:
        return moment(delivery.created_at)

    def _redeliver(self, request: HttpRequest, deliveries: list[WebhookDelivery]) -> None:
        actor = Actor.for_user(request.user)
        done, refused = 0, []
        for delivery in deliveries:
            try:
                services.delivery_redeliver(delivery=delivery, actor=actor)
                done += 1
            except (Conflict, NotFound) as refusal:
                refused.append(f"{delivery.pk}: {refusal.message}")
        if done:
            self.message_user(request, f"{done} deliveries queued again.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.WARNING)

    @admin.action(description="Redeliver the selected deliveries", permissions=["operate"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        self._redeliver(request, list(queryset.select_related("webhook")))

    def object_actions(self, request: HttpRequest, obj: WebhookDelivery) -> list[ObjectAction]:
        return [
            ObjectAction(
                "redeliver",
                "Redeliver",
                lambda request, delivery: self._redeliver(request, [delivery]),
            )
        ]
