"""Other clients partners use: lftp and rclone (skipped where they are not installed)."""

import hashlib
import shutil
import subprocess

import pytest

from syncengine.models import FeedFile
from tests.sftpgateway.conftest import HOST, requires

pytestmark = pytest.mark.django_db(transaction=True)

SSH_FOR_LFTP = "ssh -a -x -F /dev/null -oStrictHostKeyChecking=no -oUserKnownHostsFile=/dev/null"


@requires("lftp", "ssh")
def test_lftp_uploads(feed, port, tmp_path):
    content = b"vin,price\n" * 5000
    (tmp_path / "inventory.csv").write_bytes(content)
    script = "; ".join(
        [
            f'set sftp:connect-program "{SSH_FOR_LFTP}"',
            "set sftp:auto-confirm yes",
            "set net:max-retries 1",
            "put inventory.csv",
            "mkdir incoming",
            "mv inventory.csv incoming/kept.csv",
            "ls incoming",
            "bye",
        ]
    )

    result = subprocess.run(  # noqa: S603
        [
            *("lftp", "-u", f"{feed.username},{feed.password}"),
            *("-p", str(port), "-e", script, f"sftp://{HOST}"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stderr
    assert "kept.csv" in result.stdout
    assert FeedFile.objects.get().sha256 == hashlib.sha256(content).hexdigest()
    assert (feed.root / "incoming" / "kept.csv").read_bytes() == content


@requires("rclone")
def test_rclone_uploads(feed, port, tmp_path):
    # rclone also probes for md5sum/sha1sum over exec; those are refused (and logged) and it
    # carries on without remote hashes.
    content = b"vin,price\n" * 5000
    (tmp_path / "inventory.csv").write_bytes(content)
    rclone = shutil.which("rclone") or "rclone"
    obscured = subprocess.run(  # noqa: S603
        [rclone, "obscure", feed.password], capture_output=True, text=True, check=True
    ).stdout.strip()
    remote = [
        f"--sftp-host={HOST}",
        f"--sftp-port={port}",
        f"--sftp-user={feed.username}",
        f"--sftp-pass={obscured}",
        "--config=/dev/null",
        "--retries=1",
    ]

    result = subprocess.run(  # noqa: S603
        [rclone, "copyto", "inventory.csv", ":sftp:inventory.csv", *remote],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    listed = subprocess.run(  # noqa: S603
        [rclone, "lsf", ":sftp:", *remote], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert FeedFile.objects.get().sha256 == hashlib.sha256(content).hexdigest()
    assert listed.stdout.split() == ["inventory.csv"]
