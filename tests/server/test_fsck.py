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
    # The database no longer holds the published checkpoint of size SIZE:
    # rollback evidence, exit 4 (the record beside it says what was published).
    "head checkpoint deleted": (head_checkpoint_deleted,
                                [f"{SIZE} entries", "published checkpoint"], 4),
    "all checkpoints deleted": (all_checkpoints_deleted,
                                ["no checkpoint", "published checkpoint"], 4),
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
    damage, expected, *exit_code = CASES[name]
    exit_code = exit_code[0] if exit_code else 1  # faults; 4: rollback evidence
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
    assert code == exit_code, (code, out.out, out.err)
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


# -- exit codes 3 and 4, and checking a backup with the public key only (SPEC §10 U4) ----

def public_pem(data_dir: Path) -> bytes:
    """The log's public key as GET /api/v1/log/publicKey serves it."""
    key = serialization.load_pem_private_key((data_dir / "log-key.pem").read_bytes(), None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def sqlite_backup(db: Path, to: Path) -> None:
    src, dst = sqlite3.connect(f"file:{db}?mode=ro", uri=True), sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def test_clean_report_says_not_damaged_and_no_rollback(base_log):
    report = json.loads(fsck(base_log, "--json").stdout)
    assert report["damaged"] is False and report["rollback"] is False


def test_backup_is_checked_with_the_public_key_only(base_log, tmp_path):
    """A backup copied anywhere, with no log-key.pem and no record beside it:
    checked against the public key alone (no private key is read)."""
    backups = tmp_path / "backups"
    backups.mkdir()
    sqlite_backup(base_log / "tlog.db", backups / "tlog-2026.db")
    (tmp_path / "pub.pem").write_bytes(public_pem(base_log))
    pub = str(tmp_path / "pub.pem")

    def check(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", *flags],
                              capture_output=True, text=True, timeout=60)

    out = check("--database", str(backups / "tlog-2026.db"), "--public-key", pub, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["entries"] == SIZE and report["checkpoints"] == SIZE + 1
    assert sorted(p.name for p in backups.iterdir()) == ["tlog-2026.db"]  # nothing left beside
    # Another log's key: refused, naming both log IDs (exit 2: the wrong key given).
    other = tmp_path / "other.pem"
    other.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = check("--database", str(backups / "tlog-2026.db"), "--public-key", str(other))
    assert out.returncode == 2 and "not the log of the key" in out.stderr, out.stderr
    for bad, words in [(b"not a key\n", "not a log public key"),
                       ((base_log / "log-key.pem").read_bytes(), "not a log public key")]:
        other.write_bytes(bad)
        out = check("--database", str(backups / "tlog-2026.db"), "--public-key", str(other))
        assert out.returncode == 2 and words in out.stderr, out.stderr
    out = check("--database", str(backups / "tlog-2026.db"))
    assert out.returncode == 2 and "--public-key" in out.stderr
    assert "Traceback" not in out.stderr
    # Faults in a backup: exit 1; damage to the file: exit 3.
    db = sqlite3.connect(backups / "tlog-2026.db")
    with db:
        body_flipped(None, db)
    db.close()
    out = check("--database", str(backups / "tlog-2026.db"), "--public-key", pub)
    assert out.returncode == 1 and "FAULT: entry 5" in out.stdout, out
    with open(backups / "tlog-2026.db", "r+b") as f:
        f.seek(0)
        f.write(b"\0" * 100)
    out = check("--database", str(backups / "tlog-2026.db"), "--public-key", pub)
    assert out.returncode == 3 and "database damaged" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_data_dir_without_the_private_key(base_log, tmp_path):
    """--data-dir with --public-key: log-key.pem is not needed; the
    published record there is still checked (exit 4 when the database does
    not hold it)."""
    data_dir = tmp_path / "log"
    shutil.copytree(base_log, data_dir)
    (tmp_path / "pub.pem").write_bytes(public_pem(data_dir))
    (data_dir / "log-key.pem").unlink()
    out = fsck(data_dir)
    assert out.returncode == 2 and "--public-key" in out.stderr, out.stderr
    out = fsck(data_dir, "--public-key", str(tmp_path / "pub.pem"))
    assert out.returncode == 0 and out.stdout.startswith("clean"), out
    db = sqlite3.connect(data_dir / "tlog.db")
    with db:
        for size in (SIZE, SIZE - 1):  # the database is now behind the published record
            db.execute("DELETE FROM checkpoints WHERE size = ?", (size,))
        db.execute("DELETE FROM entries WHERE idx >= ?", (SIZE - 2,))
    db.close()
    out = fsck(data_dir, "--public-key", str(tmp_path / "pub.pem"), "--json")
    assert out.returncode == 4, out
    report = json.loads(out.stdout)
    assert report["rollback"] is True and report["damaged"] is False
    assert any(f.startswith("published checkpoint:") and f"size {SIZE}" in f
               for f in report["faults"]), report
    assert "rollback or fork" in out.stderr and "Traceback" not in out.stderr


def test_damage_found_during_the_check_is_exit_3(base_log, tmp_path):
    """Damage SQLite finds only when the pages are read: quick_check names
    the table, the faults start "database damaged:", exit 3."""
    data_dir = tmp_path / "log"
    shutil.copytree(base_log, data_dir)
    db = sqlite3.connect(f"file:{data_dir / 'tlog.db'}?mode=ro", uri=True)
    try:
        pages = [p for p, in db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'entries' AND pagetype = 'leaf'")]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table")
    finally:
        db.close()
    with open(data_dir / "tlog.db", "r+b") as f:
        for page in pages[1:]:
            f.seek((page - 1) * 4096 + 8)
            f.write(b"\xa5" * 4088)
    out = fsck(data_dir, "--json")
    assert out.returncode == 3, out
    report = json.loads(out.stdout)
    assert report["damaged"] and any(f.startswith("database damaged: quick_check")
                                     for f in report["faults"]), report
    assert len(out.stderr.strip().splitlines()) == 1 and "restore a backup" in out.stderr
