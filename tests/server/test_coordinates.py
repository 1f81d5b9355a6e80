"""SPEC §10 U3: every tile, entry bundle, index and size is checked against
the tree before storage is asked, and no coordinate can name another
coordinate's stored row.

Stored nodes and tiles are keyed ``level << 48 | index``: a level-0 index of
2^48 is, as a number, level 1's index 0. On a log of 65,536 entries (so that
tile 1/000 is full and stored), every out-of-tree coordinate, at every
level, up to 2^63-1, must be 404/400, never another tile's bytes with an
immutable cache header.
"""

from __future__ import annotations

import time

import pytest

from tlog_client.hashing import leaf_hash
from tlog_client.tiles import EntryBundle, Tile, tile_path

from tlog import bulkload
from tlog.config import Config
from tlog.identity import load_or_create
from tlog.published import PublishedRecord
from tlog.storage import NewEntry, Storage, node_id

from ..serverproc import ServerProcess
from .helpers import error_message, get, post_json

SIZE = 65_536 + 300
BIG = [2**48 - 1, 2**48, 2**48 + 1, 2**56, 2**62, 2**63 - 1]


@pytest.fixture(scope="module")
def big_log(tmp_path_factory):
    """A log of SIZE synthetic entries, built with the sequencer's batch
    code (tlog.bulkload), served by a real server."""
    data_dir = tmp_path_factory.mktemp("coords") / "log"
    data_dir.mkdir()
    config = Config(data_dir=data_dir, origin="tlog.test/coordinates")
    storage = Storage.open(config.db_path)
    try:
        identity = load_or_create(config, storage)
        bodies = (b'{"synthetic": %d}' % i for i in range(SIZE))
        bulkload.append(storage, identity,
                        (NewEntry(leaf_hash(b), b, "test") for b in bodies),
                        published=PublishedRecord(data_dir), clock=time.time)
    finally:
        storage.close()
    server = ServerProcess(data_dir, "--origin", "tlog.test/coordinates").start()
    yield server
    server.stop()
    assert "Traceback" not in server.output()


def test_the_full_level_1_tile_is_served(big_log):
    r = get(big_log.url, "/tile/1/000")
    assert r.status == 200 and len(r.body) == 8192
    assert "immutable" in r.header("Cache-Control")


@pytest.mark.parametrize("level", range(0, 8))
@pytest.mark.parametrize("index", BIG)
@pytest.mark.parametrize("width", [256, 1, 255])
def test_tiles_beyond_the_tree_are_404(big_log, level, index, width):
    get(big_log.url, "/tile/1/000")  # cached: the cache must not answer either
    path = "/" + tile_path(Tile(level, index, width))
    r = get(big_log.url, path)
    message = error_message(r, (400, 404))
    assert "beyond" in message or "no such tile" in message, message
    assert "immutable" not in (r.header("Cache-Control") or "")


@pytest.mark.parametrize("index", BIG)
def test_entry_bundles_beyond_the_tree_are_404(big_log, index):
    r = get(big_log.url, "/" + tile_path(EntryBundle(index, 256)))
    error_message(r, (400, 404))


@pytest.mark.parametrize("index", BIG + [SIZE, SIZE + 1])
def test_indexes_beyond_the_tree_are_404(big_log, index):
    r = get(big_log.url, f"/api/v1/log/entries?logIndex={index}")
    error_message(r, 404)
    r = post_json(big_log.url, "/api/v1/log/entries/retrieve", {"logIndexes": [index]})
    assert r.status == 200 and r.json() == []


@pytest.mark.parametrize("first, last", [(1, SIZE + 1), (1, 2**48), (1, 2**63 - 1),
                                         (2**48, 2**63 - 1), (SIZE, SIZE + 1)])
def test_proof_sizes_beyond_the_tree_are_400(big_log, first, last):
    r = get(big_log.url, f"/api/v1/log/proof?firstSize={first}&lastSize={last}")
    error_message(r, 400)


def test_partial_tiles_wider_than_the_tree_are_404(big_log):
    width = SIZE % 256  # the level-0 partial tile at the head
    assert get(big_log.url, "/" + tile_path(Tile(0, SIZE // 256, width))).status == 200
    r = get(big_log.url, "/" + tile_path(Tile(0, SIZE // 256, width + 1)))
    error_message(r, 404)
    r = get(big_log.url, "/" + tile_path(Tile(1, 1, 2)))
    error_message(r, 404)


@pytest.mark.parametrize("level, index", [(0, 2**48), (1, 2**48), (0, 2**63 - 1), (64, 0),
                                          (-1, 0), (0, -1)])
def test_the_storage_key_space_refuses_what_would_collide(level, index):
    with pytest.raises(ValueError):
        node_id(level, index)


def test_every_level_and_index_in_the_key_space_is_distinct():
    ids = {node_id(level, index) for level in range(64)
           for index in (0, 1, 2**47, 2**48 - 1)}
    assert len(ids) == 64 * 4
