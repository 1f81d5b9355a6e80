"""Submitting entries: hashedrekord (a signed artifact digest) and dsse (a
signed in-toto statement), each verified locally before it is sent and in
full after the log answers.

:class:`Submitter` is a mixin of :class:`~tlog_client.client.LogClient`: it
uses the client's ``_request``, ``_get_json`` and ``_verify_and_accept``. The
log's answer must be exactly the entry proposed (the canonical body this
client computed itself); a 409 duplicate is fetched by its UUID and verified
the same way (``created=False``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cryptography.hazmat.primitives import serialization

from . import dsse, intoto
from .bindings import ResponseMismatchError
from .entryverify import Expectations, VerifiedEntry
from .errors import FormatError
from .hashedrekord import build_proposed, parse_proposed
from .jsonstrict import loads_strict
from .keys import parse_key_material
from .rekor import parse_log_entry, uuid_of
from .signing import load_private_key, public_pem, sign_digest
from .transport import MAX_RESPONSE

__all__ = ["Submitter", "KeyInput"]

API = "/api/v1"

KeyInput = Any
"""A private key: a PEM file path, PEM bytes / text, or a key object."""


def _read_file(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _file_digest(path: str | os.PathLike[str], algorithm: str) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).digest()


def _public_pem_of(pem: bytes) -> bytes:
    material = parse_key_material(pem, "public key")
    return material.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)


async def _load_key(key: KeyInput, password: bytes | None, allow_ed25519: bool) -> Any:
    if isinstance(key, os.PathLike) or (isinstance(key, str) and "-----BEGIN" not in key):
        key = await asyncio.to_thread(_read_file, key)
    if isinstance(key, str):
        key = key.encode("ascii", "replace")
    if isinstance(key, (bytes, bytearray)):
        return load_private_key(bytes(key), password, allow_ed25519=allow_ed25519)
    return key


async def _load_pem(value: bytes | str | os.PathLike[str]) -> bytes:
    """PEM bytes, PEM text or a file path → PEM bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    return await asyncio.to_thread(_read_file, value)


class Submitter:
    """``submit_hashedrekord`` and ``submit_dsse`` (mixed into LogClient)."""

    async def _submit(self, proposed: dict[str, Any], body: bytes, expect: Expectations,
                      attestation: bytes | None = None) -> VerifiedEntry:
        status, headers, payload = await self._request(  # type: ignore[attr-defined]
            "POST", f"{API}/log/entries", body=proposed, ok=(201, 409))
        if status == 201:
            entry = parse_log_entry(loads_strict(payload, max_size=MAX_RESPONSE))
        else:
            location = headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
            if location.lower()[-64:] != uuid_of(body):
                raise ResponseMismatchError(f"the log says the entry is a duplicate of "
                                            f"{location!r:.90}, which is another entry")
            entry = parse_log_entry(await self._get_json(  # type: ignore[attr-defined]
                f"{API}/log/entries/{uuid_of(body)}"))
        if entry.body != body:
            raise ResponseMismatchError("the log answered with another entry than the one "
                                        "submitted")
        if attestation is not None:
            if entry.attestation is None:
                entry = replace(entry, attestation=attestation)  # checked against the leaf
            elif entry.attestation != attestation:
                raise ResponseMismatchError("the log answered with another envelope than the "
                                            "one submitted")
        verified = await self._verify_and_accept(entry, expect)  # type: ignore[attr-defined]
        return replace(verified, created=status == 201)

    async def submit_hashedrekord(self, artifact: bytes | str | os.PathLike[str] | None = None,
                                  *, digest: bytes | None = None, algorithm: str = "sha256",
                                  signature: bytes | None = None,
                                  public_key: bytes | None = None,
                                  private_key: KeyInput = None,
                                  password: bytes | None = None) -> VerifiedEntry:
        """Log a signed artifact digest and return the verified entry.

        The artifact is bytes or a file path (or give its raw ``digest``);
        sign it here with ``private_key`` (a PEM file path, PEM bytes or a key
        object; ECDSA or RSA) or give ``signature`` and ``public_key`` (PEM
        key or certificate chain, leaf first). The proposal is verified
        locally before it is sent; the answer must be exactly this entry,
        verified in full. An entry already logged is fetched and verified
        (``created=False``)."""
        if artifact is not None:
            if isinstance(artifact, (bytes, bytearray)):
                digest = hashlib.new(algorithm, artifact).digest()
            else:
                digest = await asyncio.to_thread(_file_digest, artifact, algorithm)
        if digest is None:
            raise FormatError("artifact", "give the artifact or its digest")
        if private_key is not None:
            key = await _load_key(private_key, password, allow_ed25519=False)
            if public_key is not None and public_pem(key) != _public_pem_of(public_key):
                raise FormatError("public key", "the certificate or key is not the private "
                                                "key's public half")
            signature = sign_digest(key, algorithm, digest)
            public_key = public_key or public_pem(key)
        if signature is None or public_key is None:
            raise FormatError("signature", "give a signature and a public key or certificate, "
                                           "or a private key to sign with")
        proposed = build_proposed(algorithm, digest, signature, public_key)
        body = parse_proposed(proposed).canonical_body()
        return await self._submit(proposed, body,
                                  Expectations(digest=(algorithm, digest), key=public_key))

    async def submit_dsse(self, statement: Mapping[str, Any] | bytes | None = None, *,
                          payload: bytes | None = None,
                          payload_type: str = intoto.PAYLOAD_TYPE,
                          private_keys: KeyInput | Sequence[KeyInput] = (),
                          verifiers: Sequence[bytes | str | os.PathLike[str]] = (),
                          envelope: bytes | None = None,
                          password: bytes | None = None) -> VerifiedEntry:
        """Log a DSSE envelope as a dsse 0.0.1 entry and return the verified
        entry (with its attestation: the envelope and the parsed statement).

        What is signed: ``statement`` (an in-toto Statement as a dict, or its
        JSON bytes, sent as they are) or any ``payload`` bytes of
        ``payload_type``. It is signed with each of ``private_keys`` (PEM file
        paths, PEM bytes or key objects: ECDSA, RSA or Ed25519), one envelope
        signature per key. Or give a ready ``envelope`` (JSON bytes, sent as
        they are). ``verifiers`` are the PEM public keys or certificate
        chains (bytes, text or file paths) the log checks the signatures
        with; a signing key that no verifier covers is added as its own
        public key. A certificate's chain is logged as given (Sigstore
        verifiers expect the leaf alone).

        The proposal is verified locally (every signature, the in-toto
        statement) before it is sent; the answer must be exactly this entry,
        verified in full, envelope included."""
        if isinstance(private_keys, (bytes, str, os.PathLike)) or not isinstance(
                private_keys, Sequence):
            private_keys = [private_keys]
        keys = [await _load_key(k, password, allow_ed25519=True) for k in private_keys]
        pems = [await _load_pem(v) for v in verifiers]
        covered = {parse_key_material(p, f"verifiers[{i}]").key_hash()
                   for i, p in enumerate(pems)}
        for key in keys:
            spki = public_pem(key)
            if parse_key_material(spki, "private key").key_hash() not in covered:
                pems.append(spki)
        if envelope is None:
            if (statement is None) == (payload is None):
                raise FormatError("statement", "give an in-toto statement or a payload "
                                               "(or a signed envelope)")
            if statement is not None:
                payload_type = intoto.PAYLOAD_TYPE
                payload = (bytes(statement) if isinstance(statement, (bytes, bytearray))
                           else json.dumps(statement, separators=(",", ":")).encode())
            if not keys:
                raise FormatError("private_keys", "give at least one key to sign with")
            envelope = dsse.sign_envelope(payload_type, payload, keys)
        elif statement is not None or payload is not None or keys:
            raise FormatError("envelope", "a signed envelope is sent as is: give no statement, "
                                          "payload or key with it")
        if not pems:
            raise FormatError("verifiers", "give the public keys or certificates that verify "
                                           "the envelope")
        proposed = dsse.build_proposed(envelope, pems)
        parsed = dsse.parse_proposed(proposed)
        used = {k.key_hash() for k in parsed.verifiers}
        for key_hash in sorted(covered):
            if key_hash not in used:
                raise FormatError("verifiers", f"verifier {key_hash[:16]}… verifies no "
                                               "signature of the envelope (a certificate of "
                                               "another key?)")
        return await self._submit(proposed, parsed.canonical_body(), Expectations(),
                                  attestation=parsed.envelope_bytes)
