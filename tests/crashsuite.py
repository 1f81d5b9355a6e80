"""kill -9 cycles of a real server under concurrent writes (SPEC §9, I5, I6).

Shared by the short test (tests/server/test_crash.py, a few cycles) and the
long run (scripts/crash.py, 50 and more). Each cycle:

1. starts ``tlog serve`` (the same data directory every time);
2. runs concurrent writers (hashedrekord entries from ECDSA and RSA keys,
   and DSSE attestations) and a reader polling ``/checkpoint``; every 201 is
   verified completely (entry, SET, inclusion proof, signed checkpoint) and
   remembered with its index and exact body;
3. sends SIGKILL at a random moment: after a random number of
   acknowledgements, after a random time, or right as the load starts, with
   requests in flight; or, some cycles, while the server is still starting;
4. runs ``tlog fsck`` on what the killed process left;
5. restarts and checks: every acknowledged entry is at its acknowledged index
   with identical bytes (read back from the entry bundles, a sample also by
   ``GET /api/v1/log/entries``), the new head is at least every acknowledged
   entry and every checkpoint any client saw, every checkpoint seen is
   consistent with the new head (proofs fetched and verified), the published
   record is the head, and the search index covers every entry (I9).

Failures are collected, not raised, so a long run reports them all.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from tlog.published import PublishedRecord
from tlog_client import dsse, intoto
from tlog_client.tiles import decode_entry_bundle, entries_path

from .client.attestation_samples import ecdsa_key, payload
from .serverproc import ServerProcess
from .server.helpers import PinnedLog, Resp, ecdsa_signer, get, rsa_signer, unique_data

ENTRIES = "/api/v1/log/entries"
MODES = ["after-acks", "after-time", "at-once", "during-start"]


@dataclass
class CycleResult:
    cycle: int
    kill_mode: str
    load_seconds: float
    acknowledged: int  # 201s in this cycle
    in_flight_at_kill: int  # requests sent and unanswered when the server died
    in_flight_logged: int  # of those, found in the log after the restart
    head_size: int  # tree size after the restart
    fsck_ok: bool
    fsck_entries: int
    fsck_faults: list[str] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # acknowledged, then missing or changed
    failures: list[str] = field(default_factory=list)


class Writer:
    """Makes proposed entries of several kinds (fresh ones every time)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.signers = [ecdsa_signer(), rsa_signer()]
        self.key = ecdsa_key()

    def entry(self) -> dict:
        if self.rng.random() < 0.15:
            statement = {"_type": "https://in-toto.io/Statement/v1",
                         "subject": [{"name": "a", "digest": {
                             "sha256": unique_data().hex()[:64].ljust(64, "0")}}],
                         "predicateType": "https://example.com/crash-test",
                         "predicate": {"n": self.rng.randrange(1 << 30)}}
            envelope = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(statement),
                                          [self.key.private])
            return dsse.build_proposed(envelope, [self.key.pem])
        return self.rng.choice(self.signers).entry()


class CrashSuite:
    def __init__(self, data_dir: Path, *, seed: int = 6962, writers: int = 8,
                 server_args: tuple[str, ...] = ()) -> None:
        self.rng = random.Random(seed)
        self.writers = writers
        self.server = ServerProcess(data_dir, "--origin", "tlog.test/crash", *server_args)
        self.pinned: PinnedLog | None = None
        self.acked: dict[int, bytes] = {}
        self.unacked: dict[bytes, bytes] = {}  # leaf body hash -> proposed (in flight)
        self.results: list[CycleResult] = []
        self.maker = Writer(self.rng)

    # -- one cycle ------------------------------------------------------------------

    def cycle(self) -> CycleResult:
        n = len(self.results)
        mode = self.rng.choices(MODES, [5, 4, 1, 1])[0]
        if mode == "during-start" and self.pinned is not None:
            started = time.monotonic()
            self._kill_during_start()
            acked, in_flight = 0, []
        else:
            mode = "after-acks" if mode == "during-start" else mode
            self.server.start()
            if self.pinned is None:
                self.pinned = PinnedLog.of(self.server)
            started = time.monotonic()
            acked, in_flight = asyncio.run(self._load_until_kill(mode))
        load_seconds = time.monotonic() - started
        report = self.server.fsck()
        result = CycleResult(n, mode, round(load_seconds, 3), acked, len(in_flight), 0, 0,
                             bool(report.get("ok")) and report.get("exit_code") == 0,
                             report.get("entries", -1), report.get("faults", []))
        try:
            self.server.start()
            self._check_after_restart(result, report, in_flight)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            result.failures.append(f"{type(exc).__name__}: {exc}")
        self.server.kill(signal.SIGKILL)  # the next cycle starts it again
        self.results.append(result)
        return result

    def _kill_during_start(self) -> None:
        """SIGKILL the server while it starts (opening the database, checking
        the published record, loading the head), before it serves."""
        server = self.server
        cmd = [sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(server.data_dir),
               "--port", str(server.port), *server.args]
        with open(server.log_path, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, "TLOG_LOG_LEVEL": "WARNING"})
            time.sleep(self.rng.uniform(0.05, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)

    async def _load_until_kill(self, mode: str) -> tuple[int, list[dict]]:
        killed = asyncio.Event()
        acked_now = 0
        pending: dict[int, dict] = {}
        errors: list[str] = []
        server, pinned = self.server, self.pinned
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def writer(k: int) -> None:
                nonlocal acked_now
                while not killed.is_set():
                    proposed = self.maker.entry()
                    pending[k] = proposed
                    try:
                        async with session.post(server.url + ENTRIES, json=proposed) as r:
                            resp = Resp(r.status, {h.lower(): v for h, v in r.headers.items()},
                                        await r.read())
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                        if killed.is_set():
                            return  # in flight at the kill: stays in ``pending``
                        raise
                    if resp.status == 503 and killed.is_set():
                        return  # answered "not logged" as the server died: in flight
                    del pending[k]
                    if resp.status != 201:
                        errors.append(f"{resp.status} {resp.body[:200]!r}")
                        return
                    entry = _verify_created(pinned, resp)
                    if entry.log_index in self.acked:
                        errors.append(f"index {entry.log_index} acknowledged twice")
                    self.acked[entry.log_index] = entry.body
                    acked_now += 1

            async def reader() -> None:
                while not killed.is_set():
                    try:
                        async with session.get(server.url + "/checkpoint") as r:
                            note, status = await r.read(), r.status
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                        return
                    if status == 200:
                        pinned.open(note)  # every checkpoint seen must stay consistent
                    await asyncio.sleep(0.003)

            tasks = [asyncio.create_task(writer(k)) for k in range(self.writers)]
            tasks.append(asyncio.create_task(reader()))
            if mode == "after-acks":
                target = self.rng.randint(1, 80)
                while acked_now < target and not errors and not all(t.done() for t in tasks):
                    await asyncio.sleep(0.002)
                await asyncio.sleep(self.rng.uniform(0, 0.03))
            elif mode == "after-time":
                await asyncio.sleep(self.rng.uniform(0.01, 1.0))
            else:
                await asyncio.sleep(self.rng.uniform(0, 0.01))
            killed.set()
            self.server.kill(signal.SIGKILL)
            results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        if errors or failures:
            raise AssertionError(f"load failed: {(errors + failures)[:3]}")
        return acked_now, list(pending.values())

    def _check_after_restart(self, result: CycleResult, report: dict,
                             in_flight: list[dict]) -> None:
        pinned = self.pinned
        head = pinned.checkpoint()
        result.head_size = head.size
        if self.acked and head.size < max(self.acked) + 1:
            result.failures.append(f"head {head.size} is behind acknowledged index "
                                   f"{max(self.acked)}")
        if pinned.seen and head.size < max(pinned.seen):
            result.failures.append(f"head {head.size} is behind a checkpoint seen at size "
                                   f"{max(pinned.seen)} (I6)")
        if report.get("entries") != head.size:
            result.failures.append(f"fsck saw {report.get('entries')} entries, the restarted "
                                   f"server serves {head.size}")
        bodies = self._bodies(head.size)
        for index, body in self.acked.items():
            if index >= len(bodies) or bodies[index] != body:
                result.lost.append(index)
        for index in self.rng.sample(sorted(self.acked), min(5, len(self.acked))):
            r = get(self.server.url, f"{ENTRIES}?logIndex={index}")
            if r.status != 200 or _verify_created(pinned, r, index).body != self.acked[index]:
                result.lost.append(index)
        result.lost = sorted(set(result.lost))
        for cp in sorted(pinned.seen.values(), key=lambda c: c.size):
            if cp.size <= head.size:
                try:
                    pinned.prove_consistent(cp, head)
                except Exception as exc:  # noqa: BLE001
                    result.failures.append(f"checkpoint {cp.size} seen before is not "
                                           f"consistent with {head.size}: {exc}")
        logged = set(bodies)
        result.in_flight_logged = sum(1 for p in in_flight if _canonical(p) in logged)
        record = PublishedRecord(self.server.data_dir).read()
        if record is None or record.size != head.size:
            result.failures.append(f"published record at {record and record.size}, "
                                   f"head {head.size}")
        db = sqlite3.connect(f"file:{self.server.data_dir / 'tlog.db'}?mode=ro", uri=True)
        try:
            indexed = db.execute("SELECT count(DISTINCT idx) FROM search "
                                 "WHERE key LIKE 'hash:%'").fetchone()[0]
        finally:
            db.close()
        if indexed != head.size:
            result.failures.append(f"search index covers {indexed} of {head.size} entries (I9)")

    def _bodies(self, size: int) -> list[bytes]:
        bodies: list[bytes] = []
        for n in range((size + 255) // 256):
            width = min(256, size - 256 * n)
            r = get(self.server.url, "/" + entries_path(n, width))
            if r.status != 200:
                raise AssertionError(f"entry bundle {n}: {r.status} {r.body[:200]!r}")
            bodies += decode_entry_bundle(r.body, width)
        return bodies

    # -- the report ----------------------------------------------------------------------

    def summary(self) -> dict:
        lost = sorted({i for r in self.results for i in r.lost})
        return {
            "cycles": len(self.results),
            "entries_acknowledged": len(self.acked),
            "entries_lost": len(lost),
            "lost_indexes": lost[:100],
            "final_tree_size": self.results[-1].head_size if self.results else 0,
            "fsck_clean": sum(r.fsck_ok for r in self.results),
            "fsck_faulty": sum(not r.fsck_ok for r in self.results),
            "checkpoints_seen": len(self.pinned.seen) if self.pinned else 0,
            "in_flight_at_kill": sum(r.in_flight_at_kill for r in self.results),
            "in_flight_logged": sum(r.in_flight_logged for r in self.results),
            "kill_modes": {m: sum(r.kill_mode == m for r in self.results) for m in MODES},
            "failures": [f"cycle {r.cycle}: {f}" for r in self.results for f in r.failures],
            "ok": bool(self.results) and not lost
            and all(r.fsck_ok and not r.failures for r in self.results),
        }

    def cycles_json(self) -> list[dict]:
        return [asdict(r) for r in self.results]


def _verify_created(pinned: PinnedLog, resp: Resp, index: int | None = None):
    """PinnedLog.verify_created (or, given ``index``, a GET of that entry),
    for attestations too: the attestation (the DSSE envelope kept with a
    dsse entry) is checked against the entry's envelope hash, then set aside
    for the common checks."""
    obj = resp.json()
    inner = next(iter(obj.values()))
    attestation = inner.pop("attestation", None)
    if attestation is not None:
        from tlog_client.encoding import b64decode_std
        envelope = b64decode_std(attestation["data"], "attestation.data")
        body = json.loads(b64decode_std(inner["body"], "body"))
        assert body["kind"] == "dsse"
        assert dsse.verify_attestation(dsse.parse_canonical(b64decode_std(inner["body"], "b")),
                                       envelope)
    entry = pinned.verify_entry(obj, index=index)
    if index is not None:
        return entry
    location = resp.header("Location") or ""
    assert location.rsplit("/", 1)[-1] in (entry.uuid, entry.ref.key), location
    return entry


def _canonical(proposed: dict) -> bytes:
    """The canonical body of a proposed entry (what the log stores)."""
    from tlog_client import hashedrekord
    if proposed["kind"] == "dsse":
        return dsse.parse_proposed(proposed).canonical_body()
    return hashedrekord.parse_proposed(proposed).canonical_body()
