"""Rekor v1 identifiers, the Signed Entry Timestamp and the LogEntry shape
(SPEC §3.4, §6).

- canonical body: RFC 8785 canonical JSON of ``{"apiVersion","kind","spec"}``;
- UUID = hex(RFC 6962 leaf hash of the canonical body); EntryID = ``%016x``
  treeID followed by the UUID (80 hex);
- logID = hex(SHA-256(DER SPKI of the log key));
- SET = the log key's signature over RFC 8785 canonical JSON of exactly
  ``{"body", "integratedTime", "logID", "logIndex"}`` (Ed25519: raw signature;
  ECDSA: DER over SHA-256);
- LogEntry = ``{<EntryID or UUID>: {body, integratedTime, logID, logIndex,
  verification: {inclusionProof: {logIndex, rootHash, treeSize, hashes,
  checkpoint}, signedEntryTimestamp}, attestation: {data}}}`` as in Rekor's
  openapi.yaml.

:func:`parse_log_entry` reads untrusted server responses: it is strict (types,
encodings, unknown fields) and raises FormatError naming the JSON path.
Verification raises SignatureError / VerificationError and never returns a bool.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .encoding import MAX_INT64, b64decode_std, b64encode_std, hex_decode_lower
from .errors import FormatError, SignatureError, VerificationError
from .hashing import HASH_SIZE, leaf_hash
from .jsonstrict import expect_int, expect_list, expect_object, expect_str, index_path
from .keys import spki_der

LogPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
LogPrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

MAX_PROOF_HASHES = 64
"""An inclusion proof in a tree of at most 2^63 leaves has at most 63 hashes."""

_ENTRY_REF = re.compile(r"(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{80})\Z")


# -- identifiers -------------------------------------------------------------

def canonical_json(obj: object) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` (via the ``rfc8785`` package).

    Raises FormatError("body") for values it cannot canonicalise (integers
    beyond ±2^53, non-finite floats, non-string keys, lone surrogates).

    Fast path (the write path canonicalises every entry and every SET): a
    value made only of objects with ASCII keys, arrays, strings, booleans,
    null and integers within ±2^53 is written by the stdlib encoder, whose
    output is then exactly RFC 8785's: keys sorted (ASCII, so code-point
    order is UTF-16 order), no whitespace, the same string escapes (``"``,
    ``\\``, ``\\b\\f\\n\\r\\t``, other controls as lowercase ``\\u00xx``),
    other characters literal. Anything else (floats, big integers, non-ASCII
    keys, lone surrogates) goes to ``rfc8785``."""
    if _plain(obj, 0):
        try:
            return _FAST(obj).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 reports it
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise FormatError("body", f"cannot canonicalise: {exc}") from None


_FAST = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                         allow_nan=False, check_circular=False).encode
_MAX_SAFE = 2**53 - 1  # RFC 8785 §3.2.2.3: beyond this an integer is not exact


def _plain(value: object, depth: int) -> bool:
    """True if ``value`` is within the fast path of :func:`canonical_json`."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if depth > 64:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item, depth + 1):
                return False
        return True
    if kind is list:
        return all(_plain(item, depth + 1) for item in value)
    return False


def parse_entry_top(obj: object, kind: str, api_version: str, *,
                    hint: str = "") -> dict[str, Any]:
    """The top of an entry body of type ``kind`` ``api_version``: an object of
    exactly apiVersion, kind and spec, with that kind and version. Raises
    FormatError naming the field; ``hint`` follows the supported version in
    the apiVersion message."""
    top = expect_object(obj, "", required=("apiVersion", "kind", "spec"))
    got = expect_str(top["kind"], "kind")
    if got != kind:
        raise FormatError("kind", f"expected {kind!r}, got {got!r:.40}")
    version = expect_str(top["apiVersion"], "apiVersion")
    if version != api_version:
        raise FormatError("apiVersion", f"unsupported {kind} version {version!r:.40} "
                                        f"(supported: {api_version}{hint})")
    return top


def parse_sha256_hash(value: object, path: str) -> bytes:
    """A ``{"algorithm": "sha256", "value": <64 lowercase hex>}`` object at
    ``path``: the 32-byte digest, or FormatError naming the field."""
    obj = expect_object(value, path, required=("algorithm", "value"))
    if expect_str(obj["algorithm"], f"{path}.algorithm") != "sha256":
        raise FormatError(f"{path}.algorithm", "must be 'sha256'")
    return hex_decode_lower(expect_str(obj["value"], f"{path}.value"), f"{path}.value",
                            length=32)


def uuid_of(leaf: bytes) -> str:
    """The entry UUID: lowercase hex of the RFC 6962 leaf hash of ``leaf``."""
    return leaf_hash(leaf).hex()


def _check_tree_id(tree_id: object, field: str) -> int:
    return expect_int(tree_id, field, minimum=1, maximum=MAX_INT64)


def entry_id(tree_id: int, uuid: str) -> str:
    """The 80-hex EntryID: ``%016x`` of ``tree_id`` (1 <= tree_id < 2^63)
    followed by the 64-lowercase-hex ``uuid``."""
    prefix = entry_id_prefix(tree_id)
    hex_decode_lower(uuid, "uuid", length=HASH_SIZE)
    return prefix + uuid


def entry_id_prefix(tree_id: int) -> str:
    """The first 16 hex digits of every EntryID of the log ``tree_id``: a
    log that makes its UUIDs with ``bytes.hex()`` appends them to this."""
    _check_tree_id(tree_id, "treeID")
    return f"{tree_id:016x}"


@dataclass(frozen=True)
class EntryRef:
    """A parsed entry reference: the UUID and, for an EntryID, the treeID."""

    uuid: str
    tree_id: int | None = None

    @property
    def key(self) -> str:
        """The reference as written in a LogEntry: EntryID if a treeID is known."""
        return entry_id(self.tree_id, self.uuid) if self.tree_id is not None else self.uuid


def parse_entry_ref(text: str, field: str = "entryUUID") -> EntryRef:
    """Parse a 64-hex UUID or an 80-hex EntryID, either case (Rekor's pattern
    ``^([0-9a-fA-F]{64}|[0-9a-fA-F]{80})$``), normalised to lowercase. The
    treeID of an EntryID must be in 1..2^63-1."""
    if not isinstance(text, str) or not _ENTRY_REF.match(text):
        raise FormatError(field, "must be a 64-hex UUID or an 80-hex EntryID")
    text = text.lower()
    if len(text) == 64:
        return EntryRef(uuid=text)
    tree_id = int(text[:16], 16)
    if not 1 <= tree_id <= MAX_INT64:
        raise FormatError(field, f"treeID {text[:16]} is not a positive int63")
    return EntryRef(uuid=text[16:], tree_id=tree_id)


def log_id(public_key: LogPublicKey) -> str:
    """The logID: lowercase hex SHA-256 of the DER SPKI of the log key."""
    return hashlib.sha256(spki_der(public_key)).hexdigest()


# -- Signed Entry Timestamp --------------------------------------------------

def set_payload(body_b64: str, integrated_time: int, log_id: str, log_index: int) -> bytes:
    """The bytes a SET signs: RFC 8785 JSON of exactly ``body`` (canonical
    standard base64 of the canonical body), ``integratedTime`` (seconds),
    ``logID`` (64 lowercase hex) and ``logIndex``. Raises FormatError."""
    b64decode_std(expect_str(body_b64, "body"), "body")
    expect_int(integrated_time, "integratedTime")
    hex_decode_lower(expect_str(log_id, "logID"), "logID", length=HASH_SIZE)
    expect_int(log_index, "logIndex")
    return set_payload_of_valid(body_b64, integrated_time, log_id, log_index)


def set_payload_of_valid(body_b64: str, integrated_time: int, log_id: str,
                         log_index: int) -> bytes:
    """:func:`set_payload` without the checks, for a log signing its own
    entries. Preconditions: ``body_b64`` is ``b64encode_std`` of the body,
    ``log_id`` 64 lowercase hex, both integers non-negative (a log's own
    values; any caller with values from outside uses :func:`set_payload`)."""
    if integrated_time <= _MAX_SAFE and log_index <= _MAX_SAFE:
        # RFC 8785 of the object below, written directly: keys in order,
        # base64 and hex need no escaping (tests compare the two).
        return (f'{{"body":"{body_b64}","integratedTime":{integrated_time},'
                f'"logID":"{log_id}","logIndex":{log_index}}}').encode("ascii")
    return canonical_json({"body": body_b64, "integratedTime": integrated_time,
                           "logID": log_id, "logIndex": log_index})


def sign_set(private_key: LogPrivateKey, payload: bytes) -> bytes:
    """Sign a SET payload with the log key: Ed25519 raw signature, or ECDSA
    DER signature over SHA-256 of the payload."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(payload)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    raise FormatError("log key", f"{type(private_key).__name__} cannot sign a SET "
                                 "(Ed25519 or ECDSA only)")


def verify_set(public_key: LogPublicKey, signature: bytes, payload: bytes) -> None:
    """Verify a SET signature over ``payload`` or raise SignatureError."""
    if not isinstance(signature, bytes) or not signature:
        raise SignatureError("signedEntryTimestamp is missing")
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        else:
            raise SignatureError(f"{type(public_key).__name__} is not a log key type "
                                 "(Ed25519 or ECDSA only)")
    except (InvalidSignature, ValueError):
        raise SignatureError("signedEntryTimestamp does not verify under the log key") from None


# -- LogEntry ----------------------------------------------------------------

@dataclass(frozen=True)
class InclusionProof:
    """``verification.inclusionProof`` of a LogEntry (hashes decoded)."""

    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """The Rekor v1 JSON object (hex hashes)."""
        return {"logIndex": self.log_index, "rootHash": self.root_hash.hex(),
                "treeSize": self.tree_size, "hashes": [h.hex() for h in self.hashes],
                "checkpoint": self.checkpoint}


@dataclass(frozen=True)
class LogEntry:
    """One Rekor v1 LogEntry. ``body`` is the canonical body (decoded);
    ``set_signature`` the decoded signedEntryTimestamp; ``attestation`` the
    decoded attestation data, if any."""

    ref: EntryRef
    body: bytes
    integrated_time: int
    log_id: str
    log_index: int
    inclusion_proof: InclusionProof | None = None
    set_signature: bytes | None = None
    attestation: bytes | None = None

    @property
    def uuid(self) -> str:
        return self.ref.uuid

    @property
    def body_b64(self) -> str:
        return b64encode_std(self.body)

    def set_payload(self) -> bytes:
        """The payload the entry's SET signs."""
        return set_payload(self.body_b64, self.integrated_time, self.log_id, self.log_index)

    def to_json(self) -> dict[str, Any]:
        """The response object ``{<EntryID or UUID>: {...}}``."""
        inner: dict[str, Any] = {"body": self.body_b64, "integratedTime": self.integrated_time,
                                 "logID": self.log_id, "logIndex": self.log_index}
        verification: dict[str, Any] = {}
        if self.inclusion_proof is not None:
            verification["inclusionProof"] = self.inclusion_proof.to_json()
        if self.set_signature is not None:
            verification["signedEntryTimestamp"] = b64encode_std(self.set_signature)
        if verification:
            inner["verification"] = verification
        if self.attestation is not None:
            inner["attestation"] = {"data": b64encode_std(self.attestation)}
        return {self.ref.key: inner}


def parse_log_entry(obj: object) -> LogEntry:
    """Parse one LogEntry response object (exactly one member) strictly.

    Required: body (canonical standard base64), integratedTime, logID (64
    lowercase hex), logIndex. Optional: verification {inclusionProof,
    signedEntryTimestamp}, attestation {data}. Unknown fields, nulls, wrong
    types and non-canonical encodings raise FormatError naming the JSON path.
    This checks the shape only; see :func:`verify_entry_uuid` and
    :func:`verify_entry_set` for the bindings."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise FormatError("body", "a LogEntry is an object with exactly one member")
    ((key, value),) = obj.items()
    ref = parse_entry_ref(key, "entry key")
    path = "entry"
    inner = expect_object(value, path, required=("body", "integratedTime", "logID", "logIndex"),
                          optional=("verification", "attestation"))
    proof, sig = _parse_verification(inner.get("verification"), f"{path}.verification")
    return LogEntry(
        ref=ref,
        body=b64decode_std(expect_str(inner["body"], f"{path}.body"), f"{path}.body"),
        integrated_time=expect_int(inner["integratedTime"], f"{path}.integratedTime"),
        log_id=_hex_str(inner["logID"], f"{path}.logID"),
        log_index=expect_int(inner["logIndex"], f"{path}.logIndex"),
        inclusion_proof=proof, set_signature=sig,
        attestation=_parse_attestation(inner.get("attestation"), f"{path}.attestation"))


def _hex_str(value: object, path: str) -> str:
    text = expect_str(value, path)
    hex_decode_lower(text, path, length=HASH_SIZE)
    return text


def _parse_verification(value: object, path: str) -> tuple[InclusionProof | None, bytes | None]:
    if value is None:
        return None, None
    obj = expect_object(value, path, optional=("inclusionProof", "signedEntryTimestamp"))
    proof = None
    if "inclusionProof" in obj:
        proof = parse_inclusion_proof(obj["inclusionProof"], f"{path}.inclusionProof")
    sig = None
    if "signedEntryTimestamp" in obj:
        sig_path = f"{path}.signedEntryTimestamp"
        sig = b64decode_std(expect_str(obj["signedEntryTimestamp"], sig_path), sig_path)
    return proof, sig


def parse_inclusion_proof(value: object, path: str = "inclusionProof") -> InclusionProof:
    """Parse a Rekor v1 InclusionProof object: logIndex (>= 0), rootHash (64
    lowercase hex), treeSize (>= 1), hashes (64 lowercase hex each, at most
    64), checkpoint (the signed note text, not parsed here)."""
    obj = expect_object(value, path, required=("logIndex", "rootHash", "treeSize", "hashes",
                                               "checkpoint"))
    hashes_path = f"{path}.hashes"
    items = expect_list(obj["hashes"], hashes_path, max_items=MAX_PROOF_HASHES)
    return InclusionProof(
        log_index=expect_int(obj["logIndex"], f"{path}.logIndex"),
        root_hash=bytes.fromhex(_hex_str(obj["rootHash"], f"{path}.rootHash")),
        tree_size=expect_int(obj["treeSize"], f"{path}.treeSize", minimum=1),
        hashes=tuple(bytes.fromhex(_hex_str(h, index_path(hashes_path, i)))
                     for i, h in enumerate(items)),
        checkpoint=expect_str(obj["checkpoint"], f"{path}.checkpoint"))


def _parse_attestation(value: object, path: str) -> bytes | None:
    if value is None:
        return None
    obj = expect_object(value, path, optional=("data",))
    if "data" not in obj:
        return None
    data_path = f"{path}.data"
    return b64decode_std(expect_str(obj["data"], data_path), data_path)


# -- entry bindings ----------------------------------------------------------

def verify_entry_uuid(entry: LogEntry) -> None:
    """Check that the entry's UUID is the leaf hash of its body, else raise
    VerificationError."""
    computed = uuid_of(entry.body)
    if computed != entry.uuid:
        raise VerificationError(f"entry UUID {entry.uuid} is not the leaf hash of its body "
                                f"({computed})")


def verify_entry_set(entry: LogEntry, log_public_key: LogPublicKey) -> None:
    """Check the entry's SET under the pinned log key: the entry's logID must
    be that key's ID and the signature must verify over the SET payload.
    Raises SignatureError."""
    expected = log_id(log_public_key)
    if entry.log_id != expected:
        raise SignatureError(f"entry logID {entry.log_id} is not the pinned log key's "
                             f"ID {expected}")
    if entry.set_signature is None:
        raise SignatureError("entry has no signedEntryTimestamp")
    verify_set(log_public_key, entry.set_signature, entry.set_payload())
