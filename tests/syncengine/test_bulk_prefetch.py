"""The read-ahead thread of the bulk path."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.registry import ConnectorError, CopyBatch
from syncengine.sync.bulk import prefetched


def batches(count: int, *, first_delay: float = 0.0, fail_at: int | None = None, log=None):
    try:
        time.sleep(first_delay)
        for number in range(count):
            if number == fail_at:
                raise ConnectorError("The source went away.", retryable=True)
            yield CopyBatch(lines=b"%d\n" % number, count=1, cursor=number, highest=number)
    finally:
        if log is not None:
            log.append(threading.current_thread().name)


def test_yields_every_batch_in_order():
    assert [batch.cursor for batch in prefetched(batches(5))] == [0, 1, 2, 3, 4]


def test_a_reader_error_is_raised_to_the_consumer():
    reader = prefetched(batches(5, fail_at=3))
    seen = [next(reader).cursor for _ in range(3)]
    with pytest.raises(ConnectorError, match="went away"):
        next(reader)
    assert seen == [0, 1, 2]


def test_waiting_on_a_slow_source_calls_on_idle():
    beats = []
    result = list(
        prefetched(batches(1, first_delay=0.3), on_idle=lambda: beats.append(1), idle_seconds=0.05)
    )
    assert len(result) == 1
    assert beats


def test_stopping_early_closes_the_source_in_its_thread():
    closed: list[str] = []
    for batch in prefetched(batches(1000, log=closed)):
        if batch.cursor == 2:
            break
    assert closed == ["railyard-copy-reader"]
