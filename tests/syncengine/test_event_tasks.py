"""The event tasks of ``config.tasks`` (track_events, user_properties, group_properties): refused
at create and update time when they cannot run, and applied by the sync runner to what reaches
the destination (the in-memory connector keeps what it was sent, see memory.py)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from accounts.services import Actor
from integrations.models import Integration
from syncengine.jobs import lifecycle
from syncengine.sync.launch import integration_sync_start
from tests.factories import IntegrationFactory
from tests.syncengine.memory import DATASETS, Dataset, connection_for
from tests.syncengine.memory import run as run_job

pytestmark = pytest.mark.usefixtures("memory_connector")
URL = "/api/v1/integrations"
ACTOR = Actor.system("tests")
INSERT_ID = re.compile(r"^[0-9a-f]{32}$")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def create(
    api, tenant, tasks: list[Any], cursor_field: str | None = "updated", **records: Any
) -> dict[str, Any]:
    """An integration from an in-memory source holding ``records`` to an in-memory destination,
    created through the API with runNow: the response's data."""
    dataset = Dataset(records=records, cursor_field=cursor_field)
    source = connection_for(tenant, dataset, name="source")
    target = connection_for(tenant, Dataset(), name="target")
    response = api.post(
        URL,
        {
            "sourceAppId": str(source.pk),
            "destinationAppId": str(target.pk),
            "dataType": "events",
            "config": {"global": {}, "tasks": tasks},
            "schedule": {"frequencyValue": 1, "frequencyUnit": "hours", "runNow": True},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return dict(response.json()["data"])


def work(api, job_id: str) -> dict[str, Any]:
    lifecycle.run_execute(job_id)
    return dict(api.get(f"/api/v1/jobs/{job_id}").json()["data"])


def sent(entity: str) -> list[dict[str, Any]]:
    """What the destination was sent for ``entity``."""
    return DATASETS["target"].written.get(entity, [])


def run(api, tenant, tasks: list[Any], **records: Any) -> dict[str, Any]:
    job = work(api, create(api, tenant, tasks, **records)["latestJobId"])
    assert job["status"] == "COMPLETED", job
    return job


ORDERS = [
    {
        "id": 1,
        "customer": {"id": 7},
        "email": "ann@example.com",
        "total": 10,
        "created_at": "2025-01-02T10:00:00+01:00",
        "updated": "2025-01-05T00:00:01",
    },
    {
        "id": 2,
        "user_id": 42,
        "customer_id": 8,
        "total": 20,
        "created_at": "2025-01-02T11:00:00Z",
        "updated": "2025-01-05T00:00:02",
    },
    # A number of seconds since the epoch is a time too
    {"id": 3, "email": "cy@example.com", "total": 30, "created_at": 1735815600, "updated": "3"},
    # "null" is a placeholder Mixpanel refuses: this order names nobody
    {"id": 4, "distinct_id": "null", "total": 40, "created_at": "2025-01-02", "updated": "4"},
]


def test_track_events_makes_each_record_an_event_with_its_customer_time_and_insert_id(api, tenant):
    job = run(
        api,
        tenant,
        [{"task_type": "track_events", "event_mapping": {"order_completed": "Purchase"}}],
        orders=ORDERS,
    )

    assert job["stats"]["orders"]["created"] == 3
    assert job["stats"]["orders"]["skipped"] == 1
    events = sent("orders")
    insert_ids = [event["properties"].pop("$insert_id") for event in events]
    assert all(INSERT_ID.match(value) for value in insert_ids)
    assert len(set(insert_ids)) == 3
    assert events == [
        {
            "event": "Purchase",
            "properties": {
                **ORDERS[0],
                "time": ms("2025-01-02T09:00:00+00:00"),
                "distinct_id": "7",
            },
        },
        {
            "event": "Purchase",
            "properties": {
                **ORDERS[1],
                "time": ms("2025-01-02T11:00:00+00:00"),
                "distinct_id": "42",
            },
        },
        {
            "event": "Purchase",
            "properties": {**ORDERS[2], "time": 1735815600000, "distinct_id": "cy@example.com"},
        },
    ]


def test_a_changed_record_is_sent_again_as_the_same_event(api, tenant):
    created = create(api, tenant, [{"task_type": "track_events"}], orders=ORDERS[:2])
    work(api, created["latestJobId"])
    DATASETS["source"].records["orders"][0] = {**ORDERS[0], "total": 11, "updated": "9"}

    again = api.post(f"{URL}/{created['id']}/sync")
    job = work(api, again.json()["data"]["jobId"])

    assert job["stats"]["orders"]["updated"] == 1
    first, second = sent("orders")[0], sent("orders")[2]
    assert second["properties"]["total"] == 11
    # The same name, distinct id, time and $insert_id: Mixpanel keeps the latest of the two
    for identity in ("time", "distinct_id", "$insert_id"):
        assert first["properties"][identity] == second["properties"][identity]
    assert first["event"] == second["event"] == "order_completed"


def test_the_event_name_comes_from_the_record_the_task_or_the_entity(api, tenant):
    records = [
        {
            "id": 1,
            "action": "Signed Up",
            "user_id": "u1",
            "created_at": "2025-01-01",
            "updated": "1",
        },
        {"id": 2, "user_id": "u2", "created_at": "2025-01-01", "updated": "2"},
    ]
    run(
        api,
        tenant,
        [
            {"task_type": "sync", "entity": "signups"},
            {"task_type": "sync", "entity": "activities"},
            {"task_type": "sync", "entity": "public.payments"},
            {
                "task_type": "track_events",
                "entity": "signups",
                "event_field": "action",
                "event_name": "Visited",
                "event_mapping": {"Visited": "Page Viewed"},
            },
            {"task_type": "track_events", "entity": "activities"},
            {"task_type": "track_events", "entity": "public.payments"},
        ],
        signups=records,
        activities=records[1:],
        **{"public.payments": records[1:]},
    )

    # The record's own name (its field left out of the properties), else the task's, mapped
    assert [(e["event"], "action" in e["properties"]) for e in sent("signups")] == [
        ("Signed Up", False),
        ("Page Viewed", False),
    ]
    # Else the entity's name, singular, with _completed
    assert [e["event"] for e in sent("activities")] == ["activity_completed"]
    assert [e["event"] for e in sent("public.payments")] == ["payment_completed"]


def test_named_fields_for_the_distinct_id_time_and_properties(api, tenant):
    record = {
        "id": 1,
        "buyer": {"ref": "B-9"},
        "paid_at": 1735689600123,
        "total": 5,
        "created_at": "2020-01-01T00:00:00Z",
        "notes": "left out",
        "updated": "1",
    }
    run(
        api,
        tenant,
        [
            {
                "task_type": "track_events",
                "distinct_id_field": "buyer.ref",
                "time_field": "paid_at",
                "properties": {"total": "Amount", "buyer.ref": "Buyer"},
            }
        ],
        orders=[record],
    )

    [event] = sent("orders")
    assert event["properties"].pop("$insert_id")
    assert event == {
        "event": "order_completed",
        "properties": {
            "Amount": 5,
            "Buyer": "B-9",
            "time": 1735689600123,
            "distinct_id": "B-9",
        },
    }


def test_records_without_a_usable_time_are_rejected_and_sampled(api, tenant):
    records = [
        {"id": 1, "user_id": "u1", "created_at": "not a date", "updated": None},
        {"id": 2, "user_id": "u2", "created_at": "1969-07-20T20:17:00Z", "updated": "2"},
        {"id": 3, "user_id": "u3", "created_at": "2025-01-01T00:00:00Z", "updated": "3"},
    ]
    created = create(
        api, tenant, [{"task_type": "track_events"}], cursor_field=None, orders=records
    )

    job = work(api, created["latestJobId"])

    stats = job["stats"]["orders"]
    assert (stats["created"], stats["errors"]) == (1, 2)
    reasons = [sample["reason"] for sample in stats["errorSamples"]]
    assert reasons == [
        "The record has no readable time in created_at for its event.",
        "The event's time is before 1971 or more than an hour ahead, which Mixpanel refuses.",
    ]
    assert [e["properties"]["distinct_id"] for e in sent("orders")] == ["u3"]


def test_the_cursor_field_dates_records_without_created_at(api, tenant):
    run(
        api,
        tenant,
        [{"task_type": "track_events"}],
        orders=[{"id": 1, "email": "a@example.com", "updated": "2025-03-01T12:00:00Z"}],
    )

    assert sent("orders")[0]["properties"]["time"] == ms("2025-03-01T12:00:00+00:00")


def test_event_tasks_apply_after_the_record_tasks_whatever_their_place(api, tenant):
    paid = {"id": 1, "status": "paid", "user_id": "u1", "email": "a@example.com"}
    void = {"id": 2, "status": "void", "user_id": "u2", "email": "b@example.com"}
    job = run(
        api,
        tenant,
        [
            {"task_type": "track_events"},
            {"task_type": "filter", "field": "status", "equals": "paid"},
            {"task_type": "rename", "fields": {"email": "contact"}},
            {"task_type": "drop", "fields": ["status"]},
        ],
        orders=[
            {**paid, "created_at": "2025-01-01", "updated": "1"},
            {**void, "created_at": "2025-01-01", "updated": "2"},
        ],
    )

    # Only the paid order became an event, renamed and without its status
    assert job["stats"]["orders"]["skipped"] == 1
    [event] = sent("orders")
    assert event["properties"]["contact"] == "a@example.com"
    assert "email" not in event["properties"]
    assert "status" not in event["properties"]
    assert event["properties"]["distinct_id"] == "u1"


def test_user_properties_key_profiles_by_user_id_or_the_records_key(api, tenant):
    run(
        api,
        tenant,
        [
            {"task_type": "user_properties", "entity": "customers"},
            {
                "task_type": "user_properties",
                "entity": "members",
                "properties": ["email"],
            },
        ],
        customers=[{"id": 5, "email": "e@example.com", "plan": "pro", "updated": "1"}],
        members=[{"id": 6, "user_id": "m-6", "email": "m@example.com", "updated": "1"}],
    )

    assert sent("customers") == [
        {
            "$distinct_id": "5",
            "$set": {"id": 5, "email": "e@example.com", "plan": "pro", "updated": "1"},
        }
    ]
    assert sent("members") == [{"$distinct_id": "m-6", "$set": {"email": "m@example.com"}}]


def test_group_properties_key_groups_by_their_id_field_or_key(api, tenant):
    job = run(
        api,
        tenant,
        [
            {
                "task_type": "group_properties",
                "group_key": "company_id",
                "group_id_field": "company",
                "properties": {"name": "$name"},
            }
        ],
        companies=[
            {"id": 1, "company": "acme", "name": "Acme", "updated": "1"},
            {"id": 2, "company": None, "name": "Nobody", "updated": "2"},
        ],
    )

    assert job["stats"]["companies"]["skipped"] == 1
    assert sent("companies") == [
        {"$group_key": "company_id", "$group_id": "acme", "$set": {"$name": "Acme"}}
    ]


# --- refused at create and update time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "path"),
    [
        ([{"task_type": "track_event"}], "config.tasks[0].task_type"),
        ([{"task_type": "sync", "entity": "orders"}, "sync"], "config.tasks[1]"),
        ([{"task_type": "group_properties"}], "config.tasks[0].group_key"),
        ([{"task_type": "track_events", "event_maping": {}}], "config.tasks[0].event_maping"),
        (
            [{"task_type": "track_events", "event_mapping": {"a": 1}}],
            "config.tasks[0].event_mapping",
        ),
        ([{"task_type": "track_events", "event_mapping": []}], "config.tasks[0].event_mapping"),
        (
            [{"task_type": "track_events", "include_anonymous": "no"}],
            "config.tasks[0].include_anonymous",
        ),
        ([{"task_type": "track_events", "event_name": ""}], "config.tasks[0].event_name"),
        ([{"task_type": "user_properties", "properties": []}], "config.tasks[0].properties"),
        ([{"task_type": "user_properties", "entity": 3}], "config.tasks[0].entity"),
        ([{"task_type": "filter", "field": "a"}], "config.tasks[0].field"),
        (
            [{"task_type": "track_events"}, {"task_type": "user_properties", "entity": "a"}],
            "config.tasks[1].entity",
        ),
        (
            [
                {"task_type": "track_events", "entity": "a"},
                {"task_type": "group_properties", "entity": "a", "group_key": "k"},
            ],
            "config.tasks[1].entity",
        ),
    ],
)
def test_a_task_that_cannot_run_is_a_400_naming_its_path(api, tenant, tasks, path):
    source = connection_for(tenant, Dataset(records={"orders": []}))

    response = api.post(
        URL,
        {"sourceAppId": str(source.pk), "dataType": "events", "config": {"tasks": tasks}},
        format="json",
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert list(error["details"]) == [path]
    assert not Integration.all_objects.exists()


def test_a_task_naming_an_entity_the_source_lacks_is_a_400_listing_its_entities(api, tenant):
    source = connection_for(tenant, Dataset(records={"orders": [], "customers": []}))
    tasks = [
        {"task_type": "sync", "entity": "orders"},
        {"task_type": "track_events", "entity": "refunds"},
    ]

    response = api.post(
        URL,
        {"sourceAppId": str(source.pk), "dataType": "events", "config": {"tasks": tasks}},
        format="json",
    )

    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert list(details) == ["config.tasks[1].entity"]
    assert "refunds: not an entity" in details["config.tasks[1].entity"][0]
    assert "customers, orders" in details["config.tasks[1].entity"][0]
    assert not Integration.all_objects.exists()


def test_an_entity_new_at_the_source_is_found_by_discovering_again(api, tenant):
    created = create(api, tenant, [{"task_type": "sync", "entity": "orders"}], orders=[])
    DATASETS["source"].records["refunds"] = []

    response = api.patch(
        f"{URL}/{created['id']}",
        {"config": {"tasks": [{"task_type": "sync", "entity": "refunds"}]}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert Integration.objects.get(pk=created["id"]).config["tasks"][0]["entity"] == "refunds"


def test_event_tasks_of_different_entities_are_accepted(api, tenant):
    create(
        api,
        tenant,
        [
            {"task_type": "track_events", "entity": "orders", "include_anonymous": True},
            {"task_type": "user_properties", "entity": "customers"},
        ],
        orders=[],
        customers=[],
    )


@pytest.mark.parametrize("method", ["patch", "put"])
def test_an_update_with_a_task_that_cannot_run_is_a_400_and_changes_nothing(api, tenant, method):
    created = create(api, tenant, [{"task_type": "track_events"}], orders=[])
    body = {"name": "Renamed", "config": {"tasks": [{"task_type": "send_sms"}]}}

    response = getattr(api, method)(f"{URL}/{created['id']}", body, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]) == ["config.tasks[0].task_type"]
    integration = Integration.objects.get(pk=created["id"])
    assert integration.name != "Renamed"
    assert integration.config["tasks"] == [{"task_type": "track_events"}]


def test_a_stored_task_the_engine_cannot_run_fails_the_run_readably(tenant):
    # Rows written before the API checked tasks (or by other means) still meet the engine's check
    source = connection_for(tenant, Dataset(records={"orders": []}))
    integration = IntegrationFactory(
        account=tenant.account,
        dealership=None,
        type="test_memory",
        data_type="events",
        source_connection=source,
        config={"global": {}, "tasks": [{"task_type": "group_properties"}]},
    )
    job = run_job(integration_sync_start(integration=integration, actor=ACTOR))

    assert job.status == "FAILED"
    assert job.error == (
        "config.tasks[0].group_key: A group_properties task needs the project's group key "
        "(e.g. company_id)."
    )
