"""The connectors Railyard ships as manifests (``manifests/*.yaml`` and ``*.json``), registered in
the catalog on import (``ConnectorsConfig.ready``). A shipped manifest that does not pass its
checks stops the start with every problem listed, rather than leaving its connector missing."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from connectors.declarative.connector import DeclarativeConnector, connector_class
from connectors.declarative.manifest import ManifestError, manifest_file_load
from connectors.registry import register

MANIFEST_DIR = Path(__file__).with_name("manifests")


def shipped_connectors() -> list[type[DeclarativeConnector]]:
    connectors = []
    for path in sorted(MANIFEST_DIR.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        try:
            connectors.append(connector_class(manifest_file_load(path)))
        except ManifestError as error:
            raise ImproperlyConfigured(error.message) from None
    return connectors


SHIPPED = [register(connector) for connector in shipped_connectors()]
