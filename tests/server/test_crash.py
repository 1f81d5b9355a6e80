"""kill -9 under concurrent writes (SPEC §9, I5, I6): after every restart,
every acknowledged entry is at its acknowledged index with the identical
body, ``tlog fsck`` is clean, and every checkpoint ever served is consistent
with the new one (the short variant of scripts/crash.py: the same cycles,
tests/crashsuite.py). Also: the commit failing (disk full, I/O error)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tlog_client.tiles import entries_path

from ..crashsuite import CrashSuite
from .helpers import PinnedLog, ecdsa_signer, get

ENTRIES = "/api/v1/log/entries"
CYCLES = 3


def test_kill_9_under_concurrent_writes(tmp_path):
    suite = CrashSuite(tmp_path / "log", seed=6962, writers=8)
    try:
        for _ in range(CYCLES):
            result = suite.cycle()
            assert not result.lost, result
            assert result.fsck_ok and not result.failures, result
        summary = suite.summary()
        assert summary["ok"] and summary["cycles"] == CYCLES, summary
        assert summary["entries_acknowledged"] >= CYCLES, summary
        # The log still takes writes after the last crash.
        suite.server.start()
        r, entry = suite.pinned.submit(ecdsa_signer().entry())
        assert r.status == 201 and entry.log_index == suite.pinned.checkpoint().size - 1
    finally:
        suite.server.kill()


# -- the commit failing (disk full, I/O error) ---------------------------------------

def _published(data_dir) -> dict:
    from tlog.published import PublishedRecord
    return PublishedRecord(Path(data_dir)).read().to_json()


def test_failed_commit_acknowledges_nothing_and_the_log_recovers(make_server, tmp_path):
    """The COMMIT of a batch fails (injected at the storage seam, as SQLite
    reports a full disk or an I/O error): no 201, no new checkpoint, the
    published record does not move, reads go on; once the fault is gone the
    same entries are logged (they were not stored) and fsck is clean, also
    after a kill -9."""
    from .helpers import error_message, post_many

    fault = tmp_path / "commit-fault"
    server = make_server("--origin", "tlog.test/fault", data_dir=tmp_path / "log",
                         env={"TLOG_TEST_COMMIT_FAULT": str(fault)})
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    for _ in range(3):
        assert pinned.submit(signer.entry())[0].status == 201
    head = pinned.checkpoint()
    for kind in ("full", "io"):
        record = _published(server.data_dir)
        assert record["size"] == head.size
        fault.write_text(kind)
        refused = [signer.entry() for _ in range(6)]
        for r in asyncio.run(post_many(server.url, ENTRIES, refused, concurrency=6)):
            assert "not logged" in error_message(r, 503)
            assert int(r.header("Retry-After")) >= 1
        # Nothing was signed or published; every read still works.
        assert pinned.checkpoint() == head
        assert _published(server.data_dir) == record
        assert get(server.url, "/healthz").status == 200
        assert pinned.get_entry(head.size - 1).log_index == head.size - 1
        assert get(server.url, "/api/v1/log").json()["treeSize"] == head.size
        assert get(server.url, "/" + entries_path(0, head.size)).status == 200
        fault.unlink()
        # Recovered from what is stored: the refused entries were never
        # stored, so they are new (201, not 409) at the next indexes.
        for i, proposed in enumerate(refused):
            r, entry = pinned.submit(proposed)
            assert r.status == 201 and entry.log_index == head.size + i, r.body
        new = pinned.checkpoint()
        pinned.prove_consistent(head, new)
        head = new
        assert _published(server.data_dir)["size"] == head.size
    server.kill(signal.SIGKILL)
    report = server.fsck()
    assert report["ok"] and report["entries"] == head.size, report
    server.start()
    assert pinned.checkpoint() == head


async def test_real_disk_full_rolls_the_batch_back(tmp_path):
    """SQLite's own SQLITE_FULL (max_page_count reached mid-batch): the
    batch is rolled back whole and the sequencer carries on from what is
    stored once space is back."""
    pytest.importorskip("sqlite_utils")
    from tlog_client.hashing import leaf_hash
    from .inprocess import make_sequencer
    from tlog.storage import NewEntry, Storage, WriteFailedError

    storage = Storage.open(tmp_path / "tlog.db")
    sequencer = make_sequencer(storage)
    await sequencer.start()

    def entry(i: int, size: int = 200) -> NewEntry:
        body = b"%06d" % i + b"x" * size
        return NewEntry(leaf_hash(body), body, "hashedrekord")

    for i in range(3):
        assert (await sequencer.submit(entry(i))).index == i
    pages = storage._writer.execute("PRAGMA page_count").fetchone()[0]
    storage._writer.execute(f"PRAGMA max_page_count = {pages}")
    failed = await asyncio.gather(*(sequencer.submit(entry(i, 20_000)) for i in range(3, 8)),
                                  return_exceptions=True)
    assert all(isinstance(f, WriteFailedError) and "full" in str(f) for f in failed), failed
    assert sequencer.head.size == 3
    with storage.snapshot() as snap:
        assert snap.head().size == 3 and snap.head_size() == 3
        assert [e.index for e in snap.entries()] == [0, 1, 2]
    storage._writer.execute("PRAGMA max_page_count = 1073741823")
    assert (await sequencer.submit(entry(3, 20_000))).index == 3
    await sequencer.stop()
    storage.close()
