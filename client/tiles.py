"""C2SP tlog-tiles geometry: tile paths, tile widths, entry bundles (SPEC §3.3).

Spec: https://c2sp.org/tlog-tiles. Pure: no I/O.

Addressing used across tlog: a Merkle node ``(level, index)`` is the root of
the perfect subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``.
Tiles have height 8: the level-``L`` tile number ``N`` stores the hashes of the
nodes ``(8 * L, N * 256 + i)`` for ``i`` in ``0 .. width - 1``. Nodes at levels
``8L + 1 .. 8L + 7`` (and ``8L + 8``, the root of a full tile) are recomputed
from the stored hashes of one tile.

Every function validates its arguments and raises
:class:`~tlog_client.errors.FormatError` naming the offending field.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .encoding import MAX_INT64, parse_decimal
from .errors import FormatError
from .hashing import node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # hashes (or entries) in a full tile
HASH_SIZE = 32
MAX_LEVEL = 63  # highest tile level a path may name (c2sp.org/tlog-tiles)
MAX_NODE_LEVEL = 62  # a tree of at most 2**63 - 1 leaves has no higher node
MAX_ENTRY_SIZE = 0xFFFF  # uint16 length prefix

_GROUP = re.compile(r"[0-9]{3}\Z")
_X_GROUP = re.compile(r"x[0-9]{3}\Z")
_U16 = struct.Struct(">H")

Address = tuple[int, int]


# --------------------------------------------------------------------------
# Argument checks


def _check_int(value: object, field: str, lo: int, hi: int) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) in ``[lo, hi]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(field, f"must be an int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise FormatError(field, f"{value} is outside [{lo}, {hi}]")
    return value


def _check_size(size: int, field: str = "size") -> int:
    return _check_int(size, field, 0, MAX_INT64)


def _check_node(level: int, index: int, field: str = "node") -> Address:
    """Check a node address is well formed: it fits in some tree of at most
    2**63-1 leaves, i.e. ``(index + 1) << level <= 2**63-1``."""
    _check_int(level, field, 0, MAX_NODE_LEVEL)
    _check_int(index, field, 0, (MAX_INT64 >> level) - 1)
    return level, index


def _check_node_in_tree(level: int, index: int, size: int, field: str = "node") -> Address:
    """Check node ``(level, index)`` is a complete subtree of a tree of ``size``."""
    _check_node(level, index, field)
    if (index + 1) << level > size:
        raise FormatError(field, f"node ({level}, {index}) is not in a tree of size {size}")
    return level, index


# --------------------------------------------------------------------------
# Tiles and entry bundles


@dataclass(frozen=True, order=True)
class Tile:
    """A hash tile: ``width`` hashes of Merkle level ``8 * level``, starting
    at hash ``index * 256`` of that level. ``width == 256`` is a full tile.

    Preconditions (checked): ``0 <= level <= 63``, ``0 <= index <= 2**63-1``,
    ``1 <= width <= 256``. See https://c2sp.org/tlog-tiles#merkle-tree.
    """

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_int(self.level, "level", 0, MAX_LEVEL)
        _check_int(self.index, "index", 0, MAX_INT64)
        _check_int(self.width, "width", 1, TILE_WIDTH)

    @property
    def is_full(self) -> bool:
        """True for a full (256-hash, immutable) tile."""
        return self.width == TILE_WIDTH


@dataclass(frozen=True, order=True)
class EntryBundle:
    """An entry bundle: entries ``index * 256 .. index * 256 + width - 1``;
    entry ``i`` hashes to hash ``i`` of level-0 tile ``index``.

    Preconditions (checked): ``0 <= index <= 2**63-1``, ``1 <= width <= 256``.
    See https://c2sp.org/tlog-tiles#log-entries.
    """

    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_int(self.index, "index", 0, MAX_INT64)
        _check_int(self.width, "width", 1, TILE_WIDTH)

    @property
    def is_full(self) -> bool:
        """True for a full (256-entry, immutable) bundle."""
        return self.width == TILE_WIDTH


# --------------------------------------------------------------------------
# Paths


def _encode_index(n: int) -> str:
    """``N`` in 3-digit groups, all but the last prefixed ``x``."""
    text = f"{n % 1000:03d}"
    n //= 1000
    while n > 0:
        text = f"x{n % 1000:03d}/{text}"
        n //= 1000
    return text


def _suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(tile: Tile | EntryBundle) -> str:
    """Path of a tile or entry bundle, e.g. ``tile/0/x001/x234/067.p/5`` or
    ``tile/entries/000``; no leading slash. https://c2sp.org/tlog-tiles#apis"""
    if isinstance(tile, EntryBundle):
        return f"tile/entries/{_encode_index(tile.index)}{_suffix(tile.width)}"
    if isinstance(tile, Tile):
        return f"tile/{tile.level}/{_encode_index(tile.index)}{_suffix(tile.width)}"
    raise FormatError("tile", f"not a Tile or EntryBundle: {type(tile).__name__}")


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Path of entry bundle ``index`` with ``width`` entries (1..256)."""
    return tile_path(EntryBundle(index, width))


def _parse_groups(groups: Sequence[str]) -> int:
    """Decode ``x001/x234/067`` (already split); raise FormatError("path")."""
    if not groups:
        raise FormatError("path", "missing tile index")
    n = 0
    for i, group in enumerate(groups):
        pattern = _GROUP if i == len(groups) - 1 else _X_GROUP
        if not pattern.match(group):
            raise FormatError("path", f"malformed index element {group!r:.20}")
        n = n * 1000 + int(group[-3:])
    if n > MAX_INT64:
        raise FormatError("path", "tile index exceeds 2**63-1")
    return n


def _split_width(parts: list[str]) -> tuple[list[str], int]:
    """Strip a ``.p/<W>`` suffix from the index parts; W is 1..255."""
    if len(parts) < 2 or not parts[-2].endswith(".p"):
        return parts, TILE_WIDTH
    width = parse_decimal(parts[-1], "path", maximum=TILE_WIDTH - 1)
    if width == 0:
        raise FormatError("path", "partial tile width 0")
    return parts[:-2] + [parts[-2][:-2]], width


def parse_tile_path(path: str) -> Tile | EntryBundle:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` strictly.

    Exactly the output of :func:`tile_path` is accepted (no leading slash):
    ``L`` is 0..63 without leading zeros, ``N`` in 3-digit groups with ``x``
    on all but the last and no leading zero group, ``W`` 1..255 without
    leading zeros. Anything else raises ``FormatError("path", ...)``.
    https://c2sp.org/tlog-tiles#merkle-tree
    """
    if not isinstance(path, str):
        raise FormatError("path", f"must be a str, got {type(path).__name__}")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise FormatError("path", f"not a tile path: {path!r:.80}")
    groups, width = _split_width(parts[2:])
    index = _parse_groups(groups)
    if parts[1] == "entries":
        result: Tile | EntryBundle = EntryBundle(index, width)
    else:
        result = Tile(parse_decimal(parts[1], "path", maximum=MAX_LEVEL), index, width)
    if tile_path(result) != path:
        raise FormatError("path", f"non-canonical tile path: {path!r:.80}")
    return result


# --------------------------------------------------------------------------
# Geometry for a tree size


def _hashes_at(level: int, size: int) -> int:
    """Number of stored hashes at tile level ``level`` in a tree of ``size``."""
    return size >> (TILE_HEIGHT * level)


def tile_width(level: int, index: int, size: int) -> int:
    """Width of tile ``(level, index)`` in a tree of ``size`` leaves (1..256).

    Raises ``FormatError("index")`` if that tile does not exist at that size
    (it would be empty). https://c2sp.org/tlog-tiles#partial-tiles
    """
    _check_int(level, "level", 0, MAX_LEVEL)
    _check_int(index, "index", 0, MAX_INT64)
    _check_size(size)
    width = _hashes_at(level, size) - index * TILE_WIDTH
    if width <= 0:
        raise FormatError("index", f"tile {level}/{index} does not exist in a tree of size {size}")
    return min(width, TILE_WIDTH)


def tile_at(level: int, index: int, size: int) -> Tile:
    """Tile ``(level, index)`` with its width in a tree of ``size`` leaves."""
    return Tile(level, index, tile_width(level, index, size))


def require_tile_in_tree(tile: Tile | EntryBundle, size: int) -> None:
    """Raise ``FormatError("width")`` unless ``tile`` (or an entry bundle, as
    level 0) was published by a tree of ``size`` or of a smaller size, i.e.
    its width is at most that tile's width at ``size`` (SPEC §3.3)."""
    level = tile.level if isinstance(tile, Tile) else 0
    available = tile_width(level, tile.index, size)
    if tile.width > available:
        raise FormatError("width", f"{tile_path(tile)} is wider than {available} at size {size}")


def partial_tile(level: int, size: int) -> Tile | None:
    """The partial tile at ``level`` for a tree of ``size``, or ``None`` if
    that level has none (width ``floor(size / 256**level) mod 256`` is 0).
    https://c2sp.org/tlog-tiles#partial-tiles"""
    _check_int(level, "level", 0, MAX_LEVEL)
    _check_size(size)
    count = _hashes_at(level, size)
    width = count % TILE_WIDTH
    return Tile(level, count // TILE_WIDTH, width) if width else None


def tiles_between(old_size: int, new_size: int) -> list[Tile]:
    """Tiles of a tree of ``new_size`` that a tree of ``old_size`` did not
    have (with these widths): newly full tiles, then the new partial tile, per
    level bottom-up. Precondition: ``0 <= old_size <= new_size``."""
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size:
        raise FormatError("old_size", f"{old_size} exceeds new_size {new_size}")
    tiles: list[Tile] = []
    level = 0
    while _hashes_at(level, new_size) > 0:
        old, new = _hashes_at(level, old_size), _hashes_at(level, new_size)
        if old != new:
            first, last = old // TILE_WIDTH, new // TILE_WIDTH
            tiles.extend(Tile(level, n) for n in range(first, last))
            if new % TILE_WIDTH:
                tiles.append(Tile(level, last, new % TILE_WIDTH))
        level += 1
    return tiles


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile (full, and at most one partial per level) of a tree of
    ``size`` leaves, ordered by level then index. ``size == 0`` has none.
    E.g. 70000 → 273 full + 1 partial (112) at level 0, 1 full + 1 partial
    (17) at level 1, 1 partial (1) at level 2. https://c2sp.org/tlog-tiles"""
    return tiles_between(0, _check_size(size))


def entry_bundle_for(leaf_index: int, size: int) -> EntryBundle:
    """The entry bundle holding leaf ``leaf_index`` in a tree of ``size``."""
    _check_size(size)
    _check_int(leaf_index, "leaf_index", 0, MAX_INT64)
    if leaf_index >= size:
        raise FormatError("leaf_index", f"{leaf_index} is not below size {size}")
    index = leaf_index // TILE_WIDTH
    return EntryBundle(index, tile_width(0, index, size))


# --------------------------------------------------------------------------
# Nodes and tiles


class NodeLocation(NamedTuple):
    """Where a node's hash comes from: tile ``(tile_level, tile_index)``
    stores hashes of Merkle level ``8 * tile_level``; the node is the root of
    the ``2**sublevel`` hashes starting at ``position`` in that tile."""

    tile_level: int
    tile_index: int
    position: int
    sublevel: int

    @property
    def width_needed(self) -> int:
        """Least tile width holding every hash the node is computed from."""
        return self.position + (1 << self.sublevel)


def tile_for_node(level: int, index: int) -> NodeLocation:
    """Locate node ``(level, index)`` in the tile of level ``level // 8``.

    Precondition: ``0 <= level <= 62``, ``0 <= index``, ``(index+1) << level
    <= 2**63-1``. The tile must have width at least ``width_needed`` for the
    hash to be computable. https://c2sp.org/tlog-tiles#merkle-tree
    """
    _check_node(level, index)
    tile_level, sublevel = divmod(level, TILE_HEIGHT)
    first = index << sublevel  # first stored hash, at Merkle level 8*tile_level
    return NodeLocation(tile_level, first // TILE_WIDTH, first % TILE_WIDTH, sublevel)


def _single_tile_sources(level: int, index: int) -> list[NodeLocation]:
    """Tiles from which the node is computable alone: its own tile, and for a
    node at a level 8L >= 8 also the full tile below it (whose root it is)."""
    own = tile_for_node(level, index)
    sources = [own]
    if own.sublevel == 0 and own.tile_level > 0:
        sources.append(NodeLocation(own.tile_level - 1, index, 0, TILE_HEIGHT))
    return sources


def _find_source(level: int, index: int, widths: Mapping[Address, int]) -> NodeLocation | None:
    """A single-tile source present in ``widths`` (wide enough), or None."""
    for loc in _single_tile_sources(level, index):
        if widths.get((loc.tile_level, loc.tile_index), 0) >= loc.width_needed:
            return loc
    return None


def _computable(level: int, index: int, widths: Mapping[Address, int]) -> bool:
    """Planning predicate: can the node be derived from the tiles in
    ``widths`` (directly, or by hashing its two children recursively)?"""
    if _find_source(level, index, widths) is not None:
        return True
    if level == 0:
        return False
    return _computable(level - 1, 2 * index, widths) and _computable(
        level - 1, 2 * index + 1, widths
    )


def tiles_for_nodes(addresses: Iterable[Address], size: int) -> list[Tile]:
    """Tiles (at their widths for a tree of ``size``) from which the hashes of
    all ``addresses`` can be computed with :func:`node_hashes_from_tiles`.

    Nodes are visited bottom-up; each adds its own tile unless it is already
    computable from tiles chosen for lower nodes, so the result is never
    larger than the set of the nodes' own tiles. Precondition: every node is a
    complete subtree of the tree (else ``FormatError("addresses")``).
    Sorted by (level, index). https://c2sp.org/tlog-tiles#merkle-tree
    """
    _check_size(size)
    nodes = sorted({_check_node_in_tree(*_as_address(a), size, "addresses") for a in addresses})
    widths: dict[Address, int] = {}
    for level, index in nodes:
        if not _computable(level, index, widths):
            loc = tile_for_node(level, index)
            key = (loc.tile_level, loc.tile_index)
            widths[key] = tile_width(loc.tile_level, loc.tile_index, size)
    return [Tile(level, index, width) for (level, index), width in sorted(widths.items())]


def _as_address(address: object) -> Address:
    if not isinstance(address, tuple) or len(address) != 2:
        raise FormatError("addresses", f"not a (level, index) pair: {address!r:.40}")
    return address[0], address[1]


def tiles_for_inclusion(index: int, size: int) -> list[Tile]:
    """Tiles needed for the inclusion proof of leaf ``index`` in a tree of
    ``size`` (addresses from :func:`tlog_client.proof.inclusion_nodes`)."""
    from .proof import inclusion_nodes  # lazy: geometry does not need proofs

    return tiles_for_nodes(inclusion_nodes(index, size).addresses, size)


def tiles_for_consistency(size1: int, size2: int) -> list[Tile]:
    """Tiles (at their widths for ``size2``) needed for the consistency proof
    from ``size1`` to ``size2`` (addresses from
    :func:`tlog_client.proof.consistency_nodes`)."""
    from .proof import consistency_nodes  # lazy: geometry does not need proofs

    return tiles_for_nodes(consistency_nodes(size1, size2).addresses, size2)


# --------------------------------------------------------------------------
# Hashes from tile data


def split_tile(data: bytes, width: int) -> list[bytes]:
    """Split tile data into its ``width`` 32-byte hashes. Precondition:
    ``1 <= width <= 256``; ``len(data)`` must be exactly ``32 * width``
    (else ``FormatError("tile")``). https://c2sp.org/tlog-tiles#merkle-tree"""
    _check_int(width, "width", 1, TILE_WIDTH)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError("tile", f"must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) != HASH_SIZE * width:
        raise FormatError("tile", f"is {len(data)} bytes, expected {HASH_SIZE * width}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_tile(hashes: Sequence[bytes]) -> bytes:
    """Concatenate 1..256 hashes of 32 bytes into tile data."""
    _check_int(len(hashes), "hashes", 1, TILE_WIDTH)
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise FormatError("hashes", f"hash {i} is not 32 bytes")
    return b"".join(hashes)


def _subtree_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree over ``hashes`` (a power-of-two count)."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def _locate_in_tile(tile: Tile, level: int, index: int) -> tuple[int, int]:
    """(start, count) of the node's hashes within ``tile``, or FormatError."""
    _check_node(level, index)
    sublevel = level - TILE_HEIGHT * tile.level
    if not 0 <= sublevel <= TILE_HEIGHT:
        raise FormatError("node", f"level {level} is not computable from {tile_path(tile)}")
    start = (index << sublevel) - tile.index * TILE_WIDTH
    count = 1 << sublevel
    if start < 0 or start + count > tile.width:
        raise FormatError("node", f"({level}, {index}) is not inside {tile_path(tile)}")
    return start, count


def node_hash_from_tile(tile_hashes: bytes, tile: Tile, level: int, index: int) -> bytes:
    """Hash of node ``(level, index)`` computed from one tile's data.

    Preconditions: ``tile_hashes`` is exactly ``32 * tile.width`` bytes (else
    ``FormatError("tile")``); ``8 * tile.level <= level <= 8 * tile.level + 8``
    and every hash the node covers lies inside the tile's width (else
    ``FormatError("node")``). Level ``8 * tile.level + 8`` is the root of a
    full tile. https://c2sp.org/tlog-tiles#merkle-tree
    """
    hashes = split_tile(tile_hashes, tile.width)
    start, count = _locate_in_tile(tile, level, index)
    return _subtree_root(hashes[start : start + count])


_Indexed = dict[Address, tuple[Tile, list[bytes]]]


def _index_tiles(tiles: Mapping[Tile, bytes]) -> _Indexed:
    """Split each tile's data and key it by (level, index), keeping the
    widest tile of each."""
    by_address: _Indexed = {}
    for tile, data in tiles.items():
        if not isinstance(tile, Tile):
            raise FormatError("tiles", f"key is not a Tile: {type(tile).__name__}")
        hashes = split_tile(data, tile.width)
        key = (tile.level, tile.index)
        if key not in by_address or by_address[key][0].width < tile.width:
            by_address[key] = (tile, hashes)
    return by_address


def _derive(level: int, index: int, tiles: _Indexed, widths: dict[Address, int]) -> bytes:
    """Node hash from one tile if possible, else from its two children."""
    loc = _find_source(level, index, widths)
    if loc is not None:
        tile, hashes = tiles[(loc.tile_level, loc.tile_index)]
        start, count = _locate_in_tile(tile, level, index)
        return _subtree_root(hashes[start : start + count])
    if level == 0:
        raise FormatError("tiles", f"no tile holds leaf hash {index}")
    left = _derive(level - 1, 2 * index, tiles, widths)
    return node_hash(left, _derive(level - 1, 2 * index + 1, tiles, widths))


def node_hashes_from_tiles(tiles: Mapping[Tile, bytes], addresses: Iterable[Address]) -> list[bytes]:
    """Hashes of ``addresses`` (in order) computed from ``tiles`` (tile →
    data), e.g. the tiles :func:`tiles_for_nodes` named. A node missing from
    its own tile is derived from lower tiles. Raises ``FormatError("tile")``
    for tile data of the wrong length and ``FormatError("tiles")`` if a node
    cannot be computed. https://c2sp.org/tlog-tiles#merkle-tree"""
    indexed = _index_tiles(tiles)
    widths = {key: tile.width for key, (tile, _) in indexed.items()}
    out = []
    for address in addresses:
        level, index = _check_node(*_as_address(address), "addresses")
        out.append(_derive(level, index, indexed, widths))
    return out


# --------------------------------------------------------------------------
# Entry bundles


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode 1..256 entries, each prefixed by its big-endian uint16 length.

    Precondition: every entry is ``bytes`` of at most 65,535 bytes (else
    ``FormatError("entries")``). https://c2sp.org/tlog-tiles#log-entries
    """
    _check_int(len(entries), "entries", 1, TILE_WIDTH)
    # One join over (prefix, entry) pairs: each entry is copied once (a
    # bundle is 256 of them, read at every tile/entries request).
    parts: list[bytes] = []
    pack = _U16.pack
    for i, entry in enumerate(entries):
        if not isinstance(entry, bytes):
            raise FormatError("entries", f"entry {i} is not bytes")
        if len(entry) > MAX_ENTRY_SIZE:
            raise FormatError("entries", f"entry {i} is {len(entry)} bytes, max {MAX_ENTRY_SIZE}")
        parts += (pack(len(entry)), entry)
    return b"".join(parts)


def decode_entry_bundle(data: bytes, expected_count: int | None = None) -> list[bytes]:
    """Decode an entry bundle strictly: 1..256 uint16-length-prefixed entries
    filling ``data`` exactly; if ``expected_count`` is given (1..256, the
    bundle's width) the count must equal it. Raises ``FormatError("bundle")``.
    https://c2sp.org/tlog-tiles#log-entries"""
    if expected_count is not None:
        _check_int(expected_count, "expected_count", 1, TILE_WIDTH)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError("bundle", f"must be bytes, got {type(data).__name__}")
    data = bytes(data)
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if len(entries) == TILE_WIDTH:
            raise FormatError("bundle", f"more than {TILE_WIDTH} entries")
        entries.append(_read_entry(data, offset))
        offset += 2 + len(entries[-1])
    if not entries:
        raise FormatError("bundle", "empty entry bundle")
    if expected_count is not None and len(entries) != expected_count:
        raise FormatError("bundle", f"has {len(entries)} entries, expected {expected_count}")
    return entries


def _read_entry(data: bytes, offset: int) -> bytes:
    if offset + 2 > len(data):
        raise FormatError("bundle", f"truncated length prefix at byte {offset}")
    (length,) = _U16.unpack_from(data, offset)
    end = offset + 2 + length
    if end > len(data):
        raise FormatError("bundle", f"entry at byte {offset} truncated: needs {length} bytes")
    return data[offset + 2 : end]
