"""When an integration's schedule next fires."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from integrations.choices import FrequencyUnit


def add_interval(moment: datetime, value: int, unit: str) -> datetime:
    """``moment`` plus ``value`` ``unit``s; months keep the day, clamped to the month's end."""
    if unit == FrequencyUnit.MINUTES:
        return moment + timedelta(minutes=value)
    if unit == FrequencyUnit.HOURS:
        return moment + timedelta(hours=value)
    if unit == FrequencyUnit.DAYS:
        return moment + timedelta(days=value)
    if unit == FrequencyUnit.WEEKS:
        return moment + timedelta(weeks=value)
    if unit == FrequencyUnit.MONTHS:
        month_index = moment.month - 1 + value
        year, month = moment.year + month_index // 12, month_index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    raise ValueError(f"Unknown frequency unit {unit!r}")


def compute_next_run_at(
    *, frequency_value: int | None, frequency_unit: str, run_now: bool, now: datetime
) -> datetime | None:
    """The first run of a (re)configured schedule: now when asked, else one interval from now."""
    if run_now:
        return now
    if frequency_value and frequency_unit:
        return add_interval(now, frequency_value, frequency_unit)
    return None
