"""Naive recursive RFC 6962 reference (RFC 6962 §2.1, §2.1.1, §2.1.2).

Written straight from the RFC's definitions, with no cleverness, to check the
optimised code against. Test-only.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    def __init__(self, leaves: list[bytes]):
        self.leaves = leaves
        self._mth = lru_cache(maxsize=None)(self._mth_uncached)

    def _mth_uncached(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return _h(b"")
        if n == 1:
            return _h(b"\x00" + self.leaves[lo])
        k = _k(n)
        return _h(b"\x01" + self._mth(lo, lo + k) + self._mth(lo + k, hi))

    def root(self, size: int) -> bytes:
        return self._mth(0, size)

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]) of RFC 6962 §2.1.1, m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def inclusion(self, m: int, size: int) -> list[bytes]:
        return self.path(m, 0, size)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b) of RFC 6962 §2.1.2."""
        n = hi - lo
        if m == n:
            return [] if b else [self._mth(lo, hi)]
        k = _k(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self._mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self._mth(lo, lo + k)]

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        return self.subproof(size1, 0, size2, True)

    def node(self, level: int, index: int) -> bytes:
        return self._mth(index << level, (index + 1) << level)

    # HashReader protocol, for the proof generator under test.
    def read_hashes(self, addresses):
        return [self.node(level, index) for level, index in addresses]
