"""Sigstore bundles (v0.3 JSON) for hashedrekord and dsse entries: write, read, verify offline.

A bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``, the protobuf-specs
``dev.sigstore.bundle.v1.Bundle`` in proto3 JSON) carries everything needed to
verify a signed artifact with no network::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {
        "certificate": {"rawBytes": <b64 DER leaf>}   | "publicKey": {"hint": <str>},
        "tlogEntries": [{
           "logIndex": "<u64>", "logId": {"keyId": <b64 SHA-256(log SPKI)>},
           "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
           "integratedTime": "<u64>",
           "inclusionPromise": {"signedEntryTimestamp": <b64>},
           "inclusionProof": {"logIndex": "<u64>", "rootHash": <b64>, "treeSize": "<u64>",
                              "hashes": [<b64>...], "checkpoint": {"envelope": <note>}},
           "canonicalizedBody": <b64>}]},
     "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": <b64>},
                          "signature": <b64>}}

A dsse 0.0.1 (or intoto 0.0.2) entry's bundle carries the envelope instead
of ``messageSignature`` (kindVersion ``dsse``/``0.0.1``)::

     "dsseEnvelope": {"payload": <b64>, "payloadType": <str>,
                      "signatures": [{"sig": <b64>, "keyid": <str>}]}

and verifies with :func:`~tlog_client.dsseverify.verify_dsse_entry` given that
envelope (sigstore-python's ``Verifier.verify_dsse`` accepts one signed with a
certificate: one signature, the leaf certificate as the only verifier).

64-bit integers are strings and bytes standard base64, as proto3 JSON writes
them; sigstore-python 4.x reads these bundles (a certificate-signed one
verifies there given a trusted root naming this log). A bundle for a bare key
is readable here, but Sigstore verifiers require a certificate.

Reading is strict (unknown fields, wrong types, non-canonical encodings are
FormatErrors naming the JSON path); :func:`verify_bundle` checks that the
bundle's fields agree with the logged entry and then runs the whole entry
recipe of :mod:`tlog_client.entryverify`. Pure module: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .bindings import BundleMismatchError
from .encoding import b64decode_std, b64encode_std, parse_decimal
from .entryverify import Expectations, VerifiedEntry, verify_hashedrekord_entry
from .dsse import Envelope, parse_envelope_obj
from .errors import FormatError
from .hashedrekord import API_VERSION, KIND
from .hashing import HASH_SIZE
from .keys import CERT_PARSE_ERRORS, KeyMaterial
from .jsonstrict import expect_int, expect_list, expect_object, expect_str, index_path, loads_strict
from .rekor import EntryRef, InclusionProof, LogEntry, uuid_of
from .trust import PinnedLog, VerifiedCheckpoint

__all__ = ["MEDIA_TYPE", "Bundle", "bundle_json", "dumps_bundle", "parse_bundle",
           "trusted_root_tlog", "verify_bundle"]

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ACCEPTED_MEDIA_TYPES = (MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3")
MAX_BUNDLE_SIZE = 1 << 20

_PROTO_ALG = {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}
_REKOR_ALG = {v: k for k, v in _PROTO_ALG.items()}


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle. ``entry`` is the tlog entry as a LogEntry (its UUID
    computed from the body: bundles carry none); ``certificate`` the leaf
    certificate, or None with ``public_key_hint`` for a bare key. A message
    bundle has ``signature`` (and ``digest``); a DSSE bundle ``envelope``."""

    media_type: str
    signature: bytes | None
    digest: tuple[str, bytes] | None
    certificate: x509.Certificate | None
    public_key_hint: str | None
    kind: str
    version: str
    entry: LogEntry
    envelope: Envelope | None = None


# -- writing ----------------------------------------------------------------------

def _material(key: KeyMaterial) -> dict[str, Any]:
    if key.leaf is not None:
        return {"certificate": {"rawBytes": b64encode_std(
            key.leaf.public_bytes(serialization.Encoding.DER))}}
    return {"publicKey": {"hint": b64encode_std(bytes.fromhex(key.key_hash()))}}


def bundle_json(verified: VerifiedEntry) -> dict[str, Any]:
    """The bundle of a verified hashedrekord entry, or of a verified dsse
    (intoto) entry whose envelope was checked, as a JSON-ready dict. A DSSE
    bundle names the first verifier (its certificate, else a key hint)."""
    record = verified.record
    entry = verified.entry
    att = verified.attestation
    if (record is None or verified.kind != KIND) and att is None:
        raise FormatError("entry", f"bundles are written for hashedrekord and dsse entries, "
                                   f"not {verified.kind}")
    if att is not None and att.envelope is None:
        raise FormatError("entry", "a DSSE bundle needs the entry's verified envelope")
    proof = entry.inclusion_proof
    if proof is None or entry.set_signature is None:
        raise FormatError("entry", "a bundle needs the inclusion proof and the SET")
    material = _material(record.key if record is not None else att.verifiers[0])
    material["tlogEntries"] = [{
        "logIndex": str(entry.log_index),
        "logId": {"keyId": b64encode_std(bytes.fromhex(entry.log_id))},
        "kindVersion": {"kind": verified.kind, "version": verified.api_version},
        "integratedTime": str(entry.integrated_time),
        "inclusionPromise": {"signedEntryTimestamp": b64encode_std(entry.set_signature)},
        "inclusionProof": {
            "logIndex": str(proof.log_index),
            "rootHash": b64encode_std(proof.root_hash),
            "treeSize": str(proof.tree_size),
            "hashes": [b64encode_std(h) for h in proof.hashes],
            "checkpoint": {"envelope": verified.checkpoint.note.decode("utf-8")},
        },
        "canonicalizedBody": b64encode_std(entry.body),
    }]
    if att is not None:
        return {"mediaType": MEDIA_TYPE, "verificationMaterial": material,
                "dsseEnvelope": att.envelope.to_json_obj()}
    assert record is not None
    return {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {"algorithm": _PROTO_ALG[record.algorithm],
                              "digest": b64encode_std(record.digest)},
            "signature": b64encode_std(record.signature),
        },
    }


def dumps_bundle(verified: VerifiedEntry) -> bytes:
    """The bundle JSON bytes (indented, newline-terminated)."""
    return (json.dumps(bundle_json(verified), indent=2) + "\n").encode("utf-8")


# -- reading ----------------------------------------------------------------------

def parse_bundle(data: bytes) -> Bundle:
    """Parse a v0.3 bundle with one tlog entry and a message signature or a
    DSSE envelope, strictly."""
    top = expect_object(loads_strict(data, max_size=MAX_BUNDLE_SIZE), "",
                        required=("mediaType", "verificationMaterial"),
                        optional=("messageSignature", "dsseEnvelope"))
    media_type = expect_str(top["mediaType"], "mediaType")
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise FormatError("mediaType", f"unsupported bundle type {media_type!r:.80} "
                                       f"(expected {MEDIA_TYPE})")
    if ("dsseEnvelope" in top) == ("messageSignature" in top):
        raise FormatError("messageSignature", "a bundle holds exactly one of messageSignature "
                                              "or dsseEnvelope")
    signature = digest = envelope = None
    if "messageSignature" in top:
        signature, digest = _parse_message_signature(top["messageSignature"])
    else:
        envelope = parse_envelope_obj(top["dsseEnvelope"], "dsseEnvelope")
    vm = expect_object(top["verificationMaterial"], "verificationMaterial",
                       required=("tlogEntries",),
                       optional=("certificate", "publicKey", "timestampVerificationData"))
    certificate, hint = _parse_material(vm)
    if "timestampVerificationData" in vm:
        tvd = expect_object(vm["timestampVerificationData"],
                            "verificationMaterial.timestampVerificationData",
                            optional=("rfc3161Timestamps",))
        expect_list(tvd.get("rfc3161Timestamps", []),
                    "verificationMaterial.timestampVerificationData.rfc3161Timestamps")
    entries = expect_list(vm["tlogEntries"], "verificationMaterial.tlogEntries")
    if len(entries) != 1:
        raise FormatError("verificationMaterial.tlogEntries", "expected exactly one entry")
    kind, version, entry = _parse_tlog_entry(entries[0], "verificationMaterial.tlogEntries[0]")
    return Bundle(media_type, signature, digest, certificate, hint, kind, version, entry,
                  envelope)


def _b64(value: object, path: str, length: int | None = None) -> bytes:
    return b64decode_std(expect_str(value, path), path, length=length)


def _u64(value: object, path: str) -> int:
    """A proto3 JSON uint64: a canonical decimal string (or a JSON integer)."""
    if isinstance(value, str):
        return parse_decimal(value, path)
    return expect_int(value, path)


def _parse_message_signature(value: object) -> tuple[bytes, tuple[str, bytes] | None]:
    path = "messageSignature"
    ms = expect_object(value, path, required=("signature",), optional=("messageDigest",))
    signature = _b64(ms["signature"], f"{path}.signature")
    digest = None
    if "messageDigest" in ms:
        md = expect_object(ms["messageDigest"], f"{path}.messageDigest",
                           required=("algorithm", "digest"))
        proto_alg = expect_str(md["algorithm"], f"{path}.messageDigest.algorithm")
        if proto_alg not in _REKOR_ALG:
            raise FormatError(f"{path}.messageDigest.algorithm",
                              f"unsupported {proto_alg!r:.20} (SHA2_256, SHA2_384, SHA2_512)")
        algorithm = _REKOR_ALG[proto_alg]
        size = hashlib.new(algorithm).digest_size
        digest = (algorithm, _b64(md["digest"], f"{path}.messageDigest.digest", size))
    return signature, digest


def _parse_material(vm: dict[str, Any]) -> tuple[x509.Certificate | None, str | None]:
    path = "verificationMaterial"
    if ("certificate" in vm) == ("publicKey" in vm):
        raise FormatError(path, "exactly one of certificate or publicKey is required")
    if "certificate" in vm:
        cert = expect_object(vm["certificate"], f"{path}.certificate", required=("rawBytes",))
        der = _b64(cert["rawBytes"], f"{path}.certificate.rawBytes")
        try:
            return x509.load_der_x509_certificate(der), None
        except CERT_PARSE_ERRORS as exc:
            raise FormatError(f"{path}.certificate.rawBytes", f"not a certificate: {exc}") from None
    pk = expect_object(vm["publicKey"], f"{path}.publicKey", optional=("hint",))
    hint = pk.get("hint")
    return None, (expect_str(hint, f"{path}.publicKey.hint", allow_empty=True)
                  if hint is not None else None)


def _parse_tlog_entry(value: object, path: str) -> tuple[str, str, LogEntry]:
    te = expect_object(value, path, required=(
        "logIndex", "logId", "kindVersion", "integratedTime", "inclusionPromise",
        "inclusionProof", "canonicalizedBody"))
    kv = expect_object(te["kindVersion"], f"{path}.kindVersion", required=("kind", "version"))
    kind = expect_str(kv["kind"], f"{path}.kindVersion.kind")
    version = expect_str(kv["version"], f"{path}.kindVersion.version")
    log_id = expect_object(te["logId"], f"{path}.logId", required=("keyId",))
    key_id = _b64(log_id["keyId"], f"{path}.logId.keyId", HASH_SIZE)
    promise = expect_object(te["inclusionPromise"], f"{path}.inclusionPromise",
                            required=("signedEntryTimestamp",))
    body = _b64(te["canonicalizedBody"], f"{path}.canonicalizedBody")
    entry = LogEntry(
        ref=EntryRef(uuid_of(body)),
        body=body,
        integrated_time=_u64(te["integratedTime"], f"{path}.integratedTime"),
        log_id=key_id.hex(),
        log_index=_u64(te["logIndex"], f"{path}.logIndex"),
        inclusion_proof=_parse_inclusion(te["inclusionProof"], f"{path}.inclusionProof"),
        set_signature=_b64(promise["signedEntryTimestamp"],
                           f"{path}.inclusionPromise.signedEntryTimestamp"))
    return kind, version, entry


def _parse_inclusion(value: object, path: str) -> InclusionProof:
    ip = expect_object(value, path, required=("logIndex", "rootHash", "treeSize", "hashes",
                                              "checkpoint"))
    hashes = expect_list(ip["hashes"], f"{path}.hashes", max_items=64)
    cp = expect_object(ip["checkpoint"], f"{path}.checkpoint", required=("envelope",))
    return InclusionProof(
        log_index=_u64(ip["logIndex"], f"{path}.logIndex"),
        root_hash=_b64(ip["rootHash"], f"{path}.rootHash", HASH_SIZE),
        tree_size=_u64(ip["treeSize"], f"{path}.treeSize"),
        hashes=tuple(_b64(h, index_path(f"{path}.hashes", i), HASH_SIZE)
                     for i, h in enumerate(hashes)),
        checkpoint=expect_str(cp["envelope"], f"{path}.checkpoint.envelope"))


# -- verifying ----------------------------------------------------------------------

def verify_bundle(bundle: Bundle, pinned: PinnedLog, expect: Expectations = Expectations(),
                  *, trusted: VerifiedCheckpoint | None = None,
                  consistency_proof: Sequence[bytes] | None = None) -> VerifiedEntry:
    """Verify a bundle offline: every entry binding (see
    :func:`~tlog_client.entryverify.verify_hashedrekord_entry`, and for a
    DSSE bundle :func:`~tlog_client.dsseverify.verify_dsse_entry` with the
    bundle's envelope), then that the bundle's signature, digest,
    certificate and kind are the entry's own. Raises a BindingError subclass
    naming the failed binding."""
    if bundle.envelope is not None:
        return _verify_dsse_bundle(bundle, pinned, expect, trusted, consistency_proof)
    verified = verify_hashedrekord_entry(bundle.entry, pinned, expect, trusted=trusted,
                                         consistency_proof=consistency_proof)
    record = verified.record
    assert record is not None
    if (bundle.kind, bundle.version) != (KIND, API_VERSION) or \
            (verified.kind, verified.api_version) != (bundle.kind, bundle.version):
        raise BundleMismatchError(f"bundle says {bundle.kind} {bundle.version}, the entry is "
                                  f"{verified.kind} {verified.api_version}")
    if bundle.signature != record.signature:
        raise BundleMismatchError("the bundle's signature is not the logged entry's")
    if bundle.digest is not None and bundle.digest != (record.algorithm, record.digest):
        raise BundleMismatchError("the bundle's message digest is not the logged entry's")
    leaf = record.key.leaf
    if bundle.certificate is not None:
        if leaf is None or leaf != bundle.certificate:
            raise BundleMismatchError("the bundle's certificate is not the logged entry's")
    elif leaf is not None:
        raise BundleMismatchError("the logged entry is signed with a certificate; the bundle "
                                  "carries a bare public key")
    return verified


def _verify_dsse_bundle(bundle: Bundle, pinned: PinnedLog, expect: Expectations,
                        trusted: VerifiedCheckpoint | None,
                        consistency_proof: Sequence[bytes] | None) -> VerifiedEntry:
    from .dsseverify import ATTESTATION_KINDS, verify_dsse_entry
    if (bundle.kind, bundle.version) not in ATTESTATION_KINDS:
        raise BundleMismatchError(f"a DSSE bundle's entry is dsse 0.0.1 or intoto 0.0.2, not "
                                  f"{bundle.kind} {bundle.version}")
    verified = verify_dsse_entry(bundle.entry, pinned, expect, envelope=bundle.envelope,
                                 trusted=trusted, consistency_proof=consistency_proof)
    if (verified.kind, verified.api_version) != (bundle.kind, bundle.version):
        raise BundleMismatchError(f"bundle says {bundle.kind} {bundle.version}, the entry is "
                                  f"{verified.kind} {verified.api_version}")
    leaves = [k.leaf for k in verified.attestation.verifiers if k.leaf is not None]
    if bundle.certificate is not None and bundle.certificate not in leaves:
        raise BundleMismatchError("the bundle's certificate is not a verifier of the logged "
                                  "entry")
    return verified


def trusted_root_tlog(pinned: PinnedLog, url: str,
                      valid_from: str = "2020-01-01T00:00:00Z") -> dict[str, Any]:
    """The ``tlogs[]`` item of a Sigstore trusted root
    (``application/vnd.dev.sigstore.trustedroot+json;version=0.1``) naming
    this log, for Sigstore verifiers of our bundles."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from .keys import spki_der
    details = ("PKIX_ED25519" if isinstance(pinned.public_key, ed25519.Ed25519PublicKey)
               else "PKIX_ECDSA_P256_SHA_256")
    return {"baseUrl": url, "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64encode_std(spki_der(pinned.public_key)),
                          "keyDetails": details, "validFor": {"start": valid_from}},
            "logId": {"keyId": b64encode_std(pinned.key_id)}}
