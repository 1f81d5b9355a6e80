"""The record of the last published checkpoint, kept apart from the database.

A database restored from an older backup (or swapped for another copy of the
log) looks perfectly healthy on its own: its entries, nodes and checkpoints
agree with each other. What it cannot show is that the log already published
a bigger tree; a server started on it would sign a second, different
checkpoint for sizes it has already signed: a fork. So after every publish
(each committed batch, before any waiter is acknowledged) the sequencer
writes the new head to ``published-checkpoint`` in the data directory,
durably, and at start the database must hold that tree:

- its head is at least the recorded size, and
- the root at the recorded size, recomputed from the stored nodes, is the
  recorded root, and the stored head is consistent with it (a proof read
  from the stored nodes verifies).

Otherwise the server refuses to start (:class:`RollbackError`), naming both
sizes. The record only moves forward: two processes on one database (SPEC
I7) update it under an ``flock`` and never replace a bigger size.

The record is a small JSON object: ``{"origin", "size", "root" (hex),
"note"}`` (the signed checkpoint, kept as evidence). The file holds it twice,
in two 4 KiB slots, each the CRC-32 of the JSON (8 hex digits) on its own
line, then the JSON, padded with spaces. A batch overwrites, in place, the
slot that does not hold the newest record, and ``fdatasync``s it: one data
write per batch, and no new file, rename or directory fsync (those cost about five
times as much). A crash in the middle of that write leaves the slot torn
(its checksum fails) and the other slot holds the previous record, which is
what is then read: the newest valid slot counts. The first write, a record
too big for a slot (more than 4 KiB) and the file of older versions (the
JSON alone) go through a whole new file instead (temporary file, fsync,
rename, directory fsync). A missing record is accepted (a log from before
this record existed, or a new log) and written at once; an unreadable one
(neither slot valid) is refused, never silently replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from tlog_client.checkpoint import parse_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.encoding import MAX_INT64, hex_decode_lower
from tlog_client.errors import TlogError
from tlog_client.jsonstrict import expect_int, expect_object, expect_str, loads_strict
from tlog_client.proof import HashReader, consistency_nodes, right_edge
from tlog_client.verify import verify_consistency

from .durable import write_file
from .storage import DamagedStorageError, ReadTxn, StorageError, StoredCheckpoint

FILE_NAME = "published-checkpoint"
MAX_RECORD = 64 * 1024
SLOT = 4096  # bytes per copy of the record (two copies)


class RollbackError(Exception):
    """The database is behind, or not consistent with, the last checkpoint
    this log published: it was restored from an older backup or belongs to
    another copy of the log. Starting would fork the log."""


@dataclass(frozen=True, slots=True)
class PublishedHead:
    origin: str
    size: int
    root: bytes
    note: str

    def to_json(self) -> dict:
        """The record as the JSON object it is stored as."""
        return {"origin": self.origin, "size": self.size, "root": self.root.hex(),
                "note": self.note}

    def encode(self) -> bytes:
        """The stored JSON, one line (json's C encoder: no indent)."""
        return json.dumps(self.to_json()).encode() + b"\n"


def _parse(data: bytes, path: Path) -> PublishedHead:
    try:
        obj = expect_object(loads_strict(data, max_size=MAX_RECORD), "record",
                            required=("origin", "size", "root", "note"))
        return PublishedHead(expect_str(obj["origin"], "origin"),
                             expect_int(obj["size"], "size", maximum=MAX_INT64),
                             hex_decode_lower(obj["root"], "root", length=32),
                             expect_str(obj["note"], "note"))
    except (TlogError, ValueError) as exc:
        raise _unreadable(path, str(exc)) from None


def _unreadable(path: Path, why: str) -> RollbackError:
    return RollbackError(f"{path} is unreadable ({why}); it records the last checkpoint "
                         "this log published, so the server cannot tell whether the "
                         "database is current. Restore it from a backup or see "
                         "docs/runbook.md")


class PublishedRecord:
    """``published-checkpoint`` in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        self._lock_path = Path(data_dir) / (FILE_NAME + ".lock")
        self._mutex = threading.Lock()
        self._written = -1  # largest size this process recorded
        # (file content, slot of the newest record, that record) as this
        # process last wrote or read it under the flock; None: unknown.
        self._mine: tuple[bytes, int, PublishedHead] | None = None

    def read(self) -> PublishedHead | None:
        """The recorded head, None if there is no record; RollbackError if
        the record exists but cannot be read."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RollbackError(f"{self.path} cannot be read: {exc}") from None
        return _decode(data, self.path)[0]

    def check(self, snap: ReadTxn, origin: str | None) -> PublishedHead | None:
        """Refuse (RollbackError) a database that does not hold the recorded
        tree; StorageError if its own stored tree is damaged (missing or
        changed nodes: ``tlog fsck`` says which). ``origin``: the log's
        origin if the database has one."""
        record = self.read()
        if record is None:
            return None
        where = f"the last checkpoint this log published (size {record.size}, recorded in " \
                f"{self.path})"
        if origin is not None and record.origin != origin:
            raise RollbackError(f"the database is the log {origin!r} but {where} is of "
                                f"the log {record.origin!r}; refusing to start")
        head = snap.head()
        size = head.size if head else 0
        if head is None or size < record.size:
            raise RollbackError(
                f"the database holds a tree of size {size if head else 'none'}, behind "
                f"{where}: it was restored from an older backup or is another copy. "
                "Serving it would sign a second, different checkpoint for sizes already "
                "published (a fork); refusing to start. Restore a copy at least as new, "
                "see docs/runbook.md")
        signed = snap.checkpoint(record.size)
        if signed is not None and signed.root != record.root:
            if _note_names(signed.note, record.size, record.root):
                # The row's own signed note names the recorded tree: its root
                # column is what changed (a bad disk, an edit), not history.
                raise DamagedStorageError(
                    f"the checkpoint row at size {record.size}",
                    f"its root column {signed.root.hex()} is not the root its own signed "
                    f"note names ({record.root.hex()})")
            raise RollbackError(
                f"the database signed root {signed.root.hex()} at size {record.size}, not "
                f"the root {record.root.hex()} of {where}: it is another history (a fork); "
                "refusing to start")
        try:
            edge = snap.read_hashes(right_edge(record.size))
            root = CompactRange.from_hashes(0, record.size, edge).root()
            if root != record.root:
                if signed is not None:  # the database's own nodes disagree with it
                    raise StorageError(f"the stored tree at size {record.size} does not match "
                                       "its checkpoint (damaged storage)")
                raise RollbackError(
                    f"the database's tree at size {record.size} has root {root.hex()}, not "
                    f"the root {record.root.hex()} of {where}: it is another history "
                    "(a fork); refusing to start")
            if 0 < record.size < head.size:
                proof = consistency_nodes(record.size, head.size).read(snap)
                verify_consistency(record.size, head.size, record.root, head.root, proof)
        except StorageError:
            raise  # damaged storage: the caller says to run fsck
        except TlogError as exc:
            raise RollbackError(f"the database's head (size {head.size}) is not consistent "
                                f"with {where}: {exc}; refusing to start") from None
        return record

    def require_extended(self, prev: StoredCheckpoint, size: int, root: bytes,
                         reader: HashReader) -> None:
        """Before the sequencer signs the tree of ``size`` leaves with
        ``root``, which it proved consistent with its head ``prev``: the
        record as it is on disk now must be a tree this one extends (U1).
        RollbackError otherwise: the record names a bigger tree, or another
        root, or is unreadable; it was changed behind the running server.

        Cheap when nothing changed: one read of the two slots, compared
        with what this process last wrote (no decoding), and prev is what
        it recorded."""
        with self._mutex:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise RollbackError(f"{self.path} was removed while the log runs") from None
            except OSError as exc:
                raise RollbackError(f"{self.path} cannot be read: {exc}") from None
            try:
                data = os.pread(fd, 2 * SLOT + 1, 0)
                mine = self._mine
                if mine is not None and data == mine[0]:
                    record = mine[2]
                else:
                    if len(data) > 2 * SLOT:
                        data = os.pread(fd, MAX_RECORD + 1, 0)
                    record = _decode(data, self.path)[0]
            finally:
                os.close(fd)
        if record.size == prev.size and record.root == prev.root:
            return  # prev -> (size, root) is what the sequencer just proved
        where = f"{self.path} records the tree of size {record.size}"
        if record.size > size:
            raise RollbackError(f"{where}, bigger than the tree of size {size} about to be "
                                "signed: the database went back, or another server "
                                "published it")
        if record.size == size:
            if record.root != root:
                raise RollbackError(f"{where} with root {record.root.hex()}, not "
                                    f"{root.hex()}: another history (a fork)")
            return
        if record.size:
            try:
                proof = consistency_nodes(record.size, size).read(reader)
                verify_consistency(record.size, size, record.root, root, proof)
            except (TlogError, StorageError) as exc:
                raise RollbackError(f"{where} with root {record.root.hex()}, and the tree "
                                    f"of size {size} is not consistent with it (another "
                                    f"history, a fork): {exc}") from None

    def publish(self, origin: str, head: StoredCheckpoint) -> None:
        """Record ``head`` durably unless a record at least as big exists
        (called after each commit, before acknowledging; writer thread)."""
        with self._mutex:
            if head.size <= self._written:
                return
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._publish_locked(PublishedHead(origin, head.size, head.root,
                                                   head.note.decode()))
            finally:
                os.close(fd)  # releases the flock
            self._written = head.size

    def _publish_locked(self, record: PublishedHead) -> None:
        """Under the flock: overwrite the older slot in place, or write a
        whole new file (none yet, unreadable, or a record too big)."""
        data = record.encode()
        encoded = _encode_slot(data)
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            self._replace(record, data, encoded)
            return
        try:
            current, slot = self._current(fd)
            if current is not None and current.size >= record.size:
                return  # another process on this database recorded a newer head
            if encoded is None or slot is None:
                self._replace(record, data, encoded)
                return
            offset = (1 - slot) * SLOT
            if os.pwrite(fd, encoded, offset) != SLOT:
                raise OSError(f"short write to {self.path}")
            # The size is unchanged, so only data needs syncing. A crash before
            # this returns leaves that slot old or torn, never the other one:
            # readers then take the other (previous) record.
            getattr(os, "fdatasync", os.fsync)(fd)
            old = self._mine[0]  # set by _current: the slotted file as read
            self._mine = (old[:offset] + encoded + old[offset + SLOT:], 1 - slot, record)
        finally:
            os.close(fd)

    def _current(self, fd: int) -> tuple[PublishedHead | None, int | None]:
        """The recorded head and its slot ((None, None) if unreadable: ours is
        a committed head). Not decoded again when the file holds exactly the
        bytes this process last wrote (the usual case: one sequencer)."""
        data = os.pread(fd, 2 * SLOT + 1, 0)
        if self._mine is not None and data == self._mine[0]:
            return self._mine[2], self._mine[1]
        self._mine = None
        try:
            if len(data) > 2 * SLOT:  # a whole-file record (the JSON alone): all of it
                data = os.pread(fd, MAX_RECORD + 1, 0)
            head, slot = _decode(data, self.path)
        except RollbackError:  # damaged while we run
            return None, None
        if slot is not None:
            self._mine = (data, slot, head)
        return head, slot

    def _replace(self, record: PublishedHead, data: bytes, encoded: bytes | None) -> None:
        """A whole new file (temporary file, fsync, rename, directory fsync):
        both slots hold ``record`` (``data``, as slot ``encoded``); the JSON
        alone if it does not fit a slot (``encoded`` None)."""
        content = data if encoded is None else encoded + encoded
        write_file(self.path, content, 0o644, replace=True)
        self._mine = None if encoded is None else (content, 0, record)


def _note_names(note: bytes, size: int, root: bytes) -> bool:
    """Whether the text of a signed checkpoint ``note`` (signatures not
    checked) is the tree (size, root)."""
    try:
        body = parse_checkpoint(bytes(note).split(b"\n\n", 1)[0].decode() + "\n")
    except (TlogError, ValueError):
        return False
    return (body.size, body.root_hash) == (size, root)


def _encode_slot(data: bytes) -> bytes | None:
    """One slot: the CRC-32 of ``data`` (8 hex digits) on its own line,
    ``data``, and spaces up to SLOT bytes; None if it does not fit. The CRC
    only detects a torn write; the record's meaning is checked at start."""
    slot = _crc(data) + b"\n" + data
    return slot.ljust(SLOT, b" ") if len(slot) <= SLOT else None


def _crc(data: bytes) -> bytes:
    return b"%08x" % zlib.crc32(data)


def _decode_slot(slot: bytes, path: Path) -> PublishedHead | None:
    """The record in one slot; None if the slot is blank or torn."""
    digest, newline, rest = slot.partition(b"\n")
    data = rest.rstrip(b" ")
    if not newline or _crc(data) != digest:
        return None
    return _parse(data, path)


def _decode(data: bytes, path: Path) -> tuple[PublishedHead, int | None]:
    """The recorded head and the slot holding it: the newest valid slot, or
    None for a file that is the JSON record alone (older versions, or a
    record too big for a slot). RollbackError if neither is readable."""
    if len(data) != 2 * SLOT or data[:1] == b"{":
        return _parse(data, path), None
    valid = [(i, head) for i in (0, 1)
             if (head := _decode_slot(data[i * SLOT:(i + 1) * SLOT], path)) is not None]
    if not valid:
        raise _unreadable(path, "neither copy of the record is whole")
    slot, head = max(valid, key=lambda v: v[1].size)
    return head, slot
