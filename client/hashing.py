"""RFC 6962 hashes (RFC 6962 §2.1, RFC 9162 §2.1.1; SPEC §3.1).

leaf hash = SHA-256(0x00 || entry), node hash = SHA-256(0x01 || left || right),
empty tree root = SHA-256(""). Single-hash helpers only; bulk work goes
through :mod:`tlog_client.bulk`.
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

_sha256 = hashlib.sha256


def is_hash(value: object) -> bool:
    """Whether ``value`` can be a hash in a proof: exactly bytes (not a
    subclass) or a bytearray, of 32 bytes. The one rule the verifiers and
    both bulk backends apply."""
    return (type(value) is bytes or isinstance(value, bytearray)) and len(value) == HASH_SIZE


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf: SHA-256(0x00 || data)."""
    return _sha256(LEAF_PREFIX + data).digest()


def sha256(data: bytes) -> bytes:
    """Plain SHA-256 of ``data`` (an envelope's hash, as leaves record it)."""
    return _sha256(data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node. Precondition: both are 32-byte hashes."""
    return _sha256(NODE_PREFIX + left + right).digest()
