"""The retention of received files, runs, vehicle versions and export runs, with what each must
never remove: a file about to be read, the last applied file, a copy a newer run shares, the
current version of a vehicle, runs in progress, the latest finished run of each owner, a
snapshot, and a LOCAL export file a later run wrote again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from accounts.services import Actor
from connectors.choices import SyncMode
from exports.models import ExportFile
from exports.tasks import export_runs_prune
from syncengine.choices import FeedFileStatus, JobKind, JobStatus, JobTrigger
from syncengine.feeds.services import feed_file_reprocess
from syncengine.jobs import lifecycle
from syncengine.models import FeedFile, Snapshot, SyncJob, VehicleVersion
from syncengine.tasks import feed_files_prune, runs_prune, vehicle_versions_prune
from tests.exports.conftest import add_vehicle, put_records
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.retention.conftest import days_ago, overview
from tests.syncengine import conftest as feed_conftest
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B

pytestmark = pytest.mark.django_db(transaction=True)

# The feed pipeline's fixtures, available here under their own names.
_feed_storage = feed_conftest._feed_storage
feed = feed_conftest.feed
upload = feed_conftest.upload
ingest = feed_conftest.ingest


def stored(feed_file: FeedFile) -> Path:
    return Path(django_settings.FEED_STORAGE_DIR) / feed_file.stored_path


def age(feed_file: FeedFile, days: float) -> None:
    """Date the file's receipt (and its processing, keeping their order) ``days`` back."""
    when = days_ago(days)
    FeedFile.objects.filter(pk=feed_file.pk).update(
        received_at=when, processed_at=when if feed_file.processed_at else None
    )


# --- received files ------------------------------------------------------------------------------


def test_stored_copies_past_the_window_are_purged_and_what_is_still_needed_stays(
    feed, ingest, upload, settings, broker, batch, api
):
    settings.FEED_FILE_RETENTION_DAYS = 30
    inventory = vauto_rows(ROW_A, ROW_B)
    # Given, oldest first: an applied file, a rejected one, an applied one reprocessed today,
    # the last applied file, and a file still waiting for its run (all received long ago)
    applied = ingest(feed, inventory, "monday.csv")
    rejected = ingest(feed, "", "empty.csv")
    shared = ingest(feed, inventory, "wednesday.csv")
    last_applied = ingest(feed, inventory, "thursday.csv")
    for feed_file, days in ((applied, 40), (rejected, 38), (shared, 36), (last_applied, 34)):
        age(feed_file, days)
    assert rejected.status == FeedFileStatus.REJECTED
    assert last_applied.status == FeedFileStatus.COMPLETED
    rerun = feed_file_reprocess(feed_file=shared, actor=Actor.system())
    waiting = upload(feed, inventory, "friday.csv")
    age(waiting, 32)
    copies = {f.pk: stored(f) for f in (applied, rejected, shared, last_applied, waiting)}

    # When beat starts the prune, and a worker works its next steps
    first = feed_files_prune()
    steps = broker.drain("sync")

    # Then the applied and the rejected file lost their stored copies, a batch at a time...
    assert (first, steps) == (2, 1)
    assert not copies[applied.pk].exists()
    assert not copies[rejected.pk].exists()
    for feed_file in (applied, rejected):
        feed_file.refresh_from_db()
        assert (feed_file.stored_path, feed_file.purged_at is not None) == ("", True)
    # ...their rows keep their counts (the feed's log)...
    assert applied.records_total == 2
    assert applied.records_created == 2
    # ...and the copies still needed stay: shared with today's run, the last applied file,
    # the file waiting for its run
    for feed_file in (shared, last_applied, waiting, rerun):
        feed_file.refresh_from_db()
        assert feed_file.purged_at is None
        assert stored(feed_file).exists()
    assert overview("feed_files")["pruned_last_run"] == 2

    # and a purged file cannot be reprocessed
    response = api.post(
        f"/api/v1/integrations/{feed.pk}/logs/{applied.pk}/reprocess", {}, format="json"
    )
    assert response.status_code == 400
    assert "gone" in response.json()["error"]["message"]


# --- runs ----------------------------------------------------------------------------------------


ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def job(owner: dict, status: str, days: float, **fields) -> SyncJob:
    """A run of ``owner`` created ``days`` ago (and ended then, if it ended)."""
    row = SyncJob.objects.create(trigger=JobTrigger.MANUAL, status=status, **owner, **fields)
    ended = days_ago(days) if status in ENDED else None
    SyncJob.objects.filter(pk=row.pk).update(created_at=days_ago(days + 0.01), completed_at=ended)
    return row


def test_runs_past_the_window_go_but_not_the_latest_of_each_owner_or_what_is_in_progress(
    tenant, settings, broker, batch
):
    settings.JOB_RETENTION_DAYS = 90
    integration = IntegrationFactory(account=tenant.account)
    of_integration = {"account": tenant.account, "integration": integration}
    connection = ConnectionFactory(account=tenant.account, connector_id="postgres")
    of_connection = {"account": tenant.account, "connection": connection}
    # Given an integration's runs, oldest first, all past the window
    superseded = [
        job(of_integration, JobStatus.COMPLETED, 200),
        job(of_integration, JobStatus.FAILED, 180),
        job(of_integration, JobStatus.CANCELLED, 170),
    ]
    with_snapshot = job(of_integration, JobStatus.COMPLETED, 160, mode=SyncMode.SNAPSHOT)
    Snapshot.objects.create(account=tenant.account, integration=integration, job=with_snapshot)
    latest = job(of_integration, JobStatus.COMPLETED, 150)
    cancelled_after = job(of_integration, JobStatus.CANCELLED, 140)
    queued = job(of_integration, JobStatus.QUEUED, 130)
    # and a connection's own runs: one past the window, one within it, one still running
    connection_old = job(of_connection, JobStatus.COMPLETED, 100)
    connection_recent = job(of_connection, JobStatus.COMPLETED, 10)
    running = job(of_connection, JobStatus.RUNNING, 95)

    # When the prune runs to the end
    first = runs_prune()
    broker.drain("sync")

    # Then the superseded runs went; the latest finished, a later cancelled one (it completed
    # nothing), a snapshot's, the queued and running ones and the ones within the window stay
    assert first == 2
    left = set(SyncJob.objects.values_list("pk", flat=True))
    assert left.isdisjoint({row.pk for row in superseded} | {connection_old.pk})
    assert left == {
        with_snapshot.pk,
        latest.pk,
        cancelled_after.pk,
        queued.pk,
        running.pk,
        connection_recent.pk,
    }
    assert overview("runs")["pruned_last_run"] == 4


def test_a_file_run_goes_with_its_log_row_once_its_file_is_purged(
    feed, ingest, settings, broker, batch
):
    settings.JOB_RETENTION_DAYS = 90
    inventory = vauto_rows(ROW_A, ROW_B)
    # Given three applied files of long ago: one purged, one still stored, and the last applied
    # (purged too)
    purged = ingest(feed, inventory, "monday.csv")
    still_stored = ingest(feed, inventory, "tuesday.csv")
    last_applied = ingest(feed, inventory, "wednesday.csv")
    for feed_file, days in ((purged, 200), (still_stored, 190), (last_applied, 180)):
        age(feed_file, days)
        SyncJob.objects.filter(pk=feed_file.job_id).update(
            created_at=days_ago(days), completed_at=days_ago(days)
        )
    FeedFile.objects.filter(pk__in=[purged.pk, last_applied.pk]).update(
        stored_path="", purged_at=days_ago(1)
    )

    # When the runs prune runs
    runs_prune()
    broker.drain("sync")

    # Then the purged file's run went with its row; the others stay, with their runs
    assert not FeedFile.objects.filter(pk=purged.pk).exists()
    assert not SyncJob.objects.filter(pk=purged.job_id).exists()
    assert set(FeedFile.objects.values_list("pk", flat=True)) == {still_stored.pk, last_applied.pk}
    assert SyncJob.objects.filter(pk__in=[still_stored.job_id, last_applied.job_id]).count() == 2


# --- vehicle versions ----------------------------------------------------------------------------


def test_old_vehicle_versions_go_but_each_vehicles_latest_stays(tenant, settings, broker, batch):
    settings.VEHICLE_VERSION_RETENTION_DAYS = 365
    integration = IntegrationFactory(account=tenant.account)

    def versions(vehicle, *ages: float) -> list[VehicleVersion]:
        rows = []
        for days in ages:
            row = VehicleVersion.objects.create(
                vehicle=vehicle, change_type="updated", changes={}, created_at=days_ago(days)
            )
            rows.append(row)
        return rows

    # Given a vehicle whose every version is old, one with old and recent versions, one with
    # recent versions only
    all_old = versions(add_vehicle(integration, "1FTFW1E50MFA00001"), 700, 600, 500)
    mixed = versions(add_vehicle(integration, "1FTFW1E50MFA00002"), 800, 400, 30)
    recent = versions(add_vehicle(integration, "1FTFW1E50MFA00003"), 20, 10)

    # When the prune runs to the end
    first = vehicle_versions_prune()
    steps = broker.drain("sync")

    # Then the old versions went, a batch at a time, except the latest of each vehicle, its
    # current state
    assert (first, steps) == (2, 2)
    left = set(VehicleVersion.objects.values_list("pk", flat=True))
    assert left == {all_old[-1].pk, mixed[-1].pk, *(row.pk for row in recent)}
    assert overview("vehicle_versions")["pruned_last_run"] == 4


# --- export and import runs ----------------------------------------------------------------------

EXPORTS = "/api/v1/integrations/exports"


def run_export(api, export_id: str) -> str:
    started = api.post(f"{EXPORTS}/{export_id}/run")
    assert started.status_code == 202, started.content
    run_id = started.json()["data"]["runId"]
    lifecycle.run_execute(run_id)
    assert SyncJob.objects.get(pk=run_id).status == JobStatus.COMPLETED
    return run_id


def local_files(run_id: str) -> list[Path]:
    run = SyncJob.objects.get(pk=run_id)
    root = Path(django_settings.EXPORT_LOCAL_DIR) / str(run.account_id)
    return [
        root / uri.removeprefix("local:")
        for uri in ExportFile.objects.filter(run=run).values_list("uri", flat=True)
    ]


def backdate(run_id: str, days: float, *, files_too: bool = True) -> None:
    SyncJob.objects.filter(pk=run_id).update(
        created_at=days_ago(days + 0.01), completed_at=days_ago(days)
    )
    if files_too:
        moment = days_ago(days + 0.005).timestamp()
        for path in local_files(run_id):
            os.utime(path, (moment, moment))


def test_export_runs_past_the_window_go_with_their_local_files_unless_a_later_run_wrote_them(
    tenant, api, settings, tmp_path, broker
):
    settings.JOB_RETENTION_DAYS = 90
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports"
    put_records(tenant.account, "contracts", [("c-1", {"status": "ACTIVE"})])

    def export(name: str, template: str) -> str:
        body = {
            "name": name,
            "format": "CSV",
            "entities": ["contracts"],
            "destination": {"type": "LOCAL", "path": name, "fileNameTemplate": template},
        }
        response = api.post(EXPORTS, body, format="json")
        assert response.status_code == 201, response.content
        return response.json()["data"]["id"]

    # Given an export whose every run writes a new file, run three times long ago
    dated = export("dated", "{{entity}}-{{runId}}.{{ext}}")
    dated_runs = [run_export(api, dated) for _ in range(3)]
    for run_id, days in zip(dated_runs, (300, 200, 100), strict=True):
        backdate(run_id, days)
    # and an export whose runs write the same file each time: twice long ago, then again
    # today (the file is today's now)
    same = export("same", "{{entity}}.{{ext}}")
    same_runs = [run_export(api, same) for _ in range(3)]
    backdate(same_runs[0], 300, files_too=False)
    backdate(same_runs[1], 200, files_too=False)
    # and another whose oldest run's file was written again after that run ended (by hand, or
    # by a run not recorded yet)
    rewritten = export("rewritten", "{{entity}}-{{runId}}.{{ext}}")
    rewritten_runs = [run_export(api, rewritten) for _ in range(2)]
    backdate(rewritten_runs[0], 300, files_too=False)
    backdate(rewritten_runs[1], 200)
    [rewritten_file] = local_files(rewritten_runs[0])
    files = {run_id: local_files(run_id) for run_id in dated_runs}

    # When the prune runs to the end
    broker.clear()  # (the runs' own tasks, worked above already)
    export_runs_prune()
    broker.drain("export")

    # Then the superseded runs went, the latest completed run of each export stays
    left = {
        str(pk) for pk in SyncJob.objects.filter(export__isnull=False).values_list("pk", flat=True)
    }
    assert left == {dated_runs[2], same_runs[2], rewritten_runs[1]}
    # and with them the files only they named; the shared file and the rewritten one stay
    assert [path.exists() for run_id in dated_runs for path in files[run_id]] == [
        False,
        False,
        True,
    ]
    assert all(path.exists() for path in local_files(same_runs[2]))
    assert rewritten_file.exists()
    response = api.get(f"{EXPORTS}/{same}/runs/{same_runs[2]}/files/1")
    assert response.status_code == 200
    assert overview("export_runs")["pruned_last_run"] == 5


def test_export_runs_with_local_files_wait_while_an_export_of_their_account_runs(
    tenant, api, settings, tmp_path, broker
):
    settings.JOB_RETENTION_DAYS = 90
    settings.EXPORT_LOCAL_DIR = tmp_path / "exports"
    put_records(tenant.account, "contracts", [("c-1", {"status": "ACTIVE"})])
    response = api.post(
        EXPORTS,
        {
            "name": "dated",
            "format": "CSV",
            "entities": ["contracts"],
            "destination": {
                "type": "LOCAL",
                "path": "d",
                "fileNameTemplate": "{{entity}}-{{runId}}.{{ext}}",
            },
        },
        format="json",
    )
    export_id = response.json()["data"]["id"]
    old, latest = run_export(api, export_id), run_export(api, export_id)
    backdate(old, 200)
    backdate(latest, 150)
    [old_file] = local_files(old)
    running = SyncJob.objects.create(
        account=tenant.account,
        export_id=export_id,
        kind=JobKind.EXPORT,
        trigger=JobTrigger.MANUAL,
        status=JobStatus.RUNNING,
    )

    assert export_runs_prune() == 0
    assert SyncJob.objects.filter(pk=old).exists()
    assert old_file.exists()

    SyncJob.objects.filter(pk=running.pk).update(
        status=JobStatus.CANCELLED, completed_at=days_ago(0)
    )
    assert export_runs_prune() == 1
    assert not SyncJob.objects.filter(pk=old).exists()
    assert not old_file.exists()
    assert all(path.exists() for path in local_files(latest))
