"""One serving process per SQLite database (SPEC §10 U4, §4 I7).

The compare-and-swap of the head (tlog/storage.py) keeps two writers on one
database from forking the log, but two servers on one SQLite file are still
wrong: each serves the head it last saw, and the operator who started the
second one by mistake is told nothing. So the serving process (the one that
runs the sequencer) takes an exclusive, non-blocking ``flock`` on the
database file itself before it opens any SQLite connection, and a second
one is refused at start with a message that says what to do.

- The database file, not a lock file in the data directory: a hard link to
  it from another data directory, or a symlink, is the same file, and is
  refused too.
- ``flock``, not ``fcntl``: flock locks belong to the open file description
  and are independent of the POSIX locks SQLite takes on the same file
  (on local file systems; on NFS Linux emulates flock with POSIX locks, and
  SQLite's own locking is not reliable there anyway).
- Held for the process's life: closing *any* descriptor of a file drops
  every POSIX lock this process holds on it, SQLite's included. So the file
  is opened once per process, before SQLite opens it, and that descriptor
  is never closed while a connection may be open: the kernel releases the
  lock when the process exits (kill -9 included: nothing stale is left).
  Asking again in the same process (an app built twice in one process, as
  tests do) returns at once, without opening the file again. A process that
  goes on after its log shut down, every connection closed, may let go of
  it earlier (:func:`release_serving_lock`).
- Only the serving process takes it (tlog.app.open_log): not the HTTP worker
  processes of ``--workers`` (they share the sequencer's database on
  purpose), not ``tlog fsck`` (it checks a live log), not code that opens
  :class:`tlog.storage.Storage` directly.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from pathlib import Path

from .storage import StorageAccessError

RUNBOOK = "docs/runbook.md#second-server-refused"


class DatabaseInUseError(StorageAccessError):
    """Another process serves this database: refused at start (exit code 2)."""


_held: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a database -> its descriptor
_mutex = threading.Lock()


def hold_serving_lock(db_path: str | Path) -> None:
    """Hold the serving lock of the database ``db_path`` for the rest of this
    process's life (see the module docstring), creating its directory and an
    empty file if missing (SQLite makes it a database).

    Precondition: no SQLite connection of this process is open on that file,
    unless this process already holds its lock.

    Raises :class:`DatabaseInUseError` if another process holds it, and
    :class:`StorageAccessError` if the file or its directory cannot be
    opened (the data directory is a file, the database is a directory or
    not a regular file, no permission): both are exit code 2."""
    path = Path(db_path)
    with _mutex:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise _access_error(path, exc) from None
        if st is not None and (st.st_dev, st.st_ino) in _held:
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise StorageAccessError(f"the database {path} is not a regular file; "
                                     "point --data-dir at the log's directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_NONBLOCK: a FIFO put in its place must not hang the start.
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC,
                         0o644)
        except OSError as exc:
            raise _access_error(path, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StorageAccessError(f"the database {path} is not a regular file; "
                                         "point --data-dir at the log's directory")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # precondition: no connection of ours on it
            raise DatabaseInUseError(_in_use(path, st)) from None
        except BaseException:
            os.close(fd)
            raise
        _held[(st.st_dev, st.st_ino)] = fd


def release_serving_lock(db_path: str | Path) -> None:
    """Let go of the serving lock this process holds on the database
    ``db_path``, if it holds one (for a process that goes on after its log
    shut down; exiting releases it anyway).

    Precondition: every SQLite connection of this process on that file is
    closed (closing the descriptor drops all of this process's POSIX locks
    on the file, SQLite's included)."""
    with _mutex:
        try:
            st = os.stat(db_path)
        except OSError:
            return
        fd = _held.pop((st.st_dev, st.st_ino), None)
        if fd is not None:
            os.close(fd)


def _in_use(path: Path, st: os.stat_result) -> str:
    holder = _holder(st)
    who = f"another process (pid {holder})" if holder else "another process"
    return (f"the database {path} is already served by {who}: one SQLite database has "
            "one server. Stop the other one first, or give this one its own --data-dir. "
            "One server uses more cores with --workers N; several servers of one log "
            f"need the PostgreSQL backend (SPEC §11). See {RUNBOOK}")


def _holder(st: os.stat_result) -> int | None:
    """The pid holding a flock on the file ``st`` describes, from Linux's
    /proc/locks (best effort: None elsewhere, or if not found)."""
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:56789 0 EOF"
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
                    return int(fields[4])
    except (OSError, ValueError):
        pass
    return None


def _access_error(path: Path, exc: OSError) -> StorageAccessError:
    """The configuration error an OSError opening ``path`` means, naming it."""
    directory = path.parent
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        why = f"the data directory {directory} (or a directory above it) is not a directory"
    elif exc.errno == errno.EISDIR:
        why = f"the database {path} is a directory, not a file"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = (f"this user (uid {os.geteuid()}) may not open {path} or create it in "
               f"{directory}: {exc.strerror}")
    else:
        why = f"{path}: {exc.strerror or exc}"
    return StorageAccessError(f"cannot open the log's database: {why}; check --data-dir "
                              "and its permissions")
