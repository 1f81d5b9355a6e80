"""The log's records as values: what storage reads and writes, and what the
sequencer, the API and the bulk loader pass around (no database here; see
:mod:`tlog.storage` for the tables they live in)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One row of ``entries``: the leaf at ``index`` and what was stored with it."""

    index: int
    leaf_hash: bytes
    body: bytes
    integrated_time: int
    kind: str
    attestation: bytes | None
    set_signature: bytes | None = None  # stored at integration (schema 2)
    seal: bytes | None = None  # keyed checksum of the row (schema 3, tlog/seal.py)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """One signed checkpoint: the tree of ``size`` leaves with ``root``, its
    signed note (c2sp.org/tlog-checkpoint) and its timestamp (seconds)."""

    size: int
    root: bytes
    note: bytes
    timestamp: int


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to integrate; ``index_keys`` are its search index keys."""

    leaf_hash: bytes
    body: bytes
    kind: str
    index_keys: tuple[str, ...] = ()
    attestation: bytes | None = None
