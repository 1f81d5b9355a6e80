#!/usr/bin/env python3
"""Write benchmark (issue 6, SPEC §8): durable hashedrekord submissions.

Distinct, really signed ECDSA P-256 entries (scripts/signed_entries.py) are
POSTed over HTTP keep-alive to a real ``tlog serve`` (durable commits: WAL,
synchronous=FULL, one signed checkpoint per batch, every 201 carrying a
verified inclusion proof and a SET):

- closed loop, 1…128 concurrent clients, server pinned to CPU 0 and the load
  generator to CPU 1 (``taskset``): entries/s, p50/p99 latency from sending
  the request to the full 201 response;
- open loop at a fixed 500 entries/s (latency counted from when each request
  was due, so stalls are charged): p50/p99;
- both cores: the server unpinned, in one process and with ``--workers N``;
- the load generator's own ceiling against a canned responder on CPU 0;
- with ``--baseline REF``: the same single-core runs on the code of an
  earlier commit (a git worktree), for the before/after of the write path;
- the same tree under another CPython build of the same version when the
  machine has one (``--server-python``; scripts/interpreters.py): one core
  and both cores at 128 clients, each run beside one under .venv's
  interpreter, in turn.

Every run starts a new log; figures are medians of ``--repeat`` runs. Prints
the tables and writes docs/bench/writes.json.

    .venv/bin/python scripts/bench_writes.py [--repeat 3] [--duration 8] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchserver  # noqa: E402
import interpreters  # noqa: E402
import loadgen  # noqa: E402
import profiling  # noqa: E402
import signed_entries  # noqa: E402
from render_benchmarks import load_average, machine_info, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = (1, 2, 4, 8, 16, 32, 64, 128)
BODIES = 200_000
WARMUP_OFFSET = 150_000  # warm-up entries come from here, measured ones from 0
FIXED_RATE = 500
ENTRIES = "/api/v1/log/entries"


def bodies_file() -> Path:
    path = signed_entries.CACHE / f"bodies-{BODIES}.txt"
    if not path.exists():
        bodies = signed_entries.cached(BODIES)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"\n".join(bodies) + b"\n")
        tmp.rename(path)
    return path


def read_bodies(path: Path, start: int, count: int) -> list[bytes]:
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    return lines[start:start + count]


def server_cpu_seconds(server: benchserver.Server) -> float:
    return sum(process_cpu_seconds(server).values())


def process_cpu_seconds(server: benchserver.Server) -> dict[str, float]:
    """CPU seconds (user + system) of the server's main process (with
    ``--workers``: the sequencer) and of its children (the HTTP workers)."""
    out = {"main": 0.0, "children": 0.0}
    for pid in [server.proc.pid, *benchserver._children(server.proc.pid)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        key = "main" if pid == server.proc.pid else "children"
        out[key] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_times() -> list[int]:
    """The machine's CPU time counters (the first line of /proc/stat: user,
    nice, system, idle, iowait, irq, softirq, steal, ...), in clock ticks."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def idle_percent(before: list[int], after: list[int]) -> float:
    """Share of the machine's CPU time that was idle (idle + iowait) between
    two :func:`cpu_times` readings."""
    delta = [b - a for a, b in zip(before, after)]
    return round(100 * (delta[3] + delta[4]) / max(1, sum(delta)), 1)


def crypto_costs(n: int = 3000) -> dict[str, float]:
    """µs per call of the two signature operations every entry costs, on this
    machine: verifying the submitter's ECDSA P-256 signature (cryptography)
    and signing the entry's SET with the log's Ed25519 key, through libsodium
    as the server does (tlog.sodium), beside cryptography's for comparison."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from tlog.sodium import SodiumEd25519Signer
    msg = b"x" * 300
    log_key = ed25519.Ed25519PrivateKey.generate()
    set_sign = SodiumEd25519Signer(log_key).sign
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    sig, pub = ecdsa.sign(msg, ec.ECDSA(hashes.SHA256())), ecdsa.public_key()
    out = {}
    for name, fn in (("ECDSA P-256 verify", lambda: pub.verify(sig, msg,
                                                               ec.ECDSA(hashes.SHA256()))),
                     ("Ed25519 sign (SET, libsodium)", lambda: set_sign(msg)),
                     ("Ed25519 sign (cryptography, not used)", lambda: log_key.sign(msg))):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - started) / n * 1e6)
        out[name] = round(min(times), 1)
    return out


class Generator:
    """wrk when installed, else the Python generator (scripts/loadgen.py)."""

    def __init__(self, force_python: bool = False) -> None:
        self.wrk = None if force_python else loadgen.wrk_version()
        self.name = self.wrk or "scripts/loadgen.py (Python asyncio)"
        self.bodies = bodies_file()

    def closed(self, url: str, port: int, clients: int, duration: float, offset: int,
               cpus: str | None) -> dict:
        if self.wrk:
            return loadgen.wrk_summary(loadgen.wrk_post(url, self.bodies, clients, duration,
                                                        offset=offset, cpus=cpus))
        # Python generator: in a child process pinned like wrk would be.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_python_closed, (port, clients, duration, offset, cpus))


def _python_closed(port: int, clients: int, duration: float, offset: int,
                   cpus: str | None) -> dict:
    if cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    bodies = read_bodies(bodies_file(), offset, BODIES - offset)
    reqs = iter([("POST", ENTRIES, b) for b in bodies])
    result = asyncio.run(loadgen.closed_loop("127.0.0.1", port, reqs, clients,
                                             duration=duration))
    return result.summary()


def one_run(gen: Generator, clients: int, duration: float, *, server_cpus: str | None,
            gen_cpus: str | None, server_args: tuple[str, ...] = (), env=None,
            fsck: bool = False, python: str = benchserver.PYTHON) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="tlog-bench-writes-"))
    try:
        server = benchserver.Server(workdir / "log", *server_args, cpus=server_cpus,
                                    env=env or {}, python=python)
        with server:
            # Warm-up: connections, caches, the first batches.
            gen.closed(server.url, server.port, min(clients, 16), 1.0, WARMUP_OFFSET, gen_cpus)
            benchserver.wait_until_quiet()
            cpu0, times0 = process_cpu_seconds(server), cpu_times()
            run = gen.closed(server.url, server.port, clients, duration, 0, gen_cpus)
            cpu1, times1 = process_cpu_seconds(server), cpu_times()
            run["machine_idle_pct"] = idle_percent(times0, times1)
            per = {k: round((cpu1[k] - cpu0[k]) / max(1, run["ok"]) * 1e6, 1) for k in cpu1}
            run["server_cpu_us_per_entry"] = round(sum(per.values()), 1)
            run["cpu_us_per_entry_by_process"] = per
            run["rss_mib"] = round(server.rss_mib(), 1)
        if fsck:
            code, line = benchserver.fsck(workdir / "log")
            run["fsck"] = line
            if code != 0:
                raise RuntimeError(f"fsck failed after a write run: {line}")
        return run
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def median_run(runs: list[dict]) -> dict:
    keys = ("rate", "p50_ms", "p99_ms", "server_cpu_us_per_entry")
    out = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
    split = [r["cpu_us_per_entry_by_process"] for r in runs
             if "cpu_us_per_entry_by_process" in r]
    if split:
        out["cpu_split"] = {k: round(statistics.median(s[k] for s in split), 1)
                            for k in split[0]}
    if all("machine_idle_pct" in r for r in runs):
        out["machine_idle_pct"] = statistics.median(r["machine_idle_pct"] for r in runs)
    out["non_2xx"] = sum(r.get("non_2xx", r["requests"] - r["ok"]) for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["runs"] = runs
    return out


def interleaved(gen: Generator, clients: int, repeat: int, duration: float,
                configs: list[tuple[str, dict]]) -> list[dict]:
    """One row per (label, one_run keywords) in ``configs``, their runs
    taken in turn (A, B, A, B, ...) so that host drift falls on all alike."""
    runs: list[list[dict]] = [[] for _ in configs]
    for r in range(repeat):
        for (label, kw), out in zip(configs, runs):
            out.append(one_run(gen, clients, duration, fsck=(r == repeat - 1), **kw))
            print(f"  [{label}] {clients:>3} clients run {r + 1}: {out[-1]['rate']:,.0f}/s "
                  f"p50 {out[-1]['p50_ms']:.1f} ms p99 {out[-1]['p99_ms']:.1f} ms",
                  file=sys.stderr)
    return [{"clients": clients, **median_run(out)} for out in runs]


def closed_sweep(gen: Generator, clients_list, repeat: int, duration: float, label: str,
                 **kw) -> list[dict]:
    return [interleaved(gen, clients, repeat, duration, [(label, kw)])[0]
            for clients in clients_list]


def fixed_rate(rate: int, duration: float, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(prefix="tlog-bench-rate-"))
        try:
            with benchserver.Server(workdir / "log", cpus="0") as server:
                benchserver.wait_until_quiet()
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    runs.append(pool.apply(_python_fixed, (server.port, rate, duration)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(f"  [fixed {rate}/s] p50 {runs[-1]['p50_ms']:.1f} ms p99 {runs[-1]['p99_ms']:.1f} "
              f"ms, {runs[-1]['ok']} ok", file=sys.stderr)
    return {"rate": rate, "duration_s": duration,
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "max_ms": round(statistics.median(r["max_ms"] for r in runs), 2),
            "achieved": round(statistics.median(r["rate"] for r in runs), 1),
            "non_2xx": sum(r["requests"] - r["ok"] for r in runs), "runs": runs}


def _python_fixed(port: int, rate: int, duration: float) -> dict:
    os.sched_setaffinity(0, {1})
    bodies = read_bodies(bodies_file(), 0, int(rate * duration) + 10)
    reqs = iter([("POST", ENTRIES, b) for b in bodies])
    result = asyncio.run(loadgen.fixed_rate("127.0.0.1", port, reqs, rate, duration,
                                            connections=64))
    return result.summary()


# A submission's parsing and checks: prepared (parsed, canonicalised) in
# the check thread, then its check run (the signature); parse_proposed for
# callers that do both at once.
PARSE_FRAMES = ("prepare_proposed (entrytypes.py", "_run_check (api.py",
                "parse_proposed (entrytypes.py")
WRITE_FRAMES = {
    "HTTP request handling (aiohttp; includes the handler)": "RequestHandler._handle_request",
    "create_entry handler": "LogApi.create_entry",
    "entry parsing and checks (prepare_proposed and its check)": PARSE_FRAMES,
    "ECDSA P-256 verify of the entry signature": "_verify_ecdsa",
    "strict JSON parsing": "loads_strict",
    "canonical body": "canonical_body",
    "response rendering": "render_log_entry",
    "sequencer batch, writer thread (all)": "Sequencer._integrate",
    "SET signatures (Ed25519, per entry, in the batch)": "sign_sets",
    "checkpoint signature (per batch)": "sign_checkpoint",
    "inclusion proofs from memory, verified": "inclusion_proofs",
    "SQLite writes (entries, search, nodes, tiles)": "insert_",
    "published-checkpoint record (per batch)": "PublishedRecord.publish",
}


# Shares of one frame besides another, counted from the stacks (samples
# holding "in" and not "not"): never negative, None when "in" was not sampled.
WRITE_DERIVED = {
    "aiohttp request handling outside the create_entry handler":
        {"in": "RequestHandler._handle_request", "not": "LogApi.create_entry"},
    "sequencer batch besides the SET signatures":
        {"in": "Sequencer._integrate", "not": "sign_sets"},
    "parsing and canonicalisation besides the signature check":
        {"in": PARSE_FRAMES, "not": "_verify_ecdsa"},
}


def profile_run(gen: Generator, clients: int, duration: float) -> dict | None:
    """One single-core run under py-spy: where the server's CPU goes."""
    if not profiling.available():
        return None
    workdir = Path(tempfile.mkdtemp(prefix="tlog-bench-prof-"))
    try:
        with benchserver.Server(workdir / "log", cpus="0") as server:
            gen.closed(server.url, server.port, 16, 1.0, WARMUP_OFFSET, "1")
            with profiling.Recording(server.proc.pid, workdir / "profile.txt") as rec:
                time.sleep(0.5)
                run = gen.closed(server.url, server.port, clients, duration, 0, "1")
            out = rec.summary(WRITE_FRAMES, derived=WRITE_DERIVED)
        out["run"] = {k: run[k] for k in ("rate", "p50_ms", "p99_ms")}
        out["clients"] = clients
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ceiling(gen: Generator, duration: float) -> dict:
    """Requests/s the generator reaches against a canned 201 responder on CPU 0."""
    port = benchserver.free_port()
    canned = b'{"x": "' + b"a" * 2200 + b'"}'
    proc = multiprocessing.get_context("spawn").Process(
        target=loadgen.canned_server, args=(port, canned, 0), daemon=True)
    proc.start()
    time.sleep(1.0)
    try:
        out = {}
        for clients in (64, 128):
            run = gen.closed(f"http://127.0.0.1:{port}", port, clients, duration, 0, "1")
            out[str(clients)] = run["rate"]
        return out
    finally:
        proc.terminate()
        proc.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1, 16 and 128 clients, 1 run of 3 s each, no baseline "
                             "and no second interpreter; written to docs/bench/quick/")
    parser.add_argument("--rereport", action="store_true",
                        help="rebuild docs/bench/writes.json's tables and notes from the "
                             "figures it holds (no measuring)")
    parser.add_argument("--python-generator", action="store_true",
                        help="use scripts/loadgen.py even if wrk is installed")
    parser.add_argument("--baseline", default="8d0c2d0",
                        help="commit to compare with (before the fast write path); '' skips")
    parser.add_argument("--before", default=benchserver.BEFORE,
                        help="commit whose both-cores writes this tree must not fall below "
                             "(runs taken in turn); '' skips")
    parser.add_argument("--server-python", default="auto",
                        help="another CPython build to run the server under as well "
                             "(auto: /usr/bin/python3.X when it is not .venv's; '' skips)")
    args = parser.parse_args()
    if args.rereport:
        return rereport()
    if args.quick:
        args.repeat, args.duration, args.baseline, args.server_python = 1, 3.0, "", ""
        args.before = ""
        benchserver.quick_quiet()
    clients_list = (1, 16, 128) if args.quick else CLIENTS
    gen = Generator(args.python_generator)
    machine = machine_info(load_generator=gen.name)
    print(f"load generator: {gen.name}", file=sys.stderr)

    ceil = ceiling(gen, args.duration)
    print(f"generator ceiling: {ceil}", file=sys.stderr)
    single = closed_sweep(gen, clients_list, args.repeat, args.duration, "1 core",
                          server_cpus="0", gen_cpus="1")
    rate = fixed_rate(FIXED_RATE, 20.0 if not args.quick else 5.0, args.repeat)
    profile = profile_run(gen, 128, args.duration)
    both = []
    for workers in (0, 1, 2, 3):
        row = closed_sweep(gen, (128,), args.repeat, args.duration, f"2 cores, workers {workers}",
                           server_cpus=None, gen_cpus=None,
                           server_args=("--workers", str(workers)) if workers else ())[0]
        both.append({"workers": workers, **row})
    baseline = []
    if args.baseline:
        with benchserver.CodeAt(args.baseline) as code:
            baseline = closed_sweep(gen, (16, 128), args.repeat, args.duration,
                                    f"baseline {args.baseline}", server_cpus="0",
                                    gen_cpus="1", env=code.env)
    before = None
    if args.before:
        # The last work's head, both cores as the target is stated: runs of
        # this tree and of that one taken in turn, so a host that drifts
        # moves both.
        with benchserver.CodeAt(args.before) as code:
            rows = {"before": [], "after": []}
            for _ in range(args.repeat):
                for which, env in (("after", {}), ("before", code.env)):
                    rows[which].append(closed_sweep(
                        gen, (128,), 1, args.duration,
                        ("this tree" if which == "after" else f"before ({args.before})")
                        + ", 2 cores",
                        server_cpus=None, gen_cpus=None, server_args=("--workers", "2"),
                        env=env)[0])
            before = {"ref": args.before,
                      **{k: {"rate": statistics.median(r["rate"] for r in v),
                             "p99_ms": statistics.median(r["p99_ms"] for r in v),
                             "server_cpu_us_per_entry": statistics.median(
                                 r["server_cpu_us_per_entry"] for r in v),
                             "rates": [r["rate"] for r in v]}
                         for k, v in rows.items()}}
    interp = interpreter_runs(gen, args)
    crypto = crypto_costs()
    machine["load_average_at_end"] = load_average()
    machine["waits_for_idle_cpus"] = benchserver.quiet_report()
    result = report(machine, gen, args, ceil, single, rate, both, baseline, profile, crypto,
                    interp, before)
    print(f"wrote {write_result(result, quick=args.quick)}")
    return 0


def rereport() -> int:
    """Tables and notes of docs/bench/writes.json rebuilt by this script from
    the figures the file holds; its provenance and date are kept."""
    import json
    import re
    from types import SimpleNamespace

    from render_benchmarks import BENCH_DIR
    old = json.loads((BENCH_DIR / "writes.json").read_text())
    data = old["data"]
    settings = data.get("settings") or {}
    if not settings:  # written before "settings": from its runs and its method
        method = " ".join(old.get("method", []))
        found = re.search(r"measures for ([0-9.]+) s", method)
        settings = {"repeat": len(data["single_core"][0]["runs"]),
                    "duration": float(found.group(1)) if found else None}
    args = SimpleNamespace(repeat=settings["repeat"], duration=settings["duration"],
                           baseline=data.get("baseline_ref"))
    gen = SimpleNamespace(name=old["machine"].get("load_generator"))
    result = report(old["machine"], gen, args, data["ceiling"], data["single_core"],
                    data["fixed_rate"], data["both_cores"], data["baseline"], data["profile"],
                    data["crypto_us"], data["interpreters"], data.get("before"))
    result["data"]["settings"] = data.get("settings")
    print(f"wrote {write_result(result, rereport_of=old)}")
    return 0


def interpreter_runs(gen: Generator, args) -> list[dict]:
    """One core and both cores (``--workers 2``) at 128 clients under .venv's
    interpreter and under ``--server-python``, run in turn."""
    other = interpreters.other_interpreter() if args.server_python == "auto" \
        else args.server_python
    if not other:
        return []
    info = interpreters.describe(other)
    python = interpreters.server_venv(other, info)
    label = f"CPython {info['version']} ({other})"
    mine = {"build": interpreters.build_text(interpreters.describe(benchserver.PYTHON))}
    rows = {"build": interpreters.build_text(info)}
    one = {"server_cpus": "0", "gen_cpus": "1"}
    both = {"server_cpus": None, "gen_cpus": None, "server_args": ("--workers", "2")}
    mine["one_core"], rows["one_core"] = interleaved(
        gen, 128, args.repeat, args.duration,
        [("1 core, .venv", one), (f"1 core, {label}", {**one, "python": python})])
    mine["both_cores"], rows["both_cores"] = interleaved(
        gen, 128, args.repeat, args.duration,
        [("2 cores, workers 2, .venv", both),
         (f"2 cores, workers 2, {label}", {**both, "python": python})])
    return [mine, rows]


def _spread(row: dict) -> str:
    rates = [r["rate"] for r in row["runs"]]
    return f"{min(rates):,.0f}-{max(rates):,.0f}/s"


def interpreter_note(mine: dict, other: dict) -> str:
    """What the second interpreter measured, relative to .venv's, figure by
    figure (runs taken in turn), with each side's range of runs."""
    def versus(key: str) -> str:
        a, b = mine[key], other[key]
        return (f"{b['rate']:,.0f}/s ({_spread(b)}) against {a['rate']:,.0f}/s "
                f"({_spread(a)}), {b['rate'] / a['rate'] - 1:+.0%}, with "
                f"{b['server_cpu_us_per_entry']:,.0f} against "
                f"{a['server_cpu_us_per_entry']:,.0f} µs of server CPU per entry")
    return ("The interpreter: the same tree under " + other["build"] + ", against "
            + mine["build"] + " (the interpreter the README's set-up picked here): one core "
            + versus("one_core") + "; both cores (--workers 2) " + versus("both_cores")
            + ". Medians of runs taken in turn (one of each, then again), with their "
            "range. Debian "
            "builds its python3.X packages with profile-guided optimisation and links "
            "libpython into the executable; pyenv's default build has a shared libpython "
            "and no --enable-optimizations. The operator quickstart "
            "(docs/quickstart-operator.md, 'Which Python to run it on') says how to set up "
            "on another interpreter.")


def write_notes(single, rate, both, baseline, profile, ceil, crypto, interp) -> list[str]:
    """Findings, from the figures of this run."""
    notes = []
    top = max(single, key=lambda r: r["rate"])
    notes.append(
        f"One core: throughput rises with concurrency while batches grow (one fsync, one "
        f"checkpoint signature and one published-record write per batch) and levels off at "
        f"{top['rate']:,.0f} entries/s, where the server spends "
        f"{top['server_cpu_us_per_entry']:,.0f} µs of CPU per entry: the core is saturated. "
        f"At low concurrency the batch cycle (commit fsync + the record's fdatasync) bounds it "
        f"instead ({single[0]['rate']:,.0f}/s with one client, p50 {single[0]['p50_ms']:.1f} "
        "ms: that is the durable round trip).")
    if profile:
        notes.append(profile_note(profile))
    if baseline:
        b = max(baseline, key=lambda r: r["rate"])
        a = next((r for r in single if r["clients"] == b["clients"]), top)
        notes.append(
            f"Before/after at {b['clients']} clients: {b['rate']:,.0f} → {a['rate']:,.0f} "
            f"entries/s, {b['server_cpu_us_per_entry']:,.0f} → "
            f"{a['server_cpu_us_per_entry']:,.0f} µs of server CPU per entry. What changed "
            "(tlog/integrate.py and friends): the per-request duplicate pre-check is gone (the "
            "batch asks the database once); entries, search rows, nodes and tiles go in with "
            "executemany; inclusion proofs come from the batch's nodes in memory instead of "
            "O(log n) SQLite reads per entry (still verified); the canonical body and the SET "
            "payload are written from templates (equal to RFC 8785 output, tested) instead of "
            "the pure-Python rfc8785 encoder; strict JSON parsing skips its tree walk when the "
            "text cannot hold a violation; strict base64 decoding uses binascii's strict mode; "
            "parsed keys are cached by their PEM bytes; the response is rendered from a "
            "template (byte-identical to json.dumps, tested); SETs are signed once, at "
            "integration (libsodium), and stored, so reads no longer sign; the WAL is copied "
            "into the database every 32,768 pages instead of SQLite's 1,000; the "
            "published-checkpoint record is overwritten in place (one of two slots) and not "
            "decoded again while it holds what the server last wrote; a checkpoint is signed "
            "once for both of its note lines (libsodium); submissions that arrive together "
            "are parsed and verified together, up to 16 at a time (tlog/turnbatch.py: "
            "the P-256 tables and the parser stay in the CPU caches); the writer thread "
            "takes its next batch itself and answers the HTTP workers' entries itself, "
            "straight to the link, without waiting for the event loop's thread; lowercase "
            "hex is checked by a round trip instead of a regular expression, a JSON object's "
            "members by set comparisons, and the ECDSA algorithm objects are made once; one "
            "request middleware instead of two; the EntryID prefix is formatted once; a run "
            "of submissions is parsed first and its signatures checked after, back to back "
            "(two passes of the turn batch).")
    best = max(both, key=lambda r: r["rate"])
    notes.append(
        f"Both cores: one process gains little from the second core "
        f"({both[0]['rate']:,.0f}/s; the signature checks release the GIL but little else "
        f"does); `--workers {best['workers']}` reaches {best['rate']:,.0f}/s: HTTP workers "
        "parse and verify in parallel and the one sequencer process batches for all of "
        f"them. The cores are shared with the load generator, and the processes together "
        f"spend {best['server_cpu_us_per_entry']:,.0f} µs of CPU per entry"
        + _split_text(best)
        + (f"; the machine was {best['machine_idle_pct']:.0f}% idle during the runs"
           if best.get("machine_idle_pct") is not None else "")
        + (". 4,000/s needs the server's CPU and the generator's, at most 500 µs per entry "
           "on the two cores, and no idle time: the closed loop of 128 clients runs in "
           "waves (each batch answers its clients together, and they come back together), "
           "so the sequencer at times waits for the workers and they for it."
           if best["rate"] < 4000 else ".")
        + " Of the server's CPU per entry, the two signature operations cost "
        + " and ".join(f"{v:,.0f} µs ({k})" for k, v in crypto.items() if "not used" not in k)
        + " on this machine, measured in the same run; the rest is aiohttp's request "
          "handling, strict parsing, the link between processes and the batch's SQL.")
    notes.append(
        f"At a fixed {rate['rate']} entries/s ({rate['rate'] / top['rate']:.0%} of the "
        "one-core capacity) the p99 is "
        f"{rate['p99_ms']:.1f} ms: an entry waits for at most one batch in progress plus its "
        "own (commit fsync and the published record's fdatasync).")
    if interp:
        mine, other = interp
        notes.append(interpreter_note(mine, other))
    notes.append(
        f"The load generator is not the limit: it drives a canned responder at "
        f"{max(ceil.values()):,.0f} requests/s.")
    return notes


def profile_note(profile: dict) -> str:
    """The profile's paragraph. Every share is a count of samples (inclusive,
    or one frame besides another counted from the stacks, ``derived``), so
    none can be negative; a frame no sample holds is "not sampled". A
    profile recorded before derived shares existed (no "derived") gives its
    inclusive shares only."""
    named, derived = profile["named"], profile.get("derived")
    share = profiling.share_text

    def inclusive(label: str) -> str:
        value = named.get(label)
        if derived is None and not value:  # an old profile: 0.0 was also "not sampled"
            return "0% or not sampled"
        return share(value)

    head = (f"Profile at {profile['clients']} clients (py-spy, shares of the server's CPU "
            f"samples; fsync waits not counted): the entry's ECDSA P-256 signature check "
            f"{inclusive('ECDSA P-256 verify of the entry signature')}, the SET signatures "
            f"{inclusive('SET signatures (Ed25519, per entry, in the batch)')}")
    if derived is None:
        return (head + f", the sequencer's batch in all "
                f"{inclusive('sequencer batch, writer thread (all)')}, HTTP request handling "
                "(aiohttp, our handler included) "
                f"{inclusive('HTTP request handling (aiohttp; includes the handler)')}. "
                "Inclusive shares: they overlap. This profile predates the shares of one frame "
                "besides another (counted from the stacks), so none are given.")
    return (head + ", aiohttp's request handling outside our handler "
            f"{share(derived['aiohttp request handling outside the create_entry handler'])}, "
            "the rest of the sequencer's batch (SQL inserts, proofs, commit, record) "
            f"{share(derived['sequencer batch besides the SET signatures'])}, parsing and "
            "canonicalisation besides the signature check "
            f"{share(derived['parsing and canonicalisation besides the signature check'])}. "
            "The two signatures per entry (verify the submitter's, sign the SET) and the "
            "HTTP stack are what is left: none of it can be done once per batch.")


def _named_cell(profile: dict, value: float | None):
    """A table cell for an inclusive share: a profile recorded before
    "derived" existed wrote 0.0 also for a frame never sampled."""
    if "derived" not in profile and not value:
        return "0 or not sampled"
    return profiling.share_cell(value)


def _split_text(row: dict) -> str:
    split = row.get("cpu_split")
    if not split or not row.get("workers"):
        return ""
    return (f" (the sequencer process {split['main']:,.0f} µs, the {row['workers']} HTTP "
            f"workers {split['children']:,.0f} µs together)")


def report(machine, gen, args, ceil, single, rate, both, baseline, profile, crypto,
           interp, before: dict | None = None) -> dict:
    best1 = max(single, key=lambda r: r["rate"])
    best2 = max(both, key=lambda r: r["rate"])
    by_clients = {r["clients"]: r for r in single}
    def best_run(row: dict) -> str:
        return f"{max(r['rate'] for r in row['runs']):,.0f}/s"

    targets = [
        {"target": "≥ 2,000 durable entries/s, server on one core",
         "measured": f"{best1['rate']:,.0f}/s ({best1['clients']} clients)",
         "met": best1["rate"] >= 2000, "best_runs": best_run(best1)},
        {"target": f"p99 ≤ 50 ms at {FIXED_RATE} entries/s",
         "measured": f"p99 {rate['p99_ms']:.1f} ms (p50 {rate['p50_ms']:.1f} ms)",
         "met": rate["p99_ms"] <= 50,
         "best_runs": f"p99 {min(r['p99_ms'] for r in rate['runs']):.1f} ms"},
        {"target": "≥ 4,000 entries/s using both cores",
         "measured": f"{best2['rate']:,.0f}/s (--workers {best2['workers']})"
                     + (f"; {interp[1]['both_cores']['rate']:,.0f}/s under "
                        f"{interp[1]['build'].split(' (')[0]}" if interp else ""),
         "met": best2["rate"] >= 4000, "best_runs": best_run(best2)},
    ]
    if before:
        b, a = before["before"], before["after"]
        targets.append({
            "target": f"no regression against {before['ref']} (both cores, --workers 2, 128 "
                      "clients, runs taken in turn)",
            "measured": f"{a['rate']:,.0f}/s against {b['rate']:,.0f}/s "
                        f"({a['rate'] / b['rate']:.2f}×)",
            "met": a["rate"] >= 0.95 * b["rate"],
            "best_runs": f"{max(a['rates']):,.0f}/s against {max(b['rates']):,.0f}/s"})
    tables = [
        {"title": "Closed loop, server on CPU 0, generator on CPU 1 (medians)",
         "columns": ["clients", "entries/s", "p50 ms", "p99 ms", "server CPU µs/entry",
                     "non-2xx"],
         "rows": [[r["clients"], r["rate"], r["p50_ms"], r["p99_ms"],
                   r["server_cpu_us_per_entry"], r["non_2xx"]] for r in single]},
        {"title": f"Open loop at {FIXED_RATE} entries/s, server on CPU 0 (medians)",
         "columns": ["target rate", "achieved", "p50 ms", "p99 ms", "max ms", "non-2xx"],
         "rows": [[rate["rate"], rate["achieved"], rate["p50_ms"], rate["p99_ms"],
                   rate["max_ms"], rate["non_2xx"]]]},
        {"title": "Both cores, 128 clients (server and generator unpinned; medians)",
         "columns": ["--workers", "entries/s", "p50 ms", "p99 ms", "server CPU µs/entry",
                     "of which sequencer process", "of which HTTP workers",
                     "machine idle %"],
         "rows": [[r["workers"], r["rate"], r["p50_ms"], r["p99_ms"],
                   r["server_cpu_us_per_entry"],
                   r.get("cpu_split", {}).get("main") if r["workers"] else None,
                   r.get("cpu_split", {}).get("children") if r["workers"] else None,
                   r.get("machine_idle_pct")]
                  for r in both]},
        {"title": "The two signature operations of every entry, alone (µs per call, best of 3)",
         "columns": ["operation", "µs"], "rows": [[k, v] for k, v in crypto.items()]},
        {"title": "Load generator ceiling (canned 201 responder on CPU 0, generator on CPU 1)",
         "columns": ["clients", "requests/s"],
         "rows": [[k, v] for k, v in ceil.items()]},
    ]
    if interp:
        tables.append({
            "title": "The server's interpreter: 128 clients, the same tree, runs taken in "
                     "turn (medians)",
            "columns": ["interpreter", "one core entries/s", "one core CPU µs/entry",
                        "both cores (--workers 2) entries/s", "both cores CPU µs/entry",
                        "both cores p99 ms"],
            "rows": [[r["build"], r["one_core"]["rate"],
                      r["one_core"]["server_cpu_us_per_entry"], r["both_cores"]["rate"],
                      r["both_cores"]["server_cpu_us_per_entry"], r["both_cores"]["p99_ms"]]
                     for r in interp]})
    if baseline:
        tables.append({
            "title": f"Before/after: single core, commit {args.baseline} vs this tree (medians)",
            "columns": ["clients", "before entries/s", "after entries/s", "before p99 ms",
                        "after p99 ms", "before CPU µs/entry", "after CPU µs/entry"],
            "rows": [[b["clients"], b["rate"], by_clients.get(b["clients"], {}).get("rate"),
                      b["p99_ms"], by_clients.get(b["clients"], {}).get("p99_ms"),
                      b["server_cpu_us_per_entry"],
                      by_clients.get(b["clients"], {}).get("server_cpu_us_per_entry")]
                     for b in baseline]})
    if before:
        tables.append({
            "title": f"Before/after: both cores (--workers 2, 128 clients), commit "
                     f"{before['ref']} vs this tree, runs taken in turn (medians)",
            "columns": ["tree", "entries/s", "runs", "p99 ms", "server CPU µs/entry"],
            "rows": [[f"{name} ({before['ref']})" if name == "before" else "this tree",
                      before[name]["rate"], " / ".join(f"{r:,.0f}" for r in
                                                       before[name]["rates"]),
                      before[name]["p99_ms"], before[name]["server_cpu_us_per_entry"]]
                     for name in ("before", "after")]})
    if profile:
        tables.append({
            "title": f"Where the server's CPU goes: py-spy, {profile['clients']} clients, one "
                     f"core ({profile['run']['rate']:,.0f} entries/s while sampled; "
                     f"{profile['samples']:,} CPU samples, fsync waits left out; inclusive "
                     "shares, they overlap)",
            "columns": ["frame", "% of samples"],
            "rows": sorted(([k, _named_cell(profile, v)] for k, v in profile["named"].items()),
                           key=lambda r: -r[1] if isinstance(r[1], float) else 1)})
        if profile.get("derived"):
            tables.append({
                "title": "Shares of one frame besides another (samples holding the first "
                         "and not the second, counted from the stacks)",
                "columns": ["frame", "% of samples"],
                "rows": [[k, profiling.share_cell(v)] for k, v in profile["derived"].items()]})
        tables.append({"title": "Top frames by self time",
                       "columns": ["frame", "% of samples"], "rows": profile["self"]})
    plots = [
        {"file": "writes-throughput.png", "title": "Durable writes, server on one core",
         "kind": "line", "xlabel": "concurrent clients", "ylabel": "entries/s", "xscale": "log",
         "series": [{"label": "entries/s", "x": [r["clients"] for r in single],
                     "y": [r["rate"] for r in single]}],
         "hlines": [{"y": 2000, "label": "target 2,000/s"}]},
        {"file": "writes-latency.png", "title": "Submission → 201 latency, server on one core",
         "kind": "line", "xlabel": "concurrent clients", "ylabel": "ms", "xscale": "log",
         "yscale": "log",
         "series": [{"label": "p50", "x": [r["clients"] for r in single],
                     "y": [r["p50_ms"] for r in single]},
                    {"label": "p99", "x": [r["clients"] for r in single],
                     "y": [r["p99_ms"] for r in single]}]},
    ]
    method = [
        f"Entries: {BODIES:,} distinct hashedrekord 0.0.1 entries (about 560 bytes of "
        "canonical JSON), each a fresh SHA-256 digest really signed with one of 16 ECDSA "
        "P-256 keys (16 build systems; the server caches parsed keys, so the per-entry "
        "cost is the signature check, not key parsing). Signed once and cached in "
        "`.bench-cache/`.",
        f"Server: `tlog serve` with its defaults (Ed25519 log key, batches of at most 256, "
        "WAL with synchronous=FULL: a 201 is sent only after the batch, its signed "
        "checkpoint and the published-checkpoint record are fsynced, with an inclusion proof "
        "the server verified and a SET). Every run starts a new, empty log, warms up for 1 s "
        f"with other entries, then measures for {args.duration:g} s; the last run of each "
        "level is checked with `tlog fsck`.",
        f"Load: {gen.name}, HTTP/1.1 keep-alive, one connection per client, closed loop "
        "(each client sends its next entry when its 201 arrives). Latency is from sending "
        "the request to the complete 201. Single-core runs pin the server to CPU 0 and the "
        "generator to CPU 1 with `taskset`; the both-cores runs pin nothing. The open-loop "
        f"run sends {FIXED_RATE} entries/s from scripts/loadgen.py on 64 connections and "
        "counts latency from when each request was due.",
        f"Medians of {args.repeat} runs; the best run is shown beside the target. The "
        "machine is shared: each measured run waits (up to 20 s) for the CPUs to be idle "
        "first (see 'waits for idle cpus' above), and figures on a dedicated machine are "
        "higher.",
    ]
    return {"benchmark": "writes", "title": "Writes", "order": 20,
            "command": "scripts/bench_writes.py", "machine": machine, "method": method,
            "targets": targets, "tables": tables, "plots": plots,
            "notes": write_notes(single, rate, both, baseline, profile, ceil, crypto, interp),
            "data": {"single_core": single, "fixed_rate": rate, "both_cores": both,
                     "interpreters": interp,
                     "ceiling": ceil, "baseline": baseline, "baseline_ref": args.baseline,
                     "before": before,
                     "profile": profile, "crypto_us": crypto,
                     "settings": {"repeat": args.repeat, "duration": args.duration}}}


if __name__ == "__main__":
    sys.exit(main())
