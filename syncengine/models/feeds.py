"""The feed engine's data: received feed files with their processing log, files taken from
storage, and the vehicle record store with its versions."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.db import models
from django.db.models import F
from django.db.models.functions import Upper

from accounts.models import Account, Dealership
from config.storage import feed_storage, storage_exists, storage_local_copy
from connectors.models import Connection
from integrations.models import Integration
from syncengine.choices import (
    ChangeType,
    FeedFileSource,
    FeedFileStatus,
    VehicleCondition,
    VehicleStatus,
)
from syncengine.models.runs import SyncJob


class PulledFile(models.Model):
    """A remote file an ``sftp_pull`` connection took for an integration: taken once per
    (name, size, mtime), and not again when its content (sha256) was already taken."""

    id = models.BigAutoField(primary_key=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="pulled_files"
    )
    remote_path = models.CharField(max_length=1000)
    size = models.BigIntegerField()
    mtime = models.BigIntegerField(help_text="Remote modification time, seconds since epoch.")
    sha256 = models.CharField(max_length=64, db_index=True)
    feed_file = models.ForeignKey(
        "FeedFile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    archived_to = models.CharField(max_length=1000, blank=True)
    pulled_at = models.DateTimeField()

    class Meta:
        ordering = ["-pulled_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "remote_path", "size", "mtime"],
                name="pulledfile_once",
            )
        ]

    def __str__(self) -> str:
        return self.remote_path


class FeedFile(models.Model):
    """A received feed file and the log of its processing (the feed's sync log).

    The row and its run (``job``, QUEUED) are committed before the uploader is told the upload
    succeeded: the run row is the outbox of the ingestion queue, and the files of one
    integration are applied in the order they were received. ``status`` and ``attempts``
    mirror the run, in the file's own words.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="feed_files")
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="feed_files"
    )
    job = models.ForeignKey(
        SyncJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="feed_files"
    )
    source = models.CharField(
        max_length=10, choices=FeedFileSource.choices, default=FeedFileSource.SFTP
    )
    filename = models.CharField(max_length=255)
    stored_path = models.CharField(
        max_length=500,
        help_text="Its name in the feed file storage (FEED_STORAGE_DIR, or FEED_STORAGE_URL); "
        "empty once the retention purged it (or when nothing was kept).",
        blank=True,
    )
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    received_at = models.DateTimeField(db_index=True)
    remote_address = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=24,
        choices=FeedFileStatus.choices,
        default=FeedFileStatus.RECEIVED,
        db_index=True,
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Times a worker started applying the file (waiting is not one)."
    )
    records_total = models.PositiveIntegerField(default=0)
    records_created = models.PositiveIntegerField(default=0)
    records_updated = models.PositiveIntegerField(default=0)
    records_unchanged = models.PositiveIntegerField(default=0)
    records_removed = models.PositiveIntegerField(default=0)
    records_sold = models.PositiveIntegerField(default=0)
    records_skipped = models.PositiveIntegerField(default=0)
    records_errors = models.PositiveIntegerField(
        default=0, help_text="Rows not imported: a malformed row, no key, a VIN that is no VIN."
    )
    records_warnings = models.PositiveIntegerField(
        default=0, help_text="Rows imported with a value left empty because it could not be read."
    )
    warnings = models.JSONField(default=list, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_samples = models.JSONField(
        default=list,
        blank=True,
        help_text="The first rejected rows and values left empty: row number, severity (error "
        "or warning), field, raw value, reason, and the row's values.",
    )
    force = models.BooleanField(
        default=False, help_text="Process even when the safety guard would reject the file."
    )
    reading_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="Digest of the settings the file was read with; with the same sha256 as the "
        "last applied file, the next file is recognised as unchanged without being read.",
    )
    purged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the retention (FEED_FILE_RETENTION_DAYS) removed the stored copy; the "
        "row, its counts and samples stay.",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["integration", "-received_at"]),
            models.Index(fields=["status", "received_at"]),
            # The retention finds the rows that share a stored copy (a file and its reprocess
            # runs) by its name.
            models.Index(
                fields=["stored_path"],
                name="feedfile_stored_path",
                condition=~models.Q(stored_path=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"

    @property
    def has_stored_copy(self) -> bool:
        """Whether the stored copy can still be read (not purged, not lost)."""
        return storage_exists(feed_storage(), self.stored_path)

    @contextlib.contextmanager
    def local_copy(self) -> Iterator[Path]:
        """The stored copy as a local file, for readers that need a path (pandas, pyarrow):
        the stored file itself in a folder storage, a temporary download from a remote one,
        removed when the block ends. ``FileNotFoundError`` when it is gone."""
        if not self.stored_path:
            raise FileNotFoundError(f"The stored copy of {self.filename} is gone.")
        with storage_local_copy(feed_storage(), self.stored_path) as local:
            yield local

    @property
    def dispatched_at(self) -> datetime | None:
        """When the file's run was last sent to a worker (None: never, say Redis was down)."""
        return self.job.dispatched_at if self.job is not None else None


class Vehicle(models.Model):
    """One vehicle of one integration's inventory, keyed by VIN (or stock number without one)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexes: only those the merge and the API's filters use (see Meta.indexes); the account's
    # and the integration's single-column ones would duplicate the composites that start with
    # them. The account and the dealership are the integration's, copied so lists can filter by
    # them. No foreign key is checked by the database (a first load inserts hundreds of
    # thousands of rows, each checked on its own): Django's deletion collector applies their
    # on_delete, and the merge, the only writer, locks its integration's row once when it
    # applies (``FOR KEY SHARE``, what each row's check would take) and checks it is there.
    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        related_name="vehicles",
        db_index=False,
        db_constraint=False,
    )
    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        related_name="vehicles",
        db_index=False,
        db_constraint=False,
    )
    dealership = models.ForeignKey(
        Dealership,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="vehicles",
        db_constraint=False,
    )
    key = models.CharField(max_length=100, help_text="The VIN, or 'stock:<number>' without one.")
    status = models.CharField(
        max_length=10, choices=VehicleStatus.choices, default=VehicleStatus.ACTIVE
    )

    # Upper-cased without spaces by the feed reader: the API's VIN filter normalises its value
    # the same way and compares exactly.
    vin = models.CharField(max_length=32, blank=True, null=True)
    stock_number = models.CharField(max_length=64, blank=True, null=True)
    condition = models.CharField(
        max_length=4, choices=VehicleCondition.choices, blank=True, null=True
    )
    year = models.IntegerField(null=True, blank=True)
    make = models.CharField(max_length=100, blank=True, null=True)
    model = models.CharField(max_length=100, blank=True, null=True)
    trim = models.CharField(max_length=200, blank=True, null=True)
    body_style = models.CharField(max_length=100, blank=True, null=True)
    exterior_color = models.CharField(max_length=100, blank=True, null=True)
    interior_color = models.CharField(max_length=100, blank=True, null=True)
    mileage = models.IntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    msrp = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    invoice = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    book_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(
        max_length=3,
        blank=True,
        null=True,
        help_text="ISO 4217 code of the amounts (price, msrp, invoice, book value); null when "
        "the feed does not say.",
    )
    in_stock_date = models.DateField(null=True, blank=True)
    certified = models.BooleanField(null=True, blank=True)
    engine = models.CharField(max_length=200, blank=True, null=True)
    transmission = models.CharField(max_length=200, blank=True, null=True)
    drivetrain = models.CharField(max_length=100, blank=True, null=True)
    fuel_type = models.CharField(max_length=100, blank=True, null=True)
    doors = models.IntegerField(null=True, blank=True)
    description = models.TextField(blank=True, null=True)
    features = models.JSONField(default=list, blank=True)
    photo_urls = models.JSONField(default=list, blank=True)
    vdp_url = models.TextField(blank=True, null=True)
    extra = models.JSONField(
        default=dict, blank=True, help_text="Source columns mapped to nothing."
    )

    # Merge bookkeeping (syncengine.feeds.merge). content_hash is a 64-bit digest of every canonical
    # column and extra, compared in memory to skip unchanged rows; NULL for a row the merge did not
    # write, which the next merge therefore rewrites. last_seen_at is when the merge last wrote the
    # row because it was created, changed, came back or reappeared after a missed sync; an active
    # vehicle with missing_syncs == 0 was also in every later file (so it was last seen at its
    # integration's last_sync_at), because an unchanged row is deliberately not rewritten.
    content_hash = models.BigIntegerField(null=True, blank=True)
    missing_syncs = models.PositiveIntegerField(default=0)
    missing_since = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    sold_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "key"], name="vehicle_integration_key")
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="vehicle_account_status"),
            models.Index(fields=["account", "vin"], name="vehicle_account_vin"),
            models.Index(fields=["account", "stock_number"], name="vehicle_account_stock"),
            # The make and model filters are case-insensitive (UPPER(make) = UPPER(%s)).
            models.Index(
                F("account"), Upper("make"), Upper("model"), name="vehicle_account_make_model"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class VehicleVersion(models.Model):
    """A change to a vehicle (with ``track_history``): the changed fields, old and new values."""

    id = models.BigAutoField(primary_key=True)
    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="versions")
    feed_file = models.ForeignKey(
        FeedFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    change_type = models.CharField(max_length=12, choices=ChangeType.choices)
    changes = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.vehicle_id} {self.change_type}"
