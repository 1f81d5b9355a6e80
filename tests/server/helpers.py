"""Test tooling for tests that talk to a real ``tlog serve`` process.

- Signers: real keys (ECDSA P-256/P-384/P-521, RSA PKCS#1 v1.5 and PSS,
  X.509 certificates with SAN e-mails and URIs) that sign artifact digests
  for hashedrekord entries built with ``tlog_client.hashedrekord``.
- HTTP: a raw ``http.client`` request that never raises on a status (so a
  test sees exactly what the server sent) and an aiohttp burst for
  concurrency.
- :class:`PinnedLog`: the log's key read from the data directory (the pinned
  key an operator would distribute), its origin and treeID; every response is
  verified with tlog_client (entry UUID, SET, inclusion proof, checkpoint
  signature, consistency proofs).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import http.client
import itertools
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from tlog_client.checkpoint import Checkpoint, open_checkpoint
from tlog_client.encoding import b64decode_std
from tlog_client.hashedrekord import build_proposed
from tlog_client.hashing import leaf_hash
from tlog_client.notekeys import log_verifiers
from tlog_client.rekor import (LogEntry, parse_log_entry, set_payload, verify_entry_uuid,
                               verify_set)
from tlog_client.verify import verify_consistency, verify_inclusion

HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_counter = itertools.count()


# -- signers -------------------------------------------------------------------------

@dataclass
class Signer:
    """A private key (and optional certificate) that signs artifact digests."""

    private_key: Any
    pem: bytes  # what goes into spec.signature.publicKey.content (key or cert chain)
    hash_name: str = "sha256"
    pss: bool = False
    label: str = ""

    def sign_digest(self, digest: bytes) -> bytes:
        alg = Prehashed(HASHES[self.hash_name]())
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return self.private_key.sign(digest, ec.ECDSA(alg))
        pad = (padding.PSS(mgf=padding.MGF1(HASHES[self.hash_name]()),
                           salt_length=padding.PSS.DIGEST_LENGTH)
               if self.pss else padding.PKCS1v15())
        return self.private_key.sign(digest, pad, alg)

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def entry(self, data: bytes | None = None) -> dict:
        """A proposed hashedrekord entry for ``data`` (fresh random data by default)."""
        data = unique_data() if data is None else data
        digest = self.digest(data)
        return build_proposed(self.hash_name, digest, self.sign_digest(digest), self.pem)

    @property
    def public_pem(self) -> bytes:
        return spki_pem(self.private_key.public_key())

    def key_hash(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()


def unique_data() -> bytes:
    return b"artifact %d %s" % (next(_counter), os.urandom(8).hex().encode())


def spki_pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def ecdsa_signer(curve: ec.EllipticCurve | None = None, hash_name: str = "sha256") -> Signer:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    return Signer(key, spki_pem(key.public_key()), hash_name, label=f"ecdsa-{key.curve.name}")


_RSA_CACHE: dict[int, rsa.RSAPrivateKey] = {}


def rsa_signer(bits: int = 2048, hash_name: str = "sha256", pss: bool = False) -> Signer:
    key = _RSA_CACHE.get(bits)
    if key is None:
        key = _RSA_CACHE[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return Signer(key, spki_pem(key.public_key()), hash_name, pss,
                  label=f"rsa{bits}-{'pss' if pss else 'pkcs1'}")


def make_certificate(key, emails=(), uris=(), issuer_key=None, issuer_name=None,
                     subject_cn: str = "tlog test", extra_sans=()) -> x509.Certificate:
    """A certificate for ``key`` with SAN e-mails/URIs, self-signed unless
    ``issuer_key`` is given."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name or subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now)
               .not_valid_after(now + datetime.timedelta(days=3650)))
    sans = [*(x509.RFC822Name(e) for e in emails),
            *(x509.UniformResourceIdentifier(u) for u in uris), *extra_sans]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def cert_signer(emails=(), uris=(), key=None, hash_name: str = "sha256",
                chain: bool = False) -> Signer:
    """A signer whose public key is sent as a certificate (or a leaf + CA chain)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    if chain:
        ca_key = ec.generate_private_key(ec.SECP384R1())
        ca = make_certificate(ca_key, subject_cn="tlog test CA")
        leaf = make_certificate(key, emails, uris, issuer_key=ca_key, issuer_name=ca.subject)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))
    else:
        pem = make_certificate(key, emails, uris).public_bytes(serialization.Encoding.PEM)
    return Signer(key, pem, hash_name, label="cert-chain" if chain else "cert")


# -- HTTP --------------------------------------------------------------------------

@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request(url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30) -> Resp:
    """One HTTP request with exactly these bytes; never raises on a status."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


JSON = {"Content-Type": "application/json"}


def post_json(url: str, path: str, obj: Any = None, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> Resp:
    body = raw if raw is not None else json.dumps(obj).encode()
    return request(url, "POST", path, body, {**JSON, **(headers or {})})


def get(url: str, path: str, headers: dict[str, str] | None = None) -> Resp:
    return request(url, "GET", path, None, headers)


async def post_many(url: str, path: str, bodies: list[Any], concurrency: int = 16,
                    timeout: float = 60) -> list[Resp]:
    """POST every JSON body concurrently (at most ``concurrency`` in flight)."""
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=conn,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def one(body):
            async with sem:
                async with session.post(url + path, json=body) as r:
                    data = await r.read()
                    return Resp(r.status, {k.lower(): v for k, v in r.headers.items()}, data)
        return await asyncio.gather(*(one(b) for b in bodies))


def error_message(resp: Resp, status: int | tuple[int, ...]) -> str:
    """Check ``resp`` is a Rekor error ``{"code", "message"}`` with ``status``;
    return the message."""
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status in statuses, (resp.status, resp.body[:500])
    assert resp.content_type.startswith("application/json"), resp.headers
    obj = resp.json()
    assert set(obj) == {"code", "message"}, obj
    assert obj["code"] == resp.status
    assert isinstance(obj["message"], str) and obj["message"]
    return obj["message"]


# -- the pinned log ----------------------------------------------------------------

@dataclass
class PinnedLog:
    """What a careful client pins: the log key (read from the data directory,
    not from the server), the origin and the treeID."""

    url: str
    public_key: Any
    origin: str
    tree_id: int
    seen: dict[int, Checkpoint] = field(default_factory=dict)

    @classmethod
    def of(cls, server) -> "PinnedLog":
        private = serialization.load_pem_private_key(
            (Path(server.data_dir) / "log-key.pem").read_bytes(), password=None)
        db = sqlite3.connect(f"file:{Path(server.data_dir) / 'tlog.db'}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
        return cls(server.url, private.public_key(), meta["origin"], int(meta["tree_id"]))

    @property
    def log_id(self) -> str:
        return hashlib.sha256(self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()

    def verifiers(self):
        return log_verifiers(self.public_key, self.origin)

    # -- checkpoints

    def open(self, note: bytes | str) -> Checkpoint:
        """Verify a signed checkpoint under the pinned key; remember it and
        check it is the only checkpoint ever seen at its size (I6)."""
        if isinstance(note, str):
            note = note.encode()
        cp, opened = open_checkpoint(note, self.verifiers(), self.origin)
        # Every known key signs: both Ed25519 lines (C2SP and SPKI key IDs).
        assert len(opened.verified) == len(self.verifiers()), opened
        previous = self.seen.setdefault(cp.size, cp)
        assert previous == cp, f"two checkpoints at size {cp.size}"
        return cp

    def checkpoint(self) -> Checkpoint:
        r = get(self.url, "/checkpoint")
        assert r.status == 200, r
        return self.open(r.body)

    def prove_consistent(self, old: Checkpoint, new: Checkpoint) -> None:
        """Fetch and verify a consistency proof from ``old`` to ``new``."""
        assert old.size <= new.size
        if old.size == 0:
            return
        r = get(self.url, f"/api/v1/log/proof?firstSize={old.size}&lastSize={new.size}")
        assert r.status == 200, (r.status, r.body)
        obj = r.json()
        assert set(obj) == {"rootHash", "hashes"}
        assert obj["rootHash"] == new.root_hash.hex()
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash,
                           [bytes.fromhex(h) for h in obj["hashes"]])

    def all_seen_consistent_with(self, head: Checkpoint) -> None:
        for cp in sorted(self.seen.values(), key=lambda c: c.size):
            if cp.size <= head.size:
                self.prove_consistent(cp, head)

    # -- entries

    def verify_entry(self, obj: Any, body: bytes | None = None,
                     index: int | None = None) -> LogEntry:
        """Verify one LogEntry response completely: shape, UUID = leaf hash
        of the body, EntryID treeID, logID, SET, inclusion proof against the
        signed checkpoint it carries."""
        assert isinstance(obj, dict) and len(obj) == 1
        (key, inner), = obj.items()
        assert set(inner) == {"body", "integratedTime", "logID", "logIndex", "verification"}, inner
        assert set(inner["verification"]) == {"inclusionProof", "signedEntryTimestamp"}
        assert set(inner["verification"]["inclusionProof"]) == {
            "logIndex", "rootHash", "treeSize", "hashes", "checkpoint"}
        entry = parse_log_entry(obj)
        verify_entry_uuid(entry)
        assert len(key) == 80 and entry.ref.tree_id == self.tree_id, key
        assert entry.log_id == self.log_id
        if body is not None:
            assert entry.body == body
        if index is not None:
            assert entry.log_index == index
        verify_set(self.public_key, entry.set_signature,
                   set_payload(inner["body"], entry.integrated_time, entry.log_id,
                               entry.log_index))
        proof = entry.inclusion_proof
        assert proof.log_index == entry.log_index
        cp = self.open(proof.checkpoint)
        assert (cp.size, cp.root_hash) == (proof.tree_size, proof.root_hash)
        verify_inclusion(entry.log_index, proof.tree_size, leaf_hash(entry.body),
                         proof.hashes, proof.root_hash)
        return entry

    def get_entry(self, index: int) -> LogEntry:
        r = get(self.url, f"/api/v1/log/entries?logIndex={index}")
        assert r.status == 200, (r.status, r.body)
        return self.verify_entry(r.json(), index=index)

    def submit(self, proposed: dict) -> tuple[Resp, LogEntry | None]:
        r = post_json(self.url, "/api/v1/log/entries", proposed)
        if r.status != 201:
            return r, None
        return r, self.verify_created(r)

    def verify_created(self, r: Resp) -> LogEntry:
        """Verify a 201 response: the entry, Location and ETag."""
        assert r.status == 201, (r.status, r.body)
        entry = self.verify_entry(r.json())
        assert r.header("ETag") == f'"{entry.uuid}"' or r.header("ETag") == f'"{entry.ref.key}"'
        location = r.header("Location")
        assert location and location.startswith("/api/v1/log/entries/")
        assert location.rsplit("/", 1)[1] in (entry.uuid, entry.ref.key)
        return entry


def body_of(entry: LogEntry) -> bytes:
    return entry.body


def b64(data: bytes) -> str:
    import base64
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return b64decode_std(text, "test")
