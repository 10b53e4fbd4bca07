"""The compact key index: positions by 128-bit digest, and the stored keys' names."""

from __future__ import annotations

import numpy as np

from syncengine.feeds.merge.keys import KeyIndex, KeyNames, key_digests


def _u64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def _positions(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_keys_added_in_batches_are_found_and_others_are_not():
    # Given an index filled in two batches
    keys = np.array([f"VIN{number:014d}" for number in range(1000)], dtype=object)
    high, low = key_digests(keys)
    index = KeyIndex()
    index.add(high[:600], low[:600], np.arange(600, dtype=np.int64))
    index.add(high[600:], low[600:], np.arange(600, 1000, dtype=np.int64))

    # When every key, in another order, and unknown keys are looked up
    shuffled = np.random.default_rng(7).permutation(1000)
    found = index.lookup(high[shuffled], low[shuffled])
    unknown = key_digests(np.array(["stock:1", "VIN99999999999999"], dtype=object))

    # Then each key has its position, and the unknown ones have none
    assert found.tolist() == shuffled.tolist()
    assert index.lookup(*unknown).tolist() == [-1, -1]
    assert len(index) == 1000


def test_keys_sharing_the_high_half_of_their_digest_stay_apart():
    # Given keys whose digests share the high half (as two keys in 10^13 do)
    index = KeyIndex()
    index.add(_u64(5, 9, 5), _u64(30, 1, 10), _positions(0, 1, 2))
    index.add(_u64(5, 5), _u64(20, 40), _positions(3, 4))

    # When they are looked up, with a digest that shares the high half but not the low
    found = index.lookup(_u64(5, 5, 5, 5, 9, 5), _u64(10, 20, 30, 40, 1, 25))

    # Then each finds its own position, and the stranger none
    assert found.tolist() == [2, 3, 0, 4, 1, -1]


def test_an_empty_index_finds_nothing():
    assert KeyIndex().lookup(_u64(1, 2), _u64(3, 4)).tolist() == [-1, -1]


def test_the_same_key_has_the_same_digest_in_every_process():
    # No per-process seed: a worker that restarts finds the same positions.
    high, low = key_digests(np.array(["1HGCM82633A000001"], dtype=object))
    assert (int(high[0]), int(low[0])) == (11277095699702013605, 2516330652397370351)


def test_names_are_kept_exactly_including_non_ascii():
    # Given keys added in two batches, one with non-ASCII characters
    names = KeyNames()
    names.extend(["1HGCM82633A000001", "stock:Ünïcode-7"])
    names.extend(["stock:0042"])
    names.freeze()

    # When some are taken by position
    taken = names.take(np.array([2, 0, 1], dtype=np.int64))

    # Then they come back as they were
    assert taken == ["stock:0042", "1HGCM82633A000001", "stock:Ünïcode-7"]
    assert len(names) == 3
