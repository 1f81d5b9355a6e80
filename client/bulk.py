"""Bulk RFC 6962 hashing: the hot path of audit, fsck, import and tile building.

One small interface, three functions over *levels*: a level is ``bytes`` holding
consecutive 32-byte hashes (contiguous, so a compiled backend can walk it
without creating Python objects). A compiled accelerator may replace
:func:`leaf_hashes`, :func:`parent_level` and the loop of :func:`root_of_level`;
everything else is built on them and must give identical results (SPEC §8).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from .errors import FormatError
from .hashing import EMPTY_ROOT, HASH_SIZE, is_hash

_sha256 = hashlib.sha256
_PAIR = 2 * HASH_SIZE


def _py_leaf_hashes(entries: Sequence[bytes]) -> bytes:
    sha = _sha256
    return b"".join([sha(b"\x00" + e).digest() for e in entries])


def _py_parent_level(level: bytes) -> bytes:
    sha = _sha256
    end = len(level) - len(level) % _PAIR
    return b"".join([sha(b"\x01" + level[i:i + _PAIR]).digest() for i in range(0, end, _PAIR)])


def _py_root_of_level(level: bytes) -> bytes:
    # Precondition: a non-empty level whose length is a multiple of 32.
    while len(level) > HASH_SIZE:
        parents = _py_parent_level(level)
        if len(level) % _PAIR:
            parents += level[-HASH_SIZE:]
        level = parents
    return level


def _py_fold_path(seed: bytes, proof: Sequence[bytes], index: int, inner: int,
                  right_only: bool) -> bytes:
    sha = _sha256
    for k, h in enumerate(proof):
        if not is_hash(h):
            raise ValueError(f"hash is not {HASH_SIZE} bytes")
        if k >= inner or (index >> k) & 1:
            seed = sha(b"\x01" + h + seed).digest()
        elif not right_only:
            seed = sha(b"\x01" + seed + h).digest()
    return seed


# Backend: the C accelerator tlog_client._bulk when it was built, else pure
# Python; TLOG_BULK_BACKEND=python forces the latter. The accelerator hashes
# with its own SHA-NI code where the CPU has the SHA extensions (two messages
# at a time), else with OpenSSL libcrypto (TLOG_BULK_SHA_NI=0 forces that),
# and splits inputs of >= 16,384 hashes over TLOG_BULK_THREADS threads
# (default min(2, CPUs the process may run on); 1 disables). All of these
# give identical results (tests/client/test_bulk_backends.py).
BACKEND = "python"
_leaf_hashes = _py_leaf_hashes
_parent_level = _py_parent_level
_root_of_level = _py_root_of_level
_fold_path = _py_fold_path
if os.environ.get("TLOG_BULK_BACKEND", "") != "python":
    try:
        from . import _bulk
    except ImportError:
        _bulk = None
    if _bulk is not None:
        BACKEND = "c"
        _leaf_hashes = _bulk.leaf_hashes
        _parent_level = _bulk.parent_level
        _root_of_level = _bulk.root_of_level
        # An extension built before fold_path existed (an old build): Python.
        _fold_path = getattr(_bulk, "fold_path", _py_fold_path)


def leaf_hashes(entries: Sequence[bytes]) -> bytes:
    """Leaf hashes of ``entries``, concatenated in order (32 bytes each)."""
    return _leaf_hashes(entries)


def parent_level(level: bytes) -> bytes:
    """Hash each complete pair of ``level`` into its parent.

    Precondition: ``len(level)`` is a multiple of 32. A trailing unpaired hash
    has no parent node yet and is not carried (see :func:`root_of_level`)."""
    _check_level(level)
    return _parent_level(bytes(level))


def root_of_level(level: bytes) -> bytes:
    """RFC 6962 root of the tree whose leaf hashes are ``level``.

    Bottom-up pairing that carries a lone last hash up unchanged gives the same
    root as the recursive split at the largest power of two (RFC 6962 §2.1)."""
    _check_level(level)
    if not level:
        return EMPTY_ROOT
    return _root_of_level(bytes(level))


def root_of_entries(entries: Sequence[bytes]) -> bytes:
    """RFC 6962 root (Merkle Tree Hash) of a list of entries."""
    return root_of_level(_leaf_hashes(entries))


def fold_path(seed: bytes, proof: Sequence[bytes], index: int, inner: int,
              right_only: bool = False) -> bytes:
    """Fold a proof path into ``seed`` (RFC 9162 §2.1.3.2, §2.1.4.2): step k
    is ``SHA-256(0x01 || proof[k] || seed)`` if ``k >= inner`` or bit k of
    ``index`` is 1, else ``SHA-256(0x01 || seed || proof[k])`` (no step if
    ``right_only``). Preconditions: ``seed`` is 32 bytes, ``index >= 0``.
    ValueError if a hash of ``proof`` is not 32 bytes (bytes or bytearray)."""
    if type(proof) is not list and type(proof) is not tuple:
        proof = list(proof)
    try:
        return _fold_path(seed, proof, index, inner, right_only)
    except OverflowError:  # an index beyond the C backend's 64 bits
        return _py_fold_path(seed, proof, index, inner, right_only)


def split_level(level: bytes) -> list[bytes]:
    """The hashes of a level as a list of 32-byte values."""
    _check_level(level)
    return [level[i:i + HASH_SIZE] for i in range(0, len(level), HASH_SIZE)]


def _check_level(level: bytes) -> None:
    if len(level) % HASH_SIZE:
        raise FormatError("level", f"length {len(level)} is not a multiple of {HASH_SIZE}")
