"""Entry types the log accepts, by ``kind`` (SPEC §5).

Each type's strict parsing, signature verification and canonicalisation live
in the client package (a verifier needs them too); this module only picks the
type, enforces the server's limits and derives the search index keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlog_client import hashedrekord
from tlog_client.errors import FormatError, SignatureError
from tlog_client.hashing import leaf_hash
from tlog_client.jsonstrict import expect_object, expect_str, loads_strict

from .config import Config
from .search import email_key, hash_key, key_key, subject_key


class EntryTooLargeError(FormatError):
    """The canonical entry exceeds the leaf limit (answered 413)."""


@dataclass(frozen=True, slots=True)
class Proposed:
    kind: str
    body: bytes  # canonical body: the leaf
    leaf_hash: bytes
    index_keys: tuple[str, ...]
    attestation: bytes | None = None


def _hashedrekord(obj: object, config: Config) -> tuple[bytes, tuple[str, ...], bytes | None]:
    try:
        entry = hashedrekord.parse_proposed(obj, max_chain=config.max_chain)
    except SignatureError as exc:
        # A failed signature over the digest names no field; name it (a
        # failed certificate chain link already names the key field).
        if not str(exc).startswith("spec."):
            raise SignatureError(f"spec.signature.content: {exc}") from None
        raise
    ids = entry.key.identities
    keys = [hash_key(entry.algorithm, entry.digest.hex()), key_key(entry.key.key_hash()),
            *(email_key(e) for e in ids.emails),
            *(subject_key(u) for u in (*ids.uris, *ids.other_names))]
    return entry.canonical_body(), tuple(dict.fromkeys(keys)), None


PARSERS = {hashedrekord.KIND: _hashedrekord}


def parse_proposed(obj: object, config: Config) -> Proposed:
    """Validate a proposed entry of any supported kind; raises FormatError
    (400), SignatureError (400) or EntryTooLargeError (413)."""
    top = expect_object(obj, "body", required=("kind",), optional=("apiVersion", "spec"))
    kind = expect_str(top["kind"], "kind")
    parser = PARSERS.get(kind)
    if parser is None:
        raise FormatError("kind", f"unsupported kind {kind!r:.40} "
                                  f"(supported: {', '.join(sorted(PARSERS))})")
    body, keys, attestation = parser(obj, config)
    if len(body) > config.max_leaf:
        raise EntryTooLargeError("body", f"canonical entry is {len(body)} bytes; the limit "
                                         f"is {config.max_leaf}")
    return Proposed(kind, body, leaf_hash(body), keys, attestation)


def index_keys_of(kind: str, body: bytes, config: Config) -> tuple[str, ...]:
    """Recompute the index keys of a stored canonical body (for fsck)."""
    return PARSERS[kind](loads_strict(body), config)[1]
