"""Delivering the outbox: an endpoint's drain claims batches of its due deliveries, sends them,
records every attempt, and schedules what failed.

Threading model: one drain runs in one worker process and sends one request at a time. It
claims up to ``BATCH_SIZE`` deliveries, sends and records them, and claims again only while
its batches come back full and its ``DRAIN_SECONDS`` last; then, when more is due, it sends the
next drain of its endpoint, which queues behind the other endpoints' drains. A drain whose batch
came back short took everything due and ends: what commits later wakes a drain of its own, so
no drain stays to poll. So the ``webhooks`` queue takes the endpoints in turn, and a healthy
endpoint's new deliveries wait for at most a short turn of each other endpoint, never for a
slow one's backlog. At most ``WEBHOOK_ENDPOINT_CONCURRENCY`` drains of one endpoint run at once
(``webhooks.dispatch``): a slow or dead endpoint holds that many worker processes at most. A
drain of an endpoint with nothing to send now (its deliveries wait for their retries) ends at
once, and its next one is sent for when the first retry falls due.

Claiming (one transaction, the endpoint row locked so two drains of one endpoint claim one after
the other): the endpoint's sendable deliveries in id order (``WebhookDelivery.sendable``): an
ordered one only when every earlier pending delivery of its integration to this endpoint is
sendable too, so one waiting for its retry holds back those behind it and events of one
integration arrive in the order they happened. A claim is a lease (``claimed_until``): a drain
that dies leaves its rows to be taken again when the lease ends, so a delivery is sent at least
once and, short of that, once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone

from config.db import rows_update
from webhooks import services
from webhooks.choices import DeliveryStatus
from webhooks.dispatch import endpoint_kick, endpoint_kick_clear, endpoint_slot, endpoints_kick
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from webhooks.schedule import DISABLE_AFTER, GONE_STATUS, outcome_apply
from webhooks.sender import AttemptResult, attempt_send, http_client

logger = logging.getLogger(__name__)

# A drain's batch: large enough that a busy endpoint's claim and record cost little per
# delivery, small enough that what commits meanwhile waits for little.
BATCH_SIZE = 50
# A drain's turn: it claims no further batch after this long, and hands the rest of a batch
# back (a slow endpoint), so the other endpoints' drains behind it wait for little.
DRAIN_SECONDS = 1.0
# A due retry this close is woken by a delayed drain; later ones by the sweep.
WAKE_AHEAD_SECONDS = 120.0

_UPDATED_FIELDS = [
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
]


def lease() -> timedelta:
    """How long a claim holds: a drain's time, plus one attempt's timeout, plus a margin."""
    return timedelta(seconds=DRAIN_SECONDS + settings.WEBHOOK_TIMEOUT_SECONDS + 30)


@dataclass
class DrainResult:
    """What one drain did (returned by the task): ``handed_over`` when more was due after its
    turn and it sent the next drain."""

    delivered: int = 0
    failed_attempts: int = 0
    busy: bool = False
    handed_over: bool = False
    disabled: bool = False


def deliveries_claim(
    webhook_id: Any, *, limit: int = BATCH_SIZE
) -> tuple[Webhook | None, list[WebhookDelivery]]:
    """Claim up to ``limit`` of the endpoint's deliveries that may be sent now (see the module
    docstring); returns the endpoint (None when it is not active) and the claimed rows."""
    now = timezone.now()
    with transaction.atomic():
        # FOR NO KEY UPDATE: claims of one endpoint wait for each other, while the transactions
        # writing its new deliveries (whose foreign key check takes FOR KEY SHARE on this row)
        # never wait for a claim.
        webhook = (
            Webhook.objects.select_for_update(no_key=True)
            .filter(pk=webhook_id, is_active=True)
            .first()
        )
        if webhook is None:
            return None, []
        claimed = list(
            WebhookDelivery.objects.filter(webhook_id=webhook_id)
            .filter(WebhookDelivery.sendable(now))
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if not claimed:
            return webhook, []
        WebhookDelivery.objects.filter(pk__in=claimed).update(claimed_until=now + lease())
    return webhook, list(
        WebhookDelivery.objects.filter(pk__in=claimed).select_related("message").order_by("id")
    )


def _release(deliveries: list[WebhookDelivery]) -> None:
    if deliveries:
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(claimed_until=None)


def _record(
    webhook: Webhook, sent: list[tuple[WebhookDelivery, AttemptResult]], result: DrainResult
) -> None:
    """Keep a batch's attempts and outcomes; the endpoint's health follows them in order."""
    if not sent:
        return
    healthy = False
    failing_from: datetime | None = None
    gone = False
    for delivery, attempt in sent:
        outcome_apply(delivery, attempt)
        if attempt.delivered:
            result.delivered += 1
            healthy, failing_from = True, None
        else:
            result.failed_attempts += 1
            failing_from = failing_from or attempt.attempted_at
            gone = gone or attempt.status_code == GONE_STATUS
    with transaction.atomic():
        rows_update([delivery for delivery, _ in sent], _UPDATED_FIELDS)
        WebhookAttempt.objects.bulk_create(
            [WebhookAttempt.of(delivery, attempt) for delivery, attempt in sent]
        )
        endpoint = Webhook.objects.filter(pk=webhook.pk)
        if healthy and failing_from is None:
            # Written only when it changes: a healthy endpoint's row is not rewritten per batch.
            endpoint.filter(failing_since__isnull=False).update(failing_since=None)
        elif healthy:
            endpoint.update(failing_since=failing_from)
        elif failing_from is not None:
            endpoint.filter(failing_since__isnull=True).update(failing_since=failing_from)
    if gone:
        result.disabled = services.webhook_disable(
            webhook_id=webhook.pk, reason="The endpoint answered 410 Gone."
        )
    elif failing_from is not None:
        limit = timezone.now() - DISABLE_AFTER
        if Webhook.objects.filter(pk=webhook.pk, failing_since__lte=limit).exists():
            days = DISABLE_AFTER.days
            result.disabled = services.webhook_disable(
                webhook_id=webhook.pk, reason=f"Every delivery attempt failed for {days} days."
            )


def _send_batch(
    webhook: Webhook, batch: list[WebhookDelivery], client: Any, deadline: float
) -> tuple[list[tuple[WebhookDelivery, AttemptResult]], list[WebhookDelivery]]:
    """Send a claimed batch in id order; returns what was sent and what is to be released (an
    ordered delivery behind one that just failed, everything past the deadline or a 410). The
    first is sent whatever the time, so every drain makes progress."""
    secrets = services.signing_secrets(webhook)
    sent: list[tuple[WebhookDelivery, AttemptResult]] = []
    unsent: list[WebhookDelivery] = []
    broken_chains: set[Any] = set()
    stop = False
    for delivery in batch:
        if stop or (sent and time.monotonic() > deadline):
            unsent.append(delivery)
            continue
        if delivery.ordered and delivery.integration_id in broken_chains:
            unsent.append(delivery)
            continue
        attempt = attempt_send(
            client,
            url=webhook.url,
            message_id=str(delivery.message_id),
            body=delivery.message.body,
            secrets_signing=secrets,
        )
        sent.append((delivery, attempt))
        if not attempt.delivered:
            if delivery.ordered:
                broken_chains.add(delivery.integration_id)
            stop = attempt.status_code == GONE_STATUS
    return sent, unsent


def endpoint_drain(webhook_id: Any) -> DrainResult:
    """Send the endpoint's due deliveries, a batch at a time, for one turn (see the module
    docstring); then send the next drain when more is due, or wake the endpoint when its next
    retry falls due."""
    result = DrainResult()
    slot = endpoint_slot(webhook_id, lease_seconds=lease().total_seconds())
    if slot is None:
        # The drain holding the slot looks for due work after it lets go of it.
        result.busy = True
        return result
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        webhook, batch = deliveries_claim(webhook_id)
        if webhook is not None and batch:
            with http_client() as client:
                while webhook is not None and batch:
                    sent, unsent = _send_batch(webhook, batch, client, deadline)
                    try:
                        _record(webhook, sent, result)
                    finally:
                        _release(unsent)
                    # A short batch took all that was due: what commits from now on sends a
                    # drain of its own (below), so this one does not stay to poll for it.
                    if len(batch) < BATCH_SIZE or result.disabled or time.monotonic() > deadline:
                        break
                    webhook, batch = deliveries_claim(webhook_id)
    finally:
        try:
            slot.release()
        except Exception:  # the lease ran out: another drain may hold the slot now
            logger.warning("The slot of webhook %s outlived its lease", webhook_id)
    # Until here, deliveries committed meanwhile sent no drain of their own (one was queued or
    # running: this one). From here they do, and what committed before is found just below.
    endpoint_kick_clear(webhook_id)
    result.handed_over = _wake_next(webhook_id)
    return result


def next_due(webhook_id: Any, *, now: datetime) -> datetime | None:
    """When the active endpoint next has a delivery it may send: the earliest of its unordered
    pending deliveries and of the heads of its ordered chains (what waits behind a head is not
    due before it), among those no drain holds. None for an inactive endpoint."""
    pending = WebhookDelivery.objects.filter(
        webhook_id=webhook_id, status=DeliveryStatus.PENDING, webhook__is_active=True
    )
    heads = (
        WebhookDelivery.objects.filter(
            webhook_id=webhook_id, status=DeliveryStatus.PENDING, ordered=True
        )
        .order_by()
        .values("integration_id")
        .annotate(first=Min("id"))
        .values("first")
    )
    first: datetime | None = (
        pending.filter(Q(ordered=False) | Q(pk__in=heads))
        .filter(WebhookDelivery.unclaimed(now))
        .order_by()
        .aggregate(first=Min("next_attempt_at"))["first"]
    )
    return first


def _wake_next(webhook_id: Any) -> bool:
    """After a drain: send the next one now if work is due (True), or delayed if a retry falls
    due soon. Checked after the slot is released, so work committed meanwhile is never
    stranded."""
    now = timezone.now()
    due = next_due(webhook_id, now=now)
    if due is None:
        return False
    seconds = (due - now).total_seconds()
    if seconds <= 0:
        endpoint_kick(webhook_id)
        return True
    if seconds <= WAKE_AHEAD_SECONDS:
        endpoint_kick(webhook_id, countdown=seconds)
    return False


def deliveries_sweep() -> int:
    """Send a drain to every active endpoint with due, unclaimed deliveries (their message was
    lost, a lease ran out, or a retry fell due); returns how many were sent."""
    now = timezone.now()
    webhook_ids = set(
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now, webhook__is_active=True
        )
        .filter(WebhookDelivery.unclaimed(now))
        .order_by()
        .values_list("webhook_id", flat=True)
        .distinct()
    )
    due_now = [
        webhook_id
        for webhook_id in webhook_ids
        if (due := next_due(webhook_id, now=now)) is not None and due <= now
    ]
    endpoints_kick(due_now)
    return len(due_now)
