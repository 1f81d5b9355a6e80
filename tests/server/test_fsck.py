"""``tlog fsck`` detects damage (SPEC §9): each kind of corruption, written
directly into a copy of a real log's SQLite file, makes fsck exit non-zero
with a report naming the fault; an undamaged log is clean (exit 0)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog_client.checkpoint import Checkpoint, sign_checkpoint
from tlog_client.notekeys import log_signers

from ..serverproc import ServerProcess
from .helpers import PinnedLog, ecdsa_signer

SIZE = 20  # one checkpoint per size: entries are submitted one at a time
ORIGIN = "tlog.test/fsck"


@pytest.fixture(scope="module")
def base_log(tmp_path_factory) -> Path:
    server = ServerProcess(tmp_path_factory.mktemp("fsck") / "log", "--origin", ORIGIN).start()
    try:
        pinned = PinnedLog.of(server)
        signer = ecdsa_signer()
        for _ in range(SIZE):
            assert pinned.submit(signer.entry())[0].status == 201
    finally:
        server.stop()
    return server.data_dir


def fsck(data_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data_dir),
                           *flags], capture_output=True, text=True, timeout=60)


def _one(db, sql, *args):
    return db.execute(sql, args).fetchone()[0]


def flip(data: bytes, at: int = -5) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


def node_id(level: int, index: int) -> int:
    return (level << 48) | index


def _forge(data_dir: Path, db, size: int, root: bytes, key=None) -> bytes:
    """A checkpoint note for (size, root) signed by the log's own key (or ``key``)."""
    if key is None:
        key = serialization.load_pem_private_key((data_dir / "log-key.pem").read_bytes(), None)
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), log_signers(key, ORIGIN))


def body_flipped(d, db):
    db.execute("UPDATE entries SET body = ? WHERE idx = 5",
               (flip(_one(db, "SELECT body FROM entries WHERE idx = 5")),))


def leaf_hash_changed(d, db):
    db.execute("UPDATE entries SET leaf_hash = ? WHERE idx = 3", (b"\x33" * 32,))


def inner_node_changed(d, db):
    db.execute("UPDATE nodes SET hash = ? WHERE id = ?", (b"\x12" * 32, node_id(1, 2)))


def leaf_node_changed(d, db):
    db.execute("UPDATE nodes SET hash = ? WHERE id = ?", (b"\x07" * 32, node_id(0, 7)))


def node_deleted(d, db):
    db.execute("DELETE FROM nodes WHERE id = ?", (node_id(2, 1),))


def nodes_deleted_and_changed(d, db):
    db.execute("DELETE FROM nodes WHERE id IN (?, ?)", (node_id(0, 3), node_id(1, 4)))
    db.execute("UPDATE nodes SET hash = ? WHERE id = ?", (b"\x09" * 32, node_id(0, 9)))


def note_signature_flipped(d, db):
    note = _one(db, "SELECT note FROM checkpoints WHERE size = 10")
    db.execute("UPDATE checkpoints SET note = ? WHERE size = 10", (flip(note, -10),))


def note_text_changed(d, db):
    note = _one(db, "SELECT note FROM checkpoints WHERE size = 12")
    db.execute("UPDATE checkpoints SET note = ? WHERE size = 12",
               (note.replace(b"\n12\n", b"\n13\n", 1),))


def root_column_changed(d, db):
    db.execute("UPDATE checkpoints SET root = ? WHERE size = 10", (b"\x10" * 32,))


def forged_checkpoint_wrong_root(d, db):
    # Validly signed by the log key, but not the root of the stored leaves.
    root = b"\x15" * 32
    db.execute("UPDATE checkpoints SET note = ?, root = ? WHERE size = 15",
               (_forge(d, db, 15, root), root))


def checkpoint_by_another_key(d, db):
    root = _one(db, "SELECT root FROM checkpoints WHERE size = 8")
    note = _forge(d, db, 8, root, key=ed25519.Ed25519PrivateKey.generate())
    db.execute("UPDATE checkpoints SET note = ? WHERE size = 8", (note,))


def entry_deleted(d, db):
    db.execute("DELETE FROM entries WHERE idx = 7")


def last_entry_deleted(d, db):
    db.execute("DELETE FROM entries WHERE idx = ?", (SIZE - 1,))


def head_checkpoint_deleted(d, db):
    db.execute("DELETE FROM checkpoints WHERE size = ?", (SIZE,))


def all_checkpoints_deleted(d, db):
    db.execute("DELETE FROM checkpoints")


def entries_swapped(d, db):
    # Bodies and leaf hashes swapped together: each row is self-consistent,
    # but the tree (stored nodes, signed roots) says otherwise.
    a = db.execute("SELECT body, leaf_hash FROM entries WHERE idx = 4").fetchone()
    b = db.execute("SELECT body, leaf_hash FROM entries WHERE idx = 6").fetchone()
    db.execute("UPDATE entries SET leaf_hash = ? WHERE idx = 4", (b"\0" * 32,))
    db.execute("UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = 6", a)
    db.execute("UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = 4", b)


def extra_entry_beyond_head(d, db):
    body = b'{"extra": true}'
    import hashlib
    db.execute("INSERT INTO entries (idx, leaf_hash, body, integrated_time, kind) "
               "VALUES (?, ?, ?, 0, 'hashedrekord')",
               (SIZE, hashlib.sha256(b"\0" + body).digest(), body))


def truncated_body(d, db):
    db.execute("UPDATE entries SET body = substr(body, 1, 10) WHERE idx = 0")


def search_row_deleted(d, db):
    db.execute("DELETE FROM search WHERE idx = 4 AND key LIKE 'hash:%'")


def search_row_added(d, db):
    db.execute("INSERT INTO search (key, idx) VALUES ('email:mallory@example.com', 6)")


def body_signature_forged(d, db):
    """A well-formed body whose signature no longer verifies, with a matching
    leaf hash: only re-verifying the entry finds it."""
    import base64
    body = json.loads(_one(db, "SELECT body FROM entries WHERE idx = 2"))
    sig = bytearray(base64.b64decode(body["spec"]["signature"]["content"]))
    sig[-3] ^= 1
    body["spec"]["signature"]["content"] = base64.b64encode(bytes(sig)).decode()
    from tlog_client.rekor import canonical_json
    raw = canonical_json(body)
    db.execute("UPDATE entries SET body = ?, leaf_hash = ? WHERE idx = 2",
               (raw, hashlib.sha256(b"\0" + raw).digest()))


CASES = {
    "search row deleted": (search_row_deleted, ["entry 4", "search rows", "missing"]),
    "search row added": (search_row_added, ["entry 6", "extra", "mallory"]),
    "body signature forged": (body_signature_forged, ["entry 2", "no longer verifies"]),
    "body flipped": (body_flipped, ["entry 5", "leaf hash"]),
    "leaf hash changed": (leaf_hash_changed, ["entry 3", "leaf hash"]),
    "inner node changed": (inner_node_changed, ["node (1, 2)"]),
    "leaf node changed": (leaf_node_changed, ["node (0, 7)"]),
    "node deleted": (node_deleted, ["node (2, 1)", "missing"]),
    "nodes deleted and changed": (nodes_deleted_and_changed,
                                  ["node (0, 3) is missing", "node (1, 4) is missing",
                                   "node (0, 9) differs"]),
    "note signature flipped": (note_signature_flipped, ["checkpoint at size 10", "verify"]),
    "note text changed": (note_text_changed, ["checkpoint at size 12"]),
    "root column changed": (root_column_changed, ["checkpoint at size 10"]),
    "forged checkpoint, wrong root": (forged_checkpoint_wrong_root,
                                      ["checkpoint at size 15", "root"]),
    "checkpoint by another key": (checkpoint_by_another_key,
                                  ["checkpoint at size 8", "known key"]),
    "entry deleted": (entry_deleted, ["7 was expected", "not contiguous"]),
    "last entry deleted": (last_entry_deleted, [f"size {SIZE}"]),
    "head checkpoint deleted": (head_checkpoint_deleted, [f"{SIZE} entries"]),
    "all checkpoints deleted": (all_checkpoints_deleted, ["no checkpoint"]),
    "entries swapped": (entries_swapped, ["node (0, 4)", "node (0, 6)", "checkpoint at size 5"]),
    "extra entry beyond head": (extra_entry_beyond_head, [f"{SIZE + 1} entries"]),
    "truncated body": (truncated_body, ["entry 0", "leaf hash"]),
}


def test_clean_log(base_log, tmp_path):
    out = fsck(base_log, "--json")
    assert out.returncode == 0, out
    report = json.loads(out.stdout)
    assert report["ok"] and report["faults"] == []
    assert report["entries"] == SIZE and report["checkpoints"] == SIZE + 1
    text = fsck(base_log)
    assert text.returncode == 0 and text.stdout.startswith("clean"), text.stdout


@pytest.mark.parametrize("name", list(CASES))
def test_damage_is_detected(base_log, tmp_path, name, capsys):
    damage, expected = CASES[name]
    data_dir = tmp_path / "log"
    shutil.copytree(base_log, data_dir)
    db = sqlite3.connect(data_dir / "tlog.db")
    try:
        with db:
            damage(data_dir, db)
    finally:
        db.close()
    # The CLI entry point in-process (the subprocess path is covered by the
    # clean-log test and the first case below): fast enough for the table.
    from tlog.cli import main
    capsys.readouterr()
    code = main(["fsck", "--json", "--data-dir", str(data_dir)])
    out = capsys.readouterr()
    assert code == 1, (code, out.out, out.err)
    report = json.loads(out.out)
    assert not report["ok"] and report["faults"], report
    joined = "\n".join(report["faults"])
    for text in expected:
        assert text in joined, (text, report["faults"])
    if name == "body flipped":  # the real command, human report
        human = fsck(data_dir)
        assert human.returncode == 1 and "FAULT" in human.stdout and "entry 5" in human.stdout
        assert "Traceback" not in human.stderr


def test_identity_damage_is_refused(base_log, tmp_path):
    data_dir = tmp_path / "log"
    shutil.copytree(base_log, data_dir)
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (data_dir / "log-key.pem").write_bytes(other)
    out = fsck(data_dir)
    assert out.returncode == 2 and "not the key" in out.stderr, out
    assert "Traceback" not in out.stderr
    out = fsck(tmp_path / "nowhere")
    assert out.returncode == 2 and "no log" in out.stderr
