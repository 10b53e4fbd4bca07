"""The integrations resource: create, read, update, soft delete, filters, sorting, audit, events."""

from datetime import UTC, datetime

import pytest
import time_machine

from accounts.models import AuditEntry, Event
from integrations.models import Integration
from sftpgateway.models import SftpCredential
from tests.factories import ConnectionFactory, DealershipFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations"


@pytest.fixture
def dealership(tenant):
    return DealershipFactory(account=tenant.account)


def test_create_feed_integration_with_the_feed_document_body(tenant, api, dealership):
    response = api.post(
        URL,
        {"dealershipId": str(dealership.pk), "type": "vauto", "name": "My vAuto Feed"},
        format="json",
    )

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["type"] == "vauto"
    assert data["name"] == "My vAuto Feed"
    assert data["status"] == "pending"
    assert data["state"] == "active"
    assert data["isActive"] is True
    assert data["dataType"] == "inventory"
    assert data["accountId"] == str(tenant.account.pk)
    assert data["dealershipId"] == str(dealership.pk)
    assert data["syncSettings"] == {
        "strategy": "merge",
        "soldGraceSyncs": 2,
        "soldGraceHours": 0,
        "trackHistory": False,
        "minRowsRatio": 0.5,
        "maxErrorRatio": 0.1,
    }
    assert data["config"] == {"global": {}, "tasks": []}
    assert data["importDependencyStatus"] == "ready"
    assert data["consecutiveFailures"] == 0
    assert data["lastError"] is None


@time_machine.travel(datetime(2026, 3, 4, 15, 0, tzinfo=UTC), tick=False)
def test_create_with_the_integrations_document_body(tenant, api):
    source = ConnectionFactory(
        account=tenant.account, connector_id="test_shop_api", name="My Shopify Store"
    )
    destination = ConnectionFactory(
        account=tenant.account, connector_id="test_shop_api", name="Mixpanel Production"
    )

    response = api.post(
        URL,
        {
            "sourceAppId": str(source.pk),
            "destinationAppId": str(destination.pk),
            "dataType": "events",
            "config": {
                "global": {},
                "tasks": [{"task_type": "track_events", "include_anonymous": False}],
            },
            "schedule": {"frequencyValue": 1, "frequencyUnit": "hours", "rollingWindowDays": 7},
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["sourceAppId"] == str(source.pk)
    assert data["sourceAppName"] == "My Shopify Store"
    assert data["sourceAppType"] == "test_shop_api"
    assert data["destinationAppName"] == "Mixpanel Production"
    assert data["type"] == "test_shop_api"
    assert data["name"] == "My Shopify Store → Mixpanel Production"
    assert data["config"]["tasks"] == [{"task_type": "track_events", "include_anonymous": False}]
    assert data["schedule"] == {
        "frequencyValue": 1,
        "frequencyUnit": "hours",
        "rollingWindowDays": 7,
        "oneOff": False,
    }
    assert data["nextRunAt"] == "2026-03-04T16:00:00Z"


@time_machine.travel(datetime(2026, 3, 4, 15, 0, tzinfo=UTC), tick=False)
def test_run_now_makes_the_integration_due_now(api, dealership):
    response = api.post(
        URL,
        {
            "dealershipId": str(dealership.pk),
            "type": "homenet",
            "schedule": {"frequency_value": 1, "frequency_unit": "days", "runNow": True},
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["data"]["nextRunAt"] == "2026-03-04T15:00:00Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "vauto"}, "dealershipId"),
        ({"type": "nope"}, "type"),
        ({}, "name"),
        ({"type": "vauto", "dealershipId": "not-a-uuid"}, "dealershipId"),
        ({"type": "vauto", "dealershipId": 42}, "dealershipId"),
        ({"type": "vauto", "syncSettings": {"strategy": "replace"}}, "syncSettings.strategy"),
        (
            {"type": "vauto", "syncSettings": {"sold_grace_syncs": -1}},
            "syncSettings.sold_grace_syncs",
        ),
        ({"type": "vauto", "syncSettings": {"trackHistory": "yes"}}, "syncSettings.trackHistory"),
        ({"type": "vauto", "syncSettings": {"soldGraceDays": 3}}, "syncSettings.soldGraceDays"),
        ({"type": "vauto", "syncSettings": []}, "syncSettings"),
        (
            {"type": "vauto", "schedule": {"frequencyValue": 0, "frequencyUnit": "hours"}},
            "schedule.frequencyValue",
        ),
        (
            {"type": "vauto", "schedule": {"frequencyValue": 2, "frequencyUnit": "fortnights"}},
            "schedule.frequencyUnit",
        ),
        ({"type": "vauto", "schedule": {"frequencyValue": 2}}, "schedule"),
        ({"type": "vauto", "schedule": {"rollingWindowDays": 99999}}, "schedule.rollingWindowDays"),
        ({"type": "vauto", "config": {"tasks": [{"no": "type"}]}}, "config.tasks[0].task_type"),
        ({"type": "vauto", "config": "text"}, "config"),
        ({"type": "vauto", "dataType": "planets"}, "dataType"),
        ({"type": "vauto", "state": "paused"}, "state"),
        ({"type": "vauto", "status": "completed"}, "status"),
        ({"type": "vauto", "historicalSyncStartDate": "yesterday"}, "historicalSyncStartDate"),
        ({"type": "vauto", "updateInProgress": "maybe"}, "updateInProgress"),
        ({"type": "vauto", "dependsOn": ["8d0b1f55-8f1c-4c55-9d7e-2ab0d1b2c3d4"]}, "dependsOn"),
        ({"type": "vauto", "installSteps": [{"type": "form"}]}, "installSteps[0].name"),
        ({"type": "vauto", "settings": [1, 2]}, "settings"),
    ],
)
def test_invalid_input_is_a_400_with_field_details(api, dealership, body, field):
    if field != "dealershipId" and "dealershipId" not in body:
        body = {**body, "dealershipId": str(dealership.pk)}

    response = api.post(URL, body, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"], error
    assert not Integration.all_objects.exists()


def test_references_to_another_accounts_objects_are_rejected(api, other_tenant):
    their_dealership = DealershipFactory(account=other_tenant.account)
    their_connection = ConnectionFactory(account=other_tenant.account)

    response = api.post(
        URL,
        {
            "type": "vauto",
            "dealershipId": str(their_dealership.pk),
            "sourceAppId": str(their_connection.pk),
        },
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {"dealershipId", "sourceAppId"}


def test_get_returns_every_documented_field(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    response = api.get(f"{URL}/{integration.pk}")

    assert response.status_code == 200
    data = response.json()["data"]
    for field in [
        "id",
        "accountId",
        "dealershipId",
        "name",
        "type",
        "sourceAppId",
        "destinationAppId",
        "dataType",
        "config",
        "schedule",
        "nextRunAt",
        "historicalSyncStartDate",
        "syncSettings",
        "state",
        "status",
        "isActive",
        "lastSyncAt",
        "lastError",
        "consecutiveFailures",
        "latestJobId",
        "importDependencyStatus",
        "dependsOn",
        "settings",
        "version",
        "tag",
        "updateInProgress",
        "flowGroupings",
        "aliases",
        "createdAt",
        "updatedAt",
    ]:
        assert field in data, field


def test_patch_sync_settings_merges_and_accepts_both_spellings(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    first = api.patch(
        f"{URL}/{integration.pk}",
        {"syncSettings": {"strategy": "overwrite", "sold_grace_syncs": 3}},
        format="json",
    )
    second = api.patch(
        f"{URL}/{integration.pk}", {"syncSettings": {"trackHistory": True}}, format="json"
    )

    assert first.status_code == 200, first.content
    settings = second.json()["data"]["syncSettings"]
    assert settings["strategy"] == "overwrite"
    assert settings["soldGraceSyncs"] == 3
    assert settings["trackHistory"] is True
    integration.refresh_from_db()
    assert integration.sync_settings["sold_grace_syncs"] == 3


def test_patch_with_the_feed_document_body(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    response = api.patch(
        f"{URL}/{integration.pk}",
        {
            "name": "Updated Name",
            "status": "inactive",
            "syncSettings": {
                "strategy": "merge",
                "sold_grace_syncs": 2,
                "sold_grace_hours": 24,
                "track_history": True,
            },
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["name"] == "Updated Name"
    assert data["state"] == "inactive"
    assert data["isActive"] is False
    assert data["status"] == "pending"
    assert data["syncSettings"]["soldGraceHours"] == 24


def test_patch_of_the_container_document_fields(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    body = {
        "settings": {"storeMap": {"A": 1}},
        "version": "2.1.0",
        "tag": "beta",
        "updateInProgress": True,
        "flowGroupings": [{"name": "Orders", "settings": {"x": 1}}],
        "aliases": [{"alias": "main", "id": "x"}],
    }

    response = api.patch(f"{URL}/{integration.pk}", body, format="json")

    assert response.status_code == 200
    data = response.json()["data"]
    assert {key: data[key] for key in body} == body


def test_put_replaces_sync_settings(tenant, api):
    integration = IntegrationFactory(
        account=tenant.account, sync_settings={"strategy": "overwrite", "track_history": True}
    )

    response = api.put(
        f"{URL}/{integration.pk}",
        {
            "name": "Replaced",
            "type": "vauto",
            "dealershipId": str(integration.dealership_id),
            "syncSettings": {"strategy": "update_only"},
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    settings = response.json()["data"]["syncSettings"]
    assert settings["strategy"] == "update_only"
    assert settings["trackHistory"] is False


def test_type_cannot_change(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    response = api.patch(f"{URL}/{integration.pk}", {"type": "homenet"}, format="json")

    assert response.status_code == 400
    assert "type" in response.json()["error"]["details"]


def test_depends_on_refuses_cycles(tenant, api):
    upstream = IntegrationFactory(account=tenant.account)
    downstream = IntegrationFactory(account=tenant.account)
    assert (
        api.patch(
            f"{URL}/{downstream.pk}", {"dependsOn": [str(upstream.pk)]}, format="json"
        ).status_code
        == 200
    )

    cycle = api.patch(f"{URL}/{upstream.pk}", {"dependsOn": [str(downstream.pk)]}, format="json")
    self_loop = api.patch(f"{URL}/{upstream.pk}", {"dependsOn": [str(upstream.pk)]}, format="json")

    assert cycle.status_code == 400
    assert self_loop.status_code == 400
    assert list(upstream.depends_on.all()) == []


def test_delete_is_soft_and_audited(tenant, api):
    integration = IntegrationFactory(account=tenant.account)

    response = api.delete(f"{URL}/{integration.pk}")

    assert response.status_code == 204
    assert api.get(f"{URL}/{integration.pk}").status_code == 404
    assert api.get(URL).json()["meta"]["pagination"]["total"] == 0
    stored = Integration.all_objects.get(pk=integration.pk)
    assert stored.deleted_at is not None
    assert Event.objects.filter(type="integration.deleted", integration_id=integration.pk).exists()


def test_every_write_is_audited_with_before_and_after(tenant, api, dealership):
    created = api.post(
        URL, {"type": "elead", "dealershipId": str(dealership.pk), "name": "A"}, format="json"
    )
    pk = created.json()["data"]["id"]
    api.patch(f"{URL}/{pk}", {"name": "B"}, format="json")
    api.delete(f"{URL}/{pk}")

    response = api.get(f"{URL}/{pk}/audit")

    # deleted integrations have no API; the trail stays in the database
    assert response.status_code == 404
    entries = list(
        AuditEntry.objects.filter(integration_id=pk, resource_type="integration").order_by(
            "created_at", "id"
        )
    )
    assert [entry.action for entry in entries] == ["created", "updated", "deleted"]
    assert entries[1].changes["name"] == {"before": "A", "after": "B"}
    assert entries[1].actor_type == "api_key"
    assert entries[1].actor_id == str(tenant.api_key.pk)


def test_audit_endpoint_lists_newest_first(tenant, api):
    integration = IntegrationFactory(account=tenant.account, name="v0")
    for name in ("v1", "v2"):
        api.patch(f"{URL}/{integration.pk}", {"name": name}, format="json")

    response = api.get(f"{URL}/{integration.pk}/audit")

    assert response.status_code == 200
    names = [entry["changes"]["name"]["after"] for entry in response.json()["data"]]
    assert names == ["v2", "v1"]


def test_audit_changes_name_fields_as_the_api_does(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    api.patch(f"{URL}/{integration.pk}", {"syncSettings": {"strategy": "overwrite"}}, format="json")

    [entry] = api.get(f"{URL}/{integration.pk}/audit").json()["data"]

    assert "syncSettings" in entry["changes"]
    assert "sync_settings" not in entry["changes"]


def test_events_are_recorded_and_listed(tenant, api, dealership):
    created = api.post(
        URL, {"type": "vauto", "dealershipId": str(dealership.pk)}, format="json"
    ).json()["data"]
    api.patch(f"{URL}/{created['id']}", {"tag": "x"}, format="json")

    response = api.get(f"/api/v1/events?integrationId={created['id']}")

    assert response.status_code == 200
    types = [event["type"] for event in response.json()["data"]]
    assert types == ["integration.updated", "integration.created"]
    assert response.json()["data"][1]["payload"]["integration"]["id"] == created["id"]
    assert (
        api.get("/api/v1/events?type=integration.created").json()["meta"]["pagination"]["total"]
        == 1
    )
    assert api.get("/api/v1/events?since=2999-01-01T00:00:00Z").json()["data"] == []
    assert api.get("/api/v1/events?since=garbage").status_code == 400


class TestListing:
    def test_filters(self, tenant, api):
        source = ConnectionFactory(account=tenant.account)
        wanted = IntegrationFactory(
            account=tenant.account,
            state="active",
            status="completed",
            source_connection=source,
            data_type="events",
            type="custom",
        )
        IntegrationFactory(account=tenant.account, state="inactive", status="completed")
        IntegrationFactory(account=tenant.account, state="active", status="errored")

        for query in (
            "state=active&status=completed",
            f"source_app_id={source.pk}",
            f"sourceAppId={source.pk}",
            "data_type=events",
            "dataType=events",
            "type=custom",
            f"dealershipId={wanted.dealership_id}",
        ):
            response = api.get(f"{URL}?{query}")
            assert response.status_code == 200, query
            assert [item["id"] for item in response.json()["data"]] == [str(wanted.pk)], query

    @pytest.mark.parametrize(
        "query",
        [
            "state=paused",
            "status=done",
            "source_app_id=nope",
            "data_type=planets",
            "limit=0",
            "limit=101",
            "limit=ten",
            "offset=-1",
            "offset=99999999999999999999",
            "sort=color:asc",
            "sort=name:up",
        ],
    )
    def test_bad_query_parameters_are_400(self, api, query):
        response = api.get(f"{URL}?{query}")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"

    def test_sorting_and_pagination(self, tenant, api):
        for name in ("Bravo", "Alpha", "Charlie"):
            IntegrationFactory(account=tenant.account, name=name)

        ascending = api.get(f"{URL}?sort=name:asc&limit=2")
        descending = api.get(f"{URL}?sort=name:desc&limit=2&offset=2")

        assert [i["name"] for i in ascending.json()["data"]] == ["Alpha", "Bravo"]
        assert ascending.json()["meta"]["pagination"] == {
            "total": 3,
            "limit": 2,
            "offset": 0,
            "hasMore": True,
        }
        assert [i["name"] for i in descending.json()["data"]] == ["Alpha"]
        assert descending.json()["meta"]["pagination"]["hasMore"] is False

    def test_default_limit_is_20(self, tenant, api):
        IntegrationFactory.create_batch(21, account=tenant.account)

        response = api.get(URL)

        assert len(response.json()["data"]) == 20
        assert response.json()["meta"]["pagination"]["hasMore"] is True


class TestTenantIsolation:
    @pytest.fixture
    def theirs(self, other_tenant):
        return IntegrationFactory(account=other_tenant.account, name="Theirs")

    def test_list_never_shows_another_accounts_integrations(self, api, theirs):
        assert api.get(URL).json()["data"] == []

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("get", "", None),
            ("patch", "", {"name": "Mine"}),
            ("put", "", {"name": "Mine", "type": "vauto"}),
            ("delete", "", None),
            ("post", "/clone", {}),
            ("get", "/flows", None),
            ("get", "/connections", None),
            ("get", "/imports", None),
            ("get", "/exports", None),
            ("get", "/ashares", None),
            ("get", "/audit", None),
            ("get", "/template", None),
            ("post", "/template", None),
            ("get", "/dependencies", None),
            ("get", "/revisions", None),
            ("post", "/revisions/create", {}),
            ("get", "/installSteps", None),
            ("post", "/installSteps", {"formData": {}}),
            ("get", "/uninstallSteps", None),
            ("post", "/uninstallSteps", {"formData": {}}),
            ("put", "/connections/register", ["8d0b1f55-8f1c-4c55-9d7e-2ab0d1b2c3d4"]),
        ],
    )
    def test_another_accounts_integration_is_404_and_unchanged(
        self, api, theirs, method, suffix, body
    ):
        response = getattr(api, method)(f"{URL}/{theirs.pk}{suffix}", body, format="json")

        assert response.status_code == 404, (method, suffix, response.content)
        assert response.json()["error"]["code"] == "NOT_FOUND"
        stored = Integration.all_objects.get(pk=theirs.pk)
        assert stored.name == "Theirs"
        assert stored.deleted_at is None
        assert not AuditEntry.objects.filter(integration_id=theirs.pk).exists()
        assert Integration.all_objects.count() == 1


class TestContainers:
    """An integration that groups flows, imports, exports and connections (no feed, no source)."""

    def test_a_name_alone_creates_an_integration_container(self, tenant, api):
        response = api.post(URL, {"name": "Acme Connector"}, format="json")

        assert response.status_code == 201, response.content
        data = response.json()["data"]
        assert data["name"] == "Acme Connector"
        assert data["type"] == "container"
        assert data["dataType"] == "records"
        assert data["dealershipId"] is None
        assert data["sourceAppId"] is None
        assert data["destinationAppId"] is None
        assert data["state"] == "active"
        assert data["status"] == "pending"
        assert data["nextRunAt"] is None
        # A container has no feed: no SFTP login is issued, shown or stored.
        assert "sftp" not in data
        assert not SftpCredential.objects.exists()
        assert api.get(f"{URL}/{data['id']}/sftp").status_code == 404
        assert Event.objects.filter(type="integration.created", integration_id=data["id"]).exists()

    def test_a_container_keeps_a_data_type_it_is_given(self, api):
        response = api.post(URL, {"name": "Billing", "dataType": "invoices"}, format="json")

        assert response.status_code == 201, response.content
        assert response.json()["data"]["type"] == "container"
        assert response.json()["data"]["dataType"] == "invoices"

    def test_a_container_groups_connections_and_flows(self, tenant, api):
        container = api.post(URL, {"name": "Acme Connector"}, format="json").json()["data"]
        connection = ConnectionFactory(account=tenant.account)

        registered = api.put(f"{URL}/{container['id']}/connections/{connection.pk}/register")
        flow = api.post(
            "/api/v1/flows", {"integrationId": container["id"], "name": "Orders"}, format="json"
        )

        assert registered.status_code == 200, registered.content
        assert flow.status_code == 201, flow.content
        assert [f["name"] for f in api.get(f"{URL}/{container['id']}/flows").json()["data"]] == [
            "Orders"
        ]
        connections = api.get(f"{URL}/{container['id']}/connections").json()["data"]
        assert [c["connectionId"] for c in connections] == [str(connection.pk)]

    def test_nothing_to_name_a_container_is_a_400_saying_what_to_send(self, api):
        response = api.post(URL, {"dataType": "events"}, format="json")

        assert response.status_code == 400
        details = response.json()["error"]["details"]
        assert list(details) == ["name"]
        assert "sourceAppId" in details["name"][0]
        assert not Integration.all_objects.exists()

    def test_a_container_has_nothing_to_sync_itself(self, api):
        container = api.post(URL, {"name": "Acme Connector"}, format="json").json()["data"]

        response = api.post(f"{URL}/{container['id']}/sync")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"


class TestPreferReturnMinimal:
    def test_patch_with_prefer_return_minimal_is_204_and_applied(self, tenant, api):
        integration = IntegrationFactory(account=tenant.account, name="Before")

        response = api.patch(
            f"{URL}/{integration.pk}",
            {"name": "After", "tag": "beta"},
            format="json",
            HTTP_PREFER="return=minimal",
        )

        assert response.status_code == 204
        assert response.content == b""
        assert response["Preference-Applied"] == "return=minimal"
        assert not response.has_header("Content-Type")
        integration.refresh_from_db()
        assert (integration.name, integration.tag) == ("After", "beta")
        assert AuditEntry.objects.filter(integration_id=integration.pk, action="updated").exists()

    def test_put_with_prefer_return_minimal_is_204(self, tenant, api):
        integration = IntegrationFactory(account=tenant.account)

        response = api.put(
            f"{URL}/{integration.pk}",
            {"name": "Replaced", "dealershipId": str(integration.dealership_id)},
            format="json",
            HTTP_PREFER="return=minimal",
        )

        assert response.status_code == 204, response.content
        integration.refresh_from_db()
        assert integration.name == "Replaced"

    @pytest.mark.parametrize("prefer", [None, "return=representation", "handling=lenient"])
    def test_without_the_preference_the_update_answers_the_object(self, tenant, api, prefer):
        integration = IntegrationFactory(account=tenant.account)
        headers = {"HTTP_PREFER": prefer} if prefer else {}

        response = api.patch(f"{URL}/{integration.pk}", {"name": "After"}, format="json", **headers)

        assert response.status_code == 200
        assert response.json()["data"]["name"] == "After"
        assert not response.has_header("Preference-Applied")

    def test_a_refused_update_still_answers_its_error(self, tenant, api):
        integration = IntegrationFactory(account=tenant.account, name="Kept")

        response = api.patch(
            f"{URL}/{integration.pk}",
            {"syncSettings": {"strategy": "replace"}},
            format="json",
            HTTP_PREFER="return=minimal",
        )

        assert response.status_code == 400
        assert "syncSettings.strategy" in response.json()["error"]["details"]
        integration.refresh_from_db()
        assert integration.sync_settings.get("strategy") != "replace"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"config": {"tasks": [{"no": "type"}]}}, "config.tasks[0].task_type"),
        ({"installSteps": [{"type": "form"}]}, "installSteps[0].name"),
        ({"uninstallSteps": [{"name": "a"}, {"name": "a"}]}, "uninstallSteps[1].name"),
        ({"schedule": {"frequencyValue": 3}}, "schedule"),
        ({"syncSettings": {"soldGraceSyncs": "2"}}, "syncSettings.soldGraceSyncs"),
    ],
)
def test_a_patch_checks_each_json_part_as_a_whole(tenant, api, body, field):
    integration = IntegrationFactory(account=tenant.account)

    response = api.patch(f"{URL}/{integration.pk}", body, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]) == [field]


def test_a_patched_config_gets_its_defaults(tenant, api):
    integration = IntegrationFactory(
        account=tenant.account, config={"global": {"a": 1}, "tasks": [{"task_type": "x"}]}
    )

    response = api.patch(f"{URL}/{integration.pk}", {"config": {"region": "eu"}}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["config"] == {"region": "eu", "global": {}, "tasks": []}
