"""Inventory feed providers that push files to Railyard's SFTP gateway.

They take no credentials from the user: creating an integration of one of these types issues
SFTP credentials instead. Their config carries the file options of the feed.
"""

from typing import Any

from connectors.choices import ConnectorCategory, SyncMode
from connectors.registry import Connector, register

FEED_FILE_OPTIONS: dict[str, Any] = {
    "columnDelimiter": {"type": "string", "minLength": 1, "maxLength": 1},
    "rowDelimiter": {"type": "string", "enum": ["\n", "\r\n", "\r"]},
    "includeHeader": {"type": "boolean"},
    "encoding": {"type": "string", "enum": ["utf-8", "windows-1252"]},
}


class FeedConnector(Connector):
    category = ConnectorCategory.INVENTORY
    features = ["sftp", "inventory", "vehicles"]
    entities = ["vehicles"]
    sync_modes = [SyncMode.FULL]
    config_properties = FEED_FILE_OPTIONS


@register
class VAutoFeed(FeedConnector):
    id = "vauto"
    name = "vAuto"
    description = "vAuto inventory export delivered nightly over SFTP."


@register
class HomeNetFeed(FeedConnector):
    id = "homenet"
    name = "HomeNet"
    description = "HomeNet Automotive inventory feed delivered over SFTP."


@register
class EleadFeed(FeedConnector):
    id = "elead"
    name = "Elead"
    description = "Elead CRM inventory export delivered over SFTP."


@register
class CustomCsvFeed(FeedConnector):
    id = "custom"
    name = "Custom CSV"
    description = "Any delimited inventory file, mapped with custom field mappings."


FEED_TYPES = tuple(connector.id for connector in (VAutoFeed, HomeNetFeed, EleadFeed, CustomCsvFeed))
