"""The scheduler tick: due integrations and autoSync connections get one scheduled job each,
their schedules move on, and two ticks at once never start a run twice. Time is frozen."""

import base64
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
import time_machine
from django.conf import settings
from django.db import connection as db_connection

from accounts.services import Actor
from connectors import registry
from connectors.choices import ConnectionStatus, ConnectorCategory, SyncMode
from connectors.models import Connection
from connectors.registry import Connector
from connectors.scheduling import next_sync_at, sync_interval
from connectors.services import connection_create
from integrations.choices import IntegrationState
from integrations.models import Integration
from syncengine.models import SyncJob
from syncengine.sync.scheduler import schedules_tick
from tests.factories import AccountFactory, ConnectionFactory, IntegrationFactory

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
CONNECTIONS_URL = "/api/v1/integrations/connections"
INTEGRATIONS_URL = "/api/v1/integrations"


class OrdersApi(Connector):
    """A source that reads incrementally, like most APIs the scheduler syncs."""

    id = "test-sched-orders"
    name = "Test Orders API"
    category = ConnectorCategory.API
    entities = ["orders", "customers"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL]
    is_source = True


class LedgerExport(Connector):
    """A source that can only be read in full."""

    id = "test-sched-ledger"
    name = "Test Ledger Export"
    category = ConnectorCategory.ACCOUNTING
    entities = ["entries"]
    sync_modes = [SyncMode.FULL]
    is_source = True


@pytest.fixture(autouse=True)
def _source_connectors(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, OrdersApi.id, OrdersApi)
    monkeypatch.setitem(registry._REGISTRY, LedgerExport.id, LedgerExport)


@pytest.fixture
def sync_queue():
    """The job ids waiting in the real broker's ``sync`` queue (a Redis list)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("sync")

    def job_ids() -> list[str]:
        messages = [json.loads(raw) for raw in client.lrange("sync", 0, -1)]
        return [json.loads(base64.b64decode(message["body"]))[0][0] for message in messages]

    yield job_ids
    client.delete("sync")
    client.close()


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """One beat tick; the jobs' tasks are sent when its transactions commit, as in production."""

    def _tick(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return schedules_tick(**kwargs)

    return _tick


def scheduled(account=None, *, connector=OrdersApi, **fields) -> Integration:
    """An active integration syncing from a connection of ``connector`` on a schedule."""
    account = account or AccountFactory()
    source = ConnectionFactory(account=account, connector_id=connector.id)
    defaults = {"frequency_value": 1, "frequency_unit": "hours", "next_run_at": NOW}
    return IntegrationFactory(
        account=account,
        type=connector.id,
        data_type="records",
        source_connection=source,
        dealership=None,
        **{**defaults, **fields},
    )


def jobs_of(integration: Integration) -> list[SyncJob]:
    return list(SyncJob.objects.filter(integration=integration))


# --- integrations ------------------------------------------------------------------------------


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_due_integration_gets_one_scheduled_job_and_its_next_run_moves_on(tick, sync_queue):
    integration = scheduled(frequency_value=2, frequency_unit="hours")

    result = tick()

    assert (result.integrations, result.connections) == (1, 0)
    [job] = jobs_of(integration)
    assert job.trigger == "schedule"
    assert job.status == "QUEUED"
    assert job.mode == "INCREMENTAL"
    assert job.strategy == "merge"
    assert job.date_range is None
    assert job.dispatched_at == NOW
    assert sync_queue() == [str(job.pk)]
    integration.refresh_from_db()
    assert integration.next_run_at == NOW + timedelta(hours=2)
    assert integration.latest_job_id == job.pk
    assert tick().integrations == 0  # not due again until two hours from now


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_full_only_source_runs_full_and_a_rolling_window_bounds_the_run(tick, sync_queue):
    integration = scheduled(connector=LedgerExport, rolling_window_days=7)

    tick()

    [job] = jobs_of(integration)
    assert job.mode == "FULL"
    assert job.date_range == {"from": "2026-02-25"}


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_an_integration_not_yet_due_is_left_alone(tick, sync_queue):
    later = scheduled(next_run_at=NOW + timedelta(seconds=1))
    unscheduled = scheduled(frequency_value=None, frequency_unit="", next_run_at=None)

    assert tick().integrations == 0

    assert jobs_of(later) == []
    assert jobs_of(unscheduled) == []
    later.refresh_from_db()
    assert later.next_run_at == NOW + timedelta(seconds=1)
    assert sync_queue() == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_inactive_and_deleted_integrations_are_never_dispatched(tick, sync_queue):
    due_since = NOW - timedelta(minutes=30)
    paused = scheduled(state=IntegrationState.INACTIVE, next_run_at=due_since)
    deleted = scheduled(deleted_at=NOW - timedelta(days=1), next_run_at=due_since)

    assert tick().integrations == 0

    assert jobs_of(paused) == []
    assert jobs_of(deleted) == []
    # Their schedule is left where it was: nothing ran, so nothing moves on.
    assert Integration.all_objects.get(pk=paused.pk).next_run_at == due_since
    assert Integration.all_objects.get(pk=deleted.pk).next_run_at == due_since
    assert sync_queue() == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_resumed_integration_catches_up_with_one_run(tick, api, tenant, sync_queue):
    paused = scheduled(
        tenant.account, state=IntegrationState.INACTIVE, next_run_at=NOW - timedelta(hours=5)
    )
    tick()

    response = api.patch(f"{INTEGRATIONS_URL}/{paused.pk}", {"state": "active"}, format="json")
    assert response.status_code == 200, response.content
    result = tick()

    assert result.integrations == 1
    assert len(jobs_of(paused)) == 1
    paused.refresh_from_db()
    assert paused.next_run_at == NOW + timedelta(hours=1)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_feed_integration_without_a_source_is_never_claimed(tick, sync_queue):
    feed = IntegrationFactory(
        type="vauto", frequency_value=1, frequency_unit="hours", next_run_at=NOW
    )

    assert tick().integrations == 0

    assert jobs_of(feed) == []
    feed.refresh_from_db()
    assert feed.next_run_at == NOW


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["QUEUED", "RUNNING"])
@time_machine.travel(NOW, tick=False)
def test_an_integration_still_syncing_gets_no_second_job(tick, sync_queue, status):
    integration = scheduled()
    earlier = SyncJob.objects.create(
        account=integration.account, integration=integration, trigger="manual", status=status
    )
    Integration.objects.filter(pk=integration.pk).update(latest_job_id=earlier.pk)

    result = tick()

    assert result.integrations == 0
    assert jobs_of(integration) == [earlier]
    integration.refresh_from_db()
    assert integration.latest_job_id == earlier.pk
    assert integration.next_run_at == NOW + timedelta(hours=1)  # the due run folds into it
    assert sync_queue() == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_finished_job_does_not_hold_back_the_next_run(tick, sync_queue):
    integration = scheduled()
    SyncJob.objects.create(
        account=integration.account, integration=integration, trigger="schedule", status="FAILED"
    )

    assert tick().integrations == 1

    assert len(jobs_of(integration)) == 2


@pytest.mark.django_db
def test_a_one_off_schedule_runs_once(tick, sync_queue):
    integration = scheduled(one_off=True)

    with time_machine.travel(NOW, tick=False):
        first = tick()
    with time_machine.travel(NOW + timedelta(days=40), tick=False):
        later = tick()

    assert (first.integrations, later.integrations) == (1, 0)
    assert len(jobs_of(integration)) == 1
    integration.refresh_from_db()
    assert integration.next_run_at is None


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_missed_intervals_are_skipped_not_replayed(tick, sync_queue):
    # The beat was down for five hours: one run now, then back on the hourly grid.
    integration = scheduled(next_run_at=NOW - timedelta(hours=5, minutes=10))

    assert tick().integrations == 1
    assert tick().integrations == 0

    assert len(jobs_of(integration)) == 1
    integration.refresh_from_db()
    assert integration.next_run_at == NOW + timedelta(minutes=50)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Due on January 31st: February has no 31st, so the leap day.
        (datetime(2024, 1, 31, 9, 0, tzinfo=UTC), datetime(2024, 2, 29, 9, 0, tzinfo=UTC)),
        # Missed until mid-March: counted from the 31st, not drifted to the 29th.
        (datetime(2024, 3, 15, 12, 0, tzinfo=UTC), datetime(2024, 3, 31, 9, 0, tzinfo=UTC)),
    ],
)
def test_a_monthly_schedule_at_the_end_of_the_month(tick, sync_queue, now, expected):
    integration = scheduled(
        frequency_unit="months", next_run_at=datetime(2024, 1, 31, 9, 0, tzinfo=UTC)
    )

    with time_machine.travel(now, tick=False):
        assert tick().integrations == 1

    integration.refresh_from_db()
    assert integration.next_run_at == expected


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_run_now_at_creation_dispatches_the_first_run_at_once(
    tenant, api, django_capture_on_commit_callbacks, tick, sync_queue
):
    source = ConnectionFactory(account=tenant.account, connector_id=OrdersApi.id)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            INTEGRATIONS_URL,
            {
                "sourceAppId": str(source.pk),
                "dataType": "records",
                "schedule": {"frequencyValue": 1, "frequencyUnit": "days", "runNow": True},
            },
            format="json",
        )

    assert response.status_code == 201, response.content
    data = response.json()["data"]
    [job] = SyncJob.objects.filter(integration_id=data["id"])
    assert job.trigger == "schedule"
    assert job.mode == "INCREMENTAL"
    assert job.dispatched_at == NOW
    assert sync_queue() == [str(job.pk)]
    assert data["latestJobId"] == str(job.pk)
    assert data["nextRunAt"] == "2026-03-05T15:00:00Z"
    assert tick().integrations == 0  # the tick does not run it a second time


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_creation_without_run_now_waits_for_its_first_interval(
    tenant, api, django_capture_on_commit_callbacks, sync_queue
):
    source = ConnectionFactory(account=tenant.account, connector_id=OrdersApi.id)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            INTEGRATIONS_URL,
            {
                "sourceAppId": str(source.pk),
                "dataType": "records",
                "schedule": {"frequencyValue": 1, "frequencyUnit": "days"},
            },
            format="json",
        )

    assert response.status_code == 201, response.content
    assert not SyncJob.objects.filter(integration_id=response.json()["data"]["id"]).exists()
    assert sync_queue() == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_run_now_of_a_feed_integration_waits_for_its_file(
    tenant, api, django_capture_on_commit_callbacks, sync_queue
):
    dealership = IntegrationFactory(account=tenant.account).dealership

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            INTEGRATIONS_URL,
            {
                "dealershipId": str(dealership.pk),
                "type": "homenet",
                "schedule": {"frequencyValue": 1, "frequencyUnit": "days", "runNow": True},
            },
            format="json",
        )

    assert response.status_code == 201, response.content
    assert not SyncJob.objects.filter(integration_id=response.json()["data"]["id"]).exists()
    assert sync_queue() == []


# --- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("0m", None),
        ("15s", None),
        ("1 h", None),
        ("", None),
        (None, None),
        (15, None),
        ("99999999999w", None),
    ],
)
def test_sync_interval_parsing(value, expected):
    assert sync_interval(value) == expected


def test_next_sync_needs_auto_sync_and_an_interval():
    assert next_sync_at({"autoSync": True, "syncInterval": "1h"}, now=NOW) == NOW + timedelta(
        hours=1
    )
    assert next_sync_at({"autoSync": False, "syncInterval": "1h"}, now=NOW) is None
    assert next_sync_at({"syncInterval": "1h"}, now=NOW) is None
    assert next_sync_at({"autoSync": True}, now=NOW) is None
    assert next_sync_at({}, now=NOW) is None


def create_connection(api, *, connector=OrdersApi, **config) -> Connection:
    response = api.post(
        CONNECTIONS_URL,
        {"connectorId": connector.id, "name": "Orders", "config": config},
        format="json",
    )
    assert response.status_code == 201, response.content
    return Connection.objects.get(pk=response.json()["data"]["connectionId"])


def connection_jobs(connection: Connection) -> list[SyncJob]:
    return list(SyncJob.objects.filter(connection=connection))


@pytest.mark.django_db
def test_an_auto_sync_connection_syncs_every_interval(api, tick, sync_queue):
    with time_machine.travel(NOW, tick=False):
        connection = create_connection(api, autoSync=True, syncInterval="15m")
        assert connection.next_sync_at == NOW + timedelta(minutes=15)
        assert tick().connections == 0

    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        result = tick()

    assert (result.integrations, result.connections) == (0, 1)
    [job] = connection_jobs(connection)
    assert job.trigger == "schedule"
    assert job.status == "QUEUED"
    assert job.mode == "INCREMENTAL"
    assert job.entities == []
    assert job.strategy == "merge"
    assert job.integration_id is None
    assert job.dispatched_at == NOW + timedelta(minutes=15)
    assert sync_queue() == [str(job.pk)]
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(minutes=30)


@pytest.mark.django_db
def test_a_connection_sync_is_full_when_the_connector_cannot_read_incrementally(
    api, tick, sync_queue
):
    with time_machine.travel(NOW, tick=False):
        connection = create_connection(
            api, connector=LedgerExport, autoSync=True, syncInterval="1d"
        )
    with time_machine.travel(NOW + timedelta(days=3, hours=2), tick=False):
        tick()

    [job] = connection_jobs(connection)
    assert job.mode == "FULL"
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(days=4)  # missed days skipped


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_connection_without_auto_sync_has_no_schedule(api, tick, sync_queue):
    off = create_connection(api, autoSync=False, syncInterval="15m")
    no_interval = create_connection(api, autoSync=True)

    assert off.next_sync_at is None
    assert no_interval.next_sync_at is None
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        assert tick().connections == 0
    assert connection_jobs(off) == []
    assert connection_jobs(no_interval) == []


@pytest.mark.django_db
def test_turning_auto_sync_on_and_off_and_changing_the_interval(api, tick, sync_queue):
    with time_machine.travel(NOW, tick=False):
        connection = create_connection(api, autoSync=False, syncInterval="1h")
    url = f"{CONNECTIONS_URL}/{connection.pk}"

    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        api.patch(url, {"config": {"autoSync": True, "syncInterval": "1h"}}, format="json")
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(minutes=70)

    with time_machine.travel(NOW + timedelta(minutes=20), tick=False):
        api.patch(url, {"name": "Orders (renamed)"}, format="json")
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(minutes=70)  # unrelated edit

    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        api.patch(url, {"config": {"autoSync": True, "syncInterval": "1d"}}, format="json")
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(days=1, minutes=30)

    with time_machine.travel(NOW + timedelta(minutes=40), tick=False):
        api.patch(url, {"config": {"autoSync": False, "syncInterval": "1d"}}, format="json")
    connection.refresh_from_db()
    assert connection.next_sync_at is None
    with time_machine.travel(NOW + timedelta(days=3), tick=False):
        assert tick().connections == 0


@pytest.mark.django_db
def test_an_inactive_connection_stops_syncing_until_it_is_active_again(api, tick, sync_queue):
    with time_machine.travel(NOW, tick=False):
        connection = create_connection(api, autoSync=True, syncInterval="1h")
        response = api.patch(
            f"{CONNECTIONS_URL}/{connection.pk}", {"status": "INACTIVE"}, format="json"
        )
        assert response.status_code == 200, response.content
    connection.refresh_from_db()
    assert connection.next_sync_at is None

    with time_machine.travel(NOW + timedelta(hours=5), tick=False):
        assert tick().connections == 0
        api.patch(f"{CONNECTIONS_URL}/{connection.pk}", {"status": "ACTIVE"}, format="json")
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(hours=6)
    assert connection_jobs(connection) == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_connection_whose_status_changed_behind_the_schedule_is_not_synced(tick, sync_queue):
    # The connection test sets ERROR without touching the schedule: the tick checks the status.
    connection = connection_create(
        account=AccountFactory(),
        actor=Actor.system(),
        connector_id=OrdersApi.id,
        name="Orders",
        config={"autoSync": True, "syncInterval": "15m"},
    )
    Connection.objects.filter(pk=connection.pk).update(
        status=ConnectionStatus.ERROR, next_sync_at=NOW
    )

    assert tick().connections == 0
    assert connection_jobs(connection) == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_connection_still_syncing_gets_no_second_job(api, tick, sync_queue):
    connection = create_connection(api, autoSync=True, syncInterval="15m")
    running = SyncJob.objects.create(
        account=connection.account, connection=connection, trigger="manual", status="RUNNING"
    )
    Connection.objects.filter(pk=connection.pk).update(next_sync_at=NOW)

    assert tick().connections == 0

    assert connection_jobs(connection) == [running]
    connection.refresh_from_db()
    assert connection.next_sync_at == NOW + timedelta(minutes=15)


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_a_feed_connection_never_gets_a_schedule(api, tick, sync_queue):
    connection = create_connection(api, connector=registry.get_connector("vauto"), autoSync=True)
    response = api.patch(
        f"{CONNECTIONS_URL}/{connection.pk}",
        {"config": {"autoSync": True, "syncInterval": "15m"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    connection.refresh_from_db()
    assert connection.next_sync_at is None


# --- two ticks at once -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_ticks_start_each_due_run_exactly_once(settings, sync_queue):
    # Small batches, so the two ticks interleave many times over the due rows.
    settings.SCHEDULER_BATCH_SIZE = 50
    account = AccountFactory()
    source = ConnectionFactory(account=account, connector_id=OrdersApi.id)
    due = 2000
    Integration.objects.bulk_create(
        Integration(
            account=account,
            name=f"Orders {n}",
            type=OrdersApi.id,
            data_type="records",
            source_connection=source,
            frequency_value=1,
            frequency_unit="hours",
            next_run_at=NOW - timedelta(minutes=n % 60),
        )
        for n in range(due)
    )
    start = threading.Barrier(2)
    started: list[int] = []
    errors: list[BaseException] = []

    def beat() -> None:
        try:
            start.wait()
            started.append(schedules_tick(now=NOW).integrations)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            db_connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(started) == due
    assert SyncJob.objects.count() == due
    assert SyncJob.objects.values("integration_id").distinct().count() == due
    assert not SyncJob.objects.filter(dispatched_at__isnull=True).exists()
    assert sorted(sync_queue()) == sorted(
        str(pk) for pk in SyncJob.objects.values_list("pk", flat=True)
    )
    assert not Integration.objects.filter(next_run_at__lte=NOW).exists()
