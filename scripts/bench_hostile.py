#!/usr/bin/env python3
"""Hostile-load benchmark (SPEC §10 U5): an unrelated read under a flood.

A real ``tlog serve`` (``--workers 2`` by default, both cores, as
recommended on this machine) holds a log of a few thousand signed entries
(populated first; two keys, so a key search matches half of them). Then,
phase after phase, a load generator in this process (niced by 10: on one
machine with the server, it takes the CPU time the server leaves, as an
attacker on other machines would) floods it while a separate process (the
probe, not niced) reads something unrelated, one request at a
time over a keep-alive connection every 10 ms: ``GET /checkpoint`` and
``GET /api/v1/log/entries?logIndex=<random>`` in turn. The server's resident
memory (its whole process tree) is sampled every 100 ms.

The phases:

- ``idle``: the probe alone (the reference);
- ``submissions``: 32 connections posting the most expensive dsse entries
  still allowed: one P-521 signature (IEEE P1363 form: four verifications
  per key tried) against 16 verifiers (the cap of signature × verifier
  trials), each verifier a chain of 10 certificates whose issuers are P-521
  and RSA-4096 keys (too large for the key cache, so every chain is checked
  again), the signer's key last; half of them signed by a key not among the
  verifiers (invalid: every trial fails, the entry is refused after all of
  them); on 8 more, the costliest hashedrekord entries small enough to be
  checked on the event loop (P-521 keys, each a new one; half of them with
  a signature that does not verify); and, on 4, 4 MB JSON bodies of
  400,000 small objects (the JSON parser's worst case);
- ``abandoned searches``: as fast as the generator can, searches that match
  thousands of entries sent on a new connection that is closed (or reset)
  at once;
- ``waiting searches``: 1,000 connections each posting the same large search
  and waiting for its answer, over and over;
- ``all``: every load above at once.

Per phase: p50/p99/max latency of the unrelated reads, peak RSS, and the
statuses the hostile requests got. The targets: p99 <= 50 ms in every phase,
peak RSS within the documented bound (docs/quickstart-operator.md, "Limits
of one request"). Writes docs/bench/hostile.json.

    .venv/bin/python scripts/bench_hostile.py [--phase-s 20] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import http.client
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchserver  # noqa: E402
import loadgen  # noqa: E402
import signed_entries  # noqa: E402
from render_benchmarks import load_average, machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENTRIES = "/api/v1/log/entries"
SEARCH = "/api/v1/index/retrieve"
P99_TARGET_MS = 50.0
RSS_BOUND_MIB = 700  # --workers 2: see docs/quickstart-operator.md, "Limits of one request"
POPULATE = 4000
GENERATOR_NICE = 10
PHASES = ("idle", "submissions", "abandoned searches", "waiting searches", "all")


# -- the most expensive entries still allowed -----------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_public, subject: str, issuer_private, issuer: str, ca: bool) -> x509.Certificate:
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(subject_public).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_private, hashes.SHA256()))


def chain_pem(leaf_private, issuers: list) -> bytes:
    """A chain of 1 + len(issuers) certificates (leaf first), each issued by
    the next; the last is self-issued."""
    keys = [leaf_private, *issuers]
    certs = []
    for i, key in enumerate(keys):
        issuer = keys[min(i + 1, len(keys) - 1)]
        certs.append(_cert(key.public_key(), f"c{i}", issuer, f"c{min(i + 1, len(keys) - 1)}",
                           ca=i > 0))
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _p1363(private: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """A P-521 signature in IEEE P1363 form (r || s): the server tries it as
    DER and as P1363, with SHA-256 and SHA-512: four checks per key."""
    r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(66, "big") + s.to_bytes(66, "big")


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def expensive_bodies(count: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``count`` valid and ``count`` invalid dsse entries at the trial cap
    (1 signature x 16 verifiers of 10-certificate chains)."""
    rnd = random.Random(seed)
    issuers = [ec.generate_private_key(ec.SECP521R1()) if k % 2 else
               rsa.generate_private_key(public_exponent=65537, key_size=4096) for k in range(9)]
    leaves = [ec.generate_private_key(ec.SECP521R1()) if k % 2 == 0 else
              rsa.generate_private_key(public_exponent=65537, key_size=4096)
              for k in range(15)]
    signer = ec.generate_private_key(ec.SECP521R1())
    stranger = ec.generate_private_key(ec.SECP521R1())
    verifiers = [_b64(chain_pem(k, issuers)) for k in leaves]
    verifiers.append(_b64(chain_pem(signer, issuers)))  # the signer's last: all 16 tried
    valid, invalid = [], []
    for i in range(2 * count):
        payload = b"hostile %d %d" % (seed, rnd.getrandbits(64))
        key = signer if i % 2 == 0 else stranger
        envelope = json.dumps({"payload": _b64(payload), "payloadType": "text/plain",
                               "signatures": [{"sig": _b64(_p1363(key, _pae("text/plain",
                                                                              payload)))}]})
        body = json.dumps({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": envelope, "verifiers": verifiers}}}).encode()
        (valid if i % 2 == 0 else invalid).append(body)
    return valid, invalid


def small_p521_bodies(count: int) -> list[bytes]:
    """``count`` hashedrekord entries under 2 KiB, each with a P-521 key of
    its own (no key cache helps); every other one's signature is over
    another digest (refused after its check)."""
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    out = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP521R1())
        digest = os.urandom(32)
        signed = digest if i % 2 == 0 else os.urandom(32)
        sig = key.sign(signed, ec.ECDSA(Prehashed(hashes.SHA256())))
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append(json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": _b64(sig), "publicKey": {"content": _b64(pem)}}}}).encode())
    return out


def json_bomb() -> bytes:
    """About 4 MB of JSON (the body limit) of 400,000 one-member objects: the
    strict parser's costliest shape (about 0.9 s of CPU here)."""
    body = json.dumps({"entries": [{"a": 1}] * 400_000}).encode()
    assert len(body) <= 4 << 20, len(body)
    return body


# -- the log -------------------------------------------------------------------------

def populate(server: benchserver.Server) -> tuple[list[bytes], bytes]:
    """POST ``POPULATE`` signed entries of two keys; returns them and the first
    key's PEM (its search matches half of the log)."""
    bodies = signed_entries.cached(POPULATE, keys=2, seed="tlog-hostile")
    requests = iter([("POST", ENTRIES, b) for b in bodies])
    result = asyncio.run(loadgen.closed_loop("127.0.0.1", server.port, requests, 32))
    summary = result.summary()
    if summary["ok"] != POPULATE:
        raise RuntimeError(f"populating the log: {summary}")
    key = json.loads(bodies[0])["spec"]["signature"]["publicKey"]["content"]
    return bodies, base64.b64decode(key)


def search_body(key_pem: bytes) -> bytes:
    """A large search: the first key (half the log), or'ed with every other
    key a query can name."""
    return json.dumps({"publicKey": {"format": "x509", "content": _b64(key_pem)},
                       "hash": "sha256:" + "cd" * 32, "email": "a@example.com",
                       "subject": "https://example.com/x", "predicateType": "p",
                       "builderId": "b"}).encode()


# -- the load --------------------------------------------------------------------------

class Load:
    """Hostile clients, run in this process's event loop until ``stop``."""

    def __init__(self, server: benchserver.Server, valid: list[bytes], invalid: list[bytes],
                 small: list[bytes], bomb: bytes, search: bytes) -> None:
        self.server = server
        self.valid, self.invalid, self.small = valid, invalid, small
        self.bomb, self.search = bomb, search
        self.counts: Counter[str] = Counter()

    async def _post(self, reader, writer, path: str, body: bytes) -> int:
        writer.write(loadgen.encode("POST", path, body, "127.0.0.1"))
        await writer.drain()
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("closed")
        status = int(line.split()[1])
        length = 0
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        return status

    async def _client(self, label: str, bodies, path: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
            except OSError:
                self.counts[f"{label}: connect error"] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                while not stop.is_set():
                    status = await self._post(reader, writer, path, next(bodies))
                    self.counts[f"{label}: {status}"] += 1
                    if status == 503:
                        await asyncio.sleep(0.05)  # as told by Retry-After, a little
            except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError):
                self.counts[f"{label}: connection lost"] += 1
            finally:
                writer.transport.abort()

    async def submissions(self, stop: asyncio.Event) -> None:
        mixed = _cycle([*self.valid, *self.invalid])
        small = _cycle(self.small)
        bomb = _cycle([self.bomb])
        await asyncio.gather(*(self._client("dsse at the cap", mixed, ENTRIES, stop)
                               for _ in range(28)),
                             *(self._client("small P-521", small, ENTRIES, stop)
                               for _ in range(8)),
                             *(self._client("json bomb", bomb, ENTRIES, stop) for _ in range(4)))

    async def abandoned(self, stop: asyncio.Event) -> None:
        request = loadgen.encode("POST", SEARCH, self.search, "127.0.0.1")
        sem = asyncio.Semaphore(500)

        async def one(k: int) -> None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
                writer.write(request)
                await writer.drain()
                if k % 2:
                    writer.transport.abort()  # reset
                else:
                    writer.close()  # FIN
                self.counts["abandoned search: sent"] += 1
            except OSError:
                self.counts["abandoned search: connect error"] += 1
            finally:
                sem.release()

        k = 0
        tasks = set()
        while not stop.is_set():
            await sem.acquire()
            k += 1
            task = asyncio.ensure_future(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def waiting(self, stop: asyncio.Event, clients: int = 1000) -> None:
        searches = _cycle([self.search])
        await asyncio.gather(*(self._client("waiting search", searches, SEARCH, stop)
                               for _ in range(clients)))

    async def run(self, phase: str, seconds: float) -> None:
        stop = asyncio.Event()
        loads = {"submissions": [self.submissions], "abandoned searches": [self.abandoned],
                 "waiting searches": [self.waiting],
                 "all": [self.submissions, self.abandoned, self.waiting]}.get(phase, [])
        tasks = [asyncio.ensure_future(f(stop)) for f in loads]
        await asyncio.sleep(seconds)
        stop.set()
        if tasks:
            await asyncio.wait(tasks, timeout=60)


def _cycle(items: list[bytes]):
    while True:
        yield from items


# -- the probe and the memory sampler ------------------------------------------------

def probe(port: int, size: int, stop, out) -> None:
    """In its own process: unrelated reads, one at a time, every 10 ms, over
    a keep-alive connection (reconnecting if it is closed)."""
    rnd = random.Random(7)
    samples = []
    conn = None
    k = 0
    while not stop.is_set():
        path = "/checkpoint" if k % 2 == 0 else f"{ENTRIES}?logIndex={rnd.randrange(size)}"
        kind = "checkpoint" if k % 2 == 0 else "entry"
        k += 1
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            conn = None
        samples.append((time.time(), kind, (time.perf_counter() - started) * 1000, status))
        time.sleep(0.01)
    out.put(samples)


def sample_rss(pid: int, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        out.append((time.time(), benchserver.rss_mib(pid)))
        time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the run -----------------------------------------------------------------------------

def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="tlog-bench-hostile-"))
    server_args = ("--workers", str(args.workers)) if args.workers else ()
    print("making the hostile entries ...", file=sys.stderr)
    valid, invalid = expensive_bodies(args.entries, seed=1)
    small = small_p521_bodies(args.small)
    bomb = json_bomb()
    try:
        server = benchserver.Server(workdir / "log", *server_args, cpus=None)
        with server:
            bodies, key_pem = populate(server)
            size = len(bodies)
            load = Load(server, valid, invalid, small, bomb, search_body(key_pem))
            ctx = multiprocessing.get_context("spawn")
            stop_probe, results = ctx.Event(), ctx.Queue()
            prober = ctx.Process(target=probe, args=(server.port, size, stop_probe, results))
            rss: list[tuple[float, float]] = []
            stop_rss = threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(server.proc.pid, stop_rss, rss))
            rss_start = benchserver.rss_mib(server.proc.pid)
            prober.start()
            sampler.start()
            # The load generator shares the machine's cores with the server:
            # niced, it takes what the server leaves (as an attacker on
            # other machines would) instead of starving it of CPU time.
            os.setpriority(os.PRIO_PROCESS, 0, GENERATOR_NICE)
            time.sleep(1.0)
            spans = []
            for phase in args.phases:
                before = Counter(load.counts)
                print(f"phase: {phase} ({args.phase_s:g} s)", file=sys.stderr)
                started = time.time()
                asyncio.run(load.run(phase, args.phase_s))
                ended = time.time()
                spans.append((phase, started, ended, load.counts - before))
                time.sleep(2.0)  # let the queues drain between phases
            stop_probe.set()
            samples = results.get(timeout=60)
            prober.join(timeout=30)
            stop_rss.set()
            sampler.join()
            alive = urlopen_status(server.url + "/healthz")
        fsck_code, fsck_line = benchserver.fsck(workdir / "log")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    phases = []
    for phase, started, ended, counts in spans:
        lat = [s for s in samples if started <= s[0] <= ended]
        ok = [s[2] for s in lat if s[3] == 200]
        by_kind = {kind: [s[2] for s in lat if s[1] == kind and s[3] == 200]
                   for kind in ("checkpoint", "entry")}
        peak = max((m for t, m in rss if started <= t <= ended + 2.0), default=None)
        phases.append({
            "phase": phase, "seconds": round(ended - started, 1), "reads": len(lat),
            "reads_failed": sum(1 for s in lat if s[3] != 200),
            "p50_ms": round(percentile(ok, 0.50), 2) if ok else None,
            "p99_ms": round(percentile(ok, 0.99), 2) if ok else None,
            "max_ms": round(max(ok), 2) if ok else None,
            "by_read": {k: {"p50_ms": round(percentile(v, 0.5), 2),
                            "p99_ms": round(percentile(v, 0.99), 2),
                            "max_ms": round(max(v), 2)} for k, v in by_kind.items() if v},
            "peak_rss_mib": round(peak, 1) if peak is not None else None,
            "statuses": dict(sorted(counts.items())),
        })
    return {"phases": phases, "rss_start_mib": round(rss_start, 1),
            "peak_rss_mib": round(max(m for _, m in rss), 1), "server_alive_after": alive,
            "fsck": [fsck_code, fsck_line], "log_size": size}


def urlopen_status(url: str) -> int:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except OSError:
        return 0


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def report(args, result: dict, machine: dict) -> dict:
    worst = max((p["p99_ms"] or 0.0) for p in result["phases"])
    rows = [[p["phase"], p["reads"], p["reads_failed"], p["p50_ms"], p["p99_ms"], p["max_ms"],
             p["peak_rss_mib"], ", ".join(f"{k} {v:,}" for k, v in p["statuses"].items())]
            for p in result["phases"]]
    return {
        "benchmark": "hostile",
        "title": "Under hostile load: an unrelated read",
        "order": 70,
        "command": f"scripts/bench_hostile.py --phase-s {args.phase_s:g} --workers {args.workers}",
        "commit": git_commit(),
        "machine": machine,
        "method": [__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]],
        "targets": [
            {"target": f"unrelated read p99 <= {P99_TARGET_MS:g} ms in every phase",
             "measured": f"worst phase p99 {worst:.1f} ms", "met": worst <= P99_TARGET_MS},
            {"target": f"server RSS <= {RSS_BOUND_MIB} MiB (--workers {args.workers})",
             "measured": f"peak {result['peak_rss_mib']:.0f} MiB "
                         f"(at start {result['rss_start_mib']:.0f} MiB)",
             "met": result["peak_rss_mib"] <= RSS_BOUND_MIB},
        ],
        "tables": [{"title": "Unrelated reads (GET /checkpoint, GET /api/v1/log/entries?logIndex) "
                             "per phase",
                    "columns": ["phase", "reads", "failed", "p50 ms", "p99 ms", "max ms",
                                "peak RSS MiB", "hostile requests by status"],
                    "rows": rows}],
        "notes": [f"The server answered /healthz {result['server_alive_after']} after the run; "
                  f"fsck: exit {result['fsck'][0]} ({result['fsck'][1]})."],
        "data": result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2, help="the server's --workers")
    parser.add_argument("--entries", type=int, default=64,
                        help="distinct valid (and as many invalid) hostile entries made")
    parser.add_argument("--small", type=int, default=4000,
                        help="small P-521 hashedrekord entries made (each posted once or more)")
    parser.add_argument("--quick", action="store_true", help="5 s phases, fewer entries")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, from: {', '.join(PHASES)}")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the JSON")
    args = parser.parse_args()
    if args.quick:
        args.phase_s, args.entries, args.small = 5.0, 16, 1000
    args.phases = [p.strip() for p in args.phases.split(",")]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    machine = machine_info(load_generator="scripts/bench_hostile.py (Python asyncio)")
    result = run(args)
    machine["load_average_at_end"] = load_average()
    out = report(args, result, machine)
    for p in result["phases"]:
        print(f"{p['phase']:>20}: p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, max "
              f"{p['max_ms']} ms, peak RSS {p['peak_rss_mib']} MiB, {p['statuses']}")
    print(f"peak RSS {result['peak_rss_mib']} MiB (start {result['rss_start_mib']}); "
          f"fsck {result['fsck']}")
    if not args.no_write:
        print(f"wrote {write_result(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
