"""Sub-resources of an integration: clone, connections, shares, revisions, install steps,
template, dependencies."""

import io
import json
import re
import zipfile

import pytest

from accounts.models import AuditEntry, Event
from integrations.models import FileImport, Flow, Integration, Revision
from tests.factories import ConnectionFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration(tenant):
    return IntegrationFactory(
        account=tenant.account, name="Nightly feed", sync_settings={"strategy": "overwrite"}
    )


def url(integration, suffix=""):
    return f"/api/v1/integrations/{integration.pk}{suffix}"


def test_clone_copies_definition_flows_and_imports_but_not_run_state(tenant, api, integration):
    upstream = IntegrationFactory(account=tenant.account)
    integration.depends_on.add(upstream)
    integration.status = "errored"
    integration.consecutive_failures = 4
    integration.save()
    file_import = FileImport.objects.create(
        account=tenant.account,
        integration=integration,
        name="Inventory CSV",
        entity="vehicles",
        filter={"make": "Ford"},
    )
    Flow.objects.create(
        account=tenant.account, integration=integration, name="Load", file_import=file_import
    )

    response = api.post(url(integration, "/clone"), {"name": "Copy"}, format="json")

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["id"] != str(integration.pk)
    assert data["name"] == "Copy"
    assert data["status"] == "pending"
    assert data["consecutiveFailures"] == 0
    assert data["syncSettings"]["strategy"] == "overwrite"
    assert data["dependsOn"] == [str(upstream.pk)]
    clone = Integration.objects.get(pk=data["id"])
    cloned_import = clone.file_imports.get()
    assert cloned_import.name == "Inventory CSV"
    assert cloned_import.api_identifier != file_import.api_identifier
    assert (cloned_import.entity, cloned_import.filter) == ("vehicles", {"make": "Ford"})
    assert clone.flows.get().file_import == cloned_import
    assert AuditEntry.objects.get(integration_id=clone.pk, resource_type="integration").changes[
        "clonedFrom"
    ]["after"] == str(integration.pk)


class TestConnections:
    def test_register_many_then_one_then_unregister(self, tenant, api, integration):
        first, second, third = ConnectionFactory.create_batch(3, account=tenant.account)

        many = api.put(
            url(integration, "/connections/register"),
            [str(first.pk), str(second.pk)],
            format="json",
        )
        one = api.put(url(integration, f"/connections/{third.pk}/register"))
        listed = api.get(url(integration, "/connections"))
        removed = api.delete(url(integration, f"/connections/{first.pk}/register"))

        assert many.status_code == 200, many.content
        assert {c["connectionId"] for c in many.json()["data"]} == {str(first.pk), str(second.pk)}
        assert one.status_code == 200
        assert listed.json()["meta"]["pagination"]["total"] == 3
        assert removed.status_code == 204
        assert set(integration.connections.all()) == {second, third}

    def test_source_and_destination_count_as_connections(self, tenant, api, integration):
        integration.source_connection = ConnectionFactory(account=tenant.account)
        integration.save()

        response = api.get(url(integration, "/connections"))

        assert [c["connectionId"] for c in response.json()["data"]] == [
            str(integration.source_connection_id)
        ]

    def test_register_is_all_or_nothing(self, tenant, other_tenant, api, integration):
        mine = ConnectionFactory(account=tenant.account)
        theirs = ConnectionFactory(account=other_tenant.account)

        response = api.put(
            url(integration, "/connections/register"), [str(mine.pk), str(theirs.pk)], format="json"
        )

        assert response.status_code == 400
        assert "[1]" in response.json()["error"]["details"]
        assert integration.connections.count() == 0

    @pytest.mark.parametrize("body", [[], {"ids": []}, "text"])
    def test_register_body_must_be_a_list_of_ids(self, api, integration, body):
        assert (
            api.put(url(integration, "/connections/register"), body, format="json").status_code
            == 400
        )

    def test_another_accounts_connection_is_404(self, other_tenant, api, integration):
        theirs = ConnectionFactory(account=other_tenant.account)

        assert api.put(url(integration, f"/connections/{theirs.pk}/register")).status_code == 404
        assert api.delete(url(integration, f"/connections/{theirs.pk}/register")).status_code == 404
        assert integration.connections.count() == 0

    def test_unregistering_what_is_not_registered_is_400(self, tenant, api, integration):
        connection = ConnectionFactory(account=tenant.account)

        assert (
            api.delete(url(integration, f"/connections/{connection.pk}/register")).status_code
            == 400
        )


class TestShares:
    def test_share_list_and_unshare(self, tenant, api, integration):
        user = UserFactory(account=tenant.account, email="ops@acme.test")

        created = api.post(
            url(integration, "/ashares"),
            {"email": "OPS@acme.test", "accessLevel": "manage"},
            format="json",
        )
        listed = api.get(url(integration, "/ashares"))
        duplicate = api.post(url(integration, "/ashares"), {"userId": user.pk}, format="json")
        removed = api.delete(url(integration, f"/ashares/{created.json()['data']['id']}"))

        assert created.status_code == 201, created.content
        assert created.json()["data"]["accessLevel"] == "manage"
        assert listed.json()["data"][0]["email"] == "ops@acme.test"
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "CONFLICT"
        assert removed.status_code == 204
        assert integration.shares.count() == 0

    def test_cannot_share_with_a_user_of_another_account(self, other_tenant, api, integration):
        UserFactory(account=other_tenant.account, email="spy@rival.test")

        response = api.post(
            url(integration, "/ashares"), {"email": "spy@rival.test"}, format="json"
        )

        assert response.status_code == 400
        assert integration.shares.count() == 0


class TestRevisions:
    def test_create_always_snapshots_by_default(self, api, integration):
        first = api.post(
            url(integration, "/revisions/create"), {"description": "before go-live"}, format="json"
        )
        second = api.post(
            url(integration, "/revisions/create?ignoreIfNoChanges=false"), format="json"
        )

        assert first.status_code == 201, first.content
        assert second.status_code == 201
        assert first.json()["data"]["number"] == 1
        assert second.json()["data"]["number"] == 2
        assert first.json()["data"]["snapshot"]["integration"]["name"] == "Nightly feed"
        assert first.json()["data"]["contentHash"] == second.json()["data"]["contentHash"]

    def test_ignore_if_no_changes_skips_an_identical_snapshot(self, api, integration):
        api.post(url(integration, "/revisions/create"), format="json")

        unchanged = api.post(
            url(integration, "/revisions/create?ignoreIfNoChanges=true"), format="json"
        )
        api.patch(url(integration), {"tag": "v2"}, format="json")
        changed = api.post(
            url(integration, "/revisions/create?ignoreIfNoChanges=true"), format="json"
        )

        assert unchanged.status_code == 204
        assert changed.status_code == 201
        assert changed.json()["data"]["snapshot"]["integration"]["tag"] == "v2"
        assert Revision.objects.filter(integration=integration).count() == 2

    def test_list_and_detail(self, api, integration):
        created = api.post(url(integration, "/revisions/create"), format="json").json()["data"]

        listed = api.get(url(integration, "/revisions"))
        detail = api.get(url(integration, f"/revisions/{created['id']}"))

        assert [r["number"] for r in listed.json()["data"]] == [1]
        assert "snapshot" not in listed.json()["data"][0]
        assert detail.json()["data"]["snapshot"] == created["snapshot"]

    def test_bad_flag_is_400(self, api, integration):
        assert (
            api.post(url(integration, "/revisions/create?ignoreIfNoChanges=perhaps")).status_code
            == 400
        )


class TestInstallSteps:
    @pytest.fixture
    def with_steps(self, tenant, api, integration):
        steps = [
            {"name": "Connect Stripe", "type": "connection", "connectorId": "test_shop_api"},
            {"name": "Settings", "type": "form", "form": {"fields": [{"id": "region"}]}},
        ]
        response = api.patch(
            url(integration),
            {"installSteps": steps, "uninstallSteps": [{"name": "Confirm", "type": "form"}]},
            format="json",
        )
        assert response.status_code == 200, response.content
        return integration

    def test_steps_complete_in_order(self, tenant, api, with_steps):
        connection = ConnectionFactory(account=tenant.account, connector_id="test_shop_api")

        shown = api.get(url(with_steps, "/installSteps"))
        out_of_order = api.post(
            url(with_steps, "/installSteps"), {"step": "Settings", "formData": {}}, format="json"
        )
        wrong_kind = api.post(
            url(with_steps, "/installSteps"),
            {"connectionId": str(ConnectionFactory(account=tenant.account).pk)},
            format="json",
        )
        first = api.post(
            url(with_steps, "/installSteps"), {"connectionId": str(connection.pk)}, format="json"
        )
        second = api.post(
            url(with_steps, "/installSteps"), {"formData": {"region": "us"}}, format="json"
        )
        again = api.post(url(with_steps, "/installSteps"), {"formData": {}}, format="json")

        assert shown.json()["data"]["currentStep"] == "Connect Stripe"
        assert out_of_order.status_code == 400
        assert wrong_kind.status_code == 400
        assert first.json()["data"]["currentStep"] == "Settings"
        assert second.status_code == 200
        assert second.json()["data"]["completed"] is True
        assert second.json()["data"]["steps"][1]["submitted"] == {"region": "us"}
        assert again.status_code == 409
        assert with_steps.connections.filter(pk=connection.pk).exists()
        assert Event.objects.filter(
            type="integration.installed", integration_id=with_steps.pk
        ).exists()

    def test_last_uninstall_step_removes_the_integration(self, api, with_steps):
        response = api.post(
            url(with_steps, "/uninstallSteps"), {"formData": {"confirm": True}}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["data"]["completed"] is True
        assert api.get(url(with_steps)).status_code == 404
        assert Integration.all_objects.get(pk=with_steps.pk).deleted_at is not None

    def test_no_steps_defined_is_400(self, api, integration):
        assert (
            api.post(url(integration, "/installSteps"), {"formData": {}}, format="json").status_code
            == 400
        )


class TestTemplate:
    def test_download_is_a_zip_without_secrets(self, tenant, api, integration):
        integration.source_connection = ConnectionFactory(
            account=tenant.account, credential_keys=["apiKey"]
        )
        integration.save()

        response = api.get(url(integration, "/template"))

        assert response.status_code == 200
        assert response["Content-Type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            document = json.loads(archive.read("integration.json"))
        assert document["integration"]["name"] == "Nightly feed"
        assert document["connections"][0]["credentialKeys"] == ["apiKey"]
        assert "credentials" not in document["connections"][0]

    def test_signed_link_downloads_without_an_api_key(self, api, anon_client, integration):
        link = api.post(url(integration, "/template"))

        assert link.status_code == 200
        data = link.json()["data"]
        assert data["key"] == f"{integration.pk}.zip"
        assert re.fullmatch(r"http://testserver/api/v1/templates/[^/]+", data["signedURL"])
        downloaded = anon_client.get(data["signedURL"])
        assert downloaded.status_code == 200
        assert downloaded["Content-Type"] == "application/zip"

    def test_tampered_link_is_refused(self, api, anon_client, integration):
        signed_url = api.post(url(integration, "/template")).json()["data"]["signedURL"]

        response = anon_client.get(signed_url[:-2] + "xx")

        assert response.status_code == 400


def test_dependencies_lists_both_directions(tenant, api, integration):
    upstream = IntegrationFactory(account=tenant.account, name="Upstream")
    downstream = IntegrationFactory(account=tenant.account, name="Downstream")
    integration.depends_on.add(upstream)
    downstream.depends_on.add(integration)
    integration.source_connection = ConnectionFactory(account=tenant.account, name="Source")
    integration.save()
    FileImport.objects.create(account=tenant.account, integration=integration, name="CSV import")

    response = api.get(url(integration, "/dependencies"))

    assert response.status_code == 200
    data = response.json()["data"]
    assert [i["name"] for i in data["uses"]["integrations"]] == ["Upstream"]
    assert data["uses"]["connections"][0]["roles"] == ["source"]
    assert [i["name"] for i in data["usedBy"]["integrations"]] == ["Downstream"]
    assert [i["name"] for i in data["usedBy"]["imports"]] == ["CSV import"]
