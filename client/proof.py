"""Inclusion and consistency proof generation (RFC 9162 §2.1.3, §2.1.4).

Proofs are computed as *node addresses* first, so the server can serve them
from stored hashes without recomputing anything: a node ``(level, index)`` is
the root of the perfect subtree over leaves ``[index*2**level,
(index+1)*2**level)``; only such complete nodes are ever stored or read. A
proof element that covers an incomplete right edge (an "ephemeral" node) is
folded from the complete nodes that make it up.

Generation is pure: :func:`inclusion_nodes` / :func:`consistency_nodes` give
the addresses, one batched :class:`HashReader` call fetches them, and
:meth:`ProofNodes.assemble` returns the proof.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import ProofError
from .hashing import node_hash

Address = tuple[int, int]  # (level, index)


class HashReader(Protocol):
    """Reads stored node hashes in one batch."""

    def read_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        """Return the hash of each complete node, in order. Preconditions: every
        address names a complete node of the tree being proved."""
        ...


@dataclass(frozen=True, slots=True)
class ProofNodes:
    """Addresses to read for a proof; ``addresses[begin:end]`` (left to right)
    fold into one ephemeral proof element."""

    addresses: tuple[Address, ...]
    begin: int = 0
    end: int = 0

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Turn the hashes read for :attr:`addresses` into the proof."""
        if len(hashes) != len(self.addresses):
            raise ProofError(f"read {len(hashes)} hashes for {len(self.addresses)} nodes")
        if self.end - self.begin < 2:
            return list(hashes)
        folded = hashes[self.end - 1]
        for i in range(self.end - 2, self.begin - 1, -1):
            folded = node_hash(hashes[i], folded)
        return [*hashes[:self.begin], folded, *hashes[self.end:]]

    def read(self, reader: HashReader,
             folds: MutableMapping[tuple[Address, ...], bytes] | None = None) -> list[bytes]:
        """Fetch the nodes through ``reader`` and assemble the proof.

        ``folds``: a memo of folded elements by the addresses they fold,
        which the caller may share between proofs (and trees: complete
        nodes never change). Every proof of a leaf left of the right edge
        in one tree folds the same right-edge nodes, so with a memo those
        are neither read nor hashed again. The caller bounds its size."""
        if folds is None or self.end - self.begin < 2:
            return self.assemble(reader.read_hashes(self.addresses))
        key = self.addresses[self.begin:self.end]
        folded = folds.get(key)
        if folded is None:
            proof = self.assemble(reader.read_hashes(self.addresses))
            folds[key] = proof[self.begin]
            return proof
        rest = reader.read_hashes(self.addresses[:self.begin] + self.addresses[self.end:])
        if len(rest) != len(self.addresses) - len(key):
            raise ProofError(f"read {len(rest)} hashes for "
                             f"{len(self.addresses) - len(key)} nodes")
        return [*rest[:self.begin], folded, *rest[self.begin:]]


def inclusion_nodes(index: int, size: int) -> ProofNodes:
    """Nodes of the inclusion proof of leaf ``index`` in a tree of ``size``.

    Precondition: ``0 <= index < size`` (else :class:`ProofError`)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    return _node_path(index, 0, size, [])


def consistency_nodes(size1: int, size2: int) -> ProofNodes:
    """Nodes of the consistency proof between tree sizes ``size1`` and ``size2``.

    Preconditions (SPEC §3.1): ``0 < size1 <= size2``; equal sizes give an
    empty proof."""
    if size1 <= 0 or size1 > size2:
        raise ProofError(f"no consistency proof from size {size1} to size {size2}")
    if size1 == size2:
        return ProofNodes(())
    # The biggest perfect subtree that ends at size1: its inclusion path in the
    # tree of size2 is the proof, preceded by the subtree's own hash unless it
    # is the whole old tree (a verifier already holds that root).
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    prefix = [] if index == 0 else [(level, index)]
    return _node_path(index, level, size2, prefix)


def _node_path(index: int, level: int, size: int, prefix: list[Address]) -> ProofNodes:
    """Inclusion path of complete node (level, index) in a tree of ``size``."""
    last = (size - 1) >> level
    inner = (index ^ last).bit_length()
    ids = list(prefix)
    for i in range(inner - 1):
        ids.append((level + i, (index >> i) ^ 1))
    begin = end = len(ids)
    if inner:
        ids.extend(_ephemeral(index, level, inner - 1, size))
        end = len(ids)
    for i in range(inner, (index).bit_length()):
        if (index >> i) & 1:
            ids.append((level + i, (index >> i) ^ 1))
    return ProofNodes(tuple(ids), begin, end)


def _ephemeral(index: int, level: int, i: int, size: int) -> list[Address]:
    """Complete nodes covering the right sibling at height ``i`` above
    (level, index), clipped to the tree's right edge, left to right."""
    start = ((index >> i) ^ 1) << (level + i)
    return range_nodes(start, size)


def range_nodes(begin: int, end: int) -> list[Address]:
    """The complete nodes, left to right, that exactly cover leaves
    ``[begin, end)``: the compact range decomposition (each node the largest
    aligned subtree that starts at the current position and fits)."""
    if not 0 <= begin <= end:
        raise ProofError(f"[{begin}, {end}) is not a leaf range")
    out: list[Address] = []
    pos = begin
    while pos < end:
        level = (end - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def right_edge(size: int) -> list[Address]:
    """The complete nodes, largest first, whose roots fold into the root of a
    tree of ``size`` leaves (the compact range [0, size))."""
    return range_nodes(0, size)
