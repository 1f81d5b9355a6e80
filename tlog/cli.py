"""The server command: ``tlog serve`` and ``tlog fsck``.

Exit codes (SPEC §16), documented in ``--help`` and docs/runbook.md, and
kept: 0 ok; 1 fsck found faults; 2 usage or configuration; 3 damaged
storage; 4 rollback or fork evidence. Every refusal is one line on stderr
naming what is wrong and what to do, never a traceback (SPEC §10 U4).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from . import config as config_mod
from . import eventloop
from .identity import IdentityError, load_or_create
from .published import PublishedRecord, RollbackError
from .storage import (DamagedStorageError, Storage, StorageAccessError, StorageError,
                      typed_errors)

EXIT_OK, EXIT_FAULTS, EXIT_USAGE, EXIT_DAMAGED, EXIT_ROLLBACK = 0, 1, 2, 3, 4
DAMAGED_DOC = "docs/runbook.md#damaged-database"

EXIT_CODES = f"""\
exit codes:
  0  ok (fsck: the log is clean)
  1  fsck found faults in the log (one FAULT: line each)
  2  usage or configuration: a bad option, --host or --port, a port in use,
     a data directory or database that cannot be opened (permissions, not a
     file), a key that is not the log's, another server on the database
  3  damaged storage: the database is damaged, truncated or not a tlog
     database; restore a backup ({DAMAGED_DOC})
  4  rollback or fork evidence: the database is behind, or another history
     than, the last checkpoint this log published; do not serve it
     (docs/runbook.md#rollback-refused)
"""


def _say(prog: str, message: object) -> None:
    """One line on stderr."""
    print(f"{prog}: {' '.join(str(message).split())}", file=sys.stderr)


def _listen_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None. Checked before the
    log is opened: a typo in --host or --port, or a busy port, is then one
    line and exit code 2 rather than a log opened for nothing. (Binding
    again at start can still fail, if the port is taken meanwhile.)"""
    if not 0 <= port <= 65535:
        return f"--port {port} is not a TCP port (0 to 65535)"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) else exc
        return f"--host {host!r} is not an address this machine can listen on ({why})"
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # As the server binds (asyncio sets SO_REUSEADDR): a port held
            # only by connections closing (TIME_WAIT) is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                return _listen_error(host, port, exc)
    return None


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is in use by another process: stop it, or choose "
                "another --port")
    if exc.errno == errno.EACCES:
        return f"this user may not listen on port {port}: choose a --port above 1023"
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host and --port"


def _serve(ns: argparse.Namespace) -> int:
    from .app import serve
    from .sequencer import SequencerHaltedError
    try:
        cfg = config_mod.from_namespace(ns)
    except SystemExit as exc:  # its range checks name the flag
        _say("tlog", exc.code)
        return EXIT_USAGE
    problem = _listen_problem(cfg.host, cfg.port)
    if problem:
        _say("tlog", problem)
        return EXIT_USAGE
    fsck_hint = f"`tlog fsck --data-dir {cfg.data_dir}` names the damage"
    try:
        with typed_errors(cfg.db_path):
            eventloop.run(serve(cfg))
    except (IdentityError, StorageAccessError) as exc:
        _say("tlog", f"refusing to start: {exc}")
        return EXIT_USAGE
    except RollbackError as exc:
        _say("tlog", exc)
        return EXIT_ROLLBACK
    except DamagedStorageError as exc:
        from .fsck import damage_text
        _say("tlog", f"refusing to start: database damaged: {damage_text(exc)}. Restore a "
                     f"backup ({DAMAGED_DOC}); {fsck_hint}")
        return EXIT_DAMAGED
    except (SequencerHaltedError, StorageError) as exc:
        _say("tlog", f"refusing to start: {exc}; {fsck_hint}, then restore a backup "
                     f"({DAMAGED_DOC})")
        return EXIT_DAMAGED
    except OSError as exc:  # listening (the port taken since the check), files
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES) and \
                exc.filename is None:
            _say("tlog", _listen_error(cfg.host, cfg.port, exc))
        else:
            _say("tlog", f"refusing to start: {exc}")
        return EXIT_USAGE
    return EXIT_OK


def _fsck(ns: argparse.Namespace) -> int:
    from .fsck import check_database, public_identity  # here: serve starts faster
    prog = "tlog fsck"
    if ns.database is not None and ns.public_key is None:
        _say(prog, "--database needs --public-key PUB.pem, this log's public key (as "
                   "GET /api/v1/log/publicKey serves it); or use --data-dir")
        return EXIT_USAGE
    db = Path(ns.database) if ns.database is not None else Path(ns.data_dir) / "tlog.db"
    # The published record beside the database, when there is one (a backup
    # copied elsewhere usually has none: then it is not checked).
    record_dir = db.parent
    if not db.exists() and not db.is_symlink():
        _say(prog, f"no log at {db}")
        return EXIT_USAGE
    pinned = None
    if ns.public_key is not None:
        try:
            pinned = Path(ns.public_key).read_bytes()
        except OSError as exc:
            _say(prog, f"cannot read --public-key {ns.public_key}: {exc.strerror or exc}")
            return EXIT_USAGE
    # fsck checks what is stored, not what a server would admit today: the
    # chain and attestation caps are lifted so a log run with larger limits
    # than the defaults is not reported as faulty.
    cfg = config_mod.Config(data_dir=record_dir, max_chain=1 << 20, max_attestation=1 << 40)
    try:
        storage = Storage.open(db, create=False)
    except DamagedStorageError as exc:
        return _damaged_at_start(ns, exc)
    except StorageError as exc:  # StorageAccessError; a schema newer than this tlog
        _say(prog, exc)
        return EXIT_USAGE
    try:
        try:
            with typed_errors(db):
                if pinned is not None:
                    identity = public_identity(storage.get_meta(), pinned, ns.public_key)
                else:
                    identity = load_or_create(cfg, storage, create=False)
        except DamagedStorageError as exc:
            return _damaged_at_start(ns, exc)
        except IdentityError as exc:
            hint = "" if pinned is not None or cfg.key_path.exists() else \
                "; or check it with --public-key PUB.pem (no private key needed)"
            _say(prog, f"{exc}{hint}")
            return EXIT_USAGE
        report = check_database(storage, identity, cfg, PublishedRecord(record_dir))
    finally:
        storage.close()
    if ns.json:
        print(json.dumps(report.to_json()))
    else:
        for fault in report.faults:
            print(f"FAULT: {fault}")
        print(f"{'clean' if report.ok else 'FAULTY'}: {report.entries} entries, "
              f"{report.nodes_checked} nodes, {report.checkpoints} checkpoints checked; "
              f"root {report.root.hex()}")
    if report.damaged:
        _say(prog, f"database damaged: {db} (the faults starting \"database damaged:\" say "
                   f"where); restore a backup, see {DAMAGED_DOC}")
    elif report.rollback:
        _say(prog, f"the database {db} does not hold the last checkpoint this log published "
                   "(a rollback or fork): do not serve it, see docs/runbook.md#rollback-refused")
    return report.exit_code


def _damaged_at_start(ns: argparse.Namespace, exc: DamagedStorageError) -> int:
    """Damage found opening the database: the report, if asked for as JSON
    (one "database damaged:" fault), and one line on stderr; exit code 3."""
    from .fsck import Report, damage_text
    if ns.json:
        report = Report()
        report.damage(damage_text(exc))
        print(json.dumps(report.to_json()))
    _say("tlog fsck", f"database damaged: {damage_text(exc)}; restore a backup, see "
                      f"{DAMAGED_DOC}")
    return EXIT_DAMAGED


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (SPEC §16), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    layout = {"epilog": EXIT_CODES, "formatter_class": argparse.RawDescriptionHelpFormatter}
    parser = _Parser(prog="tlog", description="tlog transparency log server", **layout)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the log (creates it on first start)",
                           description="Run the log; a new data directory gets a new log "
                                       "(key and database) at the first\nstart. One server "
                                       "per database: a second one is refused.", **layout)
    config_mod.build_parser(serve, os.environ)
    serve.set_defaults(func=_serve)
    fsck = sub.add_parser("fsck", help="check every stored entry, node and checkpoint",
                          description="Check the whole log from its stored bytes: SQLite's "
                                      "structural check, every leaf hash,\nnode, root, "
                                      "checkpoint signature and consistency, entry and search "
                                      "row,\nand the last published checkpoint. Safe on a "
                                      "running log; needs no private key\nwith --public-key.",
                          **layout)
    where = fsck.add_mutually_exclusive_group()
    where.add_argument("--data-dir", default=os.environ.get("TLOG_DATA_DIR", "tlog-data"),
                       help="the log's data directory: tlog.db, log-key.pem (unless "
                            "--public-key) and published-checkpoint (env TLOG_DATA_DIR)")
    where.add_argument("--database", metavar="PATH",
                       help="a database file anywhere (a backup), checked with "
                            "--public-key; its directory's published-checkpoint too, if any")
    fsck.add_argument("--public-key", metavar="PUB.pem",
                      help="the log's public key (PEM, as GET /api/v1/log/publicKey serves "
                           "it): checked against the one the database records, and used "
                           "instead of log-key.pem (no private key is read)")
    fsck.add_argument("--json", action="store_true", help="machine-readable report")
    fsck.set_defaults(func=_fsck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    level = os.environ.get("TLOG_LOG_LEVEL", "INFO")
    try:
        logging.basicConfig(level=level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    except ValueError:
        _say("tlog", f"TLOG_LOG_LEVEL={level!r} is not a log level (DEBUG, INFO, WARNING, "
                     "ERROR)")
        return EXIT_USAGE
    return ns.func(ns)


if __name__ == "__main__":
    sys.exit(main())
