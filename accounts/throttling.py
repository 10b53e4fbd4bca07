"""Request budgets counted in Redis: the per-key rate limit and the failed-authentication throttle.

Every budget is a fixed window that opens at its counter's first hit and lasts the rate's period.
One ``MULTI``/``EXEC`` transaction creates the counter with its expiry if it is missing, increments
it and reads its remaining lifetime (``SET NX EX``, ``INCR``, ``PTTL``). Redis runs the three
commands as one, so concurrent requests in any number of processes each get a distinct count and
exactly ``limit`` of them pass: no read-modify-write race (DRF's ``SimpleRateThrottle`` keeps a
list of timestamps in the cache and loses hits under concurrency), and no counter that outlives
its window because a process died between two commands. Requests refused during a window still
count but never extend it; ``Retry-After`` is the window's remaining lifetime.

Redis being unavailable never refuses a request: every budget fails open (the request is served
unthrottled), Redis is retried every few seconds rather than on every request, and the outage is
logged once a minute per process, not once per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_SETTINGS = (
    "API_RATE_LIMIT",
    "API_AUTH_FAILURE_LIMIT_PER_ADDRESS",
    "API_AUTH_FAILURE_LIMIT_PER_KEY",
)
OUTAGE_WARNING_INTERVAL_SECONDS = 60.0
REDIS_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``period`` seconds."""

    count: int
    period: int


@lru_cache(maxsize=16)
def parse_rate(value: str, *, setting: str) -> Rate:
    """``"1200/minute"`` -> Rate(1200, 60). Periods as in DRF: second, minute, hour, day (or any
    word starting with s, m, h, d). Anything else is a configuration error."""
    count, _, period = str(value).strip().partition("/")
    seconds = PERIODS.get(period.strip()[:1].lower())
    if not count.strip().isdigit() or int(count) < 1 or seconds is None:
        raise ImproperlyConfigured(
            f"{setting} must be count/second|minute|hour|day (for example 1200/minute), "
            f"not {value!r}."
        )
    return Rate(count=int(count), period=seconds)


def throttling_settings_check() -> None:
    """Fail at start, not at the first request, on a malformed rate or proxy count."""
    for name in RATE_SETTINGS:
        parse_rate(getattr(settings, name), setting=name)
    if settings.API_NUM_PROXIES < 0:
        raise ImproperlyConfigured("API_NUM_PROXIES must be 0 or more.")


def _rate(setting: str) -> Rate:
    return parse_rate(getattr(settings, setting), setting=setting)


# --- Redis access that fails open ------------------------------------------------------------


@dataclass
class _Outage:
    failed_at: float
    warned_at: float
    skipped: int = 0


class _RedisCircuit:
    """Fails budgets open while Redis is unavailable, without making every request wait for it.

    After a call fails, budgets skip Redis for ``REDIS_RETRY_SECONDS`` (the request is served at
    once rather than after another connection timeout: a hung Redis would otherwise add seconds
    to every request), then try it again. The outage is logged when it starts and at most once
    per ``OUTAGE_WARNING_INTERVAL_SECONDS`` while it lasts, with the number of checks skipped;
    the recovery is logged too. State is per process and per cache location, timed by the wall
    clock (``time.time``) so that tests can move it with time-machine.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outages: dict[str, _Outage] = {}

    def is_closed(self, location: str) -> bool:
        """Whether Redis should be tried (no outage, or time to retry)."""
        outage = self._outages.get(location)
        if outage is None:
            return True
        if time.time() - outage.failed_at >= REDIS_RETRY_SECONDS:
            return True
        with self._lock:
            outage.skipped += 1
        return False

    def failure(self, location: str, error: Exception) -> None:
        now = time.time()
        with self._lock:
            outage = self._outages.get(location)
            if outage is None:
                outage = self._outages[location] = _Outage(failed_at=now, warned_at=-math.inf)
            outage.failed_at = now
            outage.skipped += 1
            if now - outage.warned_at < OUTAGE_WARNING_INTERVAL_SECONDS:
                return
            outage.warned_at, skipped, outage.skipped = now, outage.skipped, 0
        logger.warning(
            "Redis is unavailable (%s): API rate limits and failed-authentication throttling are "
            "not enforced until it answers again (%d checks skipped since the last warning).",
            error,
            skipped,
        )

    def success(self, location: str) -> None:
        if location not in self._outages:  # the common case, without the lock: every request
            return
        with self._lock:
            outage = self._outages.pop(location, None)
        if outage is not None:
            logger.warning(
                "Redis answers again: API rate limits and failed-authentication throttling are "
                "enforced again (%d checks were skipped).",
                outage.skipped,
            )


_circuit = _RedisCircuit()


def _cache_location() -> str:
    return str(settings.CACHES["default"]["LOCATION"])


def _redis() -> tuple[Any, Any]:
    """The Django cache (for its key prefix) and a Redis client of its connection pool."""
    cache = caches["default"]
    return cache, cache._cache.get_client(write=True)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class WindowCount:
    """A counter's value after a hit or a read, and the seconds until its window closes."""

    count: int
    retry_after: int


def _retry_after(ttl_ms: int, period: int) -> int:
    # PTTL is -1 (no expiry) or -2 (gone) only in impossible races; answer a whole period then.
    return max(1, math.ceil(ttl_ms / 1000)) if ttl_ms > 0 else period


def window_hit(key: str, *, rate: Rate) -> WindowCount | None:
    """Count one hit on ``key`` in its current window; None when Redis is unavailable."""
    location = _cache_location()
    if not _circuit.is_closed(location):
        return None
    try:
        cache, client = _redis()
        full_key = cache.make_key(key)
        pipe = client.pipeline(transaction=True)
        pipe.set(full_key, 0, ex=rate.period, nx=True)
        pipe.incr(full_key)
        pipe.pttl(full_key)
        _, count, ttl_ms = pipe.execute()
    except (redis.RedisError, OSError) as error:
        _circuit.failure(location, error)
        return None
    _circuit.success(location)
    return WindowCount(count=int(count), retry_after=_retry_after(int(ttl_ms), rate.period))


def window_read(counters: list[tuple[str, Rate]]) -> list[WindowCount] | None:
    """The current counts of ``(key, rate)`` counters without counting a hit; None when Redis is
    unavailable."""
    location = _cache_location()
    if not _circuit.is_closed(location):
        return None
    try:
        cache, client = _redis()
        pipe = client.pipeline(transaction=False)
        for key, _ in counters:
            full_key = cache.make_key(key)
            pipe.get(full_key)
            pipe.pttl(full_key)
        replies = pipe.execute()
    except (redis.RedisError, OSError) as error:
        _circuit.failure(location, error)
        return None
    _circuit.success(location)
    return [
        WindowCount(count=int(value or 0), retry_after=_retry_after(int(ttl_ms), rate.period))
        for (_, rate), value, ttl_ms in zip(counters, replies[::2], replies[1::2], strict=True)
    ]


# --- the per-key request budget --------------------------------------------------------------


class ApiKeyRateThrottle(BaseThrottle):
    """Per-key request budget (``API_RATE_LIMIT``, e.g. ``1200/minute``), counted in Redis.

    Session users are counted per user, and requests without credentials per client address.
    """

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"address:{self.get_ident(request)}"
        rate = _rate("API_RATE_LIMIT")
        counted = window_hit(f"ratelimit:requests:{ident}", rate=rate)
        if counted is None:
            return True  # Redis is down: serve the request (fail open)
        self.retry_after = counted.retry_after
        return counted.count <= rate.count

    def wait(self) -> float | None:
        return self.retry_after


# --- failed authentication -------------------------------------------------------------------


def client_address(request: Request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the ``X-Forwarded-For`` entry the configured
    number of trusted proxies (``API_NUM_PROXIES``) put there."""
    return str(BaseThrottle().get_ident(request) or "unknown")


def _address_counter(address: str) -> tuple[str, Rate]:
    return f"ratelimit:authfail:address:{address}", _rate("API_AUTH_FAILURE_LIMIT_PER_ADDRESS")


def _key_counter(prefix: str) -> tuple[str, Rate]:
    return f"ratelimit:authfail:key:{prefix}", _rate("API_AUTH_FAILURE_LIMIT_PER_KEY")


def auth_failures_check(*, address: str, prefix: str | None) -> None:
    """Refuse (429) an authentication attempt from an address, or for a key prefix, that has
    used up its budget of failed attempts, before the key is even looked at.

    An address over ``API_AUTH_FAILURE_LIMIT_PER_ADDRESS`` is refused for any key. A key prefix
    over ``API_AUTH_FAILURE_LIMIT_PER_KEY`` is refused only from addresses that have failed in
    their current window: someone guessing from many addresses gets one attempt per address per
    window, while the key's holder, whose address has not failed, keeps working.
    """
    counters = [_address_counter(address)]
    if prefix is not None:
        counters.append(_key_counter(prefix))
    counts = window_read(counters)
    if counts is None:
        return  # Redis is down: fail open
    (_, per_address), address_count = counters[0], counts[0]
    if address_count.count >= per_address.count:
        raise Throttled(wait=address_count.retry_after)
    if prefix is not None and address_count.count > 0:
        (_, per_key), key_count = counters[1], counts[1]
        if key_count.count >= per_key.count:
            raise Throttled(wait=max(address_count.retry_after, key_count.retry_after))


def auth_failure_record(*, address: str, prefix: str | None) -> None:
    """Count a failed authentication against the address and, for an existing key, its prefix."""
    key, rate = _address_counter(address)
    window_hit(key, rate=rate)
    if prefix is not None:
        key, rate = _key_counter(prefix)
        window_hit(key, rate=rate)
