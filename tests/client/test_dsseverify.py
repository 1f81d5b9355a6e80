"""The attestation recipe (client/dsseverify.py): a good dsse or intoto entry
passes; each binding broken one at a time is rejected with the error naming
it; DSSE bundles round-trip, byte-exact or (an envelope another client wrote)
by payload hash and signatures."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from tlog_client import bindings, dsse, intoto002
from tlog_client.bundle import dumps_bundle, parse_bundle, verify_bundle
from tlog_client.dsseverify import verify_dsse_entry
from tlog_client.entryverify import Expectations, load_ca_roots, verify_entry
from tlog_client.keys import parse_key_material
from tlog_client.signing import public_pem
from tlog_client.trust import PinnedLog

from .attestation_samples import cyclonedx_sbom, payload, slsa_v1_github
from .fakelog import FakeLog, make_ca, make_leaf, signer

ARTIFACT = b"app-1.0.tar.gz contents"
HEX = hashlib.sha256(ARTIFACT).hexdigest()
STATEMENT = payload(slsa_v1_github([("app-1.0.tar.gz", HEX)]))
TYPE = "application/vnd.in-toto+json"
EMAIL, ISSUER = "builder@example.com", "https://issuer.example"


@pytest.fixture(scope="module")
def world():
    log, key = FakeLog(), signer()
    return log, key, PinnedLog(log.public_pem)


def logged(log, envelope: bytes, verifier: bytes, *, attach: bool = True):
    proposed = dsse.parse_proposed(dsse.build_proposed(envelope, [verifier]))
    entry = log.entry(log.add(proposed.canonical_body()))
    return dataclasses.replace(entry, attestation=proposed.envelope_bytes if attach else None)


def test_good_entry_every_expectation(world):
    log, key, pinned = world
    entry = logged(log, dsse.sign_envelope(TYPE, STATEMENT, [key]), public_pem(key))
    v = verify_dsse_entry(entry, pinned, Expectations(artifact=ARTIFACT, key=public_pem(key)))
    assert v.kind == "dsse" and v.envelope_hash_checked is True
    assert v.attestation.statement.subjects[0].digests() == {"sha256": HEX}
    assert verify_entry(entry, pinned).attestation.envelope is not None  # the dispatch
    assert v.to_json()["attestation"]["statement"]["predicateType"] == \
        "https://slsa.dev/provenance/v1"


def test_each_binding(world):
    log, key, pinned = world
    entry = logged(log, dsse.sign_envelope(TYPE, STATEMENT, [key]), public_pem(key))
    cases = [
        (dataclasses.replace(entry, attestation=entry.attestation + b" "), Expectations(),
         bindings.AttestationError),
        (dataclasses.replace(entry, attestation=None), Expectations(artifact=ARTIFACT),
         bindings.AttestationError),
        (entry, Expectations(artifact=b"another artifact"), bindings.ArtifactMismatchError),
        (entry, Expectations(key=public_pem(signer())), bindings.KeyMismatchError),
        (entry, Expectations(identity=EMAIL, issuer=ISSUER), bindings.IdentityMismatchError),
        (dataclasses.replace(entry, integrated_time=entry.integrated_time + 1), Expectations(),
         bindings.SETError),
        (dataclasses.replace(entry, body=entry.body.replace(b"sha256", b"sha384", 1)),
         Expectations(), bindings.LeafHashError),
    ]
    for bad, expect, error in cases:
        with pytest.raises(error):
            verify_dsse_entry(bad, pinned, expect)
    # without its envelope, the leaf, the signer and the proofs still verify
    v = verify_dsse_entry(dataclasses.replace(entry, attestation=None), pinned,
                          Expectations(key=public_pem(key)))
    assert v.attestation.envelope is None and v.envelope_hash_checked is False


def test_a_signature_the_leafs_verifier_does_not_verify(world):
    """A leaf recording a verifier that did not make the signature (a lying
    log): the envelope hashes right, the signature check names the binding."""
    log, key, pinned = world
    envelope = dsse.sign_envelope(TYPE, STATEMENT, [signer()])
    parsed = dsse.parse_envelope(envelope)
    leaf = dsse.DsseEntry(hashlib.sha256(envelope).digest(), hashlib.sha256(STATEMENT).digest(),
                          (dsse.DsseSignature(parsed.signatures[0].sig,
                                              parse_key_material(public_pem(key))),))
    entry = dataclasses.replace(log.entry(log.add(leaf.canonical_body())), attestation=envelope)
    with pytest.raises(bindings.EntrySignatureError):
        verify_dsse_entry(entry, pinned)


def test_not_in_toto_names_no_artifact(world):
    log, key, pinned = world
    entry = logged(log, dsse.sign_envelope("text/plain", b"hello", [key]), public_pem(key))
    assert verify_dsse_entry(entry, pinned).attestation.statement is None
    with pytest.raises(bindings.ArtifactMismatchError, match="not an in-toto statement"):
        verify_dsse_entry(entry, pinned, Expectations(artifact=ARTIFACT))


def test_identity_and_certificate_chain(world):
    log, _, pinned = world
    ca, other_ca, key = make_ca(), make_ca("other"), signer()
    entry = logged(log, dsse.sign_envelope(TYPE, STATEMENT, [key]),
                   make_leaf(ca, key, EMAIL, ISSUER))
    good = Expectations(artifact=ARTIFACT, identity=EMAIL, issuer=ISSUER,
                        ca_roots=load_ca_roots(ca.pem))
    assert verify_dsse_entry(entry, pinned, good).attestation.verifiers[0].certificates
    with pytest.raises(bindings.CertificateTrustError):
        verify_dsse_entry(entry, pinned, dataclasses.replace(
            good, ca_roots=load_ca_roots(other_ca.pem)))
    with pytest.raises(bindings.IdentityMismatchError):
        verify_dsse_entry(entry, pinned, dataclasses.replace(good, issuer="https://other"))


def test_intoto_002_entries(world):
    log, key, pinned = world
    envelope = dsse.sign_envelope(TYPE, payload(cyclonedx_sbom([("app", HEX)])), [key])
    proposed = intoto002.parse_proposed(intoto002.build_proposed(envelope, [public_pem(key)]))
    entry = dataclasses.replace(log.entry(log.add(proposed.canonical_body())),
                                attestation=proposed.envelope_bytes)
    v = verify_entry(entry, pinned, Expectations(artifact=ARTIFACT, key=public_pem(key)))
    assert v.kind == "intoto" and v.attestation.statement.sbom.component_count == 4
    bundle = parse_bundle(dumps_bundle(v))
    assert verify_bundle(bundle, pinned, Expectations(artifact=ARTIFACT)).envelope_hash_checked


def test_bundle_of_an_envelope_another_client_encoded(world):
    """Logged with other JSON spelling: the bundle's envelope does not re-encode
    to the logged bytes, so the payload hash and signatures are checked."""
    log, key, pinned = world
    canonical = dsse.sign_envelope(TYPE, STATEMENT, [key])
    spaced = json.dumps(json.loads(canonical), indent=1).encode()
    entry = logged(log, spaced, public_pem(key))
    v = verify_dsse_entry(entry, pinned, Expectations(artifact=ARTIFACT))
    bundle = parse_bundle(dumps_bundle(v))
    checked = verify_bundle(bundle, pinned, Expectations(artifact=ARTIFACT, key=public_pem(key)))
    assert checked.envelope_hash_checked is False
    other = dsse.parse_envelope(dsse.sign_envelope(TYPE, STATEMENT, [key]))  # a new signature
    with pytest.raises(bindings.AttestationError, match="signatures"):
        verify_bundle(dataclasses.replace(bundle, envelope=other), pinned)
    wrong_payload = dataclasses.replace(bundle.envelope, payload=STATEMENT + b" ")
    with pytest.raises(bindings.AttestationError, match="payload"):
        verify_bundle(dataclasses.replace(bundle, envelope=wrong_payload), pinned)
