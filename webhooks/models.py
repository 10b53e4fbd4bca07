"""Webhook endpoints, the messages sent to them, and every delivery and attempt.

One event that at least one endpoint subscribes to becomes one ``WebhookMessage`` (its body is
frozen as text, so every attempt and every redelivery sends the same bytes under the same
``webhook-id``) and one ``WebhookDelivery`` per subscribed endpoint. Both are written in the
transaction that records the event (``accounts.services.event_recorded``): the delivery rows are
the outbox, so a delivery survives a broker or worker outage and never exists for a change that
was rolled back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import Account
from webhooks.choices import DeliveryStatus, DeliveryTrigger

if TYPE_CHECKING:
    from webhooks.sender import AttemptResult


def event_type_matches(pattern: str, event_type: str) -> bool:
    """``*`` matches every type, ``integration.sync.*`` every type under ``integration.sync``,
    anything else only itself."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


class Webhook(models.Model):
    """An endpoint of an account that receives the events it subscribes to, signed with its
    secret (Standard Webhooks). After a rotation the previous secret signs too until
    ``previous_secret_expires_at``. ``failing_since`` is the first failed attempt since the last
    success; an endpoint failing for ``webhooks.delivery.DISABLE_AFTER`` is disabled."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    events = models.JSONField(default=list, help_text="Event types and wildcards (a.b.*, *).")
    integration_ids = models.JSONField(
        default=list, blank=True, help_text="Only events of these integrations; empty for all."
    )
    is_active = models.BooleanField(default=True)
    ordered = models.BooleanField(
        default=True,
        help_text="Deliver the events of one integration in the order they happened.",
    )
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "is_active"])]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str, integration_id: Any) -> bool:
        """Whether an event of ``event_type`` (of ``integration_id``, if any) is sent here.
        The integration filter applies to events of an integration; account-wide events (a
        connection's, an endpoint being disabled) pass it."""
        if not any(event_type_matches(pattern, event_type) for pattern in self.events):
            return False
        if self.integration_ids and integration_id is not None:
            # Stored as strings (``services._integration_ids_check``).
            return str(integration_id) in self.integration_ids
        return True


class WebhookMessage(models.Model):
    """An event as sent to endpoints: ``id`` is the event's id (and the ``webhook-id``), ``body``
    the exact JSON text of every attempt."""

    id = models.UUIDField(primary_key=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=100)
    integration_id = models.UUIDField(null=True, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(db_index=True, help_text="When the event happened.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.pk}"


class WebhookDelivery(models.Model):
    """One message to one endpoint, retried on a schedule until delivered or given up.

    The id orders deliveries: the deliveries of one integration to one endpoint go out in id
    order (the order their events happened) when ``ordered``. ``step`` is the position in the
    retry schedule; an answer with ``Retry-After`` waits that long without using a step.
    ``claimed_until`` is the lease of the worker sending it now.
    """

    id = models.BigAutoField(primary_key=True)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="deliveries")
    integration_id = models.UUIDField(null=True, blank=True)
    ordered = models.BooleanField(default=True)
    trigger = models.CharField(
        max_length=12, choices=DeliveryTrigger.choices, default=DeliveryTrigger.EVENT
    )
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    step = models.PositiveSmallIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["webhook", "next_attempt_at"],
                condition=Q(status=DeliveryStatus.PENDING),
                name="webhooks_delivery_due",
            ),
            models.Index(
                fields=["webhook", "integration_id", "id"],
                condition=Q(status=DeliveryStatus.PENDING, ordered=True),
                name="webhooks_delivery_chain",
            ),
            models.Index(fields=["webhook", "-id"], name="webhooks_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"

    @staticmethod
    def unclaimed(now: datetime) -> Q:
        """Deliveries no drain holds at ``now`` (no lease, or an expired one)."""
        return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)

    @classmethod
    def not_behind(cls, earlier: QuerySet[WebhookDelivery]) -> Q:
        """Deliveries that wait behind none of ``earlier`` (pending ordered deliveries): an
        unordered one, or an ordered one with no row of ``earlier`` before it in its chain (its
        endpoint and integration; the events of no integration are one chain too)."""
        behind = earlier.filter(
            webhook_id=OuterRef("webhook_id"),
            status=DeliveryStatus.PENDING,
            ordered=True,
            id__lt=OuterRef("id"),
        )
        return (
            Q(ordered=False)
            | (
                Q(integration_id__isnull=False)
                & ~Exists(behind.filter(integration_id=OuterRef("integration_id")))
            )
            | (Q(integration_id__isnull=True) & ~Exists(behind.filter(integration_id__isnull=True)))
        )

    @classmethod
    def sendable(cls, now: datetime) -> Q:
        """Pending deliveries a drain may send at ``now``: due, unclaimed, and not behind an
        earlier delivery of their chain that is not (one waiting for its retry, or held by
        another drain). Every earlier delivery of such a one's chain is sendable too, so the
        sendable deliveries in id order keep each chain's order."""
        waiting = cls.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__gt=now) | Q(claimed_until__gte=now)
        )
        return (
            Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            & cls.unclaimed(now)
            & cls.not_behind(waiting)
        )


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery: when, the answer's status, latency, the first 2 kB of the
    answer, or the error when there was no answer."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    trigger = models.CharField(
        max_length=12, choices=DeliveryTrigger.choices, default=DeliveryTrigger.EVENT
    )
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["attempted_at", "id"]

    def __str__(self) -> str:
        return f"attempt {self.pk} of delivery {self.delivery_id}"

    @classmethod
    def of(cls, delivery: WebhookDelivery, result: AttemptResult) -> WebhookAttempt:
        """The row that keeps ``result``, one attempt of ``delivery`` (not saved)."""
        return cls(
            delivery_id=delivery.pk,
            trigger=delivery.trigger,
            attempted_at=result.attempted_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.excerpt,
            error=result.error,
        )
