"""Trusted state: the last verified checkpoint of each log, and split-view evidence.

A client remembers, per log (keyed by origin), the newest checkpoint it has
verified. Every later checkpoint must be consistent with it (SPEC §7):

- a larger checkpoint must come with a consistency proof from the trusted one;
- a checkpoint of the same size must have the same root;
- a smaller checkpoint never replaces (regresses) the trusted one, and is
  itself checked with a proof from its size to the trusted size.

A failure raises :class:`SplitViewError` (same size, another root) or
:class:`InconsistentCheckpointError` (the proof fails), both carrying
:class:`Evidence`: the two signed checkpoints exactly as served and the proof,
which :meth:`StateConsistencyError.write_evidence` saves as JSON. Two signed,
contradicting checkpoints are proof that the log misbehaved.

:func:`check_consistency` is pure. :class:`StateStore` persists the state in
one JSON file, atomically (write a temporary file, fsync, rename, fsync the
directory) and by compare-and-swap under an ``fcntl`` lock: a writer re-reads
the file under the lock and replaces the checkpoint only if it is still the one
the new checkpoint was checked against, so two processes sharing a state file
never lose or regress each other's progress.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .encoding import b64decode_std, b64encode_std
from .errors import ProofError, TlogError, VerificationError
from .trust import PinnedLog, VerifiedCheckpoint
from .verify import verify_consistency

try:  # POSIX only; on other systems the store still writes atomically.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Evidence",
    "InconsistentCheckpointError",
    "SplitViewError",
    "StateConsistencyError",
    "StateError",
    "StateStore",
    "check_consistency",
    "proof_sizes",
]

STATE_VERSION = 1


# -- errors and evidence -------------------------------------------------------

@dataclass(frozen=True)
class Evidence:
    """Two signed checkpoints of one log that contradict each other.

    ``trusted`` is the checkpoint held before, ``new`` the one just served;
    ``proof`` the consistency proof that was checked (empty for a same-size
    split view), from ``proof_first`` to ``proof_second``."""

    origin: str
    log_id: str
    reason: str
    trusted: bytes
    new: bytes
    proof: tuple[bytes, ...] = ()
    proof_first: int = 0
    proof_second: int = 0
    detected_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "tlog-split-view-evidence/v1",
            "origin": self.origin,
            "logID": self.log_id,
            "reason": self.reason,
            "detectedAt": int(self.detected_at),
            "trustedCheckpoint": self.trusted.decode("utf-8", "replace"),
            "newCheckpoint": self.new.decode("utf-8", "replace"),
            "consistencyProof": {"firstSize": self.proof_first, "lastSize": self.proof_second,
                                 "hashes": [b64encode_std(h) for h in self.proof]},
        }


class StateError(TlogError):
    """The state file is unreadable, corrupt, or belongs to another log key."""


class StateConsistencyError(VerificationError):
    """A checkpoint contradicts the trusted state; ``evidence`` proves it."""

    binding = "consistency"

    def __init__(self, message: str, evidence: Evidence) -> None:
        super().__init__(message)
        self.evidence = evidence

    def write_evidence(self, path: str | os.PathLike[str]) -> Path:
        """Write the evidence as JSON to ``path`` (a file, or a directory in
        which a timestamped file is created) and return the file's path."""
        target = Path(path)
        if target.is_dir():
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.evidence.detected_at))
            target = target / f"split-view-{stamp}-{os.getpid()}.json"
        data = json.dumps(self.evidence.to_json(), indent=2, sort_keys=True) + "\n"
        _atomic_write(target, data.encode("utf-8"))
        return target


class SplitViewError(StateConsistencyError):
    """Two checkpoints of the same size with different roots."""


class InconsistentCheckpointError(StateConsistencyError):
    """A consistency proof between two checkpoints failed."""


# -- the pure check ------------------------------------------------------------

def proof_sizes(trusted_size: int, new_size: int) -> tuple[int, int] | None:
    """The (first, second) sizes of the consistency proof needed to check a
    checkpoint of ``new_size`` against a trusted one of ``trusted_size``, or
    None when no proof is needed (equal sizes, or either tree empty)."""
    if trusted_size == new_size or trusted_size == 0 or new_size == 0:
        return None
    return (min(trusted_size, new_size), max(trusted_size, new_size))


def check_consistency(trusted: VerifiedCheckpoint, new: VerifiedCheckpoint,
                      proof: Sequence[bytes], log_id: str = "") -> None:
    """Check that ``new`` and ``trusted`` (both verified under the pinned key)
    describe one append-only log, with ``proof`` the consistency proof between
    their sizes (see :func:`proof_sizes`; ignored when none is needed).

    Raises SplitViewError or InconsistentCheckpointError with the evidence."""
    if trusted.origin != new.origin:
        raise StateError(f"checkpoints of two logs: {trusted.origin!r} and {new.origin!r}")
    sizes = proof_sizes(trusted.size, new.size)
    if sizes is None:
        if trusted.size == new.size and trusted.root_hash != new.root_hash:
            raise SplitViewError(
                f"split view: two checkpoints of size {new.size} with different roots "
                f"({trusted.root_hash.hex()[:16]}… trusted, {new.root_hash.hex()[:16]}… new)",
                Evidence(new.origin, log_id, "same size, different root", trusted.note,
                         new.note, (), trusted.size, new.size))
        return
    first, second = sizes
    older, newer = (trusted, new) if trusted.size < new.size else (new, trusted)
    try:
        verify_consistency(first, second, older.root_hash, newer.root_hash, proof)
    except ProofError as exc:
        raise InconsistentCheckpointError(
            f"checkpoint of size {new.size} is not consistent with the trusted checkpoint of "
            f"size {trusted.size}: {exc}",
            Evidence(new.origin, log_id, f"consistency proof failed: {exc}", trusted.note,
                     new.note, tuple(proof), first, second)) from None


# -- persistence -----------------------------------------------------------------

@dataclass(frozen=True)
class _Record:
    checkpoint: bytes
    log_id: str
    cursors: dict[str, int]


class StateStore:
    """The trusted-state file: one JSON document for every log.

    ``{"version": 1, "logs": {<origin>: {"logID", "checkpoint" (base64 of the
    signed note), "updated", "cursors": {<name>: <size>}}}}``. Every stored
    checkpoint is re-verified under the pinned key when read (:meth:`get`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    # reading

    def get(self, pinned: PinnedLog, origin: str | None = None) -> VerifiedCheckpoint | None:
        """The trusted checkpoint of the pinned log (``origin`` defaults to
        the pinned origin), verified again under the pinned key; None if the
        log has no state yet. Raises StateError if the stored checkpoint was
        recorded for another log key or no longer verifies."""
        origin = origin or pinned.origin
        if origin is None:
            return None
        record = self._read().get(origin)
        if record is None:
            return None
        if record.log_id != pinned.log_id:
            raise StateError(f"{self.path}: the state of {origin!r} was recorded for log key "
                             f"{record.log_id[:16]}…, not the pinned {pinned.log_id[:16]}…")
        try:
            return pinned.open_checkpoint(record.checkpoint)
        except TlogError as exc:
            raise StateError(f"{self.path}: stored checkpoint of {origin!r} does not verify "
                             f"under the pinned key: {exc}") from None

    def origin_of(self, log_id: str) -> str | None:
        """The origin under which the log with ``log_id`` has state, if
        exactly one (so a client can find its state before any fetch)."""
        origins = [o for o, rec in self._read().items() if rec.log_id == log_id]
        return origins[0] if len(origins) == 1 else None

    def cursor(self, origin: str, name: str) -> int | None:
        """A named position (e.g. how far ``monitor`` has read), or None."""
        record = self._read().get(origin)
        return None if record is None else record.cursors.get(name)

    # writing

    def compare_and_swap(self, pinned: PinnedLog, expected: VerifiedCheckpoint | None,
                         new: VerifiedCheckpoint) -> bool:
        """Replace the trusted checkpoint of ``new.origin`` by ``new`` if it is
        still ``expected`` (None: no state yet). Returns False, changing
        nothing, if another writer got there first (re-read, re-check and
        retry). Refuses (StateError) to store a smaller checkpoint."""
        if expected is not None and new.size < expected.size:
            raise StateError("refusing to regress the trusted state")
        with self._locked():
            records = self._read()
            current = records.get(new.origin)
            current_note = current.checkpoint if current is not None else None
            expected_note = expected.note if expected is not None else None
            if current_note != expected_note:
                return False
            cursors = current.cursors if current is not None else {}
            records[new.origin] = _Record(new.note, pinned.log_id, cursors)
            self._write(records)
        return True

    def set_cursor(self, pinned: PinnedLog, origin: str, name: str, value: int) -> None:
        """Record a named position for ``origin`` (never moved backwards)."""
        with self._locked():
            records = self._read()
            record = records.get(origin)
            if record is None:
                raise StateError(f"no trusted checkpoint for {origin!r} yet")
            if record.log_id != pinned.log_id:
                raise StateError(f"the state of {origin!r} belongs to another log key")
            if value < record.cursors.get(name, 0):
                return
            records[origin] = _Record(record.checkpoint, record.log_id,
                                      {**record.cursors, name: value})
            self._write(records)

    # file format

    def _read(self) -> dict[str, _Record]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc}") from None
        try:
            doc = json.loads(raw)
            if doc.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            out = {}
            for origin, rec in doc["logs"].items():
                cursors = {str(k): int(v) for k, v in rec.get("cursors", {}).items()}
                out[origin] = _Record(b64decode_std(rec["checkpoint"], "checkpoint"),
                                      str(rec["logID"]), cursors)
            return out
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{self.path} is not a tlog-client state file: {exc}") from None

    def _write(self, records: dict[str, _Record]) -> None:
        doc = {"version": STATE_VERSION, "logs": {
            origin: {"logID": rec.log_id, "checkpoint": b64encode_std(rec.checkpoint),
                     "updated": int(time.time()), "cursors": rec.cursors}
            for origin, rec in sorted(records.items())}}
        _atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new
    content, never a mix: temporary file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    dirfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def advance(store: StateStore | None, pinned: PinnedLog, new: VerifiedCheckpoint,
            fetch_proof: Callable[[int, int], Sequence[bytes]],
            memory: dict[str, VerifiedCheckpoint] | None = None,
            attempts: int = 8) -> VerifiedCheckpoint:
    """Check ``new`` against the trusted state and advance the state to it if
    it is newer; returns the trusted checkpoint afterwards (``new``, or the
    larger trusted one it was consistent with). ``fetch_proof(first,
    second)`` supplies consistency proofs. Without a ``store``, ``memory``
    (origin → checkpoint) holds the state. Synchronous twin of the client's
    async path; raises StateConsistencyError with evidence."""
    for _ in range(attempts):
        trusted = (store.get(pinned, new.origin) if store is not None
                   else (memory or {}).get(new.origin))
        if trusted is None:
            proof: Sequence[bytes] = ()
        else:
            sizes = proof_sizes(trusted.size, new.size)
            proof = fetch_proof(*sizes) if sizes else ()
            check_consistency(trusted, new, proof, pinned.log_id)
            if new.size <= trusted.size:
                return trusted
        if store is None:
            if memory is not None:
                memory[new.origin] = new
            return new
        if store.compare_and_swap(pinned, trusted, new):
            return new
    raise StateError(f"{store.path if store else 'state'}: too many concurrent updates")
