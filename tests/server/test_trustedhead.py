"""tlog.trustedhead.TrustedHead, table-driven (SPEC §10 U1, U2): which head a
process serves for each head row storage may show it, when it halts, and
what it counts as damage. Real signed checkpoints over the naive RFC 6962
reference tree; the snapshot's nodes come from the reference (or a forked
one)."""

from __future__ import annotations

import pytest

from tlog_client.note import append_signatures, open_note

from tlog.records import StoredCheckpoint
from tlog.storage import DamagedStorageError
from tlog.trustedhead import TrustedHead

from ..client.rfc6962_reference import ReferenceTree
from .inprocess import make_identity

ID = make_identity("tlog.test/trusted")
TREE = ReferenceTree([b"entry %d" % i for i in range(64)])
FORK = ReferenceTree([b"entry %d" % i for i in range(20)] + [b"fork %d" % i for i in range(44)])


def cp(size: int, tree: ReferenceTree = TREE, note: bytes | None = None) -> StoredCheckpoint:
    root = tree.root(size)
    return StoredCheckpoint(size, root, note or ID.sign_checkpoint(size, root, 0), size)


def damaged(c: StoredCheckpoint) -> StoredCheckpoint:
    note = bytearray(c.note)
    note[-10] ^= 1
    return StoredCheckpoint(c.size, c.root, bytes(note), c.timestamp)


def heads_at(size: int) -> tuple[TrustedHead, list[str], list[str]]:
    damage, halts = [], []
    heads = TrustedHead(ID.verifiers(), ID.origin, on_damage=damage.append,
                        on_halt=halts.append)
    heads.adopt(cp(size))
    return heads, damage, halts


# (name, head row storage shows, snapshot tree, size served, halted, damage counted)
CASES = [
    ("the same head", lambda: cp(32), TREE, 32, False, False),
    ("a bigger verified extension", lambda: cp(40), TREE, 40, False, False),
    ("a bigger head with a bad note", lambda: damaged(cp(40)), TREE, 32, False, True),
    ("a bigger head signed over another history", lambda: cp(40, FORK), FORK, 32, False, True),
    ("the same size, another root", lambda: cp(32, FORK), FORK, 32, True, False),
    ("a smaller head never seen", lambda: cp(10), TREE, 32, True, False),
    ("no head at all", lambda: None, TREE, 32, True, False),
    ("the same head, a damaged note", lambda: damaged(cp(32)), TREE, 32, False, True),
]


@pytest.mark.parametrize("name, shown, tree, served, halted, counted", CASES,
                         ids=[c[0] for c in CASES])
def test_what_is_served(name, shown, tree, served, halted, counted):
    heads, damage, halts = heads_at(32)
    out = heads.check(shown(), tree)
    assert out.size == served and out.root == TREE.root(served)
    assert bool(heads.halted) == halted and bool(halts) == halted
    assert bool(damage) == counted
    if served == 32:
        assert out.note == cp(32).note  # the verified copy, never the damaged one


def test_an_older_snapshot_of_a_recent_size_is_not_a_rollback():
    heads, _, halts = heads_at(30)
    heads.adopt(cp(32))
    assert heads.check(cp(30), TREE).size == 30
    assert not halts


def test_after_a_halt_only_the_largest_verified_head_is_served():
    heads, _, _ = heads_at(30)
    heads.adopt(cp(32))
    heads.check(cp(10), TREE)
    assert heads.halted
    assert heads.check(cp(30), TREE).size == 32
    assert heads.check(cp(32), TREE).size == 32


def test_a_note_with_more_signatures_of_the_same_tree_is_adopted():
    """Cosignatures are appended to the note of a size (SPEC §13)."""
    heads, damage, halts = heads_at(32)
    base = cp(32)
    witness = make_identity("witness.example")
    cosigned = append_signatures(open_note(base.note, ID.verifiers()), witness.signers())
    assert len(cosigned) > len(base.note)
    shown = StoredCheckpoint(32, base.root, cosigned, 32)
    assert heads.check(shown, TREE).note == cosigned
    assert not damage and not halts


def test_a_note_missing_one_log_key_line_is_damage():
    heads = TrustedHead(ID.verifiers(), ID.origin)
    full = cp(8)
    lines = full.note.decode().split("\n")
    one_line = ("\n".join(lines[:-2]) + "\n").encode()  # drop the second signature
    with pytest.raises(DamagedStorageError):
        heads.check(StoredCheckpoint(8, full.root, one_line, 8), TREE)


def test_seeding_from_the_record_serves_its_copy_for_a_damaged_row():
    heads = TrustedHead(ID.verifiers(), ID.origin)
    heads.seed(cp(32))
    assert heads.check(damaged(cp(32)), TREE).note == cp(32).note
    with pytest.raises(DamagedStorageError):
        TrustedHead(ID.verifiers(), ID.origin).seed(damaged(cp(32)))


def test_nothing_verified_and_a_damaged_head_is_an_error():
    heads = TrustedHead(ID.verifiers(), ID.origin)
    with pytest.raises(DamagedStorageError):
        heads.check(damaged(cp(8)), TREE)
    assert heads.check(cp(8), TREE).size == 8
