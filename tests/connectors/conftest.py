"""A connector that takes credentials, registered for the tests that need one.

The catalog's built-in connectors are SFTP feeds without credentials; secrets, references and
their validation need a connector whose schema declares some.
"""

import pytest

from connectors import http, registry
from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import Connector


class PaymentsApi(Connector):
    id = "test-payments"
    name = "Test Payments"
    category = ConnectorCategory.PAYMENTS
    features = ["payments", "invoices"]
    entities = ["customers", "invoices"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL]
    config_properties = {"accountRegion": {"type": "string", "enum": ["us", "eu"]}}
    credentials_schema = {
        "type": "object",
        "properties": {
            "apiKey": {"type": "string", "pattern": "^sk_(test|live)_[A-Za-z0-9]{8,}$"},
            "webhookSecret": {"type": "string", "minLength": 8},
        },
        "required": ["apiKey"],
        "additionalProperties": False,
    }


@pytest.fixture
def payments_connector(monkeypatch) -> type[Connector]:
    monkeypatch.setitem(registry._REGISTRY, PaymentsApi.id, PaymentsApi)
    return PaymentsApi


# The real storage servers (moto's S3, Azurite, OpenSSH sshd), each started once per test run.
from tests.servers import azurite, moto_s3, sshd  # noqa: E402, F401


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """Retry-After waits are recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(http, "sleep", recorded.append)
    return recorded
