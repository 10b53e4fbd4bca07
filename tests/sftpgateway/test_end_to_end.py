"""The whole product path with real processes: an integration is created through the API, the
partner uploads its feed with OpenSSH's sftp client to the real gateway, a real Celery worker
ingests it, and the API shows the inventory and the log."""

import pytest

from syncengine.models import Vehicle
from tests.sftpgateway.conftest import requires, sftp_batch
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C, VIN_A
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), requires("sftp", "sshpass")]


@pytest.fixture
def dispatched() -> list[str]:
    """Unlike the gateway's own tests, uploads here really go to the worker queue."""
    return []


def test_sftp_upload_is_ingested_by_a_real_worker(tenant, api, feed, port, tmp_path):
    (tmp_path / "inventory_20250120.csv").write_text(vauto_rows(ROW_A, ROW_B, ROW_C))

    with celery_worker(queues="ingest"):
        upload = sftp_batch(
            feed.username,
            port,
            ["put inventory_20250120.csv"],
            password=feed.password,
            cwd=tmp_path,
        )
        assert upload.returncode == 0, upload.stderr

        def completed_log():
            logs = api.get(f"/api/v1/integrations/{feed.integration.pk}/logs").json()["data"]
            return logs if logs and logs[0]["status"] == "completed" else None

        logs = wait_for(completed_log, timeout=90)

    log = logs[0]
    assert log["filename"] == "inventory_20250120.csv"
    assert (log["recordsTotal"], log["recordsCreated"], log["recordsErrors"]) == (3, 3, 0)
    vehicles = api.get(f"/api/v1/vehicles?integrationId={feed.integration.pk}").json()["data"]
    assert VIN_A in {v["vin"] for v in vehicles}
    assert Vehicle.objects.filter(integration=feed.integration, status="active").count() == 3
    integration = api.get(f"/api/v1/integrations/{feed.integration.pk}").json()["data"]
    assert integration["status"] == "completed"
    assert integration["lastSyncAt"] is not None
