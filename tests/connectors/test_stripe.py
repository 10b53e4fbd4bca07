"""The Stripe source against a local server that answers the list API as Stripe documents it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.registry import ConnectorError, EntitySpec
from connectors.stripe import StripeConnector
from tests.connectors.fakehttp import Answer, Request, json_server

API_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
START = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
HOUR = 3600


def _objects(prefix: str, kind: str, count: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}_{n:04d}", "object": kind, "created": START + n * HOUR, **extra}
        for n in range(count)
    ]


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeStripe:
    """Stripe's list endpoints over in-memory objects, newest first."""

    url: str = ""
    api_key: str = API_KEY
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def answer(self, request: Recorded) -> Answer:
        if self.fail_next:
            status = self.fail_next.pop(0)
            error_type = "rate_limit_error" if status == 429 else "api_error"
            headers = {"Retry-After": "0"} if status == 429 else {}
            return status, headers, {"error": {"type": error_type, "message": f"Fake {status}"}}
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            message = "Invalid API Key provided: sk_test_****"
            return 401, {}, {"error": {"type": "invalid_request_error", "message": message}}
        version = {"Stripe-Version": request.headers.get("stripe-version", "2020-08-27")}
        if request.path == "/v1/balance":
            return 200, version, {"object": "balance", "available": [], "livemode": False}
        entity = request.path.removeprefix("/v1/")
        if entity not in self.objects:
            return 404, {}, {"error": {"type": "invalid_request_error", "message": "No route"}}
        return 200, version, self.list(entity, request.query)

    def list(self, entity: str, query: dict[str, str]) -> dict[str, Any]:
        limit = int(query.get("limit", "10"))
        if not 1 <= limit <= 100:
            raise ValueError(limit)
        rows = sorted(self.objects[entity], key=lambda o: o["created"], reverse=True)
        if "created[gte]" in query:
            rows = [o for o in rows if o["created"] >= int(query["created[gte]"])]
        if "created[lte]" in query:
            rows = [o for o in rows if o["created"] <= int(query["created[lte]"])]
        if entity == "subscriptions" and query.get("status") != "all":
            rows = [o for o in rows if o["status"] != "canceled"]
        if "starting_after" in query:
            ids = [o["id"] for o in rows]
            rows = rows[ids.index(query["starting_after"]) + 1 :]
        return {
            "object": "list",
            "data": rows[:limit],
            "has_more": len(rows) > limit,
            "url": f"/v1/{entity}",
        }


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    fake.objects = {
        "customers": _objects("cus", "customer", 250, email=None),
        "invoices": _objects("in", "invoice", 30, status="paid"),
        "subscriptions": [
            {**subscription, "status": "canceled" if n % 3 == 0 else "active"}
            for n, subscription in enumerate(_objects("sub", "subscription", 12))
        ],
    }

    def answer(request: Request) -> Answer:
        recorded = Recorded(
            path=request.path,
            query={key: values[0] for key, values in request.query.items()},
            headers=request.headers,
        )
        fake.requests.append(recorded)
        return fake.answer(recorded)

    with json_server(answer) as url:
        fake.url = url
        yield fake


def stripe(fake: FakeStripe, api_key: str = API_KEY) -> StripeConnector:
    return StripeConnector(config={"apiBase": fake.url}, credentials={"apiKey": api_key})


def test_full_read_pages_with_starting_after(stripe_api):
    # Given 250 customers
    # When reading them in batches of 100
    batches = list(stripe(stripe_api).read("customers", batch_size=100))

    # Then three requests fetch them all, each continuing after the last id of the one before
    assert [len(batch.records) for batch in batches] == [100, 100, 50]
    ids = [record["id"] for batch in batches for record in batch.records]
    assert len(set(ids)) == 250
    assert [r.query.get("starting_after") for r in stripe_api.requests] == [
        None,
        batches[0].records[-1]["id"],
        batches[1].records[-1]["id"],
    ]
    assert {r.query["limit"] for r in stripe_api.requests} == {"100"}
    assert all("created[gte]" not in r.query for r in stripe_api.requests)
    assert {r.headers["stripe-version"] for r in stripe_api.requests} == {"2023-10-16"}
    # Newest first, so the highest created is known from the first batch on
    assert {batch.cursor for batch in batches} == {START + 249 * HOUR}


def test_page_size_is_capped_at_100(stripe_api):
    list(stripe(stripe_api).read("invoices", batch_size=1000))

    assert stripe_api.requests[0].query["limit"] == "100"


def test_incremental_read_filters_by_created_gte(stripe_api):
    cursor = START + 200 * HOUR

    batches = list(stripe(stripe_api).read("customers", cursor=cursor, batch_size=100))

    records = [record for batch in batches for record in batch.records]
    assert len(records) == 50
    assert min(record["created"] for record in records) == cursor
    assert stripe_api.requests[0].query["created[gte]"] == str(cursor)
    assert batches[-1].cursor == START + 249 * HOUR


def test_incremental_read_with_nothing_new_yields_nothing(stripe_api):
    batches = list(stripe(stripe_api).read("customers", cursor=START + 1000 * HOUR))

    assert batches == []


def test_date_range_sends_created_bounds(stripe_api):
    # Customers are an hour apart from 2025-01-01T00:00Z: 2 January and 3 January hold 48
    batches = list(
        stripe(stripe_api).read("customers", date_range=(date(2025, 1, 2), date(2025, 1, 3)))
    )

    records = [record for batch in batches for record in batch.records]
    assert len(records) == 48
    query = stripe_api.requests[0].query
    assert query["created[gte]"] == str(START + 24 * HOUR)
    assert query["created[lte]"] == str(START + 72 * HOUR - 1)


def test_invoices_are_read(stripe_api):
    batches = list(stripe(stripe_api).read("invoices", batch_size=20))

    assert sum(len(batch.records) for batch in batches) == 30
    assert {r.path for r in stripe_api.requests} == {"/v1/invoices"}


def test_subscriptions_include_canceled_ones(stripe_api):
    batches = list(stripe(stripe_api).read("subscriptions"))

    statuses = [record["status"] for batch in batches for record in batch.records]
    assert len(statuses) == 12
    assert statuses.count("canceled") == 4
    assert stripe_api.requests[0].query["status"] == "all"


def test_discover_offers_three_entities_keyed_by_id(stripe_api):
    assert stripe(stripe_api).discover() == [
        EntitySpec(name=name, primary_key=["id"], cursor_field="created", ordered=False)
        for name in ("customers", "invoices", "subscriptions")
    ]


def test_connection_test_success(stripe_api):
    result = stripe(stripe_api).test()

    assert result.success is True
    assert result.version == "2023-10-16"
    assert result.permissions == ["read", "write"]
    assert stripe_api.requests[0].path == "/v1/balance"


def test_restricted_key_reports_read_permission(stripe_api):
    stripe_api.api_key = "rk_test_restricted123"

    result = stripe(stripe_api, api_key="rk_test_restricted123").test()

    assert result.success is True
    assert result.permissions == ["read"]


def test_connection_test_with_a_bad_key(stripe_api):
    result = stripe(stripe_api, api_key="sk_test_wrong").test()

    assert result.success is False
    assert result.error == "Invalid API key"


def test_bad_key_read_is_not_retryable(stripe_api):
    with pytest.raises(ConnectorError) as error:
        list(stripe(stripe_api, api_key="sk_test_wrong").read("customers"))

    assert error.value.retryable is False
    assert "Invalid API Key provided" in error.value.message


def test_rate_limit_once_is_retried(stripe_api, waits):
    stripe_api.fail_next = [429]

    batches = list(stripe(stripe_api).read("invoices"))

    assert sum(len(batch.records) for batch in batches) == 30
    assert waits == [0.0]


def test_server_error_is_retryable(stripe_api, waits):
    stripe_api.fail_next = [500]

    with pytest.raises(ConnectorError) as error:
        list(stripe(stripe_api).read("customers"))

    assert error.value.retryable is True
    assert "Fake 500" in error.value.message


def test_unknown_entity_is_not_retryable(stripe_api):
    with pytest.raises(ConnectorError) as error:
        list(stripe(stripe_api).read("charges"))

    assert error.value.retryable is False
    assert stripe_api.requests == []


def test_credentials_schema_checks_the_key_shape():
    assert StripeConnector.validate_credentials({"apiKey": API_KEY}) == {}
    assert "apiKey" in StripeConnector.validate_credentials({"apiKey": "pk_test_abc"})
    assert "apiKey" in StripeConnector.validate_credentials({})


@pytest.mark.django_db
def test_catalog_lists_stripe_and_http_json(api):
    response = api.get("/api/v1/integrations/connectors")

    assert response.status_code == 200, response.content
    connectors = {c["connectorId"]: c for c in response.json()["data"]}
    assert connectors["stripe"]["name"] == "Stripe"
    assert connectors["stripe"]["category"] == "PAYMENTS"
    assert connectors["stripe"]["status"] == "AVAILABLE"
    assert connectors["stripe"]["features"] == ["payments", "subscriptions", "invoices"]
    assert connectors["stripe"]["entities"] == ["customers", "invoices", "subscriptions"]
    assert connectors["stripe"]["secretFields"] == ["apiKey", "webhookSecret"]
    assert connectors["http_json"]["category"] == "API"
    assert connectors["http_json"]["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
