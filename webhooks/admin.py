from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from accounts.services import Actor
from config.api.errors import Conflict, NotFound
from webhooks import services
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
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
        "events",
        "integration_ids",
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
        "events",
        "integration_ids",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    ]

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
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log of every endpoint, each delivery with its attempts; read-only, with a
    redeliver action (same ``webhook-id``, fresh retry schedule)."""

    list_display = [
        "id",
        "webhook",
        "event_type",
        "status",
        "trigger",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "trigger"]
    search_fields = ["webhook__url", "message__event_type", "message__id"]
    list_select_related = ["webhook", "message"]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    readonly_fields = [
        "webhook",
        "message",
        "integration_id",
        "ordered",
        "trigger",
        "status",
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
    fields = list(readonly_fields)

    @admin.display(description="event type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.message.event_type

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        actor = Actor.for_user(request.user)
        done, refused = 0, []
        for delivery in queryset.select_related("webhook"):
            try:
                services.delivery_redeliver(delivery=delivery, actor=actor)
                done += 1
            except (Conflict, NotFound) as refusal:
                refused.append(f"{delivery.pk}: {refusal.message}")
        if done:
            self.message_user(request, f"{done} deliveries queued again.", messages.SUCCESS)
        for problem in refused:
            self.message_user(request, problem, messages.WARNING)
