"""dsse 0.0.1, the Rekor v1 entry for a DSSE envelope (SPEC §5), and DSSE
envelopes themselves (github.com/secure-systems-lab/dsse, protocol v1).

Proposed entry (what a client POSTs)::

    {"apiVersion": "0.0.1", "kind": "dsse",
     "spec": {"proposedContent": {"envelope": "<the DSSE envelope JSON, as a string>",
                                  "verifiers": ["<base64 of PEM key or certificate>", ...]}}}

sigstore-python (``rekor_types`` dumped with ``by_alias=True``) also sends the
server-computed members as explicit nulls: ``"signatures": null,
"envelopeHash": null, "payloadHash": null`` beside ``proposedContent``. They
are accepted when null and refused with any other value (they are computed by
the log; Rekor refuses them too). Everything else is a closed schema: unknown
members, other nulls, wrong types are FormatErrors naming the JSON path.

The envelope is ``{"payloadType", "payload" (standard base64), "signatures":
[{"sig" (standard base64), "keyid" (optional, may be "" or null)}]}``, parsed
as strict JSON with a closed schema. Base64 must be canonical standard base64
(DSSE also allows URL-safe; sigstore-python and Go's DSSE libraries write
standard). An empty payload, no signature or a repeated signature is refused.

Verification (Rekor's rule, pkg/types/dsse/v0.0.1/entry.go ``verifyEnvelope``):
EVERY signature must verify over ``PAE(payloadType, payload)`` =
``"DSSEv1" SP len(type) SP type SP len(body) SP body`` under at least one of
the verifiers; one signature that no verifier accepts rejects the entry. Keys
follow the allow-list of :mod:`tlog_client.keys`; Ed25519 is allowed (DSSE
signs the raw PAE message). ECDSA and RSA hash the PAE with SHA-256 (what
Rekor verifies with); ECDSA on P-384/P-521 is also accepted with
SHA-384/SHA-512, and ECDSA signatures are accepted DER or IEEE P1363 (r||s),
as Rekor does. Each signature is recorded with the first verifier (in the
order given) that verifies it. Verifiers that verify nothing must still parse
and be allowed, but are not recorded. An entry whose signatures × verifiers
exceed a cap (:data:`MAX_TRIALS` by default) is refused before anything is
verified.

Canonical body (the leaf), as Rekor's ``V001Entry.Canonicalize``::

    {"apiVersion": "0.0.1", "kind": "dsse",
     "spec": {"envelopeHash": {"algorithm": "sha256", "value": "<hex>"},
              "payloadHash": {"algorithm": "sha256", "value": "<hex>"},
              "signatures": [{"signature": "<envelope sig, base64>",
                              "verifier": "<base64 of canonical PEM>"}, ...]}}

- ``envelopeHash`` is SHA-256 of the envelope string exactly as submitted
  (its UTF-8 bytes): Rekor hashes ``[]byte(*ProposedContent.Envelope)`` and
  does NOT re-serialise or canonicalise the envelope. Those exact bytes are
  the entry's attestation, so ``sha256(attestation) == envelopeHash``.
- ``payloadHash`` is SHA-256 of the decoded payload.
- ``signatures`` are sorted by the base64 signature string (Go
  ``sort.Strings``: bytewise); the verifier is the canonical PEM
  (:meth:`~tlog_client.keys.KeyMaterial.canonical_pem`: re-encoded SPKI, or
  the certificate chain), which is what Rekor's ``CanonicalValue`` gives and
  what sigstore-python compares (base64 of the leaf certificate's PEM).

For ``application/vnd.in-toto+json`` payloads the in-toto Statement is parsed
(:mod:`tlog_client.intoto`); a malformed statement rejects the entry.

Pure: no I/O. Verification raises SignatureError; parsing raises FormatError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from . import intoto
from .encoding import b64decode_std, b64encode_std
from .errors import FormatError, SignatureError
from .jsonstrict import (MAX_SIZE, expect_list, expect_object, expect_str, index_path,
                         join_path, loads_strict)
from .keys import MAX_CHAIN, KeyMaterial, distinct_keys, parse_key_material, verify_signature
from .rekor import canonical_json, parse_entry_top, parse_sha256_hash

KIND = "dsse"
API_VERSION = "0.0.1"

MAX_ENVELOPE = 4 * 1024 * 1024
"""Default cap on the envelope (the attestation) in bytes."""

MAX_SIGNATURES = 16
"""Most signatures in one envelope."""

MAX_VERIFIERS = 16
"""Most verifiers in one proposed entry."""

MAX_TRIALS = 16
"""Default cap on signature × verifier pairs tried for one proposed entry
(every envelope signature may be tried under every verifier): up to
MAX_SIGNATURES × MAX_VERIFIERS = 256 checks otherwise, and a P-521 check
costs about 0.5 ms here (SPEC §10 U5). A server sets its own
(``--max-verify-trials``)."""

SERVER_COMPUTED = ("signatures", "envelopeHash", "payloadHash")
"""spec members the log computes; a proposal may carry them only as null."""

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey]

_PC = "spec.proposedContent"
_ENV = "spec.proposedContent.envelope"
_CURVE_HASH = {"secp384r1": "sha384", "secp521r1": "sha512"}


class EnvelopeTooLargeError(FormatError):
    """The envelope (attestation) exceeds its size cap (a server answers 413)."""


def check_trials(keys: int, signatures: int, max_trials: int, field: str) -> None:
    """FormatError naming ``field`` if trying each of ``signatures`` under
    each of ``keys`` is more than ``max_trials`` signature checks."""
    if keys * signatures > max_trials:
        raise FormatError(field, f"{keys} keys for {signatures} signatures make "
                                 f"{keys * signatures} signature checks to try, over the limit "
                                 f"of {max_trials}: send only the keys that signed")


def check_envelope_size(size: int, limit: int, field: str) -> None:
    """EnvelopeTooLargeError naming ``field`` if an envelope of ``size``
    bytes is above ``limit``."""
    if size > limit:
        raise EnvelopeTooLargeError(field, f"envelope is {size} bytes; the limit is {limit}")


# -- DSSE envelopes ----------------------------------------------------------------

def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding:
    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths as ASCII
    decimal byte counts, the type as UTF-8."""
    if not isinstance(payload_type, str) or not isinstance(payload, (bytes, bytearray)):
        raise FormatError("payloadType", "PAE takes a str payload type and bytes payload")
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), bytes(payload))


@dataclass(frozen=True)
class EnvelopeSignature:
    """One envelope signature: raw ``sig`` bytes and the optional ``keyid``
    (None when absent, null or empty)."""

    sig: bytes
    keyid: str | None = None

    @property
    def sig_b64(self) -> str:
        return b64encode_std(self.sig)


@dataclass(frozen=True)
class Envelope:
    """A parsed DSSE envelope: ``payload`` is the decoded payload bytes."""

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_json_obj(self) -> dict[str, Any]:
        sigs = []
        for s in self.signatures:
            item = {"sig": s.sig_b64}
            if s.keyid:
                item["keyid"] = s.keyid
            sigs.append(item)
        return {"payload": b64encode_std(self.payload), "payloadType": self.payload_type,
                "signatures": sigs}

    def to_json(self) -> bytes:
        """The envelope as RFC 8785 canonical JSON (a deterministic encoding;
        note that a dsse entry hashes whatever bytes were submitted)."""
        return canonical_json(self.to_json_obj())


def parse_envelope(data: bytes, field: str = "envelope", *,
                   max_size: int = MAX_ENVELOPE) -> Envelope:
    """Parse a DSSE envelope from JSON bytes: strict JSON of at most
    ``max_size`` bytes (EnvelopeTooLargeError above), closed schema,
    canonical standard base64, 1 to MAX_SIGNATURES distinct signatures."""
    if not isinstance(data, (bytes, bytearray)):
        raise FormatError(field, f"envelope must be bytes, not {type(data).__name__}")
    check_envelope_size(len(data), max_size, field)
    try:
        obj = loads_strict(bytes(data), max_size=max_size)
    except FormatError as exc:
        where = field if exc.field == "body" else f"{field}.{exc.field}"
        raise FormatError(where, f"not a JSON DSSE envelope: {exc.reason}") from None
    return parse_envelope_obj(obj, field)


def parse_envelope_obj(obj: object, field: str = "envelope") -> Envelope:
    """Parse a decoded DSSE envelope (see :func:`parse_envelope`)."""
    env = expect_object(obj, field, required=("payload", "payloadType", "signatures"))
    payload_type = expect_str(env["payloadType"], join_path(field, "payloadType"))
    payload_path = join_path(field, "payload")
    payload = b64decode_std(expect_str(env["payload"], payload_path), payload_path)
    sigs_path = join_path(field, "signatures")
    items = expect_list(env["signatures"], sigs_path, max_items=MAX_SIGNATURES)
    if not items:
        raise FormatError(sigs_path, "an envelope needs at least one signature")
    signatures = []
    seen: set[bytes] = set()
    for i, item in enumerate(items):
        where = index_path(sigs_path, i)
        if isinstance(item, dict) and item.get("keyid", "") is None:
            item = {k: v for k, v in item.items() if k != "keyid"}  # null keyid = absent
        sig_obj = expect_object(item, where, required=("sig",), optional=("keyid",))
        sig = b64decode_std(expect_str(sig_obj["sig"], join_path(where, "sig")),
                            join_path(where, "sig"))
        keyid = sig_obj.get("keyid")
        if keyid is not None:
            keyid = expect_str(keyid, join_path(where, "keyid"), allow_empty=True) or None
        if sig in seen:
            raise FormatError(join_path(where, "sig"), "the same signature appears twice")
        seen.add(sig)
        signatures.append(EnvelopeSignature(sig, keyid))
    return Envelope(payload_type, payload, tuple(signatures))


def verify_pae_signature(key: KeyMaterial, signature: bytes, message: bytes) -> None:
    """Verify one DSSE signature over the PAE ``message`` or raise
    SignatureError: Ed25519 over the raw message; ECDSA (DER or IEEE P1363)
    with SHA-256, or the curve's own hash on P-384/P-521; RSA PKCS#1 v1.5 or
    PSS with SHA-256."""
    public_key = key.public_key
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        candidates = [signature]
        size = (public_key.curve.key_size + 7) // 8
        if len(signature) == 2 * size:  # IEEE P1363 r || s
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            candidates.append(encode_dss_signature(r, s))
        hash_names = ["sha256"]
        if public_key.curve.name in _CURVE_HASH:
            hash_names.append(_CURVE_HASH[public_key.curve.name])
        for candidate in candidates:
            for hash_name in hash_names:
                try:
                    verify_signature(key, candidate, message, hash_name, prehashed=False)
                    return
                except SignatureError:
                    continue
        raise SignatureError(f"ECDSA {public_key.curve.name} signature does not verify "
                             "over the DSSE PAE")
    verify_signature(key, signature, message, "sha256", prehashed=False)


def verify_envelope(envelope: Envelope, verifiers: Sequence[KeyMaterial],
                    field: str = "envelope") -> tuple[KeyMaterial, ...]:
    """Check that EVERY signature of ``envelope`` verifies over its PAE under
    one of ``verifiers``; return, per signature (in envelope order), the
    first verifier that does. Raises SignatureError naming the signature."""
    if not verifiers:
        raise SignatureError(f"{field}: no verifier given")
    message = envelope.pae()
    found = []
    for i, sig in enumerate(envelope.signatures):
        for key in verifiers:
            try:
                verify_pae_signature(key, sig.sig, message)
            except SignatureError:
                continue
            found.append(key)
            break
        else:
            raise SignatureError(f"{field}.signatures[{i}]: no verifier verifies this "
                                 "signature over the DSSE PAE (every signature must verify)")
    return tuple(found)


def verify_each(envelope: Envelope, keys: Sequence[KeyMaterial], field: str) -> None:
    """Check that signature ``i`` of ``envelope`` verifies over its PAE under
    ``keys[i]``; SignatureError naming ``{field}.signatures[i]`` if not."""
    message = envelope.pae()
    for i, (sig, key) in enumerate(zip(envelope.signatures, keys, strict=True)):
        try:
            verify_pae_signature(key, sig.sig, message)
        except SignatureError as exc:
            raise SignatureError(f"{field}.signatures[{i}]: {exc}") from None


def open_attestation(attestation: object, envelope_hash: bytes, hash_field: str,
                     payload_hash: bytes, max_envelope: int) -> tuple[bytes, Envelope]:
    """An attestation checked against the hashes a leaf binds: bytes whose
    SHA-256 is ``envelope_hash`` (the entry's ``hash_field``), a DSSE envelope
    of at most ``max_envelope`` bytes whose payload hashes to
    ``payload_hash``. Returns (the bytes, the envelope); raises FormatError or
    SignatureError."""
    if not isinstance(attestation, (bytes, bytearray)):
        raise FormatError("attestation", "must be bytes")
    attestation = bytes(attestation)
    if hashlib.sha256(attestation).digest() != envelope_hash:
        raise SignatureError("attestation: SHA-256 of the envelope differs from the "
                             f"entry's {hash_field}")
    envelope = parse_envelope(attestation, "attestation", max_size=max_envelope)
    if hashlib.sha256(envelope.payload).digest() != payload_hash:
        raise SignatureError("attestation: payload hash differs from the entry's payloadHash")
    return attestation, envelope


def statement_of(envelope: Envelope, field: str = "envelope.payload") -> intoto.Statement | None:
    """The in-toto Statement of an ``application/vnd.in-toto+json`` envelope
    (FormatError if malformed), or None for any other payload type."""
    if envelope.payload_type != intoto.PAYLOAD_TYPE:
        return None
    return intoto.parse_statement(envelope.payload, field,
                                  max_size=max(len(envelope.payload), 1))


# -- signing (clients) -------------------------------------------------------------

def sign_pae(private_key: PrivateKey, message: bytes) -> bytes:
    """Sign a PAE message: Ed25519 raw; ECDSA DER over SHA-256; RSA PKCS#1
    v1.5 over SHA-256 (what Rekor and sigstore verify)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(message, ec.ECDSA(hashes.SHA256()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    raise FormatError("private key", f"{type(private_key).__name__} cannot sign a DSSE "
                                     "envelope (ECDSA, RSA or Ed25519 only)")


def sign_envelope(payload_type: str, payload: bytes, private_keys: Sequence[PrivateKey],
                  keyids: Sequence[str | None] | None = None) -> bytes:
    """Build and sign a DSSE envelope: one signature per private key (with
    the matching ``keyids`` entry, if given). Returns the envelope as RFC
    8785 JSON bytes, ready for :func:`build_proposed`."""
    if not private_keys:
        raise FormatError("private_keys", "at least one key must sign")
    if not isinstance(payload_type, str) or not payload_type:
        raise FormatError("payloadType", "must be a non-empty string")
    if not isinstance(payload, (bytes, bytearray)) or not payload:
        raise FormatError("payload", "must be non-empty bytes")
    keyids = list(keyids) if keyids is not None else [None] * len(private_keys)
    if len(keyids) != len(private_keys):
        raise FormatError("keyids", "one keyid (or None) per private key")
    message = pae(payload_type, bytes(payload))
    sigs = tuple(EnvelopeSignature(sign_pae(k, message), kid)
                 for k, kid in zip(private_keys, keyids))
    return Envelope(payload_type, bytes(payload), sigs).to_json()


# -- the dsse 0.0.1 entry ---------------------------------------------------------------

@dataclass(frozen=True)
class DsseSignature:
    """A signature of the canonical body with the verifier that verified it."""

    signature: bytes
    verifier: KeyMaterial

    @property
    def signature_b64(self) -> str:
        return b64encode_std(self.signature)


@dataclass(frozen=True)
class DsseEntry:
    """A dsse 0.0.1 entry.

    From :func:`parse_proposed` or :func:`verify_attestation` it carries the
    verified ``envelope``, its exact bytes (the attestation) and the in-toto
    ``statement`` (None for other payload types); from :func:`parse_canonical`
    only what the leaf holds (``envelope`` None)."""

    envelope_hash: bytes
    payload_hash: bytes
    signatures: tuple[DsseSignature, ...]  # sorted by base64 signature
    envelope: Envelope | None = None
    envelope_bytes: bytes | None = None
    statement: intoto.Statement | None = None

    @property
    def verifiers(self) -> tuple[KeyMaterial, ...]:
        """The distinct verifiers recorded in the body (by key and PEM)."""
        return distinct_keys(s.verifier for s in self.signatures)

    def canonical_obj(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": self.envelope_hash.hex()},
                "payloadHash": {"algorithm": "sha256", "value": self.payload_hash.hex()},
                "signatures": [{"signature": s.signature_b64,
                                "verifier": b64encode_std(s.verifier.canonical_pem())}
                               for s in self.signatures],
            },
        }

    def canonical_body(self) -> bytes:
        """The leaf: RFC 8785 canonical JSON of :meth:`canonical_obj`."""
        return canonical_json(self.canonical_obj())

    def index_keys(self) -> list[str]:
        """Search keys in Rekor's spelling, without duplicates: the payload
        hash ("sha256:<hex>"), the in-toto subject digests ("<alg>:<value>"),
        the verifier key hashes (hex SHA-256 of the DER SPKI), then the
        certificates' SAN e-mails (lowercased), URIs and Fulcio otherNames."""
        return attestation_index_keys(self.payload_hash, self.statement, self.verifiers)


def attestation_index_keys(payload_hash: bytes, statement: intoto.Statement | None,
                           verifiers: Sequence[KeyMaterial]) -> list[str]:
    """The search keys of an attestation entry (dsse or intoto), without
    duplicates: see :meth:`DsseEntry.index_keys`."""
    keys = [f"sha256:{payload_hash.hex()}"]
    if statement is not None:
        keys += [f"{alg}:{value}" for alg, value in statement.subject_digests()]
    for key in verifiers:
        keys += key.index_keys()
    return list(dict.fromkeys(keys))


def _sorted_signatures(pairs: Sequence[DsseSignature]) -> tuple[DsseSignature, ...]:
    return tuple(sorted(pairs, key=lambda s: s.signature_b64))


def parse_proposed(obj: object, *, max_chain: int = MAX_CHAIN,
                   max_envelope: int = MAX_ENVELOPE,
                   max_trials: int = MAX_TRIALS) -> DsseEntry:
    """Validate a proposed dsse 0.0.1 entry (parsed JSON), verify every
    envelope signature and parse an in-toto payload.

    Raises FormatError naming the JSON path (schema, base64, PEM, allow-list,
    envelope, statement; ``spec.proposedContent.verifiers`` when the
    envelope's signatures times the verifiers exceed ``max_trials``, checked
    before any key is parsed or signature verified), EnvelopeTooLargeError
    when the envelope exceeds ``max_envelope`` bytes, or SignatureError."""
    top = parse_entry_top(obj, KIND, API_VERSION)
    spec = top["spec"]
    if isinstance(spec, dict):
        for name in SERVER_COMPUTED:
            if spec.get(name, None) is not None:
                raise FormatError(f"spec.{name}", "is computed by the log; a proposed entry "
                                                  "must leave it out (or null)")
        spec = {k: v for k, v in spec.items() if k not in SERVER_COMPUTED}
    spec = expect_object(spec, "spec", required=("proposedContent",))
    content = expect_object(spec["proposedContent"], _PC, required=("envelope", "verifiers"))
    text = expect_str(content["envelope"], _ENV)
    envelope_bytes = text.encode("utf-8")
    check_envelope_size(len(envelope_bytes), max_envelope, _ENV)
    envelope = parse_envelope(envelope_bytes, _ENV, max_size=max_envelope)
    verifiers = _parse_verifiers(content["verifiers"], max_chain, len(envelope.signatures),
                                 max_trials)
    statement = statement_of(envelope, f"{_ENV}.payload")
    used = verify_envelope(envelope, verifiers, _ENV)
    signatures = _sorted_signatures([DsseSignature(s.sig, key)
                                     for s, key in zip(envelope.signatures, used)])
    return DsseEntry(envelope_hash=hashlib.sha256(envelope_bytes).digest(),
                     payload_hash=hashlib.sha256(envelope.payload).digest(),
                     signatures=signatures, envelope=envelope,
                     envelope_bytes=envelope_bytes, statement=statement)


def _parse_verifiers(value: object, max_chain: int, signatures: int,
                     max_trials: int) -> list[KeyMaterial]:
    """The verifiers of an envelope of ``signatures`` signatures, each tried
    under every verifier: refused when that is more than ``max_trials``
    pairs, before any PEM is parsed (a chain's own signatures are checked
    while it is parsed)."""
    path = f"{_PC}.verifiers"
    items = expect_list(value, path, max_items=MAX_VERIFIERS)
    if not items:
        raise FormatError(path, "at least one verifier (base64 PEM key or certificate) "
                                "is required")
    check_trials(len(items), signatures, max_trials, path)
    keys = []
    for i, item in enumerate(items):
        where = index_path(path, i)
        pem = b64decode_std(expect_str(item, where), where)
        keys.append(parse_key_material(pem, where, max_chain=max_chain))
    return keys


def parse_canonical(body: bytes, *, max_chain: int = MAX_CHAIN,
                    max_size: int = MAX_SIZE) -> DsseEntry:
    """Parse a canonical dsse body (a leaf returned by a log).

    Checks the closed schema, hashes (sha256, 64 lowercase hex), signatures
    (canonical base64, strictly sorted, distinct), verifiers (allow-listed
    PEM) and that the body is exactly its own canonical form. The signatures
    cannot be verified without the envelope: see :func:`verify_attestation`.
    Raises FormatError or SignatureError (a certificate chain link)."""
    top = parse_entry_top(loads_strict(body, max_size=max_size), KIND, API_VERSION)
    spec = expect_object(top["spec"], "spec", required=SERVER_COMPUTED)
    envelope_hash = parse_sha256_hash(spec["envelopeHash"], "spec.envelopeHash")
    payload_hash = parse_sha256_hash(spec["payloadHash"], "spec.payloadHash")
    path = "spec.signatures"
    items = expect_list(spec["signatures"], path, max_items=MAX_SIGNATURES)
    if not items:
        raise FormatError(path, "must hold at least one signature")
    sigs = []
    for i, item in enumerate(items):
        where = index_path(path, i)
        obj = expect_object(item, where, required=("signature", "verifier"))
        sig = b64decode_std(expect_str(obj["signature"], f"{where}.signature"),
                            f"{where}.signature")
        pem = b64decode_std(expect_str(obj["verifier"], f"{where}.verifier"),
                            f"{where}.verifier")
        sigs.append(DsseSignature(sig, parse_key_material(pem, f"{where}.verifier",
                                                          max_chain=max_chain)))
    names = [s.signature_b64 for s in sigs]
    if names != sorted(set(names)):
        raise FormatError(path, "signatures must be distinct and sorted by signature")
    entry = DsseEntry(envelope_hash, payload_hash, tuple(sigs))
    if entry.canonical_body() != body:
        raise FormatError("body", "not the canonical form of the dsse entry")
    return entry


def verify_attestation(entry: DsseEntry, attestation: bytes, *,
                       max_envelope: int = MAX_ENVELOPE) -> DsseEntry:
    """Check that ``attestation`` is the envelope the leaf ``entry`` binds
    and that it verifies: SHA-256 of the bytes equals ``envelopeHash``, the
    payload hashes to ``payloadHash``, the envelope's signatures are exactly
    the body's and each verifies over the PAE under its recorded verifier.
    Returns the entry with the envelope and in-toto statement filled in.
    Raises SignatureError (a mismatch or a failed signature) or FormatError."""
    attestation, envelope = open_attestation(attestation, entry.envelope_hash, "envelopeHash",
                                             entry.payload_hash, max_envelope)
    by_sig = {s.signature: s.verifier for s in entry.signatures}
    if sorted(s.sig for s in envelope.signatures) != sorted(by_sig):
        raise SignatureError("attestation: envelope signatures differ from the entry's")
    verify_each(envelope, [by_sig[s.sig] for s in envelope.signatures], "attestation")
    statement = statement_of(envelope, "attestation.payload")
    return DsseEntry(entry.envelope_hash, entry.payload_hash, entry.signatures, envelope,
                     attestation, statement)


def build_proposed(envelope_json: bytes | str, verifier_pems: Sequence[bytes], *,
                   max_trials: int = MAX_TRIALS) -> dict[str, Any]:
    """Build a proposed dsse 0.0.1 entry from the envelope JSON (sent as is:
    its exact bytes are what the log hashes and keeps) and the PEM keys or
    certificate chains that verify it. Checked with :func:`parse_proposed`
    (a bad signature fails here, not at the log; so does an entry a log
    with the trial cap ``max_trials`` would refuse); returns a JSON-ready
    dict."""
    if isinstance(envelope_json, bytes):
        try:
            envelope_json = envelope_json.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(_ENV, "envelope is not UTF-8") from None
    if not isinstance(envelope_json, str):
        raise FormatError(_ENV, "envelope must be JSON text (str or bytes)")
    if isinstance(verifier_pems, (bytes, str)) or not all(
            isinstance(p, bytes) for p in verifier_pems):
        raise FormatError(f"{_PC}.verifiers", "give a sequence of PEM byte strings")
    proposed = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {"proposedContent": {"envelope": envelope_json,
                                     "verifiers": [b64encode_std(p) for p in verifier_pems]}},
    }
    parse_proposed(proposed, max_trials=max_trials)
    return proposed
