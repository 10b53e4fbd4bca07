"""Import dependencies and the sweep that keeps jobs from hanging."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import Event
from accounts.services import Actor
from connectors import registry
from integrations.choices import ImportDependencyStatus, IntegrationState
from syncengine.choices import JobStatus
from syncengine.jobs.sweep import jobs_sweep
from syncengine.models import SyncJob
from syncengine.sync.launch import integration_sync_start
from syncengine.sync.runner import sync_job_run
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.syncengine.memory import DATASETS, Dataset, MemoryConnector

ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def memory_connector(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, MemoryConnector.id, MemoryConnector)
    DATASETS.clear()
    DATASETS["source"] = Dataset(records={"customers": [{"id": 1, "updated": "1"}]})
    yield
    DATASETS.clear()


def memory_integration(tenant, name: str):
    source = ConnectionFactory(
        account=tenant.account, connector_id="test_memory", config={"dataset": "source"}
    )
    return IntegrationFactory(
        account=tenant.account,
        dealership=None,
        name=name,
        type="test_memory",
        data_type="customers",
        source_connection=source,
    )


@pytest.fixture
def upstream(tenant):
    return memory_integration(tenant, "Upstream")


@pytest.fixture
def downstream(tenant, upstream):
    integration = memory_integration(tenant, "Downstream")
    integration.depends_on.add(upstream)
    return integration


def upstream_job(upstream, status: str, *, error: str = "") -> SyncJob:
    return SyncJob.objects.create(
        account=upstream.account,
        integration=upstream,
        trigger="file",
        status=status,
        error=error,
        completed_at=timezone.now(),
    )


def run(job: SyncJob) -> SyncJob:
    sync_job_run(job.pk)
    job.refresh_from_db()
    return job


def test_waits_while_an_upstream_has_not_imported_then_runs_when_it_has(
    downstream, upstream, settings
):
    settings.SYNC_DEPENDENCY_RETRY_SECONDS = 30
    job = run(integration_sync_start(integration=downstream, actor=ACTOR))

    assert job.status == JobStatus.QUEUED
    assert job.started_at is None
    assert job.dependency_status == ImportDependencyStatus.WAITING
    assert job.next_attempt_at is not None
    assert job.next_attempt_at > timezone.now() + timedelta(seconds=25)
    assert 'Waiting for upstream "Upstream"' in job.log[-1]["message"]
    downstream.refresh_from_db()
    assert downstream.import_dependency_status == ImportDependencyStatus.WAITING

    upstream_job(upstream, JobStatus.COMPLETED)
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        job = run(job)

    assert job.status == JobStatus.COMPLETED
    assert job.dependency_status == ImportDependencyStatus.READY
    assert job.dependency_checks == 2
    downstream.refresh_from_db()
    assert downstream.import_dependency_status == ImportDependencyStatus.READY


def test_an_import_older_than_the_last_run_does_not_count(downstream, upstream):
    upstream_job(upstream, JobStatus.COMPLETED)
    downstream.last_sync_at = timezone.now() + timedelta(seconds=1)
    downstream.save()
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        job = run(integration_sync_start(integration=downstream, actor=ACTOR))
    assert job.dependency_status == ImportDependencyStatus.WAITING


def test_failed_upstream_stops_the_run_with_the_reason_on_the_job(downstream, upstream):
    upstream_job(upstream, JobStatus.FAILED, error="bad credentials")
    job = run(integration_sync_start(integration=downstream, actor=ACTOR))

    assert job.status == JobStatus.FAILED
    assert job.started_at is None
    assert 'Upstream "Upstream"' in job.error
    assert "bad credentials" in job.error
    downstream.refresh_from_db()
    assert downstream.import_dependency_status == ImportDependencyStatus.ERROR
    assert Event.objects.filter(type="integration.sync.failed", integration_id=downstream.pk)


def test_paused_upstream_without_fresh_data_is_an_error(downstream, upstream):
    upstream.state = IntegrationState.INACTIVE
    upstream.save()
    job = run(integration_sync_start(integration=downstream, actor=ACTOR))
    assert job.status == JobStatus.FAILED
    assert "is paused" in job.error


def test_the_wait_is_bounded(downstream, settings):
    settings.SYNC_DEPENDENCY_MAX_WAIT_SECONDS = 60
    job = run(integration_sync_start(integration=downstream, actor=ACTOR))
    assert job.status == JobStatus.QUEUED
    with time_machine.travel(timezone.now() + timedelta(seconds=120)):
        job = run(job)
    assert job.status == JobStatus.FAILED
    assert "Gave up after waiting" in job.error


# --- sweep -------------------------------------------------------------------------------------


def running_job(integration, *, attempts: int, silent_for: timedelta) -> SyncJob:
    beat = timezone.now() - silent_for
    return SyncJob.objects.create(
        account=integration.account,
        integration=integration,
        trigger="manual",
        status=JobStatus.RUNNING,
        attempts=attempts,
        started_at=beat,
        heartbeat_at=beat,
    )


def test_sweep_requeues_a_job_whose_worker_died_and_the_retry_completes(upstream, settings):
    settings.JOB_HEARTBEAT_TIMEOUT_SECONDS = 300
    job = running_job(upstream, attempts=1, silent_for=timedelta(seconds=301))

    counts = jobs_sweep()

    job.refresh_from_db()
    assert counts["requeued"] == 1
    assert job.status == JobStatus.QUEUED
    assert job.dispatched_at is not None
    assert "no heartbeat for 301 s" in job.log[-1]["message"]
    assert run(job).status == JobStatus.COMPLETED
    assert job.attempts == 2


def test_sweep_fails_a_dead_job_that_used_its_attempts(upstream, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job = running_job(upstream, attempts=2, silent_for=timedelta(hours=1))

    assert jobs_sweep()["failed"] == 1

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Gave up after 2 attempts" in job.error
    upstream.refresh_from_db()
    assert upstream.consecutive_failures == 1


def test_sweep_leaves_live_jobs_and_file_jobs_alone(upstream):
    live = running_job(upstream, attempts=1, silent_for=timedelta(seconds=5))
    assert jobs_sweep() == {"requeued": 0, "failed": 0, "cancelled": 0, "redispatched": 0}
    live.refresh_from_db()
    assert live.status == JobStatus.RUNNING


def test_sweep_dispatches_a_queued_job_whose_task_was_lost(upstream, settings):
    settings.JOB_REDISPATCH_AFTER_SECONDS = 60
    # Never sent (the broker was down when it was queued): sent at the next sweep.
    job = SyncJob.objects.create(account=upstream.account, integration=upstream, trigger="manual")
    assert jobs_sweep()["redispatched"] == 1
    job.refresh_from_db()
    assert job.dispatched_at is not None
    assert jobs_sweep()["redispatched"] == 0  # just sent: its task may still come

    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert jobs_sweep()["redispatched"] == 1


def test_sweep_ends_a_dead_job_that_was_being_cancelled_as_cancelled(upstream):
    job = running_job(upstream, attempts=1, silent_for=timedelta(hours=1))
    SyncJob.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())

    assert jobs_sweep()["cancelled"] == 1

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.completed_at is not None
