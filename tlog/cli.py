"""The server command: ``tlog serve`` and ``tlog fsck``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import config as config_mod
from . import eventloop
from .identity import IdentityError, load_or_create
from .published import PublishedRecord, RollbackError
from .storage import Storage, StorageError


def _serve(ns: argparse.Namespace) -> int:
    from .app import serve
    cfg = config_mod.from_namespace(ns)
    from .sequencer import SequencerHaltedError
    try:
        eventloop.run(serve(cfg))
    except IdentityError as exc:
        print(f"tlog: {exc}", file=sys.stderr)
        return 2
    except RollbackError as exc:
        print(f"tlog: {exc}", file=sys.stderr)
        return 4
    except (SequencerHaltedError, StorageError) as exc:
        print(f"tlog: refusing to start: {exc}; run `tlog fsck --data-dir "
              f"{cfg.data_dir}` for a full report", file=sys.stderr)
        return 3
    return 0


def _fsck(ns: argparse.Namespace) -> int:
    from .fsck import check  # here: `tlog serve` starts faster without it
    data_dir = Path(ns.data_dir)
    db = data_dir / "tlog.db"
    if not db.exists():
        print(f"tlog fsck: no log at {db}", file=sys.stderr)
        return 2
    # fsck checks what is stored, not what a server would admit today: the
    # chain and attestation caps are lifted so a log run with larger limits
    # than the defaults is not reported as faulty.
    cfg = config_mod.Config(data_dir=data_dir, max_chain=1 << 20, max_attestation=1 << 40)
    storage = Storage.open(db)
    try:
        identity = load_or_create(cfg, storage, create=False)
        with storage.snapshot() as snap:
            report = check(snap, identity, cfg)
            try:  # the database against the last published checkpoint
                PublishedRecord(data_dir).check(snap, identity.origin)
            except (RollbackError, StorageError) as exc:
                report.fault(f"published checkpoint: {exc}")
    except IdentityError as exc:
        print(f"tlog fsck: {exc}", file=sys.stderr)
        return 2
    finally:
        storage.close()
    if ns.json:
        print(json.dumps({"ok": report.ok, "entries": report.entries,
                          "checkpoints": report.checkpoints, "nodes": report.nodes_checked,
                          "root": report.root.hex(), "faults": report.faults}))
    else:
        for fault in report.faults:
            print(f"FAULT: {fault}")
        print(f"{'clean' if report.ok else 'FAULTY'}: {report.entries} entries, "
              f"{report.nodes_checked} nodes, {report.checkpoints} checkpoints checked; "
              f"root {report.root.hex()}")
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("TLOG_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="tlog", description="tlog transparency log server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the log (creates it on first start)")
    config_mod.build_parser(serve, os.environ)
    serve.set_defaults(func=_serve)
    fsck = sub.add_parser("fsck", help="check every stored entry, node and checkpoint")
    fsck.add_argument("--data-dir", default=os.environ.get("TLOG_DATA_DIR", "tlog-data"),
                      help="the log's data directory (env TLOG_DATA_DIR)")
    fsck.add_argument("--json", action="store_true", help="machine-readable report")
    fsck.set_defaults(func=_fsck)
    ns = parser.parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
