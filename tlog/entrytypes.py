"""Entry types the log accepts, by ``kind`` (SPEC §5).

Each type's strict parsing, signature verification and canonicalisation live
in the client package (a verifier needs them too); this module only picks the
type, enforces the server's limits and derives the search index keys.
"""

from __future__ import annotations

from collections.abc import Callable

from tlog_client import dsse, hashedrekord, intoto002
from tlog_client.errors import FormatError
from tlog_client.hashing import leaf_hash
from tlog_client.jsonstrict import expect_object, expect_str, loads_strict

from .config import Config
from .records import NewEntry
from .search import builder_key, email_key, hash_key, key_key, predicate_key, subject_key


class EntryTooLargeError(FormatError):
    """The canonical entry exceeds the leaf limit (answered 413)."""


# A kind's parts of an entry: (canonical body, index keys, attestation).
Parts = tuple[bytes, tuple[str, ...], bytes | None]


def _hashedrekord(obj: object, config: Config) -> Callable[[], Parts]:
    """hashedrekord 0.0.1: parsed now, its signature checked by the step
    returned (so that a batch's checks can run back to back)."""
    unverified = hashedrekord.parse_unverified(obj, max_chain=config.max_chain)
    return lambda: _hashedrekord_parts(unverified.verify())


def _hashedrekord_parts(entry: hashedrekord.HashedRekord) -> Parts:
    ids = entry.key.identities
    keys = [hash_key(entry.algorithm, entry.digest.hex()), key_key(entry.key.key_hash()),
            *(email_key(e) for e in ids.emails),
            *(subject_key(u) for u in (*ids.uris, *ids.other_names))]
    return entry.canonical_body(), tuple(dict.fromkeys(keys)), None


def _attestation_keys(entry: dsse.DsseEntry | intoto002.IntotoEntry) -> list[str]:
    """Index keys of a dsse or intoto entry: the payload hash, the in-toto
    subject digests (sha256/384/512, in the same ``hash:`` namespace as
    hashedrekord digests), the predicate type and SLSA builder id, and every
    verifier's key hash and certificate identities."""
    keys = [hash_key("sha256", entry.payload_hash.hex())]
    statement = entry.statement
    if statement is not None:
        keys += [hash_key(alg, value) for alg, value in statement.artifact_hashes()]
        keys.append(predicate_key(statement.predicate_type))
        if statement.provenance is not None:
            keys.append(builder_key(statement.provenance.builder_id))
    for key in entry.verifiers:
        ids = key.identities
        keys += [key_key(key.key_hash()), *(email_key(e) for e in ids.emails),
                 *(subject_key(u) for u in (*ids.uris, *ids.other_names))]
    return keys


def _dsse_keys(entry: dsse.DsseEntry) -> tuple[str, ...]:
    # Rekor also indexes the envelope hash.
    keys = _attestation_keys(entry) + [hash_key("sha256", entry.envelope_hash.hex())]
    return tuple(dict.fromkeys(keys))


def _dsse(obj: object, config: Config) -> Callable[[], Parts]:
    """dsse 0.0.1: the envelope exactly as submitted is the attestation
    (verified now; the step returned has nothing left to check)."""
    try:
        entry = dsse.parse_proposed(obj, max_chain=config.max_chain,
                                    max_envelope=config.max_attestation,
                                    max_trials=config.max_verify_trials)
    except dsse.EnvelopeTooLargeError as exc:
        raise EntryTooLargeError(exc.field, exc.reason) from None
    parts = entry.canonical_body(), _dsse_keys(entry), entry.envelope_bytes
    return lambda: parts


def _intoto(obj: object, config: Config) -> Callable[[], Parts]:
    """intoto 0.0.2: the envelope (Go-serialised, hashed by spec.content.hash)
    is the attestation (verified now, as dsse)."""
    try:
        entry = intoto002.parse_proposed(obj, max_chain=config.max_chain,
                                         max_envelope=config.max_attestation,
                                         max_trials=config.max_verify_trials)
    except intoto002.EnvelopeTooLargeError as exc:
        raise EntryTooLargeError(exc.field, exc.reason) from None
    parts = (entry.canonical_body(), tuple(dict.fromkeys(_attestation_keys(entry))),
             entry.envelope_bytes)
    return lambda: parts


# kind -> parser: raises the entry's FormatErrors, returns the step that
# checks what is left (a hashedrekord's signature) and gives its Parts.
PARSERS = {hashedrekord.KIND: _hashedrekord, dsse.KIND: _dsse, intoto002.KIND: _intoto}


def parse_proposed(obj: object, config: Config) -> NewEntry:
    """Validate a proposed entry of any supported kind; raises FormatError
    (400), SignatureError (400) or EntryTooLargeError (413)."""
    return prepare_proposed(obj, config)()


# The rest of a proposed entry's checks, run later: returns it, or raises.
Check = Callable[[], NewEntry]


def prepare_proposed(obj: object, config: Config) -> Check:
    """:func:`parse_proposed` in two steps, for a caller that runs many
    entries' signature checks back to back (tlog.turnbatch): this call
    raises the entry's FormatErrors; the :data:`Check` it returns verifies
    the signature of a hashedrekord (other kinds are verified here already)
    and enforces the size limit, raising as :func:`parse_proposed` does, in
    the same order. Nothing may use the entry before its check returns."""
    top = expect_object(obj, "body", required=("kind",), optional=("apiVersion", "spec"))
    kind = expect_str(top["kind"], "kind")
    parser = PARSERS.get(kind)
    if parser is None:
        raise FormatError("kind", f"unsupported kind {kind!r:.40} "
                                  f"(supported: {', '.join(sorted(PARSERS))})")
    rest = parser(obj, config)
    return lambda: _proposed(kind, rest(), config)


def _proposed(kind: str, parts: Parts, config: Config) -> NewEntry:
    body, keys, attestation = parts
    if len(body) > config.max_leaf:
        raise EntryTooLargeError("body", f"canonical entry is {len(body)} bytes; the limit "
                                         f"is {config.max_leaf}")
    return NewEntry(leaf_hash(body), body, kind, keys, attestation)


def index_keys_of(kind: str, body: bytes, config: Config,
                  attestation: bytes | None = None) -> tuple[str, ...]:
    """Recompute the index keys of a stored canonical body (for fsck); dsse
    and intoto entries need their stored attestation, which is verified
    against the body first."""
    if kind == dsse.KIND:
        entry = dsse.verify_attestation(dsse.parse_canonical(body, max_chain=config.max_chain),
                                        attestation or b"", max_envelope=config.max_attestation)
        return _dsse_keys(entry)
    if kind == intoto002.KIND:
        entry = intoto002.verify_attestation(
            intoto002.parse_canonical(body, max_chain=config.max_chain), attestation or b"",
            max_envelope=config.max_attestation)
        return tuple(dict.fromkeys(_attestation_keys(entry)))
    return PARSERS[kind](loads_strict(body), config)()[1]
