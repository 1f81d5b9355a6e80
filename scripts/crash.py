#!/usr/bin/env python3
"""Crash suite (issue 7, SPEC §9): SIGKILL a real ``tlog serve`` at random
moments under concurrent writes, many times, and prove nothing acknowledged
is ever lost.

Each cycle (tests/crashsuite.py): start the server on the same data
directory, run concurrent writers (hashedrekord and DSSE entries) and a
checkpoint reader, kill -9 after a random number of acknowledgements, after a
random time, or at once; run ``tlog fsck``; restart; check every 201'd entry
is at its acknowledged index with identical bytes, every checkpoint any
client saw is consistent with the new head, the published-checkpoint record
is the head, the search index is complete. Prints a report and writes it
(with every cycle) to docs/bench/crash.json (``--quick``: 3 cycles, to
docs/bench/quick/crash.json), through scripts/render_benchmarks.py's
write_result (commit, machine, load). Exit status 0 only if no entry was
lost, fsck was clean after every kill, and no check failed.

    .venv/bin/python scripts/crash.py [--cycles 50] [--writers 8] [--seed N] [--quick]
    .venv/bin/python scripts/crash.py --from-json docs/bench/crash.json   (re-report)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from render_benchmarks import machine_info, write_result  # noqa: E402

QUICK_CYCLES = 3


def report(summary: dict, cycles: list[dict]) -> dict:
    """The schema of scripts/render_benchmarks.py from a run's summary and
    its cycles (all kept under "data")."""
    s = summary
    targets = [
        {"target": "no acknowledged entry lost after any kill -9",
         "measured": f"{s['entries_lost']} lost of {s['entries_acknowledged']:,} acknowledged "
                     f"in {s['cycles']} cycles", "met": s["entries_lost"] == 0},
        {"target": "tlog fsck clean after every kill",
         "measured": f"{s['fsck_clean']} clean, {s['fsck_faulty']} faulty",
         "met": s["fsck_faulty"] == 0 and s["fsck_clean"] == s["cycles"]},
        {"target": "every check after restart passes (checkpoints seen consistent with the "
                   "head, published record, search index)",
         "measured": f"{len(s['failures'])} failures", "met": not s["failures"]},
    ]
    rows = [["cycles", s["cycles"]], ["writers", s.get("writers")],
            ["server --workers", s.get("server_workers")],
            ["entries acknowledged", s["entries_acknowledged"]],
            ["entries lost", s["entries_lost"]], ["final tree size", s["final_tree_size"]],
            ["checkpoints seen by clients", s["checkpoints_seen"]],
            ["requests in flight at the kills", s["in_flight_at_kill"]],
            ["of which logged after the restart", s["in_flight_logged"]],
            ["seed", s.get("seed")], ["seconds", s.get("seconds")], ["ok", s["ok"]]]
    tables = [{"title": "The run", "columns": ["", ""], "rows": rows},
              {"title": "Kill moments", "columns": ["kill", "cycles"],
               "rows": [[k, v] for k, v in s["kill_modes"].items()]}]
    if s["failures"]:
        tables.append({"title": "Failures", "columns": ["failure"],
                       "rows": [[f[:300]] for f in s["failures"][:50]]})
    method = [
        "Each cycle (tests/crashsuite.py) starts `tlog serve` on the same data directory, "
        f"runs {s.get('writers', '?')} concurrent writers (hashedrekord entries from ECDSA and "
        "RSA keys, and DSSE attestations, every 201 verified completely) and a reader "
        "polling `/checkpoint`, then sends SIGKILL after a random number of "
        "acknowledgements, after a random time, at once, or while the server starts; runs "
        "`tlog fsck` on what the killed process left; restarts and checks that every "
        "acknowledged entry is at its acknowledged index with identical bytes, that every "
        "checkpoint any client saw is consistent with the new head, that the published "
        "record is the head and that the search index covers every entry."]
    return {"benchmark": "crash", "title": "Crash", "order": 80,
            "command": "scripts/crash.py" + (f" --cycles {s['cycles']}" if s.get("cycles") else ""),
            "method": method, "targets": targets, "tables": tables,
            "data": {"summary": summary, "cycles": cycles}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_CYCLES} cycles; written to docs/bench/quick/")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--server-workers", type=int, default=0,
                        help="run the server with --workers N (HTTP worker processes)")
    parser.add_argument("--from-json", type=Path,
                        help="do not run: re-report a saved run (its provenance and date kept)")
    args = parser.parse_args()

    if args.from_json:
        old = json.loads(args.from_json.read_text())
        data = old.get("data") if "benchmark" in old else old  # this schema, or the old one
        result = report(data["summary"], data["cycles"])
        result["machine"] = old.get("machine") or data["summary"].get("machine") or {}
        print(f"wrote {write_result(result, rereport_of=old)}")
        return 0 if data["summary"]["ok"] else 1

    if args.quick:
        args.cycles = QUICK_CYCLES
    # Imported here: the suite needs the server's dependencies.
    from tests.crashsuite import CrashSuite

    machine = machine_info()
    work = Path(tempfile.mkdtemp(prefix="tlog-crash-"))
    server_args = ("--workers", str(args.server_workers)) if args.server_workers else ()
    suite = CrashSuite(work / "log", seed=args.seed, writers=args.writers,
                       server_args=server_args)
    started = time.monotonic()
    try:
        for i in range(args.cycles):
            r = suite.cycle()
            status = "ok" if r.fsck_ok and not r.lost and not r.failures else "FAIL"
            print(f"cycle {i + 1:3d}/{args.cycles}: {r.kill_mode:10s} after {r.load_seconds:5.2f} s"
                  f"  acked {r.acknowledged:4d}  in flight {r.in_flight_at_kill:2d}"
                  f" (logged {r.in_flight_logged:2d})  tree {r.head_size:6d}"
                  f"  fsck {'clean' if r.fsck_ok else 'FAULTY'}  lost {len(r.lost)}  {status}",
                  flush=True)
            for failure in r.failures + r.fsck_faults:
                print(f"    {failure[:300]}", flush=True)
    finally:
        suite.server.kill()
    summary = suite.summary()
    summary.update({"seed": args.seed, "writers": args.writers,
                    "server_workers": args.server_workers,
                    "seconds": round(time.monotonic() - started, 1)})
    result = report(summary, suite.cycles_json())
    result["machine"] = machine
    path = write_result(result, quick=args.quick)
    print()
    print(f"cycles run:             {summary['cycles']}")
    print(f"entries acknowledged:   {summary['entries_acknowledged']}")
    print(f"entries lost:           {summary['entries_lost']}")
    print(f"fsck after each kill:   {summary['fsck_clean']} clean, {summary['fsck_faulty']} faulty")
    print(f"final tree size:        {summary['final_tree_size']}")
    print(f"checkpoints seen:       {summary['checkpoints_seen']} (all consistent with the head: "
          f"{'yes' if not summary['failures'] else 'NO'})")
    print(f"in flight at the kills: {summary['in_flight_at_kill']} "
          f"({summary['in_flight_logged']} of them logged, the rest never acknowledged)")
    print(f"kill moments:           {summary['kill_modes']}")
    print(f"failures:               {len(summary['failures'])}")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"report:                 {shown}")
    print("RESULT:", "PASS" if summary["ok"] else "FAIL")
    if args.keep:
        print(f"data directory kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
