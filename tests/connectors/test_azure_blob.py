"""The azure_blob connector against Azurite (Azure Blob Storage's emulator, real HTTP and Shared
Key checks) on a free loopback port."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from connectors import azure_blob as azure_module
from connectors.azure_blob import BLOCK_SIZE, AzureBlobConnector
from connectors.files import RemoteFileError
from connectors.models import Connection
from connectors.registry import ConnectorError, get_connector
from tests.connectors.storage_support import (
    chunks,
    http_error_server,
    production_default,  # noqa: F401 - a fixture
    resolve_to_loopback,
    tcp_listener,
    upload_and_break,
)
from tests.servers import AzuriteServer

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/connections"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def container(azurite: AzuriteServer) -> str:
    name = f"railyard-{secrets.token_hex(4)}"
    azurite.service().create_container(name)
    return name


def store(server: AzuriteServer, container: str, credentials: dict | None = None, **config: Any):
    return AzureBlobConnector(
        config={"container": container, "endpointUrl": server.endpoint, **config},
        credentials=credentials or {"accountKey": server.key},
    )


def names(server: AzuriteServer, container: str, *, uncommitted: bool = False) -> list[str]:
    client = server.service().get_container_client(container)
    include = ["uncommittedblobs"] if uncommitted else None
    return sorted(blob.name for blob in client.list_blobs(include=include))


def read(server: AzuriteServer, container: str, name: str) -> bytes:
    client = server.service().get_container_client(container)
    return bytes(client.download_blob(name).readall())


def put(server: AzuriteServer, container: str, files: dict[str, bytes]) -> None:
    client = server.service().get_container_client(container)
    for name, content in files.items():
        client.upload_blob(name, content, overwrite=True)


def sas(server: AzuriteServer, container: str, **permissions: bool) -> str:
    return generate_container_sas(
        server.account,
        container,
        account_key=server.key,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


# --- catalog, config and credentials ----------------------------------------------------------


def test_is_a_storage_source_and_destination_with_secret_credentials(api):
    body = api.get("/api/v1/integrations/connectors/azure_blob").json()["data"]

    assert body["category"] == "STORAGE"
    assert body["secretFields"] == ["accountKey", "connectionString", "sasToken"]
    assert {"container", "accountName", "endpointUrl", "prefix", "pattern"} <= set(
        body["configSchema"]["properties"]
    )
    connector = get_connector("azure_blob")
    assert connector is not None
    assert (connector.is_source, connector.feeds_files, connector.writes_files) == (
        True,
        True,
        True,
    )


def test_two_kinds_of_credentials_at_once_are_a_400_that_quotes_neither(api):
    response = api.post(
        URL,
        {
            "connectorId": "azure_blob",
            "name": "Partner container",
            "config": {"container": "Not_Valid", "prefix": "../up"},
            "credentials": {"accountKey": "secret-key-value", "sasToken": "sv=secret-sas"},
        },
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert details["credentials"] == [
        "Give exactly one of connectionString, accountKey or sasToken (got accountKey, sasToken)."
    ]
    assert set(details) == {"config.container", "config.prefix", "credentials"}
    assert "secret-key-value" not in response.content.decode()
    assert "secret-sas" not in response.content.decode()
    assert not Connection.objects.exists()


def test_no_credentials_at_all_is_a_400(api):
    response = api.post(
        URL,
        {"connectorId": "azure_blob", "name": "x", "config": {"container": "feeds"}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"]["credentials"] == [
        "Give exactly one of connectionString, accountKey or sasToken."
    ]


def test_a_connection_made_through_the_api_tests_read_write_and_delete(api, azurite, container):
    created = api.post(
        URL,
        {
            "connectorId": "azure_blob",
            "name": "Exports container",
            "config": {"container": container, "prefix": "exports"},
            "credentials": {"connectionString": azurite.connection_string},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert azurite.key not in created.content.decode()

    tested = api.post(f"{URL}/{created.json()['data']['connectionId']}/test")

    assert tested.status_code == 200, tested.content
    body = tested.json()["data"]
    assert body["success"] is True, body
    assert body["permissions"] == ["read", "write", "delete"]
    assert names(azurite, container) == []


@pytest.mark.parametrize("kind", ["connectionString", "accountKey", "accountName", "sasToken"])
def test_each_kind_of_credentials_connects(azurite, container, kind):
    config: dict[str, Any] = {"container": container}
    if kind == "connectionString":
        credentials = {"connectionString": azurite.connection_string}
    elif kind == "accountKey":
        config["endpointUrl"] = azurite.endpoint
        credentials = {"accountKey": azurite.key}
    elif kind == "accountName":  # the account named apart from the endpoint
        config |= {"endpointUrl": azurite.endpoint, "accountName": azurite.account}
        credentials = {"accountKey": azurite.key}
    else:
        config["endpointUrl"] = azurite.endpoint
        permissions = {"read": True, "write": True, "delete": True, "list": True}
        credentials = {"sasToken": "?" + sas(azurite, container, **permissions)}

    result = AzureBlobConnector(config=config, credentials=credentials).test()

    assert result.success is True, result.error
    assert result.permissions == ["read", "write", "delete"]


def test_a_wrong_key_fails_the_test_and_is_not_retryable(azurite, container):
    connector = store(azurite, container, {"accountKey": "AAAA" + azurite.key[4:]})

    result = connector.test()

    assert result.success is False
    assert result.permissions == []
    assert result.error == (
        f"Listing azure://{azurite.account}/{container}/: Azure refused the credentials "
        "(AuthorizationFailure)."
    )
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()
    assert raised.value.retryable is False


def test_a_missing_container_fails_the_test_and_is_not_retryable(azurite):
    connector = store(azurite, "no-such-container")

    result = connector.test()

    assert result.success is False
    assert result.error == (
        f"Listing azure://{azurite.account}/no-such-container/: container no-such-container "
        "does not exist."
    )
    with pytest.raises(ConnectorError) as raised:
        connector.upload("a.csv").commit()
    assert raised.value.retryable is False


def test_a_read_only_sas_reports_read_and_fails_on_the_write(azurite, container):
    read_only = {"sasToken": sas(azurite, container, read=True, list=True)}

    result = store(azurite, container, read_only).test()

    assert result.success is False
    assert result.permissions == ["read"]
    assert str(result.error).startswith("Writing a test file failed: ")
    assert "403 AuthorizationPermissionMismatch" in str(result.error)


def test_a_connection_string_that_cannot_be_read_is_not_quoted(container):
    connector = AzureBlobConnector(
        config={"container": container}, credentials={"connectionString": "AccountKey=s3cr3t"}
    )

    result = connector.test()

    assert result.success is False
    assert result.error == "The Azure connection string cannot be used: ValueError."


# --- as a source ---------------------------------------------------------------------------------


def test_lists_the_files_of_the_prefix_that_match_the_glob(azurite, container):
    put(
        azurite,
        container,
        {
            "feeds/inventory-1.CSV": b"a",
            "feeds/inventory-2.csv": b"bb",
            "feeds/.inventory-hidden.csv": b"c",
            "feeds/notes.txt": b"d",
            "feeds/deeper/inventory-3.csv": b"e",
            "elsewhere/inventory-4.csv": b"f",
        },
    )
    connector = store(azurite, container, prefix="feeds", pattern="inventory-*.csv")

    files = connector.list_files()

    assert sorted((remote.path, remote.name, remote.size) for remote in files) == [
        ("feeds/inventory-1.CSV", "inventory-1.CSV", 1),
        ("feeds/inventory-2.csv", "inventory-2.csv", 2),
    ]
    assert files == sorted(files, key=lambda remote: (remote.mtime, remote.name))
    assert [record["name"] for batch in connector.read("files") for record in batch.records] == [
        remote.name for remote in files
    ]


def test_downloads_a_file_with_its_sha256_and_archives_it(azurite, container, tmp_path):
    content = b"stock,vin\n1,1HGCM82633A004352\n" * 300_000  # several download chunks
    put(azurite, container, {"in/feed.csv": content, "in/done/feed.csv": b"taken yesterday"})
    connector = store(azurite, container, prefix="in", archivePrefix="done")

    with connector.session():
        [remote] = connector.list_files()
        sha256 = connector.download(remote, tmp_path / "feed.csv")
        archived_to = connector.archive(remote)

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "feed.csv").read_bytes() == content
    assert archived_to == "in/done/feed-1.csv"
    assert names(azurite, container) == ["in/done/feed-1.csv", "in/done/feed.csv"]
    assert read(azurite, container, "in/done/feed-1.csv") == content


def test_archiving_works_with_a_sas_token_too(azurite, container):
    put(azurite, container, {"in/feed.csv": b"x"})
    permissions = {"read": True, "write": True, "delete": True, "list": True, "create": True}
    token = {"sasToken": sas(azurite, container, **permissions)}
    connector = store(azurite, container, token, prefix="in", archivePrefix="/archive")

    [remote] = connector.list_files()
    archived_to = connector.archive(remote)

    assert archived_to == "archive/feed.csv"
    assert names(azurite, container) == ["archive/feed.csv"]


def test_a_vanished_file_is_that_files_error_alone(azurite, container, tmp_path):
    put(azurite, container, {"in/feed.csv": b"x"})
    connector = store(azurite, container, prefix="in")
    [remote] = connector.list_files()
    azurite.service().get_container_client(container).delete_blob("in/feed.csv")

    with pytest.raises(RemoteFileError) as raised:
        connector.download(remote, tmp_path / "feed.csv")

    assert "404 BlobNotFound" in raised.value.message


# --- as a destination -----------------------------------------------------------------------------


def test_a_small_upload_is_one_blob_with_its_record(azurite, container):
    connector = store(azurite, container, prefix="exports")
    content = b"id,name\n1,Civic\n"

    with connector.upload("vehicles/2025-01-01 stock+list.csv") as sink:
        sink.write(content)

    name = "exports/vehicles/2025-01-01 stock+list.csv"
    assert sink.delivered.as_dict() == {
        "uri": f"{azurite.endpoint}/{container}/exports/vehicles/2025-01-01%20stock%2Blist.csv",
        "path": "vehicles/2025-01-01 stock+list.csv",
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert read(azurite, container, name) == content
    blob = azurite.service().get_container_client(container).get_blob_client(name)
    assert blob.get_blob_properties().content_settings.content_type == "text/csv"


def test_a_sas_token_never_appears_in_a_delivered_uri(azurite, container):
    token = sas(azurite, container, read=True, write=True, list=True, delete=True)
    connector = store(azurite, container, {"sasToken": token})

    with connector.upload("a.csv") as sink:
        sink.write(b"x")

    assert sink.delivered.uri == f"{azurite.endpoint}/{container}/a.csv"


def test_staged_blocks_are_invisible_until_the_commit(azurite, container):
    connector = store(azurite, container)
    total = BLOCK_SIZE + 4 * 1024 * 1024
    digest = hashlib.sha256()
    seen_while_writing: list[list[str]] = []

    with connector.upload("big.bin") as sink:
        for number, chunk in enumerate(chunks(total)):
            sink.write(chunk)
            digest.update(chunk)
            if number == 9:  # the first block is staged by now
                seen_while_writing.append(names(azurite, container))
                seen_while_writing.append(names(azurite, container, uncommitted=True))

    assert seen_while_writing == [[], ["big.bin"]]
    assert names(azurite, container) == ["big.bin"]
    assert sink.delivered.bytes == total
    assert sink.delivered.sha256 == digest.hexdigest()
    blob = azurite.service().get_container_client(container).get_blob_client("big.bin")
    assert len(blob.get_block_list("committed")[0]) == 2
    assert hashlib.sha256(read(azurite, container, "big.bin")).hexdigest() == digest.hexdigest()


def test_a_failure_halfway_leaves_nothing_visible(azurite, container):
    put(azurite, container, {"out/report.csv": b"the previous report"})
    connector = store(azurite, container, prefix="out")

    sink = upload_and_break(connector, "report.csv", BLOCK_SIZE + 1024 * 1024)
    fresh = upload_and_break(connector, "new.csv", BLOCK_SIZE + 1024 * 1024)

    assert names(azurite, container) == ["out/report.csv"]
    assert read(azurite, container, "out/report.csv") == b"the previous report"
    with pytest.raises(ValueError, match="aborted"):
        sink.delivered  # noqa: B018
    with pytest.raises(ValueError, match="aborted"):
        fresh.delivered  # noqa: B018


def test_an_upload_path_may_not_leave_the_prefix(azurite, container):
    connector = store(azurite, container, prefix="exports/acme")

    for path in ("../rival/x.csv", "/etc/passwd", "a/../../b.csv", "a\\b.csv"):
        with pytest.raises(ConnectorError) as raised:
            connector.upload(path)
        assert raised.value.retryable is False

    assert names(azurite, container, uncommitted=True) == []


def test_a_large_upload_streams_in_bounded_memory(azurite, container):
    megabytes = 128
    spec = {
        "connector": "azure_blob",
        "config": {"container": container, "endpointUrl": azurite.endpoint},
        "credentials": {"accountKey": azurite.key},
        "path": "large.bin",
        "megabytes": megabytes,
    }

    finished = subprocess.run(
        [sys.executable, "-m", "tests.connectors.upload_rss"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        timeout=300,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout)
    assert report["delivered"]["bytes"] == megabytes * 1024 * 1024
    blob = azurite.service().get_container_client(container).get_blob_client("large.bin")
    assert blob.get_blob_properties().size == megabytes * 1024 * 1024
    grown_mib = (report["peak_kib"] - report["baseline_kib"]) / 1024
    assert grown_mib < 48, f"memory grew by {grown_mib:.0f} MiB for a {megabytes} MiB upload"


# --- egress and retries ---------------------------------------------------------------------------


def test_a_loopback_endpoint_is_refused_by_default_and_never_contacted(
    production_default,  # noqa: F811
):
    with tcp_listener("hang") as listener:
        connector = AzureBlobConnector(
            config={
                "container": "exports",
                "endpointUrl": f"http://127.0.0.1:{listener.port}/devstoreaccount1",
            },
            credentials={"accountKey": "c2VjcmV0"},
        )

        result = connector.test()
        with pytest.raises(ConnectorError) as raised, connector.upload("a.csv") as sink:
            sink.write(b"x")

    assert result.success is False
    assert result.error == (
        f"Connections to 127.0.0.1:{listener.port} are refused by the egress policy: "
        "127.0.0.1 is a loopback address."
    )
    assert raised.value.retryable is False
    assert listener.accepted == []


def test_the_default_azure_endpoint_goes_through_the_egress_policy_too(
    production_default,  # noqa: F811
    monkeypatch,
):
    resolve_to_loopback(monkeypatch, ".blob.core.windows.net")
    connector = AzureBlobConnector(
        config={"container": "exports", "accountName": "acmeexports"},
        credentials={"accountKey": "c2VjcmV0"},
    )

    result = connector.test()

    assert result.success is False
    assert result.error == (
        "Connections to acmeexports.blob.core.windows.net:443 are refused by the egress "
        "policy: 127.0.0.1 is a loopback address."
    )


def test_server_busy_is_retryable(monkeypatch):
    monkeypatch.setattr(azure_module, "MAX_RETRIES", 1)
    busy = (
        b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
        b"<Message>The server is busy.</Message></Error>"
    )
    headers = {"Content-Type": "application/xml", "x-ms-error-code": "ServerBusy"}
    with http_error_server(503, busy, headers) as server:
        connector = AzureBlobConnector(
            config={"container": "exports", "endpointUrl": f"{server.url}/devstoreaccount1"},
            credentials={"accountKey": "c2VjcmV0"},
        )

        with pytest.raises(ConnectorError) as raised:
            connector.list_files()

    assert raised.value.retryable is True
    assert raised.value.message.startswith(
        "Listing azure://devstoreaccount1/exports/: Azure answered 503 ServerBusy"
    )
    assert len(server.requests) == 2  # the SDK retried once before giving up


@pytest.mark.parametrize("behaviour", ["drop", "hang"])
def test_a_dropped_or_silent_connection_is_retryable(monkeypatch, behaviour):
    monkeypatch.setattr(azure_module, "MAX_RETRIES", 0)
    monkeypatch.setattr(azure_module, "IO_TIMEOUT_SECONDS", 1)
    with tcp_listener(behaviour) as listener:
        connector = AzureBlobConnector(
            config={
                "container": "exports",
                "endpointUrl": f"http://127.0.0.1:{listener.port}/devstoreaccount1",
            },
            credentials={"accountKey": "c2VjcmV0"},
        )

        with pytest.raises(ConnectorError) as raised:
            connector.list_files()

    assert raised.value.retryable is True
    assert len(listener.accepted) == 1
