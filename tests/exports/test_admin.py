import pytest
from django.test import Client

from accounts.models import AuditEntry
from exports.models import Export
from tests.exports.factories import ExportFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


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
        f"/admin/exports/export/{export.pk}/change/", {"state": "PAUSED"}
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
