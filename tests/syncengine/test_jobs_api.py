"""The sync job API: connection syncs, integration syncs, the account's
jobs and cancelling them, the jobs admin — and tenant isolation of each endpoint."""

from datetime import timedelta

import factory
import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry
from connectors import registry
from connectors.choices import SyncMode
from integrations.choices import IntegrationState
from syncengine.choices import JobStatus, JobTrigger
from syncengine.models import SyncJob
from syncengine.sync.launch import INACTIVE_MESSAGE
from tests.conftest import ShopApiConnector
from tests.factories import AccountFactory, ConnectionFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id",
    "syncId",
    "jobId",
    "integrationId",
    "connectionId",
    "kind",
    "exportId",
    "importId",
    "trigger",
    "mode",
    "strategy",
    "entities",
    "dateRange",
    "status",
    "attempts",
    "maxAttempts",
    "error",
    "dependencyStatus",
    "createdAt",
    "startedAt",
    "completedAt",
    "nextAttemptAt",
    "cancelRequestedAt",
    "stats",
    "progress",
    "snapshotId",
}


class ShopSourceConnector(ShopApiConnector):
    """The test shop API as a source: orders and customers, FULL or INCREMENTAL, by date too."""

    id = "test_shop_source"
    is_source = True
    filters_by_date = True


class SyncJobFactory(factory.django.DjangoModelFactory):
    """A job row as the runner would leave it; ``created_at`` may be given (it is auto_now_add,
    so it is written after the insert)."""

    class Meta:
        model = SyncJob

    account = factory.SubFactory(AccountFactory)
    trigger = JobTrigger.MANUAL
    mode = SyncMode.FULL
    strategy = "merge"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        created_at = kwargs.pop("created_at", None)
        job = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            SyncJob.objects.filter(pk=job.pk).update(created_at=created_at)
            job.refresh_from_db()
        return job


def job_for(owner, **values) -> SyncJob:
    """A job of an integration or a connection, in its account."""
    kind = "integration" if owner._meta.model_name == "integration" else "connection"
    return SyncJobFactory(account=owner.account, **{kind: owner}, **values)


@pytest.fixture
def shop_source(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, ShopSourceConnector.id, ShopSourceConnector)
    return ShopSourceConnector


@pytest.fixture
def shop(tenant, shop_source):
    """A connection of the tenant to the test shop API."""
    return ConnectionFactory(account=tenant.account, connector_id=shop_source.id, name="Shop")


@pytest.fixture
def their_shop(other_tenant, shop_source):
    return ConnectionFactory(account=other_tenant.account, connector_id=shop_source.id)


@pytest.fixture
def pipeline(tenant, shop_source):
    """An active integration of the tenant reading from a shop connection."""
    source = ConnectionFactory(account=tenant.account, connector_id=shop_source.id)
    return IntegrationFactory(
        account=tenant.account, type=shop_source.id, source_connection=source, name="Orders"
    )


@pytest.fixture
def their_pipeline(other_tenant, shop_source):
    source = ConnectionFactory(account=other_tenant.account, connector_id=shop_source.id)
    return IntegrationFactory(
        account=other_tenant.account, type=shop_source.id, source_connection=source
    )


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# --- POST /integrations/connections/:connectionId/sync ---------------------------------------


def test_connection_sync_queues_a_job_and_answers_202_with_it(api, shop):
    response = api.post(
        f"/api/v1/integrations/connections/{shop.pk}/sync",
        {
            "entities": ["customers", "orders"],
            "mode": "INCREMENTAL",
            "dateRange": {"from": "2025-01-01", "to": "2025-01-15"},
        },
        format="json",
    )

    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert set(data) == JOB_FIELDS
    assert data["syncId"] == data["jobId"] == data["id"]
    assert (data["kind"], data["exportId"], data["importId"]) == ("sync", None, None)
    assert data["connectionId"] == str(shop.pk)
    assert data["integrationId"] is None
    assert data["status"] == "QUEUED"
    assert data["mode"] == "INCREMENTAL"
    assert data["strategy"] == "merge"
    assert data["trigger"] == "manual"
    assert data["entities"] == ["customers", "orders"]
    assert data["dateRange"] == {"from": "2025-01-01", "to": "2025-01-15"}
    assert data["maxAttempts"] == settings.JOB_MAX_ATTEMPTS
    assert data["attempts"] == 0
    assert data["error"] is None
    assert data["dependencyStatus"] is None
    assert data["snapshotId"] is None
    assert data["stats"] == {}
    job = SyncJob.objects.get(pk=data["syncId"])
    assert job.connection == shop
    assert job.status == JobStatus.QUEUED
    assert job.date_range == {"from": "2025-01-01", "to": "2025-01-15"}
    assert AuditEntry.objects.filter(resource_id=str(shop.pk), action="sync").exists()


def test_connection_sync_without_a_body_syncs_everything_in_full_with_merge(api, shop):
    response = api.post(f"/api/v1/integrations/connections/{shop.pk}/sync")

    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert (data["mode"], data["strategy"], data["entities"], data["dateRange"]) == (
        "FULL",
        "merge",
        [],
        None,
    )


def test_connection_sync_takes_a_strategy(api, shop):
    response = api.post(
        f"/api/v1/integrations/connections/{shop.pk}/sync",
        {"strategy": "overwrite", "entities": None},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert response.json()["data"]["strategy"] == "overwrite"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "SOMETIMES"}, "mode"),
        ({"mode": "SNAPSHOT"}, "mode"),  # the shop connector reads FULL or INCREMENTAL only
        ({"entities": ["orders", "invoices"]}, "entities"),
        ({"entities": "orders"}, "entities"),
        ({"strategy": "replace"}, "strategy"),
        ({"dateRange": "2025-01-01..2025-01-15"}, "dateRange"),
        ({"dateRange": {"from": "last tuesday"}}, "dateRange.from"),
        ({"dateRange": {"from": "2025-02-01", "to": "2025-01-15"}}, "dateRange.to"),
        ({"dateRange": {"from": "2025-01-01", "until": "2025-01-15"}}, "dateRange.until"),
        ({"entites": ["orders"]}, "entites"),
        ({"date_range": {"from": "2025-01-01"}}, "date_range"),
    ],
)
def test_connection_sync_rejects_an_invalid_body_and_queues_nothing(api, shop, body, field):
    response = api.post(f"/api/v1/integrations/connections/{shop.pk}/sync", body, format="json")

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert field in error["details"], error
    assert not SyncJob.objects.exists()


def test_unknown_entity_error_names_what_the_connector_offers(api, shop):
    response = api.post(
        f"/api/v1/integrations/connections/{shop.pk}/sync",
        {"entities": ["invoices"]},
        format="json",
    )

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert "invoices" in error["details"]["entities"][0]
    assert "orders, customers" in error["details"]["entities"][0]


def test_a_feed_connection_does_not_sync(api, tenant):
    feed = ConnectionFactory(account=tenant.account, connector_id="vauto")

    response = api.post(f"/api/v1/integrations/connections/{feed.pk}/sync")

    assert_error(response, 400, "BAD_REQUEST")
    assert not SyncJob.objects.exists()


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_connection_sync_while_a_job_is_active_is_409_naming_it(api, shop, status):
    running = job_for(shop, status=status)

    response = api.post(f"/api/v1/integrations/connections/{shop.pk}/sync")

    error = assert_error(response, 409, "CONFLICT")
    assert str(running.pk) in error["message"]
    assert error["details"]["jobId"] == [str(running.pk)]
    assert SyncJob.objects.count() == 1


def test_connection_sync_of_another_account_is_404_and_queues_nothing(api, their_shop):
    response = api.post(
        f"/api/v1/integrations/connections/{their_shop.pk}/sync",
        {"mode": "FULL"},
        format="json",
    )

    assert_error(response, 404, "NOT_FOUND")
    assert not SyncJob.objects.exists()


# --- GET /integrations/connections/:connectionId/sync[/:syncId] ------------------------------


def test_connection_sync_list_is_newest_first_paginated_and_only_the_connections(
    api, shop, tenant, pipeline
):
    now = timezone.now()
    older = job_for(shop, status=JobStatus.COMPLETED, created_at=now - timedelta(hours=2))
    newer = job_for(shop, status=JobStatus.FAILED, created_at=now - timedelta(hours=1))
    job_for(ConnectionFactory(account=tenant.account, connector_id="test_shop_source"))
    job_for(pipeline)

    first_page = api.get(f"/api/v1/integrations/connections/{shop.pk}/sync?limit=1")
    everything = api.get(f"/api/v1/integrations/connections/{shop.pk}/sync")
    failed = api.get(f"/api/v1/integrations/connections/{shop.pk}/sync?status=FAILED")

    assert first_page.status_code == 200, first_page.content
    assert [job["syncId"] for job in first_page.json()["data"]] == [str(newer.pk)]
    assert first_page.json()["meta"]["pagination"] == {
        "total": 2,
        "limit": 1,
        "offset": 0,
        "hasMore": True,
    }
    assert [job["syncId"] for job in everything.json()["data"]] == [str(newer.pk), str(older.pk)]
    assert [job["syncId"] for job in failed.json()["data"]] == [str(newer.pk)]


def test_connection_sync_status_has_the_documented_fields_stats_progress_and_log(api, shop):
    stats = {
        "customers": {"created": 50, "updated": 120, "unchanged": 3, "deleted": 0, "errors": 2},
        "invoices": {"created": 200, "updated": 0, "unchanged": 0, "deleted": 0, "errors": 0},
    }
    progress = {
        "recordsDone": 372,
        "recordsTotal": 372,
        "entitiesDone": 2,
        "entitiesTotal": 2,
        "entity": None,
    }
    started = timezone.now() - timedelta(minutes=5)
    job = job_for(
        shop,
        status=JobStatus.COMPLETED,
        started_at=started,
        completed_at=started + timedelta(minutes=5),
        attempts=1,
        stats=stats,
        progress=progress,
        log=[{"at": started.isoformat(), "level": "info", "message": "Read 372 records."}],
    )

    response = api.get(f"/api/v1/integrations/connections/{shop.pk}/sync/{job.pk}")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == JOB_FIELDS | {"log"}
    assert data["syncId"] == str(job.pk)
    assert data["status"] == "COMPLETED"
    assert data["startedAt"] is not None
    assert data["completedAt"] is not None
    assert data["stats"] == stats
    assert data["progress"] == progress
    assert data["log"][0]["message"] == "Read 372 records."


def test_connection_sync_of_another_account_cannot_be_read(api, shop, their_shop):
    theirs = job_for(their_shop)

    listed = api.get(f"/api/v1/integrations/connections/{their_shop.pk}/sync")
    direct = api.get(f"/api/v1/integrations/connections/{their_shop.pk}/sync/{theirs.pk}")
    through_mine = api.get(f"/api/v1/integrations/connections/{shop.pk}/sync/{theirs.pk}")

    assert_error(listed, 404, "NOT_FOUND")
    assert_error(direct, 404, "NOT_FOUND")
    assert_error(through_mine, 404, "NOT_FOUND")


# --- POST /integrations/:id/sync -------------------------------------------------------------


def test_integration_sync_answers_the_documented_dispatched_body(api, pipeline):
    response = api.post(f"/api/v1/integrations/{pipeline.pk}/sync")

    assert response.status_code == 202, response.content
    job = SyncJob.objects.get(integration=pipeline)
    assert response.json() == {
        "data": {
            "jobId": str(job.pk),
            "status": "dispatched",
            "message": "Sync job has been dispatched",
        }
    }
    assert job.status == JobStatus.QUEUED
    assert job.trigger == JobTrigger.MANUAL
    pipeline.refresh_from_db()
    assert pipeline.latest_job_id == job.pk


def test_integration_sync_of_an_inactive_integration_is_the_documented_error(api, pipeline):
    pipeline.state = IntegrationState.INACTIVE
    pipeline.save(update_fields=["state"])

    response = api.post(f"/api/v1/integrations/{pipeline.pk}/sync")

    error = assert_error(response, 400, "BAD_REQUEST")
    assert error["message"] == (
        "Cannot trigger sync for an inactive integration. Resume the integration first."
    )
    assert error["message"] == INACTIVE_MESSAGE
    assert not SyncJob.objects.exists()


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_integration_sync_while_a_job_is_active_is_409(api, pipeline, status):
    active = job_for(pipeline, status=status)

    response = api.post(f"/api/v1/integrations/{pipeline.pk}/sync")

    error = assert_error(response, 409, "CONFLICT")
    assert error["details"]["jobId"] == [str(active.pk)]
    assert SyncJob.objects.count() == 1


def test_integration_sync_of_another_account_is_404_and_queues_nothing(api, their_pipeline):
    response = api.post(f"/api/v1/integrations/{their_pipeline.pk}/sync")

    assert_error(response, 404, "NOT_FOUND")
    assert not SyncJob.objects.exists()
    their_pipeline.refresh_from_db()
    assert their_pipeline.latest_job_id is None


# --- GET /integrations/:id/jobs --------------------------------------------------------------


def test_integration_jobs_are_newest_first_filtered_and_sortable(api, pipeline, tenant):
    now = timezone.now()
    first = job_for(
        pipeline,
        trigger=JobTrigger.SCHEDULE,
        status=JobStatus.COMPLETED,
        created_at=now - timedelta(hours=3),
    )
    second = job_for(
        pipeline,
        trigger=JobTrigger.MANUAL,
        status=JobStatus.FAILED,
        error="Source said 503",
        created_at=now - timedelta(hours=2),
    )
    third = job_for(
        pipeline,
        trigger=JobTrigger.SCHEDULE,
        status=JobStatus.QUEUED,
        created_at=now - timedelta(hours=1),
    )
    job_for(IntegrationFactory(account=tenant.account))
    url = f"/api/v1/integrations/{pipeline.pk}/jobs"

    def ids(query=""):
        response = api.get(url + query)
        assert response.status_code == 200, response.content
        return [job["jobId"] for job in response.json()["data"]]

    assert ids() == [str(third.pk), str(second.pk), str(first.pk)]
    assert ids("?sort=createdAt:asc") == [str(first.pk), str(second.pk), str(third.pk)]
    assert ids("?trigger=schedule") == [str(third.pk), str(first.pk)]
    assert ids("?status=FAILED") == [str(second.pk)]
    assert ids("?limit=1&offset=1") == [str(second.pk)]
    failed = api.get(url + "?status=FAILED").json()["data"][0]
    assert failed["error"] == "Source said 503"
    assert failed["integrationId"] == str(pipeline.pk)


@pytest.mark.parametrize("query", ["?status=EXPLODED", "?sort=colour:asc"])
def test_integration_jobs_reject_unknown_filters_and_sorts(api, pipeline, query):
    response = api.get(f"/api/v1/integrations/{pipeline.pk}/jobs{query}")

    assert_error(response, 400, "VALIDATION_ERROR")


def test_integration_jobs_of_another_account_are_404(api, their_pipeline):
    job_for(their_pipeline)

    response = api.get(f"/api/v1/integrations/{their_pipeline.pk}/jobs")

    assert_error(response, 404, "NOT_FOUND")


# --- /jobs -----------------------------------------------------------------------------------


def test_jobs_lists_every_job_of_the_account_and_filters_by_owner(
    api, pipeline, shop, their_pipeline, their_shop
):
    integration_job = job_for(pipeline, status=JobStatus.COMPLETED)
    connection_job = job_for(shop, status=JobStatus.RUNNING)
    job_for(their_pipeline)
    job_for(their_shop)

    def ids(query=""):
        response = api.get(f"/api/v1/jobs{query}")
        assert response.status_code == 200, response.content
        return {job["id"] for job in response.json()["data"]}

    assert ids() == {str(integration_job.pk), str(connection_job.pk)}
    assert ids(f"?integrationId={pipeline.pk}") == {str(integration_job.pk)}
    assert ids(f"?connectionId={shop.pk}") == {str(connection_job.pk)}
    assert ids("?status=RUNNING") == {str(connection_job.pk)}
    assert ids("?trigger=manual&status=COMPLETED") == {str(integration_job.pk)}
    assert ids(f"?integrationId={their_pipeline.pk}") == set()


def test_job_detail_has_the_log(api, pipeline):
    job = job_for(
        pipeline,
        status=JobStatus.QUEUED,
        dependency_status="waiting",
        next_attempt_at=timezone.now() + timedelta(minutes=1),
        log=[
            {"at": "2025-01-15T10:00:00+00:00", "level": "info", "message": "Queued."},
            {"at": "2025-01-15T10:00:01+00:00", "level": "warning", "message": "Waiting."},
        ],
    )

    response = api.get(f"/api/v1/jobs/{job.pk}")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == JOB_FIELDS | {"log"}
    assert data["dependencyStatus"] == "waiting"
    assert data["nextAttemptAt"] is not None
    assert [line["message"] for line in data["log"]] == ["Queued.", "Waiting."]
    assert data["log"][1]["level"] == "warning"


def test_job_of_another_account_is_404(api, their_pipeline):
    theirs = job_for(their_pipeline)

    assert_error(api.get(f"/api/v1/jobs/{theirs.pk}"), 404, "NOT_FOUND")


# --- POST /jobs/:id/cancel -------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_at_once(api, shop):
    job = job_for(shop, status=JobStatus.QUEUED)

    response = api.post(f"/api/v1/jobs/{job.pk}/cancel")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "CANCELLED"
    assert data["completedAt"] is not None
    assert data["cancelRequestedAt"] is not None
    assert "before it started" in data["log"][-1]["message"]
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    # The connection is free again.
    assert api.post(f"/api/v1/integrations/connections/{shop.pk}/sync").status_code == 202


def test_cancelling_a_running_job_asks_it_to_stop_and_it_keeps_running_until_then(api, pipeline):
    job = job_for(pipeline, status=JobStatus.RUNNING, started_at=timezone.now())

    first = api.post(f"/api/v1/jobs/{job.pk}/cancel")
    job.refresh_from_db()
    requested_at = job.cancel_requested_at
    second = api.post(f"/api/v1/jobs/{job.pk}/cancel")

    assert first.status_code == 200, first.content
    assert first.json()["data"]["status"] == "RUNNING"
    assert first.json()["data"]["cancelRequestedAt"] is not None
    assert first.json()["data"]["completedAt"] is None
    assert second.status_code == 200, second.content
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.cancel_requested_at == requested_at
    assert sum("Cancel requested" in line["message"] for line in job.log) == 1


def test_cancelling_a_cancelled_job_changes_nothing(api, shop):
    job = job_for(shop, status=JobStatus.QUEUED)
    api.post(f"/api/v1/jobs/{job.pk}/cancel")
    job.refresh_from_db()
    cancelled = (job.status, job.completed_at, len(job.log))

    again = api.post(f"/api/v1/jobs/{job.pk}/cancel")

    assert again.status_code == 200, again.content
    assert again.json()["data"]["status"] == "CANCELLED"
    job.refresh_from_db()
    assert (job.status, job.completed_at, len(job.log)) == cancelled


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_cancelling_a_finished_job_is_409(api, pipeline, status):
    job = job_for(pipeline, status=status, completed_at=timezone.now())

    response = api.post(f"/api/v1/jobs/{job.pk}/cancel")

    error = assert_error(response, 409, "CONFLICT")
    assert error["details"]["status"] == [status]
    job.refresh_from_db()
    assert job.status == status
    assert job.cancel_requested_at is None


def test_cancelling_a_job_of_another_account_is_404_and_it_keeps_going(api, their_shop):
    theirs = job_for(their_shop, status=JobStatus.QUEUED)

    response = api.post(f"/api/v1/jobs/{theirs.pk}/cancel")

    assert_error(response, 404, "NOT_FOUND")
    theirs.refresh_from_db()
    assert theirs.status == JobStatus.QUEUED
    assert theirs.cancel_requested_at is None


# --- The jobs admin --------------------------------------------------------------------------


@pytest.fixture
def operator():
    client = Client()
    client.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))
    return client


def test_admin_cancels_selected_jobs_and_reports_the_finished_ones(operator, shop, pipeline):
    queued = job_for(shop, status=JobStatus.QUEUED)
    running = job_for(pipeline, status=JobStatus.RUNNING)
    done = job_for(pipeline, status=JobStatus.COMPLETED)

    response = operator.post(
        reverse("admin:syncengine_syncjob_changelist"),
        {"action": "cancel", "_selected_action": [str(queued.pk), str(running.pk), str(done.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    shown = " ".join(str(message) for message in get_messages(response.wsgi_request))
    assert "Cancelled 2 job(s)" in shown
    assert "nothing to cancel" in shown
    queued.refresh_from_db()
    running.refresh_from_db()
    done.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED
    assert running.status == JobStatus.RUNNING
    assert running.cancel_requested_at is not None
    assert done.status == JobStatus.COMPLETED
    assert any("Cancel" in line["message"] for line in queued.log)


def test_admin_job_screens_show_stats_and_log_and_filter(operator, pipeline):
    job = job_for(
        pipeline,
        mode=SyncMode.INCREMENTAL,
        stats={"orders": {"created": 7, "updated": 0, "errors": 0}},
        log=[{"at": "2025-01-15T10:00:00+00:00", "level": "info", "message": "Read 7 orders."}],
    )
    changelist = reverse("admin:syncengine_syncjob_changelist")

    detail = operator.get(reverse("admin:syncengine_syncjob_change", args=[job.pk]))
    by_mode = operator.get(changelist + "?mode__exact=INCREMENTAL")
    other_mode = operator.get(changelist + "?mode__exact=FULL")
    searched = operator.get(changelist + f"?q={job.pk}")

    assert detail.status_code == 200
    assert "Read 7 orders." in detail.content.decode()
    assert str(job.pk) in by_mode.content.decode()
    assert str(job.pk) not in other_mode.content.decode()
    assert str(job.pk) in searched.content.decode()


# --- dateRange --------------------------------------------------------------------------------


def test_a_bare_date_to_includes_its_whole_day(api, shop):
    """``to`` as a date reads through the end of that day, so a range starting at 10:00 that
    day is not 'before dateRange.from'."""
    date_range = {"from": "2025-01-01T10:00:00Z", "to": "2025-01-01"}

    response = api.post(
        f"/api/v1/integrations/connections/{shop.pk}/sync",
        {"dateRange": date_range},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert response.json()["data"]["dateRange"] == date_range


def test_a_date_range_for_a_connector_without_date_reads_is_400(api, tenant, shop_source):
    """A connector that cannot read by date (filters_by_date False) would read everything."""
    no_dates = type("ShopWithoutDates", (shop_source,), {"filters_by_date": False})
    connection = ConnectionFactory(account=tenant.account, connector_id=shop_source.id)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._REGISTRY, shop_source.id, no_dates)
        response = api.post(
            f"/api/v1/integrations/connections/{connection.pk}/sync",
            {"dateRange": {"from": "2025-01-01"}},
            format="json",
        )

    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["message"] == "Test Shop API cannot read by date range."
    assert list(error["details"]) == ["dateRange"]
    assert not SyncJob.objects.exists()
