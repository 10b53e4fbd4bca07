"""A file with the same bytes as the integration's last applied one, read with the same settings,
is recognised without being read: it is logged as unchanged with that file's counts, and the
vehicles it lacks miss one more sync exactly as a full read would have made them."""

from __future__ import annotations

import pytest

from integrations.models import FileImport
from syncengine.feeds import ingest as ingest_module
from syncengine.models import Vehicle
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C, VIN_A, VIN_B

pytestmark = pytest.mark.django_db

SAME_CONTENT = "Same content as"


@pytest.fixture
def reads(monkeypatch):
    """How many times the feed reader opened a file."""
    opened = {"count": 0}
    real = ingest_module.open_feed

    def counting(*args, **kwargs):
        opened["count"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "open_feed", counting)
    return opened


def _settings(feed, **sync):
    feed.sync_settings = {**feed.sync_settings, **sync}
    feed.save()


def test_the_same_file_again_is_not_read(feed, ingest, reads):
    first = ingest(feed, vauto_rows(ROW_A, ROW_B))

    again = ingest(feed, vauto_rows(ROW_A, ROW_B))

    assert reads["count"] == 1
    assert again.status == "completed"
    assert (again.records_total, again.records_created, again.records_updated) == (2, 0, 0)
    assert again.records_unchanged == 2
    assert again.warnings[0].startswith(f"{SAME_CONTENT} {first.filename}")
    assert again.reading_digest == first.reading_digest
    assert Vehicle.objects.filter(integration=feed, status="active").count() == 2


def test_rejections_and_warnings_of_the_file_carry_over(feed, ingest, reads):
    broken_vin = ("BADVIN", *ROW_C[1:])
    first = ingest(feed, vauto_rows(ROW_A, broken_vin))
    assert first.status == "completed_with_errors"

    again = ingest(feed, vauto_rows(ROW_A, broken_vin))

    assert reads["count"] == 1
    assert again.status == "completed_with_errors"
    assert (again.records_total, again.records_errors) == (first.records_total, 1)
    assert again.error_samples == first.error_samples
    assert again.warnings[1:] == first.warnings


def test_vehicles_the_file_lacks_still_miss_syncs_and_are_sold(feed, ingest, reads):
    _settings(feed, strategy="merge", sold_grace_syncs=3, sold_grace_hours=0, min_rows_ratio=0)
    ingest(feed, vauto_rows(ROW_A, ROW_B))
    ingest(feed, vauto_rows(ROW_A))  # B misses its first sync
    assert reads["count"] == 2

    second_miss = ingest(feed, vauto_rows(ROW_A))
    honda = Vehicle.objects.get(vin=VIN_A)
    ford = Vehicle.objects.get(vin=VIN_B)
    assert (ford.status, ford.missing_syncs) == ("active", 2)
    assert second_miss.records_sold == 0
    third_miss = ingest(feed, vauto_rows(ROW_A))

    assert reads["count"] == 2  # both recognised without a read
    ford.refresh_from_db()
    assert ford.status == "sold"
    assert third_miss.records_sold == 1
    assert third_miss.records_unchanged == 1
    honda.refresh_from_db()
    assert (honda.status, honda.missing_syncs) == ("active", 0)


def test_changed_settings_make_the_file_read_again(feed, ingest, reads):
    ingest(feed, vauto_rows(ROW_A, ROW_B))
    FileImport.objects.create(
        account=feed.account,
        integration=feed,
        name="Series as the description",
        mapping={"fields": [{"extract": "Series", "generate": "description"}]},
    )

    again = ingest(feed, vauto_rows(ROW_A, ROW_B))

    assert reads["count"] == 2
    assert not any(SAME_CONTENT in warning for warning in again.warnings)
    assert again.records_updated == 2
    assert Vehicle.objects.get(vin=VIN_A).description == "EX-L"


def test_only_the_last_applied_file_counts(feed, ingest, reads):
    ingest(feed, vauto_rows(ROW_A, ROW_B))
    ingest(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

    back = ingest(feed, vauto_rows(ROW_A, ROW_B))

    assert reads["count"] == 3
    assert not any(SAME_CONTENT in warning for warning in back.warnings)


def test_a_forced_file_is_read(feed, upload, reads):
    from syncengine.feeds.ingest import feed_file_ingest

    for force in (False, True):
        feed_file = upload(feed, vauto_rows(ROW_A))
        feed_file.force = force
        feed_file.save(update_fields=["force"])
        feed_file_ingest(feed_file_id=str(feed_file.pk))

    assert reads["count"] == 2


def test_a_vehicle_without_a_content_hash_makes_the_file_read(feed, ingest, reads):
    ingest(feed, vauto_rows(ROW_A, ROW_B))
    Vehicle.objects.filter(vin=VIN_A).update(content_hash=None, model="Edited")

    again = ingest(feed, vauto_rows(ROW_A, ROW_B))

    assert reads["count"] == 2
    assert again.records_updated == 1
    assert Vehicle.objects.get(vin=VIN_A).model == "Accord"
