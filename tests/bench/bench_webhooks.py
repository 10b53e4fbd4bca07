"""Webhook fan-out with a real worker: 10,000 events to 10 endpoints of a local receiver.

Each event is recorded in its own transaction (its 10 delivery rows with it) by this process,
for 20 integrations in turn, while a prefork worker (4 pool processes) drains the ``webhooks``
queue. One endpoint answers 503 with ``Retry-After: 2`` for the first ``OUTAGE_SECONDS`` (60, as
in the issue; ``BENCH_WEBHOOK_OUTAGE`` shortens it for a quick run), the nine others answer 200
at once. The receiver is a process of its own (forked before anything touches the database), so
its answers never wait for this process's Python, which records events as fast as it can.
Prints deliveries per second (all 100,000, from the first event to the last delivery), p50 and
p99 of the delay from an event's commit to its 2xx delivery for the healthy endpoints and for
the broken one, deliveries lost and delivered twice, whether each integration's events reached
every endpoint in order, and the worker's CPU time per delivery. The reference is the rate of
one plain httpx client POSTing the same bodies to the same receiver, sequentially, from this
process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import statistics
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases

from accounts.choices import EventType
from accounts.models import Account, Event
from accounts.services import Actor, event_record
from integrations.models import Integration
from tests.worker import celery_worker, worker_children
from webhooks.choices import DeliveryStatus
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

EVENTS = 10_000
ENDPOINTS = 10
INTEGRATIONS = 20
WORKER_PROCESSES = 4
OUTAGE_SECONDS = float(os.environ.get("BENCH_WEBHOOK_OUTAGE", "60"))
REFERENCE_REQUESTS = 2_000


class _Receiver:
    """The receiver's state, in its own process: what each path received and answered."""

    def __init__(self) -> None:
        self.outage_until = 0.0
        self.lock = threading.Lock()
        # path -> list of (webhook-id, received at, status answered)
        self.received: dict[str, list[tuple[str, float, int]]] = defaultdict(list)

    def answer(self, path: str, webhook_id: str) -> tuple[int, dict[str, str]]:
        now = time.time()
        status, headers = 200, {}
        if path == "/e0" and now < self.outage_until:
            status, headers = 503, {"Retry-After": "2"}
        with self.lock:
            self.received[path].append((webhook_id, now, status))
        return status, headers


def _receiver_start() -> tuple[str, multiprocessing.process.BaseProcess]:
    """Start the receiver in a forked child; returns its base URL and the process. ``POST
    /control/outage?seconds=N`` starts the outage, ``GET /control/received`` answers what
    it received as JSON."""
    receiver = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with receiver.lock:
                body = json.dumps(receiver.received).encode()
            self._reply(200, body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/control/outage"):
                seconds = float(self.path.rpartition("=")[2])
                receiver.outage_until = time.time() + seconds
                self._reply(204)
                return
            status, headers = receiver.answer(self.path, self.headers.get("webhook-id", ""))
            self._reply(status, headers=headers)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    child = multiprocessing.get_context("fork").Process(target=server.serve_forever, daemon=True)
    child.start()
    server.server_close()  # the child has its own copy of the listening socket
    return f"http://127.0.0.1:{server.server_address[1]}", child


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run(args: Any) -> None:
    if connection.vendor != "postgresql":
        print("bench_webhooks: skipped, it needs PostgreSQL (set DATABASE_URL=postgres://...).")
        return
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Forked first: the child must inherit no database connection.
    base_url, receiver = _receiver_start()
    old_config = setup_databases(verbosity=0, interactive=False, keepdb=False)
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("webhooks")
    settings.WEBHOOK_ALLOW_HTTP = True
    try:
        _run(base_url)
    finally:
        receiver.terminate()
        receiver.join(timeout=10)
        broker.delete("webhooks")
        broker.close()
        connection.close()
        teardown_databases(old_config, verbosity=0)


def _reference(base_url: str) -> float:
    body = b'{"type":"integration.sync.completed","id":"x","timestamp":"t","data":{}}'
    with httpx.Client() as client:
        started = time.perf_counter()
        for _ in range(REFERENCE_REQUESTS):
            client.post(f"{base_url}/reference", content=body)
        return REFERENCE_REQUESTS / (time.perf_counter() - started)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(base_url: str) -> None:
    reference_rate = _reference(base_url)
    account = Account.objects.create(name="Bench webhooks group")
    integrations = [
        Integration.objects.create(account=account, name=f"Lot {number}", type="vauto")
        for number in range(INTEGRATIONS)
    ]
    for number in range(ENDPOINTS):
        webhook_create(
            account=account,
            actor=Actor.system(),
            url=f"{base_url}/e{number}",
            events=["integration.sync.*"],
        )
    expected = ENDPOINTS * EVENTS
    with celery_worker(
        queues="webhooks",
        pool="prefork",
        concurrency=WORKER_PROCESSES,
        WEBHOOK_ALLOW_HTTP="true",
    ) as worker:
        httpx.post(f"{base_url}/control/outage?seconds={OUTAGE_SECONDS}")
        started = time.time()
        for number in range(EVENTS):
            integration = integrations[number % INTEGRATIONS]
            event_record(
                account=account,
                type=EventType.SYNC_COMPLETED,
                integration_id=integration.pk,
                payload={"jobId": str(number), "status": "completed", "stats": {"created": 1}},
            )
        recorded = time.time() - started
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count()
            if done >= expected:
                break
            time.sleep(1)
        worker_cpu = sum(_cpu_seconds(pid) for pid in [worker.pid, *worker_children(worker)])
    received = httpx.get(f"{base_url}/control/received", timeout=60).json()
    committed = {
        str(pk): moment.timestamp()
        for pk, moment in Event.objects.filter(account=account).values_list("pk", "created_at")
    }
    order = {
        str(pk): (str(integration_id), moment)
        for pk, integration_id, moment in Event.objects.filter(account=account).values_list(
            "pk", "integration_id", "created_at"
        )
    }
    healthy_delays: list[float] = []
    broken_delays: list[float] = []
    lost = duplicated = out_of_order = 0
    last_delivery = started
    for number in range(ENDPOINTS):
        answered = [
            (webhook_id, at)
            for webhook_id, at, status in received.get(f"/e{number}", [])
            if status == 200
        ]
        ids = [webhook_id for webhook_id, _ in answered]
        lost += len(set(committed) - set(ids))
        duplicated += len(ids) - len(set(ids))
        delays = broken_delays if number == 0 else healthy_delays
        delays.extend(at - committed[webhook_id] for webhook_id, at in answered)
        last_delivery = max([last_delivery, *(at for _, at in answered)])
        seen: dict[str, Any] = {}
        for webhook_id, _ in answered:
            integration_id, moment = order[webhook_id]
            if integration_id in seen and moment < seen[integration_id]:
                out_of_order += 1
            seen[integration_id] = moment
    delivered = expected - lost
    rate = delivered / (last_delivery - started)
    print(
        f"{EVENTS:,} events x {ENDPOINTS} endpoints, {INTEGRATIONS} integrations, "
        f"{WORKER_PROCESSES} worker processes, endpoint e0 answering 503 for the first "
        f"{OUTAGE_SECONDS:g} s: recorded in {recorded:.1f} s"
        f" | {rate:,.0f} deliveries/s ({rate / reference_rate:.2f}x one sequential httpx client:"
        f" {reference_rate:,.0f} req/s)"
        f" | healthy endpoints p50 {statistics.median(healthy_delays):.2f} s"
        f" p99 {_percentile(healthy_delays, 0.99):.2f} s"
        f" | broken endpoint p50 {statistics.median(broken_delays):.2f} s"
        f" p99 {_percentile(broken_delays, 0.99):.2f} s"
        f" | lost {lost} | delivered twice {duplicated} | out of order {out_of_order}"
        f" | worker CPU {worker_cpu / max(delivered, 1) * 1000:.2f} ms a delivery",
        flush=True,
    )
    if lost or duplicated or out_of_order:
        print("bench_webhooks: targets missed")
