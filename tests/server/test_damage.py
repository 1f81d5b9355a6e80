"""SPEC §10 U2 through a real server process: no 200 carries a proof, root,
checkpoint, SET, tile or entry bundle that fails verification, whatever
stored column is damaged.

A log of 300 entries (hashedrekord and dsse, so attestations are stored) is
built once and stopped. Each case copies it, damages one kind of stored
column in the database file (as a bad disk or a careless edit would), starts
``tlog serve`` on the copy and crawls every read route. Each answer must be:

- 200 and true: verified under the pinned key and identical to what the
  log held before the damage (the test computed it with the naive RFC 6962
  reference from the pristine entries), or
- 500 with a message naming the damage (then counted in /metrics);

never a 200 that lies, never another 5xx, never a traceback in the log.
Then ``tlog fsck`` must name the damage. A damaged file that the server
refuses to start on must exit with the documented code (3 damaged) and one
line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tlog_client.tiles import EntryBundle, Tile, encode_entry_bundle, tile_path

from ..client.rfc6962_reference import ReferenceTree
from ..serverproc import ServerProcess, free_port
from .helpers import PinnedLog, ecdsa_signer, get, post_json, post_many
from ..client.attestation_samples import ecdsa_key, slsa_v1_github
from .test_attestations import dsse_proposed, fresh_subject
from .test_invariants import run_serve

ENTRIES = "/api/v1/log/entries"
N_HASHED = 290
N_DSSE = 10


@dataclass
class Pristine:
    data_dir: Path
    origin: str
    bodies: list[bytes]
    attestations: list[bytes | None]
    pinned: PinnedLog
    checkpoint_sizes: list[int]

    @property
    def size(self) -> int:
        return len(self.bodies)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Pristine:
    root = tmp_path_factory.mktemp("damage")
    server = ServerProcess(root / "log", "--origin", "tlog.test/damage").start()
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    resps = asyncio.run(post_many(server.url, ENTRIES,
                                  [signer.entry() for _ in range(N_HASHED)], 16))
    assert all(r.status == 201 for r in resps)
    key = ecdsa_key()
    for _ in range(N_DSSE):
        name, _, digest = fresh_subject()
        r = post_json(server.url, ENTRIES, dsse_proposed([key], slsa_v1_github([(name, digest)])))
        assert r.status == 201, r.body
    server.stop()
    db = sqlite3.connect(root / "log" / "tlog.db")
    rows = db.execute("SELECT body, attestation FROM entries ORDER BY idx").fetchall()
    sizes = [r[0] for r in db.execute("SELECT size FROM checkpoints ORDER BY size")]
    db.close()
    return Pristine(root / "log", "tlog.test/damage", [r[0] for r in rows], [r[1] for r in rows],
                    pinned, sizes)


def _flip(blob: bytes, at: int = 5) -> bytes:
    b = bytearray(blob)
    b[at % len(b)] ^= 0x40
    return bytes(b)


def _node_id(level: int, index: int) -> int:
    return level << 48 | index


# (name, SQL statements or a function of the connection, words fsck must say)
def _swap_sets(db: sqlite3.Connection) -> None:
    a, b = [r[0] for r in db.execute(
        "SELECT set_signature FROM entries WHERE idx IN (7, 8) ORDER BY idx")]
    db.execute("UPDATE entries SET set_signature = ? WHERE idx = 7", (b,))
    db.execute("UPDATE entries SET set_signature = ? WHERE idx = 8", (a,))


def _flip_column(table: str, column: str, where: str):
    def damage(db: sqlite3.Connection) -> None:
        (value,) = db.execute(f"SELECT {column} FROM {table} WHERE {where}").fetchone()
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (_flip(value),))
    return damage


def _unsealed(damage):
    def both(db: sqlite3.Connection) -> None:
        db.execute("UPDATE entries SET seal = NULL")
        damage(db)
    return both


def _dsse_index(p: Pristine) -> int:
    return next(i for i, a in enumerate(p.attestations) if a)


CASES = {
    "entry body": lambda p: _flip_column("entries", "body", "idx = 7"),
    "entry leaf hash": lambda p: _flip_column("entries", "leaf_hash", "idx = 7"),
    "entry integrated time": lambda p: (
        lambda db: db.execute("UPDATE entries SET integrated_time = integrated_time + 1 "
                              "WHERE idx = 7")),
    "entry SET": lambda p: _flip_column("entries", "set_signature", "idx = 7"),
    "entry SETs swapped": lambda p: _swap_sets,
    "entry seal": lambda p: _flip_column("entries", "seal", "idx = 7"),
    "entry kind": lambda p: (
        lambda db: db.execute("UPDATE entries SET kind = 'dsse' WHERE idx = 7")),
    "entry attestation": lambda p: _flip_column("entries", "attestation",
                                                f"idx = {_dsse_index(p)}"),
    "leaf node": lambda p: _flip_column("nodes", "hash", f"id = {_node_id(0, 260)}"),
    "inner node": lambda p: _flip_column("nodes", "hash", f"id = {_node_id(3, 2)}"),
    "level-8 node": lambda p: _flip_column("nodes", "hash", f"id = {_node_id(8, 0)}"),
    "full tile": lambda p: _flip_column("tiles", "data", "id = 0"),
    "old checkpoint root": lambda p: _flip_column(
        "checkpoints", "root", "size = (SELECT min(size) FROM checkpoints WHERE size > 100)"),
    "old checkpoint note": lambda p: _flip_column(
        "checkpoints", "note", "size = (SELECT min(size) FROM checkpoints WHERE size > 100)"),
    "head checkpoint note": lambda p: _flip_column(
        "checkpoints", "note", "size = (SELECT max(size) FROM checkpoints)"),
    "head checkpoint root": lambda p: _flip_column(
        "checkpoints", "root", "size = (SELECT max(size) FROM checkpoints)"),
    # rows written before seals (schema 3): their SET is verified, their
    # attestation hashed against the leaf
    "unsealed rows, entry SET": lambda p: _unsealed(_flip_column("entries", "set_signature",
                                                                  "idx = 7")),
    "unsealed rows, entry attestation": lambda p: _unsealed(_flip_column(
        "entries", "attestation", f"idx = {_dsse_index(p)}")),
    "unsealed rows, entry kind": lambda p: _unsealed(
        lambda db: db.execute("UPDATE entries SET kind = 'dsse' WHERE idx = 7")),
    "search row": lambda p: (
        lambda db: db.execute("DELETE FROM search WHERE idx = 9")),
}


def _damaged_copy(p: Pristine, tmp_path: Path, case: str) -> Path:
    data_dir = tmp_path / "log"
    shutil.copytree(p.data_dir, data_dir)
    db = sqlite3.connect(data_dir / "tlog.db", isolation_level=None)
    try:
        db.execute("BEGIN")
        CASES[case](p)(db)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return data_dir


class Crawl:
    """Every read route of a running log, each answer judged."""

    def __init__(self, p: Pristine, url: str) -> None:
        self.p = p
        self.url = url
        self.ref = ReferenceTree(p.bodies)
        self.pinned = PinnedLog(url, p.pinned.public_key, p.origin, p.pinned.tree_id)
        self.damaged = 0  # 500s naming damage
        self.ok = 0

    def judge(self, r, what: str) -> bool:
        """True if a 200 to check; counts a 500 naming damage; fails on
        anything else."""
        if r.status == 200:
            self.ok += 1
            return True
        assert r.status == 500, (what, r.status, r.body[:300])
        message = r.json()["message"]
        assert "damaged" in message, (what, message)
        self.damaged += 1
        return False

    def head(self) -> int:
        r = get(self.url, "/checkpoint")
        if not self.judge(r, "/checkpoint"):
            return 0
        cp = self.pinned.open(r.body)
        assert cp.root_hash == self.ref.root(cp.size), "a checkpoint with a wrong root"
        r = get(self.url, "/api/v1/log")
        if self.judge(r, "/api/v1/log"):
            obj = r.json()
            assert self.pinned.open(obj["signedTreeHead"]).size == obj["treeSize"]
            assert bytes.fromhex(obj["rootHash"]) == self.ref.root(obj["treeSize"])
        return cp.size

    def entries(self, size: int) -> None:
        for i in range(size):
            r = get(self.url, f"{ENTRIES}?logIndex={i}")
            if self.judge(r, f"logIndex {i}"):
                obj = self._without_attestation(i, r.json())
                entry = self.pinned.verify_entry(obj, body=self.p.bodies[i], index=i)
                assert entry.inclusion_proof.root_hash == self.ref.root(
                    entry.inclusion_proof.tree_size)
        for i in (0, 7, 8, 9, _dsse_index(self.p), size - 1):
            uuid = hashlib.sha256(b"\x00" + self.p.bodies[i]).hexdigest()
            r = get(self.url, f"{ENTRIES}/{uuid}")
            if r.status == 404:  # a damaged leaf hash column: not found by it
                continue
            if self.judge(r, f"uuid of {i}"):
                obj = self._without_attestation(i, r.json())
                self.pinned.verify_entry(obj, body=self.p.bodies[i], index=i)
        r = post_json(self.url, f"{ENTRIES}/retrieve", {"logIndexes": [0, 7, 8, 9, 260]})
        if self.judge(r, "retrieve"):
            for obj in r.json():
                (inner,) = obj.values()
                i = inner["logIndex"]
                self.pinned.verify_entry(self._without_attestation(i, obj),
                                         body=self.p.bodies[i])

    def _without_attestation(self, i: int, obj: dict) -> dict:
        """``obj`` without its attestation, once that is checked to be the
        one the log stored for entry ``i``."""
        ((key, inner),) = obj.items()
        att = inner.get("attestation")
        expected = self.p.attestations[i]
        if expected is None:
            assert att is None, f"entry {i}: an attestation that was never stored"
        else:
            assert base64.b64decode(att["data"]) == expected, f"entry {i}: damaged attestation"
        return {key: {k: v for k, v in inner.items() if k != "attestation"}}

    def proofs(self, size: int) -> None:
        sizes = sorted({1, 2, 7, 8, 9, 100, 255, 256, 257, 260, size - 1, size})
        pairs = {(first, last) for first in sizes for last in sizes if first <= last <= size}
        # Every size with a stored checkpoint, as either end (its root column
        # must never stand in for the tree's).
        for c in self.p.checkpoint_sizes:
            if 0 < c <= size:
                pairs |= {(1, c), (max(1, c // 2), c), (c, c), (c, size)}
        for first, last in sorted(pairs):
            r = get(self.url, f"/api/v1/log/proof?firstSize={first}&lastSize={last}")
            if self.judge(r, f"proof {first}->{last}"):
                obj = r.json()
                assert bytes.fromhex(obj["rootHash"]) == self.ref.root(last), (first, last)
                assert [bytes.fromhex(h) for h in obj["hashes"]] == \
                    self.ref.consistency(first, last), (first, last)

    def tiles(self, size: int) -> None:
        wanted = [Tile(0, 0, 256), Tile(0, 1, size - 256), Tile(1, 0, 1),
                  Tile(0, 1, 1), Tile(0, 1, 5), EntryBundle(0, 256),
                  EntryBundle(1, size - 256), EntryBundle(1, 3)]
        for tile in wanted:
            r = get(self.url, "/" + tile_path(tile))
            if not self.judge(r, tile_path(tile)):
                continue
            if isinstance(tile, EntryBundle):
                start = tile.index * 256
                assert r.body == encode_entry_bundle(self.p.bodies[start:start + tile.width])
            else:
                level = 8 * tile.level
                expect = b"".join(self.ref.node(level, tile.index * 256 + k)
                                  for k in range(tile.width))
                assert r.body == expect, f"a wrong {tile_path(tile)} served 200"

    def all(self) -> int:
        size = self.head()
        if size:
            self.entries(size)
            self.proofs(size)
            self.tiles(size)
        return size


def _fsck(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)


def test_the_pristine_log_crawls_clean(pristine, tmp_path):
    data_dir = tmp_path / "log"
    shutil.copytree(pristine.data_dir, data_dir)
    server = ServerProcess(data_dir, "--origin", pristine.origin).start()
    try:
        crawl = Crawl(pristine, server.url)
        assert crawl.all() == pristine.size
        assert crawl.damaged == 0
    finally:
        server.stop()


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_column_is_never_served_as_200(pristine, tmp_path, case):
    data_dir = _damaged_copy(pristine, tmp_path, case)
    port = free_port()
    server = ServerProcess(data_dir, "--origin", pristine.origin, port=port)
    try:
        server.start()
    except RuntimeError:
        out = run_serve(data_dir, "--origin", pristine.origin)
        assert out.returncode == 3, (case, out.returncode, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        return
    try:
        crawl = Crawl(pristine, server.url)
        crawl.all()
        metrics = get(server.url, "/metrics").body.decode()
        if crawl.damaged:
            assert "tlog_storage_damage_total" in metrics, metrics
    finally:
        server.stop()
    output = server.output()
    assert "Traceback" not in output, output
    report = _fsck(data_dir)
    assert report.returncode != 0, (case, report.stdout)
    assert "FAULT" in report.stdout, report.stdout
