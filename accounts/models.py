"""Tenants and the things every tenant has: dealerships, API keys, audit entries, events."""

from __future__ import annotations

import functools
import uuid
import zoneinfo

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models

from accounts.choices import ActorType, ApiKeyScope


@functools.cache
def _time_zones() -> frozenset[str]:
    # available_timezones() walks the tz database on every call (tens of milliseconds).
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _time_zones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example America/Chicago).")


class Account(models.Model):
    """A tenant. Every object in Railyard belongs to exactly one account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person: an operator (staff) or a member of one account using the browsable API."""

    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="users"
    )


class Dealership(models.Model):
    """A rooftop of an account; feed timestamps are read in its time zone."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="dealerships")
    name = models.CharField(max_length=200)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=100, blank=True, help_text="State or province.")
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code.")
    phone = models.CharField(max_length=40, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A bearer key: ``ry_<prefix>_<secret>``. Only the SHA-256 of the whole key is stored.

    The prefix is visible (it identifies the key in lists and logs); the secret is shown once.
    API keys carry 190 bits of randomness, so a fast hash is safe and keeps every request cheap.
    ``scope`` bounds what the key may do (``ApiKeyScope``: admin ⊇ write ⊇ read); it is fixed at
    creation, so a key that needs more is replaced, not widened.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(
        max_length=10,
        choices=ApiKeyScope.choices,
        default=ApiKeyScope.WRITE,
        help_text="read: safe methods only; write: also changes; admin: also manages API keys.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (ry_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, required: str) -> bool:
        """Whether this key's scope covers ``required`` (an ``ApiKeyScope`` value)."""
        return ApiKeyScope(self.scope).includes(required)


class AuditEntry(models.Model):
    """Who changed what: one row per create, update or delete, written in the same transaction.

    ``integration_id`` is a plain UUID (not a foreign key) so the trail of an integration outlives
    it and rows from every app can point at one.
    """

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="audit_entries")
    integration_id = models.UUIDField(null=True, blank=True, db_index=True)
    resource_type = models.CharField(max_length=50)
    resource_id = models.CharField(max_length=64)
    action = models.CharField(max_length=50)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["account", "integration_id", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.resource_type}.{self.action} {self.resource_id}"


class Event(models.Model):
    """A domain event (``integration.created``, ``integration.sync.completed``, ...).

    The table is the outbox that webhook delivery reads from.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=100, db_index=True)
    integration_id = models.UUIDField(null=True, blank=True, db_index=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return self.type
