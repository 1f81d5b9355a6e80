"""kill -9 under concurrent writes (SPEC §9, I5, I6): after every restart,
every acknowledged entry is at its acknowledged index with the identical
body, ``tlog fsck`` is clean, and every checkpoint ever served is consistent
with the new one."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tlog_client.tiles import decode_entry_bundle, entries_path

from .helpers import PinnedLog, Resp, ecdsa_signer, get, rsa_signer

ENTRIES = "/api/v1/log/entries"
WRITERS = 8
CYCLES = 4


def stored_bodies(pinned: PinnedLog, size: int) -> list[bytes]:
    """Every body in [0, size) from the entry bundles (tile API)."""
    bodies: list[bytes] = []
    for n in range((size + 255) // 256):
        width = min(256, size - 256 * n)
        r = get(pinned.url, "/" + entries_path(n, width))
        assert r.status == 200, (n, width, r.body)
        bodies += decode_entry_bundle(r.body, width)
    return bodies


async def write_until_killed(server, pinned: PinnedLog, signers, acked: dict, target: int,
                             rng: random.Random) -> int:
    """Run WRITERS concurrent writers and a checkpoint reader; SIGKILL the
    server once ``target`` more entries are acknowledged (plus a random
    moment), while requests are in flight. Returns how many were acked."""
    acked_now = 0
    killed = asyncio.Event()
    errors: list = []

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def writer(k: int):
            nonlocal acked_now
            signer = signers[k % len(signers)]
            while not killed.is_set():
                proposed = signer.entry()
                try:
                    async with session.post(server.url + ENTRIES, json=proposed) as r:
                        resp = Resp(r.status, {h.lower(): v for h, v in r.headers.items()},
                                    await r.read())
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    if killed.is_set():
                        return
                    raise
                if resp.status != 201:
                    errors.append((resp.status, resp.body[:300]))
                    return
                entry = pinned.verify_created(resp)  # also records its checkpoint
                assert entry.log_index not in acked
                acked[entry.log_index] = entry.body
                acked_now += 1

        async def reader():
            while not killed.is_set():
                try:
                    async with session.get(server.url + "/checkpoint") as r:
                        note = await r.read()
                        status = r.status
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    return
                if status == 200:
                    pinned.open(note)  # a served checkpoint: must stay consistent
                await asyncio.sleep(0.003)

        tasks = [asyncio.create_task(writer(k)) for k in range(WRITERS)]
        tasks.append(asyncio.create_task(reader()))
        while acked_now < target and not errors and not all(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0, 0.05))
        killed.set()
        server.kill(signal.SIGKILL)
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert not errors, errors[:3]
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[:3]
    return acked_now


async def test_kill_9_under_concurrent_writes(make_server, tmp_path):
    rng = random.Random(6962)
    server = make_server("--origin", "tlog.test/crash", data_dir=tmp_path / "log")
    pinned = PinnedLog.of(server)
    signers = [ecdsa_signer(), rsa_signer()]
    acked: dict[int, bytes] = {}

    for cycle in range(CYCLES):
        before = len(acked)
        n = await write_until_killed(server, pinned, signers, acked, 30 + 20 * cycle, rng)
        assert n >= 30 + 20 * cycle and len(acked) == before + n

        report = server.fsck()
        assert report["exit_code"] == 0 and report["ok"], (cycle, report)
        server.start()

        head = pinned.checkpoint()
        assert head.size >= max(acked) + 1
        assert head.size >= max(pinned.seen)  # no checkpoint ever served is lost (I6)
        assert report["entries"] == head.size
        bodies = stored_bodies(pinned, head.size)
        for index, body in acked.items():
            assert bodies[index] == body, (cycle, index)
        for index in rng.sample(sorted(acked), 5):
            assert pinned.get_entry(index).body == acked[index]
        pinned.all_seen_consistent_with(head)
        # Search rows were committed with their entries (I9), crash or not.
        db = sqlite3.connect(f"file:{Path(server.data_dir) / 'tlog.db'}?mode=ro", uri=True)
        try:
            indexed = db.execute("SELECT count(DISTINCT idx) FROM search "
                                 "WHERE key LIKE 'hash:%'").fetchone()[0]
        finally:
            db.close()
        assert indexed == head.size

    # The log still takes writes after the last crash.
    r, entry = pinned.submit(signers[0].entry())
    assert r.status == 201 and entry.log_index == pinned.checkpoint().size - 1


# -- the commit failing (disk full, I/O error) ---------------------------------------

def _published(data_dir) -> dict:
    import json
    return json.loads((Path(data_dir) / "published-checkpoint").read_text())


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
    from tlog.sequencer import Sequencer
    from tlog.storage import NewEntry, Storage, WriteFailedError

    storage = Storage.open(tmp_path / "tlog.db")
    sequencer = Sequencer(storage, lambda size, root, t: b"note %d" % size, lambda: 1000.0)
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
