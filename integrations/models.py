"""Integrations and what hangs off them: flows, file imports, revisions, shares."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from django.conf import settings
from django.db import models

from accounts.models import Account, Dealership
from connectors.models import Connection
from integrations.choices import (
    DataType,
    FrequencyUnit,
    ImportDependencyStatus,
    IntegrationState,
    IntegrationStatus,
    ShareAccessLevel,
    SyncStrategy,
)


class IntegrationQuerySet(models.QuerySet["Integration"]):
    def alive(self) -> IntegrationQuerySet:
        return self.filter(deleted_at__isnull=True)


class AliveIntegrationManager(models.Manager["Integration"]):
    """The default manager: soft-deleted integrations do not exist for the API."""

    def get_queryset(self) -> IntegrationQuerySet:
        return IntegrationQuerySet(self.model, using=self._db).alive()


def default_integration_config() -> dict[str, Any]:
    return {"global": {}, "tasks": []}


# Every sync setting with its default; ``sync_settings`` stores them with these snake_case keys,
# as the feed documents spell them.
SYNC_SETTINGS_DEFAULTS: dict[str, Any] = {
    "strategy": SyncStrategy.MERGE.value,
    "sold_grace_syncs": 2,
    "sold_grace_hours": 0,
    "track_history": False,
    "min_rows_ratio": 0.5,
    "max_error_ratio": 0.1,
}

# Keys of an install or uninstall step that record its progress rather than define it.
STEP_PROGRESS_KEYS = ("completed", "completedAt", "submitted", "connectionId")


def default_steps_progress(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step definitions with their progress reset (nothing completed, nothing submitted)."""
    return [
        {
            **{key: value for key, value in step.items() if key not in STEP_PROGRESS_KEYS},
            "completed": False,
            "completedAt": None,
        }
        for step in steps
    ]


class Integration(models.Model):
    """A data flow of one account: an SFTP feed, or a source connection to a destination.

    ``state`` is what the user wants (active or paused); ``status`` is what the last run did.
    Deleting is soft: ``deleted_at`` hides the row from the API; operators can restore it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="integrations")
    dealership = models.ForeignKey(
        Dealership, null=True, blank=True, on_delete=models.PROTECT, related_name="integrations"
    )
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=64, db_index=True, help_text="Feed type or connector id.")
    source_connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    destination_connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    data_type = models.CharField(max_length=32, choices=DataType.choices, db_index=True)
    config = models.JSONField(default=default_integration_config, blank=True)

    # Schedule; next_run_at is derived and indexed for the scheduler tick.
    frequency_value = models.PositiveIntegerField(null=True, blank=True)
    frequency_unit = models.CharField(max_length=10, choices=FrequencyUnit.choices, blank=True)
    rolling_window_days = models.PositiveIntegerField(default=0)
    one_off = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    historical_sync_start_date = models.DateTimeField(null=True, blank=True)

    sync_settings = models.JSONField(default=dict, blank=True)

    state = models.CharField(
        max_length=10,
        choices=IntegrationState.choices,
        default=IntegrationState.ACTIVE,
        db_index=True,
    )
    status = models.CharField(
        max_length=10,
        choices=IntegrationStatus.choices,
        default=IntegrationStatus.PENDING,
        db_index=True,
    )
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    latest_job_id = models.UUIDField(null=True, blank=True)
    import_dependency_status = models.CharField(
        max_length=10, choices=ImportDependencyStatus.choices, default=ImportDependencyStatus.READY
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents"
    )
    connections = models.ManyToManyField(
        Connection, blank=True, related_name="registered_integrations"
    )

    # Fields PATCH may change.
    settings = models.JSONField(default=dict, blank=True)
    version = models.CharField(max_length=50, blank=True)
    tag = models.CharField(max_length=100, blank=True)
    update_in_progress = models.BooleanField(default=False)
    flow_groupings = models.JSONField(default=list, blank=True)
    aliases = models.JSONField(default=list, blank=True)

    # Install / uninstall step definitions with their progress.
    install_steps = models.JSONField(default=list, blank=True)
    uninstall_steps = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = AliveIntegrationManager()
    all_objects = IntegrationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        base_manager_name = "all_objects"
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["account", "state", "status"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.state == IntegrationState.ACTIVE and self.deleted_at is None

    @property
    def effective_sync_settings(self) -> dict[str, Any]:
        """Every sync setting: the stored ones over the defaults."""
        return {**SYNC_SETTINGS_DEFAULTS, **(self.sync_settings or {})}


def generate_api_identifier() -> str:
    return "i" + secrets.token_hex(5)


# Longest column or field name of a mapping entry (``mapping.fields[].extract`` / ``generate``).
MAPPING_NAME_MAX_LENGTH = 255
# Longest ``ftp.directoryPath`` and ``ftp.fileName`` (a path, and a name on common file systems).
FTP_TEXT_MAX_LENGTH = {"directoryPath": 1024, "fileName": 255}


class FileImport(models.Model):
    """A file-import definition: file format options, FTP location, field mapping, and what its
    runs write: the records of ``entity`` (``vehicles`` or an entity of the record store) that
    match ``filter``.

    ``entity`` and ``filter`` are checked against the store when the import runs: an entity may
    be created after the import that names it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="file_imports")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="file_imports"
    )
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.PROTECT, related_name="file_imports"
    )
    name = models.CharField(max_length=200)
    api_identifier = models.CharField(max_length=32, unique=True, default=generate_api_identifier)
    distributed = models.BooleanField(default=False)
    file = models.JSONField(default=dict, blank=True)
    ftp = models.JSONField(default=dict, blank=True)
    mapping = models.JSONField(default=dict, blank=True)
    entity = models.CharField(max_length=100, blank=True, default="")
    # An export's filter: field -> value (equality) or field -> {operator: operand}.
    filter = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_modified = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self) -> str:
        return self.name


class Flow(models.Model):
    """A step-by-step data flow inside an integration, usually around one import."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="flows")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    disabled = models.BooleanField(default=False)
    file_import = models.ForeignKey(
        FileImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="flows"
    )
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.name


class Revision(models.Model):
    """An immutable snapshot of an integration's definition (its template document)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="revisions")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    description = models.CharField(max_length=500, blank=True)
    snapshot = models.JSONField()
    content_hash = models.CharField(max_length=64)
    actor_type = models.CharField(max_length=10)
    actor_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "number"], name="revision_number_unique")
        ]

    def __str__(self) -> str:
        return f"{self.integration_id} r{self.number}"


class IntegrationShare(models.Model):
    """A user of the account given access to one integration (``ashares``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integration_shares"
    )
    access_level = models.CharField(
        max_length=10, choices=ShareAccessLevel.choices, default=ShareAccessLevel.MONITOR
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "user"], name="share_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} -> {self.integration_id}"
