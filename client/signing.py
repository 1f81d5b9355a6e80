"""Signing an artifact digest for a hashedrekord entry (the build-system side).

hashedrekord signs the artifact's digest (prehashed): ECDSA (P-256/384/521,
DER signature) or RSA (PKCS#1 v1.5). Ed25519 cannot sign a bare digest and is
refused, as the log refuses it. Pure module: keys come in as PEM bytes.
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import FormatError
from .keys import hash_algorithm, parse_key_material

__all__ = ["PrivateKey", "load_private_key", "public_pem", "sign_digest"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_private_key(pem: bytes, password: bytes | None = None, *,
                     allow_ed25519: bool = False) -> PrivateKey:
    """An ECDSA or RSA private key from PEM (PKCS#8, SEC1 or PKCS#1); with
    ``allow_ed25519`` also Ed25519 (DSSE signs the raw PAE message, which
    Ed25519 can)."""
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as exc:
        raise FormatError("private key", f"password: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError("private key", f"not a PEM private key: {exc}") from None
    if allow_ed25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        parse_key_material(public_pem(key), "private key")  # type: ignore[arg-type]
        return key  # type: ignore[return-value]
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise FormatError("private key", f"{type(key).__name__} cannot sign a digest for "
                                         "hashedrekord; use an ECDSA or RSA key")
    # the allow-list of the log applies to the public half
    parse_key_material(public_pem(key), "private key")
    return key


def public_pem(key: PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_digest(key: PrivateKey, algorithm: str, digest: bytes) -> bytes:
    """Sign a ``algorithm`` ("sha256", "sha384", "sha512") digest."""
    alg = hash_algorithm(algorithm)
    if len(digest) != alg.digest_size:
        raise FormatError("digest", f"{len(digest)} bytes is not a {algorithm} digest")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(Prehashed(alg)))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), Prehashed(alg))
    raise FormatError("private key", f"cannot sign with {type(key).__name__}")
