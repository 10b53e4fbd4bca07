"""``GET /healthz``: is the database reachable, is Redis reachable."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        client.ping()
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    checks = {"database": _check_database(), "redis": _check_redis()}
    down = sorted(name for name, error in checks.items() if error)
    body: dict[str, object] = {
        "status": "ok" if not down else "unavailable",
        "checks": {name: ("ok" if error is None else error) for name, error in checks.items()},
        "durationMs": round((time.monotonic() - started) * 1000, 1),
    }
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
