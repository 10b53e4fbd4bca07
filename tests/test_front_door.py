"""The way in: the embedded Redis CLI, and the process files agreeing with the code."""

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.celery import QUEUES

ROOT = Path(__file__).resolve().parent.parent


def embedded_redis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the interpreter running the tests, fixed arguments
        [sys.executable, "-m", "config.embedded_redis", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def short_tmp_dir() -> Iterator[Path]:
    # A unix socket path must fit in 107 bytes; pytest's tmp_path can be longer than that.
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="ry-"))
    yield directory
    embedded_redis("stop", str(directory))
    shutil.rmtree(directory, ignore_errors=True)


def test_embedded_redis_starts_answers_and_stops(short_tmp_dir):
    started = embedded_redis("start", str(short_tmp_dir))

    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    assert url == f"unix://{short_tmp_dir}/redis.sock"
    client = redis.Redis.from_url(url)
    assert client.ping() is True
    client.close()
    status = embedded_redis("status", str(short_tmp_dir))
    assert (status.returncode, status.stdout.strip()) == (0, "running")

    again = embedded_redis("start", str(short_tmp_dir))
    assert (again.returncode, again.stdout.strip()) == (0, url)

    stopped = embedded_redis("stop", str(short_tmp_dir))

    assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
    status = embedded_redis("status", str(short_tmp_dir))
    assert (status.returncode, status.stdout.strip()) == (1, "not running")
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_embedded_redis_stop_without_a_server_says_so(short_tmp_dir):
    stopped = embedded_redis("stop", str(short_tmp_dir))

    assert (stopped.returncode, stopped.stdout.strip()) == (0, "not running")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_runs_web_worker_beat_and_the_sftp_gateway():
    processes = procfile()

    assert set(processes) == {"web", "worker", "beat", "sftp"}
    assert processes["sftp"] == "python manage.py run_sftp_gateway"
    assert "0.0.0.0:8000" in processes["web"]
    assert f"-Q {','.join(QUEUES)} " in processes["worker"]
    assert processes["beat"].startswith("celery -A config beat")


def test_compose_worker_consumes_every_queue():
    compose = (ROOT / "docker-compose.yml").read_text()

    assert f"- {','.join(QUEUES)}\n" in compose


def test_env_example_documents_every_variable_the_settings_read():
    source = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', source))
    read |= set(re.findall(r'_required_secret\(\s*"([A-Z][A-Z0-9_]*)"', source))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))

    assert read, "no env(...) calls found in config/settings.py"
    assert read - documented == set()
