"""Stopping the gateway (uploads in progress finish, within a grace period) and the command."""

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import paramiko
import pytest
from django.conf import settings

from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import HOST, paramiko_sftp, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # A closing listening socket may reset a connection it had already queued.
        return True
    return False


def test_stop_lets_a_running_upload_finish_and_refuses_new_connections(feed, port, gateway):
    with (
        paramiko_sftp(port, feed.username, password=feed.password) as uploading,
        paramiko_sftp(port, feed.username, password=feed.password) as idle,
    ):
        remote = uploading.open("inventory.csv", "w")
        remote.write(b"first half,")
        remote.flush()
        stopper = threading.Thread(target=gateway.stop, kwargs={"grace": 10})
        stopper.start()

        wait_for(lambda: refuses_connections(port))
        # A session without an upload in progress is closed right away.
        wait_for(lambda: not idle.get_channel().get_transport().is_active())
        remote.write(b"second half\n")
        remote.close()

        stopper.join(timeout=10)
        assert not stopper.is_alive()
        wait_for(lambda: not uploading.get_channel().get_transport().is_active())

    feed_file = FeedFile.objects.get()
    assert feed_file.sha256 == hashlib.sha256(b"first half,second half\n").hexdigest()
    assert not SftpActivity.objects.filter(event=ActivityEvent.PARTIAL).exists()


def test_an_upload_outlasting_the_grace_is_kept_aside_as_partial(feed, port, gateway):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        remote = client.open("inventory.csv", "w")
        remote.write(b"x" * 10_000)
        remote.flush()

        gateway.stop(grace=0.2)

    partial = wait_for(lambda: SftpActivity.objects.filter(event=ActivityEvent.PARTIAL).first())
    assert partial.size == 10_000
    assert not FeedFile.objects.exists()
    assert list(feed.root.iterdir()) == []


def test_the_command_prints_the_fingerprint_serves_and_stops_on_sigterm(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATA_DIR": str(tmp_path),
        # The running suite's Redis, so the command does not start an embedded one of its own.
        "REDIS_URL": settings.REDIS_URL,
        "SFTP_ROOT_DIR": str(tmp_path / "sftp"),
    }
    command = [sys.executable, "manage.py", "run_sftp_gateway", "--host", HOST, "--port", "0"]
    process = subprocess.Popen(  # noqa: S603
        command,
        cwd=Path(settings.BASE_DIR),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        key_line = process.stdout.readline()
        listening = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", listening)
        assert match is not None, listening
        port = int(match[1])
        host_key = paramiko.PKey.from_path(str(tmp_path / "sftp_host_key"))
        assert host_key.fingerprint in key_line
        assert key_line.startswith(f"Host key {tmp_path / 'sftp_host_key'}: ssh-ed25519 SHA256:")
        with socket.create_connection((HOST, port), timeout=5) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-RailyardSFTP")

        process.send_signal(signal.SIGTERM)
        remaining, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0
    assert "SFTP gateway stopped" in remaining
