"""The connector sync engine's record store: streams, records and snapshots."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from accounts.models import Account
from connectors.models import Connection
from integrations.models import Integration
from syncengine.fields import JSONTextField
from syncengine.models.runs import SyncJob


class SyncStream(models.Model):
    """One entity of one integration (or of one connection, for connection syncs) in
    the record store, with the cursor its last committed batch reached."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="streams"
    )
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="streams"
    )
    entity = models.CharField(max_length=200)
    cursor = models.JSONField(null=True, blank=True)
    cursor_updated_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["entity"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "entity"],
                condition=Q(integration__isnull=False),
                name="syncstream_integration_entity",
            ),
            models.UniqueConstraint(
                fields=["connection", "entity"],
                condition=Q(integration__isnull=True),
                name="syncstream_connection_entity",
            ),
            models.CheckConstraint(
                condition=Q(integration__isnull=False) | Q(connection__isnull=False),
                name="syncstream_has_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.entity


class Record(models.Model):
    """A record of a stream, keyed by the source's primary key. ``content_hash`` is a 64-bit
    digest of ``data``: a record whose hash has not changed is never rewritten.

    Shaped for bulk loads (see ``syncengine.sync.bulk``): the primary key is (stream, key), the one
    index a record needs; on PostgreSQL the key compares bytewise (``C`` collation, set by the
    migration) rather than by the database's language rules; and there is no foreign key
    constraint in the database, which PostgreSQL would check once per inserted row (about 10 s
    per million rows). Records are written only by the store's writers, with the id of a stream
    they have just read, and Django deletes a stream's records with it. Each of the three
    halves a load's cost or more.
    """

    pk = models.CompositePrimaryKey("stream_id", "key")
    stream = models.ForeignKey(
        SyncStream,
        on_delete=models.CASCADE,
        related_name="records",
        db_index=False,
        db_constraint=False,
    )
    key = models.CharField(max_length=500)
    data = JSONTextField()
    content_hash = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["stream", "key"]

    def __str__(self) -> str:
        return self.key


class Snapshot(models.Model):
    """An immutable point-in-time copy of entities, taken by a SNAPSHOT-mode job."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.CASCADE, related_name="snapshots"
    )
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="snapshots"
    )
    job = models.OneToOneField(SyncJob, on_delete=models.CASCADE, related_name="snapshot")
    # {entity: record count}, filled in as the job commits batches; final when complete.
    entities = models.JSONField(default=dict, blank=True)
    record_count = models.PositiveIntegerField(default=0)
    complete = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"snapshot {self.pk}"


class SnapshotRecord(models.Model):
    """One record of a snapshot, as the source gave it.

    ``data`` is JSON kept as text (``JSONTextField``), as the record store keeps it: a snapshot
    copies what the source holds, and ``jsonb`` refuses some of it (a string holding ``\\u0000``),
    which would fail the whole job. Snapshot records are read whole, never queried inside.
    """

    id = models.BigAutoField(primary_key=True)
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="records")
    entity = models.CharField(max_length=200)
    position = models.PositiveIntegerField(help_text="Order within the entity, from 0.")
    data = JSONTextField()

    class Meta:
        ordering = ["snapshot", "entity", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "entity", "position"], name="snapshotrecord_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.entity} #{self.position}"
