"""Which entities an account exports, their columns and typed rows, and the files written from
them, on SQLite and PostgreSQL (on PostgreSQL also through COPY, which must write what the
writers write from typed rows)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.db import connection

from exports.entities import VEHICLES, entity_source, known_entities
from exports.formats import Column, ColumnType, ExportDataError, format_options, write_parts
from syncengine.models import Vehicle
from tests.exports.conftest import add_vehicle, put_records
from tests.factories import ConnectionFactory

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="COPY is PostgreSQL's"
)


def test_known_entities_are_vehicles_and_the_record_stores_entities(account):
    crm = ConnectionFactory(account=account, connector_id="postgres")
    put_records(account, "contracts", [("c1", {"a": 1})], connection=crm)
    put_records(account, "orders", [("o1", {"a": 1})])

    assert known_entities(account=account) == ["vehicles", "contracts", "orders"]
    assert known_entities(account=account, connection_id=crm.pk) == ["vehicles", "contracts"]


def test_an_entity_the_account_lacks_is_an_error_naming_the_ones_it_has(account):
    put_records(account, "contracts", [("c1", {"a": 1})])
    with pytest.raises(ExportDataError, match=r"No entity 'invoices'.*it has: vehicles, contracts"):
        entity_source(account=account, entity="invoices")


def test_vehicle_columns_are_the_apis_vehicle_fields(account):
    names = [column.name for column in entity_source(account=account, entity=VEHICLES).columns]
    assert names[:6] == ["id", "integrationId", "dealershipId", "key", "status", "vin"]
    assert "photoUrls" in names
    assert "bookValue" in names
    assert names[-7:] == [
        "extra",
        "firstSeenAt",
        "lastSeenAt",
        "soldAt",
        "removedAt",
        "createdAt",
        "updatedAt",
    ]


def test_vehicle_rows_are_typed_and_limited_to_the_fields_asked(integration):
    add_vehicle(integration, "V1", price=Decimal("15000.50"), photo_urls=["a.jpg"], certified=True)
    source = entity_source(
        account=integration.account,
        entity=VEHICLES,
        fields=["key", "price", "certified", "photoUrls", "integrationId", "lastSeenAt"],
    )
    assert list(source.rows()) == [
        (
            "V1",
            Decimal("15000.50"),
            True,
            ["a.jpg"],
            str(integration.pk),
            dt.datetime(2025, 3, 1, 8, 30, tzinfo=dt.UTC),
        )
    ]


RECORDS = [
    (
        "r1",
        {
            "id": 1,
            "amount": 10,
            "rate": 1.5,
            "active": True,
            "name": "Ann",
            "meta": {"a": 1},
            "mixed": 1,
            "tags": ["x"],
        },
    ),
    (
        "r2",
        {
            "id": 2,
            "amount": None,
            "rate": 2,
            "active": False,
            "name": "Bob",
            "meta": None,
            "mixed": "two",
        },
    ),
    ("r3", {"id": 3, "name": None, "late": "2025-01-01T00:00:00Z"}),
]


def test_record_columns_are_the_store_columns_and_the_fields_found_with_their_types(account):
    put_records(account, "customers", RECORDS)
    columns = entity_source(account=account, entity="customers").columns

    assert columns == [
        Column("_key"),
        Column("_integrationId"),
        Column("_connectionId"),
        Column("_createdAt", ColumnType.TIMESTAMP),
        Column("_updatedAt", ColumnType.TIMESTAMP),
        Column("active", ColumnType.BOOLEAN),
        Column("amount", ColumnType.INTEGER),
        Column("id", ColumnType.INTEGER),
        Column("late", ColumnType.STRING),
        Column("meta", ColumnType.JSON),
        Column("mixed", ColumnType.STRING),
        Column("name", ColumnType.STRING),
        Column("rate", ColumnType.FLOAT),
        Column("tags", ColumnType.JSON),
    ]


def test_record_rows_hold_the_records_values_as_their_columns_types(account):
    put_records(account, "customers", RECORDS)
    source = entity_source(account=account, entity="customers")
    rows = {row[0]: row for row in source.rows()}

    assert rows["r1"][5:] == (True, 10, 1, None, {"a": 1}, "1", "Ann", 1.5, ["x"])
    assert rows["r2"][5:] == (False, None, 2, None, None, "two", "Bob", 2.0, None)
    assert rows["r3"][5:] == (None, None, 3, "2025-01-01T00:00:00Z", None, None, None, None, None)
    assert rows["r1"][1] is None
    assert isinstance(rows["r1"][2], str)


def test_declared_fields_pick_store_columns_and_dotted_paths(account):
    put_records(account, "contracts", [("c1", {"data": {"plan": "gold", "seats": 3}}), ("c2", {})])
    source = entity_source(
        account=account, entity="contracts", fields=["_key", "data.seats", "data.plan"]
    )

    assert source.columns == [
        Column("_key"),
        Column("data.seats", ColumnType.INTEGER),
        Column("data.plan"),
    ]
    assert sorted(source.rows()) == [("c1", 3, "gold"), ("c2", None, None)]


def test_records_round_trip_through_each_format(account):
    put_records(account, "customers", RECORDS)
    source = entity_source(account=account, entity="customers", filter={"id": {"lte": 2}})

    files = write_files(source, "JSON")
    rows = sorted(json.loads(files[1]), key=lambda row: row["_key"])
    assert [row["_key"] for row in rows] == ["r1", "r2"]
    assert rows[0]["meta"] == {"a": 1}
    assert rows[0]["rate"] == 1.5
    assert rows[0]["active"] is True

    table = pq.read_table(io.BytesIO(write_files(source, "PARQUET")[1]))
    assert sorted(table.column("id").to_pylist()) == [1, 2]
    assert str(table.schema.field("active").type) == "bool"

    lines = list(csv.DictReader(io.StringIO(write_files(source, "CSV")[1].decode())))
    assert sorted(line["mixed"] for line in lines) == ["1", "two"]


def write_files(source, format_, options=None):
    files: dict[int, bytes] = {}

    @contextlib.contextmanager
    def open_sink(number):
        sink = io.BytesIO()
        yield sink
        files[number] = sink.getvalue()

    format_opts = format_options(format_, options or {})
    write_parts(
        format_opts, columns=source.columns, rows=source.stream(format_opts), open_sink=open_sink
    )
    return files


def test_a_one_column_export_keeps_its_missing_values(integration):
    # A blank line would be one missing value; CSV readers skip blank lines.
    add_vehicle(integration, "V1", trim="LX")
    add_vehicle(integration, "V2", trim=None)
    source = entity_source(account=integration.account, entity=VEHICLES, fields=["trim"])

    table = pq.read_table(io.BytesIO(write_files(source, "PARQUET")[1]))
    assert sorted(table.column("trim").to_pylist(), key=str) == ["LX", None]
    lines = write_files(source, "CSV")[1].decode().splitlines()
    assert sorted(lines) == ['""', "LX", "trim"]


# --- PostgreSQL's COPY writes what the writers write ------------------------------------------


@pytest.fixture
def tricky_lot(integration):
    add_vehicle(
        integration,
        "V1",
        description='Clean "one owner", call;\tnow\r\nSecond line\\ end ☃',
        trim="",
        features=['Sun "roof"', "back\\slash", "ünï"],
        photo_urls=["https://p.example/a,b.jpg", "https://p.example/c.jpg"],
        extra={"Dealer ID": "48213", "n": [1, 2.5]},
        certified=True,
        in_stock_date=dt.date(2025, 2, 3),
        sold_at=dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
        removed_at=dt.datetime(2025, 3, 4, 5, 6, 7, 890, tzinfo=dt.UTC),
        price=Decimal("24999.99"),
        msrp=Decimal("30000.00"),
    )
    add_vehicle(integration, "V2", description=None, model=None, price=None, certified=False)
    add_vehicle(integration, "V3", make="日本語", features=["a"], photo_urls=[])
    return integration.account


def generic_and_copy(account, format_, options=None):
    """The files from typed rows (the writers' own encoding) and from COPY."""
    source = entity_source(account=account, entity=VEHICLES)
    format_opts = format_options(format_, options or {})
    stream = source.stream(format_opts)
    assert stream.encoded is not None  # PostgreSQL encodes these rows itself
    copied = write_files(source, format_, options)[1]
    files: dict[int, bytes] = {}

    @contextlib.contextmanager
    def open_sink(number):
        sink = io.BytesIO()
        yield sink
        files[number] = sink.getvalue()

    write_parts(format_opts, columns=source.columns, rows=source.rows(), open_sink=open_sink)
    return files[1], copied


@postgres_only
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"quoteAll": True, "delimiter": ";", "lineEnding": "\r\n"},
        {"replaceTabWithSpace": True, "replaceNewlineWithSpace": True, "delimiter": "\t"},
        {"includeHeader": False, "compression": "gzip"},
    ],
)
def test_csv_through_copy_reads_back_as_the_writers_csv(tricky_lot, options):
    import gzip

    generic, copied = generic_and_copy(tricky_lot, "CSV", options)
    if options.get("compression") == "gzip":
        generic, copied = gzip.decompress(generic), gzip.decompress(copied)
    delimiter = options.get("delimiter", ",")

    def rows(data):
        return sorted(csv.reader(io.StringIO(data.decode(), newline=""), delimiter=delimiter))

    assert rows(copied) == rows(generic)
    assert len(rows(copied)) == 3 + options.get("includeHeader", True)
    ending = options.get("lineEnding", "\n").encode()
    assert copied.endswith(ending)
    assert generic.endswith(ending)
    if options.get("quoteAll"):
        assert copied.count(b'""') == generic.count(b'""')


@postgres_only
def test_parquet_through_copy_equals_the_writers_parquet(tricky_lot):
    generic, copied = generic_and_copy(tricky_lot, "PARQUET")
    generic_table, copied_table = (
        pq.read_table(io.BytesIO(generic)),
        pq.read_table(io.BytesIO(copied)),
    )

    assert copied_table.schema == generic_table.schema

    def rows(table):
        return sorted(table.to_pylist(), key=lambda row: row["key"])

    copied_rows, generic_rows = rows(copied_table), rows(generic_table)
    for copied_row, generic_row in zip(copied_rows, generic_rows, strict=True):
        # JSON text of objects may differ in layout; its content may not
        assert json.loads(copied_row.pop("extra")) == json.loads(generic_row.pop("extra"))
    assert copied_rows == generic_rows
    assert copied_rows[0]["features"] == ['Sun "roof"', "back\\slash", "ünï"]
    assert copied_rows[0]["trim"] == ""
    assert copied_rows[1]["model"] is None


@postgres_only
def test_copy_runs_the_compiled_filter_with_its_bound_values(tricky_lot):
    source = entity_source(
        account=tricky_lot,
        entity=VEHICLES,
        fields=["key", "price"],
        filter={
            "extra.Dealer ID": "48213",
            "price": {"gt": 20000},
            "features": {"contains": "ünï"},
        },
    )
    stream = source.stream(format_options("CSV"))
    assert stream.encoded is not None
    assert [bytes(row) for row in stream] == [b"V1,24999.99\n"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_copy_reads_on_its_own_connection_so_the_callers_stays_usable(integration):
    # Given committed vehicles, and no transaction open by the caller
    for key in ("V1", "V2"):
        add_vehicle(integration, key)
    source = entity_source(account=integration.account, entity=VEHICLES, fields=["key", "price"])
    stream = source.stream(format_options("CSV"))

    # When the caller writes progress between rows while COPY streams
    seen = []
    for row in stream:
        seen.append(bytes(row))
        Vehicle.objects.filter(key="V1").update(mileage=len(seen))

    # Then both worked
    assert sorted(seen) == [b"V1,31999.00\n", b"V2,31999.00\n"]
    assert Vehicle.objects.get(key="V1").mileage == 2
    assert connection.vendor == "postgresql"
