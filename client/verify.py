"""Proof verification (RFC 9162 §2.1.3.2, §2.1.4.2; SPEC §3.1).

Every function checks the exact proof length, 32-byte hashes and bounds, and
raises :class:`~tlog_client.errors.ProofError` subclasses; none returns a bool.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ConsistencyProofError, InclusionProofError, RootMismatchError
from .bulk import fold_path
from .hashing import HASH_SIZE, is_hash


def inclusion_proof_length(index: int, size: int) -> int:
    """The exact length of the inclusion proof of ``index`` in ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def root_from_inclusion_proof(index: int, size: int, leaf_hash: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index``.

    Raises InclusionProofError unless ``0 <= index < size``, every hash is 32
    bytes and the proof has exactly the RFC 9162 length."""
    if not 0 <= index < size:
        raise InclusionProofError(f"index {index} is outside a tree of size {size}")
    _check_hashes(InclusionProofError, leaf_hash)
    inner = (index ^ (size - 1)).bit_length()
    want = inner + (index >> inner).bit_count()
    if len(proof) != want:
        _check_hashes(InclusionProofError, proof)  # a bad hash is named first
        raise InclusionProofError(f"proof has {len(proof)} hashes, expected {want}")
    return _fold(InclusionProofError, leaf_hash, proof, index, inner, False)


def verify_inclusion(index: int, size: int, leaf_hash: bytes,
                     proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is at ``index`` in the tree of ``size`` with
    ``root``. Raises InclusionProofError or RootMismatchError."""
    _check_hashes(InclusionProofError, root)
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if computed != root:
        raise RootMismatchError("inclusion proof leads to another root", root, computed)


def root_from_consistency_proof(size1: int, size2: int, root1: bytes,
                                proof: Sequence[bytes]) -> bytes:
    """Check ``proof`` against ``root1`` and return the root at ``size2`` it
    implies. Preconditions (SPEC §3.1): ``0 < size1 <= size2``."""
    if size1 <= 0 or size2 < size1:
        raise ConsistencyProofError(f"no consistency proof from size {size1} to {size2}")
    _check_hashes(ConsistencyProofError, root1, proof)
    if size1 == size2:
        if proof:
            raise ConsistencyProofError("proof between equal sizes must be empty")
        return root1
    shift = (size1 & -size1).bit_length() - 1
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length() - shift
    border = ((size1 - 1) >> (inner + shift)).bit_count()
    # The first hash is the subtree that ends at size1, unless that subtree
    # is the whole old tree (size1 a power of two): then it is root1.
    seed, start = (root1, 0) if size1 == 1 << shift else (proof[0] if proof else b"", 1)
    if len(proof) != start + inner + border:
        raise ConsistencyProofError(
            f"proof has {len(proof)} hashes, expected {start + inner + border}")
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    h1 = _fold(ConsistencyProofError, seed, rest, mask, inner, True)
    if h1 != root1:
        raise RootMismatchError("consistency proof does not lead to the first root", root1, h1)
    return _fold(ConsistencyProofError, seed, rest, mask, inner, False)


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree (size2, root2) extends (size1, root1).

    Raises ConsistencyProofError or RootMismatchError."""
    _check_hashes(ConsistencyProofError, root2)
    computed = root_from_consistency_proof(size1, size2, root1, proof)
    if computed != root2:
        raise RootMismatchError("consistency proof does not lead to the second root",
                                root2, computed)


def _fold(error: type[Exception], seed: bytes, proof: Sequence[bytes], index: int,
          inner: int, right_only: bool) -> bytes:
    """bulk.fold_path (compiled where built: a proof is verified per level),
    its ValueError for a hash that is not 32 bytes raised as ``error``."""
    try:
        return fold_path(seed, proof, index, inner, right_only)
    except ValueError:
        raise error(f"hash is not {HASH_SIZE} bytes") from None


def _check_hashes(error: type[Exception], *values: bytes | Sequence[bytes]) -> None:
    for value in values:
        items = (value,) if isinstance(value, (bytes, bytearray)) else value
        for h in items:
            if not is_hash(h):
                raise error(f"hash is not {HASH_SIZE} bytes")
