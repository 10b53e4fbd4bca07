"""A file run's work and ending share one transaction on PostgreSQL: new vehicles are written
while the file is read, seen by nobody until the run completes, and gone if it does not; the
run's progress stays visible meanwhile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from syncengine.choices import JobStatus
from syncengine.feeds import ingest as ingest_module
from syncengine.feeds.ingest import FileRuns, feed_file_ingest
from syncengine.feeds.merge import VehicleMerge, vehicle_merge
from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.syncengine.conftest import vauto_rows

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="PostgreSQL only: on SQLite new vehicles are inserted when the run ends",
    ),
]

ROWS = [
    (
        f"1HGCM82633A00{number:04d}",
        f"S{number}",
        "Used",
        2019,
        "Honda",
        "Accord",
        "EX",
        "10",
        "12995",
        "2025-01-05",
        "",
    )
    for number in range(6)
]


@pytest.fixture
def onlooker() -> Iterator[Any]:
    """Another connection to the database, as the API or another worker has."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    yield other
    other.close()


def _count(other: Any, sql: str, *params: Any) -> Any:
    with other.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchone()[0]


def _after(chunk: int, other: Any, sql: str, *params: Any) -> Any:
    """A hook for ``after_chunk``: once ``chunk`` chunks are staged, ``other`` runs ``sql``
    (committed at once, as another process's statement would be)."""

    def hook(merge: VehicleMerge, chunks: int) -> None:
        if chunks == chunk:
            with other.cursor() as cursor:
                cursor.execute(sql, list(params))

    return hook


@pytest.fixture
def small_chunks(monkeypatch):
    """Files are read two rows at a time, so a six-row file is staged in three chunks."""
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 2)


@pytest.fixture
def after_chunk(monkeypatch):
    """Call ``hook(merge, staged_chunks)`` after each chunk the merge stages."""
    hooks: list[Any] = []
    stage = VehicleMerge.stage
    calls = {"n": 0}

    def staged(self, frame):
        stage(self, frame)
        calls["n"] += 1
        for hook in hooks:
            hook(self, calls["n"])

    monkeypatch.setattr(VehicleMerge, "stage", staged)
    return hooks.append


def test_new_vehicles_are_invisible_until_the_run_ends_while_its_progress_is_not(
    feed, upload, onlooker, small_chunks, after_chunk
):
    # Given a six-row file read two rows at a time
    log = upload(feed, vauto_rows(*ROWS))
    seen: list[tuple[int, int, Any]] = []
    written: list[int] = []

    def look(merge, chunks):
        written.append(Vehicle.objects.filter(integration=feed).count())  # the run's own view
        vehicles = _count(
            onlooker, "SELECT count(*) FROM syncengine_vehicle WHERE integration_id = %s", feed.pk
        )
        progress = _count(
            onlooker, "SELECT progress FROM syncengine_syncjob WHERE id = %s", log.job_id
        )
        seen.append((chunks, vehicles, progress))

    after_chunk(look)

    # When it is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then its vehicles were written while it was read (the last chunks' may still have been
    # on their way to the database)
    assert written == sorted(written)
    assert written[-1] >= 2
    # And meanwhile others saw the run's progress but none of its vehicles
    assert [(chunks, vehicles) for chunks, vehicles, _ in seen] == [(1, 0), (2, 0), (3, 0)]
    assert [json.loads(progress) for _, _, progress in seen][1:] == [{"done": 2}, {"done": 4}]
    # And once it completed, all six at once
    log.refresh_from_db()
    assert log.status == "completed", log.error
    assert log.records_created == 6
    assert Vehicle.objects.filter(integration=feed).count() == 6


def test_a_run_cancelled_between_chunks_leaves_no_vehicle_behind(
    feed, upload, onlooker, small_chunks, after_chunk
):
    # Given a file whose run is asked to stop once two of its three chunks are in
    log = upload(feed, vauto_rows(*ROWS))

    cancel = "UPDATE syncengine_syncjob SET cancel_requested_at = %s WHERE id = %s"
    after_chunk(_after(2, onlooker, cancel, timezone.now(), log.job_id))

    # When it is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then it ended cancelled and the vehicles it had written are gone
    log.refresh_from_db()
    assert log.status == "cancelled"
    assert SyncJob.objects.get(pk=log.job_id).status == JobStatus.CANCELLED
    assert Vehicle.objects.filter(integration=feed).count() == 0


def test_a_run_whose_ending_fails_leaves_no_vehicle_behind(feed, upload, monkeypatch):
    # Given a file whose run fails in its ending, after its vehicles were written
    log = upload(feed, vauto_rows(*ROWS))
    ended = FileRuns.ended

    def failing(self, job, outcome, status):
        ended(self, job, outcome, status)
        if status == JobStatus.COMPLETED:
            raise RuntimeError("the disk is full")

    monkeypatch.setattr(FileRuns, "ended", failing)

    # When it is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then the run failed and nothing of the file was kept
    job = SyncJob.objects.get(pk=log.job_id)
    assert job.status == JobStatus.FAILED
    assert "the disk is full" in job.error
    assert Vehicle.objects.filter(integration=feed).count() == 0
    assert FeedFile.objects.get(pk=log.pk).records_created == 0


def test_a_key_repeated_in_a_later_chunk_is_created_once_from_its_last_row(
    feed, upload, small_chunks
):
    # Given a file in which the first row's vehicle comes back in the last chunk, repriced
    last = (*ROWS[0][:8], "9999", *ROWS[0][9:])
    log = upload(feed, vauto_rows(*ROWS, last))

    # When it is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then the vehicle exists once, with the last row's price
    log.refresh_from_db()
    assert (log.records_created, log.status) == (6, "completed")
    vehicle = Vehicle.objects.get(integration=feed, key=ROWS[0][0])
    assert vehicle.price == 9999


def test_a_run_whose_claim_is_taken_over_while_it_reads_applies_nothing(
    feed, upload, onlooker, small_chunks, after_chunk
):
    # Given a file whose run another worker takes over (attempt 2) once it has read it all
    log = upload(feed, vauto_rows(*ROWS))

    take_over = "UPDATE syncengine_syncjob SET attempts = 2 WHERE id = %s"
    after_chunk(_after(3, onlooker, take_over, log.job_id))

    # When this worker goes on to its ending
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then it applied nothing: the run is the other worker's, and so is the file
    job = SyncJob.objects.get(pk=log.job_id)
    assert (job.status, job.attempts) == (JobStatus.RUNNING, 2)
    assert Vehicle.objects.filter(integration=feed).count() == 0


def _cancel_from_elsewhere(other: Any, job_id: Any) -> None:
    with other.cursor() as cursor:
        cursor.execute(
            "UPDATE syncengine_syncjob SET cancel_requested_at = %s WHERE id = %s",
            [timezone.now(), job_id],
        )


def test_a_cancel_after_the_last_chunk_ends_the_run_cancelled_with_nothing_applied(
    feed, upload, onlooker, monkeypatch
):
    # Given a file whose run is asked to stop once it has read every row, before its ending
    log = upload(feed, vauto_rows(*ROWS))
    guard = ingest_module._guard_row_count

    def cancelled_then_guarded(*args, **kwargs):
        _cancel_from_elsewhere(onlooker, log.job_id)
        return guard(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "_guard_row_count", cancelled_then_guarded)

    # When it is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then it ended cancelled, as did its file and its integration's run, and nothing was kept
    job = SyncJob.objects.get(pk=log.job_id)
    assert job.status == JobStatus.CANCELLED
    assert job.log[-1]["message"] == "Cancelled; nothing of it was applied."
    log.refresh_from_db()
    assert log.status == "cancelled"
    feed.refresh_from_db()
    assert feed.status != "running"
    assert Vehicle.objects.filter(integration=feed).count() == 0


def test_a_cancel_of_an_identical_file_changes_nothing(feed, upload, onlooker, monkeypatch):
    # Given an applied file, and the same bytes again, cancelled while they are recognised
    first = upload(feed, vauto_rows(*ROWS))
    feed_file_ingest(feed_file_id=str(first.pk))
    again = upload(feed, vauto_rows(*ROWS))
    assume = VehicleMerge.assume_unchanged

    def cancelled_meanwhile(self):
        _cancel_from_elsewhere(onlooker, again.job_id)
        return assume(self)

    monkeypatch.setattr(VehicleMerge, "assume_unchanged", cancelled_meanwhile)

    # When it is processed
    feed_file_ingest(feed_file_id=str(again.pk))

    # Then it ended cancelled and the inventory is as the first file left it
    assert SyncJob.objects.get(pk=again.job_id).status == JobStatus.CANCELLED
    again.refresh_from_db()
    assert again.status == "cancelled"
    vehicles = Vehicle.objects.filter(integration=feed)
    assert set(vehicles.values_list("status", "missing_syncs")) == {("active", 0)}
    assert vehicles.count() == 6


def test_a_copy_that_fails_fails_the_run_with_its_own_error(feed, upload, monkeypatch):
    # Given a database that refuses the vehicles' copy (here: a column it does not have)
    log = upload(feed, vauto_rows(*ROWS))
    monkeypatch.setattr(
        vehicle_merge, "_NEW_VEHICLE_COLUMNS", (*vehicle_merge._NEW_VEHICLE_COLUMNS[:-1], "nope")
    )

    # When the file is processed
    feed_file_ingest(feed_file_id=str(log.pk))

    # Then the run failed with the copy's error, not a later statement's, and kept nothing
    job = SyncJob.objects.get(pk=log.job_id)
    assert job.status == JobStatus.FAILED
    assert '"nope"' in job.error
    assert "transaction is aborted" not in job.error
    assert Vehicle.objects.filter(integration=feed).count() == 0
