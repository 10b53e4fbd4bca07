"""Health checks of the web process and the SFTP gateway, for container health checks and
monitoring agents: ``python -m config.healthcheck web|sftp``, exit status 0 when the process
answers, 1 with the reason when it does not.

They do not load the Django settings: a check runs every few seconds beside the process it
checks and must cost a fraction of a second. The Celery worker and beat answer
``celery -A config inspect ping`` for themselves (docker-compose.yml).

- ``web [--url URL]``: ``GET /healthz`` answers 200, so the web process, the database and Redis
  answer. The request carries the first ``ALLOWED_HOSTS`` entry as its ``Host``, or Django would
  refuse the probe with 400.
- ``sftp [--host HOST] [--port PORT]``: the gateway accepts a TCP connection and sends its SSH
  identification line. The probe sends one back before it closes, because paramiko logs a
  connection that closes before identifying itself as an error with a traceback, once per
  probe. A probe never logs in, so the defender scores it as a connection closed without a
  login: the probe's address belongs in ``SFTP_DEFENDER_SAFELIST`` (docker-compose.yml puts
  loopback there), or the gateway ends up banning its own health check.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import sys
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 5.0
# Lines a server may send before its identification line (RFC 4253, 4.2), and their length.
MAX_PREAMBLE_LINES = 20
MAX_LINE_BYTES = 255
PROBE_IDENTIFICATION = b"SSH-2.0-RailyardHealthcheck\r\n"


class Unhealthy(Exception):
    """The checked process did not answer as it should; the message says how."""


def host_header() -> str:
    """The first ``ALLOWED_HOSTS`` entry as a host name (``localhost`` for ``*`` or none)."""
    entries = [entry.strip() for entry in os.environ.get("ALLOWED_HOSTS", "").split(",")]
    first = next((entry for entry in entries if entry), "")
    # ".example.com" allows example.com and its subdomains; "*" allows anything.
    host = first.lstrip(".")
    return "localhost" if host in ("", "*") else host


def check_web(url: str, *, timeout: float = TIMEOUT_SECONDS) -> str:
    """``GET url`` must answer 200; returns the status line."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise Unhealthy(f"{url}: only http:// URLs are checked")
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers={"Host": host_header()})
        response = connection.getresponse()
        body = response.read(2048).decode("utf-8", "replace")
    except OSError as exc:
        raise Unhealthy(f"{url}: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise Unhealthy(f"{url}: {response.status} {body}")
    return f"{url}: {response.status}"


def _read_line(sock: socket.socket) -> bytes:
    """One line from the server. A gateway that turns the probe's address away (banned, over
    its limits, full) says why in a line and closes: that ends here, unhealthy."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise Unhealthy("the connection closed before the SSH identification line")
        line += chunk
        if len(line) > MAX_LINE_BYTES:
            raise Unhealthy("no SSH identification line: a line longer than 255 bytes")
    return line


def check_sftp(host: str, port: int, *, timeout: float = TIMEOUT_SECONDS) -> str:
    """The gateway at ``host:port`` must send an SSH-2.0 identification line; returns it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            for _ in range(MAX_PREAMBLE_LINES):
                line = _read_line(sock)
                if line.startswith(b"SSH-"):
                    break
            else:
                raise Unhealthy("no SSH identification line")
            if not line.startswith((b"SSH-2.0-", b"SSH-1.99-")):
                raise Unhealthy(f"not an SSH-2.0 server: {line!r}")
            sock.sendall(PROBE_IDENTIFICATION)
    except OSError as exc:
        raise Unhealthy(f"{host}:{port}: {exc}") from None
    return f"{host}:{port}: {line.decode('ascii', 'replace').strip()}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.healthcheck")
    checks = parser.add_subparsers(dest="check", required=True)
    web = checks.add_parser("web", help="GET /healthz of the web process")
    web.add_argument("--url", default="http://127.0.0.1:8000/healthz")
    sftp = checks.add_parser("sftp", help="the SFTP gateway's SSH identification line")
    sftp.add_argument("--host", default="127.0.0.1")
    sftp.add_argument("--port", type=int, default=2222)
    args = parser.parse_args(argv)
    try:
        answer = check_web(args.url) if args.check == "web" else check_sftp(args.host, args.port)
    except Unhealthy as exc:
        sys.stdout.write(f"unhealthy: {exc}\n")
        return 1
    sys.stdout.write(f"ok: {answer}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
