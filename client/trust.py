"""The pinned log: the one trust anchor every client decision starts from.

A client is configured with the log's public key out of band (a file, never
fetched from the log being verified). :class:`PinnedLog` holds that key and the
log's origin, and turns a signed checkpoint (note bytes) into a
:class:`VerifiedCheckpoint` or raises. The origin may be given, or learnt from
the first checkpoint that verifies under the pinned key: the origin is the
first line of the signed text and the log's key name (SPEC §3.2), so a
signature by the pinned key authenticates it.

Pure module: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .bindings import CheckpointKeyError
from .checkpoint import Checkpoint, CheckpointOriginError, open_checkpoint
from .errors import FormatError, SignatureError
from .keys import load_public_key, spki_der
from .notekeys import check_key_name, log_verifiers

LogPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

__all__ = ["CheckpointKeyError", "LogPublicKey", "PinnedLog", "VerifiedCheckpoint",
           "load_log_key"]


def load_log_key(pem: bytes | str | LogPublicKey, field: str = "log key") -> LogPublicKey:
    """The log key from PEM (one PUBLIC KEY block) or a key object: Ed25519
    or ECDSA P-256. Raises FormatError."""
    if isinstance(pem, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        key = pem
    else:
        if isinstance(pem, str):
            pem = pem.encode("ascii", "replace")
        key = load_public_key(pem, field)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise FormatError(field, "a log key is Ed25519 or ECDSA P-256")


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose note verified under the pinned log key.

    ``note`` is the signed note exactly as served (evidence); ``checkpoint``
    its parsed body. Only :meth:`PinnedLog.open_checkpoint` makes these."""

    checkpoint: Checkpoint
    note: bytes

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root_hash(self) -> bytes:
        return self.checkpoint.root_hash

    def to_json(self) -> dict[str, object]:
        return {"origin": self.origin, "treeSize": self.size, "rootHash": self.root_hash.hex(),
                "checkpoint": self.note.decode("utf-8")}


class PinnedLog:
    """The pinned log key and the log's origin (known, or learnt once)."""

    def __init__(self, public_key: bytes | str | LogPublicKey, origin: str | None = None) -> None:
        self.public_key = load_log_key(public_key)
        self._origin = check_key_name(origin, "origin") if origin is not None else None
        self.log_id = hashlib.sha256(spki_der(self.public_key)).hexdigest()
        """hex SHA-256 of the DER SPKI of the log key (SPEC §3.4)."""

    @property
    def origin(self) -> str | None:
        """The log's origin, or None until a checkpoint has verified."""
        return self._origin

    @property
    def key_id(self) -> bytes:
        """The raw logID (32 bytes), as Sigstore bundles carry it."""
        return bytes.fromhex(self.log_id)

    def open_checkpoint(self, note: bytes | str) -> VerifiedCheckpoint:
        """Verify a signed checkpoint under the pinned key and return it.

        The origin must be the pinned one; if none is pinned yet, the
        checkpoint's own origin is used to name the key and, once the
        signature verifies, becomes the pinned origin. Raises
        :class:`CheckpointKeyError` (not signed by the pinned key, or another
        origin) or FormatError (malformed)."""
        if isinstance(note, str):
            note = note.encode("utf-8")
        if not isinstance(note, (bytes, bytearray)):
            raise FormatError("checkpoint", "must be bytes")
        note = bytes(note)
        origin = self._origin if self._origin is not None else _claimed_origin(note)
        try:
            checkpoint, _ = open_checkpoint(note, log_verifiers(self.public_key, origin), origin)
        except CheckpointOriginError as exc:
            raise CheckpointKeyError(f"checkpoint is for another log: {exc}") from None
        except SignatureError as exc:
            raise CheckpointKeyError(f"checkpoint is not signed by the pinned log key "
                                     f"{self.log_id[:16]}… ({exc})") from None
        if self._origin is None:
            self._origin = checkpoint.origin
        return VerifiedCheckpoint(checkpoint, note)


def _claimed_origin(note: bytes) -> str:
    """The (unverified) origin line of a note, used only to name the key."""
    first, sep, _ = note.partition(b"\n")
    try:
        origin = first.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("checkpoint", "origin is not UTF-8") from None
    if not sep:
        raise FormatError("checkpoint", "no origin line")
    try:
        return check_key_name(origin, "origin")
    except FormatError:
        raise CheckpointKeyError(f"checkpoint origin {origin!r:.60} cannot be a key name; "
                                 "it is not signed by the pinned log key") from None
