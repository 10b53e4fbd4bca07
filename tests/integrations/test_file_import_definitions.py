"""File-import definitions: what an import writes (entity, filter), the checks on its FTP location,
the document's own id spellings in every answer, and PUT as a whole replacement."""

from typing import Any

import pytest

from accounts.models import AuditEntry
from integrations.models import FileImport
from tests.factories import ConnectionFactory, IntegrationFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/imports"

IMPORT_DOCUMENT = {
    "name": "Upload File to FTP Site",
    "distributed": False,
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
        ]
    },
}

# What PUT gives every field it leaves out (name is required).
DEFAULTS: dict[str, Any] = {
    "integrationId": None,
    "connectionId": None,
    "distributed": False,
    "entity": "",
    "filter": {},
    "file": {"type": "csv"},
    "ftp": {},
    "mapping": {"fields": []},
}


def details(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    return body["error"]["details"]


def a_full_import(api, tenant):
    """An import with every field set to something other than its default."""
    integration = IntegrationFactory(account=tenant.account)
    connection = ConnectionFactory(account=tenant.account)
    response = api.post(
        URL,
        {
            **IMPORT_DOCUMENT,
            "integrationId": str(integration.pk),
            "connectionId": str(connection.pk),
            "distributed": True,
            "entity": "vehicles",
            "filter": {"status": "ACTIVE", "price": {"gte": 1000}},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["data"], integration


# --- entity and filter -------------------------------------------------------------------------


def test_entity_and_filter_are_stored_and_answered(api):
    created = api.post(
        URL,
        {
            **IMPORT_DOCUMENT,
            "entity": "crm.deals-2024_q1",
            "filter": {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}},
        },
        format="json",
    )

    assert created.status_code == 201, created.content
    data = created.json()["data"]
    assert data["entity"] == "crm.deals-2024_q1"
    assert data["filter"] == {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}}
    fetched = api.get(f"{URL}/{data['id']}").json()["data"]
    assert fetched["entity"] == "crm.deals-2024_q1"
    assert fetched["filter"] == {"status": "ACTIVE", "createdAt": {"gte": "2025-01-01"}}


def test_an_import_that_names_no_entity_has_a_blank_one_and_an_empty_filter(api):
    created = api.post(URL, {"name": "Later"}, format="json")
    blank = api.post(URL, {"name": "Blank", "entity": ""}, format="json")

    assert created.status_code == 201, created.content
    assert {key: created.json()["data"][key] for key in DEFAULTS} == DEFAULTS
    assert blank.status_code == 201, blank.content
    assert blank.json()["data"]["entity"] == ""


@pytest.mark.parametrize(
    "entity",
    ["../vehicles", "vehicles/2024", "my vehicles", "vehicles\n", "{{entity}}", "véhicules"],
)
def test_an_entity_that_is_not_a_plain_name_is_400(api, entity):
    response = api.post(URL, {**IMPORT_DOCUMENT, "entity": entity}, format="json")

    assert details(response) == {
        "entity": [
            "Must be a plain entity name: letters, digits, _, - and . only (such as vehicles)."
        ]
    }
    assert not FileImport.objects.exists()


@pytest.mark.parametrize(("entity", "message"), [(7, "Must be a string."), (None, None)])
def test_an_entity_that_is_not_a_string_is_400(api, entity, message):
    response = api.post(URL, {**IMPORT_DOCUMENT, "entity": entity}, format="json")

    problems = details(response)
    assert list(problems) == ["entity"]
    if message:
        assert problems["entity"] == [message]
    assert not FileImport.objects.exists()


def test_an_entity_longer_than_100_characters_is_400(api):
    response = api.post(URL, {**IMPORT_DOCUMENT, "entity": "e" * 101}, format="json")

    assert list(details(response)) == ["entity"]


@pytest.mark.parametrize("value", [["status"], "status=ACTIVE", 5, None])
def test_a_filter_that_is_not_a_json_object_is_400(api, tenant, value):
    file_import = FileImport.objects.create(account=tenant.account, name="Feed")

    created = api.post(URL, {**IMPORT_DOCUMENT, "filter": value}, format="json")
    patched = api.patch(f"{URL}/{file_import.pk}", {"filter": value}, format="json")

    assert list(details(created)) == ["filter"]
    assert list(details(patched)) == ["filter"]
    file_import.refresh_from_db()
    assert file_import.filter == {}
    assert FileImport.objects.count() == 1


# --- ftp and file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "directory",
    ["/test/../etc", "..", "../in", "in/..", "in\\out", "C:\\feeds", "/in\x01", "/in\tbox"],
)
def test_a_directory_path_that_could_leave_its_place_is_400(api, tenant, directory):
    file_import = FileImport.objects.create(
        account=tenant.account, name="Feed", ftp={"directoryPath": "/test"}
    )
    ftp = {"directoryPath": directory, "fileName": "file.csv"}

    created = api.post(URL, {**IMPORT_DOCUMENT, "ftp": ftp}, format="json")
    patched = api.patch(f"{URL}/{file_import.pk}", {"ftp": ftp}, format="json")
    replaced = api.put(f"{URL}/{file_import.pk}", {"name": "Feed", "ftp": ftp}, format="json")

    for response in (created, patched, replaced):
        assert list(details(response)) == ["ftp.directoryPath"]
    file_import.refresh_from_db()
    assert file_import.ftp == {"directoryPath": "/test"}
    assert FileImport.objects.count() == 1


def test_the_directory_path_problems_are_named(api):
    response = api.post(
        URL, {**IMPORT_DOCUMENT, "ftp": {"directoryPath": "/a/../b\\c\x07"}}, format="json"
    )

    assert details(response)["ftp.directoryPath"] == [
        "May not contain a '..' part.",
        "May not contain backslashes; separate directories with /.",
        "May not contain control characters.",
    ]


@pytest.mark.parametrize("directory", ["/test", "test/in", "/feeds/v1.2..3", "/..hidden/x", ""])
def test_ordinary_directory_paths_pass(api, directory):
    ftp = {"directoryPath": directory, "fileName": "file-{{timestamp}}.csv"}

    response = api.post(URL, {**IMPORT_DOCUMENT, "ftp": ftp}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["data"]["ftp"] == ftp


@pytest.mark.parametrize(
    "file_name",
    [
        "file-{{timestamp}}.csv",
        "{{importName}}-{{entity}}-{{date}}-{{runId}}-{{part}}.{{ext}}",
        "out/{{date}}/file.csv",
        "",
    ],
)
def test_file_names_with_known_placeholders_pass(api, file_name):
    ftp = {"directoryPath": "/test", "fileName": file_name}

    response = api.post(URL, {**IMPORT_DOCUMENT, "ftp": ftp}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["data"]["ftp"]["fileName"] == file_name


def test_an_unknown_placeholder_in_the_file_name_is_400_naming_the_known_ones(api, tenant):
    file_import = FileImport.objects.create(account=tenant.account, name="Feed")
    ftp = {"directoryPath": "/test", "fileName": "file-{{exportName}}.csv"}

    created = api.post(URL, {**IMPORT_DOCUMENT, "ftp": ftp}, format="json")
    patched = api.patch(f"{URL}/{file_import.pk}", {"ftp": ftp}, format="json")

    for response in (created, patched):
        (message,) = details(response)["ftp.fileName"]
        assert "{{exportName}}" in message
        for known in ("importName", "entity", "timestamp", "date", "runId", "part", "ext"):
            assert f"{{{{{known}}}}}" in message
    assert FileImport.objects.get().ftp == {}


@pytest.mark.parametrize("file_name", ["/etc/file.csv", "../file.csv", "file-{{timestamp.csv"])
def test_a_file_name_that_is_no_usable_template_is_400(api, file_name):
    ftp = {"directoryPath": "/test", "fileName": file_name}

    response = api.post(URL, {**IMPORT_DOCUMENT, "ftp": ftp}, format="json")

    assert list(details(response)) == ["ftp.fileName"]
    assert not FileImport.objects.exists()


@pytest.mark.parametrize("file_type", ["pdf", "CSV", "", 1, None])
def test_an_unknown_file_type_is_400(api, tenant, file_type):
    file_import = FileImport.objects.create(
        account=tenant.account, name="Feed", file={"type": "json"}
    )

    created = api.post(URL, {**IMPORT_DOCUMENT, "file": {"type": file_type}}, format="json")
    patched = api.patch(f"{URL}/{file_import.pk}", {"file": {"type": file_type}}, format="json")

    for response in (created, patched):
        assert details(response) == {"file.type": ["Must be one of: csv, json, xml, xlsx."]}
    file_import.refresh_from_db()
    assert file_import.file == {"type": "json"}
    assert FileImport.objects.count() == 1


# --- the document's own id spellings -----------------------------------------------------------


def assert_document_ids(data):
    assert data["_id"] == data["id"]
    assert data["_connectionId"] == data["connectionId"]
    assert data["_integrationId"] == data["integrationId"]


def test_every_answer_carries_the_document_ids(api, tenant):
    created, integration = a_full_import(api, tenant)
    import_url = f"{URL}/{created['id']}"
    nested_url = f"/api/v1/integrations/{integration.pk}/imports"

    answers = [
        created,
        api.get(import_url).json()["data"],
        api.get(URL).json()["data"][0],
        api.patch(import_url, {"name": "Patched"}, format="json").json()["data"],
        api.put(
            import_url, {**IMPORT_DOCUMENT, "integrationId": str(integration.pk)}, format="json"
        ).json()["data"],
        api.post(f"{import_url}/clone", {}, format="json").json()["data"],
        api.get(nested_url).json()["data"][0],
        api.get(f"{nested_url}/{created['id']}").json()["data"],
        api.put(f"{nested_url}/{created['id']}", {"name": "Nested"}, format="json").json()["data"],
        api.patch(f"{nested_url}/{created['id']}", {"name": "N"}, format="json").json()["data"],
    ]

    assert created["_connectionId"] is not None
    assert created["_integrationId"] == str(integration.pk)
    for data in answers:
        assert_document_ids(data)
    cleared = api.put(import_url, {"name": "Alone"}, format="json").json()["data"]
    assert cleared["_connectionId"] is None
    assert cleared["_integrationId"] is None
    assert_document_ids(cleared)


def test_the_schema_documents_the_document_ids(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    answer = schema["components"]["schemas"]["FileImport"]
    request = schema["components"]["schemas"]["FileImportRequest"]
    assert answer["properties"]["_id"] == {
        "type": "string",
        "format": "uuid",
        "readOnly": True,
        "description": "Same as id.",
    }
    for alias in ("_connectionId", "_integrationId"):
        assert answer["properties"][alias]["nullable"] is True
        assert answer["properties"][alias]["readOnly"] is True
    assert {"_id", "_connectionId", "_integrationId"} <= set(answer["required"])
    assert {"entity", "filter"} <= set(request["properties"])
    assert request["properties"]["filter"]["type"] == "object"


def test_requests_accept_the_document_ids_and_refuse_two_different_ones(api, tenant):
    connection, other = ConnectionFactory.create_batch(2, account=tenant.account)
    integration = IntegrationFactory(account=tenant.account)

    created = api.post(
        URL,
        {
            **IMPORT_DOCUMENT,
            "_id": "123ab456c789de1011fg12h13i",
            "_connectionId": str(connection.pk),
            "_integrationId": str(integration.pk),
        },
        format="json",
    )
    conflicting = api.post(
        URL,
        {**IMPORT_DOCUMENT, "_connectionId": str(connection.pk), "connectionId": str(other.pk)},
        format="json",
    )

    assert created.status_code == 201, created.content
    assert created.json()["data"]["connectionId"] == str(connection.pk)
    assert created.json()["data"]["integrationId"] == str(integration.pk)
    assert created.json()["data"]["_id"] != "123ab456c789de1011fg12h13i"
    assert list(details(conflicting)) == ["_connectionId"]
    assert FileImport.objects.count() == 1


def test_an_answer_sent_back_with_put_changes_only_what_was_edited(api, tenant):
    created, _ = a_full_import(api, tenant)
    url = f"{URL}/{created['id']}"
    document = api.get(url).json()["data"]

    response = api.put(url, {**document, "name": "Renamed"}, format="json")

    assert response.status_code == 200, response.content
    after = response.json()["data"]
    assert {**after, "lastModified": None} == {**document, "name": "Renamed", "lastModified": None}


# --- PUT replaces, PATCH updates ---------------------------------------------------------------


def test_put_gives_every_field_left_out_its_default(api, tenant):
    created, _ = a_full_import(api, tenant)

    response = api.put(f"{URL}/{created['id']}", {"name": "Only a name"}, format="json")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["name"] == "Only a name"
    assert {key: data[key] for key in DEFAULTS} == DEFAULTS
    assert data["id"] == created["id"]
    assert data["apiIdentifier"] == created["apiIdentifier"]
    assert api.get(f"{URL}/{created['id']}").json()["data"] == data
    stored = FileImport.objects.get()
    assert (stored.integration_id, stored.connection_id, stored.entity, stored.filter) == (
        None,
        None,
        "",
        {},
    )
    entry = AuditEntry.objects.filter(resource_type="import", action="updated").get()
    assert entry.changes["entity"] == {"before": "vehicles", "after": ""}


def test_put_keeps_what_it_sends(api, tenant):
    created, _ = a_full_import(api, tenant)
    body = {"name": "Orders", "entity": "orders", "ftp": {"fileName": "{{entity}}.csv"}}

    data = api.put(f"{URL}/{created['id']}", body, format="json").json()["data"]

    assert data["entity"] == "orders"
    assert data["ftp"] == {"fileName": "{{entity}}.csv"}
    assert data["filter"] == {}
    assert data["mapping"] == {"fields": []}


def test_put_without_a_name_is_400_and_changes_nothing(api, tenant):
    created, _ = a_full_import(api, tenant)

    response = api.put(f"{URL}/{created['id']}", {"entity": "orders"}, format="json")

    assert details(response) == {"name": ["This field is required."]}
    assert api.get(f"{URL}/{created['id']}").json()["data"] == created


def test_patch_changes_only_the_fields_it_sends(api, tenant):
    created, _ = a_full_import(api, tenant)

    response = api.patch(f"{URL}/{created['id']}", {"entity": "orders"}, format="json")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["entity"] == "orders"
    assert {**data, "entity": None, "lastModified": None} == {
        **created,
        "entity": None,
        "lastModified": None,
    }


def test_clone_copies_the_entity_and_filter(api, tenant):
    created, _ = a_full_import(api, tenant)

    cloned = api.post(f"{URL}/{created['id']}/clone", {"name": "Copy"}, format="json")

    assert cloned.status_code == 201, cloned.content
    data = cloned.json()["data"]
    assert data["entity"] == "vehicles"
    assert data["filter"] == {"status": "ACTIVE", "price": {"gte": 1000}}
    assert data["_id"] != created["id"]


# --- the route under an integration ------------------------------------------------------------


def nested(integration, file_import_id=""):
    return f"/api/v1/integrations/{integration.pk}/imports/{file_import_id}".rstrip("/")


def test_put_under_an_integration_keeps_the_import_in_it(api, tenant):
    created, integration = a_full_import(api, tenant)

    response = api.put(nested(integration, created["id"]), {"name": "Reset"}, format="json")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["integrationId"] == str(integration.pk)
    assert {key: data[key] for key in DEFAULTS} == {
        **DEFAULTS,
        "integrationId": str(integration.pk),
    }
    assert [item["id"] for item in api.get(nested(integration)).json()["data"]] == [created["id"]]


def test_patch_under_an_integration_changes_only_what_it_sends(api, tenant):
    created, integration = a_full_import(api, tenant)

    response = api.patch(nested(integration, created["id"]), {"entity": "orders"}, format="json")

    assert response.status_code == 200, response.content
    assert {**response.json()["data"], "entity": None, "lastModified": None} == {
        **created,
        "entity": None,
        "lastModified": None,
    }


@pytest.mark.parametrize("method", ["put", "patch"])
def test_an_import_cannot_leave_the_integration_of_its_url(api, tenant, method):
    created, integration = a_full_import(api, tenant)
    elsewhere = IntegrationFactory(account=tenant.account)
    url = nested(integration, created["id"])

    moved = getattr(api, method)(
        url, {"name": "Moved", "integrationId": str(elsewhere.pk)}, format="json"
    )
    detached = getattr(api, method)(url, {"name": "Moved", "_integrationId": None}, format="json")
    same = getattr(api, method)(
        url, {"name": "Stays", "integrationId": str(integration.pk)}, format="json"
    )

    assert list(details(moved)) == ["integrationId"]
    assert list(details(detached)) == ["integrationId"]
    assert same.status_code == 200, same.content
    stored = FileImport.objects.get()
    assert (stored.integration_id, stored.name) == (integration.pk, "Stays")


def test_an_import_of_another_integration_is_404_under_this_one(api, tenant):
    created, _ = a_full_import(api, tenant)
    other = IntegrationFactory(account=tenant.account)

    for method, body in [("get", None), ("put", {"name": "x"}), ("patch", {"name": "x"})]:
        response = getattr(api, method)(nested(other, created["id"]), body, format="json")
        assert response.status_code == 404, (method, response.content)
    assert FileImport.objects.get().name == created["name"]


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("put", {"name": "Mine"}), ("patch", {"name": "Mine"})]
)
def test_another_accounts_import_is_404_under_its_integration(api, other_tenant, method, body):
    their_integration = IntegrationFactory(account=other_tenant.account)
    theirs = FileImport.objects.create(
        account=other_tenant.account, integration=their_integration, name="Theirs", entity="x"
    )

    response = getattr(api, method)(nested(their_integration, theirs.pk), body, format="json")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.name, theirs.entity) == ("Theirs", "x")
    assert not AuditEntry.objects.filter(resource_type="import").exists()


@pytest.mark.parametrize("method", ["put", "patch"])
def test_another_accounts_import_cannot_be_replaced(api, other_tenant, method):
    theirs = FileImport.objects.create(
        account=other_tenant.account, name="Theirs", entity="vehicles", filter={"a": 1}
    )

    response = getattr(api, method)(f"{URL}/{theirs.pk}", {"name": "Mine"}, format="json")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.name, theirs.entity, theirs.filter) == ("Theirs", "vehicles", {"a": 1})
