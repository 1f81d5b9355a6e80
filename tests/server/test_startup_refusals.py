"""``tlog serve`` and ``tlog fsck`` on a database that is damaged, truncated,
foreign or unreadable, a data directory they cannot use, an address they
cannot listen on (SPEC §10 U4, §16): each exits with its documented code and
one line on stderr that names what is wrong and what to do, never a
traceback. Every case runs the real command (a subprocess), at the default
log level, as an operator would.

Exit codes: 2 usage or configuration (the file or directory cannot be used,
the address cannot be listened on); 3 damaged storage (restore a backup);
4 rollback (see test_rollback.py; here: an empty database in a data
directory that published a tree)."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..serverproc import ServerProcess, free_port
from .helpers import PinnedLog, ecdsa_signer

SIZE = 150  # entries: the database spans a few dozen pages of each table
ORIGIN = "tlog.test/refusals"
DAMAGED = ("database damaged", "restore a backup", "docs/runbook.md#damaged-database")


def tlog(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command, at the default log level; it must exit by itself."""
    env = {k: v for k, v in os.environ.items() if k != "TLOG_LOG_LEVEL"}
    try:
        return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"tlog {' '.join(args)} did not exit (it started?): {exc.stdout!r}")


def serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return tlog("serve", "--data-dir", str(data_dir), "--port", str(free_port()), *args)


def fsck(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return tlog("fsck", "--data-dir", str(data_dir), *args)


def assert_refused(out: subprocess.CompletedProcess, code: int, words: tuple[str, ...]) -> None:
    """Exit ``code``, and exactly one line on stderr holding every one of
    ``words`` (case-insensitive): what is wrong and what to do."""
    assert out.returncode == code, (out.returncode, out.stderr, out.stdout[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


@pytest.fixture(scope="module")
def base_log(tmp_path_factory) -> Path:
    """A real log of SIZE entries, stopped cleanly (its WAL folded into
    tlog.db and removed: the file alone is the database)."""
    server = ServerProcess(tmp_path_factory.mktemp("refusals") / "log", "--origin", ORIGIN)
    server.start()
    try:
        pinned = PinnedLog.of(server)
        signer = ecdsa_signer()
        for _ in range(SIZE):
            assert pinned.submit(signer.entry())[0].status == 201
    finally:
        server.stop()
    assert not (server.data_dir / "tlog.db-wal").exists()
    return server.data_dir


@pytest.fixture
def log_copy(base_log, tmp_path) -> Path:
    data_dir = tmp_path / "log"
    shutil.copytree(base_log, data_dir)
    return data_dir


# -- damage, as done to the file -----------------------------------------------------

def _db(d: Path) -> Path:
    return d / "tlog.db"


def truncate_to(length: Callable[[int], int]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        with open(_db(d), "r+b") as f:
            f.truncate(length(_db(d).stat().st_size))
    return damage


def pages_of(d: Path, table: str) -> list[int]:
    """The pages (0-based) of ``table`` in the database, from SQLite's dbstat."""
    db = sqlite3.connect(f"file:{_db(d)}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno",
                          (table,)).fetchall()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table")
    finally:
        db.close()
    return [p - 1 for p, in rows]


def overwrite(pages: Callable[[Path], list[int]], start: int = 0) -> Callable[[Path], None]:
    """Random bytes over each of ``pages`` (from byte ``start`` of the page)."""
    def damage(d: Path) -> None:
        rng = random.Random(18)
        chosen = pages(d)
        with open(_db(d), "r+b") as f:
            for page in chosen:
                f.seek(page * 4096 + start)
                f.write(rng.randbytes(4096 - start))
    return damage


def replace_with(data: bytes) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        _db(d).write_bytes(data)
    return damage


def foreign_database(user_version: int) -> Callable[[Path], None]:
    """Another application's SQLite database in place of tlog.db."""
    def damage(d: Path) -> None:
        _db(d).unlink()
        db = sqlite3.connect(_db(d))
        with db:
            db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
            db.execute("INSERT INTO photos VALUES (1, 'holiday.png')")
            db.execute(f"PRAGMA user_version = {user_version}")
        db.close()
    return damage


# For serve an empty file is a new database (SQLite's rule): it gets tlog's
# schema, then the start is refused because the published record is bigger.
EMPTY_SERVE = (4, ("size none", "published", "runbook"))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


@dataclass(frozen=True)
class Case:
    damage: Callable[[Path], None]
    serve: tuple[int, tuple[str, ...]] | None  # (exit code, words); None: not a start-up case
    fsck: tuple[int, tuple[str, ...]]


def damaged(*extra: str) -> tuple[int, tuple[str, ...]]:
    return 3, DAMAGED + extra


CASES = {
    # Truncated: inside the header, inside page 1, at half the file, inside the
    # last page, one whole page short.
    "cut at byte 50": Case(truncate_to(lambda n: 50), damaged(), damaged()),
    "cut at byte 1000": Case(truncate_to(lambda n: 1000), damaged(), damaged()),
    "cut at half": Case(truncate_to(lambda n: n // 2 + 123), damaged(), damaged()),
    "cut 1 byte short": Case(truncate_to(lambda n: n - 1), damaged("truncated"),
                             damaged("truncated")),
    "cut 1 page short": Case(truncate_to(lambda n: n - 4096), damaged(), damaged()),
    # Damaged: random bytes over the header, over page 1's schema (after the
    # header), over the pages of what start-up reads (the identity, the
    # checkpoints), and over many pages of the file.
    "header overwritten": Case(overwrite(lambda d: [0]), damaged("not a database"),
                               damaged("not a database")),
    "schema page overwritten": Case(overwrite(lambda d: [0], start=100), damaged(),
                                    damaged()),
    "meta page overwritten": Case(overwrite(lambda d: pages_of(d, "meta")), damaged(),
                                  damaged()),
    "checkpoints overwritten": Case(overwrite(lambda d: pages_of(d, "checkpoints")),
                                    damaged(), damaged()),
    "every 5th page overwritten": Case(overwrite(lambda d: list(range(
        2, _db(d).stat().st_size // 4096, 5))), damaged(), damaged()),
    # Deeper damage: entries and search pages are not read at start (that would
    # cost a pass over the whole file): reads find it (500 naming it, U2) and
    # fsck does.
    "entries pages overwritten": Case(overwrite(lambda d: pages_of(d, "entries")[1::3]),
                                      None, damaged()),
    "search pages overwritten": Case(overwrite(lambda d: pages_of(d, "search")[1:]),
                                     None, damaged()),
    # Foreign: not SQLite at all, or another application's database.
    "a PNG file": Case(replace_with(PNG), damaged("not a database"),
                       damaged("not a database")),
    "a text file": Case(replace_with(b"to do: back up the log\n" * 300),
                        damaged("not a database"), damaged("not a database")),
    "another application's database": Case(foreign_database(0),
                                           damaged("not a tlog database", "photos"),
                                           damaged("not a tlog database", "photos")),
    "another application's, versioned": Case(foreign_database(3), damaged("lacks the tables"),
                                             damaged("lacks the tables")),
    # An empty tlog.db is SQLite's new database: serve refuses it as a rollback
    # here (this data directory published a tree of size SIZE); fsck finds no log.
    "an empty file": Case(replace_with(b""), EMPTY_SERVE, damaged("empty")),
    # Unusable for a reason outside the file: configuration, exit code 2.
    "tlog.db is a directory": Case(lambda d: (_db(d).unlink(), _db(d).mkdir()),
                                   (2, ("not a regular file",)), (2, ("not a regular file",))),
    "tlog.db is a FIFO": Case(lambda d: (_db(d).unlink(), os.mkfifo(_db(d))),
                              (2, ("not a regular file",)), (2, ("not a regular file",))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_damaged_truncated_foreign_refused(log_copy, name):
    case = CASES[name]
    case.damage(log_copy)
    before = _db(log_copy).read_bytes() if _db(log_copy).is_file() else None
    assert_refused(fsck(log_copy), *case.fsck)
    if case.fsck[0] == 3:  # the JSON report says so too
        out = fsck(log_copy, "--json")
        assert out.returncode == 3
        report = json.loads(out.stdout)
        assert report["damaged"] is True and report["ok"] is False
        assert any(f.startswith("database damaged:") for f in report["faults"]), report
    if before is not None:  # fsck neither migrated into, "repaired" nor switched to WAL
        assert _db(log_copy).read_bytes() == before
    if case.serve is not None:
        assert_refused(serve(log_copy), *case.serve)
        if before is not None and case.serve != EMPTY_SERVE:  # nor did serve
            assert _db(log_copy).read_bytes() == before


def test_deep_damage_is_found_where_read(log_copy):
    """Damage start-up does not read: the server starts (a pass over the
    whole file would cost seconds at 10^7 entries), fsck names it (exit 3)."""
    overwrite(lambda d: pages_of(d, "search")[1:])(log_copy)
    server = ServerProcess(log_copy).start()
    server.stop()
    out = fsck(log_copy)
    assert_refused(out, *damaged())
    faults = [line for line in out.stdout.splitlines() if line.startswith("FAULT: ")]
    assert faults and all(f.startswith("FAULT: database damaged: ") for f in faults), faults
    assert "quick_check: table search" in out.stdout, out.stdout


# -- a data directory or database this user cannot use: exit code 2 --------------------

@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """``path`` made unwritable: chmod, or for root (whom chmod does not
    stop) the immutable flag; skipped where neither works."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and chattr +i does not work here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_unwritable_data_directory(log_copy, tmp_path):
    with unwritable(log_copy):
        assert_refused(serve(log_copy), 2, ("cannot", "write", str(log_copy)))
        assert_refused(fsck(log_copy), 2, ("cannot", "write", str(log_copy)))
    new = tmp_path / "new"
    new.mkdir()
    with unwritable(new):  # a new log cannot be created in it
        assert_refused(serve(new), 2, ("may not", str(new), "permissions"))


def test_unwritable_database(log_copy):
    with unwritable(_db(log_copy)):
        for out in (serve(log_copy), fsck(log_copy)):
            assert_refused(out, 2, ("cannot read and write", "tlog.db", "owner"))


def test_unreadable_database(log_copy):
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file (the directory case covers not-a-file)")
    _db(log_copy).chmod(0)
    try:
        for out in (serve(log_copy), fsck(log_copy)):
            assert_refused(out, 2, ("cannot read and write", "tlog.db"))
    finally:
        _db(log_copy).chmod(0o644)


def test_data_directory_is_a_file(tmp_path):
    not_a_dir = tmp_path / "tlog-data"
    not_a_dir.write_text("not a directory")
    assert_refused(serve(not_a_dir), 2, ("not a directory", "--data-dir"))
    assert_refused(serve(not_a_dir / "below"), 2, ("not a directory", "--data-dir"))
    assert_refused(fsck(not_a_dir), 2, ("no log",))
    assert not list(tmp_path.glob("*.db*"))


def test_missing_database_for_fsck(tmp_path):
    assert_refused(fsck(tmp_path / "nowhere"), 2, ("no log",))


# -- where to listen: exit code 2, before the log is opened --------------------------------

def test_busy_port_bad_host_bad_port(tmp_path):
    data_dir = tmp_path / "log"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_refused(tlog("serve", "--data-dir", str(data_dir), "--port", str(port)), 2,
                       ("in use", str(port), "--port"))
    for args, words in [(("--port", "99999"), ("--port 99999", "0 to 65535")),
                        (("--port", "-1"), ("--port -1",)),
                        (("--port", "http"), ("--port", "invalid int")),
                        (("--host", "no such host!"), ("--host", "no such host!")),
                        (("--host", "192.0.2.1"), ("cannot listen", "--host")),
                        (("--batch-size", "0"), ("--batch-size",))]:
        out = tlog("serve", "--data-dir", str(data_dir), *(
            args if "--port" in args else ("--port", str(free_port()), *args)))
        assert_refused(out, 2, words)
    assert not data_dir.exists()  # refused before the log was opened


def test_usage_errors_are_one_line(tmp_path):
    assert_refused(tlog("fsck", "--no-such-flag"), 2, ("--no-such-flag", "--help"))
    assert_refused(tlog(), 2, ("required", "--help"))
    assert_refused(tlog("fsck", "--data-dir", "a", "--database", "b"), 2, ("not allowed",))


def test_exit_codes_are_in_help():
    for args in (("--help",), ("serve", "--help"), ("fsck", "--help")):
        out = tlog(*args)
        assert out.returncode == 0
        for line in ("0  ok", "1  fsck found faults", "2  usage or configuration",
                     "3  damaged storage", "4  rollback or fork"):
            assert line in out.stdout, (args, line)
        assert "docs/runbook.md#damaged-database" in out.stdout


def test_serving_lock_names_its_holder_and_goes_with_it(tmp_path):
    """The lock on the database file, as tlog.datalock takes it: held (here
    by this test's process), a server is refused naming this pid; released,
    the server starts."""
    from tlog.datalock import hold_serving_lock, release_serving_lock
    data_dir = tmp_path / "log"
    hold_serving_lock(data_dir / "tlog.db")
    hold_serving_lock(data_dir / "tlog.db")  # again in one process: already held
    try:
        assert_refused(serve(data_dir), 2, (f"pid {os.getpid()}", "already served",
                                            "docs/runbook.md#second-server-refused"))
    finally:
        release_serving_lock(data_dir / "tlog.db")
    ServerProcess(data_dir).start().stop()
