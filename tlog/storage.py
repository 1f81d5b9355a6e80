"""SQLite storage: the only module that talks to the database (SPEC §2).

Layout (see docs/storage.md):

- ``meta(key, value)``: the log's identity (origin, tree ID, public key),
  fixed at creation (SPEC I10), and the schema version.
- ``entries(idx, leaf_hash UNIQUE, body, integrated_time, kind, attestation,
  set_signature)``: one row per leaf; the UNIQUE leaf hash makes the
  database, not an in-memory set, decide duplicates (I4); the SET signed at
  integration is served by every later read.
- ``nodes(id, hash)``: every complete Merkle node, ``id = level << 48 | index``
  (so a tile is one contiguous ``id`` range). Any proof is O(log n) point reads
  and any full or partial tile one range read, with no rehashing (SPEC §8).
- ``tiles(id, data)``: each full hash tile (256 node hashes) written once
  when it completes, so that serving it is one row, not 256.
- ``checkpoints(size, root, note, timestamp)``: exactly one signed note per
  tree size (I6); the largest is the log's head.
- ``search(key, idx)``: index rows (digest, key hash, identities), written in
  the entry's transaction (I9).

Durability: WAL with ``synchronous=FULL``: once COMMIT returns, the WAL frames
are fsynced, so a committed batch survives kill -9 and power loss; an
uncommitted one vanishes whole, entries, nodes and checkpoint together.

Concurrency: one writer connection, used only from the sequencer's writer
thread; ``BEGIN IMMEDIATE`` takes SQLite's write lock, and the head is
compared-and-swapped inside that transaction (I7), so a second process on the
same file cannot fork the log. Readers use read-only connections, one per
thread, each read in one transaction so that a proof, its size, root and
checkpoint come from one snapshot (I8).

Failures: any SQLite error inside a write transaction (disk full, I/O error,
at an INSERT or at COMMIT) rolls the whole batch back and is raised as
:class:`WriteFailedError`, so the sequencer acknowledges nothing and signs
nothing it did not commit. Test-only fault seam: if the environment variable
``TLOG_TEST_COMMIT_FAULT`` names a file and that file exists when a batch is
about to COMMIT, the commit fails as SQLite would (``full``: "database or
disk is full"; anything else: "disk I/O error"). Tests create and delete the
file to fail and heal a running server; unset, it costs nothing.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tlog_client.proof import Address, ProofNodes

from .hashcache import CHUNK_NODES, CHUNK_SHIFT, NodeCache
# The rows as values (imported from here by the rest of the server too).
from .records import NewEntry, StoredCheckpoint, StoredEntry

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 3
WAL_AUTOCHECKPOINT_PAGES = 32768
PAGE_CACHE_MIB = 32  # SQLite page cache of each connection
NODE_CACHE_MIB = 40  # upper tree levels kept in memory (see hashcache.NodeCache)
WARM_CHUNKS = 8  # node-cache chunks read per query when warming it
FOLDS_KEPT = 4096  # folded right-edge proof elements memoised (a few per tree size)
_IN_CHUNK = 500  # bound parameters per IN (...) query
LEVEL_SHIFT = 48
MAX_TREE_SIZE = 1 << LEVEL_SHIFT


class StorageError(Exception):
    """The database is unusable, inconsistent, or lost a race it must not lose."""


class DamagedStorageError(StorageError):
    """Stored bytes fail a check (SPEC §10 U2, U4): a row that does not verify,
    a node that is missing, a file SQLite cannot read as a database. It is the
    server's fault, not the client's: answered 500 naming ``what`` is damaged,
    counted in /metrics; at start-up, exit code 3."""

    def __init__(self, what: str, detail: str = "") -> None:
        super().__init__(f"{what} is damaged" + (f": {detail}" if detail else ""))
        self.what = what
        self.detail = detail


class StorageAccessError(StorageError):
    """The database cannot be opened at all for a reason outside it (no
    permission, not a regular file): a configuration error (exit code 2)."""


class HeadMovedError(StorageError):
    """Compare-and-swap failed: another writer changed the head (I7)."""


class WriteFailedError(StorageError):
    """A write transaction failed in SQLite (disk full, I/O error) and was
    rolled back: nothing of it is stored."""


FAULT_ENV = "TLOG_TEST_COMMIT_FAULT"


def _injected_commit_fault(path: str | None) -> None:
    """The test-only fault seam (see the module docstring)."""
    if path and os.path.exists(path):
        try:
            kind = Path(path).read_text().strip()
        except OSError:
            kind = ""
        raise sqlite3.OperationalError("database or disk is full (injected)" if kind == "full"
                                       else "disk I/O error (injected)")


def node_id(level: int, index: int) -> int:
    """Row id of node (level, index) (or of tile (L, N) in ``tiles``).
    Raises ValueError outside the key space, so that no coordinate can
    name another one's row (SPEC §10 U3): ``0 <= level < 64`` and
    ``0 <= index < 2**48``."""
    if not (0 <= level < 64 and 0 <= index < MAX_TREE_SIZE):
        raise ValueError(f"node ({level}, {index}) is outside the tree's key space")
    return (level << LEVEL_SHIFT) | index


def _migrate_v1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key", not_null={"value"})
    db["entries"].create(
        {"idx": int, "leaf_hash": bytes, "body": bytes, "integrated_time": int,
         "kind": str, "attestation": bytes},
        pk="idx", not_null={"leaf_hash", "body", "integrated_time", "kind"})
    db["entries"].create_index(["leaf_hash"], unique=True)
    db["nodes"].create({"id": int, "hash": bytes}, pk="id", not_null={"hash"})
    db["checkpoints"].create(
        {"size": int, "root": bytes, "note": bytes, "timestamp": int},
        pk="size", not_null={"root", "note", "timestamp"})
    db.execute("CREATE TABLE search (key TEXT NOT NULL, idx INTEGER NOT NULL, "
               "PRIMARY KEY (key, idx)) WITHOUT ROWID")


def _migrate_v2(db: sqlite_utils.Database) -> None:
    # The SET signed at integration, so that reads serve it instead of
    # signing again (NULL for entries of older logs: signed when read).
    db.execute("ALTER TABLE entries ADD COLUMN set_signature BLOB")
    # Every full hash tile, as written when it completed: one row per tile
    # read instead of 256 (tiles are immutable; the nodes stay the source of
    # proofs, and fsck checks each tile against them). id = level << 48 | N.
    db.execute("CREATE TABLE tiles (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")


def _migrate_v3(db: sqlite_utils.Database) -> None:
    # A keyed checksum of each entry row as written (tlog/seal.py): reads
    # check it instead of verifying the SET's signature (SPEC §10 U2).
    # NULL for entries written before: reads verify their SET instead.
    db.execute("ALTER TABLE entries ADD COLUMN seal BLOB")


MIGRATIONS = {1: _migrate_v1, 2: _migrate_v2, 3: _migrate_v3}


def _set_wal(conn: sqlite3.Connection, attempts: int = 200) -> None:
    """Switch to WAL. Two processes opening a new database at once: SQLite
    answers "locked" to one of them without waiting for the busy timeout,
    so retry for a while (at most ~10 s) before giving up."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


# SQLite's primary result codes that mean the file cannot be used for a
# reason outside it (permissions, a read-only file or directory, a full
# disk, another process's lock), not damage in it: a configuration error.
_ACCESS_CODES = frozenset({3, 5, 6, 8, 13, 14, 22, 23})  # PERM BUSY LOCKED READONLY
#                                                         FULL CANTOPEN NOLFS AUTH
# SQLITE_IOERR's extended codes of the same kind: the access check, and the
# shared-memory file (tlog.db-shm) that could not be opened or mapped.
_ACCESS_IOERRS = frozenset({13, 18, 19, 21})  # ACCESS SHMOPEN SHMSIZE SHMMAP
_SQLITE_IOERR = 10


def storage_error(exc: sqlite3.Error, path: str | Path) -> StorageError:
    """The typed error that SQLite's ``exc`` about the database ``path``
    means (SPEC §10 U4): :class:`StorageAccessError` when the file cannot be
    used for a reason outside it (_ACCESS_CODES: exit code 2), else
    :class:`DamagedStorageError` (not a database, malformed, an I/O error
    reading it, a schema that is not tlog's: exit code 3)."""
    code = getattr(exc, "sqlite_errorcode", None)
    message = str(exc) or type(exc).__name__
    if code is not None and ((code & 0xFF) in _ACCESS_CODES or (
            code & 0xFF == _SQLITE_IOERR and code >> 8 in _ACCESS_IOERRS)):
        return StorageAccessError(f"the database {path} cannot be used: {message}"
                                  f"{_access_hint(Path(path))}")
    return DamagedStorageError(f"the database {path}", message)


def _access_hint(path: Path) -> str:
    """What the file system says this process lacks, if it says (SQLite's
    own words, "unable to open database file", do not)."""
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f" (this user, uid {os.geteuid()}, cannot read and write {path})"
    directory = path.parent
    if directory.is_dir() and not os.access(directory, os.W_OK | os.X_OK):
        return (f" (this user, uid {os.geteuid()}, cannot write in {directory}: SQLite "
                f"keeps {path.name}-wal and {path.name}-shm beside the database)")
    return ""


@contextmanager
def typed_errors(path: str | Path) -> Iterator[None]:
    """Within: an error SQLite raises about the database ``path`` is raised
    as the :class:`StorageError` it means (:func:`storage_error`), for the
    code outside this module that must report it (start-up, fsck) and may
    not name sqlite3 (SPEC §2). Misuse of the API (ProgrammingError,
    InterfaceError: bugs) is not translated."""
    try:
        yield
    except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise
    except sqlite3.Error as exc:
        raise storage_error(exc, path) from exc


def _connect(path: Path, read_only: bool, create: bool = True) -> sqlite3.Connection:
    """A configured connection to the database ``path``: read-only (SQLite's
    ``mode=ro``), or the writer, which creates a missing file only with
    ``create`` (:meth:`Storage.open` puts it in WAL mode once the file is
    known to be tlog's: the switch writes the header). SQLite's errors are
    raised typed (:func:`storage_error`)."""
    mode = "ro" if read_only else "rwc" if create else "rw"
    # A URI, so that SQLite creates a missing file only when asked; the path
    # quoted, so that a '?', '#' or '%' in it is not URI syntax.
    uri = f"{Path(os.path.abspath(path)).as_uri()}?mode={mode}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise storage_error(exc, path) from exc
    try:
        with typed_errors(path):
            _configure(conn, read_only)
    except BaseException:
        conn.close()
        raise
    return conn


_WAL_HEADER = 32  # bytes before the WAL's first frame


def _wal_size(path: Path) -> int:
    """Bytes in the database's WAL file (0: none)."""
    try:
        return os.stat(f"{path}-wal").st_size
    except OSError:
        return 0


def _configure(conn: sqlite3.Connection, read_only: bool) -> None:
    """The connection's settings (see :func:`_connect`)."""
    if read_only:
        conn.execute("PRAGMA query_only=ON")
    # FULL: fsync the WAL at every commit, so an acknowledged write survives
    # kill -9 and power loss (I5).
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    # Bounded page cache per connection (one writer, one reader per thread):
    # what misses it is read from the OS page cache. 32 MiB keeps the server
    # under 200 MB resident at 10^7 entries (SPEC §8; docs/benchmarks.md).
    conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_MIB * 1024}")
    if not read_only:
        # Copy the WAL into the database every 32,768 pages (128 MiB) rather
        # than SQLite's 1,000: a batch rewrites random pages of the leaf-hash
        # and search indexes, and a page written by many batches is copied
        # once per checkpoint. Measured on batches of 27 entries, 40,000
        # entries: commit CPU 45-46 us per entry at 8,192 pages, 38-39 at
        # 32,768 (48-54 at 1,000, measured earlier on batches of 35). A log
        # left by a process that never closed it, with a full 128 MiB WAL
        # and its WAL index deleted (so SQLite rebuilds it from the whole
        # WAL), opened and read its head in 9-13 ms here. The WAL file stays
        # at that size on disk.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")


class Storage:
    """The log's database. Create with :meth:`open`."""

    def __init__(self, path: Path, writer: sqlite3.Connection) -> None:
        self.path = path
        self._writer = writer
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._fault_path = os.environ.get(FAULT_ENV)
        # The upper levels of the tree, packed: every proof needs one node
        # of each level, so proofs read only their lowest levels from SQLite.
        self._node_cache = NodeCache(NODE_CACHE_MIB << 20)
        # Folded right-edge proof elements by the nodes they fold (see
        # ProofNodes.read): the proofs of one tree share them.
        self._folds: dict[tuple[Address, ...], bytes] = {}

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> "Storage":
        """Open the log database at ``path``, migrating an older tlog schema.
        With ``create`` (``tlog serve``) a missing or empty file becomes a
        new database; without it (``tlog fsck``) the file must hold a log.

        Refused before anything is written (SPEC §10 U4), with
        :class:`StorageAccessError` (exit code 2) when the file cannot be
        used for a reason outside it: missing (without ``create``), not a
        regular file, no permission, a read-only directory, a schema newer
        than this tlog; with :class:`DamagedStorageError` (exit code 3) when
        it is not a sound tlog database as far as opening it reads: not
        SQLite (a damaged header, another file in its place), truncated (cut
        inside a page, or shorter than its header says), a malformed schema,
        empty (without ``create``), another application's database.

        Cheap: the header and the schema are read, never the whole file
        (:meth:`quick_check` does that, for fsck); damage deeper in the file
        is found where it is read."""
        path = Path(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not create:
                raise StorageAccessError(f"there is no database at {path}") from None
            st = None
        except OSError as exc:
            raise StorageAccessError(f"the database {path} cannot be used: "
                                     f"{exc.strerror}{_access_hint(path)}") from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise StorageAccessError(f"the database {path} is not a regular file")
        if st is not None and not os.access(path, os.R_OK | os.W_OK):
            # SQLite would open it read-only without a word, and every write
            # would fail later: refused now, naming the file.
            raise StorageAccessError(f"this user (uid {os.geteuid()}) cannot read and write "
                                     f"the database {path}: fix its owner or mode (or "
                                     "immutable flag), or run tlog as its owner")
        if st is not None and not create and st.st_size == 0 and _wal_size(path) <= _WAL_HEADER:
            # Checked before SQLite is asked: it would make it a database.
            raise DamagedStorageError(f"the database {path}",
                                      "the file is empty: it holds no log")
        writer = _connect(path, read_only=False, create=create)
        try:
            with typed_errors(path):
                page = writer.execute("PRAGMA page_size").fetchone()[0]
                size = os.stat(path).st_size
                # SQLite writes whole pages; a file cut inside one reads as
                # zeros there, unnoticed (a cut at a page boundary SQLite
                # finds: the header says how many pages there are). With
                # frames in the WAL the file is being written: not judged.
                if size % page and _wal_size(path) <= _WAL_HEADER:
                    raise DamagedStorageError(
                        f"the database {path}", f"it is {size} bytes long, not a whole "
                        f"number of {page}-byte pages: the file was truncated")
                storage = cls(path, writer)
                storage._migrate(create)
                _set_wal(writer)
        except BaseException:
            writer.close()
            raise
        return storage

    def quick_check(self, limit: int = 100) -> list[str]:
        """SQLite's check of the whole file's structure (``PRAGMA
        quick_check``: every page, cell and record; not that indexes match
        their tables): [] when sound, else up to ``limit`` problems in
        SQLite's words. Reads every page: for fsck, never at start-up.
        DamagedStorageError when SQLite cannot even read the schema."""
        conn = self._reader()
        with typed_errors(self.path):
            try:
                rows = conn.execute(f"PRAGMA quick_check({int(limit)})").fetchall()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.ProgrammingError):
                    raise
                # SQLite stops at damage it cannot walk past, without saying
                # where: check table by table, to name the damaged ones.
                problems = []
                for name, in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                          "'table' ORDER BY rootpage").fetchall():
                    quoted = name.replace("'", "''")
                    try:
                        rows = conn.execute(f"PRAGMA quick_check('{quoted}')").fetchall()
                    except sqlite3.DatabaseError as table_exc:
                        problems.append(f"table {name}: {table_exc}")
                        continue
                    problems += [f"table {name}: {r[0]}" for r in rows if r[0] != "ok"]
                return problems[:limit] or [str(exc)]
        problems = [row[0] for row in rows]
        return [] if problems == ["ok"] else problems

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()

    def _migrate(self, create: bool = True) -> None:
        """Bring a tlog schema up to SCHEMA_VERSION, in one transaction,
        after refusing what is not tlog's, before writing anything
        (DamagedStorageError): tables but no schema version is another
        application's database (tlog sets the version in the transaction
        that creates its tables, so it is never migrated into); a tlog
        version needs tlog's tables of that version; without ``create``, a
        database without tables holds no log. A schema newer than this tlog
        is StorageAccessError (run the newer tlog)."""
        conn, where = self._writer, f"the database {self.path}"
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {name for name, in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND substr(name, 1, 7) != 'sqlite_'")}
            if version > SCHEMA_VERSION:
                raise StorageAccessError(f"{where} has schema {version}, newer than this "
                                         f"tlog's ({SCHEMA_VERSION}): run the tlog that "
                                         "wrote it, or a newer one")
            expected = set() if version == 0 else (
                {"meta", "entries", "nodes", "checkpoints", "search"}
                | ({"tiles"} if version >= 2 else set()))
            if version == 0 and tables:
                raise DamagedStorageError(where, "it is not a tlog database: it holds the "
                                          f"tables {', '.join(sorted(tables)[:8])} and no "
                                          "tlog schema (another application's database)")
            if expected - tables:
                raise DamagedStorageError(where, f"its tlog schema (version {version}) lacks "
                                          f"the tables {', '.join(sorted(expected - tables))}"
                                          ": not a tlog database, or a damaged one")
            if not tables and not create:
                raise DamagedStorageError(where, "it holds no log (an empty database)")
            if version < SCHEMA_VERSION:
                # Imported only to migrate: sqlite_utils (and what it pulls
                # in) is a third of the server's import time (startup).
                import sqlite_utils
                db = sqlite_utils.Database(conn)
            for v in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](db)
                conn.execute(f"PRAGMA user_version={v}")
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have ended the transaction itself (damage found):
            # a failing ROLLBACK must not hide why.
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    # -- identity (meta) ------------------------------------------------------

    def get_meta(self) -> dict[str, str]:
        return dict(self._writer.execute("SELECT key, value FROM meta").fetchall())

    def create_meta(self, values: dict[str, str]) -> dict[str, str]:
        """Store the identity unless one exists; return the stored identity.
        The check and insert are one transaction, so two first starts race
        safely: exactly one identity wins."""
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            if not self._writer.execute("SELECT 1 FROM meta LIMIT 1").fetchone():
                self._writer.executemany("INSERT INTO meta VALUES (?, ?)", values.items())
            self._writer.execute("COMMIT")
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        return self.get_meta()

    # -- writing (writer thread only) ------------------------------------------

    @contextmanager
    def write(self, expected: StoredCheckpoint | None) -> Iterator["WriteTxn"]:
        """A write transaction that fails with :class:`HeadMovedError` unless
        the head checkpoint is still the tree of ``expected`` (its size and
        root: compare-and-swap, I7).
        Commits on normal exit, rolls back on exception."""
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            txn = WriteTxn(conn)
            head = txn.head()
            # The tree, not the note: a note gains cosignatures (SPEC §13),
            # and the sequencer extends its own verified copy of the note.
            if (head is None) != (expected is None) or (
                    head is not None and (head.size, head.root) != (expected.size, expected.root)):
                raise HeadMovedError(
                    f"head is at size {head.size if head else None}, expected "
                    f"{expected.size if expected else None}")
            yield txn
            # The commit point of a batch: after this returns the WAL is
            # fsynced (synchronous=FULL) and the batch survives a crash.
            _injected_commit_fault(self._fault_path)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise WriteFailedError(f"write transaction failed and was rolled back: "
                                       f"{exc}") from exc
            raise

    # -- reading ------------------------------------------------------------------

    def warm_node_cache(self) -> int:
        """Read the upper levels of the tree that fit in the node cache, top
        level first (at start, in a background thread: proofs then read only
        their lowest levels, from the first request on). Uses a connection
        of its own with a small page cache, closed after.
        Returns the number of hashes cached."""
        conn = _connect(self.path, read_only=True)
        # A small page cache: the levels are read in order, each page once,
        # and pages SQLite allocated stay resident after close (heap).
        conn.execute("PRAGMA cache_size=-1024")
        try:
            conn.execute("BEGIN")
            txn = ReadTxn(conn)
            size, cached = txn.head_size(), 0
            for level in self._node_cache.levels_to_fill(size):
                if not self._warm_level(txn, level, size >> level):
                    break
                cached += size >> level
            return cached
        finally:
            conn.close()

    def _warm_level(self, txn: "ReadTxn", level: int, count: int) -> bool:
        """Cache the ``count`` nodes of ``level`` as one bytes object, read a
        few chunks at a time (a small transient; the GIL is let go between
        reads). False at a gap (damaged storage: a proof that needs the node
        will name it)."""
        step = WARM_CHUNKS * CHUNK_NODES
        buf = bytearray(count * 32)  # one allocation (see NodeCache)
        for first in range(0, count, step):
            want = min(step, count - first)
            data = txn.level_hashes(level, first, want)
            if len(data) != want * 32:
                return False
            buf[first * 32:(first + want) * 32] = data
            time.sleep(0)
        self._node_cache.put_level(level, bytes(buf))
        return True

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, read_only=True)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def stored_full_tile(self, level: int, index: int) -> bytes | None:
        """The stored row of full tile (level, index), read outside any
        snapshot (full tiles never change once stored), unchecked; None if
        none is stored. Precondition: the caller knows the tile is in the
        tree (U3: checked before storage is asked)."""
        with typed_errors(self.path):
            row = self._reader().execute("SELECT data FROM tiles WHERE id = ?",
                                         (node_id(level, index),)).fetchone()
        return row[0] if row else None

    @contextmanager
    def snapshot(self) -> Iterator["ReadTxn"]:
        """One read transaction: every read inside sees the same state (I8).
        An error SQLite raises inside is raised as the StorageError it
        means (a malformed page: DamagedStorageError, answered 500)."""
        with typed_errors(self.path):
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                yield ReadTxn(conn, self._node_cache, self._folds)
            finally:
                conn.execute("COMMIT")


_ENTRY_COLUMNS = "idx, leaf_hash, body, integrated_time, kind, attestation, set_signature, seal"


class ReadTxn:
    """Reads within one snapshot. Also a :class:`~tlog_client.proof.HashReader`."""

    def __init__(self, conn: sqlite3.Connection, node_cache: NodeCache | None = None,
                 folds: dict[tuple[Address, ...], bytes] | None = None) -> None:
        self._conn = conn
        self._node_cache = node_cache
        self._folds = folds

    def head(self) -> StoredCheckpoint | None:
        row = self._conn.execute(
            "SELECT size, root, note, timestamp FROM checkpoints ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return StoredCheckpoint(*row) if row else None

    def head_size(self) -> int:
        row = self._conn.execute("SELECT max(size) FROM checkpoints").fetchone()
        return row[0] or 0

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        row = self._conn.execute(
            "SELECT size, root, note, timestamp FROM checkpoints WHERE size = ?", (size,)
        ).fetchone()
        return StoredCheckpoint(*row) if row else None

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, smallest size first."""
        for row in self._conn.execute(
                "SELECT size, root, note, timestamp FROM checkpoints ORDER BY size"):
            yield StoredCheckpoint(*row)

    def entry(self, index: int) -> StoredEntry | None:
        row = self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE idx = ?", (index,)).fetchone()
        return StoredEntry(*row) if row else None

    def index_of(self, leaf_hash: bytes) -> int | None:
        row = self._conn.execute(
            "SELECT idx FROM entries WHERE leaf_hash = ?", (leaf_hash,)).fetchone()
        return row[0] if row else None

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[StoredEntry]:
        """Entries with ``start <= idx < end`` in index order."""
        end = MAX_TREE_SIZE if end is None else end
        for row in self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM entries "
                "WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)):
            yield StoredEntry(*row)

    def bodies(self, start: int, count: int) -> list[bytes]:
        """Canonical bodies of ``count`` entries from ``start`` (an entry bundle)."""
        return [r[0] for r in self._conn.execute(
            "SELECT body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            (start, start + count))]

    def read_hashes(self, addresses: Sequence[Address]) -> list[bytes]:
        """Hashes of complete nodes, in order (HashReader protocol). Nodes of
        the levels the node cache holds come from it (a miss reads their
        256-node chunk, one range read); the rest are node rows, read in one
        query."""
        if not addresses:
            return []
        cache = self._node_cache
        if cache is None:
            out: list[bytes | None] = [None] * len(addresses)
            floor = LEVEL_SHIFT
        else:
            floor = cache.floor  # before the lookup: the floor only rises
            out = cache.lookup(addresses)
        wanted: list[tuple[int, int]] = []  # (position in out, node id)
        for k, h in enumerate(out):
            if h is None:
                level, index = addresses[k]
                if level >= floor:
                    out[k] = self._cache_chunk(level, index)
                else:
                    wanted.append((k, level << LEVEL_SHIFT | index))  # node_id
        if wanted:
            ids = [i for _, i in wanted]
            rows: dict[int, bytes] = {}
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start:start + _IN_CHUNK]
                rows.update(self._conn.execute(
                    f"SELECT id, hash FROM nodes WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk))
            try:
                for k, i in wanted:
                    out[k] = rows[i]
            except KeyError as exc:
                level, index = divmod(exc.args[0], 1 << LEVEL_SHIFT)
                raise StorageError(f"node ({level}, {index}) is missing") from None
        return out

    def proof(self, nodes: ProofNodes) -> list[bytes]:
        """The proof ``nodes`` describes, read in this snapshot (with the
        storage's memo of folded right-edge elements, when it has one)."""
        folds = self._folds
        if folds is not None and len(folds) > FOLDS_KEPT:
            folds.clear()
        return nodes.read(self, folds)

    def _cache_chunk(self, level: int, index: int) -> bytes:
        """Read the 256-node chunk holding node (level, index) into the node
        cache (its stored prefix: a gap, damaged storage, ends it); the
        node's hash. StorageError if the node is not stored."""
        first = index >> CHUNK_SHIFT << CHUNK_SHIFT
        rows = self._conn.execute(
            "SELECT id, hash FROM nodes WHERE id >= ? AND id < ? ORDER BY id",
            (node_id(level, first), node_id(level, first + CHUNK_NODES))).fetchall()
        start = node_id(level, first)
        hashes = [h for _, h in rows]
        data = b"".join(hashes)
        if rows and (rows[0][0] != start or rows[-1][0] != start + len(rows) - 1
                     or len(data) != 32 * len(rows)):
            # Not one run of 32-byte hashes from the first id (ids are unique
            # and sorted): damaged storage. Keep the run before the fault.
            hashes = list(_run_from(rows, start))
            data = b"".join(hashes)
        self._node_cache.put(level, first >> CHUNK_SHIFT, data)
        if index - first >= len(hashes):
            raise StorageError(f"node ({level}, {index}) is missing")
        return hashes[index - first]

    def level_hashes(self, level: int, start: int, count: int) -> bytes:
        """Concatenated hashes of nodes ``start .. start+count-1`` at ``level``
        (a tile's contents); fewer if the level is shorter."""
        rows = self._conn.execute(
            "SELECT hash FROM nodes WHERE id >= ? AND id < ? ORDER BY id",
            (node_id(level, start), node_id(level, start + count)))
        return b"".join(r[0] for r in rows)

    def tile(self, level: int, index: int) -> bytes | None:
        """The stored full tile (level, index): 256 hashes of Merkle level
        ``8 * level``; None if it is not stored (not full yet, or completed
        before schema 2: read it with :meth:`level_hashes`)."""
        row = self._conn.execute("SELECT data FROM tiles WHERE id = ?",
                                 (node_id(level, index),)).fetchone()
        return row[0] if row else None

    def hash_tile(self, level: int, index: int, width: int) -> bytes:
        """The contents of hash tile (level, index) of ``width`` hashes
        (c2sp.org/tlog-tiles) as stored, unchecked; fewer if the tree is
        shorter. A full tile is one stored row (or a range read of older
        logs), a partial one a range read. Precondition: the tile is in
        the tree (checked by the caller before storage is asked, U3)."""
        return (self.tile(level, index) if width == 256 else None) or \
            self.level_hashes(8 * level, index * 256, width)

    def tiles(self) -> Iterator[tuple[int, int, bytes]]:
        """Every stored full tile as (level, index, data), for fsck."""
        for tid, data in self._conn.execute("SELECT id, data FROM tiles ORDER BY id"):
            yield tid >> LEVEL_SHIFT, tid & ((1 << LEVEL_SHIFT) - 1), data

    def index_rows(self, start: int, end: int) -> dict[int, set[str]]:
        """Search keys of entries ``start <= idx < end``, by index (for fsck)."""
        rows: dict[int, set[str]] = {}
        for key, idx in self._conn.execute(
                "SELECT key, idx FROM search WHERE idx >= ? AND idx < ?", (start, end)):
            rows.setdefault(idx, set()).add(key)
        return rows

    def search(self, key: str, limit: int, after: int = -1) -> list[int]:
        """The first ``limit`` entry indexes above ``after`` whose index keys
        include ``key``, ascending (one range of the (key, idx) primary key:
        the cost is the rows returned, wherever ``after`` falls)."""
        return [r[0] for r in self._conn.execute(
            "SELECT idx FROM search WHERE key = ? AND idx > ? ORDER BY idx LIMIT ?",
            (key, after, limit))]


def _run_from(rows: list[tuple[int, bytes]], start: int) -> Iterator[bytes]:
    """The hashes of the leading rows whose ids are ``start, start + 1, …``
    and whose hashes are 32 bytes."""
    for k, (i, h) in enumerate(rows):
        if i != start + k or len(h) != 32:
            return
        yield h


class WriteTxn(ReadTxn):
    """Writes inside the writer's open transaction (see :meth:`Storage.write`)."""

    def insert_entry(self, index: int, entry: NewEntry, integrated_time: int) -> bool:
        """Insert at ``index``; False if the leaf hash is already stored (I4)."""
        cur = self._conn.execute(
            "INSERT INTO entries (idx, leaf_hash, body, integrated_time, kind, attestation) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (leaf_hash) DO NOTHING",
            (index, entry.leaf_hash, entry.body, integrated_time, entry.kind, entry.attestation))
        if cur.rowcount and entry.index_keys:
            self._conn.executemany("INSERT OR IGNORE INTO search (key, idx) VALUES (?, ?)",
                                   [(k, index) for k in entry.index_keys])
        return cur.rowcount == 1

    def find_leaves(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """(index, integrated time) of each of ``leaf_hashes`` already stored."""
        found: dict[bytes, tuple[int, int]] = {}
        for start in range(0, len(leaf_hashes), _IN_CHUNK):
            chunk = leaf_hashes[start:start + _IN_CHUNK]
            for h, idx, t in self._conn.execute(
                    "SELECT leaf_hash, idx, integrated_time FROM entries WHERE leaf_hash IN "
                    f"({','.join('?' * len(chunk))})", chunk):
                found[h] = (idx, t)
        return found

    def insert_entries(self, first: int, entries: Sequence[NewEntry], integrated_time: int,
                       set_signatures: Sequence[bytes | None] | None = None,
                       seals: Sequence[bytes | None] | None = None) -> None:
        """Insert ``entries`` at indexes ``first, first+1, …`` with their
        SETs, seals (tlog/seal.py) and search rows (I9). A leaf hash already
        stored fails the whole transaction (UNIQUE, I4): callers look them up
        first."""
        conn = self._conn
        sets = set_signatures or [None] * len(entries)
        seals = seals or [None] * len(entries)
        conn.executemany(
            "INSERT INTO entries (idx, leaf_hash, body, integrated_time, kind, attestation, "
            "set_signature, seal) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(first + k, e.leaf_hash, e.body, integrated_time, e.kind, e.attestation, sig, seal)
             for k, (e, sig, seal) in enumerate(zip(entries, sets, seals))])
        conn.executemany("INSERT OR IGNORE INTO search (key, idx) VALUES (?, ?)",
                         [(key, first + k) for k, e in enumerate(entries)
                          for key in e.index_keys])

    def insert_nodes(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        self._conn.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)",
                               [(node_id(lv, i), h) for lv, i, h in nodes])

    def insert_tiles(self, tiles: Iterable[tuple[int, int, bytes]]) -> None:
        """Store full tiles (level, index, 8,192 bytes) as they complete."""
        self._conn.executemany("INSERT INTO tiles (id, data) VALUES (?, ?)",
                               [(node_id(lv, i), data) for lv, i, data in tiles])

    def insert_checkpoint(self, cp: StoredCheckpoint) -> None:
        """Insert the new head; the primary key refuses a second note for one size (I6)."""
        self._conn.execute("INSERT INTO checkpoints (size, root, note, timestamp) "
                           "VALUES (?, ?, ?, ?)", (cp.size, cp.root, cp.note, cp.timestamp))
