"""LOCAL export destinations in a bucket (EXPORT_STORAGE_URL=s3://...): a run lands whole in the
export storage below its account's folder, is downloaded from there, and a run that fails leaves
nothing there or in the temporary folder."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from config.retention import Pruned
from exports import runs as export_runs
from exports.destinations import StoredDestination, local_destination
from exports.models import ExportFile
from exports.services import export_runs_prune
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob
from tests.exports.conftest import add_vehicle, put_records
from tests.factories import IntegrationFactory
from tests.storage.conftest import Bucket, files_under

# Runs read with COPY on a connection of their own, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/integrations/exports"


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


def run_export(api, **changes) -> tuple[dict, dict]:
    """Create a LOCAL export, start a run, work it as the worker does; the export and the run."""
    body = {
        "name": "Nightly",
        "format": "CSV",
        "entities": ["vehicles", "contracts"],
        "destination": {"type": "LOCAL", "path": "outbound"},
        **changes,
    }
    created = api.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    export = created.json()["data"]
    started = api.post(f"{URL}/{export['id']}/run")
    assert started.status_code == 202, started.content
    lifecycle.run_execute(started.json()["data"]["runId"])
    run = api.get(f"{URL}/{export['id']}/runs/{started.json()['data']['runId']}").json()["data"]
    return export, run


def test_a_local_run_lands_in_the_bucket_below_its_account_and_is_downloaded_from_there(
    exports_bucket: Bucket, tenant, other_tenant, api, inventory, scratch, settings
):
    # When a LOCAL export of two entities runs
    export, run = run_export(api)

    # Then both files are objects of the bucket, below the prefix and the account's folder,
    # whole (their records' sha256), and nothing was written to disk or left in TMPDIR
    assert run["status"] == "COMPLETED", run["error"]
    assert run["rows"] == {"vehicles": 3, "contracts": 2}
    account = f"exported/files/{tenant.account.pk}"
    uris = [file["uri"] for file in run["files"]]
    assert all(uri.startswith("local:outbound/Nightly/") for uri in uris)
    keys = sorted(f"{account}/{uri.removeprefix('local:')}" for uri in uris)
    assert exports_bucket.objects() == keys
    for file in run["files"]:
        content = exports_bucket.read(f"{account}/{file['uri'].removeprefix('local:')}")
        assert hashlib.sha256(content).hexdigest() == file["sha256"]
        assert len(content) == file["bytes"]
    assert files_under(Path(settings.EXPORT_LOCAL_DIR)) == []
    assert files_under(scratch) == []

    # When the files are downloaded through the API
    base = f"{URL}/{export['id']}/runs/{run['runId']}/files"
    response = api.get(f"{base}/1")
    theirs = other_tenant.client.get(f"{base}/1")

    # Then the bytes are the bucket's; another account gets a 404
    assert response.status_code == 200
    downloaded = b"".join(response.streaming_content)
    assert hashlib.sha256(downloaded).hexdigest() == run["files"][0]["sha256"]
    assert downloaded.splitlines()[0].startswith(b"id,integrationId,dealershipId,key,status")
    assert "attachment" in response["Content-Disposition"]
    assert theirs.status_code == 404

    # and a file no longer in the bucket is a 404 too
    exports_bucket.server.client().delete_object(
        Bucket=exports_bucket.name, Key=f"{account}/{uris[0].removeprefix('local:')}"
    )
    assert api.get(f"{base}/1").status_code == 404


def test_a_failed_run_leaves_nothing_in_the_bucket_or_the_temporary_folder(
    exports_bucket: Bucket, api, inventory, scratch, monkeypatch
):
    # Given the second entity fails after the first was written
    real_source = export_runs.entity_source

    def source(**kwargs):
        if kwargs["entity"] == "contracts":
            raise export_runs.ExportDataError("contracts.price holds text and numbers.")
        return real_source(**kwargs)

    monkeypatch.setattr(export_runs, "entity_source", source)

    # When the run works
    _, run = run_export(api)

    # Then it failed and delivered nothing: no object, no temporary file
    assert run["status"] == "FAILED"
    assert run["files"] == []
    assert exports_bucket.objects() == []
    assert files_under(scratch) == []
    assert ExportFile.objects.count() == 0


def test_a_stored_destination_keeps_to_its_accounts_folder(exports_bucket: Bucket, tenant):
    destination = local_destination(account_id=tenant.account.pk, prefix="a/b")

    assert isinstance(destination, StoredDestination)
    assert destination.location == "local:a/b/"
    assert destination.name_of("c.csv") == f"{tenant.account.pk}/a/b/c.csv"
    for escape in ("../other/c.csv", "/etc/passwd", "a\\b.csv"):
        with pytest.raises(Exception, match="File path"):
            destination.upload(escape)
    assert exports_bucket.objects() == []


def test_the_retention_removes_a_pruned_runs_file_from_the_bucket(
    exports_bucket: Bucket, tenant, api, inventory
):
    # Given two runs of an export whose runs each write files of their own
    template = {
        "type": "LOCAL",
        "path": "outbound",
        "fileNameTemplate": "{{entity}}-{{runId}}.{{ext}}",
    }
    export, first = run_export(api, entities=["contracts"], destination=template)
    started = api.post(f"{URL}/{export['id']}/run").json()["data"]
    lifecycle.run_execute(started["runId"])
    account = f"exported/files/{tenant.account.pk}"
    [first_key] = [f"{account}/{f['uri'].removeprefix('local:')}" for f in first["files"]]
    assert len(exports_bucket.objects()) == 2

    # When the runs prune runs with a cutoff after both ended
    pruned = export_runs_prune(cutoff=timezone.now() + timedelta(minutes=1), limit=10)

    # Then the first run went with its object; the latest run and its object stay
    assert pruned == Pruned(rows=1, more=False)
    assert first_key not in exports_bucket.objects()
    assert len(exports_bucket.objects()) == 1
    assert not SyncJob.objects.filter(pk=first["runId"]).exists()
    assert SyncJob.objects.filter(pk=started["runId"]).exists()
