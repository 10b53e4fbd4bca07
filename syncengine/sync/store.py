"""The generic record store: the records of a stream keyed by the source's primary key, and
snapshots.

``RecordStoreWriter`` is what the job runner drives for one entity of one run: ``write()`` per
batch (one transaction with the batch's cursor), or ``plan()`` then ``commit()`` when something
outside the database (a destination connector) must take the batch in between, then
``finish()``. It keeps the stream's
``{key: content hash}`` in memory, read once when the run starts, so it knows which keys are new,
which changed and which are unchanged without asking the database per batch, and which records a
full overwrite did not see. An unchanged record is never rewritten.

On PostgreSQL new records go in with ``COPY`` and changed ones with one set-based ``UPDATE`` per
batch; on SQLite (the zero-setup default) the ORM's bulk operations do the same work.

The in-memory state assumes one writer per stream at a time, which the job table guarantees (one
running job per integration and per connection). Should another process write the stream anyway,
a batch fails (a duplicate key, or an update that found fewer records than expected) and rolls
back whole; the retried job reads the state again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Model
from django.utils import timezone

from integrations.choices import SyncStrategy
from syncengine.models import Record, Snapshot, SnapshotRecord, SyncStream


class _Unset(Enum):
    UNSET = "UNSET"


# ``write(rows)`` without a cursor leaves the stream's cursor as it is; ``cursor=None`` clears it.
UNSET: Final = _Unset.UNSET

# SQLite refuses statements with more than 999 bound values on old builds.
_SQLITE_CHUNK = 400
_DELETE_CHUNK = 5000
# A store this small is read whole at the first batch: one query, a few MB.
_STATE_ALWAYS = 20_000
_STATE_CHUNK = 50_000


def canonical_json(data: Any) -> bytes:
    """``data`` as compact JSON with sorted keys, UTF-8: the text its content hash is taken of.

    orjson and the standard library agree on it for anything JSON can hold, except for floats
    written with an exponent and non-finite floats; the standard library also takes what orjson
    refuses (integers beyond 64 bits, non-string keys).
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        pass
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(text: bytes) -> int:
    """A stable signed 64-bit digest (BLAKE2b), so it fits a BigIntegerField and is the same in
    every process (Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def content_hash(data: Any) -> int:
    """The content hash of a record's data: equal data (whatever its key order) hash equally."""
    return digest(canonical_json(data))


def stream_for(
    *,
    account_id: Any,
    integration_id: Any = None,
    connection_id: Any = None,
    entity: str,
) -> SyncStream:
    """The stream of ``entity`` of an integration (or, without one, of a connection), created on
    first use. Two workers creating it at once both get the same row: the loser of the insert
    race reads the winner's."""
    if integration_id is None and connection_id is None:
        raise ValueError("A stream belongs to an integration or a connection.")
    streams = SyncStream.objects.filter(entity=entity)
    if integration_id is not None:
        streams = streams.filter(integration_id=integration_id)
    else:
        streams = streams.filter(integration__isnull=True, connection_id=connection_id)
    stream = streams.first()
    if stream is not None:
        return stream
    try:
        with transaction.atomic():
            return SyncStream.objects.create(
                account_id=account_id,
                integration_id=integration_id,
                connection_id=connection_id,
                entity=entity,
            )
    except IntegrityError:
        return streams.get()


@dataclass
class BatchResult:
    """What one ``write()`` did. ``changed`` holds the data of the created and updated records in
    input order (what a destination connector is sent)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # update_only: keys not in the store are not created
    changed: list[dict[str, Any]] = field(default_factory=list)
    # Of ``unchanged``: records an earlier attempt of the same job created or updated, read
    # again (only counted for a writer given ``since``, the job's start).
    again_created: int = 0
    again_updated: int = 0


@dataclass
class BatchPlan:
    """A batch worked out but not written yet (``RecordStoreWriter.plan``): rows to insert and
    to update as ``(key, canonical JSON, hash)``, the state each key will have, and the result."""

    created: list[tuple[str, bytes, int]] = field(default_factory=list)
    updated: list[tuple[str, bytes, int]] = field(default_factory=list)
    touched: dict[str, int | None] = field(default_factory=dict)
    result: BatchResult = field(default_factory=BatchResult)


# COPY's text format: these characters are written backslash-escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _copy_text(value: str) -> bytes:
    """A text value for a line of ``COPY ... FROM STDIN`` (text format)."""
    if _COPY_SPECIAL.search(value):
        value = value.translate(_COPY_ESCAPES)
    return value.encode()


def _copy_json(text: bytes) -> bytes:
    # JSON text holds no raw tab, newline or carriage return (they are escaped inside strings),
    # so only its backslashes need doubling.
    return text.replace(b"\\", b"\\\\")


def _copy_in(sql: str, lines: bytes) -> None:
    """``COPY ... FROM STDIN`` on the default connection; its errors are Django's, as the ORM's
    are (psycopg's own copy API bypasses Django's error wrapping)."""
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(sql) as copy,
    ):
        copy.write(lines)


def deletion_refused(*, seen: int, before: int, min_rows_ratio: float) -> str | None:
    """Why a full overwrite that saw ``seen`` records must not delete the others from a stream
    that held ``before``: an empty or truncated source never wipes a store."""
    if seen < min_rows_ratio * before:
        return (
            f"Deleted nothing: this full sync saw {seen:,} record(s), fewer than "
            f"{min_rows_ratio:g} x the {before:,} the store held before it; "
            "the source may be empty or truncated."
        )
    return None


class RecordStoreWriter:
    """Writes one run's batches of one stream with a sync strategy.

    ``overwrite`` replaces a record's data and, after a full run, deletes the records the run did
    not see; ``merge`` adds and updates and keeps records the source no longer has;
    ``update_only`` updates records already in the store and creates none.
    """

    def __init__(
        self, stream: SyncStream, *, strategy: str, now: datetime, since: datetime | None = None
    ) -> None:
        if strategy not in SyncStrategy.values:
            raise ValueError(f"Unknown sync strategy {strategy!r}.")
        self.stream = stream
        self.strategy = strategy
        self.now = now
        self.since = since
        self.postgresql = connection.vendor == "postgresql"
        # Records in the store not seen yet in this run, and every key seen in this run (None:
        # seen but not in the store, an update_only skip), each {key: content hash}. A key is in
        # one of the two, so the state costs one dict entry per record.
        self._unseen: dict[str, int] | None = None
        self._seen: dict[str, int | None] = {}
        self._counted = False
        self._lookups = 0
        # Records of the stream when this run first wrote to it.
        self.records_before = 0

    @property
    def seen(self) -> int:
        """Distinct keys written or seen so far in this run."""
        return len(self._seen)

    # --- state -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._counted:
            return
        self.records_before = Record.objects.filter(stream=self.stream).count()
        self._counted = True
        if self.records_before <= _STATE_ALWAYS:
            self._load_state()

    def _stored(self, keys: list[str]) -> dict[str, int]:
        """``{key: content hash}`` of those of ``keys`` (none seen in this run) in the store.

        A run that touches a small part of a large store (an incremental sync) asks for its
        batches' keys; once it has asked for a quarter of the store, reading the whole state
        in one pass is cheaper than going on, and a full overwrite needs it anyway."""
        if self._unseen is None:
            self._lookups += len(keys)
            if self._lookups <= self.records_before // 4:
                return self._lookup(keys)
            self._load_state()
        assert self._unseen is not None
        unseen = self._unseen
        return {key: unseen[key] for key in keys if key in unseen}

    def _lookup(self, keys: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        records = Record.objects.filter(stream=self.stream)
        if self.postgresql:
            # One array parameter rather than thousands of placeholders to build and bind.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT key, content_hash FROM {_table(Record)}"  # noqa: S608
                    " WHERE stream_id = %s AND key = ANY(%s)",
                    [self.stream.pk, keys],
                )
                found.update(cursor.fetchall())
            return found
        for start in range(0, len(keys), _SQLITE_CHUNK):
            chunk = keys[start : start + _SQLITE_CHUNK]
            found.update(records.filter(key__in=chunk).values_list("key", "content_hash"))
        return found

    def _load_state(self) -> None:
        """Read every record's key and hash in one pass, less the keys this run has seen."""
        seen = self._seen
        state: dict[str, int] = {}
        table = _table(Record)
        # A server-side cursor on PostgreSQL: the rows arrive in chunks, never all at once.
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                f"SELECT key, content_hash FROM {table} WHERE stream_id = %s",  # noqa: S608
                [self.stream.pk],
            )
            while chunk := cursor.fetchmany(_STATE_CHUNK):
                if seen:
                    state.update((key, hashed) for key, hashed in chunk if key not in seen)
                else:
                    state.update(chunk)
        self._unseen = state

    # --- writing -----------------------------------------------------------------------------

    def write(self, rows: list[tuple[str, dict[str, Any]]], *, cursor: Any = UNSET) -> BatchResult:
        """Write one batch and, when ``cursor`` is given, the stream's cursor, in one transaction.

        A key repeated in the batch counts once, with its last data. A record whose content hash
        did not change is not written at all.
        """
        return self.commit(self.plan(rows), cursor=cursor)

    def plan(self, rows: list[tuple[str, dict[str, Any]]]) -> BatchPlan:
        """What writing a batch will do, worked out by reading only: which records are new,
        changed or unchanged (``result.changed`` is what a destination is sent before the batch
        is committed). ``commit()`` writes it; this writer is the stream's only writer, so the
        plan still holds then."""
        self._prepare()
        seen = self._seen
        batch = dict(rows)
        stored_before = self._stored([key for key in batch if key not in seen])
        plan = BatchPlan()
        result = plan.result
        update_only = self.strategy == SyncStrategy.UPDATE_ONLY
        unchanged: list[str] = []
        for key, data in batch.items():
            text = canonical_json(data)
            hashed = digest(text)
            stored = seen[key] if key in seen else stored_before.get(key)
            if stored is None:
                if update_only:
                    result.skipped += 1
                    plan.touched[key] = None
                    continue
                plan.created.append((key, text, hashed))
                result.changed.append(data)
            elif stored != hashed:
                plan.updated.append((key, text, hashed))
                result.changed.append(data)
            else:
                result.unchanged += 1
                unchanged.append(key)
            plan.touched[key] = hashed
        result.created, result.updated = len(plan.created), len(plan.updated)
        if self.since is not None and unchanged:
            self._written_since(unchanged, result)
        return plan

    def commit(self, plan: BatchPlan, *, cursor: Any = UNSET) -> BatchResult:
        """Write a planned batch and, when ``cursor`` is given, the stream's cursor, in one
        transaction (a savepoint of the caller's, which commits the run's checkpoint with it)."""
        created, updated = plan.created, plan.updated
        moment = timezone.now()
        with transaction.atomic():
            if self.postgresql and (created or updated):
                # The batch commits with the job's checkpoint; not waiting for the WAL flush
                # saves a disk sync per batch, and a crash loses both together, which the
                # retried job redoes.
                with connection.cursor() as sql:
                    sql.execute("SET LOCAL synchronous_commit TO OFF")
            if updated:
                self._update(updated)
            if created:
                self._insert(created)
            changes: dict[str, Any] = {"last_synced_at": moment}
            if cursor is not UNSET:
                changes.update(cursor=cursor, cursor_updated_at=moment)
            SyncStream.objects.filter(pk=self.stream.pk).update(**changes)
        for name, value in changes.items():
            setattr(self.stream, name, value)
        # Only now that the batch is written does the state move on (a failed batch leaves it).
        unseen, seen = self._unseen, self._seen
        for key, now_stored in plan.touched.items():
            if unseen is not None:
                unseen.pop(key, None)
            seen[key] = now_stored
        return plan.result

    def _written_since(self, keys: list[str], result: BatchResult) -> None:
        """Count which of the unchanged ``keys`` an earlier attempt of this job wrote: written
        at or after the job's start, before this attempt's (which stamps ``now``)."""
        records = Record.objects.filter(
            stream=self.stream, updated_at__gte=self.since, updated_at__lt=self.now
        )
        assert self.since is not None
        for start in range(0, len(keys), _SQLITE_CHUNK):
            chunk = keys[start : start + _SQLITE_CHUNK]
            for created_at in records.filter(key__in=chunk).values_list("created_at", flat=True):
                if created_at >= self.since:
                    result.again_created += 1
                else:
                    result.again_updated += 1

    def _insert(self, created: list[tuple[str, bytes, int]]) -> None:
        if not self.postgresql:
            Record.objects.bulk_create(
                [
                    Record(
                        stream=self.stream,
                        key=key,
                        data=json.loads(text),
                        content_hash=hashed,
                        created_at=self.now,
                        updated_at=self.now,
                    )
                    for key, text, hashed in created
                ],
                batch_size=_SQLITE_CHUNK,
            )
            return
        stamp = self.now.isoformat().encode()
        prefix = b"%d\t" % self.stream.pk
        suffix = b"\t" + stamp + b"\t" + stamp + b"\n"
        lines = b"".join(
            b"%s%s\t%s\t%d%s" % (prefix, _copy_text(key), _copy_json(text), hashed, suffix)
            for key, text, hashed in created
        )
        table = _table(Record)
        sql = (
            f"COPY {table} (stream_id, key, data, content_hash, created_at, updated_at) FROM STDIN"
        )
        _copy_in(sql, lines)

    def _update(self, updated: list[tuple[str, bytes, int]]) -> None:
        table = _table(Record)
        with connection.cursor() as cursor:
            if self.postgresql:
                cursor.execute(
                    f"""
                    UPDATE {table} AS r
                    SET data = u.data, content_hash = u.content_hash, updated_at = %s
                    FROM unnest(%s::text[], %s::text[], %s::bigint[])
                        AS u(key, data, content_hash)
                    WHERE r.stream_id = %s AND r.key = u.key
                    """,  # noqa: S608 - only the table name is formatted in
                    [
                        self.now,
                        [key for key, _, _ in updated],
                        [text.decode() for _, text, _ in updated],
                        [hashed for _, _, hashed in updated],
                        self.stream.pk,
                    ],
                )
                written = cursor.rowcount
            else:
                now = Record._meta.get_field("updated_at").get_db_prep_value(self.now, connection)
                written = 0
                for key, text, hashed in updated:
                    cursor.execute(
                        f"UPDATE {table} SET data = %s, content_hash = %s, updated_at = %s"  # noqa: S608
                        " WHERE stream_id = %s AND key = %s",
                        [text.decode(), hashed, now, self.stream.pk, key],
                    )
                    written += cursor.rowcount
        if written != len(updated):
            raise IntegrityError(
                f"{len(updated) - written} record(s) of stream {self.stream.pk} were deleted "
                "while this run wrote it; the batch was not written."
            )

    # --- the end of a run --------------------------------------------------------------------

    def finish(
        self,
        *,
        full: bool,
        min_rows_ratio: float,
        forward: Callable[[list[dict[str, Any]]], object] | None = None,
    ) -> tuple[int, str | None]:
        """After the last batch: a full overwrite deletes the records the run did not see.

        Returns ``(deleted, warning)``. A run that saw fewer than ``min_rows_ratio`` times the
        records the stream held before it deletes nothing and says so: an empty or truncated
        source never wipes a store. ``forward`` gets each chunk of records (as stored) before it
        leaves the store, to remove them from a destination too: if it raises, the chunk and
        the ones after it stay, and the next full run removes them.
        """
        if not full or self.strategy != SyncStrategy.OVERWRITE:
            return 0, None
        self._prepare()
        if self._unseen is None:
            self._load_state()
        unseen = self._unseen
        assert unseen is not None
        if not unseen:
            return 0, None
        refusal = deletion_refused(
            seen=self.seen, before=self.records_before, min_rows_ratio=min_rows_ratio
        )
        if refusal:
            return 0, refusal
        keys = list(unseen)
        step = _DELETE_CHUNK if self.postgresql else _SQLITE_CHUNK
        deleted = 0
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            gone = Record.objects.filter(stream=self.stream, key__in=chunk)
            if forward is not None:
                forward(list(gone.values_list("data", flat=True)))
            deleted += gone.delete()[0]
            for key in chunk:
                del unseen[key]
        return deleted, None


class SnapshotWriter:
    """Appends one entity's records to a snapshot, in read order (``position`` from 0)."""

    def __init__(self, snapshot: Snapshot, entity: str) -> None:
        self.snapshot = snapshot
        self.entity = entity
        self._next: int | None = None

    def write(self, records: list[dict[str, Any]]) -> int:
        """Append ``records``; the snapshot's counts move in the same transaction."""
        if not records:
            return 0
        with transaction.atomic():
            # The row lock serialises count updates of writers of other entities.
            locked = Snapshot.objects.select_for_update().get(pk=self.snapshot.pk)
            if self._next is None:
                highest = SnapshotRecord.objects.filter(
                    snapshot=self.snapshot, entity=self.entity
                ).aggregate(highest=Max("position"))["highest"]
                self._next = 0 if highest is None else highest + 1
            start = self._next
            self._append(records, start)
            entities = dict(locked.entities)
            entities[self.entity] = int(entities.get(self.entity, 0)) + len(records)
            record_count = locked.record_count + len(records)
            Snapshot.objects.filter(pk=locked.pk).update(
                entities=entities, record_count=record_count
            )
        self._next = start + len(records)
        self.snapshot.entities = entities
        self.snapshot.record_count = record_count
        return len(records)

    def _append(self, records: list[dict[str, Any]], start: int) -> None:
        if connection.vendor != "postgresql":
            SnapshotRecord.objects.bulk_create(
                [
                    SnapshotRecord(
                        snapshot=self.snapshot, entity=self.entity, position=position, data=data
                    )
                    for position, data in enumerate(records, start)
                ],
                batch_size=_SQLITE_CHUNK,
            )
            return
        prefix = b"%s\t%s\t" % (str(self.snapshot.pk).encode(), _copy_text(self.entity))
        lines = b"".join(
            b"%s%d\t%s\n" % (prefix, position, _copy_json(canonical_json(data)))
            for position, data in enumerate(records, start)
        )
        sql = f"COPY {_table(SnapshotRecord)} (snapshot_id, entity, position, data) FROM STDIN"
        _copy_in(sql, lines)
