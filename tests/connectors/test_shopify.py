"""The shopify manifest connector through the API and the real sync engine, against a local store
that answers as Shopify's Admin REST API documents it (``fake_shopify``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from syncengine.models import Record
from tests.connectors.api_sync import (
    CONNECTIONS,
    connection_create,
    counts,
    retry,
    stored,
    streams,
    sync,
)
from tests.connectors.fake_shopify import (
    ACCESS_TOKEN,
    START,
    THROTTLED,
    FakeShopify,
    orders,
    shopify_server,
    stamp,
    touch,
)

pytestmark = pytest.mark.django_db
ALL = {"orders": 30, "customers": 12, "products": 7}


@pytest.fixture
def shopify(settings) -> Iterator[FakeShopify]:
    settings.SYNC_BATCH_SIZE = 10
    with shopify_server() as fake:
        yield fake


def create_connection(api, fake: FakeShopify, token: str = ACCESS_TOKEN) -> str:
    return connection_create(
        api,
        "shopify",
        name="Store",
        config={"shopUrl": fake.url},
        credentials={"accessToken": token},
    )


def test_catalog_lists_shopify(api):
    body = api.get("/api/v1/integrations/connectors/shopify").json()["data"]

    assert body["entities"] == ["orders", "customers", "products"]
    assert body["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert body["secretFields"] == ["accessToken"]


def test_full_then_incremental_sync_reads_exactly_what_changed(api, shopify):
    # Given a store with 30 orders (5 of them closed), 12 customers and 7 products
    connection_id = create_connection(api, shopify)

    # When it is synced in full
    full = sync(api, connection_id)

    # Then every record is stored once, closed orders included, paged by the Link header
    assert full["status"] == "COMPLETED", full
    assert counts(full) == {
        entity: {"created": count, "updated": 0, "unchanged": 0, "read": count}
        for entity, count in ALL.items()
    }
    assert {entity: stored(connection_id, entity) for entity in ALL} == ALL
    sent = shopify.sent("orders")
    assert sent[0] == {"status": "any", "limit": "10"}
    assert [set(query) for query in sent[1:]] == [{"limit", "page_info"}] * 2
    assert all(
        request.headers["x-shopify-access-token"] == ACCESS_TOKEN for request in shopify.requests
    )
    # Shopify lists newest id first: the cursor is the newest updated_at once all is read
    assert streams(api, connection_id)["orders"]["cursor"] == stamp(START + timedelta(hours=29))

    # Given two orders updated, one order placed and one customer edited
    later = START + timedelta(days=5)
    touch(shopify.data["orders"][2], later, financial_status="refunded")
    touch(shopify.data["orders"][17], later + timedelta(minutes=1), email="new@example.com")
    placed = orders(1, first=1031)[0] | {"id": 450789999}
    touch(placed, later + timedelta(minutes=2))
    shopify.data["orders"].append(placed)
    touch(shopify.data["customers"][0], later, last_name="Renamed")
    shopify.requests.clear()

    # When it is synced incrementally
    incremental = sync(api, connection_id, "INCREMENTAL")

    # Then updated_at_min carries each entity's cursor and only the changes are read
    assert incremental["status"] == "COMPLETED", incremental
    assert counts(incremental) == {
        "orders": {"created": 1, "updated": 2, "unchanged": 0, "read": 3},
        "customers": {"created": 0, "updated": 1, "unchanged": 0, "read": 1},
        "products": {"created": 0, "updated": 0, "unchanged": 0, "read": 0},
    }
    assert shopify.sent("orders")[0] == {
        "status": "any",
        "limit": "10",
        "updated_at_min": stamp(START + timedelta(hours=29)),
    }
    assert stored(connection_id, "orders") == 31
    refunded = api.get(f"{CONNECTIONS}/{connection_id}/records?entity=orders&key=450789471")
    assert refunded.json()["data"][0]["data"]["financial_status"] == "refunded"


def test_a_429_and_a_500_mid_read_lose_and_duplicate_no_order(api, shopify, waits):
    # Given the second page is throttled once and the page after it fails with a 500
    connection_id = create_connection(api, shopify)
    shopify.inject = {2: THROTTLED, 4: (500, {}, {"errors": "Internal Server Error"})}

    # When orders are synced: the 429 is waited out, the 500 puts the job back in the queue
    first = sync(api, connection_id, entities=["orders"])
    assert waits == [2.0]
    assert first["status"] == "QUEUED", first
    assert stored(connection_id, "orders") == 20
    # A source not read in cursor order commits no cursor before it is read through
    assert streams(api, connection_id)["orders"]["cursor"] is None

    # And it is retried
    done = retry(api, connection_id, first["syncId"])

    # Then all 30 orders are stored once and counted once
    assert done["status"] == "COMPLETED", done
    assert counts(done) == {"orders": {"created": 30, "updated": 0, "unchanged": 0, "read": 30}}
    assert stored(connection_id, "orders") == 30


def test_a_snapshot_copies_every_record_and_leaves_the_store_alone(api, shopify):
    connection_id = create_connection(api, shopify)

    job = sync(api, connection_id, "SNAPSHOT")

    assert job["status"] == "COMPLETED", job
    snapshots = api.get(f"{CONNECTIONS}/{connection_id}/snapshots").json()["data"]
    assert [(s["complete"], s["entities"], s["recordCount"]) for s in snapshots] == [
        (True, ALL, 49)
    ]
    assert Record.objects.filter(stream__connection_id=connection_id).count() == 0


def test_connection_test(api, shopify):
    good = create_connection(api, shopify)
    bad = create_connection(api, shopify, token="shpat_revoked")

    passed = api.post(f"{CONNECTIONS}/{good}/test").json()["data"]
    failed = api.post(f"{CONNECTIONS}/{bad}/test").json()["data"]

    assert passed["success"] is True
    assert failed["success"] is False
    assert "Invalid API key or access token" in failed["error"]
    assert {request.path for request in shopify.requests} == {"/admin/api/2024-01/shop.json"}


def test_a_bad_token_fails_the_sync_without_retrying(api, shopify):
    connection_id = create_connection(api, shopify, token="shpat_revoked")

    job = sync(api, connection_id)

    assert job["status"] == "FAILED"
    assert "401" in job["error"]
    assert len(shopify.requests) == 1


def test_shop_url_must_be_an_address_without_a_path(api, shopify):
    response = api.post(
        CONNECTIONS,
        {
            "connectorId": "shopify",
            "name": "Store",
            "config": {"shopUrl": "https://acme.myshopify.com/admin"},
            "credentials": {"accessToken": ACCESS_TOKEN},
        },
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"config.shopUrl"}
