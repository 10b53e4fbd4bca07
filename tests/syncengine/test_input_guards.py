"""Input the sync engine must refuse readably rather than fail a job on, or quietly misread:
keys and values PostgreSQL text cannot hold, date ranges, and a date range for a connector that
cannot read by date. Each holds on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from accounts.services import Actor
from config.api.errors import InvalidInput
from connectors import registry
from connectors.postgres import STORE_KEY_MAX_LENGTH
from connectors.services import connection_create
from syncengine.choices import JobStatus
from syncengine.models import Record, Snapshot, SyncJob, SyncStream
from syncengine.sync import transform
from syncengine.sync.launch import connection_sync_start, parse_date_range
from tests.syncengine.memory import Dataset, connection_for, run

ACTOR = Actor.system("tests")


def memory_connection(tenant, records: dict[str, list[dict]], **values):
    return connection_for(tenant, Dataset(records=records, **values), "guards")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- keys holding NUL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "primary_key"),
    [
        ({"id": "a\x00b"}, ["id"]),
        ({"id": "\x00"}, ["id"]),
        ({"region": "eu", "id": "7\x00"}, ["region", "id"]),
    ],
)
def test_a_key_holding_nul_is_rejected_with_a_reason(record, primary_key):
    rejected = transform.record_key(record, primary_key)

    assert isinstance(rejected, transform.Rejected)
    assert "NUL character" in rejected.reason
    assert rejected.record == record


def test_store_key_limits_agree():
    """The bulk path's key check uses the same limit as the Python path and the column."""
    column = Record._meta.get_field("key").max_length
    assert STORE_KEY_MAX_LENGTH == transform.KEY_MAX_LENGTH == column


@pytest.mark.django_db
def test_a_record_keyed_with_nul_is_counted_and_sampled_and_the_job_completes(
    tenant, memory_connector
):
    # One bad record in twenty stays within the default error budget.
    rows = [{"id": f"c{n}", "updated": f"2025-01-01T00:00:{n:02d}"} for n in range(1, 21)]
    rows[1]["id"] = "c\x002"
    connection = memory_connection(tenant, {"customers": rows})

    job = run(connection_sync_start(connection=connection, actor=ACTOR))

    assert job.status == JobStatus.COMPLETED, job.error
    stats = job.stats["customers"]
    assert (stats["created"], stats["errors"]) == (19, 1)
    [sample] = stats["errorSamples"]
    assert sample["reason"] == 'The primary key "id" contains a NUL character.'
    assert "c\\u00002" in sample["record"]
    stream = SyncStream.objects.get(connection=connection, entity="customers")
    keys = set(Record.objects.filter(stream=stream).values_list("key", flat=True))
    assert keys == {f"c{n}" for n in range(1, 21)} - {"c2"}


# --- snapshot values holding NUL ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("memory_connector")
def test_a_snapshot_keeps_a_value_holding_nul_and_serves_it_as_json(api, tenant):
    rows = [
        {"id": 1, "note": "nul \x00 inside", "updated": "2025-01-01T00:00:01"},
        {"id": 2, "note": {"nested\x00key": ["\x00"]}, "updated": "2025-01-01T00:00:02"},
        {"id": 3, "note": "plain", "updated": "2025-01-01T00:00:03"},
    ]
    connection = memory_connection(tenant, {"customers": rows})

    job = run(connection_sync_start(connection=connection, actor=ACTOR, mode="SNAPSHOT"))

    assert job.status == JobStatus.COMPLETED, job.error
    snapshot = Snapshot.objects.get(job=job)
    assert snapshot.complete
    stored = [record.data for record in snapshot.records.order_by("position")]
    assert stored == rows
    response = api.get(
        f"/api/v1/integrations/connections/{connection.pk}/snapshots/{snapshot.pk}/records"
    )
    assert response.status_code == 200, response.content
    assert [record["data"] for record in response.json()["data"]] == rows


# --- date ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"from": "2025-01-01T10:00:00Z", "to": "2025-01-01"},
        {"from": "2025-01-01T23:59:59.999999+00:00", "to": "2025-01-01"},
        {"from": "2025-01-01", "to": "2025-01-01"},
        {"from": "2025-01-01", "to": "2025-01-01T00:00:00Z"},
        {"from": "2025-01-01T10:00:00Z", "to": "2025-01-01T10:00:00Z"},
        {"from": "2025-01-01", "to": "9999-12-31"},
    ],
)
def test_a_bare_date_to_covers_its_whole_day(value):
    assert parse_date_range(value) == value


@pytest.mark.parametrize(
    "value",
    [
        {"from": "2025-01-02T00:00:00Z", "to": "2025-01-01"},
        {"from": "2025-01-02", "to": "2025-01-01"},
        {"from": "2025-01-02", "to": "2025-01-01T23:59:59Z"},
        {"from": "2025-01-01T10:00:01Z", "to": "2025-01-01T10:00:00Z"},
    ],
)
def test_a_date_range_ending_before_it_starts_is_refused(value):
    with pytest.raises(InvalidInput) as error:
        parse_date_range(value)

    assert error.value.details == {"dateRange.to": ["Must not be before dateRange.from."]}


# --- a date range for a connector that cannot read by date ------------------------------------


@pytest.fixture
def api_source(tenant):
    """An http_json connection: its connector reads whole entities, never by date."""
    return connection_create(
        account=tenant.account,
        actor=ACTOR,
        connector_id="http_json",
        name="Orders API",
        config={"baseUrl": "https://api.example.com", "entities": {"orders": {"path": "/orders"}}},
    )


@pytest.mark.django_db
def test_a_date_range_for_a_connector_that_cannot_read_by_date_is_400(api, api_source):
    connector = registry.get_connector("http_json")
    assert connector is not None
    assert connector.filters_by_date is False
    url = f"/api/v1/integrations/connections/{api_source.pk}/sync"

    refused = api.post(
        url, {"dateRange": {"from": "2025-01-01", "to": "2025-01-15"}}, format="json"
    )

    error = assert_error(refused, 400, "VALIDATION_ERROR")
    assert error["message"] == "HTTP JSON API cannot read by date range."
    assert "cannot read by date range" in error["details"]["dateRange"][0]
    assert not SyncJob.objects.exists()
    # Without the range, the same request queues a job.
    assert api.post(url, {}, format="json").status_code == 202


@pytest.mark.django_db
def test_a_date_range_error_comes_with_the_requests_other_errors(api_source):
    with pytest.raises(InvalidInput) as error:
        connection_sync_start(
            connection=api_source,
            actor=ACTOR,
            strategy="replace",
            date_range={"from": "2025-01-01"},
        )

    assert error.value.message == "The sync request is invalid."
    assert set(error.value.details or {}) == {"strategy", "dateRange"}
    assert not SyncJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("memory_connector")
def test_a_connector_that_reads_by_date_takes_the_range(tenant):
    connection = memory_connection(tenant, {"customers": []})

    job = connection_sync_start(
        connection=connection, actor=ACTOR, date_range={"from": "2025-01-01T10:00:00Z"}
    )

    assert job.date_range == {"from": "2025-01-01T10:00:00Z"}
