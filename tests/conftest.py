"""Fixtures shared by every test: two tenants, each with an API client of its own."""

from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.choices import ApiKeyScope
from accounts.models import Account, ApiKey
from accounts.services import api_key_create
from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import Connector, get_connector, register
from tests.factories import AccountFactory


class ShopApiConnector(Connector):
    """A catalog entry for tests that need a non-feed connector (the real ones carry I/O)."""

    id = "test_shop_api"
    name = "Test Shop API"
    category = ConnectorCategory.API
    features = ["orders"]
    entities = ["orders", "customers"]
    sync_modes = [SyncMode.FULL, SyncMode.INCREMENTAL]
    credentials_schema = {
        "type": "object",
        "properties": {"apiKey": {"type": "string", "minLength": 8}},
        "required": ["apiKey"],
        "additionalProperties": False,
    }


if get_connector(ShopApiConnector.id) is None:
    register(ShopApiConnector)


@dataclass
class Tenant:
    account: Account
    api_key: ApiKey
    raw_key: str
    client: APIClient


def _tenant(name: str) -> Tenant:
    account = AccountFactory(name=name)
    # admin: the shared tenants' keys may do everything, managing API keys included.
    api_key, raw_key = api_key_create(account=account, name=f"{name} key", scope=ApiKeyScope.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return Tenant(account=account, api_key=api_key, raw_key=raw_key, client=client)


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters live in Redis; each test starts with fresh ones. Only this run's keys
    are deleted (the key prefix names the process): the Redis server may be shared."""
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    keys = list(client.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def tenant(db) -> Tenant:
    return _tenant("Acme Auto Group")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return _tenant("Rival Motors")


@pytest.fixture
def api(tenant) -> APIClient:
    return tenant.client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()
