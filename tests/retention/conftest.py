"""The broker as the prune tasks meet it: what a step sends to continue itself, and a drain that
works those messages in this process, one after the other, as a worker would."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from config.celery import QUEUES, app
from config.retention import retention_overview


@dataclass
class Broker:
    client: Any

    def sent(self, queue: str) -> list[tuple[str, dict[str, Any]]]:
        """The tasks waiting in ``queue``, oldest first: (name, kwargs)."""
        return [_decoded(raw) for raw in reversed(self.client.lrange(queue, 0, -1))]

    def drain(self, queue: str, *, limit: int = 100) -> int:
        """Work the tasks of ``queue`` in this process until none is left (each may send the
        next); returns how many ran."""
        ran = 0
        while (raw := self.client.rpop(queue)) is not None:
            name, args, kwargs = _message(raw)
            app.tasks[name].apply(args=tuple(args), kwargs=kwargs).get()
            ran += 1
            assert ran <= limit, f"{queue} never ran dry"
        return ran

    def clear(self) -> None:
        self.client.delete(*QUEUES)


def _message(raw: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    message = json.loads(raw)
    args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"]["task"], args, kwargs


def _decoded(raw: bytes) -> tuple[str, dict[str, Any]]:
    name, _args, kwargs = _message(raw)
    return name, kwargs


@pytest.fixture
def broker() -> Any:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*QUEUES)
    yield Broker(client)
    client.delete(*QUEUES)
    client.close()


@pytest.fixture
def batch(settings):
    """Prunes take two rows (or stored files) a step."""
    settings.RETENTION_BATCH_SIZE = 2
    return 2


def days_ago(days: float) -> datetime:
    return timezone.now() - timedelta(days=days)


def overview(kind: str) -> dict[str, Any]:
    return next(row for row in retention_overview() if row["kind"] == kind)
