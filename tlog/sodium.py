"""The log key's Ed25519 signatures on the write path, through libsodium.

Every entry gets a Signed Entry Timestamp (SPEC §3.4), signed in the
sequencer's writer thread while its batch's transaction is open: one
signature per entry, the largest single cost of integration. Each batch's
checkpoint is signed through the same function (once for both of its note
lines, :func:`tlog_client.notekeys.log_signers`). PyNaCl (PyCA's
libsodium binding) signs in about 27 µs on the benchmark machine against
about 43 µs for ``cryptography``, and, being a cffi call, releases the GIL
while it signs, so the sequencer's event loop (the worker link, the next
batch's queue) keeps running beside the writer thread (docs/benchmarks.md).

Ed25519 signatures are deterministic (RFC 8032 §5.1.6): the same key and
message give the same 64 bytes whichever library signs, so nothing a client
sees changes; ``tests/server/test_sodium.py`` checks that against
``cryptography`` on a table of messages. Verification stays with
``cryptography`` (the client library does not depend on PyNaCl).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from nacl.bindings import crypto_sign, crypto_sign_BYTES, crypto_sign_seed_keypair

_RAW = serialization.Encoding.Raw


class SodiumEd25519Signer:
    """Signs exactly as ``private_key.sign(message)`` does."""

    __slots__ = ("_secret",)

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        """``private_key``: the log's Ed25519 key (a ``cryptography`` object)."""
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise TypeError("expected an Ed25519PrivateKey")
        seed = private_key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        public, self._secret = crypto_sign_seed_keypair(seed)
        if public != private_key.public_key().public_bytes(
                _RAW, serialization.PublicFormat.Raw):
            raise ValueError("libsodium derived a different public key from the seed")

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (bytes)."""
        # crypto_sign returns signature || message (libsodium's combined form).
        return crypto_sign(message, self._secret)[:crypto_sign_BYTES]
