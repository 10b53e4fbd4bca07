"""File imports that write: ``POST /imports/:importId/run`` writes the import's records as one
file with its ``file.csv`` options, named from ``ftp.fileName`` and uploaded into
``ftp.directoryPath`` through its connection, here a real sshd and moto's S3 server on loopback.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import time_machine

from accounts.models import Event
from syncengine.jobs import lifecycle
from tests.exports.conftest import (
    add_vehicle,
    put_records,
    s3_bucket_with_connection,
    sftp_connection_to,
)
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.servers import S3Server, SshServer

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/imports"
NOW = dt.datetime(2025, 1, 15, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def contracts(tenant):
    put_records(
        tenant.account,
        "contracts",
        [
            ("c-1", {"status": "ACTIVE", "plan": "gold\nplus", "customer": {"name": "Ann"}}),
            ("c-2", {"status": "ACTIVE", "plan": "basic", "customer": {"name": "Bo\tb"}}),
            ("c-3", {"status": "CLOSED", "plan": "gold", "customer": {"name": "Cy"}}),
        ],
    )


@pytest.fixture
def sftp_folder(sshd: SshServer) -> Path:
    folder = sshd.workspace / secrets.token_hex(4)
    folder.mkdir()
    return folder


@pytest.fixture
def sftp_connection(tenant, sshd: SshServer, sftp_folder: Path):
    return sftp_connection_to(tenant, sshd, sftp_folder)


def document_body(connection_id: Any, **changes: Any) -> dict[str, Any]:
    """A file import as the public API document spells it, writing the contracts."""
    body: dict[str, Any] = {
        "name": "Contracts to the partner",
        "_connectionId": str(connection_id),
        "entity": "contracts",
        "filter": {"status": "ACTIVE"},
        "file": {
            "type": "csv",
            "csv": {
                "rowDelimiter": "\r\n",
                "columnDelimiter": ";",
                "includeHeader": True,
                "wrapWithQuotes": True,
                "replaceTabWithSpace": True,
                "replaceNewlineWithSpace": True,
            },
        },
        "ftp": {"directoryPath": "outbox", "fileName": "file-{{timestamp}}.csv"},
        "mapping": {
            "fields": [
                {"extract": "_key", "generate": "Contract"},
                {"extract": "plan", "generate": "Plan"},
                {"extract": "customer.name", "generate": "Customer"},
            ]
        },
    }
    body.update(changes)
    return body


def create_import(api, body: dict[str, Any]) -> dict[str, Any]:
    created = api.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    return created.json()["data"]


def run_import(api, import_id: str) -> dict[str, Any]:
    queued = api.post(f"{URL}/{import_id}/run")
    assert queued.status_code == 202, queued.content
    run = queued.json()["data"]
    assert run["status"] == "QUEUED"
    assert run["importId"] == import_id
    lifecycle.run_execute(run["runId"])
    return api.get(f"{URL}/{import_id}/runs/{run['runId']}").json()["data"]


def test_a_run_writes_the_mapped_records_with_the_csv_options_into_the_sftp_folder(
    tenant, api, contracts, sftp_connection, sftp_folder
):
    (sftp_folder / "outbox").mkdir()
    file_import = create_import(api, document_body(sftp_connection.pk))

    with time_machine.travel(NOW, tick=False):
        run = run_import(api, file_import["id"])

    assert run["status"] == "COMPLETED", run
    assert run["rows"] == {"contracts": 2}
    written = sftp_folder / "outbox" / "file-20250115T020000Z.csv"
    assert sorted(path.name for path in (sftp_folder / "outbox").iterdir()) == [written.name]
    content = written.read_bytes()
    lines = content.split(b"\r\n")
    assert lines[0] == b'"Contract";"Plan";"Customer"'
    assert sorted(lines[1:-1]) == [b'"c-1";"gold plus";"Ann"', b'"c-2";"basic";"Bo b"']
    assert lines[-1] == b""  # every row ends with the row delimiter
    [file] = run["files"]
    assert file["uri"].endswith("/outbox/file-20250115T020000Z.csv")
    assert file["bytes"] == len(content)
    assert file["rows"] == 2


def test_a_run_to_s3_writes_json_under_the_directory_path(tenant, api, moto_s3: S3Server):
    bucket, s3 = s3_bucket_with_connection(tenant, moto_s3, "imports")
    integration = IntegrationFactory(account=tenant.account)
    add_vehicle(integration, "1FTFW1E50MFA00001", make="Ford", price="31999.00")
    add_vehicle(integration, "1FTFW1E50MFA00002", make="Kia", price="18500.00")
    file_import = create_import(
        api,
        {
            "name": "Fords",
            "connectionId": str(s3.pk),
            "entity": "vehicles",
            "filter": {"make": "Ford"},
            "file": {"type": "json"},
            "ftp": {"directoryPath": "/test", "fileName": "{{importName}}-{{date}}.{{ext}}"},
            "mapping": {
                "fields": [
                    {"extract": "vin", "generate": "VIN"},
                    {"extract": "price", "generate": "askingPrice"},
                ]
            },
        },
    )

    with time_machine.travel(NOW, tick=False):
        run = run_import(api, file_import["id"])

    assert run["status"] == "COMPLETED", run
    [file] = run["files"]
    assert file["uri"] == f"s3://{bucket}/test/Fords-2025-01-15.json"
    body = moto_s3.client().get_object(Bucket=bucket, Key="test/Fords-2025-01-15.json")["Body"]
    assert json.loads(body.read()) == [{"VIN": "1FTFW1E50MFA00001", "askingPrice": 31999.0}]


def test_a_run_is_recorded_as_a_job_and_its_events_name_the_import(
    tenant, api, contracts, sftp_connection
):
    file_import = create_import(api, document_body(sftp_connection.pk, ftp={}))

    run = run_import(api, file_import["id"])

    assert run["status"] == "COMPLETED", run
    job = api.get(f"/api/v1/jobs/{run['runId']}").json()["data"]
    assert job["kind"] == "import"
    assert job["importId"] == file_import["id"]
    assert job["exportId"] is None
    completed = Event.objects.get(account=tenant.account, type="integration.export.completed")
    assert completed.payload["importId"] == file_import["id"]
    assert completed.payload["rows"] == 2
    listed = api.get(f"{URL}/{file_import['id']}/runs").json()
    assert [item["runId"] for item in listed["data"]] == [run["runId"]]


def test_an_import_that_cannot_run_is_a_400_naming_each_problem(tenant, api, contracts):
    database = ConnectionFactory(account=tenant.account, connector_id="postgres")
    file_import = create_import(
        api,
        {
            "name": "Nowhere",
            "connectionId": str(database.pk),
            "entity": "",
            "file": {"type": "xlsx"},
        },
    )

    answer = api.post(f"{URL}/{file_import['id']}/run")

    assert answer.status_code == 400, answer.content
    details = answer.json()["error"]["details"]
    assert set(details) == {"entity", "file.type", "connectionId"}
    assert "cannot receive files" in details["connectionId"][0]
    assert api.get(f"{URL}/{file_import['id']}/runs").json()["data"] == []


def test_an_unknown_entity_or_mapped_field_is_a_400(tenant, api, contracts, sftp_connection):
    unknown = create_import(api, document_body(sftp_connection.pk, entity="invoices"))
    answer = api.post(f"{URL}/{unknown['id']}/run")
    assert answer.status_code == 400
    assert "contracts" in answer.json()["error"]["details"]["entity"][0]  # the known ones

    vehicles = create_import(
        api,
        document_body(
            sftp_connection.pk,
            entity="vehicles",
            filter={},
            mapping={"fields": [{"extract": "colour", "generate": "Colour"}]},
        ),
    )
    answer = api.post(f"{URL}/{vehicles['id']}/run")
    assert answer.status_code == 400
    assert "colour" in answer.json()["error"]["details"]["mapping.fields"][0]


def test_one_run_at_a_time_and_a_queued_run_can_be_cancelled(
    tenant, api, contracts, sftp_connection, sftp_folder
):
    file_import = create_import(api, document_body(sftp_connection.pk, ftp={}))
    queued = api.post(f"{URL}/{file_import['id']}/run").json()["data"]

    second = api.post(f"{URL}/{file_import['id']}/run")
    assert second.status_code == 409
    assert second.json()["error"]["details"]["runId"] == [queued["runId"]]

    cancelled = api.post(f"{URL}/{file_import['id']}/runs/{queued['runId']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["data"]["status"] == "CANCELLED"
    lifecycle.run_execute(queued["runId"])
    assert list(sftp_folder.iterdir()) == []


def test_another_accounts_import_and_its_runs_are_404(
    tenant, other_tenant, api, contracts, sftp_connection
):
    file_import = create_import(api, document_body(sftp_connection.pk, ftp={}))
    run = api.post(f"{URL}/{file_import['id']}/run").json()["data"]
    rival = other_tenant.client

    assert rival.post(f"{URL}/{file_import['id']}/run").status_code == 404
    assert rival.get(f"{URL}/{file_import['id']}/runs").status_code == 404
    assert rival.get(f"{URL}/{file_import['id']}/runs/{run['runId']}").status_code == 404
    assert rival.post(f"{URL}/{file_import['id']}/runs/{run['runId']}/cancel").status_code == 404
