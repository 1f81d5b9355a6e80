"""``tlog fsck``: check the whole log from its stored bytes (SPEC §9, §10 U4).

First SQLite's structural check of the whole file (``PRAGMA quick_check``):
its problems, and any error SQLite raises while the log is read, are faults
starting "database damaged:" (exit code 3: restore a backup). Then the log:
recomputes every leaf hash from the stored entry (I3), every complete node and
the root at every checkpointed size from the leaves (I2), checks indexes are
contiguous (I4), every stored checkpoint's signatures, origin, size and root,
and that each checkpoint is consistent with the next through proofs served
from the stored nodes (I1, I6). It also re-verifies every entry (signatures,
and for attestations the stored envelope against the leaf) and checks that
its search rows are exactly the keys it carries (I9: search is complete).
It also verifies every SET stored at integration under the log key, and
that every stored full tile is exactly the stored nodes it copies. Last, if
there is a record of the last published checkpoint, that the database holds
that tree (a rollback or fork otherwise: exit code 4).

Only the log's public key is needed (:class:`PublicIdentity`): a backup is
checked anywhere, without the private key. Reads one snapshot; safe on a
live log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from tlog_client import bulk
from tlog_client.checkpoint import open_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.encoding import b64encode_std
from tlog_client.errors import TlogError
from tlog_client.hashing import HASH_SIZE
from tlog_client.note import NoteVerifier
from tlog_client.notekeys import LogPublicKey, log_verifiers
from tlog_client.proof import consistency_nodes
from tlog_client.rekor import log_id, set_payload, verify_set
from tlog_client.verify import verify_consistency

from . import entrytypes
from .config import Config
from .identity import IdentityError
from .published import PublishedRecord, RollbackError
from .seal import entry_seal
from .storage import (DamagedStorageError, ReadTxn, Storage, StorageError, StoredCheckpoint,
                      typed_errors)

CHUNK = 4096
MAX_FAULTS = 100
DAMAGED = "database damaged: "
# Exit codes (SPEC §16; tlog/cli.py documents them).
EXIT_CLEAN, EXIT_FAULTS, EXIT_DAMAGED, EXIT_ROLLBACK = 0, 1, 3, 4


class Verifying(Protocol):
    """What fsck needs of the log's identity: its public half."""

    origin: str

    @property
    def public_key(self) -> LogPublicKey: ...

    @property
    def log_id(self) -> str: ...

    def verifiers(self) -> Sequence[NoteVerifier]: ...


@dataclass(frozen=True)
class PublicIdentity:
    """The public half of a log's identity (a :class:`Verifying`): its
    origin and public key, as recorded in the database and checked against
    the key the operator pins; no private key is read."""

    origin: str
    tree_id: int
    public_key: LogPublicKey

    @property
    def log_id(self) -> str:
        return log_id(self.public_key)

    def verifiers(self) -> Sequence[NoteVerifier]:
        return log_verifiers(self.public_key, self.origin)


def public_identity(meta: dict[str, str], pinned_pem: bytes, source: str) -> PublicIdentity:
    """The log's identity from its stored ``meta``, if its public key is the
    pinned one, ``pinned_pem`` (PEM SubjectPublicKeyInfo, as
    ``GET /api/v1/log/publicKey`` serves it; read from ``source``).
    IdentityError if the pinned key is not a log key or not this log's, or
    the database holds no log; DamagedStorageError if the stored identity
    cannot be read."""
    try:
        pinned = serialization.load_pem_public_key(pinned_pem)
        log_verifiers(pinned, "tlog")  # Ed25519 or ECDSA P-256 only
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"{source} is not a log public key (PEM SubjectPublicKeyInfo of "
                            f"an Ed25519 or ECDSA P-256 key): {_first_line(exc)}") from None
    if not meta:
        raise IdentityError("the database holds no log (it never finished its first start)")
    try:
        stored = serialization.load_pem_public_key(meta["public_key"].encode())
        identity = PublicIdentity(meta["origin"], int(meta["tree_id"]), stored)
    except (KeyError, ValueError, TypeError) as exc:
        raise DamagedStorageError("the log's identity (the meta table)",
                                  f"{type(exc).__name__}: {_first_line(exc)}") from None
    if log_id(stored) != log_id(pinned):
        raise IdentityError(f"the database is the log {identity.origin!r} with log ID "
                            f"{identity.log_id}, not the log of the key in {source} (log ID "
                            f"{log_id(pinned)}): give this log's public key")
    return identity


def damage_text(exc: DamagedStorageError) -> str:
    """What is damaged, and how, on one line (after "database damaged: ")."""
    return " ".join((f"{exc.what}: {exc.detail}" if exc.detail else exc.what).split())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Report:
    entries: int = 0
    checkpoints: int = 0
    nodes_checked: int = 0
    root: bytes = b""
    faults: list[str] = field(default_factory=list)
    damaged: bool = False  # SQLite found the file damaged (a "database damaged:" fault)
    rollback: bool = False  # the database does not hold the published checkpoint

    def fault(self, message: str) -> None:
        if len(self.faults) < MAX_FAULTS:
            self.faults.append(message)

    def damage(self, message: str) -> None:
        """A fault in the file itself: one line starting "database damaged:"."""
        self.damaged = True
        self.fault(DAMAGED + " ".join(message.split()))

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def exit_code(self) -> int:
        """3 damaged (first: nothing else read from a damaged file is sure),
        4 rollback or fork evidence, 1 other faults, 0 clean."""
        if self.damaged:
            return EXIT_DAMAGED
        if self.rollback:
            return EXIT_ROLLBACK
        return EXIT_FAULTS if self.faults else EXIT_CLEAN

    def to_json(self) -> dict:
        return {"ok": self.ok, "entries": self.entries, "checkpoints": self.checkpoints,
                "nodes": self.nodes_checked, "root": self.root.hex(), "faults": self.faults,
                "damaged": self.damaged, "rollback": self.rollback}


def check_database(storage: Storage, identity: Verifying, config: Config,
                   record: PublishedRecord | None) -> Report:
    """The whole check of the open database ``storage`` (see the module
    docstring), against the published ``record`` if there is one. Faults
    are reported, not raised: a damaged file is a fault too."""
    report = Report()
    try:
        for problem in storage.quick_check(MAX_FAULTS):
            report.damage(f"quick_check: {problem}")
    except DamagedStorageError as exc:
        report.damage(damage_text(exc))
    try:
        with typed_errors(storage.path), storage.snapshot() as snap:
            check(snap, identity, config, report)
            if record is not None:  # the database against the last published checkpoint
                try:
                    record.check(snap, identity.origin)
                except RollbackError as exc:
                    report.rollback = True
                    report.fault(f"published checkpoint: {exc}")
                except DamagedStorageError as exc:
                    report.damage(f"published checkpoint: {damage_text(exc)}")
                except StorageError as exc:
                    report.fault(f"published checkpoint: {exc}")
    except DamagedStorageError as exc:
        report.damage(f"{damage_text(exc)} (while reading the log)")
    return report


def check(snap: ReadTxn, identity: Verifying, config: Config,
          report: Report | None = None) -> Report:
    """Check everything stored in ``snap`` for the log ``identity``; entries
    are re-parsed under ``config``'s limits. Faults go to ``report`` (a new
    one by default), which is returned."""
    report = Report() if report is None else report
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
                report: Report, identity: Verifying) -> dict[int, bytes]:
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


def _check_sets(chunk: list, identity: Verifying, report: Report) -> None:
    """Each SET stored at integration verifies under the log key; with the
    private key at hand (not with ``--public-key``), each row's seal is the
    one the log computed (tlog/seal.py: what reads check instead of the
    SET's signature)."""
    public_key, log_id = identity.public_key, identity.log_id
    key = getattr(identity, "seal_key", None)
    for entry in chunk:
        if key is not None and entry.seal is not None and entry_seal(
                key, entry.index, entry.integrated_time, entry.leaf_hash, entry.kind,
                entry.set_signature, entry.attestation) != entry.seal:
            report.fault(f"entry {entry.index}: stored seal does not match the row (its "
                         "SET, integrated time, kind or attestation changed, or the seal "
                         "itself); reads answer 500 for it")
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


def _check_checkpoint(cp: StoredCheckpoint, identity: Verifying, recomputed: bytes | None,
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
