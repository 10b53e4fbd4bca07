import datetime as dt

import pytest

from exports.services import schedule_next_run_at

UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def next_run(frequency, *, now, day=None, time="02:00", timezone="UTC"):
    hour, minute = map(int, time.split(":"))
    return schedule_next_run_at(
        frequency=frequency, day=day, time=dt.time(hour, minute), timezone=timezone, now=now
    )


def test_manual_only_schedule_has_no_next_run():
    assert next_run("", now=utc(2025, 6, 15, 10, 0)) is None


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 6, 15, 10, 0), utc(2025, 6, 15, 10, 45)),
        (utc(2025, 6, 15, 10, 45), utc(2025, 6, 15, 11, 45)),
        (utc(2025, 12, 31, 23, 50), utc(2026, 1, 1, 0, 45)),
    ],
)
def test_hourly_runs_at_the_minute_of_time_every_hour(now, expected):
    assert next_run("HOURLY", time="07:45", now=now) == expected


def test_hourly_minute_is_local_in_a_half_hour_time_zone():
    # Kolkata is UTC+05:30: minute 15 local is minute 45 UTC.
    assert next_run(
        "HOURLY", time="00:15", timezone="Asia/Kolkata", now=utc(2025, 6, 15, 10, 0)
    ) == utc(2025, 6, 15, 10, 45)


def test_daily_runs_today_when_the_time_is_still_ahead_else_tomorrow():
    assert next_run("DAILY", now=utc(2025, 6, 15, 1, 59)) == utc(2025, 6, 15, 2, 0)
    assert next_run("DAILY", now=utc(2025, 6, 15, 2, 0)) == utc(2025, 6, 16, 2, 0)


def test_daily_time_is_read_in_the_exports_time_zone():
    # 02:00 in Chicago is 07:00 UTC in summer (CDT) and 08:00 UTC in winter (CST).
    assert next_run("DAILY", timezone="America/Chicago", now=utc(2025, 6, 15, 10, 0)) == utc(
        2025, 6, 16, 7, 0
    )
    assert next_run("DAILY", timezone="America/Chicago", now=utc(2025, 1, 15, 10, 0)) == utc(
        2025, 1, 16, 8, 0
    )


def test_daily_across_a_daylight_saving_change_keeps_the_local_time():
    # Chicago moves to CDT on 2025-03-09: the run after 02:00 CST on the 8th is 02:00 CDT... which
    # does not exist that night, so it runs an hour later in wall-clock terms (03:00 CDT = 08:00Z).
    assert next_run("DAILY", timezone="America/Chicago", now=utc(2025, 3, 8, 9, 0)) == utc(
        2025, 3, 9, 8, 0
    )
    assert next_run("DAILY", timezone="America/Chicago", now=utc(2025, 3, 9, 9, 0)) == utc(
        2025, 3, 10, 7, 0
    )


@pytest.mark.parametrize(
    ("day", "now", "expected"),
    [
        # 2025-06-15 is a Sunday (6).
        (0, utc(2025, 6, 15, 10, 0), utc(2025, 6, 16, 2, 0)),
        (6, utc(2025, 6, 15, 1, 0), utc(2025, 6, 15, 2, 0)),
        (6, utc(2025, 6, 15, 10, 0), utc(2025, 6, 22, 2, 0)),
        (3, utc(2025, 6, 15, 10, 0), utc(2025, 6, 19, 2, 0)),
    ],
)
def test_weekly_runs_on_the_weekday_monday_being_zero(day, now, expected):
    assert next_run("WEEKLY", day=day, now=now) == expected


def test_weekly_weekday_is_the_local_one():
    # 2025-06-15 22:00 UTC is already Monday 08:00 in Sydney; Monday's 09:00 run is still ahead.
    assert next_run(
        "WEEKLY", day=0, time="09:00", timezone="Australia/Sydney", now=utc(2025, 6, 15, 22, 0)
    ) == utc(2025, 6, 15, 23, 0)


@pytest.mark.parametrize(
    ("day", "now", "expected"),
    [
        (1, utc(2025, 6, 15, 10, 0), utc(2025, 7, 1, 2, 0)),
        (15, utc(2025, 6, 15, 1, 0), utc(2025, 6, 15, 2, 0)),
        (1, utc(2025, 12, 1, 3, 0), utc(2026, 1, 1, 2, 0)),
    ],
)
def test_monthly_runs_on_the_day_of_the_month(day, now, expected):
    assert next_run("MONTHLY", day=day, now=now) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2025, 4, 10, 0, 0), utc(2025, 4, 30, 2, 0)),
        (utc(2025, 2, 1, 0, 0), utc(2025, 2, 28, 2, 0)),
        (utc(2024, 2, 1, 0, 0), utc(2024, 2, 29, 2, 0)),
        (utc(2025, 1, 31, 3, 0), utc(2025, 2, 28, 2, 0)),
        (utc(2025, 4, 30, 3, 0), utc(2025, 5, 31, 2, 0)),
    ],
)
def test_monthly_on_the_31st_is_clamped_to_the_months_last_day(now, expected):
    assert next_run("MONTHLY", day=31, now=now) == expected


def test_monthly_in_a_time_zone_uses_the_local_month():
    # 2025-06-30 23:00 UTC is already 1 July 09:00 in Sydney (AEST, UTC+10): the 1 July 02:00 run
    # has passed, so the next is 1 August 02:00 AEST = 31 July 16:00 UTC.
    assert next_run(
        "MONTHLY", day=1, timezone="Australia/Sydney", now=utc(2025, 6, 30, 23, 0)
    ) == utc(2025, 7, 31, 16, 0)
