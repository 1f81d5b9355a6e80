"""Typed errors of the verification core.

Parsing raises :class:`FormatError` (a ``ValueError``) naming the offending
field; verification raises a :class:`VerificationError` subclass. Nothing in
this package reports a failed check by returning ``False``.
"""

from __future__ import annotations


class TlogError(Exception):
    """Base of every error raised by tlog_client."""


class FormatError(TlogError, ValueError):
    """Input that does not follow its format; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class VerificationError(TlogError):
    """A cryptographic or structural check failed."""


class ProofError(VerificationError):
    """An inclusion or consistency proof is malformed or does not verify."""


class InclusionProofError(ProofError):
    """An inclusion proof is malformed or leads to another root."""


class ConsistencyProofError(ProofError):
    """A consistency proof is malformed or does not link the two roots."""


class RootMismatchError(ProofError):
    """A recomputed root differs from the expected one."""

    def __init__(self, message: str, expected: bytes, computed: bytes) -> None:
        super().__init__(f"{message}: expected {expected.hex()}, computed {computed.hex()}")
        self.expected = expected
        self.computed = computed


class SignatureError(VerificationError):
    """A signature (note, SET, entry) is missing, unknown or does not verify."""
