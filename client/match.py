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
from collections.abc import Sequence
from dataclasses import dataclass

from . import dsse, intoto002
from .entryverify import expected_key_hash
from .errors import FormatError, TlogError
from .hashedrekord import KIND as HASHEDREKORD
from .hashedrekord import parse_canonical
from .jsonstrict import expect_object, expect_str, loads_strict
from .keys import KeyMaterial

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
    the entry's kind (then nothing can be matched); ``complete`` is False
    when the digests may be incomplete (a dsse/intoto entry read without its
    attestation: the in-toto subjects are in the attestation, not the leaf)."""

    kind: str
    digests: tuple[str, ...] = ()
    key_hashes: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    known: bool = False
    complete: bool = False

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "digests": list(self.digests),
                "keySha256": list(self.key_hashes), "emails": list(self.emails),
                "subjects": list(self.subjects), "issuers": list(self.issuers)}


def _signers(keys: Sequence[KeyMaterial]) -> dict[str, tuple[str, ...]]:
    ids = [k.identities for k in keys]
    return {"key_hashes": tuple(dict.fromkeys(k.key_hash() for k in keys)),
            "emails": tuple(dict.fromkeys(e.lower() for i in ids for e in i.emails)),
            "subjects": tuple(dict.fromkeys(u for i in ids for u in (*i.uris, *i.other_names))),
            "issuers": tuple(dict.fromkeys(i.issuer for i in ids if i.issuer))}


def entry_facts(body: bytes, attestation: bytes | None = None) -> EntryFacts:
    """The facts of a canonical body. A hashedrekord body is parsed and its
    signature verified; a dsse or intoto body is parsed, and its
    ``attestation`` (the envelope, if given) checked against the leaf and
    verified, adding the in-toto subject digests. A body or attestation that
    fails raises FormatError/SignatureError; other kinds give
    ``EntryFacts(kind)`` with ``known=False``."""
    try:
        kind = expect_str(expect_object(loads_strict(body), "", required=("kind",),
                                        optional=("apiVersion", "spec"))["kind"], "kind")
    except FormatError:
        return EntryFacts("unknown")
    if kind == HASHEDREKORD:
        record = parse_canonical(body)
        return EntryFacts(kind, (record.artifact_hash,), **_signers([record.key]), known=True,
                          complete=True)
    module = {dsse.KIND: dsse, intoto002.KIND: intoto002}.get(kind)
    if module is None:
        return EntryFacts(kind)
    entry = module.parse_canonical(body)
    digests = [f"sha256:{entry.payload_hash.hex()}", f"sha256:{entry.envelope_hash.hex()}"]
    if attestation is not None:
        entry = module.verify_attestation(entry, attestation)
        if entry.statement is not None:
            digests += [f"{alg}:{value.lower()}" for alg, value in
                        entry.statement.subject_digests()]
    return EntryFacts(kind, tuple(dict.fromkeys(digests)), **_signers(entry.verifiers),
                      known=True, complete=attestation is not None)


@dataclass(frozen=True)
class Watch:
    """Things to look for: artifact digests (``"alg:hex"``), key hashes (hex
    SHA-256 of the DER SPKI), e-mails (case-insensitive), subjects (SAN URIs
    or other names, exact), identities restricted to an OIDC ``issuer``."""

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

    def _results(self, facts: EntryFacts) -> list[tuple[str, list[str], bool]]:
        """(criterion, what matched, decidable) for each criterion in use."""
        identity_ok = self.issuer is None or self.issuer in facts.issuers
        out = []
        if self.digests:
            out.append(("digest", [d for d in facts.digests if d in self.digests],
                        facts.complete))
        if self.key_hashes:
            out.append(("key", [k for k in facts.key_hashes if k in self.key_hashes], True))
        if self.emails:
            out.append(("email", [e for e in facts.emails if e in self.emails and identity_ok],
                        True))
        if self.subjects:
            out.append(("subject", [s for s in facts.subjects
                                    if s in self.subjects and identity_ok], True))
        return out

    def reasons(self, facts: EntryFacts) -> list[str]:
        """Why ``facts`` match this watch, one reason per matching value;
        empty if nothing matches or the entry's kind is unknown."""
        if not facts.known:
            return []
        return [f"{name} {value}" for name, hits, _ in self._results(facts) for value in hits]

    def decide(self, facts: EntryFacts, operator: str = "or") -> bool | None:
        """True if ``facts`` match any (``or``) or every (``and``) criterion,
        False if they provably do not, None if this client cannot tell."""
        if not facts.known:
            return None
        results = [True if hits else (False if decidable else None)
                   for _, hits, decidable in self._results(facts)]
        if operator == "and":
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)

    def matches(self, facts: EntryFacts, operator: str = "or") -> bool:
        return self.decide(facts, operator) is True


def safe_facts(body: bytes, attestation: bytes | None = None) -> EntryFacts:
    """:func:`entry_facts`, but an unreadable body gives ``known=False``."""
    try:
        return entry_facts(body, attestation)
    except TlogError:
        return EntryFacts("unreadable")
