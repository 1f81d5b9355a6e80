"""What an entry says about itself, and watches over it (search, monitor).

:func:`entry_facts` extracts the searchable facts of a canonical body (the
artifact digests, signing-key hashes, certificate identities), parsing it with
the same strict, signature-verifying code as verification. A :class:`Watch`
(digests, keys, e-mails, subjects) says whether an entry matches and why; the
client uses it to check that every search hit really matches the query, and
the monitor to report new entries of interest. Pure module: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .entryverify import expected_key_hash
from .errors import FormatError, TlogError
from .hashedrekord import KIND as HASHEDREKORD
from .hashedrekord import parse_canonical
from .jsonstrict import expect_object, expect_str, loads_strict

__all__ = ["EntryFacts", "Watch", "entry_facts", "normalize_digest"]

_DIGEST = re.compile(r"(?:(sha256|sha384|sha512):)?([0-9a-fA-F]+)\Z")
_BY_LENGTH = {64: "sha256", 96: "sha384", 128: "sha512"}


def normalize_digest(text: str) -> str:
    """``[sha256:|sha384:|sha512:]<hex>`` → ``"<alg>:<lowercase hex>"``; the
    algorithm of a bare hex digest is inferred from its length."""
    match = _DIGEST.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise FormatError("digest", f"not [sha256:|sha384:|sha512:]<hex>: {text!r:.80}")
    algorithm, hexdigest = match.group(1), match.group(2).lower()
    inferred = _BY_LENGTH.get(len(hexdigest))
    if inferred is None or (algorithm is not None and algorithm != inferred):
        raise FormatError("digest", f"{len(hexdigest)} hex digits is not a "
                                    f"{algorithm or 'sha256/384/512'} digest")
    return f"{inferred}:{hexdigest}"


@dataclass(frozen=True)
class EntryFacts:
    """Facts of one entry. ``known`` is False when this client cannot read
    the entry's kind (then only ``kind`` is set and nothing can be matched)."""

    kind: str
    digests: tuple[str, ...] = ()
    key_hashes: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    issuer: str | None = None
    known: bool = False

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "digests": list(self.digests),
                "keySha256": list(self.key_hashes), "emails": list(self.emails),
                "subjects": list(self.subjects), "issuer": self.issuer}


def entry_facts(body: bytes) -> EntryFacts:
    """The facts of a canonical body. A hashedrekord body is parsed and its
    signature verified (a body that fails raises FormatError/SignatureError);
    other kinds give ``EntryFacts(kind)`` with ``known=False``."""
    try:
        kind = expect_str(expect_object(loads_strict(body), "", required=("kind",),
                                        optional=("apiVersion", "spec"))["kind"], "kind")
    except FormatError:
        return EntryFacts("unknown")
    if kind != HASHEDREKORD:
        return EntryFacts(kind)
    record = parse_canonical(body)
    ids = record.key.identities
    return EntryFacts(kind, (record.artifact_hash,), (record.key.key_hash(),),
                      tuple(e.lower() for e in ids.emails), (*ids.uris, *ids.other_names),
                      ids.issuer, True)


@dataclass(frozen=True)
class Watch:
    """Things to look for: artifact digests (``"alg:hex"``), key hashes (hex
    SHA-256 of the DER SPKI), e-mails (case-insensitive), subjects (SAN URIs
    or other names, exact), optionally restricted to an OIDC ``issuer``."""

    digests: frozenset[str] = frozenset()
    key_hashes: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    issuer: str | None = None

    @classmethod
    def build(cls, digests=(), keys=(), emails=(), subjects=(), issuer=None) -> "Watch":
        """From digests (any :func:`normalize_digest` form), keys (PEM bytes,
        key objects or hex key hashes), e-mails and subjects."""
        key_hashes = set()
        for key in keys:
            if isinstance(key, str) and re.fullmatch(r"[0-9a-fA-F]{64}", key):
                key_hashes.add(key.lower())
            else:
                key_hashes.add(expected_key_hash(key))
        return cls(frozenset(normalize_digest(d) for d in digests), frozenset(key_hashes),
                   frozenset(e.lower() for e in emails), frozenset(subjects), issuer)

    @property
    def empty(self) -> bool:
        return not (self.digests or self.key_hashes or self.emails or self.subjects)

    def criteria(self) -> int:
        return sum(1 for s in (self.digests, self.key_hashes, self.emails, self.subjects) if s)

    def reasons(self, facts: EntryFacts) -> list[str]:
        """Why ``facts`` match this watch (one reason per criterion that
        matched); empty if nothing matches or the entry's kind is unknown."""
        if not facts.known:
            return []
        if self.issuer is not None and (self.emails or self.subjects) \
                and facts.issuer != self.issuer:
            identity_ok = False
        else:
            identity_ok = True
        out = [f"digest {d}" for d in facts.digests if d in self.digests]
        out += [f"key {k}" for k in facts.key_hashes if k in self.key_hashes]
        if identity_ok:
            out += [f"email {e}" for e in facts.emails if e in self.emails]
            out += [f"subject {s}" for s in facts.subjects if s in self.subjects]
        return out

    def matches(self, facts: EntryFacts, operator: str = "or") -> bool:
        """True if ``facts`` match any (``or``) or every (``and``) criterion."""
        reasons = self.reasons(facts)
        if operator == "and":
            kinds = {r.split(" ", 1)[0] for r in reasons}
            wanted = {name for name, s in (("digest", self.digests), ("key", self.key_hashes),
                                           ("email", self.emails), ("subject", self.subjects))
                      if s}
            return wanted <= kinds
        return bool(reasons)


def safe_facts(body: bytes) -> EntryFacts:
    """:func:`entry_facts`, but an unreadable body gives ``known=False``."""
    try:
        return entry_facts(body)
    except TlogError:
        return EntryFacts("unreadable")
