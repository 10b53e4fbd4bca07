"""Helpers for the storage connectors' tests: real loopback listeners that misbehave in one way
each (count and refuse nothing, drop, hang, answer an HTTP error), the production egress
default, and names that resolve to loopback (the only stand-in: DNS is outside the machine)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

PROBE_CHUNK = 1024 * 1024


@pytest.fixture
def production_default(settings):
    """The egress policy of an installation that configured nothing."""
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    return settings


@dataclass
class Listener:
    port: int
    accepted: list[socket.socket] = field(default_factory=list)


@contextlib.contextmanager
def tcp_listener(behaviour: str) -> Iterator[Listener]:
    """A TCP listener on 127.0.0.1 that records each connection it accepts, then either
    closes it at once (``drop``) or keeps it open without a word (``hang``)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    listener = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _address = server.accept()
            except OSError:
                continue
            listener.accepted.append(connection)
            if behaviour == "drop":
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join()
        server.close()
        for connection in listener.accepted:
            connection.close()


@dataclass
class HttpAnswer:
    url: str
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def http_error_server(status: int, body: bytes, headers: dict[str, str]) -> Iterator[HttpAnswer]:
    """An HTTP server on 127.0.0.1 answering every request with ``status`` and ``body``."""
    answer = HttpAnswer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            answer.requests.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    answer.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def resolve_to_loopback(monkeypatch, suffix: str) -> None:
    """Names ending in ``suffix`` resolve to 127.0.0.1, as a hostile or broken DNS answer
    would: the egress policy must judge the address, not the name."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(suffix):
            address = ipaddress.ip_address("127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (str(address), int(port or 0)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def chunks(total: int, chunk: int = PROBE_CHUNK) -> Iterator[bytes]:
    """``total`` bytes of a repeating, position-dependent pattern, in chunks."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    number = 0
    while sent < total:
        size = min(chunk, total - sent)
        piece = bytes([number % 251]) + block[1:size] if size > 1 else block[:size]
        yield piece
        sent += size
        number += 1


class ExportBroke(Exception):
    """What a test raises inside an upload: the export failed (or was cancelled) halfway."""


def upload_and_break(destination: Any, path: str, size: int) -> Any:
    """Write ``size`` bytes to ``path``, then fail inside the upload's block; the sink."""
    sink = destination.upload(path)
    with contextlib.suppress(ExportBroke), sink:
        for chunk in chunks(size):
            sink.write(chunk)
        raise ExportBroke
    return sink
