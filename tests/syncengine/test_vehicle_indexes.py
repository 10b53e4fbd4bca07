"""The vehicle table keeps the indexes the merge and the list's filters use, and no others: each
index costs every inserted vehicle (a first load inserts hundreds of thousands)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from syncengine.models import Vehicle
from tests.factories import DealershipFactory, IntegrationFactory
from tests.syncengine.conftest import vauto_rows
from tests.syncengine.test_pipeline import ROW_A, ROW_B, VIN_A

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="index names and plans are PostgreSQL's"
)


def test_the_vin_filter_ignores_case_and_spaces(feed, ingest, api):
    ingest(feed, vauto_rows(ROW_A, ROW_B))

    found = api.get("/api/v1/vehicles", {"vin": f"  {VIN_A.lower()[:8]} {VIN_A.lower()[8:]} "})

    assert [vehicle["vin"] for vehicle in found.json()["data"]] == [VIN_A]


def _indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [Vehicle._meta.db_table],
        )
        return dict(cursor.fetchall())


@on_postgresql
def test_only_the_indexes_the_merge_and_the_filters_use():
    definitions = _indexes()

    assert len(definitions) == 7, sorted(definitions)
    columns = sorted(definition.split(" USING btree ")[1] for definition in definitions.values())
    assert columns == [
        "(account_id, status)",
        "(account_id, stock_number)",
        "(account_id, upper((make)::text), upper((model)::text))",
        "(account_id, vin)",
        "(dealership_id)",
        "(id)",
        "(integration_id, key)",
    ]


@pytest.fixture
def inventory(tenant):
    """Six integrations of two dealerships with 100 vehicles each, analysed."""
    dealerships = [
        DealershipFactory(account=tenant.account, name=name) for name in ("North", "South")
    ]
    integrations = [
        IntegrationFactory(account=tenant.account, dealership=dealerships[number % 2])
        for number in range(6)
    ]
    makes = ["Honda", "Ford", "Toyota", "Kia", "BMW"]
    vehicles = []
    for number in range(600):
        integration = integrations[number % 6]
        vehicles.append(
            Vehicle(
                account=tenant.account,
                integration=integration,
                dealership=integration.dealership,
                key=f"1HGCM8263{number:08d}",
                vin=f"1HGCM8263{number:08d}",
                stock_number=f"{number:06d}",
                status=["active", "sold", "removed"][number % 3],
                make=makes[number % 5],
                model=f"Model {number % 40}",
                first_seen_at="2026-01-01T00:00:00Z",
                last_seen_at="2026-01-01T00:00:00Z",
            )
        )
    Vehicle.objects.bulk_create(vehicles)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Vehicle._meta.db_table}")
    return integrations


def _plan_of_list(api, params: dict[str, str]) -> str:
    """The plan of the page query ``GET /vehicles`` runs for ``params``, when a sequential scan
    is not an option: which index can serve the filter."""
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/vehicles", params)
    assert response.status_code == 200, response.content
    page = next(
        query["sql"]
        for query in queries.captured_queries
        if Vehicle._meta.db_table in query["sql"] and " LIMIT " in query["sql"]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute("EXPLAIN " + page)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("SET enable_seqscan = on")


@on_postgresql
@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"vin": "1hgcm826300000042"}, "vehicle_account_vin"),
        ({"stockNumber": "000042"}, "vehicle_account_stock"),
        ({"make": "ford", "model": "model 11"}, "vehicle_account_make_model"),
        ({"make": "FORD"}, "vehicle_account_make_model"),
        ({"status": "sold"}, "vehicle_account_status"),
        ({}, "vehicle_account_status"),
        ({"integrationId": "<integration>"}, "vehicle_integration_key"),
    ],
)
def test_each_list_filter_can_use_an_index(api, inventory, params, index):
    params = {
        name: str(inventory[0].pk) if value == "<integration>" else value
        for name, value in params.items()
    }

    plan = _plan_of_list(api, params)

    assert index in plan, plan


@on_postgresql
def test_the_dealership_filter_can_use_an_index(api, inventory):
    plan = _plan_of_list(api, {"dealershipId": str(inventory[0].dealership_id)})

    dealership_index = next(name for name in _indexes() if "dealership" in name)
    assert dealership_index in plan, plan
