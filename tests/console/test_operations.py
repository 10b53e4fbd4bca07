"""The operations dashboard: 30 days of files, rows and jobs counted per day, per account and per
integration; failing and paused integrations; running jobs and the feed the page polls."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from syncengine.choices import JobKind, JobStatus
from syncengine.models import FeedFile, SyncJob
from tests.console.conftest import at, make_job, page_charts
from tests.factories import IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = "2025-03-15T12:00:00+00:00"
TODAY, YESTERDAY, TWO_DAYS_AGO = 29, 28, 27  # positions in the 30 days, oldest first


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(at(NOW), tick=True):
        yield


def file_row(integration, received_at: str, *, status="completed", source="sftp", **counts):
    return FeedFile.objects.create(
        account_id=integration.account_id,
        integration=integration,
        filename=f"{status}-{received_at}.csv",
        received_at=at(received_at),
        processed_at=at(received_at),
        status=status,
        source=source,
        **counts,
    )


def ended_job(account, *, status, started: str | None, ended: str, **fields) -> SyncJob:
    return make_job(
        account=account,
        status=status,
        started_at=at(started) if started else None,
        completed_at=at(ended),
        **fields,
    )


@pytest.fixture
def two_feeds(tenant, other_tenant):
    ours = IntegrationFactory(account=tenant.account, name="Lakeside vAuto")
    theirs = IntegrationFactory(account=other_tenant.account, name="Rival HomeNet")
    file_row(
        ours,
        "2025-03-13T09:00:00+00:00",
        records_created=10,
        records_updated=2,
        records_removed=1,
        records_sold=1,
    )
    file_row(ours, "2025-03-13T10:00:00+00:00", status="rejected")
    file_row(ours, "2025-03-15T08:00:00+00:00", records_created=3)
    file_row(ours, "2025-03-15T09:00:00+00:00", source="reprocess", records_unchanged=13)
    file_row(ours, "2025-01-20T09:00:00+00:00", records_created=99)  # before the window
    file_row(theirs, "2025-03-15T07:00:00+00:00", status="failed")
    return ours, theirs


def dashboard(client: Client, **query: str):
    response = client.get(reverse("admin:operations"), query)
    assert response.status_code == 200
    return response


def test_the_index_links_to_the_dashboard(operator):
    index = operator.get(reverse("admin:index")).content.decode()

    assert f'href="{reverse("admin:operations")}"' in index
    assert "Operations dashboard" in index


def test_files_and_their_rows_are_counted_per_day_of_receipt(operator, two_feeds):
    charts = page_charts(dashboard(operator).content.decode())

    assert charts["days"][0] == "2025-02-14"
    assert charts["days"][TODAY] == "2025-03-15"
    files = charts["files"]
    assert (files["received"][TWO_DAYS_AGO], files["received"][TODAY]) == (2, 2)
    assert (files["applied"][TWO_DAYS_AGO], files["applied"][TODAY]) == (1, 2)
    assert files["rejected"][TWO_DAYS_AGO] == 1
    assert files["failed"][TODAY] == 1
    assert sum(files["received"]) == 4  # the copy and the January file are not counted
    rows = charts["rows"]
    assert rows["feedCreated"][TWO_DAYS_AGO] == 10
    assert rows["feedCreated"][TODAY] == 3
    assert rows["feedUpdated"][TWO_DAYS_AGO] == 2
    assert rows["feedRemoved"][TWO_DAYS_AGO] == 2  # removed and sold
    assert sum(rows["feedCreated"]) == 13


def test_days_are_the_sites_time_zone_days(operator, tenant, settings):
    settings.TIME_ZONE = "America/Chicago"
    feed = IntegrationFactory(account=tenant.account)
    # 03:00 UTC on the 15th is still the 14th in Chicago.
    file_row(feed, "2025-03-15T03:00:00+00:00")

    charts = page_charts(dashboard(operator).content.decode())

    assert charts["days"][-1] == "2025-03-15"
    assert charts["files"]["received"][-2:] == [1, 0]


def test_connector_sync_rows_are_summed_over_entities(operator, tenant, other_tenant):
    ended_job(
        tenant.account,
        status=JobStatus.COMPLETED,
        started="2025-03-14T10:00:00+00:00",
        ended="2025-03-14T10:05:00+00:00",
        stats={
            "orders": {"created": 5, "updated": 1, "deleted": 2, "read": 8},
            "customers": {
                "created": 3,
                "updated": 0,
                "deleted": 0,
                "errorSamples": [{"reason": "no primary key"}],
            },
        },
    )
    ended_job(
        other_tenant.account,
        status=JobStatus.COMPLETED,
        started="2025-03-14T11:00:00+00:00",
        ended="2025-03-14T11:00:01+00:00",
        stats={"orders": {"created": 100}},
    )
    # An export run's stats count rows written, not rows created: not in this series.
    ended_job(
        tenant.account,
        kind=JobKind.EXPORT,
        status=JobStatus.COMPLETED,
        started="2025-03-14T11:00:00+00:00",
        ended="2025-03-14T11:00:01+00:00",
        stats={"contracts": {"rows": 500, "created": 7}},
    )

    everything = page_charts(dashboard(operator).content.decode())["rows"]
    ours = page_charts(dashboard(operator, account=str(tenant.account.pk)).content.decode())["rows"]

    assert everything["syncCreated"][YESTERDAY] == 108
    assert (ours["syncCreated"][YESTERDAY], ours["syncUpdated"][YESTERDAY]) == (8, 1)
    assert ours["syncRemoved"][YESTERDAY] == 2
    assert sum(ours["syncCreated"]) == 8


def test_jobs_are_counted_by_outcome_with_their_durations(operator, tenant):
    for seconds in (30, 90):
        ended_job(
            tenant.account,
            status=JobStatus.COMPLETED,
            started="2025-03-14T10:00:00+00:00",
            ended=f"2025-03-14T10:{seconds // 60:02d}:{seconds % 60:02d}+00:00",
        )
    ended_job(
        tenant.account,
        status=JobStatus.FAILED,
        started="2025-03-14T12:00:00+00:00",
        ended="2025-03-14T12:00:10+00:00",
        error="Stripe answered 500",
    )
    ended_job(tenant.account, status=JobStatus.CANCELLED, started=None, ended=NOW)
    make_job(account=tenant.account, status=JobStatus.RUNNING)  # not ended: not counted

    response = dashboard(operator)

    jobs = page_charts(response.content.decode())["jobs"]
    assert (jobs["completed"][YESTERDAY], jobs["failed"][YESTERDAY]) == (2, 1)
    assert jobs["averageSeconds"][YESTERDAY] == pytest.approx(130 / 3, abs=0.01)
    assert jobs["longestSeconds"][YESTERDAY] == pytest.approx(90)
    assert jobs["cancelled"][TODAY] == 1
    assert jobs["averageSeconds"][TODAY] is None  # it never started
    assert jobs["averageSeconds"][0] is None
    assert jobs["completed"][0] == 0


def test_the_scope_narrows_every_chart_to_an_account_or_an_integration(operator, tenant, two_feeds):
    ours, theirs = two_feeds
    sibling = IntegrationFactory(account=tenant.account, name="Lakeside HomeNet")
    file_row(sibling, "2025-03-15T10:00:00+00:00", records_created=5)

    by_account = page_charts(dashboard(operator, account=str(tenant.account.pk)).content.decode())
    by_integration = page_charts(dashboard(operator, integration=str(ours.pk)).content.decode())
    by_other = page_charts(dashboard(operator, integration=str(theirs.pk)).content.decode())

    assert by_account["files"]["received"][TODAY] == 2  # ours and the sibling's
    assert by_account["files"]["failed"][TODAY] == 0
    assert by_integration["files"]["received"][TODAY] == 1
    assert by_integration["rows"]["feedCreated"][TODAY] == 3
    assert by_other["files"]["failed"][TODAY] == 1
    assert sum(by_other["files"]["applied"]) == 0


def test_an_integration_of_another_account_is_refused_with_a_reason(operator, tenant, two_feeds):
    _ours, theirs = two_feeds

    response = dashboard(operator, account=str(tenant.account.pk), integration=str(theirs.pk))

    assert "Select a valid choice" in response.content.decode()


def test_the_dashboard_counts_in_the_database_not_row_by_row(operator, tenant):
    feed = IntegrationFactory(account=tenant.account)
    for hour in range(3):
        file_row(feed, f"2025-03-14T0{hour}:00:00+00:00", records_created=1)
    with CaptureQueriesContext(connection) as few:
        dashboard(operator)
    for hour in range(3, 9):
        file_row(feed, f"2025-03-1{hour % 2 + 3}T0{hour}:00:00+00:00", records_created=1)
    with CaptureQueriesContext(connection) as more:
        charts = page_charts(dashboard(operator).content.decode())

    assert sum(charts["rows"]["feedCreated"]) == 9
    assert len(more.captured_queries) == len(few.captured_queries)


def test_failing_and_paused_integrations_are_listed_with_their_last_error(operator, tenant):
    failing = IntegrationFactory(
        account=tenant.account,
        name="Broken feed",
        status="errored",
        consecutive_failures=3,
        last_error="The file has no header row.",
    )
    paused = IntegrationFactory(account=tenant.account, name="Paused feed", state="inactive")
    IntegrationFactory(account=tenant.account, name="Healthy feed", status="completed")
    gone = IntegrationFactory(account=tenant.account, name="Deleted feed", status="errored")
    gone.deleted_at = gone.created_at
    gone.save(update_fields=["deleted_at"])

    html = dashboard(operator).content.decode()
    section = html[html.index('id="failing"') : html.index('id="running"')]

    assert "Broken feed" in section
    assert "The file has no header row." in section
    assert "Paused feed" in section
    assert "Healthy feed" not in section
    assert "Deleted feed" not in section
    assert section.index("Broken feed") < section.index("Paused feed")  # most failures first
    assert reverse("admin:integrations_integration_change", args=[failing.pk]) in section
    assert paused.state == "inactive"


def test_running_jobs_are_shown_with_progress_and_served_to_the_page(operator, tenant):
    feed = IntegrationFactory(account=tenant.account, name="Lakeside vAuto")
    running = make_job(
        account=tenant.account,
        integration=feed,
        status=JobStatus.RUNNING,
        attempts=1,
        progress={"recordsDone": 250, "recordsTotal": 1000, "entity": "orders"},
    )
    make_job(account=tenant.account, integration=feed)  # queued behind it
    jobs_url = reverse("admin:operations-jobs")

    html = dashboard(operator).content.decode()
    served = operator.get(jobs_url).json()
    SyncJob.objects.filter(pk=running.pk).update(status=JobStatus.COMPLETED)
    after = operator.get(jobs_url).json()
    followed = operator.get(jobs_url, {"job": str(running.pk)}).json()

    section = html[html.index('id="running"') :]
    assert 'aria-valuenow="25"' in section
    assert "Lakeside vAuto" in section
    assert f'data-url="{jobs_url}"' in section
    assert [job["id"] for job in served["jobs"]] == [str(running.pk)]
    assert served["jobs"][0]["percent"] == 25
    assert served["jobs"][0]["owner"] == "Lakeside vAuto"
    assert served["queued"] == 1
    assert after["jobs"] == []
    assert (followed["jobs"][0]["status"], followed["jobs"][0]["percent"]) == ("COMPLETED", 100)


def test_only_staff_who_may_view_jobs_see_the_dashboard(tenant, two_feeds):
    anonymous = Client()
    member = Client()
    member.force_login(UserFactory(account=tenant.account))
    staff = Client()
    staff.force_login(UserFactory(account=None, is_staff=True))
    urls = [reverse("admin:operations"), reverse("admin:operations-jobs")]

    for url in urls:
        for client in (anonymous, member):
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("admin:login"))
        assert staff.get(url).status_code == 403


def test_the_retention_section_shows_each_kind_and_what_the_last_prune_removed(
    operator, tenant, settings
):
    from accounts.models import Event
    from accounts.tasks import events_prune

    settings.EVENT_RETENTION_DAYS = 7
    settings.AUDIT_RETENTION_DAYS = 0
    old = [
        Event.objects.create(account=tenant.account, type="integration.created", payload={})
        for _ in range(3)
    ]
    Event.objects.filter(pk__in=[event.pk for event in old]).update(
        created_at=at(NOW) - timedelta(days=30)
    )
    events_prune()

    html = dashboard(operator).content.decode()

    assert 'id="retention"' in html
    section = html[html.index('id="retention"') :]
    assert "EVENT_RETENTION_DAYS" in section
    assert "7 days" in section
    assert "forever" in section  # audit entries, at 0
    assert "finished" in section


def test_a_job_page_of_a_job_waiting_in_its_queue_says_so(operator, tenant):
    job = make_job(account=tenant.account, created_at=at(NOW) - timedelta(minutes=5))

    html = operator.get(reverse("admin:syncengine_syncjob_change", args=[job.pk])).content.decode()

    assert 'aria-valuenow="0"' in html
    assert "queued" in html
