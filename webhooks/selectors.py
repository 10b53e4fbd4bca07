"""Reads of webhooks, scoped to an account."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import Account
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery


def webhook_list(*, account: Account) -> QuerySet[Webhook]:
    return Webhook.objects.filter(account=account)


def webhook_deliveries(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    """A endpoint's delivery log, each delivery with its message and attempts."""
    return (
        WebhookDelivery.objects.filter(webhook=webhook)
        .select_related("message")
        .prefetch_related(
            Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("attempted_at", "id"))
        )
    )
