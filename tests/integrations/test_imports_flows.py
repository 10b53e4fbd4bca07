"""File imports (CRUD and clone) and the flows of an integration."""

import pytest

from accounts.models import AuditEntry
from integrations.models import FileImport, Flow
from tests.factories import ConnectionFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

DOCUMENTED_IMPORT = {
    "_id": "123ab456c789de1011fg12h13i",
    "lastModified": "2017-11-28T18:38:19.851Z",
    "name": "Upload File to FTP Site",
    "distributed": False,
    "apiIdentifier": "ib8f75411f4",
    "file": {
        "skipAggregation": False,
        "type": "csv",
        "csv": {
            "rowDelimiter": "\n",
            "columnDelimiter": ",",
            "includeHeader": False,
            "wrapWithQuotes": False,
            "replaceTabWithSpace": False,
            "replaceNewlineWithSpace": False,
        },
    },
    "ftp": {"directoryPath": "/test", "fileName": "file-{{timestamp}}.csv"},
    "mapping": {
        "fields": [
            {"extract": "internal_id", "generate": "id"},
            {"extract": "item_id", "generate": "sku"},
            {"extract": "rate", "generate": "price"},
        ]
    },
}


def test_create_with_the_documented_import_and_read_it_back(tenant, api):
    connection = ConnectionFactory(account=tenant.account)

    created = api.post(
        "/api/v1/imports", {**DOCUMENTED_IMPORT, "_connectionId": str(connection.pk)}, format="json"
    )

    assert created.status_code == 201, created.content
    data = created.json()["data"]
    assert data["connectionId"] == str(connection.pk)
    assert data["apiIdentifier"] != "ib8f75411f4"  # assigned by Railyard, not by the client
    assert data["file"] == DOCUMENTED_IMPORT["file"]
    assert data["ftp"] == DOCUMENTED_IMPORT["ftp"]
    assert data["mapping"] == DOCUMENTED_IMPORT["mapping"]
    assert api.get(f"/api/v1/imports/{data['id']}").json()["data"] == data


def test_put_updates_the_mapping(tenant, api):
    file_import = FileImport.objects.create(
        account=tenant.account, name="Old", mapping=DOCUMENTED_IMPORT["mapping"]
    )
    body = {**DOCUMENTED_IMPORT, "name": "Upload File to FTP Site (updated!)"}
    body["mapping"] = {"fields": [{"extract": "internal_id", "generate": "updated_id"}]}

    response = api.put(f"/api/v1/imports/{file_import.pk}", body, format="json")

    assert response.status_code == 200, response.content
    file_import.refresh_from_db()
    assert file_import.name == "Upload File to FTP Site (updated!)"
    assert file_import.mapping["fields"][0]["generate"] == "updated_id"
    assert AuditEntry.objects.filter(resource_type="import", action="updated").exists()


def test_clone_and_delete(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    file_import = FileImport.objects.create(
        account=tenant.account, integration=integration, name="Feed"
    )

    cloned = api.post(f"/api/v1/imports/{file_import.pk}/clone", {}, format="json")
    deleted = api.delete(f"/api/v1/imports/{file_import.pk}")
    by_integration = api.get(f"/api/v1/integrations/{integration.pk}/imports")

    assert cloned.status_code == 201
    assert cloned.json()["data"]["name"] == "Feed (copy)"
    assert cloned.json()["data"]["integrationId"] == str(integration.pk)
    assert deleted.status_code == 204
    assert [i["id"] for i in by_integration.json()["data"]] == [cloned.json()["data"]["id"]]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"file": {"type": "pdf"}}, "file.type"),
        ({"file": {"csv": {"columnDelimiter": ",,"}}}, "file.csv.columnDelimiter"),
        ({"file": {"csv": {"rowDelimiter": ";"}}}, "file.csv.rowDelimiter"),
        ({"file": {"csv": {"includeHeader": "no"}}}, "file.csv.includeHeader"),
        ({"ftp": {"directoryPath": 7}}, "ftp.directoryPath"),
        ({"mapping": {"fields": [{"extract": "a"}]}}, "mapping.fields[0].generate"),
        ({"mapping": {"fields": "a->b"}}, "mapping.fields"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_import_is_400(api, patch, field):
    response = api.post("/api/v1/imports", {**DOCUMENTED_IMPORT, **patch}, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"], response.json()
    assert not FileImport.objects.exists()


def test_a_patch_checks_the_import_documents_as_a_whole(tenant, api):
    file_import = FileImport.objects.create(account=tenant.account, name="Feed")

    missing = api.patch(
        f"/api/v1/imports/{file_import.pk}",
        {"mapping": {"fields": [{"extract": "Stock #"}]}},
        format="json",
    )
    replaced = api.patch(
        f"/api/v1/imports/{file_import.pk}", {"file": {"skipAggregation": True}}, format="json"
    )

    assert missing.status_code == 400
    assert list(missing.json()["error"]["details"]) == ["mapping.fields[0].generate"]
    assert replaced.status_code == 200, replaced.content
    assert replaced.json()["data"]["file"] == {"skipAggregation": True, "type": "csv"}


def test_flows_crud_and_listing_by_integration(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    file_import = FileImport.objects.create(
        account=tenant.account, integration=integration, name="Feed"
    )

    created = api.post(
        "/api/v1/flows",
        {
            "integrationId": str(integration.pk),
            "name": "Load inventory",
            "importId": str(file_import.pk),
        },
        format="json",
    )
    flow_id = created.json()["data"]["id"]
    patched = api.patch(f"/api/v1/flows/{flow_id}", {"disabled": True}, format="json")
    listed = api.get(f"/api/v1/integrations/{integration.pk}/flows")
    filtered = api.get(f"/api/v1/flows?integrationId={integration.pk}&disabled=true")
    deleted = api.delete(f"/api/v1/flows/{flow_id}")

    assert created.status_code == 201, created.content
    assert patched.json()["data"]["disabled"] is True
    assert [f["name"] for f in listed.json()["data"]] == ["Load inventory"]
    assert filtered.json()["meta"]["pagination"]["total"] == 1
    assert deleted.status_code == 204
    assert not Flow.objects.exists()


def test_flow_import_must_belong_to_the_same_integration(tenant, api):
    first, second = IntegrationFactory.create_batch(2, account=tenant.account)
    foreign_import = FileImport.objects.create(
        account=tenant.account, integration=second, name="Other"
    )

    response = api.post(
        "/api/v1/flows",
        {"integrationId": str(first.pk), "name": "x", "importId": str(foreign_import.pk)},
        format="json",
    )

    assert response.status_code == 400
    assert "importId" in response.json()["error"]["details"]


class TestTenantIsolation:
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("get", "", None),
            ("put", "", {"name": "Mine"}),
            ("patch", "", {"name": "Mine"}),
            ("delete", "", None),
            ("post", "/clone", {}),
        ],
    )
    def test_another_accounts_import_is_404(self, api, other_tenant, method, suffix, body):
        theirs = FileImport.objects.create(account=other_tenant.account, name="Theirs")

        response = getattr(api, method)(f"/api/v1/imports/{theirs.pk}{suffix}", body, format="json")

        assert response.status_code == 404
        theirs.refresh_from_db()
        assert theirs.name == "Theirs"
        assert FileImport.objects.count() == 1

    @pytest.mark.parametrize(
        ("method", "body"),
        [("get", None), ("put", {"name": "Mine"}), ("patch", {"name": "Mine"}), ("delete", None)],
    )
    def test_another_accounts_flow_is_404(self, api, other_tenant, method, body):
        theirs = Flow.objects.create(
            account=other_tenant.account,
            integration=IntegrationFactory(account=other_tenant.account),
            name="Theirs",
        )

        response = getattr(api, method)(f"/api/v1/flows/{theirs.pk}", body, format="json")

        assert response.status_code == 404
        theirs.refresh_from_db()
        assert theirs.name == "Theirs"

    def test_lists_hold_only_own_objects_and_refs_to_theirs_are_rejected(self, api, other_tenant):
        their_integration = IntegrationFactory(account=other_tenant.account)
        FileImport.objects.create(
            account=other_tenant.account, name="Theirs", integration=their_integration
        )

        assert api.get("/api/v1/imports").json()["data"] == []
        assert api.get("/api/v1/flows").json()["data"] == []
        assert (
            api.post(
                "/api/v1/imports",
                {"name": "x", "integrationId": str(their_integration.pk)},
                format="json",
            ).status_code
            == 400
        )
        assert (
            api.post(
                "/api/v1/flows",
                {"name": "x", "integrationId": str(their_integration.pk)},
                format="json",
            ).status_code
            == 400
        )
