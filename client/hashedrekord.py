"""hashedrekord 0.0.1, the Rekor v1 entry for a signed artifact digest (SPEC §5).

Proposed entry (what a client POSTs)::

    {"apiVersion": "0.0.1", "kind": "hashedrekord",
     "spec": {"data": {"hash": {"algorithm": "sha256|sha384|sha512",
                                "value": "<lowercase hex digest>"}},
              "signature": {"content": "<base64 signature over the digest>",
                            "publicKey": {"content": "<base64 of PEM>"}}}}

The schema is closed: unknown fields (``spec.data.content``, any ``url``),
nulls and wrong types are FormatErrors naming the JSON path. The signature is
verified over the digest (prehashed) before anything else may happen; Ed25519
keys are refused, as Rekor does, since Ed25519 cannot sign a bare digest.

The canonical body (the leaf) is RFC 8785 JSON of the same shape with the
signature re-encoded and the key as base64 of its canonical PEM
(:meth:`tlog_client.keys.KeyMaterial.canonical_pem`), which is what Rekor's
``Canonicalize`` stores, so Rekor's own bodies re-canonicalise byte for byte.
"""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from .encoding import b64decode_std, b64encode_std, hex_decode_lower
from .errors import FormatError, SignatureError
from .jsonstrict import MAX_SIZE, expect_object, expect_str, loads_strict
from .keys import (HASH_ALGORITHMS, MAX_CHAIN, KeyMaterial, hash_algorithm, parse_key_material,
                   verify_signature)
from .rekor import canonical_json, parse_entry_top

KIND = "hashedrekord"
API_VERSION = "0.0.1"

_CANONICAL = (b'{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":'
              b'{"algorithm":"%s","value":"%s"}},"signature":{"content":"%s",'
              b'"publicKey":{"content":"%s"}}}}')

_SIG = "spec.signature.content"
_KEY = "spec.signature.publicKey.content"
_ALG = "spec.data.hash.algorithm"
_VALUE = "spec.data.hash.value"


@dataclass(frozen=True)
class HashedRekord:
    """A verified hashedrekord 0.0.1 entry.

    ``algorithm`` is "sha256", "sha384" or "sha512"; ``digest`` the raw
    artifact digest; ``signature`` the raw signature over it; ``key`` the
    allow-listed key material that verified it."""

    algorithm: str
    digest: bytes
    signature: bytes
    key: KeyMaterial

    @property
    def artifact_hash(self) -> str:
        """The digest as ``"<algorithm>:<lowercase hex>"``."""
        return f"{self.algorithm}:{self.digest.hex()}"

    def canonical_obj(self) -> dict[str, Any]:
        """The canonical body as a JSON object (before RFC 8785 encoding)."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {
                "data": {"hash": {"algorithm": self.algorithm, "value": self.digest.hex()}},
                "signature": {
                    "content": b64encode_std(self.signature),
                    "publicKey": {"content": b64encode_std(self.key.canonical_pem())},
                },
            },
        }

    def canonical_body(self) -> bytes:
        """The leaf: RFC 8785 canonical JSON of :meth:`canonical_obj` (SPEC §3.4).

        Written from a template (the write path builds one per submission):
        the keys are fixed and in RFC 8785 order, and every value is an
        allow-listed name, lowercase hex or standard base64, none of which
        JSON escapes; tests check it equals ``canonical_json(canonical_obj())``."""
        if self.algorithm not in HASH_ALGORITHMS:  # not from parse_proposed
            return canonical_json(self.canonical_obj())
        return _CANONICAL % (self.algorithm.encode("ascii"), self.digest.hex().encode("ascii"),
                             b64encode(self.signature), b64encode(self.key.canonical_pem()))

    def index_keys(self) -> list[str]:
        """Search-index keys, without duplicates: the artifact hash
        ("sha256:<hex>"), the key hash (hex SHA-256 of the DER SPKI), then
        the certificate's SAN e-mails (lowercased), URIs and Fulcio otherNames."""
        return list(dict.fromkeys([self.artifact_hash, *self.key.index_keys()]))


@dataclass(frozen=True, slots=True)
class UnverifiedHashedRekord:
    """A proposed hashedrekord entry parsed strictly, its signature over the
    digest not checked yet: :meth:`verify` is the only way from here to a
    :class:`HashedRekord`. From :func:`parse_unverified`."""

    algorithm: str
    digest: bytes
    signature: bytes
    key: KeyMaterial

    def verify(self) -> HashedRekord:
        """The entry, once its signature verifies over the digest; raises
        SignatureError naming ``spec.signature.content`` otherwise."""
        try:
            verify_signature(self.key, self.signature, self.digest, self.algorithm,
                             prehashed=True)
        except SignatureError as exc:
            raise SignatureError(f"{_SIG}: {exc}") from None
        return HashedRekord(algorithm=self.algorithm, digest=self.digest,
                            signature=self.signature, key=self.key)


def parse_proposed(obj: object, *, max_chain: int = MAX_CHAIN) -> HashedRekord:
    """Validate a proposed hashedrekord 0.0.1 entry (parsed JSON) and verify
    its signature over the digest.

    Raises FormatError naming the JSON path (unknown field, missing or null
    field, wrong type, unsupported kind/apiVersion or algorithm, digest not
    lowercase hex of the algorithm's length, non-canonical base64, key not PEM
    or not on the allow-list, Ed25519 key), or SignatureError if the signature
    (or a certificate chain link) does not verify."""
    return parse_unverified(obj, max_chain=max_chain).verify()


def parse_unverified(obj: object, *, max_chain: int = MAX_CHAIN) -> UnverifiedHashedRekord:
    """:func:`parse_proposed` up to, not including, the signature check over
    the digest (a certificate chain is still checked here), for a caller that
    checks many entries' signatures back to back (the server's turn batches:
    ECDSA's tables stay in the CPU caches). Raises the same FormatErrors."""
    top = parse_entry_top(obj, KIND, API_VERSION)
    spec = expect_object(top["spec"], "spec", required=("data", "signature"))
    algorithm, digest = _parse_data(spec["data"])
    signature, key = _parse_signature(spec["signature"], max_chain)
    return UnverifiedHashedRekord(algorithm, digest, signature, key)


def _parse_data(value: object) -> tuple[str, bytes]:
    if isinstance(value, dict) and "content" in value:
        raise FormatError("spec.data.content", "hashedrekord carries only the digest: "
                                               "send spec.data.hash, not the artifact")
    data = expect_object(value, "spec.data", required=("hash",))
    digest_obj = expect_object(data["hash"], "spec.data.hash", required=("algorithm", "value"))
    algorithm = expect_str(digest_obj["algorithm"], _ALG)
    size = hash_algorithm(algorithm, _ALG).digest_size
    digest = hex_decode_lower(expect_str(digest_obj["value"], _VALUE), _VALUE, length=size)
    return algorithm, digest


def _parse_signature(value: object, max_chain: int) -> tuple[bytes, KeyMaterial]:
    sig_obj = expect_object(value, "spec.signature", required=("content", "publicKey"))
    signature = b64decode_std(expect_str(sig_obj["content"], _SIG), _SIG)
    key_obj = expect_object(sig_obj["publicKey"], "spec.signature.publicKey",
                            required=("content",))
    pem = b64decode_std(expect_str(key_obj["content"], _KEY), _KEY)
    key = parse_key_material(pem, _KEY, max_chain=max_chain)
    if isinstance(key.public_key, ed25519.Ed25519PublicKey):
        raise FormatError(_KEY, "Ed25519 keys are not supported for hashedrekord (Ed25519 "
                                "cannot sign a bare digest); use ECDSA or RSA, or a dsse entry")
    return signature, key


def parse_canonical(body: bytes, *, max_size: int = MAX_SIZE) -> HashedRekord:
    """Parse and verify a canonical body (a leaf returned by a log).

    The body must be strict JSON, a valid entry with a verifying signature,
    and exactly its own canonical form (re-canonicalised and compared byte for
    byte); otherwise FormatError("body") or SignatureError."""
    entry = parse_proposed(loads_strict(body, max_size=max_size))
    if entry.canonical_body() != body:
        raise FormatError("body", "not the canonical form of the hashedrekord entry")
    return entry


def build_proposed(digest_alg: str, digest: bytes, signature: bytes,
                   public_key_pem: bytes) -> dict[str, Any]:
    """Build a proposed hashedrekord 0.0.1 entry for submission.

    ``digest`` is the raw artifact digest made with ``digest_alg`` ("sha256",
    "sha384" or "sha512"), ``signature`` the raw signature over it and
    ``public_key_pem`` the PEM key or certificate chain. The result is checked
    with :func:`parse_proposed` (so a bad signature fails here, not at the
    log) and returned as a JSON-ready dict."""
    hash_algorithm(digest_alg, _ALG)
    if not isinstance(digest, bytes) or not isinstance(signature, bytes) \
            or not isinstance(public_key_pem, bytes):
        raise FormatError("spec", "digest, signature and public key must be bytes")
    proposed = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {
            "data": {"hash": {"algorithm": digest_alg, "value": digest.hex()}},
            "signature": {"content": b64encode_std(signature),
                          "publicKey": {"content": b64encode_std(public_key_pem)}},
        },
    }
    parse_proposed(proposed)
    return proposed
