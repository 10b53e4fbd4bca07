"""Write operations on connections, and the one place that resolves their credentials; and the
connectors an account registers from its own manifest.

Credentials are encrypted at rest and never leave the platform: audit rows record only which keys
changed (values masked), and validation messages never echo a submitted value.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from datetime import datetime
from typing import Any

import yaml
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.choices import AuditAction
from accounts.models import Account, Event
from accounts.services import Actor, audit_record, diff, event_record, field_values
from config.api.errors import BadRequest, Conflict, InvalidInput
from config.api.serializers import json_size_problem
from config.credentials import (
    REFERENCE,
    UnresolvableReference,
    references_check,
    references_resolve,
)
from config.crypto import encrypt_json
from connectors.choices import ConnectionStatus
from connectors.declarative.manifest import ManifestError, manifest_check, manifest_load
from connectors.feeds import FEED_TYPES
from connectors.http import check_http_url
from connectors.models import Connection, CustomConnector
from connectors.registry import (
    Connector,
    ConnectorError,
    TestResult,
    get_connector,
    get_connector_for,
)
from connectors.scheduling import connector_syncs, next_sync_at

CONNECTION_AUDIT_FIELDS = ["name", "status", "config", "connector_id"]
CUSTOM_CONNECTOR_AUDIT_FIELDS = ["connector_id", "name", "manifest"]
MASK = "***"


# --- validation ----------------------------------------------------------------------------


def _connector_or_error(connector_id: str, *, account_id: Any) -> type[Connector]:
    connector = get_connector_for(connector_id, account_id=account_id)
    if connector is None:
        raise InvalidInput(
            f"Unknown connector {connector_id!r}.",
            details={"connectorId": [f"Unknown connector {connector_id!r}; see the catalog."]},
        )
    return connector


def _prefixed(prefix: str, errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """``{"syncInterval": [...]}`` -> ``{"config.syncInterval": [...]}``; ``_`` is the object."""
    return {
        prefix if key == "_" else f"{prefix}.{key}": messages for key, messages in errors.items()
    }


def _leaf_values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaf_values(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaf_values(item)]
    return [value]


def _credential_errors(
    connector: type[Connector], credentials: dict[str, Any]
) -> dict[str, list[str]]:
    errors = connector.validate_credentials(credentials)
    # A reference is resolved only when the credentials are used, so the schema's format
    # constraints (pattern, length, enum) cannot apply to it yet.
    for key, value in credentials.items():
        if isinstance(value, str) and REFERENCE.search(value):
            errors.pop(key, None)
    # jsonschema messages quote the offending value; a secret must not come back in a 400.
    values = sorted({repr(leaf) for leaf in _leaf_values(credentials)}, key=len, reverse=True)
    if values:
        quoted = re.compile(
            r"(?<![\w.])(?:" + "|".join(re.escape(value) for value in values) + r")(?![\w.])"
        )
        for key, messages in errors.items():
            errors[key] = [quoted.sub("the given value", message) for message in messages]
    return errors


def _validate(
    *,
    connector: type[Connector],
    config: dict[str, Any],
    credentials: dict[str, Any],
    submitted_credentials: dict[str, Any],
) -> None:
    """Check config and credentials against the connector's schemas; the references in the
    credentials submitted now must resolve (stored ones are checked when used)."""
    errors = {
        **references_check(submitted_credentials, field="credentials"),
        **_prefixed("config", connector.validate_config(config)),
        **_prefixed("credentials", _credential_errors(connector, credentials)),
    }
    if errors:
        raise InvalidInput("The connection's config or credentials are invalid.", details=errors)


# --- credentials ---------------------------------------------------------------------------


def _without_nulls(credentials: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in credentials.items() if value is not None}


def _store_credentials(connection: Connection, credentials: dict[str, Any]) -> None:
    connection.credentials_encrypted = encrypt_json(credentials)
    connection.credential_keys = sorted(credentials)


def _masked_credentials_diff(
    before: dict[str, Any], after: dict[str, Any]
) -> dict[str, dict[str, dict[str, str]]]:
    """Which credential keys were added, changed or removed, every value shown as ``***``."""
    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    if not changed:
        return {}
    return {
        "credentials": {
            "before": {key: MASK for key in sorted(changed) if key in before},
            "after": {key: MASK for key in sorted(changed) if key in after},
        }
    }


def resolve_credentials(connection: Connection) -> dict[str, Any]:
    """The connection's credentials with every ``${NAME}`` replaced from the environment, as
    far as ``CREDENTIAL_ENV_ALLOW`` lets it (config.credentials).

    Call this only where the secrets are used (testing or syncing a connection); the result must
    never be stored, logged or returned by the API. Raises ``BadRequest`` naming the reference
    when one does not resolve (not allowed and not set read alike).
    """
    try:
        return references_resolve(connection.stored_credentials(), field="credentials")
    except UnresolvableReference as error:
        raise BadRequest(
            error.message, details={"variable": error.name, "field": error.field}
        ) from None


@transaction.atomic
def connection_credentials_rotate(
    *, connector_id: str, key: str, previous: str, current: str
) -> int:
    """Store a credential that the connected system replaced, such as an OAuth refresh token it
    rotated with a token refresh: every connection of ``connector_id`` whose stored ``key`` is
    ``previous`` gets ``current``, encrypted like any credential, with an audit row (values
    masked). Returns how many connections changed.

    A connector holds only its connection's resolved credentials, not the connection, so the
    value it used identifies the connections to update; a refresh token is a secret the system
    issued for one authorization, and every connection holding it holds that authorization. A
    connection whose stored value changed meanwhile (another run rotated it first), or holds a
    ``${NAME}`` reference rather than the value, is left as it is.
    """
    holders = [
        connection.pk
        for connection in Connection.objects.filter(connector_id=connector_id).only(
            "pk", "credentials_encrypted"
        )
        if connection.stored_credentials().get(key) == previous
    ]
    updated = 0
    for pk in holders:
        connection = Connection.objects.select_for_update().get(pk=pk)
        stored = connection.stored_credentials()
        if stored.get(key) != previous:
            continue
        rotated = {**stored, key: current}
        _store_credentials(connection, rotated)
        connection.save(update_fields=["credentials_encrypted", "credential_keys", "updated_at"])
        audit_record(
            account=connection.account,
            actor=Actor.system("token refresh"),
            resource_type="connection",
            resource_id=connection.pk,
            action=AuditAction.UPDATED,
            changes=_masked_credentials_diff(stored, rotated),
        )
        updated += 1
    return updated


# --- connections ---------------------------------------------------------------------------


def _scheduled_sync_at(connection: Connection) -> datetime | None:
    """When the scheduler should first sync the connection: only an ACTIVE connection of a
    syncing connector with autoSync on has a schedule."""
    if connection.status != ConnectionStatus.ACTIVE or not connector_syncs(
        connection.connector_id, connection.account_id
    ):
        return None
    return next_sync_at(connection.config, now=timezone.now())


@transaction.atomic
def connection_create(
    *,
    account: Account,
    actor: Actor,
    connector_id: str,
    name: str,
    status: str = ConnectionStatus.ACTIVE,
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
) -> Connection:
    """Create a connection of a catalog connector; credentials are validated, then encrypted."""
    connector = _connector_or_error(connector_id, account_id=account.pk)
    # Holds off a deletion of the account's connector until this connection is committed, so
    # that no connection is left of a connector that is gone.
    if (
        connector.custom
        and not CustomConnector.objects.select_for_update()
        .filter(account=account, connector_id=connector_id)
        .exists()
    ):
        raise InvalidInput(
            f"Unknown connector {connector_id!r}.",
            details={"connectorId": [f"Unknown connector {connector_id!r}; see the catalog."]},
        )
    config = config if config is not None else {}
    credentials = _without_nulls(credentials or {})
    _validate(
        connector=connector,
        config=config,
        credentials=credentials,
        submitted_credentials=credentials,
    )

    connection = Connection(
        account=account, connector_id=connector_id, name=name, status=status, config=config
    )
    _store_credentials(connection, credentials)
    connection.next_sync_at = _scheduled_sync_at(connection)
    connection.full_clean()
    connection.save()
    audit_record(
        account=account,
        actor=actor,
        resource_type="connection",
        resource_id=connection.pk,
        action=AuditAction.CREATED,
        changes={
            **diff({}, field_values(connection, CONNECTION_AUDIT_FIELDS)),
            **_masked_credentials_diff({}, credentials),
        },
    )
    return connection


@transaction.atomic
def connection_update(
    *,
    connection: Connection,
    actor: Actor,
    connector_id: str | None = None,
    name: str | None = None,
    status: str | None = None,
    config: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
) -> Connection:
    """Change a connection; arguments left as ``None`` keep their current value.

    ``config`` replaces the whole config object. ``credentials`` is merged into the stored
    credentials key by key, and a key whose value is ``None`` is removed.
    """
    if connector_id is not None and connector_id != connection.connector_id:
        raise InvalidInput(
            "A connection's connector cannot change; create a new connection instead.",
            details={"connectorId": ["Cannot change; create a new connection instead."]},
        )
    connector = _connector_or_error(connection.connector_id, account_id=connection.account_id)
    before = field_values(connection, CONNECTION_AUDIT_FIELDS)
    stored_credentials = connection.stored_credentials()
    new_credentials = stored_credentials
    if credentials is not None:
        new_credentials = _without_nulls({**stored_credentials, **credentials})
    new_config = config if config is not None else connection.config
    _validate(
        connector=connector,
        config=new_config,
        credentials=new_credentials,
        submitted_credentials=credentials or {},
    )

    # Compared at one instant, the derived next sync differs exactly when autoSync or
    # syncInterval changed; an unrelated edit must not postpone a due sync (a connection without
    # one yet, say from before schedules existed, gets it at its next edit).
    probe = timezone.now()
    schedule_changed = next_sync_at(connection.config, now=probe) != next_sync_at(
        new_config, now=probe
    )
    status_changed = status is not None and status != connection.status
    if name is not None:
        connection.name = name
    if status is not None:
        connection.status = status
    connection.config = new_config
    if schedule_changed or status_changed or connection.next_sync_at is None:
        connection.next_sync_at = _scheduled_sync_at(connection)
    if new_credentials != stored_credentials:
        _store_credentials(connection, new_credentials)
    connection.full_clean()
    connection.save()
    changes = {
        **diff(before, field_values(connection, CONNECTION_AUDIT_FIELDS)),
        **_masked_credentials_diff(stored_credentials, new_credentials),
    }
    if changes:
        audit_record(
            account=connection.account,
            actor=actor,
            resource_type="connection",
            resource_id=connection.pk,
            action=AuditAction.UPDATED,
            changes=changes,
        )
    return connection


@transaction.atomic
def connection_delete(*, connection: Connection, actor: Actor) -> None:
    """Delete a connection; refused with ``Conflict`` while anything still references it."""
    connection_id = connection.pk
    changes = {
        **diff(field_values(connection, CONNECTION_AUDIT_FIELDS), {}),
        **_masked_credentials_diff(connection.stored_credentials(), {}),
    }
    try:
        connection.delete()
    except ProtectedError as error:
        references = sorted(
            (obj._meta.verbose_name, str(obj.pk)) for obj in error.protected_objects
        )
        raise Conflict(
            f"This connection is still used by {len(references)} object(s) "
            f"(integrations or file imports); remove or repoint them before deleting it.",
            details={"references": [{"type": str(kind), "id": pk} for kind, pk in references]},
        ) from None
    audit_record(
        account=connection.account,
        actor=actor,
        resource_type="connection",
        resource_id=connection_id,
        action=AuditAction.DELETED,
        changes=changes,
    )


# --- connection test -----------------------------------------------------------------------

CONNECTED_EVENT = "integration.connected"


def connection_test_data(result: TestResult) -> dict[str, Any]:
    """A test result as stored in ``last_test_result`` and answered by the API."""
    data: dict[str, Any] = {
        "success": result.success,
        "latency": result.latency_ms,
        "version": result.version,
        "permissions": list(result.permissions),
    }
    if result.error is not None:
        data["error"] = result.error
    return data


def connection_test(*, connection: Connection, actor: Actor) -> TestResult:
    """Reach the connection's system with its credentials and store what was found.

    The status becomes ACTIVE on success and ERROR on failure; the first success ever records
    ``integration.connected``. A connector without a test (the SFTP feed types) is a
    ``BadRequest``. The test itself runs outside any transaction: it may wait on the network.
    """
    connector = _connector_or_error(connection.connector_id, account_id=connection.account_id)
    if connector.test is Connector.test:
        if connection.connector_id in FEED_TYPES:
            raise BadRequest("This connector has nothing to test: partners push files to Railyard.")
        raise BadRequest("This connector has no connection test.")
    try:
        credentials = resolve_credentials(connection)
    except BadRequest as error:
        result = TestResult(success=False, latency_ms=0, error=error.message)
    else:
        started = time.monotonic()
        try:
            result = connector(config=connection.config, credentials=credentials).test()
        except ConnectorError as error:  # refused by the egress policy, a name that won't resolve
            latency = int((time.monotonic() - started) * 1000)
            result = TestResult(success=False, latency_ms=latency, error=error.message)
    _connection_test_store(connection=connection, actor=actor, result=result)
    return result


@transaction.atomic
def _connection_test_store(*, connection: Connection, actor: Actor, result: TestResult) -> None:
    # The row lock makes two concurrent first successes record integration.connected once.
    locked = Connection.objects.select_for_update().get(pk=connection.pk)
    before = field_values(locked, CONNECTION_AUDIT_FIELDS)
    locked.status = ConnectionStatus.ACTIVE if result.success else ConnectionStatus.ERROR
    locked.last_tested_at = timezone.now()
    locked.last_test_result = connection_test_data(result)
    if locked.status != before["status"]:
        locked.next_sync_at = _scheduled_sync_at(locked)
    locked.save(
        update_fields=["status", "last_tested_at", "last_test_result", "next_sync_at", "updated_at"]
    )
    changes = diff(before, field_values(locked, CONNECTION_AUDIT_FIELDS))
    if changes:
        audit_record(
            account=locked.account,
            actor=actor,
            resource_type="connection",
            resource_id=locked.pk,
            action=AuditAction.UPDATED,
            changes=changes,
        )
    if result.success and not _connected_before(locked):
        event_record(
            account=locked.account,
            type=CONNECTED_EVENT,
            payload={
                "connection": {
                    "id": str(locked.pk),
                    "connectorId": locked.connector_id,
                    "name": locked.name,
                }
            },
        )
    for name in ("status", "last_tested_at", "last_test_result", "next_sync_at", "updated_at"):
        setattr(connection, name, getattr(locked, name))


def _connected_before(connection: Connection) -> bool:
    return Event.objects.filter(
        account=connection.account,
        type=CONNECTED_EVENT,
        payload__connection__id=str(connection.pk),
    ).exists()


# --- connectors an account registers -------------------------------------------------------

_YAML_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_YAML_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _yaml_problem(text: str) -> str | None:
    """What makes manifest text unsafe to load, found by scanning it (which does not nest):
    anchors and aliases (a few lines of them expand into gigabytes), tags (YAML types beyond
    JSON's), and nesting deeper than a JSON body may (loading nests by recursion)."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                return "Anchors and aliases (&name, *name) are not accepted in a manifest."
            if isinstance(token, yaml.TagToken):
                return "Tags (!name, !!type) are not accepted in a manifest."
            if isinstance(token, _YAML_OPENERS):
                depth += 1
                if depth > settings.API_MAX_JSON_DEPTH:
                    return f"Nested deeper than {settings.API_MAX_JSON_DEPTH} levels."
            elif isinstance(token, _YAML_CLOSERS):
                depth -= 1
    except yaml.YAMLError:
        return None  # not YAML: manifest_load says where
    return None


def _json_problems(value: Any, path: str) -> dict[str, list[str]]:
    """Values YAML has and JSON has not (dates, infinities, keys that are not text), each at
    its path: a manifest is stored and answered as JSON."""
    problems: dict[str, list[str]] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                problems.update(_json_problems(item, f"{path}.{key}"))
            else:
                problems.setdefault(path, []).append(
                    f"The key {key!r} is not text; quote it (YAML reads yes, on, 1 as values)."
                )
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.update(_json_problems(item, f"{path}.{index}"))
    elif isinstance(value, (dt.date, dt.time)):
        problems[path] = ["A date or time must be quoted text in a manifest."]
    elif isinstance(value, float) and not math.isfinite(value):
        problems[path] = ["Not a finite number."]
    elif not isinstance(value, (str, int, float, bool, type(None))):
        problems[path] = ["Not a JSON value."]
    return problems


def _manifest_errors(error: ManifestError) -> dict[str, list[str]]:
    """The engine's errors at the API's paths: ``streams.0.path`` -> ``manifest.streams.0.path``."""
    return {
        "manifest" if key == "_" else f"manifest.{key}": messages
        for key, messages in error.errors.items()
    }


def _invalid_manifest(details: dict[str, list[str]]) -> InvalidInput:
    return InvalidInput("The manifest is invalid; see details for each field.", details=details)


def custom_manifest_read(
    manifest: dict[str, Any] | str, *, account: Account, replacing: CustomConnector | None = None
) -> dict[str, Any]:
    """A manifest an account registers (a JSON object, or YAML or JSON text), checked as the
    engine checks the shipped ones and against the catalog: its id is not a shipped
    connector's nor another of the account's, and does not change when ``replacing`` one.
    Raises ``InvalidInput`` with every problem at its path (``manifest.streams.0.path``).
    """
    if isinstance(manifest, str):
        if problem := _yaml_problem(manifest):
            raise _invalid_manifest({"manifest": [problem]})
        try:
            checked = manifest_load(manifest)
        except ManifestError as error:
            raise _invalid_manifest(_manifest_errors(error)) from None
        except ValueError as error:  # an integer of more digits than Python converts
            raise _invalid_manifest({"manifest": [f"Cannot be read: {error}"]}) from None
    else:
        try:
            manifest_check(manifest)
        except ManifestError as error:
            raise _invalid_manifest(_manifest_errors(error)) from None
        checked = dict(manifest)
    problems = _json_problems(checked, "manifest")
    if not problems and (too_large := json_size_problem(checked)):
        problems["manifest"] = [too_large]
    if problems:
        raise _invalid_manifest(problems)

    connector_id = checked["id"]
    errors: dict[str, list[str]] = {}
    if replacing is not None and connector_id != replacing.connector_id:
        errors["manifest.id"] = [
            f"A connector's id cannot change ({replacing.connector_id!r}); connections name "
            "it. Register a new connector instead."
        ]
    elif get_connector(connector_id) is not None:
        errors["manifest.id"] = [
            f"{connector_id!r} is the id of a connector Railyard ships; choose another."
        ]
    elif (
        replacing is None
        and CustomConnector.objects.filter(account=account, connector_id=connector_id).exists()
    ):
        errors["manifest.id"] = [_taken(connector_id)]
    base_url = checked["baseUrl"]
    if "{{" not in base_url:
        try:
            check_http_url(base_url, field="baseUrl")
        except ConnectorError as error:
            errors["manifest.baseUrl"] = [error.message]
    if errors:
        raise _invalid_manifest(errors)
    return checked


def _taken(connector_id: str) -> str:
    return (
        f"This account already has a connector {connector_id!r}; replace it with "
        f"PUT /api/v1/integrations/connectors/{connector_id}."
    )


@transaction.atomic
def custom_connector_create(
    *, account: Account, actor: Actor, manifest: dict[str, Any] | str
) -> CustomConnector:
    """Register an account's own connector from its manifest (``custom_manifest_read``); it is
    in that account's catalog at once, for its connections only."""
    checked = custom_manifest_read(manifest, account=account)
    custom = CustomConnector(
        account=account, connector_id=checked["id"], name=checked["name"], manifest=checked
    )
    try:
        # A savepoint: a concurrent registration of the same id fails here alone.
        with transaction.atomic():
            custom.save()
    except IntegrityError:
        raise _invalid_manifest({"manifest.id": [_taken(custom.connector_id)]}) from None
    audit_record(
        account=account,
        actor=actor,
        resource_type="connector",
        resource_id=custom.pk,
        action=AuditAction.CREATED,
        changes=diff({}, field_values(custom, CUSTOM_CONNECTOR_AUDIT_FIELDS)),
    )
    return custom


@transaction.atomic
def custom_connector_update(
    *, custom_connector: CustomConnector, actor: Actor, manifest: dict[str, Any] | str
) -> CustomConnector:
    """Replace an account's connector's manifest (its id stays). Its connections use the new
    one from their next test, discovery or run; their kept discoveries are dropped, since the
    streams may have changed."""
    locked = CustomConnector.objects.select_for_update().get(pk=custom_connector.pk)
    checked = custom_manifest_read(manifest, account=locked.account, replacing=locked)
    before = field_values(locked, CUSTOM_CONNECTOR_AUDIT_FIELDS)
    locked.name = checked["name"]
    locked.manifest = checked
    locked.save()
    Connection.objects.filter(account=locked.account, connector_id=locked.connector_id).update(
        discovered=None, discovered_at=None
    )
    if changes := diff(before, field_values(locked, CUSTOM_CONNECTOR_AUDIT_FIELDS)):
        audit_record(
            account=locked.account,
            actor=actor,
            resource_type="connector",
            resource_id=locked.pk,
            action=AuditAction.UPDATED,
            changes=changes,
        )
    return locked


@transaction.atomic
def custom_connector_delete(*, custom_connector: CustomConnector, actor: Actor) -> None:
    """Remove an account's connector; ``Conflict`` while any of its connections is left (they
    would have nothing to run)."""
    locked = CustomConnector.objects.select_for_update().get(pk=custom_connector.pk)
    users = list(
        Connection.objects.filter(account=locked.account, connector_id=locked.connector_id)
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    if users:
        raise Conflict(
            f"The connector {locked.connector_id!r} is still used by {len(users)} "
            "connection(s); delete them before deleting it.",
            details={"connections": [str(pk) for pk in users[:20]]},
        )
    audit_record(
        account=locked.account,
        actor=actor,
        resource_type="connector",
        resource_id=locked.pk,
        action=AuditAction.DELETED,
        changes=diff(field_values(locked, CUSTOM_CONNECTOR_AUDIT_FIELDS), {}),
    )
    locked.delete()
