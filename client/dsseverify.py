"""The verification recipe for attestation entries (dsse 0.0.1, intoto 0.0.2).

The same chain as a hashedrekord entry (:mod:`tlog_client.entryverify`), with
the DSSE envelope in place of the signed digest:

1. leaf: the entry's UUID is H(0x00 || body);
2. attestation: the envelope the log returned with the entry (``attestation.
   data``) hashes to the leaf's ``envelopeHash`` and its payload to
   ``payloadHash``; its signatures are exactly the leaf's;
3. signature: every envelope signature verifies over PAE(payloadType,
   payload) under the verifier the leaf records for it;
4. artifact: the artifact's digest is one of the in-toto Statement's subject
   digests (a non-in-toto payload names no artifact and fails this check);
5. key / identity: the expected key is one of the leaf's verifiers, or one
   verifier's certificate names the expected identity and OIDC issuer;
6. inclusion, checkpoint (the PINNED log key), SET, as for every kind;
7. certificate: the matching verifier's certificate chains to a trusted root
   at the (SET-signed) integrated time;
8. consistency with the caller's trusted checkpoint, when given.

A Sigstore bundle carries the envelope as a message, not as the exact bytes
the log hashed. :func:`verify_dsse_entry` with ``envelope=`` first tries the
encoding this client submits (RFC 8785 JSON for dsse, Go's encoding for
intoto); when it matches, binding 2 holds byte for byte. Otherwise it checks
what Sigstore verifiers check (payload hash, the signature list, each
signature under its recorded verifier): this binds the same payload type,
payload and signatures, and ``envelope_hash_checked`` is False.

Failures raise the :mod:`tlog_client.bindings` error naming the binding
(:class:`~tlog_client.bindings.AttestationError` for binding 2). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

from . import dsse, intoto002
from .bindings import (ArtifactMismatchError, AttestationError, EntryBodyError,
                       EntrySignatureError, IdentityMismatchError, KeyMismatchError)
from .entryverify import (Expectations, VerifiedEntry, _check_trusted, artifact_digest,
                          check_certificate_chain, check_leaf, entry_kind, expected_key_hash,
                          verify_log_entry)
from .errors import FormatError, SignatureError
from .intoto import Statement
from .keys import KeyMaterial
from .rekor import LogEntry
from .trust import PinnedLog, VerifiedCheckpoint

__all__ = ["ATTESTATION_KINDS", "AttestationEntry", "attestation_json", "verify_dsse_entry"]

AttestationEntry = Union[dsse.DsseEntry, intoto002.IntotoEntry]

ATTESTATION_KINDS = {(dsse.KIND, dsse.API_VERSION): dsse,
                     (intoto002.KIND, intoto002.API_VERSION): intoto002}
"""(kind, apiVersion) → the module that parses and verifies it."""


@dataclass(frozen=True)
class _Checked:
    entry: AttestationEntry
    hash_checked: bool


def _parse_leaf(module: Any, body: bytes) -> AttestationEntry:
    try:
        return module.parse_canonical(body)
    except SignatureError as exc:
        raise EntrySignatureError(f"a verifier's certificate chain in the body: {exc}") from None
    except FormatError as exc:
        raise EntryBodyError(f"entry body: {exc}") from None


def _with_attestation(module: Any, leaf: AttestationEntry, data: bytes) -> AttestationEntry:
    """Bindings 2 and 3 over the exact envelope bytes."""
    if hashlib.sha256(data).digest() != leaf.envelope_hash:
        raise AttestationError("the envelope returned with the entry does not hash to the "
                               f"leaf's envelopeHash {leaf.envelope_hash.hex()[:16]}…")
    try:
        return module.verify_attestation(leaf, data)
    except SignatureError as exc:
        raise EntrySignatureError(f"the envelope does not verify with the leaf's verifiers: "
                                  f"{exc}") from None
    except FormatError as exc:
        raise AttestationError(f"the envelope bound by the leaf is malformed: {exc}") from None


def _encodings(module: Any, envelope: dsse.Envelope) -> list[bytes]:
    if module is intoto002:
        return [intoto002.go_envelope_json(envelope)]
    return [envelope.to_json()]


def _with_envelope(module: Any, leaf: AttestationEntry, envelope: dsse.Envelope) -> _Checked:
    """Bindings 2 and 3 for an envelope given as a message (a bundle)."""
    for data in _encodings(module, envelope):
        if hashlib.sha256(data).digest() == leaf.envelope_hash:
            return _Checked(_with_attestation(module, leaf, data), True)
    if hashlib.sha256(envelope.payload).digest() != leaf.payload_hash:
        raise AttestationError("the envelope's payload does not hash to the leaf's payloadHash")
    recorded = {s.sig: key for s, key in _leaf_signatures(leaf)}
    if sorted(s.sig for s in envelope.signatures) != sorted(recorded):
        raise AttestationError("the envelope's signatures are not the leaf's")
    if isinstance(leaf, intoto002.IntotoEntry) and envelope.payload_type != leaf.payload_type:
        raise AttestationError("the envelope's payloadType is not the leaf's")
    message = envelope.pae()
    for i, s in enumerate(envelope.signatures):
        try:
            dsse.verify_pae_signature(recorded[s.sig], s.sig, message)
        except SignatureError as exc:
            raise EntrySignatureError(f"envelope signature {i} does not verify over the PAE "
                                      f"with the leaf's verifier: {exc}") from None
    try:
        statement = dsse.statement_of(envelope, "envelope.payload")
    except FormatError as exc:
        raise AttestationError(f"the envelope's in-toto statement is malformed: {exc}") from None
    return _Checked(replace(leaf, envelope=envelope, statement=statement), False)


def _leaf_signatures(leaf: AttestationEntry) -> list[tuple[Any, KeyMaterial]]:
    if isinstance(leaf, intoto002.IntotoEntry):
        return [(s, s.public_key) for s in leaf.signatures]
    return [(dsse.EnvelopeSignature(s.signature), s.verifier) for s in leaf.signatures]


def check_subject(statement: Statement | None, expect: Expectations, has_envelope: bool) -> None:
    """Binding 4: the artifact is a subject of the in-toto statement."""
    if expect.artifact is None and expect.digest is None:
        return
    if not has_envelope:
        raise AttestationError("the log returned no envelope with the entry: the statement's "
                               "subjects cannot be checked against the artifact")
    if statement is None:
        raise ArtifactMismatchError("the envelope's payload is not an in-toto statement: it "
                                    "names no artifact")
    subjects = dict.fromkeys(statement.subject_digests())
    wanted: list[tuple[str, str]] = []
    if expect.digest is not None:
        wanted.append((expect.digest[0], expect.digest[1].hex()))
    if expect.artifact is not None:
        algorithms = {a for a, _ in subjects if a in ("sha256", "sha384", "sha512")} or {"sha256"}
        found = [(a, artifact_digest(expect.artifact, a).hex()) for a in sorted(algorithms)]
        wanted.append(next((d for d in found if d in subjects), found[0]))
    for algorithm, value in wanted:
        if (algorithm, value) not in subjects:
            names = ", ".join(f"{a}:{v[:16]}…" for a, v in subjects) or "none"
            raise ArtifactMismatchError(f"artifact {algorithm}:{value} is not a subject of the "
                                        f"statement (subjects: {names})")


def matching_signer(verifiers: Sequence[KeyMaterial], expect: Expectations) -> KeyMaterial | None:
    """Binding 5: the verifier that is the expected key and/or carries the
    expected identity (None when no signer is expected)."""
    candidates = list(verifiers)
    if expect.key is not None:
        want = expected_key_hash(expect.key)
        candidates = [k for k in candidates if k.key_hash() == want]
        if not candidates:
            got = ", ".join(k.key_hash()[:16] + "…" for k in verifiers)
            raise KeyMismatchError(f"the envelope is signed by key(s) {got}, not the expected "
                                   f"key {want[:16]}…")
    if expect.wants_certificate:
        certified = [k for k in candidates if k.certificates]
        if not certified:
            raise IdentityMismatchError("an identity was expected, but no verifier of the "
                                        "envelope is a certificate")
        named = [k for k in certified if expect.identity is None or expect.identity in
                 (*k.identities.emails, *k.identities.uris, *k.identities.other_names)]
        if not named:
            seen = [n for k in certified for n in (*k.identities.emails, *k.identities.uris,
                                                   *k.identities.other_names)]
            raise IdentityMismatchError(f"the certificates name {seen}, not "
                                        f"{expect.identity!r}")
        issued = [k for k in named if expect.issuer is None or
                  k.identities.issuer == expect.issuer]
        if not issued:
            raise IdentityMismatchError(f"the certificate's OIDC issuer is "
                                        f"{named[0].identities.issuer!r}, not {expect.issuer!r}")
        candidates = issued
    if expect.key is None and not expect.wants_certificate:
        return None
    return candidates[0]


def verify_dsse_entry(entry: LogEntry, pinned: PinnedLog, expect: Expectations = Expectations(),
                      *, envelope: dsse.Envelope | None = None,
                      trusted: VerifiedCheckpoint | None = None,
                      consistency_proof: Sequence[bytes] | None = None) -> VerifiedEntry:
    """Every binding of a dsse 0.0.1 or intoto 0.0.2 entry, in order (see the
    module doc); raises the BindingError naming the first that fails.

    The envelope is the entry's ``attestation`` (as the log returned it) or,
    for a bundle, ``envelope``. Without either, the leaf's own bindings and
    the signer can still be verified, but an expected artifact cannot
    (AttestationError). The result's ``attestation`` is the parsed entry
    (verifiers, and the in-toto statement when the envelope was checked)."""
    check_leaf(entry)
    kind, version = entry_kind(entry.body)
    module = ATTESTATION_KINDS.get((kind, version))
    if module is None:
        raise EntryBodyError(f"expected a dsse 0.0.1 or intoto 0.0.2 entry, got {kind} {version}")
    leaf = _parse_leaf(module, entry.body)
    if entry.attestation is not None:
        checked = _Checked(_with_attestation(module, leaf, entry.attestation), True)
        if envelope is not None and checked.entry.envelope != envelope:
            raise AttestationError("the given envelope is not the one logged with the entry")
    elif envelope is not None:
        checked = _with_envelope(module, leaf, envelope)
    else:
        checked = _Checked(leaf, False)
    full = checked.entry
    check_subject(full.statement, expect, full.envelope is not None)
    signer = matching_signer(full.verifiers, expect)
    checkpoint = verify_log_entry(entry, pinned)
    if expect.wants_certificate and signer is not None:
        check_certificate_chain(signer, expect, entry.integrated_time)
    consistent = _check_trusted(checkpoint, pinned, trusted, consistency_proof)
    return VerifiedEntry(entry, checkpoint, kind, version, None, consistent, attestation=full,
                         envelope_hash_checked=checked.hash_checked)


def attestation_json(att: AttestationEntry) -> dict[str, Any]:
    """A JSON summary of a verified attestation: payload type, signers, and
    the in-toto statement's subjects, predicate type, provenance or SBOM."""
    out: dict[str, Any] = {
        "payloadHash": att.payload_hash.hex(),
        "envelopeHash": att.envelope_hash.hex(),
        "signers": [{"keySha256": k.key_hash(), "certificate": bool(k.certificates),
                     "emails": list(k.identities.emails), "uris": list(k.identities.uris),
                     "otherNames": list(k.identities.other_names),
                     "issuer": k.identities.issuer} for k in att.verifiers],
    }
    if att.envelope is not None:
        out["payloadType"] = att.envelope.payload_type
    st = att.statement
    if st is not None:
        out["statement"] = {
            "type": st.statement_type, "predicateType": st.predicate_type,
            "subjects": [{"name": s.name, "digest": s.digests()} for s in st.subjects]}
        if st.provenance is not None:
            p = st.provenance
            out["statement"]["provenance"] = {
                "slsaVersion": p.slsa_version, "builderId": p.builder_id,
                "buildType": p.build_type, "sourceRepository": p.source_repository,
                "sourceRef": p.source_ref, "sourceRevision": p.source_revision}
        if st.sbom is not None:
            out["statement"]["sbom"] = {"format": st.sbom.format,
                                        "specVersion": st.sbom.spec_version,
                                        "componentCount": st.sbom.component_count}
    return out
