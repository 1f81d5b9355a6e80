"""In-memory caches of stored hashes that never change (SPEC §8: proofs in
O(log n) lookups, at 10^7 entries within the server's memory bound).

A complete Merkle node's hash, and so a hash tile of a given width, is fixed
once stored (I2, I6: the tree only grows), so neither cache is ever stale:
an entry may come from a newer snapshot than the reader's, but a reader only
asks for nodes inside its own tree, and those are the same in every later
tree. Pure memory: the storage module reads the database and fills them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

HASH_SIZE = 32
CHUNK_SHIFT = 8  # a chunk is 256 consecutive nodes of one level, like a tile
CHUNK_NODES = 1 << CHUNK_SHIFT


class TileCache:
    """The last tiles served, by (level, index, width). This mostly serves
    the partial tiles at the right edge, which every follower of the log
    polls."""

    def __init__(self, entries: int = 1024) -> None:
        self._entries = entries
        self._data: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def put(self, key: tuple[int, int, int], data: bytes) -> None:
        with self._lock:
            self._data[key] = data
            if len(self._data) > self._entries:
                self._data.popitem(last=False)


class NodeCache:
    """Hashes of the upper levels of the tree, kept packed (32 bytes each, no
    per-node object): per level, the level as read whole at start
    (:meth:`put_level`) and chunks of up to 256 consecutive node hashes read
    on a miss, one range read each (:meth:`put`).

    Levels at or above ``floor`` are cached. The upper levels of a tree of n
    leaves hold about 2n >> floor nodes; when the cache grows past
    ``max_bytes``, its lowest level is dropped and the floor rises, so it
    settles on the levels that fit (a tree of 10^7 keeps levels 4 and up,
    38 MiB, and proofs read only their four lowest nodes from SQLite).

    A chunk at the right edge of a level may be short (the tree has not
    completed its other nodes yet); :meth:`lookup` misses past its end and
    the caller reloads it. Safe to share between threads: a chunk is
    replaced whole, and a dropped level is only ever re-filled from storage.
    """

    def __init__(self, max_bytes: int, floor: int = 1) -> None:
        self.max_bytes = max_bytes
        self.floor = floor
        # A level read whole (warming) is one bytes object: one allocation,
        # so memory returns to the system when it is dropped, and no heap
        # holes between thousands of small chunks (at 10^7 those kept about
        # as much again resident as the hashes themselves).
        self._whole: dict[int, bytes] = {}
        self._levels: dict[int, dict[int, bytes]] = {}  # chunks, read on a miss
        self._bytes = 0
        self._lock = threading.Lock()

    def lookup(self, addresses: Sequence[tuple[int, int]]) -> list[bytes | None]:
        """The cached hash of each node (level, index), None where it is not
        cached (below the floor, or its chunk is not read yet or too short)."""
        floor, whole, levels, out = self.floor, self._whole, self._levels, []
        append = out.append
        for level, index in addresses:
            if level < floor:
                append(None)
                continue
            data = whole.get(level)
            if data is not None:
                h = data[index << 5:(index << 5) + HASH_SIZE]
                if len(h) == HASH_SIZE:
                    append(h)
                    continue
            chunks = levels.get(level)
            chunk = chunks.get(index >> CHUNK_SHIFT) if chunks else None
            if chunk is None:
                append(None)
                continue
            start = (index & (CHUNK_NODES - 1)) << 5  # * HASH_SIZE
            h = chunk[start:start + HASH_SIZE]
            append(h if len(h) == HASH_SIZE else None)
        return out

    def put(self, level: int, chunk: int, data: bytes) -> None:
        """Cache ``data``: the hashes of nodes ``chunk * 256 ..`` of ``level``
        (at most 256, in order, all stored). Ignored below the floor."""
        if level >= self.floor and data:
            with self._lock:
                self._keep_longer(self._levels.setdefault(level, {}), chunk, data)

    def put_level(self, level: int, data: bytes) -> None:
        """Cache ``data``: the hashes of nodes ``0 ..`` of ``level``, in
        order, all stored. Ignored below the floor."""
        if level >= self.floor and data:
            with self._lock:
                self._keep_longer(self._whole, level, data)

    def _keep_longer(self, table: dict[int, bytes], key: int, data: bytes) -> None:
        """``table[key] = data`` unless what it holds is as long (under the
        lock); then back within the budget."""
        old = table.get(key)
        if old is not None and len(old) >= len(data):
            return
        table[key] = data
        self._bytes += len(data) - (len(old) if old is not None else 0)
        self._shrink()

    def levels_to_fill(self, size: int) -> list[int]:
        """The levels of a tree of ``size`` leaves that fit in the cache
        together, top first; raises the floor to the lowest of them (the
        ones below would only be dropped again)."""
        levels, total = [], 0
        for level in range(size.bit_length() - 1, self.floor - 1, -1):
            total += (size >> level) * HASH_SIZE
            if total > self.max_bytes:
                break
            levels.append(level)
        if levels:
            self.floor = max(self.floor, levels[-1])
        return levels

    def _shrink(self) -> None:
        """Drop the lowest levels until the cache is within its budget."""
        while self._bytes > self.max_bytes and (self._levels or self._whole):
            lowest = min([*self._levels, *self._whole])
            self._bytes -= sum(len(c) for c in self._levels.pop(lowest, {}).values())
            self._bytes -= len(self._whole.pop(lowest, b""))
            self.floor = max(self.floor, lowest + 1)

    @property
    def size_bytes(self) -> int:
        return self._bytes
