"""The sftp connector against a real OpenSSH sshd (its own config, host key and authorized key)
on a free loopback port."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from connectors.files import RemoteFileError
from connectors.models import Connection
from connectors.registry import ConnectorError, get_connector
from connectors.sftp import SftpConnector
from tests.connectors.storage_support import (
    chunks,
    production_default,  # noqa: F401 - a fixture
    tcp_listener,
    upload_and_break,
)
from tests.servers import SshServer
from tests.sshkeys import write_private_key

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/connections"
OTHER_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def folder(sshd: SshServer) -> Path:
    path = sshd.workspace / secrets.token_hex(4)
    path.mkdir()
    return path


def config_for(server: SshServer, folder: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "hostKey": server.host_key,
        "directory": str(folder),
        **overrides,
    }


def store(server: SshServer, folder: Path, credentials: dict | None = None, **config: Any):
    return SftpConnector(
        config=config_for(server, folder, **config),
        credentials=credentials or {"privateKey": server.private_key},
    )


def tree(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def write_files(folder: Path, files: dict[str, tuple[bytes, int]]) -> None:
    for name, (content, mtime) in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (mtime, mtime))


# --- catalog, config and credentials ----------------------------------------------------------


def test_is_a_storage_source_and_destination(api):
    body = api.get("/api/v1/integrations/connectors/sftp").json()["data"]

    assert body["category"] == "STORAGE"
    assert body["secretFields"] == ["passphrase", "password", "privateKey"]
    assert {"host", "port", "username", "directory", "hostKey", "pattern", "archivePath"} <= set(
        body["configSchema"]["properties"]
    )
    connector = get_connector("sftp")
    assert connector is not None
    assert (connector.is_source, connector.feeds_files, connector.writes_files) == (
        True,
        True,
        True,
    )


def test_a_connection_without_a_pinned_host_key_is_a_400(api):
    response = api.post(
        URL,
        {
            "connectorId": "sftp",
            "name": "Partner SFTP",
            "config": {"host": "sftp.example.com", "username": "acme", "hostKey": "not a key"},
            "credentials": {"password": "secret"},
        },
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"config.hostKey"}
    assert not Connection.objects.exists()


def test_a_connection_made_through_the_api_tests_read_write_and_delete(api, sshd, folder):
    created = api.post(
        URL,
        {
            "connectorId": "sftp",
            "name": "Partner SFTP",
            "config": config_for(sshd, folder),
            "credentials": {"privateKey": sshd.private_key},
        },
        format="json",
    )
    assert created.status_code == 201, created.content

    tested = api.post(f"{URL}/{created.json()['data']['connectionId']}/test")

    assert tested.status_code == 200, tested.content
    body = tested.json()["data"]
    assert body["success"] is True, body
    assert body["permissions"] == ["read", "write", "delete"]
    assert body["version"].startswith("SSH-2.0-OpenSSH_")
    assert tree(folder) == []


def test_a_wrong_password_fails_the_test_and_is_not_retryable(sshd, folder):
    connector = store(sshd, folder, {"password": "not-the-password"})

    result = connector.test()

    assert result.success is False
    assert result.error == (
        f"Authentication failed: {sshd.host}:{sshd.port} refused the login of {sshd.username}."
    )
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()
    assert raised.value.retryable is False


def test_a_key_that_is_not_authorized_is_refused(sshd, folder, tmp_path):
    write_private_key(ed25519.Ed25519PrivateKey.generate(), tmp_path / "other")
    other = {"privateKey": (tmp_path / "other").read_text()}

    result = store(sshd, folder, other).test()

    assert result.success is False
    assert result.error == (f"{sshd.host}:{sshd.port} refused the private key of {sshd.username}.")


def test_a_server_with_another_host_key_is_refused_before_logging_in(sshd, folder):
    result = store(sshd, folder, hostKey=OTHER_HOST_KEY).test()

    assert result.success is False
    assert str(result.error).startswith(f"Host key mismatch: {sshd.host}:{sshd.port} presented")


def test_a_missing_folder_fails_the_test_and_is_not_retryable(sshd, folder):
    connector = store(sshd, folder / "missing")

    result = connector.test()

    assert result.success is False
    assert result.error == (
        f"Remote folder {folder / 'missing'}: no such file or folder on {sshd.host}:{sshd.port}."
    )
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()
    assert raised.value.retryable is False


# --- as a source ---------------------------------------------------------------------------------


def test_lists_the_files_of_the_folder_that_match_the_glob_oldest_first(sshd, folder):
    write_files(
        folder,
        {
            "inventory-2.csv": (b"bb", 1_700_000_200),
            "inventory-1.CSV": (b"a", 1_700_000_100),
            ".inventory-hidden.csv": (b"c", 1_700_000_000),
            "notes.txt": (b"d", 1_700_000_000),
            "deeper/inventory-3.csv": (b"e", 1_700_000_000),
        },
    )
    connector = store(sshd, folder, pattern="inventory-*.csv")

    files = connector.list_files()

    assert [(remote.name, remote.size, remote.mtime) for remote in files] == [
        ("inventory-1.CSV", 1, 1_700_000_100),
        ("inventory-2.csv", 2, 1_700_000_200),
    ]
    assert files[0].path == f"{folder}/inventory-1.CSV"
    newer = connector.read("files", cursor=1_700_000_100)
    assert [record["name"] for batch in newer for record in batch.records] == ["inventory-2.csv"]


def test_downloads_a_file_with_its_sha256_and_archives_it(sshd, folder, tmp_path):
    content = b"stock,vin\n1,1HGCM82633A004352\n" * 100_000
    write_files(
        folder, {"feed.csv": (content, 1_700_000_000), "done/feed.csv": (b"old", 1_700_000_000)}
    )
    connector = store(sshd, folder, archivePath="done")

    with connector.session():
        [remote] = connector.list_files()
        sha256 = connector.download(remote, tmp_path / "feed.csv")
        archived_to = connector.archive(remote)

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "feed.csv").read_bytes() == content
    assert archived_to == f"{folder}/done/feed-1.csv"
    assert tree(folder) == ["done/feed-1.csv", "done/feed.csv"]


def test_a_vanished_file_is_that_files_error_alone(sshd, folder, tmp_path):
    write_files(folder, {"feed.csv": (b"x", 1_700_000_000)})
    connector = store(sshd, folder)
    [remote] = connector.list_files()
    (folder / "feed.csv").unlink()

    with pytest.raises(RemoteFileError) as raised:
        connector.download(remote, tmp_path / "feed.csv")

    assert raised.value.message == (
        f"Downloading {folder}/feed.csv: no such file or folder on {sshd.host}:{sshd.port}."
    )


# --- as a destination -----------------------------------------------------------------------------


def test_an_upload_appears_whole_under_its_name_only_when_complete(sshd, folder):
    connector = store(sshd, folder)
    total = 3 * 1024 * 1024
    digest = hashlib.sha256()
    seen_while_writing: list[list[str]] = []

    with connector.upload("vehicles/2025/stock list.csv") as sink:
        for number, chunk in enumerate(chunks(total)):
            sink.write(chunk)
            digest.update(chunk)
            if number == 1:
                seen_while_writing.append(sorted(os.listdir(folder / "vehicles" / "2025")))

    [[temporary]] = seen_while_writing
    assert temporary.startswith(".stock list.csv.")
    assert temporary.endswith(".part")
    assert tree(folder) == ["vehicles/2025/stock list.csv"]
    target = folder / "vehicles" / "2025" / "stock list.csv"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest.hexdigest()
    assert sink.delivered.as_dict() == {
        "uri": f"sftp://{sshd.host}:{sshd.port}{folder}/vehicles/2025/stock list.csv",
        "path": "vehicles/2025/stock list.csv",
        "bytes": total,
        "sha256": digest.hexdigest(),
    }


def test_an_upload_replaces_an_existing_file(sshd, folder):
    write_files(folder, {"report.csv": (b"yesterday", 1_700_000_000)})

    with store(sshd, folder).upload("report.csv") as sink:
        sink.write(b"today")

    assert (folder / "report.csv").read_bytes() == b"today"
    assert tree(folder) == ["report.csv"]


def test_a_failure_halfway_leaves_nothing_and_no_temporary_file(sshd, folder):
    write_files(folder, {"report.csv": (b"the previous report", 1_700_000_000)})
    connector = store(sshd, folder)

    with connector.session():
        replaced = upload_and_break(connector, "report.csv", 2 * 1024 * 1024)
        fresh = upload_and_break(connector, "sub/new.csv", 2 * 1024 * 1024)

    assert tree(folder) == ["report.csv"]
    assert (folder / "report.csv").read_bytes() == b"the previous report"
    for sink in (replaced, fresh):
        with pytest.raises(ValueError, match="aborted"):
            sink.delivered  # noqa: B018


def test_an_upload_path_may_not_leave_the_directory(sshd, folder):
    (folder / "inner").mkdir()
    connector = store(sshd, folder / "inner")

    for path in ("../x.csv", "/etc/cron.d/x", "a/../../b.csv", ""):
        with pytest.raises(ConnectorError) as raised:
            connector.upload(path)
        assert raised.value.retryable is False

    assert tree(folder) == []


def test_uploads_in_parallel_threads_each_use_their_own_session(sshd, folder):
    errors: list[BaseException] = []

    def deliver(number: int) -> None:
        try:
            with store(sshd, folder).upload(f"part-{number}.csv") as sink:
                sink.write(f"{number}\n".encode() * 1000)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=deliver, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert tree(folder) == [f"part-{number}.csv" for number in range(4)]


# --- egress and failures --------------------------------------------------------------------------


def test_the_server_is_refused_by_the_default_egress_policy(
    production_default,  # noqa: F811
    sshd,
    folder,
):
    result = store(sshd, folder).test()

    assert result.success is False
    assert result.error == (
        f"Connections to {sshd.host}:{sshd.port} are refused by the egress policy: "
        "127.0.0.1 is a loopback address."
    )


def test_a_dropped_connection_is_retryable(sshd, folder):
    with tcp_listener("drop") as listener:
        connector = store(sshd, folder, port=listener.port)

        with pytest.raises(ConnectorError) as raised, connector.upload("a.csv") as sink:
            sink.write(b"x")

    assert raised.value.retryable is True
    assert len(listener.accepted) == 1
