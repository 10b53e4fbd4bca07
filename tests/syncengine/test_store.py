"""The record store writer and the snapshot writer, on SQLite and on PostgreSQL (the suite runs on
the database DATABASE_URL names)."""

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection

from syncengine.models import Record, Snapshot, SnapshotRecord, SyncJob, SyncStream
from syncengine.sync import store
from syncengine.sync.store import (
    RecordStoreWriter,
    SnapshotWriter,
    content_hash,
    stream_for,
)
from tests.factories import AccountFactory, ConnectionFactory, IntegrationFactory

RUN_1 = datetime(2025, 3, 1, 8, tzinfo=UTC)
RUN_2 = datetime(2025, 3, 2, 8, tzinfo=UTC)


@pytest.fixture
def source(db):
    account = AccountFactory()
    return ConnectionFactory(account=account, connector_id="postgres")


@pytest.fixture
def stream(source):
    return stream_for(account_id=source.account_id, connection_id=source.pk, entity="items")


@pytest.fixture
def refuse_long_keys(db):
    """PostgreSQL refuses a key longer than the column's 500 characters; SQLite ignores varchar
    lengths, so a trigger makes it refuse the same way."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TRIGGER record_key_length BEFORE INSERT ON syncengine_record "
                "WHEN length(NEW.key) > 500 BEGIN SELECT RAISE(ABORT, 'key too long'); END"
            )
    yield
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS record_key_length")


def writer(stream, strategy="merge", now=RUN_1):
    return RecordStoreWriter(stream, strategy=strategy, now=now)


def stored(stream):
    return {record.key: record.data for record in Record.objects.filter(stream=stream)}


def items(*names, price=1):
    return [(name, {"id": name, "price": price}) for name in names]


# --- streams ---------------------------------------------------------------------------------


def test_stream_for_creates_a_stream_once_per_owner_and_entity(source):
    integration = IntegrationFactory(account=source.account)

    first = stream_for(account_id=source.account_id, connection_id=source.pk, entity="items")
    again = stream_for(account_id=source.account_id, connection_id=source.pk, entity="items")
    other_entity = stream_for(account_id=source.account_id, connection_id=source.pk, entity="o")
    of_integration = stream_for(
        account_id=source.account_id, integration_id=integration.pk, entity="items"
    )

    assert again.pk == first.pk
    assert len({first.pk, other_entity.pk, of_integration.pk}) == 3
    assert SyncStream.objects.count() == 3


# --- hashing ---------------------------------------------------------------------------------


def test_content_hash_is_stable_and_ignores_key_order():
    data = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": "x"}}

    assert content_hash(data) == content_hash(
        {"a": {"y": "x", "z": "é"}, "b": [1, 2.5, None, True]}
    )
    # Stored hashes are compared by every later run: the digest of this data must never change.
    assert content_hash(data) == content_hash_of_reference()
    assert -(2**63) <= content_hash(data) < 2**63
    assert content_hash(data) != content_hash({**data, "b": [1, 2.5, None, False]})


def content_hash_of_reference() -> int:
    return 2496012228012642908


# --- write -----------------------------------------------------------------------------------


def test_first_batch_creates_records(stream):
    result = writer(stream).write(items("a", "b"))

    assert (result.created, result.updated, result.unchanged, result.skipped) == (2, 0, 0, 0)
    assert result.changed == [{"id": "a", "price": 1}, {"id": "b", "price": 1}]
    record = Record.objects.get(stream=stream, key="a")
    assert record.data == {"id": "a", "price": 1}
    assert record.content_hash == content_hash({"price": 1, "id": "a"})
    assert record.created_at == record.updated_at == RUN_1


def test_a_later_run_updates_changed_records_and_leaves_unchanged_ones_alone(stream):
    writer(stream, now=RUN_1).write(items("a", "b", "c"))

    result = writer(stream, now=RUN_2).write(
        [("a", {"id": "a", "price": 1}), ("b", {"id": "b", "price": 2}), ("d", {"id": "d"})]
    )

    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert result.changed == [{"id": "b", "price": 2}, {"id": "d"}]
    records = {record.key: record for record in Record.objects.filter(stream=stream)}
    assert records["a"].updated_at == RUN_1  # not rewritten
    assert (records["b"].data, records["b"].created_at, records["b"].updated_at) == (
        {"id": "b", "price": 2},
        RUN_1,
        RUN_2,
    )
    assert records["d"].created_at == RUN_2
    assert records["c"].data == {"id": "c", "price": 1}


def test_a_key_repeated_in_a_batch_counts_once_with_its_last_data(stream):
    result = writer(stream).write(
        [("a", {"v": 1}), ("b", {"v": 1}), ("a", {"v": 2})], cursor="2025-03-01"
    )

    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    assert stored(stream) == {"a": {"v": 2}, "b": {"v": 1}}


def test_keys_repeated_in_later_batches_of_a_run_are_existing_records(stream):
    run = writer(stream)

    first = run.write(items("a", "b"))
    same = run.write(items("a"))
    changed = run.write(items("b", price=5))

    assert (first.created, same.unchanged, changed.updated) == (2, 1, 1)
    assert (same.created, changed.created) == (0, 0)
    assert run.seen == 2
    assert stored(stream) == {"a": {"id": "a", "price": 1}, "b": {"id": "b", "price": 5}}


def test_cursor_and_last_synced_at_are_committed_with_the_batch(stream):
    run = writer(stream)

    run.write(items("a"), cursor="2025-03-01T10:00:00+00:00")
    run.write(items("b"))  # no cursor: the stream keeps the last one

    stream.refresh_from_db()
    assert stream.cursor == "2025-03-01T10:00:00+00:00"
    assert stream.cursor_updated_at is not None
    assert stream.last_synced_at is not None


def test_a_failed_batch_commits_none_of_its_records_nor_its_cursor(stream, refuse_long_keys):
    writer(stream, now=RUN_1).write(items("a"), cursor="c1")
    run = writer(stream, now=RUN_2)

    with pytest.raises(DatabaseError):
        run.write(
            [("a", {"id": "a", "price": 9}), ("b", {"id": "b"}), ("k" * 501, {"id": "long"})],
            cursor="c2",
        )

    stream.refresh_from_db()
    assert stream.cursor == "c1"
    assert stored(stream) == {"a": {"id": "a", "price": 1}}
    # The writer goes on as if the failed batch never happened.
    result = run.write([("a", {"id": "a", "price": 9})], cursor="c2")
    assert (result.created, result.updated) == (0, 1)
    stream.refresh_from_db()
    assert stream.cursor == "c2"


def test_update_only_updates_existing_records_and_skips_new_keys(stream):
    writer(stream).write(items("a", "b"))

    result = writer(stream, strategy="update_only", now=RUN_2).write(
        items("a", "new", price=3) + items("b")
    )

    assert (result.created, result.updated, result.unchanged, result.skipped) == (0, 1, 1, 1)
    assert result.changed == [{"id": "a", "price": 3}]
    assert stored(stream) == {"a": {"id": "a", "price": 3}, "b": {"id": "b", "price": 1}}


def test_incremental_runs_on_a_large_store_give_the_same_counts(stream, monkeypatch):
    """A small run on a large store asks for its keys batch by batch; once it has asked for a
    quarter of the store it reads the whole state. Either way the counts are the same."""
    monkeypatch.setattr(store, "_STATE_ALWAYS", 0)
    names = [f"k{number}" for number in range(12)]
    writer(stream, strategy="overwrite").write(items(*names))
    run = writer(stream, strategy="overwrite", now=RUN_2)

    small = run.write(items("k0", "new") + items("k1", price=2))
    large = run.write(items("k0", "new", *names[2:10]))
    deleted, warning = run.finish(full=True, min_rows_ratio=0.5)

    assert (small.created, small.updated, small.unchanged) == (1, 1, 1)
    assert (large.created, large.updated, large.unchanged) == (0, 0, 10)
    assert (deleted, warning) == (2, None)
    assert sorted(stored(stream)) == sorted(["new", *names[:10]])


# --- finish ----------------------------------------------------------------------------------


def test_full_overwrite_deletes_records_the_run_did_not_see(stream):
    writer(stream, strategy="overwrite").write(items("a", "b", "c"))
    run = writer(stream, strategy="overwrite", now=RUN_2)
    run.write(items("a"))
    run.write(items("b", "d"))

    deleted, warning = run.finish(full=True, min_rows_ratio=0.5)

    assert (deleted, warning) == (1, None)
    assert sorted(stored(stream)) == ["a", "b", "d"]


def test_an_overwrite_that_is_not_full_deletes_nothing(stream):
    writer(stream, strategy="overwrite").write(items("a", "b"))
    run = writer(stream, strategy="overwrite", now=RUN_2)
    run.write(items("a"))

    assert run.finish(full=False, min_rows_ratio=0) == (0, None)
    assert sorted(stored(stream)) == ["a", "b"]


def test_a_full_overwrite_that_saw_too_few_rows_deletes_nothing_and_says_so(stream):
    writer(stream, strategy="overwrite").write(items(*[f"k{n}" for n in range(10)]))
    run = writer(stream, strategy="overwrite", now=RUN_2)
    run.write(items("k0", "k1"))

    deleted, warning = run.finish(full=True, min_rows_ratio=0.5)

    assert deleted == 0
    assert warning is not None
    assert "2 record(s)" in warning
    assert "10" in warning
    assert len(stored(stream)) == 10


def test_an_empty_source_never_wipes_the_store(stream):
    writer(stream, strategy="overwrite").write(items("a", "b"))

    deleted, warning = writer(stream, strategy="overwrite", now=RUN_2).finish(
        full=True, min_rows_ratio=0.1
    )

    assert deleted == 0
    assert warning is not None
    assert sorted(stored(stream)) == ["a", "b"]


def test_merge_keeps_records_the_run_did_not_see(stream):
    writer(stream).write(items("a", "b"))
    run = writer(stream, now=RUN_2)
    run.write(items("a"))

    assert run.finish(full=True, min_rows_ratio=0) == (0, None)
    assert sorted(stored(stream)) == ["a", "b"]


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_writer_appends_in_order_and_counts_per_entity(source):
    job = SyncJob.objects.create(account=source.account, connection=source, trigger="manual")
    snapshot = Snapshot.objects.create(account=source.account, connection=source, job=job)
    orders = SnapshotWriter(snapshot, "orders")
    customers = SnapshotWriter(snapshot, "customers")

    assert orders.write([{"n": 1}, {"n": 2}]) == 2
    assert customers.write([{"c": "x"}]) == 1
    assert orders.write([{"n": 3}]) == 1
    assert orders.write([]) == 0

    rows = SnapshotRecord.objects.filter(snapshot=snapshot).order_by("entity", "position")
    assert [(row.entity, row.position, row.data) for row in rows] == [
        ("customers", 0, {"c": "x"}),
        ("orders", 0, {"n": 1}),
        ("orders", 1, {"n": 2}),
        ("orders", 2, {"n": 3}),
    ]
    snapshot.refresh_from_db()
    assert snapshot.entities == {"orders": 3, "customers": 1}
    assert snapshot.record_count == 4
