"""A webhook receiver on an ephemeral 127.0.0.1 port: a real HTTP server that keeps every request
and answers as a test tells it to (status, headers, body, or a delay)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook as StandardWebhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verified_with(self, secret: str) -> Any:
        """The payload, verified with the ``standardwebhooks`` package (raises if it fails)."""
        return StandardWebhook(secret).verify(self.body, self.headers)


Answer = tuple[int, dict[str, str], bytes]


class Receiver:
    """Keeps what it receives (``requests``); ``answer(path, count)`` decides each answer, where
    ``count`` is how many requests this path has had before."""

    def __init__(self, answer: Callable[[str, int], Answer] | None = None) -> None:
        self.requests: list[Received] = []
        self.answer = answer or (lambda path, count: (200, {}, b"thanks"))
        self._lock = threading.Lock()
        self.url = ""

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            count = sum(1 for request in self.requests if request.path == path)
            self.requests.append(Received(path=path, headers=headers, body=body))
        return self.answer(path, count)


@contextmanager
def webhook_receiver(
    answer: Callable[[str, int], Answer] | None = None, *, port: int = 0
) -> Iterator[Receiver]:
    """A receiver on ``port`` of 127.0.0.1 (an ephemeral one by default)."""
    receiver = Receiver(answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, payload = receiver._handle(self.path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
