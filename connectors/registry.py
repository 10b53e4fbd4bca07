"""The connector catalog: connector classes in code, registered by id.

A connector declares what it is (id, name, category, features, entities, sync modes) and the
JSON Schemas of its ``config`` and ``credentials``. Credential properties are the secret fields:
they are encrypted at rest and never returned by the API.

Besides the connectors Railyard ships, an account may register its own as a manifest
(``connectors.models.CustomConnector``); ``get_connector_for`` finds those for the account
that owns them, and only for it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
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


class ConnectorError(Exception):
    """A connector failed. ``retryable`` says whether trying again later can help (timeouts,
    5xx, 429, a dropped connection: yes; bad credentials, a missing table, other 4xx: no)."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class TestResult:
    """What ``Connector.test()`` found (the connection test's answer)."""

    success: bool
    latency_ms: int
    version: str | None = None
    permissions: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class FieldSpec:
    """A field of an entity as discovery reports it: its JSON Schema type (``string``,
    ``integer``, ``number``, ``boolean``, ``object``, ``array``; None when the source does not
    say) and whether it may be null."""

    name: str
    type: str | None = None
    nullable: bool = True


@dataclass(frozen=True)
class EntitySpec:
    """An entity a source offers: its name, primary key and the cursor for incremental reads."""

    name: str
    primary_key: list[str]
    cursor_field: str | None = None
    fields: list[str] = field(default_factory=list)
    # The fields with their types, when the source knows them (a database's columns).
    field_specs: tuple[FieldSpec, ...] = ()
    # Whether read() returns records in cursor order, so that a run can resume after any batch.
    # A source that pages in its own order (a generic API, Stripe's newest first) has its
    # cursor saved only once the whole entity is read.
    ordered: bool = True
    # Whether INCREMENTAL reads are possible without a cursor field: the source keeps the
    # position itself and hands it back (a sync cursor such as Plaid's).
    position_kept_by_source: bool = False

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None or self.position_kept_by_source


@dataclass
class ReadBatch:
    """A batch of records read from a source, in cursor order.

    ``cursor`` is the highest cursor value of this batch and every batch before it: committing
    the batch and then saving ``cursor`` lets a retried job resume after it, not from the start.
    """

    records: list[dict[str, Any]]
    cursor: Any = None


@dataclass
class CopyBatch:
    """A batch of records as lines of PostgreSQL's ``COPY`` text format, for bulk loading:
    each line holds the leading values the caller asked for, the record's key, its JSON text and
    a 64-bit hash of that text, tab-separated.

    ``cursor`` is safe to resume after: every record whose cursor value is at most it is in this
    batch or an earlier one (records sharing the batch's last value may go on in the next batch).
    ``highest`` is the last cursor value read so far.
    """

    lines: bytes
    count: int
    cursor: Any = None
    highest: Any = None


class Connector:
    """Base class of every catalog entry.

    Class attributes describe the connector for the catalog. Connectors that move data are also
    instantiated with a connection's config and resolved credentials and implement ``test()``,
    ``discover()`` and ``read()`` (and ``write()`` for destinations); their errors are
    ``ConnectorError``. Feed types (files pushed over SFTP) only describe themselves.
    """

    id: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[ConnectorCategory]
    status: ClassVar[ConnectorStatus] = ConnectorStatus.AVAILABLE
    # Registered by an account from its own manifest rather than shipped with Railyard.
    custom: ClassVar[bool] = False
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

    is_source: ClassVar[bool] = False
    is_destination: ClassVar[bool] = False
    # A destination that can remove records (``delete()``): a full overwrite forwards the records
    # the source no longer has.
    supports_delete: ClassVar[bool] = False
    # Whether read() honours ``date_range`` (a job's dateRange, a rolling window).
    filters_by_date: ClassVar[bool] = False
    # A source of files rather than records: it feeds an inventory integration's file pipeline
    # (``syncengine.feeds.pull``), so its connections do not sync into a record store of their own.
    feeds_files: ClassVar[bool] = False
    # A destination of files rather than records: it delivers whole files atomically through
    # ``upload()`` (see ``connectors.files.FileDestination``), for exports and file imports.
    writes_files: ClassVar[bool] = False

    def __init__(self, *, config: dict[str, Any], credentials: dict[str, Any]) -> None:
        self.config = config
        self.credentials = credentials

    def test(self) -> TestResult:
        """Reach the system with the credentials; never raises (failures are in the result)."""
        raise NotImplementedError

    def discover(self) -> list[EntitySpec]:
        """The entities this connection can read."""
        raise NotImplementedError

    def read(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[ReadBatch]:
        """Records of ``entity`` in cursor order. ``cursor`` None reads everything (FULL);
        otherwise only records whose cursor field is greater (INCREMENTAL)."""
        raise NotImplementedError

    def write(self, entity: str, records: list[dict[str, Any]]) -> int:
        """Upsert records into ``entity`` of a destination; returns how many were written."""
        raise NotImplementedError

    def count(
        self, entity: str, *, cursor: Any = None, date_range: tuple[Any, Any] | None = None
    ) -> int | None:
        """How many records ``read()`` with the same arguments would return, or None when the
        source cannot tell without reading them (progress then shows no total)."""
        return None

    def delete(self, entity: str, records: list[dict[str, Any]]) -> int:
        """Remove records from ``entity`` of a destination, each as last written (so it carries
        the entity's primary key); returns how many were removed. Only connectors with
        ``supports_delete`` implement it."""
        raise NotImplementedError

    def can_copy(self, entity: str) -> bool:
        """Whether ``copy_rows()`` can read ``entity`` (a source that can produce records as
        ``COPY`` lines itself saves the sync engine building them one by one)."""
        return False

    def copy_rows(
        self,
        entity: str,
        *,
        cursor: Any = None,
        date_range: tuple[Any, Any] | None = None,
        batch_rows: int = 50_000,
        leading: tuple[Any, ...] = (),
        ordered: bool = True,
    ) -> Iterator[CopyBatch]:
        """What ``read()`` returns, as ``CopyBatch`` lines of the same records' JSON. Unless
        ``ordered`` is False: then records come in no particular order, no batch carries a
        cursor to resume after, and ``highest`` is the highest cursor value when the read began.
        """
        raise NotImplementedError

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
    """A connector Railyard ships; an account's own connectors need ``get_connector_for``."""
    return _REGISTRY.get(connector_id)


def all_connectors() -> list[type[Connector]]:
    return sorted(_REGISTRY.values(), key=catalog_order)


def catalog_order(connector: type[Connector]) -> tuple[str, str]:
    return (connector.category, connector.id)


# --- connectors an account registered ------------------------------------------------------

# The class of each account-registered manifest, built on first use in this process and kept
# by (row, updated_at): an update of the row is a new key, so no process runs an old manifest
# after it has seen the new row. Least recently used classes go first beyond the limit.
CUSTOM_CLASSES_KEPT = 1024
_custom_classes: OrderedDict[tuple[Any, datetime], type[Connector]] = OrderedDict()
_custom_lock = threading.Lock()


def get_connector_for(connector_id: str, *, account_id: Any) -> type[Connector] | None:
    """The connector ``connector_id`` names for an account: a shipped one, else one the account
    registered itself; None when there is neither. Wherever a connector is looked up for a
    connection or an integration, this is the lookup (``account_id`` None finds only shipped
    ones).

    A shipped id is never an account's: registration refuses it, and a shipped connector that a
    later release adds under an account's id takes precedence.
    """
    shipped = _REGISTRY.get(connector_id)
    if shipped is not None or account_id is None:
        return shipped
    # Imported here: models need the app registry, and every connector module imports this one.
    from connectors.models import CustomConnector

    row = (
        CustomConnector.objects.filter(account_id=account_id, connector_id=connector_id)
        .values_list("pk", "updated_at")
        .first()
    )
    if row is None:
        return None
    cached = _custom_cached(row)
    if cached is not None:
        return cached
    current = (
        CustomConnector.objects.filter(pk=row[0])
        .values_list("pk", "updated_at", "manifest")
        .first()
    )
    return None if current is None else custom_connector_class(*current)


def account_connectors(account_id: Any) -> list[type[Connector]]:
    """The connectors an account registered, by id; manifests are read only for those whose
    class this process has not built yet."""
    from connectors.models import CustomConnector

    rows = CustomConnector.objects.filter(account_id=account_id).order_by("connector_id")
    versions = list(rows.values_list("pk", "updated_at"))
    missing = [pk for pk, updated_at in versions if _custom_cached((pk, updated_at)) is None]
    manifests = dict(rows.filter(pk__in=missing).values_list("pk", "manifest") if missing else [])
    connectors = []
    for pk, updated_at in versions:
        connector = _custom_cached((pk, updated_at))
        if connector is None and pk in manifests:
            connector = custom_connector_class(pk, updated_at, manifests[pk])
        if connector is not None:
            connectors.append(connector)
    return connectors


def custom_connector_class(
    row_id: Any, updated_at: datetime, manifest: dict[str, Any]
) -> type[Connector]:
    """The catalog entry of an account's manifest (checked when it was registered), BETA
    whatever its ``status`` says, built once per version of its row."""
    # Imported here: the engine imports this module.
    from connectors.declarative.connector import connector_class

    connector: type[Connector] = connector_class(manifest)
    connector.custom = True
    connector.status = ConnectorStatus.BETA
    with _custom_lock:
        _custom_classes[(row_id, updated_at)] = connector
        while len(_custom_classes) > CUSTOM_CLASSES_KEPT:
            _custom_classes.popitem(last=False)
    return connector


def _custom_cached(key: tuple[Any, datetime]) -> type[Connector] | None:
    with _custom_lock:
        connector = _custom_classes.get(key)
        if connector is not None:
            _custom_classes.move_to_end(key)
        return connector
