#!/usr/bin/env python3
"""Client benchmark (issue 6, SPEC §8): proof verification and a full audit.

- Inclusion and consistency proof verifications per second with
  ``tlog_client.verify`` at tree size 2^30 (and 2^20, 2^40 for the trend).
  Proofs are synthetic but valid: a random leaf and random path hashes of the
  exact RFC 9162 length, and the root they lead to (computed with
  ``root_from_inclusion_proof``), so every verification does the whole work
  and succeeds; consistency proofs likewise (the old root is the one the
  random proof implies, the new root the one it leads to).
- ``tlog-client audit`` of a 10^6-entry log end to end (verified checkpoint,
  every tile and entry bundle downloaded, every leaf and level recomputed,
  compared): wall time, server pinned to CPU 0 and the client to CPU 1, and
  both unpinned.

``tlog_client.verify`` folds a proof's path with ``tlog_client.bulk.fold_path``:
the compiled ``tlog_client._bulk.fold_path`` (C) when the accelerator is
built, else the pure-Python loop over ``hashlib``. Which one ran is recorded
(:func:`verification_backend`) and named in the report.

Writes docs/bench/client.json (``--quick``: docs/bench/quick/client.json).

    .venv/bin/python scripts/bench_client.py [--repeat 5] [--audit-size 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchserver  # noqa: E402
import build_synthetic_log  # noqa: E402
from render_benchmarks import load_average, machine_info, write_result  # noqa: E402

from tlog_client import bulk  # noqa: E402
from tlog_client.errors import RootMismatchError  # noqa: E402
from tlog_client.verify import (inclusion_proof_length, root_from_consistency_proof,  # noqa: E402
                                root_from_inclusion_proof, verify_consistency,
                                verify_inclusion)

SIZES = (2**20, 2**30, 2**40)
TARGET_SIZE = 2**30
CASES = 20_000


def verification_backend() -> dict:
    """What ``verify_inclusion`` / ``verify_consistency`` run here: the
    compiled fold (``tlog_client._bulk.fold_path``, with the SHA-256 code it
    selected) or the pure-Python one (``hashlib`` per level)."""
    if bulk._fold_path is bulk._py_fold_path:
        return {"fold": "python",
                "text": "the pure-Python fold (`tlog_client.bulk._py_fold_path`: one "
                        "`hashlib.sha256` of 65 bytes per level)"}
    from tlog_client import _bulk
    cfg = _bulk.configure()
    sha = ("its own SHA-NI code, the CPU having the SHA extensions" if cfg.get("sha_ni") else
           "OpenSSL libcrypto's SHA-256 block function")
    return {"fold": "c", "sha_ni": bool(cfg.get("sha_ni")),
            "text": "the compiled fold `tlog_client._bulk.fold_path` (C; one call per proof, "
                    "and per level one two-block SHA-256 of the 65-byte node with "
                    f"{sha})"}


def legacy_backend(machine: dict) -> dict:
    """What a JSON written before :func:`verification_backend` existed can
    say about the fold: only the bulk backend was recorded."""
    if machine.get("tlog_bulk_backend") == "c":
        return {"fold": None,
                "text": "`tlog_client.bulk.fold_path` with the c backend: the compiled "
                        "`tlog_client._bulk.fold_path` (C), not a hashlib loop, unless the "
                        "accelerator was an old build without it (this run recorded only "
                        "the backend)"}
    return {"fold": None, "text": "`tlog_client.bulk.fold_path` (backend "
                                  f"{machine.get('tlog_bulk_backend')}; fold not recorded)"}


def inclusion_cases(size: int, count: int, rng: random.Random) -> list[tuple]:
    cases = []
    for _ in range(count):
        index = rng.randrange(size)
        leaf = rng.randbytes(32)
        proof = [rng.randbytes(32) for _ in range(inclusion_proof_length(index, size))]
        root = root_from_inclusion_proof(index, size, leaf, proof)
        cases.append((index, size, leaf, proof, root))
    return cases


def _consistency_length(size1: int, size2: int) -> int:
    shift = (size1 & -size1).bit_length() - 1
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length() - shift
    border = ((size1 - 1) >> (inner + shift)).bit_count()
    return (0 if size1 == 1 << shift else 1) + inner + border


def consistency_cases(size2: int, count: int, rng: random.Random) -> list[tuple]:
    cases = []
    while len(cases) < count:
        size1 = rng.randrange(1, size2)
        proof = [rng.randbytes(32) for _ in range(_consistency_length(size1, size2))]
        root1 = rng.randbytes(32)
        try:
            root2 = root_from_consistency_proof(size1, size2, root1, proof)
        except RootMismatchError as exc:  # the old root this proof implies
            root1 = exc.computed
            root2 = root_from_consistency_proof(size1, size2, root1, proof)
        cases.append((size1, size2, root1, root2, proof))
    return cases


def rate(fn, cases: list[tuple], repeat: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeat):
        benchserver.wait_until_quiet()
        started = time.perf_counter()
        for case in cases:
            fn(*case)
        rates.append(len(cases) / (time.perf_counter() - started))
    return statistics.median(rates), rates


def verification(repeat: int, cases: int = CASES) -> list[dict]:
    rng = random.Random(2030)
    rows = []
    for size in SIZES:
        inc = inclusion_cases(size, cases, rng)
        con = consistency_cases(size, cases, rng)
        inc_rate, inc_runs = rate(verify_inclusion, inc, repeat)
        con_rate, con_runs = rate(verify_consistency, con, repeat)
        rows.append({"size": size, "inclusion_per_s": round(inc_rate),
                     "consistency_per_s": round(con_rate),
                     "inclusion_hashes": round(statistics.fmean(len(c[3]) for c in inc), 1),
                     "consistency_hashes": round(statistics.fmean(len(c[4]) for c in con), 1),
                     "inclusion_runs": [round(r) for r in inc_runs],
                     "consistency_runs": [round(r) for r in con_runs]})
        print(f"  2^{size.bit_length() - 1}: {inc_rate:,.0f} inclusion/s, "
              f"{con_rate:,.0f} consistency/s", file=sys.stderr)
    return rows


def _public_pem(data_dir: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key((data_dir / "log-key.pem").read_bytes(), None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def audit_once(url: str, key_file: Path, cpus: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="tlog-audit-") as state:
        cmd = [str(benchserver.ROOT / ".venv" / "bin" / "tlog-client"), "audit", "--url", url,
               "--log-key", str(key_file), "--state-dir", state, "--json", "--no-progress"]
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        started = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"audit failed ({out.returncode}): {out.stdout[-1000:]} "
                           f"{out.stderr[-1000:]}")
    report = json.loads(out.stdout)
    return {"wall_s": round(elapsed, 3), "report": report}


def audit(size: int, repeat: int) -> dict:
    data_dir, built = build_synthetic_log.cached_log(size)
    out = {"size": size, "build": built, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="tlog-audit-key-") as tmp:
        key_file = Path(tmp) / "log.pub"
        key_file.write_bytes(_public_pem(data_dir))
        for label, server_cpus, client_cpus in (("server CPU 0, client CPU 1", "0", "1"),
                                                ("both unpinned", None, None)):
            with benchserver.Server(data_dir, cpus=server_cpus) as server:
                runs = []
                for _ in range(repeat):
                    benchserver.wait_until_quiet()
                    runs.append(audit_once(server.url, key_file, client_cpus))
            wall = statistics.median(r["wall_s"] for r in runs)
            out["runs"][label] = {"wall_s": wall, "entries_per_s": round(size / wall),
                                  "all_s": [r["wall_s"] for r in runs],
                                  "report": runs[-1]["report"]}
            print(f"  audit of {size:,} ({label}): {wall:.1f} s", file=sys.stderr)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--audit-size", type=int, default=10**6)
    parser.add_argument("--audit-repeat", type=int, default=3)
    parser.add_argument("--cases", type=int, default=CASES,
                        help="distinct proofs per tree size and kind")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 proofs, 1 run, an audit of 10^5 entries once; "
                             "written to docs/bench/quick/")
    parser.add_argument("--rereport", action="store_true",
                        help="rebuild docs/bench/client.json's tables and notes from the "
                             "figures it holds (no measuring)")
    args = parser.parse_args()
    if args.rereport:
        return rereport()
    if args.quick:
        args.repeat, args.cases, args.audit_size, args.audit_repeat = 1, 2000, 10**5, 1
        benchserver.quick_quiet()
    backend = verification_backend()
    machine = machine_info(tlog_bulk_backend=bulk.BACKEND, proof_verification=backend["text"])
    rows = verification(args.repeat, args.cases)
    aud = audit(args.audit_size, args.audit_repeat)
    machine["load_average_at_end"] = load_average()
    machine["waits_for_idle_cpus"] = benchserver.quiet_report()
    result = report(machine, args, rows, aud, backend)
    print(f"wrote {write_result(result, quick=args.quick)}")
    return 0


def rereport() -> int:
    """Tables and notes of docs/bench/client.json rebuilt from the figures it
    holds (its provenance and date kept)."""
    from types import SimpleNamespace

    from render_benchmarks import BENCH_DIR
    old = json.loads((BENCH_DIR / "client.json").read_text())
    data = old["data"]
    rows, aud = data["verification"], data["audit"]
    backend = data.get("backend") or legacy_backend(old["machine"])
    args = SimpleNamespace(repeat=len(rows[0]["inclusion_runs"]),
                           cases=data.get("cases") or CASES,
                           audit_repeat=len(next(iter(aud["runs"].values()))["all_s"]))
    result = report(old["machine"], args, rows, aud, backend)
    result["data"]["backend"] = data.get("backend")  # only what the run recorded
    result["data"]["cases"] = data.get("cases")
    print(f"wrote {write_result(result, rereport_of=old)}")
    return 0


def client_notes(rows: list[dict], aud: dict, backend: dict) -> list[str]:
    at = next(r for r in rows if r["size"] == TARGET_SIZE)
    per_hash = 1e6 / at["inclusion_per_s"] / at["inclusion_hashes"]
    pinned = aud["runs"]["server CPU 0, client CPU 1"]
    level = {"c": "a two-block SHA-256 compression in C, plus a share of the Python call",
             "python": "a hashlib SHA-256 of 65 bytes plus the loop"}.get(
                 backend.get("fold"), "the fold's SHA-256 and the call's share")
    return [
        f"An inclusion proof at 2^30 is {at['inclusion_hashes']:.0f} node hashes: "
        f"{1e6 / at['inclusion_per_s']:.1f} µs per verification, {per_hash:.2f} µs per "
        f"level ({level}); the cost is linear in log2 of the tree size.",
        f"The audit rebuilt {aud['size']:,} entries in {pinned['wall_s']:.1f} s "
        f"({pinned['entries_per_s']:,} entries/s) with the server on its own core: it is "
        "bound by downloading and decoding the entry bundles and tiles over HTTP "
        "(each bundle is 256 entries of about 560 bytes) more than by hashing, which the "
        "bulk backend does at close to SHA-256 speed.",
    ]


def audit_cell(report: dict, key: str):
    """A figure of ``tlog-client audit --json`` (client/audit.py,
    AuditReport.to_json: "tilesCompared", "bundlesChecked", ...)."""
    return report.get(key)


def report(machine, args, rows, aud, backend: dict) -> dict:
    at = next(r for r in rows if r["size"] == TARGET_SIZE)
    pinned = aud["runs"]["server CPU 0, client CPU 1"]
    targets = [{"target": "≥ 20,000 inclusion-proof verifications/s at tree size 2^30",
                "measured": f"{at['inclusion_per_s']:,}/s", "met": at["inclusion_per_s"] >= 20000}]
    fold = {"c": "compiled fold", "python": "pure-Python fold"}.get(
        backend.get("fold"), f"{machine.get('tlog_bulk_backend')} backend's bulk.fold_path")
    tables = [
        {"title": f"Proof verification, one core (tlog_client.verify with the {fold}; medians "
                  f"of {args.repeat} runs of {args.cases:,} distinct proofs)",
         "columns": ["tree size", "inclusion/s", "hashes per inclusion proof",
                     "consistency/s", "hashes per consistency proof"],
         "rows": [[f"2^{r['size'].bit_length() - 1}", r["inclusion_per_s"],
                   r["inclusion_hashes"], r["consistency_per_s"], r["consistency_hashes"]]
                  for r in rows]},
        {"title": f"tlog-client audit of a {aud['size']:,}-entry log, end to end (medians of "
                  f"{args.audit_repeat})",
         "columns": ["placement", "wall s", "entries/s", "tiles compared",
                     "entry bundles checked"],
         "rows": [[label, r["wall_s"], r["entries_per_s"],
                   audit_cell(r["report"], "tilesCompared"),
                   audit_cell(r["report"], "bundlesChecked")]
                  for label, r in aud["runs"].items()]},
    ]
    method = [
        "Verification: `verify_inclusion` / `verify_consistency` of tlog_client, which fold "
        f"the proof's path with {backend['text']}, called in a loop over {args.cases:,} "
        "distinct, valid proofs per tree size: "
        "each proof has random path hashes of the exact RFC 9162 length and is checked "
        "against the root it leads to, so every call does all the hashing and succeeds. "
        "One thread, no I/O.",
        f"Audit: `tlog-client audit --json` against `tlog serve` on a synthetic log of "
        f"{aud['size']:,} real hashedrekord entries (scripts/build_synthetic_log.py): it "
        "verifies the checkpoint with the pinned key, downloads every entry bundle and tile "
        "(64 concurrent requests), recomputes every leaf hash and tree level with the bulk "
        f"hashing backend ({machine.get('tlog_bulk_backend')}) and compares every tile and "
        "the root. Wall time from process start to exit.",
    ]
    plots = [{"file": "client-verify.png", "title": "Proof verifications per second",
              "kind": "line", "xlabel": "tree size", "ylabel": "verifications/s",
              "xscale": "log",
              "series": [{"label": "inclusion", "x": [r["size"] for r in rows],
                          "y": [r["inclusion_per_s"] for r in rows]},
                         {"label": "consistency", "x": [r["size"] for r in rows],
                          "y": [r["consistency_per_s"] for r in rows]}],
              "hlines": [{"y": 20000, "label": "target (inclusion, 2^30)"}]}]
    return {"benchmark": "client", "title": "Client", "order": 40,
            "command": "scripts/bench_client.py", "machine": machine, "method": method,
            "targets": targets, "tables": tables, "plots": plots,
            "notes": client_notes(rows, aud, backend),
            "data": {"verification": rows, "audit": aud, "backend": backend,
                     "cases": args.cases,
                     "audit_pinned_wall_s": pinned["wall_s"]}}


if __name__ == "__main__":
    sys.exit(main())
