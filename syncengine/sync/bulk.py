"""The bulk path into the record store on PostgreSQL, for sources that write ``COPY`` lines.

When nothing has to happen to a record between source and store (a connection sync, or an
integration without mappings, tasks or destination) and the source can produce its records as
``COPY`` text itself (``Connector.copy_rows``: PostgreSQL tables), the rows never become Python
objects: the source's server writes each record's JSON and hash, this process cuts the stream in
batches, and the store's server takes each batch with one ``COPY``.

- Into a stream that was empty when the run started, a batch is copied straight into the
  record table (a source with a real primary key cannot repeat a key).
- Otherwise a batch is copied into a temporary staging table, then one ``UPDATE`` rewrites the
  records whose hash changed and one ``INSERT ... WHERE NOT EXISTS`` adds the new ones
  (``update_only``: the ``UPDATE`` alone); their row counts are the batch's statistics.
- A full ``overwrite`` run keeps the keys it saw in a temporary table and then deletes the
  stream's other records, unless the run saw too few (the same guard as the Python path).

Reading runs in a thread ahead of writing, so the two servers work at the same time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from connectors.registry import CopyBatch
from integrations.choices import SyncStrategy
from syncengine.models import Record, SyncStream
from syncengine.sync.store import UNSET, BatchResult, deletion_refused

logger = logging.getLogger(__name__)

STAGE = "railyard_record_stage"
SEEN = "railyard_record_seen"
_DONE = object()


def bulk_available() -> bool:
    return connection.vendor == "postgresql"


class BulkRecordWriter:
    """Writes one run's ``CopyBatch`` es of one stream (lines: stream id, key, JSON, hash)."""

    def __init__(
        self,
        stream: SyncStream,
        *,
        strategy: str,
        full: bool,
        now: datetime,
        since: datetime | None = None,
    ) -> None:
        self.stream = stream
        self.strategy = strategy
        self.now = now
        self.since = since
        self.table = connection.ops.quote_name(Record._meta.db_table)
        self.records_before = Record.objects.filter(stream=stream).count()
        self.direct = self.records_before == 0 and strategy != SyncStrategy.UPDATE_ONLY
        self.track_seen = full and strategy == SyncStrategy.OVERWRITE and not self.direct
        self.seen = 0
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (stream_id bigint, key text, "
                "data text, content_hash bigint) ON COMMIT DELETE ROWS"
            )
            if self.track_seen:
                cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {SEEN} (key text)")
                cursor.execute(f"TRUNCATE {SEEN}")

    def _copy(self, target: str, lines: bytes) -> None:
        with (
            connection.wrap_database_errors,
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {target} (stream_id, key, data, content_hash) FROM STDIN"
            ) as copy,
        ):
            copy.write(lines)

    def write(self, batch: CopyBatch, *, cursor: Any = UNSET) -> BatchResult:
        """Write one batch and, when ``cursor`` is given, the stream's cursor, atomically."""
        result = BatchResult()
        moment = timezone.now()
        with transaction.atomic(), connection.cursor() as sql:
            # The batch commits with the job's checkpoint; not waiting for the WAL flush saves a
            # disk sync per batch, and a crash loses both together, which the retry redoes.
            sql.execute("SET LOCAL synchronous_commit TO OFF")
            if self.direct:
                self._copy(self.table, batch.lines)
                result.created = batch.count
            else:
                # Emptied here, not only at commit: the batch may run inside an outer transaction.
                sql.execute(f"TRUNCATE {STAGE}")
                self._copy(STAGE, batch.lines)
                # A batch is a small part of the store: look each staged key up in the primary
                # key index rather than scanning the stream for every batch.
                sql.execute("SET LOCAL enable_hashjoin TO OFF")
                sql.execute("SET LOCAL enable_mergejoin TO OFF")
                # Only changed records are written: an unchanged one costs an index lookup.
                # No ON CONFLICT (it would lock every conflicting row, changed or not): one job
                # at a time writes a stream.
                sql.execute(
                    f"UPDATE {self.table} r SET data = s.data, content_hash = s.content_hash, "  # noqa: S608
                    f"updated_at = %s FROM {STAGE} s WHERE r.stream_id = s.stream_id "
                    "AND r.key = s.key AND r.content_hash <> s.content_hash",
                    [self.now],
                )
                result.updated = sql.rowcount
                if self.strategy == SyncStrategy.UPDATE_ONLY:
                    sql.execute(
                        f"SELECT count(*) FROM {STAGE} s JOIN {self.table} r "  # noqa: S608
                        "ON r.stream_id = s.stream_id AND r.key = s.key"
                    )
                    matched = sql.fetchone()[0]
                    result.skipped = batch.count - matched
                else:
                    sql.execute(
                        f"INSERT INTO {self.table} "  # noqa: S608
                        "(stream_id, key, data, content_hash, created_at, updated_at) "
                        f"SELECT s.stream_id, s.key, s.data, s.content_hash, %s, %s FROM {STAGE} s "
                        f"WHERE NOT EXISTS (SELECT 1 FROM {self.table} r "
                        "WHERE r.stream_id = s.stream_id AND r.key = s.key)",
                        [self.now, self.now],
                    )
                    result.created = sql.rowcount
                result.unchanged = batch.count - result.created - result.updated - result.skipped
                if self.since is not None and result.unchanged:
                    # Unchanged records an earlier attempt of this job wrote (see BatchResult).
                    sql.execute(
                        "SELECT count(*) FILTER (WHERE r.created_at >= %s), "  # noqa: S608
                        f"count(*) FILTER (WHERE r.created_at < %s) FROM {STAGE} s "
                        f"JOIN {self.table} r ON r.stream_id = s.stream_id AND r.key = s.key "
                        "WHERE r.content_hash = s.content_hash "
                        "AND r.updated_at >= %s AND r.updated_at < %s",
                        [self.since, self.since, self.since, self.now],
                    )
                    result.again_created, result.again_updated = sql.fetchone()
                if self.track_seen:
                    sql.execute(f"INSERT INTO {SEEN} (key) SELECT key FROM {STAGE}")  # noqa: S608
            changes: dict[str, Any] = {"last_synced_at": moment}
            if cursor is not UNSET:
                changes.update(cursor=cursor, cursor_updated_at=moment)
            SyncStream.objects.filter(pk=self.stream.pk).update(**changes)
        self.seen += batch.count
        return result

    def finish(self, *, full: bool, min_rows_ratio: float) -> tuple[int, str | None]:
        """After the last batch: a full overwrite deletes the records the run did not see."""
        if not (full and self.track_seen):
            return 0, None
        refusal = deletion_refused(
            seen=self.seen, before=self.records_before, min_rows_ratio=min_rows_ratio
        )
        if refusal:
            return 0, refusal
        with transaction.atomic(), connection.cursor() as sql:
            sql.execute(
                f"DELETE FROM {self.table} r WHERE r.stream_id = %s AND NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM {SEEN} s WHERE s.key = r.key)",
                [self.stream.pk],
            )
            deleted = sql.rowcount
            sql.execute(f"TRUNCATE {SEEN}")
        return deleted, None


def prefetched(
    batches: Iterator[CopyBatch],
    *,
    depth: int = 2,
    on_idle: Callable[[], None] | None = None,
    idle_seconds: float = 30.0,
) -> Iterator[CopyBatch]:
    """Iterate ``batches`` in a thread, up to ``depth`` batches ahead, so the source's server
    produces the next batch while the store's server takes this one. An error of the reader is
    raised here; stopping early (a cancel, an error) stops the reader at its next batch.
    ``on_idle`` is called every ``idle_seconds`` spent waiting for the source (a heartbeat while
    a large table is sorted before its first row comes)."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        ahead.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            ahead.put(_DONE)
        except BaseException as error:  # handed to the consumer, raised there
            ahead.put(error)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.warning("Closing a bulk read failed", exc_info=True)

    reader = threading.Thread(target=read, name="railyard-copy-reader", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = ahead.get(timeout=idle_seconds)
            except queue.Empty:
                if on_idle is not None:
                    on_idle()
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            try:
                ahead.get(timeout=0.2)
            except queue.Empty:
                continue
        reader.join()
