"""The real gateway on an ephemeral port, real clients (OpenSSH sftp/ssh/scp, curl, paramiko).

Gateway tests use ``transactional_db``: the gateway's threads have their own database
connections and only see committed rows.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import paramiko
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.cache import cache

from integrations.models import Integration
from sftpgateway.server import SftpGateway, host_key_load_or_create
from tests.factories import DealershipFactory
from tests.sshkeys import write_private_key

HOST = "127.0.0.1"
SSH_COMMON = [
    "-F",
    "/dev/null",
    "-oStrictHostKeyChecking=no",
    "-oUserKnownHostsFile=/dev/null",
    "-oLogLevel=ERROR",
    "-oConnectTimeout=10",
]
PASSWORD_AUTH = [
    "-oBatchMode=no",
    "-oPubkeyAuthentication=no",
    "-oPreferredAuthentications=password",
    "-oNumberOfPasswordPrompts=1",
]


def requires(*tools: str) -> pytest.MarkDecorator:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy (returning it), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"still false after {timeout} s: {predicate}")
        time.sleep(interval)


@dataclass
class Feed:
    """A feed integration created through the API, with the SFTP login its response carried."""

    integration: Integration
    host: str
    port: int
    username: str
    password: str

    @property
    def root(self) -> Path:
        from django.conf import settings

        return Path(settings.SFTP_ROOT_DIR) / self.username


# For tests that need a cache no other test touches: a Redis database of their own, from which
# they remove only their own keys. (The gateway itself keeps nothing in Redis.)
PRIVATE_REDIS_DB = 15


def _redis_location(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(name, value) for name, value in parse_qsl(parts.query) if name != "db"]
        # urlunsplit would drop the empty host, and redis-py wants unix:///path.
        return f"unix://{parts.path}?{urlencode([*query, ('db', str(db))])}"
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture
def private_cache(settings):
    default = settings.CACHES["default"]
    settings.CACHES = {
        "default": {**default, "LOCATION": _redis_location(default["LOCATION"], PRIVATE_REDIS_DB)}
    }
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    for key in client.scan_iter(f"{default['KEY_PREFIX']}:*"):
        client.delete(key)
    return cache


@pytest.fixture
def sftp_settings(settings, tmp_path):
    settings.SFTP_ROOT_DIR = tmp_path / "sftp"
    settings.SFTP_PARTIAL_DIR = tmp_path / "sftp" / ".partial"
    settings.FEED_STORAGE_DIR = tmp_path / "feeds"
    settings.SFTP_PUBLIC_HOST = HOST
    settings.SFTP_FAILURE_DELAY_SECONDS = 0
    settings.SFTP_SESSION_RECHECK_SECONDS = 0.3
    # Tests connect from 127.0.0.1 back to back; the per-address limits and the defender have
    # tests of their own, which set them lower.
    settings.SFTP_CONNECTION_BURST_PER_ADDRESS = 1000
    settings.SFTP_CONNECTION_RATE_PER_ADDRESS = 60_000
    settings.SFTP_MAX_UNAUTHENTICATED_PER_ADDRESS = 50
    settings.SFTP_DEFENDER_THRESHOLD = 1000
    return settings


@pytest.fixture(scope="session")
def host_key(tmp_path_factory):
    return host_key_load_or_create(tmp_path_factory.mktemp("hostkey") / "sftp_host_key")


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    """Feed files handed to the worker queue. The worker side belongs to the sync engine (and
    has its own tests); here it is enough to see each upload dispatched exactly once."""
    ids: list[str] = []
    monkeypatch.setattr(
        "syncengine.feeds.services.dispatch_ingest",
        lambda feed_file_id: ids.append(str(feed_file_id)),
    )
    return ids


@pytest.fixture
def gateway(sftp_settings, host_key, transactional_db, dispatched) -> Iterator[SftpGateway]:
    server = SftpGateway(host=HOST, port=0, host_key=host_key)
    server.start()
    # Credentials issued from now on name the port the test gateway really listens on.
    sftp_settings.SFTP_PORT = server.address[1]
    yield server
    server.stop(grace=2)


@pytest.fixture
def port(gateway) -> int:
    return gateway.address[1]


def create_feed(tenant, type_: str = "vauto") -> Feed:
    dealership = DealershipFactory(account=tenant.account)
    response = tenant.client.post(
        "/api/v1/integrations",
        {"dealershipId": str(dealership.pk), "type": type_, "name": f"{type_} feed"},
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    return Feed(integration=Integration.objects.get(pk=data["id"]), **data["sftp"])


@pytest.fixture
def feed(tenant, gateway) -> Feed:
    return create_feed(tenant)


def sftp_batch(
    username: str,
    port: int,
    commands: list[str],
    *,
    password: str | None = None,
    identity: Path | None = None,
    cwd: Path | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run OpenSSH ``sftp -b`` with a password (through sshpass) or a key file."""
    workdir = cwd or Path.cwd()
    batch = workdir / f".batch-{time.monotonic_ns()}"
    batch.write_text("\n".join(commands) + "\n")
    if identity is not None:
        auth = [
            "-oBatchMode=yes",
            "-oIdentitiesOnly=yes",
            "-oPasswordAuthentication=no",
            "-i",
            str(identity),
        ]
        prefix: list[str] = []
    else:
        assert password is not None
        auth = PASSWORD_AUTH
        prefix = ["sshpass", "-p", password]
    command = [
        *prefix,
        "sftp",
        *SSH_COMMON,
        *auth,
        *extra,
        "-P",
        str(port),
        "-b",
        str(batch),
        f"{username}@{HOST}",
    ]
    try:
        return subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=timeout, cwd=workdir, check=False
        )
    finally:
        batch.unlink()


@contextlib.contextmanager
def paramiko_sftp(
    port: int,
    username: str,
    *,
    password: str | None = None,
    pkey: Any = None,
    source_address: str | None = None,
) -> Iterator[Any]:
    """A paramiko SFTPClient logged into the gateway; raises AuthenticationException if refused."""
    sock = socket.create_connection(
        (HOST, port), timeout=10, source_address=(source_address, 0) if source_address else None
    )
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        if pkey is not None:
            transport.auth_publickey(username, pkey)
        else:
            transport.auth_password(username, password)
        client = paramiko.SFTPClient.from_transport(transport)
        client.transport = transport
        yield client
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        transport.close()


def login_refused(port: int, username: str, password: str, source: str | None = None) -> bool:
    try:
        with paramiko_sftp(port, username, password=password, source_address=source):
            return False
    except paramiko.AuthenticationException:
        return True


def first_bytes(port: int, *, source: str | None = None, timeout: float = 5.0) -> bytes:
    """Connect, say nothing, and return what the gateway sends until it closes or ``timeout``
    passes: its SSH banner for a connection it serves, a refusal line and the end for one it
    turns away."""
    with socket.create_connection(
        (HOST, port), timeout=timeout, source_address=(source, 0) if source else None
    ) as sock:
        received = b""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while time.monotonic() < deadline:
                chunk = sock.recv(256)
                if not chunk:
                    return received + b"<closed>"
                received += chunk
                if received.startswith(b"SSH-") and received.endswith(b"\n"):
                    return received
        return received


@dataclass
class KeyPair:
    private_path: Path
    public_line: str
    pkey: Any


def make_ed25519_key(directory: Path, name: str = "id_ed25519") -> KeyPair:
    path = directory / name
    public = write_private_key(ed25519.Ed25519PrivateKey.generate(), path)
    return KeyPair(
        private_path=path,
        public_line=f"{public} partner@example",
        pkey=paramiko.Ed25519Key.from_private_key_file(str(path)),
    )
