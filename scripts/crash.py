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
(with every cycle) to docs/bench/crash.json. Exit status 0 only if no entry
was lost, fsck was clean after every kill, and no check failed.

    .venv/bin/python scripts/crash.py [--cycles 50] [--writers 8] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crashsuite import CrashSuite  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "crash.json")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--server-workers", type=int, default=0,
                        help="run the server with --workers N (HTTP worker processes)")
    args = parser.parse_args()

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
                    "seconds": round(time.monotonic() - started, 1),
                    "machine": {"python": platform.python_version(),
                                "platform": platform.platform(),
                                "cpus": __import__("os").cpu_count()}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "cycles": suite.cycles_json()},
                                   indent=1) + "\n")
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
    print(f"report:                 {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    print("RESULT:", "PASS" if summary["ok"] else "FAIL")
    if args.keep:
        print(f"data directory kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
