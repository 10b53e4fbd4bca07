import pytest
from django.test import Client

from accounts.models import AuditEntry
from exports.models import Export, ExportFile
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob
from tests.exports.factories import ExportFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# The runs inline is read-only; its (empty) management form still comes with the page's form.
NO_RUN_FORMS = {
    "runs-TOTAL_FORMS": "0",
    "runs-INITIAL_FORMS": "0",
    "runs-MIN_NUM_FORMS": "0",
    "runs-MAX_NUM_FORMS": "0",
}


@pytest.fixture
def operator_client():
    operator = UserFactory(is_staff=True, is_superuser=True, account=None)
    client = Client()
    client.force_login(operator)
    return client


def test_changelist_searches_by_account_name_and_filters(operator_client, tenant, other_tenant):
    ExportFactory(account=tenant.account, name="Acme contracts", format="PARQUET")
    ExportFactory(account=other_tenant.account, name="Rival contracts", format="PARQUET")

    searched = operator_client.get("/admin/exports/export/", {"q": "Rival"})
    filtered = operator_client.get(
        "/admin/exports/export/", {"format__exact": "PARQUET", "state__exact": "ACTIVE"}
    )

    assert searched.status_code == 200
    assert b"Rival contracts" in searched.content
    assert b"Acme contracts" not in searched.content
    assert filtered.status_code == 200
    assert b"Acme contracts" in filtered.content


def test_operator_pauses_an_export_and_the_change_is_audited(operator_client, tenant):
    export = ExportFactory(account=tenant.account)

    response = operator_client.post(
        f"/admin/exports/export/{export.pk}/change/", {"state": "PAUSED", **NO_RUN_FORMS}
    )

    assert response.status_code == 302, response.content
    export.refresh_from_db()
    assert export.state == "PAUSED"
    entry = AuditEntry.objects.get(resource_id=str(export.pk))
    assert (entry.action, entry.actor_type) == ("updated", "user")
    assert entry.changes["state"] == {"before": "ACTIVE", "after": "PAUSED"}


def test_operator_cannot_add_exports(operator_client):
    response = operator_client.get("/admin/exports/export/add/")

    assert response.status_code == 403


def test_operator_deletes_an_export_and_the_deletion_is_audited(operator_client, tenant):
    export = ExportFactory(account=tenant.account)

    response = operator_client.post(f"/admin/exports/export/{export.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Export.objects.filter(pk=export.pk).exists()
    assert AuditEntry.objects.get(resource_id=str(export.pk)).action == "deleted"


def test_an_exports_page_shows_its_runs_with_rows_files_and_errors(operator_client, tenant):
    export = ExportFactory(account=tenant.account, name="Nightly")
    done = lifecycle.run_create(
        kind="export", dispatch=False, account_id=tenant.account.pk, export=export, trigger="manual"
    )
    SyncJob.objects.filter(pk=done.pk).update(
        status="COMPLETED", stats={"contracts": {"rows": 42, "files": 1, "bytes": 900}}
    )
    ExportFile.objects.create(
        run=done,
        number=1,
        entity="contracts",
        destination_type="S3",
        uri="s3://exports-bucket/contracts/Nightly.csv",
        path="contracts/Nightly.csv",
        bytes=900,
        rows=42,
        sha256="ab" * 32,
    )
    failed = lifecycle.run_create(
        kind="export",
        dispatch=False,
        account_id=tenant.account.pk,
        export=export,
        trigger="schedule",
    )
    SyncJob.objects.filter(pk=failed.pk).update(status="FAILED", error="Access Denied by S3.")

    page = operator_client.get(f"/admin/exports/export/{export.pk}/change/")

    assert page.status_code == 200
    assert b"s3://exports-bucket/contracts/Nightly.csv" in page.content
    assert b"contracts: 42" in page.content
    assert b"Access Denied by S3." in page.content
    # Runs are shown, not edited.
    assert b'name="runs-0-status"' not in page.content


def test_the_rerun_action_queues_a_run_once(operator_client, tenant):
    export = ExportFactory(account=tenant.account)
    data = {"action": "run_now", "_selected_action": [str(export.pk)]}

    first = operator_client.post("/admin/exports/export/", data, follow=True)
    second = operator_client.post("/admin/exports/export/", data, follow=True)

    run = SyncJob.objects.get(export=export)
    assert (run.kind, run.trigger, run.status) == ("export", "manual", "QUEUED")
    assert b"1 run(s) queued." in first.content
    assert b"Already queued or running" in second.content
    assert AuditEntry.objects.filter(resource_id=str(export.pk), action="run").count() == 1
