"""The s3 connector against moto's S3 in server mode (real HTTP and SigV4, IAM authentication on)
on a free loopback port."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors import s3 as s3_module
from connectors.models import Connection
from connectors.registry import ConnectorError, get_connector
from connectors.s3 import PART_SIZE, S3Connector
from tests.connectors.storage_support import (
    chunks,
    http_error_server,
    production_default,  # noqa: F401 - a fixture
    resolve_to_loopback,
    tcp_listener,
    upload_and_break,
)
from tests.servers import S3Server

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/connections"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bucket(moto_s3: S3Server) -> str:
    name = f"railyard-{secrets.token_hex(4)}"
    moto_s3.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": moto_s3.region}
    )
    return name


def store(server: S3Server, bucket: str, credentials: dict[str, str] | None = None, **config: Any):
    return S3Connector(
        config={
            "bucket": bucket,
            "region": server.region,
            "endpointUrl": server.endpoint,
            **config,
        },
        credentials=credentials or server.admin,
    )


def keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def read(server: S3Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def put(server: S3Server, bucket: str, files: dict[str, bytes]) -> None:
    client = server.client()
    for key, content in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=content)


def in_progress_uploads(server: S3Server, bucket: str) -> list[dict]:
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


# --- catalog, config and credentials ----------------------------------------------------------


def test_is_a_storage_source_and_destination_with_secret_keys(api):
    body = api.get("/api/v1/integrations/connectors/s3").json()["data"]

    assert body["category"] == "STORAGE"
    assert body["secretFields"] == ["accessKeyId", "secretAccessKey", "sessionToken"]
    assert body["credentialsSchema"]["required"] == ["accessKeyId", "secretAccessKey"]
    assert {"bucket", "prefix", "region", "endpointUrl", "pattern", "archivePrefix"} <= set(
        body["configSchema"]["properties"]
    )
    connector = get_connector("s3")
    assert connector is not None
    assert (connector.is_source, connector.feeds_files, connector.writes_files) == (
        True,
        True,
        True,
    )


def test_invalid_config_and_credentials_are_a_400_that_names_each_field(api):
    response = api.post(
        URL,
        {
            "connectorId": "s3",
            "name": "Partner bucket",
            "config": {
                "bucket": "a",
                "prefix": "feeds/../../etc",
                "endpointUrl": "ftp://example.com",
                "pattern": "in/*.csv",
            },
            "credentials": {"accessKeyId": "AKIAEXAMPLE"},
        },
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {
        "config.bucket",
        "config.prefix",
        "config.endpointUrl",
        "config.pattern",
        "credentials.secretAccessKey",
    }
    assert details["config.prefix"] == [
        "File path 'feeds/../../etc' leaves the destination folder (..)."
    ]
    assert not Connection.objects.exists()


def test_a_connection_made_through_the_api_tests_read_write_and_delete(api, moto_s3, bucket):
    created = api.post(
        URL,
        {
            "connectorId": "s3",
            "name": "Exports bucket",
            "config": {
                "bucket": bucket,
                "prefix": "exports",
                "region": moto_s3.region,
                "endpointUrl": moto_s3.endpoint,
            },
            "credentials": moto_s3.admin,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert moto_s3.admin["secretAccessKey"] not in created.content.decode()

    tested = api.post(f"{URL}/{created.json()['data']['connectionId']}/test")

    assert tested.status_code == 200, tested.content
    body = tested.json()["data"]
    assert body["success"] is True, body
    assert body["permissions"] == ["read", "write", "delete"]
    assert keys(moto_s3, bucket) == []  # the probe is gone


def test_a_wrong_key_fails_the_test_and_is_not_retryable(moto_s3, bucket):
    wrong = {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "not-the-secret"}
    connector = store(moto_s3, bucket, wrong)

    result = connector.test()

    assert result.success is False
    assert result.permissions == []
    assert result.error == (
        f"Listing s3://{bucket}/: S3 refused the credentials (InvalidAccessKeyId): The AWS "
        "Access Key Id you provided does not exist in our records."
    )
    with pytest.raises(ConnectorError) as raised:
        connector.list_files()
    assert raised.value.retryable is False


def test_a_wrong_secret_is_refused_too(moto_s3, bucket):
    wrong = {**moto_s3.admin, "secretAccessKey": "not-the-secret"}

    result = store(moto_s3, bucket, wrong).test()

    assert result.success is False
    assert "S3 refused the credentials (SignatureDoesNotMatch)" in str(result.error)


def test_a_missing_bucket_fails_the_test_and_is_not_retryable(moto_s3):
    connector = store(moto_s3, "no-such-bucket")

    result = connector.test()

    assert result.success is False
    assert result.error == "Listing s3://no-such-bucket/: bucket no-such-bucket does not exist."
    with pytest.raises(ConnectorError) as raised:
        connector.upload("a.csv").commit()
    assert raised.value.retryable is False


def test_a_read_only_key_reports_read_and_fails_on_the_write(moto_s3, bucket):
    result = store(moto_s3, bucket, moto_s3.reader).test()

    assert result.success is False
    assert result.permissions == ["read"]
    assert str(result.error).startswith("Writing a test file failed: ")
    assert "403 AccessDenied" in str(result.error)
    assert keys(moto_s3, bucket) == []


# --- as a source ---------------------------------------------------------------------------------


def test_lists_the_files_of_the_prefix_that_match_the_glob(moto_s3, bucket):
    put(
        moto_s3,
        bucket,
        {
            "feeds/inventory-1.CSV": b"a",
            "feeds/inventory-2.csv": b"bb",
            "feeds/.inventory-hidden.csv": b"c",
            "feeds/notes.txt": b"d",
            "feeds/deeper/inventory-3.csv": b"e",
            "elsewhere/inventory-4.csv": b"f",
        },
    )
    connector = store(moto_s3, bucket, prefix="/feeds/", pattern="inventory-*.csv")

    files = connector.list_files()

    assert sorted((remote.path, remote.name, remote.size) for remote in files) == [
        ("feeds/inventory-1.CSV", "inventory-1.CSV", 1),
        ("feeds/inventory-2.csv", "inventory-2.csv", 2),
    ]
    assert files == sorted(files, key=lambda remote: (remote.mtime, remote.name))
    batches = list(connector.read("files"))
    assert [record["name"] for batch in batches for record in batch.records] == [
        remote.name for remote in files
    ]
    assert list(connector.read("files", cursor=max(remote.mtime for remote in files))) == []


def test_downloads_a_file_with_its_sha256_and_archives_it(moto_s3, bucket, tmp_path):
    content = b"stock,vin\n1,1HGCM82633A004352\n" * 1000
    put(moto_s3, bucket, {"in/feed.csv": content, "in/done/feed.csv": b"taken yesterday"})
    connector = store(moto_s3, bucket, prefix="in", archivePrefix="done")

    with connector.session():
        [remote] = connector.list_files()
        sha256 = connector.download(remote, tmp_path / "feed.csv")
        archived_to = connector.archive(remote)

    assert sha256 == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "feed.csv").read_bytes() == content
    assert archived_to == "in/done/feed-1.csv"
    assert keys(moto_s3, bucket) == ["in/done/feed-1.csv", "in/done/feed.csv"]
    assert read(moto_s3, bucket, "in/done/feed-1.csv") == content


def test_an_archive_prefix_starting_with_a_slash_is_from_the_bucket_root(moto_s3, bucket):
    put(moto_s3, bucket, {"in/feed.csv": b"x"})
    connector = store(moto_s3, bucket, prefix="in", archivePrefix="/archive/2025")

    [remote] = connector.list_files()
    archived_to = connector.archive(remote)

    assert archived_to == "archive/2025/feed.csv"
    assert keys(moto_s3, bucket) == ["archive/2025/feed.csv"]


def test_a_vanished_file_is_that_files_error_alone(moto_s3, bucket, tmp_path):
    put(moto_s3, bucket, {"in/feed.csv": b"x"})
    connector = store(moto_s3, bucket, prefix="in")
    [remote] = connector.list_files()
    moto_s3.client().delete_object(Bucket=bucket, Key="in/feed.csv")

    with pytest.raises(s3_module.RemoteFileError) as raised:
        connector.download(remote, tmp_path / "feed.csv")

    assert "404 NoSuchKey" in raised.value.message


# --- as a destination ----------------------------------------------------------------------------


def test_a_small_upload_is_one_object_with_its_record(moto_s3, bucket):
    connector = store(moto_s3, bucket, prefix="exports")
    content = b"id,name\n1,Civic\n"

    with connector.upload("vehicles/2025-01-01 stock+list.csv") as sink:
        sink.write(content)

    key = "exports/vehicles/2025-01-01 stock+list.csv"
    assert sink.delivered.as_dict() == {
        "uri": f"s3://{bucket}/{key}",
        "path": "vehicles/2025-01-01 stock+list.csv",
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert read(moto_s3, bucket, key) == content
    assert moto_s3.client().head_object(Bucket=bucket, Key=key)["ContentType"] == "text/csv"


def test_a_multipart_upload_is_invisible_until_it_completes(moto_s3, bucket):
    connector = store(moto_s3, bucket)
    total = 12 * 1024 * 1024  # one full 8 MiB part and a last part of 4 MiB
    digest = hashlib.sha256()
    seen_while_writing: list[list[str]] = []

    with connector.upload("big.bin") as sink:
        for number, chunk in enumerate(chunks(total)):
            sink.write(chunk)
            digest.update(chunk)
            if number == 9:  # the first part has gone out by now
                seen_while_writing.append(keys(moto_s3, bucket))
                seen_while_writing.append(
                    [upload["Key"] for upload in in_progress_uploads(moto_s3, bucket)]
                )

    assert seen_while_writing == [[], ["big.bin"]]
    assert keys(moto_s3, bucket) == ["big.bin"]
    assert sink.delivered.bytes == total
    assert sink.delivered.sha256 == digest.hexdigest()
    head = moto_s3.client().head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == total
    assert head["ETag"].endswith('-2"')  # a multipart object of two parts
    assert hashlib.sha256(read(moto_s3, bucket, "big.bin")).hexdigest() == digest.hexdigest()
    assert in_progress_uploads(moto_s3, bucket) == []


def test_a_failure_halfway_leaves_nothing_and_no_incomplete_upload(moto_s3, bucket):
    put(moto_s3, bucket, {"out/report.csv": b"the previous report"})
    connector = store(moto_s3, bucket, prefix="out")

    sink = upload_and_break(connector, "report.csv", PART_SIZE + 1024 * 1024)

    assert keys(moto_s3, bucket) == ["out/report.csv"]
    assert read(moto_s3, bucket, "out/report.csv") == b"the previous report"
    assert in_progress_uploads(moto_s3, bucket) == []
    with pytest.raises(ValueError, match="aborted"):
        sink.delivered  # noqa: B018


def test_an_upload_path_may_not_leave_the_prefix(moto_s3, bucket):
    connector = store(moto_s3, bucket, prefix="exports/acme")

    for path in ("../rival/x.csv", "/etc/passwd", "a/../../b.csv", ""):
        with pytest.raises(ConnectorError) as raised:
            connector.upload(path)
        assert raised.value.retryable is False

    assert keys(moto_s3, bucket) == []


def test_a_large_upload_streams_in_bounded_memory(moto_s3, bucket):
    # A separate process: the moto server lives in this one and keeps what it receives.
    megabytes = 128
    spec = {
        "connector": "s3",
        "config": {"bucket": bucket, "region": moto_s3.region, "endpointUrl": moto_s3.endpoint},
        "credentials": moto_s3.admin,
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
    head = moto_s3.client().head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == megabytes * 1024 * 1024
    grown_mib = (report["peak_kib"] - report["baseline_kib"]) / 1024
    assert grown_mib < 48, f"memory grew by {grown_mib:.0f} MiB for a {megabytes} MiB upload"


# --- egress and retries --------------------------------------------------------------------------


def test_a_loopback_endpoint_is_refused_by_default_and_never_contacted(
    production_default,  # noqa: F811
):
    with tcp_listener("hang") as listener:
        connector = S3Connector(
            config={"bucket": "exports", "endpointUrl": f"http://127.0.0.1:{listener.port}"},
            credentials={"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret"},
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


def test_the_default_aws_endpoint_goes_through_the_egress_policy_too(
    production_default,  # noqa: F811
    monkeypatch,
):
    # Given AWS's names answering a loopback address (a hostile DNS)
    resolve_to_loopback(monkeypatch, ".amazonaws.com")
    connector = S3Connector(
        config={"bucket": "exports", "region": "eu-west-1"},
        credentials={"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret"},
    )

    result = connector.test()

    assert result.success is False
    assert "amazonaws.com:443 are refused by the egress policy: 127.0.0.1 is a loopback" in str(
        result.error
    )


def test_throttling_and_5xx_are_retryable(monkeypatch):
    monkeypatch.setattr(s3_module, "MAX_ATTEMPTS", 2)
    slow_down = (
        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    with http_error_server(503, slow_down, {"Content-Type": "application/xml"}) as server:
        connector = S3Connector(
            config={"bucket": "exports", "endpointUrl": server.url},
            credentials={"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret"},
        )

        with pytest.raises(ConnectorError) as raised:
            connector.list_files()

    assert raised.value.retryable is True
    assert raised.value.message == (
        "Listing s3://exports/: S3 answered 503 SlowDown (Please reduce your request rate.); "
        "try again later."
    )
    assert len(server.requests) == 2  # botocore retried once before giving up


@pytest.mark.parametrize("behaviour", ["drop", "hang"])
def test_a_dropped_or_silent_connection_is_retryable(monkeypatch, behaviour):
    monkeypatch.setattr(s3_module, "MAX_ATTEMPTS", 1)
    monkeypatch.setattr(s3_module, "IO_TIMEOUT_SECONDS", 0.5)
    with tcp_listener(behaviour) as listener:
        connector = S3Connector(
            config={"bucket": "exports", "endpointUrl": f"http://127.0.0.1:{listener.port}"},
            credentials={"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "secret"},
        )

        with pytest.raises(ConnectorError) as raised:
            connector.list_files()

    assert raised.value.retryable is True
    assert len(listener.accepted) == 1
