"""The sequencer: a bounded pool of submissions integrated in batches (SPEC §4).

Each batch, in the single writer thread (:mod:`tlog.integrate` does 1-4):

1. inserts the entries at the next indexes (the database decides which are
   repeats, I4) with their search rows (I9);
2. appends their leaf hashes to the compact range of the tree, storing every
   complete node created (amortised O(1) hashes per entry);
3. proves the new root consistent with the last published checkpoint and
   verifies that proof, and checks it extends the record of the last
   published checkpoint kept outside the database, halting rather than
   signing if either fails (I1, U1);
4. signs one checkpoint for the batch and commits everything in one
   transaction, compare-and-swapping the previous head (I5, I6, I7);
5. records the new head as published, then hands each waiter its index and
   an inclusion proof against the new checkpoint (built from the batch's
   nodes in memory), verified by the server itself (I5).

Batching adapts to load: the writer thread takes whatever is waiting (up to
``batch_size``) as soon as it is free, so an idle log integrates at once and
a busy one in larger batches. The writer takes its next batch itself, from a
thread-safe queue, the moment the last one is committed: it never waits for
the event loop to be scheduled to hand it one (under load, that hand-over
left the writer asleep a quarter of the time). The event loop only queues
entries and, once a batch is durable, answers its waiters. Entries from the
HTTP worker processes (:mod:`tlog.seqlink`) are answered by the writer
thread itself (an :class:`Answerer`), so their replies never wait for the
event loop's thread, which needs the interpreter lock the writer holds. A
waiter that goes away never cancels its batch: the futures belong to the
sequencer.

Storage is untrusted (SPEC §10 U1). The sequencer extends only a head it
verified (:class:`~tlog.trustedhead.TrustedHead`): the compare-and-swap of
each batch finds the head row it wrote, or the batch is retried on the head
found, which must be a verified extension of the last one; a head found
smaller, or with another root, or a record of the published checkpoint
that the new tree does not extend, halts the sequencer until restart
(writes 503 naming the cause, reads go on serving the last verified
checkpoint). While idle it looks every :data:`WATCH_S` seconds, so a
database changed behind it is reported on /healthz without waiting for a
write.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tlog_client.compact import CompactRange
from tlog_client.errors import FormatError
from tlog_client.proof import HashReader, right_edge

from .integrate import (CheckpointSigner, ConsistencyError, SetSigner, inclusion_proofs,
                        integrate, sign_initial)
from .published import RollbackError
from .storage import (DamagedStorageError, HeadMovedError, NewEntry, Storage, StorageError,
                      StoredCheckpoint)
from .trustedhead import TrustedHead

log = logging.getLogger(__name__)

WATCH_S = 1.0  # an idle sequencer checks the head row and the record this often

# Before a new tree is signed: (previous head, size, root, reader of the
# batch's transaction); raises to halt (the published record, tlog.published).
BeforeSign = Callable[[StoredCheckpoint, int, bytes, HashReader], None]


class PoolFullError(Exception):
    """The pool of pending submissions is full: answer 503 with Retry-After."""


class SequencerHaltedError(Exception):
    """The sequencer stopped integrating (I1 violated, or shut down)."""


@dataclass(frozen=True, slots=True)
class Integrated:
    """Where one submission landed. ``duplicate``: it was already logged at
    ``index`` (and ``proof`` is empty)."""

    index: int
    integrated_time: int
    checkpoint: StoredCheckpoint
    proof: tuple[bytes, ...]
    duplicate: bool = False
    set_signature: bytes | None = None  # signed and stored at integration


class Answerer(Protocol):
    """Receives, in the writer thread, the outcome of each entry it queued
    with :meth:`Sequencer.enqueue_to`: once per batch, as ``(tag, result or
    exception)`` pairs in queue order. The next batch waits for it, so it
    must bound any wait (the link's writes time out) and must not raise (an
    error is logged and the writer goes on)."""

    def answer(self, outcomes: list[tuple[object, Integrated | Exception]]) -> None: ...


# A queued entry: (entry, None, future on the event loop) or (entry, answerer, tag).
_Item = tuple[NewEntry, Answerer | None, object]


class Sequencer:
    """Owns the writer thread and the in-memory right edge of the tree."""

    def __init__(self, storage: Storage, sign: CheckpointSigner, clock: Callable[[], float],
                 heads: TrustedHead, *, batch_size: int = 256, pool_size: int = 4096,
                 batch_delay_ms: int = 0,
                 on_publish: Callable[[StoredCheckpoint], None] | None = None,
                 before_sign: BeforeSign | None = None,
                 sign_sets: SetSigner | None = None, seal_key: bytes | None = None,
                 watch_s: float = WATCH_S) -> None:
        """``heads``: what this process verified (shared with its reads);
        ``before_sign``: see :data:`BeforeSign`; ``seal_key``: entries are
        stored with their seals (tlog/seal.py)."""
        self._storage = storage
        self._sign = sign
        self._sign_sets = sign_sets
        self._seal_key = seal_key
        self._heads = heads
        self._before_sign = before_sign
        self._watch_s = watch_s
        # Called in the writer thread after each commit that made a new
        # checkpoint, before anyone is acknowledged (the published record).
        self._on_publish = on_publish
        self._clock = clock
        self._batch_size = batch_size
        self._pool_size = pool_size
        self._batch_delay = batch_delay_ms / 1000
        # Entries for the writer thread (see _Item); futures are only ever
        # touched on the event loop. None: stop.
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None  # its thread's ident
        self._thread: threading.Thread | None = None
        self._stopped: str | None = None  # shut down (halts are in self._heads)
        self._head: StoredCheckpoint | None = None
        self._edge: list[bytes] = []
        self.batches = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> StoredCheckpoint:
        """Load the head (O(log n) reads: startup never scans the log), sign
        the size-0 checkpoint of a new log, and start integrating."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        head = await asyncio.to_thread(self._load)
        # A daemon: if the process exits without stop(), a batch cut short
        # is a crash SQLite survives (the transaction is all or nothing) and
        # nobody was answered for it.
        self._thread = threading.Thread(target=self._run, name="tlog-writer", daemon=True)
        self._thread.start()
        return head

    async def stop(self) -> None:
        """Finish the batch in progress (its waiters are answered), then
        refuse what is still queued."""
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        self._stopped = "shut down"
        left = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left.append(item)
        stopped = SequencerHaltedError("the log is shutting down")
        self._deliver(left, [stopped] * len(left))

    @property
    def head(self) -> StoredCheckpoint | None:
        return self._head

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    @property
    def halted(self) -> str | None:
        """Why writes are refused (halted or shut down), or None."""
        return self._heads.halted or self._stopped

    @property
    def heads(self) -> TrustedHead:
        return self._heads

    # -- submission ------------------------------------------------------------------

    async def submit(self, entry: NewEntry) -> Integrated:
        """Queue ``entry`` and wait until it is durably integrated.

        Raises PoolFullError at once when the pool is full. Cancelling the
        caller does not cancel the integration: the batch holds the entry
        (not the future), integrates it, and skips the cancelled waiter."""
        return await self.enqueue(entry)

    def enqueue(self, entry: NewEntry) -> asyncio.Future:
        """Queue ``entry``; the future resolves to its :class:`Integrated`
        once durable (or to the batch's error). Raises PoolFullError or
        SequencerHaltedError at once (for callers that are not coroutines:
        the link from HTTP worker processes, tlog.seqlink). Precondition:
        called on the event loop that started the sequencer."""
        fut = self._loop.create_future()
        self.enqueue_to(entry, None, fut)
        return fut

    def enqueue_to(self, entry: NewEntry, answerer: Answerer | None, tag: object) -> None:
        """Queue ``entry``; its outcome goes to ``answerer`` (in the writer
        thread) with ``tag``; with ``answerer`` None, ``tag`` is a future of
        the event loop. Raises PoolFullError or SequencerHaltedError at once."""
        halted = self._heads.halted or self._stopped
        if halted:
            raise SequencerHaltedError(halted)
        if self._queue.qsize() >= self._pool_size:
            raise PoolFullError("too many pending submissions")
        self._queue.put((entry, answerer, tag))

    # -- writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        """The writer thread: take a batch, integrate it, give each waiter
        its outcome; until stop() queues None."""
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                results: list = self._integrate([item[0] for item in batch])
            except Exception as exc:  # failed commit: nobody is acknowledged
                log.exception("batch of %d failed", len(batch))
                results = [exc] * len(batch)
            else:
                self.batches += 1
            self._deliver(batch, results)

    def _deliver(self, batch: list[_Item], outcomes: list) -> None:
        """Each outcome to its answerer (here, in the calling thread) or
        future (settled on the event loop: at once when called there)."""
        futures: list[tuple[asyncio.Future, object]] = []
        by_answerer: dict[Answerer, list[tuple[object, object]]] = {}
        for (_, answerer, tag), outcome in zip(batch, outcomes):
            if answerer is None:
                futures.append((tag, outcome))
            else:
                by_answerer.setdefault(answerer, []).append((tag, outcome))
        for answerer, outs in by_answerer.items():
            try:
                answerer.answer(outs)
            except Exception:
                log.exception("could not answer %d entries", len(outs))
        if futures:
            if threading.get_ident() == self._loop_thread:
                _settle(futures)
            else:
                try:
                    self._loop.call_soon_threadsafe(_settle, futures)
                except RuntimeError:  # the event loop is closed: nobody is waiting
                    pass

    def _take(self) -> list[_Item] | None:
        """The next batch (waits for one entry, looking at storage every
        ``watch_s`` seconds meanwhile; then takes what is queued, up to
        batch_size), or None to stop."""
        while True:
            try:
                first = self._queue.get(timeout=self._watch_s)
                break
            except queue.Empty:
                self._watch()
        if first is None:
            return None
        if self._batch_delay and self._queue.qsize() < self._batch_size - 1:
            time.sleep(self._batch_delay)
        batch = [first]
        get = self._queue.get_nowait
        try:
            while len(batch) < self._batch_size:
                item = get()
                if item is None:  # stop after this batch
                    self._queue.put(None)
                    break
                batch.append(item)
        except queue.Empty:
            pass
        return batch

    def _load(self) -> StoredCheckpoint:
        """The head to extend, from storage, verified (TrustedHead.check:
        never smaller than, and consistent with, what this process trusted
        before), with its right edge; signs size 0 for a new log. Halts
        (SequencerHaltedError) if storage went back, forked or is damaged."""
        with self._storage.snapshot() as snap:
            stored = snap.head()
            if stored is None and self._heads.latest is None:
                head, edge = None, []
            else:
                try:
                    head = self._heads.check(stored, snap)
                except StorageError as exc:  # damaged, nothing verified to fall back on
                    self._halt(f"the head checkpoint cannot be trusted: {exc}")
                if self._heads.halted:
                    raise SequencerHaltedError(self._heads.halted)
                mine = self._head
                if mine is not None and (head.size, head.root) != (mine.size, mine.root) and \
                        head.size <= mine.size:
                    # Readers may see an older verified checkpoint in an older
                    # snapshot; the writer never may: it wrote this head itself.
                    self._halt(f"the database's head is at size {head.size}, "
                               + ("behind" if head.size < mine.size else "another tree than")
                               + f" the checkpoint of size {mine.size} this log signed: it "
                               "went back (a restored backup, or an edited database)")
                if stored is None or (stored.size, stored.root) != (head.size, head.root):
                    self._halt(f"the database's head at size {stored.size if stored else 0} "
                               "does not verify under the log key (damaged storage)")
                try:
                    edge = snap.read_hashes(right_edge(head.size))
                except StorageError as exc:
                    self._halt(f"the stored tree at size {head.size} is damaged: {exc}")
        if head is None:
            head = self._sign_initial()
            self._heads.adopt(head)
        elif stored is not None and stored.timestamp > head.timestamp:
            # A verified copy (the published record's) carries no time: the
            # log's time still never runs backwards.
            head = StoredCheckpoint(head.size, head.root, head.note, stored.timestamp)
        try:
            if CompactRange.from_hashes(0, head.size, edge).root() != head.root:
                raise FormatError("edge", "does not fold into the root")
        except FormatError:
            self._halt("the stored tree does not match the head checkpoint (damaged storage)")
        self._head, self._edge = head, edge
        return head

    def _halt(self, reason: str) -> None:
        """Halt (U1: never sign again in this process) and raise."""
        self._heads.halt(reason)
        raise SequencerHaltedError(self._heads.halted)

    def _watch(self) -> None:
        """While idle: storage still holds the head this sequencer wrote and
        the record still names it, else reload (halting if storage went
        back or forked). Errors are logged, never raised: the next batch
        checks again."""
        if self._heads.halted or self._head is None:
            return
        try:
            with self._storage.snapshot() as snap:
                stored = snap.head()
                if stored is not None and (stored.size, stored.root) == (
                        self._head.size, self._head.root):
                    if self._before_sign is not None:
                        self._before_sign(self._head, self._head.size, self._head.root, snap)
                    return
            self._load()
        except SequencerHaltedError:
            pass
        except DamagedStorageError as exc:
            self._heads.halt(f"the stored head cannot be read: {exc}")
        except StorageError as exc:
            log.error("could not check the stored head: %s", exc)
        except Exception as exc:  # the record (RollbackError) and the rest
            self._heads.halt(f"{exc}")

    def _sign_initial(self) -> StoredCheckpoint:
        return sign_initial(self._storage, self._sign, int(self._clock()))

    def _integrate(self, entries: list[NewEntry]) -> list[Integrated]:
        halted = self._heads.halted or self._stopped
        if halted:
            raise SequencerHaltedError(halted)
        for _ in range(100):
            try:
                return self._try_integrate(entries)
            except HeadMovedError:
                # Another writer advanced the log, or storage changed behind
                # us: continue only from a verified extension (_load halts
                # otherwise).
                log.warning("the head row is not the one this sequencer wrote; reloading")
                self._load()
            except SequencerHaltedError:
                raise
            except Exception:
                # The transaction rolled back: reload what is durable.
                self._load()
                raise
        raise SequencerHaltedError("lost the head race 100 times")

    def _try_integrate(self, entries: list[NewEntry]) -> list[Integrated]:
        prev = self._head
        # Time never runs backwards in the log, even if the clock does.
        now = max(int(self._clock()), prev.timestamp)
        try:
            with self._storage.write(prev) as txn:
                batch = integrate(txn, prev, self._edge, entries, now, self._sign,
                                  self._sign_sets, self._seal_key, self._before_sign)
        except (ConsistencyError, RollbackError) as exc:  # I1, U1: halt rather than sign
            self._halt(str(exc))
        head = batch.head
        self._head, self._edge = head, batch.edge
        self._heads.adopt(head)
        if head is not prev and self._on_publish is not None:
            self._on_publish(head)  # raising: committed, but nobody is acknowledged
        proofs = inclusion_proofs(batch, entries)  # each verified (I5)
        return [Integrated(p.index, p.integrated_time, head, proof, p.duplicate,
                           p.set_signature)
                for p, proof in zip(batch.placed, proofs)]


def _settle(futures: list[tuple[asyncio.Future, object]]) -> None:
    """On the event loop: each future gets its result or exception."""
    for fut, outcome in futures:
        if fut.done():  # its waiter went away
            continue
        if isinstance(outcome, Exception):
            fut.set_exception(outcome)
        else:
            fut.set_result(outcome)
