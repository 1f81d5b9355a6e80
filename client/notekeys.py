"""Signed-note key types: key names, key IDs, verifiers and signers, key
strings (https://c2sp.org/signed-note, https://c2sp.org/tlog-cosignature;
SPEC §3.2). The note format itself is :mod:`tlog_client.note`.

=======================  ====  ==============================================
class                    type  key ID
=======================  ====  ==============================================
Ed25519Verifier/Signer   0x01  SHA-256(name || 0x0A || 0x01 || key32)[:4]
SPKIEd25519Verifier/…    —     SHA-256(DER SubjectPublicKeyInfo)[:4] (Rekor)
ECDSAVerifier/Signer     0x02  SHA-256(DER SubjectPublicKeyInfo)[:4] (Rekor)
CosignatureVerifier/…    0x04  SHA-256(name || 0x0A || 0x04 || key32)[:4]
=======================  ====  ==============================================

An Ed25519 log key signs every checkpoint twice (SPEC §3.2): under its SPKI
key ID (Rekor v1 clients; first, because sigstore-java reads the first line)
and under its C2SP key ID (Go's note package, witnesses); see
:func:`log_signers` and :func:`log_verifiers`. Pure module: no I/O.
"""

from __future__ import annotations

import hashlib
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .encoding import b64decode_std, b64encode_std
from .errors import FormatError, SignatureError

COSIGNATURE_SPEC_URL = "https://c2sp.org/tlog-cosignature"
KEY_ID_SIZE = 4

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_ECDSA = 0x02
SIG_TYPE_COSIGNATURE_V1 = 0x04

ED25519_KEY_SIZE = 32
ED25519_SIG_SIZE = 64
MAX_TIMESTAMP = (1 << 63) - 1

CONTROL_CHARS = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}\Z")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


# --------------------------------------------------------------------------
# Names, texts and key IDs


def check_key_name(name: str, field: str = "key name") -> str:
    """Return ``name`` if it is a valid key name, else raise FormatError.

    signed-note §Format: non-empty, no Unicode space (Go's ``unicode.IsSpace``
    set is a subset of ``str.isspace``), no ``+``; we also reject control
    characters, which a note could never carry.
    """
    if not isinstance(name, str) or not name:
        raise FormatError(field, "must be a non-empty string")
    if "+" in name or any(c.isspace() for c in name) or CONTROL_CHARS.search(name):
        raise FormatError(field, f"contains a space, '+' or control character: {name!r:.60}")
    encode_utf8(name, field)
    return name


def encode_utf8(text: str, field: str) -> bytes:
    """``text`` as UTF-8; FormatError naming ``field`` for a lone surrogate."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(field, "is not encodable as UTF-8 (lone surrogate)") from None


def c2sp_key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || sig_type || public_key)[:4] (signed-note §Signatures)."""
    data = encode_utf8(name, "key name") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(data).digest()[:KEY_ID_SIZE]


def spki_key_id(public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256(DER SubjectPublicKeyInfo)[:4]: the Rekor / type 0x02 key ID."""
    return hashlib.sha256(_spki_der(public_key)).digest()[:KEY_ID_SIZE]


def _spki_der(public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _raw_ed25519(public_key: ed25519.Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _seed(private_key: ed25519.Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def check_key_id(key_id: bytes, field: str = "key ID") -> bytes:
    if not isinstance(key_id, bytes) or len(key_id) != KEY_ID_SIZE:
        raise FormatError(field, f"must be {KEY_ID_SIZE} bytes")
    return key_id

# --------------------------------------------------------------------------
# Verifier and signer interfaces


class NoteVerifier(ABC):
    """Verifies signatures of one (key name, key ID) pair.

    ``verify`` raises :class:`SignatureError` on failure and returns None on
    success; it never returns a bool.
    """

    def __init__(self, name: str, key_id: bytes) -> None:
        self._name = check_key_name(name)
        self._key_id = check_key_id(key_id)

    @property
    def name(self) -> str:
        """Key name of the signature lines this verifier checks."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """4-byte key ID of the signature lines this verifier checks."""
        return self._key_id

    @abstractmethod
    def verify(self, text: bytes, signature: bytes) -> None:
        """Check ``signature`` (the bytes after the key ID) over ``text``."""

    def timestamp(self, signature: bytes) -> int | None:
        """The timestamp a signature of this type carries, or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self._key_id.hex()})"


class NoteSigner(ABC):
    """Signs note texts under one (key name, key ID) pair."""

    def __init__(self, name: str, key_id: bytes) -> None:
        self._name = check_key_name(name)
        self._key_id = check_key_id(key_id)

    @property
    def name(self) -> str:
        """Key name written in the signature line."""
        return self._name

    @property
    def key_id(self) -> bytes:
        """4-byte key ID prefixed to the signature."""
        return self._key_id

    @abstractmethod
    def sign(self, text: bytes) -> bytes:
        """Signature bytes over ``text`` (without the key ID prefix)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, {self._key_id.hex()})"


def _verify_ed25519(key: ed25519.Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    if len(signature) != ED25519_SIG_SIZE:
        raise SignatureError(f"Ed25519 signature is {len(signature)} bytes, expected 64")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureError("Ed25519 signature does not verify") from None


def _require_ed25519_public(key: object) -> ed25519.Ed25519PublicKey:
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise TypeError("expected an Ed25519PublicKey")
    return key


def _require_ed25519_private(key: object) -> ed25519.Ed25519PrivateKey:
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError("expected an Ed25519PrivateKey")
    return key


# --------------------------------------------------------------------------
# Ed25519, C2SP key ID (type 0x01)


class Ed25519Verifier(NoteVerifier):
    """signed-note Ed25519 (type 0x01) verifier; Go's ``note.NewVerifier`` keys."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        self.public_key = _require_ed25519_public(public_key)
        raw = _raw_ed25519(public_key)
        super().__init__(name, c2sp_key_id(name, SIG_TYPE_ED25519, raw))

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raw Ed25519 over the note text (signed-note §Ed25519 signatures)."""
        _verify_ed25519(self.public_key, signature, text)

    def verifier_key(self) -> str:
        """``name+hex(keyID)+base64(0x01 || key)``, as Go's NewVerifier reads it."""
        return _key_string(self.name, self.key_id, SIG_TYPE_ED25519, _raw_ed25519(self.public_key))


Ed25519Sign = Callable[[bytes], bytes]


class _SignOnce:
    """An Ed25519 signing function that signs a repeated message once.

    Ed25519 signatures are deterministic (RFC 8032 §5.1.6), and the two lines
    of a log's checkpoint sign the same text with the same key (only the key
    IDs differ), so both carry the same 64 bytes."""

    __slots__ = ("_sign", "_last")

    def __init__(self, sign: Ed25519Sign) -> None:
        self._sign = sign
        self._last: tuple[bytes, bytes] | None = None

    def __call__(self, text: bytes) -> bytes:
        last = self._last
        if last is not None and last[0] == text:
            return last[1]
        signature = self._sign(text)
        self._last = (text, signature)
        return signature


class Ed25519Signer(NoteSigner):
    """signed-note Ed25519 (type 0x01) signer; Go's ``note.NewSigner`` keys.
    ``sign``: the raw signing function of ``private_key`` to use instead of
    its own (the server passes libsodium's, :mod:`tlog.sodium`)."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey,
                 sign: Ed25519Sign | None = None) -> None:
        self.private_key = _require_ed25519_private(private_key)
        self._sign = sign or private_key.sign
        raw = _raw_ed25519(private_key.public_key())
        super().__init__(name, c2sp_key_id(name, SIG_TYPE_ED25519, raw))

    def sign(self, text: bytes) -> bytes:
        """64-byte Ed25519 signature over the note text (deterministic)."""
        return self._sign(text)

    def signer_key(self) -> str:
        """``PRIVATE+KEY+name+hex(keyID)+base64(0x01 || seed)``. Secret."""
        body = _key_string(self.name, self.key_id, SIG_TYPE_ED25519, _seed(self.private_key))
        return _PRIVATE_PREFIX + body

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self.name, self.private_key.public_key())


# --------------------------------------------------------------------------
# Rekor style: key ID = SHA-256(DER SPKI)[:4]


class SPKIEd25519Verifier(NoteVerifier):
    """Ed25519 under the SPKI key ID, as Rekor v1 signs checkpoints (SPEC §3.2)."""

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        self.public_key = _require_ed25519_public(public_key)
        super().__init__(name, spki_key_id(public_key))

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raw Ed25519 over the note text."""
        _verify_ed25519(self.public_key, signature, text)


class SPKIEd25519Signer(NoteSigner):
    """Ed25519 signer under the SPKI key ID (Rekor v1 clients match on it);
    ``sign`` as for :class:`Ed25519Signer`."""

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey,
                 sign: Ed25519Sign | None = None) -> None:
        self.private_key = _require_ed25519_private(private_key)
        self._sign = sign or private_key.sign
        super().__init__(name, spki_key_id(private_key.public_key()))

    def sign(self, text: bytes) -> bytes:
        """64-byte Ed25519 signature over the note text."""
        return self._sign(text)


def _require_p256(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise TypeError(f"only ECDSA P-256 is supported, not {key.curve.name}")


class ECDSAVerifier(NoteVerifier):
    """ECDSA P-256 (type 0x02 / Rekor): ASN.1 DER signature over SHA-256(text)."""

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise TypeError("expected an EllipticCurvePublicKey")
        _require_p256(public_key)
        self.public_key = public_key
        super().__init__(name, spki_key_id(public_key))

    def verify(self, text: bytes, signature: bytes) -> None:
        """Verify a DER ECDSA signature; OpenSSL rejects non-canonical DER."""
        try:
            self.public_key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureError("ECDSA signature does not verify") from None


class ECDSASigner(NoteSigner):
    """ECDSA P-256 signer: DER signature over SHA-256(text) (randomised)."""

    def __init__(self, name: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise TypeError("expected an EllipticCurvePrivateKey")
        _require_p256(private_key)
        self.private_key = private_key
        super().__init__(name, spki_key_id(private_key.public_key()))

    def sign(self, text: bytes) -> bytes:
        """DER-encoded ECDSA signature."""
        return self.private_key.sign(text, ec.ECDSA(hashes.SHA256()))


# --------------------------------------------------------------------------
# Cosignatures (type 0x04, https://c2sp.org/tlog-cosignature)


def cosignature_message(timestamp: int, text: bytes) -> bytes:
    """``cosignature/v1\\ntime <t>\\n`` + note text: what a cosigner signs.

    Precondition: 0 <= timestamp <= 2^63-1 (tlog-cosignature §Format).
    """
    _check_timestamp(timestamp)
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def _check_timestamp(timestamp: int) -> int:
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError("timestamp", f"must be an int in [0, 2^63-1], not {timestamp!r:.40}")
    return timestamp


class CosignatureVerifier(NoteVerifier):
    """tlog-cosignature v1 (Ed25519, type 0x04) verifier.

    Signature bytes after the key ID: u64 big-endian timestamp || 64-byte
    Ed25519 signature over :func:`cosignature_message`.
    """

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        self.public_key = _require_ed25519_public(public_key)
        raw = _raw_ed25519(public_key)
        super().__init__(name, c2sp_key_id(name, SIG_TYPE_COSIGNATURE_V1, raw))

    def verify(self, text: bytes, signature: bytes) -> None:
        """Check length, timestamp range and the Ed25519 signature."""
        timestamp = self._split(signature)[0]
        _verify_ed25519(self.public_key, signature[8:], cosignature_message(timestamp, text))

    def timestamp(self, signature: bytes) -> int:
        """The cosigned time (POSIX seconds). Meaningful only once verified."""
        return self._split(signature)[0]

    @staticmethod
    def _split(signature: bytes) -> tuple[int, bytes]:
        if len(signature) != 8 + ED25519_SIG_SIZE:
            raise SignatureError(f"cosignature is {len(signature)} bytes, expected 72")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise SignatureError("cosignature timestamp exceeds 2^63-1")
        return timestamp, signature[8:]

    def verifier_key(self) -> str:
        """``name+hex(keyID)+base64(0x04 || key)`` (a C2SP vkey)."""
        raw = _raw_ed25519(self.public_key)
        return _key_string(self.name, self.key_id, SIG_TYPE_COSIGNATURE_V1, raw)


class CosignatureSigner(NoteSigner):
    """tlog-cosignature v1 signer; ``clock()`` returns the POSIX time to sign."""

    def __init__(
        self, name: str, private_key: ed25519.Ed25519PrivateKey, clock: Callable[[], int]
    ) -> None:
        self.private_key = _require_ed25519_private(private_key)
        self.clock = clock
        raw = _raw_ed25519(private_key.public_key())
        super().__init__(name, c2sp_key_id(name, SIG_TYPE_COSIGNATURE_V1, raw))

    def sign(self, text: bytes) -> bytes:
        """u64 BE timestamp || Ed25519 signature over the cosigned message."""
        timestamp = _check_timestamp(self.clock())
        message = cosignature_message(timestamp, text)
        return struct.pack(">Q", timestamp) + self.private_key.sign(message)

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self.name, self.private_key.public_key())


# --------------------------------------------------------------------------
# Log key helpers (SPEC §3.2)

LogPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
LogPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def log_signers(private_key: LogPrivateKey, origin: str,
                ed25519_sign: Ed25519Sign | None = None) -> tuple[NoteSigner, ...]:
    """The signers of a log's checkpoints; the key name is the origin.

    Ed25519: SPKI line first (sigstore-java reads the first line), then the
    C2SP line, one signature shared by both (see :class:`_SignOnce`), made
    by ``ed25519_sign`` if given (the raw signing function of the same key).
    ECDSA P-256: the SPKI line only. SPEC §3.2.
    """
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        once = _SignOnce(ed25519_sign or private_key.sign)
        return (SPKIEd25519Signer(origin, private_key, once),
                Ed25519Signer(origin, private_key, once))
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return (ECDSASigner(origin, private_key),)
    raise TypeError("log keys are Ed25519 or ECDSA P-256")


def log_verifiers(public_key: LogPublicKey, origin: str) -> tuple[NoteVerifier, ...]:
    """The verifiers matching :func:`log_signers` for a log public key."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return (SPKIEd25519Verifier(origin, public_key), Ed25519Verifier(origin, public_key))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return (ECDSAVerifier(origin, public_key),)
    raise TypeError("log keys are Ed25519 or ECDSA P-256")


# --------------------------------------------------------------------------
# Key strings (Go's note.NewVerifier / note.NewSigner formats)


def _key_string(name: str, key_id: bytes, sig_type: int, key: bytes) -> str:
    return f"{name}+{key_id.hex()}+{b64encode_std(bytes([sig_type]) + key)}"


def _split_key_string(text: str, field: str) -> tuple[str, bytes, int, bytes]:
    """``name+hex8+base64(type || key)`` → (name, key ID, type, key)."""
    if not isinstance(text, str):
        raise FormatError(field, "must be a str")
    name, sep1, rest = text.partition("+")
    hex_id, sep2, b64 = rest.partition("+")
    if not (sep1 and sep2):
        raise FormatError(field, "expected name+keyid+key")
    check_key_name(name, f"{field} name")
    if not _HEX_KEY_ID.match(hex_id):
        raise FormatError(f"{field} key ID", "must be 8 lowercase hex digits")
    raw = b64decode_std(b64, f"{field} key")
    if not raw:
        raise FormatError(f"{field} key", "is empty")
    return name, bytes.fromhex(hex_id), raw[0], raw[1:]


def _ed25519_public(key: bytes, field: str) -> ed25519.Ed25519PublicKey:
    if len(key) != ED25519_KEY_SIZE:
        raise FormatError(field, f"Ed25519 key is {len(key)} bytes, expected 32")
    return ed25519.Ed25519PublicKey.from_public_bytes(key)


def parse_verifier_key(vkey: str) -> Ed25519Verifier | CosignatureVerifier:
    """Parse ``name+hex(keyID)+base64(type || key)`` strictly.

    Types 0x01 (Ed25519) and 0x04 (cosignature v1). The key ID must be 8
    lowercase hex digits and match the key; base64 must be canonical.
    https://c2sp.org/signed-note, Go ``note.NewVerifier``.
    """
    field = "verifier key"
    name, key_id, sig_type, key = _split_key_string(vkey, field)
    if sig_type == SIG_TYPE_ED25519:
        verifier: NoteVerifier = Ed25519Verifier(name, _ed25519_public(key, f"{field} key"))
    elif sig_type == SIG_TYPE_COSIGNATURE_V1:
        verifier = CosignatureVerifier(name, _ed25519_public(key, f"{field} key"))
    else:
        raise FormatError(f"{field} type", f"unsupported signature type 0x{sig_type:02x}")
    if verifier.key_id != key_id:
        raise FormatError(f"{field} key ID", "does not match the name and key")
    return verifier  # type: ignore[return-value]


def parse_signer_key(skey: str) -> Ed25519Signer:
    """Parse ``PRIVATE+KEY+name+hex(keyID)+base64(0x01 || seed)`` strictly.

    The key ID must match the public key derived from the seed. Go
    ``note.NewSigner`` format; only type 0x01 exists there.
    """
    field = "signer key"
    if not isinstance(skey, str) or not skey.startswith(_PRIVATE_PREFIX):
        raise FormatError(field, "must start with PRIVATE+KEY+")
    name, key_id, sig_type, seed = _split_key_string(skey[len(_PRIVATE_PREFIX) :], field)
    if sig_type != SIG_TYPE_ED25519:
        raise FormatError(f"{field} type", f"unsupported signature type 0x{sig_type:02x}")
    if len(seed) != ED25519_KEY_SIZE:
        raise FormatError(f"{field} key", f"Ed25519 seed is {len(seed)} bytes, expected 32")
    signer = Ed25519Signer(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != key_id:
        raise FormatError(f"{field} key ID", "does not match the name and key")
    return signer


def generate_signer_key(name: str) -> tuple[str, str]:
    """A fresh Ed25519 key as (signer key string, verifier key string)."""
    signer = Ed25519Signer(name, ed25519.Ed25519PrivateKey.generate())
    return signer.signer_key(), signer.verifier().verifier_key()


