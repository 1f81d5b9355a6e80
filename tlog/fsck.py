"""``tlog fsck``: check the whole log from its stored bytes (SPEC §9).

Recomputes every leaf hash from the stored entry (I3), every complete node and
the root at every checkpointed size from the leaves (I2), checks indexes are
contiguous (I4), every stored checkpoint's signatures, origin, size and root,
and that each checkpoint is consistent with the next through proofs served
from the stored nodes (I1, I6). It also re-verifies every entry (signatures,
and for attestations the stored envelope against the leaf) and checks that
its search rows are exactly the keys it carries (I9: search is complete).
It also verifies every SET stored at integration under the log key, and
that every stored full tile is exactly the stored nodes it copies.
Reads one snapshot; safe on a live log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tlog_client import bulk
from tlog_client.checkpoint import open_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.encoding import b64encode_std
from tlog_client.errors import TlogError
from tlog_client.hashing import HASH_SIZE
from tlog_client.proof import consistency_nodes
from tlog_client.rekor import set_payload, verify_set
from tlog_client.verify import verify_consistency

from . import entrytypes
from .config import Config
from .identity import LogIdentity
from .storage import ReadTxn, StorageError, StoredCheckpoint

CHUNK = 4096
MAX_FAULTS = 100


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    nodes_checked: int = 0
    root: bytes = b""
    faults: list[str] = field(default_factory=list)

    def fault(self, message: str) -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(message)

    @property
    def ok(self) -> bool:
        return not self.faults


def check(snap: ReadTxn, identity: LogIdentity, config: Config) -> Report:
    """Check everything stored in ``snap`` for the log ``identity``; entries
    are re-parsed under ``config``'s limits."""
    report = Report()
    checkpoints = list(snap.checkpoints())
    report.checkpoints = len(checkpoints)
    if not checkpoints:
        report.fault("no checkpoint is stored (not even size 0)")
        return report
    head = checkpoints[-1]
    roots = _check_tree(snap, head.size, {cp.size for cp in checkpoints}, config, report,
                        identity)
    _check_tiles(snap, head.size, report)
    for cp in checkpoints:
        _check_checkpoint(cp, identity, roots.get(cp.size), report)
    for older, newer in zip(checkpoints, checkpoints[1:]):
        _check_consistency(snap, older, newer, report)
    report.root = roots.get(head.size, b"")
    return report


def _chunks(snap: ReadTxn, size: int) -> Iterator[list]:
    batch = []
    for entry in snap.entries(0, None):
        batch.append(entry)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_tree(snap: ReadTxn, size: int, sizes: set[int], config: Config,
                report: Report, identity: LogIdentity) -> dict[int, bytes]:
    """Recompute leaves, nodes and the root at every size in ``sizes``."""
    cr = CompactRange()
    roots = {0: cr.root()} if 0 in sizes else {}
    for chunk in _chunks(snap, size):
        level = bulk.leaf_hashes([e.body for e in chunk])
        for k, entry in enumerate(chunk):
            if entry.index != cr.end + k:
                report.fault(f"entry index {entry.index} found where {cr.end + k} was "
                             "expected: indexes are not contiguous (I4)")
                return roots
            if entry.leaf_hash != level[k * HASH_SIZE:(k + 1) * HASH_SIZE]:
                report.fault(f"entry {entry.index}: stored leaf hash is not "
                             "SHA-256(0x00 || body) (I3)")
        nodes: list = []
        for k in range(len(chunk)):
            cr.append(level[k * HASH_SIZE:(k + 1) * HASH_SIZE], nodes)
            if cr.end in sizes:
                roots[cr.end] = cr.root()
        _check_nodes(snap, nodes, report)
        _check_search(snap, chunk, config, report)
        _check_sets(chunk, identity, report)
        report.entries = cr.end
    if cr.end != size:
        report.fault(f"{cr.end} entries stored, but the head checkpoint has size {size}")
    return roots


def _check_nodes(snap: ReadTxn, nodes: list, report: Report) -> None:
    addresses = [(lv, i) for lv, i, _ in nodes]
    try:
        stored: list[bytes | None] = list(snap.read_hashes(addresses))
    except StorageError:
        # Some node is missing: report every missing node, and still compare
        # the others (one missing node must not hide a changed one).
        stored = []
        for address in addresses:
            try:
                stored.append(snap.read_hashes([address])[0])
            except StorageError as exc:
                report.fault(f"stored tree: {exc}")
                stored.append(None)
    for (level, index, h), s in zip(nodes, stored):
        if s is not None and h != s:
            report.fault(f"node ({level}, {index}) differs from the hash recomputed "
                         "from the entries (I2)")
    report.nodes_checked += len(nodes)


def _check_sets(chunk: list, identity: LogIdentity, report: Report) -> None:
    """Each SET stored at integration verifies under the log key."""
    public_key, log_id = identity.public_key, identity.log_id
    for entry in chunk:
        if entry.set_signature is None:
            continue  # integrated before schema 2: reads sign it
        try:
            verify_set(public_key, entry.set_signature,
                       set_payload(b64encode_std(entry.body), entry.integrated_time, log_id,
                                   entry.index))
        except TlogError as exc:
            report.fault(f"entry {entry.index}: stored SET does not verify: {exc}")


def _check_tiles(snap: ReadTxn, size: int, report: Report) -> None:
    """Each stored full tile is full, within the tree, and exactly the
    stored nodes it copies (I2: the nodes were checked against the leaves)."""
    for level, index, data in snap.tiles():
        span = 256 ** (level + 1)
        if (index + 1) * span > size:
            report.fault(f"tile ({level}, {index}) is stored but not full at size {size}")
        elif data != snap.level_hashes(8 * level, index * 256, 256):
            report.fault(f"tile ({level}, {index}) differs from the stored nodes (I2)")


def _check_search(snap: ReadTxn, chunk: list, config: Config, report: Report) -> None:
    """Each entry verifies again and its search rows equal its keys (I9)."""
    rows = snap.index_rows(chunk[0].index, chunk[-1].index + 1)
    for entry in chunk:
        try:
            keys = set(entrytypes.index_keys_of(entry.kind, entry.body, config,
                                                entry.attestation))
        except (TlogError, ValueError, KeyError) as exc:
            report.fault(f"entry {entry.index} ({entry.kind}) no longer verifies: {exc}")
            continue
        stored = rows.get(entry.index, set())
        if stored != keys:
            missing, extra = sorted(keys - stored), sorted(stored - keys)
            report.fault(f"entry {entry.index}: search rows differ from its keys "
                         f"(missing {missing}, extra {extra}) (I9)")


def _check_checkpoint(cp: StoredCheckpoint, identity: LogIdentity, recomputed: bytes | None,
                      report: Report) -> None:
    where = f"checkpoint at size {cp.size}"
    try:
        body, _ = open_checkpoint(cp.note, identity.verifiers(), identity.origin)
    except (TlogError, ValueError) as exc:
        report.fault(f"{where}: signed note does not verify: {exc}")
        return
    if body.size != cp.size or body.root_hash != cp.root:
        report.fault(f"{where}: signed size/root differ from the stored columns")
    if recomputed is not None and recomputed != cp.root:
        report.fault(f"{where}: root {cp.root.hex()} but the entries give "
                     f"{recomputed.hex()} (I2)")


def _check_consistency(snap: ReadTxn, older: StoredCheckpoint, newer: StoredCheckpoint,
                       report: Report) -> None:
    if older.size == 0:
        return
    try:
        proof = consistency_nodes(older.size, newer.size).read(snap)
        verify_consistency(older.size, newer.size, older.root, newer.root, proof)
    except (TlogError, StorageError) as exc:
        report.fault(f"checkpoints {older.size} -> {newer.size} are not consistent: {exc} (I1)")
