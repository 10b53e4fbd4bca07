"""The scheduler tick and exports: due exports get one run each, ``nextRunAt`` moves on in the
export's time zone with no double and no skipped run at a daylight-saving change, and a run still
going is never overlapped."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from exports.models import Export
from exports.scheduler import exports_schedule_tick
from exports.services import schedule_next_run_at
from syncengine.jobs import lifecycle
from syncengine.models import SyncJob
from syncengine.tasks import schedules_tick
from tests.exports.factories import ExportFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def local_runs(export, *, start: dt.datetime, end: dt.datetime, step_minutes: int = 10) -> list:
    """Tick every ``step_minutes`` from ``start`` to ``end`` (UTC) and end each run at once, as
    a quick worker would; the local wall-clock times of the ticks that started a run."""
    zone = zoneinfo.ZoneInfo(export.timezone)
    started = []
    now = start
    while now <= end:
        if exports_schedule_tick(now=now):
            started.append(now.astimezone(zone))
            SyncJob.objects.filter(export=export, status="QUEUED").update(status="COMPLETED")
        now += dt.timedelta(minutes=step_minutes)
    return started


def scheduled(timezone: str, created: dt.datetime | None = None, **fields) -> Export:
    """An export whose schedule was set at ``created``."""
    export = ExportFactory(timezone=timezone, **fields)
    export.next_run_at = schedule_next_run_at(
        frequency=export.frequency,
        day=export.day,
        time=export.time,
        timezone=export.timezone,
        now=created or dt.datetime(2025, 1, 1, tzinfo=UTC),
    )
    export.save()
    return export


@pytest.mark.parametrize(
    ("timezone", "day", "expected"),
    [
        # Spring forward: 02:30 does not exist that night; it runs once, an hour later.
        ("America/New_York", dt.date(2025, 3, 9), "2025-03-09T03:30:00-04:00"),
        ("Europe/Berlin", dt.date(2025, 3, 30), "2025-03-30T03:30:00+02:00"),
    ],
)
def test_daily_at_a_time_skipped_by_the_change_runs_once_that_day(timezone, day, expected):
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12), tzinfo=UTC)
    export = scheduled(timezone, created=start, frequency="DAILY", time=dt.time(2, 30))

    runs = local_runs(export, start=start, end=start + dt.timedelta(days=3))

    assert [run.date() for run in runs] == [day + dt.timedelta(days=n) for n in range(3)]
    assert runs[0].isoformat() == expected
    assert [run.strftime("%H:%M") for run in runs[1:]] == ["02:30", "02:30"]


@pytest.mark.parametrize(
    ("timezone", "day"),
    [
        # Fall back: 01:30 (New York) and 02:30 (Berlin) happen twice that night; one run.
        ("America/New_York", dt.date(2025, 11, 2)),
        ("Europe/Berlin", dt.date(2025, 10, 26)),
    ],
)
def test_daily_at_a_time_that_happens_twice_runs_once(timezone, day):
    time = dt.time(1, 30) if timezone == "America/New_York" else dt.time(2, 30)
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12), tzinfo=UTC)
    export = scheduled(timezone, created=start, frequency="DAILY", time=time)

    runs = local_runs(export, start=start, end=start + dt.timedelta(days=3))

    assert [run.date() for run in runs] == [day + dt.timedelta(days=n) for n in range(3)]
    assert all(run.strftime("%H:%M") == time.strftime("%H:%M") for run in runs)


@pytest.mark.parametrize(
    ("timezone", "spring", "fall"),
    [
        ("America/New_York", dt.date(2025, 3, 9), dt.date(2025, 11, 2)),
        ("Europe/Berlin", dt.date(2025, 3, 30), dt.date(2025, 10, 26)),
    ],
)
def test_hourly_runs_once_every_real_hour_across_both_changes(timezone, spring, fall):
    for day, hours in ((spring, 23), (fall, 25)):
        SyncJob.objects.all().delete()
        export = scheduled(timezone, frequency="HOURLY", time=dt.time(0, 15))
        zone = zoneinfo.ZoneInfo(timezone)
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)
        export.next_run_at = midnight + dt.timedelta(minutes=15)
        export.save()

        runs = local_runs(
            export,
            start=midnight,
            end=midnight + dt.timedelta(hours=hours) - dt.timedelta(seconds=1),
        )

        # One run per real hour of that local day: 23 on the short day, 25 on the long one.
        assert len(runs) == hours
        gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(runs)}
        assert gaps == {dt.timedelta(hours=1)}
        export.delete()


def test_monthly_runs_on_day_one_at_two_local_across_the_change(db):
    start = dt.datetime(2025, 2, 28, tzinfo=UTC)
    export = scheduled(
        "Europe/Berlin", created=start, frequency="MONTHLY", day=1, time=dt.time(2, 0)
    )

    runs = local_runs(
        export,
        start=start,
        end=dt.datetime(2025, 5, 2, tzinfo=UTC),
        step_minutes=30,
    )

    assert [run.isoformat() for run in runs] == [
        "2025-03-01T02:00:00+01:00",
        "2025-04-01T02:00:00+02:00",
        "2025-05-01T02:00:00+02:00",
    ]


def test_a_run_still_going_is_not_overlapped_and_the_schedule_moves_on():
    export = scheduled("UTC", frequency="HOURLY", time=dt.time(0, 0))
    first_due = export.next_run_at
    assert first_due is not None
    assert exports_schedule_tick(now=first_due) == 1
    run = SyncJob.objects.get(export=export)
    SyncJob.objects.filter(pk=run.pk).update(status="RUNNING", attempts=1)

    later = first_due + dt.timedelta(hours=1)
    started = exports_schedule_tick(now=later)

    export.refresh_from_db()
    assert started == 0
    assert SyncJob.objects.filter(export=export).count() == 1
    assert export.next_run_at == later + dt.timedelta(hours=1)


def test_paused_and_manual_only_exports_do_not_fire():
    due = dt.datetime(2025, 1, 1, 2, tzinfo=UTC)
    ExportFactory(state="PAUSED", next_run_at=due)
    ExportFactory(frequency="", next_run_at=due)

    assert exports_schedule_tick(now=due + dt.timedelta(hours=1)) == 0
    assert not SyncJob.objects.exists()


def test_scheduled_runs_are_export_runs_of_the_schedule():
    export = scheduled("UTC", frequency="DAILY", time=dt.time(2, 0))

    exports_schedule_tick(now=export.next_run_at)

    run = SyncJob.objects.get(export=export)
    assert (run.kind, run.trigger, run.status) == ("export", "schedule", "QUEUED")
    assert run.integration_id is None
    assert run.connection_id is None
    assert run.entities == export.entities
    assert lifecycle.kind_of(run).task == "exports.tasks.run_export"


def test_the_beat_tick_claims_due_exports_too(time_machine):
    export = scheduled("UTC", frequency="DAILY", time=dt.time(2, 0))
    assert export.next_run_at is not None
    time_machine.move_to(export.next_run_at + dt.timedelta(seconds=30))

    result = schedules_tick()

    assert result["exports"] == 1
    assert SyncJob.objects.filter(export=export, trigger="schedule").count() == 1
