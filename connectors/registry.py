"""The connector catalog: connector classes in code, registered by id.

A connector declares what it is (id, name, category, features, entities, sync modes) and the
JSON Schemas of its ``config`` and ``credentials``. Credential properties are the secret fields:
they are encrypted at rest and never returned by the API.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jsonschema

from connectors.choices import ConnectorCategory, ConnectorStatus, SyncMode

# Keys every connection's config may carry, whatever the connector.
COMMON_CONFIG_PROPERTIES: dict[str, Any] = {
    "syncInterval": {
        "type": "string",
        "pattern": r"^[1-9][0-9]*[mhdw]$",
        "description": "How often to sync when autoSync is on: 15m, 1h, 1d, 1w.",
    },
    "autoSync": {"type": "boolean", "description": "Sync on the syncInterval schedule."},
}


class Connector:
    """Base class of every catalog entry."""

    id: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[ConnectorCategory]
    status: ClassVar[ConnectorStatus] = ConnectorStatus.AVAILABLE
    description: ClassVar[str] = ""
    features: ClassVar[list[str]] = []
    entities: ClassVar[list[str]] = []
    sync_modes: ClassVar[list[SyncMode]] = [SyncMode.FULL]
    # Connector-specific config keys (COMMON_CONFIG_PROPERTIES are always allowed).
    config_properties: ClassVar[dict[str, Any]] = {}
    config_required: ClassVar[list[str]] = []
    credentials_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {**COMMON_CONFIG_PROPERTIES, **cls.config_properties},
            "required": list(cls.config_required),
            "additionalProperties": True,
        }

    @classmethod
    def secret_fields(cls) -> list[str]:
        return sorted(cls.credentials_schema.get("properties", {}))

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, list[str]]:
        return _schema_errors(cls.config_schema(), config)

    @classmethod
    def validate_credentials(cls, credentials: dict[str, Any]) -> dict[str, list[str]]:
        return _schema_errors(cls.credentials_schema, credentials)


def _schema_errors(schema: dict[str, Any], value: Any) -> dict[str, list[str]]:
    """Map each invalid key (or ``_`` for the whole object) to readable messages."""
    errors: dict[str, list[str]] = {}
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.path)):
        key = ".".join(str(part) for part in error.path)
        if not key and error.validator == "required":
            # "'apiKey' is a required property" -> key it by the missing property
            key = str(error.message).split("'")[1] if "'" in error.message else "_"
        elif not key and error.validator == "additionalProperties":
            key = "_"
        errors.setdefault(key or "_", []).append(error.message)
    return errors


_REGISTRY: dict[str, type[Connector]] = {}


def register(connector: type[Connector]) -> type[Connector]:
    """Class decorator: add a connector to the catalog under its id."""
    if connector.id in _REGISTRY:
        raise ValueError(f"Connector id {connector.id!r} is registered twice.")
    _REGISTRY[connector.id] = connector
    return connector


def get_connector(connector_id: str) -> type[Connector] | None:
    return _REGISTRY.get(connector_id)


def all_connectors() -> list[type[Connector]]:
    return sorted(_REGISTRY.values(), key=lambda connector: (connector.category, connector.id))
