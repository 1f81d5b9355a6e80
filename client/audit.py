"""Audit: download every tile and entry bundle, rebuild the whole tree, compare.

An auditor trusts nothing but the pinned key: for a verified checkpoint of size
N it downloads every entry bundle and every tile of the tree (c2sp.org/tlog-tiles),
recomputes every leaf hash from the entries and every level of the tree with
the bulk hashing API (:func:`tlog_client.bulk.leaf_hashes` and
:func:`~tlog_client.bulk.parent_level`), compares each recomputed level with
the tiles the log serves, and the recomputed root with the checkpoint's.

:class:`TreeRebuilder` is the pure, streaming part: level-0 tiles arrive in
order; each full tile's 256 hashes are hashed up 8 levels into one hash of the
level above, so memory stays at most 255 pending hashes per tile level, and
several tiles are hashed per bulk call. :func:`audit` drives it over HTTP with
a window of concurrent downloads and reports progress (rate, ETA).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bulk import leaf_hashes, parent_level
from .compact import CompactRange
from .errors import FormatError, RootMismatchError, VerificationError
from .hashing import EMPTY_ROOT
from .proof import right_edge
from .tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    EntryBundle,
    Tile,
    decode_entry_bundle,
    node_hashes_from_tiles,
    tile_path,
    tile_width,
    tiles_for_size,
)
from .trust import VerifiedCheckpoint

if TYPE_CHECKING:  # the driver only needs fetch_tile(tile, cache=...)
    from .client import LogClient

__all__ = ["AuditError", "AuditReport", "Progress", "TreeRebuilder", "audit"]

HASH_SIZE = 32
_TILE_BYTES = TILE_WIDTH * HASH_SIZE


class AuditError(VerificationError):
    """The log's tiles or entries disagree with the tree recomputed from them."""

    binding = "audit"


@dataclass(frozen=True)
class Progress:
    """Entries processed so far, of ``total``, after ``elapsed`` seconds."""

    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Entries per second."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before any progress)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class AuditReport:
    size: int
    root_hash: bytes
    entries: int
    tiles: int
    bundles: int
    elapsed: float

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "treeSize": self.size, "rootHash": self.root_hash.hex(),
                "entries": self.entries, "tilesCompared": self.tiles,
                "bundlesChecked": self.bundles, "seconds": round(self.elapsed, 3),
                "entriesPerSecond": round(self.entries / self.elapsed) if self.elapsed else None}


def _tile_roots(level: bytes) -> bytes:
    """Roots of consecutive full tiles: each 256 hashes hashed up 8 levels."""
    for _ in range(TILE_HEIGHT):
        level = parent_level(level)
    return level


class TreeRebuilder:
    """Rebuild the tree of ``checkpoint`` from entry bundles, comparing
    every level with the log's tiles. Feed level-0 tiles in order with
    :meth:`add`, then call :meth:`finish`. ``upper`` holds every tile of
    level >= 1 at its width for the tree size. Pure: no I/O."""

    def __init__(self, checkpoint: VerifiedCheckpoint, upper: Mapping[Tile, bytes]) -> None:
        self.checkpoint = checkpoint
        self.size = checkpoint.size
        self.upper = dict(upper)
        self.next_bundle = 0
        self.tiles_compared = 0
        self._pending: dict[int, bytearray] = {}
        self._next_index: dict[int, int] = {}
        self._partials: dict[Tile, bytes] = {}
        expected = {t for t in tiles_for_size(self.size) if t.level >= 1}
        if set(self.upper) != expected:
            missing = sorted(expected - set(self.upper))
            raise FormatError("upper", f"expected every upper tile; missing "
                                       f"{', '.join(tile_path(t) for t in missing[:3])}")

    def add(self, items: list[tuple[bytes, bytes]]) -> int:
        """Process the next level-0 tiles: ``(entry bundle data, tile data)``
        pairs in order. Returns the number of entries processed."""
        full_hashes = bytearray()
        count = 0
        for bundle_data, tile_data in items:
            n = self.next_bundle
            width = tile_width(0, n, self.size)
            bundle = EntryBundle(n, width)
            try:
                entries = decode_entry_bundle(bundle_data, width)
            except FormatError as exc:
                raise AuditError(f"{tile_path(bundle)}: {exc}") from None
            hashes = leaf_hashes(entries)
            if hashes != tile_data:
                raise AuditError(self._first_difference(Tile(0, n, width), hashes, tile_data,
                                                        "leaf hashes of the entry bundle"))
            self.tiles_compared += 1
            self.next_bundle += 1
            count += width
            if width == TILE_WIDTH:
                full_hashes += hashes
            else:
                self._partials[Tile(0, n, width)] = hashes
        if full_hashes:
            self._push(1, _tile_roots(bytes(full_hashes)))
        return count

    def _push(self, level: int, hashes: bytes) -> None:
        pending = self._pending.setdefault(level, bytearray())
        pending += hashes
        if len(pending) < _TILE_BYTES:
            return
        whole = len(pending) - len(pending) % _TILE_BYTES
        block, rest = bytes(pending[:whole]), pending[whole:]
        self._pending[level] = bytearray(rest)
        first = self._next_index.get(level, 0)
        for i in range(whole // _TILE_BYTES):
            tile = Tile(level, first + i)
            mine = block[i * _TILE_BYTES:(i + 1) * _TILE_BYTES]
            self._compare(tile, mine)
        self._next_index[level] = first + whole // _TILE_BYTES
        self._push(level + 1, _tile_roots(block))

    def _compare(self, tile: Tile, mine: bytes) -> None:
        theirs = self.upper.get(tile)
        if theirs is None:
            raise AuditError(f"the tree has {tile_path(tile)}, but it is not a tile of size "
                             f"{self.size}")
        if theirs != mine:
            raise AuditError(self._first_difference(tile, mine, theirs, "recomputed level"))
        self.tiles_compared += 1

    @staticmethod
    def _first_difference(tile: Tile, mine: bytes, theirs: bytes, what: str) -> str:
        if len(mine) != len(theirs):
            return (f"{tile_path(tile)}: the log serves {len(theirs)} bytes, the {what} has "
                    f"{len(mine)}")
        for i in range(0, len(mine), HASH_SIZE):
            if mine[i:i + HASH_SIZE] != theirs[i:i + HASH_SIZE]:
                level = TILE_HEIGHT * tile.level
                index = tile.index * TILE_WIDTH + i // HASH_SIZE
                return (f"{tile_path(tile)}: hash of node ({level}, {index}) differs: the log "
                        f"serves {theirs[i:i + HASH_SIZE].hex()}, the {what} gives "
                        f"{mine[i:i + HASH_SIZE].hex()}")
        return f"{tile_path(tile)} differs"

    def finish(self) -> bytes:
        """Compare the partial tiles and the root; returns the root."""
        if self.next_bundle * TILE_WIDTH < self.size:
            raise FormatError("bundles", f"only {self.next_bundle} of the level-0 tiles were "
                                         "added")
        for level, pending in sorted(self._pending.items()):
            if pending:
                tile = Tile(level, self._next_index.get(level, 0), len(pending) // HASH_SIZE)
                self._compare(tile, bytes(pending))
                self._partials[tile] = bytes(pending)
        if self.tiles_compared != len(tiles_for_size(self.size)):
            raise AuditError(f"compared {self.tiles_compared} tiles, the tree of size "
                             f"{self.size} has {len(tiles_for_size(self.size))}")
        if self.size == 0:
            root = EMPTY_ROOT
        else:
            edge = node_hashes_from_tiles(self._partials, right_edge(self.size))
            root = CompactRange.from_hashes(0, self.size, edge).root()
        if root != self.checkpoint.root_hash:
            raise AuditError(str(RootMismatchError(
                "the tree recomputed from every entry does not have the checkpoint's root",
                self.checkpoint.root_hash, root)))
        return root


async def audit(client: "LogClient", checkpoint: VerifiedCheckpoint | None = None, *,
                progress: Callable[[Progress], None] | None = None, window: int = 64,
                batch: int = 16, clock: Callable[[], float] = time.monotonic) -> AuditReport:
    """Audit the log up to ``checkpoint`` (default: the current checkpoint,
    verified and accepted into the trusted state). Raises AuditError naming
    the first tile, bundle or root that disagrees."""
    cp = checkpoint or await client.checkpoint()
    started = clock()
    size = cp.size
    upper_tiles = [t for t in tiles_for_size(size) if t.level >= 1]
    upper_data = await asyncio.gather(*(client.fetch_tile(t, cache=False) for t in upper_tiles))
    rebuilder = TreeRebuilder(cp, dict(zip(upper_tiles, upper_data)))
    count = (size + TILE_WIDTH - 1) // TILE_WIDTH

    async def pair(n: int) -> tuple[bytes, bytes]:
        width = tile_width(0, n, size)
        bundle, tile = await asyncio.gather(
            client.fetch_tile(EntryBundle(n, width), cache=False),
            client.fetch_tile(Tile(0, n, width), cache=False))
        return bundle, tile

    in_flight: deque[asyncio.Task[tuple[bytes, bytes]]] = deque()
    scheduled = done = 0
    try:
        while done < count:
            while scheduled < count and len(in_flight) < window:
                in_flight.append(asyncio.ensure_future(pair(scheduled)))
                scheduled += 1
            items = [await in_flight.popleft()]
            while in_flight and in_flight[0].done() and len(items) < batch:
                items.append(in_flight.popleft().result())
            rebuilder.add(items)
            done += len(items)
            if progress is not None:
                progress(Progress(min(done * TILE_WIDTH, size), size, clock() - started))
    finally:
        for task in in_flight:
            task.cancel()
    root = rebuilder.finish()
    elapsed = clock() - started
    if progress is not None:
        progress(Progress(size, size, elapsed))
    return AuditReport(size, root, size, rebuilder.tiles_compared, count, elapsed)
