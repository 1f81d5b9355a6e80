"""Typed errors of the entry verification recipe, one per binding.

Verifying an entry binds artifact ↔ entry ↔ key ↔ proof ↔ checkpoint ↔
pinned key (SPEC §1, issue 4 §2). When one link fails, the error says which:
every class here is a :class:`~tlog_client.errors.VerificationError` with a
``binding`` attribute naming the link, so a CLI can report it and a test can
check that exactly that link was rejected.

=========================  ===========  =======================================
class                      binding      what failed
=========================  ===========  =======================================
ArtifactMismatchError      artifact     the artifact's digest is not the entry's
EntrySignatureError        signature    the entry's signature does not verify
KeyMismatchError           key          the entry is signed by another key
IdentityMismatchError      identity     the certificate names another identity
CertificateTrustError      certificate  the certificate does not chain to a root
EntryBodyError             body         the body is malformed / not canonical
LeafHashError              leaf         UUID is not H(0x00 || body)
InclusionBindingError      inclusion    the proof does not lead to the root
CheckpointKeyError         checkpoint   not signed by the pinned log key
CheckpointMismatchError    checkpoint   the proof's tree is not the checkpoint's
SETError                   set          the SET or logID does not verify
BundleMismatchError        bundle       bundle fields disagree with the entry
AttestationError           attestation  the envelope is not the one the leaf binds
ResponseMismatchError      response     the log answered about something else
=========================  ===========  =======================================

Consistency failures (split views) are in :mod:`tlog_client.state`.
"""

from __future__ import annotations

from .errors import InclusionProofError, SignatureError, VerificationError

__all__ = [
    "ArtifactMismatchError",
    "AttestationError",
    "BindingError",
    "BundleMismatchError",
    "CertificateTrustError",
    "CheckpointKeyError",
    "CheckpointMismatchError",
    "EntryBodyError",
    "EntrySignatureError",
    "IdentityMismatchError",
    "InclusionBindingError",
    "KeyMismatchError",
    "LeafHashError",
    "ResponseMismatchError",
    "SETError",
]


class BindingError(VerificationError):
    """One binding of the verification recipe failed; ``binding`` names it."""

    binding = "entry"


class ArtifactMismatchError(BindingError):
    binding = "artifact"


class EntrySignatureError(BindingError, SignatureError):
    binding = "signature"


class KeyMismatchError(BindingError):
    binding = "key"


class IdentityMismatchError(BindingError):
    binding = "identity"


class CertificateTrustError(BindingError):
    binding = "certificate"


class EntryBodyError(BindingError):
    binding = "body"


class LeafHashError(BindingError):
    binding = "leaf"


class InclusionBindingError(BindingError, InclusionProofError):
    binding = "inclusion"


class CheckpointKeyError(BindingError, SignatureError):
    binding = "checkpoint"


class CheckpointMismatchError(BindingError):
    binding = "checkpoint"


class SETError(BindingError, SignatureError):
    binding = "set"


class BundleMismatchError(BindingError):
    binding = "bundle"


class ResponseMismatchError(BindingError):
    binding = "response"


class AttestationError(BindingError):
    """The DSSE envelope (attestation) is missing, malformed, or not the one
    whose hash the leaf records."""

    binding = "attestation"
