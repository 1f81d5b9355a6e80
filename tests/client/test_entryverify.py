"""The verification recipe: a good entry passes; each binding broken one at a
time is rejected with the error naming that binding (client/entryverify.py)."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tlog_client import bindings
from tlog_client.entryverify import (
    Expectations,
    load_ca_roots,
    verify_entry,
    verify_hashedrekord_entry,
)
from tlog_client.rekor import EntryRef
from tlog_client.state import SplitViewError
from tlog_client.trust import PinnedLog

from .fakelog import FakeLog, hashedrekord_body, make_ca, make_leaf, signer

ARTIFACT = b"release-1.0.tar.gz contents"


@pytest.fixture
def world():
    log = FakeLog()
    key = signer()
    for i in range(9):
        log.add(hashedrekord_body(b"other %d" % i, signer()))
    index = log.add(hashedrekord_body(ARTIFACT, key))
    for i in range(5):
        log.add(hashedrekord_body(b"later %d" % i, signer()))
    pinned = PinnedLog(log.public_pem)
    return log, key, index, pinned


def pub(key) -> bytes:
    from tlog_client.signing import public_pem
    return public_pem(key)


def test_good_entry_verifies_every_binding(world):
    log, key, index, pinned = world
    v = verify_hashedrekord_entry(log.entry(index), pinned,
                                  Expectations(artifact=ARTIFACT, key=pub(key)))
    assert v.log_index == index and v.kind == "hashedrekord"
    assert v.record.digest == hashlib.sha256(ARTIFACT).digest()
    assert v.checkpoint.size == 15 and pinned.origin == log.origin
    digest = Expectations(digest=("sha256", hashlib.sha256(ARTIFACT).digest()), key=pub(key))
    verify_entry(log.entry(index), pinned, digest)


def test_other_artifact(world):
    log, key, index, pinned = world
    with pytest.raises(bindings.ArtifactMismatchError) as err:
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(artifact=b"evil"))
    assert err.value.binding == "artifact"
    with pytest.raises(bindings.ArtifactMismatchError):
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(
            digest=("sha512", hashlib.sha512(ARTIFACT).digest())))


def test_other_key(world):
    log, key, index, pinned = world
    with pytest.raises(bindings.KeyMismatchError):
        verify_hashedrekord_entry(log.entry(index), pinned,
                                  Expectations(artifact=ARTIFACT, key=pub(signer())))


def test_other_signature(world):
    """A log that accepted an entry whose signature does not verify."""
    log, key, _, pinned = world
    bad = signer().sign(b"another message", ec.ECDSA(hashes.SHA256()))
    index = log.add(hashedrekord_body(ARTIFACT, key, signature=bad))
    with pytest.raises(bindings.EntrySignatureError) as err:
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(artifact=ARTIFACT))
    assert err.value.binding == "signature"


def test_tampered_body(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    forged = hashedrekord_body(ARTIFACT, signer())  # a valid body, but not the logged one
    with pytest.raises(bindings.LeafHashError):
        verify_hashedrekord_entry(dataclasses.replace(entry, body=forged), pinned)
    # ... and renamed to its own UUID: the inclusion proof no longer leads to the root
    renamed = dataclasses.replace(entry, body=forged, ref=EntryRef(
        hashlib.sha256(b"\x00" + forged).hexdigest()))
    with pytest.raises(bindings.InclusionBindingError):
        verify_hashedrekord_entry(renamed, pinned)


def test_tampered_proof(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    proof = entry.inclusion_proof
    hashes = list(proof.hashes)
    hashes[1] = bytes(32)
    for bad in (dataclasses.replace(proof, hashes=tuple(hashes)),
                dataclasses.replace(proof, hashes=proof.hashes[:-1]),
                dataclasses.replace(proof, log_index=index + 1)):
        with pytest.raises(bindings.InclusionBindingError):
            verify_hashedrekord_entry(dataclasses.replace(entry, inclusion_proof=bad), pinned)


def test_checkpoint_from_another_key(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    impostor = FakeLog(origin=log.origin)
    forged = log.checkpoint(entry.inclusion_proof.tree_size, key=impostor.key).decode()
    with pytest.raises(bindings.CheckpointKeyError) as err:
        verify_hashedrekord_entry(dataclasses.replace(
            entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof,
                                                       checkpoint=forged)), pinned)
    assert err.value.binding == "checkpoint"
    verify_hashedrekord_entry(entry, pinned)  # the origin is learnt from the pinned key...
    other_origin = log.checkpoint(entry.inclusion_proof.tree_size, origin="other/log").decode()
    with pytest.raises(bindings.CheckpointKeyError):
        verify_hashedrekord_entry(dataclasses.replace(
            entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof,
                                                       checkpoint=other_origin)), pinned)
    with pytest.raises(bindings.CheckpointKeyError):  # ... or configured
        verify_hashedrekord_entry(entry, PinnedLog(log.public_pem, "another/origin"))


def test_checkpoint_of_another_tree(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    other = log.checkpoint(index + 1).decode()  # validly signed, another size
    with pytest.raises(bindings.CheckpointMismatchError):
        verify_hashedrekord_entry(dataclasses.replace(
            entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof,
                                                       checkpoint=other)), pinned)


def test_set(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    for bad in (dataclasses.replace(entry, integrated_time=entry.integrated_time + 1),
                dataclasses.replace(entry, set_signature=bytes(64)),
                dataclasses.replace(entry, set_signature=None),
                dataclasses.replace(entry, log_id="00" * 32)):
        with pytest.raises(bindings.SETError):
            verify_hashedrekord_entry(bad, pinned)


def test_log_key_is_pinned_not_learnt(world):
    log, key, index, _ = world
    with pytest.raises(bindings.CheckpointKeyError):
        verify_hashedrekord_entry(log.entry(index), PinnedLog(FakeLog().public_pem))


def test_inconsistent_with_trusted_state(world):
    log, key, index, pinned = world
    entry = log.entry(index)
    trusted = pinned.open_checkpoint(log.checkpoint(15, root=b"\x07" * 32))
    with pytest.raises(SplitViewError):
        verify_hashedrekord_entry(entry, pinned, trusted=trusted)
    good = pinned.open_checkpoint(log.checkpoint(12))
    v = verify_hashedrekord_entry(entry, pinned, trusted=good,
                                  consistency_proof=log.consistency(12, 15))
    assert v.consistent_with == 12
    assert verify_hashedrekord_entry(entry, pinned, trusted=good).consistent_with is None


def test_other_kinds_get_the_log_bindings_only(world):
    log, key, _, pinned = world
    index = log.add(b'{"apiVersion":"0.0.1","kind":"cose","spec":{}}')
    v = verify_entry(log.entry(index), pinned)
    assert v.kind == "cose" and v.record is None
    with pytest.raises(bindings.EntryBodyError):
        verify_entry(log.entry(index), pinned, Expectations(artifact=ARTIFACT))


def test_a_malformed_dsse_body_is_refused(world):
    log, key, _, pinned = world
    index = log.add(b'{"apiVersion":"0.0.1","kind":"dsse","spec":{}}')
    with pytest.raises(bindings.EntryBodyError, match="spec.signatures"):
        verify_entry(log.entry(index), pinned)


# -- identities ------------------------------------------------------------------------

@pytest.fixture
def cert_world():
    log = FakeLog()
    ca = make_ca()
    key = signer()
    cert = make_leaf(ca, key, "alice@example.com", "https://accounts.example")
    log.add(hashedrekord_body(b"padding", signer()))
    index = log.add(hashedrekord_body(ARTIFACT, key, cert))
    return log, ca, index, PinnedLog(log.public_pem)


def test_identity_verifies(cert_world):
    log, ca, index, pinned = cert_world
    v = verify_hashedrekord_entry(log.entry(index), pinned, Expectations(
        artifact=ARTIFACT, identity="alice@example.com", issuer="https://accounts.example",
        ca_roots=load_ca_roots(ca.pem)))
    assert v.record.key.identities.emails == ("alice@example.com",)


@pytest.mark.parametrize("identity,issuer,error", [
    ("mallory@example.com", None, bindings.IdentityMismatchError),
    ("alice@example.com", "https://evil.example", bindings.IdentityMismatchError),
])
def test_other_identity(cert_world, identity, issuer, error):
    log, ca, index, pinned = cert_world
    with pytest.raises(error):
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(
            identity=identity, issuer=issuer, ca_roots=(ca.cert,)))


def test_identity_needs_a_trusted_root(cert_world):
    log, ca, index, pinned = cert_world
    with pytest.raises(bindings.CertificateTrustError):
        verify_hashedrekord_entry(log.entry(index), pinned,
                                  Expectations(identity="alice@example.com"))
    with pytest.raises(bindings.CertificateTrustError):
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(
            identity="alice@example.com", ca_roots=(make_ca("another root").cert,)))


def test_identity_of_a_bare_key_entry(world):
    log, key, index, pinned = world
    with pytest.raises(bindings.IdentityMismatchError):
        verify_hashedrekord_entry(log.entry(index), pinned, Expectations(
            identity="alice@example.com", ca_roots=(make_ca().cert,)))
