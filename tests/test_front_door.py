"""The way in: the embedded Redis CLI, and the process files agreeing with the code."""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import devenv
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


def manage(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``manage.py`` run from a shell: a process of its own, with ``environment`` only."""
    return subprocess.run(  # noqa: S603 - the interpreter running the tests, fixed arguments
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def embedded_environment(data_dir: Path) -> dict[str, str]:
    """This environment without a database or Redis URL: the embedded defaults in ``data_dir``."""
    environment = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")
    }
    return environment | {"DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "tests.settings"}


def env_values(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_a_command_that_starts_the_embedded_redis_stops_it_when_it_exits(short_tmp_dir):
    # A manage.py command run without `make run` around it: its settings start the embedded
    # Redis, and nothing is left running once it has finished
    ran = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.REDIS_URL)",
        environment=embedded_environment(short_tmp_dir),
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1] == f"unix://{short_tmp_dir / 'redis' / 'redis.sock'}"
    status = embedded_redis("status", str(short_tmp_dir / "redis"))
    assert status.stdout == "not running\n"


def test_a_redis_started_for_the_whole_stack_outlives_each_command(short_tmp_dir):
    # Given the embedded Redis started the way `make run` starts it
    embedded_redis("start", str(short_tmp_dir / "redis"))

    # When a command of the stack uses it and exits
    ran = manage("check", environment=embedded_environment(short_tmp_dir))

    # Then it is still there for the others
    assert ran.returncode == 0, ran.stderr
    assert embedded_redis("status", str(short_tmp_dir / "redis")).stdout == "running\n"
    embedded_redis("stop", str(short_tmp_dir / "redis"))


def test_the_development_env_file_is_written_once_with_fresh_secrets(tmp_path):
    path = tmp_path / ".env"

    assert devenv.write(path) is True
    first = path.read_text()
    assert devenv.write(path) is False
    assert path.read_text() == first
    values = env_values(path)
    assert set(values) == {"SECRET_KEY", "FIELD_ENCRYPTION_KEY"}
    assert all(len(value) >= 32 for value in values.values())
    assert devenv.write(tmp_path / "other.env")
    assert (tmp_path / "other.env").read_text() != first
    assert path.stat().st_mode & 0o777 == 0o600


def test_manage_py_commands_work_from_a_shell_with_the_development_env(tmp_path):
    # Given the .env `make run` writes, and neither DEBUG nor the secrets in the environment
    devenv.write(tmp_path / ".env")
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE")
    }
    # (the settings read ROOT/.env; its values stand in for it here, as a real one may exist)
    ran = manage("check", environment=environment | env_values(tmp_path / ".env"))

    assert ran.returncode == 0, ran.stderr
    assert "System check identified no issues" in ran.stdout


def test_a_stack_started_while_a_command_runs_keeps_the_redis_when_the_command_exits(
    short_tmp_dir,
):
    # Given a command that started the embedded Redis for itself and is still running
    command = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import sys; print('ready', flush=True); sys.stdin.readline()",
        ],
        cwd=ROOT,
        env=embedded_environment(short_tmp_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert command.stdout is not None
    lines = iter(command.stdout.readline, "")  # until the command's output ends
    assert "ready" in (line.strip() for line in lines)

    # When `make run` starts the stack on it, and then the command exits
    embedded_redis("start", str(short_tmp_dir / "redis"))
    command.communicate("\n", timeout=60)

    # Then the stack's Redis is still there
    assert embedded_redis("status", str(short_tmp_dir / "redis")).stdout == "running\n"
    embedded_redis("stop", str(short_tmp_dir / "redis"))
