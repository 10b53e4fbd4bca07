"""The gateway while Redis is down: logins, the defender and uploads keep working from the
database, and what was received meanwhile is ingested once Redis is back.

The faults are real: the cache pointed at a loopback port nobody listens on, and a redis-server
process the test starts, stops and starts again.
"""

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from accounts.services import Actor
from sftpgateway import services
from sftpgateway.defender import REFUSAL_LINE
from sftpgateway.models import SftpActivity, SftpCredential
from syncengine.models import FeedFile, Vehicle
from tests.sftpgateway.conftest import (
    HOST,
    create_feed,
    first_bytes,
    login_refused,
    make_ed25519_key,
    paramiko_sftp,
    requires,
    wait_for,
)
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C
from tests.worker import _database_url

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def events(**filters) -> list[str]:
    return list(
        SftpActivity.objects.filter(**filters).order_by("id").values_list("event", flat=True)
    )


@pytest.fixture
def redis_unreachable(settings) -> None:
    """Django's cache pointed at a closed loopback port (requested after the API calls that set
    a test up: the API's own behaviour without Redis is not what these tests are about)."""
    default = settings.CACHES["default"]
    settings.CACHES = {"default": {**default, "LOCATION": f"redis://{HOST}:{free_port()}/0"}}
    with pytest.raises(redis.exceptions.ConnectionError):
        cache.set("probe", 1)


def test_logins_bans_and_uploads_work_while_redis_is_unreachable(
    feed, port, tmp_path, settings, redis_unreachable
):
    settings.SFTP_DEFENDER_THRESHOLD = 4
    settings.SFTP_DEFENDER_SCORE_LOGIN_FAILED = 2
    key = make_ed25519_key(tmp_path)
    services.key_add(
        credential=SftpCredential.objects.get(username=feed.username),
        actor=Actor.system(),
        name="laptop",
        public_key=key.public_line,
    )

    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(io.BytesIO(b"vin\n"), "inventory.csv")
    with paramiko_sftp(port, feed.username, pkey=key.pkey) as client:
        assert client.listdir(".") == ["inventory.csv"]
    assert login_refused(port, feed.username, "wrong", source="127.0.0.2")
    assert login_refused(port, feed.username, "wrong", source="127.0.0.2")

    assert first_bytes(port, source="127.0.0.2") == REFUSAL_LINE + b"<closed>"
    assert FeedFile.objects.get().filename == "inventory.csv"
    assert events(remote_address="127.0.0.1") == ["login", "upload", "login"]
    assert events(remote_address="127.0.0.2")[:3] == ["login_failed", "login_failed", "ban"]


def redis_start(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """A redis-server of the test's own on ``port``, answering when this returns."""
    process = subprocess.Popen(  # noqa: S603
        [
            shutil.which("redis-server") or "redis-server",
            *("--port", str(port), "--bind", HOST, "--dir", str(workdir)),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host=HOST, port=port, socket_timeout=1)
    wait_for(lambda: _answers(client), timeout=10)
    return process


def redis_stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def _environment(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "SFTP_ROOT_DIR": str(settings.SFTP_ROOT_DIR),
        "FEED_STORAGE_DIR": str(settings.FEED_STORAGE_DIR),
        **extra,
    }


@contextlib.contextmanager
def gateway_process(environment: dict[str, str], log: Path) -> Iterator[int]:
    """``manage.py run_sftp_gateway`` on a free port; yields the port."""
    with log.open("w") as stderr:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "manage.py", "run_sftp_gateway", "--host", HOST, "--port", "0"],
            cwd=Path(settings.BASE_DIR),
            env=environment,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert process.stdout is not None
            process.stdout.readline()  # the host key
            listening = re.search(r"listening on [\d.]+:(\d+)", process.stdout.readline())
            assert listening is not None, log.read_text()
            yield int(listening[1])
        finally:
            process.terminate()
            process.wait(timeout=30)


@requires("redis-server")
def test_uploads_received_while_redis_is_down_are_ingested_when_it_returns(
    tenant, sftp_settings, tmp_path
):
    feed = create_feed(tenant)
    (tmp_path / "inventory.csv").write_text(vauto_rows(ROW_A, ROW_B, ROW_C))
    redis_port = free_port()
    redis_url = f"redis://{HOST}:{redis_port}/0"
    environment = _environment(
        redis_url,
        DATA_DIR=str(tmp_path / "gateway"),
        SFTP_FAILURE_DELAY_SECONDS="0",
        SFTP_DEFENDER_THRESHOLD="4",
        SFTP_DEFENDER_SCORE_LOGIN_FAILED="2",
    )

    server = redis_start(redis_port, tmp_path)
    try:
        with gateway_process(environment, tmp_path / "gateway.log") as port:
            redis_stop(server)
            assert not _answers(redis.Redis(host=HOST, port=redis_port))

            with paramiko_sftp(port, feed.username, password=feed.password) as client:
                client.put(str(tmp_path / "inventory.csv"), "inventory.csv")
                assert client.listdir(".") == ["inventory.csv"]
            assert login_refused(port, feed.username, "wrong", source="127.0.0.2")
            assert login_refused(port, feed.username, "wrong", source="127.0.0.2")
            assert first_bytes(port, source="127.0.0.2") == REFUSAL_LINE + b"<closed>"
    finally:
        redis_stop(server)

    received = FeedFile.objects.get()
    assert (received.filename, received.status) == ("inventory.csv", "received")
    assert events(remote_address="127.0.0.1")[:2] == ["login", "upload"], list(
        SftpActivity.objects.values_list("event", "detail")
    )
    assert events(remote_address="127.0.0.2")[:3] == ["login_failed", "login_failed", "ban"]

    server = redis_start(redis_port, tmp_path)  # Redis is back
    try:
        sweep = subprocess.run(  # noqa: S603
            [
                *(sys.executable, "manage.py", "shell", "--verbosity", "0", "-c"),
                "from syncengine.jobs.sweep import jobs_sweep; print(jobs_sweep()['redispatched'])",
            ],
            cwd=Path(settings.BASE_DIR),
            env=_environment(redis_url, JOB_REDISPATCH_AFTER_SECONDS="0"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sweep.stdout.strip() == "1", sweep.stderr
        worker = subprocess.Popen(  # noqa: S603
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo"),
                *("--queues", "ingest", "--without-heartbeat", "--without-mingle"),
                "--without-gossip",
            ],
            cwd=Path(settings.BASE_DIR),
            env=_environment(redis_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: FeedFile.objects.filter(pk=received.pk, status="completed").exists(),
                timeout=90,
                interval=0.5,
            )
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    finally:
        redis_stop(server)

    assert Vehicle.objects.filter(integration=feed.integration, status="active").count() == 3
