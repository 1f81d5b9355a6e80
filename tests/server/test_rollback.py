"""Rollback and fork protection (SPEC §9, I6, I7): the record of the last
published checkpoint kept apart from the database, a database restored from
an older backup or from another history refused at start, time that never
runs backwards in the log, and one writer per database."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tlog.published import PublishedRecord

from .helpers import PinnedLog, ecdsa_signer, get
from .test_invariants import assert_clean, run_serve

RECORD = "published-checkpoint"


def record_of(data_dir: Path) -> dict:
    return PublishedRecord(Path(data_dir)).read().to_json()


def backup(data_dir: Path, to: Path) -> None:
    """An online backup of the live database (what ``sqlite3 .backup`` does)."""
    src = sqlite3.connect(f"file:{Path(data_dir) / 'tlog.db'}?mode=ro", uri=True)
    dst = sqlite3.connect(to)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def restore(db_copy: Path, data_dir: Path) -> None:
    """Put a database file back in place of the log's (with no stale WAL)."""
    for suffix in ("", "-wal", "-shm"):
        (Path(data_dir) / f"tlog.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(db_copy, Path(data_dir) / "tlog.db")


def submit(pinned: PinnedLog, signer, n: int) -> None:
    for _ in range(n):
        assert pinned.submit(signer.entry())[0].status == 201


def test_the_record_follows_every_publish(make_server):
    server = make_server("--origin", "tlog.test/record")
    pinned = PinnedLog.of(server)
    assert record_of(server.data_dir)["size"] == 0  # written at the first start
    signer = ecdsa_signer()
    for n in range(1, 4):
        submit(pinned, signer, 1)
        record = record_of(server.data_dir)
        note = get(server.url, "/checkpoint").body.decode()
        assert record == {"origin": "tlog.test/record", "size": n,
                          "root": pinned.checkpoint().root_hash.hex(), "note": note}
    assert not list(Path(server.data_dir).glob("*.tmp"))


def test_database_restored_from_an_older_backup_is_refused(make_server, tmp_path):
    data_dir = tmp_path / "log"
    server = make_server("--origin", "tlog.test/rollback", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    submit(pinned, signer, 5)
    old = tmp_path / "old.db"
    backup(data_dir, old)  # a consistent copy of the live log at size 5
    submit(pinned, signer, 4)
    server.stop()
    new = tmp_path / "new.db"
    backup(data_dir, new)  # the current state, after a clean stop
    assert record_of(data_dir)["size"] == 9

    restore(old, data_dir)
    out = run_serve(data_dir)
    assert out.returncode == 4, out.stderr
    assert "size 5" in out.stderr and "size 9" in out.stderr, out.stderr
    assert "older backup" in out.stderr and "Traceback" not in out.stderr
    report = server.fsck()  # the copy is sound on its own, but behind the record
    assert report["exit_code"] == 4 and report["rollback"] and not report["damaged"]
    assert any("published checkpoint" in f and "size 9" in f for f in report["faults"])
    assert record_of(data_dir)["size"] == 9  # a refused start changes nothing

    restore(new, data_dir)  # a copy at least as new as the record: accepted
    server.start()
    assert pinned.checkpoint().size == 9
    submit(pinned, signer, 1)
    assert record_of(data_dir)["size"] == 10
    server.stop()
    assert_clean(server)


def test_database_of_another_history_is_refused(make_server, tmp_path):
    """Two copies of one log that grew apart (a fork): the one that did not
    publish the recorded checkpoint is refused, even though it is bigger."""
    main, other = tmp_path / "main", tmp_path / "other"
    server = make_server("--origin", "tlog.test/fork", data_dir=main)
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    submit(pinned, signer, 3)
    other.mkdir()
    backup(main, other / "tlog.db")
    shutil.copy2(main / "log-key.pem", other / "log-key.pem")
    submit(pinned, signer, 2)  # main: size 5, recorded
    server.stop()
    # The copy, started without the record, grows another way to size 7.
    twin = make_server("--origin", "tlog.test/fork", data_dir=other)
    submit(PinnedLog.of(twin), ecdsa_signer(), 4)
    twin.stop()

    restore(other / "tlog.db", main)
    out = run_serve(main)
    assert out.returncode == 4, out.stderr
    assert "fork" in out.stderr and "size 5" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_record_of_another_log_or_unreadable_is_refused(make_server, tmp_path):
    server = make_server("--origin", "tlog.test/a", data_dir=tmp_path / "a")
    server.stop()
    good = (tmp_path / "a" / RECORD).read_bytes()
    record = record_of(tmp_path / "a")
    for bad, words in [({**record, "origin": "tlog.test/b"}, "tlog.test/b"),
                       ({**record, "root": "AB" * 32}, "unreadable"),
                       ({**record, "size": -1, "extra": 1}, "unreadable"),
                       (b"", "unreadable")]:
        data = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
        (tmp_path / "a" / RECORD).write_bytes(data)
        out = run_serve(tmp_path / "a")
        assert out.returncode == 4 and words in out.stderr, (bad, out.stderr)
        assert "Traceback" not in out.stderr
    (tmp_path / "a" / RECORD).write_bytes(good)
    server.start()


def test_missing_record_is_written_at_start(make_server, tmp_path):
    """A log from before the record existed (or whose record was removed on
    purpose, see docs/runbook.md) starts and is recorded at once."""
    server = make_server(data_dir=tmp_path / "log")
    pinned = PinnedLog.of(server)
    submit(pinned, ecdsa_signer(), 2)
    server.stop()
    (tmp_path / "log" / RECORD).unlink()
    server.start()
    assert record_of(tmp_path / "log")["size"] == 2


def test_new_database_beside_a_record_is_refused(make_server, tmp_path):
    """The database deleted (or lost) but the record kept: a new, empty log
    would re-sign sizes already published."""
    server = make_server(data_dir=tmp_path / "log")
    submit(PinnedLog.of(server), ecdsa_signer(), 1)
    server.stop()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "log" / f"tlog.db{suffix}").unlink(missing_ok=True)
    out = run_serve(tmp_path / "log")
    assert out.returncode == 4 and "size 1" in out.stderr, out.stderr


# -- time never runs backwards in the log --------------------------------------------

class Clock:
    """An injected wall clock the test moves by hand (SPEC §2)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_wall_clock_moving_backwards(tmp_path):
    pytest.importorskip("sqlite_utils")
    from aiohttp.test_utils import TestClient, TestServer

    from tlog.app import build_app
    from tlog.config import Config

    config = Config(data_dir=tmp_path / "log", origin="tlog.test/clock")
    signer = ecdsa_signer()
    times: list[int] = []
    clock = Clock(1_700_000_000)
    for steps in ([0, 100, -50, -10_000, 5, -1], [-1_000_000, 10]):  # then a restart
        app = await build_app(config, clock)
        async with TestClient(TestServer(app)) as client:
            for step in steps:
                clock.now += step
                r = await client.post("/api/v1/log/entries", json=signer.entry())
                assert r.status == 201, await r.text()
                (entry,) = (await r.json()).values()
                times.append(entry["integratedTime"])
    assert times == sorted(times), times
    assert times[-1] >= 1_700_000_100
    from tlog.storage import Storage
    storage = Storage.open(config.db_path)
    try:
        with storage.snapshot() as snap:
            storage_times = [cp.timestamp for cp in snap.checkpoints()]
            entry_times = [e.integrated_time for e in snap.entries()]
    finally:
        storage.close()
    assert storage_times == sorted(storage_times) and entry_times == times


# -- one writer per database ----------------------------------------------------------

def test_two_writers_compare_and_swap_the_head(tmp_path):
    """Two storage handles on one file (two processes, I7): both read the
    same head; the second to write loses the compare-and-swap and stores
    nothing. (tests/server/test_invariants.py runs two real servers.)"""
    pytest.importorskip("sqlite_utils")
    from tlog.storage import HeadMovedError, NewEntry, Storage, StoredCheckpoint

    a, b = Storage.open(tmp_path / "tlog.db"), Storage.open(tmp_path / "tlog.db")
    try:
        with a.write(None) as txn:
            txn.insert_checkpoint(StoredCheckpoint(0, b"\0" * 32, b"note 0", 1))
        with a.snapshot() as snap:
            head = snap.head()

        def append(storage: Storage, body: bytes) -> None:
            with storage.write(head) as txn:
                txn.insert_entry(0, NewEntry(body.ljust(32, b"."), body, "test"), 1)
                txn.insert_checkpoint(StoredCheckpoint(1, body.ljust(32, b"."), body, 1))

        append(a, b"from a")
        with pytest.raises(HeadMovedError):
            append(b, b"from b")
        with b.snapshot() as snap:
            assert [e.body for e in snap.entries()] == [b"from a"]
            assert snap.head().note == b"from a"
    finally:
        a.close()
        b.close()
