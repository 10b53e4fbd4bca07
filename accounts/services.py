"""Write operations of the accounts app, plus the audit and event recorders every app uses."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import ProtectedError
from django.dispatch import Signal
from django.utils import timezone

from accounts.choices import ActorType, ApiKeyScope, AuditAction
from accounts.models import Account, ApiKey, AuditEntry, Dealership, Event
from config.api.errors import Conflict
from config.retention import Pruned, prune_oldest

# --- actors, audit and events ------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who performed a write: an API key, a user, or the system itself."""

    type: str
    id: str = ""
    name: str = ""

    @classmethod
    def system(cls, name: str = "railyard") -> Actor:
        return cls(type=ActorType.SYSTEM, name=name)

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> Actor:
        return cls(
            type=ActorType.API_KEY, id=str(api_key.pk), name=f"{api_key.name} (ry_{api_key.prefix})"
        )

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(type=ActorType.USER, id=str(user.pk), name=user.get_username())


_encoder = DjangoJSONEncoder()


def _jsonable(value: Any) -> Any:
    if isinstance(value, models.Model):
        return str(value.pk)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return _encoder.default(value)


def field_values(instance: models.Model, fields: list[str]) -> dict[str, Any]:
    """The JSON-safe values of ``fields`` on ``instance`` (foreign keys by id)."""
    values = {}
    for name in fields:
        field = instance._meta.get_field(name)
        if field.many_to_many:
            values[name] = sorted(
                str(pk) for pk in getattr(instance, name).values_list("pk", flat=True)
            )
        elif field.is_relation:
            values[name] = _jsonable(getattr(instance, field.attname))  # type: ignore[union-attr]
        else:
            values[name] = _jsonable(getattr(instance, name))
    return values


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"before": old, "after": new}}`` for every field whose value changed."""
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def audit_record(
    *,
    account: Account,
    actor: Actor,
    resource_type: str,
    resource_id: Any,
    action: str,
    changes: dict[str, Any] | None = None,
    integration_id: Any = None,
) -> AuditEntry:
    """Write one audit row; call inside the transaction of the change it describes."""
    return AuditEntry.objects.create(
        account=account,
        integration_id=integration_id,
        resource_type=resource_type,
        resource_id=str(resource_id),
        action=action,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        changes=changes or {},
    )


# Sent by ``event_record`` with ``event=<Event>``, inside the transaction that records the event.
# Receivers write what must exist exactly when the event does (webhook deliveries are written
# here by the webhooks app, which accounts must not import): a receiver that raises rolls the
# event back with it, and a change that is rolled back leaves neither behind.
event_recorded = Signal()


def event_record(
    *, account: Account, type: str, payload: dict[str, Any], integration_id: Any = None
) -> Event:
    """Record a domain event; ``event_recorded`` receivers run in the same transaction."""
    with transaction.atomic():
        event = Event.objects.create(
            account=account,
            type=type,
            integration_id=integration_id,
            payload=payload,
        )
        event_recorded.send(sender=Event, event=event)
    return event


M = TypeVar("M", bound=models.Model)


def audit_object(
    instance: models.Model,
    *,
    actor: Actor,
    resource_type: str,
    action: str,
    changes: dict[str, Any],
) -> AuditEntry:
    """Audit a change to a tenant-owned object: its account, and its integration if it has one."""
    return audit_record(
        account=instance.account,  # type: ignore[attr-defined]
        actor=actor,
        resource_type=resource_type,
        resource_id=instance.pk,
        action=action,
        changes=changes,
        integration_id=getattr(instance, "integration_id", None),
    )


@transaction.atomic
def resource_create(*, instance: M, actor: Actor, resource_type: str, fields: list[str]) -> M:
    """Save a new tenant-owned object and audit it, in one transaction."""
    instance.full_clean()
    instance.save()
    changes = diff({}, field_values(instance, fields))
    audit_object(
        instance,
        actor=actor,
        resource_type=resource_type,
        action=AuditAction.CREATED,
        changes=changes,
    )
    return instance


@transaction.atomic
def resource_update(
    *, instance: M, actor: Actor, resource_type: str, fields: list[str], values: dict[str, Any]
) -> M:
    """Apply ``values`` to a tenant-owned object and audit what changed, in one transaction."""
    before = field_values(instance, fields)
    for name, value in values.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    if changes := diff(before, field_values(instance, fields)):
        audit_object(
            instance,
            actor=actor,
            resource_type=resource_type,
            action=AuditAction.UPDATED,
            changes=changes,
        )
    return instance


@transaction.atomic
def resource_delete(
    *, instance: models.Model, actor: Actor, resource_type: str, fields: list[str]
) -> None:
    """Delete a tenant-owned object and audit its last values, in one transaction.

    An object still referenced through a protected foreign key is a 409 and stays.
    """
    changes = diff(field_values(instance, fields), {})
    audit_object(
        instance,
        actor=actor,
        resource_type=resource_type,
        action=AuditAction.DELETED,
        changes=changes,
    )
    try:
        instance.delete()
    except ProtectedError as exc:
        users = sorted({f"{obj._meta.verbose_name} {obj.pk}" for obj in exc.protected_objects})
        raise Conflict(
            f"This {resource_type} is still in use and cannot be deleted.",
            details={"usedBy": users[:20]},
        ) from None


def events_prune(*, cutoff: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` of the events recorded before ``cutoff``, oldest first (the
    retention, ``EVENT_RETENTION_DAYS``). Webhooks keep their own copy of what they send."""
    return prune_oldest(
        Event.objects.filter(created_at__lt=cutoff), date_field="created_at", limit=limit
    )


def audit_prune(*, cutoff: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` of the audit entries written before ``cutoff``, oldest first (the
    retention, ``AUDIT_RETENTION_DAYS``)."""
    return prune_oldest(
        AuditEntry.objects.filter(created_at__lt=cutoff), date_field="created_at", limit=limit
    )


# --- accounts and API keys ---------------------------------------------------------------------


def account_get_or_create(*, name: str) -> tuple[Account, bool]:
    return Account.objects.get_or_create(name=name)


API_KEY_PREFIX_PATTERN = re.compile(r"[0-9a-f]{1,16}")


def hash_api_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def parse_api_key(raw_key: str) -> tuple[str, str] | None:
    """Split ``ry_<prefix>_<secret>`` into (prefix, secret), or None if it is not that shape.

    A prefix is hexadecimal (``api_key_create`` makes them), so anything else, a NUL byte that
    PostgreSQL cannot even compare included, never reaches a query.
    """
    parts = raw_key.split("_")
    if len(parts) != 3 or parts[0] != "ry" or not parts[2]:
        return None
    if not API_KEY_PREFIX_PATTERN.fullmatch(parts[1]):
        return None
    return parts[1], parts[2]


@transaction.atomic
def api_key_create(
    *,
    account: Account,
    name: str = "default",
    scope: str = ApiKeyScope.WRITE,
    actor: Actor | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key; returns the row and the raw key, which is never available again.

    ``scope`` (an ``ApiKeyScope``) bounds what the key may do; ``write`` unless told otherwise.
    """
    scope = ApiKeyScope(scope)
    prefix = secrets.token_hex(4)
    raw_key = f"ry_{prefix}_{secrets.token_urlsafe(24).replace('_', '-')}"
    api_key = ApiKey.objects.create(
        account=account, name=name, prefix=prefix, key_hash=hash_api_key(raw_key), scope=scope
    )
    audit_record(
        account=account,
        actor=actor or Actor.system(),
        resource_type="api_key",
        resource_id=api_key.pk,
        action=AuditAction.CREATED,
        changes={
            "name": {"before": None, "after": name},
            "prefix": {"before": None, "after": prefix},
            "scope": {"before": None, "after": scope.value},
        },
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke a key at once; requests that present it get 401 from then on (the key that makes
    this request included: authentication reads the key's row on every request).

    Revoking twice is harmless: the conditional update makes one revocation, and one audit row,
    win even when two requests race.
    """
    now = timezone.now()
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        api_key.revoked_at = now
        audit_record(
            account=api_key.account,
            actor=actor,
            resource_type="api_key",
            resource_id=api_key.pk,
            action=AuditAction.REVOKED,
            changes={"revokedAt": {"before": None, "after": now.isoformat()}},
        )
    else:
        api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


# --- dealerships -------------------------------------------------------------------------------

DEALERSHIP_FIELDS = [
    "name",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "timezone",
]


def dealership_create(*, account: Account, actor: Actor, **values: Any) -> Dealership:
    return resource_create(
        instance=Dealership(account=account, **values),
        actor=actor,
        resource_type="dealership",
        fields=DEALERSHIP_FIELDS,
    )


def dealership_update(*, dealership: Dealership, actor: Actor, **values: Any) -> Dealership:
    return resource_update(
        instance=dealership,
        actor=actor,
        resource_type="dealership",
        fields=DEALERSHIP_FIELDS,
        values=values,
    )


def dealership_delete(*, dealership: Dealership, actor: Actor) -> None:
    """Delete a dealership; one that integrations still belong to is a 409 CONFLICT."""
    resource_delete(
        instance=dealership, actor=actor, resource_type="dealership", fields=DEALERSHIP_FIELDS
    )
