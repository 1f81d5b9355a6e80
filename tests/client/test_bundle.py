"""Sigstore bundle v0.3: write, read back, verify offline; tampering is
rejected with the binding named (client/bundle.py)."""

from __future__ import annotations

import base64
import json

import pytest

from tlog_client import bindings
from tlog_client.bundle import MEDIA_TYPE, bundle_json, dumps_bundle, parse_bundle, verify_bundle
from tlog_client.entryverify import Expectations, verify_hashedrekord_entry
from tlog_client.errors import FormatError
from tlog_client.signing import public_pem
from tlog_client.trust import PinnedLog

from .fakelog import FakeLog, hashedrekord_body, make_ca, make_leaf, signer

ARTIFACT = b"the artifact"


def _world(with_cert: bool):
    log = FakeLog()
    key = signer()
    ca = make_ca()
    cert = make_leaf(ca, key, "ci@example.com", "https://ci.example") if with_cert else None
    for i in range(6):
        log.add(hashedrekord_body(b"x%d" % i, signer()))
    index = log.add(hashedrekord_body(ARTIFACT, key, cert))
    log.add(hashedrekord_body(b"after", signer()))
    pinned = PinnedLog(log.public_pem)
    verified = verify_hashedrekord_entry(log.entry(index), pinned)
    return log, key, ca, pinned, verified


@pytest.fixture(params=[True, False], ids=["certificate", "public-key"])
def world(request):
    return _world(request.param)


def test_round_trip(world):
    log, key, ca, pinned, verified = world
    data = dumps_bundle(verified)
    doc = json.loads(data)
    assert doc["mediaType"] == MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    tle = doc["verificationMaterial"]["tlogEntries"][0]
    assert tle["logIndex"] == str(verified.log_index) and tle["integratedTime"].isdigit()
    assert tle["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert base64.b64decode(tle["logId"]["keyId"]).hex() == log.log_id
    assert tle["inclusionProof"]["checkpoint"]["envelope"] == verified.checkpoint.note.decode()
    assert doc["messageSignature"]["messageDigest"]["algorithm"] == "SHA2_256"
    bundle = parse_bundle(data)
    again = verify_bundle(bundle, PinnedLog(log.public_pem), Expectations(
        artifact=ARTIFACT, key=public_pem(key)))
    assert again.entry.body == verified.entry.body and again.log_index == verified.log_index
    assert dumps_bundle(again) == data  # written again byte for byte


def test_identity_from_a_bundle():
    log, key, ca, pinned, verified = _world(True)
    verify_bundle(parse_bundle(dumps_bundle(verified)), PinnedLog(log.public_pem), Expectations(
        artifact=ARTIFACT, identity="ci@example.com", issuer="https://ci.example",
        ca_roots=(ca.cert,)))
    with pytest.raises(bindings.IdentityMismatchError):
        verify_bundle(parse_bundle(dumps_bundle(verified)), PinnedLog(log.public_pem),
                      Expectations(identity="other@example.com", ca_roots=(ca.cert,)))


def _tampered(verified, edit):
    doc = bundle_json(verified)
    edit(doc)
    return json.dumps(doc).encode()


def _tle(doc):
    return doc["verificationMaterial"]["tlogEntries"][0]


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


TAMPERING = {
    "signature": (lambda d: d["messageSignature"].update(
        signature=_flip_b64(d["messageSignature"]["signature"])), bindings.BundleMismatchError),
    "digest": (lambda d: d["messageSignature"]["messageDigest"].update(
        digest=_flip_b64(d["messageSignature"]["messageDigest"]["digest"])),
        bindings.BundleMismatchError),
    "body": (lambda d: _tle(d).update(canonicalizedBody=base64.b64encode(
        base64.b64decode(_tle(d)["canonicalizedBody"]).replace(b"sha256", b"sha384")).decode()),
        bindings.EntryBodyError),
    "proof": (lambda d: _tle(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip_b64(_tle(d)["inclusionProof"]["hashes"][0])), bindings.InclusionBindingError),
    "root": (lambda d: _tle(d)["inclusionProof"].update(
        rootHash=_flip_b64(_tle(d)["inclusionProof"]["rootHash"])),
        bindings.InclusionBindingError),
    "set": (lambda d: _tle(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip_b64(_tle(d)["inclusionPromise"]["signedEntryTimestamp"])),
        bindings.SETError),
    "integrated-time": (lambda d: _tle(d).update(
        integratedTime=str(int(_tle(d)["integratedTime"]) + 1)), bindings.SETError),
    "log-index": (lambda d: _tle(d).update(logIndex=str(int(_tle(d)["logIndex"]) + 1)),
                  bindings.InclusionBindingError),
    "log-id": (lambda d: _tle(d)["logId"].update(keyId=base64.b64encode(bytes(32)).decode()),
               bindings.SETError),
}


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_tampered_bundle_is_rejected(world, what):
    log, key, ca, pinned, verified = world
    edit, error = TAMPERING[what]
    with pytest.raises(error):
        verify_bundle(parse_bundle(_tampered(verified, edit)), PinnedLog(log.public_pem),
                      Expectations(artifact=ARTIFACT))


def test_checkpoint_from_another_key_in_bundle(world):
    log, key, ca, pinned, verified = world
    impostor = FakeLog(origin=log.origin)
    forged = log.checkpoint(verified.checkpoint.size, key=impostor.key).decode()
    data = _tampered(verified, lambda d: _tle(d)["inclusionProof"]["checkpoint"].update(
        envelope=forged))
    with pytest.raises(bindings.CheckpointKeyError):
        verify_bundle(parse_bundle(data), PinnedLog(log.public_pem))


def test_other_artifact_and_key(world):
    log, key, ca, pinned, verified = world
    bundle = parse_bundle(dumps_bundle(verified))
    with pytest.raises(bindings.ArtifactMismatchError):
        verify_bundle(bundle, PinnedLog(log.public_pem), Expectations(artifact=b"other"))
    with pytest.raises(bindings.KeyMismatchError):
        verify_bundle(bundle, PinnedLog(log.public_pem), Expectations(key=public_pem(signer())))


def test_certificate_swapped():
    log, key, ca, pinned, verified = _world(True)
    other = make_leaf(ca, key, "someone-else@example.com", "https://ci.example")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    der = x509.load_pem_x509_certificate(other).public_bytes(serialization.Encoding.DER)
    data = _tampered(verified, lambda d: d["verificationMaterial"]["certificate"].update(
        rawBytes=base64.b64encode(der).decode()))
    with pytest.raises(bindings.BundleMismatchError):
        verify_bundle(parse_bundle(data), PinnedLog(log.public_pem))


@pytest.mark.parametrize("edit", [
    lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1"),
    lambda d: d.update(extra=1),
    lambda d: _tle(d).update(logIndex="+1"),
    lambda d: _tle(d).update(logIndex=None),
    lambda d: _tle(d).pop("inclusionPromise"),
    lambda d: _tle(d)["inclusionProof"].pop("checkpoint"),
    lambda d: d["verificationMaterial"]["tlogEntries"].append(_tle(d)),
    lambda d: d["verificationMaterial"].update(publicKey={"hint": "x"}, certificate={}),
    lambda d: d.pop("messageSignature"),
    lambda d: d["messageSignature"]["messageDigest"].update(algorithm="MD5"),
])
def test_malformed_bundles_are_format_errors(edit):
    _, _, _, _, verified = _world(True)
    with pytest.raises(FormatError):
        parse_bundle(_tampered(verified, edit))


def test_sigstore_python_reads_our_bundle():
    sigstore_models = pytest.importorskip("sigstore.models")
    _, _, _, _, verified = _world(True)
    data = dumps_bundle(verified)
    bundle = sigstore_models.Bundle.from_json(data)
    assert bundle.log_entry._inner.log_index == verified.log_index
    ours = parse_bundle(bundle.to_json().encode())  # and we read sigstore-python's output
    assert ours.entry.body == verified.entry.body
