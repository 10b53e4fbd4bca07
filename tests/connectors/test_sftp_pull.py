"""The sftp_pull connector against Railyard's own SFTP gateway on an ephemeral port.

Integration A is a vauto feed whose partner uploads over the gateway; the connector logs in with
A's SFTP credentials and the gateway's pinned host key, as a customer's pull would.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest

from connectors.models import Connection
from connectors.registry import ConnectorError, EntitySpec, get_connector
from connectors.sftp_pull import SftpPullConnector
from sftpgateway.choices import ActivityEvent
from sftpgateway.models import SftpActivity
from tests.sftpgateway import conftest as gateway_conftest
from tests.sftpgateway.conftest import HOST, Feed, make_ed25519_key, paramiko_sftp

pytestmark = pytest.mark.django_db(transaction=True)

# The gateway's fixtures (a real gateway on an ephemeral port, feed integrations with their SFTP
# logins), made available to this module under their own names.
private_cache = gateway_conftest.private_cache
sftp_settings = gateway_conftest.sftp_settings
host_key = gateway_conftest.host_key
dispatched = gateway_conftest.dispatched
gateway = gateway_conftest.gateway
port = gateway_conftest.port
feed = gateway_conftest.feed


CONNECTIONS_URL = "/api/v1/integrations/connections"
BASE_MTIME = 1_700_000_000


def pin_of(key: Any) -> str:
    """A host key as the line an operator pastes into hostKey."""
    return f"{key.get_name()} {key.get_base64()}"


def upload(feed: Feed, port: int, files: dict[str, tuple[bytes, int]], folder: str = "") -> None:
    """Upload ``{name: (content, mtime)}`` as the partner of ``feed``, in one session."""
    with paramiko_sftp(port, feed.username, password=feed.password) as sftp:
        if folder:
            sftp.mkdir(folder)
        for name, (content, mtime) in files.items():
            path = f"{folder}/{name}" if folder else name
            with sftp.open(path, "wb") as remote:
                remote.write(content)
            sftp.utime(path, (mtime, mtime))


def pull_config(feed: Feed, port: int, host_key: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "host": HOST,
        "port": port,
        "username": feed.username,
        "hostKey": pin_of(host_key),
        **overrides,
    }


def connector_for(
    feed: Feed, port: int, host_key: Any, *, password: str | None = None, **config: Any
) -> SftpPullConnector:
    return SftpPullConnector(
        config=pull_config(feed, port, host_key, **config),
        credentials={"password": feed.password if password is None else password},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def logins(feed: Feed) -> list[str]:
    return list(
        SftpActivity.objects.filter(
            username=feed.username, event__in=[ActivityEvent.LOGIN, ActivityEvent.LOGIN_FAILED]
        ).values_list("event", flat=True)
    )


# --- catalog and config --------------------------------------------------------------------


def test_is_a_storage_source_with_a_files_entity():
    connector = get_connector("sftp_pull")

    assert connector is SftpPullConnector
    assert connector.category == "STORAGE"
    assert connector.is_source is True
    assert connector.entities == ["files"]
    assert connector.sync_modes == ["FULL", "INCREMENTAL"]
    assert connector.secret_fields() == ["passphrase", "password", "privateKey"]


def test_create_without_host_key_is_a_validation_error(api):
    response = api.post(
        CONNECTIONS_URL,
        {
            "connectorId": "sftp_pull",
            "name": "Partner SFTP",
            "config": {"host": "sftp.example.com", "username": "dealer"},
            "credentials": {"password": "s3cret-pass"},
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "config.hostKey" in error["details"]
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    "host_key_value",
    ["not a key", "SHA256:short", "ssh-ed25519", "ssh-ed25519 !!!notbase64"],
)
def test_create_with_a_malformed_host_key_is_a_validation_error(api, host_key_value):
    response = api.post(
        CONNECTIONS_URL,
        {
            "connectorId": "sftp_pull",
            "name": "Partner SFTP",
            "config": {"host": "sftp.example.com", "username": "dealer", "hostKey": host_key_value},
            "credentials": {"password": "s3cret-pass"},
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    assert "config.hostKey" in response.json()["error"]["details"]


def test_create_and_test_through_the_api(api, feed, port, host_key):
    response = api.post(
        CONNECTIONS_URL,
        {
            "connectorId": "sftp_pull",
            "name": "Partner SFTP",
            "config": pull_config(feed, port, host_key, pattern="*.csv"),
            "credentials": {"password": feed.password},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()["data"]
    assert body["credentialKeys"] == ["password"]
    assert feed.password not in response.content.decode()

    tested = api.post(f"{CONNECTIONS_URL}/{body['connectionId']}/test")

    assert tested.status_code == 200, tested.content
    result = tested.json()["data"]
    assert result["success"] is True, result
    assert result["version"] == "SSH-2.0-RailyardSFTP"
    assert result["permissions"] == ["read"]


# --- test() --------------------------------------------------------------------------------


def test_test_reports_the_banner_and_latency(feed, port, host_key):
    result = connector_for(feed, port, host_key).test()

    assert result.success is True, result.error
    assert result.version == "SSH-2.0-RailyardSFTP"
    assert isinstance(result.latency_ms, int)
    assert result.latency_ms >= 0
    assert result.permissions == ["read"]
    assert result.error is None


def test_a_fingerprint_pin_is_accepted(feed, port, host_key):
    result = connector_for(feed, port, host_key, hostKey=host_key.fingerprint).test()

    assert result.success is True, result.error


def test_write_permission_when_the_archive_folder_can_be_made(feed, port, host_key):
    result = connector_for(feed, port, host_key, archivePath="done").test()

    assert result.success is True, result.error
    assert result.permissions == ["read", "write"]
    # The probe leaves nothing behind.
    assert not (feed.root / "done").exists()


def test_wrong_password_fails_readably_and_is_not_retryable(feed, port, host_key):
    connector = connector_for(feed, port, host_key, password="not-the-password")

    result = connector.test()
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()

    assert result.success is False
    assert "Authentication failed" in str(result.error)
    assert feed.username in str(result.error)
    assert raised.value.retryable is False


def test_wrong_host_key_is_refused_before_logging_in(feed, port, host_key, tmp_path):
    upload(feed, port, {"inventory.csv": (b"VIN\n1\n", BASE_MTIME)})
    logins_before = logins(feed)
    impostor_key = make_ed25519_key(tmp_path).pkey
    connector = connector_for(feed, port, host_key, hostKey=pin_of(impostor_key))

    result = connector.test()
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()

    assert result.success is False
    assert "Host key mismatch" in str(result.error)
    # The error names the key the server really showed, so an operator can compare it.
    assert host_key.fingerprint in str(result.error)
    assert raised.value.retryable is False
    # The password never reached the server: no login, failed or not, was recorded.
    assert logins(feed) == logins_before


def test_wrong_fingerprint_is_refused(feed, port, host_key):
    wrong = "SHA256:" + "A" * 43

    result = connector_for(feed, port, host_key, hostKey=wrong).test()

    assert result.success is False
    assert host_key.fingerprint in str(result.error)


def test_connection_refused_is_retryable(feed, port, host_key):
    connector = connector_for(feed, free_port(), host_key)

    result = connector.test()
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()

    assert result.success is False
    assert "refused" in str(result.error)
    assert raised.value.retryable is True


def test_missing_folder_fails_and_is_not_retryable(feed, port, host_key):
    connector = connector_for(feed, port, host_key, path="/nowhere")

    result = connector.test()
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()

    assert result.success is False
    assert "/nowhere" in str(result.error)
    assert raised.value.retryable is False


def test_private_key_login(api, feed, port, host_key, tmp_path):
    key = make_ed25519_key(tmp_path)
    added = api.post(
        f"/api/v1/integrations/{feed.integration.pk}/sftp/keys",
        {"name": "pull", "publicKey": key.public_line},
        format="json",
    )
    assert added.status_code == 201, added.content
    connector = SftpPullConnector(
        config=pull_config(feed, port, host_key),
        credentials={"privateKey": key.private_path.read_text()},
    )

    result = connector.test()

    assert result.success is True, result.error


# --- discover and read ---------------------------------------------------------------------


def test_discover_offers_files_by_mtime(feed, port, host_key):
    specs = connector_for(feed, port, host_key).discover()

    assert specs == [
        EntitySpec(
            name="files",
            primary_key=["path"],
            cursor_field="mtime",
            fields=["path", "name", "size", "mtime"],
        )
    ]


def test_read_full_lists_matching_files_in_mtime_order(feed, port, host_key):
    upload(
        feed,
        port,
        {
            "b.csv": (b"bbbb", BASE_MTIME + 20),
            "a.csv": (b"aaaaaa", BASE_MTIME + 20),
            "old.CSV": (b"o", BASE_MTIME),
            "notes.txt": (b"not a feed", BASE_MTIME + 5),
        },
    )
    connector = connector_for(feed, port, host_key, pattern="*.csv")

    batches = list(connector.read("files", batch_size=2))

    assert [batch.records for batch in batches] == [
        [
            {"path": "/old.CSV", "name": "old.CSV", "size": 1, "mtime": BASE_MTIME},
            {"path": "/a.csv", "name": "a.csv", "size": 6, "mtime": BASE_MTIME + 20},
        ],
        [{"path": "/b.csv", "name": "b.csv", "size": 4, "mtime": BASE_MTIME + 20}],
    ]
    assert [batch.cursor for batch in batches] == [BASE_MTIME + 20, BASE_MTIME + 20]


def test_read_incremental_returns_files_newer_than_the_cursor(feed, port, host_key):
    upload(
        feed,
        port,
        {
            "monday.csv": (b"1", BASE_MTIME),
            "tuesday.csv": (b"22", BASE_MTIME + 86_400),
            "wednesday.csv": (b"333", BASE_MTIME + 2 * 86_400),
        },
    )
    connector = connector_for(feed, port, host_key)

    batches = list(connector.read("files", cursor=BASE_MTIME))
    nothing_new = list(connector.read("files", cursor=BASE_MTIME + 2 * 86_400))

    assert [record["name"] for batch in batches for record in batch.records] == [
        "tuesday.csv",
        "wednesday.csv",
    ]
    assert batches[-1].cursor == BASE_MTIME + 2 * 86_400
    assert nothing_new == []


def test_read_of_an_unknown_entity_is_not_retryable(feed, port, host_key):
    with pytest.raises(ConnectorError) as raised:
        list(connector_for(feed, port, host_key).read("orders"))

    assert raised.value.retryable is False


def test_download_streams_the_exact_bytes(feed, port, host_key, tmp_path):
    content = bytes(range(256)) * 20_000  # 5 MB, many prefetched reads
    upload(feed, port, {"big.csv": (content, BASE_MTIME)})
    connector = connector_for(feed, port, host_key)
    local = tmp_path / "big.csv"

    with connector.session():
        [remote] = connector.list_files()
        digest = connector.download(remote, local)

    assert local.read_bytes() == content
    assert digest == hashlib.sha256(content).hexdigest()


def test_archive_creates_the_folder_and_never_overwrites(feed, port, host_key):
    upload(feed, port, {"inventory.csv": (b"first", BASE_MTIME)})
    connector = connector_for(feed, port, host_key, archivePath="archive/2025")

    with connector.session():
        [first] = connector.list_files()
        first_target = connector.archive(first)
    upload(feed, port, {"inventory.csv": (b"second", BASE_MTIME + 60)})
    with connector.session():
        [second] = connector.list_files()
        second_target = connector.archive(second)

    assert first_target == "/archive/2025/inventory.csv"
    assert second_target == "/archive/2025/inventory-1.csv"
    root: Path = feed.root
    assert (root / "archive/2025/inventory.csv").read_bytes() == b"first"
    assert (root / "archive/2025/inventory-1.csv").read_bytes() == b"second"
    assert not (root / "inventory.csv").exists()
