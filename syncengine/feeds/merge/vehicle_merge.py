"""``VehicleMerge``: stage a feed file's chunks, then apply them to the store in one transaction."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db import DatabaseError, connection, transaction
from numpy.typing import NDArray

from integrations.choices import SyncStrategy
from integrations.models import Integration
from syncengine.choices import ChangeType, VehicleStatus
from syncengine.feeds.merge.copytext import content_arrays
from syncengine.feeds.merge.keys import KeyIndex, KeyNames, key_digests
from syncengine.feeds.merge.rows import (
    CONTENT_COLUMNS,
    FRAME_COLUMNS,
    LATE_COLUMNS,
    content_hashes,
    database_columns,
    frame_column,
    history_name,
    history_value,
    object_values,
    random_uuid_hex,
)
from syncengine.feeds.merge.tables import (
    ACTIVE,
    INSERT,
    LEADING_COLUMNS,
    MISSING,
    REMOVE,
    RESET,
    REWRITE,
    STAGED_COLUMNS,
    STATUS_BY_CODE,
    MergeTables,
    db_datetime,
    db_uuid,
    load_state,
)
from syncengine.models import FeedFile, Vehicle, VehicleVersion

# What the file did to each vehicle it names (one byte a vehicle; 0: not in the file).
_CREATED = 1
_UPDATED = 2  # active, content changed
_REACTIVATED = 3  # was sold or removed; rewritten whether or not its content changed
_UNCHANGED = 4  # active, same content, no missed sync: not written at all
_RESET = 5  # active, same content, had missed syncs: only its bookkeeping is written
_SKIPPED = 6  # update_only: a key the store does not have
_OUTCOMES = 7

_ACTION_BY_OUTCOME = {
    _CREATED: INSERT,
    _UPDATED: REWRITE,
    _REACTIVATED: REWRITE,
    _RESET: RESET,
}
logger = logging.getLogger(__name__)

_HISTORY_BATCH = 2_000
_SLICE_ROWS = 20_000
# A new vehicle's columns, as they are copied in directly (see ``VehicleMerge``).
_NEW_VEHICLE_COLUMNS: tuple[str, ...] = (
    "id",
    "key",
    "content_hash",
    "account_id",
    "integration_id",
    "dealership_id",
    "status",
    "missing_syncs",
    "first_seen_at",
    "last_seen_at",
    "created_at",
    "updated_at",
    *CONTENT_COLUMNS,
)


# The statements of apply(). Braces name identifiers, quoted by MergeTables.execute(): the store's
# and this merge's tables, the content columns; every value is a bound %s parameter.
# No ORDER BY: sorting a million wide rows spills to disk, and the sequential scan of the staging
# table returns them in file order anyway.
_SQL_INSERT_NEW = """
    INSERT INTO {vehicle} (id, account_id, integration_id, dealership_id, {key}, status,
        {columns}, content_hash, missing_syncs, first_seen_at, last_seen_at, created_at,
        updated_at)
    SELECT s.id, %s, %s, %s, s.{key}, %s, {staged_columns}, s.content_hash, 0, %s, %s, %s, %s
    FROM {rows} s WHERE s.action = %s
"""
_SQL_DELETE_CREATED = "DELETE FROM {vehicle} WHERE integration_id = %s AND {key} = ANY(%s)"
_SQL_RECORD_STAGED = """
    INSERT INTO {version} (vehicle_id, feed_file_id, change_type, changes, created_at)
    SELECT v.id, %s, s.change_type, s.changes, %s
    FROM {rows} s JOIN {vehicle} v ON v.integration_id = %s AND v.{key} = s.{key}
    WHERE s.change_type IS NOT NULL ORDER BY s.row_number
"""
_SQL_REWRITE = """
    UPDATE {vehicle} SET status = %s, {assignments}, content_hash = s.content_hash,
        missing_syncs = 0, missing_since = NULL, sold_at = NULL, removed_at = NULL,
        last_seen_at = %s, updated_at = %s
    FROM {rows} s
    WHERE {vehicle}.integration_id = %s AND {vehicle}.{key} = s.{key} AND s.action = %s
"""
_SQL_RESET = """
    UPDATE {vehicle} SET missing_syncs = 0, missing_since = NULL, last_seen_at = %s
    WHERE integration_id = %s AND {key} IN (SELECT s.{key} FROM {rows} s WHERE s.action = %s)
"""
# The active vehicles of the integration listed in the absent table with an action.
_SQL_ABSENT = """
    integration_id = %s AND status = %s
    AND {key} IN (SELECT a.{key} FROM {absent} a WHERE a.action = %s)
"""
_SQL_GRACE_OVER = _SQL_ABSENT + " AND missing_syncs + 1 >= %s AND COALESCE(missing_since, %s) <= %s"
_SQL_RECORD_RETIREMENT = """
    INSERT INTO {version} (vehicle_id, feed_file_id, change_type, changes, created_at)
    SELECT id, %s, %s, %s, %s FROM {vehicle} WHERE {where} ORDER BY {key}
"""
_SQL_REMOVE = "UPDATE {vehicle} SET status = %s, removed_at = %s, updated_at = %s WHERE {where}"
_SQL_SELL = """
    UPDATE {vehicle} SET status = %s, sold_at = %s, updated_at = %s,
        missing_syncs = missing_syncs + 1, missing_since = COALESCE(missing_since, %s)
    WHERE {where}
"""
_SQL_MISS = """
    UPDATE {vehicle} SET missing_syncs = missing_syncs + 1,
        missing_since = COALESCE(missing_since, %s)
    WHERE {where}
"""


@dataclass
class MergeCounts:
    """What one merge did. ``created + updated + unchanged + skipped == rows_staged`` (the
    distinct keys of the file); ``reactivated`` is the part of ``updated`` that came back from
    sold or removed; ``total`` counts every staged row, ``duplicates`` the repeats among them.
    """

    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    sold: int = 0
    skipped: int = 0
    reactivated: int = 0
    duplicates: int = 0


class VehicleMerge:
    """The set-based merge of one feed file's normalised rows into an integration's vehicles.

    Construction reads the integration's stored vehicles once (key digest, content hash,
    status, missed syncs) into compact numpy columns, about 80 bytes a vehicle, and creates the
    temporary staging tables. ``stage()`` takes the parser's frames one chunk at a time: each is
    hashed and classified in pandas, and only new and changed rows are written to the staging
    table. ``apply()`` turns the staging table into a handful
    of set-based statements in one transaction. An unchanged vehicle is never written, so an
    identical re-upload costs a read of the store and a hash of the file.

    Semantics the statements implement:

    * ``last_seen_at`` is the time the merge last wrote a vehicle: created, changed, reactivated,
      or reset after missed syncs. An unchanged vehicle keeps its old value; ``missing_syncs ==
      0`` on an active vehicle says it was in the latest file (seen at the integration's
      ``last_sync_at``). ``updated_at`` moves only when content or status changes.
    * ``overwrite``: active vehicles the file lacks become removed. Sold and removed ones stay
      as they are. ``merge``: each absent active vehicle misses one more sync and becomes sold
      once it has missed ``sold_grace_syncs`` syncs and ``sold_grace_hours`` have passed since
      its first miss (0 turns a threshold off). ``update_only``: new keys are skipped, absent
      vehicles untouched.
    * A sold or removed vehicle in the file is reactivated; it counts as updated.
    * The last row of a key wins, across chunks too; the repeats are counted.

    The merge assumes it is the only writer of the integration's vehicles while it runs, which
    the one-running-job-per-integration constraint guarantees; a concurrent insert of the same
    key would make the merge fail (its copy, or ``apply()``) and roll back, never merge twice.

    Created inside a transaction on PostgreSQL (a file run's work and ending share one, see
    ``RunKind.one_transaction``), the merge writes new vehicles straight into the store as
    their chunks are staged, under a savepoint, so the database inserts them while the parser
    reads on: ``apply()`` must then run in that same transaction, and ``discard()`` rolls back
    to the savepoint. Nobody sees them before the transaction commits. Otherwise (SQLite, or no
    transaction) new vehicles are staged like changed ones and inserted by ``apply()``.
    """

    def __init__(
        self,
        *,
        integration: Integration,
        feed_file: FeedFile | None,
        strategy: str,
        sold_grace_syncs: int,
        sold_grace_hours: float,
        track_history: bool,
        now: datetime,
        direct: bool = True,
    ) -> None:
        """``direct``: write new vehicles while staging when the transaction allows it (see
        above); False stages them like the rest."""
        if strategy not in SyncStrategy.values:
            raise ValueError(f"Unknown sync strategy {strategy!r}.")
        self.integration = integration
        self.feed_file = feed_file
        self.strategy = strategy
        self.sold_grace_syncs = max(0, int(sold_grace_syncs))
        self.sold_grace_hours = max(0.0, float(sold_grace_hours))
        self.track_history = track_history
        self.now = now
        self.duplicates = 0
        self._rows_total = 0
        self._distinct = 0
        self._closed = False
        self._applied = False
        self._tables: MergeTables | None = None
        self._direct = direct and connection.vendor == "postgresql" and connection.in_atomic_block
        self._savepoint: str | None = None
        # Position i is a vehicle: below _existing one the store has (in load order), above a
        # key first met in this file. Per-position numpy columns grow as new keys arrive.
        self._index = KeyIndex()
        self._names = KeyNames()
        self._existing = 0
        self._size = 0
        self._hashes: NDArray[np.int64] = np.empty(0, np.int64)
        self._hashed: NDArray[np.bool_] = np.empty(0, np.bool_)
        self._status: NDArray[np.int8] = np.empty(0, np.int8)
        self._missing: NDArray[np.bool_] = np.empty(0, np.bool_)
        self._seen_row: NDArray[np.int64] = np.empty(0, np.int64)  # winning row_number, 0: absent
        self._staged_row: NDArray[np.int64] = np.empty(0, np.int64)  # its staged row, 0: none
        self._outcome: NDArray[np.int8] = np.empty(0, np.int8)
        # Read the store now, before the caller opens the file: the read's transient memory
        # then never adds to that of the parser's first chunk.
        self._start()

    @property
    def rows_staged(self) -> int:
        """The distinct keys staged so far."""
        return self._distinct

    # --- staging ----------------------------------------------------------------------------

    def stage(self, frame: pd.DataFrame) -> None:
        """Classify one chunk of the frame contract and stage its new and changed rows.

        Only the chunk and a few bytes per vehicle are held in memory; rows go to the staging
        table before the next chunk is read.
        """
        self._check_open()
        absent_columns = [
            column
            for column in FRAME_COLUMNS
            if column not in frame.columns and column not in LATE_COLUMNS
        ]
        if absent_columns:
            raise ValueError(f"The frame lacks the columns {', '.join(absent_columns)}.")
        tables = self._start()
        if frame.empty:
            return
        if not frame["row_number"].is_monotonic_increasing:
            frame = frame.sort_values("row_number", kind="stable")
        self._rows_total += len(frame)
        repeated = frame["key"].duplicated(keep="last").to_numpy()
        if repeated.any():
            self.duplicates += int(repeated.sum())
            frame = frame.loc[~repeated]
        # Slices bound what one call holds besides the chunk itself: the hash inputs, the JSON
        # and the row tuples of 20,000 rows rather than of the whole chunk.
        for start in range(0, len(frame), _SLICE_ROWS):
            self._stage_slice(tables, frame.iloc[start : start + _SLICE_ROWS])

    def _stage_slice(self, tables: MergeTables, frame: pd.DataFrame) -> None:
        """Stage rows whose keys are distinct within ``frame`` (repeats were dropped before)."""
        keys = object_values(frame["key"])
        row_numbers = frame["row_number"].to_numpy(dtype=np.int64)
        hashes = content_hashes(frame)
        positions = self._locate(keys)

        again = self._seen_row[positions] > 0
        self.duplicates += int(again.sum())
        self._distinct += int(len(positions) - again.sum())
        superseded = self._staged_row[positions[again]]
        superseded = superseded[superseded > 0]
        if superseded.size:
            tables.delete_rows(superseded.tolist())
        if self._direct and again.any():
            # A vehicle an earlier row created is created again from this one.
            created = self._outcome[positions[again]] == _CREATED
            if created.any():
                tables.execute(
                    _SQL_DELETE_CREATED,
                    [db_uuid(self.integration.pk), keys[again][created].tolist()],
                )

        outcome = self._classify(positions, hashes)
        staged = np.isin(outcome, list(_ACTION_BY_OUTCOME))
        self._seen_row[positions] = row_numbers
        self._outcome[positions] = outcome
        self._staged_row[positions] = np.where(staged, row_numbers, 0)
        if staged.any():
            chosen = np.flatnonzero(staged)
            self._write_staged(
                tables,
                frame.iloc[chosen],
                keys[chosen],
                hashes[chosen],
                outcome[chosen],
                positions[chosen],
            )

    def flush(self) -> None:
        """Wait until every staged slice is in the database; a failed copy's error is raised
        here. The caller does so before it queries the database itself, when the file is read:
        its statements share the merge's connection."""
        self._check_open()
        if self._tables is not None:
            self._tables.wait()

    def assume_unchanged(self) -> bool:
        """Take the file as the one the store was last merged from, without staging anything:
        every active vehicle that missed no sync was in it (and is unchanged), the others are
        absent. True when that holds for this store; False (and nothing changed) when a vehicle
        has no content hash, which only a full read can give it.

        The caller vouches for the premise: the same bytes, read with the same settings, as the
        integration's last applied file (``ingest`` checks the file's sha256 and a digest of
        the reading settings).
        """
        self._check_open()
        self._start()
        existing = self._existing
        active = self._status == ACTIVE
        if not self._hashed[active].all() or self._rows_total:
            return False
        seen = active & ~self._missing
        self._seen_row[:existing] = np.where(seen, 1, 0)
        self._outcome[:existing] = np.where(seen, _UNCHANGED, 0)
        self._distinct = int(seen.sum())
        return True

    def _start(self) -> MergeTables:
        """Read the store's state and create the staging tables, once."""
        if self._tables is not None:
            return self._tables
        state = load_state(self.integration.pk)
        self._index, self._names = state.index, state.names
        self._existing = self._size = len(state.names)
        self._hashes, self._hashed = state.hashes, state.hashed
        self._status, self._missing = state.status, state.missing
        self._grow(self._existing)
        tables = MergeTables()
        if self._direct:
            self._savepoint = transaction.savepoint()
        tables.create()
        self._tables = tables
        return tables

    def _grow(self, size: int) -> None:
        capacity = len(self._seen_row)
        if size <= capacity and capacity:
            return
        capacity = max(size, 2 * capacity, 1024)
        extra = capacity - len(self._seen_row)
        self._seen_row = np.concatenate([self._seen_row, np.zeros(extra, np.int64)])
        self._staged_row = np.concatenate([self._staged_row, np.zeros(extra, np.int64)])
        self._outcome = np.concatenate([self._outcome, np.zeros(extra, np.int8)])

    def _locate(self, keys: NDArray[np.object_]) -> NDArray[np.int64]:
        """Each key's position; a key met for the first time gets the next free one."""
        high, low = key_digests(keys)
        positions = self._index.lookup(high, low)
        fresh = np.flatnonzero(positions < 0)
        if fresh.size:
            assigned = np.arange(self._size, self._size + fresh.size, dtype=np.int64)
            self._grow(self._size + fresh.size)
            self._index.add(high[fresh], low[fresh], assigned)
            positions[fresh] = assigned
            self._size += int(fresh.size)
        return positions

    def _classify(
        self, positions: NDArray[np.int64], hashes: NDArray[np.int64]
    ) -> NDArray[np.int8]:
        new_outcome = _SKIPPED if self.strategy == SyncStrategy.UPDATE_ONLY else _CREATED
        outcome = np.full(len(positions), new_outcome, dtype=np.int8)
        stored = positions < self._existing
        at = positions[stored]
        # Compared with the store, not with an earlier row of the file: the store has not changed.
        same = self._hashed[at] & (self._hashes[at] == hashes[stored])
        outcome[stored] = np.select(
            [self._status[at] != ACTIVE, ~same, self._missing[at]],
            [_REACTIVATED, _UPDATED, _RESET],
            _UNCHANGED,
        )
        return outcome

    def _write_staged(
        self,
        tables: MergeTables,
        frame: pd.DataFrame,
        keys: NDArray[np.object_],
        hashes: NDArray[np.int64],
        outcome: NDArray[np.int8],
        positions: NDArray[np.int64],
    ) -> None:
        count = len(frame)
        codes = outcome.tolist()
        ids: list[str | None] = [None] * count
        inserts = [index for index, code in enumerate(codes) if code == _CREATED]
        for index, new_id in zip(inserts, random_uuid_hex(len(inserts)), strict=True):
            ids[index] = new_id
        change_types: list[str | None] = [None] * count
        changes: list[Any] = [None] * count
        if self.track_history:
            # The stored values are read on the connection the copies use: theirs first, so
            # that an error of theirs is raised as itself.
            tables.wait()
            change_types, changes = self._history(frame, keys, codes, positions)
        leading: dict[str, NDArray[Any]] = {
            "row_number": frame["row_number"].to_numpy(dtype=np.int64),
            "action": np.array([_ACTION_BY_OUTCOME[code] for code in codes], dtype=object),
            "change_type": np.array(change_types, dtype=object),
            "changes": np.array(changes, dtype=object),
            "id": np.array(ids, dtype=object),
            "key": keys,
            "content_hash": hashes,
        }
        assert tuple(leading) == LEADING_COLUMNS
        if self._direct:
            self._write_direct(tables, frame, leading, outcome == _CREATED)
            return
        if tables.postgresql:
            values = [*leading.values(), *content_arrays(frame)]
            tables.copy_columns(tables.rows, STAGED_COLUMNS, values)
            return
        plain = [column.tolist() for column in leading.values()]
        rows = list(zip(*plain, *database_columns(frame), strict=True))
        tables.write(tables.rows, STAGED_COLUMNS, rows)

    def _write_direct(
        self,
        tables: MergeTables,
        frame: pd.DataFrame,
        leading: dict[str, NDArray[Any]],
        created: NDArray[np.bool_],
    ) -> None:
        """Copy new vehicles into the store and stage the rest; a new vehicle is staged only
        for its version row (its leading columns, no content), when history is kept."""
        rest = np.flatnonzero(~created)
        if rest.size:
            staged = [column[rest] for column in leading.values()]
            arrays = content_arrays(frame.iloc[rest])
            tables.copy_columns(tables.rows, STAGED_COLUMNS, [*staged, *arrays])
        new = np.flatnonzero(created)
        if not new.size:
            return
        count = len(new)
        now = str(self.now)
        constants = [
            self.integration.account_id,
            self.integration.pk,
            self.integration.dealership_id,
            VehicleStatus.ACTIVE.value,
            0,
            now,
            now,
            now,
            now,
        ]
        tables.copy_columns(
            tables.vehicle,
            _NEW_VEHICLE_COLUMNS,
            [
                leading["id"][new],
                leading["key"][new],
                leading["content_hash"][new],
                *(pa.repeat(None if value is None else str(value), count) for value in constants),
                *content_arrays(frame.iloc[new]),
            ],
        )
        if self.track_history:
            key_only = [column[new] for column in leading.values()]
            tables.copy_columns(tables.rows, LEADING_COLUMNS, key_only)

    def _history(
        self,
        frame: pd.DataFrame,
        keys: NDArray[np.object_],
        codes: list[int],
        positions: NDArray[np.int64],
    ) -> tuple[list[str | None], list[Any]]:
        """Each staged row's version: its change type and its changed fields, old and new.

        Old values are read now, a batch at a time, so ``apply()`` copies versions from the
        staging table without comparing anything; the staging table gets the diff as JSON text,
        which both COPY and sqlite3 take for a JSON column.
        """
        rewritten = [index for index, code in enumerate(codes) if code in (_UPDATED, _REACTIVATED)]
        stored = self._stored_values([keys[index] for index in rewritten])
        new_values = {
            column: object_values(frame_column(frame, column)) for column in CONTENT_COLUMNS
        }
        change_types: list[str | None] = [None] * len(codes)
        changes: list[Any] = [None] * len(codes)
        for index, code in enumerate(codes):
            if code == _CREATED:
                change_types[index] = ChangeType.CREATED.value
                changes[index] = "{}"
                continue
            if code == _RESET:
                continue
            diff: dict[str, dict[str, Any]] = {}
            old_row = stored.get(keys[index], {})
            if code == _REACTIVATED:
                old_status = STATUS_BY_CODE[int(self._status[positions[index]])]
                diff["status"] = {"old": str(old_status), "new": str(VehicleStatus.ACTIVE)}
            for column in CONTENT_COLUMNS:
                old = history_value(column, old_row.get(column))
                new = history_value(column, new_values[column][index])
                if old != new:
                    diff[history_name(column)] = {"old": old, "new": new}
            change_type = ChangeType.REACTIVATED if code == _REACTIVATED else ChangeType.UPDATED
            change_types[index] = change_type.value
            changes[index] = json.dumps(diff, ensure_ascii=False)
        return change_types, changes

    def _stored_values(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        values: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _HISTORY_BATCH):
            batch = keys[start : start + _HISTORY_BATCH]
            rows = Vehicle.objects.filter(integration_id=self.integration.pk, key__in=batch)
            for row in rows.values("key", *CONTENT_COLUMNS):
                values[row.pop("key")] = row
        return values

    # --- applying ---------------------------------------------------------------------------

    def apply(self) -> MergeCounts:
        """Apply the staged file in one transaction; afterwards the store reflects the file.

        An exception rolls everything back and leaves the store as it was.
        """
        self._check_open()
        tables = self._start()
        tally = np.bincount(self._outcome[: self._size], minlength=_OUTCOMES)
        counts = MergeCounts(
            total=self._rows_total,
            created=int(tally[_CREATED]),
            updated=int(tally[_UPDATED] + tally[_REACTIVATED]),
            unchanged=int(tally[_UNCHANGED] + tally[_RESET]),
            skipped=int(tally[_SKIPPED]),
            reactivated=int(tally[_REACTIVATED]),
            duplicates=self.duplicates,
        )
        try:
            # Every copy in (the last slices' may still be on their way) must have landed
            # before anything is applied; its error, if one failed, is the one raised.
            tables.wait()
            with transaction.atomic():
                tables.lock_integration(self.integration.pk)
                self._apply_staged(tables, tally)
                counts.sold, counts.removed = self._apply_absent(tables)
            self._applied = True
        finally:
            self.discard()
        return counts

    def _params(self) -> dict[str, Any]:
        return {
            "integration": db_uuid(self.integration.pk),
            "now": db_datetime(self.now),
            "feed_file": db_uuid(self.feed_file.pk) if self.feed_file is not None else None,
        }

    def _apply_staged(self, tables: MergeTables, tally: NDArray[np.int64]) -> None:
        """Insert the new vehicles, rewrite the changed ones, reset the returning ones.

        A statement the tally says has nothing to do is not run at all: besides saving a scan,
        a join that matches nothing is exactly where a planner misled by stale statistics
        does worst."""
        params = self._params()
        integration, now = params["integration"], params["now"]
        created = int(tally[_CREATED])
        rewritten = int(tally[_UPDATED] + tally[_REACTIVATED])
        reset = int(tally[_RESET])
        history = self.track_history and created + rewritten > 0
        if rewritten or reset or history:
            # Statements that join the staging table with the store follow.
            tables.analyze()
        if created and not self._direct:
            tables.execute(
                _SQL_INSERT_NEW,
                [
                    db_uuid(self.integration.account_id),
                    integration,
                    db_uuid(self.integration.dealership_id),
                    VehicleStatus.ACTIVE.value,
                    *[now] * 4,
                    INSERT,
                ],
            )
        if history:
            # After the insert, whose rows the new versions reference.
            tables.execute(_SQL_RECORD_STAGED, [params["feed_file"], now, integration])
        if rewritten:
            tables.execute(
                _SQL_REWRITE, [VehicleStatus.ACTIVE.value, now, now, integration, REWRITE]
            )
        if reset:
            tables.execute(_SQL_RESET, [now, integration, RESET])

    def _absent_rows(self) -> list[tuple[str, str]]:
        if self.strategy == SyncStrategy.UPDATE_ONLY:
            return []
        action = REMOVE if self.strategy == SyncStrategy.OVERWRITE else MISSING
        absent = np.flatnonzero((self._seen_row[: self._existing] == 0) & (self._status == ACTIVE))
        return [(key, action) for key in self._names.take(absent)]

    def _apply_absent(self, tables: MergeTables) -> tuple[int, int]:
        """Retire the active vehicles the file lacks: (sold, removed)."""
        absent = self._absent_rows()
        if not absent:
            return 0, 0
        tables.write(tables.absent, ("key", "action"), absent)
        tables.analyze()
        params = self._params()
        integration, now = params["integration"], params["now"]
        active = VehicleStatus.ACTIVE.value
        if self.strategy == SyncStrategy.OVERWRITE:
            removing = [integration, active, REMOVE]
            self._record_retirement(tables, _SQL_ABSENT, removing, VehicleStatus.REMOVED)
            removed = tables.execute(
                _SQL_REMOVE, [VehicleStatus.REMOVED.value, now, now, *removing], where=_SQL_ABSENT
            )
            return 0, removed
        # A threshold of 0 is off: "missed at least 0 syncs" and "missing since at most now"
        # always hold, so both at 0 sell at the first miss. This sync's miss counts: the
        # vehicle has missed missing_syncs + 1 syncs, the first of them at missing_since (NULL
        # until now, hence the COALESCE).
        cutoff = db_datetime(self.now - timedelta(hours=self.sold_grace_hours))
        selling = [integration, active, MISSING, self.sold_grace_syncs, now, cutoff]
        self._record_retirement(tables, _SQL_GRACE_OVER, selling, VehicleStatus.SOLD)
        sold = tables.execute(
            _SQL_SELL, [VehicleStatus.SOLD.value, now, now, now, *selling], where=_SQL_GRACE_OVER
        )
        # The sold ones are no longer active, so this counts the miss of the others only.
        tables.execute(_SQL_MISS, [now, integration, active, MISSING], where=_SQL_ABSENT)
        return sold, 0

    def _record_retirement(
        self, tables: MergeTables, where: str, params: list[Any], status: VehicleStatus
    ) -> None:
        """Version rows for the vehicles about to be sold or removed (read before the update,
        whose ``status = 'active'`` condition would no longer find them)."""
        if not self.track_history:
            return
        changes_field = VehicleVersion._meta.get_field("changes")
        changes = {"status": {"old": str(VehicleStatus.ACTIVE), "new": str(status)}}
        common = self._params()
        change_type = ChangeType.SOLD if status == VehicleStatus.SOLD else ChangeType.REMOVED
        tables.execute(
            _SQL_RECORD_RETIREMENT,
            [
                common["feed_file"],
                change_type.value,
                changes_field.get_db_prep_value(changes, connection),
                common["now"],
                *params,
            ],
            where=where,
        )

    # --- discarding -------------------------------------------------------------------------

    def discard(self) -> None:
        """Drop the staged rows; nothing is applied. Safe to call twice and after ``apply()``."""
        self._closed = True
        tables, self._tables = self._tables, None
        # Let go of the state now: the caller may hold the merge until its task ends.
        self._index = KeyIndex()
        self._names = KeyNames()
        self._hashes = self._seen_row = self._staged_row = np.empty(0, np.int64)
        self._hashed = self._missing = np.empty(0, np.bool_)
        self._status = self._outcome = np.empty(0, np.int8)
        savepoint, self._savepoint = self._savepoint, None
        if tables is None:
            return
        try:
            if savepoint is not None and not self._applied:
                # The vehicles copied in are undone (the COPYs in flight end first). An applied
                # merge keeps its savepoint: releasing it would release the savepoints of the
                # caller's blocks opened since, which their ends then miss.
                try:
                    tables.wait()
                except DatabaseError:
                    logger.warning("A copy of the discarded merge had failed", exc_info=True)
                transaction.savepoint_rollback(savepoint)
            tables.drop()
        except DatabaseError:
            # A lost connection took its temporary tables with it; raising here would hide
            # the error that made the caller discard.
            logger.warning("Could not drop the merge's staging tables", exc_info=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("This merge was applied or discarded; start a new one.")
