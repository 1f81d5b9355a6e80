"""The log's identity: signing key, origin and tree ID (SPEC §3.2, §3.4, I10).

Created once, on the first start: the key file (PKCS#8 PEM, mode 0600) is
written durably before the identity is recorded in the database, and both are
checked against each other on every later start.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog_client.checkpoint import Checkpoint, sign_checkpoint
from tlog_client.errors import FormatError
from tlog_client.notekeys import LogPrivateKey, check_key_name, log_signers, log_verifiers
from tlog_client.rekor import log_id, sign_set

from .config import Config
from .durable import write_file
from .seal import seal_key
from .sodium import SodiumEd25519Signer
from .storage import Storage


class IdentityError(Exception):
    """The data directory's key or database does not belong to this log (I10)."""


@dataclass(frozen=True)
class LogIdentity:
    origin: str
    tree_id: int
    private_key: LogPrivateKey

    @property
    def public_key(self):
        return self.private_key.public_key()

    @property
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def log_id(self) -> str:
        """hex SHA-256 of the DER SPKI (SPEC §3.4)."""
        return log_id(self.public_key)

    @property
    def key_type(self) -> str:
        return "ed25519" if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else "ecdsa-p256"

    @cached_property
    def _signers(self):
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return log_signers(self.private_key, self.origin, self._sign_set)
        return log_signers(self.private_key, self.origin)

    def signers(self):
        return self._signers

    def verifiers(self):
        return log_verifiers(self.public_key, self.origin)

    def sign_checkpoint(self, size: int, root: bytes, timestamp: int) -> bytes:
        """The signed checkpoint note for (size, root); ``timestamp`` unused
        in the body (kept out so a size has exactly one natural note)."""
        del timestamp
        return sign_checkpoint(Checkpoint(self.origin, size, root), self.signers())

    @cached_property
    def _sign_set(self) -> Callable[[bytes], bytes]:
        # One SET per entry: the hot signature of the write path (tlog.sodium).
        # For an Ed25519 key it is the raw signature, and checkpoints use it too.
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return SodiumEd25519Signer(self.private_key).sign
        return partial(sign_set, self.private_key)

    @cached_property
    def seal_key(self) -> bytes:
        """The key of the entry seals (tlog/seal.py), derived from the log key."""
        return seal_key(self.private_key)

    def sign_set(self, payload: bytes) -> bytes:
        """The SET signature over ``payload`` (SPEC §3.4); releases the GIL
        for an Ed25519 key."""
        return self._sign_set(payload)


def _generate(key_type: str) -> LogPrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: LogPrivateKey) -> None:
    """Write the key durably with mode 0600 (created so, never widened),
    unless a key file already exists: then that one stays. Two processes
    creating a log at once race safely: exactly one key wins (see
    :func:`tlog.durable.write_file`) and the loser reads the winner's key."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_file(path, pem, 0o600, replace=False)


def _read_key(path: Path) -> LogPrivateKey:
    if path.stat().st_mode & 0o077:
        raise IdentityError(f"{path} is readable by others; chmod 600 it")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise IdentityError(f"{path} is not an unencrypted PEM private key: "
                            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise IdentityError(f"{path}: log keys are Ed25519 or ECDSA P-256")


def _check_origin(origin: str) -> str:
    try:
        return check_key_name(origin, "origin")
    except FormatError as exc:
        raise IdentityError(f"--origin {origin!r:.80} is not a valid log origin: {exc}") from None


def _default_origin(tree_id: int) -> str:
    host = socket.gethostname()
    if not host.isascii() or any(c in host for c in " +\t") or not host:
        host = "tlog"
    return f"{host}/{tree_id}"


def load_or_create(config: Config, storage: Storage, *, create: bool = True) -> LogIdentity:
    """The log's identity; creates key and identity on the first start
    (unless ``create`` is false: then a log without identity is an error).

    Raises IdentityError if the key file and the database disagree, or an
    explicitly configured origin differs from the stored one (I10)."""
    if config.origin is not None:  # checked before anything is created
        _check_origin(config.origin)
    meta = storage.get_meta()
    if not meta and not create:
        raise IdentityError(f"{config.db_path} holds no log")
    if not config.key_path.exists():
        if meta:
            raise IdentityError(f"the database belongs to an existing log but its key "
                                f"{config.key_path} is missing; refusing to start")
        _write_key(config.key_path, _generate(config.key_type))
    key = _read_key(config.key_path)
    if not meta:
        tree_id = secrets.randbelow((1 << 63) - 1) + 1
        origin = _check_origin(config.origin or _default_origin(tree_id))
        candidate = LogIdentity(origin, tree_id, key)
        meta = storage.create_meta({"origin": origin, "tree_id": str(tree_id),
                                    "public_key": candidate.public_pem})
    identity = LogIdentity(meta["origin"], int(meta["tree_id"]), key)
    if identity.public_pem != meta["public_key"]:
        raise IdentityError(f"{config.key_path} is not the key this log was created with; "
                            "refusing to start (SPEC I10)")
    if config.origin is not None and config.origin != identity.origin:
        raise IdentityError(f"this log's origin is {identity.origin!r}, not "
                            f"{config.origin!r}; refusing to start (SPEC I10)")
    return identity
