"""Export runs to the real storage servers: moto's S3 server, Azurite and OpenSSH's sshd, each on
a loopback port. Every run leaves exactly one complete file per entity, and a run that fails
halfway leaves nothing (no object, no multipart upload, no uncommitted block, no temporary file)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from connectors import s3 as s3_module
from connectors.registry import ConnectorError
from exports.models import Export
from exports.scheduler import exports_schedule_tick
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob
from tests.exports.conftest import (
    add_vehicle,
    put_records,
    sftp_connection_to,
    storage_connection,
)
from tests.factories import IntegrationFactory
from tests.servers import S3Server, SshServer

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/integrations/exports"
# The export API document's example body, as it spells it.
DOCUMENTED_BODY = {
    "name": "Monthly Contract Export",
    "format": "CSV",
    "entities": ["contracts"],
    "filter": {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}},
    "schedule": {"frequency": "MONTHLY", "day": 1, "time": "02:00"},
    "destination": {"type": "S3", "bucket": "exports-bucket", "path": "/contracts/"},
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def inventory(tenant):
    integration = IntegrationFactory(account=tenant.account)
    for number in range(5):
        add_vehicle(integration, f"1FTFW1E50MFA{number:05d}")
    put_records(
        tenant.account,
        "contracts",
        [
            ("c-1", {"status": "ACTIVE", "createdAt": "2025-02-01", "plan": "gold"}),
            ("c-2", {"status": "ACTIVE", "createdAt": "2024-12-31", "plan": "basic"}),
            ("c-3", {"status": "CLOSED", "createdAt": "2025-03-01", "plan": "gold"}),
        ],
    )
    return integration


def run_export(api, export_id: str) -> dict:
    queued = api.post(f"{URL}/{export_id}/run")
    assert queued.status_code == 202, queued.content
    run_id = queued.json()["data"]["runId"]
    lifecycle.run_execute(run_id)
    return api.get(f"{URL}/{export_id}/runs/{run_id}").json()["data"]


# --- S3 ------------------------------------------------------------------------------------------


@pytest.fixture
def bucket(moto_s3: S3Server) -> str:
    name = f"exports-{secrets.token_hex(4)}"
    moto_s3.client().create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": moto_s3.region}
    )
    return name


@pytest.fixture
def s3_connection(tenant, moto_s3: S3Server, bucket: str):
    return storage_connection(
        tenant,
        "s3",
        {"bucket": bucket, "region": moto_s3.region, "endpointUrl": moto_s3.endpoint},
        moto_s3.admin,
    )


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listing
    }


def uploads_in_progress(server: S3Server, bucket: str) -> list[Any]:
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def test_a_run_to_s3_leaves_one_complete_object_per_entity(
    tenant, api, inventory, moto_s3, bucket, s3_connection
):
    export = api.post(
        URL,
        {
            "name": "Nightly",
            "format": "CSV",
            "entities": ["vehicles", "contracts"],
            "destination": {
                "type": "S3",
                "connectionId": str(s3_connection.pk),
                "bucket": bucket,
                "prefix": "out",
                "fileNameTemplate": "{{entity}}/{{runId}}.{{ext}}",
            },
        },
        format="json",
    ).json()["data"]

    run = run_export(api, export["id"])

    assert run["status"] == "COMPLETED", run
    stored = objects(moto_s3, bucket)
    assert sorted(stored) == [
        f"out/contracts/{run['runId']}.csv",
        f"out/vehicles/{run['runId']}.csv",
    ]
    for file in run["files"]:
        key = file["uri"].removeprefix(f"s3://{bucket}/")
        assert sha256(stored[key]) == file["sha256"]
        assert len(stored[key]) == file["bytes"]
    assert stored[f"out/contracts/{run['runId']}.csv"].count(b"\n") == 4
    assert uploads_in_progress(moto_s3, bucket) == []


def test_the_documented_example_runs_by_hand_and_on_its_schedule(
    tenant, api, inventory, moto_s3, s3_connection
):
    moto_s3.client().create_bucket(
        Bucket="exports-bucket",
        CreateBucketConfiguration={"LocationConstraint": moto_s3.region},
    )
    for key in objects(moto_s3, "exports-bucket"):
        moto_s3.client().delete_object(Bucket="exports-bucket", Key=key)
    with time_machine.travel(dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC), tick=True):
        created = api.post(URL, DOCUMENTED_BODY, format="json")
        assert created.status_code == 201, created.content
        export = created.json()["data"]
        by_hand = run_export(api, export["id"])
    assert export["nextRunAt"] == "2025-07-01T02:00:00Z"

    # The scheduler tick at the due time claims it and starts a run.
    due = dt.datetime(2025, 7, 1, 2, 0, 5, tzinfo=dt.UTC)
    with time_machine.travel(due, tick=True):
        assert exports_schedule_tick(now=timezone.now()) == 1
        scheduled = SyncJob.objects.get(export_id=export["id"], trigger="schedule")
        lifecycle.run_execute(scheduled.pk)
    on_schedule = api.get(f"{URL}/{export['id']}/runs/{scheduled.pk}").json()["data"]

    stored = objects(moto_s3, "exports-bucket")
    for run in (by_hand, on_schedule):
        assert run["status"] == "COMPLETED", run
        assert run["rows"] == {"contracts": 1}  # ACTIVE and created in 2025: c-1 only
        [file] = run["files"]
        key = file["uri"].removeprefix("s3://exports-bucket/")
        assert key.startswith("contracts/Monthly Contract Export/contracts/")
        assert sha256(stored[key]) == file["sha256"]
        assert b"c-1" in stored[key]
        assert b"c-2" not in stored[key]
    assert on_schedule["trigger"] == "schedule"
    assert len(stored) == 2  # one file per entity and per run, nothing else
    assert "/2025-07-01/" in on_schedule["files"][0]["uri"]
    assert Export.objects.get(pk=export["id"]).next_run_at == dt.datetime(
        2025, 8, 1, 2, 0, tzinfo=dt.UTC
    )


def test_a_throttled_upload_is_retried_with_a_fresh_upload_and_leaves_nothing_meanwhile(
    tenant, api, inventory, moto_s3, bucket, s3_connection, monkeypatch
):
    # About 12 MB of vehicles: a multipart upload, whose first part is sent before the failure.
    for number in range(600):
        add_vehicle(inventory, f"5FTFW1E50MFD{number:05d}", extra={"notes": "n" * 20_000})
    export = api.post(
        URL,
        {
            "name": "Big",
            "format": "CSV",
            "entities": ["vehicles", "contracts"],
            "destination": {"type": "S3", "connectionId": str(s3_connection.pk), "bucket": bucket},
        },
        format="json",
    ).json()["data"]
    real_upload_part = s3_module._S3Sink._upload_part
    calls = []

    def throttled_once(self, part):
        calls.append(len(part))
        if len(calls) == 2:
            raise ConnectorError("S3 answered 503 SlowDown.", retryable=True)
        return real_upload_part(self, part)

    monkeypatch.setattr(s3_module._S3Sink, "_upload_part", throttled_once)
    queued = api.post(f"{URL}/{export['id']}/run").json()["data"]

    lifecycle.run_execute(queued["runId"])

    waiting = SyncJob.objects.get(pk=queued["runId"])
    assert waiting.status == "QUEUED"
    assert waiting.next_attempt_at is not None
    assert "503 SlowDown" in waiting.error
    assert objects(moto_s3, bucket) == {}
    assert uploads_in_progress(moto_s3, bucket) == []

    SyncJob.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    lifecycle.run_execute(queued["runId"])

    run = api.get(f"{URL}/{export['id']}/runs/{queued['runId']}").json()["data"]
    assert run["status"] == "COMPLETED", run
    assert run["attempts"] == 2
    stored = objects(moto_s3, bucket)
    assert len(stored) == 2
    for file in run["files"]:
        assert sha256(stored[file["uri"].removeprefix(f"s3://{bucket}/")]) == file["sha256"]
    assert run["rows"] == {"vehicles": 605, "contracts": 3}
    assert uploads_in_progress(moto_s3, bucket) == []


def test_a_destination_that_refuses_writes_fails_the_run_at_once(
    tenant, api, inventory, moto_s3, bucket
):
    reader = storage_connection(
        tenant,
        "s3",
        {"bucket": bucket, "region": moto_s3.region, "endpointUrl": moto_s3.endpoint},
        moto_s3.reader,
    )
    export = api.post(
        URL,
        {
            "name": "Denied",
            "format": "JSON",
            "entities": ["contracts"],
            "destination": {"type": "S3", "connectionId": str(reader.pk), "bucket": bucket},
        },
        format="json",
    ).json()["data"]

    run = run_export(api, export["id"])

    assert run["status"] == "FAILED"
    assert run["error"]
    assert run["attempts"] == 1
    assert objects(moto_s3, bucket) == {}


def test_destination_connections_must_be_of_the_matching_connector(
    tenant, other_tenant, api, inventory, s3_connection
):
    theirs = storage_connection(
        other_tenant, "s3", {"bucket": "theirs"}, {"accessKeyId": "a", "secretAccessKey": "b"}
    )
    cases = [
        {"type": "AZURE_BLOB", "container": "exports", "connectionId": str(s3_connection.pk)},
        {"type": "SFTP", "connectionId": str(s3_connection.pk)},
        {"type": "S3", "bucket": "b", "connectionId": str(theirs.pk)},
    ]
    for destination in cases:
        response = api.post(
            URL,
            {"name": "x", "format": "CSV", "entities": ["contracts"], "destination": destination},
            format="json",
        )
        assert response.status_code == 400, response.content
        assert "destination.connectionId" in response.json()["error"]["details"]
    assert not Export.objects.exists()


# --- Azure Blob ---------------------------------------------------------------------------------


def test_a_run_to_azure_blob_commits_one_blob_per_entity(tenant, api, inventory, azurite):
    container = f"exports-{secrets.token_hex(4)}"
    azurite.service().create_container(container)
    azure = storage_connection(
        tenant,
        "azure_blob",
        {"container": container, "endpointUrl": azurite.endpoint},
        {"accountKey": azurite.key},
    )
    export = api.post(
        URL,
        {
            "name": "Nightly",
            "format": "PARQUET",
            "entities": ["vehicles", "contracts"],
            "destination": {"type": "AZURE_BLOB", "container": container, "prefix": "daily"},
        },
        format="json",
    ).json()["data"]
    assert export["destination"]["connectionId"] == str(azure.pk)

    run = run_export(api, export["id"])

    assert run["status"] == "COMPLETED", run
    client = azurite.service().get_container_client(container)
    blobs = sorted(blob.name for blob in client.list_blobs(include=["uncommittedblobs"]))
    assert blobs == sorted(file["uri"].split(f"/{container}/", 1)[1] for file in run["files"])
    assert len(blobs) == 2
    assert all(name.startswith("daily/Nightly/") for name in blobs)
    for file in run["files"]:
        name = file["uri"].split(f"/{container}/", 1)[1]
        content = client.download_blob(name).readall()
        assert content[:4] == b"PAR1"
        assert sha256(content) == file["sha256"]


# --- SFTP ----------------------------------------------------------------------------------------


def test_a_run_to_sftp_renames_one_complete_file_per_entity_into_place(
    tenant, api, inventory, sshd: SshServer
):
    folder: Path = sshd.workspace / secrets.token_hex(4)
    folder.mkdir()
    sftp = sftp_connection_to(tenant, sshd, folder)
    export = api.post(
        URL,
        {
            "name": "Nightly",
            "format": "XML",
            "entities": ["vehicles", "contracts"],
            "options": {"compression": "gzip"},
            "destination": {"type": "SFTP", "connectionId": str(sftp.pk), "prefix": "out"},
        },
        format="json",
    ).json()["data"]

    run = run_export(api, export["id"])

    assert run["status"] == "COMPLETED", run
    written = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert len(written) == 2
    assert all(name.startswith("out/Nightly/") and name.endswith(".xml.gz") for name in written)
    for file in run["files"]:
        content = (folder / "out" / file["path"]).read_bytes()
        assert sha256(content) == file["sha256"]
        assert content[:2] == b"\x1f\x8b"
