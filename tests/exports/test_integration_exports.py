import datetime as dt
import io
import json
import uuid
import zipfile

import pytest

from exports.models import Export
from tests.exports.factories import ExportFactory
from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db


def exports_url(integration_id):
    return f"/api/v1/integrations/{integration_id}/exports"


def test_lists_only_the_exports_of_the_integration(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    other_integration = IntegrationFactory(account=tenant.account)
    linked = ExportFactory.create_batch(3, account=tenant.account, integration=integration)
    ExportFactory(account=tenant.account, integration=other_integration)
    ExportFactory(account=tenant.account)

    response = api.get(f"{exports_url(integration.pk)}?limit=2&sort=createdAt:asc")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [e["id"] for e in body["data"]] == [str(e.pk) for e in linked[:2]]
    assert all(e["integrationId"] == str(integration.pk) for e in body["data"])
    assert body["meta"]["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}


def test_filters_by_format_and_works_with_a_trailing_slash(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    parquet = ExportFactory(account=tenant.account, integration=integration, format="PARQUET")
    ExportFactory(account=tenant.account, integration=integration, format="CSV")

    response = api.get(f"{exports_url(integration.pk)}/?format=PARQUET")

    assert response.status_code == 200, response.content
    assert [e["id"] for e in response.json()["data"]] == [str(parquet.pk)]


def test_integration_without_exports_lists_nothing(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    response = api.get(exports_url(integration.pk))

    assert response.status_code == 200
    assert response.json()["data"] == []


def test_another_accounts_integration_is_404(other_tenant, api):
    theirs = IntegrationFactory(account=other_tenant.account)
    ExportFactory(account=other_tenant.account, integration=theirs)

    response = api.get(exports_url(theirs.pk))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_soft_deleted_or_unknown_integration_is_404(tenant, api):
    deleted = IntegrationFactory(account=tenant.account, deleted_at=dt.datetime.now(dt.UTC))
    ExportFactory(account=tenant.account, integration=deleted)

    assert api.get(exports_url(deleted.pk)).status_code == 404
    assert api.get(exports_url(uuid.uuid4())).status_code == 404


def test_unauthenticated_is_401(anon_client, tenant):
    integration = IntegrationFactory(account=tenant.account)

    response = anon_client.get(exports_url(integration.pk))

    assert response.status_code == 401


def test_integration_dependencies_list_its_exports(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    export = ExportFactory(account=tenant.account, integration=integration, name="Nightly")

    response = api.get(f"/api/v1/integrations/{integration.pk}/dependencies")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["usedBy"]["exports"] == [
        {"id": str(export.pk), "name": "Nightly"}
    ]


def test_integration_template_holds_its_exports_as_the_api_shows_them(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    created = api.post(
        "/api/v1/integrations/exports",
        {
            "name": "Nightly",
            "format": "JSON",
            "entities": ["vehicles"],
            "filter": {"status": {"in": ["ACTIVE"]}},
            "schedule": {"frequency": "DAILY", "time": "03:30", "timezone": "Europe/Berlin"},
            "destination": {"type": "LOCAL", "path": "nightly"},
            "integrationId": str(integration.pk),
        },
        format="json",
    ).json()["data"]

    response = api.get(f"/api/v1/integrations/{integration.pk}/template")

    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        document = json.loads(archive.read("integration.json"))
    [exported] = document["exports"]
    assert exported["id"] == created["id"]
    assert exported["name"] == "Nightly"
    assert exported["entities"] == ["vehicles"]
    assert exported["filter"] == {"status": {"in": ["ACTIVE"]}}
    assert exported["schedule"] == created["schedule"]
    assert exported["destination"] == {"type": "LOCAL", "path": "nightly"}
    assert Export.objects.get(pk=created["id"]).integration == integration
