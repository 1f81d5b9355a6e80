"""One batch integrated into the tree, inside one write transaction (SPEC §4).

The sequencer calls :func:`integrate` for every batch of submissions, and the
bulk loader (:mod:`tlog.bulkload`, synthetic and imported logs) for every
chunk, so both go through the same code:

1. the database decides duplicates: one lookup of the batch's leaf hashes
   under the write lock (I4); an entry repeated within the batch is placed
   once and the others are its duplicates; the UNIQUE leaf hash still refuses
   any repeat that got through (the transaction then rolls back);
2. the new entries go in with their search rows in one ``executemany`` each
   (I9), at contiguous indexes;
3. their leaf hashes extend the compact range of the tree: amortised O(1)
   node hashes per entry, every complete node created is stored;
4. the new root is proved consistent with the previous head by a proof read
   back from the stored nodes, and the proof verified, before anything is
   signed (I1: :class:`ConsistencyError` otherwise, and the caller halts);
5. one checkpoint is signed and inserted for the batch (I6);
6. each new entry's SET is signed and stored with it (reads serve it), and
   every hash tile the batch completes is stored whole (one row per tile read).

:func:`inclusion_proofs` then gives each new entry its inclusion proof in the
new tree, verified (I5). Every node such a proof needs is in memory: a proof
for a leaf at or after the old size only uses nodes created by the batch and
nodes of the old tree's right edge (a left sibling wholly before the old
size is a maximal complete subtree of the old tree, i.e. an edge node), so
no proof costs a database read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tlog_client.compact import CompactRange, Node
from tlog_client.encoding import b64encode_std
from tlog_client.errors import VerificationError
from tlog_client.hashing import EMPTY_ROOT
from tlog_client.proof import Address, consistency_nodes, inclusion_nodes, right_edge
from tlog_client.rekor import set_payload_of_valid
from tlog_client.verify import verify_consistency, verify_inclusion

from .seal import entry_seal
from .storage import HeadMovedError, NewEntry, Storage, StoredCheckpoint, WriteTxn

# (size, root, timestamp) -> signed checkpoint note bytes
CheckpointSigner = Callable[[int, bytes, int], bytes]
# ([(entry, index)], integrated time) -> the SET signature of each
SetSigner = Callable[[list[tuple[NewEntry, int]], int], list[bytes]]

TILE_WIDTH = 256
TILE_HEIGHT = 8


class ConsistencyError(VerificationError):
    """The new tree does not extend the last checkpoint (I1): do not sign."""


@dataclass(frozen=True, slots=True)
class Placed:
    """Where one entry of a batch is: a new ``index``, or the ``index`` of
    the same entry stored before (``duplicate``) at ``integrated_time``."""

    index: int
    integrated_time: int
    duplicate: bool
    set_signature: bytes | None = None


@dataclass(slots=True)
class Batch:
    """The outcome of :func:`integrate`. ``head`` is the new checkpoint (the
    previous one if nothing was new); ``edge`` the new tree's right edge."""

    prev: StoredCheckpoint
    head: StoredCheckpoint
    edge: list[bytes]
    placed: list[Placed]
    prev_edge: list[bytes]
    nodes: list[Node]

    @property
    def added(self) -> int:
        return self.head.size - self.prev.size


def integrate(txn: WriteTxn, prev: StoredCheckpoint, edge: Sequence[bytes],
              entries: Sequence[NewEntry], now: int, sign: CheckpointSigner,
              sign_sets: SetSigner | None = None, seal_key: bytes | None = None,
              before_sign: Callable[[StoredCheckpoint, int, bytes, WriteTxn], None] | None = None
              ) -> Batch:
    """Integrate ``entries`` after the head ``prev`` whose right edge is
    ``edge``, stamped ``now``; see the module docstring. ``sign_sets``
    signs the new entries' SETs (None: none stored, reads sign them);
    with ``seal_key`` each new row is stored with its seal (tlog/seal.py);
    ``before_sign(prev, size, root, txn)`` runs once the new tree is proved
    consistent with ``prev`` and before it is signed, and refuses it by
    raising (the sequencer's check of the published record, U1).
    Raises ConsistencyError (I1), or StorageError from the transaction."""
    stored = txn.find_leaves([e.leaf_hash for e in entries])
    cr = CompactRange(0, prev.size, list(edge))
    # Per entry: (index, time) of the copy already stored, or None (new).
    repeats: list[tuple[int, int] | None] = []
    new: list[NewEntry] = []
    nodes: list[Node] = []
    for entry in entries:
        where = stored.get(entry.leaf_hash)
        repeats.append(where)
        if where is None:
            stored[entry.leaf_hash] = (cr.end, now)
            new.append(entry)
            cr.append(entry.leaf_hash, nodes)
    head = prev
    sets = sign_sets([(e, prev.size + k) for k, e in enumerate(new)], now) \
        if new and sign_sets else None
    placed = _placed(repeats, prev.size, now, sets)
    if new:
        seals = [entry_seal(seal_key, prev.size + k, now, e.leaf_hash, e.kind,
                            sets[k] if sets else None, e.attestation)
                 for k, e in enumerate(new)] if seal_key is not None else None
        txn.insert_entries(prev.size, new, now, sets, seals)
        txn.insert_nodes(nodes)
        txn.insert_tiles(_completed_tiles(txn, prev.size, cr.end))
        root = cr.root()
        if prev.size:
            proof = consistency_nodes(prev.size, cr.end).read(txn)
            try:
                verify_consistency(prev.size, cr.end, prev.root, root, proof)
            except VerificationError as exc:
                raise ConsistencyError(f"new tree is not consistent with the last "
                                       f"checkpoint: {exc}") from exc
        if before_sign is not None:
            before_sign(prev, cr.end, root, txn)
        head = StoredCheckpoint(cr.end, root, sign(cr.end, root, now), now)
        txn.insert_checkpoint(head)
    return Batch(prev, head, cr.hashes, placed, list(edge), nodes)


def _placed(repeats: list[tuple[int, int] | None], first: int, now: int,
            sets: list[bytes] | None) -> list[Placed]:
    """Each entry's Placed: a repeat where its copy is; the new ones at
    ``first``, ``first + 1``... with their SETs (if signed), in order."""
    out: list[Placed] = []
    index = first
    for where in repeats:
        if where is not None:
            out.append(Placed(where[0], where[1], True))
        else:
            out.append(Placed(index, now, False, sets[index - first] if sets else None))
            index += 1
    return out


def _completed_tiles(txn: WriteTxn, old_size: int, new_size: int
                     ) -> list[tuple[int, int, bytes]]:
    """The hash tiles that became full between the two tree sizes, read back
    from the nodes just stored (c2sp.org/tlog-tiles: tile (L, N) holds the
    nodes N*256 .. N*256+255 of Merkle level 8L)."""
    out = []
    level, span = 0, TILE_WIDTH
    while span <= new_size:
        for index in range(old_size // span, new_size // span):
            data = txn.level_hashes(level * TILE_HEIGHT, index * TILE_WIDTH, TILE_WIDTH)
            out.append((level, index, data))
        level, span = level + 1, span * TILE_WIDTH
    return out


def entry_set_signer(sign_set: Callable[[bytes], bytes], log_id: str,
                     map_fn: Callable = map) -> SetSigner:
    """A :data:`SetSigner` over the log key's ``sign_set(payload)``;
    ``map_fn`` may be a thread pool's map (the signature releases the GIL)."""
    def sign_sets(items: list[tuple[NewEntry, int]], now: int) -> list[bytes]:
        payloads = [set_payload_of_valid(b64encode_std(e.body), now, log_id, index)
                    for e, index in items]
        return list(map_fn(sign_set, payloads))
    return sign_sets


def sign_initial(storage: Storage, sign: CheckpointSigner, now: int) -> StoredCheckpoint:
    """Store the size-0 checkpoint of a new log (or return the one another
    process stored first)."""
    cp = StoredCheckpoint(0, EMPTY_ROOT, sign(0, EMPTY_ROOT, now), now)
    try:
        with storage.write(None) as txn:
            txn.insert_checkpoint(cp)
    except HeadMovedError:
        with storage.snapshot() as snap:
            return snap.head()
    return cp


class _BatchNodes:
    """The nodes a batch's inclusion proofs need (a HashReader)."""

    def __init__(self, batch: Batch) -> None:
        known: dict[Address, bytes] = dict(zip(right_edge(batch.prev.size), batch.prev_edge))
        for level, index, h in batch.nodes:
            known[(level, index)] = h
        self._known = known

    def read_hashes(self, addresses: Sequence[Address]) -> list[bytes]:
        known = self._known
        return [known[a] for a in addresses]


def inclusion_proofs(batch: Batch, entries: Sequence[NewEntry]) -> list[tuple[bytes, ...]]:
    """The inclusion proof in ``batch.head`` of each entry of the batch, each
    verified against the signed root (I5); ``()`` for a duplicate. Raises
    VerificationError if one does not verify (a bug: nobody may be told)."""
    head = batch.head
    reader = _BatchNodes(batch)
    # The proofs of one tree fold the same right-edge nodes: fold each once.
    folds: dict = {}
    out: list[tuple[bytes, ...]] = []
    for entry, place in zip(entries, batch.placed):
        if place.duplicate:
            out.append(())
            continue
        proof = inclusion_nodes(place.index, head.size).read(reader, folds)
        verify_inclusion(place.index, head.size, entry.leaf_hash, proof, head.root)
        out.append(tuple(proof))
    return out
