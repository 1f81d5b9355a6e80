"""The entry verification recipe: every binding, or a typed error naming the one that failed.

A log entry is worth something only if every link holds (the lesson of the
cosign, sigstore-java and sigstore-python advisories; issue 4 §2):

1. leaf: the entry's UUID is H(0x00 || body), so the body is what the log holds;
2. signature: the signature in the body verifies over the digest in the body
   with the key in the body (and the body is canonical);
3. artifact: the artifact's digest is the body's digest;
4. key / identity: the expected key, or the expected certificate identity
   (e-mail / URI and OIDC issuer), is the one in the body;
5. inclusion: the inclusion proof leads from the leaf to the proof's root;
6. checkpoint: the checkpoint is signed by the PINNED log key (never a key the
   log hands out) and is the tree the proof is for (size and root);
7. SET: the signed entry timestamp verifies under the pinned key, which makes
   ``integratedTime`` (and the logIndex) signed;
8. certificate: for an identity, the certificate chains to a trusted root and
   was valid at the (now signed) integrated time;
9. consistency: the checkpoint is consistent with the trusted state (when the
   caller holds one; see :mod:`tlog_client.state`).

Each failure raises the matching :mod:`tlog_client.bindings` error. Nothing is
returned before every requested check passed; the result only carries values
that were verified. Pure module: no I/O.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from .bindings import (
    ArtifactMismatchError,
    CertificateTrustError,
    CheckpointMismatchError,
    EntryBodyError,
    EntrySignatureError,
    IdentityMismatchError,
    InclusionBindingError,
    KeyMismatchError,
    LeafHashError,
    SETError,
)
from .errors import FormatError, ProofError, SignatureError
from .hashedrekord import KIND as HASHEDREKORD
from .hashedrekord import HashedRekord, parse_canonical
from .hashing import leaf_hash
from .jsonstrict import expect_object, expect_str, loads_strict
from .keys import CERT_PARSE_ERRORS, HASH_ALGORITHMS, KeyMaterial, key_hash, parse_key_material
from .rekor import LogEntry, uuid_of, verify_entry_set
from .state import check_consistency, proof_sizes
from .trust import PinnedLog, VerifiedCheckpoint
from .verify import verify_inclusion

__all__ = [
    "Expectations",
    "VerifiedEntry",
    "artifact_digest",
    "entry_kind",
    "verify_entry",
    "verify_hashedrekord_entry",
    "verify_log_entry",
]


def artifact_digest(data: bytes, algorithm: str = "sha256") -> bytes:
    """The digest of an artifact's bytes with a hashedrekord algorithm name."""
    if algorithm not in HASH_ALGORITHMS:
        raise FormatError("algorithm", f"{algorithm!r:.20} is not sha256, sha384 or sha512")
    return hashlib.new(algorithm, data).digest()


@dataclass(frozen=True)
class Expectations:
    """What the verifier expects of an entry (each None = not checked).

    ``artifact`` (bytes, digested with the entry's algorithm) or ``digest``
    (``(algorithm, raw digest)``) binds the artifact; ``key`` (PEM, a public
    key or :class:`KeyMaterial`) the signing key; ``identity`` (a SAN e-mail,
    URI or Fulcio otherName) and ``issuer`` (the Fulcio OIDC issuer) the
    certificate, which must then chain to one of ``ca_roots``."""

    artifact: bytes | None = None
    digest: tuple[str, bytes] | None = None
    key: bytes | KeyMaterial | object | None = None
    identity: str | None = None
    issuer: str | None = None
    ca_roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if self.digest is not None:
            algorithm, value = self.digest
            size = HASH_ALGORITHMS.get(algorithm)
            if size is None or not isinstance(value, bytes) or len(value) != size().digest_size:
                raise FormatError("digest", f"not a {algorithm} digest")

    @property
    def wants_certificate(self) -> bool:
        return self.identity is not None or self.issuer is not None


@dataclass(frozen=True)
class VerifiedEntry:
    """An entry that passed the recipe. ``record`` is the parsed hashedrekord
    (None for another kind); ``attestation`` the parsed dsse / intoto entry
    (:class:`~tlog_client.dsse.DsseEntry` or
    :class:`~tlog_client.intoto002.IntotoEntry`, with its verified envelope
    and in-toto statement when the envelope was checked: see
    :mod:`tlog_client.dsseverify`); ``integrated_time`` is covered by the verified
    SET; ``consistent_with`` is the trusted checkpoint size it was checked
    against (None when no trusted state was given); ``created`` says, after
    a submission, whether the log added it (False: it was already logged)."""

    entry: LogEntry
    checkpoint: VerifiedCheckpoint
    kind: str
    api_version: str
    record: HashedRekord | None = None
    consistent_with: int | None = None
    created: bool | None = None
    attestation: Any = None
    envelope_hash_checked: bool | None = None

    @property
    def log_index(self) -> int:
        return self.entry.log_index

    @property
    def uuid(self) -> str:
        return self.entry.uuid

    @property
    def integrated_time(self) -> int:
        return self.entry.integrated_time

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "logIndex": self.log_index, "uuid": self.uuid, "entryRef": self.entry.ref.key,
            "kind": self.kind, "apiVersion": self.api_version,
            "integratedTime": self.integrated_time, "logID": self.entry.log_id,
            "checkpoint": {"origin": self.checkpoint.origin, "treeSize": self.checkpoint.size,
                           "rootHash": self.checkpoint.root_hash.hex()},
            "consistentWithTrustedSize": self.consistent_with,
        }
        if self.created is not None:
            out["created"] = self.created
        if self.record is not None:
            ids = self.record.key.identities
            out["artifact"] = {"algorithm": self.record.algorithm,
                               "digest": self.record.digest.hex()}
            out["signer"] = {"keySha256": self.record.key.key_hash(),
                             "certificate": bool(self.record.key.certificates),
                             "emails": list(ids.emails), "uris": list(ids.uris),
                             "otherNames": list(ids.other_names), "issuer": ids.issuer}
        if self.attestation is not None:
            from .dsseverify import attestation_json
            out["attestation"] = attestation_json(self.attestation)
            out["attestation"]["envelopeHashChecked"] = self.envelope_hash_checked
        return out


# -- the kind-independent bindings (leaf, inclusion, checkpoint, SET) ------------

def entry_kind(body: bytes) -> tuple[str, str]:
    """(kind, apiVersion) of a canonical body, or EntryBodyError."""
    try:
        top = expect_object(loads_strict(body), "", required=("apiVersion", "kind", "spec"))
        return expect_str(top["kind"], "kind"), expect_str(top["apiVersion"], "apiVersion")
    except FormatError as exc:
        raise EntryBodyError(f"entry body is not a Rekor entry: {exc}") from None


def check_leaf(entry: LogEntry) -> None:
    """Binding 1: the UUID the log named is the leaf hash of the body."""
    computed = uuid_of(entry.body)
    if computed != entry.uuid:
        raise LeafHashError(f"entry UUID {entry.uuid} is not H(0x00 || body) = {computed}: "
                            "the body is not the one the log committed to")


def verify_log_entry(entry: LogEntry, pinned: PinnedLog) -> VerifiedCheckpoint:
    """Bindings 1, 5, 6 and 7 for an entry of any kind; returns its verified
    checkpoint."""
    check_leaf(entry)
    proof = entry.inclusion_proof
    if proof is None:
        raise InclusionBindingError("entry has no inclusion proof")
    if proof.log_index != entry.log_index:
        raise InclusionBindingError(f"inclusion proof is for index {proof.log_index}, "
                                    f"the entry is at {entry.log_index}")
    try:
        verify_inclusion(entry.log_index, proof.tree_size, leaf_hash(entry.body),
                         proof.hashes, proof.root_hash)
    except ProofError as exc:
        raise InclusionBindingError(f"inclusion proof of entry {entry.log_index} in tree "
                                    f"{proof.tree_size} fails: {exc}") from None
    checkpoint = pinned.open_checkpoint(proof.checkpoint)
    if checkpoint.size != proof.tree_size or checkpoint.root_hash != proof.root_hash:
        raise CheckpointMismatchError(
            f"the signed checkpoint is for tree {checkpoint.size} "
            f"({checkpoint.root_hash.hex()[:16]}…), the proof for tree {proof.tree_size} "
            f"({proof.root_hash.hex()[:16]}…)")
    try:
        verify_entry_set(entry, pinned.public_key)
    except (SignatureError, FormatError) as exc:
        raise SETError(f"signed entry timestamp: {exc}") from None
    return checkpoint


# -- hashedrekord: signature, artifact, key, identity -------------------------

def parse_hashedrekord_body(body: bytes) -> HashedRekord:
    """Binding 2: parse the canonical body and verify its signature."""
    try:
        return parse_canonical(body)
    except SignatureError as exc:
        raise EntrySignatureError(f"the entry's signature does not verify over its digest "
                                  f"with its key: {exc}") from None
    except FormatError as exc:
        raise EntryBodyError(f"entry body: {exc}") from None


def check_artifact(record: HashedRekord, expect: Expectations) -> None:
    """Binding 3: the artifact's digest is the entry's."""
    if expect.artifact is not None:
        if artifact_digest(expect.artifact, record.algorithm) != record.digest:
            raise ArtifactMismatchError(f"the artifact's {record.algorithm} digest is not the "
                                        f"entry's ({record.digest.hex()})")
    if expect.digest is not None:
        algorithm, value = expect.digest
        if algorithm != record.algorithm:
            raise ArtifactMismatchError(f"the entry signs a {record.algorithm} digest; a "
                                        f"{algorithm} digest was given")
        if value != record.digest:
            raise ArtifactMismatchError(f"artifact digest {algorithm}:{value.hex()} is not "
                                        f"the entry's {record.algorithm}:{record.digest.hex()}")


def expected_key_hash(key: object) -> str:
    """hex SHA-256 of the DER SPKI of an expected key (PEM, key or material)."""
    if isinstance(key, (bytes, str)):
        pem = key.encode("ascii", "replace") if isinstance(key, str) else key
        key = parse_key_material(pem, "expected key")
    try:
        return key_hash(key)  # type: ignore[arg-type]
    except (AttributeError, TypeError, ValueError):
        raise FormatError("expected key", f"not a public key: {type(key).__name__}") from None


def check_signer(record: HashedRekord, expect: Expectations) -> None:
    """Binding 4: the expected key or identity is the entry's."""
    if expect.key is not None:
        want = expected_key_hash(expect.key)
        got = record.key.key_hash()
        if want != got:
            raise KeyMismatchError(f"the entry is signed by key {got[:16]}…, not the expected "
                                   f"key {want[:16]}…")
    if expect.wants_certificate:
        ids = record.key.identities
        if not record.key.certificates:
            raise IdentityMismatchError("an identity was expected, but the entry is signed by "
                                        "a bare key, not a certificate")
        if expect.identity is not None:
            names = (*ids.emails, *ids.uris, *ids.other_names)
            if expect.identity not in names:
                raise IdentityMismatchError(f"the certificate names {list(names)}, not "
                                            f"{expect.identity!r}")
        if expect.issuer is not None and ids.issuer != expect.issuer:
            raise IdentityMismatchError(f"the certificate's OIDC issuer is {ids.issuer!r}, "
                                        f"not {expect.issuer!r}")


def check_certificate_chain(key: KeyMaterial, expect: Expectations, at: int) -> None:
    """Binding 8: the entry's certificate chains to one of ``expect.ca_roots``
    at time ``at`` (the SET-verified integrated time), with code-signing use."""
    leaf = key.leaf
    if leaf is None:
        raise IdentityMismatchError("the entry has no certificate")
    if not expect.ca_roots:
        raise CertificateTrustError("an identity check needs trusted CA roots: without them "
                                    "anyone can make a certificate naming any identity")
    from cryptography.x509.verification import (Criticality, ExtensionPolicy, PolicyBuilder,
                                                Store)
    from cryptography.x509.verification import VerificationError as X509Error
    when = datetime.datetime.fromtimestamp(at, tz=datetime.timezone.utc)
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (PolicyBuilder().store(Store(list(expect.ca_roots))).time(when)
                .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                .build_client_verifier())
    intermediates = [*key.certificates[1:], *expect.intermediates]
    try:
        verifier.verify(leaf, intermediates)
    except (X509Error, x509.UnsupportedGeneralNameType, ValueError) as exc:
        raise CertificateTrustError(f"the entry's certificate does not chain to a trusted root "
                                    f"at the integrated time {when.isoformat()}: {exc}") from None
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateTrustError("the certificate is not for code signing (no EKU)")


# -- the whole recipe -----------------------------------------------------------

def verify_hashedrekord_entry(entry: LogEntry, pinned: PinnedLog,
                              expect: Expectations = Expectations(), *,
                              trusted: VerifiedCheckpoint | None = None,
                              consistency_proof: Sequence[bytes] | None = None,
                              ) -> VerifiedEntry:
    """Every binding of a hashedrekord entry, in order (see the module doc);
    raises the BindingError (or state error) naming the first that fails.

    ``trusted``, if given, is the caller's trusted checkpoint: the entry's
    checkpoint must be consistent with it, using ``consistency_proof``
    between their sizes; with equal sizes no proof is needed. Without a proof
    for different sizes the check is not made and ``consistent_with`` stays
    None (offline bundles)."""
    check_leaf(entry)
    kind, version = entry_kind(entry.body)
    if kind != HASHEDREKORD:
        raise EntryBodyError(f"expected a hashedrekord entry, got {kind} {version}")
    record = parse_hashedrekord_body(entry.body)
    check_artifact(record, expect)
    check_signer(record, expect)
    checkpoint = verify_log_entry(entry, pinned)
    if expect.wants_certificate:
        check_certificate_chain(record.key, expect, entry.integrated_time)
    consistent = _check_trusted(checkpoint, pinned, trusted, consistency_proof)
    return VerifiedEntry(entry, checkpoint, kind, version, record, consistent)


def verify_entry(entry: LogEntry, pinned: PinnedLog, expect: Expectations = Expectations(),
                 *, trusted: VerifiedCheckpoint | None = None,
                 consistency_proof: Sequence[bytes] | None = None) -> VerifiedEntry:
    """Verify an entry of any kind: the full hashedrekord recipe for
    hashedrekord entries, the attestation recipe of
    :mod:`tlog_client.dsseverify` for dsse 0.0.1 and intoto 0.0.2 entries;
    for other kinds, the log bindings (leaf, inclusion, checkpoint, SET), and
    then no artifact, key or identity may be expected (this client cannot
    check them for that kind)."""
    check_leaf(entry)
    kind, version = entry_kind(entry.body)
    if kind == HASHEDREKORD:
        return verify_hashedrekord_entry(entry, pinned, expect, trusted=trusted,
                                         consistency_proof=consistency_proof)
    from .dsseverify import ATTESTATION_KINDS, verify_dsse_entry
    if (kind, version) in ATTESTATION_KINDS:
        return verify_dsse_entry(entry, pinned, expect, trusted=trusted,
                                 consistency_proof=consistency_proof)
    if expect != Expectations():
        raise EntryBodyError(f"cannot check an artifact, key or identity of a {kind} entry")
    checkpoint = verify_log_entry(entry, pinned)
    consistent = _check_trusted(checkpoint, pinned, trusted, consistency_proof)
    return VerifiedEntry(entry, checkpoint, kind, version, None, consistent)


def _check_trusted(checkpoint: VerifiedCheckpoint, pinned: PinnedLog,
                   trusted: VerifiedCheckpoint | None,
                   proof: Sequence[bytes] | None) -> int | None:
    if trusted is None:
        return None
    if proof_sizes(trusted.size, checkpoint.size) is not None and proof is None:
        return None
    check_consistency(trusted, checkpoint, proof or (), pinned.log_id)
    return trusted.size


def load_ca_roots(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Parse a PEM bundle of trusted CA certificates (FormatError if none)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except CERT_PARSE_ERRORS as exc:
        raise FormatError("ca roots", f"not a PEM certificate bundle: {exc}") from None
    if not certs:
        raise FormatError("ca roots", "no certificate found")
    return tuple(certs)


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
