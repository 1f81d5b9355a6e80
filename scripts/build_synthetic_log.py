#!/usr/bin/env python3
"""Build (or extend) a large log fast, through the server's own integration
and storage code, for the read, growth and audit benchmarks.

Entries are real hashedrekord 0.0.1 entries: distinct artifact digests, each
really signed with one of ``--keys`` ECDSA P-256 keys (scripts/signed_entries.py),
about 560 bytes of canonical JSON each, with the search rows the server would
write (digest and key hash). They are signed by worker processes while the
main process integrates them with :func:`tlog.bulkload.append`, i.e.
:func:`tlog.integrate.integrate`, the sequencer's batch code: one
transaction, one consistency-checked, signed checkpoint per ``--chunk``
entries, the head compared-and-swapped, durable commits, each entry's SET
signed and stored. Skipped: HTTP and the per-entry signature check
(``tlog fsck`` re-verifies every signature).

The result is an ordinary log: ``tlog serve --data-dir DIR`` serves it and
``tlog fsck --data-dir DIR`` passes. Run again with a larger ``--entries``
to extend it (entry numbers continue from the tree size, so entries stay
distinct).

    .venv/bin/python scripts/build_synthetic_log.py --data-dir /tmp/log --entries 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import signed_entries  # noqa: E402

from tlog import bulkload  # noqa: E402
from tlog.config import Config  # noqa: E402
from tlog.identity import load_or_create  # noqa: E402
from tlog.published import PublishedRecord  # noqa: E402
from tlog.search import hash_key, key_key  # noqa: E402
from tlog.storage import NewEntry, Storage, StoredCheckpoint  # noqa: E402
from tlog_client import bulk  # noqa: E402
from tlog_client.hashing import HASH_SIZE  # noqa: E402

SEED = "tlog-synthetic"
KIND = "hashedrekord"


def _entries(seed: str, keys: int, start: int, count: int,
             workers: int | None) -> Iterator[NewEntry]:
    key_keys = [key_key(h) for h in signed_entries.key_hashes(seed, keys)]
    i = start
    for bodies in signed_entries.generate(seed, keys, start, count, workers):
        leaves = bulk.leaf_hashes(bodies)
        for k, body in enumerate(bodies):
            digest = signed_entries.digest(seed, i).hex()
            yield NewEntry(leaves[k * HASH_SIZE:(k + 1) * HASH_SIZE], body, KIND,
                           (hash_key("sha256", digest), key_keys[i % keys]))
            i += 1


def build(data_dir: Path, entries: int, *, keys: int = 16, seed: str = SEED,
          chunk: int = 50_000, origin: str | None = None, key_type: str = "ed25519",
          workers: int | None = None,
          progress: Callable[[StoredCheckpoint, float], None] | None = None) -> dict:
    """Extend the log in ``data_dir`` (created if needed) to ``entries``
    entries; return what was done (sizes, seconds, rate)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = Config(data_dir=data_dir, origin=origin, key_type=key_type)
    storage = Storage.open(config.db_path)
    try:
        published = PublishedRecord(data_dir)
        with storage.snapshot() as snap:
            published.check(snap, storage.get_meta().get("origin"))
            head = snap.head()
        identity = load_or_create(config, storage)
        start = head.size if head else 0
        started = time.perf_counter()
        if entries > start:
            head = bulkload.append(
                storage, identity, _entries(seed, keys, start, entries - start, workers),
                published=published, chunk=chunk,
                sign_sets=bulkload.parallel_set_signer(identity, os.cpu_count() or 1),
                progress=(lambda h: progress(h, time.perf_counter() - started))
                if progress else None)
        elif head is None:
            head = bulkload.append(storage, identity, [], published=published)
        elapsed = time.perf_counter() - started
    finally:
        storage.close()
    added = head.size - start
    return {"start": start, "size": head.size, "added": added, "seconds": round(elapsed, 2),
            "rate": round(added / elapsed) if elapsed and added else None,
            "root": head.root.hex(), "origin": identity.origin,
            "db_bytes": config.db_path.stat().st_size}


LOGS = signed_entries.CACHE / "logs"


def _complete(path: Path) -> int | None:
    marker = path / "synthetic-size"
    return int(marker.read_text()) if marker.exists() else None


def cached_log(size: int, progress: Callable[[StoredCheckpoint, float], None] | None = None
               ) -> tuple[Path, dict | None]:
    """A synthetic log of (at least) ``size`` entries in ``.bench-cache/logs``,
    shared by the benchmarks (which may append a few entries to it). Built by
    extending a copy of the largest smaller one; returns (data dir, what the
    build did, None if it was cached)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    path = LOGS / f"n{size}"
    if _complete(path) is not None:
        info = path / "synthetic-build.json"
        return path, json.loads(info.read_text()) if info.exists() else None
    smaller = sorted((n, p) for p in LOGS.iterdir()
                     if (n := _complete(p)) is not None and n < size)
    work = LOGS / f"n{size}.building"
    shutil.rmtree(work, ignore_errors=True)
    if smaller:
        shutil.copytree(smaller[-1][1], work)
        (work / "synthetic-size").unlink()
    done = build(work, size, progress=progress)
    done["copied_from"] = smaller[-1][0] if smaller else None
    (work / "synthetic-build.json").write_text(json.dumps(done, indent=1) + "\n")
    (work / "synthetic-size").write_text(str(size))
    work.rename(path)
    return path, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="the log to build or extend")
    parser.add_argument("--entries", type=int, help="tree size to reach")
    parser.add_argument("--cache", help="instead: build the benchmarks' cached logs of these "
                                        "sizes (comma-separated) in .bench-cache/logs")
    parser.add_argument("--keys", type=int, default=16, help="signing keys (build systems)")
    parser.add_argument("--seed", default=SEED)
    parser.add_argument("--chunk", type=int, default=50_000,
                        help="entries per transaction and checkpoint")
    parser.add_argument("--origin", help="origin of a new log")
    parser.add_argument("--workers", type=int, help="signing processes (default: one per CPU)")
    args = parser.parse_args()

    def show(head: StoredCheckpoint, elapsed: float) -> None:
        print(f"\r{head.size:,} entries, {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    if args.cache:
        for size in sorted(int(n) for n in args.cache.split(",")):
            path, done = cached_log(size, progress=show)
            print(f"\n{path}: {json.dumps(done)}", file=sys.stderr)
        return 0
    if args.data_dir is None or args.entries is None:
        parser.error("give --data-dir and --entries, or --cache")

    result = build(args.data_dir, args.entries, keys=args.keys, seed=args.seed,
                   chunk=args.chunk, origin=args.origin, workers=args.workers, progress=show)
    print(file=sys.stderr)
    print(f"{args.data_dir}: {result['size']:,} entries (added {result['added']:,} in "
          f"{result['seconds']} s, {result['rate'] or 0:,} entries/s), root {result['root']}, "
          f"database {result['db_bytes'] / 2**20:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
