"""Waking an endpoint's drain, and the per-endpoint slots that bound its concurrency.

A drain task (``webhooks.tasks.webhook_endpoint_drain``) is sent when delivery rows commit, by
the drain before it when more is due, for a retry that falls due soon, and by the sweep for
anything else due. Sends are de-duplicated in Redis: while a drain of an endpoint is queued or
running, another is not sent. A drain clears the mark when it is done sending and only then
looks for due work (sending the next drain if there is some), so a delivery committed at any
moment is seen by that look or sends a drain of its own.

At most ``WEBHOOK_ENDPOINT_CONCURRENCY`` drains of one endpoint send at a time (Redis locks with
a lease, one per slot); a drain that finds every slot taken ends at once. So one slow or dead
endpoint holds at most that many worker processes, and the others' deliveries keep going.
A message lost on the way (Redis down, a worker killed) costs a sweep interval, never a delivery:
the rows are the outbox.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
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


def _kick_key(webhook_id: Any) -> str:
    return f"{_PREFIX}:kick:{webhook_id}"


def endpoints_kick(webhook_ids: Iterable[Any]) -> None:
    """Send a drain of each endpoint now, unless one is queued or running already (one round trip
    to Redis for all the marks). Never raises: the rows are committed, and the sweep sends what
    this could not."""
    from webhooks.tasks import webhook_endpoint_drain

    ids = [str(webhook_id) for webhook_id in webhook_ids]
    if not ids:
        return
    try:
        client = redis_client()
        with client.pipeline(transaction=False) as pipe:
            for webhook_id in ids:
                pipe.set(_kick_key(webhook_id), "1", nx=True, ex=KICK_TTL_SECONDS)
            marked = pipe.execute()
    except Exception:
        logger.warning("Could not send the drains of webhooks %s; the sweep will", ", ".join(ids))
        return
    for webhook_id, fresh in zip(ids, marked, strict=True):
        if not fresh:
            continue
        try:
            webhook_endpoint_drain.delay(webhook_id)
        except Exception:
            logger.warning("Could not send the drain of webhook %s; the sweep will", webhook_id)
            try:
                client.delete(_kick_key(webhook_id))
            except Exception:  # the mark expires by itself
                logger.debug("Could not clear the drain mark of webhook %s", webhook_id)


def endpoint_kick(webhook_id: Any, *, countdown: float = 0.0) -> None:
    """Send a drain of the endpoint now (``endpoints_kick``), or after ``countdown`` seconds:
    a wake for a retry, de-duplicated per second it falls due, so an earlier wake is never held
    back by a later one. Never raises."""
    if countdown <= 0:
        endpoints_kick([webhook_id])
        return
    from webhooks.tasks import webhook_endpoint_drain

    due = int(time.time() + countdown)
    key = f"{_PREFIX}:wake:{webhook_id}:{due}"
    try:
        if not redis_client().set(key, "1", nx=True, ex=max(1, int(countdown)) + 1):
            return
        webhook_endpoint_drain.apply_async((str(webhook_id),), countdown=countdown)
    except Exception:
        logger.warning("Could not send the wake of webhook %s; the sweep will", webhook_id)


def endpoint_kick_clear(webhook_id: Any) -> None:
    """A drain is done sending: deliveries committed from now on need a drain of their own."""
    redis_client().delete(_kick_key(webhook_id))


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
