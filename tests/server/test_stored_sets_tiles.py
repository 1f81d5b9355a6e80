"""SETs signed at integration and full tiles stored whole (schema 2): reads
serve exactly what was signed and what the nodes say; a log without them
(older entries) is served the same by signing and range-reading; fsck
catches a damaged stored SET or tile."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from tlog_client.rekor import parse_log_entry
from tlog_client.tiles import Tile, tile_path

from ..serverproc import ServerProcess
from .helpers import PinnedLog, ecdsa_signer, get, post_many

ENTRIES = "/api/v1/log/entries"
SIZE = 300  # one full level-0 tile and a partial one


def _db(data_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(Path(data_dir) / "tlog.db", timeout=20)


def _fsck(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir",
                           str(data_dir)], capture_output=True, text=True, timeout=120)


def _tile(server, level: int, index: int, width: int = 256) -> bytes:
    r = get(server.url, "/" + tile_path(Tile(level, index, width)))
    assert r.status == 200, r.status
    return r.body


def _node_level(data_dir: Path, start: int, count: int) -> bytes:
    db = _db(data_dir)
    try:
        rows = db.execute("SELECT hash FROM nodes WHERE id >= ? AND id < ? ORDER BY id",
                          (start, start + count)).fetchall()
    finally:
        db.close()
    return b"".join(r[0] for r in rows)


def test_stored_sets_and_tiles_are_served_and_checked(make_server, tmp_path):
    server = make_server()
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    rs = asyncio.run(post_many(server.url, ENTRIES, [signer.entry() for _ in range(SIZE)], 32))
    created = {e.log_index: e for e in (pinned.verify_created(r) for r in rs)}
    assert len(created) == SIZE
    # A read serves the SET the 201 carried (signed once, at integration).
    for index in (0, 255, 256, SIZE - 1):
        read = pinned.get_entry(index)
        assert read.set_signature == created[index].set_signature
    full, partial = _tile(server, 0, 0), _tile(server, 0, 1, SIZE - 256)
    assert full == _node_level(server.data_dir, 0, 256)
    assert partial == _node_level(server.data_dir, 256, SIZE - 256)
    db = _db(server.data_dir)
    assert db.execute("SELECT count(*) FROM tiles").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM entries WHERE set_signature IS NULL").fetchone() \
        == (0,)
    db.close()
    server.stop()
    assert _fsck(server.data_dir).returncode == 0

    # Damage a copy's stored SET, another's tile: fsck names each.
    for what, sql in (
            ("stored SET does not verify",
             "UPDATE entries SET set_signature = zeroblob(64) WHERE idx = 7"),
            ("tile (0, 0) differs from the stored nodes",
             "UPDATE tiles SET data = zeroblob(8192)")):
        copy = tmp_path / what.split()[0]
        shutil.copytree(server.data_dir, copy)
        db = _db(copy)
        with db:
            db.execute(sql)
        db.close()
        out = _fsck(copy)
        assert out.returncode == 1 and what in out.stdout, out.stdout


def test_entries_and_tiles_without_stored_copies_are_served_the_same(make_server):
    server = make_server()
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    asyncio.run(post_many(server.url, ENTRIES, [signer.entry() for _ in range(SIZE)], 32))
    before = {i: get(server.url, f"{ENTRIES}?logIndex={i}").json() for i in (3, 200, 299)}
    tile = _tile(server, 0, 0)
    server.stop()
    db = _db(server.data_dir)  # as a log written before schema 2 looks (nor seals, 3)
    with db:
        db.execute("UPDATE entries SET set_signature = NULL, seal = NULL")
        db.execute("DELETE FROM tiles")
    db.close()
    again = ServerProcess(server.data_dir).start()
    try:
        for i, obj in before.items():
            now = get(again.url, f"{ENTRIES}?logIndex={i}").json()
            assert now == obj  # Ed25519 SETs are deterministic: signed again, same bytes
            pinned.verify_entry(now, index=i)
            assert parse_log_entry(now).set_signature
        assert _tile(again, 0, 0) == tile
    finally:
        again.stop()
    assert _fsck(server.data_dir).returncode == 0
