"""Discovery: ``GET /integrations/connections/:connectionId/entities`` against a real PostgreSQL
database, kept on the connection until refreshed, and sync requests checked against it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accounts.services import Actor
from connectors.models import Connection
from connectors.services import connection_create
from syncengine.models import SyncJob
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, admin_connect, scratch_database

SOURCE_SQL = """
CREATE TABLE parts (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price numeric(10, 2),
    weight double precision,
    active boolean NOT NULL,
    attributes jsonb,
    updated_at timestamptz NOT NULL
);
CREATE TABLE notes (code text PRIMARY KEY, body text);
"""


@pytest.fixture
def source() -> Iterator[str]:
    with scratch_database("discovery", SOURCE_SQL) as name:
        yield name


@pytest.fixture
def connection(tenant, source) -> Connection:
    return connection_create(
        account=tenant.account,
        actor=Actor.system("tests"),
        connector_id="postgres",
        name="Parts",
        config={"host": PG_HOST, "port": PG_PORT, "database": source},
        credentials={"user": PG_USER},
    )


def url(connection: Connection, suffix: str = "") -> str:
    return f"/api/v1/integrations/connections/{connection.pk}{suffix}"


def entities(api, connection: Connection, query: str = "") -> dict[str, dict]:
    answer = api.get(url(connection, f"/entities{query}"))
    assert answer.status_code == 200, answer.content
    return {entity["name"]: entity for entity in answer.json()["data"]}


def test_entities_have_their_fields_key_cursor_and_modes(api, connection):
    found = entities(api, connection)

    assert sorted(found) == ["notes", "parts"]
    parts = found["parts"]
    assert parts["primaryKey"] == ["id"]
    assert parts["cursorField"] == "updated_at"
    assert parts["syncModes"] == ["FULL", "INCREMENTAL", "SNAPSHOT"]
    assert parts["fields"] == [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "name", "type": "string", "nullable": False},
        {"name": "price", "type": "string", "nullable": True},  # numeric kept exact, as text
        {"name": "weight", "type": "number", "nullable": True},
        {"name": "active", "type": "boolean", "nullable": False},
        {"name": "attributes", "type": None, "nullable": True},
        {"name": "updated_at", "type": "string", "nullable": False},
    ]
    # Without a cursor column, no incremental reads.
    assert found["notes"]["cursorField"] is None
    assert found["notes"]["syncModes"] == ["FULL", "SNAPSHOT"]


def test_the_list_is_kept_until_refreshed(api, connection, source):
    entities(api, connection)
    with admin_connect(source) as conn:
        conn.execute("CREATE TABLE invoices (number integer PRIMARY KEY)")

    assert sorted(entities(api, connection)) == ["notes", "parts"]
    assert sorted(entities(api, connection, "?refresh=true")) == ["invoices", "notes", "parts"]
    assert Connection.objects.get(pk=connection.pk).discovered_at is not None


def test_a_sync_of_an_unknown_entity_is_a_400_listing_the_known_ones(api, connection):
    answer = api.post(url(connection, "/sync"), {"entities": ["partz"]}, format="json")

    assert answer.status_code == 400, answer.content
    [message] = answer.json()["error"]["details"]["entities"]
    assert "partz" in message
    assert "notes, parts" in message
    assert not SyncJob.objects.filter(connection=connection).exists()


def test_a_table_created_since_the_last_discovery_is_found_by_a_sync(api, connection, source):
    entities(api, connection)
    with admin_connect(source) as conn:
        conn.execute("CREATE TABLE invoices (number integer PRIMARY KEY)")

    answer = api.post(url(connection, "/sync"), {"entities": ["invoices"]}, format="json")

    assert answer.status_code == 202, answer.content
    assert "invoices" in entities(api, connection)


def test_a_source_that_cannot_be_asked_is_a_502(api, tenant):
    closed = connection_create(
        account=tenant.account,
        actor=Actor.system("tests"),
        connector_id="postgres",
        name="Closed port",
        config={"host": "127.0.0.1", "port": 9, "database": "none"},
        credentials={"user": PG_USER},
    )

    answer = api.get(url(closed, "/entities"))

    assert answer.status_code == 502, answer.content
    assert answer.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert Connection.objects.get(pk=closed.pk).discovered is None


def test_another_accounts_connection_is_a_404(other_tenant, connection):
    assert other_tenant.client.get(url(connection, "/entities")).status_code == 404
