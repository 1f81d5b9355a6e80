"""Signed notes (https://c2sp.org/signed-note; SPEC §3.2).

A signed note is a UTF-8 text ending in ``\\n``, a blank line, then one or
more signature lines ``— <key name> <base64(key ID4 || signature)>\\n`` (the
dash is U+2014 EM DASH followed by a space). The signed text ends at the last
blank line, exclusive of it.

This module parses, formats, signs and opens notes strictly; the key types
(verifiers, signers, key IDs, key strings) are in :mod:`tlog_client.notekeys`.

Parse errors raise :class:`~tlog_client.errors.FormatError` naming the field;
signature failures raise :class:`~tlog_client.errors.SignatureError`
subclasses. Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .encoding import b64decode_std, b64encode_std
from .errors import FormatError, SignatureError
from .notekeys import (CONTROL_CHARS, KEY_ID_SIZE, NoteSigner, NoteVerifier, check_key_id,
                       check_key_name, encode_utf8)

SPEC_URL = "https://c2sp.org/signed-note"

DEFAULT_MAX_NOTE_SIZE = 1 << 20
DEFAULT_MAX_SIGNATURES = 100
MIN_ACCEPTED_SIGNATURES = 16  # signed-note: verifiers MUST accept 16

_SIG_PREFIX = "\u2014 "


# --------------------------------------------------------------------------
# Errors


class InvalidNoteSignatureError(SignatureError):
    """A signature line of a known (name, key ID) did not verify."""

    def __init__(self, name: str, key_id: bytes, reason: str) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id.hex()}: {reason}")
        self.name = name
        self.key_id = key_id


class UnverifiedNoteError(SignatureError):
    """The note parsed, but no signature line came from a known key.

    ``note`` is the parsed, *unverified* note (its text must not be trusted).
    """

    def __init__(self, note: Note) -> None:
        super().__init__("note has no signature from a known key")
        self.note = note



def check_note_text(text: str, field: str = "note text") -> bytes:
    """Check a note text and return its UTF-8 bytes.

    signed-note §Format: valid UTF-8 (no lone surrogates), no control
    characters but ``\\n``, ends with ``\\n``.
    """
    if not isinstance(text, str):
        raise FormatError(field, "must be a str")
    if not text.endswith("\n"):
        raise FormatError(field, "does not end with a newline")
    match = CONTROL_CHARS.search(text)
    if match:
        raise FormatError(field, f"control character U+{ord(match.group()):04X} at {match.start()}")
    return encode_utf8(text, field)



# --------------------------------------------------------------------------
# Notes


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name, "signature name")
        check_key_id(self.key_id, "signature key ID")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise FormatError("signature", "must be non-empty bytes")

    def to_line(self) -> str:
        """``— <name> <base64(key ID || signature)>\\n``."""
        return f"{_SIG_PREFIX}{self.name} {b64encode_std(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature line and the known verifier that verified it.

    ``timestamp`` is the cosigned time for cosignatures, else None.
    """

    signature: NoteSignature
    verifier: NoteVerifier
    timestamp: int | None = None


@dataclass(frozen=True)
class Note:
    """A note text and its signature lines, as opened by :func:`open_note`.

    ``signatures`` holds every line in order (so :meth:`to_bytes` reproduces
    the message); ``verified`` one entry per known verifier that verified;
    ``unverified`` the lines from unknown keys.
    """

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[VerifiedSignature, ...] = ()
    unverified: tuple[NoteSignature, ...] = ()

    def to_bytes(self) -> bytes:
        """The signed note message, byte-identical to what was opened."""
        return format_note(self.text, self.signatures)

    def verification_by(self, verifier: NoteVerifier) -> VerifiedSignature:
        """The verified signature of ``verifier``; SignatureError if absent."""
        for verified in self.verified:
            if verified.verifier is verifier:
                return verified
        raise SignatureError(f"note is not signed by {verifier!r}")


def format_note(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    """Text, blank line, signature lines. Preconditions: valid text, >= 1 line."""
    body = check_note_text(text)
    if not signatures:
        raise FormatError("signatures", "a signed note needs at least one signature")
    return body + b"\n" + "".join(sig.to_line() for sig in signatures).encode("utf-8")


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """Sign ``text`` (which must end in ``\\n``) with every signer, in order.

    https://c2sp.org/signed-note §Format. Raises FormatError for a bad text,
    no signer or two signers with the same (name, key ID).
    """
    return format_note(text, _sign_all(check_note_text(text), list(signers)))


def append_signatures(note: Note, signers: Iterable[NoteSigner]) -> bytes:
    """Re-emit ``note`` with new signatures appended (e.g. a cosignature).

    Existing lines with the (name, key ID) of a new signer are dropped.
    """
    body = check_note_text(note.text)
    new = _sign_all(body, list(signers))
    replaced = {(sig.name, sig.key_id) for sig in new}
    kept = [sig for sig in note.signatures if (sig.name, sig.key_id) not in replaced]
    return format_note(note.text, kept + new)


def _sign_all(body: bytes, signers: list[NoteSigner]) -> list[NoteSignature]:
    if not signers:
        raise FormatError("signers", "at least one signer is required")
    if len({(s.name, s.key_id) for s in signers}) != len(signers):
        raise FormatError("signers", "two signers share a name and key ID")
    return [NoteSignature(s.name, s.key_id, s.sign(body)) for s in signers]


def open_note(
    msg: bytes,
    verifiers: Iterable[NoteVerifier],
    *,
    max_size: int = DEFAULT_MAX_NOTE_SIZE,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> Note:
    """Parse a signed note and verify it against known verifiers.

    https://c2sp.org/signed-note §Signatures: lines of unknown (name, key ID)
    are ignored; every line of a known key must verify (else
    :class:`InvalidNoteSignatureError`); at least one must (else
    :class:`UnverifiedNoteError`). Malformed input, more than
    ``max_signatures`` lines or more than ``max_size`` bytes raise
    FormatError. ``max_signatures`` must be at least 16.
    """
    if max_signatures < MIN_ACCEPTED_SIGNATURES:
        raise ValueError("max_signatures must be at least 16 (signed-note)")
    known = _index_verifiers(verifiers)
    text, signatures = _parse_note(msg, max_size, max_signatures)
    body = text.encode("utf-8")
    verified: dict[tuple[str, bytes], VerifiedSignature] = {}
    unverified: list[NoteSignature] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        record = _verify_line(verifier, body, sig)
        verified.setdefault((sig.name, sig.key_id), record)
    note = Note(text, signatures, tuple(verified.values()), tuple(unverified))
    if not verified:
        raise UnverifiedNoteError(note)
    return note


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if key in known:
            raise FormatError("verifiers", f"ambiguous key {key[0]}+{key[1].hex()}")
        known[key] = verifier
    return known


def _verify_line(verifier: NoteVerifier, body: bytes, sig: NoteSignature) -> VerifiedSignature:
    try:
        verifier.verify(body, sig.signature)
        timestamp = verifier.timestamp(sig.signature)
    except SignatureError as err:
        raise InvalidNoteSignatureError(sig.name, sig.key_id, str(err)) from err
    return VerifiedSignature(sig, verifier, timestamp)


def _parse_note(
    msg: bytes, max_size: int, max_signatures: int
) -> tuple[str, tuple[NoteSignature, ...]]:
    """Split and parse a message; no verification (signed-note §Format)."""
    if not isinstance(msg, (bytes, bytearray, memoryview)):
        raise FormatError("note", "must be bytes")
    if len(msg) > max_size:
        raise FormatError("note", f"is {len(msg)} bytes, more than the limit {max_size}")
    try:
        decoded = bytes(msg).decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError("note", f"invalid UTF-8 at byte {err.start}") from None
    match = CONTROL_CHARS.search(decoded)
    if match:
        raise FormatError("note", f"control character U+{ord(match.group()):04X}")
    split = decoded.rfind("\n\n")
    if split < 0:
        raise FormatError("note", "no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise FormatError("note", "signature block missing or not ending in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > max_signatures:
        raise FormatError("note", f"{len(lines)} signatures, more than the limit {max_signatures}")
    return text, tuple(_parse_signature_line(line, i) for i, line in enumerate(lines))


def _parse_signature_line(line: str, index: int) -> NoteSignature:
    """``— <name> <base64(key ID || signature)>`` with a >= 1-byte signature."""
    field = f"signature line {index + 1}"
    if not line.startswith(_SIG_PREFIX):
        raise FormatError(field, "does not start with an em dash and a space")
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep:
        raise FormatError(field, "missing the space between name and signature")
    check_key_name(name, f"{field} name")
    raw = b64decode_std(b64, f"{field} signature")
    if len(raw) <= KEY_ID_SIZE:
        raise FormatError(f"{field} signature", "shorter than a key ID plus one byte")
    return NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:])

