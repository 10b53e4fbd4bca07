"""Connections: an account's configured instance of a catalog connector; and the connectors an
account registered itself from a manifest."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models

from accounts.models import Account
from config.crypto import decrypt_json
from connectors.choices import ConnectionStatus


class Connection(models.Model):
    """Credentials and config for one connector, owned by one account.

    ``credentials_encrypted`` is a Fernet token of the credentials object; ``credential_keys``
    records which keys are set so the API can say so without decrypting anything.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="connections")
    connector_id = models.CharField(max_length=64, db_index=True)
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=ConnectionStatus.choices, default=ConnectionStatus.ACTIVE
    )
    config = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    credential_keys = models.JSONField(default=list, blank=True, editable=False)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    # When autoSync is on, the scheduler tick starts an INCREMENTAL sync at this moment and
    # advances it by config.syncInterval; None when the connection has no schedule.
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_result = models.JSONField(null=True, blank=True)
    # The entities discovery found (``connectors.discovery``), kept until refreshed.
    discovered = models.JSONField(null=True, blank=True, editable=False)
    discovered_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.connector_id})"

    def stored_credentials(self) -> dict[str, Any]:
        """The credentials as stored, ``${ENV_VAR}`` references unresolved."""
        return decrypt_json(self.credentials_encrypted) or {}


class CustomConnector(models.Model):
    """A connector an account registered from its own manifest (connectors/declarative), listed
    in that account's catalog only, with ``custom`` true.

    ``connector_id`` and ``name`` are the manifest's ``id`` and ``name``, kept in columns to
    find and list the row; the manifest is the definition. An id is unique within an account and
    never one of a shipped connector; two accounts may use the same id, each for its own.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="custom_connectors")
    connector_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    manifest = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Part of the key under which each process keeps the connector class built from the
    # manifest (connectors.registry): every change of the manifest must move it.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connector_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "connector_id"], name="custom_connector_id_per_account"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.connector_id})"
