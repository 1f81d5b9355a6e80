"""Trusted state: consistency checks with evidence, atomic compare-and-swap
persistence, never regressing (client/state.py)."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from tlog_client.encoding import b64decode_std
from tlog_client.state import (
    InconsistentCheckpointError,
    SplitViewError,
    StateError,
    StateStore,
    advance,
    check_consistency,
    proof_sizes,
)
from tlog_client.trust import PinnedLog

from .fakelog import FakeLog


def grown_log(n: int) -> FakeLog:
    log = FakeLog()
    for i in range(n):
        log.add(b"entry %d" % i)
    return log


@pytest.fixture
def log() -> FakeLog:
    return grown_log(20)


def opened(log: FakeLog, size: int, **kw):
    return PinnedLog(log.public_pem).open_checkpoint(log.checkpoint(size, **kw))


def test_proof_sizes():
    assert proof_sizes(5, 5) is None
    assert proof_sizes(0, 5) is None and proof_sizes(5, 0) is None
    assert proof_sizes(3, 9) == (3, 9) and proof_sizes(9, 3) == (3, 9)


@pytest.mark.parametrize("old,new", [(1, 20), (7, 13), (8, 16), (13, 13), (0, 5), (13, 7)])
def test_consistent_checkpoints_pass(log, old, new):
    sizes = proof_sizes(old, new)
    proof = log.consistency(*sizes) if sizes else []
    check_consistency(opened(log, old), opened(log, new), proof)


def test_same_size_other_root_is_a_split_view(log):
    trusted = opened(log, 10)
    forked = opened(log, 10, root=b"\x01" * 32)
    with pytest.raises(SplitViewError) as err:
        check_consistency(trusted, forked, [], "ab" * 32)
    ev = err.value.evidence
    assert ev.trusted == trusted.note and ev.new == forked.note
    assert err.value.binding == "consistency"
    doc = ev.to_json()
    assert doc["trustedCheckpoint"] == trusted.note.decode()
    assert doc["newCheckpoint"] == forked.note.decode()
    assert doc["logID"] == "ab" * 32


def test_failed_consistency_proof_is_evidence(log, tmp_path):
    other = grown_log(20)
    other.bodies[3] = b"rewritten history"
    trusted = opened(log, 8)
    rewritten = PinnedLog(log.public_pem).open_checkpoint(
        log.checkpoint(16, root=other.tree(16).root(16)))
    proof = other.consistency(8, 16)
    with pytest.raises(InconsistentCheckpointError) as err:
        check_consistency(trusted, rewritten, proof)
    ev = err.value.evidence
    assert ev.proof == tuple(proof) and (ev.proof_first, ev.proof_second) == (8, 16)
    path = err.value.write_evidence(tmp_path)  # a directory: a file is created in it
    doc = json.loads(path.read_text())
    assert doc["trustedCheckpoint"] == trusted.note.decode()
    assert doc["newCheckpoint"] == rewritten.note.decode()
    assert [b64decode_std(h, "h") for h in doc["consistencyProof"]["hashes"]] == proof
    named = err.value.write_evidence(tmp_path / "evidence.json")
    assert named == tmp_path / "evidence.json" and json.loads(named.read_text()) == doc


def test_tampered_or_short_proof_fails(log):
    proof = log.consistency(5, 17)
    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    for p in (bad, proof[:-1], [*proof, proof[0]]):
        with pytest.raises(InconsistentCheckpointError):
            check_consistency(opened(log, 5), opened(log, 17), p)


def test_smaller_checkpoint_is_checked_too(log):
    other = grown_log(20)
    other.bodies[1] = b"x"
    older_fork = PinnedLog(log.public_pem).open_checkpoint(
        log.checkpoint(4, root=other.tree(4).root(4)))
    with pytest.raises(InconsistentCheckpointError):
        check_consistency(opened(log, 12), older_fork, log.consistency(4, 12))


# -- persistence ---------------------------------------------------------------------

def test_store_round_trip_and_compare_and_swap(log, tmp_path):
    store = StateStore(tmp_path / "state" / "state.json")
    pinned = PinnedLog(log.public_pem, log.origin)
    assert store.get(pinned) is None
    cp5, cp9 = opened(log, 5), opened(log, 9)
    assert store.compare_and_swap(pinned, None, cp5)
    assert store.get(pinned) == cp5
    assert not store.compare_and_swap(pinned, None, cp9)  # stale expectation: refused
    assert store.get(pinned) == cp5
    assert store.compare_and_swap(pinned, cp5, cp9)
    assert store.get(pinned).size == 9
    with pytest.raises(StateError):
        store.compare_and_swap(pinned, cp9, cp5)  # never regress
    assert os.stat(store.path).st_mode & 0o077 == 0
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert store.origin_of(pinned.log_id) == log.origin


def test_store_reverifies_under_the_pinned_key(log, tmp_path):
    store = StateStore(tmp_path / "state.json")
    pinned = PinnedLog(log.public_pem, log.origin)
    store.compare_and_swap(pinned, None, opened(log, 5))
    other = FakeLog(origin=log.origin)
    with pytest.raises(StateError, match="another log key|recorded for log key"):
        store.get(PinnedLog(other.public_pem, log.origin))
    doc = json.loads(store.path.read_text())
    forged = log.checkpoint(5, key=other.key)
    import base64
    doc["logs"][log.origin]["checkpoint"] = base64.b64encode(forged).decode()
    store.path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="does not verify"):
        store.get(pinned)
    store.path.write_text("{not json")
    with pytest.raises(StateError):
        store.get(pinned)


def test_cursors_never_move_back(log, tmp_path):
    store = StateStore(tmp_path / "state.json")
    pinned = PinnedLog(log.public_pem, log.origin)
    with pytest.raises(StateError):
        store.set_cursor(pinned, log.origin, "monitor", 3)
    store.compare_and_swap(pinned, None, opened(log, 5))
    store.set_cursor(pinned, log.origin, "monitor", 5)
    store.set_cursor(pinned, log.origin, "monitor", 2)
    assert store.cursor(log.origin, "monitor") == 5
    store.compare_and_swap(pinned, opened(log, 5), opened(log, 8))
    assert store.cursor(log.origin, "monitor") == 5  # kept across checkpoint updates


def test_advance_checks_and_never_regresses(log, tmp_path):
    store = StateStore(tmp_path / "state.json")
    pinned = PinnedLog(log.public_pem, log.origin)
    asked = []

    def proofs(first, second):
        asked.append((first, second))
        return log.consistency(first, second)

    assert advance(store, pinned, opened(log, 6), proofs).size == 6
    assert advance(store, pinned, opened(log, 15), proofs).size == 15
    assert advance(store, pinned, opened(log, 10), proofs).size == 15  # older: checked, kept
    assert asked == [(6, 15), (10, 15)]
    with pytest.raises(SplitViewError):
        advance(store, pinned, opened(log, 15, root=b"\x02" * 32), proofs)
    assert store.get(pinned).size == 15
    memory = {}
    assert advance(None, pinned, opened(log, 3), proofs, memory).size == 3
    assert memory[log.origin].size == 3


def _advance_many(args):
    path, key_pem, notes = args
    pinned = PinnedLog(key_pem)
    log_sizes = []
    store = StateStore(path)
    for note in notes:
        cp = pinned.open_checkpoint(note)
        log_sizes.append(advance(store, pinned, cp, lambda a, b: PROOFS[(a, b)]).size)
    return log_sizes


PROOFS: dict = {}


def test_concurrent_writers_never_lose_or_regress(log, tmp_path):
    """Several processes advance one state file in different orders: the
    compare-and-swap under the lock keeps the largest checkpoint."""
    sizes = list(range(1, 21))
    for a in sizes:
        for b in sizes:
            if a < b:
                PROOFS[(a, b)] = log.consistency(a, b)
    notes = [log.checkpoint(s) for s in sizes]
    orders = [notes, notes[::-1], notes[::2] + notes[1::2], notes[5:] + notes[:5]]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_advance_many, [(tmp_path / "s.json", log.public_pem, o)
                                           for o in orders])
    for seen in results:
        assert seen == sorted(seen)  # what each process saw never went back
    final = StateStore(tmp_path / "s.json").get(PinnedLog(log.public_pem, log.origin))
    assert final.size == 20
