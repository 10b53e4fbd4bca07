"""Reads of the sync engine worth naming."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import QuerySet

from accounts.models import Account
from integrations.models import Integration
from syncengine.feeds.reader import FeedFileError, open_feed
from syncengine.ingest import feed_import, feed_settings, mapping_overrides
from syncengine.models import FeedFile, Vehicle
from syncengine.serializers import vehicle_row
from syncengine.vehicles import VEHICLE_FIELDS

PREVIEW_ROWS = 10

logger = logging.getLogger(__name__)


def vehicle_list(*, account: Account) -> QuerySet[Vehicle]:
    return Vehicle.objects.filter(account=account)


def latest_feed_file(*, integration: Integration) -> FeedFile | None:
    """The newest received file whose stored copy can still be read."""
    for feed_file in integration.feed_files.exclude(stored_path="").order_by("-received_at")[:5]:
        if feed_file.path.exists():
            return feed_file
    return None


def mapping_preview(*, integration: Integration) -> dict[str, Any]:
    """How the integration's latest file maps: every source column with its canonical field and
    where that mapping comes from, what maps to nothing, and the first rows as they would be
    stored."""
    settings = feed_settings(integration)
    overrides = {k: v for k, v in mapping_overrides(feed_import(integration)).items() if v}
    preview: dict[str, Any] = {
        "integrationId": integration.pk,
        "provider": integration.type,
        "overrides": overrides,
        "fileId": None,
        "filename": None,
        "columns": [],
        "unmappedColumns": [],
        "unmappedFields": sorted(VEHICLE_FIELDS),
        "rows": [],
        "rejected": [],
        "warnings": [],
        "error": None,
    }
    feed_file = latest_feed_file(integration=integration)
    if feed_file is None:
        return preview
    preview["fileId"] = feed_file.pk
    preview["filename"] = feed_file.filename
    try:
        with open_feed(
            feed_file.path,
            provider=settings.provider,
            options=settings.options,
            mapping_overrides=settings.mapping_overrides,
            timezone=settings.timezone,
        ) as reader:
            chunk = reader.preview(PREVIEW_ROWS)
            columns = reader.columns
            preview["warnings"] = list(reader.warnings) + list(chunk.warnings)
    except FeedFileError as exc:
        preview["error"] = str(exc)
        return preview
    except Exception as exc:
        # The preview must describe a file that cannot be read, like its log entry does, not fail.
        logger.exception("Mapping preview of %s failed", feed_file.pk)
        preview["error"] = f"The latest file could not be read: {type(exc).__name__}: {exc}"
        return preview
    mapped = {column.field for column in columns if column.field}
    preview["columns"] = [
        {"source": c.source, "position": c.position, "field": c.field, "origin": c.origin}
        for c in columns
    ]
    preview["unmappedColumns"] = [c.source for c in columns if not c.field]
    preview["unmappedFields"] = sorted(set(VEHICLE_FIELDS) - mapped)
    frame = chunk.frame.astype(object).where(chunk.frame.notna(), None)
    preview["rows"] = [
        vehicle_row({str(key): value for key, value in record.items()})
        for record in frame.to_dict("records")
    ]
    preview["rejected"] = [
        {"row": r.row_number, "reason": r.reason, "values": r.values} for r in chunk.rejected
    ]
    return preview
