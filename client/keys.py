"""Public-key material of entries and signature verification (SPEC §5).

Entries carry their verification key as PEM: one SubjectPublicKeyInfo
("PUBLIC KEY") or an X.509 certificate chain ("CERTIFICATE" blocks, leaf
first, at most 10). Only keys on the allow-list are accepted:

- ECDSA on P-256, P-384, P-521 (signatures DER-encoded, with SHA-256/384/512),
- RSA with 2048, 3072 or 4096-bit moduli and the public exponent 65537,
  PKCS#1 v1.5 or PSS signatures,
- Ed25519, only where an entry type signs the raw message.

The issuer keys of a certificate chain are held to the same list before any
chain signature is checked (SPEC §10 U5: no key makes a check expensive).

Parsing is done by ``cryptography``; this module only frames the PEM blocks
strictly, applies the allow-list and reads the identities a search index needs
(SAN e-mail addresses and URIs, the Fulcio OIDC issuer). The canonical PEM
(:meth:`KeyMaterial.canonical_pem`) is the re-encoding Rekor stores in its
canonical bodies, so two spellings of one key give one canonical entry.

Parse errors are :class:`~tlog_client.errors.FormatError`; a failed signature
(including a certificate not signed by the next one in its chain) is a
:class:`~tlog_client.errors.SignatureError`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import FormatError, SignatureError

AllowedPublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey]

MAX_CHAIN = 10
"""Most certificates accepted in one chain (SPEC §6)."""

MAX_PEM_SIZE = 64 * 1024
"""Most bytes of PEM accepted for one key or chain."""

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
"""Digest algorithms of the allow-list, by their Rekor names."""

ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
ALLOWED_RSA_BITS = (2048, 3072, 4096)
RSA_EXPONENT = 65537
"""The only RSA public exponent accepted (SPEC §10 U5)."""

OID_FULCIO_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
"""Fulcio OIDC issuer, deprecated form: the extension value is the raw string."""

OID_FULCIO_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
"""Fulcio OIDC issuer: the extension value is a DER UTF8String."""

OID_FULCIO_OTHERNAME = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
"""Fulcio otherName SAN (a username identity), a DER UTF8String."""

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\Z")


@dataclass(frozen=True)
class Identities:
    """Identities of a certificate's subject (empty for a bare key).

    ``emails`` are the rfc822Name SANs, ``uris`` the URI SANs, ``other_names``
    the Fulcio otherName SANs, ``issuer`` the Fulcio OIDC issuer extension."""

    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()
    issuer: str | None = None


@dataclass(frozen=True)
class KeyMaterial:
    """A verification key on the allow-list, bare or with its certificate chain.

    ``public_key`` is the key that verifies (the leaf's key for a chain);
    ``certificates`` is the chain, leaf first, empty for a bare key."""

    public_key: AllowedPublicKey
    certificates: tuple[x509.Certificate, ...] = ()
    identities: Identities = Identities()

    @property
    def leaf(self) -> x509.Certificate | None:
        """The leaf certificate, or None for a bare key."""
        return self.certificates[0] if self.certificates else None

    def canonical_pem(self) -> bytes:
        """The PEM re-encoding (64-column base64, ``\\n`` line ends): the SPKI
        for a bare key, the concatenated certificates for a chain."""
        return self._canonical_pem

    def spki_der(self) -> bytes:
        """DER SubjectPublicKeyInfo of the verifying key."""
        return self._spki_der

    def key_hash(self) -> str:
        """Lowercase hex SHA-256 of the DER SPKI of the verifying key: the
        search-index key of the key (the same for a bare key and its certificate)."""
        return self._key_hash

    def index_keys(self) -> list[str]:
        """Search-index keys in Rekor's spelling: the key hash, then the
        certificate's SAN e-mails (lowercased), URIs and Fulcio otherNames."""
        ids = self.identities
        return [self.key_hash(), *(e.lower() for e in ids.emails), *ids.uris, *ids.other_names]

    # Computed once per key: a parsed key is reused across entries (see
    # parse_key_material's cache), and the write path needs all three.
    @cached_property
    def _canonical_pem(self) -> bytes:
        if self.certificates:
            return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.certificates)
        return self.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    @cached_property
    def _spki_der(self) -> bytes:
        return spki_der(self.public_key)

    @cached_property
    def _key_hash(self) -> str:
        return hashlib.sha256(self._spki_der).hexdigest()


def distinct_keys(keys: Iterable[KeyMaterial]) -> tuple[KeyMaterial, ...]:
    """``keys`` without repeats (the same key hash and canonical PEM), in order."""
    seen: dict[tuple[str, bytes], KeyMaterial] = {}
    for key in keys:
        seen.setdefault((key.key_hash(), key.canonical_pem()), key)
    return tuple(seen.values())


def spki_der(public_key: AllowedPublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of ``public_key``."""
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hash(key: KeyMaterial | AllowedPublicKey) -> str:
    """Lowercase hex SHA-256 of the DER SPKI of ``key`` (SPEC §5 index key)."""
    if isinstance(key, KeyMaterial):
        return key.key_hash()
    return hashlib.sha256(spki_der(key)).hexdigest()


# -- parsing -----------------------------------------------------------------

_CACHE_SIZE = 1024
_CACHE_PEM_MAX = 8192  # bare keys and usual chains; bounds the cache to ~8 MiB
_cache: dict[tuple[bytes, int], KeyMaterial] = {}


def parse_key_material(pem: bytes, field: str = "publicKey", *,
                       max_chain: int = MAX_CHAIN) -> KeyMaterial:
    """Parse PEM key material: exactly one "PUBLIC KEY" block, or 1 to
    ``max_chain`` "CERTIFICATE" blocks (leaf first), nothing else but
    whitespace around them.

    The verifying key must be on the allow-list; each certificate must be
    issued by the next (names and signature; validity dates are not checked:
    expired certificates stay verifiable). Raises FormatError naming ``field``,
    or SignatureError when a chain signature fails. SPEC §5.

    The result is a function of the bytes alone, so the last
    ``_CACHE_SIZE`` keys parsed (of at most ``_CACHE_PEM_MAX`` bytes) are
    kept: a log sees the same build keys over and over. Failures are never
    cached."""
    if not isinstance(pem, (bytes, bytearray)):
        raise FormatError(field, f"PEM must be bytes, not {type(pem).__name__}")
    key = (bytes(pem), max_chain)
    material = _cache.get(key)
    if material is None:
        material = _parse_key_material(key[0], field, max_chain)
        if len(key[0]) > _CACHE_PEM_MAX:
            return material
        if len(_cache) >= _CACHE_SIZE:
            try:
                del _cache[next(iter(_cache))]
            except (KeyError, StopIteration, RuntimeError):
                pass  # another thread evicted it first
        _cache[key] = material
    return material


def _parse_key_material(pem: bytes, field: str, max_chain: int) -> KeyMaterial:
    blocks = split_pem(pem, field)
    kinds = {kind for kind, _ in blocks}
    if kinds == {"PUBLIC KEY"}:
        if len(blocks) != 1:
            raise FormatError(field, f"{len(blocks)} PUBLIC KEY blocks; expected exactly one")
        return KeyMaterial(public_key=_load_spki(blocks[0][1], field))
    if kinds == {"CERTIFICATE"}:
        return _load_chain([body for _, body in blocks], field, max_chain)
    raise FormatError(field, "PEM must hold one PUBLIC KEY or a chain of CERTIFICATE blocks, "
                             f"not {', '.join(sorted(kinds))}")


def load_public_key(pem: bytes, field: str = "publicKey") -> AllowedPublicKey:
    """Parse one PEM "PUBLIC KEY" block on the allow-list (for example a log key)."""
    blocks = split_pem(pem, field)
    if len(blocks) != 1 or blocks[0][0] != "PUBLIC KEY":
        raise FormatError(field, "expected exactly one PEM PUBLIC KEY block")
    return _load_spki(blocks[0][1], field)


def split_pem(pem: bytes, field: str) -> list[tuple[str, bytes]]:
    """Split ``pem`` into (type, block bytes) pairs, strictly: ASCII only, at
    most MAX_PEM_SIZE bytes, at least one block, only whitespace between."""
    text = _ascii(pem, field)
    blocks: list[tuple[str, bytes]] = []
    kind: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if kind is None:
            if not stripped:
                continue
            match = _BEGIN.match(stripped)
            if match is None:
                raise FormatError(field, "unexpected text outside PEM blocks")
            kind, lines = match.group(1), [stripped]
        else:
            lines.append(stripped)
            if stripped == f"-----END {kind}-----":
                blocks.append((kind, ("\n".join(lines) + "\n").encode("ascii")))
                kind = None
    if kind is not None:
        raise FormatError(field, f"PEM {kind} block has no END line")
    if not blocks:
        raise FormatError(field, "no PEM block found")
    return blocks


def _ascii(pem: bytes, field: str) -> str:
    if not isinstance(pem, (bytes, bytearray)):
        raise FormatError(field, f"PEM must be bytes, not {type(pem).__name__}")
    if len(pem) > MAX_PEM_SIZE:
        raise FormatError(field, f"PEM is {len(pem)} bytes, over the limit of {MAX_PEM_SIZE}")
    try:
        return bytes(pem).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(field, "PEM contains non-ASCII bytes") from None


# What cryptography raises for a certificate it cannot parse: ValueError, or
# InvalidVersion (not a ValueError) for a version field other than v1-v3.
CERT_PARSE_ERRORS = (ValueError, x509.InvalidVersion)


def _load_spki(block: bytes, field: str) -> AllowedPublicKey:
    try:
        key = serialization.load_pem_public_key(block)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(field, f"invalid public key: {exc}") from None
    return check_allowed(key, field)


def _load_chain(blocks: list[bytes], field: str, max_chain: int) -> KeyMaterial:
    if len(blocks) > max_chain:
        raise FormatError(field, f"certificate chain has {len(blocks)} certificates, "
                                 f"more than {max_chain}")
    certs = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except CERT_PARSE_ERRORS as exc:
            raise FormatError(field, f"certificate {i}: invalid: {exc}") from None
    for i in range(len(certs) - 1):
        _check_issued_by(certs[i], certs[i + 1], i, field)
    try:
        leaf_key = certs[0].public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(field, f"certificate 0: invalid public key: {exc}") from None
    return KeyMaterial(public_key=check_allowed(leaf_key, field),
                       certificates=tuple(certs),
                       identities=certificate_identities(certs[0], field))


def _check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, i: int, field: str) -> None:
    """Certificate ``i`` is signed by ``issuer`` (certificate ``i + 1``),
    whose key must be on the allow-list too: checked before the signature,
    so that no issuer key (an RSA exponent of 3,000 bits, an unbounded
    modulus) can make the check itself expensive."""
    try:
        issuer_key = issuer.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(field, f"certificate {i + 1}: invalid public key: {exc}") from None
    try:
        check_allowed(issuer_key, field)
    except FormatError as exc:
        raise FormatError(field, f"certificate {i + 1}: {exc.reason}") from None
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        raise SignatureError(f"{field}: certificate {i} is not signed by "
                             f"certificate {i + 1}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise FormatError(field, f"certificate {i} is not issued by certificate {i + 1}: "
                                 f"{exc}") from None


def check_allowed(key: object, field: str) -> AllowedPublicKey:
    """Return ``key`` if it is on the allow-list, else raise FormatError."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ALLOWED_CURVES):
            return key
        raise FormatError(field, f"ECDSA curve {key.curve.name} is not allowed "
                                 "(allowed: P-256, P-384, P-521)")
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in ALLOWED_RSA_BITS:
            raise FormatError(field, f"RSA key of {key.key_size} bits is not allowed "
                                     "(allowed: 2048, 3072, 4096)")
        # A large exponent makes each verification cost thousands of
        # modular multiplications instead of 17 (a 3,000-bit one: 14 ms per
        # check on a 3,072-bit key, against 0.1 ms): one entry could hold
        # the log for seconds (SPEC §10 U5). Every real key uses 65537.
        exponent = key.public_numbers().e
        if exponent != RSA_EXPONENT:
            shown = exponent if exponent.bit_length() <= 64 else \
                f"of {exponent.bit_length()} bits"
            raise FormatError(field, f"RSA public exponent {shown} is not allowed "
                                     f"(only {RSA_EXPONENT})")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise FormatError(field, f"key type {type(key).__name__} is not allowed "
                             "(allowed: ECDSA P-256/P-384/P-521, RSA 2048/3072/4096, Ed25519)")


# -- identities --------------------------------------------------------------

def certificate_identities(cert: x509.Certificate, field: str = "certificate") -> Identities:
    """SAN e-mails, URIs and Fulcio otherNames, and the Fulcio OIDC issuer
    (extension 1.3.6.1.4.1.57264.1.8, else the deprecated .1.1)."""
    try:
        extensions = cert.extensions
    except ValueError as exc:
        raise FormatError(field, f"certificate extensions are invalid: {exc}") from None
    emails: list[str] = []
    uris: list[str] = []
    others: list[str] = []
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        emails = san.get_values_for_type(x509.RFC822Name)
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        others = [_der_utf8(o.value, field, "otherName SAN") for o in
                  san.get_values_for_type(x509.OtherName) if o.type_id == OID_FULCIO_OTHERNAME]
    return Identities(emails=tuple(emails), uris=tuple(uris), other_names=tuple(others),
                      issuer=_fulcio_issuer(extensions, field))


def _fulcio_issuer(extensions: x509.Extensions, field: str) -> str | None:
    raw = _unrecognized(extensions, OID_FULCIO_ISSUER_V2)
    if raw is not None:
        return _der_utf8(raw, field, "OIDC issuer extension")
    raw = _unrecognized(extensions, OID_FULCIO_ISSUER_V1)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(field, "OIDC issuer extension is not UTF-8") from None


def _unrecognized(extensions: x509.Extensions, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        value = extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _der_utf8(raw: bytes, field: str, what: str) -> str:
    """Decode a DER UTF8String (tag 0x0C, definite minimal length)."""
    if len(raw) < 2 or raw[0] != 0x0C:
        raise FormatError(field, f"{what} is not a DER UTF8String")
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2, 3) or len(raw) < 2 + count:
            raise FormatError(field, f"{what} has an invalid DER length")
        length, start = int.from_bytes(raw[2:2 + count], "big"), 2 + count
    if len(raw) != start + length:
        raise FormatError(field, f"{what} has an invalid DER length")
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(field, f"{what} is not UTF-8") from None


# -- verification ------------------------------------------------------------

def hash_algorithm(name: str, field: str = "algorithm") -> hashes.HashAlgorithm:
    """The ``cryptography`` hash for an allow-listed Rekor name ("sha256", ...)."""
    if not isinstance(name, str) or name not in HASH_ALGORITHMS:
        raise FormatError(field, f"hash algorithm {name!r:.40} is not one of "
                                 f"{', '.join(HASH_ALGORITHMS)}")
    return HASH_ALGORITHMS[name]()


def verify_signature(key: KeyMaterial | AllowedPublicKey, signature: bytes,
                     message_or_digest: bytes, hash_alg: str | None, prehashed: bool) -> None:
    """Verify ``signature`` under ``key`` or raise SignatureError.

    With ``prehashed`` the data is a digest made with ``hash_alg`` (its length
    must match; FormatError otherwise) and is signed as is (cryptography's
    ``Prehashed``); without it the data is the message, hashed with
    ``hash_alg`` for ECDSA/RSA. ECDSA signatures are DER; RSA accepts PKCS#1
    v1.5 or PSS (MGF1 with the same hash, any salt length). Ed25519 signs the
    raw message: ``hash_alg`` is ignored and ``prehashed`` is refused."""
    public_key = key.public_key if isinstance(key, KeyMaterial) else key
    if not isinstance(signature, bytes) or not signature:
        raise SignatureError("signature is missing")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        _verify_ed25519(public_key, signature, message_or_digest, prehashed)
        return
    size = _DIGEST_SIZES.get(hash_alg) if isinstance(hash_alg, str) else None
    if size is None:
        hash_algorithm(hash_alg or "")  # raises FormatError naming it
    if prehashed and len(message_or_digest) != size:
        raise FormatError("digest", f"{len(message_or_digest)} bytes, but a {hash_alg} digest "
                                    f"is {size}")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        _verify_ecdsa(public_key, signature, message_or_digest,
                      _ECDSA[hash_alg, bool(prehashed)])
    elif isinstance(public_key, rsa.RSAPublicKey):
        algorithm = hash_algorithm(hash_alg)
        chosen = Prehashed(algorithm) if prehashed else algorithm
        _verify_rsa(public_key, signature, message_or_digest, algorithm, chosen)
    else:
        raise SignatureError(f"cannot verify with a {type(public_key).__name__}")


# Made once (they hold no state): a hash object and ECDSA(Prehashed(SHA256()))
# per call cost about 3 us of each submission.
_DIGEST_SIZES = {name: alg.digest_size for name, alg in HASH_ALGORITHMS.items()}
_ECDSA = {(name, prehashed): ec.ECDSA(Prehashed(alg()) if prehashed else alg())
          for name, alg in HASH_ALGORITHMS.items() for prehashed in (False, True)}


def _verify_ed25519(key: ed25519.Ed25519PublicKey, signature: bytes, message: bytes,
                    prehashed: bool) -> None:
    if prehashed:
        raise SignatureError("Ed25519 signs the raw message; it cannot verify a prehashed digest")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureError("Ed25519 signature does not verify") from None


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes,
                  scheme: ec.ECDSA) -> None:
    try:
        key.verify(signature, data, scheme)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"ECDSA {key.curve.name} signature does not verify") from None


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes,
                algorithm: hashes.HashAlgorithm, chosen: hashes.HashAlgorithm | Prehashed) -> None:
    schemes = (padding.PKCS1v15(),
               padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.AUTO))
    for scheme in schemes:
        try:
            key.verify(signature, data, scheme, chosen)
            return
        except (InvalidSignature, ValueError):
            continue
    raise SignatureError(f"RSA-{key.key_size} signature does not verify (PKCS#1 v1.5 or PSS)")
