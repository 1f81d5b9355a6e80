#!/usr/bin/env python3
"""Growth benchmark (issue 6, SPEC §8): how the server behaves as the log
grows from 10^4 to 10^7 entries.

At each tree size (synthetic logs from scripts/build_synthetic_log.py, cached
in ``.bench-cache/logs``; logs up to 10^6 are copied first so the cache stays
as built), a real ``tlog serve`` pinned to CPU 0, the load generator on CPU 1:

- startup time: process start to the first ``/healthz`` 200 (median of 3);
- server RSS just after start and after the load below;
- time per append: a single client's durable submission (p50 latency, so
  the fsync is in it) and the CPU time per entry at 64 clients (1/throughput);
- time per proof: a single client's inclusion proof (p50 latency of ``GET
  /api/v1/log/entries?logIndex=<random>``) and 1/throughput at 16 clients;
  consistency proofs likewise.

Writes docs/bench/growth.json (log-scale plots).

    .venv/bin/python scripts/bench_growth.py [--sizes 10000,...,10000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reads  # noqa: E402
import bench_writes  # noqa: E402
import benchserver  # noqa: E402
import build_synthetic_log  # noqa: E402
from render_benchmarks import load_average, machine_info, write_result  # noqa: E402

SIZES = (10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6, 10**7)
COPY_UP_TO = 10**6
STARTS = 3


def _tree_size(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v1/log", timeout=30) as r:
        return json.loads(r.read())["treeSize"]


GEN: bench_writes.Generator | None = None
OFFSET_FILE = "bench-growth-next-body"


def _next_offset(data_dir: Path, appended: int) -> int:
    """First pre-signed body not yet submitted to this log. A log used in
    place keeps what earlier runs appended, so resubmitting their bodies
    would be answered 409: each run records where the next one starts. A
    log without the record but with appended entries (from before it was
    kept) starts well past anything a run could have used."""
    path = data_dir / OFFSET_FILE
    if path.exists():
        return int(path.read_text())
    return 0 if appended == 0 else 4 * appended + 20_000


def _save_offset(data_dir: Path, offset: int) -> None:
    (data_dir / OFFSET_FILE).write_text(str(offset))


def _post(server, clients: int, duration: float, offset: int) -> dict:
    benchserver.wait_until_quiet()
    return GEN.closed(server.url, server.port, clients, duration, offset, "1")


def _get(server, mode: str, size: int, clients: int, duration: float) -> dict:
    benchserver.wait_until_quiet()
    return bench_reads.run_mode(server.url, server.port, mode, size, clients, duration,
                                GEN.wrk is not None)


def measure(size: int, duration: float) -> dict:
    cached, built = build_synthetic_log.cached_log(size)
    tmp = None
    if size <= COPY_UP_TO:
        tmp = Path(tempfile.mkdtemp(prefix="tlog-growth-"))
        data_dir = tmp / "log"
        shutil.copytree(cached, data_dir)
    else:
        data_dir = cached  # too big to copy: a few thousand entries are appended to it
    try:
        benchserver.warm_page_cache(data_dir)
        starts = []
        for _ in range(STARTS):
            benchserver.wait_until_quiet()
            with benchserver.Server(data_dir, cpus="0") as server:
                starts.append(server.startup_s)
                rss_idle = server.rss_mib()
        with benchserver.Server(data_dir, cpus="0") as server:
            actual = _tree_size(server.url)
            offset = _next_offset(data_dir, actual - size)
            one_append = _post(server, 1, duration, offset)
            offset += one_append["ok"] + 100
            many_appends = _post(server, 64, duration, offset)
            _save_offset(data_dir, offset + many_appends["requests"] + 100)
            after = _tree_size(server.url)
            one_proof = _get(server, "entry", after, 1, duration)
            many_proofs = _get(server, "entry", after, 16, duration)
            consistency = _get(server, "proof", after, 16, duration)
            rss_loaded = server.rss_mib()
        for run in (one_append, many_appends, one_proof, many_proofs, consistency):
            if run["ok"] != run["requests"] or run["errors"]:
                raise RuntimeError(f"failed requests at size {size}: {run}")
        row = {"size": size, "tree_size": actual, "build": built,
               "startup_s": round(statistics.median(starts), 3), "startup_all_s": starts,
               "rss_idle_mib": round(rss_idle, 1), "rss_loaded_mib": round(rss_loaded, 1),
               "append_p50_ms": one_append["p50_ms"], "append_p99_ms": one_append["p99_ms"],
               "append_rate_64": many_appends["rate"],
               "append_us_at_64": round(1e6 / many_appends["rate"], 1),
               "proof_p50_ms": one_proof["p50_ms"], "proof_p99_ms": one_proof["p99_ms"],
               "proof_rate_16": many_proofs["rate"],
               "proof_us_at_16": round(1e6 / many_proofs["rate"], 1),
               "consistency_rate_16": consistency["rate"],
               "db_mib": round((data_dir / "tlog.db").stat().st_size / 2**20),
               "runs": {"append_1": one_append, "append_64": many_appends,
                        "proof_1": one_proof, "proof_16": many_proofs,
                        "consistency_16": consistency}}
        print(f"  {actual:>10,}: start {row['startup_s']:.2f} s, RSS {rss_idle:.0f}/"
              f"{rss_loaded:.0f} MiB, append {row['append_p50_ms']:.1f} ms "
              f"({many_appends['rate']:,.0f}/s at 64), proof {row['proof_p50_ms']:.2f} ms "
              f"({many_proofs['rate']:,.0f}/s at 16)", file=sys.stderr)
        return row
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--python-generator", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10^4 and 10^5 entries, 1 s per load; written to "
                             "docs/bench/quick/")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.duration = f"{10**4},{10**5}", 1.0
        benchserver.quick_quiet()
    global GEN
    GEN = bench_writes.Generator(args.python_generator)
    machine = machine_info(load_generator=GEN.name)
    started = time.perf_counter()
    rows = [measure(int(s), args.duration) for s in args.sizes.split(",")]
    machine["load_average_at_end"] = load_average()
    machine["waits_for_idle_cpus"] = benchserver.quiet_report()
    result = report(machine, args, rows, time.perf_counter() - started)
    print(f"wrote {write_result(result, quick=args.quick)}")
    return 0


def growth_notes(rows: list[dict]) -> list[str]:
    first, last = rows[0], rows[-1]
    grow = last["tree_size"] / first["tree_size"]
    return [
        f"From {first['tree_size']:,} to {last['tree_size']:,} entries ({grow:,.0f}× more): "
        f"startup {first['startup_s']:.2f} → {last['startup_s']:.2f} s, RSS after load "
        f"{first['rss_loaded_mib']:.0f} → {last['rss_loaded_mib']:.0f} MiB, a single "
        f"client's durable append {first['append_p50_ms']:.1f} → {last['append_p50_ms']:.1f} "
        f"ms, appends/s at 64 clients {first['append_rate_64']:,.0f} → "
        f"{last['append_rate_64']:,.0f}, a single inclusion proof {first['proof_p50_ms']:.2f} "
        f"→ {last['proof_p50_ms']:.2f} ms, proofs/s at 16 clients "
        f"{first['proof_rate_16']:,.0f} → {last['proof_rate_16']:,.0f}.",
        "Nothing the server does per request or at start depends on the number of entries "
        "beyond O(log n): startup reads the head and its right edge, an append hashes O(1) "
        "nodes amortised, a proof reads O(log n) nodes; memory holds the right edge and "
        "SQLite's bounded page caches (32 MiB per connection at most), not the log.",
    ]


def report(machine, args, rows, seconds) -> dict:
    big = rows[-1]
    targets = [
        {"target": f"startup ≤ 1 s with {big['tree_size']:,} entries",
         "measured": f"{big['startup_s']:.2f} s", "met": big["startup_s"] <= 1.0},
        {"target": f"server RSS ≤ 200 MB with {big['tree_size']:,} entries",
         "measured": f"{big['rss_loaded_mib']:.0f} MiB after load "
                     f"({big['rss_idle_mib']:.0f} MiB idle)",
         "met": big["rss_loaded_mib"] * 1.048576 <= 200},
    ]
    xs = [r["tree_size"] for r in rows]

    def series(label, key):
        return {"label": label, "x": xs, "y": [r[key] for r in rows]}

    plots = [
        {"file": "growth-time.png", "title": "Time per append and per proof as the log grows",
         "kind": "line", "xlabel": "tree size", "ylabel": "ms", "xscale": "log",
         "yscale": "log",
         "series": [series("append, 1 client (p50, durable)", "append_p50_ms"),
                    {"label": "append, CPU per entry at 64 clients",
                     "x": xs, "y": [r["append_us_at_64"] / 1000 for r in rows]},
                    series("inclusion proof, 1 client (p50)", "proof_p50_ms"),
                    {"label": "inclusion proof, CPU per proof at 16 clients",
                     "x": xs, "y": [r["proof_us_at_16"] / 1000 for r in rows]}]},
        {"file": "growth-startup-rss.png", "title": "Startup time and RSS as the log grows",
         "kind": "line", "xlabel": "tree size", "ylabel": "seconds / MiB ÷ 100",
         "xscale": "log",
         "series": [series("startup s (to /healthz 200)", "startup_s"),
                    {"label": "RSS after load, MiB ÷ 100", "x": xs,
                     "y": [r["rss_loaded_mib"] / 100 for r in rows]}],
         "hlines": [{"y": 1.0, "label": "1 s / 100 MiB"}]},
    ]
    tables = [{"title": "As the log grows (server on CPU 0, generator on CPU 1)",
               "columns": ["tree size", "startup s", "RSS idle MiB", "RSS loaded MiB",
                           "append p50 ms (1 client)", "appends/s (64)",
                           "proof p50 ms (1 client)", "proofs/s (16)",
                           "consistency/s (16)", "database MiB"],
               "rows": [[f"{r['tree_size']:,}", r["startup_s"], r["rss_idle_mib"],
                         r["rss_loaded_mib"], r["append_p50_ms"], r["append_rate_64"],
                         r["proof_p50_ms"], r["proof_rate_16"], r["consistency_rate_16"],
                         r["db_mib"]] for r in rows]}]
    method = [
        "Logs: scripts/build_synthetic_log.py (real signed hashedrekord entries, the "
        "sequencer's integration code, SETs and full tiles stored), cached in "
        "`.bench-cache/logs`. Logs up to 10^6 entries are copied before each measurement; "
        "the 10^7 log is used in place, so a few thousand appended entries stay in it.",
        "The database file is read once first (a warm OS page cache). "
        "Startup: `tlog serve` started 3 times on the log; time from process start to "
        "the first `/healthz` 200. Startup reads "
        "the head checkpoint and the O(log n) nodes of the right edge, and checks the "
        "published-checkpoint record: it never scans the log.",
        f"Loads ({GEN.name} on CPU 1, {args.duration:g} s each): appends with 1 and 64 "
        "clients, "
        "inclusion proofs at random indexes with 1 and 16 clients, consistency proofs with "
        "16. RSS is the server process's resident set (VmRSS).",
        f"The whole run took {seconds / 60:.1f} minutes (builds of missing logs included).",
    ]
    return {"benchmark": "growth", "title": "Growth", "order": 50,
            "command": "scripts/bench_growth.py", "machine": machine, "method": method,
            "targets": targets, "tables": tables, "plots": plots,
            "notes": growth_notes(rows),
            "data": {"rows": rows}}


if __name__ == "__main__":
    sys.exit(main())
