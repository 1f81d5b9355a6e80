"""The node cache (tlog.hashcache) and the storage reads through it: proofs
are the reference's whatever the cache holds, damaged storage is named,
never papered over, and memory stays bounded."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tlog_client.hashing import leaf_hash
from tlog_client.proof import consistency_nodes, inclusion_nodes

from tlog.hashcache import NodeCache
from tlog.integrate import integrate, sign_initial
from tlog.storage import NewEntry, ReadTxn, Storage, StorageError

from ..client.rfc6962_reference import ReferenceTree

H = [bytes([i]) * 32 for i in range(256)]


# -- the cache alone ---------------------------------------------------------------

@pytest.mark.parametrize("put, address, want", [
    ([(2, 0, H[0] + H[1])], (2, 0), H[0]),
    ([(2, 0, H[0] + H[1])], (2, 1), H[1]),
    ([(2, 0, H[0] + H[1])], (2, 2), None),              # past a short chunk
    ([(2, 0, H[0] + H[1])], (3, 0), None),              # another level
    ([(2, 1, H[5])], (2, 256), H[5]),                   # chunk 1 starts at 256
    ([(2, 1, H[5])], (2, 0), None),
    ([(0, 0, H[0])], (0, 0), None),                     # below the floor: ignored
    ([(2, 0, H[0]), (2, 0, H[7] + H[8])], (2, 1), H[8]),  # a longer chunk replaces
    ([(2, 0, H[7] + H[8]), (2, 0, H[0])], (2, 0), H[7]),  # a shorter one does not
])
def test_lookup(put, address, want):
    cache = NodeCache(1 << 20)
    for level, chunk, data in put:
        cache.put(level, chunk, data)
    assert cache.lookup([address]) == [want]


def test_over_budget_drops_the_lowest_level_and_raises_the_floor():
    cache = NodeCache(max_bytes=3 * 32 * 256)
    for level in (5, 3, 4):
        cache.put(level, 0, b"".join(H))
    assert cache.floor == 1 and cache.size_bytes == 3 * 32 * 256
    cache.put(6, 0, H[1])
    assert cache.floor == 4 and cache.size_bytes == 2 * 32 * 256 + 32
    assert cache.lookup([(3, 0), (4, 0), (6, 0)]) == [None, H[0], H[1]]
    cache.put(3, 0, H[2])  # below the new floor: ignored
    assert cache.lookup([(3, 0)]) == [None]


def test_whole_levels_are_served_and_dropped_like_chunks():
    w = [i.to_bytes(32, "big") for i in range(400)]
    cache = NodeCache(max_bytes=32 * 600)
    cache.put_level(3, b"".join(w[:300]))
    cache.put(3, 1, b"".join(w[256:306]))  # nodes completed after it was read
    cache.put_level(5, b"".join(w[:100]))
    assert cache.lookup([(3, 0), (3, 299), (3, 302), (3, 306), (5, 99), (5, 100)]) \
        == [w[0], w[299], w[302], None, w[99], None]
    cache.put(4, 0, b"".join(w[:250]))    # over budget: level 3 (whole and chunk) goes
    assert cache.floor == 4 and cache.size_bytes == 32 * 350
    assert cache.lookup([(3, 0), (4, 7), (5, 7)]) == [None, w[7], w[7]]
    cache.put_level(5, b"".join(w[:50]))  # shorter than what is cached: ignored
    assert cache.lookup([(5, 99)]) == [w[99]]


@pytest.mark.parametrize("size, budget, levels", [
    (0, 1 << 20, []),
    (1, 1 << 20, []),                      # level 0 is never cached (floor 1)
    (2, 1 << 20, [1]),
    (1000, 1 << 20, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
    (1000, 32 * 600, [9, 8, 7, 6, 5, 4, 3, 2]),   # 494 hashes fit, 500 more do not
    (10_000_000, 40 << 20, list(range(23, 3, -1))),  # the 10^7 benchmark log
])
def test_levels_to_fill(size, budget, levels):
    cache = NodeCache(budget)
    assert cache.levels_to_fill(size) == levels
    assert sum((size >> lv) * 32 for lv in levels) <= budget
    assert cache.floor == (levels[-1] if levels else 1)


# -- storage reads through it ----------------------------------------------------------

LEAVES = [b"entry %d" % i for i in range(1300)]
REF = ReferenceTree(LEAVES)
BATCHES = [1, 1, 5, 250, 7, 300, 512, 100, 124]  # 1300 leaves in all, odd boundaries


def _note(size: int, root: bytes, timestamp: int) -> bytes:
    return b"note %d" % size


def _append(storage: Storage, head, edge, leaves):
    entries = [NewEntry(leaf_hash(d), d, "hashedrekord") for d in leaves]
    with storage.write(head) as txn:
        batch = integrate(txn, head, edge, entries, 1000, _note)
    return batch.head, batch.edge


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("nodecache") / "tlog.db"
    storage = Storage.open(path)
    head, edge, done = sign_initial(storage, _note, 1000), [], 0
    for n in BATCHES:
        head, edge = _append(storage, head, edge, LEAVES[done:done + n])
        done += n
    storage.close()
    return path


def _sizes():
    out, total = [], 0
    for n in BATCHES:
        total += n
        out.append(total)
    return out


def _check_every_proof(storage: Storage, sizes) -> None:
    with storage.snapshot() as snap:
        for size in sizes:
            for index in range(0, size, 7):
                assert snap.proof(inclusion_nodes(index, size)) == REF.inclusion(index, size)
            for old in range(1, size, 11):
                assert snap.proof(consistency_nodes(old, size)) == REF.consistency(old, size)


@pytest.mark.parametrize("budget", [40 << 20, 32 * 300, 32 * 40])
def test_proofs_through_the_cache_are_the_references(log_path, budget):
    """With room for every level, and with so little that levels are
    dropped while proofs are read: the same, correct proofs."""
    storage = Storage.open(log_path)
    storage._node_cache = NodeCache(budget)
    _check_every_proof(storage, _sizes())
    _check_every_proof(storage, _sizes())  # now from the cache
    assert storage._node_cache.size_bytes <= budget
    storage.close()


def test_warmed_cache_serves_the_same_proofs(log_path):
    storage = Storage.open(log_path)
    assert storage.warm_node_cache() == sum(1300 >> lv for lv in range(1, 11))
    assert storage._node_cache.floor == 1
    _check_every_proof(storage, [1300])
    storage.close()


def test_short_chunk_at_the_right_edge_is_read_again(tmp_path):
    """A chunk cached while the tree was small is read again for the nodes
    completed since."""
    storage = Storage.open(tmp_path / "tlog.db")
    head = sign_initial(storage, _note, 1000)
    head, edge = _append(storage, head, [], LEAVES[:10])
    with storage.snapshot() as snap:
        assert snap.read_hashes([(1, 4)]) == [REF.read_hashes([(1, 4)])[0]]
    head, edge = _append(storage, head, edge, LEAVES[10:40])
    with storage.snapshot() as snap:
        assert snap.read_hashes([(1, 4), (1, 19), (3, 4)]) == \
            REF.read_hashes([(1, 4), (1, 19), (3, 4)])
    storage.close()


@pytest.mark.parametrize("deleted, asked, message", [
    ((2, 3), (2, 3), "node (2, 3) is missing"),         # a cached level
    ((2, 3), (2, 7), "node (2, 7) is missing"),         # after a gap in its chunk
    ((0, 9), (0, 9), "node (0, 9) is missing"),         # below the floor
])
def test_damaged_storage_is_named(log_path, tmp_path, deleted, asked, message):
    path = tmp_path / "tlog.db"
    path.write_bytes(log_path.read_bytes())
    storage = Storage.open(path)
    storage._writer.execute("DELETE FROM nodes WHERE id = ?", (deleted[0] << 48 | deleted[1],))
    with storage.snapshot() as snap:
        assert snap.read_hashes([(2, 2)]) == REF.read_hashes([(2, 2)])  # before the gap
        with pytest.raises(StorageError, match=re.escape(message)):
            snap.read_hashes([(5, 1), asked])
    storage.close()


def test_reads_without_a_cache(log_path):
    storage = Storage.open(log_path)
    conn = storage._reader()
    conn.execute("BEGIN")
    try:
        snap = ReadTxn(conn)
        addresses = list(inclusion_nodes(3, 1300).addresses) * 2  # repeats too
        assert snap.read_hashes(addresses) == REF.read_hashes(addresses)
    finally:
        conn.execute("COMMIT")
    storage.close()


@pytest.mark.parametrize("workers", [(), ("--workers", "2")])
def test_a_real_server_warms_its_cache_and_serves_verified_proofs(make_server, workers):
    """A restarted server (and each of its HTTP workers) fills its node cache
    from the stored tree in the background; every proof it serves, before,
    during and after, verifies against the pinned key."""
    from .helpers import PinnedLog, ecdsa_signer, post_many

    server = make_server(*workers)
    signer = ecdsa_signer()
    asyncio.run(post_many(server.url, "/api/v1/log/entries",
                          [signer.entry() for _ in range(600)], 32))
    server.stop()
    server = make_server(*workers, data_dir=server.data_dir, env={"TLOG_LOG_LEVEL": "INFO"})
    pinned = PinnedLog.of(server)
    for index in range(0, 600, 13):
        pinned.get_entry(index)
    deadline = time.monotonic() + 20
    while server.output().count("node cache: 596 upper-level hashes") < max(1, len(workers)):
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    for index in range(0, 600, 7):
        pinned.get_entry(index)
