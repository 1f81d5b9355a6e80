"""The search index: key names and the ``POST /api/v1/index/retrieve`` query.

Index rows are written in the entry's own transaction (SPEC I9), so search is
complete: every logged entry is found by every key it carries. Keys are
namespaced strings:

- ``hash:<alg>:<hex>``: an artifact digest (hashedrekord data, in-toto subject);
- ``key:<hex>``: SHA-256 of the DER SubjectPublicKeyInfo of a signing key;
- ``email:<address>``: a certificate SAN email, lowercased;
- ``subject:<value>``: a certificate SAN URI (or other subject identity);
- ``predicate:<predicateType>``: the predicate type of an in-toto statement
  (dsse and intoto entries; extension);
- ``builder:<builder id>``: the builder id of SLSA provenance (extension).

The query fields ``predicateType`` and ``builderId`` are tlog extensions to
Rekor's SearchIndex (docs/api.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tlog_client.encoding import b64decode_std
from tlog_client.errors import FormatError
from tlog_client.jsonstrict import expect_object, expect_str
from tlog_client.keys import parse_key_material

from .config import Config
from .storage import ReadTxn

_HASH = re.compile(r"(?:(sha256):)?([0-9a-fA-F]{64})\Z|(?:(sha384):)?([0-9a-fA-F]{96})\Z"
                   r"|(?:(sha512):)?([0-9a-fA-F]{128})\Z")
_BARE_ALG = {64: "sha256", 96: "sha384", 128: "sha512"}


def hash_key(algorithm: str, hex_digest: str) -> str:
    return f"hash:{algorithm}:{hex_digest.lower()}"


def key_key(key_hash_hex: str) -> str:
    return f"key:{key_hash_hex}"


def email_key(email: str) -> str:
    return f"email:{email.lower()}"


def subject_key(subject: str) -> str:
    return f"subject:{subject}"


def predicate_key(predicate_type: str) -> str:
    return f"predicate:{predicate_type}"


def builder_key(builder_id: str) -> str:
    return f"builder:{builder_id}"


@dataclass(frozen=True)
class Query:
    keys: tuple[str, ...]
    operator: str  # "and" | "or"


def parse_query(obj: object, config: Config) -> Query:
    """Parse a Rekor SearchIndex body: ``hash``, ``publicKey {format, content}``,
    ``email``, ``subject``, ``operator`` (and|or, default or), and the tlog
    extensions ``predicateType`` and ``builderId``."""
    q = expect_object(obj, "body",
                      optional=("hash", "publicKey", "email", "subject", "operator",
                                "predicateType", "builderId"))
    keys = []
    if q.get("hash") is not None:
        keys.append(_parse_hash(expect_str(q["hash"], "hash")))
    if q.get("publicKey") is not None:
        keys.append(_parse_public_key(q["publicKey"], config))
    if q.get("email") is not None:
        email = expect_str(q["email"], "email")
        if "@" not in email or len(email) > 320:
            raise FormatError("email", "is not an email address")
        keys.append(email_key(email))
    if q.get("subject") is not None:
        keys.append(subject_key(expect_str(q["subject"], "subject")))
    if q.get("predicateType") is not None:
        keys.append(predicate_key(expect_str(q["predicateType"], "predicateType")))
    if q.get("builderId") is not None:
        keys.append(builder_key(expect_str(q["builderId"], "builderId")))
    operator = q.get("operator")
    operator = "or" if operator is None else expect_str(operator, "operator")
    if operator not in ("and", "or"):
        raise FormatError("operator", "must be 'and' or 'or'")
    if not keys:
        raise FormatError("body", "give at least one of hash, publicKey, email, subject, "
                                  "predicateType, builderId")
    return Query(tuple(keys), operator)


def _parse_hash(text: str) -> str:
    m = _HASH.match(text)
    if not m:
        raise FormatError("hash", "must be [sha256:|sha384:|sha512:] followed by hex")
    digest = next(g for g in m.groups()[1::2] if g)
    return hash_key(_BARE_ALG[len(digest)], digest)


def _parse_public_key(value: object, config: Config) -> str:
    pk = expect_object(value, "publicKey", required=("format",), optional=("content", "url"))
    if pk.get("url") is not None:
        raise FormatError("publicKey.url", "tlog never fetches a URL; send the content")
    if expect_str(pk["format"], "publicKey.format") != "x509":
        raise FormatError("publicKey.format", "only x509 (PEM key or certificate) is supported")
    if pk.get("content") is None:
        raise FormatError("publicKey.content", "is required")
    pem = b64decode_std(expect_str(pk["content"], "publicKey.content"), "publicKey.content")
    material = parse_key_material(pem, "publicKey.content", max_chain=config.max_chain)
    return key_key(material.key_hash())


_ALL = 1 << 62


def run(snap: ReadTxn, query: Query, limit: int) -> list[int]:
    """Entry indexes matching ``query``, ascending, at most ``limit``.

    Exact for ``and`` too: a key whose rows were cut at ``limit`` (a common
    predicate type or builder) is read in full before intersecting, so a
    match beyond the first ``limit`` rows of one key is never missed."""
    sets = []
    for k in query.keys:
        rows = snap.search(k, limit)
        if query.operator == "and" and len(query.keys) > 1 and len(rows) >= limit:
            rows = snap.search(k, _ALL)
        sets.append(set(rows))
    found = set.intersection(*sets) if query.operator == "and" else set.union(*sets)
    return sorted(found)[:limit]
