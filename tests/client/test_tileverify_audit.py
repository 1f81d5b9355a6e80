"""Tiles verified against a checkpoint, and the audit's tree rebuild (pure
parts of client/tileverify.py and client/audit.py), on in-memory trees."""

from __future__ import annotations

import pytest

from tlog_client.audit import AuditError, Progress, TreeRebuilder
from tlog_client.proof import consistency_nodes, inclusion_nodes
from tlog_client.tiles import EntryBundle, Tile, encode_entry_bundle, tile_at, tiles_for_size
from tlog_client.tileverify import (
    TileVerificationError,
    tiles_to_fetch,
    verify_entry_bundle,
    verify_tiles,
)
from tlog_client.trust import PinnedLog

from .fakelog import FakeLog, Levels

SIZES = [1, 2, 255, 256, 257, 513, 65536, 65536 + 256 * 3 + 7]


def make(size: int):
    log = FakeLog()
    log.bodies = [b"e%d" % i for i in range(size)]
    log.times = [0] * size
    levels = Levels(log.bodies)
    cp = PinnedLog(log.public_pem).open_checkpoint(log.checkpoint(size, root=levels.root(size)))
    return log, levels, cp


def tile_data(levels: Levels, tile: Tile) -> bytes:
    level = levels.levels[8 * tile.level]
    return level[32 * 256 * tile.index:32 * (256 * tile.index + tile.width)]


def bundle_data(log: FakeLog, n: int, width: int) -> bytes:
    return encode_entry_bundle(log.bodies[256 * n:256 * n + width])


@pytest.fixture(scope="module", params=SIZES)
def tree(request):
    return make(request.param)


def test_proofs_from_verified_tiles(tree):
    log, levels, cp = tree
    size = cp.size
    for index in {0, size // 2, size - 1}:
        nodes = inclusion_nodes(index, size)
        wanted = tiles_to_fetch(size, nodes.addresses, [Tile(0, index // 256)])
        verified = verify_tiles(cp, {t: tile_data(levels, t) for t in wanted})
        assert nodes.read(verified) == nodes.read(levels)
        leaf = levels.levels[0][32 * index:32 * index + 32]
        assert verified.leaf_hashes(index, index + 1) == leaf
    if size > 1:
        nodes = consistency_nodes(1, size)
        wanted = tiles_to_fetch(size, nodes.addresses)
        assert nodes.read(verify_tiles(cp, {t: tile_data(levels, t) for t in wanted})) == \
            nodes.read(levels)


def test_every_tampered_tile_is_caught(tree):
    log, levels, cp = tree
    wanted = tiles_to_fetch(cp.size, tiles=[Tile(0, 0)])
    good = {t: tile_data(levels, t) for t in wanted}
    verify_tiles(cp, good)
    for tile in wanted:
        for pos in {0, tile.width - 1}:
            bad = dict(good)
            data = bytearray(good[tile])
            data[32 * pos] ^= 1
            bad[tile] = bytes(data)
            with pytest.raises(TileVerificationError):
                verify_tiles(cp, bad)


def test_missing_or_resized_tiles_are_refused():
    log, levels, cp = make(600)
    wanted = tiles_to_fetch(600, tiles=[Tile(0, 0)])
    good = {t: tile_data(levels, t) for t in wanted}
    parent = tile_at(1, 0, 600)
    with pytest.raises(TileVerificationError, match="missing"):
        verify_tiles(cp, {t: d for t, d in good.items() if t != parent})
    narrow = Tile(0, 2, 50)  # the partial tile at an older size
    with pytest.raises(TileVerificationError):
        verify_tiles(cp, {**good, narrow: tile_data(levels, narrow)})


def test_entry_bundles_against_verified_tiles():
    log, levels, cp = make(600)
    verified = verify_tiles(cp, {t: tile_data(levels, t) for t in
                                 tiles_to_fetch(600, tiles=[Tile(0, 1), Tile(0, 2)])})
    assert verify_entry_bundle(verified, EntryBundle(2, 88), bundle_data(log, 2, 88)) == \
        log.bodies[512:600]
    data = bytearray(bundle_data(log, 1, 256))
    data[-1] ^= 1
    with pytest.raises(TileVerificationError):
        verify_entry_bundle(verified, EntryBundle(1), bytes(data))


def _rebuild(log, levels, cp, tamper=None):
    upper = {t: tile_data(levels, t) for t in tiles_for_size(cp.size) if t.level >= 1}
    level0 = [t for t in tiles_for_size(cp.size) if t.level == 0]
    items = [(bundle_data(log, t.index, t.width), tile_data(levels, t)) for t in level0]
    if tamper:
        tamper(upper, items)
    rebuilder = TreeRebuilder(cp, upper)
    for i in range(0, len(items), 7):
        rebuilder.add(items[i:i + 7])
    return rebuilder.finish()


def test_audit_rebuild_agrees(tree):
    log, levels, cp = tree
    assert _rebuild(log, levels, cp) == cp.root_hash


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


def test_audit_catches_lies():
    log, levels, cp = make(65536 + 256 * 3 + 7)

    def entry(upper, items):
        b, t = items[100]
        items[100] = (_flip(b, 5), t)

    def level0(upper, items):
        b, t = items[3]
        items[3] = (b, _flip(t, 64))

    def level1(upper, items):
        tile = Tile(1, 0)
        upper[tile] = _flip(upper[tile], 32 * 200)

    def partial(upper, items):
        tile = tile_at(1, 1, cp.size)
        upper[tile] = _flip(upper[tile], 0)

    for tamper in (entry, level0, level1, partial):
        with pytest.raises(AuditError):
            _rebuild(log, levels, cp, tamper)
    wrong = PinnedLog(log.public_pem).open_checkpoint(log.checkpoint(cp.size, root=bytes(32)))
    with pytest.raises(AuditError, match="root"):
        _rebuild(log, levels, wrong)


def test_progress_rate_and_eta():
    p = Progress(250, 1000, 2.0)
    assert p.rate == 125 and p.eta == 6.0 and p.fraction == 0.25
    assert Progress(0, 10, 0.0).eta is None
