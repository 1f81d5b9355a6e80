"""intoto 0.0.2, the older Rekor v1 entry for a DSSE envelope (still sent by
older cosign clients: ``cosign attest`` before dsse entries existed).

Proposed entry::

    {"apiVersion": "0.0.2", "kind": "intoto",
     "spec": {"content": {
        "envelope": {"payloadType": "application/vnd.in-toto+json",
                     "payload": "<base64 of the envelope's base64 payload>",
                     "signatures": [{"keyid": "<optional>",
                                     "sig": "<base64 of the envelope's base64 signature>",
                                     "publicKey": "<base64 of PEM key or certificate>"}]},
        "hash": {"algorithm": "sha256", "value": "<hex>"},          (optional)
        "payloadHash": {"algorithm": "sha256", "value": "<hex>"}}}}  (optional)

The double base64 quirk. In a DSSE envelope ``payload`` and ``sig`` are
base64 strings. Rekor's intoto 0.0.2 schema declares the same two fields as
``format: byte`` (go-openapi ``strfmt.Base64``), and its client code fills
them with the *bytes of those base64 strings* (``strfmt.Base64([]byte(
env.Payload))``), so on the wire each is base64 encoded a second time:
``payload = base64(base64(statement))`` and ``sig = base64(base64(raw
signature))``. This module decodes both layers (each strict, canonical,
standard base64) and signs/verifies over ``PAE(payloadType, statement)`` as
DSSE defines. ``publicKey`` is base64 of PEM once, as everywhere else.

Schema. Closed, like every entry type; explicit nulls are accepted for the
optional members (``hash``, ``payloadHash``, ``keyid``), as a client built on
generated models (rekor_types) sends them. ``payload`` is required (Rekor's
schema marks it optional but refuses to insert an entry without it);
``payloadType`` and ``keyid`` must not contain control characters.

Verification. Every signature must verify over the PAE under ITS OWN
``publicKey`` (Rekor tries every key on every signature; pairing each
signature with the key it is stored next to keeps the canonical body
truthful), so an entry tries one check per signature; a server's cap on
checks per entry (:data:`MAX_TRIALS`, ``--max-verify-trials``) bounds the
signatures, before any key is parsed. Allow-listed keys only; Ed25519 allowed; see
:func:`tlog_client.dsse.verify_pae_signature` for the hashes and ECDSA
encodings accepted. An in-toto payload must parse (:mod:`tlog_client.intoto`).

Canonical body, as Rekor's ``V002Entry.Canonicalize``
(pkg/types/intoto/v0.0.2/entry.go)::

    {"apiVersion": "0.0.2", "kind": "intoto",
     "spec": {"content": {"envelope": {"payloadType": "...",
                                       "signatures": [{"keyid": "..." (omitted when empty),
                                                       "publicKey": "<base64 canonical PEM>",
                                                       "sig": "<double base64>"}]},
                          "hash": {"algorithm": "sha256", "value": "<hex>"},
                          "payloadHash": {"algorithm": "sha256", "value": "<hex>"}}}}

- the payload itself is not in the body; ``payloadHash`` = SHA-256 of the
  statement bytes (a client-sent one must match);
- signatures stay in the submitted order (Rekor does not sort them);
- ``publicKey`` is the canonical PEM (the normalisation sigstore/rekor#1170
  asks for; cosign already sends canonical PEM, so its bodies are unchanged);
- ``hash`` is SHA-256 of the envelope serialised as Go's ``encoding/json``
  writes a go-securesystemslib ``dsse.Envelope``:
  ``{"payloadType":…,"payload":…,"signatures":[{"keyid":…,"sig":…}]}`` (see
  :func:`go_envelope_json`). Those bytes are what cosign hashes, and they are
  the entry's attestation, so ``sha256(attestation) == hash``. Rekor keeps
  any client-sent ``hash`` unchecked; this log requires a sent one to equal
  the value it computes and otherwise answers 400 (leave it out and the log
  computes it).

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import dsse, intoto
from .encoding import b64decode_std, b64encode_std
from .errors import FormatError, SignatureError
from .jsonstrict import MAX_SIZE, expect_list, expect_object, expect_str, index_path, loads_strict
from .keys import MAX_CHAIN, KeyMaterial, distinct_keys, parse_key_material
from .rekor import canonical_json, parse_entry_top, parse_sha256_hash

KIND = "intoto"
API_VERSION = "0.0.2"

MAX_SIGNATURES = dsse.MAX_SIGNATURES
MAX_ENVELOPE = dsse.MAX_ENVELOPE
MAX_TRIALS = dsse.MAX_TRIALS
EnvelopeTooLargeError = dsse.EnvelopeTooLargeError

_CONTENT = "spec.content"
_ENV = "spec.content.envelope"
_HINT = "; send new attestations as dsse 0.0.1"  # after the supported apiVersion


@dataclass(frozen=True)
class IntotoSignature:
    """One signature: raw ``sig`` bytes, its ``keyid`` (None when absent or
    empty) and the key it verifies under."""

    sig: bytes
    public_key: KeyMaterial
    keyid: str | None = None


@dataclass(frozen=True)
class IntotoEntry:
    """An intoto 0.0.2 entry. From :func:`parse_proposed` or
    :func:`verify_attestation` it carries the envelope, its Go-serialised
    bytes (the attestation) and the in-toto statement; from
    :func:`parse_canonical` only what the leaf holds."""

    payload_type: str
    signatures: tuple[IntotoSignature, ...]
    envelope_hash: bytes
    payload_hash: bytes
    envelope: dsse.Envelope | None = None
    envelope_bytes: bytes | None = None
    statement: intoto.Statement | None = None

    @property
    def verifiers(self) -> tuple[KeyMaterial, ...]:
        return distinct_keys(s.public_key for s in self.signatures)

    def canonical_obj(self) -> dict[str, Any]:
        sigs = []
        for s in self.signatures:
            item = {"publicKey": b64encode_std(s.public_key.canonical_pem()),
                    "sig": b64encode_std(b64encode_std(s.sig).encode("ascii"))}
            if s.keyid:
                item["keyid"] = s.keyid
            sigs.append(item)
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "spec": {"content": {
                "envelope": {"payloadType": self.payload_type, "signatures": sigs},
                "hash": {"algorithm": "sha256", "value": self.envelope_hash.hex()},
                "payloadHash": {"algorithm": "sha256", "value": self.payload_hash.hex()},
            }},
        }

    def canonical_body(self) -> bytes:
        """The leaf: RFC 8785 canonical JSON of :meth:`canonical_obj`."""
        return canonical_json(self.canonical_obj())

    def index_keys(self) -> list[str]:
        """Search keys in Rekor's spelling (see :meth:`tlog_client.dsse.DsseEntry.index_keys`)."""
        return dsse.attestation_index_keys(self.payload_hash, self.statement, self.verifiers)


# -- Go's encoding/json, for the envelope hash -------------------------------------

def _go_string(text: str) -> str:
    """A JSON string as Go's encoding/json writes it (HTML-safe escaping of
    <, >, &, U+2028, U+2029; other non-ASCII as UTF-8). Control characters
    never reach here (refused at parse time)."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_envelope_json(envelope: dsse.Envelope) -> bytes:
    """The envelope as Go's ``json.Marshal`` of go-securesystemslib's
    ``dsse.Envelope`` (payloadType, payload, signatures[{keyid, sig}], keyid
    always present, "" when absent): what cosign hashes for ``spec.content.hash``."""
    for value in (envelope.payload_type, *(s.keyid or "" for s in envelope.signatures)):
        _no_controls(value, "envelope")
    sigs = ",".join('{"keyid":%s,"sig":%s}' % (_go_string(s.keyid or ""), _go_string(s.sig_b64))
                    for s in envelope.signatures)
    text = '{"payloadType":%s,"payload":%s,"signatures":[%s]}' % (
        _go_string(envelope.payload_type), _go_string(b64encode_std(envelope.payload)), sigs)
    return text.encode("utf-8")


def _no_controls(value: str, path: str) -> str:
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise FormatError(path, "must not contain control characters")
    return value


# -- parsing --------------------------------------------------------------------------

def _drop_null(value: object, names: tuple[str, ...]) -> object:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if not (k in names and v is None)}
    return value


def _double_b64(value: object, path: str) -> tuple[bytes, str]:
    """Decode ``base64(base64(data))``; return (data, inner base64 text)."""
    outer = b64decode_std(expect_str(value, path), path)
    try:
        inner = outer.decode("ascii")
    except UnicodeDecodeError:
        inner = ""
    if not inner:
        raise FormatError(path, "must be base64 of base64 text (intoto 0.0.2 encodes "
                                "DSSE payloads and signatures twice)")
    try:
        data = b64decode_std(inner, path)
    except FormatError:
        raise FormatError(path, "inner value is not canonical standard base64 (intoto "
                                "0.0.2 encodes DSSE payloads and signatures twice)") from None
    return data, inner


def parse_proposed(obj: object, *, max_chain: int = MAX_CHAIN,
                   max_envelope: int = MAX_ENVELOPE,
                   max_trials: int = MAX_TRIALS) -> IntotoEntry:
    """Validate a proposed intoto 0.0.2 entry, verify every signature under
    its public key and parse an in-toto payload. Raises FormatError naming
    the JSON path (the signatures, when there are more than ``max_trials``
    to check), EnvelopeTooLargeError (envelope above ``max_envelope``
    bytes) or SignatureError."""
    top = parse_entry_top(obj, KIND, API_VERSION, hint=_HINT)
    spec = expect_object(top["spec"], "spec", required=("content",))
    content = expect_object(_drop_null(spec["content"], ("hash", "payloadHash")), _CONTENT,
                            required=("envelope",), optional=("hash", "payloadHash"))
    env = expect_object(content["envelope"], _ENV,
                        required=("payloadType", "payload", "signatures"))
    payload_type = _no_controls(expect_str(env["payloadType"], f"{_ENV}.payloadType"),
                                f"{_ENV}.payloadType")
    payload, _ = _double_b64(env["payload"], f"{_ENV}.payload")
    sigs_path = f"{_ENV}.signatures"
    items = expect_list(env["signatures"], sigs_path, max_items=MAX_SIGNATURES)
    if not items:
        raise FormatError(sigs_path, "an envelope needs at least one signature")
    if len(items) > max_trials:
        raise FormatError(sigs_path, f"{len(items)} signatures to check, over the limit of "
                                     f"{max_trials} per entry")
    parsed: list[IntotoSignature] = []
    for i, item in enumerate(items):
        where = index_path(sigs_path, i)
        sig_obj = expect_object(_drop_null(item, ("keyid",)), where,
                                required=("sig", "publicKey"), optional=("keyid",))
        sig, _ = _double_b64(sig_obj["sig"], f"{where}.sig")
        if any(sig == p.sig for p in parsed):
            raise FormatError(f"{where}.sig", "the same signature appears twice")
        keyid = sig_obj.get("keyid")
        if keyid is not None:
            keyid = _no_controls(expect_str(keyid, f"{where}.keyid", allow_empty=True),
                                 f"{where}.keyid") or None
        pem = b64decode_std(expect_str(sig_obj["publicKey"], f"{where}.publicKey"),
                            f"{where}.publicKey")
        key = parse_key_material(pem, f"{where}.publicKey", max_chain=max_chain)
        parsed.append(IntotoSignature(sig, key, keyid))
    envelope = dsse.Envelope(payload_type, payload,
                             tuple(dsse.EnvelopeSignature(s.sig, s.keyid) for s in parsed))
    envelope_bytes = go_envelope_json(envelope)
    dsse.check_envelope_size(len(envelope_bytes), max_envelope, _ENV)
    envelope_hash = hashlib.sha256(envelope_bytes).digest()
    payload_hash = hashlib.sha256(payload).digest()
    if "hash" in content and \
            parse_sha256_hash(content["hash"], f"{_CONTENT}.hash") != envelope_hash:
        raise FormatError(f"{_CONTENT}.hash.value",
                          "does not match SHA-256 of the envelope as Go's encoding/json "
                          f"serialises it ({envelope_hash.hex()}); leave hash out and the "
                          "log computes it")
    if "payloadHash" in content and \
            parse_sha256_hash(content["payloadHash"], f"{_CONTENT}.payloadHash") != payload_hash:
        raise FormatError(f"{_CONTENT}.payloadHash.value",
                          "does not match SHA-256 of the payload")
    statement = dsse.statement_of(envelope, f"{_ENV}.payload")
    message = envelope.pae()
    for i, s in enumerate(parsed):
        try:
            dsse.verify_pae_signature(s.public_key, s.sig, message)
        except SignatureError as exc:
            raise SignatureError(f"{sigs_path}[{i}]: does not verify over the DSSE PAE under "
                                 f"its publicKey ({exc})") from None
    return IntotoEntry(payload_type, tuple(parsed), envelope_hash, payload_hash, envelope,
                       envelope_bytes, statement)


def parse_canonical(body: bytes, *, max_chain: int = MAX_CHAIN,
                    max_size: int = MAX_SIZE) -> IntotoEntry:
    """Parse a canonical intoto 0.0.2 body (a leaf returned by a log): closed
    schema, encodings, allow-listed keys, and exactly its own canonical form.
    Signatures need the envelope: see :func:`verify_attestation`."""
    top = parse_entry_top(loads_strict(body, max_size=max_size), KIND, API_VERSION, hint=_HINT)
    spec = expect_object(top["spec"], "spec", required=("content",))
    content = expect_object(spec["content"], _CONTENT,
                            required=("envelope", "hash", "payloadHash"))
    env = expect_object(content["envelope"], _ENV, required=("payloadType", "signatures"))
    payload_type = _no_controls(expect_str(env["payloadType"], f"{_ENV}.payloadType"),
                                f"{_ENV}.payloadType")
    sigs_path = f"{_ENV}.signatures"
    items = expect_list(env["signatures"], sigs_path, max_items=MAX_SIGNATURES)
    if not items:
        raise FormatError(sigs_path, "must hold at least one signature")
    sigs = []
    for i, item in enumerate(items):
        where = index_path(sigs_path, i)
        obj = expect_object(item, where, required=("sig", "publicKey"), optional=("keyid",))
        sig, _ = _double_b64(obj["sig"], f"{where}.sig")
        keyid = obj.get("keyid")
        if keyid is not None:
            keyid = _no_controls(expect_str(keyid, f"{where}.keyid"), f"{where}.keyid")
        pem = b64decode_std(expect_str(obj["publicKey"], f"{where}.publicKey"),
                            f"{where}.publicKey")
        sigs.append(IntotoSignature(sig, parse_key_material(pem, f"{where}.publicKey",
                                                            max_chain=max_chain), keyid))
    entry = IntotoEntry(payload_type, tuple(sigs),
                        parse_sha256_hash(content["hash"], f"{_CONTENT}.hash"),
                        parse_sha256_hash(content["payloadHash"], f"{_CONTENT}.payloadHash"))
    if entry.canonical_body() != body:
        raise FormatError("body", "not the canonical form of the intoto entry")
    return entry


def verify_attestation(entry: IntotoEntry, attestation: bytes, *,
                       max_envelope: int = MAX_ENVELOPE) -> IntotoEntry:
    """Check that ``attestation`` (an envelope's JSON) is what the leaf
    binds and verifies: SHA-256 equals ``hash``, the payload hashes to
    ``payloadHash``, payload type, signatures and key IDs equal the body's
    (in order), and each signature verifies under its key. Returns the entry
    with envelope and statement. Raises SignatureError or FormatError."""
    attestation, envelope = dsse.open_attestation(attestation, entry.envelope_hash, "hash",
                                                  entry.payload_hash, max_envelope)
    if envelope.payload_type != entry.payload_type:
        raise SignatureError("attestation: payloadType differs from the entry's")
    if [(s.sig, s.keyid) for s in envelope.signatures] != \
            [(s.sig, s.keyid) for s in entry.signatures]:
        raise SignatureError("attestation: signatures differ from the entry's")
    dsse.verify_each(envelope, [s.public_key for s in entry.signatures], "attestation")
    statement = dsse.statement_of(envelope, "attestation.payload")
    return IntotoEntry(entry.payload_type, entry.signatures, entry.envelope_hash,
                       entry.payload_hash, envelope, attestation, statement)


def build_proposed(envelope_json: bytes | str, public_key_pems: Sequence[bytes], *,
                   max_trials: int = MAX_TRIALS) -> dict[str, Any]:
    """Build a proposed intoto 0.0.2 entry from a DSSE envelope's JSON and the
    PEM keys (or certificate chains) that verify it: each signature is paired
    with the first key that verifies it (FormatError naming ``publicKeys``,
    before any check, when signatures × keys exceed ``max_trials``), payload
    and signatures are double base64 encoded, ``hash`` is left for the log
    to compute. Checked with :func:`parse_proposed`; returns a JSON-ready
    dict."""
    if isinstance(envelope_json, str):
        envelope_json = envelope_json.encode("utf-8")
    envelope = dsse.parse_envelope(envelope_json, "envelope")
    if isinstance(public_key_pems, (bytes, str)) or not all(
            isinstance(p, bytes) for p in public_key_pems):
        raise FormatError("publicKeys", "give a sequence of PEM byte strings")
    dsse.check_trials(len(public_key_pems), len(envelope.signatures), max_trials, "publicKeys")
    keys = [(pem, parse_key_material(pem, f"publicKeys[{i}]"))
            for i, pem in enumerate(public_key_pems)]
    message = envelope.pae()
    sigs = []
    for i, s in enumerate(envelope.signatures):
        for pem, key in keys:
            try:
                dsse.verify_pae_signature(key, s.sig, message)
            except SignatureError:
                continue
            item = {"sig": b64encode_std(s.sig_b64.encode("ascii")),
                    "publicKey": b64encode_std(pem)}
            if s.keyid:
                item["keyid"] = s.keyid
            sigs.append(item)
            break
        else:
            raise SignatureError(f"envelope.signatures[{i}]: no given key verifies it")
    proposed = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {"content": {"envelope": {
            "payloadType": envelope.payload_type,
            "payload": b64encode_std(b64encode_std(envelope.payload).encode("ascii")),
            "signatures": sigs}}},
    }
    parse_proposed(proposed, max_trials=max_trials)
    return proposed
