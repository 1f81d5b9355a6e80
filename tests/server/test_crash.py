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
