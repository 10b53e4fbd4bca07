"""Uploads through the real gateway with real clients: what is ingested, once, and what is not."""

import hashlib
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest
from django.conf import settings

from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity
from syncengine.feeds import ingest
from syncengine.models import FeedFile
from tests.sftpgateway.conftest import (
    HOST,
    PASSWORD_AUTH,
    SSH_COMMON,
    paramiko_sftp,
    requires,
    sftp_batch,
    wait_for,
)
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B

pytestmark = pytest.mark.django_db(transaction=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(feed_file: FeedFile) -> bytes:
    return (Path(settings.FEED_STORAGE_DIR) / feed_file.stored_path).read_bytes()


def everything_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@requires("sftp", "sshpass")
def test_openssh_upload_is_received_with_its_size_and_sha256(feed, port, tmp_path, api, dispatched):
    content = b"VIN,Price,Mileage\r\n" + b"1HGCM82633A004352,$12995,45000\r\n" * 20_000
    (tmp_path / "inventory.csv").write_bytes(content)

    result = sftp_batch(
        feed.username, port, ["put inventory.csv"], password=feed.password, cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    feed_file = FeedFile.objects.get()
    assert feed_file.integration == feed.integration
    assert feed_file.filename == "inventory.csv"
    assert feed_file.size == len(content)
    assert feed_file.sha256 == sha256(content)
    assert feed_file.remote_address == "127.0.0.1"
    assert stored_bytes(feed_file) == content
    assert (feed.root / "inventory.csv").read_bytes() == content
    assert everything_under(feed.root) == ["inventory.csv"]
    assert dispatched == [str(feed_file.pk)]
    activity = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp/activity").json()["data"]
    assert [row["event"] for row in activity] == ["upload", "login"]
    assert activity[0]["feedFileId"] == str(feed_file.pk)
    assert activity[0]["sha256"] == sha256(content)
    assert activity[1]["detail"] == "Password."
    info = api.get(f"/api/v1/integrations/{feed.integration.pk}/sftp").json()["data"]
    assert info["lastLoginAt"] is not None
    assert info["lastLoginAddress"] == "127.0.0.1"


@requires("sftp", "sshpass")
def test_temporary_name_then_rename_is_ingested_exactly_once(feed, port, tmp_path, dispatched):
    (tmp_path / "inventory.csv").write_bytes(b"first\n")
    (tmp_path / "second.csv").write_bytes(b"second night\n")

    result = sftp_batch(
        feed.username,
        port,
        [
            "put inventory.csv inventory.csv.tmp",
            "rename inventory.csv.tmp inventory.csv",
            "put second.csv inventory.csv.filepart",
            "rename inventory.csv.filepart inventory.csv",
            "rename inventory.csv renamed.csv",
        ],
        password=feed.password,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    received = FeedFile.objects.order_by("received_at")
    assert [(row.filename, row.size) for row in received] == [
        ("inventory.csv", 6),
        ("inventory.csv", 13),
    ]
    assert [stored_bytes(row) for row in received] == [b"first\n", b"second night\n"]
    assert len(dispatched) == 2
    assert everything_under(feed.root) == ["renamed.csv"]


def test_plain_rename_replaces_yesterdays_file_and_ingests_it(feed, port, dispatched):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(_bytes(b"monday"), "inventory.csv")
        client.putfo(_bytes(b"tuesday"), "upload.part")
        client.rename("upload.part", "inventory.csv")  # SSH_FXP_RENAME, not posix-rename

        assert client.open("inventory.csv").read() == b"tuesday"
    assert [row.sha256 for row in FeedFile.objects.order_by("received_at")] == [
        sha256(b"monday"),
        sha256(b"tuesday"),
    ]


def test_hidden_and_temporary_names_are_kept_but_not_ingested(feed, port, dispatched):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        for name in (".hidden.csv", "a.part", "b.tmp", "c.filepart", "D.TMP"):
            client.putfo(_bytes(b"x"), name)
        client.mkdir(".staging")
        client.putfo(_bytes(b"x"), ".staging/inventory.csv")

        assert sorted(client.listdir(".")) == [
            ".hidden.csv",
            ".staging",
            "D.TMP",
            "a.part",
            "b.tmp",
            "c.filepart",
        ]
    assert not FeedFile.objects.exists()
    assert dispatched == []
    uploads = SftpActivity.objects.filter(event=ActivityEvent.UPLOAD)
    assert uploads.count() == 6
    assert all(row.feed_file_id is None for row in uploads)


def test_files_in_subdirectories_keep_their_relative_name(feed, port):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.mkdir("incoming")
        client.chdir("incoming")
        client.putfo(_bytes(b"vin\n"), "inventory.csv")

    assert FeedFile.objects.get().filename == "incoming/inventory.csv"


def test_resuming_a_file_never_changes_the_stored_copy_of_an_earlier_upload(feed, port):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(_bytes(b"part one\n"), "inventory.csv")
        with client.open("inventory.csv", "a") as appended:
            appended.write(b"part two\n")

        assert client.open("inventory.csv").read() == b"part one\npart two\n"
    first, second = FeedFile.objects.order_by("received_at")
    assert stored_bytes(first) == b"part one\n"
    assert stored_bytes(second) == b"part one\npart two\n"
    assert second.sha256 == sha256(b"part one\npart two\n")


def test_out_of_order_writes_are_hashed_correctly(feed, port):
    with (
        paramiko_sftp(port, feed.username, password=feed.password) as client,
        client.open("inventory.csv", "w") as remote,
    ):
        remote.seek(6)
        remote.write(b"world\n")
        remote.seek(0)
        remote.write(b"hello ")

    assert FeedFile.objects.get().sha256 == sha256(b"hello world\n")


def test_an_upload_over_the_size_limit_fails_and_leaves_nothing(feed, port, settings):
    settings.SFTP_MAX_FILE_SIZE = 100_000

    with (
        paramiko_sftp(port, feed.username, password=feed.password) as client,
        pytest.raises(OSError, match="maximum upload size of 100000 bytes"),
        client.open("inventory.csv", "w") as remote,
    ):
        remote.write(b"x" * 300_000)

    assert everything_under(feed.root) == []
    assert not FeedFile.objects.exists()
    failed = SftpActivity.objects.get(event=ActivityEvent.UPLOAD_FAILED)
    assert failed.path == "inventory.csv"
    assert "maximum upload size" in failed.detail


def test_a_file_being_written_is_invisible_until_closed(feed, port):
    with (
        paramiko_sftp(port, feed.username, password=feed.password) as writer,
        paramiko_sftp(port, feed.username, password=feed.password) as reader,
    ):
        remote = writer.open("inventory.csv", "w")
        remote.write(b"half of it")
        remote.flush()

        assert reader.listdir(".") == []
        assert len(os.listdir(feed.root)) == 1  # the hidden temporary file
        with pytest.raises(FileNotFoundError):
            reader.stat("inventory.csv")

        remote.close()

        assert reader.listdir(".") == ["inventory.csv"]


@requires("sftp", "sshpass")
def test_a_killed_client_never_delivers_its_partial_upload(feed, port, tmp_path, dispatched):
    (tmp_path / "inventory.csv").write_bytes(os.urandom(8 * 1024 * 1024))
    batch = tmp_path / "batch"
    batch.write_text("put inventory.csv\n")
    # -l throttles to 4 Mbit/s, so the upload is surely still running when the client dies.
    client = subprocess.Popen(  # noqa: S603
        [
            *("sshpass", "-p", feed.password, "sftp", *SSH_COMMON, *PASSWORD_AUTH, "-l", "4000"),
            *("-P", str(port), "-b", str(batch), f"{feed.username}@{HOST}"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: feed.root.is_dir() and any(p.stat().st_size for p in feed.root.iterdir()))
    finally:
        os.killpg(client.pid, signal.SIGKILL)
        client.wait(timeout=10)

    partial = wait_for(lambda: SftpActivity.objects.filter(event=ActivityEvent.PARTIAL).first())
    assert not FeedFile.objects.exists()
    assert dispatched == []
    assert everything_under(feed.root) == []
    kept = list((Path(settings.SFTP_ROOT_DIR) / ".partial" / feed.username).iterdir())
    assert len(kept) == 1
    assert kept[0].name.endswith("-inventory.csv")
    assert 0 < kept[0].stat().st_size == partial.size < 8 * 1024 * 1024
    assert partial.path == "inventory.csv"
    assert partial.credential.username == feed.username


def test_a_transport_closed_mid_write_is_partial(feed, port):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        remote = client.open("inventory.csv", "w")
        remote.write(b"x" * 100_000)
        remote.flush()
        client.get_channel().get_transport().sock.close()

    wait_for(lambda: SftpActivity.objects.filter(event=ActivityEvent.PARTIAL).exists())
    assert not FeedFile.objects.exists()
    assert everything_under(feed.root) == []


@requires("scp", "sshpass")
def test_scp_uploads_over_sftp_and_legacy_scp_is_refused(feed, port, tmp_path):
    (tmp_path / "inventory.csv").write_bytes(b"vin\n1\n")
    scp = ["sshpass", "-p", feed.password, "scp", *SSH_COMMON, *PASSWORD_AUTH, "-P", str(port)]
    target = f"{feed.username}@{HOST}:inventory.csv"

    modern = subprocess.run(  # noqa: S603
        [*scp, "inventory.csv", target], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    legacy = subprocess.run(  # noqa: S603
        [*scp, "-O", "inventory.csv", target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert modern.returncode == 0, modern.stderr
    assert FeedFile.objects.get().filename == "inventory.csv"
    assert legacy.returncode != 0
    assert FeedFile.objects.count() == 1
    assert SftpActivity.objects.filter(
        event=ActivityEvent.REFUSED, detail__contains="scp -t"
    ).exists()


def _libssh2_version() -> tuple[int, ...]:
    banner = subprocess.run(  # noqa: S603
        [shutil.which("curl") or "curl", "-V"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"libssh2/(\d+)\.(\d+)", banner)
    return (int(found[1]), int(found[2])) if found else (0, 0)


@requires("curl")
def test_curl_uploads(feed, port, tmp_path, settings):
    # libssh2 before 1.11 (curl on Debian 12) has neither encrypt-then-MAC nor AES-GCM: such a
    # partner needs SFTP_LEGACY_MACS, the operator's documented choice.
    settings.SFTP_LEGACY_MACS = _libssh2_version() < (1, 11)
    (tmp_path / "inventory.csv").write_bytes(b"vin\n2\n")

    result = subprocess.run(  # noqa: S603
        [
            *("curl", "--silent", "--show-error", "--insecure"),
            *("--user", f"{feed.username}:{feed.password}", "-T", "inventory.csv"),
            f"sftp://{HOST}:{port}/inventory.csv",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert FeedFile.objects.get().sha256 == sha256(b"vin\n2\n")


@requires("sftp", "sshpass")
def test_directory_and_file_operations_work_inside_the_root(feed, port, tmp_path):
    (tmp_path / "a.csv").write_bytes(b"a")

    result = sftp_batch(
        feed.username,
        port,
        [
            "mkdir archive",
            "put a.csv archive/a.csv",
            "rename archive/a.csv archive/b.csv",
            "ls -l archive",
            "get archive/b.csv downloaded.csv",
            "rm archive/b.csv",
            "rmdir archive",
            "ls",
        ],
        password=feed.password,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "b.csv" in result.stdout
    assert (tmp_path / "downloaded.csv").read_bytes() == b"a"
    assert everything_under(feed.root) == []


def test_many_sessions_upload_concurrently(feed, port, settings):
    settings.SFTP_MAX_SESSIONS_PER_USER = 4
    errors: list[BaseException] = []

    def upload(number: int) -> None:
        try:
            with paramiko_sftp(port, feed.username, password=feed.password) as client:
                client.putfo(_bytes(f"file {number}\n".encode() * 1000), f"part-{number}.csv")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(FeedFile.objects.values_list("filename", flat=True)) == [
        f"part-{number}.csv" for number in range(4)
    ]


def _bytes(data: bytes):

    return io.BytesIO(data)


def test_paramiko_sees_the_limits_extension(feed, port):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        transport = client.get_channel().get_transport()

        assert isinstance(transport, paramiko.Transport)
        assert transport.remote_cipher in ("aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com")


FORGED = "2026-01-05 10:00:00,000 INFO sftpgateway.server SFTP login: admin from 203.0.113.9"


def test_a_file_name_cannot_forge_a_log_line(feed, port, caplog):
    caplog.set_level(logging.INFO)

    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(_bytes(b"vin\n"), f"inventory.csv\n{FORGED}")
        client.putfo(_bytes(b"vin\n"), f"x\n{FORGED}.part")
        client.rename(f"x\n{FORGED}.part", "renamed.csv")

    lines = caplog.text.splitlines()
    assert not [line for line in lines if "SFTP login: admin" in line and "\\n" not in line]
    received = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Received ")]
    assert received[0].startswith(f"Received inventory.csv\\n{FORGED} from {feed.username}")
    assert all("\n" not in r.getMessage() for r in caplog.records)
    renamed = SftpActivity.objects.get(path="renamed.csv")
    assert renamed.detail == f"Renamed from x\\n{FORGED}.part."
    # The received-file row and the activity keep the real name, as the file system has it.
    assert FeedFile.objects.filter(filename=f"inventory.csv\n{FORGED}").exists()


LONG_NAMES = {
    "ascii-255-bytes": "a" * 251 + ".csv",
    "two-byte-254-bytes": "\u00e9" * 125 + ".csv",
    "three-byte-255-bytes": "\u4fa1" * 83 + "ab.csv",
}


@pytest.mark.parametrize("name", LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_names_up_to_255_bytes_are_received_recorded_and_ingested(feed, port, name):
    content = vauto_rows(ROW_A, ROW_B).encode()
    assert len(name.encode()) <= 255

    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.putfo(_bytes(content), name)

        assert client.listdir(".") == [name]
    feed_file = FeedFile.objects.get()
    assert feed_file.filename == name
    assert stored_bytes(feed_file) == content
    assert SftpActivity.objects.get(event=ActivityEvent.UPLOAD).path == name
    ingest.feed_file_ingest(feed_file_id=str(feed_file.pk))
    feed_file.refresh_from_db()
    assert feed_file.status == "completed", feed_file.error


def test_a_name_over_255_bytes_gets_a_clear_error(feed, port):
    name = "\u00e9" * 126 + ".csv"  # 256 bytes

    with (
        paramiko_sftp(port, feed.username, password=feed.password) as client,
        pytest.raises(OSError, match="has 256 bytes; names may have at most 255 bytes"),
    ):
        client.putfo(_bytes(b"vin\n"), name)

    assert everything_under(feed.root) == []
    assert not FeedFile.objects.exists()
    refused = SftpActivity.objects.get(event=ActivityEvent.REFUSED)
    assert "at most 255 bytes" in refused.detail


def test_a_feed_path_longer_than_its_row_holds_is_refused_before_upload(feed, port):
    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        client.mkdir("d" * 200)

        with pytest.raises(OSError, match="may have at most 255"):
            client.putfo(_bytes(b"vin\n"), "d" * 200 + "/" + "f" * 60 + ".csv")
        client.putfo(_bytes(b"vin\n"), "d" * 200 + "/" + "f" * 50 + ".csv")

    assert FeedFile.objects.get().filename == "d" * 200 + "/" + "f" * 50 + ".csv"


def test_a_partial_upload_with_a_long_name_is_kept_aside(feed, port):
    name = "\u00e9" * 125 + ".csv"

    with paramiko_sftp(port, feed.username, password=feed.password) as client:
        remote = client.open(name, "w")
        remote.write(b"x" * 10_000)
        remote.flush()
        client.get_channel().get_transport().sock.close()

    partial = wait_for(lambda: SftpActivity.objects.filter(event=ActivityEvent.PARTIAL).first())
    assert partial.path == name
    kept = list((Path(settings.SFTP_ROOT_DIR) / ".partial" / feed.username).iterdir())
    assert len(kept) == 1
    assert len(kept[0].name.encode()) <= 255
    assert kept[0].name.endswith("\u00e9" * 10)  # cut by bytes, on a character boundary
    assert everything_under(feed.root) == []
