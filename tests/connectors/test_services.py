import pytest

from accounts.services import Actor
from config.api.errors import BadRequest
from connectors.services import connection_create, resolve_credentials

pytestmark = pytest.mark.django_db


@pytest.fixture
def referencing_connection(tenant, payments_connector, monkeypatch):
    # References must resolve when credentials are saved; the tests change them afterwards.
    monkeypatch.setenv("IOF_CONNECTOR_API_KEY", "sk_live_AtCreation")
    monkeypatch.setenv("IOF_CONNECTOR_WEBHOOK_SUFFIX", "atcreation")
    return connection_create(
        account=tenant.account,
        actor=Actor.system(),
        connector_id="test-payments",
        name="From the environment",
        credentials={
            "apiKey": "${IOF_CONNECTOR_API_KEY}",
            "webhookSecret": "whsec_${IOF_CONNECTOR_WEBHOOK_SUFFIX}",
        },
    )


def test_references_resolve_from_the_environment_when_called(monkeypatch, referencing_connection):
    monkeypatch.setenv("IOF_CONNECTOR_API_KEY", "sk_live_FromTheEnvironment")
    monkeypatch.setenv("IOF_CONNECTOR_WEBHOOK_SUFFIX", "tail123")

    credentials = resolve_credentials(referencing_connection)

    assert credentials == {
        "apiKey": "sk_live_FromTheEnvironment",
        "webhookSecret": "whsec_tail123",
    }
    assert referencing_connection.stored_credentials()["apiKey"] == "${IOF_CONNECTOR_API_KEY}"


def test_resolution_follows_the_environment_at_call_time(monkeypatch, referencing_connection):
    monkeypatch.setenv("IOF_CONNECTOR_WEBHOOK_SUFFIX", "x")
    monkeypatch.setenv("IOF_CONNECTOR_API_KEY", "sk_live_First000")
    first = resolve_credentials(referencing_connection)["apiKey"]
    monkeypatch.setenv("IOF_CONNECTOR_API_KEY", "sk_live_Second00")

    second = resolve_credentials(referencing_connection)["apiKey"]

    assert (first, second) == ("sk_live_First000", "sk_live_Second00")


def test_a_missing_variable_is_an_error_naming_it(monkeypatch, referencing_connection):
    monkeypatch.setenv("IOF_CONNECTOR_WEBHOOK_SUFFIX", "x")
    monkeypatch.delenv("IOF_CONNECTOR_API_KEY", raising=False)

    with pytest.raises(BadRequest) as raised:
        resolve_credentials(referencing_connection)

    assert raised.value.message == (
        "credentials.apiKey refers to ${IOF_CONNECTOR_API_KEY}, which is not an environment "
        "variable this server provides to connections (CREDENTIAL_ENV_ALLOW)."
    )
    assert raised.value.details == {
        "variable": "IOF_CONNECTOR_API_KEY",
        "field": "credentials.apiKey",
    }


def test_plain_values_pass_through(tenant, payments_connector):
    connection = connection_create(
        account=tenant.account,
        actor=Actor.system(),
        connector_id="test-payments",
        name="Literal key",
        credentials={"apiKey": "sk_test_LiteralValue"},
    )

    assert resolve_credentials(connection) == {"apiKey": "sk_test_LiteralValue"}
