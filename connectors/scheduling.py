"""When a connection with ``autoSync`` on syncs next.

A connection's schedule lives in its config (``{"autoSync": true, "syncInterval": "1h"}``, the
pattern checked by ``COMMON_CONFIG_PROPERTIES``); ``Connection.next_sync_at`` is derived from it
and indexed, so the scheduler tick finds due connections without reading any config.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from connectors.registry import get_connector_for

SYNC_INTERVAL = re.compile(r"^([1-9][0-9]*)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def sync_interval(value: Any) -> timedelta | None:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"1w"`` as a timedelta; None when absent or malformed."""
    if not isinstance(value, str):
        return None
    match = SYNC_INTERVAL.match(value)
    if match is None:
        return None
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:  # "99999999999w" passes the pattern but is no interval
        return None


def next_sync_at(config: dict[str, Any] | None, *, now: datetime) -> datetime | None:
    """One interval from ``now`` when the config turns autoSync on with a syncInterval."""
    if not config or config.get("autoSync") is not True:
        return None
    interval = sync_interval(config.get("syncInterval"))
    if interval is None:
        return None
    try:
        return now + interval
    except OverflowError:
        return None


def connector_syncs(connector_id: str, account_id: Any = None) -> bool:
    """Whether connections of this connector sync on their own (the same rule as a manual
    connection sync): feed types receive files and ``sftp_pull`` feeds an integration."""
    connector = get_connector_for(connector_id, account_id=account_id)
    return connector is not None and connector.is_source and not connector.feeds_files
