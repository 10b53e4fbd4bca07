"""Discovery: the entities a connection's source offers, with their fields, primary key, cursor
field and sync modes, kept on the connection (``Connection.discovered``) until refreshed.

Requests that name entities (a connection sync, an integration's sync tasks) are checked
against it: a name the cached list lacks refreshes it once before it is refused, so an entity
created since the last discovery is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from config.api.errors import InvalidInput, UpstreamError
from connectors.choices import SyncMode
from connectors.models import Connection
from connectors.registry import Connector, ConnectorError, EntitySpec, get_connector_for
from connectors.services import resolve_credentials


def entity_document(spec: EntitySpec, connector: type[Connector]) -> dict[str, Any]:
    """One entity as the API shows it; INCREMENTAL only where the entity can be read from a
    position (a cursor field, or a position the source hands back)."""
    fields = [
        {"name": field.name, "type": field.type, "nullable": field.nullable}
        for field in spec.field_specs
    ] or [{"name": name, "type": None, "nullable": True} for name in spec.fields]
    modes = [
        str(mode)
        for mode in connector.sync_modes
        if mode != SyncMode.INCREMENTAL or spec.incremental
    ]
    return {
        "name": spec.name,
        "primaryKey": list(spec.primary_key),
        "cursorField": spec.cursor_field,
        "syncModes": modes,
        "fields": fields,
    }


def _discover(connection: Connection) -> list[dict[str, Any]]:
    connector = get_connector_for(connection.connector_id, account_id=connection.account_id)
    if connector is None:
        raise UpstreamError(f"The connector {connection.connector_id!r} is not installed.")
    if not connector.is_source:
        # Feed types and destinations: their catalog entities, nothing to ask.
        return [
            entity_document(EntitySpec(name=name, primary_key=[]), connector)
            for name in connector.entities
        ]
    source = connector(config=connection.config, credentials=resolve_credentials(connection))
    try:
        specs = source.discover()
    except NotImplementedError:
        specs = [EntitySpec(name=name, primary_key=[]) for name in connector.entities]
    except ConnectorError as error:
        raise UpstreamError(
            f"Could not discover the entities of this connection: {error.message}",
            details={"retryable": [str(error.retryable).lower()]},
        ) from None
    return [entity_document(spec, connector) for spec in specs]


def connection_entities(*, connection: Connection, refresh: bool = False) -> list[dict[str, Any]]:
    """The connection's entities: the kept list, or a fresh discovery (kept) when there is none
    or ``refresh`` asks for one. ``UpstreamError`` when the source cannot be asked."""
    if connection.discovered is not None and not refresh:
        return list(connection.discovered)
    entities = _discover(connection)
    connection.discovered = entities
    connection.discovered_at = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        discovered=entities, discovered_at=connection.discovered_at
    )
    return entities


def entities_check(*, connection: Connection, names: Iterable[str], field: str) -> None:
    """Refuse (400 at ``field``) entity names the connection does not have, listing the ones it
    has. The kept list is refreshed once when a name is missing from it. A source that cannot
    be asked right now is not a reason to refuse: the run will say what is wrong."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    kept = connection.discovered is not None
    try:
        known = {entity["name"] for entity in connection_entities(connection=connection)}
        if kept and any(name not in known for name in wanted):
            known = {
                entity["name"]
                for entity in connection_entities(connection=connection, refresh=True)
            }
    except UpstreamError:
        return
    missing = [name for name in wanted if name not in known]
    if missing:
        listing = ", ".join(sorted(known)) or "none"
        raise InvalidInput(
            "Unknown entities for this connection.",
            details={
                field: [
                    f"{', '.join(missing)}: not an entity of this {connection.connector_id} "
                    f"connection; it has: {listing}."
                ]
            },
        )
