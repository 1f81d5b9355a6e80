"""An in-memory log built only from the client's own pure modules, for unit
tests of state, entry verification and bundles (no server, no aiohttp.web).

It signs whatever it is told to (so tests can make it lie), keeps every level
of the tree, and answers with Rekor v1 LogEntry objects and signed checkpoints.
Also: a tiny X.509 CA issuing Fulcio-like code-signing certificates."""

from __future__ import annotations

import datetime
import hashlib
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlog_client.bulk import leaf_hashes, parent_level
from tlog_client.checkpoint import Checkpoint, sign_checkpoint
from tlog_client.compact import CompactRange
from tlog_client.encoding import b64encode_std
from tlog_client.hashedrekord import build_proposed, parse_proposed
from tlog_client.hashing import EMPTY_ROOT
from tlog_client.notekeys import log_signers
from tlog_client.proof import consistency_nodes, inclusion_nodes, right_edge
from tlog_client.rekor import EntryRef, InclusionProof, LogEntry, log_id, set_payload, sign_set
from tlog_client.signing import public_pem, sign_digest

ORIGIN = "test.example/log"
TREE_ID = 1234567


class Levels:
    """Every complete node of a tree (a HashReader)."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.levels = [leaf_hashes(leaves)]
        while len(self.levels[-1]) >= 64:
            self.levels.append(parent_level(self.levels[-1]))

    def read_hashes(self, addresses):
        return [self.levels[level][32 * index:32 * index + 32] for level, index in addresses]

    def root(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return CompactRange.from_hashes(0, size, self.read_hashes(right_edge(size))).root()


@dataclass
class FakeLog:
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = field(
        default_factory=ed25519.Ed25519PrivateKey.generate)
    origin: str = ORIGIN
    bodies: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)

    @property
    def public_key(self):
        return self.key.public_key()

    @property
    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def log_id(self) -> str:
        return log_id(self.public_key)

    def add(self, body: bytes) -> int:
        self.bodies.append(body)
        self.times.append(int(time.time()))
        return len(self.bodies) - 1

    def tree(self, size: int | None = None) -> Levels:
        return Levels(self.bodies[:len(self.bodies) if size is None else size])

    def checkpoint(self, size: int | None = None, *, root: bytes | None = None,
                   key=None, origin: str | None = None) -> bytes:
        size = len(self.bodies) if size is None else size
        root = self.tree(size).root(size) if root is None else root
        return sign_checkpoint(Checkpoint(origin or self.origin, size, root),
                               log_signers(key or self.key, origin or self.origin))

    def consistency(self, first: int, second: int) -> list[bytes]:
        return consistency_nodes(first, second).read(self.tree(second))

    def entry(self, index: int, size: int | None = None) -> LogEntry:
        size = len(self.bodies) if size is None else size
        tree = self.tree(size)
        hashes = tuple(inclusion_nodes(index, size).read(tree))
        proof = InclusionProof(index, tree.root(size), size, hashes,
                               self.checkpoint(size).decode())
        body = self.bodies[index]
        uuid = hashlib.sha256(b"\x00" + body).hexdigest()
        payload = set_payload(b64encode_std(body), self.times[index], self.log_id, index)
        return LogEntry(EntryRef(uuid, TREE_ID), body, self.times[index], self.log_id, index,
                        proof, sign_set(self.key, payload))


def signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def hashedrekord_body(artifact: bytes, key: ec.EllipticCurvePrivateKey,
                      cert_pem: bytes | None = None, *, signature: bytes | None = None) -> bytes:
    digest = hashlib.sha256(artifact).digest()
    sig = signature if signature is not None else sign_digest(key, "sha256", digest)
    pem = cert_pem or public_pem(key)
    if signature is not None:  # possibly bad: build the body without checking it
        from tlog_client.keys import parse_key_material
        from tlog_client.rekor import canonical_json
        return canonical_json({
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {"data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                     "signature": {"content": b64encode_std(sig), "publicKey": {
                         "content": b64encode_std(parse_key_material(pem).canonical_pem())}}}})
    return parse_proposed(build_proposed("sha256", digest, sig, pem)).canonical_body()


# -- a tiny CA ----------------------------------------------------------------------

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # as Fulcio: both forms
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str = "test root") -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog tests")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return CA(key, cert)


def leaf_builder(ca: CA, public_key, email: str, issuer: str,
                 lifetime: datetime.timedelta = datetime.timedelta(minutes=10)):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.cert.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + lifetime)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()),
                           critical=False)
            .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8(issuer)),
                           critical=False))


def make_leaf(ca: CA, key: ec.EllipticCurvePrivateKey, email: str = "builder@example.com",
              issuer: str = "https://issuer.example") -> bytes:
    cert = leaf_builder(ca, key.public_key(), email, issuer).sign(ca.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)
