"""Tiles verified against a signed checkpoint (c2sp.org/tlog-tiles; SPEC §3.3).

Tiles are served by an untrusted log or CDN. A client that reads proofs or
entries from tiles first proves the tiles it uses belong to the checkpoint's
tree, as Go's ``sumdb/tlog.TileHashReader`` does:

- every *partial* tile of a tree of size N (at most one per level, at its width
  for N) is covered exactly by the tree's right edge: the right-edge nodes
  computed from them must fold into the checkpoint's root;
- every *full* tile's root (its 256 hashes hashed up 8 levels) is one hash of
  its parent tile one level up, which is verified the same way, up to a
  partial tile.

:func:`tiles_to_fetch` says which tiles (at their widths for N) are needed to
read some nodes and verify them; :func:`verify_tiles` checks them all and
returns :class:`VerifiedTiles`, a :class:`~tlog_client.proof.HashReader`
usable for proof generation; :func:`verify_entry_bundle` checks an entry
bundle against its verified level-0 tile.

The server checks each tile it serves the other way round
(:func:`verify_tile_in_tree`, SPEC §10 U2): given the tree's other nodes from
its own (untrusted) storage, the tile's hashes must complete the compact
range of the whole tree into the signed root. Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .bulk import leaf_hashes, root_of_level
from .compact import CompactRange
from .errors import FormatError, RootMismatchError, VerificationError
from .proof import Address, HashReader, range_nodes, right_edge
from .tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    EntryBundle,
    Tile,
    decode_entry_bundle,
    node_hashes_from_tiles,
    split_tile,
    tile_at,
    tile_path,
    tiles_for_nodes,
)
from .trust import VerifiedCheckpoint

__all__ = ["TileVerificationError", "VerifiedTiles", "tiles_to_fetch", "verify_entry_bundle",
           "verify_tile_in_tree", "verify_tiles"]

HASH_SIZE = 32


class TileVerificationError(VerificationError):
    """A tile or entry bundle does not belong to the checkpoint's tree."""

    binding = "tiles"


def _parent(tile: Tile, size: int) -> Tile:
    return tile_at(tile.level + 1, tile.index // TILE_WIDTH, size)


def _close(tiles: Iterable[Tile], size: int) -> set[Tile]:
    """``tiles`` plus the chain of parents of each full tile (up to a
    partial one) plus the tiles of the right edge, at their widths for size."""
    out: set[Tile] = set(tiles_for_nodes(right_edge(size), size)) if size else set()
    todo = list(tiles)
    while todo:
        tile = todo.pop()
        if tile in out:
            continue
        out.add(tile)
        if tile.is_full:
            todo.append(_parent(tile, size))
    return out


def tiles_to_fetch(size: int, nodes: Iterable[Address] = (),
                   tiles: Iterable[Tile] = ()) -> list[Tile]:
    """Tiles to download to read ``nodes`` (complete nodes of the tree of
    ``size``) and the level-``L`` ``tiles`` given (each at its width for
    size), and to verify all of them against the checkpoint. Sorted."""
    wanted = list(tiles_for_nodes(list(nodes), size)) if size else []
    wanted += [tile_at(t.level, t.index, size) for t in tiles]
    return sorted(_close(wanted, size))


def _tile_root(hashes: bytes) -> bytes:
    return root_of_level(hashes)


class VerifiedTiles:
    """Tiles proven to belong to ``checkpoint``'s tree; a HashReader."""

    def __init__(self, checkpoint: VerifiedCheckpoint, tiles: Mapping[Tile, bytes]) -> None:
        self.checkpoint = checkpoint
        self._tiles = dict(tiles)

    def tile(self, tile: Tile) -> bytes:
        """The data of a verified tile (at its width for the tree size), or
        a prefix of it for a narrower ``tile`` (the same tile at a smaller
        tree size). KeyError if that tile was not fetched."""
        full = self._tiles[tile_at(tile.level, tile.index, self.checkpoint.size)]
        return full[:HASH_SIZE * tile.width]

    def read_hashes(self, addresses: Sequence[Address]) -> list[bytes]:
        """Hashes of complete nodes of the tree (HashReader protocol)."""
        try:
            return node_hashes_from_tiles(self._tiles, addresses)
        except FormatError as exc:
            raise TileVerificationError(f"cannot read nodes from the verified tiles: "
                                        f"{exc}") from None

    def leaf_hashes(self, start: int, end: int) -> bytes:
        """Concatenated leaf hashes of ``[start, end)`` from level-0 tiles."""
        out = bytearray()
        for n in range(start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH):
            data = self.tile(tile_at(0, n, self.checkpoint.size))
            lo = max(start - n * TILE_WIDTH, 0)
            hi = min(end - n * TILE_WIDTH, TILE_WIDTH)
            out += data[lo * HASH_SIZE:hi * HASH_SIZE]
        return bytes(out)


def verify_tiles(checkpoint: VerifiedCheckpoint, tiles: Mapping[Tile, bytes]) -> VerifiedTiles:
    """Verify ``tiles`` (as named by :func:`tiles_to_fetch`, keyed by Tile at
    its width for the checkpoint's size) against the checkpoint; raises
    TileVerificationError naming the first tile that does not belong."""
    size = checkpoint.size
    for tile, data in tiles.items():
        try:
            if tile != tile_at(tile.level, tile.index, size):
                raise FormatError("width", f"not its width at tree size {size}")
            split_tile(data, tile.width)
        except FormatError as exc:
            raise TileVerificationError(f"{tile_path(tile)}: {exc}") from None
    missing = _close(tiles, size) - set(tiles)
    if missing:
        raise TileVerificationError("tiles needed to verify are missing: "
                                    + ", ".join(tile_path(t) for t in sorted(missing)[:5]))
    if size:
        edge = node_hashes_from_tiles(tiles, right_edge(size))
        root = CompactRange.from_hashes(0, size, edge).root()
        if root != checkpoint.root_hash:
            raise TileVerificationError(str(RootMismatchError(
                "the right edge of the tiles does not fold into the checkpoint's root",
                checkpoint.root_hash, root)))
    for tile, data in tiles.items():
        if not tile.is_full:
            continue
        parent = _parent(tile, size)
        pos = tile.index % TILE_WIDTH
        expected = tiles[parent][pos * HASH_SIZE:(pos + 1) * HASH_SIZE]
        if _tile_root(data) != expected:
            raise TileVerificationError(f"{tile_path(tile)} does not hash to its entry in "
                                        f"{tile_path(parent)}")
    return VerifiedTiles(checkpoint, tiles)


def verify_entry_bundle(verified: VerifiedTiles, bundle: EntryBundle, data: bytes) -> list[bytes]:
    """Decode an entry bundle and check every entry's leaf hash against the
    verified level-0 tile. Returns the entries (the bundle's width)."""
    try:
        entries = decode_entry_bundle(data, bundle.width)
    except FormatError as exc:
        raise TileVerificationError(f"{tile_path(bundle)}: {exc}") from None
    tile = Tile(0, bundle.index, bundle.width)
    if leaf_hashes(entries) != verified.tile(tile):
        raise TileVerificationError(f"{tile_path(bundle)} does not hash to {tile_path(tile)}")
    return entries


def verify_tile_in_tree(tile: Tile | EntryBundle, hashes: bytes, size: int, root: bytes,
                        reader: HashReader) -> None:
    """Prove that ``hashes`` belong to the tree of ``size`` leaves whose root
    is ``root`` (trusted: a verified checkpoint's) at the place ``tile``
    names: for a hash tile, its ``tile.width`` hashes of Merkle level
    ``8 * tile.level``; for an entry bundle, the leaf hashes of its entries.

    The rest of the tree's compact range, the nodes covering the leaves
    before and after the tile, is read from ``reader`` (untrusted: a wrong
    node there, or a wrong hash in the tile, makes the folded root differ).
    About 2 log2(size) node reads and as many hashes, plus folding the tile
    (255 hashes for a full one, in the bulk hasher). Raises
    TileVerificationError; FormatError if ``hashes`` is not ``width`` hashes
    or the tile is beyond the tree."""
    level = 0 if isinstance(tile, EntryBundle) else TILE_HEIGHT * tile.level
    try:
        split_tile(hashes, tile.width)
    except FormatError as exc:
        raise TileVerificationError(f"{tile_path(tile)}: {exc}") from None
    first = tile.index * TILE_WIDTH  # the tile's first node at `level`
    begin, end = first << level, (first + tile.width) << level
    if end > size:
        raise FormatError("tile", f"{tile_path(tile)} is beyond the tree of size {size}")
    # The tile's hashes as a compact range in units of level-`level` nodes;
    # [begin, end) is aligned to 2**level, so the same hashes are the
    # compact range of leaves [begin, end).
    if tile.width == TILE_WIDTH:
        middle = [root_of_level(hashes)]
    else:
        rel = CompactRange(first, first)
        rel.extend(hashes[i:i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE))
        middle = rel.hashes
    left, right = range_nodes(0, begin), range_nodes(end, size)
    stored = list(reader.read_hashes(left + right))
    try:
        folded = CompactRange.from_hashes(0, begin, stored[:len(left)])
        folded.merge(CompactRange(begin, end, middle))
        folded.merge(CompactRange.from_hashes(end, size, stored[len(left):]))
        computed = folded.root()
    except FormatError as exc:
        raise TileVerificationError(f"{tile_path(tile)}: the stored tree around it is "
                                    f"malformed: {exc}") from None
    if computed != root:
        raise TileVerificationError(str(RootMismatchError(
            f"{tile_path(tile)} and the tree's other nodes do not fold into the root",
            root, computed)))


class VerifiedLevel:
    """Every complete node of one Merkle level (8: the roots of full
    level-0 tiles) of a tree, each proved against a verified root.

    The server keeps one so that a full tile or entry bundle it serves is
    checked by hashing it alone (a full level-0 tile or bundle must hash to
    its level-8 node; a level-1 tile *is* a run of level-8 nodes), instead
    of folding the whole tree around it (:func:`verify_tile_in_tree`, about
    six times the cost). The level's nodes are read from untrusted storage
    once, and :meth:`extend` proves each new run of them: the verified
    nodes so far (as a compact range), the new ones and the tree's right
    edge below the level must fold into the signed root.

    32 bytes per node: n/8 bytes for a tree of n leaves at level 8. Not
    thread-safe: the caller serialises :meth:`extend`.
    """

    def __init__(self, level: int = TILE_HEIGHT) -> None:
        self.level = level
        self.size = 0  # the tree size last proved
        self._hashes = bytearray()
        self._range = CompactRange()  # over the nodes, in units of this level's nodes

    @property
    def count(self) -> int:
        """Nodes of the level proved so far (indexes 0 .. count-1)."""
        return len(self._hashes) // HASH_SIZE

    def node(self, index: int) -> bytes:
        """Proved node ``index``. Precondition: ``index < count``."""
        return bytes(self._hashes[index * HASH_SIZE:(index + 1) * HASH_SIZE])

    def nodes(self, first: int, count: int) -> bytes:
        """Proved nodes ``first .. first+count-1``, concatenated.
        Precondition: ``first + count <= self.count``."""
        return bytes(self._hashes[first * HASH_SIZE:(first + count) * HASH_SIZE])

    def needed(self, size: int) -> tuple[int, int, list[Address]]:
        """What :meth:`extend` needs to prove the tree of ``size`` leaves:
        the level's nodes ``first .. end-1`` and the addresses of the
        tree's right edge below the level."""
        end = size >> self.level
        return self.count, end, range_nodes(end << self.level, size)

    def extend(self, size: int, root: bytes, new: bytes, lower: Sequence[bytes]) -> None:
        """Prove and keep the level's nodes ``count ..`` of the tree of
        ``size`` leaves whose root is ``root`` (trusted): ``new`` are those
        nodes, ``lower`` the hashes of :meth:`needed`'s lower edge, both
        read from untrusted storage. Raises TileVerificationError (and keeps
        nothing) if they do not fold into ``root``; FormatError if ``size``
        is smaller than one proved before or the counts are wrong."""
        first, end, edge = self.needed(size)
        if size < self.size or len(new) != (end - first) * HASH_SIZE or len(lower) != len(edge):
            raise FormatError("size", f"cannot extend level {self.level} proved at size "
                                      f"{self.size} to size {size} with these hashes")
        grown = CompactRange(self._range.begin, self._range.end, list(self._range.hashes))
        grown.extend(new[i:i + HASH_SIZE] for i in range(0, len(new), HASH_SIZE))
        try:
            folded = CompactRange(0, end << self.level, list(grown.hashes))
            folded.merge(CompactRange.from_hashes(end << self.level, size, lower))
            computed = folded.root()
        except FormatError as exc:
            raise TileVerificationError(f"level {self.level}: {exc}") from None
        if computed != root:
            raise TileVerificationError(str(RootMismatchError(
                f"the stored nodes of level {self.level} and the right edge below it do "
                f"not fold into the root at size {size}", root, computed)))
        self._range = grown
        self._hashes += new
        self.size = size
