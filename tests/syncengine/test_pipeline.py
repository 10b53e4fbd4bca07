"""The feed pipeline end to end in one process: received file -> parse -> merge -> log."""

import gzip
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.models import Event
from integrations.models import FileImport
from syncengine.feeds.ingest import feed_file_ingest
from syncengine.models import FeedFile, SyncJob, Vehicle, VehicleVersion
from tests.syncengine.conftest import vauto_rows

pytestmark = pytest.mark.django_db

VIN_A = "1HGCM82633A004352"
VIN_B = "1FTFW1ET9DFC10312"
VIN_C = "3VWFE21C04M000001"
VIN_D = "5YJSA1E27HF000337"

ROW_A = (
    VIN_A,
    "00123",
    "Used",
    2019,
    "Honda",
    "Accord",
    "EX-L",
    "12,345 mi",
    "$12,995",
    "01/05/2025",
    "",
)
ROW_B = (VIN_B, "00124", "New", 2024, "Ford", "F-150", "XLT", "5", "$48,500", "2025-01-06", "")
ROW_C = (
    VIN_C,
    "00125",
    "Used",
    2004,
    "Volkswagen",
    "Jetta",
    "GLS",
    "150000",
    "Call",
    "1/7/2025 11:30:00 PM",
    "",
)


def test_first_file_creates_the_inventory_and_logs_it(feed, ingest):
    log = ingest(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

    assert log.status == "completed", log.error
    assert (log.records_total, log.records_created, log.records_updated, log.records_errors) == (
        3,
        3,
        0,
        0,
    )
    assert log.duration_ms is not None
    honda = Vehicle.objects.get(integration=feed, vin=VIN_A)
    assert honda.stock_number == "00123"
    assert honda.condition == "used"
    assert honda.mileage == 12345
    assert str(honda.price) == "12995.00"
    assert str(honda.in_stock_date) == "2025-01-05"
    assert Vehicle.objects.get(vin=VIN_C).price is None
    job = SyncJob.objects.get(pk=log.job_id)
    assert (job.trigger, job.status) == ("file", "COMPLETED")
    assert job.stats["vehicles"]["created"] == 3
    feed.refresh_from_db()
    assert feed.status == "completed"
    assert feed.latest_job_id == job.pk
    assert feed.last_sync_at is not None
    assert feed.consecutive_failures == 0
    types = set(Event.objects.filter(integration_id=feed.pk).values_list("type", flat=True))
    assert {"integration.file.received", "integration.sync.completed"} <= types


def test_a_file_is_processed_once(feed, upload):
    feed_file = upload(feed, vauto_rows(ROW_A))

    feed_file_ingest(feed_file_id=str(feed_file.pk))
    again = feed_file_ingest(feed_file_id=str(feed_file.pk))

    assert again is None
    assert SyncJob.objects.count() == 1
    assert Vehicle.objects.count() == 1


def test_the_same_content_again_changes_nothing_but_is_a_sync(feed, ingest):
    ingest(feed, vauto_rows(ROW_A, ROW_B))

    second = ingest(feed, vauto_rows(ROW_A, ROW_B))

    assert second.status == "completed"
    assert (second.records_created, second.records_updated, second.records_unchanged) == (0, 0, 2)


def test_broken_file_fails_alone_with_a_readable_entry_and_touches_nothing(feed, ingest):
    ingest(feed, vauto_rows(ROW_A, ROW_B))

    broken = ingest(feed, VAUTO_TRUNCATED)

    assert broken.status == "rejected"
    assert broken.error
    assert Vehicle.objects.filter(status="active").count() == 2
    feed.refresh_from_db()
    assert feed.status == "errored"
    assert feed.consecutive_failures == 1
    assert broken.filename in feed.last_error
    assert Event.objects.filter(type="integration.file.rejected", integration_id=feed.pk).exists()


VAUTO_TRUNCATED = (
    "VIN,Stock #,New/Used,Year,Make,Model\r\n"
    f"{VIN_A},00123,Used,2019,Honda,Accord\r\n"
    f"{VIN_B},00124,New,20"
)


@pytest.mark.parametrize("content", ["", "VIN,Stock #,Year\r\n"])
def test_empty_and_header_only_files_are_rejected(feed, ingest, content):
    log = ingest(feed, content)

    assert log.status == "rejected"
    assert log.error


def test_a_much_smaller_file_is_refused_unless_forced(feed, ingest, api):
    ingest(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

    small = ingest(feed, vauto_rows(ROW_A))

    assert small.status == "rejected"
    assert "fewer than 50%" in small.error
    assert Vehicle.objects.filter(status="active").count() == 3

    response = api.post(
        f"/api/v1/integrations/{feed.pk}/logs/{small.pk}/reprocess", {"force": True}, format="json"
    )
    assert response.status_code == 202, response.content
    rerun = FeedFile.objects.get(pk=response.json()["data"]["logId"])
    feed_file_ingest(feed_file_id=str(rerun.pk))
    rerun.refresh_from_db()
    assert rerun.status == "completed", rerun.error
    assert rerun.source == "reprocess"


def test_rejected_rows_are_counted_with_samples(feed, ingest):
    content = vauto_rows(ROW_A, ("", "", "Used", 2019, "Honda", "Civic", "", "", "", "", ""))

    log = ingest(feed, content)

    assert log.status == "completed_with_errors"
    assert log.records_errors == 1
    assert log.error_samples[0]["row"] == 2
    assert "stock" in log.error_samples[0]["reason"].lower()


def test_gzip_upload(feed, ingest):
    log = ingest(
        feed, gzip.compress(vauto_rows(ROW_A, ROW_B).encode()), filename="inventory.csv.gz"
    )

    assert log.status == "completed", log.error
    assert log.records_created == 2


def test_custom_mapping_applies_to_the_next_file(feed, ingest, api):
    content = f'Vehicle ID,Unit,Asking\r\n{VIN_A},00123,"$9,999"\r\n'

    unmapped = ingest(feed, content)
    patched = api.patch(
        f"/api/v1/mappings/{feed.pk}",
        {"mappings": {"Vehicle ID": "vin", "Unit": "stockNumber", "Asking": "price"}},
        format="json",
    )
    mapped = ingest(feed, content)

    assert unmapped.status == "rejected"
    assert "vin" in unmapped.error.lower() or "stock" in unmapped.error.lower()
    assert patched.status_code == 200, patched.content
    assert mapped.status == "completed", mapped.error
    vehicle = Vehicle.objects.get(vin=VIN_A)
    assert (vehicle.stock_number, str(vehicle.price)) == ("00123", "9999.00")


class TestStrategies:
    def _settings(self, feed, **sync):
        feed.sync_settings = {**feed.sync_settings, **sync}
        feed.save()

    def test_overwrite_removes_what_the_file_lacks(self, feed, ingest):
        self._settings(feed, strategy="overwrite", min_rows_ratio=0)
        ingest(feed, vauto_rows(ROW_A, ROW_B))

        log = ingest(feed, vauto_rows(ROW_A))

        assert log.records_removed == 1
        assert Vehicle.objects.get(vin=VIN_B).status == "removed"

    def test_merge_sells_after_the_grace_syncs(self, feed, ingest):
        self._settings(
            feed, strategy="merge", sold_grace_syncs=2, sold_grace_hours=0, min_rows_ratio=0
        )
        ingest(feed, vauto_rows(ROW_A, ROW_B))

        first_miss = ingest(feed, vauto_rows(ROW_A))
        assert Vehicle.objects.get(vin=VIN_B).status == "active"
        second_miss = ingest(feed, vauto_rows(ROW_A))

        assert first_miss.records_sold == 0
        assert second_miss.records_sold == 1
        assert Vehicle.objects.get(vin=VIN_B).status == "sold"

    def test_merge_grace_hours_with_frozen_time(self, feed, ingest):
        self._settings(
            feed, strategy="merge", sold_grace_syncs=0, sold_grace_hours=24, min_rows_ratio=0
        )
        start = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
        with time_machine.travel(start, tick=False):
            ingest(feed, vauto_rows(ROW_A, ROW_B))
        with time_machine.travel(start + timedelta(hours=1), tick=False):
            ingest(feed, vauto_rows(ROW_A))
        assert Vehicle.objects.get(vin=VIN_B).status == "active"
        with time_machine.travel(start + timedelta(hours=26), tick=False):
            ingest(feed, vauto_rows(ROW_A))
        assert Vehicle.objects.get(vin=VIN_B).status == "sold"

        with time_machine.travel(start + timedelta(hours=27), tick=False):
            back = ingest(feed, vauto_rows(ROW_A, ROW_B))
        assert back.status == "completed"
        assert Vehicle.objects.get(vin=VIN_B).status == "active"

    def test_update_only_skips_new_vehicles(self, feed, ingest):
        self._settings(feed, strategy="update_only")
        ingest(feed, vauto_rows(ROW_A))  # update_only on an empty store: everything is new
        Vehicle.objects.all().delete()
        self._settings(feed, strategy="merge")
        ingest(feed, vauto_rows(ROW_A))
        self._settings(feed, strategy="update_only")

        log = ingest(feed, vauto_rows(ROW_A, ROW_B))

        assert log.records_skipped == 1
        assert not Vehicle.objects.filter(vin=VIN_B).exists()

    def test_track_history_records_old_and_new_values(self, feed, ingest):
        self._settings(feed, track_history=True)
        ingest(feed, vauto_rows(ROW_A))
        cheaper = (*ROW_A[:8], "$11,995", *ROW_A[9:])

        ingest(feed, vauto_rows(cheaper))

        honda = Vehicle.objects.get(vin=VIN_A)
        change = VehicleVersion.objects.filter(vehicle=honda, change_type="updated").get()
        assert change.changes == {"price": {"old": "12995.00", "new": "11995.00"}}


def test_file_options_of_the_import_override_detection(feed, ingest):
    FileImport.objects.create(
        account=feed.account,
        integration=feed,
        name="feed",
        file={"type": "csv", "csv": {"columnDelimiter": ";", "includeHeader": True}},
    )

    log = ingest(feed, f"VIN;Stock #;Price\n{VIN_D};7;$5,000\n")

    assert log.status == "completed", log.error
    assert str(Vehicle.objects.get(vin=VIN_D).price) == "5000.00"
