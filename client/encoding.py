"""Strict decoders for the text encodings on the wire (SPEC §3.2, §6).

Python's ``int()`` accepts " 42", "+42", "4_2" and non-ASCII digits, and
``base64.b64decode`` silently drops characters outside the alphabet. None of
that is acceptable in a transparency log, so every decimal, base64 and hex
value read from outside goes through one of these functions. Each raises
:class:`~tlog_client.errors.FormatError` naming ``field``.
"""

from __future__ import annotations

import base64
import binascii
import re

from .errors import FormatError

_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_STD_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")

MAX_INT64 = (1 << 63) - 1


def parse_decimal(text: str, field: str, *, maximum: int = MAX_INT64) -> int:
    """Parse a canonical non-negative ASCII decimal: no sign, space, ``_`` or
    leading zero; at most ``maximum`` (default 2^63-1)."""
    if not isinstance(text, str) or not _DECIMAL.match(text) or len(text) > 20:
        raise FormatError(field, f"not a canonical decimal integer: {text!r:.40}")
    value = int(text)
    if value > maximum:
        raise FormatError(field, f"{value} exceeds the maximum {maximum}")
    return value


def b64decode_std(text: str | bytes, field: str, *, length: int | None = None) -> bytes:
    """Decode standard, padded base64 (RFC 4648 §4) strictly and canonically.

    Rejects characters outside the alphabet, missing padding, and non-zero
    trailing bits (so each byte string has exactly one accepted encoding).
    ``length``, if given, is the exact decoded length required."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise FormatError(field, "base64 contains non-ASCII bytes") from None
    if not isinstance(text, str) or not text.isascii():
        raise FormatError(field, "not canonical standard base64")
    try:
        # strict_mode: only the alphabet, padding only at the end and exact
        # (what _STD_B64 describes, at C speed; tests check they agree).
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise FormatError(field, "not canonical standard base64") from None
    if binascii.b2a_base64(raw, newline=False) != text.encode("ascii"):
        raise FormatError(field, "non-canonical base64 (non-zero padding bits)")
    if length is not None and len(raw) != length:
        raise FormatError(field, f"decodes to {len(raw)} bytes, expected {length}")
    return raw


def b64encode_std(data: bytes) -> str:
    """Standard padded base64 as ``str``."""
    return base64.b64encode(data).decode("ascii")


def hex_decode_lower(text: str, field: str, *, length: int | None = None) -> bytes:
    """Decode lowercase hex strictly; ``length`` is the exact byte length."""
    # fromhex also takes upper case and whitespace, so the decoded bytes
    # must encode back to exactly ``text`` (a regular expression costs
    # several times as much, on every digest and UUID of the write path).
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise FormatError(field, "not lowercase hexadecimal") from None
    if raw.hex() != text:
        raise FormatError(field, "not lowercase hexadecimal")
    if length is not None and len(raw) != length:
        raise FormatError(field, f"is {len(raw)} bytes, expected {length}")
    return raw
