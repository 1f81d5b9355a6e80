"""Entry facts and watches (client/match.py): what search results are checked
against and what the monitor reports."""

from __future__ import annotations

import hashlib
import json

import pytest

from tlog_client import dsse
from tlog_client.errors import FormatError, SignatureError
from tlog_client.match import EntryFacts, Watch, entry_facts, normalize_digest
from tlog_client.signing import public_pem

from .fakelog import hashedrekord_body, make_ca, make_leaf, signer


def test_normalize_digest():
    hexd = "AB" * 32
    assert normalize_digest(hexd) == "sha256:" + "ab" * 32
    assert normalize_digest("sha512:" + "cd" * 64) == "sha512:" + "cd" * 64
    for bad in ("sha512:" + "ab" * 32, "md5:abcd", "xyz", "ab" * 20):
        with pytest.raises(FormatError):
            normalize_digest(bad)


def test_hashedrekord_facts_and_watches():
    ca, key = make_ca(), signer()
    body = hashedrekord_body(b"art", key, make_leaf(ca, key, "A@example.com", "https://i"))
    facts = entry_facts(body)
    digest = "sha256:" + hashlib.sha256(b"art").hexdigest()
    assert facts.known and facts.complete and facts.digests == (digest,)
    assert facts.emails == ("a@example.com",) and facts.issuers == ("https://i",)
    watch = Watch.build(digests=[digest.upper().replace("SHA256", "sha256")],
                        keys=[public_pem(key)])
    assert watch.reasons(facts) == [f"digest {digest}",
                                    f"key {facts.key_hashes[0]}"]
    assert watch.decide(facts, "and") is True
    other = Watch.build(digests=["sha256:" + "00" * 32], emails=["a@example.com"])
    assert other.decide(facts, "or") is True and other.decide(facts, "and") is False
    assert Watch.build(emails=["a@example.com"], issuer="https://evil").decide(facts) is False
    assert Watch.build(keys=[facts.key_hashes[0]]).matches(facts)


def test_dsse_facts_need_the_attestation_for_subjects():
    key = signer()
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "app", "digest": {"sha256": "12" * 32}}],
                 "predicateType": "https://example.com/test/v1", "predicate": {}}
    envelope = dsse.sign_envelope("application/vnd.in-toto+json",
                                  json.dumps(statement).encode(), [key])
    entry = dsse.parse_proposed(dsse.build_proposed(envelope, [public_pem(key)]))
    body = entry.canonical_body()
    leaf_only = entry_facts(body)
    assert leaf_only.known and not leaf_only.complete
    subject = Watch.build(digests=["sha256:" + "12" * 32])
    assert subject.decide(leaf_only) is None  # cannot tell from the leaf
    full = entry_facts(body, entry.envelope_bytes)
    assert full.complete and "sha256:" + "12" * 32 in full.digests
    assert subject.decide(full) is True
    assert Watch.build(keys=[public_pem(key)]).decide(leaf_only) is True
    with pytest.raises(SignatureError):
        entry_facts(body, envelope.replace(b"app", b"evil"))


def test_unknown_kinds_are_undecided():
    facts = entry_facts(b'{"apiVersion":"0.0.1","kind":"cose","spec":{}}')
    assert facts == EntryFacts("cose") and Watch.build(keys=["ab" * 32]).decide(facts) is None
    assert entry_facts(b"not json").kind == "unknown"
