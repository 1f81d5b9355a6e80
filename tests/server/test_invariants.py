"""The log invariants I1–I10 of SPEC §4, each through real server processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog_client.checkpoint import Checkpoint, open_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.hashing import leaf_hash
from tlog_client.verify import verify_inclusion

from ..serverproc import ServerProcess, free_port
from .helpers import (PinnedLog, Resp, ecdsa_signer, error_message, get, post_json, post_many,
                      rsa_signer)

ENTRIES = "/api/v1/log/entries"


def db_rows(server, sql: str, args=()) -> list:
    db = sqlite3.connect(f"file:{Path(server.data_dir) / 'tlog.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def db_write(data_dir: Path, sql: str, args=()) -> None:
    db = sqlite3.connect(Path(data_dir) / "tlog.db", timeout=20)
    try:
        with db:
            assert db.execute(sql, args).rowcount == 1
    finally:
        db.close()


def run_serve(data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``tlog serve`` expecting it to refuse to start (it must exit)."""
    cmd = [sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(data_dir),
           "--port", str(free_port()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TLOG_LOG_LEVEL": "WARNING"})


def assert_clean(server) -> dict:
    report = server.fsck()
    assert report["exit_code"] == 0 and report["ok"], report
    return report


async def _submit_all(url: str, bodies: list, concurrency: int) -> list[Resp]:
    return await post_many(url, ENTRIES, bodies, concurrency)


# -- sizes 1, 2, 2^k-1, 2^k, 2^k+1 (I2, I5, I8) --------------------------------------

SAMPLE = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33]


def test_proofs_at_every_small_size(make_server):
    """Grow a log one entry at a time to 33: at each sampled size every
    entry's inclusion proof verifies at that size; consistency proofs
    between every pair of sampled sizes verify; every root equals the root
    recomputed from the bodies (I2). Then the same around 2^8 (255, 256, 257)."""
    server = make_server("--origin", "tlog.test/sizes")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    bodies, roots = [], {}
    for size in range(1, SAMPLE[-1] + 1):
        r, entry = pinned.submit(signer.entry())
        assert r.status == 201 and entry.log_index == size - 1
        proof = entry.inclusion_proof
        assert proof.tree_size == size  # an idle log integrates at once
        bodies.append(entry.body)
        cr = CompactRange()
        cr.extend(leaf_hash(b) for b in bodies)
        assert proof.root_hash == cr.root()
        roots[size] = proof.root_hash
        if size in SAMPLE:
            for i in range(size):
                got = pinned.get_entry(i)
                assert got.body == bodies[i]
                assert got.inclusion_proof.tree_size == size
    for a in SAMPLE:
        for b in SAMPLE:
            if a <= b:
                pinned.prove_consistent(Checkpoint(pinned.origin, a, roots[a]),
                                        Checkpoint(pinned.origin, b, roots[b]))
    # One stored checkpoint per size, each the one served (I6).
    stored = db_rows(server, "SELECT size, note FROM checkpoints ORDER BY size")
    assert [s for s, _ in stored] == list(range(SAMPLE[-1] + 1))
    for size, note in stored[1:]:
        assert pinned.open(note).root_hash == roots[size]

    # Around the first full tile: 2^8 - 1, 2^8, 2^8 + 1.
    rs = asyncio.run(_submit_all(server.url, [signer.entry() for _ in range(254 - 33)], 16))
    assert all(r.status == 201 for r in rs)
    bodies = [pinned.get_entry(i).body for i in range(254)]
    for size in (255, 256, 257):
        r, entry = pinned.submit(signer.entry())
        assert r.status == 201 and entry.inclusion_proof.tree_size == size
        bodies.append(entry.body)
        cr = CompactRange()
        cr.extend(leaf_hash(b) for b in bodies)
        assert cr.root() == entry.inclusion_proof.root_hash
        roots[size] = cr.root()
        for i in (0, 1, 127, 128, 200, 253, size - 2, size - 1):
            assert pinned.get_entry(i).body == bodies[i]
    for a in (1, 2, 16, 33, 255, 256, 257):
        for b in (255, 256, 257):
            if a <= b:
                pinned.prove_consistent(Checkpoint(pinned.origin, a, roots[a]),
                                        Checkpoint(pinned.origin, b, roots[b]))


# -- I1: halt rather than sign -----------------------------------------------------

def test_i1_halts_rather_than_signing_an_inconsistent_tree(make_server, tmp_path):
    server = make_server("--origin", "tlog.test/i1")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    for _ in range(3):
        assert pinned.submit(signer.entry())[0].status == 201
    head = pinned.checkpoint()
    assert head.size == 3
    # Damage the stored node (1, 0) (leaves 0..1) under the running server:
    # its in-memory right edge still gives the right new root, but the
    # consistency proof 3 -> 4 is read from storage and no longer verifies.
    db_write(server.data_dir, "UPDATE nodes SET hash = ? WHERE id = ?",
             (b"\x01" * 32, 1 << 48))
    proposed = signer.entry()
    message = error_message(post_json(server.url, ENTRIES, proposed), 503)
    assert "not accepting entries" in message
    health = get(server.url, "/healthz")
    assert health.status == 503 and health.json()["status"] == "halted"
    # Nothing was signed or stored: the head is still size 3, the entry absent.
    assert pinned.checkpoint() == head
    assert db_rows(server, "SELECT max(size), count(*) FROM checkpoints") == [(3, 4)]
    assert db_rows(server, "SELECT count(*) FROM entries") == [(3,)]
    again = post_json(server.url, ENTRIES, signer.entry())
    assert again.status == 503 and again.header("Retry-After")
    # Reads that do not need the damaged node still work.
    assert pinned.get_entry(0).log_index == 0
    server.stop()
    report = server.fsck()
    assert report["exit_code"] == 1 and any("node (1, 0)" in f for f in report["faults"])
    # Restarting on the damaged tree is refused with a clear message.
    out = run_serve(server.data_dir)
    assert out.returncode != 0
    assert "does not match" in out.stderr and "Traceback" not in out.stderr, out.stderr


# -- I3: leaf hashes checked on read -------------------------------------------------

def test_i3_corrupt_entry_is_not_served(make_server):
    server = make_server()
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    entries = [pinned.submit(signer.entry())[1] for _ in range(5)]
    body = bytearray(entries[2].body)
    body[-3] ^= 1
    db_write(server.data_dir, "UPDATE entries SET body = ? WHERE idx = 2", (bytes(body),))
    for path in (f"{ENTRIES}?logIndex=2", f"{ENTRIES}/{entries[2].uuid}"):
        r = get(server.url, path)
        assert r.status == 500 and "entry 2" in r.json()["message"], r.body
    r = post_json(server.url, f"{ENTRIES}/retrieve", {"logIndexes": [2]})
    assert r.status == 500
    for i in (0, 1, 3, 4):  # the others are still served and verify
        assert pinned.get_entry(i).body == entries[i].body
    server.stop()
    report = server.fsck()
    assert report["exit_code"] == 1
    assert any("entry 2" in f and "leaf hash" in f for f in report["faults"]), report


# -- I4: one index per canonical entry, decided by the database -----------------------

async def test_i4_100_identical_submissions(make_server):
    server = make_server()
    pinned = PinnedLog.of(server)
    proposed = rsa_signer().entry()
    # Some history first, so the entry's index is not 0.
    signer = ecdsa_signer()
    await _submit_all(server.url, [signer.entry() for _ in range(5)], 5)
    rs = await _submit_all(server.url, [proposed] * 100, 100)
    created = [r for r in rs if r.status == 201]
    conflicts = [r for r in rs if r.status == 409]
    assert len(created) == 1 and len(conflicts) == 99, sorted(r.status for r in rs)
    entry = pinned.verify_created(created[0])
    for r in conflicts:
        assert entry.uuid in error_message(r, 409)
        assert r.header("Location").rsplit("/", 1)[1] in (entry.uuid, entry.ref.key)
    assert pinned.checkpoint().size == 6
    # After a restart the database (not an in-memory set) still says 409.
    server.stop()
    server.start()
    r = post_json(server.url, ENTRIES, proposed)
    assert r.status == 409 and entry.uuid in r.header("Location")
    assert db_rows(server, "SELECT count(*) FROM entries WHERE leaf_hash = ?",
                   (bytes.fromhex(entry.uuid),)) == [(1,)]


async def test_i4_concurrent_distinct_entries_get_contiguous_indexes(make_server):
    server = make_server("--batch-size", "7")
    pinned = PinnedLog.of(server)
    signers = [ecdsa_signer(), rsa_signer(), ecdsa_signer(ec.SECP384R1(), "sha384")]
    bodies = [signers[i % 3].entry() for i in range(120)]
    # Include duplicates within the burst: each must be a 409 for its twin.
    rs = await _submit_all(server.url, bodies + bodies[:10], 32)
    created = [pinned.verify_created(r) for r in rs if r.status == 201]
    assert len(created) == 120 and sum(r.status == 409 for r in rs) == 10
    assert sorted(e.log_index for e in created) == list(range(120))
    head = pinned.checkpoint()
    assert head.size == 120
    pinned.all_seen_consistent_with(head)
    assert_clean(server)


# -- I5 + I6 + I8 + I9 under concurrent writes ---------------------------------------

async def test_i5_i6_i8_i9_under_concurrent_writes(make_server):
    """8 writers and readers at once: every 201 carries a verified inclusion
    proof against a signed checkpoint, is immediately found by search (I9),
    and survives an immediate kill -9 (I5); checkpoints seen by readers never
    shrink and are unique per size (I6); every read answer is one snapshot
    (I8): its proof, size, root and checkpoint agree."""
    server = make_server("--origin", "tlog.test/concurrent")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    done = asyncio.Event()
    acked: list = []
    sizes_seen: list[list[int]] = []
    problems: list = []

    async with aiohttp.ClientSession() as session:
        async def writer(n: int):
            for _ in range(n):
                proposed = signer.entry()
                async with session.post(server.url + ENTRIES, json=proposed) as r:
                    body = await r.read()
                    resp = Resp(r.status, {k.lower(): v for k, v in r.headers.items()}, body)
                entry = pinned.verify_created(resp)
                # I9: found by its digest at once.
                digest = proposed["spec"]["data"]["hash"]["value"]
                async with session.post(server.url + "/api/v1/index/retrieve",
                                        json={"hash": f"sha256:{digest}"}) as r:
                    found = await r.json()
                if found != [entry.ref.key]:
                    problems.append(("search", digest, found))
                acked.append(entry)

        async def reader():
            seen: list[int] = []
            sizes_seen.append(seen)
            while not done.is_set():
                async with session.get(server.url + "/checkpoint") as r:
                    cp = pinned.open(await r.read())
                    seen.append(cp.size)
                async with session.get(server.url + "/api/v1/log") as r:
                    info = await r.json()
                    cp = pinned.open(info["signedTreeHead"])
                    if (cp.size, cp.root_hash.hex()) != (info["treeSize"], info["rootHash"]):
                        problems.append(("log info", info))
                    seen.append(cp.size)
                if cp.size:
                    index = cp.size - 1
                    async with session.get(f"{server.url}{ENTRIES}?logIndex={index}") as r:
                        pinned.verify_entry(await r.json(), index=index)
                await asyncio.sleep(0)

        readers = [asyncio.create_task(reader()) for _ in range(2)]
        await asyncio.gather(*(writer(25) for _ in range(8)))
        done.set()
        await asyncio.gather(*readers)

    assert not problems, problems[:5]
    # I6 as seen by each reader: never decreasing.
    for seen in sizes_seen:
        assert seen == sorted(seen) and seen
    server.kill(signal.SIGKILL)  # I5: acknowledged means durable
    server.start()
    head = pinned.checkpoint()
    assert head.size == 200 and sorted(e.log_index for e in acked) == list(range(200))
    for entry in acked[::7]:
        assert pinned.get_entry(entry.log_index).body == entry.body
    pinned.all_seen_consistent_with(head)
    stored = db_rows(server, "SELECT size, note FROM checkpoints")
    for size, note in stored:
        if size in pinned.seen:
            assert pinned.open(note) == pinned.seen[size]
    # I9 in storage: every entry has its digest and key rows.
    assert db_rows(server, "SELECT count(DISTINCT idx) FROM search WHERE key LIKE 'hash:%'") \
        == [(200,)]
    assert db_rows(server, "SELECT count(*) FROM search WHERE key = ?",
                   (f"key:{signer.key_hash()}",)) == [(200,)]


def test_i6_reader_sizes_never_decrease(make_server):
    """One reader polling while writes land: each answer's size is at least
    the previous one, and a size's checkpoint is byte-identical every time."""
    server = make_server()
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    notes: dict[int, bytes] = {}
    sizes = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            r = get(server.url, "/checkpoint")
            cp = pinned.open(r.body)
            assert notes.setdefault(cp.size, r.body) == r.body
            sizes.append(cp.size)

    sizes.append(pinned.checkpoint().size)
    t = threading.Thread(target=poll)
    t.start()
    try:
        asyncio.run(_submit_all(server.url, [signer.entry() for _ in range(80)], 8))
    finally:
        stop.set()
        t.join()
    sizes.append(pinned.checkpoint().size)
    assert sizes == sorted(sizes) and sizes[0] == 0 and sizes[-1] == 80


# -- I7: one writer per database ------------------------------------------------------

SECOND_SERVER = ("already served by another process", "stop the other one", "--workers",
                 "PostgreSQL", "docs/runbook.md#second-server-refused")


def assert_second_server_refused(out: subprocess.CompletedProcess, pid: int) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, \
        out.stderr
    for words in SECOND_SERVER + (f"pid {pid}",):
        assert words.lower() in out.stderr.lower(), (words, out.stderr)


def test_i7_second_server_on_one_database_is_refused(make_server, tmp_path):
    """A second ``tlog serve`` on a database another one serves is refused at
    start (exit 2, one line saying what to do): on the same data directory,
    on a hard link to the file in another data directory, on a symlink to it,
    and with --workers. The first one is untouched, and once it is stopped
    the database can be served again."""
    data_dir = tmp_path / "one-log"
    server = make_server("--origin", "tlog.test/i7", data_dir=data_dir)
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    assert pinned.submit(signer.entry())[0].status == 201
    linked, symlinked = tmp_path / "hard-link", tmp_path / "symlink"
    for other in (linked, symlinked):
        other.mkdir()
        shutil.copy2(data_dir / "log-key.pem", other / "log-key.pem")
    os.link(data_dir / "tlog.db", linked / "tlog.db")
    (symlinked / "tlog.db").symlink_to(data_dir / "tlog.db")
    for where, args in [(data_dir, ()), (data_dir, ("--workers", "2")), (linked, ()),
                        (symlinked, ())]:
        assert_second_server_refused(run_serve(where, *args), server.proc.pid)
    assert pinned.submit(signer.entry())[0].status == 201  # the first one serves on
    assert pinned.checkpoint().size == 2
    server.stop()
    again = ServerProcess(linked).start()  # the lock goes with its process
    try:
        assert PinnedLog.of(again).checkpoint().size == 2
        assert_second_server_refused(run_serve(data_dir), again.proc.pid)
    finally:
        again.stop()


def test_i7_killed_server_leaves_no_lock(make_server, tmp_path):
    """kill -9: the kernel drops the lock with the process (nothing stale)."""
    server = make_server(data_dir=tmp_path / "log")
    server.kill()
    ServerProcess(server.data_dir).start().stop()


async def test_i7_compare_and_swap_two_sequencers_on_one_file(tmp_path):
    """The last guard, under the lock: two storage handles and two
    sequencers on one database file, in one process (what two servers
    would be), racing to integrate. A sequencer whose head is stale loses
    the compare-and-swap, stores nothing, reloads the verified head and
    integrates after it: every entry at one index, indexes contiguous, one
    checkpoint per size, each the root of the stored leaves and consistent
    with the next (no fork)."""
    from tlog.storage import NewEntry, Storage

    from .inprocess import make_identity, make_sequencer

    identity = make_identity("tlog.test/i7-cas")
    path = tmp_path / "tlog.db"
    a, b = Storage.open(path), Storage.open(path)
    # watch_s: no idle reload, so that b's head is stale when it next writes.
    seqs = [make_sequencer(s, identity, batch_size=8, watch_s=3600) for s in (a, b)]

    def entry(i: int) -> NewEntry:
        body = b"i7 entry %d" % i
        return NewEntry(leaf_hash(body), body, "hashedrekord")

    try:
        heads = await asyncio.gather(*(s.start() for s in seqs))  # two first starts
        assert heads[0] == heads[1] and heads[0].size == 0
        # Deterministic: a moves the head; b still holds size 0 and must lose
        # the compare-and-swap before it integrates at index 1.
        assert (await seqs[0].submit(entry(0))).index == 0
        assert seqs[1].head.size == 0  # stale: its write must fail the compare-and-swap
        got = await seqs[1].submit(entry(1))
        assert got.index == 1 and got.checkpoint.size == 2
        # Racing: both sequencers integrate at once, batches interleaved.
        total = 200
        results = await asyncio.gather(*(seqs[i % 2].submit(entry(i)) for i in range(2, total)))
        results = [None, got] + results
        # The same entries sent to both at once: each at one index, decided
        # by the database (the other sequencer answers it as a duplicate).
        twins = [entry(total + k) for k in range(10)]
        pairs = await asyncio.gather(*(asyncio.gather(seqs[0].submit(e), seqs[1].submit(e))
                                       for e in twins))
    finally:
        for s in seqs:
            await s.stop()
    assert sorted(r.index for r in results[1:]) == list(range(1, total))
    for x, y in pairs:
        assert x.index == y.index and sorted((x.duplicate, y.duplicate)) == [False, True]
    assert sorted(x.index for x, _ in pairs) == list(range(total, total + 10))
    with a.snapshot() as snap:
        stored = list(snap.entries())
        checkpoints = list(snap.checkpoints())
    a.close()
    b.close()
    assert [e.index for e in stored] == list(range(total + 10))
    sizes = [cp.size for cp in checkpoints]
    assert sizes == sorted(set(sizes)) and sizes[-1] == total + 10
    cr, roots = CompactRange(), {0: CompactRange().root()}
    for e in stored:
        cr.append(e.leaf_hash)
        roots[cr.end] = cr.root()
    by_size = {cp.size: cp for cp in checkpoints}
    for cp in checkpoints:  # signed, and the root of the stored leaves: one tree
        body, _ = open_checkpoint(cp.note, identity.verifiers(), identity.origin)
        assert (body.size, body.root_hash) == (cp.size, cp.root) and roots[cp.size] == cp.root
    for r in results[1:]:  # each answer's checkpoint is the stored one of its size
        assert by_size[r.checkpoint.size] == r.checkpoint
        verify_inclusion(r.index, r.checkpoint.size, stored[r.index].leaf_hash, r.proof,
                         r.checkpoint.root)


def test_i7_two_first_starts_at_once_create_one_log(tmp_path):
    """Two processes starting a NEW log on one data dir at the same moment:
    the first to take the database's lock creates the log and serves it;
    the other is refused (exit 2, saying another process serves it) before
    it opens anything, so it cannot write a key or an identity of its own.
    After a restart the log is the winner's: one key, one identity, clean."""
    for round_ in range(3):
        data_dir = tmp_path / f"race{round_}"
        servers = [ServerProcess(data_dir), ServerProcess(data_dir)]
        errors: list[str] = []

        def start(s):
            try:
                s.start()
            except RuntimeError as exc:
                errors.append(str(exc))

        threads = [threading.Thread(target=start, args=(s,)) for s in servers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            running = [s for s in servers if s.proc.poll() is None]
            assert len(running) == 1 and len(errors) == 1, errors
            (winner,) = running
            assert "server exited with 2" in errors[0], errors
            for words in SECOND_SERVER + (f"pid {winner.proc.pid}",):
                assert words.lower() in errors[0].lower(), (words, errors[0])
            served = get(winner.url, "/api/v1/log/publicKey").body
            pinned = PinnedLog.of(winner)
            assert served == pinned.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        finally:
            for s in servers:
                s.kill()
        restarted = ServerProcess(data_dir).start()
        try:
            assert get(restarted.url, "/api/v1/log/publicKey").body == served
        finally:
            restarted.stop()
        assert_clean(restarted)


# -- I10: identity fixed at creation ---------------------------------------------------

def test_i10_key_file_is_0600(make_server):
    server = make_server()
    mode = stat.S_IMODE((Path(server.data_dir) / "log-key.pem").stat().st_mode)
    assert mode == 0o600


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_i10_restart_with_another_key_or_origin_is_refused(make_server, tmp_path, key_type):
    server = make_server("--origin", "tlog.test/i10", "--key-type", key_type)
    pinned = PinnedLog.of(server)
    entry = pinned.submit(ecdsa_signer().entry())[1]
    server.stop()
    data_dir = Path(server.data_dir)
    key_path = data_dir / "log-key.pem"
    original = key_path.read_bytes()

    def write_key(data: bytes, mode: int = 0o600):
        def prepare(d: Path):
            (d / "log-key.pem").write_bytes(data)
            (d / "log-key.pem").chmod(mode)
        return prepare

    cases = {  # name: (prepare the copy, serve args, expected in the message)
        "other origin": (None, ("--origin", "tlog.test/other"), ["origin", "tlog.test/i10"]),
        "other ed25519 key": (write_key(_pem_key(ed25519.Ed25519PrivateKey.generate())), (),
                              ["not the key this log was created with"]),
        "other ecdsa key": (write_key(_pem_key(ec.generate_private_key(ec.SECP256R1()))), (),
                            ["not the key this log was created with"]),
        "other key and origin": (write_key(_pem_key(ec.generate_private_key(ec.SECP256R1()))),
                                 ("--origin", "tlog.test/other"), ["refusing to start"]),
        "key readable by others": (write_key(original, 0o644), (), ["chmod"]),
        "key missing": (lambda d: (d / "log-key.pem").unlink(), (), ["missing"]),
        "key not PEM": (write_key(b"garbage"), (), ["log-key.pem", "PEM"]),
        "key P-384": (write_key(_pem_key(ec.generate_private_key(ec.SECP384R1()))), (),
                      ["Ed25519 or ECDSA P-256"]),
    }
    if key_type != "ed25519":  # the rest does not depend on the log's key type
        cases = {k: v for k, v in cases.items() if k in ("other origin", "other ed25519 key")}
    runs = []
    for name, (prepare, args, _) in cases.items():
        copy = tmp_path / name.replace(" ", "-")
        shutil.copytree(data_dir, copy)
        if prepare:
            prepare(copy)
        runs.append((name, copy, args))
    results = run_serves([(copy, args) for _, copy, args in runs])
    for (name, copy, _), (code, stderr) in zip(runs, results):
        assert code not in (0, None), (name, stderr)
        assert "Traceback" not in stderr, (name, stderr)
        for text in cases[name][2]:
            assert text in stderr, (name, stderr)
        assert "refusing" in stderr or "chmod" in stderr or "PEM" in stderr \
            or "P-256" in stderr, (name, stderr)

    # The original key and origin (or no origin flag) still work; nothing changed.
    for args in (("--origin", "tlog.test/i10"), ())[:2 if key_type == "ed25519" else 1]:
        again = make_server(*args, data_dir=data_dir)
        pinned.url = again.url
        assert pinned.get_entry(entry.log_index).body == entry.body
        assert get(again.url, "/api/v1/log").json()["treeID"] == str(pinned.tree_id)
        again.stop()
    assert key_path.read_bytes() == original


def run_serves(runs: list[tuple[Path, tuple]], timeout: float = 30) -> list[tuple[int, str]]:
    """Start ``tlog serve`` for each (data_dir, args) at once, expecting each
    to refuse to start; return (exit code, stderr) of each."""
    procs = []
    for data_dir, args in runs:
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(data_dir),
               "--port", str(free_port()), *args]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True, env={**os.environ, "TLOG_LOG_LEVEL": "WARNING"}))
    results = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            results.append((None, "did not exit: " + err))
            continue
        results.append((p.returncode, err))
    return results


def test_i10_new_log_with_bad_origin_is_refused(tmp_path):
    origins = ["has space", "a+b", "tab\there", "new\nline"]
    results = run_serves([(tmp_path / f"bad{i}", ("--origin", o)) for i, o in enumerate(origins)])
    for origin, (code, stderr) in zip(origins, results):
        assert code not in (0, None) and "origin" in stderr, (origin, stderr)
        assert "Traceback" not in stderr


def test_pool_full_is_503_with_retry_after(make_server):
    """A full pool answers 503 + Retry-After at once, never queues without
    bound; every accepted entry is still logged."""
    server = make_server("--pool-size", "2", "--batch-size", "3", "--batch-delay-ms", "1000")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    rs = asyncio.run(_submit_all(server.url, [signer.entry() for _ in range(12)], 12))
    statuses = sorted(r.status for r in rs)
    assert set(statuses) <= {201, 503} and 503 in statuses and 201 in statuses, statuses
    for r in rs:
        if r.status == 503:
            error_message(r, 503)
            assert int(r.header("Retry-After")) >= 1
        else:
            pinned.verify_created(r)
    assert pinned.checkpoint().size == statuses.count(201)


def test_empty_origin_setting_means_unset(make_server, tmp_path):
    """TLOG_ORIGIN="" (an empty setting) is no origin: a new log gets the
    default one, and restarts with the same empty setting are accepted."""
    data_dir = tmp_path / "log"
    server = make_server(data_dir=data_dir, env={"TLOG_ORIGIN": ""})
    origin = PinnedLog.of(server).origin
    assert origin.endswith(f"/{PinnedLog.of(server).tree_id}")
    server.stop()
    again = make_server(data_dir=data_dir, env={"TLOG_ORIGIN": ""})
    assert PinnedLog.of(again).checkpoint().origin == origin


def test_key_written_but_log_not_yet_recorded(make_server, tmp_path):
    """A crash after the first start wrote the key but before the database
    recorded the log: the next start adopts that key (it never made a
    checkpoint, so no other key can have signed anything)."""
    data_dir = tmp_path / "log"
    data_dir.mkdir()
    key = ed25519.Ed25519PrivateKey.generate()
    key_path = data_dir / "log-key.pem"
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    server = make_server(data_dir=data_dir)
    pinned = PinnedLog.of(server)
    assert pinned.public_key.public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw) == \
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert pinned.submit(ecdsa_signer().entry())[0].status == 201
