"""The feed API: logs, reprocessing, field mappings, vehicles — and tenant isolation of each."""

import csv
import io

import pytest

from syncengine.models import FeedFile, Vehicle
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, ROW_C, VIN_A

pytestmark = pytest.mark.django_db

LOG_FIELDS = {
    "id",
    "filename",
    "size",
    "sha256",
    "receivedAt",
    "processedAt",
    "status",
    "recordsTotal",
    "recordsCreated",
    "recordsUpdated",
    "recordsUnchanged",
    "recordsRemoved",
    "recordsSold",
    "recordsSkipped",
    "recordsErrors",
    "warnings",
    "durationMs",
    "error",
    "errorSamples",
}


def test_logs_list_newest_first_with_every_field(feed, ingest, api):
    ingest(feed, vauto_rows(ROW_A), filename="monday.csv")
    ingest(feed, vauto_rows(ROW_A, ROW_B), filename="tuesday.csv")

    response = api.get(f"/api/v1/integrations/{feed.pk}/logs")

    assert response.status_code == 200
    logs = response.json()["data"]
    assert [log["filename"] for log in logs] == ["tuesday.csv", "monday.csv"]
    assert set(logs[0]) >= LOG_FIELDS
    assert logs[0]["recordsTotal"] == 2
    assert response.json()["meta"]["pagination"]["total"] == 2
    assert (
        api.get(f"/api/v1/integrations/{feed.pk}/logs?status=completed").json()["meta"][
            "pagination"
        ]["total"]
        == 2
    )


def test_rejected_rows_download_as_csv(feed, ingest, api):
    log = ingest(
        feed, vauto_rows(ROW_A, ("", "", "Used", 2019, "Honda", "Civic", "", "", "", "", ""))
    )

    response = api.get(f"/api/v1/integrations/{feed.pk}/logs/{log.pk}/errors.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["row"] == "2"
    assert rows[0]["Model"] == "Civic"


def test_mapping_preview_shows_the_effective_mapping_and_rows(feed, upload, api):
    upload(
        feed,
        f"VIN,Stock #,Asking,Lot,Photo Url List\r\n"
        f'{VIN_A},00123,"$9,999",North,https://img.example.com/1.jpg|https://img.example.com/2.jpg\r\n',
    )
    api.patch(f"/api/v1/mappings/{feed.pk}", {"mappings": {"Asking": "price"}}, format="json")

    response = api.get(f"/api/v1/mappings/{feed.pk}/preview")

    assert response.status_code == 200, response.content
    data = response.json()["data"]
    by_source = {column["source"]: column for column in data["columns"]}
    assert by_source["VIN"]["field"] == "vin"
    assert by_source["VIN"]["origin"] == "default"
    assert (by_source["Asking"]["field"], by_source["Asking"]["origin"]) == ("price", "custom")
    assert data["unmappedColumns"] == ["Lot"]
    assert "mileage" in data["unmappedFields"]
    assert data["rows"][0]["vin"] == VIN_A
    assert data["rows"][0]["stockNumber"] == "00123"
    assert data["rows"][0]["extra"] == {"Lot": "North"}
    assert data["rows"][0]["photoUrls"] == [
        "https://img.example.com/1.jpg",
        "https://img.example.com/2.jpg",
    ]
    assert data["rows"][0]["features"] == []
    assert data["rows"][0]["mileage"] is None


def test_mapping_update_validates_fields_and_null_removes(feed, api):
    bad = api.patch(
        f"/api/v1/mappings/{feed.pk}", {"mappings": {"Asking": "askingPrice"}}, format="json"
    )
    set_ = api.patch(
        f"/api/v1/mappings/{feed.pk}",
        {"mappings": {"Asking": "price", "Lot": "trim"}},
        format="json",
    )
    removed = api.patch(f"/api/v1/mappings/{feed.pk}", {"mappings": {"Lot": None}}, format="json")

    assert bad.status_code == 400
    assert "mappings.Asking" in bad.json()["error"]["details"]
    assert set_.status_code == 200
    assert set_.json()["data"] == {
        "integrationId": str(feed.pk),
        "mappings": {"Asking": "price", "Lot": "trim"},
    }
    assert removed.json()["data"]["mappings"] == {"Asking": "price"}


def test_preview_of_an_unreadable_file_reports_it(feed, upload, api):
    upload(feed, b"\x00\x01\x02 not a feed \x00" * 100, filename="garbage.csv")

    response = api.get(f"/api/v1/mappings/{feed.pk}/preview")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["filename"] == "garbage.csv"
    assert data["error"]
    assert data["rows"] == []


def test_preview_without_any_file(feed, api):
    data = api.get(f"/api/v1/mappings/{feed.pk}/preview").json()["data"]

    assert data["fileId"] is None
    assert data["rows"] == []


class TestVehicles:
    def test_filters_sorting_and_detail(self, feed, ingest, api):
        ingest(feed, vauto_rows(ROW_A, ROW_B, ROW_C))

        cheap = api.get("/api/v1/vehicles?maxPrice=20000")
        fords = api.get("/api/v1/vehicles?make=ford")
        by_price = api.get("/api/v1/vehicles?sort=price:desc")
        used = api.get(f"/api/v1/vehicles?condition=used&integrationId={feed.pk}")
        detail = api.get(f"/api/v1/vehicles/{Vehicle.objects.get(vin=VIN_A).pk}")

        assert [v["vin"] for v in cheap.json()["data"]] == [VIN_A]
        assert [v["model"] for v in fords.json()["data"]] == ["F-150"]
        assert [v["price"] for v in by_price.json()["data"]][:2] == ["48500.00", "12995.00"]
        assert used.json()["meta"]["pagination"]["total"] == 2
        assert detail.json()["data"]["stockNumber"] == "00123"
        assert api.get("/api/v1/vehicles?status=parked").status_code == 400

    def test_history(self, feed, ingest, api):
        feed.sync_settings = {**feed.sync_settings, "track_history": True}
        feed.save()
        ingest(feed, vauto_rows(ROW_A))
        vehicle = Vehicle.objects.get(vin=VIN_A)

        response = api.get(f"/api/v1/vehicles/{vehicle.pk}/history")

        assert response.status_code == 200
        assert [v["changeType"] for v in response.json()["data"]] == ["created"]

    def test_deleting_the_integration_keeps_its_vehicles(self, feed, ingest, api):
        ingest(feed, vauto_rows(ROW_A, ROW_B))

        api.delete(f"/api/v1/integrations/{feed.pk}")

        assert api.get("/api/v1/vehicles").json()["meta"]["pagination"]["total"] == 2


class TestTenantIsolation:
    @pytest.fixture
    def theirs(self, other_tenant, ingest):
        from tests.factories import DealershipFactory, IntegrationFactory

        integration = IntegrationFactory(
            account=other_tenant.account, dealership=DealershipFactory(account=other_tenant.account)
        )
        log = ingest(integration, vauto_rows(ROW_A))
        return integration, log

    def test_their_logs_mappings_and_vehicles_are_404(self, api, theirs):
        integration, log = theirs
        vehicle = Vehicle.objects.get(integration=integration)

        for method, url, body in [
            ("get", f"/api/v1/integrations/{integration.pk}/logs", None),
            ("get", f"/api/v1/integrations/{integration.pk}/logs/{log.pk}", None),
            ("get", f"/api/v1/integrations/{integration.pk}/logs/{log.pk}/errors.csv", None),
            ("post", f"/api/v1/integrations/{integration.pk}/logs/{log.pk}/reprocess", {}),
            ("get", f"/api/v1/mappings/{integration.pk}/preview", None),
            ("patch", f"/api/v1/mappings/{integration.pk}", {"mappings": {"X": "vin"}}),
            ("get", f"/api/v1/vehicles/{vehicle.pk}", None),
            ("get", f"/api/v1/vehicles/{vehicle.pk}/history", None),
        ]:
            response = getattr(api, method)(url, body, format="json")
            assert response.status_code == 404, (method, url, response.status_code)
        assert api.get("/api/v1/vehicles").json()["data"] == []
        assert FeedFile.objects.filter(integration=integration).count() == 1
        assert not integration.file_imports.exists()
