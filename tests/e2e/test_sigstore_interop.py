"""A bundle written by ``tlog-client`` for a certificate-signed artifact is
accepted by sigstore-python 4.x's offline verification, given a trusted root
naming this log (and a test CA and CT log); a tampered one is rejected by both
sigstore-python and ``tlog-client verify``."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..client.fakelog import CA, leaf_builder, make_ca
from .conftest import Cli

sigstore = pytest.importorskip("sigstore")
from sigstore.errors import Error as SigstoreError  # noqa: E402
from sigstore.errors import VerificationError as SigstoreVerificationError  # noqa: E402
from sigstore.models import Bundle, TrustedRoot  # noqa: E402
from sigstore.verify import Verifier, policy  # noqa: E402

OID_SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
EMAIL, ISSUER = "release-bot@example.com", "https://token.actions.example"


def _der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _der_octet_string(data: bytes) -> bytes:
    n = len(data)
    length = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x04" + length + data


def leaf_with_sct(ca: CA, key: ec.EllipticCurvePrivateKey,
                  ct_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A Fulcio-like leaf with an embedded SCT (RFC 6962 §3.2, precert entry)
    signed by ``ct_key``, as sigstore-python checks it."""
    builder = leaf_builder(ca, key.public_key(), EMAIL, ISSUER)
    precert_tbs = builder.sign(ca.key, hashes.SHA256()).tbs_certificate_bytes
    timestamp = int(time.time() * 1000) - 1000
    issuer_key_hash = hashlib.sha256(_der(ca.key.public_key())).digest()
    signed_entry = issuer_key_hash + len(precert_tbs).to_bytes(3, "big") + precert_tbs
    signed = struct.pack(f"!BBQH{len(signed_entry)}sH", 0, 0, timestamp, 1, signed_entry, 0)
    signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    log_id = hashlib.sha256(_der(ct_key.public_key())).digest()
    sct = (b"\x00" + log_id + struct.pack("!QH", timestamp, 0)
           + bytes([4, 3]) + struct.pack("!H", len(signature)) + signature)
    sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
    ext = x509.UnrecognizedExtension(OID_SCT_LIST, _der_octet_string(sct_list))
    return builder.add_extension(ext, critical=False).sign(ca.key, hashes.SHA256())


def trusted_root(log_key_pem: bytes, ca: CA, ct_key) -> dict:
    log_key = serialization.load_pem_public_key(log_key_pem)
    start = "2020-01-01T00:00:00Z"
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{"baseUrl": "http://127.0.0.1:9", "hashAlgorithm": "SHA2_256",
                   "publicKey": {"rawBytes": b64(_der(log_key)), "keyDetails": "PKIX_ED25519",
                                 "validFor": {"start": start}},
                   "logId": {"keyId": b64(hashlib.sha256(_der(log_key)).digest())}}],
        "certificateAuthorities": [{
            "subject": {"organization": "tlog tests", "commonName": "test root"},
            "uri": "https://ca.example", "validFor": {"start": start},
            "certChain": {"certificates": [{"rawBytes": b64(ca.cert.public_bytes(
                serialization.Encoding.DER))}]}}],
        "ctlogs": [{"baseUrl": "https://ct.example", "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": b64(_der(ct_key.public_key())),
                                  "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": start}},
                    "logId": {"keyId": b64(hashlib.sha256(_der(ct_key.public_key())).digest())}}],
        "timestampAuthorities": [],
    }


@pytest.fixture
def signed(cli: Cli, log, tmp_path):
    ca, ct_key = make_ca(), ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "signing.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "signing.crt").write_bytes(
        leaf_with_sct(ca, key, ct_key).public_bytes(serialization.Encoding.PEM))
    (tmp_path / "roots.pem").write_bytes(ca.pem)
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"a release signed by a certificate")
    bundle = tmp_path / "release.sigstore.json"
    up = cli("upload", artifact, "--key", tmp_path / "signing.key", "--cert",
             tmp_path / "signing.crt", "--bundle", bundle)
    assert up.code == 0, up.stderr
    root = tmp_path / "trusted_root.json"
    doc = trusted_root(log.public_pem, ca, ct_key)
    # `tlog-client sigstore-tlog` prints the same tlogs[] item
    printed = cli("sigstore-tlog", env={"TLOG_URL": "http://127.0.0.1:9"})
    assert printed.code == 0 and json.loads(printed.stdout) == doc["tlogs"][0]
    root.write_text(json.dumps(doc))
    return artifact, bundle, root


def sigstore_verify(artifact, bundle_bytes: bytes, root) -> None:
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    verifier.verify_artifact(artifact.read_bytes(), Bundle.from_json(bundle_bytes),
                             policy.Identity(identity=EMAIL, issuer=ISSUER))


def ours(cli: Cli, artifact, bundle_path, tmp_path):
    return cli("verify", artifact, "--bundle", bundle_path, "--cert-identity", EMAIL,
               "--cert-oidc-issuer", ISSUER, "--ca-roots", tmp_path / "roots.pem", "--json",
               env={"TLOG_URL": "http://127.0.0.1:9"})


def test_sigstore_python_accepts_our_bundle_offline(signed, cli, tmp_path):
    artifact, bundle, root = signed
    sigstore_verify(artifact, bundle.read_bytes(), root)
    assert ours(cli, artifact, bundle, tmp_path).code == 0


def _edit(bundle_bytes: bytes, edit) -> bytes:
    doc = json.loads(bundle_bytes)
    edit(doc)
    return json.dumps(doc).encode()


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _tle(doc):
    return doc["verificationMaterial"]["tlogEntries"][0]


TAMPERING = {
    "signature": lambda d: d["messageSignature"].update(
        signature=_flip(d["messageSignature"]["signature"])),
    "inclusion-proof": lambda d: _tle(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip(_tle(d)["inclusionProof"]["hashes"][0])),
    "root-hash": lambda d: _tle(d)["inclusionProof"].update(
        rootHash=_flip(_tle(d)["inclusionProof"]["rootHash"])),
    "set": lambda d: _tle(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip(_tle(d)["inclusionPromise"]["signedEntryTimestamp"])),
    "integrated-time": lambda d: _tle(d).update(
        integratedTime=str(int(_tle(d)["integratedTime"]) - 60)),
    "body": lambda d: _tle(d).update(canonicalizedBody=base64.b64encode(
        base64.b64decode(_tle(d)["canonicalizedBody"]).replace(b'"sha256"', b'"sha512"')
    ).decode()),
}


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_tampered_bundle_is_rejected_by_both(signed, cli, tmp_path, what):
    artifact, bundle, root = signed
    tampered = _edit(bundle.read_bytes(), TAMPERING[what])
    with pytest.raises(SigstoreError):  # VerificationError, or InvalidBundle on load
        sigstore_verify(artifact, tampered, root)
    path = tmp_path / "tampered.json"
    path.write_bytes(tampered)
    res = ours(cli, artifact, path, tmp_path)
    assert res.code == 1, res.stdout + res.stderr


def test_other_artifact_is_rejected_by_both(signed, cli, tmp_path):
    artifact, bundle, root = signed
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the release")
    with pytest.raises(SigstoreVerificationError):
        sigstore_verify(other, bundle.read_bytes(), root)
    assert ours(cli, other, bundle, tmp_path).code == 1
