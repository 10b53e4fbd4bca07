"""End to end with a real Celery worker process: a run asked for through the API is worked by
the worker on the ``export`` queue and its file lands in the account's export folder."""

from __future__ import annotations

import hashlib

import pytest

from syncengine.models import SyncJob
from tests.exports.conftest import put_records
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/integrations/exports"


def test_the_worker_runs_an_export_asked_for_through_the_api(tenant, api, tmp_path, settings):
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports"
    put_records(tenant.account, "contracts", [(f"c-{n}", {"n": n}) for n in range(50)])
    export = api.post(
        URL,
        {
            "name": "Nightly",
            "format": "JSON",
            "entities": ["contracts"],
            "options": {"jsonLines": True},
            "destination": {"type": "LOCAL", "path": "out"},
        },
        format="json",
    ).json()["data"]

    with celery_worker(queues="export", EXPORT_LOCAL_DIR=str(settings.EXPORT_LOCAL_DIR)):
        run = api.post(f"{URL}/{export['id']}/run").json()["data"]
        wait_for(
            lambda: SyncJob.objects.filter(pk=run["runId"], status="COMPLETED").exists(),
            timeout=90,
        )

    body = api.get(f"{URL}/{export['id']}/runs/{run['runId']}").json()["data"]
    [file] = body["files"]
    downloaded = api.get(f"{URL}/{export['id']}/runs/{run['runId']}/files/1")
    content = b"".join(downloaded.streaming_content)
    assert body["rows"] == {"contracts": 50}
    assert hashlib.sha256(content).hexdigest() == file["sha256"]
    assert len(content.splitlines()) == 50
