"""Merkle maths against the naive RFC 6962 reference and published vectors."""

from __future__ import annotations

import hashlib
import os

import pytest

from tlog_client import bulk
from tlog_client.compact import CompactRange, addresses
from tlog_client.errors import (ConsistencyProofError, FormatError, InclusionProofError,
                                ProofError, RootMismatchError)
from tlog_client.hashing import EMPTY_ROOT, leaf_hash, node_hash
from tlog_client.proof import consistency_nodes, inclusion_nodes, right_edge
from tlog_client.verify import (inclusion_proof_length, root_from_consistency_proof,
                                root_from_inclusion_proof, verify_consistency,
                                verify_inclusion)

from .rfc6962_reference import ReferenceTree

MAX = 128
LEAVES = [i.to_bytes(4, "big") + b"leaf" * (i % 5) for i in range(MAX + 2)]
REF = ReferenceTree(LEAVES)

# RFC 6962 test tree (certificate-transparency's and transparency-dev's
# published 8-leaf vectors): the leaves and the roots at every size.
RFC_LEAVES = [bytes.fromhex(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_empty_root():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert bulk.root_of_entries([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_roots(size):
    want = bytes.fromhex(RFC_ROOTS[size - 1])
    assert bulk.root_of_entries(RFC_LEAVES[:size]) == want
    cr = CompactRange()
    cr.extend(leaf_hash(x) for x in RFC_LEAVES[:size])
    assert cr.root() == want


def test_hash_prefixes():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = os.urandom(32), os.urandom(32)
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


def test_roots_match_reference():
    for size in range(0, MAX + 1):
        want = REF.root(size)
        assert bulk.root_of_entries(LEAVES[:size]) == want, size
        cr = CompactRange()
        cr.extend(leaf_hash(x) for x in LEAVES[:size])
        assert cr.root() == want, size
        assert CompactRange.from_hashes(0, size, REF.read_hashes(right_edge(size))).root() == want


def test_parent_level_and_leaf_hashes():
    level = bulk.leaf_hashes(LEAVES[:7])
    assert bulk.split_level(level) == [leaf_hash(x) for x in LEAVES[:7]]
    parents = bulk.split_level(bulk.parent_level(level))
    assert parents == [REF.node(1, i) for i in range(3)]  # odd tail is not carried
    with pytest.raises(FormatError):
        bulk.parent_level(b"x" * 33)


def test_inclusion_exhaustive():
    """Every (index, size) up to MAX: generated proof equals the reference,
    has the RFC 9162 length, and verifies."""
    for size in range(1, MAX + 1):
        root = REF.root(size)
        for index in range(size):
            want = REF.inclusion(index, size)
            got = inclusion_nodes(index, size).read(REF)
            assert got == want, (index, size)
            assert len(got) == inclusion_proof_length(index, size)
            verify_inclusion(index, size, leaf_hash(LEAVES[index]), got, root)


def test_consistency_exhaustive():
    for size2 in range(1, MAX + 1):
        root2 = REF.root(size2)
        for size1 in range(1, size2 + 1):
            want = REF.consistency(size1, size2) if size1 < size2 else []
            got = consistency_nodes(size1, size2).read(REF)
            assert got == want, (size1, size2)
            verify_consistency(size1, size2, REF.root(size1), root2, got)


class _CountingReader:
    """The reference tree as a HashReader that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list = []

    def read_hashes(self, addresses):
        self.asked.append(tuple(addresses))
        return REF.read_hashes(addresses)


def test_folded_elements_memo_gives_the_same_proofs():
    """ProofNodes.read with a shared memo of folded right-edge elements:
    every inclusion and consistency proof up to MAX is the reference's, and
    the memo holds each folded element's true value."""
    folds: dict = {}
    reader = _CountingReader()
    for size2 in range(1, MAX + 1):
        for index in range(size2):
            nodes = inclusion_nodes(index, size2)
            assert nodes.read(reader, folds) == REF.inclusion(index, size2), (index, size2)
            if nodes.end - nodes.begin >= 2:
                folded = nodes.addresses[nodes.begin:nodes.end]
                assert folds[folded] == REF.inclusion(index, size2)[nodes.begin]
        for size1 in range(1, size2):
            got = consistency_nodes(size1, size2).read(reader, folds)
            assert got == REF.consistency(size1, size2), (size1, size2)
    assert any(len(k) > 2 for k in folds)


def test_folded_elements_memo_skips_the_folded_nodes():
    folds: dict = {}
    nodes = inclusion_nodes(0, 7)  # siblings (0, 1), (1, 1), and [4, 7) folded
    assert nodes.end - nodes.begin == 2
    first, second = _CountingReader(), _CountingReader()
    assert nodes.read(first, folds) == nodes.read(second, folds) == REF.inclusion(0, 7)
    assert first.asked == [nodes.addresses]
    assert second.asked == [nodes.addresses[:nodes.begin] + nodes.addresses[nodes.end:]]


def test_folded_elements_memo_checks_what_the_reader_returns():
    nodes = inclusion_nodes(0, 7)
    folds = {nodes.addresses[nodes.begin:nodes.end]: b"\x00" * 32}

    class Short:
        def read_hashes(self, addresses):
            return REF.read_hashes(addresses)[1:]

    with pytest.raises(ProofError, match="read 1 hashes for 2 nodes"):
        nodes.read(Short(), folds)


def _mutations(proof):
    """Every proof that must fail: truncated, extended, each bit-flipped hash."""
    if proof:
        yield "truncated", proof[:-1]
        yield "first dropped", proof[1:]
    yield "extended", proof + [bytes(32)]
    yield "extended-front", [bytes(32)] + proof
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[i % 32] ^= 1 << (i % 8)
        yield f"flip {i}", proof[:i] + [bytes(flipped)] + proof[i + 1:]


NEG_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128]


@pytest.mark.parametrize("size", NEG_SIZES)
def test_inclusion_negative(size):
    root = REF.root(size)
    for index in range(size):
        proof = REF.inclusion(index, size)
        leaf = leaf_hash(LEAVES[index])
        for name, bad in _mutations(proof):
            with pytest.raises(ProofError):
                verify_inclusion(index, size, leaf, bad, root)
        # index±1 against the same root; size±1 against that size's root (a
        # proof does not bind the size by itself: the root does).
        for i2, s2 in ((index + 1, size), (index - 1, size), (index, size + 1), (index, size - 1)):
            with pytest.raises(ProofError):
                verify_inclusion(i2, s2, leaf, proof, REF.root(s2) if s2 != size else root)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf_hash(b"other"), proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, proof, REF.root(size + 1))


@pytest.mark.parametrize("size2", NEG_SIZES)
def test_consistency_negative(size2):
    root2 = REF.root(size2)
    for size1 in range(1, size2):
        root1 = REF.root(size1)
        proof = REF.consistency(size1, size2)
        for name, bad in _mutations(proof):
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, root1, root2, bad)
        for s1, s2 in ((size1 + 1, size2), (size1 - 1, size2), (size1, size2 + 1),
                       (size1, size2 - 1)):
            if 0 < s1 <= s2 and (s1, s2) != (size1, size2):
                with pytest.raises(ProofError):
                    verify_consistency(s1, s2, REF.root(s1), REF.root(s2), proof)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, root2, root1, proof)  # roots swapped


@pytest.mark.parametrize("index,size,error", [
    (0, 0, InclusionProofError), (-1, 4, InclusionProofError), (4, 4, InclusionProofError)])
def test_inclusion_bounds(index, size, error):
    with pytest.raises(error):
        root_from_inclusion_proof(index, size, bytes(32), [])
    with pytest.raises(ProofError):
        inclusion_nodes(index, size)


def test_inclusion_rejects_bad_hash_sizes():
    proof = REF.inclusion(3, 8)
    with pytest.raises(InclusionProofError):
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), proof[:-1] + [proof[-1] + b"\x00"], REF.root(8))
    with pytest.raises(InclusionProofError):
        verify_inclusion(3, 8, leaf_hash(LEAVES[3])[:31], proof, REF.root(8))
    with pytest.raises(InclusionProofError):
        verify_inclusion(3, 8, leaf_hash(LEAVES[3]), proof, REF.root(8)[:31])


@pytest.mark.parametrize("size1,size2,proof", [
    (0, 0, []), (0, 5, []), (5, 4, []), (4, 4, [bytes(32)]), (3, 4, [])])
def test_consistency_bounds(size1, size2, proof):
    with pytest.raises(ConsistencyProofError):
        root_from_consistency_proof(size1, size2, bytes(32), proof)


def test_consistency_equal_sizes():
    verify_consistency(5, 5, REF.root(5), REF.root(5), [])
    with pytest.raises(RootMismatchError):
        verify_consistency(5, 5, REF.root(5), REF.root(6), [])
    assert consistency_nodes(5, 5).addresses == ()


@pytest.mark.parametrize("begin,end", [(b, e) for e in range(0, 40) for b in range(0, e + 1)])
def test_compact_range_merge(begin, end):
    """Any split point: [0,b) merged with [b,e) has the reference root, and the
    nodes reported are exactly the reference's complete nodes."""
    left, right = CompactRange(), CompactRange(begin, begin)
    left.extend(leaf_hash(x) for x in LEAVES[:begin])
    created = []
    right.extend((leaf_hash(x) for x in LEAVES[begin:end]), created)
    assert right.hashes == REF.read_hashes(addresses(begin, end))
    for level, index, h in created:
        assert h == REF.node(level, index)
    left.merge(right)
    assert left.root() == REF.root(end)


def test_compact_range_reports_every_complete_node_once():
    cr, created = CompactRange(), []
    cr.extend((leaf_hash(x) for x in LEAVES[:100]), created)
    want = {(lv, i) for lv in range(8) for i in range(100 >> lv)}
    assert sorted((lv, i) for lv, i, _ in created) == sorted(want)


def test_compact_range_errors():
    with pytest.raises(FormatError):
        CompactRange(3, 5).root()
    with pytest.raises(FormatError):
        CompactRange().merge(CompactRange(1, 1))
    with pytest.raises(FormatError):
        CompactRange.from_hashes(0, 3, [bytes(32)])
    with pytest.raises(FormatError):
        addresses(5, 3)


def test_large_index_proof_shape():
    """Proof shapes for a tree of 2**30 (no hashing: only lengths/addresses)."""
    size = 1 << 30
    for index in (0, 1, size // 2, size - 1):
        nodes = inclusion_nodes(index, size)
        assert len(nodes.addresses) == 30 == inclusion_proof_length(index, size)
    nodes = inclusion_nodes(5, size + 3)
    assert len(nodes.assemble([bytes(32)] * len(nodes.addresses))) == inclusion_proof_length(5, size + 3)
