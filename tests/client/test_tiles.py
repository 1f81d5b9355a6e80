"""Tests of tlog_client.tiles (SPEC §3.3, https://c2sp.org/tlog-tiles).

Oracles are naive and written here: an enumeration of tiles per level, a
recursive RFC 6962 MTH, and the RFC 9162 PATH / SUBPROOF recursions. When Go
and golang.org/x/mod/sumdb/tlog are installed (SPEC §3), paths, tile sets and
tile contents are also checked against Go.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import types
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlog_client.errors import FormatError
from tlog_client.tiles import (
    EntryBundle,
    NodeLocation,
    Tile,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_tile,
    entries_path,
    entry_bundle_for,
    node_hash_from_tile,
    node_hashes_from_tiles,
    parse_tile_path,
    partial_tile,
    require_tile_in_tree,
    split_tile,
    tile_at,
    tile_for_node,
    tile_path,
    tile_width,
    tiles_between,
    tiles_for_consistency,
    tiles_for_inclusion,
    tiles_for_nodes,
    tiles_for_size,
)

MAX_INT64 = (1 << 63) - 1


# --------------------------------------------------------------------------
# Naive oracles


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def naive_mth(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf hashes, recursively."""
    n = len(leaf_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
    return _node(naive_mth(leaf_hashes[:k]), naive_mth(leaf_hashes[k:]))


def naive_tiles(size: int) -> list[Tile]:
    """Every tile of a tree of ``size``, from the C2SP definition."""
    out = []
    level = 0
    while 256**level <= size:
        count = size // 256**level  # hashes of Merkle level 8*level
        for n in range((count + 255) // 256):
            out.append(Tile(level, n, min(256, count - 256 * n)))
        level += 1
    return out


class NaiveTree:
    """Random leaves, memoised subtree hashes and tile contents."""

    def __init__(self, size: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.size = size
        self.leaves = [_leaf(rng.randbytes(rng.randrange(0, 40))) for _ in range(size)]
        self.node = lru_cache(maxsize=None)(self._node)

    def _node(self, level: int, index: int) -> bytes:
        if level == 0:
            return self.leaves[index]
        return _node(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))

    def tile_data(self, tile: Tile) -> bytes:
        """C2SP: hash i is MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l])."""
        span = 256**tile.level
        return b"".join(
            naive_mth(self.leaves[(tile.index * 256 + i) * span : (tile.index * 256 + i + 1) * span])
            for i in range(tile.width)
        )

    def all_nodes(self) -> list[tuple[int, int]]:
        return [
            (level, index)
            for level in range(self.size.bit_length())
            for index in range(self.size >> level)
        ]


def perfect_nodes(lo: int, hi: int) -> list[tuple[int, int]]:
    """Aligned perfect subtrees covering leaves [lo, hi), left to right."""
    out = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo % (1 << level):
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def naive_inclusion_ranges(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]) as leaf ranges (m absolute)."""
    if hi - lo == 1:
        return []
    k = _split(hi - lo)
    if m < lo + k:
        return naive_inclusion_ranges(m, lo, lo + k) + [(lo + k, hi)]
    return naive_inclusion_ranges(m, lo + k, hi) + [(lo, lo + k)]


def naive_consistency_ranges(m: int, lo: int, hi: int, whole: bool) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[lo:hi], b) as leaf ranges."""
    if m == hi - lo:
        return [] if whole else [(lo, hi)]
    k = _split(hi - lo)
    if m <= k:
        return naive_consistency_ranges(m, lo, lo + k, whole) + [(lo + k, hi)]
    return naive_consistency_ranges(m - k, lo + k, hi, False) + [(lo, lo + k)]


def naive_inclusion_addresses(index: int, size: int) -> list[tuple[int, int]]:
    return [a for r in naive_inclusion_ranges(index, 0, size) for a in perfect_nodes(*r)]


def naive_consistency_addresses(size1: int, size2: int) -> list[tuple[int, int]]:
    if size1 == size2:
        return []
    return [a for r in naive_consistency_ranges(size1, 0, size2, True) for a in perfect_nodes(*r)]


def own_tiles(addresses, size: int) -> set[Tile]:
    """The naive tile set: each node's own tile at its width for ``size``."""
    out = set()
    for level, index in addresses:
        loc = tile_for_node(level, index)
        out.add(tile_at(loc.tile_level, loc.tile_index, size))
    return out


# --------------------------------------------------------------------------
# Tile and bundle values


@pytest.mark.parametrize(
    "args, field",
    [
        ((64, 0), "level"),
        ((-1, 0), "level"),
        ((0, -1), "index"),
        ((0, MAX_INT64 + 1), "index"),
        ((0, 0, 0), "width"),
        ((0, 0, 257), "width"),
        ((True, 0), "level"),
        ((0, 1.0), "index"),
        ((0, 0, "5"), "width"),
    ],
)
def test_tile_rejects_bad_fields(args, field):
    with pytest.raises(FormatError) as exc:
        Tile(*args)
    assert exc.value.field == field


def test_entry_bundle_rejects_bad_fields():
    for args, field in [((-1,), "index"), ((0, 0), "width"), ((0, 257), "width")]:
        with pytest.raises(FormatError) as exc:
            EntryBundle(*args)
        assert exc.value.field == field


def test_tile_defaults_and_full():
    assert Tile(0, 3) == Tile(0, 3, 256)
    assert Tile(0, 3).is_full and not Tile(0, 3, 255).is_full
    assert EntryBundle(2).is_full and not EntryBundle(2, 1).is_full


# --------------------------------------------------------------------------
# Paths

PATH_VECTORS = [
    (Tile(0, 1234067, 5), "tile/0/x001/x234/067.p/5"),
    (Tile(0, 1234067), "tile/0/x001/x234/067"),
    (Tile(0, 0), "tile/0/000"),
    (Tile(0, 0, 1), "tile/0/000.p/1"),
    (Tile(0, 0, 255), "tile/0/000.p/255"),
    (Tile(0, 999), "tile/0/999"),
    (Tile(0, 1000), "tile/0/x001/000"),
    (Tile(0, 1001, 17), "tile/0/x001/001.p/17"),
    (Tile(1, 1_000_000), "tile/1/x001/x000/000"),
    (Tile(2, 123456789, 112), "tile/2/x123/x456/789.p/112"),
    (Tile(63, 0, 255), "tile/63/000.p/255"),
    (Tile(10, 5), "tile/10/005"),
    (Tile(0, MAX_INT64), "tile/0/x009/x223/x372/x036/x854/x775/807"),
    (EntryBundle(0), "tile/entries/000"),
    (EntryBundle(1234067, 5), "tile/entries/x001/x234/067.p/5"),
    (EntryBundle(1000), "tile/entries/x001/000"),
    (EntryBundle(273, 112), "tile/entries/273.p/112"),
]


@pytest.mark.parametrize("tile, path", PATH_VECTORS)
def test_path_vectors(tile, path):
    assert tile_path(tile) == path
    assert parse_tile_path(path) == tile
    assert type(parse_tile_path(path)) is type(tile)


def test_entries_path():
    assert entries_path(1234067, 5) == "tile/entries/x001/x234/067.p/5"
    assert entries_path(0) == "tile/entries/000"
    with pytest.raises(FormatError):
        entries_path(0, 0)


MALFORMED_PATHS = [
    "",
    "tile",
    "tile/",
    "tile/0",
    "tile/0/",
    "/tile/0/000",
    "tiles/0/000",
    "TILE/0/000",
    "tile//000",
    "tile/0//000",
    "tile/0/000/",
    "tile/0/1",
    "tile/0/01",
    "tile/0/0000",
    "tile/0/00a",
    "tile/0/0x0",
    "tile/0/x000",
    "tile/0/001/234",  # missing x
    "tile/0/x001/234/067",  # missing x on a middle group
    "tile/0/X001/234",
    "tile/0/x1/234",
    "tile/0/x0001/234",
    "tile/0/x001/x234",  # x on the last group
    "tile/0/x000/001",  # leading zero group
    "tile/0/x000/x001/234",
    "tile/0/xx01/234",
    "tile/0/\u0660\u0660\u0660",  # Arabic-Indic digits
    "tile/0/000\n",
    "tile/0/ 000",
    "tile/00/000",
    "tile/01/000",
    "tile/+1/000",
    "tile/-1/000",
    "tile/ 1/000",
    "tile/1_0/000",
    "tile/64/000",
    "tile/100/000",
    "tile/data/000",
    "tile/Entries/000",
    "tile/entries",
    "tile/entries/",
    "tile/entries/x001",
    "tile/entries/001/000",
    "tile/0/000.p/0",
    "tile/0/000.p/256",
    "tile/0/000.p/257",
    "tile/0/000.p/01",
    "tile/0/000.p/+5",
    "tile/0/000.p/",
    "tile/0/000.p",
    "tile/0/000.p/5/6",
    "tile/0/000.p/5/",
    "tile/0/000.P/5",
    "tile/0/000.q/5",
    "tile/0/000.p.p/5",
    "tile/0/000p/5",
    "tile/0/x001.p/5/000",
    "tile/0/.p/5",
    "tile/entries/000.p/0",
    "tile/entries/000.p/256",
    "tile/0/x009/x223/x372/x036/x854/x775/808",  # 2**63
    "tile/0/x001/x000/x000/x000/x000/x000/x000/000",
]


@pytest.mark.parametrize("path", MALFORMED_PATHS)
def test_malformed_paths_rejected(path):
    with pytest.raises(FormatError) as exc:
        parse_tile_path(path)
    assert exc.value.field == "path"


@pytest.mark.parametrize("value", [b"tile/0/000", None, 0])
def test_non_str_path_rejected(value):
    with pytest.raises(FormatError) as exc:
        parse_tile_path(value)
    assert exc.value.field == "path"


def test_round_trip_exhaustive_widths_and_levels():
    for level in range(64):
        for width in (1, 2, 127, 255, 256):
            for index in (0, 7, 999, 1000, 1001, 999_999, 1_000_000, 123456789012):
                tile = Tile(level, index, width)
                assert parse_tile_path(tile_path(tile)) == tile
    for width in range(1, 257):
        bundle = EntryBundle(4242, width)
        assert parse_tile_path(tile_path(bundle)) == bundle


@given(
    st.integers(0, 63), st.integers(0, MAX_INT64), st.integers(1, 256), st.booleans()
)
def test_round_trip_property(level, index, width, entries):
    tile = EntryBundle(index, width) if entries else Tile(level, index, width)
    path = tile_path(tile)
    assert parse_tile_path(path) == tile
    assert tile_path(parse_tile_path(path)) == path


@given(st.text(alphabet="tile/entrs0123456789x.p+- ", max_size=40))
def test_parse_accepts_only_canonical(text):
    try:
        tile = parse_tile_path(text)
    except FormatError as exc:
        assert exc.field == "path"
    else:
        assert tile_path(tile) == text


def test_tile_path_rejects_other_types():
    with pytest.raises(FormatError) as exc:
        tile_path((0, 0, 256))
    assert exc.value.field == "tile"


# --------------------------------------------------------------------------
# Geometry for a tree size


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70000])
def test_tiles_for_size_matches_naive(size):
    assert tiles_for_size(size) == naive_tiles(size)


def test_tiles_for_size_spec_examples():
    tiles = tiles_for_size(70000)
    assert [t for t in tiles if t.level == 0 and t.is_full] == [Tile(0, n) for n in range(273)]
    assert [t for t in tiles if not t.is_full] == [Tile(0, 273, 112), Tile(1, 1, 17), Tile(2, 0, 1)]
    assert [t for t in tiles if t.level == 1] == [Tile(1, 0), Tile(1, 1, 17)]
    assert len(tiles) == 277
    assert tiles_for_size(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [Tile(0, 0, 1)]
    assert tiles_for_size(65536) == [Tile(0, n) for n in range(256)] + [Tile(1, 0), Tile(2, 0, 1)]


def test_huge_tree_levels():
    # tiles_for_size(2**63-1) is too long to list; check its top levels.
    assert tiles_between(MAX_INT64 - 1, MAX_INT64) == [
        Tile(0, (MAX_INT64 >> 8), 255)
    ]
    top = partial_tile(7, MAX_INT64)
    assert top == Tile(7, 0, 127)
    assert partial_tile(8, MAX_INT64) is None


def test_tiles_between_is_set_difference():
    rng = random.Random(1)
    sizes = [0, 1, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70000]
    pairs = [(a, b) for a in sizes for b in sizes if a <= b]
    pairs += [tuple(sorted((rng.randrange(70001), rng.randrange(70001)))) for _ in range(40)]
    for old, new in pairs:
        expected = sorted(set(naive_tiles(new)) - set(naive_tiles(old)))
        assert tiles_between(old, new) == expected, (old, new)


def test_tiles_between_rejects_shrinking():
    with pytest.raises(FormatError) as exc:
        tiles_between(10, 9)
    assert exc.value.field == "old_size"
    with pytest.raises(FormatError) as exc:
        tiles_for_size(-1)
    assert exc.value.field == "size"


def test_tile_width():
    assert tile_width(0, 0, 70000) == 256
    assert tile_width(0, 273, 70000) == 112
    assert tile_width(1, 0, 70000) == 256
    assert tile_width(1, 1, 70000) == 17
    assert tile_width(2, 0, 70000) == 1
    assert tile_width(0, 0, 1) == 1
    assert tile_at(0, 273, 70000) == Tile(0, 273, 112)
    for level, index, size in [(0, 274, 70000), (3, 0, 70000), (0, 0, 0), (1, 0, 255), (0, 1, 256)]:
        with pytest.raises(FormatError) as exc:
            tile_width(level, index, size)
        assert exc.value.field == "index"
    for args, field in [((64, 0, 1), "level"), ((0, -1, 1), "index"), ((0, 0, -1), "size")]:
        with pytest.raises(FormatError) as exc:
            tile_width(*args)
        assert exc.value.field == field


def test_tile_width_matches_naive():
    for size in (1, 255, 256, 257, 65537, 70000):
        for tile in naive_tiles(size):
            assert tile_width(tile.level, tile.index, size) == tile.width


def test_partial_tile():
    assert partial_tile(0, 70000) == Tile(0, 273, 112)
    assert partial_tile(1, 70000) == Tile(1, 1, 17)
    assert partial_tile(2, 70000) == Tile(2, 0, 1)
    assert partial_tile(3, 70000) is None
    assert partial_tile(0, 256) is None
    assert partial_tile(1, 256) == Tile(1, 0, 1)
    assert partial_tile(0, 0) is None
    with pytest.raises(FormatError):
        partial_tile(64, 1)


def test_require_tile_in_tree():
    require_tile_in_tree(Tile(0, 273, 112), 70000)
    require_tile_in_tree(Tile(0, 273, 5), 70000)  # published by an older checkpoint
    require_tile_in_tree(Tile(0, 0), 70000)
    require_tile_in_tree(EntryBundle(273, 100), 70000)
    for tile, field in [
        (Tile(0, 273, 113), "width"),
        (Tile(0, 273), "width"),
        (Tile(0, 274, 1), "index"),
        (Tile(3, 0, 1), "index"),
        (EntryBundle(273), "width"),
    ]:
        with pytest.raises(FormatError) as exc:
            require_tile_in_tree(tile, 70000)
        assert exc.value.field == field


def test_entry_bundle_for():
    assert entry_bundle_for(0, 1) == EntryBundle(0, 1)
    assert entry_bundle_for(69999, 70000) == EntryBundle(273, 112)
    assert entry_bundle_for(255, 70000) == EntryBundle(0)
    with pytest.raises(FormatError) as exc:
        entry_bundle_for(70000, 70000)
    assert exc.value.field == "leaf_index"


# --------------------------------------------------------------------------
# Nodes and tiles


@pytest.mark.parametrize(
    "node, location, needed",
    [
        ((0, 0), (0, 0, 0, 0), 1),
        ((0, 5), (0, 0, 5, 0), 6),
        ((0, 256), (0, 1, 0, 0), 1),
        ((3, 40), (0, 1, 64, 3), 72),
        ((7, 1), (0, 0, 128, 7), 256),
        ((8, 0), (1, 0, 0, 0), 1),
        ((9, 3), (1, 0, 6, 1), 8),
        ((15, 1), (1, 0, 128, 7), 256),
        ((15, 2), (1, 1, 0, 7), 128),
        ((16, 2), (2, 0, 2, 0), 3),
        ((62, 0), (7, 0, 0, 6), 64),
    ],
)
def test_tile_for_node(node, location, needed):
    loc = tile_for_node(*node)
    assert loc == NodeLocation(*location)
    assert loc.width_needed == needed


def test_tile_for_node_rejects():
    for node in [(-1, 0), (63, 0), (0, -1), (0, MAX_INT64), (1, 1 << 62)]:
        with pytest.raises(FormatError) as exc:
            tile_for_node(*node)
        assert exc.value.field == "node"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 255, 256, 257, 300, 511, 512, 513, 600])
def test_node_hash_from_tile_every_node(size):
    tree = NaiveTree(size, seed=size)
    data = {t: tree.tile_data(t) for t in tiles_for_size(size)}
    for level, index in tree.all_nodes():
        expected = naive_mth(tree.leaves[index << level : (index + 1) << level])
        loc = tile_for_node(level, index)
        tile = tile_at(loc.tile_level, loc.tile_index, size)
        assert loc.width_needed <= tile.width
        assert node_hash_from_tile(data[tile], tile, level, index) == expected, (level, index)


def test_node_hash_from_tile_root_of_full_tile_and_narrow_tile():
    tree = NaiveTree(600, seed=3)
    full = Tile(0, 1)
    assert node_hash_from_tile(tree.tile_data(full), full, 8, 1) == tree.node(8, 1)
    # A narrower (older) partial tile still yields the nodes it covers.
    narrow = Tile(0, 2, 40)
    assert node_hash_from_tile(tree.tile_data(narrow), narrow, 5, 16) == tree.node(5, 16)
    assert node_hash_from_tile(tree.tile_data(narrow), narrow, 0, 551) == tree.node(0, 551)


def test_node_hash_from_tile_rejects():
    tree = NaiveTree(600, seed=4)
    tile = Tile(0, 2, 88)
    data = tree.tile_data(tile)
    for level, index in [(0, 0), (0, 600), (3, 75), (8, 2), (9, 0), (3, 63)]:
        with pytest.raises(FormatError) as exc:
            node_hash_from_tile(data, tile, level, index)
        assert exc.value.field == "node", (level, index)
    for bad in (data[:-1], data + b"\x00", b""):
        with pytest.raises(FormatError) as exc:
            node_hash_from_tile(bad, tile, 0, 512)
        assert exc.value.field == "tile"
    level1 = Tile(1, 0, 2)
    with pytest.raises(FormatError) as exc:
        node_hash_from_tile(tree.tile_data(level1), level1, 7, 0)
    assert exc.value.field == "node"


def _check_plan(tree: NaiveTree, addresses) -> list[Tile]:
    tiles = tiles_for_nodes(addresses, tree.size)
    assert set(tiles) <= own_tiles(addresses, tree.size)
    assert tiles == sorted(set(tiles))
    for tile in tiles:
        assert tile.width == tile_width(tile.level, tile.index, tree.size)
    data = {t: tree.tile_data(t) for t in tiles}
    addresses = list(addresses)
    got = node_hashes_from_tiles(data, addresses)
    assert got == [tree.node(level, index) for level, index in addresses]
    return tiles


@pytest.mark.parametrize("size", [1, 255, 256, 257, 512, 600])
def test_tiles_for_nodes_each_node_alone(size):
    tree = NaiveTree(size, seed=size + 1)
    for node in tree.all_nodes():
        loc = tile_for_node(*node)
        assert _check_plan(tree, [node]) == [tile_at(loc.tile_level, loc.tile_index, size)]


def test_tiles_for_nodes_random_sets():
    rng = random.Random(5)
    for size in (300, 513, 600, 1100):
        tree = NaiveTree(size, seed=size)
        nodes = tree.all_nodes()
        for _ in range(60):
            _check_plan(tree, rng.sample(nodes, rng.randrange(1, 12)))


def test_tiles_for_nodes_reuses_lower_tiles():
    tree = NaiveTree(600, seed=6)
    # (8, 0) is the root of full tile 0/0, already needed for leaf 5.
    assert _check_plan(tree, [(0, 5), (8, 0)]) == [Tile(0, 0)]
    # (9, 0) folds the roots of tiles 0/0 and 0/1.
    assert _check_plan(tree, [(0, 5), (0, 300), (9, 0)]) == [Tile(0, 0), Tile(0, 1)]
    # Without the leaves, the node's own level-1 tile is cheaper.
    assert _check_plan(tree, [(9, 0), (8, 1)]) == [Tile(1, 0, 2)]
    assert tiles_for_nodes([], 600) == []


def test_tiles_for_nodes_rejects():
    for addresses, size in [([(0, 600)], 600), ([(9, 1)], 600), ([(1, 0)], 1), ([(0, 0)], 0)]:
        with pytest.raises(FormatError) as exc:
            tiles_for_nodes(addresses, size)
        assert exc.value.field == "addresses"
    with pytest.raises(FormatError) as exc:
        tiles_for_nodes([[0, 0]], 5)
    assert exc.value.field == "addresses"


def test_node_hashes_from_tiles_missing_and_bad_data():
    tree = NaiveTree(600, seed=7)
    tiles = {Tile(0, 0): tree.tile_data(Tile(0, 0))}
    with pytest.raises(FormatError) as exc:
        node_hashes_from_tiles(tiles, [(0, 256)])
    assert exc.value.field == "tiles"
    with pytest.raises(FormatError) as exc:
        node_hashes_from_tiles(tiles, [(9, 0)])
    assert exc.value.field == "tiles"
    with pytest.raises(FormatError) as exc:
        node_hashes_from_tiles({Tile(0, 0): b"\x00" * 31}, [(0, 0)])
    assert exc.value.field == "tile"
    # A narrower copy of a tile does not shadow a wider one.
    both = {Tile(0, 2, 88): tree.tile_data(Tile(0, 2, 88)), Tile(0, 2, 3): tree.tile_data(Tile(0, 2, 3))}
    assert node_hashes_from_tiles(both, [(0, 599)]) == [tree.node(0, 599)]


# --------------------------------------------------------------------------
# Proof tiles


@pytest.fixture
def proof_module(monkeypatch):
    """The real tlog_client.proof if importable, else a stand-in built on the
    naive RFC 9162 addresses (so this module's tests do not depend on it)."""
    try:
        from tlog_client import proof

        proof.inclusion_nodes, proof.consistency_nodes  # noqa: B018
        return proof
    except (ImportError, AttributeError):
        fake = types.ModuleType("tlog_client.proof")
        fake.inclusion_nodes = lambda i, n: types.SimpleNamespace(
            addresses=naive_inclusion_addresses(i, n)
        )
        fake.consistency_nodes = lambda m, n: types.SimpleNamespace(
            addresses=naive_consistency_addresses(m, n)
        )
        monkeypatch.setitem(sys.modules, "tlog_client.proof", fake)
        return fake


def test_naive_proof_addresses_are_rfc9162_lengths():
    # Sanity of the oracle: RFC 9162 proof lengths for small trees.
    assert naive_inclusion_ranges(0, 0, 1) == []
    assert naive_inclusion_ranges(2, 0, 7) == [(3, 4), (0, 2), (4, 7)]
    assert naive_consistency_ranges(3, 0, 7, True) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert naive_consistency_ranges(4, 0, 7, True) == [(4, 7)]
    assert perfect_nodes(4, 7) == [(1, 2), (0, 6)]


def test_tiles_for_inclusion(proof_module):
    rng = random.Random(8)
    cases = [(0, 1), (5, 600), (599, 600), (255, 256), (256, 257), (5, 70000), (69999, 70000)]
    cases += [(rng.randrange(n), n) for n in (rng.randrange(1, 100000) for _ in range(60))]
    for index, size in cases:
        expected = tiles_for_nodes(naive_inclusion_addresses(index, size), size)
        assert tiles_for_inclusion(index, size) == expected, (index, size)


def test_tiles_for_consistency(proof_module):
    rng = random.Random(9)
    cases = [(1, 1), (1, 600), (256, 257), (300, 600), (65536, 70000), (600, 600)]
    cases += [tuple(sorted((rng.randrange(1, 100000), rng.randrange(1, 100000)))) for _ in range(60)]
    for size1, size2 in cases:
        expected = tiles_for_nodes(naive_consistency_addresses(size1, size2), size2)
        assert tiles_for_consistency(size1, size2) == expected, (size1, size2)


def test_proof_tiles_yield_proof_hashes(proof_module):
    tree = NaiveTree(600, seed=10)
    for index in (0, 5, 255, 256, 511, 512, 599):
        tiles = tiles_for_inclusion(index, 600)
        data = {t: tree.tile_data(t) for t in tiles}
        addresses = naive_inclusion_addresses(index, 600)
        assert node_hashes_from_tiles(data, addresses) == [tree.node(*a) for a in addresses]


# --------------------------------------------------------------------------
# Tile data and entry bundles


def test_split_and_encode_tile():
    hashes = [bytes([i]) * 32 for i in range(5)]
    data = encode_tile(hashes)
    assert split_tile(data, 5) == hashes
    assert split_tile(bytearray(data), 5) == hashes
    for bad, width in [(data[:-1], 5), (data + b"\x00", 5), (data, 4), (data, 6), (b"", 1)]:
        with pytest.raises(FormatError) as exc:
            split_tile(bad, width)
        assert exc.value.field == "tile"
    for width in (0, 257):
        with pytest.raises(FormatError) as exc:
            split_tile(b"", width)
        assert exc.value.field == "width"
    with pytest.raises(FormatError):
        split_tile("00" * 32, 1)
    for bad in ([], [b"\x00" * 31], [b"\x00" * 32] * 257, ["a" * 32]):
        with pytest.raises(FormatError) as exc:
            encode_tile(bad)
        assert exc.value.field == "hashes"


@pytest.mark.parametrize(
    "entries",
    [
        [b""],
        [b"a"],
        [b"hello", b"", b"world"],
        [b"\x00" * 65535],
        [bytes([i]) * i for i in range(256)],
    ],
)
def test_entry_bundle_round_trip(entries):
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, len(entries)) == entries


def test_entry_bundle_wire_format():
    assert encode_entry_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    assert encode_entry_bundle([b"x" * 258]) == b"\x01\x02" + b"x" * 258


def test_encode_entry_bundle_rejects():
    for entries in ([], [b""] * 257, [b"\x00" * 65536], ["text"], [b"ok", bytearray(b"no")]):
        with pytest.raises(FormatError) as exc:
            encode_entry_bundle(entries)
        assert exc.value.field == "entries"


@pytest.mark.parametrize(
    "data, expected_count",
    [
        (b"", None),  # empty bundle
        (b"\x00", None),  # truncated length
        (b"\x00\x05abc", None),  # truncated entry
        (b"\x00\x01a\x00", None),  # trailing byte
        (b"\x00\x01a\x00\x02b", None),  # truncated second entry
        (b"\x00\x01a", 2),  # too few
        (b"\x00\x01a\x00\x00", 1),  # too many
        (b"\x00\x00" * 257, None),  # more than 256 entries
        (b"\xff\xff" + b"\x00" * 65534, None),
    ],
)
def test_decode_entry_bundle_rejects(data, expected_count):
    with pytest.raises(FormatError) as exc:
        decode_entry_bundle(data, expected_count)
    assert exc.value.field == "bundle"


def test_decode_entry_bundle_bad_arguments():
    for count in (0, 257, True):
        with pytest.raises(FormatError) as exc:
            decode_entry_bundle(b"\x00\x00", count)
        assert exc.value.field == "expected_count"
    with pytest.raises(FormatError) as exc:
        decode_entry_bundle("\x00\x00")
    assert exc.value.field == "bundle"


def test_entry_bundle_matches_level0_tile():
    rng = random.Random(11)
    entries = [rng.randbytes(rng.randrange(0, 100)) for _ in range(77)]
    bundle = decode_entry_bundle(encode_entry_bundle(entries), 77)
    tile = encode_tile([_leaf(e) for e in bundle])
    assert split_tile(tile, 77) == [_leaf(e) for e in entries]


# --------------------------------------------------------------------------
# Cross-check against Go's golang.org/x/mod/sumdb/tlog (SPEC §3)

GO_PROGRAM = r"""
package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

type input struct {
	Sizes [][2]int64 `json:"pairs"`
	Tiles [][3]int64 `json:"tiles"`
	Paths []string   `json:"paths"`
	Tree  int64      `json:"tree"`
}

type store map[int64]tlog.Hash

func (s store) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s[x]
	}
	return out, nil
}

func c2sp(p string) string {
	p = strings.Replace(p, "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

func gopath(p string) string {
	p = strings.Replace(p, "tile/entries/", "tile/data/", 1)
	return strings.Replace(p, "tile/", "tile/8/", 1)
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	out := map[string]interface{}{}
	var between [][]string
	for _, p := range in.Sizes {
		var ps []string
		for _, t := range tlog.NewTiles(8, p[0], p[1]) {
			ps = append(ps, c2sp(t.Path()))
		}
		between = append(between, ps)
	}
	out["between"] = between
	var paths []string
	for _, t := range in.Tiles {
		paths = append(paths, c2sp(tlog.Tile{H: 8, L: int(t[0]), N: t[1], W: int(t[2])}.Path()))
	}
	out["paths"] = paths
	var parsed []string
	for _, p := range in.Paths {
		t, err := tlog.ParseTilePath(gopath(p))
		if err != nil {
			parsed = append(parsed, "")
		} else {
			parsed = append(parsed, c2sp(t.Path()))
		}
	}
	out["parsed"] = parsed
	s := store{}
	for i := int64(0); i < in.Tree; i++ {
		hs, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("leaf %d", i)), s)
		if err != nil {
			panic(err)
		}
		base := tlog.StoredHashIndex(0, i)
		for j, h := range hs {
			s[base+int64(j)] = h
		}
	}
	th, err := tlog.TreeHash(in.Tree, s)
	if err != nil {
		panic(err)
	}
	out["tree_hash"] = hex.EncodeToString(th[:])
	data := map[string]string{}
	for _, t := range tlog.NewTiles(8, 0, in.Tree) {
		if t.W == 256 || int64(t.W) == (in.Tree>>(8*t.L))%256 {
			d, err := tlog.ReadTileData(t, s)
			if err != nil {
				panic(err)
			}
			data[c2sp(t.Path())] = hex.EncodeToString(d)
		}
	}
	out["tile_data"] = data
	json.NewEncoder(os.Stdout).Encode(out)
}
"""

GO_PAIRS = [(0, s) for s in (1, 255, 256, 257, 65536, 65537, 70000)] + [
    (1, 2), (255, 256), (256, 257), (300, 70000), (65536, 65537), (70000, 70000)
]
GO_TILES = [(t.level, t.index, t.width) for t, _ in PATH_VECTORS if isinstance(t, Tile)]
GO_TREE = 70000


@pytest.fixture(scope="module")
def go_results(tmp_path_factory):
    gopath = "/usr/share/gocode"
    if shutil.which("go") is None or not os.path.isdir(f"{gopath}/src/golang.org/x/mod/sumdb/tlog"):
        pytest.skip("Go or golang.org/x/mod/sumdb/tlog not installed")
    work = tmp_path_factory.mktemp("gotiles")
    (work / "main.go").write_text(GO_PROGRAM)
    env = dict(os.environ, GOPATH=gopath, GO111MODULE="off", GOFLAGS="")
    env.setdefault("GOCACHE", str(work / "cache"))
    request = {
        "pairs": GO_PAIRS,
        "tiles": GO_TILES,
        "paths": [p for _, p in PATH_VECTORS] + MALFORMED_PATHS,
        "tree": GO_TREE,
    }
    proc = subprocess.run(
        ["go", "run", str(work / "main.go")],
        input=json.dumps(request), capture_output=True, text=True, env=env, cwd=work, timeout=300,
    )
    if proc.returncode != 0:
        pytest.skip(f"go run failed: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def test_go_paths(go_results):
    assert go_results["paths"] == [tile_path(Tile(*t)) for t in GO_TILES]
    paths = [p for _, p in PATH_VECTORS]
    assert go_results["parsed"][: len(paths)] == paths


def test_go_rejects_what_we_reject(go_results):
    # Go's parser has no level bound; "data" is Go's name for "entries".
    stricter = {"tile/64/000", "tile/100/000", "tile/data/000"}
    accepted = go_results["parsed"][len(PATH_VECTORS) :]
    for path, go_parsed in zip(MALFORMED_PATHS, accepted):
        assert go_parsed == "" or path in stricter, path


def test_go_new_tiles(go_results):
    for (old, new), go_paths in zip(GO_PAIRS, go_results["between"]):
        go_tiles = [parse_tile_path(p) for p in go_paths or []]
        # Go lists every intermediate partial width, including the old one;
        # keep the widest per tile, minus what the old tree already had.
        widest = {}
        for t in set(go_tiles) - set(naive_tiles(old)):
            key = (t.level, t.index)
            widest[key] = max(widest.get(key, t), t, key=lambda x: x.width)
        assert sorted(widest.values()) == tiles_between(old, new), (old, new)


def test_go_tile_data(go_results):
    tiles = {parse_tile_path(p): bytes.fromhex(d) for p, d in go_results["tile_data"].items()}
    assert sorted(tiles) == tiles_for_size(GO_TREE)
    level0 = b"".join(tiles[t] for t in sorted(tiles) if t.level == 0)
    assert level0 == b"".join(_leaf(b"leaf %d" % i) for i in range(GO_TREE))
    # The root from the tiles: fold the perfect subtrees of [0, size).
    edge = perfect_nodes(0, GO_TREE)
    needed = tiles_for_nodes(edge, GO_TREE)
    hashes = node_hashes_from_tiles({t: tiles[t] for t in needed}, edge)
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = _node(h, root)
    assert root.hex() == go_results["tree_hash"]
    # Every level-8 and level-16 node from the tiles equals the naive MTH.
    leaves = [_leaf(b"leaf %d" % i) for i in range(GO_TREE)]
    for level in (8, 11, 16):
        nodes = [(level, i) for i in range(GO_TREE >> level)]
        got = node_hashes_from_tiles(tiles, nodes)
        assert got == [naive_mth(leaves[i << level : (i + 1) << level]) for _, i in nodes]
