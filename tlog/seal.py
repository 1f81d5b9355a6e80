"""Entry seals: a keyed checksum stored with each entry row (SPEC §10 U2).

A read serves an entry's stored SET, integrated time and attestation. The
SET is a signature: verifying it on every read would cost about 100 µs
(Ed25519 here), a third of an inclusion proof's whole cost at 10^7 entries.
Instead, when an entry is integrated, the log stores beside it a 16-byte
keyed BLAKE2b of the row's served columns (index, integrated time, leaf
hash, kind, SET, attestation), under a key derived from the log's private
key. A read recomputes it (about 1.5 µs) and serves the row only if it
matches: a damaged SET, time or attestation, or a valid SET moved from
another row, is refused, and so is any row a party without the log key
wrote. The body is bound through the leaf hash, which every read checks
against the body and the inclusion proof anyway (I3).

The seal proves only that the log wrote the row; a SET is still a
signature that anyone can verify with the public key, and ``tlog fsck``
does that (it needs no private key). Rows written before schema 3 have no
seal: their SET is verified by signature when read.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEAL_SIZE = 16
_INFO = b"tlog entry seal v1"
_HEADER = struct.Struct(">QqH")  # index, integrated time, kind length


def seal_key(private_key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """The 32-byte seal key derived from the log's private key (HKDF-SHA256):
    every process holding the log key derives the same one, and nothing
    else needs storing."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        secret = private_key.private_bytes(serialization.Encoding.Raw,
                                           serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())
    else:
        secret = private_key.private_numbers().private_value.to_bytes(66, "big")
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO).derive(secret)


def entry_seal(key: bytes, index: int, integrated_time: int, leaf_hash: bytes, kind: str,
               set_signature: bytes | None, attestation: bytes | None) -> bytes:
    """The seal of one entry row. Every variable-length field is
    length-prefixed (or absent-marked), so no two rows encode alike."""
    kind_bytes = kind.encode()
    h = hashlib.blake2b(key=key, digest_size=SEAL_SIZE)
    h.update(_HEADER.pack(index, integrated_time, len(kind_bytes)))
    h.update(leaf_hash)
    h.update(kind_bytes)
    for part in (set_signature, attestation):
        if part is None:
            h.update(b"\x00")
        else:
            h.update(b"\x01" + struct.pack(">Q", len(part)))
            h.update(part)
    return h.digest()
