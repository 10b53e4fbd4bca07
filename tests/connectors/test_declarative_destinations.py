"""Manifest connectors as destinations: the shipped ``http_push`` through the API and the real
sync engine (a Shopify store, ``fake_shopify``, moved into a local receiver that answers as an
HTTP endpoint of one's own would), and the ``destination`` section of a manifest: its checks and
its write requests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.declarative.connector import connector_class
from connectors.declarative.manifest import manifest_check, manifest_errors
from connectors.registry import ConnectorError, get_connector
from syncengine.jobs import lifecycle
from tests.connectors.fake_shopify import FakeShopify, shopify_server
from tests.connectors.fakehttp import Answer, Request, json_server
from tests.connectors.test_mixpanel import connection, store

CONNECTIONS = "/api/v1/integrations/connections"
CONNECTORS = "/api/v1/integrations/connectors"
INTEGRATIONS = "/api/v1/integrations"
ORDERS = 30
TOKEN = "push-token-1"
RATE_LIMITED: Answer = (429, {"Retry-After": "1"}, {"message": "Slow down"})


@dataclass
class Receiver:
    """An HTTP endpoint that takes batches: it answers 200, or what ``inject`` says for the
    n-th request (1-based), and keeps every request and the records of each batch it took."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    taken: list[dict[str, Any]] = field(default_factory=list)
    inject: dict[int, Answer] = field(default_factory=dict)

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        injected = self.inject.get(len(self.requests))
        if injected is not None:
            return injected
        if request.method != "POST":
            return 405, {}, {"message": "POST batches here"}
        self.taken.append(request.json())
        return 200, {}, {"accepted": len(request.json().get("records", []))}

    def records(self) -> list[dict[str, Any]]:
        return [record for batch in self.taken for record in batch["records"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    fake = Receiver()
    with json_server(fake.answer) as url:
        fake.url = f"{url}/ingest"
        yield fake


@pytest.fixture
def shopify(settings) -> Iterator[FakeShopify]:
    settings.SYNC_BATCH_SIZE = 10
    with shopify_server() as fake:
        yield fake


def endpoint(api, receiver: Receiver, **config: Any) -> str:
    return connection(
        api,
        {
            "connectorId": "http_push",
            "name": "Our warehouse intake",
            "config": {"url": receiver.url, **config},
            "credentials": {"token": TOKEN},
        },
    )


def orders_integration(api, source: str, destination: str) -> dict[str, Any]:
    response = api.post(
        INTEGRATIONS,
        {
            "sourceAppId": source,
            "destinationAppId": destination,
            "dataType": "events",
            "config": {"tasks": [{"task_type": "sync", "entity": "orders"}]},
            "schedule": {"frequencyValue": 1, "frequencyUnit": "hours", "runNow": True},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def work(api, job_id: str) -> dict[str, Any]:
    lifecycle.run_execute(job_id)
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.content
    return dict(response.json()["data"])


def order_ids(shopify: FakeShopify) -> list[Any]:
    return sorted(order["id"] for order in shopify.data["orders"])


# --- http_push through the sync engine ------------------------------------------------------


@pytest.mark.django_db
def test_http_push_delivers_every_record_once_in_batches_of_its_size(api, shopify, receiver):
    # Given a Shopify store and an http_push endpoint taking batches of 4, keyed by id
    source = store(api, shopify)
    destination = endpoint(api, receiver, batchSize=4, upsertKey="id")

    # When an integration moves the orders (sync batches of 10) and its job is worked
    created = orders_integration(api, source, destination)
    job = work(api, created["latestJobId"])

    # Then every order arrives once, in batches of at most 4 (each sync batch of 10 as 4, 4, 2)
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["orders"]["read"] == ORDERS
    assert job["stats"]["orders"]["created"] == ORDERS
    assert [len(batch["records"]) for batch in receiver.taken] == [4, 4, 2] * 3
    assert sorted(record["id"] for record in receiver.records()) == order_ids(shopify)
    assert {batch["entity"] for batch in receiver.taken} == {"orders"}
    assert {batch["key"] for batch in receiver.taken} == {"id"}
    # POSTed as JSON to the endpoint itself, with the bearer token and no API key header
    for request in receiver.requests:
        assert (request.method, request.path) == ("POST", "/ingest")
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["content-type"] == "application/json"
        assert "x-api-key" not in request.headers

    # And a second run finds nothing changed and sends nothing
    receiver.requests.clear()
    response = api.post(f"{INTEGRATIONS}/{created['id']}/sync")
    assert response.status_code == 202, response.content
    again = work(api, response.json()["data"]["jobId"])
    assert again["status"] == "COMPLETED", again
    assert receiver.requests == []


@pytest.mark.django_db
def test_a_429_mid_run_is_waited_out_without_losing_or_doubling_a_record(
    api, shopify, receiver, waits
):
    # Given the endpoint (default batch size 100) rate-limits the second request once
    receiver.inject = {2: RATE_LIMITED}
    source, destination = store(api, shopify), endpoint(api, receiver)

    created = orders_integration(api, source, destination)
    job = work(api, created["latestJobId"])

    # Then the Retry-After is waited out and the batch sent again, once
    assert job["status"] == "COMPLETED", job
    assert waits == [1.0]
    assert job["stats"]["orders"]["created"] == ORDERS
    assert len(receiver.requests) == ORDERS // 10 + 1
    assert [len(batch["records"]) for batch in receiver.taken] == [10, 10, 10]
    delivered = Counter(record["id"] for record in receiver.records())
    assert sorted(delivered) == order_ids(shopify)
    assert set(delivered.values()) == {1}
    # Without an upsertKey the body is entity and records only
    assert set(receiver.taken[0]) == {"entity", "records"}


@pytest.mark.django_db
def test_a_refused_batch_fails_the_run_naming_the_batch(api, shopify, receiver):
    # Given the endpoint refuses the second batch of 5
    receiver.inject = {2: (400, {}, {"message": "field total_price must be a number"})}
    source = store(api, shopify)
    destination = endpoint(api, receiver, batchSize=5, upsertKey="id")

    created = orders_integration(api, source, destination)
    job = work(api, created["latestJobId"])

    # Then the run fails at once (a retry would be refused the same way) and names the batch
    # by its number and its first keys
    assert job["status"] == "FAILED", job
    assert job["attempts"] == 1
    assert len(receiver.requests) == 2
    refused_ids = [record["id"] for record in receiver.requests[1].json()["records"]]
    assert len(refused_ids) == 5
    shown = ", ".join(str(key) for key in refused_ids[:3])
    assert job["error"].startswith(
        f"HTTP Push did not take batch 2 of orders (5 record(s), id {shown}, ...): "
    )
    assert "answered 400: field total_price must be a number" in job["error"]
    # Only the first batch was taken, and the sync batch was not committed
    assert len(receiver.records()) == 5
    assert job["stats"]["orders"].get("created", 0) == 0


@pytest.mark.django_db
def test_http_push_is_a_destination_in_the_catalog(api):
    body = api.get(f"{CONNECTORS}/http_push").json()["data"]

    assert (body["isDestination"], body["isSource"]) == (True, False)
    assert (body["category"], body["status"]) == ("API", "BETA")
    assert "destination" in body["features"]
    assert body["configSchema"]["required"] == ["url"]
    assert body["configSchema"]["properties"]["batchSize"]["default"] == 100
    assert body["secretFields"] == ["apiKey", "token"]
    assert body["manifest"]["destination"]["body"]["records"] == "{{ records }}"
    listed = api.get(CONNECTORS).json()["data"]
    assert "http_push" in {entry["connectorId"] for entry in listed}


@pytest.mark.django_db
def test_an_http_push_connection_test_reaches_the_endpoint(api, receiver):
    destination = endpoint(api, receiver)

    tested = api.post(f"{CONNECTIONS}/{destination}/test").json()["data"]

    # A GET answered 405 still says the endpoint is there; nothing is POSTed
    assert tested["success"] is True, tested
    assert [request.method for request in receiver.requests] == ["GET"]
    assert receiver.taken == []

    # And an endpoint that refuses the token fails the test
    receiver.inject = {2: (401, {}, {"message": "Bad token"})}
    refused = api.post(f"{CONNECTIONS}/{destination}/test").json()["data"]
    assert refused["success"] is False
    assert "401" in refused["error"]


def test_an_api_key_goes_in_the_header_the_config_names(receiver):
    push = get_connector("http_push")
    assert push is not None
    config = {"url": receiver.url, "apiKeyHeader": "X-Intake-Key"}
    connector = push(config=config, credentials={"apiKey": "k-1"})

    assert connector.write("customers", [{"id": 1}, {"id": 2}]) == 2

    (request,) = receiver.requests
    assert request.headers["x-intake-key"] == "k-1"
    assert "authorization" not in request.headers
    assert request.json() == {"entity": "customers", "records": [{"id": 1}, {"id": 2}]}


# --- the destination section of a manifest --------------------------------------------------


def items_destination(url: str = "https://api.example.com", **destination: Any) -> dict[str, Any]:
    return {
        "id": "test_items_out",
        "name": "Test Items Out",
        "category": "API",
        "config": {"properties": {"apiUrl": {"type": "string"}}},
        "credentials": {"properties": {"token": {"type": "string"}}},
        "baseUrl": url,
        "destination": destination,
    }


def test_an_invalid_destination_is_reported_field_by_field():
    errors = manifest_errors(
        items_destination(
            method="DELETE",
            batchSize=0,
            successStatuses=[99],
            upsertKeys="id",
            headers={"X-Token": "{{ credentials.secret }}"},
            body={"data": "{{ record }}"},
        )
    )

    assert set(errors) == {
        "destination.method",
        "destination.batchSize",
        "destination.successStatuses.0",
        "destination.upsertKeys",
    }
    assert errors["destination.upsertKeys"] == ["Unknown field."]
    assert "'DELETE' is not one of" in errors["destination.method"][0]

    meaning = manifest_errors(
        items_destination(
            mode="record",
            batchSize=10,
            path="/items/{{ key }}",
            headers={"X-Token": "{{ credentials.secret }}", "X-Batch": "{{ records }}"},
            body={"data": "{{ records }}"},
        )
    )

    assert meaning == {
        "destination.batchSize": ["A request per record (mode record) has no batch size."],
        "destination.body": [
            "{{ records }} cannot be used here.",
            "The body must send the records: use {{ record }}.",
        ],
        "destination.headers": [
            "{{ credentials.secret }}: credentials declare no 'secret'.",
            "{{ records }} cannot be used here.",
        ],
        "destination.upsertKey": ["{{ key }}, {{ keys }} and {{ upsertKey }} need an upsertKey."],
    }


def test_a_manifest_needs_streams_or_a_destination():
    no_direction = items_destination()
    del no_direction["destination"]

    assert manifest_errors(no_direction) == {"streams": ["This field is required."]}
    assert manifest_errors(items_destination()) == {}


@pytest.mark.django_db
def test_an_account_registers_its_own_destination_and_sees_its_errors(api):
    refused = api.post(
        CONNECTORS,
        {"manifest": items_destination(mode="batch", body={"rows": "{{ record.id }}"})},
        format="json",
    )

    assert refused.status_code == 400, refused.content
    assert refused.json()["error"]["details"] == {
        "manifest.destination.body": [
            "{{ record.id }} cannot be used here.",
            "The body must send the records: use {{ records }}.",
        ]
    }
    created = api.post(CONNECTORS, {"manifest": items_destination(path="/rows")}, format="json")
    assert created.status_code == 201, created.content


def test_a_request_per_record_puts_its_key_in_the_path(receiver):
    checked = items_destination(
        url="{{ config.apiUrl }}",
        mode="record",
        method="POST",
        path="/items/{{ key }}",
        upsertKey="sku",
        headers={"Authorization": "Bearer {{ credentials.token }}"},
        body={"item": "{{ record }}", "sku": "{{ record.sku }}", "batch": "{{ batch.number }}"},
        successStatuses=[200, 409],
    )
    manifest_check(checked)
    connector = connector_class(checked)(config={"apiUrl": receiver.url}, credentials={})
    receiver.inject = {2: (409, {}, {"message": "Already there"})}

    written = connector.write("items", [{"sku": "a/1", "n": 1}, {"sku": "b", "n": 2}])

    # Each record its own request, the key percent-encoded; a 409 is listed as taken
    assert written == 2
    assert [request.path for request in receiver.requests] == [
        "/ingest/items/a%2F1",
        "/ingest/items/b",
    ]
    assert receiver.taken == [{"item": {"sku": "a/1", "n": 1}, "sku": "a/1", "batch": 1}]
    # No token: the header with it is left out rather than sent as "Bearer "
    assert "authorization" not in receiver.requests[0].headers


def test_a_record_without_its_key_and_a_failed_record_are_named(receiver):
    checked = items_destination(
        url="{{ config.apiUrl }}", mode="record", path="/items/{{ key }}", upsertKey="sku"
    )
    connector = connector_class(checked)(config={"apiUrl": receiver.url}, credentials={})

    with pytest.raises(ConnectorError) as missing:
        connector.write("items", [{"name": "no sku"}])
    assert missing.value.retryable is False
    assert "A record of items has no 'sku', the destination's upsertKey" in missing.value.message
    assert receiver.requests == []

    receiver.inject = {1: (503, {}, {"message": "Down for maintenance"})}
    with pytest.raises(ConnectorError) as failed:
        connector.write("items", [{"sku": "x9"}])
    assert failed.value.retryable is True
    assert failed.value.message.startswith(
        "Test Items Out did not take the record of items with sku x9 (batch 1): "
    )
    assert "answered 503: Down for maintenance" in failed.value.message


def test_an_endpoint_the_egress_policy_refuses_is_never_contacted(receiver, settings):
    # The policy of an installation that configured nothing refuses loopback addresses
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    push = get_connector("http_push")
    assert push is not None

    with pytest.raises(ConnectorError) as refused:
        push(config={"url": receiver.url}, credentials={}).write("orders", [{"id": 1}])

    assert refused.value.retryable is False
    assert "refused by the egress policy: 127.0.0.1 is a loopback address" in refused.value.message
    assert receiver.requests == []
