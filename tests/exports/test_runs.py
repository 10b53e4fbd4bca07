"""Export runs through the API, worked as the worker works them (``lifecycle.run_execute``), to a
LOCAL destination: 202 / 409 / 404, the run's rows, files and progress, downloads, cancel,
pagination, events, and nothing left behind by a run that does not complete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from accounts.models import Event
from exports import runs as export_runs
from exports.models import Export, ExportFile
from syncengine.jobs import lifecycle
from syncengine.jobs.lifecycle import Run
from syncengine.models import SyncJob
from tests.exports.conftest import add_vehicle, put_records
from tests.factories import IntegrationFactory

# Runs read with COPY on a connection of their own, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/integrations/exports"


@pytest.fixture(autouse=True)
def export_dir(settings, tmp_path) -> Path:
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports"
    return settings.EXPORT_LOCAL_DIR


@pytest.fixture
def inventory(tenant):
    integration = IntegrationFactory(account=tenant.account)
    for number in range(3):
        add_vehicle(integration, f"1FTFW1E50MFA0000{number}", make="Ford" if number else "Kia")
    put_records(
        tenant.account,
        "contracts",
        [("c-1", {"status": "ACTIVE", "price": 100}), ("c-2", {"status": "CLOSED", "price": 5})],
    )
    return integration


def create_export(api, **changes) -> dict:
    body = {
        "name": "Nightly",
        "format": "CSV",
        "entities": ["vehicles", "contracts"],
        "destination": {"type": "LOCAL", "path": "outbound"},
        **changes,
    }
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def start(api, export_id: str) -> dict:
    response = api.post(f"{URL}/{export_id}/run")
    assert response.status_code == 202, response.content
    return response.json()["data"]


def work(run_id: str) -> None:
    """What the worker does with the run's task."""
    lifecycle.run_execute(run_id)


def files_on_disk(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_a_manual_run_answers_202_and_delivers_one_file_per_entity(
    tenant, api, inventory, export_dir
):
    export = create_export(api)

    queued = start(api, export["id"])
    work(queued["runId"])
    response = api.get(f"{URL}/{export['id']}/runs/{queued['runId']}")

    assert queued["status"] == "QUEUED"
    assert queued["trigger"] == "manual"
    assert queued["exportId"] == export["id"]
    assert response.status_code == 200, response.content
    run = response.json()["data"]
    assert run["status"] == "COMPLETED"
    assert run["error"] is None
    assert run["rows"] == {"vehicles": 3, "contracts": 2}
    assert run["startedAt"]
    assert run["completedAt"]
    assert isinstance(run["durationMs"], int)
    assert run["progress"]["rowsDone"] == 5
    assert [file["entity"] for file in run["files"]] == ["vehicles", "contracts"]
    assert run["bytes"] == sum(file["bytes"] for file in run["files"])
    account_dir = export_dir / str(tenant.account.pk)
    # Exactly the run's files, whole, and no temporary file beside them.
    assert files_on_disk(account_dir) == sorted(
        file["uri"].removeprefix("local:") for file in run["files"]
    )
    for file in run["files"]:
        content = (account_dir / file["uri"].removeprefix("local:")).read_bytes()
        assert file["uri"].startswith("local:outbound/Nightly/")
        assert hashlib.sha256(content).hexdigest() == file["sha256"]
        assert len(content) == file["bytes"]
    vehicles = (account_dir / run["files"][0]["uri"].removeprefix("local:")).read_text()
    assert vehicles.splitlines()[0].startswith("id,integrationId,dealershipId,key,status")
    assert len(vehicles.splitlines()) == 4
    assert Export.objects.get(pk=export["id"]).last_run_at is not None


def test_the_run_is_announced_by_events_with_rows_files_and_bytes(tenant, api, inventory):
    export = create_export(api)

    run = start(api, export["id"])
    work(run["runId"])

    started = Event.objects.get(account=tenant.account, type="integration.export.started")
    completed = Event.objects.get(account=tenant.account, type="integration.export.completed")
    assert started.payload["runId"] == run["runId"]
    assert completed.payload["rows"] == 5
    assert completed.payload["rowsByEntity"] == {"vehicles": 3, "contracts": 2}
    assert len(completed.payload["files"]) == 2
    assert completed.payload["bytes"] == sum(file["bytes"] for file in completed.payload["files"])
    assert not Event.objects.filter(type="integration.sync.completed").exists()


def test_a_second_run_while_one_is_queued_is_a_409_naming_it(tenant, api, inventory):
    export = create_export(api)
    first = start(api, export["id"])

    response = api.post(f"{URL}/{export['id']}/run")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"]["runId"] == [first["runId"]]
    assert first["runId"] in error["message"]
    assert SyncJob.objects.filter(export_id=export["id"]).count() == 1


def test_an_export_run_neither_waits_for_nor_blocks_its_integrations_jobs(tenant, api, inventory):
    export = create_export(api, integrationId=str(inventory.pk), entities=["vehicles"])
    # A sync of the integration is running.
    sync = lifecycle.run_create(
        kind="sync",
        dispatch=False,
        account_id=tenant.account.pk,
        integration=inventory,
        trigger="manual",
    )
    SyncJob.objects.filter(pk=sync.pk).update(status="RUNNING", attempts=1)

    run = start(api, export["id"])
    work(run["runId"])

    assert SyncJob.objects.get(pk=run["runId"]).status == "COMPLETED"
    assert SyncJob.objects.get(pk=sync.pk).status == "RUNNING"


def test_runs_are_listed_newest_first_and_paginated(tenant, api, inventory):
    export = create_export(api, entities=["contracts"])
    ids = []
    for _ in range(3):
        run = start(api, export["id"])
        work(run["runId"])
        ids.append(run["runId"])

    page = api.get(f"{URL}/{export['id']}/runs?limit=2").json()
    rest = api.get(f"{URL}/{export['id']}/runs?limit=2&offset=2").json()

    assert [run["runId"] for run in page["data"]] == [ids[2], ids[1]]
    assert page["meta"]["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    assert [run["runId"] for run in rest["data"]] == [ids[0]]
    assert all(run["status"] == "COMPLETED" for run in page["data"])


def test_a_local_file_is_downloaded_by_its_number(tenant, api, inventory, export_dir):
    export = create_export(api)
    run = start(api, export["id"])
    work(run["runId"])
    files = api.get(f"{URL}/{export['id']}/runs/{run['runId']}/files").json()["data"]

    response = api.get(f"{URL}/{export['id']}/runs/{run['runId']}/files/2")
    missing = api.get(f"{URL}/{export['id']}/runs/{run['runId']}/files/3")

    assert [file["n"] for file in files] == [1, 2]
    assert response.status_code == 200
    content = b"".join(response.streaming_content)
    assert hashlib.sha256(content).hexdigest() == files[1]["sha256"]
    assert "attachment" in response["Content-Disposition"]
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


def test_a_file_at_a_remote_destination_is_not_downloaded_here(tenant, api, inventory):
    export = create_export(api, entities=["contracts"])
    run = start(api, export["id"])
    work(run["runId"])
    ExportFile.objects.filter(run_id=run["runId"]).update(uri="s3://bucket/contracts.csv")

    response = api.get(f"{URL}/{export['id']}/runs/{run['runId']}/files/1")

    assert response.status_code == 404


def test_a_queued_run_is_cancelled_at_once_and_never_starts(tenant, api, inventory, export_dir):
    export = create_export(api)
    run = start(api, export["id"])

    cancelled = api.post(f"{URL}/{export['id']}/runs/{run['runId']}/cancel")
    work(run["runId"])
    again = api.post(f"{URL}/{export['id']}/runs/{run['runId']}/cancel")

    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["data"]["status"] == "CANCELLED"
    assert again.json()["data"]["status"] == "CANCELLED"
    assert SyncJob.objects.get(pk=run["runId"]).status == "CANCELLED"
    assert files_on_disk(export_dir) == []
    # A new run may start now.
    assert api.post(f"{URL}/{export['id']}/run").status_code == 202


def test_cancelling_a_completed_run_is_a_409(tenant, api, inventory):
    export = create_export(api, entities=["contracts"])
    run = start(api, export["id"])
    work(run["runId"])

    response = api.post(f"{URL}/{export['id']}/runs/{run['runId']}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


def test_a_run_cancelled_while_it_writes_stops_and_leaves_nothing(
    tenant, api, inventory, export_dir, monkeypatch
):
    for number in range(30):
        add_vehicle(inventory, f"2FTFW1E50MFB{number:05d}")
    export = create_export(api)
    run = start(api, export["id"])
    monkeypatch.setattr(export_runs, "CHECK_EVERY_ROWS", 5)
    monkeypatch.setattr(export_runs, "CHECKPOINT_SECONDS", 0)
    checkpoint = Run.checkpoint
    calls = []

    def checkpoint_then_cancel(self, **fields):
        checkpoint(self, **fields)
        calls.append(fields)
        if len(calls) == 2:
            # The user cancels while the first file is being written.
            api.post(f"{URL}/{export['id']}/runs/{run['runId']}/cancel")

    monkeypatch.setattr(Run, "checkpoint", checkpoint_then_cancel)

    work(run["runId"])

    body = api.get(f"{URL}/{export['id']}/runs/{run['runId']}").json()["data"]
    assert body["status"] == "CANCELLED"
    assert body["files"] == []
    assert 0 < body["progress"]["rows"]["vehicles"] < 33
    assert files_on_disk(export_dir) == []
    assert "nothing was delivered" in body["log"][-1]["message"]
    assert not Event.objects.filter(type="integration.export.completed").exists()


def test_a_failing_entity_fails_the_run_and_leaves_nothing_of_the_others(
    tenant, api, inventory, export_dir, monkeypatch
):
    export = create_export(api, entities=["vehicles", "contracts"])
    run = start(api, export["id"])
    # The records of the second entity change type under the export (a value that cannot be
    # written as its column's type): not retryable.
    real_source = export_runs.entity_source

    def source(**kwargs):
        if kwargs["entity"] == "contracts":
            raise export_runs.ExportDataError("contracts.price holds text and numbers.")
        return real_source(**kwargs)

    monkeypatch.setattr(export_runs, "entity_source", source)

    work(run["runId"])

    body = api.get(f"{URL}/{export['id']}/runs/{run['runId']}").json()["data"]
    assert body["status"] == "FAILED"
    assert "contracts.price" in body["error"]
    assert body["files"] == []
    assert files_on_disk(export_dir) == []
    failed = Event.objects.get(type="integration.export.failed")
    assert "contracts.price" in failed.payload["error"]


def test_a_template_that_names_two_entities_files_alike_fails_the_run_and_overwrites_nothing(
    tenant, api, inventory, export_dir
):
    # Given an export of two entities whose template, from before such templates were refused,
    # gives both entities' files the same name
    export = create_export(api, entities=["vehicles"])
    Export.objects.filter(pk=export["id"]).update(
        entities=["vehicles", "contracts"],
        destination={"type": "LOCAL", "path": "x", "fileNameTemplate": "out-{{date}}.{{ext}}"},
    )
    run = start(api, export["id"])

    work(run["runId"])

    # Then the run fails saying why, and nothing was delivered
    body = api.get(f"{URL}/{export['id']}/runs/{run['runId']}").json()["data"]
    assert body["status"] == "FAILED"
    assert "{{entity}}" in body["error"]
    assert body["files"] == []
    assert files_on_disk(export_dir) == []


def test_another_accounts_export_and_runs_are_404_and_nothing_happens(
    tenant, other_tenant, api, inventory
):
    export = create_export(api, entities=["contracts"])
    run = start(api, export["id"])
    work(run["runId"])
    theirs = other_tenant.client
    base = f"{URL}/{export['id']}"

    answers = [
        theirs.post(f"{base}/run"),
        theirs.get(f"{base}/runs"),
        theirs.get(f"{base}/runs/{run['runId']}"),
        theirs.post(f"{base}/runs/{run['runId']}/cancel"),
        theirs.get(f"{base}/runs/{run['runId']}/files"),
        theirs.get(f"{base}/runs/{run['runId']}/files/1"),
    ]

    assert [answer.status_code for answer in answers] == [404] * 6
    assert all(answer.json()["error"]["code"] == "NOT_FOUND" for answer in answers)
    assert SyncJob.objects.filter(export_id=export["id"]).count() == 1


def test_a_run_of_one_export_is_not_reachable_under_another(tenant, api, inventory):
    first = create_export(api, entities=["contracts"])
    second = create_export(api, entities=["contracts"], name="Other")
    run = start(api, first["id"])

    response = api.get(f"{URL}/{second['id']}/runs/{run['runId']}")

    assert response.status_code == 404


def test_a_local_destination_cannot_leave_the_accounts_folder(tenant, api, inventory):
    for path in ("../other-account", "a/../../b"):
        response = api.post(
            URL,
            {
                "name": "Escape",
                "format": "CSV",
                "entities": ["contracts"],
                "destination": {"type": "LOCAL", "path": path},
            },
            format="json",
        )
        assert response.status_code == 400, response.content
        assert "destination.path" in response.json()["error"]["details"]
    template = api.post(
        URL,
        {
            "name": "Escape",
            "format": "CSV",
            "entities": ["contracts"],
            "destination": {"type": "LOCAL", "path": "x", "fileNameTemplate": "../{{entity}}"},
        },
        format="json",
    )
    assert template.status_code == 400
    assert "destination.fileNameTemplate" in template.json()["error"]["details"]


def test_parts_split_at_max_file_size_each_a_whole_file(tenant, api, inventory, export_dir):
    for number in range(40):
        add_vehicle(inventory, f"3FTFW1E50MFC{number:05d}", extra={"notes": "x" * 30_000})
    export = create_export(
        api,
        entities=["vehicles"],
        options={"maxFileSizeMb": 1},
        destination={
            "type": "LOCAL",
            "path": "parts",
            "fileNameTemplate": "{{entity}}-{{part}}.{{ext}}",
        },
    )

    run = start(api, export["id"])
    work(run["runId"])

    body = api.get(f"{URL}/{export['id']}/runs/{run['runId']}").json()["data"]
    assert body["status"] == "COMPLETED"
    assert len(body["files"]) >= 2
    assert [file["part"] for file in body["files"]] == list(range(1, len(body["files"]) + 1))
    assert body["files"][0]["uri"] == "local:parts/vehicles-001.csv"
    assert all(file["bytes"] <= 1024 * 1024 for file in body["files"])
    assert sum(file["rows"] for file in body["files"]) == body["rows"]["vehicles"] == 43
    for file in body["files"]:
        path = export_dir / str(tenant.account.pk) / file["uri"].removeprefix("local:")
        lines = path.read_text().splitlines()
        assert lines[0].startswith("id,")  # each part has its header


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"entities": ["invoices"]}, "entities"),
        ({"filter": {"nope": {"gte": 1}}, "entities": ["vehicles"]}, "filter.nope"),
        ({"options": {"delimiter": ";;"}}, "options.delimiter"),
        ({"options": {"jsonLines": True}}, "options.jsonLines"),
        ({"fields": ["nope"], "entities": ["vehicles"]}, "fields"),
    ],
)
def test_invalid_data_options_are_400_at_create_time(tenant, api, inventory, changes, key):
    body = {
        "name": "Bad",
        "format": "CSV",
        "entities": ["contracts"],
        "destination": {"type": "LOCAL", "path": "x"},
        **changes,
    }

    response = api.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert key in details
    if key == "entities":
        assert "vehicles, contracts" in details["entities"][0]
    assert not Export.objects.exists()
