"""The PostgreSQL connector against the local server, in a scratch database of its own."""

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from connectors.choices import ConnectorCategory
from connectors.postgres import PostgresConnector
from connectors.registry import ConnectorError, get_connector
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database

SCHEMA_SQL = """
CREATE TABLE vehicles (
    id integer PRIMARY KEY,
    vin text NOT NULL,
    price numeric(10, 2),
    updated_at timestamptz NOT NULL
);
CREATE VIEW vehicle_prices AS SELECT id, price, updated_at FROM vehicles;
CREATE TABLE dealers (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE vehicle_copies (
    id integer PRIMARY KEY,
    vin text,
    price numeric(10, 2),
    updated_at timestamptz,
    options jsonb
);
CREATE TABLE "Odd Name" ("Key" integer PRIMARY KEY, "modified_at" date);
INSERT INTO vehicles VALUES
    (1, 'VIN1', 10000.50, '2025-01-01T08:00:00Z'),
    (2, 'VIN2', 20000.00, '2025-01-03T08:00:00Z'),
    (3, 'VIN3', NULL, '2025-01-02T08:00:00Z'),
    (4, 'VIN4', 40000.00, '2025-01-15T23:30:00Z'),
    (5, 'VIN5', 50000.00, '2025-01-20T08:00:00Z');
INSERT INTO dealers VALUES ('d1', 'North'), ('d2', 'South');
INSERT INTO "Odd Name" VALUES (1, '2025-02-01');
"""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database("connector", SCHEMA_SQL) as name:
        yield name


def connector(database: str, **config) -> PostgresConnector:
    return PostgresConnector(
        config={"host": PG_HOST, "port": PG_PORT, "database": database, **config},
        credentials={"user": PG_USER},
    )


def rows(database: str, query: str) -> list[tuple]:
    with admin_connect(database) as conn:
        return conn.execute(query).fetchall()


# --- catalog -------------------------------------------------------------------------------


def test_registered_in_catalog():
    entry = get_connector("postgres")

    assert entry is PostgresConnector
    assert entry.category == ConnectorCategory.DATABASES
    assert entry.is_source
    assert entry.is_destination
    assert entry.secret_fields() == ["password", "user"]
    assert entry.validate_config({"host": "db", "database": "x", "sslmode": "bogus"}) == {
        "sslmode": ["'bogus' is not one of ['disable', 'prefer', 'require']"]
    }
    assert set(entry.validate_config({})) == {"host", "database"}


# --- test() ----------------------------------------------------------------------------------


def test_test_succeeds_with_version_and_permissions(database):
    result = connector(database).test()

    assert result.success is True, result.error
    assert result.error is None
    server_version = rows(database, "SHOW server_version")[0][0]
    assert result.version == server_version.split(" ")[0]
    assert result.permissions == ["read", "write"]
    assert result.latency_ms >= 0


def test_test_unknown_database_fails_readably(database):
    result = connector("railyard_no_such_database").test()

    assert result.success is False
    assert result.error == 'Database "railyard_no_such_database" does not exist'
    assert result.version is None
    assert result.permissions == []


def test_test_unknown_role_fails_readably(database):
    unknown_role = PostgresConnector(
        config={"host": PG_HOST, "port": PG_PORT, "database": database},
        credentials={"user": "railyard_no_such_role", "password": "wrong"},
    )

    result = unknown_role.test()

    assert result.success is False
    assert result.error == 'Role "railyard_no_such_role" does not exist'


def test_test_unknown_schema_fails(database):
    result = connector(database, schema="nowhere").test()

    assert result.success is False
    assert result.error == 'Schema "nowhere" does not exist in this database.'


def test_test_connection_refused_fails_without_raising(database):
    result = connector(database, port=1).test()

    assert result.success is False
    assert "Connection refused" in (result.error or "")


# --- discover() --------------------------------------------------------------------------------


def test_discover_lists_tables_and_views_with_keys_and_cursors(database):
    specs = {spec.name: spec for spec in connector(database).discover()}

    assert set(specs) == {"vehicles", "vehicle_prices", "dealers", "vehicle_copies", "Odd Name"}
    assert specs["vehicles"].primary_key == ["id"]
    assert specs["vehicles"].cursor_field == "updated_at"
    assert specs["vehicles"].fields == ["id", "vin", "price", "updated_at"]
    assert specs["vehicle_prices"].primary_key == []  # a view has no constraint
    assert specs["vehicle_prices"].cursor_field == "updated_at"
    assert specs["dealers"].primary_key == ["code"]
    assert specs["dealers"].cursor_field is None
    assert specs["Odd Name"].primary_key == ["Key"]
    assert specs["Odd Name"].cursor_field == "modified_at"


def test_discover_uses_configured_tables_keys_and_cursors(database):
    specs = connector(
        database,
        tables=["vehicle_prices", "dealers"],
        primaryKeys={"vehicle_prices": ["id"]},
        cursorFields={"dealers": "code"},
    ).discover()

    assert {spec.name: (spec.primary_key, spec.cursor_field) for spec in specs} == {
        "vehicle_prices": (["id"], "updated_at"),
        "dealers": (["code"], "code"),
    }


# --- read() ------------------------------------------------------------------------------------


def test_full_read_returns_every_row_in_cursor_order_in_batches(database):
    batches = list(connector(database).read("vehicles", batch_size=2))

    assert [len(batch.records) for batch in batches] == [2, 2, 1]
    records = [record for batch in batches for record in batch.records]
    assert [record["id"] for record in records] == [1, 3, 2, 4, 5]
    assert records[0] == {
        "id": 1,
        "vin": "VIN1",
        "price": "10000.50",
        "updated_at": "2025-01-01T08:00:00+00:00",
    }
    assert records[1]["price"] is None
    json.dumps(records)  # JSON-safe as they are
    assert [batch.cursor for batch in batches] == [
        "2025-01-02T08:00:00+00:00",
        "2025-01-15T23:30:00+00:00",
        "2025-01-20T08:00:00+00:00",
    ]


def test_incremental_read_returns_only_rows_after_the_cursor(database):
    batches = list(connector(database).read("vehicles", cursor="2025-01-02T08:00:00+00:00"))

    assert [record["id"] for batch in batches for record in batch.records] == [2, 4, 5]
    assert batches[-1].cursor == "2025-01-20T08:00:00+00:00"


def test_incremental_read_with_nothing_new_yields_nothing(database):
    batches = list(connector(database).read("vehicles", cursor="2025-01-20T08:00:00+00:00"))

    assert batches == []


def test_date_range_filters_the_cursor_column_including_the_end_day(database):
    batches = list(
        connector(database).read("vehicles", date_range=(date(2025, 1, 2), "2025-01-15"))
    )

    assert [record["id"] for batch in batches for record in batch.records] == [3, 2, 4]


def test_date_range_with_datetimes(database):
    window = (datetime(2025, 1, 2, 9, tzinfo=UTC), datetime(2025, 1, 20, 8, tzinfo=UTC))

    batches = list(connector(database).read("vehicles", date_range=window))

    assert [record["id"] for batch in batches for record in batch.records] == [2, 4, 5]


def test_read_view_and_quoted_names(database):
    view = list(connector(database).read("vehicle_prices"))
    odd = list(connector(database).read("Odd Name"))

    assert [record["id"] for record in view[0].records] == [1, 3, 2, 4, 5]
    assert odd[0].records == [{"Key": 1, "modified_at": "2025-02-01"}]
    assert odd[0].cursor == "2025-02-01"


def test_read_table_without_cursor_reads_in_key_order_but_not_incrementally(database):
    batches = list(connector(database).read("dealers"))

    assert batches[0].records == [{"code": "d1", "name": "North"}, {"code": "d2", "name": "South"}]
    assert batches[0].cursor is None
    with pytest.raises(ConnectorError) as raised:
        list(connector(database).read("dealers", cursor="d1"))
    assert raised.value.retryable is False
    assert "cursorFields.dealers" in raised.value.message


def test_unknown_entity_is_not_retryable(database):
    with pytest.raises(ConnectorError) as on_read:
        list(connector(database).read("vehicles; DROP TABLE vehicles"))
    with pytest.raises(ConnectorError) as on_write:
        connector(database).write("nope", [{"id": 1}])

    assert on_read.value.retryable is False
    assert "Unknown entity" in on_read.value.message
    assert on_write.value.retryable is False
    assert rows(database, "SELECT count(*) FROM vehicles") == [(5,)]


def test_entity_outside_configured_tables_is_unknown(database):
    with pytest.raises(ConnectorError) as raised:
        list(connector(database, tables=["dealers"]).read("vehicles"))

    assert raised.value.retryable is False


def test_connection_refused_is_retryable(database):
    with pytest.raises(ConnectorError) as on_read:
        list(connector(database, port=1).read("vehicles"))
    with pytest.raises(ConnectorError) as on_discover:
        connector(database, port=1).discover()

    assert on_read.value.retryable is True
    assert on_discover.value.retryable is True
    assert "Connection refused" in on_read.value.message


def test_unknown_database_is_not_retryable(database):
    with pytest.raises(ConnectorError) as raised:
        connector("railyard_no_such_database").discover()

    assert raised.value.retryable is False


# --- write() -------------------------------------------------------------------------------


def test_write_inserts_then_updates_by_primary_key(database):
    target = connector(database)

    written = target.write(
        "vehicle_copies",
        [
            {"id": 1, "vin": "VIN1", "price": "10000.50", "updated_at": "2025-01-01T08:00:00Z"},
            {"id": 2, "vin": "VIN2", "price": "20000", "options": {"sunroof": True}},
        ],
    )
    updated = target.write(
        "vehicle_copies",
        [
            {"id": 2, "price": "19500.00"},
            {"id": 3, "vin": "VIN3", "price": None, "updated_at": "2025-01-02T08:00:00Z"},
        ],
    )

    assert (written, updated) == (2, 2)
    assert rows(
        database, "SELECT id, vin, price::text, options FROM vehicle_copies ORDER BY id"
    ) == [
        (1, "VIN1", "10000.50", None),
        (2, "VIN2", "19500.00", {"sunroof": True}),  # a key left out keeps its value
        (3, "VIN3", None, None),
    ]


def test_write_round_trips_what_read_returns(database):
    records = [record for batch in connector(database).read("vehicles") for record in batch.records]

    connector(database).write("vehicle_copies", records)

    assert rows(
        database, "SELECT id, updated_at FROM vehicle_copies WHERE id IN (4, 5) ORDER BY id"
    ) == [
        (4, datetime(2025, 1, 15, 23, 30, tzinfo=UTC)),
        (5, datetime(2025, 1, 20, 8, tzinfo=UTC)),
    ]


def test_write_rejects_views_unknown_columns_and_missing_keys(database):
    target = connector(database)

    with pytest.raises(ConnectorError) as to_view:
        target.write("vehicle_prices", [{"id": 1}])
    with pytest.raises(ConnectorError) as unknown_column:
        target.write("dealers", [{"code": "d9", "colour": "red"}])
    with pytest.raises(ConnectorError) as missing_key:
        target.write("dealers", [{"name": "Keyless"}])

    assert "is a view" in to_view.value.message
    assert "colour" in unknown_column.value.message
    assert "code" in missing_key.value.message
    assert not any(error.value.retryable for error in (to_view, unknown_column, missing_key))
    assert rows(database, "SELECT code FROM dealers ORDER BY code") == [("d1",), ("d2",)]


def test_write_failure_writes_nothing(database):
    with pytest.raises(ConnectorError) as raised:
        connector(database).write(
            "dealers", [{"code": "d8", "name": "Fine"}, {"code": "d9", "name": None}]
        )

    assert raised.value.retryable is False  # NOT NULL violation: retrying cannot help
    assert rows(database, "SELECT code FROM dealers ORDER BY code") == [("d1",), ("d2",)]
