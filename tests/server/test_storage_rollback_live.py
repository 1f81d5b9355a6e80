"""SPEC §10 U1 through a real server process: a database changed behind the
running server never yields a second root for a published size.

Each case changes storage while ``tlog serve`` runs (a backup restored into
the live file with SQLite's backup API, the head row edited or deleted, the
out-of-database record of the published checkpoint edited), then tries to
make the log sign again. Every checkpoint any answer carried is collected
(and verified under the pinned key): there must never be two roots for one
size. Writes must answer 503 naming the cause, /healthz must say the log
halted, /metrics must show it, reads must go on serving the last verified
checkpoint, and a restart must be refused (exit 4) or fail closed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tlog.published import PublishedRecord

from .helpers import PinnedLog, ecdsa_signer, error_message, get, post_json
from .test_invariants import run_serve
from .test_rollback import backup

ENTRIES = "/api/v1/log/entries"


def restore_into_live(copy: Path, data_dir: Path) -> None:
    """What an operator restoring a backup into the running log's file does:
    SQLite's backup API writes the copy's pages into the live database
    (under SQLite's locks, so the server's connections see the new state)."""
    src = sqlite3.connect(copy)
    dst = sqlite3.connect(data_dir / "tlog.db", timeout=30)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def edit_live(data_dir: Path, *statements: str) -> None:
    db = sqlite3.connect(data_dir / "tlog.db", timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        for sql in statements:
            db.execute(sql)
        db.execute("COMMIT")
    finally:
        db.close()


class Witness:
    """Every checkpoint the log served, verified under the pinned key: the
    test's own memory of what was published (one root per size, always)."""

    def __init__(self, pinned: PinnedLog) -> None:
        self.pinned = pinned

    def look(self) -> None:
        """Read every route that carries a checkpoint; each 200 verifies."""
        url = self.pinned.url
        r = get(url, "/checkpoint")
        if r.status == 200:
            self.pinned.open(r.body)  # raises on a second root for a size
        r = get(url, "/api/v1/log")
        if r.status == 200:
            obj = r.json()
            cp = self.pinned.open(obj["signedTreeHead"])
            assert (cp.size, cp.root_hash.hex()) == (obj["treeSize"], obj["rootHash"])
        r = get(url, f"{ENTRIES}?logIndex=0")
        if r.status == 200:
            self.pinned.verify_entry(r.json(), index=0)
        else:
            assert r.status in (500, 503), (r.status, r.body)


def submit_ok(pinned: PinnedLog, signer, n: int) -> None:
    for _ in range(n):
        r, entry = pinned.submit(signer.entry())
        assert r.status == 201, (r.status, r.body)


def assert_halted(server, pinned: PinnedLog, signer, witness: Witness, cause: str) -> None:
    """Writes refused naming ``cause`` (a regex), health and metrics say so,
    reads keep serving a verified checkpoint."""
    for _ in range(3):
        r = post_json(server.url, ENTRIES, signer.entry())
        message = error_message(r, 503)
        assert re.search(cause, message), message
        witness.look()
    health = get(server.url, "/healthz")
    assert health.status == 503 and health.json()["status"] == "halted"
    assert re.search(cause, health.json()["reason"]), health.json()
    metrics = get(server.url, "/metrics").body.decode()
    assert re.search(r"^tlog_halted 1\.0$", metrics, re.M), metrics
    r = get(server.url, "/checkpoint")
    assert r.status == 200
    pinned.open(r.body)
    assert "halted:" in server.output() or "halted" in server.output()


@pytest.mark.parametrize("workers", [0, 2])
def test_backup_restored_into_the_live_file_never_forks(make_server, tmp_path, workers):
    data_dir = tmp_path / "log"
    args = ("--origin", "tlog.test/restore-live") + (("--workers", str(workers)) if workers else ())
    server = make_server(*args, data_dir=data_dir)
    pinned = PinnedLog.of(server)
    witness = Witness(pinned)
    signer = ecdsa_signer()
    submit_ok(pinned, signer, 5)
    witness.look()
    old = tmp_path / "old.db"
    backup(data_dir, old)  # size 5
    submit_ok(pinned, signer, 4)  # size 9, published
    witness.look()
    assert pinned.checkpoint().size == 9

    restore_into_live(old, data_dir)  # the database now says size 5
    assert_halted(server, pinned, signer, witness, r"size 5.*size 9|went back|behind")
    # The last verified checkpoint is still what the log serves.
    assert pinned.checkpoint().size == 9
    server.stop()
    out = run_serve(data_dir, "--origin", "tlog.test/restore-live")
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr
    assert PublishedRecord(data_dir).read().size == 9


def test_idle_server_reports_the_rollback_without_a_write(make_server, tmp_path):
    """The sequencer looks at storage while idle: /healthz says halted
    within a few seconds even if nobody writes."""
    data_dir = tmp_path / "log"
    server = make_server("--origin", "tlog.test/idle", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    submit_ok(pinned, signer, 3)
    old = tmp_path / "old.db"
    backup(data_dir, old)
    submit_ok(pinned, signer, 2)
    restore_into_live(old, data_dir)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        health = get(server.url, "/healthz")
        if health.status == 503:
            break
        time.sleep(0.2)
    assert health.status == 503 and health.json()["status"] == "halted", health.body
    assert pinned.checkpoint().size == 5  # reads serve the last verified head


@pytest.mark.parametrize("edit, cause", [
    # the head row deleted: the head goes back one batch
    ("DELETE FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)",
     r"behind|went back"),
    # the head row's root changed: another history at a published size
    ("UPDATE checkpoints SET root = zeroblob(32) WHERE size = (SELECT max(size) FROM "
     "checkpoints)", r"fork|another history|root"),
    # the head row replaced by a bigger, unsigned one
    ("INSERT INTO checkpoints (size, root, note, timestamp) SELECT max(size) + 1, "
     "zeroblob(32), CAST('forged' AS BLOB), 1 FROM checkpoints", r"does not verify|damaged"),
])
def test_head_row_edited_behind_the_server(make_server, tmp_path, edit, cause):
    data_dir = tmp_path / "log"
    server = make_server("--origin", "tlog.test/head-edit", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    witness = Witness(pinned)
    signer = ecdsa_signer()
    submit_ok(pinned, signer, 6)
    witness.look()
    edit_live(data_dir, edit)
    assert_halted(server, pinned, signer, witness, cause)
    assert pinned.checkpoint().size == 6


def _record_slots(data_dir: Path, record: dict) -> bytes:
    """A valid two-slot record file holding ``record`` (as tlog writes it)."""
    import zlib
    data = json.dumps(record).encode() + b"\n"
    slot = (b"%08x" % zlib.crc32(data)) + b"\n" + data
    return slot.ljust(4096, b" ") * 2


@pytest.mark.parametrize("change, cause", [
    ("bigger", r"bigger|went back|records the tree of size"),
    ("other-root", r"fork|another history"),
    ("garbage", r"unreadable|whole|cannot be read"),
    ("removed", r"removed"),
])
def test_record_edited_behind_the_server(make_server, tmp_path, change, cause):
    data_dir = tmp_path / "log"
    server = make_server("--origin", "tlog.test/record-edit", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    witness = Witness(pinned)
    signer = ecdsa_signer()
    submit_ok(pinned, signer, 4)
    record = PublishedRecord(data_dir).read().to_json()
    path = data_dir / "published-checkpoint"
    if change == "bigger":
        record["size"] += 10
        path.write_bytes(_record_slots(data_dir, record))
    elif change == "other-root":
        record["root"] = "00" * 32
        path.write_bytes(_record_slots(data_dir, record))
    elif change == "garbage":
        path.write_bytes(b"\x00garbage" * 1024)
    else:
        path.unlink()
    assert_halted(server, pinned, signer, witness, cause)
    assert pinned.checkpoint().size == 4


def test_older_record_is_overwritten_not_a_halt(make_server, tmp_path):
    """A record put back to an older checkpoint of the same history claims
    nothing the log did not publish: the next batch extends it and records
    the new head."""
    data_dir = tmp_path / "log"
    server = make_server("--origin", "tlog.test/record-older", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    submit_ok(pinned, signer, 3)
    older = (data_dir / "published-checkpoint").read_bytes()
    submit_ok(pinned, signer, 3)
    (data_dir / "published-checkpoint").write_bytes(older)
    submit_ok(pinned, signer, 1)
    assert PublishedRecord(data_dir).read().size == 7
    assert get(server.url, "/healthz").status == 200
