"""Feed values that cannot be read are reported, never dropped silently, and amounts keep their
currency: what a user sees of it through the API (the log, its errors.csv, the vehicles), the
admin and the events, after the real pipeline processed the file."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Event
from syncengine.models import SyncJob, Vehicle
from tests.factories import UserFactory
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, VIN_A, VIN_B, VIN_C

pytestmark = pytest.mark.django_db

# The row of the report: a VIN that is no VIN, a year that is no year, a price that is no price.
ROW_BAD = ("BADVIN", "00200", "Used", "notayear", "Honda", "Civic", "LX", "9,000", "abc", "", "")
# The same unreadable year and price on a row with a real VIN.
ROW_KEPT = (VIN_B, "00201", "Used", "notayear", "Ford", "Focus", "SE", "9,000", "abc", "", "")


def _log(api, feed, log):
    response = api.get(f"/api/v1/integrations/{feed.pk}/logs/{log.pk}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def _errors_csv(api, feed, log):
    response = api.get(f"/api/v1/integrations/{feed.pk}/logs/{log.pk}/errors.csv")
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_unreadable_values_are_counted_sampled_and_downloadable(feed, ingest, api):
    # Given a file with a good row, a row whose VIN is no VIN (and year and price are garbage),
    # and a row with a real VIN whose year and price are garbage
    log = ingest(feed, vauto_rows(ROW_A, ROW_BAD, ROW_KEPT))

    # When the user reads the file's log
    data = _log(api, feed, log)

    # Then the VIN row was rejected, the other kept without its year and price, and the log says
    # so in its status, its counters and its samples (field, raw value, reason, row number)
    assert data["status"] == "completed_with_errors"
    assert (data["recordsTotal"], data["recordsCreated"]) == (3, 2)
    assert (data["recordsErrors"], data["recordsWarnings"]) == (1, 1)
    samples = [
        (sample["row"], sample["severity"], sample["field"], sample["value"])
        for sample in data["errorSamples"]
    ]
    assert samples == [
        (2, "error", "vin", "BADVIN"),
        (3, "warning", "year", "notayear"),
        (3, "warning", "price", "abc"),
    ]
    rejected, year, price = data["errorSamples"]
    assert rejected["reason"] == "VIN BADVIN has no digit"
    assert rejected["values"]["Model"] == "Civic"
    assert year["reason"].startswith("year notayear is not a model year (1900-")
    assert year["reason"].endswith("; the row was imported without it")
    assert price["reason"] == "price abc is not an amount; the row was imported without it"
    assert price["values"] == {"VIN": VIN_B, "Stock #": "00201", "Price": "abc"}

    # And errors.csv lists the same rows, each with its reason and raw values
    rows = _errors_csv(api, feed, log)
    assert [(row["row"], row["VIN"]) for row in rows] == [
        ("2", "BADVIN"),
        ("3", VIN_B),
        ("3", VIN_B),
    ]
    assert rows[0]["reason"] == "VIN BADVIN has no digit"
    assert rows[0]["Year"] == "notayear"
    assert rows[1]["reason"].startswith("year notayear is not a model year")
    assert rows[2]["reason"].startswith("price abc is not an amount")
    assert rows[2]["Price"] == "abc"

    # And the store has no BADVIN vehicle; the kept one has no year and no price
    vins = {vehicle["vin"] for vehicle in api.get("/api/v1/vehicles").json()["data"]}
    assert vins == {VIN_A, VIN_B}
    kept = Vehicle.objects.get(integration=feed, vin=VIN_B)
    assert (kept.year, kept.price, kept.model) == (None, None, "Focus")


def test_a_file_whose_rows_are_all_kept_ends_completed_with_warnings(feed, ingest, api):
    # Given a file whose every row is importable, one with an unreadable price
    log = ingest(feed, vauto_rows(ROW_A, (VIN_C, *ROW_KEPT[1:3], "2020", *ROW_KEPT[4:])))

    # When the user reads its log and filters the logs by the new status
    data = _log(api, feed, log)
    listed = api.get(f"/api/v1/integrations/{feed.pk}/logs?status=completed_with_warnings")

    # Then the file completed with warnings: both rows imported, one with its price left empty
    assert data["status"] == "completed_with_warnings"
    assert (data["recordsCreated"], data["recordsErrors"], data["recordsWarnings"]) == (2, 0, 1)
    assert [sample["field"] for sample in data["errorSamples"]] == ["price"]
    assert [entry["id"] for entry in listed.json()["data"]] == [str(log.pk)]

    # And for the integration the run succeeded: its job completed, its status is completed,
    # and the event says the file was processed
    job = SyncJob.objects.get(pk=log.job_id)
    assert job.status == "COMPLETED"
    assert (job.stats["vehicles"]["errors"], job.stats["vehicles"]["warned"]) == (0, 1)
    feed.refresh_from_db()
    assert (feed.status, feed.consecutive_failures, feed.last_error) == ("completed", 0, "")
    event = Event.objects.get(integration_id=feed.pk, type="integration.sync.completed")
    assert event.payload["file"]["status"] == "completed_with_warnings"
    assert event.payload["file"]["outcome"] == "processed"
    assert event.payload["file"]["recordsWarnings"] == 1


def test_events_say_whether_a_file_was_processed_or_rejected(feed, ingest):
    # Given a file with rejected rows and then one refused as a whole (a header, no rows)
    ingest(feed, vauto_rows(ROW_A, ROW_BAD))
    ingest(feed, "VIN,Stock #,Year\r\n")

    # Then the events of each name the file's status and outcome
    outcomes = sorted(
        (event.type, event.payload["file"]["status"], event.payload["file"]["outcome"])
        for event in Event.objects.filter(integration_id=feed.pk).exclude(
            type="integration.file.received"
        )
    )
    assert outcomes == [
        ("integration.file.processed", "completed_with_errors", "processed"),
        ("integration.file.rejected", "rejected", "rejected"),
        ("integration.sync.completed", "completed_with_errors", "processed"),
        ("integration.sync.failed", "rejected", "rejected"),
    ]


def test_a_file_with_warnings_is_the_previous_file_of_the_row_count_guard(feed, ingest):
    # Given a last file that completed with warnings (three rows, one without its price)
    first = ingest(feed, vauto_rows(ROW_A, ROW_KEPT, (VIN_C, *ROW_A[1:])))
    assert first.status == "completed_with_warnings"

    # When a file of a third of its size arrives
    small = ingest(feed, vauto_rows(ROW_A))

    # Then the guard compares with it and refuses the small file
    assert small.status == "rejected"
    assert "previous file's 3" in small.error


def test_a_canadian_feed_keeps_its_prices_and_their_currency(feed, ingest, api):
    # Given a dealer whose every price is written "48900.00 CAD"
    rows = [
        (VIN_A, "00123", "Used", 2019, "Honda", "Accord", "EX-L", "12,345", "48900.00 CAD", "", ""),
        (VIN_B, "00124", "New", 2024, "Ford", "F-150", "XLT", "5", "CAD 61,250.50", "", ""),
    ]

    # When the file is processed
    log = ingest(feed, vauto_rows(*rows))

    # Then every price is kept with its currency, and nothing was reported
    assert log.status == "completed", log.error
    assert (log.records_errors, log.records_warnings, log.error_samples) == (0, 0, [])
    vehicles = api.get("/api/v1/vehicles?sort=price:asc").json()["data"]
    assert [(v["vin"], v["price"], v["currency"]) for v in vehicles] == [
        (VIN_A, "48900.00", "CAD"),
        (VIN_B, "61250.50", "CAD"),
    ]
    in_cad = api.get("/api/v1/vehicles?currency=cad").json()["meta"]["pagination"]["total"]
    in_usd = api.get("/api/v1/vehicles?currency=USD").json()["meta"]["pagination"]["total"]
    assert (in_cad, in_usd) == (2, 0)


def test_a_price_without_a_currency_code_has_no_currency(feed, ingest, api):
    # Given prices written with "$" only, which several currencies use
    ingest(feed, vauto_rows(ROW_A))

    # Then the price is read and the currency is unknown rather than guessed
    [vehicle] = api.get("/api/v1/vehicles").json()["data"]
    assert (vehicle["price"], vehicle["currency"]) == ("12995.00", None)


def test_the_admin_lists_files_by_the_new_status(feed, ingest):
    # Given a file that completed, one that completed with warnings, and an operator
    ingest(feed, vauto_rows(ROW_A), filename="clean.csv")
    log = ingest(feed, vauto_rows(ROW_A, ROW_KEPT), filename="warned.csv")
    operator = Client()
    operator.force_login(UserFactory(account=None, is_staff=True, is_superuser=True))

    # When the operator filters the received files by that status
    url = reverse("admin:syncengine_feedfile_changelist") + "?status__exact=completed_with_warnings"
    response = operator.get(url)

    # Then only that file is listed, and its detail shows the counters
    assert response.status_code == 200
    assert "warned.csv" in response.content.decode()
    assert "clean.csv" not in response.content.decode()
    detail = operator.get(reverse("admin:syncengine_feedfile_change", args=[log.pk]))
    assert "Records warnings" in detail.content.decode()
