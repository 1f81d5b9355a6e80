"""Bulk integration of entries that are already canonical (synthetic logs for
benchmarks, imports).

Each chunk goes through :func:`tlog.integrate.integrate`, the sequencer's own
batch code, in one write transaction: the database decides duplicates (I4),
entries and their search rows go in together (I9), every complete node is
stored, the new root is proved consistent with the previous checkpoint
before one checkpoint is signed for the chunk (I1, I6), the head is
compared-and-swapped (I7: a server writing the same log at the same time
makes the chunk retry on the new head, never a fork) and the commit is
durable (WAL, synchronous=FULL). After each commit the head is recorded as
published (:mod:`tlog.published`), as the sequencer does.

Each entry's SET is signed and stored as the sequencer does (optionally on
several threads). What is skipped is only what a submission costs before it
reaches the sequencer: HTTP, JSON parsing and the entry's signature check. The caller
vouches for the entries; ``tlog fsck`` re-verifies every one of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from tlog_client.compact import CompactRange
from tlog_client.proof import right_edge

from .identity import LogIdentity
from .integrate import SetSigner, entry_set_signer, integrate, sign_initial
from .published import PublishedRecord
from .storage import HeadMovedError, NewEntry, Storage, StoredCheckpoint

Progress = Callable[[StoredCheckpoint], None]


def _chunks(entries: Iterable[NewEntry], size: int) -> Iterator[list[NewEntry]]:
    it = iter(entries)
    while chunk := list(islice(it, size)):
        yield chunk


def _head_and_edge(storage: Storage) -> tuple[StoredCheckpoint | None, list[bytes]]:
    with storage.snapshot() as snap:
        head = snap.head()
        edge = snap.read_hashes(right_edge(head.size)) if head else []
    if head is None:
        return None, []
    if CompactRange.from_hashes(0, head.size, edge).root() != head.root:
        raise ValueError("the stored tree does not match the head checkpoint; run tlog fsck")
    return head, edge


def parallel_set_signer(identity: LogIdentity, threads: int) -> SetSigner:
    """Sign a chunk's SETs on ``threads`` threads (the signature releases
    the GIL), in order."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="tlog-bulk-set")
    sign = identity.sign_set

    def sign_all(payloads: list[bytes]) -> list[bytes]:
        return [sign(p) for p in payloads]

    def map_fn(_sign, payloads) -> list[bytes]:
        payloads = list(payloads)
        step = -(-len(payloads) // threads) or 1
        parts = pool.map(sign_all, [payloads[i:i + step] for i in range(0, len(payloads), step)])
        return [sig for part in parts for sig in part]

    return entry_set_signer(sign, identity.log_id, map_fn)


def append(storage: Storage, identity: LogIdentity, entries: Iterable[NewEntry], *,
           published: PublishedRecord | None = None, chunk: int = 50_000,
           clock: Callable[[], float] = time.time, sign_sets: SetSigner | None = None,
           progress: Progress | None = None) -> StoredCheckpoint:
    """Integrate ``entries`` in chunks of ``chunk``, one checkpoint each;
    return the new head. Entries already in the log are skipped (duplicates).
    ``sign_sets`` signs the entries' SETs (default: one thread)."""
    if sign_sets is None:
        sign_sets = entry_set_signer(identity.sign_set, identity.log_id)
    head, edge = _head_and_edge(storage)
    if head is None:  # a new log: its size-0 checkpoint first, as the sequencer does
        head = sign_initial(storage, identity.sign_checkpoint, int(clock()))
    for batch_entries in _chunks(entries, chunk):
        while True:
            now = max(int(clock()), head.timestamp)
            try:
                with storage.write(head) as txn:
                    batch = integrate(txn, head, edge, batch_entries, now,
                                      identity.sign_checkpoint, sign_sets,
                                      identity.seal_key)
                break
            except HeadMovedError:  # another writer: continue from its head
                head, edge = _head_and_edge(storage)
        head, edge = batch.head, batch.edge
        if published is not None:
            published.publish(identity.origin, head)
        if progress is not None:
            progress(head)
    return head
