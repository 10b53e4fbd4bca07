import json

import pytest

from accounts.models import AuditEntry
from accounts.services import Actor
from config.crypto import decrypt_json
from connectors.models import Connection
from connectors.services import connection_create
from integrations.models import FileImport, Integration
from tests.factories import ConnectionFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/integrations/connections"
API_KEY = "sk_live_Sup3rS3cretValue"
WEBHOOK_SECRET = "whsec_An0therS3cret"
CONNECTION_FIELDS = {
    "connectionId",
    "connectorId",
    "name",
    "status",
    "config",
    "credentialKeys",
    "lastSyncAt",
    "nextSyncAt",
    "lastTestedAt",
    "createdAt",
    "updatedAt",
}


def payments_payload(**overrides):
    return {
        "connectorId": "test-payments",
        "name": "Production Payments",
        "credentials": {"apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET},
        "config": {"syncInterval": "15m", "autoSync": True},
        **overrides,
    }


@pytest.fixture
def payments_connection(tenant, payments_connector):
    response = tenant.client.post(URL, payments_payload(), format="json")
    assert response.status_code == 201, response.content
    return Connection.objects.get(pk=response.json()["data"]["connectionId"])


def assert_no_secret(response):
    text = response.content.decode()
    assert API_KEY not in text
    assert WEBHOOK_SECRET not in text
    assert '"credentials"' not in text


# --- create ----------------------------------------------------------------------------------


def test_create_returns_201_without_credentials(tenant, api, payments_connector):
    response = api.post(URL, payments_payload(), format="json")

    assert response.status_code == 201, response.content
    assert_no_secret(response)
    body = response.json()["data"]
    assert set(body) == CONNECTION_FIELDS
    assert body["connectorId"] == "test-payments"
    assert body["name"] == "Production Payments"
    assert body["status"] == "ACTIVE"
    assert body["config"] == {"syncInterval": "15m", "autoSync": True}
    assert body["credentialKeys"] == ["apiKey", "webhookSecret"]
    assert body["lastSyncAt"] is None
    assert body["lastTestedAt"] is None
    connection = Connection.objects.get(pk=body["connectionId"])
    assert connection.account == tenant.account
    assert connection.credential_keys == ["apiKey", "webhookSecret"]


def test_credentials_are_encrypted_at_rest(api, payments_connector):
    response = api.post(URL, payments_payload(), format="json")

    connection = Connection.objects.get(pk=response.json()["data"]["connectionId"])
    assert API_KEY not in connection.credentials_encrypted
    assert WEBHOOK_SECRET not in connection.credentials_encrypted
    assert decrypt_json(connection.credentials_encrypted) == {
        "apiKey": API_KEY,
        "webhookSecret": WEBHOOK_SECRET,
    }


def test_create_feed_connection_without_credentials(api):
    response = api.post(
        URL,
        {"connectorId": "vauto", "name": "vAuto nightly", "config": {"columnDelimiter": "|"}},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()["data"]
    assert body["credentialKeys"] == []
    assert body["config"] == {"columnDelimiter": "|"}
    assert Connection.objects.get(pk=body["connectionId"]).stored_credentials() == {}


def test_create_can_start_inactive(api):
    response = api.post(
        URL, {"connectorId": "vauto", "name": "Paused", "status": "INACTIVE"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["data"]["status"] == "INACTIVE"


def test_create_is_audited_without_secrets(api, payments_connector):
    response = api.post(URL, payments_payload(), format="json")

    entry = AuditEntry.objects.get(resource_id=response.json()["data"]["connectionId"])
    assert entry.resource_type == "connection"
    assert entry.action == "created"
    assert entry.actor_type == "api_key"
    assert entry.changes["name"] == {"before": None, "after": "Production Payments"}
    assert entry.changes["connector_id"] == {"before": None, "after": "test-payments"}
    assert entry.changes["credentials"] == {
        "before": {},
        "after": {"apiKey": "***", "webhookSecret": "***"},
    }
    stored = json.dumps(entry.changes)
    assert API_KEY not in stored
    assert WEBHOOK_SECRET not in stored


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"config": {"syncInterval": "15x"}}, "config.syncInterval"),
        ({"config": {"autoSync": "yes"}}, "config.autoSync"),
        ({"config": {"accountRegion": "mars"}}, "config.accountRegion"),
        ({"connectorId": "no-such-connector"}, "connectorId"),
        ({"config": ["not", "an", "object"]}, "config"),
        ({"config": "15m"}, "config"),
        ({"credentials": "sk_live_x"}, "credentials"),
        ({"credentials": {"apiKey": "pk_wrong_prefix_1234"}}, "credentials.apiKey"),
        ({"credentials": {"webhookSecret": WEBHOOK_SECRET}}, "credentials.apiKey"),
        ({"credentials": {"apiKey": API_KEY, "extra": "x"}}, "credentials"),
        ({"status": "ERROR"}, "status"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_create_is_a_validation_error(api, payments_connector, overrides, field):
    response = api.post(URL, payments_payload(**overrides), format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert not Connection.objects.exists()
    assert not AuditEntry.objects.filter(resource_type="connection").exists()


def test_connector_id_and_name_are_required(api):
    response = api.post(URL, {}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"connectorId", "name"}


def test_validation_errors_do_not_echo_a_secret(api, payments_connector):
    bad_key = "sk_nope_TopS3cretButWrong"
    response = api.post(
        URL,
        payments_payload(credentials={"apiKey": bad_key, "webhookSecret": 12345678}),
        format="json",
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {"credentials.apiKey", "credentials.webhookSecret"}
    assert bad_key not in response.content.decode()
    assert "12345678" not in response.content.decode()


def test_env_reference_is_stored_as_given_and_skips_format_checks(
    api, payments_connector, monkeypatch
):
    monkeypatch.setenv("IOF_CONNECTOR_API_KEY", "short")
    monkeypatch.setenv("IOF_CONNECTOR_WEBHOOK_SECRET", "whsec_x")
    response = api.post(
        URL,
        payments_payload(
            credentials={
                "apiKey": "${IOF_CONNECTOR_API_KEY}",
                "webhookSecret": "${IOF_CONNECTOR_WEBHOOK_SECRET}",
            }
        ),
        format="json",
    )

    assert response.status_code == 201, response.content
    connection = Connection.objects.get(pk=response.json()["data"]["connectionId"])
    assert "IOF_CONNECTOR_API_KEY" not in connection.credentials_encrypted
    assert connection.stored_credentials() == {
        "apiKey": "${IOF_CONNECTOR_API_KEY}",
        "webhookSecret": "${IOF_CONNECTOR_WEBHOOK_SECRET}",
    }


# --- list and retrieve -----------------------------------------------------------------------


def test_list_is_paginated_and_scoped_to_the_account(tenant, other_tenant, api):
    ConnectionFactory.create_batch(3, account=tenant.account)
    ConnectionFactory(account=other_tenant.account)

    response = api.get(f"{URL}?limit=2")

    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 2
    assert body["meta"]["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    assert all(set(item) == CONNECTION_FIELDS for item in body["data"])


def test_list_never_shows_credentials(api, payments_connection):
    response = api.get(URL)

    assert response.status_code == 200
    assert_no_secret(response)
    assert response.json()["data"][0]["credentialKeys"] == ["apiKey", "webhookSecret"]


def test_list_filters_by_connector_and_status(tenant, api):
    vauto = ConnectionFactory(account=tenant.account, connector_id="vauto", status="ACTIVE")
    ConnectionFactory(account=tenant.account, connector_id="homenet", status="ACTIVE")
    paused = ConnectionFactory(account=tenant.account, connector_id="vauto", status="INACTIVE")

    by_connector = api.get(f"{URL}?connectorId=vauto").json()["data"]
    by_both = api.get(f"{URL}?connectorId=vauto&status=INACTIVE").json()["data"]

    assert {item["connectionId"] for item in by_connector} == {str(vauto.pk), str(paused.pk)}
    assert [item["connectionId"] for item in by_both] == [str(paused.pk)]


def test_list_rejects_an_unknown_status(api):
    response = api.get(f"{URL}?status=BROKEN")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert "status" in error["details"]


def test_list_sorts_by_name(tenant, api):
    for name in ["Charlie", "alpha", "Bravo"]:
        ConnectionFactory(account=tenant.account, name=name)

    ascending = api.get(f"{URL}?sort=name:asc").json()["data"]
    descending = api.get(f"{URL}?sort=name:desc").json()["data"]
    unknown = api.get(f"{URL}?sort=password:asc")

    assert [item["name"] for item in ascending] == sorted(["Charlie", "alpha", "Bravo"])
    assert [item["name"] for item in descending] == sorted(["Charlie", "alpha", "Bravo"])[::-1]
    assert unknown.status_code == 400


def test_retrieve(api, payments_connection):
    response = api.get(f"{URL}/{payments_connection.pk}")

    assert response.status_code == 200
    assert_no_secret(response)
    body = response.json()["data"]
    assert body["connectionId"] == str(payments_connection.pk)
    assert body["credentialKeys"] == ["apiKey", "webhookSecret"]


def test_retrieve_answers_with_a_trailing_slash(api, payments_connection):
    assert api.get(f"{URL}/{payments_connection.pk}/").status_code == 200


def test_malformed_id_is_404(api):
    response = api.get(f"{URL}/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


# --- update ----------------------------------------------------------------------------------


def test_patch_name_and_status(api, payments_connection):
    response = api.patch(
        f"{URL}/{payments_connection.pk}",
        {"name": "Renamed", "status": "INACTIVE"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert_no_secret(response)
    body = response.json()["data"]
    assert body["name"] == "Renamed"
    assert body["status"] == "INACTIVE"
    payments_connection.refresh_from_db()
    assert payments_connection.name == "Renamed"
    assert payments_connection.status == "INACTIVE"
    entry = AuditEntry.objects.get(resource_id=str(payments_connection.pk), action="updated")
    assert entry.changes == {
        "name": {"before": "Production Payments", "after": "Renamed"},
        "status": {"before": "ACTIVE", "after": "INACTIVE"},
    }


def test_patch_config_replaces_the_whole_object(api, payments_connection):
    response = api.patch(
        f"{URL}/{payments_connection.pk}", {"config": {"syncInterval": "1h"}}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["data"]["config"] == {"syncInterval": "1h"}
    payments_connection.refresh_from_db()
    assert payments_connection.config == {"syncInterval": "1h"}


def test_patch_credentials_merges_keys_and_removes_nulls(api, payments_connection):
    old_token = payments_connection.credentials_encrypted
    rotated = "sk_live_R0tatedKeyValue"

    response = api.patch(
        f"{URL}/{payments_connection.pk}",
        {"credentials": {"apiKey": rotated, "webhookSecret": None}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert rotated not in response.content.decode()
    assert response.json()["data"]["credentialKeys"] == ["apiKey"]
    payments_connection.refresh_from_db()
    assert payments_connection.credentials_encrypted != old_token
    assert rotated not in payments_connection.credentials_encrypted
    assert payments_connection.stored_credentials() == {"apiKey": rotated}
    assert payments_connection.credential_keys == ["apiKey"]
    entry = AuditEntry.objects.get(resource_id=str(payments_connection.pk), action="updated")
    assert entry.changes == {
        "credentials": {
            "before": {"apiKey": "***", "webhookSecret": "***"},
            "after": {"apiKey": "***"},
        }
    }
    assert rotated not in json.dumps(entry.changes)
    assert API_KEY not in json.dumps(entry.changes)


def test_patch_adding_one_credential_keeps_the_others(api, payments_connection):
    new_secret = "whsec_NewSecretValue"

    response = api.patch(
        f"{URL}/{payments_connection.pk}",
        {"credentials": {"webhookSecret": new_secret}},
        format="json",
    )

    assert response.status_code == 200
    payments_connection.refresh_from_db()
    assert payments_connection.stored_credentials() == {
        "apiKey": API_KEY,
        "webhookSecret": new_secret,
    }


def test_patch_cannot_remove_a_required_credential(api, payments_connection):
    response = api.patch(
        f"{URL}/{payments_connection.pk}", {"credentials": {"apiKey": None}}, format="json"
    )

    assert response.status_code == 400
    assert "credentials.apiKey" in response.json()["error"]["details"]
    payments_connection.refresh_from_db()
    assert payments_connection.stored_credentials()["apiKey"] == API_KEY


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"connectorId": "vauto"}, "connectorId"),
        ({"config": {"syncInterval": "15x"}}, "config.syncInterval"),
        ({"config": {"autoSync": "yes"}}, "config.autoSync"),
        ({"config": []}, "config"),
        ({"credentials": {"apiKey": "not-a-key"}}, "credentials.apiKey"),
        ({"status": "ERROR"}, "status"),
    ],
)
def test_invalid_patch_is_a_validation_error_and_changes_nothing(
    api, payments_connection, payload, field
):
    before = Connection.objects.values().get(pk=payments_connection.pk)

    response = api.patch(f"{URL}/{payments_connection.pk}", payload, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert Connection.objects.values().get(pk=payments_connection.pk) == before
    assert not AuditEntry.objects.filter(action="updated").exists()


def test_patch_with_the_same_connector_id_is_accepted(api, payments_connection):
    response = api.patch(
        f"{URL}/{payments_connection.pk}",
        {"connectorId": "test-payments", "name": "Same connector"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["data"]["connectorId"] == "test-payments"


def test_put_is_not_allowed(api, payments_connection):
    response = api.put(f"{URL}/{payments_connection.pk}", payments_payload(), format="json")

    assert response.status_code == 405


# --- delete ----------------------------------------------------------------------------------


def test_delete(api, payments_connection):
    response = api.delete(f"{URL}/{payments_connection.pk}")

    assert response.status_code == 204
    assert not Connection.objects.filter(pk=payments_connection.pk).exists()
    entry = AuditEntry.objects.get(resource_id=str(payments_connection.pk), action="deleted")
    assert entry.changes["name"] == {"before": "Production Payments", "after": None}
    assert entry.changes["credentials"] == {
        "before": {"apiKey": "***", "webhookSecret": "***"},
        "after": {},
    }
    assert API_KEY not in json.dumps(entry.changes)


def test_delete_of_a_connection_used_by_an_integration_is_409(tenant, api):
    connection = ConnectionFactory(account=tenant.account)
    integration = Integration.objects.create(
        account=tenant.account,
        name="vAuto feed",
        type="vauto",
        data_type="inventory",
        source_connection=connection,
    )

    response = api.delete(f"{URL}/{connection.pk}")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "CONFLICT"
    assert "still used" in error["message"]
    assert error["details"]["references"] == [{"type": "integration", "id": str(integration.pk)}]
    assert Connection.objects.filter(pk=connection.pk).exists()
    assert not AuditEntry.objects.filter(resource_id=str(connection.pk)).exists()


def test_delete_of_a_connection_used_by_a_file_import_is_409(tenant, api):
    connection = ConnectionFactory(account=tenant.account)
    FileImport.objects.create(account=tenant.account, name="Daily file", connection=connection)

    response = api.delete(f"{URL}/{connection.pk}")

    assert response.status_code == 409
    assert Connection.objects.filter(pk=connection.pk).exists()


# --- tenancy and authentication --------------------------------------------------------------


@pytest.fixture
def their_connection(other_tenant, payments_connector):
    return connection_create(
        account=other_tenant.account,
        actor=Actor.for_api_key(other_tenant.api_key),
        connector_id="test-payments",
        name="Theirs",
        credentials={"apiKey": API_KEY},
    )


def test_other_accounts_connection_is_not_listed(api, their_connection):
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["pagination"]["total"] == 0


def test_other_accounts_connection_is_404_on_get(api, their_connection):
    response = api.get(f"{URL}/{their_connection.pk}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert_no_secret(response)


def test_other_accounts_connection_is_404_on_patch_and_unchanged(api, their_connection):
    before = Connection.objects.values().get(pk=their_connection.pk)

    response = api.patch(
        f"{URL}/{their_connection.pk}",
        {"name": "Mine", "credentials": {"apiKey": "sk_live_Hijacked123"}},
        format="json",
    )

    assert response.status_code == 404
    assert Connection.objects.values().get(pk=their_connection.pk) == before
    assert not AuditEntry.objects.filter(
        resource_id=str(their_connection.pk), action="updated"
    ).exists()


def test_other_accounts_connection_is_404_on_delete_and_kept(api, their_connection):
    response = api.delete(f"{URL}/{their_connection.pk}")

    assert response.status_code == 404
    assert Connection.objects.filter(pk=their_connection.pk).exists()
    assert not AuditEntry.objects.filter(
        resource_id=str(their_connection.pk), action="deleted"
    ).exists()


@pytest.mark.parametrize(
    ("method", "detail"),
    [("get", False), ("post", False), ("get", True), ("patch", True), ("delete", True)],
)
def test_connections_need_an_api_key(anon_client, their_connection, method, detail):
    url = f"{URL}/{their_connection.pk}" if detail else URL

    response = getattr(anon_client, method)(url, {"name": "Anonymous"}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert list(Connection.objects.values_list("name", flat=True)) == ["Theirs"]
