"""Reads of the connector catalog and of an account's connections."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Account
from config.api.errors import NotFound
from connectors.models import Connection
from connectors.registry import Connector, all_connectors, get_connector


def connector_list(*, category: str | None = None) -> list[type[Connector]]:
    """The catalog, optionally limited to one category, ordered by category and id."""
    return [
        connector
        for connector in all_connectors()
        if category is None or connector.category == category
    ]


def connector_get(*, connector_id: str) -> type[Connector]:
    connector = get_connector(connector_id)
    if connector is None:
        raise NotFound(f"No connector {connector_id!r} in the catalog.")
    return connector


def connection_list(*, account: Account) -> QuerySet[Connection]:
    """Every connection of one account; the only way the API reaches connections."""
    return Connection.objects.filter(account=account)
