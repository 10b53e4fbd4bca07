"""Snapshots, the record store and its streams over the API, for integrations and connections
alike; the read-only admin screens — and tenant isolation of each endpoint."""

import hashlib
from datetime import timedelta

import factory
import pytest
from django.contrib import admin
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors.choices import SyncMode
from syncengine.choices import JobStatus, JobTrigger
from syncengine.models import PulledFile, Record, Snapshot, SnapshotRecord, SyncJob, SyncStream
from tests.factories import AccountFactory, ConnectionFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _owner(owner) -> dict:
    kind = "integration" if owner._meta.model_name == "integration" else "connection"
    return {"account": owner.account, kind: owner}


class SnapshotJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncJob

    account = factory.SubFactory(AccountFactory)
    trigger = JobTrigger.MANUAL
    mode = SyncMode.SNAPSHOT
    status = JobStatus.COMPLETED


class SnapshotFactory(factory.django.DjangoModelFactory):
    """A snapshot with its job; ``created_at`` may be given (written after the insert)."""

    class Meta:
        model = Snapshot

    account = factory.SubFactory(AccountFactory)
    job = factory.SubFactory(
        SnapshotJobFactory,
        account=factory.SelfAttribute("..account"),
        integration=factory.SelfAttribute("..integration"),
        connection=factory.SelfAttribute("..connection"),
    )
    integration = None
    connection = None
    complete = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        created_at = kwargs.pop("created_at", None)
        snapshot = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            Snapshot.objects.filter(pk=snapshot.pk).update(created_at=created_at)
            snapshot.refresh_from_db()
        return snapshot


def snapshot_of(owner, records: dict[str, list[dict]], **values) -> Snapshot:
    """A snapshot of ``owner`` holding ``records`` ({entity: [data, ...]}), in order."""
    snapshot = SnapshotFactory(
        **_owner(owner),
        entities={entity: len(rows) for entity, rows in records.items()},
        record_count=sum(len(rows) for rows in records.values()),
        completed_at=timezone.now(),
        **values,
    )
    SnapshotRecord.objects.bulk_create(
        SnapshotRecord(snapshot=snapshot, entity=entity, position=position, data=data)
        for entity, rows in records.items()
        # Inserted in reverse so that the order of the answer comes from the positions.
        for position, data in reversed(list(enumerate(rows)))
    )
    return snapshot


def stream_of(owner, entity: str, records: dict[str, dict], **values) -> SyncStream:
    """A stream of ``owner`` holding ``records`` ({key: data})."""
    stream = SyncStream.objects.create(**_owner(owner), entity=entity, **values)
    now = timezone.now()
    Record.objects.bulk_create(
        Record(
            stream=stream,
            key=key,
            data=data,
            content_hash=int.from_bytes(
                hashlib.sha256(repr(data).encode()).digest()[:8], "big", signed=True
            ),
            created_at=now,
            updated_at=now,
        )
        for key, data in records.items()
    )
    return stream


@pytest.fixture
def pipeline(tenant):
    return IntegrationFactory(account=tenant.account, type="test_shop_api", name="Orders")


@pytest.fixture
def shop(tenant):
    return ConnectionFactory(account=tenant.account, connector_id="test_shop_api", name="Shop")


@pytest.fixture(params=["integration", "connection"])
def owner(request, pipeline, shop):
    """Each test runs for an integration's store and for a connection's own."""
    return pipeline if request.param == "integration" else shop


@pytest.fixture
def their_owner(owner, other_tenant):
    if owner._meta.model_name == "integration":
        return IntegrationFactory(account=other_tenant.account, type="test_shop_api")
    return ConnectionFactory(account=other_tenant.account, connector_id="test_shop_api")


def base(owner) -> str:
    if owner._meta.model_name == "integration":
        return f"/api/v1/integrations/{owner.pk}"
    return f"/api/v1/integrations/connections/{owner.pk}"


def sibling(owner):
    """Another owner of the same kind in the same account."""
    if owner._meta.model_name == "integration":
        return IntegrationFactory(account=owner.account, type="test_shop_api")
    return ConnectionFactory(account=owner.account, connector_id="test_shop_api")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- Snapshots -------------------------------------------------------------------------------


def test_snapshots_are_listed_newest_first_with_their_counts(api, owner):
    now = timezone.now()
    older = snapshot_of(
        owner, {"orders": [{"id": 1}]}, created_at=now - timedelta(days=1), complete=True
    )
    newer = snapshot_of(
        owner,
        {"orders": [{"id": 1}, {"id": 2}], "customers": [{"id": "c1"}]},
        created_at=now,
    )
    snapshot_of(sibling(owner), {"orders": [{"id": 9}]})

    response = api.get(f"{base(owner)}/snapshots")
    first_page = api.get(f"{base(owner)}/snapshots?limit=1")

    assert response.status_code == 200, response.content
    snapshots = response.json()["data"]
    assert [s["id"] for s in snapshots] == [str(newer.pk), str(older.pk)]
    assert set(snapshots[0]) >= {
        "id",
        "jobId",
        "createdAt",
        "completedAt",
        "complete",
        "entities",
        "recordCount",
    }
    assert snapshots[0]["jobId"] == str(newer.job_id)
    assert snapshots[0]["entities"] == {"orders": 2, "customers": 1}
    assert snapshots[0]["recordCount"] == 3
    assert snapshots[0]["complete"] is True
    assert first_page.json()["meta"]["pagination"]["hasMore"] is True


def test_snapshot_detail_and_its_job_point_at_each_other(api, owner):
    snapshot = snapshot_of(owner, {"orders": [{"id": 1}]})

    detail = api.get(f"{base(owner)}/snapshots/{snapshot.pk}")
    job = api.get(f"/api/v1/jobs/{snapshot.job_id}")
    jobs = api.get("/api/v1/jobs?mode=SNAPSHOT")

    assert detail.status_code == 200, detail.content
    assert detail.json()["data"]["id"] == str(snapshot.pk)
    assert detail.json()["data"]["recordCount"] == 1
    assert job.json()["data"]["snapshotId"] == str(snapshot.pk)
    assert [j["snapshotId"] for j in jobs.json()["data"]] == [str(snapshot.pk)]


def test_snapshot_of_another_owner_is_404_through_this_one(api, owner):
    elsewhere = snapshot_of(sibling(owner), {"orders": [{"id": 1}]})

    detail = api.get(f"{base(owner)}/snapshots/{elsewhere.pk}")
    records = api.get(f"{base(owner)}/snapshots/{elsewhere.pk}/records")

    assert_error(detail, 404, "NOT_FOUND")
    assert_error(records, 404, "NOT_FOUND")


def test_snapshot_records_come_in_position_order_and_paginate(api, owner):
    rows = [{"id": n, "total": f"{n}.00"} for n in range(5)]
    snapshot = snapshot_of(owner, {"orders": rows})

    everything = api.get(f"{base(owner)}/snapshots/{snapshot.pk}/records")
    page = api.get(f"{base(owner)}/snapshots/{snapshot.pk}/records?limit=2&offset=1")

    assert everything.status_code == 200, everything.content
    assert everything.json()["data"][0] == {
        "entity": "orders",
        "position": 0,
        "data": {"id": 0, "total": "0.00"},
    }
    assert [r["position"] for r in everything.json()["data"]] == [0, 1, 2, 3, 4]
    assert [r["data"]["id"] for r in page.json()["data"]] == [1, 2]
    assert page.json()["meta"]["pagination"] == {
        "total": 5,
        "limit": 2,
        "offset": 1,
        "hasMore": True,
    }


def test_snapshot_records_of_several_entities_need_an_entity(api, owner):
    snapshot = snapshot_of(
        owner,
        {"orders": [{"id": 1}, {"id": 2}], "customers": [{"id": "c1", "first_name": "Ann"}]},
    )
    url = f"{base(owner)}/snapshots/{snapshot.pk}/records"

    missing = api.get(url)
    unknown = api.get(f"{url}?entity=invoices")
    customers = api.get(f"{url}?entity=customers")
    empty = snapshot_of(owner, {})
    nul = api.get(f"{base(owner)}/snapshots/{empty.pk}/records?entity=a%00b")

    error = assert_error(missing, 400, "VALIDATION_ERROR")
    assert "customers, orders" in error["details"]["entity"][0]
    assert "entity" in assert_error(unknown, 400, "VALIDATION_ERROR")["details"]
    assert assert_error(nul, 400, "VALIDATION_ERROR")["details"]["entity"] == [
        "Must not contain NUL (%00) characters."
    ]
    assert customers.status_code == 200, customers.content
    # User data passes through as stored: its keys are not camelCased.
    assert customers.json()["data"] == [
        {"entity": "customers", "position": 0, "data": {"id": "c1", "first_name": "Ann"}}
    ]


def test_snapshots_of_another_account_are_404(api, their_owner):
    theirs = snapshot_of(their_owner, {"orders": [{"id": 1}]})

    for path in ("snapshots", f"snapshots/{theirs.pk}", f"snapshots/{theirs.pk}/records"):
        assert_error(api.get(f"{base(their_owner)}/{path}"), 404, "NOT_FOUND")


def test_another_accounts_snapshot_is_404_through_an_owner_of_ours(api, owner, their_owner):
    theirs = snapshot_of(their_owner, {"orders": [{"id": 1}]})

    for path in (f"snapshots/{theirs.pk}", f"snapshots/{theirs.pk}/records"):
        assert_error(api.get(f"{base(owner)}/{path}"), 404, "NOT_FOUND")


def test_snapshots_are_read_only(api, owner):
    snapshot = snapshot_of(owner, {"orders": [{"id": 1}]})

    deleted = api.delete(f"{base(owner)}/snapshots/{snapshot.pk}")
    changed = api.patch(
        f"{base(owner)}/snapshots/{snapshot.pk}", {"complete": False}, format="json"
    )

    assert_error(deleted, 405, "METHOD_NOT_ALLOWED")
    assert_error(changed, 405, "METHOD_NOT_ALLOWED")
    assert SnapshotRecord.objects.filter(snapshot=snapshot).count() == 1


# --- The record store ------------------------------------------------------------------------


def test_records_list_filters_by_entity_and_key(api, owner):
    stream_of(owner, "orders", {"1001": {"id": 1001, "total": 25}, "1002": {"id": 1002}})
    stream_of(owner, "customers", {"c1": {"id": "c1", "email_address": "ann@example.com"}})
    stream_of(sibling(owner), "orders", {"9999": {"id": 9999}})
    url = f"{base(owner)}/records"

    everything = api.get(url)
    orders = api.get(f"{url}?entity=orders")
    one = api.get(f"{url}?entity=orders&key=1002")
    nothing = api.get(f"{url}?entity=invoices")

    assert everything.status_code == 200, everything.content
    assert {(r["entity"], r["key"]) for r in everything.json()["data"]} == {
        ("orders", "1001"),
        ("orders", "1002"),
        ("customers", "c1"),
    }
    assert [r["key"] for r in orders.json()["data"]] == ["1001", "1002"]
    record = one.json()["data"][0]
    assert set(record) == {"key", "entity", "data", "createdAt", "updatedAt"}
    assert record["data"] == {"id": 1002}
    customer = next(r for r in everything.json()["data"] if r["entity"] == "customers")
    assert customer["data"] == {"id": "c1", "email_address": "ann@example.com"}
    assert nothing.json()["data"] == []
    assert api.get(f"{url}?limit=1").json()["meta"]["pagination"]["total"] == 3


def test_a_connections_records_are_its_own_syncs_not_an_integrations(api, tenant, shop):
    """An integration's stream may name the connection it reads from; it is still the
    integration's."""
    integration = IntegrationFactory(account=tenant.account, source_connection=shop)
    SyncStream.objects.create(
        account=tenant.account, integration=integration, connection=shop, entity="orders"
    )
    stream_of(shop, "customers", {"c1": {"id": "c1"}})

    streams = api.get(f"/api/v1/integrations/connections/{shop.pk}/streams")

    assert [s["entity"] for s in streams.json()["data"]] == ["customers"]


def test_streams_show_cursor_last_sync_and_record_count(api, owner):
    synced = timezone.now() - timedelta(minutes=10)
    stream_of(
        owner,
        "orders",
        {"1": {"id": 1}, "2": {"id": 2}, "3": {"id": 3}},
        cursor={"updated_at": "2025-01-15T10:00:00Z", "id": 3},
        cursor_updated_at=synced,
        last_synced_at=synced,
    )
    stream_of(owner, "customers", {})

    response = api.get(f"{base(owner)}/streams")

    assert response.status_code == 200, response.content
    streams = response.json()["data"]
    assert [s["entity"] for s in streams] == ["customers", "orders"]
    assert set(streams[1]) == {
        "entity",
        "cursor",
        "cursorUpdatedAt",
        "lastSyncedAt",
        "recordCount",
    }
    assert streams[1]["cursor"] == {"updated_at": "2025-01-15T10:00:00Z", "id": 3}
    assert streams[1]["recordCount"] == 3
    assert streams[1]["lastSyncedAt"] is not None
    assert streams[0]["recordCount"] == 0
    assert streams[0]["cursor"] is None


def test_stream_counts_do_not_cost_a_query_per_stream(api, owner):
    stream_of(owner, "orders", {"1": {"id": 1}})
    url = f"{base(owner)}/streams"
    api.get(url)  # the first request of a key also records its use

    with CaptureQueriesContext(db_connection) as one_stream:
        api.get(url)
    for entity in ("customers", "invoices", "refunds"):
        stream_of(owner, entity, {"1": {"id": 1}, "2": {"id": 2}})
    with CaptureQueriesContext(db_connection) as four_streams:
        response = api.get(url)

    assert [s["recordCount"] for s in response.json()["data"]] == [2, 2, 1, 2]
    assert len(four_streams) == len(one_stream)


def test_records_and_streams_of_another_account_are_404(api, their_owner):
    stream_of(their_owner, "orders", {"1": {"id": 1}})

    assert_error(api.get(f"{base(their_owner)}/records"), 404, "NOT_FOUND")
    assert_error(api.get(f"{base(their_owner)}/streams"), 404, "NOT_FOUND")


# --- The admin -------------------------------------------------------------------------------


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))
    return client


def test_admin_shows_snapshots_streams_and_pulled_files_read_only(operator, pipeline, shop):
    snapshot = snapshot_of(pipeline, {"orders": [{"id": 1}]})
    stream = stream_of(shop, "customers", {"c1": {"id": "c1"}})
    pulled = PulledFile.objects.create(
        connection=shop,
        integration=pipeline,
        remote_path="/outbox/inventory-2025-01-15.csv",
        size=1024,
        mtime=1736935200,
        sha256="ab" * 32,
        pulled_at=timezone.now(),
    )

    for model, obj, text in (
        (Snapshot, snapshot, str(snapshot.pk)),
        (SyncStream, stream, "customers"),
        (PulledFile, pulled, "inventory-2025-01-15.csv"),
    ):
        info = (model._meta.app_label, model._meta.model_name)
        changelist = operator.get(reverse("admin:{}_{}_changelist".format(*info)))
        detail = operator.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        assert changelist.status_code == 200, info
        assert text in changelist.content.decode(), info
        assert detail.status_code == 200, info
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(detail.wsgi_request), info
        assert not model_admin.has_change_permission(detail.wsgi_request, obj), info
        assert not model_admin.has_delete_permission(detail.wsgi_request, obj), info


def test_admin_cannot_delete_a_snapshot_or_its_records(operator, pipeline):
    snapshot = snapshot_of(pipeline, {"orders": [{"id": 1}, {"id": 2}]})

    response = operator.post(
        reverse("admin:syncengine_snapshot_delete", args=[snapshot.pk]), {"post": "yes"}
    )
    bulk = operator.post(
        reverse("admin:syncengine_snapshot_changelist"),
        {"action": "delete_selected", "_selected_action": [str(snapshot.pk)], "post": "yes"},
    )

    assert response.status_code == 403
    assert bulk.status_code in (200, 302)
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()
    assert SnapshotRecord.objects.filter(snapshot=snapshot).count() == 2


# --- Snapshots still being written -----------------------------------------------------------


def test_a_snapshot_still_being_written_is_neither_listed_nor_served(api, owner):
    """A retry of its job may delete it and start over: only a complete snapshot is a copy."""
    done = snapshot_of(owner, {"orders": [{"id": 1}]})
    writing = snapshot_of(owner, {"orders": [{"id": 1}, {"id": 2}]}, complete=False)
    SyncJob.objects.filter(pk=writing.job_id).update(status=JobStatus.RUNNING)

    listed = api.get(f"{base(owner)}/snapshots")
    detail = api.get(f"{base(owner)}/snapshots/{writing.pk}")
    records = api.get(f"{base(owner)}/snapshots/{writing.pk}/records")
    job = api.get(f"/api/v1/jobs/{writing.job_id}")
    jobs = api.get("/api/v1/jobs?mode=SNAPSHOT&sort=created_at:asc")

    assert [s["id"] for s in listed.json()["data"]] == [str(done.pk)]
    assert listed.json()["meta"]["pagination"]["total"] == 1
    assert_error(detail, 404, "NOT_FOUND")
    assert_error(records, 404, "NOT_FOUND")
    # Its job does not point at it until it is complete.
    assert job.json()["data"]["snapshotId"] is None
    assert [j["snapshotId"] for j in jobs.json()["data"]] == [str(done.pk), None]

    Snapshot.objects.filter(pk=writing.pk).update(complete=True, completed_at=timezone.now())

    assert api.get(f"{base(owner)}/snapshots/{writing.pk}").status_code == 200
    assert api.get(f"{base(owner)}/snapshots/{writing.pk}/records").status_code == 200
    assert api.get(f"/api/v1/jobs/{writing.job_id}").json()["data"]["snapshotId"] == str(writing.pk)
