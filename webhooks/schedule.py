"""The retry schedule, and what one attempt's result does to its delivery.

The schedule is the Standard Webhooks one: the first attempt at once, then retries 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h after the attempt before, each delay with +/-10 % jitter so that
the retries of an outage do not arrive in one burst. A 429 or 503 with a ``Retry-After`` is
retried after that many seconds (at least 1 s, at most 10 h) without using a step of the
schedule, until the schedule's whole span has passed since the first attempt. A 410 gives up at
once (and disables the endpoint: ``webhooks.delivery``). A test delivery is attempted once.
"""

from __future__ import annotations

import random
from datetime import timedelta

from webhooks.choices import DeliveryStatus, DeliveryTrigger
from webhooks.models import WebhookDelivery
from webhooks.sender import AttemptResult

SCHEDULE_SECONDS = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
SCHEDULE_SPAN = timedelta(seconds=sum(SCHEDULE_SECONDS))
JITTER = 0.1
RETRY_AFTER_MIN_SECONDS = 1.0
RETRY_AFTER_MAX_SECONDS = 10 * 3600.0
# An endpoint that has failed every attempt for this long is disabled.
DISABLE_AFTER = timedelta(days=5)
GONE_STATUS = 410


def jittered(seconds: float) -> timedelta:
    return timedelta(seconds=seconds * random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311


def outcome_apply(delivery: WebhookDelivery, result: AttemptResult) -> None:
    """Set ``delivery``'s fields after the attempt ``result`` (the caller saves them)."""
    now = result.finished_at
    delivery.attempt_count += 1
    delivery.first_attempt_at = delivery.first_attempt_at or result.attempted_at
    delivery.last_attempt_at = result.attempted_at
    delivery.last_status_code = result.status_code
    delivery.claimed_until = None
    if result.delivered:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        delivery.last_error = ""
        return
    delivery.last_error = result.error or f"The endpoint answered {result.status_code}."
    delivery.next_attempt_at = None
    if result.status_code == GONE_STATUS:
        delivery.last_error = "The endpoint answered 410 Gone; it is disabled."
        delivery.status = DeliveryStatus.FAILED
        return
    if delivery.trigger == DeliveryTrigger.TEST:
        delivery.status = DeliveryStatus.FAILED
        return
    within_span = now - delivery.first_attempt_at < SCHEDULE_SPAN
    if result.retry_after is not None and within_span:
        seconds = min(max(result.retry_after, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS)
        delivery.next_attempt_at = now + timedelta(seconds=seconds)
        return
    delivery.step += 1
    if delivery.step >= len(SCHEDULE_SECONDS) or (result.retry_after is not None):
        delivery.status = DeliveryStatus.FAILED
        return
    delivery.next_attempt_at = now + jittered(SCHEDULE_SECONDS[delivery.step])
