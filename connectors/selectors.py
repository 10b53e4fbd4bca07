"""Reads of the connector catalog and of an account's connections."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import status

from accounts.models import Account
from config.api.errors import ApplicationError, NotFound
from connectors.models import Connection, CustomConnector
from connectors.registry import (
    Connector,
    account_connectors,
    all_connectors,
    catalog_order,
    get_connector,
    get_connector_for,
)


class ShippedConnectorReadOnly(ApplicationError):
    """A change asked of a connector Railyard ships: only an account's own connectors change."""

    status_code = status.HTTP_405_METHOD_NOT_ALLOWED
    code = "METHOD_NOT_ALLOWED"


def connector_list(*, account: Account, category: str | None = None) -> list[type[Connector]]:
    """The catalog as ``account`` sees it (the shipped connectors and its own), optionally
    limited to one category, ordered by category and id."""
    return [
        connector
        for connector in sorted(
            [*all_connectors(), *account_connectors(account.pk)], key=catalog_order
        )
        if category is None or connector.category == category
    ]


def connector_get(*, account: Account, connector_id: str) -> type[Connector]:
    connector = get_connector_for(connector_id, account_id=account.pk)
    if connector is None:
        raise NotFound(f"No connector {connector_id!r} in the catalog.")
    return connector


def custom_connector_get(*, account: Account, connector_id: str) -> CustomConnector:
    """The account's own connector ``connector_id``, to change or delete it; a shipped one is
    ``ShippedConnectorReadOnly``, another account's or an unknown one ``NotFound``."""
    if get_connector(connector_id) is not None:
        raise ShippedConnectorReadOnly(
            f"The connector {connector_id!r} ships with Railyard and cannot be changed or "
            "deleted; register a manifest of your own under another id "
            "(POST /api/v1/integrations/connectors).",
            details={"connectorId": connector_id},
        )
    custom = CustomConnector.objects.filter(account=account, connector_id=connector_id).first()
    if custom is None:
        raise NotFound(f"No connector {connector_id!r} in the catalog.")
    return custom


def connection_list(*, account: Account) -> QuerySet[Connection]:
    """Every connection of one account; the only way the API reaches connections."""
    return Connection.objects.filter(account=account)
