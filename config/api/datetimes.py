"""Date-times the API accepts: ISO 8601 with a UTC offset of at most 15:59 either way, stored and
compared in UTC.

Python accepts offsets up to 23:59 and PostgreSQL only up to 15:59 (no real zone goes past
+14:00), so ``2025-01-01T00:00:00+20:00`` used to pass validation and fail in the database. Every
accepted moment is converted to UTC at the edge, so a moment near the ends of the calendar
(``0001-01-01T00:00:00+01:00``) is refused here too rather than overflowing later.

One rule for the three ways a date-time comes in: serializer fields (``DateTimeField``, which
``CamelModelSerializer`` uses for every model date-time), query filters
(``IsoDateTimeFilter``), and values inside JSON documents (``moment_problem``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField as FilterIsoDateTimeField
from rest_framework import serializers

MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)
OFFSET_MESSAGE = "The UTC offset must be between -15:59 and +15:59."
RANGE_MESSAGE = "The date-time is out of range once converted to UTC."


def moment_problem(moment: datetime) -> str | None:
    """Why ``moment`` cannot be accepted, or None."""
    offset = moment.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        return OFFSET_MESSAGE
    if offset is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            return RANGE_MESSAGE
    return None


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC); call after ``moment_problem``."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class DateTimeField(serializers.DateTimeField):
    """DRF's date-time field with the offset rule of this module."""

    default_error_messages = {"offset": OFFSET_MESSAGE, "overflow": RANGE_MESSAGE}

    def enforce_timezone(self, value: datetime) -> datetime:
        offset = value.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            self.fail("offset")
        return super().enforce_timezone(value)


class _FilterDateTimeField(FilterIsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        problem = moment_problem(moment)
        if problem:
            raise forms.ValidationError(problem, code="invalid")
        return to_utc(moment)


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time query filter with the offset rule of this module."""

    field_class = _FilterDateTimeField
