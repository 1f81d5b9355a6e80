"""tlog_client.tileverify.verify_tile_in_tree: the server's proof that a tile
or entry bundle it is about to serve belongs to the verified tree (SPEC §10
U2), against the naive RFC 6962 reference: every tile of every level and
width that exists at a size verifies; one wrong hash in the tile, or one
wrong node among those read around it, does not."""

from __future__ import annotations

import pytest

from tlog_client.bulk import leaf_hashes
from tlog_client.errors import FormatError, VerificationError
from tlog_client.tiles import EntryBundle, Tile
from tlog_client.tileverify import verify_tile_in_tree

from .rfc6962_reference import ReferenceTree

LEAVES = [b"leaf %d" % i for i in range(70_000)]
REF = ReferenceTree(LEAVES)


class Lying:
    """A HashReader over the reference with one node changed."""

    def __init__(self, bad: tuple[int, int] | None = None) -> None:
        self.bad = bad
        self.read: list[tuple[int, int]] = []

    def read_hashes(self, addresses):
        self.read += list(addresses)
        out = []
        for a in addresses:
            h = REF.node(*a)
            if a == self.bad:
                h = bytes(32)
            out.append(h)
        return out


def tile_hashes(level: int, index: int, width: int) -> bytes:
    return b"".join(REF.node(8 * level, index * 256 + k) for k in range(width))


def cases():
    for size in (1, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 70_000):
        for level in (0, 1):
            n = size >> (8 * level)
            for index in sorted({0, (n // 256) - 1, n // 256} - {-1}):
                full = min(256, n - index * 256)
                if full <= 0:
                    continue
                for width in sorted(w for w in {1, 2, full // 2, full - 1, full} if 0 < w <= full):
                    yield size, Tile(level, index, width)


CASES = list(cases())


@pytest.mark.parametrize("size, tile", CASES, ids=[f"{s}-{t.level}/{t.index}.{t.width}"
                                                   for s, t in CASES])
def test_every_tile_of_the_tree_verifies(size, tile):
    reader = Lying()
    verify_tile_in_tree(tile, tile_hashes(tile.level, tile.index, tile.width), size,
                        REF.root(size), reader)
    if not reader.read:
        return
    # Any node read around the tile, if wrong, is caught.
    for bad in set(reader.read):
        with pytest.raises(VerificationError):
            verify_tile_in_tree(tile, tile_hashes(tile.level, tile.index, tile.width), size,
                                REF.root(size), Lying(bad))


@pytest.mark.parametrize("size, tile", CASES[::7])
def test_one_wrong_hash_in_the_tile_is_caught(size, tile):
    data = bytearray(tile_hashes(tile.level, tile.index, tile.width))
    for k in range(tile.width):
        wrong = bytes(data[:k * 32]) + bytes(32) + bytes(data[(k + 1) * 32:])
        with pytest.raises(VerificationError):
            verify_tile_in_tree(tile, wrong, size, REF.root(size), Lying())


@pytest.mark.parametrize("size, index, width", [(300, 0, 256), (300, 1, 44), (300, 1, 3),
                                                (512, 1, 256), (70_000, 273, 112)])
def test_entry_bundles(size, index, width):
    bodies = LEAVES[index * 256:index * 256 + width]
    verify_tile_in_tree(EntryBundle(index, width), leaf_hashes(bodies), size, REF.root(size),
                        Lying())
    swapped = leaf_hashes(bodies[::-1]) if width > 1 else leaf_hashes([b"other"])
    with pytest.raises(VerificationError):
        verify_tile_in_tree(EntryBundle(index, width), swapped, size, REF.root(size), Lying())


def test_a_tile_against_another_root_fails():
    with pytest.raises(VerificationError):
        verify_tile_in_tree(Tile(0, 0, 256), tile_hashes(0, 0, 256), 300, REF.root(299),
                            Lying())


@pytest.mark.parametrize("tile, size", [(Tile(0, 1, 256), 300), (Tile(0, 2, 1), 300),
                                        (Tile(1, 0, 2), 300)])
def test_a_tile_beyond_the_tree_is_refused(tile, size):
    with pytest.raises(FormatError):
        verify_tile_in_tree(tile, bytes(32 * tile.width), size, REF.root(size), Lying())


def test_wrong_length_is_refused():
    with pytest.raises(VerificationError):
        verify_tile_in_tree(Tile(0, 0, 3), bytes(64), 300, REF.root(300), Lying())


# -- VerifiedLevel: the level-8 nodes proved against each new root ----------------------

def _extend(level, size, tree=REF, bad=None):
    first, end, lower = level.needed(size)
    new = bytearray(b"".join(tree.node(8, i) for i in range(first, end)))
    lower_hashes = [tree.node(*a) for a in lower]
    if bad == "new" and new:
        new[0] ^= 1
    if bad == "lower" and lower_hashes:
        lower_hashes[0] = bytes(32)
    level.extend(size, REF.root(size), bytes(new), lower_hashes)


@pytest.mark.parametrize("sizes", [[0, 1, 256, 257, 70_000], [65_536], [511, 512, 513, 69_999],
                                   [300, 300, 301]])
def test_verified_level_follows_the_tree(sizes):
    from tlog_client.tileverify import VerifiedLevel
    level = VerifiedLevel()
    for size in sizes:
        _extend(level, size)
        assert level.count == size >> 8
        assert level.nodes(0, level.count) == b"".join(REF.node(8, i)
                                                       for i in range(level.count))


@pytest.mark.parametrize("bad", ["new", "lower"])
def test_verified_level_refuses_a_wrong_node_and_keeps_nothing(bad):
    from tlog_client.tileverify import VerifiedLevel
    level = VerifiedLevel()
    _extend(level, 1000)
    with pytest.raises(VerificationError):
        _extend(level, 5000, bad=bad)
    assert level.count == 3 and level.size == 1000
    _extend(level, 5000)
    assert level.count == 19


def test_verified_level_never_goes_back():
    from tlog_client.tileverify import VerifiedLevel
    level = VerifiedLevel()
    _extend(level, 1000)
    with pytest.raises(FormatError):
        _extend(level, 999)
