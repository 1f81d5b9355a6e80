"""Checkpoints (https://c2sp.org/tlog-checkpoint; SPEC §3.2).

A checkpoint is the text of a signed note::

    <origin>\\n<tree size>\\n<base64 root hash>\\n[<extension line>\\n]*

The size is a canonical ASCII decimal (no sign, space, ``_``, leading zero
or non-ASCII digit), the root hash standard padded base64 of exactly 32
bytes, and extension lines are non-empty. Parsing is strict and
``parse_checkpoint(cp.to_text()) == cp`` for every valid ``cp``;
``parse_checkpoint(text).to_text() == text`` for every accepted ``text``.
Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .encoding import MAX_INT64, b64decode_std, b64encode_std, parse_decimal
from .errors import FormatError, VerificationError
from .note import (
    DEFAULT_MAX_NOTE_SIZE,
    DEFAULT_MAX_SIGNATURES,
    Note,
    check_note_text,
    open_note,
    sign_note,
)
from .notekeys import NoteSigner, NoteVerifier

__all__ = [
    "Checkpoint",
    "CheckpointOriginError",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

SPEC_URL = "https://c2sp.org/tlog-checkpoint"
ROOT_HASH_SIZE = 32


class CheckpointOriginError(VerificationError):
    """A validly signed checkpoint names another log (origin) than expected."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"checkpoint origin is {found!r:.80}, expected {expected!r:.80}")
        self.expected = expected
        self.found = found


def _check_line(value: object, field: str) -> str:
    """A non-empty single line with no control characters."""
    if not isinstance(value, str) or not value:
        raise FormatError(field, "must be a non-empty string")
    if "\n" in value:
        raise FormatError(field, "must be a single line")
    check_note_text(value + "\n", field)
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, 32-byte RFC 6962 root hash, extension lines.

    Construction validates every field (FormatError naming it), so a
    Checkpoint always formats to text that :func:`parse_checkpoint` accepts.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if type(self.size) is not int or not 0 <= self.size <= MAX_INT64:
            raise FormatError("size", f"must be an int in [0, 2^63-1], not {self.size!r:.40}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_SIZE:
            raise FormatError("root_hash", f"must be {ROOT_HASH_SIZE} bytes")
        if isinstance(self.extensions, str):
            raise FormatError("extensions", "must be a sequence of lines, not a str")
        extensions = tuple(self.extensions)
        for i, line in enumerate(extensions):
            _check_line(line, f"extension line {i + 1}")
        object.__setattr__(self, "extensions", extensions)

    def to_text(self) -> str:
        """The checkpoint body (note text), ending in ``\\n``."""
        lines = [self.origin, str(self.size), b64encode_std(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body strictly (tlog-checkpoint §Note text).

    Precondition: ``text`` is the note text (signatures already split off),
    ending with ``\\n``. Raises FormatError naming the bad field.
    """
    check_note_text(text, "checkpoint")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint", f"has {len(lines)} lines, expected at least 3")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise FormatError("origin", "is empty")
    size = parse_decimal(size_text, "size")
    root_hash = b64decode_std(root_text, "root_hash", length=ROOT_HASH_SIZE)
    for i, line in enumerate(extensions):
        if not line:
            raise FormatError(f"extension line {i + 1}", "is empty")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def open_checkpoint(
    msg: bytes,
    verifiers: Iterable[NoteVerifier],
    origin: str,
    *,
    max_size: int = DEFAULT_MAX_NOTE_SIZE,
    max_signatures: int = DEFAULT_MAX_SIGNATURES,
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint and check it is for the log ``origin``.

    ``verifiers`` should be the log's own keys (see
    :func:`tlog_client.notekeys.log_verifiers`); cosigner quorum is a separate
    policy. Raises SignatureError subclasses (see :func:`open_note`),
    FormatError, or :class:`CheckpointOriginError`.
    """
    note = open_note(msg, verifiers, max_size=max_size, max_signatures=max_signatures)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise CheckpointOriginError(origin, checkpoint.origin)
    return checkpoint, note


def sign_checkpoint(checkpoint: Checkpoint, signers: Iterable[NoteSigner]) -> bytes:
    """The signed note of ``checkpoint`` (see :func:`tlog_client.note.sign_note`)."""
    return sign_note(checkpoint.to_text(), signers)
