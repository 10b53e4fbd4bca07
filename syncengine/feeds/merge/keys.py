"""Vehicle keys in compact numpy columns: digests to find a key's position, bytes to name it.

A ``dict`` of a million keys costs about 150 MB (the key strings, the table, and an int object
per position), which would be a good part of a worker's memory while the parser's chunk is also
there. ``KeyIndex`` keeps 24 bytes a key instead: the key's 128-bit digest, sorted, and its
position. Two different keys share a 128-bit digest with a probability of about n^2 / 2^129
(10^-26 for two million keys), far below the odds of a memory error, so the digest stands for
the key. ``KeyNames`` keeps the stored keys themselves as one UTF-8 buffer, to name the vehicles
a file lacks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pandas.util import hash_array

U64Array = NDArray[np.uint64]
I64Array = NDArray[np.int64]

# Two SipHash keys give two independent 64-bit halves of the digest.
_DIGEST_KEYS = ("railyard.key.one", "railyard.key.two")


def key_digests(keys: NDArray[np.object_]) -> tuple[U64Array, U64Array]:
    """The 128-bit digest of each key, as its high and low halves."""
    high: U64Array = hash_array(keys, encoding="utf8", hash_key=_DIGEST_KEYS[0], categorize=False)
    low: U64Array = hash_array(keys, encoding="utf8", hash_key=_DIGEST_KEYS[1], categorize=False)
    return high, low


class KeyIndex:
    """Digest -> position, for keys added once each; sorted by (high, low) for binary search."""

    def __init__(self) -> None:
        self._high: U64Array = np.empty(0, np.uint64)
        self._low: U64Array = np.empty(0, np.uint64)
        self._positions: I64Array = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self._positions)

    def lookup(self, high: U64Array, low: U64Array) -> I64Array:
        """Each digest's position, or -1 for a key not added yet."""
        size = len(self._high)
        found = np.full(len(high), -1, dtype=np.int64)
        if not size or not len(high):
            return found
        left = np.searchsorted(self._high, high, side="left")
        at = np.minimum(left, size - 1)
        same_high = (left < size) & (self._high[at] == high)
        exact = same_high & (self._low[at] == low)
        found[exact] = self._positions[at[exact]]
        # A high half shared with another key (about one key in 10^13): search its run by the
        # low half, which the sort order keeps ascending within the run.
        for query in np.flatnonzero(same_high & ~exact).tolist():
            start = int(left[query])
            end = int(np.searchsorted(self._high, high[query], side="right"))
            offset = int(np.searchsorted(self._low[start:end], low[query]))
            if offset < end - start and self._low[start + offset] == low[query]:
                found[query] = self._positions[start + offset]
        return found

    def add(self, high: U64Array, low: U64Array, positions: I64Array) -> None:
        """Add keys that are not in the index yet and distinct from each other."""
        if not len(high):
            return
        order = np.lexsort((low, high))
        high, low, positions = high[order], low[order], positions[order]
        size = len(self._high)
        if not size:  # the first batch (the store's keys): nothing to merge into
            self._high, self._low, self._positions = high, low, positions
            return
        slots = np.searchsorted(self._high, high, side="left")
        shared = (slots < size) & (self._high[np.minimum(slots, size - 1)] == high)
        for query in np.flatnonzero(shared).tolist():
            # Same high half as stored keys: go past those whose low half is smaller.
            start = int(slots[query])
            end = int(np.searchsorted(self._high, high[query], side="right"))
            slots[query] = start + int(np.searchsorted(self._low[start:end], low[query]))
        self._high = np.insert(self._high, slots, high)
        self._low = np.insert(self._low, slots, low)
        self._positions = np.insert(self._positions, slots, positions)


class KeyNames:
    """Keys as one UTF-8 buffer and their end offsets: about the key's length plus 8 bytes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ends: list[I64Array] = []
        self._buffer = b""
        self._offsets: I64Array = np.zeros(1, np.int64)

    def extend(self, keys: list[str]) -> None:
        """Append keys (call ``freeze()`` once all are in)."""
        encoded = [key.encode() for key in keys]
        self._parts.append(b"".join(encoded))
        self._ends.append(np.fromiter(map(len, encoded), np.int64, len(encoded)))

    def freeze(self) -> None:
        """Join the appended batches into the one buffer ``take()`` reads."""
        self._buffer = b"".join(self._parts)
        lengths = np.concatenate(self._ends) if self._ends else np.empty(0, np.int64)
        self._offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
        self._parts, self._ends = [], []

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def take(self, positions: I64Array) -> list[str]:
        """The keys at ``positions``."""
        starts = self._offsets[positions].tolist()
        ends = self._offsets[positions + 1].tolist()
        return [self._buffer[start:end].decode() for start, end in zip(starts, ends, strict=True)]
