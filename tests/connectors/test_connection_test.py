"""POST /api/v1/integrations/connections/:connectionId/test against the local PostgreSQL."""

from collections.abc import Iterator

import pytest

from accounts.models import AuditEntry, Event
from accounts.services import Actor
from connectors.models import Connection
from connectors.services import connection_create, connection_update
from tests.factories import ConnectionFactory
from tests.pgscratch import PG_HOST, PG_PORT, PG_USER, scratch_database

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/connections"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with scratch_database("api", "CREATE TABLE vehicles (id integer PRIMARY KEY);") as name:
        yield name


def postgres_connection(account, database: str, **credentials) -> Connection:
    return connection_create(
        account=account,
        actor=Actor.system(),
        connector_id="postgres",
        name="Warehouse",
        config={"host": PG_HOST, "port": PG_PORT, "database": database},
        credentials={"user": PG_USER, **credentials},
    )


def endpoint(connection: Connection) -> str:
    return f"{URL}/{connection.pk}/test"


def connected_events(account):
    return Event.objects.filter(account=account, type="integration.connected")


def test_success_stores_the_result_and_records_connected_once(tenant, api, database):
    connection = postgres_connection(tenant.account, database)

    first = api.post(endpoint(connection))
    second = api.post(endpoint(connection))

    assert first.status_code == 200, first.content
    body = first.json()["data"]
    assert set(body) == {"success", "latency", "version", "permissions"}
    assert body["success"] is True
    assert isinstance(body["latency"], int)
    assert body["version"]
    assert body["permissions"] == ["read", "write"]
    assert second.status_code == 200
    connection.refresh_from_db()
    assert connection.status == "ACTIVE"
    assert connection.last_tested_at is not None
    assert connection.last_test_result == second.json()["data"]
    detail = api.get(f"{URL}/{connection.pk}").json()["data"]
    assert detail["lastTestedAt"] is not None
    events = list(connected_events(tenant.account))
    assert len(events) == 1
    assert events[0].payload == {
        "connection": {"id": str(connection.pk), "connectorId": "postgres", "name": "Warehouse"}
    }


def test_failure_sets_status_error_with_a_readable_error(tenant, api, database):
    connection = postgres_connection(tenant.account, "railyard_no_such_database")

    response = api.post(endpoint(connection))

    assert response.status_code == 200, response.content
    body = response.json()["data"]
    assert body["success"] is False
    assert body["error"] == 'Database "railyard_no_such_database" does not exist'
    assert body["permissions"] == []
    connection.refresh_from_db()
    assert connection.status == "ERROR"
    assert connection.last_test_result == body
    audit = AuditEntry.objects.filter(resource_type="connection", resource_id=str(connection.pk))
    assert audit.filter(action="updated").get().changes == {
        "status": {"before": "ACTIVE", "after": "ERROR"}
    }
    assert not connected_events(tenant.account).exists()


def test_first_success_after_a_failure_records_connected(tenant, api, database, monkeypatch):
    # Given a connection whose password refers to a variable that is later unset
    monkeypatch.setenv("RAILYARD_CONNECTOR_PG_PASSWORD", "")
    connection = postgres_connection(
        tenant.account, database, password="${RAILYARD_CONNECTOR_PG_PASSWORD}"
    )
    monkeypatch.delenv("RAILYARD_CONNECTOR_PG_PASSWORD")

    failed = api.post(endpoint(connection))
    connection_update(connection=connection, actor=Actor.system(), credentials={"password": None})
    succeeded = api.post(endpoint(connection))

    assert failed.json()["data"]["success"] is False
    assert failed.json()["data"]["error"] == (
        "credentials.password refers to ${RAILYARD_CONNECTOR_PG_PASSWORD}, which is not an "
        "environment variable this server provides to connections (CREDENTIAL_ENV_ALLOW)."
    )
    assert succeeded.json()["data"]["success"] is True
    connection.refresh_from_db()
    assert connection.status == "ACTIVE"
    assert connected_events(tenant.account).count() == 1


def test_feed_connector_has_nothing_to_test(tenant, api):
    connection = ConnectionFactory(account=tenant.account, connector_id="vauto")

    response = api.post(endpoint(connection))

    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "This connector has nothing to test: partners push files to Railyard."
    )
    connection.refresh_from_db()
    assert connection.last_tested_at is None
    assert connection.status == "ACTIVE"


def test_another_accounts_connection_is_404_and_untouched(tenant, other_tenant, database):
    connection = postgres_connection(tenant.account, database)

    response = other_tenant.client.post(endpoint(connection))

    assert response.status_code == 404
    connection.refresh_from_db()
    assert connection.last_tested_at is None
    assert connection.last_test_result is None
    assert not Event.objects.filter(type="integration.connected").exists()


def test_requires_authentication(anon_client, tenant, database):
    connection = postgres_connection(tenant.account, database)

    response = anon_client.post(endpoint(connection))

    assert response.status_code in (401, 403)
    connection.refresh_from_db()
    assert connection.last_tested_at is None
