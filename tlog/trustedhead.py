"""The head a process trusts: the checkpoints it has verified (SPEC §10 U1, U2).

Storage is untrusted: a database can be restored from a backup, edited, or
damaged behind the running server. Every process of the log (the one that
sequences, and each HTTP worker) therefore keeps, in memory, the checkpoints
it has verified, and never serves or extends one it has not:

- a checkpoint this process signed itself, or received from its own
  sequencer over the private link, is trusted as is (:meth:`adopt`);
- a head row read from storage (:meth:`check`) is served only if it is one
  of the verified checkpoints, or it is bigger than the largest verified one,
  its note verifies under the log key (every log key line: Go's and Rekor's
  key IDs) and names the stored size and root, and a consistency proof from
  the largest verified checkpoint, read from the same snapshot, verifies. So
  each size costs signature checks once per process, not once per request;
- a head row *smaller* than the largest verified checkpoint (and not one of
  the recent verified ones a slightly older snapshot may see), or one with
  another root at a verified size, means the database went back or forked:
  the process is halted (:attr:`halted`, a metric, a critical log line),
  writes answer 503 naming the cause, and reads keep serving the largest
  verified checkpoint, until an operator restarts the log;
- a head row whose note does not verify is damaged: it is never served
  (the verified copy of that size is, if there is one), and it is counted.

Seeding: at start a process first trusts the record of the last published
checkpoint kept outside the database (:mod:`tlog.published`), if its note
verifies, so that even its first read of the database is checked against
something the database cannot change.

No database here: proofs are read through the snapshot's
:class:`~tlog_client.proof.HashReader` the caller passes in.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from tlog_client.checkpoint import open_checkpoint
from tlog_client.errors import TlogError
from tlog_client.note import NoteVerifier
from tlog_client.proof import HashReader, consistency_nodes
from tlog_client.verify import verify_consistency

from .records import StoredCheckpoint
from .storage import DamagedStorageError, StorageError

log = logging.getLogger(__name__)

RECENT = 256  # verified checkpoints kept by size: a snapshot is at most a few batches old


class TrustedHead:
    """The checkpoints one process verified, and whether it halted.

    Thread-safe: the sequencer's writer thread adopts, the event loop and
    executor threads check."""

    def __init__(self, verifiers: Sequence[NoteVerifier], origin: str,
                 on_damage: Callable[[str], None] | None = None,
                 on_halt: Callable[[str], None] | None = None) -> None:
        """``on_damage(what)`` is called for each damaged row found (a
        metric); ``on_halt(reason)`` once, when the process halts."""
        self._verifiers = list(verifiers)
        self._origin = origin
        self.on_damage = on_damage
        self._on_halt = [on_halt] if on_halt else []
        self._recent: OrderedDict[int, StoredCheckpoint] = OrderedDict()
        self._lock = threading.Lock()
        self.latest: StoredCheckpoint | None = None
        self.halted: str | None = None

    # -- trusting ------------------------------------------------------------------

    def adopt(self, cp: StoredCheckpoint) -> None:
        """Trust ``cp`` without checking it: this process signed it, or its
        own sequencer did (the private link). Never lowers :attr:`latest`."""
        with self._lock:
            self._remember(cp)

    def seed(self, cp: StoredCheckpoint) -> None:
        """Trust ``cp`` if its note verifies under the log key and names its
        size and root (the published record, read at start); DamagedStorageError
        otherwise."""
        self._verify_note(cp, "the published-checkpoint record")
        self.adopt(cp)

    def _remember(self, cp: StoredCheckpoint) -> None:
        """Under the lock."""
        self._recent[cp.size] = cp
        self._recent.move_to_end(cp.size)
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)
        if self.latest is None or cp.size >= self.latest.size:
            self.latest = cp

    # -- checking what storage says ----------------------------------------------------

    def check(self, stored: StoredCheckpoint | None, reader: HashReader) -> StoredCheckpoint:
        """The checkpoint to serve from a snapshot whose head row is
        ``stored``, read in that snapshot by ``reader``: ``stored`` itself
        once verified, else the largest verified checkpoint (after a
        rollback or damage: see the module docstring). Raises
        DamagedStorageError when nothing verified can be served."""
        known = self._recent.get(stored.size) if stored is not None else None
        if known is not None and known.root == stored.root and known.note == stored.note:
            return known  # the common case: a dict lookup and two comparisons
        return self._check_slow(stored, known, reader)

    def _check_slow(self, stored: StoredCheckpoint | None, known: StoredCheckpoint | None,
                    reader: HashReader) -> StoredCheckpoint:
        latest = self.latest
        if stored is None:
            if latest is not None:
                self.halt("the database holds no checkpoint, but this log published the "
                          f"tree of size {latest.size}: it was replaced or emptied")
                return latest
            raise DamagedStorageError("the checkpoints table", "it holds no checkpoint")
        if known is not None:
            if known.root != stored.root:
                self.halt(f"the database's checkpoint at size {stored.size} has root "
                          f"{stored.root.hex()}, not the root {known.root.hex()} this log "
                          "verified for that size: another history (a fork)")
                return latest
            # Same tree, another note: cosignatures added, or a damaged note.
            try:
                self._verify_note(stored, f"the checkpoint at size {stored.size}")
            except DamagedStorageError:
                return known  # serve the verified copy of that size
            self.adopt(stored)
            return stored
        if latest is not None and stored.size < latest.size:
            self.halt(f"the database's head is at size {stored.size}, behind the checkpoint "
                      f"of size {latest.size} this log verified: it went back (a restored "
                      "backup, or an edited database)")
            return latest
        try:
            self._verify_note(stored, f"the head checkpoint at size {stored.size}")
        except DamagedStorageError:
            if latest is None:
                raise
            return latest
        if latest is not None and latest.size:
            try:
                proof = consistency_nodes(latest.size, stored.size).read(reader)
                verify_consistency(latest.size, stored.size, latest.root, stored.root, proof)
            except (TlogError, StorageError) as exc:
                # A checkpoint signed by the log key that its stored tree
                # does not prove consistent: damaged nodes, or a fork. Never
                # serve it; the sequencer halts on its own check.
                self._damaged(f"the tree between sizes {latest.size} and {stored.size}",
                              str(exc))
                return latest
        self.adopt(stored)
        return stored

    def _verify_note(self, cp: StoredCheckpoint, what: str) -> None:
        """The note verifies under every log key line and names cp's size and
        root; else DamagedStorageError (counted)."""
        try:
            body, note = open_checkpoint(bytes(cp.note), self._verifiers, self._origin)
            if len(note.verified) != len(self._verifiers):
                raise TlogError("a signature line of the log key is missing")
            if body.size != cp.size or body.root_hash != cp.root:
                raise TlogError(f"it signs size {body.size} and root {body.root_hash.hex()}")
        except (TlogError, ValueError) as exc:
            self._damaged(what, f"its signed note does not verify under the log key ({exc})")
            raise DamagedStorageError(what, f"its signed note does not verify under the log "
                                            f"key ({exc})") from None

    def _damaged(self, what: str, detail: str) -> None:
        log.error("damaged storage: %s is damaged: %s; run tlog fsck", what, detail)
        if self.on_damage is not None:
            self.on_damage(what)

    # -- halting -------------------------------------------------------------------------

    def on_halt(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when this process halts (at once if it has)."""
        self._on_halt.append(callback)
        if self.halted:
            callback(self.halted)

    def halt(self, reason: str) -> None:
        """Stop signing and accepting writes in this process until restart
        (U1). The first reason is kept."""
        with self._lock:
            if self.halted:
                return
            self.halted = reason
            # From now on only the largest verified checkpoint is served: an
            # older one a snapshot could still show is what storage went
            # back to.
            self._recent.clear()
            if self.latest is not None:
                self._recent[self.latest.size] = self.latest
        log.critical("halted: %s; writes are refused and reads serve the last verified "
                     "checkpoint until an operator acts (docs/runbook.md#halted)", reason)
        for callback in self._on_halt:
            try:
                callback(reason)
            except Exception:  # a metric or a link: never stops the halt
                log.exception("halt callback failed")
