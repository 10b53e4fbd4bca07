"""An account registers its own connector from a manifest (``POST /integrations/connectors``):
listed for that account alone with ``custom`` true, checked field by field, replaced and deleted
through the API, and used by connections like a shipped connector (validation, test, discovery,
syncs) against a local API, always through the egress policy."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.utils import timezone

from accounts.choices import ApiKeyScope
from accounts.models import AuditEntry
from accounts.services import api_key_create
from connectors.models import Connection, CustomConnector
from syncengine.jobs import lifecycle
from syncengine.models import Record, SyncJob
from syncengine.sync.scheduler import schedules_tick
from tests.connectors.api_sync import CONNECTIONS, counts, sync
from tests.connectors.fakehttp import Answer, Request, json_server

pytestmark = pytest.mark.django_db

CONNECTORS = "/api/v1/integrations/connectors"
TOKEN = "acme-token-1234"
ORDERS = [
    {"id": n, "total": f"{n}.00", "updated_at": f"2025-01-{n:02d}T08:00:00Z"} for n in range(1, 26)
]
CUSTOMERS = [{"id": f"c{n}", "email": f"buyer{n}@example.com"} for n in range(1, 4)]


@dataclass
class AcmeApi:
    """A small orders API on 127.0.0.1: bearer token, orders paged by page number and size,
    customers in one answer; records what it receives."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture
def acme() -> Iterator[AcmeApi]:
    fake = AcmeApi()

    def answer(request: Request) -> Answer:
        fake.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"error": "invalid token"}
        if request.path == "/v1/me":
            return 200, {}, {"account": "acme-1"}
        if request.path == "/v1/orders":
            page, size = int(request.param("page") or 1), int(request.param("per_page") or 10)
            return 200, {}, {"data": ORDERS[(page - 1) * size : page * size]}
        if request.path == "/v1/customers":
            return 200, {}, {"customers": CUSTOMERS}
        return 404, {}, {"error": "no such path"}

    with json_server(answer) as url:
        fake.url = url
        yield fake


def acme_manifest(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "id": "acme_orders",
        "name": "Acme Orders",
        "category": "API",
        "status": "AVAILABLE",
        "description": "Orders and customers of an Acme shop.",
        "config": {
            "properties": {"apiUrl": {"type": "string", "pattern": "^https?://"}},
            "required": ["apiUrl"],
        },
        "credentials": {
            "properties": {"token": {"type": "string", "minLength": 8}},
            "required": ["token"],
        },
        "baseUrl": "{{ config.apiUrl }}/v1",
        "authentication": {"type": "bearer", "token": "{{ credentials.token }}"},
        "check": {"path": "/me"},
        "streams": [
            {
                "name": "orders",
                "path": "/orders",
                "params": {"page": "{{ page.number }}", "per_page": "{{ page.size }}"},
                "recordSelector": "data",
                "primaryKey": "id",
                "cursor": {"field": "updated_at", "type": "datetime"},
                "pagination": {"type": "page", "pageSize": 10},
                "schema": {
                    "type": "object",
                    "required": ["id", "updated_at"],
                    "properties": {
                        "id": {"type": "integer"},
                        "total": {"type": "string"},
                        "updated_at": {"type": "string"},
                    },
                },
            },
            {
                "name": "customers",
                "path": "/customers",
                "recordSelector": "customers",
                "primaryKey": "id",
            },
        ],
    }
    manifest.update(changes)
    return manifest


def register(client, manifest: Any) -> Any:
    return client.post(CONNECTORS, {"manifest": manifest}, format="json")


def registered(client, manifest: Any | None = None) -> dict[str, Any]:
    response = register(client, acme_manifest() if manifest is None else manifest)
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def create_connection(client, url: str, **changes: Any) -> Any:
    return client.post(
        CONNECTIONS,
        {
            "connectorId": "acme_orders",
            "name": "Acme shop",
            "config": {"apiUrl": url},
            "credentials": {"token": TOKEN},
            **changes,
        },
        format="json",
    )


def connection_id(client, url: str) -> str:
    response = create_connection(client, url)
    assert response.status_code == 201, response.content
    return str(response.json()["data"]["connectionId"])


def error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return dict(body)


def catalog_ids(client) -> dict[str, bool]:
    response = client.get(CONNECTORS)
    assert response.status_code == 200
    return {entry["connectorId"]: entry["custom"] for entry in response.json()["data"]}


# --- registering ---------------------------------------------------------------------------


def test_a_manifest_object_is_registered_and_listed_for_its_account_only(tenant, api, other_tenant):
    # When the account registers a manifest as a JSON object
    body = registered(api)

    # Then it answers the catalog entry, custom and BETA whatever the manifest's status said
    assert body["connectorId"] == "acme_orders"
    assert body["custom"] is True
    assert body["status"] == "BETA"
    assert body["name"] == "Acme Orders"
    assert body["category"] == "API"
    assert body["entities"] == ["orders", "customers"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["token"]
    assert body["credentialsSchema"]["required"] == ["token"]
    assert body["configSchema"]["required"] == ["apiUrl"]
    assert {"apiUrl", "autoSync", "syncInterval"} <= set(body["configSchema"]["properties"])
    assert body["manifest"] == acme_manifest()
    # And the account's catalog lists it beside the shipped connectors, which are not custom
    mine = catalog_ids(api)
    assert mine["acme_orders"] is True
    assert (mine["shopify"], mine["vauto"]) == (False, False)
    assert api.get(f"{CONNECTORS}/acme_orders").json()["data"] == body
    assert api.get(f"{CONNECTORS}?category=API").json()["data"][0]["connectorId"] == "acme_orders"
    assert "acme_orders" not in {
        entry["connectorId"] for entry in api.get(f"{CONNECTORS}?category=PAYMENTS").json()["data"]
    }
    # But another account neither lists nor finds it
    assert "acme_orders" not in catalog_ids(other_tenant.client)
    error(other_tenant.client.get(f"{CONNECTORS}/acme_orders"), 404, "NOT_FOUND")
    # And the registration is audited
    row = CustomConnector.objects.get()
    entry = AuditEntry.objects.get(resource_type="connector")
    assert (entry.account, entry.resource_id, entry.action) == (
        tenant.account,
        str(row.pk),
        "created",
    )
    assert entry.changes["connector_id"] == {"before": None, "after": "acme_orders"}
    assert entry.changes["manifest"]["after"] == acme_manifest()


def test_yaml_and_json_text_register_the_same_connector(api, other_tenant):
    text = yaml.safe_dump(acme_manifest(), sort_keys=False)

    from_yaml = registered(api, text)
    from_json = registered(other_tenant.client, json.dumps(acme_manifest()))

    assert from_yaml == from_json
    assert from_yaml["manifest"] == acme_manifest()
    assert [row.manifest for row in CustomConnector.objects.all()] == [acme_manifest()] * 2


def test_a_read_only_api_key_cannot_register(tenant, api):
    _, raw_key = api_key_create(account=tenant.account, name="reader", scope=ApiKeyScope.READ)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    body = error(register(api, acme_manifest()), 403, "FORBIDDEN")

    assert body["details"]["requiredScope"] == "write"
    assert not CustomConnector.objects.exists()


# --- per-field errors ----------------------------------------------------------------------


def test_an_invalid_manifest_is_refused_with_an_error_at_each_field(api):
    manifest = acme_manifest(category="SPACESHIPS")
    del manifest["baseUrl"]
    manifest["streams"][0]["recordsPath"] = "data"
    manifest["streams"][1]["pagination"] = {"type": "pages"}

    body = error(register(api, manifest), 400, "VALIDATION_ERROR")

    assert set(body["details"]) == {
        "manifest.baseUrl",
        "manifest.category",
        "manifest.streams.0.recordsPath",
        "manifest.streams.1.pagination.type",
    }
    assert body["details"]["manifest.baseUrl"] == ["This field is required."]
    assert body["details"]["manifest.streams.0.recordsPath"] == ["Unknown field."]
    assert "'pages' is not one of" in body["details"]["manifest.streams.1.pagination.type"][0]
    assert not CustomConnector.objects.exists()
    assert not AuditEntry.objects.filter(resource_type="connector").exists()


def test_what_only_the_engine_can_tell_is_reported_at_its_field_too(api):
    manifest = acme_manifest(baseUrl="{{ config.host }}/v1")
    manifest["streams"][1]["name"] = "orders"

    body = error(register(api, manifest), 400, "VALIDATION_ERROR")

    assert body["details"] == {
        "manifest.baseUrl": ["{{ config.host }}: config declares no 'host'."],
        "manifest.streams.1.name": ["Stream 0 is named 'orders' too."],
    }


@pytest.mark.parametrize(
    ("text", "details"),
    [
        ("id: acme\nstreams: [\n  - name", {"manifest": ["Not YAML or JSON at line 3, column 3."]}),
        ("- just\n- a list\n", {"manifest": ["['just', 'a list'] is not of type 'object'"]}),
        (
            'a: &a ["x", "x"]\nb: &b [*a, *a]\nc: [*b, *b]\n',
            {"manifest": ["Anchors and aliases (&name, *name) are not accepted in a manifest."]},
        ),
        (
            "id: !!binary aGVsbG8=\n",
            {"manifest": ["Tags (!name, !!type) are not accepted in a manifest."]},
        ),
        ("x: " + "[" * 40 + "]" * 40 + "\n", {"manifest": ["Nested deeper than 32 levels."]}),
        ("id: " + "9" * 5000 + "\n", None),
    ],
    ids=["not-yaml", "not-an-object", "aliases", "tags", "too-deep", "huge-integer"],
)
def test_manifest_text_that_cannot_be_one_is_refused_readably(api, text, details):
    body = error(register(api, text), 400, "VALIDATION_ERROR")

    if details is None:
        assert list(body["details"]) == ["manifest"]
        assert body["details"]["manifest"][0].startswith("Cannot be read:")
    else:
        assert body["details"] == details
    assert not CustomConnector.objects.exists()


def test_yaml_values_json_lacks_are_refused_at_their_path(api):
    text = yaml.safe_dump(acme_manifest(), sort_keys=False).replace(
        "    apiUrl:\n", "    apiUrl:\n      default: 2025-01-01\n      examples: [.inf]\n", 1
    )

    body = error(register(api, text), 400, "VALIDATION_ERROR")

    assert body["details"] == {
        "manifest.config.properties.apiUrl.default": [
            "A date or time must be quoted text in a manifest."
        ],
        "manifest.config.properties.apiUrl.examples.0": ["Not a finite number."],
    }


@pytest.mark.parametrize("manifest", [42, ["id", "acme"], "", "   ", None])
def test_a_manifest_that_is_neither_an_object_nor_text_is_refused(api, manifest):
    body = error(register(api, manifest), 400, "VALIDATION_ERROR")

    assert list(body["details"]) == ["manifest"]


def test_a_literal_base_url_must_be_http(api):
    body = error(
        register(api, acme_manifest(baseUrl="ftp://files.example.com")), 400, "VALIDATION_ERROR"
    )

    assert body["details"] == {
        "manifest.baseUrl": ["baseUrl must be an http or https URL, not 'ftp://files.example.com'."]
    }


# --- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shipped", ["shopify", "stripe", "custom", "test_shop_api"])
def test_the_id_of_a_shipped_connector_is_refused(api, shipped):
    body = error(register(api, acme_manifest(id=shipped)), 400, "VALIDATION_ERROR")

    assert body["details"] == {
        "manifest.id": [f"{shipped!r} is the id of a connector Railyard ships; choose another."]
    }
    assert catalog_ids(api)[shipped] is False


def test_an_id_is_registered_once_per_account_and_by_each_account_for_itself(api, other_tenant):
    registered(api)

    again = error(register(api, acme_manifest(name="Acme again")), 400, "VALIDATION_ERROR")
    theirs = registered(other_tenant.client, acme_manifest(name="Their Acme"))

    assert again["details"] == {
        "manifest.id": [
            "This account already has a connector 'acme_orders'; replace it with "
            "PUT /api/v1/integrations/connectors/acme_orders."
        ]
    }
    assert theirs["name"] == "Their Acme"
    assert api.get(f"{CONNECTORS}/acme_orders").json()["data"]["name"] == "Acme Orders"
    assert other_tenant.client.get(f"{CONNECTORS}/acme_orders").json()["data"]["name"] == (
        "Their Acme"
    )
    assert CustomConnector.objects.count() == 2


# --- replacing and deleting ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_custom_connector_is_replaced_whole(tenant, api, method):
    registered(api)
    changed = acme_manifest(name="Acme Shop")
    changed["streams"] = changed["streams"][:1]

    response = getattr(api, method)(
        f"{CONNECTORS}/acme_orders", {"manifest": yaml.safe_dump(changed)}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()["data"]
    assert (body["name"], body["entities"], body["custom"]) == ("Acme Shop", ["orders"], True)
    assert api.get(f"{CONNECTORS}/acme_orders").json()["data"] == body
    row = CustomConnector.objects.get()
    assert (row.name, row.manifest) == ("Acme Shop", changed)
    entry = AuditEntry.objects.get(resource_type="connector", action="updated")
    assert entry.resource_id == str(row.pk)
    assert entry.changes["name"] == {"before": "Acme Orders", "after": "Acme Shop"}
    assert entry.changes["manifest"]["before"] == acme_manifest()


def test_a_replacement_keeps_the_id_and_is_checked_like_a_registration(api):
    registered(api)

    renamed = api.put(
        f"{CONNECTORS}/acme_orders", {"manifest": acme_manifest(id="acme_shop")}, format="json"
    )
    invalid = api.put(
        f"{CONNECTORS}/acme_orders", {"manifest": acme_manifest(streams=[])}, format="json"
    )

    assert error(renamed, 400, "VALIDATION_ERROR")["details"] == {
        "manifest.id": [
            "A connector's id cannot change ('acme_orders'); connections name it. Register a "
            "new connector instead."
        ]
    }
    assert list(error(invalid, 400, "VALIDATION_ERROR")["details"]) == ["manifest.streams"]
    assert CustomConnector.objects.get().manifest == acme_manifest()
    assert not AuditEntry.objects.filter(resource_type="connector", action="updated").exists()


def test_a_custom_connector_without_connections_is_deleted(api):
    registered(api)

    response = api.delete(f"{CONNECTORS}/acme_orders")

    assert response.status_code == 204
    assert "acme_orders" not in catalog_ids(api)
    error(api.get(f"{CONNECTORS}/acme_orders"), 404, "NOT_FOUND")
    assert not CustomConnector.objects.exists()
    entry = AuditEntry.objects.get(resource_type="connector", action="deleted")
    assert entry.changes["connector_id"] == {"before": "acme_orders", "after": None}
    # Its id is free again
    registered(api)


def test_a_custom_connector_with_connections_is_a_conflict(api, acme):
    registered(api)
    first = connection_id(api, acme.url)

    response = api.delete(f"{CONNECTORS}/acme_orders")

    body = error(response, 409, "CONFLICT")
    assert body["details"] == {"connections": [first]}
    assert "still used by 1 connection(s)" in body["message"]
    assert CustomConnector.objects.exists()
    # Once its connection is gone, it can go
    assert api.delete(f"{CONNECTIONS}/{first}").status_code == 204
    assert api.delete(f"{CONNECTORS}/acme_orders").status_code == 204


def test_another_accounts_custom_connector_is_404_to_every_method(api, other_tenant):
    registered(api)
    intruder = other_tenant.client
    url = f"{CONNECTORS}/acme_orders"
    replacement = {"manifest": acme_manifest(name="Taken over")}

    answers = [
        intruder.get(url),
        intruder.put(url, replacement, format="json"),
        intruder.patch(url, replacement, format="json"),
        intruder.delete(url),
    ]

    assert [(answer.status_code, answer.json()["error"]["code"]) for answer in answers] == [
        (404, "NOT_FOUND")
    ] * 4
    row = CustomConnector.objects.get()
    assert (row.name, row.manifest) == ("Acme Orders", acme_manifest())
    assert AuditEntry.objects.filter(resource_type="connector").count() == 1


@pytest.mark.parametrize("connector_id", ["shopify", "vauto", "test_shop_api"])
def test_shipped_connectors_are_read_only(api, connector_id):
    url = f"{CONNECTORS}/{connector_id}"
    shipped = api.get(url).json()["data"]

    answers = [
        api.put(url, {"manifest": acme_manifest(id=connector_id)}, format="json"),
        api.patch(url, {"manifest": acme_manifest(id=connector_id)}, format="json"),
        api.delete(url),
    ]

    for answer in answers:
        body = error(answer, 405, "METHOD_NOT_ALLOWED")
        assert body["message"] == (
            f"The connector {connector_id!r} ships with Railyard and cannot be changed or "
            "deleted; register a manifest of your own under another id "
            "(POST /api/v1/integrations/connectors)."
        )
        assert answer["Allow"] == "GET, HEAD, OPTIONS"
    assert api.get(url).json()["data"] == shipped
    assert not AuditEntry.objects.filter(resource_type="connector").exists()


def test_an_unknown_connector_cannot_be_replaced_or_deleted(api):
    put = api.put(f"{CONNECTORS}/nope", {"manifest": acme_manifest(id="nope")}, format="json")

    error(put, 404, "NOT_FOUND")
    error(api.delete(f"{CONNECTORS}/nope"), 404, "NOT_FOUND")
    assert not CustomConnector.objects.exists()


# --- connections of a custom connector -----------------------------------------------------


def test_connections_are_validated_against_the_manifests_spec(api):
    registered(api)

    response = create_connection(api, "not a url", credentials={"token": "tiny", "extra": "x"})

    body = error(response, 400, "VALIDATION_ERROR")
    assert set(body["details"]) == {"config.apiUrl", "credentials.token", "credentials"}
    assert "tiny" not in json.dumps(body)
    assert not Connection.objects.exists()


def test_another_account_cannot_connect_to_a_custom_connector(api, other_tenant, acme):
    registered(api)

    response = create_connection(other_tenant.client, acme.url)

    assert error(response, 400, "VALIDATION_ERROR")["details"] == {
        "connectorId": ["Unknown connector 'acme_orders'; see the catalog."]
    }
    assert not Connection.objects.exists()


def test_a_connection_is_tested_discovered_and_synced_in_full(api, acme, settings):
    # Given the account's own connector and a connection of it to the Acme API
    settings.SYNC_BATCH_SIZE = 10
    registered(api)
    connection = connection_id(api, acme.url)

    # When the connection is tested
    tested = api.post(f"{CONNECTIONS}/{connection}/test")

    # Then the manifest's check request went out with the connection's token
    assert tested.status_code == 200
    assert tested.json()["data"]["success"] is True
    assert acme.paths() == ["/v1/me"]
    assert acme.requests[0].headers["authorization"] == f"Bearer {TOKEN}"

    # When its entities are discovered
    entities = api.get(f"{CONNECTIONS}/{connection}/entities").json()["data"]

    # Then they are the manifest's streams, with the fields its schema declares
    assert [(e["name"], e["primaryKey"], e["cursorField"]) for e in entities] == [
        ("orders", ["id"], "updated_at"),
        ("customers", ["id"], None),
    ]
    assert entities[0]["fields"] == [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "total", "type": "string", "nullable": True},
        {"name": "updated_at", "type": "string", "nullable": False},
    ]
    assert entities[0]["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert entities[1]["syncModes"] == ["FULL", "SNAPSHOT"]

    # When it is synced in full
    acme.requests.clear()
    job = sync(api, connection)

    # Then every record is stored once, read in the manifest's pages
    assert job["status"] == "COMPLETED", job
    assert counts(job) == {
        "orders": {"created": 25, "updated": 0, "unchanged": 0, "read": 25},
        "customers": {"created": 3, "updated": 0, "unchanged": 0, "read": 3},
    }
    assert Record.objects.filter(stream__connection_id=connection).count() == 28
    assert [(r.path, r.param("page"), r.param("per_page")) for r in acme.requests] == [
        ("/v1/orders", "1", "10"),
        ("/v1/orders", "2", "10"),
        ("/v1/orders", "3", "10"),
        ("/v1/customers", None, None),
    ]
    stored = api.get(f"{CONNECTIONS}/{connection}/records?entity=orders&key=7").json()["data"]
    assert stored[0]["data"] == ORDERS[6]

    # And a second full sync finds nothing changed
    again = sync(api, connection)
    assert counts(again)["orders"] == {"created": 0, "updated": 0, "unchanged": 25, "read": 25}


def test_an_integration_reads_from_a_custom_connection(api, acme):
    registered(api)
    connection = connection_id(api, acme.url)
    created = api.post(
        "/api/v1/integrations",
        {"sourceAppId": connection, "dataType": "customers"},
        format="json",
    )
    assert created.status_code == 201, created.content
    integration = created.json()["data"]
    assert (integration["type"], integration["name"]) == (
        "acme_orders",
        "Acme Orders integration",
    )

    started = api.post(f"/api/v1/integrations/{integration['id']}/sync", format="json")
    assert started.status_code == 202, started.content
    lifecycle.run_execute(started.json()["data"]["jobId"])

    job = api.get(f"/api/v1/integrations/{integration['id']}/jobs").json()["data"][0]
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["orders"]["created"] == 25
    assert job["stats"]["customers"]["created"] == 3
    assert Record.objects.filter(stream__integration_id=integration["id"]).count() == 28


def test_an_auto_sync_connection_of_a_custom_connector_is_scheduled(api, acme):
    registered(api)
    now = timezone.now()
    response = create_connection(
        api, acme.url, config={"apiUrl": acme.url, "autoSync": True, "syncInterval": "1h"}
    )
    assert response.status_code == 201, response.content
    connection = Connection.objects.get(pk=response.json()["data"]["connectionId"])
    assert connection.next_sync_at is not None
    assert connection.next_sync_at - now >= timedelta(minutes=59)

    result = schedules_tick(now=connection.next_sync_at + timedelta(seconds=1))

    assert result.connections == 1
    [job] = SyncJob.objects.filter(connection=connection)
    assert (job.trigger, job.mode, job.status) == ("schedule", "INCREMENTAL", "QUEUED")


def test_a_replaced_manifest_is_what_the_next_discovery_and_sync_use(api, acme):
    registered(api)
    connection = connection_id(api, acme.url)
    before = api.get(f"{CONNECTIONS}/{connection}/entities").json()["data"]
    changed = copy.deepcopy(acme_manifest())
    changed["streams"] = changed["streams"][1:]
    changed["streams"][0]["name"] = "buyers"

    assert (
        api.put(f"{CONNECTORS}/acme_orders", {"manifest": changed}, format="json").status_code
        == 200
    )
    after = api.get(f"{CONNECTIONS}/{connection}/entities").json()["data"]
    job = sync(api, connection)

    assert [entity["name"] for entity in before] == ["orders", "customers"]
    assert [entity["name"] for entity in after] == ["buyers"]
    assert job["status"] == "COMPLETED", job
    assert counts(job) == {"buyers": {"created": 3, "updated": 0, "unchanged": 0, "read": 3}}


# --- the egress policy ---------------------------------------------------------------------


@pytest.fixture
def production_default(settings):
    """The egress policy of an installation that configured nothing."""
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    return settings


def test_a_manifest_cannot_reach_what_the_egress_policy_refuses(api, acme, production_default):
    # Given a manifest whose base URL is a loopback address, written into the manifest itself
    port = acme.url.rsplit(":", 1)[1]
    manifest = acme_manifest(baseUrl=f"{acme.url}/v1", config={"properties": {}})
    registered(api, manifest)
    response = create_connection(api, acme.url, config={})
    assert response.status_code == 201, response.content
    connection = response.json()["data"]["connectionId"]

    # When the connection is synced and tested
    job = sync(api, connection)
    tested = api.post(f"{CONNECTIONS}/{connection}/test").json()["data"]

    # Then both fail with the policy's refusal, and the API never heard of them
    refusal = (
        f"Connections to 127.0.0.1:{port} are refused by the egress policy: "
        "127.0.0.1 is a loopback address."
    )
    assert tested["success"] is False
    assert tested["error"] == refusal
    assert job["status"] == "FAILED"
    assert refusal in job["error"]
    assert acme.requests == []
    assert not Record.objects.exists()
