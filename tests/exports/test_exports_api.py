import datetime as dt
import uuid

import pytest
import time_machine

from accounts.models import AuditEntry
from exports.models import Export
from syncengine.sync.store import RecordStoreWriter, stream_for
from tests.exports.conftest import put_records
from tests.exports.factories import ExportFactory
from tests.factories import ConnectionFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/exports"
NOW = dt.datetime(2025, 6, 15, 10, 30, tzinfo=dt.UTC)

DOCUMENTED_BODY = {
    "name": "Monthly Contract Export",
    "format": "CSV",
    "entities": ["contracts"],
    "filter": {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}},
    "schedule": {"frequency": "MONTHLY", "day": 1, "time": "02:00"},
    "destination": {"type": "S3", "bucket": "exports-bucket", "path": "/contracts/"},
}


@pytest.fixture(autouse=True)
def storage(tenant):
    """What the documented example needs in the account: contracts in its record store and the
    storage connections its destinations write through."""
    put_records(tenant.account, "contracts", [("c-1", {"status": "ACTIVE", "price": 10})])
    return {
        "s3": ConnectionFactory(
            account=tenant.account, connector_id="s3", config={"bucket": "exports-bucket"}
        ),
        "azure_blob": ConnectionFactory(
            account=tenant.account, connector_id="azure_blob", config={"container": "exports"}
        ),
    }


def integration_with_contracts(account):
    integration = IntegrationFactory(account=account)
    stream = stream_for(account_id=account.pk, integration_id=integration.pk, entity="contracts")
    RecordStoreWriter(stream, strategy="merge", now=NOW).write([("c-9", {"status": "ACTIVE"})])
    return integration


def with_changes(**changes):
    return {**DOCUMENTED_BODY, **changes}


def validation_details(response):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return error["details"]


# --- create -----------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_create_with_the_documented_example_returns_201_with_the_next_run(tenant, api, storage):
    response = api.post(URL, DOCUMENTED_BODY, format="json")

    assert response.status_code == 201, response.content
    body = response.json()["data"]
    assert body["id"] == body["exportId"]
    assert body["name"] == "Monthly Contract Export"
    assert body["format"] == "CSV"
    assert body["entities"] == ["contracts"]
    assert body["filter"] == {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}}
    assert body["schedule"] == {
        "frequency": "MONTHLY",
        "day": 1,
        "time": "02:00",
        "timezone": "UTC",
    }
    # The account's one S3 connection is the one the export writes through.
    assert body["destination"] == {
        "type": "S3",
        "bucket": "exports-bucket",
        "path": "/contracts/",
        "connectionId": str(storage["s3"].pk),
    }
    assert body["integrationId"] is None
    assert body["state"] == "ACTIVE"
    assert body["nextRunAt"] == "2025-07-01T02:00:00Z"
    assert body["lastRunAt"] is None
    assert body["createdAt"] == "2025-06-15T10:30:00Z"
    export = Export.objects.get(pk=body["id"])
    assert export.account == tenant.account
    assert export.frequency == "MONTHLY"
    assert export.day == 1
    assert export.time == dt.time(2, 0)
    assert export.next_run_at == dt.datetime(2025, 7, 1, 2, 0, tzinfo=dt.UTC)
    assert export.destination == body["destination"]


@time_machine.travel(NOW, tick=False)
def test_create_writes_an_audit_row_linked_to_the_integration(tenant, api):
    integration = integration_with_contracts(tenant.account)

    response = api.post(URL, with_changes(integrationId=str(integration.pk)), format="json")

    assert response.status_code == 201, response.content
    body = response.json()["data"]
    assert body["integrationId"] == str(integration.pk)
    entry = AuditEntry.objects.get(resource_type="export", resource_id=body["id"])
    assert entry.action == "created"
    assert entry.account == tenant.account
    assert entry.integration_id == integration.pk
    assert entry.actor_type == "api_key"
    assert entry.changes["name"] == {"before": None, "after": "Monthly Contract Export"}
    assert entry.changes["integration"] == {"before": None, "after": str(integration.pk)}
    assert entry.changes["next_run_at"]["after"] == "2025-07-01T02:00:00Z"


@time_machine.travel(NOW, tick=False)
def test_create_in_a_time_zone_computes_the_next_run_there(api):
    body = with_changes(
        schedule={"frequency": "WEEKLY", "day": 0, "time": "06:30", "timezone": "America/New_York"}
    )

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    # Sunday 15 June -> Monday 16 June 06:30 EDT = 10:30 UTC.
    assert response.json()["data"]["nextRunAt"] == "2025-06-16T10:30:00Z"


def test_create_without_a_schedule_is_a_manual_only_export(api):
    body = {key: value for key, value in DOCUMENTED_BODY.items() if key != "schedule"}

    response = api.post(URL, body, format="json")

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["schedule"] == {"frequency": None, "day": None, "time": "00:00", "timezone": "UTC"}
    assert data["nextRunAt"] is None
    assert Export.objects.get(pk=data["id"]).frequency == ""


@pytest.mark.parametrize(
    "destination",
    [
        {"type": "AZURE_BLOB", "container": "exports", "prefix": "daily/"},
        {"type": "LOCAL", "path": "contracts", "fileNameTemplate": "contracts-{{date}}.csv"},
    ],
)
def test_create_accepts_each_destination_type(api, storage, destination):
    response = api.post(URL, with_changes(destination=destination), format="json")

    assert response.status_code == 201, response.content
    if destination["type"] == "AZURE_BLOB":
        destination = {**destination, "connectionId": str(storage["azure_blob"].pk)}
    assert response.json()["data"]["destination"] == destination


def test_create_with_an_sftp_connection_of_the_account(tenant, api):
    connection = ConnectionFactory(account=tenant.account, connector_id="sftp")
    destination = {"type": "SFTP", "connectionId": str(connection.pk), "path": "/outbound"}

    response = api.post(URL, with_changes(destination=destination), format="json")

    assert response.status_code == 201, response.content
    assert Export.objects.get().destination == destination


def test_unauthenticated_requests_are_401(anon_client, tenant):
    export = ExportFactory(account=tenant.account)

    responses = [
        anon_client.get(URL),
        anon_client.post(URL, DOCUMENTED_BODY, format="json"),
        anon_client.get(f"{URL}/{export.pk}"),
        anon_client.patch(f"{URL}/{export.pk}", {"name": "X"}, format="json"),
        anon_client.delete(f"{URL}/{export.pk}"),
    ]

    assert [r.status_code for r in responses] == [401] * 5
    assert responses[0].json()["error"]["code"] == "UNAUTHORIZED"
    assert Export.objects.get().name == export.name
    assert not Export.objects.exclude(pk=export.pk).exists()


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"frequency": "MONTHLY", "day": 1, "time": "25:00"}, "time"),
        ({"frequency": "MONTHLY", "day": 1, "time": "2am"}, "time"),
        ({"frequency": "MONTHLY", "day": 1, "time": 200}, "time"),
        ({"frequency": "MONTHLY", "day": 32, "time": "02:00"}, "day"),
        ({"frequency": "MONTHLY", "day": 0, "time": "02:00"}, "day"),
        ({"frequency": "MONTHLY", "time": "02:00"}, "day"),
        ({"frequency": "WEEKLY", "day": 7, "time": "02:00"}, "day"),
        ({"frequency": "DAILY", "day": 3, "time": "02:00"}, "day"),
        ({"frequency": "YEARLY", "time": "02:00"}, "frequency"),
        ({"frequency": "DAILY", "timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_invalid_schedule_is_a_validation_error_on_its_key(api, schedule, field):
    response = api.post(URL, with_changes(schedule=schedule), format="json")

    details = validation_details(response)
    assert list(details) == [f"schedule.{field}"]
    assert not Export.objects.exists()


def test_schedule_must_be_an_object(api):
    details = validation_details(api.post(URL, with_changes(schedule="monthly"), format="json"))

    assert list(details) == ["schedule"]
    assert not Export.objects.exists()


def test_unknown_format_is_a_validation_error(api):
    details = validation_details(api.post(URL, with_changes(format="XLSX"), format="json"))

    assert "format" in details
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    ("destination", "key"),
    [
        ({"type": "FTP", "host": "example.com"}, "type"),
        ({"bucket": "exports-bucket"}, "type"),
        ({"type": "S3", "path": "/contracts/"}, "bucket"),
        ({"type": "S3", "bucket": ""}, "bucket"),
        ({"type": "S3", "bucket": "b", "bukket": "typo"}, "bukket"),
        ({"type": "AZURE_BLOB", "bucket": "b"}, "container"),
        ({"type": "LOCAL"}, "path"),
        ({"type": "LOCAL", "path": "../../etc"}, "path"),
        ({"type": "SFTP", "path": "/outbound"}, "connectionId"),
        ({"type": "SFTP", "connectionId": "not-a-uuid"}, "connectionId"),
        ({"type": "S3", "bucket": "b", "fileNameTemplate": 5}, "fileNameTemplate"),
    ],
)
def test_invalid_destination_is_a_validation_error_on_its_key(api, destination, key):
    details = validation_details(
        api.post(URL, with_changes(destination=destination), format="json")
    )

    assert f"destination.{key}" in details
    assert not Export.objects.exists()


@pytest.mark.parametrize("destination", ["s3://bucket", ["S3"], None])
def test_destination_must_be_an_object(api, destination):
    details = validation_details(
        api.post(URL, with_changes(destination=destination), format="json")
    )

    assert "destination" in details


@pytest.mark.parametrize("entities", [[], "contracts", [""], [1], None, {"contracts": True}])
def test_entities_must_be_a_non_empty_list_of_names(api, entities):
    details = validation_details(api.post(URL, with_changes(entities=entities), format="json"))

    assert any(key.startswith("entities") for key in details)
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    ("filter_", "key"),
    [
        ({"createdAt": {"after": "2025-01-01"}}, "createdAt"),
        ({"createdAt": {}}, "createdAt"),
        ({"status": ["ACTIVE", "PAUSED"]}, "status"),
        ({"status": {"in": "ACTIVE"}}, "status"),
        ({"status": {"in": []}}, "status"),
        ({"price": {"gte": {"amount": 5}}}, "price"),
    ],
)
def test_invalid_filter_is_a_validation_error_on_its_field(api, filter_, key):
    details = validation_details(api.post(URL, with_changes(filter=filter_), format="json"))

    assert f"filter.{key}" in details
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    "filter_",
    [
        {"year": {"gt": 10**400}},  # beyond any integer column
        {"year": {"in": [2020, 2**70]}},  # beyond bigint
        {"price": {"gt": "1e999999"}},  # beyond numeric
        {"price": {"lt": 1e300}},
    ],
)
def test_numbers_beyond_what_the_columns_hold_are_a_validation_error(api, filter_):
    body = with_changes(entities=["vehicles"], filter=filter_)

    details = validation_details(api.post(URL, body, format="json"))

    assert set(details) == {f"filter.{next(iter(filter_))}"}
    assert not Export.objects.exists()


def test_several_entities_need_the_entity_in_the_file_name_template(api):
    destination = {"type": "LOCAL", "path": "out", "fileNameTemplate": "out-{{date}}.{{ext}}"}
    body = with_changes(entities=["vehicles", "contracts"], destination=destination)

    details = validation_details(api.post(URL, body, format="json"))

    assert set(details) == {"destination.fileNameTemplate"}
    assert "{{entity}}" in details["destination.fileNameTemplate"][0]
    assert not Export.objects.exists()


def test_filter_must_be_an_object(api):
    details = validation_details(api.post(URL, with_changes(filter=["status"]), format="json"))

    assert "filter" in details


def test_filter_with_every_operator_passes_through_unchanged(api):
    filter_ = {
        "status": "ACTIVE",
        "archived": False,
        "dealerCode": None,
        "price": {"gte": 1000, "lt": 50000.5},
        "createdAt": {"gt": "2025-01-01", "lte": "2025-12-31"},
        "make": {"in": ["Ford", "Toyota"], "ne": "Fiat", "eq": "Ford"},
    }

    response = api.post(URL, with_changes(filter=filter_), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["data"]["filter"] == filter_
    assert Export.objects.get().filter == filter_


def test_integration_of_another_account_is_a_validation_error(other_tenant, api):
    theirs = IntegrationFactory(account=other_tenant.account)

    details = validation_details(
        api.post(URL, with_changes(integrationId=str(theirs.pk)), format="json")
    )

    assert details == {"integrationId": ["Not found."]}
    assert not Export.objects.exists()
    assert not AuditEntry.objects.filter(resource_type="export").exists()


def test_deleted_or_unknown_integration_is_a_validation_error(tenant, api):
    deleted = IntegrationFactory(account=tenant.account, deleted_at=NOW)

    for integration_id in (str(deleted.pk), str(uuid.uuid4())):
        details = validation_details(
            api.post(URL, with_changes(integrationId=integration_id), format="json")
        )
        assert details == {"integrationId": ["Not found."]}
    details = validation_details(api.post(URL, with_changes(integrationId="nope"), format="json"))
    assert "integrationId" in details
    assert not Export.objects.exists()


def test_sftp_connection_of_another_account_is_a_validation_error(other_tenant, api):
    theirs = ConnectionFactory(account=other_tenant.account)
    destination = {"type": "SFTP", "connectionId": str(theirs.pk)}

    details = validation_details(
        api.post(URL, with_changes(destination=destination), format="json")
    )

    assert details == {"destination.connectionId": ["Not found."]}
    assert not Export.objects.exists()


def test_missing_required_fields_are_reported_together(api):
    details = validation_details(api.post(URL, {}, format="json"))

    assert {"name", "format", "entities", "destination"} <= set(details)


# --- list and retrieve ------------------------------------------------------------------------


def test_list_is_paginated_and_scoped_to_the_account(tenant, other_tenant, api):
    ExportFactory.create_batch(3, account=tenant.account)
    ExportFactory(account=other_tenant.account)

    response = api.get(f"{URL}?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 2
    assert body["meta"]["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}


def test_list_works_with_a_trailing_slash(tenant, api):
    ExportFactory(account=tenant.account)

    response = api.get(f"{URL}/")

    assert response.status_code == 200
    assert len(response.json()["data"]) == 1


def test_list_filters_by_format_state_and_integration(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    linked = ExportFactory(account=tenant.account, integration=integration, format="JSON")
    paused = ExportFactory(account=tenant.account, state="PAUSED", format="JSON")
    ExportFactory(account=tenant.account, format="CSV")

    by_format = api.get(f"{URL}?format=JSON").json()["data"]
    by_state = api.get(f"{URL}?state=PAUSED").json()["data"]
    by_integration = api.get(f"{URL}?integrationId={integration.pk}").json()["data"]

    assert {e["id"] for e in by_format} == {str(linked.pk), str(paused.pk)}
    assert [e["id"] for e in by_state] == [str(paused.pk)]
    assert [e["id"] for e in by_integration] == [str(linked.pk)]


@pytest.mark.parametrize(
    ("query", "param"),
    [("format=XLSX", "format"), ("state=RUNNING", "state"), ("integrationId=abc", "integrationId")],
)
def test_invalid_list_filter_is_a_validation_error(api, query, param):
    details = validation_details(api.get(f"{URL}?{query}"))

    assert param in details


def test_list_sorts_by_name_and_next_run(tenant, api):
    ExportFactory(
        account=tenant.account, name="b", next_run_at=dt.datetime(2025, 1, 3, tzinfo=dt.UTC)
    )
    ExportFactory(
        account=tenant.account, name="a", next_run_at=dt.datetime(2025, 1, 9, tzinfo=dt.UTC)
    )
    ExportFactory(account=tenant.account, name="c", next_run_at=None)

    by_name = api.get(f"{URL}?sort=name:asc").json()["data"]
    by_next_run = api.get(f"{URL}?sort=nextRunAt:asc").json()["data"]
    unknown = api.get(f"{URL}?sort=format:asc")

    assert [e["name"] for e in by_name] == ["a", "b", "c"]
    assert [e["name"] for e in by_next_run] == ["b", "a", "c"]
    assert "sort" in validation_details(unknown)


def test_retrieve_returns_the_export(tenant, api):
    export = ExportFactory(
        account=tenant.account,
        frequency="WEEKLY",
        day=4,
        time=dt.time(18, 5),
        timezone="Europe/Paris",
    )

    response = api.get(f"{URL}/{export.pk}")

    assert response.status_code == 200
    body = response.json()["data"]
    assert body["exportId"] == str(export.pk)
    assert body["schedule"] == {
        "frequency": "WEEKLY",
        "day": 4,
        "time": "18:05",
        "timezone": "Europe/Paris",
    }


def test_unknown_export_id_is_404(api):
    response = api.get(f"{URL}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


# --- update -----------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_patch_schedule_merges_keys_and_recomputes_next_run(tenant, api):
    created = api.post(URL, DOCUMENTED_BODY, format="json").json()["data"]

    response = api.patch(
        f"{URL}/{created['id']}", {"schedule": {"day": 20, "time": "23:15"}}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()["data"]
    assert body["schedule"] == {
        "frequency": "MONTHLY",
        "day": 20,
        "time": "23:15",
        "timezone": "UTC",
    }
    assert body["nextRunAt"] == "2025-06-20T23:15:00Z"
    export = Export.objects.get(pk=created["id"])
    assert (export.day, export.time) == (20, dt.time(23, 15))
    entry = AuditEntry.objects.get(resource_id=created["id"], action="updated")
    assert entry.changes == {
        "day": {"before": 1, "after": 20},
        "time": {"before": "02:00:00", "after": "23:15:00"},
        "next_run_at": {"before": "2025-07-01T02:00:00Z", "after": "2025-06-20T23:15:00Z"},
    }


@time_machine.travel(NOW, tick=False)
def test_patch_timezone_alone_recomputes_next_run(tenant, api):
    created = api.post(URL, DOCUMENTED_BODY, format="json").json()["data"]

    response = api.patch(
        f"{URL}/{created['id']}", {"schedule": {"timezone": "Asia/Tokyo"}}, format="json"
    )

    assert response.status_code == 200, response.content
    # 1 July 02:00 in Tokyo (UTC+9) is 30 June 17:00 UTC.
    assert response.json()["data"]["nextRunAt"] == "2025-06-30T17:00:00Z"


@time_machine.travel(NOW, tick=False)
def test_patch_frequency_needs_a_new_day_and_drops_an_unused_one(tenant, api):
    created = api.post(URL, DOCUMENTED_BODY, format="json").json()["data"]
    url = f"{URL}/{created['id']}"

    to_weekly = api.patch(url, {"schedule": {"frequency": "WEEKLY"}}, format="json")
    to_daily = api.patch(url, {"schedule": {"frequency": "DAILY"}}, format="json")
    to_manual = api.patch(url, {"schedule": {"frequency": None}}, format="json")

    assert "schedule.day" in validation_details(to_weekly)
    assert to_daily.status_code == 200, to_daily.content
    assert to_daily.json()["data"]["schedule"]["day"] is None
    assert to_daily.json()["data"]["nextRunAt"] == "2025-06-16T02:00:00Z"
    assert to_manual.status_code == 200, to_manual.content
    assert to_manual.json()["data"]["nextRunAt"] is None
    export = Export.objects.get(pk=created["id"])
    assert (export.frequency, export.day, export.next_run_at) == ("", None, None)


@time_machine.travel(NOW, tick=False)
def test_patch_of_other_fields_does_not_move_a_due_run(tenant, api):
    due = dt.datetime(2025, 6, 15, 10, 0, tzinfo=dt.UTC)
    export = ExportFactory(account=tenant.account, next_run_at=due)

    response = api.patch(f"{URL}/{export.pk}", {"name": "Renamed"}, format="json")

    assert response.status_code == 200, response.content
    export.refresh_from_db()
    assert export.name == "Renamed"
    assert export.next_run_at == due


def test_patch_destination_replaces_it(tenant, api, storage):
    export = ExportFactory(
        account=tenant.account,
        destination={"type": "S3", "bucket": "old", "path": "/a/", "prefix": "p"},
    )

    response = api.patch(
        f"{URL}/{export.pk}",
        {"destination": {"type": "AZURE_BLOB", "container": "exports"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    export.refresh_from_db()
    assert export.destination == {
        "type": "AZURE_BLOB",
        "container": "exports",
        "connectionId": str(storage["azure_blob"].pk),
    }


def test_patch_with_an_invalid_destination_changes_nothing(tenant, api):
    export = ExportFactory(account=tenant.account)

    response = api.patch(f"{URL}/{export.pk}", {"destination": {"type": "S3"}}, format="json")

    assert "destination.bucket" in validation_details(response)
    export.refresh_from_db()
    assert export.destination == {"type": "S3", "bucket": "exports-bucket"}
    assert not AuditEntry.objects.filter(resource_id=str(export.pk)).exists()


def test_patch_links_and_unlinks_an_integration(tenant, other_tenant, api):
    export = ExportFactory(account=tenant.account)
    integration = integration_with_contracts(tenant.account)
    theirs = IntegrationFactory(account=other_tenant.account)
    url = f"{URL}/{export.pk}"

    linked = api.patch(url, {"integrationId": str(integration.pk)}, format="json")
    foreign = api.patch(url, {"integrationId": str(theirs.pk)}, format="json")
    export.refresh_from_db()
    linked_to = export.integration_id
    unlinked = api.patch(url, {"integrationId": None}, format="json")

    assert linked.json()["data"]["integrationId"] == str(integration.pk)
    assert validation_details(foreign) == {"integrationId": ["Not found."]}
    assert linked_to == integration.pk
    assert unlinked.json()["data"]["integrationId"] is None
    export.refresh_from_db()
    assert export.integration_id is None


@time_machine.travel(NOW, tick=False)
def test_pausing_is_audited(tenant, api):
    export = ExportFactory(account=tenant.account)

    response = api.patch(f"{URL}/{export.pk}", {"state": "PAUSED"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["data"]["state"] == "PAUSED"
    entry = AuditEntry.objects.get(resource_id=str(export.pk))
    assert entry.action == "updated"
    assert entry.changes["state"] == {"before": "ACTIVE", "after": "PAUSED"}


def test_patch_without_changes_writes_no_audit_row(tenant, api):
    export = ExportFactory(account=tenant.account, name="Same")

    response = api.patch(f"{URL}/{export.pk}", {"name": "Same"}, format="json")

    assert response.status_code == 200
    assert not AuditEntry.objects.filter(resource_id=str(export.pk)).exists()


def test_put_is_not_allowed(tenant, api):
    export = ExportFactory(account=tenant.account)

    response = api.put(f"{URL}/{export.pk}", DOCUMENTED_BODY, format="json")

    assert response.status_code == 405


# --- delete -----------------------------------------------------------------------------------


def test_delete_removes_the_export_and_audits_it(tenant, api):
    integration = IntegrationFactory(account=tenant.account)
    export = ExportFactory(account=tenant.account, integration=integration, name="Gone")

    response = api.delete(f"{URL}/{export.pk}")

    assert response.status_code == 204
    assert not Export.objects.filter(pk=export.pk).exists()
    entry = AuditEntry.objects.get(resource_id=str(export.pk))
    assert entry.action == "deleted"
    assert entry.integration_id == integration.pk
    assert entry.changes["name"] == {"before": "Gone", "after": None}


# --- another account's export -----------------------------------------------------------------


def test_another_accounts_export_is_404_on_get(other_tenant, api):
    theirs = ExportFactory(account=other_tenant.account)

    response = api.get(f"{URL}/{theirs.pk}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_another_accounts_export_is_not_listed(other_tenant, api):
    ExportFactory(account=other_tenant.account)

    response = api.get(URL)

    assert response.json()["data"] == []


def test_another_accounts_export_is_404_on_patch_and_unchanged(other_tenant, api):
    theirs = ExportFactory(account=other_tenant.account, name="Theirs")

    response = api.patch(f"{URL}/{theirs.pk}", {"name": "Mine", "state": "PAUSED"}, format="json")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.name, theirs.state) == ("Theirs", "ACTIVE")
    assert not AuditEntry.objects.filter(resource_id=str(theirs.pk)).exists()


def test_another_accounts_export_is_404_on_delete_and_kept(other_tenant, api):
    theirs = ExportFactory(account=other_tenant.account)

    response = api.delete(f"{URL}/{theirs.pk}")

    assert response.status_code == 404
    assert Export.objects.filter(pk=theirs.pk).exists()
    assert not AuditEntry.objects.filter(resource_id=str(theirs.pk)).exists()
