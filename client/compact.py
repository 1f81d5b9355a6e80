"""Compact ranges: the minimal set of complete subtree roots covering a leaf
range (the right edge of the tree when the range starts at 0).

The server integrates a batch by appending its leaf hashes to the compact
range of the current tree: amortised one node hash per leaf, and every complete
node created on the way is reported so it can be stored. An auditor uses the
same structure to fold tiles into a root. Follows the compact range notion of
transparency-dev/merkle (docs/compact_ranges.md), written from its description.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import FormatError, ProofError
from .hashing import EMPTY_ROOT, HASH_SIZE, node_hash
from .proof import Address, range_nodes

Node = tuple[int, int, bytes]  # (level, index, hash)


@dataclass(slots=True)
class CompactRange:
    """Compact range over leaves ``[begin, end)``; ``hashes`` are the roots of
    :func:`~tlog_client.proof.range_nodes`-style decomposition, left to right."""

    begin: int = 0
    end: int = 0
    hashes: list[bytes] = field(default_factory=list)

    @classmethod
    def from_hashes(cls, begin: int, end: int, hashes: Sequence[bytes]) -> "CompactRange":
        """Build from the hashes of :func:`addresses` ``(begin, end)``, in order."""
        want = len(addresses(begin, end))
        if len(hashes) != want or any(len(h) != HASH_SIZE for h in hashes):
            raise FormatError("hashes", f"compact range [{begin}, {end}) needs {want} hashes")
        return cls(begin, end, list(hashes))

    def append(self, leaf_hash: bytes, new_nodes: list[Node] | None = None) -> None:
        """Append one leaf hash; complete nodes created (the leaf included) are
        appended to ``new_nodes`` as (level, index, hash) if it is given."""
        self._push(0, leaf_hash, new_nodes)

    def extend(self, leaf_hashes: Iterable[bytes], new_nodes: list[Node] | None = None) -> None:
        """Append many leaf hashes in order (see :meth:`append`)."""
        push = self._push
        for h in leaf_hashes:
            push(0, h, new_nodes)

    def merge(self, other: "CompactRange", new_nodes: list[Node] | None = None) -> None:
        """Append the adjacent range ``other`` (which must begin at ``end``)."""
        if other.begin != self.end:
            raise FormatError("other", f"range begins at {other.begin}, not {self.end}")
        for (level, _), h in zip(addresses(other.begin, other.end), other.hashes):
            self._push(level, h, new_nodes)

    def root(self) -> bytes:
        """The RFC 6962 root of the tree ``[0, end)``. Precondition: begin == 0."""
        if self.begin != 0:
            raise FormatError("begin", "only a range starting at leaf 0 has a tree root")
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def _push(self, level: int, h: bytes, new_nodes: list[Node] | None) -> None:
        # Precondition: ``end`` is a multiple of 2**level. Merge with the left
        # sibling while the sibling lies wholly inside the range.
        index = self.end >> level
        self.end += 1 << level
        if new_nodes is not None:
            new_nodes.append((level, index, h))
        hashes = self.hashes
        while index & 1 and ((index - 1) << level) >= self.begin:
            h = node_hash(hashes.pop(), h)
            level += 1
            index >>= 1
            if new_nodes is not None:
                new_nodes.append((level, index, h))
        hashes.append(h)


def addresses(begin: int, end: int) -> list[Address]:
    """Node addresses of the compact range ``[begin, end)``, left to right."""
    try:
        return range_nodes(begin, end)
    except ProofError as exc:
        raise FormatError("range", str(exc)) from None
