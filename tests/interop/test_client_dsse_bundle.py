"""Interop (issue 5, "Must show"): a DSSE bundle written by OUR client
(``tlog-client attest --cert ... --bundle``) is accepted by sigstore-python
4.x's ``Verifier.verify_dsse`` offline, with a trusted root naming this log
(and the fake Fulcio CA and CT log of fakefulcio.py that issued the signing
certificate); tampered copies are rejected by sigstore-python and by
``tlog-client verify --bundle`` alike.

What sigstore-python checks of a DSSE bundle (sigstore/verify/verifier.py
``verify_dsse`` and ``_validate_dsse_v001_entry_body``): the certificate
chain, SCT and identity policy, the inclusion proof, checkpoint and SET as for
any bundle, exactly one envelope signature verifying over the PAE under the
certificate's key, the tlog entry being dsse 0.0.1, its payloadHash equal to
SHA-256 of the bundle's payload and its signatures equal to [{signature: the
envelope's, verifier: base64 of the leaf certificate's PEM}].

Everything on loopback: a real ``tlog serve`` process, the CLI in a
subprocess; sigstore-python's trusted root is built in memory (no TUF)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import rfc8785

pytest.importorskip("sigstore", minversion="4")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sigstore.errors import Error as SigstoreError  # noqa: E402
from sigstore.models import Bundle  # noqa: E402
from sigstore.verify import Verifier  # noqa: E402
from sigstore.verify.policy import Identity as IdentityPolicy  # noqa: E402

from ..client.attestation_samples import GITHUB_BUILDER, REPO, slsa_v1_github  # noqa: E402
from ..e2e.conftest import Cli  # noqa: E402
from ..serverproc import ServerProcess  # noqa: E402
from .fakefulcio import FakeFulcio, Identity  # noqa: E402
from .test_sigstore_python import no_network, trusted_root  # noqa: E402,F401

SIGNER = Identity("release-bot@example.com", "https://token.actions.example")


@dataclass
class Attested:
    cli: Cli
    artifact: Path
    bundle: Path
    roots: Path
    trust: dict
    tmp: Path


@pytest.fixture(scope="module", params=["ed25519", "ecdsa-p256"])
def attested(request, tmp_path_factory, no_network) -> Attested:  # noqa: F811
    tmp = tmp_path_factory.mktemp(f"dsse-bundle-{request.param}")
    server = ServerProcess(tmp / "log", "--key-type", request.param).start()
    try:
        log_private = serialization.load_pem_private_key(
            (tmp / "log" / "log-key.pem").read_bytes(), password=None)
        log_pub = tmp / "log-public.pem"
        log_pub.write_bytes(log_private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        ca = FakeFulcio()
        key = ec.generate_private_key(ec.SECP256R1())
        (tmp / "signing.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        cert = ca.issue(key.public_key(), SIGNER)
        (tmp / "signing.crt").write_bytes(b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (cert, ca.root)))
        roots = tmp / "roots.pem"
        roots.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
        artifact = tmp / "app-1.0.tar.gz"
        artifact.write_bytes(b"app 1.0 release tarball")
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        statement = tmp / "provenance.json"
        statement.write_text(json.dumps(slsa_v1_github([(artifact.name, digest)])))
        cli = Cli(server.url, log_pub, tmp / "state")
        for i in range(2):  # earlier entries: the inclusion proof has hashes to tamper with
            pad = cli("upload", "--digest", f"sha256:{i:064x}", "--key", tmp / "signing.key")
            assert pad.code == 0, pad.stderr
        bundle = tmp / "app-1.0.intoto.sigstore.json"
        # the chain is given; only the leaf is logged (what Sigstore verifiers compare)
        res = cli("attest", artifact, "--statement", statement, "--key", tmp / "signing.key",
                  "--cert", tmp / "signing.crt", "--bundle", bundle, "--json")
        assert res.code == 0, res.stderr
        assert res.json["kind"] == "dsse"
        yield Attested(cli, artifact, bundle, roots,
                       ca.trusted_root(log_private.public_key(), server.url), tmp)
    finally:
        server.kill()


def sigstore_verify_dsse(bundle_json: bytes | str, trust: dict,
                         identity: str = SIGNER.email) -> tuple[str, bytes]:
    verifier = Verifier(trusted_root=trusted_root(trust))
    return verifier.verify_dsse(Bundle.from_json(bundle_json),
                                IdentityPolicy(identity=identity, issuer=SIGNER.issuer))


def ours(a: Attested, bundle: Path, artifact: Path | None = None):
    return a.cli("verify", artifact or a.artifact, "--bundle", bundle, "--cert-identity",
                 SIGNER.email, "--cert-oidc-issuer", SIGNER.issuer, "--ca-roots", a.roots,
                 "--json", env={"TLOG_URL": "http://127.0.0.1:9"})  # offline: nothing there


def test_sigstore_python_verify_dsse_accepts_our_bundle(attested: Attested):
    doc = json.loads(attested.bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert "dsseEnvelope" in doc and "messageSignature" not in doc
    (tle,) = doc["verificationMaterial"]["tlogEntries"]
    assert tle["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    payload_type, payload = sigstore_verify_dsse(attested.bundle.read_bytes(), attested.trust)
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["predicate"]["runDetails"]["builder"]["id"] == GITHUB_BUILDER
    assert statement["subject"][0]["digest"]["sha256"] == \
        hashlib.sha256(attested.artifact.read_bytes()).hexdigest()
    with pytest.raises(SigstoreError):
        sigstore_verify_dsse(attested.bundle.read_bytes(), attested.trust, "other@example.com")
    # and ours, offline, byte-exact envelope binding
    res = ours(attested, attested.bundle)
    assert res.code == 0, res.stdout + res.stderr
    (entry,) = res.json["entries"]
    att = entry["attestation"]
    assert att["envelopeHashChecked"] is True
    assert att["statement"]["provenance"]["sourceRepository"] == REPO


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _tle(d: dict) -> dict:
    return d["verificationMaterial"]["tlogEntries"][0]


def _other_payload(d: dict) -> None:
    statement = json.loads(base64.b64decode(d["dsseEnvelope"]["payload"]))
    statement["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/runner"
    d["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


TAMPERING = {
    "payload": _other_payload,
    "payload-type": lambda d: d["dsseEnvelope"].update(payloadType="application/json"),
    "envelope-signature": lambda d: d["dsseEnvelope"]["signatures"][0].update(
        sig=_flip(d["dsseEnvelope"]["signatures"][0]["sig"])),
    "inclusion-proof": lambda d: _tle(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip(_tle(d)["inclusionProof"]["hashes"][0])),
    "root-hash": lambda d: _tle(d)["inclusionProof"].update(
        rootHash=_flip(_tle(d)["inclusionProof"]["rootHash"])),
    "set": lambda d: _tle(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip(_tle(d)["inclusionPromise"]["signedEntryTimestamp"])),
    "integrated-time": lambda d: _tle(d).update(
        integratedTime=str(int(_tle(d)["integratedTime"]) - 60)),
    "log-index": lambda d: _tle(d).update(logIndex=str(int(_tle(d)["logIndex"]) + 1)),
    "body-payload-hash": lambda d: _edit_body(d, lambda spec: spec["payloadHash"].update(
        value=hashlib.sha256(b"another payload").hexdigest())),
    "body-verifier": lambda d: _edit_body(d, lambda spec: spec["signatures"][0].update(
        verifier=base64.b64encode(_other_cert_pem()).decode())),
}


def _edit_body(d: dict, edit) -> None:
    body = json.loads(base64.b64decode(_tle(d)["canonicalizedBody"]))
    edit(body["spec"])
    _tle(d)["canonicalizedBody"] = base64.b64encode(rfc8785.dumps(body)).decode()


def _other_cert_pem() -> bytes:
    ca = FakeFulcio()
    cert = ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), SIGNER)
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_tampered_dsse_bundle_is_rejected_by_both(attested: Attested, what):
    doc = json.loads(attested.bundle.read_text())
    TAMPERING[what](doc)
    tampered = json.dumps(doc)
    with pytest.raises(SigstoreError):  # VerificationError, or InvalidBundle on load
        sigstore_verify_dsse(tampered, attested.trust)
    path = attested.tmp / f"tampered-{what}.json"
    path.write_text(tampered)
    res = ours(attested, path)
    assert res.code == 1, res.stdout + res.stderr


def test_other_artifact_is_rejected_by_ours(attested: Attested):
    other = attested.tmp / "other.tar.gz"
    other.write_bytes(b"not the release")
    res = ours(attested, attested.bundle, other)
    assert res.code == 1 and res.json["binding"] == "artifact", res.stdout
