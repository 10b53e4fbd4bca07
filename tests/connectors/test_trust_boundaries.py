"""What a tenant's connection may read and reach: the two chains that once let one API key read
every tenant's credentials (the platform's environment through ``${NAME}``, and the platform's own
database through a postgres connection), end to end through the API with real listeners."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from django.db import connection as platform_db

from accounts.services import Actor
from config.crypto import encrypt_json
from connectors.models import Connection
from connectors.services import connection_create
from connectors.sftp_pull import SftpPullConnector
from syncengine.choices import JobStatus
from syncengine.models import Record
from syncengine.sync.launch import connection_sync_start
from syncengine.sync.runner import sync_job_run
from tests.connectors.fakehttp import Request, json_server

URL = "/api/v1/integrations/connections"
pytestmark = pytest.mark.django_db
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def listener() -> Iterator[tuple[str, list[Request]]]:
    """A real HTTP API on 127.0.0.1 that records what it receives."""
    received: list[Request] = []

    def answer(request: Request):
        received.append(request)
        return 200, {}, {"data": []}

    with json_server(answer) as url:
        yield url, received


@pytest.fixture
def production_default(settings):
    """The egress policy of an installation that configured nothing."""
    settings.EGRESS_ALLOW = ""
    settings.EGRESS_DENY = ""
    return settings


def http_json_payload(url: str, token: str) -> dict:
    return {
        "connectorId": "http_json",
        "name": "Partner API",
        "config": {"baseUrl": url},
        "credentials": {"authType": "bearer", "token": token},
    }


# --- the platform's environment --------------------------------------------------------------


@pytest.mark.parametrize("name", ["FIELD_ENCRYPTION_KEY", "SECRET_KEY", "DATABASE_URL"])
def test_a_reference_to_a_platform_secret_is_refused_at_create(api, listener, settings, name):
    url, received = listener
    settings.CREDENTIAL_ENV_ALLOW = "*"  # even when the operator allows every name

    response = api.post(URL, http_json_payload(url, f"${{{name}}}"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "credentials.token": [
            f"credentials.token refers to ${{{name}}}, which is not an environment variable this "
            "server provides to connections (CREDENTIAL_ENV_ALLOW)."
        ]
    }
    assert settings.FIELD_ENCRYPTION_KEY not in response.content.decode()
    assert not Connection.objects.exists()
    assert received == []


def test_a_disallowed_name_and_an_unset_name_answer_alike(api, listener, monkeypatch):
    url, _ = listener
    monkeypatch.delenv("IOF_CONNECTOR_NOT_SET", raising=False)

    answers = [
        api.post(URL, http_json_payload(url, f"${{{name}}}"), format="json").json()
        for name in ("SECRET_KEY", "IOF_CONNECTOR_NOT_SET")
    ]

    assert str(answers[0]).replace("SECRET_KEY", "X") == str(answers[1]).replace(
        "IOF_CONNECTOR_NOT_SET", "X"
    )


def test_a_stored_reference_to_a_platform_secret_is_never_sent(tenant, api, listener, settings):
    # Given a connection saved before references were restricted, pointing at a real listener
    url, received = listener
    connection = Connection.objects.create(
        account=tenant.account,
        connector_id="http_json",
        name="Old connection",
        config={"baseUrl": url},
        credentials_encrypted=encrypt_json(
            {"authType": "bearer", "token": "${FIELD_ENCRYPTION_KEY}"}
        ),
        credential_keys=["authType", "token"],
    )

    # When the tenant tests it
    response = api.post(f"{URL}/{connection.pk}/test")

    # Then nothing reached the listener and the answer does not hold the key
    assert response.status_code == 200
    assert response.json()["data"]["success"] is False
    assert "CREDENTIAL_ENV_ALLOW" in response.json()["data"]["error"]
    assert received == []
    assert settings.FIELD_ENCRYPTION_KEY not in response.content.decode()


def test_an_allowed_reference_is_sent_to_the_listener(api, listener, monkeypatch):
    url, received = listener
    monkeypatch.setenv("RAILYARD_CONNECTOR_PARTNER_TOKEN", "partner-token-123")
    created = api.post(
        URL, http_json_payload(url, "${RAILYARD_CONNECTOR_PARTNER_TOKEN}"), format="json"
    )
    assert created.status_code == 201, created.content

    response = api.post(f"{URL}/{created.json()['data']['connectionId']}/test")

    assert response.json()["data"]["success"] is True
    assert [request.headers["authorization"] for request in received] == [
        "Bearer partner-token-123"
    ]


# --- the platform's network ------------------------------------------------------------------


def test_a_loopback_api_is_refused_by_default_and_never_contacted(
    api, listener, production_default
):
    url, received = listener
    created = api.post(URL, http_json_payload(url, "token"), format="json")

    response = api.post(f"{URL}/{created.json()['data']['connectionId']}/test")

    assert response.status_code == 200
    port = url.rsplit(":", 1)[1]
    assert response.json()["data"]["success"] is False
    assert response.json()["data"]["error"] == (
        f"Connections to 127.0.0.1:{port} are refused by the egress policy: "
        "127.0.0.1 is a loopback address."
    )
    assert received == []


def _platform_database_connection(account) -> Connection:
    settings_dict = platform_db.settings_dict
    return connection_create(
        account=account,
        actor=Actor.system(),
        connector_id="postgres",
        name="Looks like a warehouse",
        config={
            "host": settings_dict["HOST"] or "127.0.0.1",
            "port": int(settings_dict["PORT"] or 5432),
            "database": settings_dict["NAME"],
        },
        credentials={"user": settings_dict["USER"] or "postgres"},
    )


@pytest.mark.skipif(
    platform_db.vendor != "postgresql", reason="the platform's database here is not PostgreSQL"
)
def test_the_platforms_own_database_is_refused_even_when_loopback_is_allowed(tenant, api, settings):
    # Given an installation that lets connections reach loopback (development), and a tenant's
    # postgres connection to the platform's own database
    settings.EGRESS_ALLOW = "127.0.0.0/8,::1"
    settings.EGRESS_DENY = ""
    connection = _platform_database_connection(tenant.account)

    # When the tenant tests it and syncs the table of every tenant's connections
    tested = api.post(f"{URL}/{connection.pk}/test").json()["data"]
    job = connection_sync_start(
        connection=connection, actor=Actor.system(), entities=["connectors_connection"]
    )
    sync_job_run(job.pk)
    job.refresh_from_db()

    # Then both are refused as the platform's own database, and nothing was read
    port = platform_db.settings_dict["PORT"] or 5432
    assert tested["success"] is False
    assert f":{port} is Railyard's own database" in tested["error"]
    assert job.status == JobStatus.FAILED
    assert "Railyard's own database" in str(job.error)
    assert not Record.objects.exists()


def test_a_postgres_socket_path_is_refused(tenant, api):
    connection = connection_create(
        account=tenant.account,
        actor=Actor.system(),
        connector_id="postgres",
        name="Local socket",
        config={"host": "/var/run/postgresql", "database": "postgres"},
        credentials={"user": "postgres"},
    )

    tested = api.post(f"{URL}/{connection.pk}/test").json()["data"]

    assert tested["success"] is False
    assert "only network host names and addresses are allowed" in tested["error"]


def test_an_sftp_server_on_loopback_is_refused_by_default_and_never_contacted(
    production_default,
):
    # Given a TCP listener counting the connections it accepts
    accepted: list[object] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def accept() -> None:
        with contextlib.suppress(OSError):  # nothing came within the timeout
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    connector = SftpPullConnector(
        config={
            "host": "127.0.0.1",
            "port": server.getsockname()[1],
            "username": "partner",
            "hostKey": HOST_KEY,
        },
        credentials={"password": "secret"},
    )

    result = connector.test()
    thread.join()
    server.close()

    assert result.success is False
    assert "refused by the egress policy" in str(result.error)
    assert accepted == []
