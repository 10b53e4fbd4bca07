"""The mixpanel destination through the API and the real sync engine: a Shopify store
(``fake_shopify``) moved into a local Mixpanel project that answers as Mixpanel's ingestion API
documents it (``fake_mixpanel``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from connectors.mixpanel import MixpanelConnector
from integrations.models import Integration
from syncengine.jobs import lifecycle
from syncengine.sync.transform import insert_id
from tests.connectors.fake_mixpanel import (
    PROJECT_ID,
    RATE_LIMITED,
    SECRET,
    TOKEN,
    USERNAME,
    FakeMixpanel,
    basic_auth,
    mixpanel_server,
)
from tests.connectors.fake_shopify import ACCESS_TOKEN, FakeShopify, shopify_server

pytestmark = pytest.mark.django_db
CONNECTIONS = "/api/v1/integrations/connections"
INTEGRATIONS = "/api/v1/integrations"
SERVICE_ACCOUNT = {"username": USERNAME, "secret": SECRET}
ORDERS, CUSTOMERS, PRODUCTS = 30, 12, 7


@pytest.fixture
def shopify(settings) -> Iterator[FakeShopify]:
    settings.SYNC_BATCH_SIZE = 10
    with shopify_server() as fake:
        yield fake


@pytest.fixture
def mixpanel() -> Iterator[FakeMixpanel]:
    with mixpanel_server() as fake:
        yield fake


def connection(api, body: dict[str, Any]) -> str:
    response = api.post(CONNECTIONS, body, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["data"]["connectionId"])


def store(api, shopify: FakeShopify) -> str:
    return connection(
        api,
        {
            "connectorId": "shopify",
            "name": "My Shopify Store",
            "config": {"shopUrl": shopify.url},
            "credentials": {"accessToken": ACCESS_TOKEN},
        },
    )


def project(api, mixpanel: FakeMixpanel, credentials: dict[str, str] | None = None) -> str:
    return connection(
        api,
        {
            "connectorId": "mixpanel",
            "name": "Mixpanel Production",
            "config": {"projectId": PROJECT_ID, "apiUrl": mixpanel.url},
            "credentials": credentials or {**SERVICE_ACCOUNT, "token": TOKEN},
        },
    )


def integration(api, source: str, destination: str, tasks: list[dict[str, Any]]) -> dict:
    """The integrations document's create body with these tasks: the integration and its
    runNow job."""
    response = api.post(
        INTEGRATIONS,
        {
            "sourceAppId": source,
            "destinationAppId": destination,
            "dataType": "events",
            "config": {"global": {"include_refunds": True}, "tasks": tasks},
            "schedule": {
                "frequencyValue": 1,
                "frequencyUnit": "hours",
                "rollingWindowDays": 7,
                "runNow": True,
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def work(api, job_id: str) -> dict[str, Any]:
    """Work the job as the worker's task does and read it back through the API."""
    lifecycle.run_execute(job_id)
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.content
    return dict(response.json()["data"])


def retry(api, job_id: str) -> dict[str, Any]:
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        return work(api, job_id)


def names(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["event"] for event in events)


def imports(mixpanel: FakeMixpanel) -> list[Any]:
    return [request for request in mixpanel.requests if request.path == "/import"]


def test_catalog_lists_mixpanel_as_a_destination(api):
    body = api.get("/api/v1/integrations/connectors/mixpanel").json()["data"]

    assert body["category"] == "API"
    assert body["status"] == "BETA"
    assert body["secretFields"] == ["secret", "token", "username"]
    assert body["configSchema"]["required"] == ["projectId"]
    assert body["configSchema"]["properties"]["region"]["enum"] == ["EU", "IN", "US"]


def test_the_documented_example_moves_shopify_orders_into_mixpanel_as_purchases(
    api, shopify, mixpanel
):
    # Given a Shopify store and a Mixpanel project, connected
    source, destination = store(api, shopify), project(api, mixpanel)

    # When the documented integration is created with runNow and its job is worked
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "track_events", "event_mapping": {"order_completed": "Purchase"}}],
    )
    job = work(api, created["latestJobId"])

    # Then the job completes and every order arrives once as a Purchase, dated by its creation
    assert created["destinationAppType"] == "mixpanel"
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["orders"]["created"] == ORDERS
    assert job["stats"]["customers"]["created"] == CUSTOMERS
    # Products name nobody: without include_anonymous they are skipped, not sent
    assert job["stats"]["products"]["skipped"] == PRODUCTS
    events = mixpanel.events()
    assert names(events) == {"Purchase": ORDERS, "customer_completed": CUSTOMERS}
    assert len(mixpanel.received) == ORDERS + CUSTOMERS
    first = next(e for e in events if e["properties"]["name"] == "#1001")["properties"]
    order = shopify.data["orders"][0]
    assert first["distinct_id"] == order["email"]
    assert first["time"] == int(datetime.fromisoformat(order["created_at"]).timestamp() * 1000)
    assert first["total_price"] == order["total_price"]
    assert len({e["properties"]["$insert_id"] for e in events}) == ORDERS + CUSTOMERS
    # The service account with the project, strict validation, batches within the limits
    for request in imports(mixpanel):
        assert request.param("strict") == "1"
        assert request.param("project_id") == PROJECT_ID
        assert basic_auth(request) == (USERNAME, SECRET)
        assert len(request.json()) <= 2000

    # And a second run finds nothing new and sends nothing
    mixpanel.requests.clear()
    response = api.post(f"{INTEGRATIONS}/{created['id']}/sync")
    assert response.status_code == 202, response.content
    again = work(api, response.json()["data"]["jobId"])
    assert again["status"] == "COMPLETED", again
    assert imports(mixpanel) == []


def test_include_anonymous_false_skips_orders_without_a_customer(api, shopify, mixpanel):
    # Given 4 of the 30 orders without an email (guest checkouts with nothing to name)
    for order in shopify.data["orders"][:4]:
        order["email"] = None
    source, destination = store(api, shopify), project(api, mixpanel)

    # When the document's second example runs: track_events with include_anonymous false
    created = integration(
        api,
        source,
        destination,
        [
            {"task_type": "sync", "entity": "orders"},
            {"task_type": "track_events", "include_anonymous": False},
        ],
    )
    job = work(api, created["latestJobId"])

    # Then the 26 orders with a customer arrive and the 4 others are counted as skipped
    assert job["status"] == "COMPLETED", job
    assert job["stats"]["orders"]["skipped"] == 4
    assert names(mixpanel.events()) == {"order_completed": ORDERS - 4}
    assert all(e["properties"]["distinct_id"] for e in mixpanel.events())


def test_include_anonymous_true_sends_them_with_an_empty_distinct_id(api, shopify, mixpanel):
    for order in shopify.data["orders"][:4]:
        order["email"] = None
    source, destination = store(api, shopify), project(api, mixpanel)

    created = integration(
        api,
        source,
        destination,
        [
            {"task_type": "sync", "entity": "orders"},
            {"task_type": "track_events", "include_anonymous": True},
        ],
    )
    job = work(api, created["latestJobId"])

    assert job["status"] == "COMPLETED", job
    distinct = Counter(e["properties"]["distinct_id"] == "" for e in mixpanel.events())
    assert distinct == {True: 4, False: ORDERS - 4}


def test_a_429_mid_run_is_waited_out_without_losing_or_doubling_an_event(
    api, shopify, mixpanel, waits
):
    # Given Mixpanel rate-limits the second import request once
    mixpanel.inject = {"/import": {2: RATE_LIMITED}}
    source, destination = store(api, shopify), project(api, mixpanel)

    # When the orders are sent
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )
    job = work(api, created["latestJobId"])

    # Then the Retry-After is waited out and the batch sent again, once
    assert job["status"] == "COMPLETED", job
    assert waits == [1.0]
    assert len(imports(mixpanel)) == ORDERS // 10 + 1
    assert len(mixpanel.received) == ORDERS
    assert names(mixpanel.events()) == {"order_completed": ORDERS}


def test_a_429_that_outlasts_its_retries_requeues_the_run_which_then_sends_the_rest(
    api, shopify, mixpanel, waits
):
    # Given the second import request is rate-limited four times in a row
    mixpanel.inject = {"/import": dict.fromkeys(range(2, 6), RATE_LIMITED)}
    source, destination = store(api, shopify), project(api, mixpanel)
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )

    # When the run gives up on it, and is retried later
    first = work(api, created["latestJobId"])
    assert first["status"] == "QUEUED", first
    assert len(mixpanel.received) == 10
    done = retry(api, created["latestJobId"])

    # Then every order arrived exactly once
    assert done["status"] == "COMPLETED", done
    assert len(mixpanel.received) == ORDERS
    assert names(mixpanel.events()) == {"order_completed": ORDERS}


def test_an_import_whose_answer_is_lost_is_sent_again_and_deduplicated_by_insert_id(
    api, shopify, mixpanel
):
    # Given Mixpanel imports the second batch but its answer is lost (a 503)
    mixpanel.lose_answer = {2}
    source, destination = store(api, shopify), project(api, mixpanel)
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )

    # When the run is requeued by the 503 and retried
    first = work(api, created["latestJobId"])
    assert first["status"] == "QUEUED", first
    done = retry(api, created["latestJobId"])

    # Then the batch was received twice, with the same $insert_ids, and counts once
    assert done["status"] == "COMPLETED", done
    assert len(mixpanel.received) == ORDERS + 10
    twice = Counter(e["properties"]["$insert_id"] for e in mixpanel.received)
    assert sorted(Counter(twice.values()).items()) == [(1, ORDERS - 10), (2, 10)]
    assert names(mixpanel.events()) == {"order_completed": ORDERS}


def test_events_mixpanel_refuses_fail_the_run_without_a_retry(api, shopify, mixpanel):
    # Given Mixpanel refuses one event of the first batch
    source, destination = store(api, shopify), project(api, mixpanel)
    refused = _insert_id_of(shopify, "#1030")
    mixpanel.refuse = {refused: "'properties.total_price' is not a valid number"}
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )

    # When the run sends it
    job = work(api, created["latestJobId"])

    # Then the run fails at once (a retry would be refused the same way) and says why
    assert job["status"] == "FAILED", job
    assert job["attempts"] == 1
    assert "Mixpanel refused events of orders" in job["error"]
    assert len(imports(mixpanel)) == 1


def test_the_refusal_names_the_first_failed_events(api, shopify, mixpanel):
    source, destination = store(api, shopify), project(api, mixpanel)
    refused = _insert_id_of(shopify, "#1030")
    mixpanel.refuse = {refused: "'properties.total_price' is not a valid number"}
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )

    job = work(api, created["latestJobId"])

    assert f"event {refused} (properties): 'properties.total_price'" in job["error"]
    assert "(9 imported)" in job["error"]


def _insert_id_of(shopify: FakeShopify, name: str) -> str:
    """The $insert_id the order named ``name`` gets: its entity and key (the order's id)."""
    order = next(order for order in shopify.data["orders"] if order["name"] == name)
    return insert_id("orders", str(order["id"]))


def test_user_and_group_properties_reach_engage_and_groups(api, shopify, mixpanel):
    # Given customers as user profiles and products as group profiles
    source, destination = store(api, shopify), project(api, mixpanel)
    created = integration(
        api,
        source,
        destination,
        [
            {"task_type": "sync", "entity": "customers"},
            {"task_type": "sync", "entity": "products"},
            {
                "task_type": "user_properties",
                "entity": "customers",
                "properties": {
                    "email": "$email",
                    "last_name": "$last_name",
                    "orders_count": "Orders",
                },
            },
            {
                "task_type": "group_properties",
                "entity": "products",
                "group_key": "product_id",
                "properties": {"title": "$name", "vendor": "Vendor"},
            },
        ],
    )

    # When the job runs
    job = work(api, created["latestJobId"])

    # Then each customer is a profile keyed by its id and each product a group profile
    assert job["status"] == "COMPLETED", job
    customer = shopify.data["customers"][3]
    assert len(mixpanel.profiles) == CUSTOMERS
    assert mixpanel.profiles[str(customer["id"])] == {
        "$email": customer["email"],
        "$last_name": customer["last_name"],
        "Orders": customer["orders_count"],
    }
    product = shopify.data["products"][0]
    assert len(mixpanel.groups) == PRODUCTS
    assert mixpanel.groups[("product_id", str(product["id"]))] == {
        "$name": product["title"],
        "Vendor": "Apple",
    }
    updates = [r for r in mixpanel.requests if r.path in ("/engage", "/groups")]
    assert {r.path for r in updates} == {"/engage", "/groups"}
    assert all(r.param("verbose") == "1" and r.param("ip") == "0" for r in updates)
    assert mixpanel.received == []


def test_profile_updates_need_the_project_token(api, shopify, mixpanel):
    source = store(api, shopify)
    destination = project(api, mixpanel, credentials=SERVICE_ACCOUNT)
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "customers"}, {"task_type": "user_properties"}],
    )

    job = work(api, created["latestJobId"])

    assert job["status"] == "FAILED", job
    assert "credentials.token" in job["error"]
    assert mixpanel.profiles == {}


def test_records_without_an_event_task_are_refused_readably(api, shopify, mixpanel):
    source, destination = store(api, shopify), project(api, mixpanel)
    created = integration(api, source, destination, [{"task_type": "sync", "entity": "orders"}])

    job = work(api, created["latestJobId"])

    assert job["status"] == "FAILED", job
    assert "track_events, user_properties or group_properties task for orders" in job["error"]
    assert mixpanel.requests == []


def test_a_project_token_alone_imports_events(api, shopify, mixpanel):
    source = store(api, shopify)
    destination = project(api, mixpanel, credentials={"token": TOKEN})
    created = integration(
        api,
        source,
        destination,
        [{"task_type": "sync", "entity": "orders"}, {"task_type": "track_events"}],
    )

    job = work(api, created["latestJobId"])

    assert job["status"] == "COMPLETED", job
    assert len(mixpanel.events()) == ORDERS
    assert {basic_auth(r) for r in imports(mixpanel)} == {(TOKEN, "")}
    assert {r.param("project_id") for r in imports(mixpanel)} == {None}


def test_an_unknown_task_type_is_a_400_at_create_time(api, shopify, mixpanel):
    source, destination = store(api, shopify), project(api, mixpanel)

    response = api.post(
        INTEGRATIONS,
        {
            "sourceAppId": source,
            "destinationAppId": destination,
            "dataType": "events",
            "config": {"global": {}, "tasks": [{"task_type": "track_event"}]},
            "schedule": {"frequencyValue": 1, "frequencyUnit": "hours", "runNow": True},
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == ["config.tasks[0].task_type"]
    assert (
        "does not run task_type 'track_event'" in error["details"]["config.tasks[0].task_type"][0]
    )
    assert not Integration.all_objects.exists()
    assert mixpanel.requests == []


def test_a_task_naming_an_entity_shopify_lacks_is_a_400_at_create_time(api, shopify, mixpanel):
    source, destination = store(api, shopify), project(api, mixpanel)

    response = api.post(
        INTEGRATIONS,
        {
            "sourceAppId": source,
            "destinationAppId": destination,
            "dataType": "events",
            "config": {"tasks": [{"task_type": "track_events", "entity": "refunds"}]},
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert list(details) == ["config.tasks[0].entity"]
    assert "it has: orders, customers, products" in details["config.tasks[0].entity"][0]
    assert not Integration.all_objects.exists()


# --- the connection test -----------------------------------------------------------------------


def connection_checked(api, connection_id: str) -> dict[str, Any]:
    response = api.post(f"{CONNECTIONS}/{connection_id}/test")
    assert response.status_code == 200, response.content
    return dict(response.json()["data"])


def test_connection_test_checks_the_service_account_and_its_project(api, mixpanel):
    good = project(api, mixpanel)
    wrong_secret = project(api, mixpanel, credentials={"username": USERNAME, "secret": "nope"})

    passed, failed = connection_checked(api, good), connection_checked(api, wrong_secret)

    assert passed["success"] is True
    assert passed["permissions"] == ["events", "user_properties", "group_properties"]
    assert failed["success"] is False
    assert failed["error"] == "Mixpanel refused the service account's username or secret."
    assert {r.path for r in mixpanel.requests} == {"/api/app/me"}


def test_connection_test_names_a_project_the_account_cannot_reach(api, mixpanel):
    other = connection(
        api,
        {
            "connectorId": "mixpanel",
            "name": "Other project",
            "config": {"projectId": 999, "apiUrl": mixpanel.url},
            "credentials": SERVICE_ACCOUNT,
        },
    )

    result = connection_checked(api, other)

    assert result["success"] is False
    assert result["error"] == "The service account has no access to project 999."


def test_connection_test_checks_a_token_with_an_empty_import(api, mixpanel):
    good = project(api, mixpanel, credentials={"token": TOKEN})
    bad = project(api, mixpanel, credentials={"token": "not-the-token"})

    passed, failed = connection_checked(api, good), connection_checked(api, bad)

    assert passed["success"] is True
    assert failed["success"] is False
    assert failed["error"] == "Mixpanel refused the project token."
    assert [r.json() for r in imports(mixpanel)] == [[], []]
    assert mixpanel.received == []


GIVE = "Give a service account (username and secret), the project token, or both."


@pytest.mark.parametrize(
    ("credentials", "messages"),
    [
        ({}, [GIVE]),
        ({"username": USERNAME}, [GIVE]),
        ({"secret": SECRET, "token": TOKEN}, [GIVE]),
        ({"apiKey": SECRET}, ["Unknown credentials: apiKey.", GIVE]),
    ],
)
def test_credentials_are_a_service_account_or_a_token(api, credentials, messages):
    response = api.post(
        CONNECTIONS,
        {
            "connectorId": "mixpanel",
            "name": "Mixpanel",
            "config": {"projectId": PROJECT_ID},
            "credentials": credentials,
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"] == {"credentials": messages}
    assert SECRET not in response.content.decode()


def test_region_must_be_one_of_mixpanels(api):
    response = api.post(
        CONNECTIONS,
        {
            "connectorId": "mixpanel",
            "name": "Mixpanel",
            "config": {"projectId": PROJECT_ID, "region": "APAC"},
            "credentials": {"token": TOKEN},
        },
        format="json",
    )

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]) == ["config.region"]


# --- batching ----------------------------------------------------------------------------------


def _event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event": "Purchase",
        "properties": {
            "time": 1704067200000 + n,
            "distinct_id": f"customer-{n % 50}",
            "$insert_id": f"order-{n}",
            **extra,
        },
    }


def test_events_go_in_batches_of_at_most_2000(mixpanel):
    connector = MixpanelConnector(
        config={"projectId": PROJECT_ID, "apiUrl": mixpanel.url}, credentials=SERVICE_ACCOUNT
    )

    written = connector.write("orders", [_event(n) for n in range(4500)])

    assert written == 4500
    assert [len(r.json()) for r in imports(mixpanel)] == [2000, 2000, 500]
    assert len(mixpanel.events()) == 4500


def test_events_go_in_batches_of_at_most_10_mb(mixpanel):
    connector = MixpanelConnector(
        config={"projectId": PROJECT_ID, "apiUrl": mixpanel.url}, credentials=SERVICE_ACCOUNT
    )
    note = "x" * 400_000  # 26 such events are over 10 MB

    connector.write("orders", [_event(n, note=note) for n in range(60)])

    sizes = [len(r.body) for r in imports(mixpanel)]
    assert all(size <= 10 * 1024 * 1024 for size in sizes)
    assert [len(r.json()) for r in imports(mixpanel)] == [26, 26, 8]
    assert len(mixpanel.events()) == 60
