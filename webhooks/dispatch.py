"""Waking an endpoint's drain, and the per-endpoint slots that bound its concurrency.

A drain task (``webhooks.tasks.webhook_endpoint_drain``) is sent when a delivery row commits,
when a retry falls due soon, and by the sweep for anything else due. Sends are de-duplicated in
Redis: while a drain of an endpoint is queued or running, another is not sent. A drain clears
the mark when it is done sending and only then looks for due work (sending the next drain if
there is some), so a delivery committed at any moment is seen by that look or sends a drain.

At most ``WEBHOOK_ENDPOINT_CONCURRENCY`` drains of one endpoint send at a time (Redis locks with
a lease, one per slot); a drain that finds every slot taken ends at once. So one slow or dead
endpoint holds at most that many worker processes, and the others' deliveries keep going.
A message lost on the way (Redis down, a worker killed) costs a sweep interval, never a delivery:
the rows are the outbox.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from django.conf import settings
from redis.lock import Lock

logger = logging.getLogger(__name__)

_PREFIX = "railyard:webhooks"
# A queued drain's mark expires on its own, so a lost message delays an endpoint by this at most
# (the sweep re-sends it).
KICK_TTL_SECONDS = 30


def endpoint_concurrency() -> int:
    return max(1, int(getattr(settings, "WEBHOOK_ENDPOINT_CONCURRENCY", 1)))


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)


def endpoint_kick(webhook_id: Any, *, countdown: float = 0.0) -> None:
    """Send a drain of the endpoint now (or after ``countdown`` seconds), unless one is queued
    already. Never raises: the rows are committed, and the sweep sends what this could not."""
    from webhooks.tasks import webhook_endpoint_drain

    key = f"{_PREFIX}:{'wake' if countdown > 0 else 'kick'}:{webhook_id}"
    ttl = max(1, int(countdown)) if countdown > 0 else KICK_TTL_SECONDS
    try:
        if not redis_client().set(key, "1", nx=True, ex=ttl):
            return
        try:
            if countdown > 0:
                webhook_endpoint_drain.apply_async((str(webhook_id),), countdown=countdown)
            else:
                webhook_endpoint_drain.delay(str(webhook_id))
        except Exception:
            redis_client().delete(key)
            raise
    except Exception:
        logger.warning("Could not send the drain of webhook %s; the sweep will", webhook_id)


def endpoint_kick_clear(webhook_id: Any) -> None:
    """A drain is done sending: deliveries committed from now on need a drain of their own."""
    redis_client().delete(f"{_PREFIX}:kick:{webhook_id}")


def endpoint_slot(webhook_id: Any, *, lease_seconds: float) -> Lock | None:
    """One of the endpoint's sending slots, or None when all are taken."""
    client = redis_client()
    for index in range(endpoint_concurrency()):
        lock = client.lock(
            f"{_PREFIX}:slot:{webhook_id}:{index}", timeout=lease_seconds, blocking=False
        )
        if lock.acquire():
            return lock
    return None
