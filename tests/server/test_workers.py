"""``tlog serve --workers N``: HTTP worker processes in front of the one
sequencer keep every invariant of one process (I4, I5, I6, I9), serve reads
themselves, and go away with the sequencer (a kill -9 acknowledges nothing
that was not durable)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ..serverproc import ServerProcess
from .helpers import PinnedLog, ecdsa_signer, get, post_json, post_many, rsa_signer

ENTRIES = "/api/v1/log/entries"


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _workers_of(pid: int) -> list[int]:
    return [c for c in _children(pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_workers_keep_the_invariants(make_server):
    server = make_server("--workers", "2", "--batch-size", "16")
    assert len(_workers_of(server.proc.pid)) == 2
    pinned = PinnedLog.of(server)
    signers = [ecdsa_signer(), rsa_signer()]
    bodies = [signers[i % 2].entry() for i in range(80)]
    rs = await post_many(server.url, ENTRIES, bodies + bodies[:8], concurrency=24)
    created = [pinned.verify_created(r) for r in rs if r.status == 201]
    assert len(created) == 80 and sum(r.status == 409 for r in rs) == 8
    assert sorted(e.log_index for e in created) == list(range(80))  # I4
    head = pinned.checkpoint()
    assert head.size == 80
    pinned.all_seen_consistent_with(head)  # I6 across batches from both workers
    for index in (0, 41, 79):
        pinned.get_entry(index)  # reads served by the workers themselves
    digest = bodies[5]["spec"]["data"]["hash"]["value"]
    found = post_json(server.url, "/api/v1/index/retrieve", {"hash": f"sha256:{digest}"})
    assert found.status == 200 and len(found.json()) == 1  # I9
    health = get(server.url, "/healthz")
    assert health.status == 200 and health.json()["treeSize"] == 80
    server.stop()
    assert server.fsck()["exit_code"] == 0


def test_workers_go_away_with_the_sequencer_and_nothing_acked_is_lost(make_server, tmp_path):
    server = make_server("--workers", "2")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    acked = [pinned.submit(signer.entry())[1] for _ in range(10)]
    workers = _workers_of(server.proc.pid)
    assert len(workers) == 2
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived the sequencer"
    again = ServerProcess(server.data_dir).start()  # one process, same log
    try:
        again_pinned = PinnedLog.of(again)
        for entry in acked:
            got = again_pinned.get_entry(entry.log_index)
            assert got.uuid == entry.uuid
    finally:
        again.stop()
    assert again.fsck()["exit_code"] == 0


def test_a_dead_worker_is_restarted(make_server):
    server = make_server("--workers", "1")
    (worker,) = _workers_of(server.proc.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = [w for w in _workers_of(server.proc.pid) if w != worker and _alive(w)]
        try:
            if new and get(server.url, "/healthz").status == 200:
                break
        except OSError:
            pass  # not listening yet
        time.sleep(0.1)
    else:
        raise AssertionError("the worker was not restarted")
    pinned = PinnedLog.of(server)
    pinned.submit(ecdsa_signer().entry())
    assert pinned.checkpoint().size == 1
