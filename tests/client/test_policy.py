"""The release policy (client/policy.py), pure: parsing is strict and each
rule accepts the right evidence and refuses the wrong one, over entries that
went through the real verification recipe (a FakeLog signs them)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from tlog_client import dsse
from tlog_client.entryverify import VerifiedEntry, verify_entry
from tlog_client.policy import (Policy, PolicyFormatError, PolicyViolationError, Signer,
                                check_policy, evaluate_policy, parse_policy)
from tlog_client.signing import public_pem
from tlog_client.trust import PinnedLog

from .attestation_samples import (GITHUB_BUILDER, REPO, cyclonedx_sbom, payload,
                                  slsa_v1_github, slsa_v02_generator, spdx_document)
from .fakelog import FakeLog, hashedrekord_body, make_ca, make_leaf, signer

ARTIFACT = b"app-1.0.tar.gz contents"
DIGEST = ("sha256", hashlib.sha256(ARTIFACT).digest())
HEX = DIGEST[1].hex()
SUBJECT = [("app-1.0.tar.gz", HEX)]
SLSA = "https://slsa.dev/provenance/v1"
CDX = "https://cyclonedx.org/bom"
EVIL_REPO = "https://github.com/evil/app"
EVIL_BUILDER = "https://evil.example/runner"
EMAIL, ISSUER = "release-bot@example.com", "https://token.actions.example"
DAY = 86400


class World:
    """A log with signers; ``make(name)`` logs one kind of evidence and
    returns it verified."""

    def __init__(self) -> None:
        self.log = FakeLog()
        self.pinned = PinnedLog(self.log.public_pem)
        self.trusted, self.other, self.cert_key = signer(), signer(), signer()
        self.ca = make_ca()
        self.cert = make_leaf(self.ca, self.cert_key, EMAIL, ISSUER)
        self.other_ca = make_ca("another root")
        self.bad_cert = make_leaf(self.other_ca, self.cert_key, EMAIL, ISSUER)

    def _verified(self, index: int, attestation: bytes | None = None) -> VerifiedEntry:
        entry = self.log.entry(index)
        if attestation is not None:
            entry = dataclasses.replace(entry, attestation=attestation)
        return verify_entry(entry, self.pinned)

    def hashedrekord(self, key=None, artifact: bytes = ARTIFACT) -> VerifiedEntry:
        return self._verified(self.log.add(hashedrekord_body(artifact, key or self.trusted)))

    def attest(self, statement: dict, key=None, cert: bytes | None = None) -> VerifiedEntry:
        key = key or self.trusted
        envelope = dsse.sign_envelope("application/vnd.in-toto+json", payload(statement), [key])
        proposed = dsse.parse_proposed(dsse.build_proposed(envelope, [cert or public_pem(key)]))
        index = self.log.add(proposed.canonical_body())
        return self._verified(index, proposed.envelope_bytes)

    def make(self, name: str) -> VerifiedEntry:
        return {
            "hashedrekord": lambda: self.hashedrekord(),
            "hashedrekord-other-signer": lambda: self.hashedrekord(self.other),
            "hashedrekord-other-artifact": lambda: self.hashedrekord(artifact=b"other"),
            "provenance": lambda: self.attest(slsa_v1_github(SUBJECT)),
            "provenance-v02": lambda: self.attest(slsa_v02_generator(SUBJECT)),
            "provenance-other-builder": lambda: self.attest(
                slsa_v1_github(SUBJECT, builder_id=EVIL_BUILDER)),
            "provenance-other-repo": lambda: self.attest(slsa_v1_github(SUBJECT, repo=EVIL_REPO)),
            "provenance-other-signer": lambda: self.attest(slsa_v1_github(SUBJECT), self.other),
            "provenance-other-subject": lambda: self.attest(
                slsa_v1_github([("other.tar.gz", "ab" * 32)])),
            "provenance-identity": lambda: self.attest(slsa_v1_github(SUBJECT), self.cert_key,
                                                       self.cert),
            "provenance-untrusted-ca": lambda: self.attest(slsa_v1_github(SUBJECT),
                                                           self.cert_key, self.bad_cert),
            "sbom": lambda: self.attest(cyclonedx_sbom(SUBJECT)),
            "spdx": lambda: self.attest(spdx_document(SUBJECT)),
        }[name]()


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def policy_for(world: World, **fields) -> Policy:
    doc = {"signers": [{"publicKey": public_pem(world.trusted).decode()}], **fields}
    return parse_policy(json.dumps(doc).encode())


FULL = {"predicateTypes": [SLSA, CDX], "builderIds": [GITHUB_BUILDER],
        "sourceRepositories": [REPO], "maxAge": "30d"}

# (case, policy fields, evidence, holds, failing rule, a reason the report gives)
CASES = [
    ("signer: a trusted hashedrekord", {}, ["hashedrekord"], True, None, None),
    ("signer: a trusted attestation", {}, ["sbom"], True, None, None),
    ("signer: only another signer", {}, ["hashedrekord-other-signer"], False, "signer",
     "not a signer the policy trusts"),
    ("signer: nothing logged", {}, [], False, "signer", "no verified entry"),
    ("signer: another artifact", {}, ["hashedrekord-other-artifact"], False, "signer",
     "not this artifact"),
    ("predicateType: present", {"predicateTypes": [CDX]}, ["sbom"], True, None, None),
    ("predicateType: missing", {"predicateTypes": [SLSA, CDX]}, ["provenance", "spdx"], False,
     f"predicateType {CDX}", f"predicate type is {SLSA}"),
    ("predicateType: a hashedrekord is no attestation", {"predicateTypes": [CDX]},
     ["hashedrekord"], False, f"predicateType {CDX}", "not an attestation"),
    ("predicateType: by another signer", {"predicateTypes": [SLSA]},
     ["hashedrekord", "provenance-other-signer"], False, f"predicateType {SLSA}",
     "not a signer the policy trusts"),
    ("builder: allowed", {"builderIds": [GITHUB_BUILDER]}, ["provenance"], True, None, None),
    ("builder: another builder", {"builderIds": [GITHUB_BUILDER]},
     ["provenance-other-builder"], False, "provenance", f"builder {EVIL_BUILDER} is not allowed"),
    ("builder: SLSA v0.2 generator not listed", {"builderIds": [GITHUB_BUILDER]},
     ["provenance-v02"], False, "provenance", "slsa-github-generator"),
    ("builder: no provenance at all", {"builderIds": [GITHUB_BUILDER]}, ["sbom"], False,
     "provenance", "not SLSA provenance"),
    ("source: allowed (trailing .git and / ignored)",
     {"sourceRepositories": [REPO + ".git/"]}, ["provenance"], True, None, None),
    ("source: another repository", {"sourceRepositories": [REPO]}, ["provenance-other-repo"],
     False, "provenance", f"source repository {EVIL_REPO} is not allowed"),
    ("source: v0.2 configSource", {"sourceRepositories": [REPO]}, ["provenance-v02"], True,
     None, None),
    ("provenance: builder and source must be in ONE trusted provenance",
     {"builderIds": [GITHUB_BUILDER], "sourceRepositories": [REPO]},
     ["provenance-other-builder", "provenance-other-repo"], False, "provenance",
     "is not allowed"),
    ("provenance: signed by another signer", {"builderIds": [GITHUB_BUILDER]},
     ["provenance-other-signer"], False, "provenance", "not a signer the policy trusts"),
    ("provenance: about another artifact", {"builderIds": [GITHUB_BUILDER]},
     ["provenance-other-subject"], False, "provenance", "does not name this artifact"),
    ("everything", FULL, ["hashedrekord", "provenance", "sbom"], True, None, None),
    ("everything but the SBOM", FULL, ["hashedrekord", "provenance"], False,
     f"predicateType {CDX}", f"predicate type is {SLSA}"),
]


@pytest.mark.parametrize("case,fields,evidence,holds,failing,reason", CASES,
                         ids=[c[0] for c in CASES])
def test_rules(world, case, fields, evidence, holds, failing, reason):
    entries = [world.make(name) for name in evidence]
    report = evaluate_policy(policy_for(world, **fields), entries, DIGEST,
                             now=max([e.integrated_time for e in entries], default=0) + 60)
    assert report.holds is holds, json.dumps(report.to_json(), indent=1)
    failed = [r for r in report.rules if not r.satisfied]
    if holds:
        assert not failed and all(r.entry is not None for r in report.rules)
        return
    assert failing in [r.rule for r in failed], [r.rule for r in failed]
    rule = next(r for r in failed if r.rule == failing)
    assert rule.entry is None
    assert any(reason in why for _, why in rule.reasons), rule.reasons


def test_report_names_the_satisfying_entry(world):
    hr, prov, sbom = (world.make(n) for n in ("hashedrekord", "provenance", "sbom"))
    report = check_policy(policy_for(world, **FULL), [sbom, prov, hr], DIGEST,
                          now=hr.integrated_time)
    by_rule = {r.rule: r for r in report.rules}
    assert by_rule["signer"].entry.log_index == hr.log_index  # lowest index first
    assert by_rule[f"predicateType {SLSA}"].entry.log_index == prov.log_index
    assert by_rule[f"predicateType {CDX}"].entry.log_index == sbom.log_index
    assert by_rule["provenance"].entry.log_index == prov.log_index
    assert GITHUB_BUILDER in by_rule["provenance"].detail and REPO in by_rule["provenance"].detail
    out = report.to_json()
    assert out["holds"] is True and out["artifact"] == f"sha256:{HEX}"
    assert [r["rule"] for r in out["rules"]] == ["signer", f"predicateType {SLSA}",
                                                 f"predicateType {CDX}", "provenance"]


@pytest.mark.parametrize("age,max_age,holds", [
    (10, "1m", True), (59, 60, True), (61, 60, False), (3 * DAY, "2d", False),
    (3 * DAY, "1w", True), (2 * 3600, "1h", False)])
def test_max_age(world, age, max_age, holds):
    prov = world.make("provenance")
    report = evaluate_policy(policy_for(world, builderIds=[GITHUB_BUILDER], maxAge=max_age),
                             [prov], DIGEST, now=prov.integrated_time + age)
    assert report.holds is holds
    if not holds:
        assert all("older than maxAge" in why for r in report.rules for _, why in r.reasons)


def test_check_policy_raises_with_the_report(world):
    entry = world.make("provenance-other-builder")
    with pytest.raises(PolicyViolationError) as err:
        check_policy(policy_for(world, builderIds=[GITHUB_BUILDER]), [entry], DIGEST,
                     now=entry.integrated_time)
    assert err.value.binding == "policy" and not err.value.report.holds
    assert "provenance" in str(err.value)


# -- signers: key hash, identities -------------------------------------------------------

def test_key_hash_signer(world):
    entry = world.make("provenance")
    key_hash = entry.attestation.verifiers[0].key_hash()
    for spelling in (key_hash, "sha256:" + key_hash.upper()):
        policy = parse_policy(json.dumps({"signers": [{"keySha256": spelling}]}).encode())
        assert evaluate_policy(policy, [entry], DIGEST, entry.integrated_time).holds


def _identity_policy(world, roots: bytes, **identity) -> Policy:
    signer_ = {"identity": EMAIL, "issuer": ISSUER, **identity}
    return parse_policy(json.dumps({"signers": [signer_], "caRoots": "roots.pem",
                                    "builderIds": [GITHUB_BUILDER]}).encode(),
                        load={"roots.pem": roots}.__getitem__)


@pytest.mark.parametrize("evidence,identity,holds,reason", [
    ("provenance-identity", {}, True, None),
    ("provenance-identity", {"identity": "someone@example.com"}, False, "not a signer"),
    ("provenance-identity", {"issuer": "https://other.example"}, False, "but issuer"),
    ("provenance-untrusted-ca", {}, False, "does not chain to a trusted root"),
    ("provenance", {}, False, "not a signer the policy trusts"),
])
def test_identity_signer(world, evidence, identity, holds, reason):
    entry = world.make(evidence)
    report = evaluate_policy(_identity_policy(world, world.ca.pem, **identity), [entry],
                             DIGEST, entry.integrated_time)
    assert report.holds is holds
    if reason:
        assert any(reason in why for r in report.rules for _, why in r.reasons), \
            report.to_json()


# -- parsing ----------------------------------------------------------------------------

KEY_PEM = public_pem(signer()).decode()


@pytest.mark.parametrize("doc,field", [
    ({}, "signers"),
    ({"signers": []}, "signers"),
    ({"signers": "key.pem"}, "signers"),
    ({"signers": [{"publicKey": KEY_PEM}], "builderIDs": ["x"]}, "builderIDs"),
    ({"signers": [{"publicKey": KEY_PEM, "keySha256": "ab" * 32}]}, "signers[0]"),
    ({"signers": [{"pubkey": KEY_PEM}]}, "signers[0].pubkey"),
    ({"signers": [{"publicKey": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]},
     "signers[0].publicKey"),
    ({"signers": [{"publicKey": "missing.pem"}]}, "signers[0].publicKey"),
    ({"signers": [{"keySha256": "abc"}]}, "signers[0].keySha256"),
    ({"signers": [{"identity": EMAIL}], "caRoots": "roots.pem"}, "signers[0].issuer"),
    ({"signers": [{"identity": EMAIL, "issuer": ISSUER}]}, "caRoots"),
    ({"signers": [{"keySha256": "ab" * 32, "issuer": ISSUER}]}, "signers[0].issuer"),
    ({"signers": [{"keySha256": "ab" * 32}], "caRoots": "-----BEGIN CERTIFICATE-----\nAA\n"
                                                        "-----END CERTIFICATE-----"}, "caRoots"),
    ({"signers": [{"keySha256": "ab" * 32}], "predicateTypes": []}, "predicateTypes"),
    ({"signers": [{"keySha256": "ab" * 32}], "predicateTypes": SLSA}, "predicateTypes"),
    ({"signers": [{"keySha256": "ab" * 32}], "builderIds": [""]}, "builderIds[0]"),
    ({"signers": [{"keySha256": "ab" * 32}], "sourceRepositories": [None]},
     "sourceRepositories[0]"),
    ({"signers": [{"keySha256": "ab" * 32}], "maxAge": "30 days"}, "maxAge"),
    ({"signers": [{"keySha256": "ab" * 32}], "maxAge": 0}, "maxAge"),
    ({"signers": [{"keySha256": "ab" * 32}], "maxAge": True}, "maxAge"),
    ({"signers": [{"keySha256": "ab" * 32}], "version": 2}, "version"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_strict_parsing_names_the_field(doc, field, tmp_path):
    def load(name: str) -> bytes:
        if name == "roots.pem":
            return make_ca().pem
        raise FileNotFoundError(2, "No such file or directory")
    with pytest.raises(PolicyFormatError) as err:
        parse_policy(json.dumps(doc).encode(), load=load)
    assert err.value.field == field, str(err.value)


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"signers": [], "signers": []}',
                                  b'{"maxAge": NaN}'])
def test_not_a_json_policy(data):
    with pytest.raises(PolicyFormatError):
        parse_policy(data)


def test_files_are_read_through_the_loader_and_fields_normalised(world):
    pem = public_pem(world.trusted)
    read = []

    def load(name):
        read.append(name)
        return pem
    policy = parse_policy(json.dumps({
        "version": 1, "signers": [{"publicKey": "keys/release.pub"}],
        "predicateTypes": [SLSA, SLSA], "sourceRepositories": ["git+" + REPO + ".git"],
        "maxAge": "12h"}).encode(), load=load)
    assert read == ["keys/release.pub"]
    assert policy.signers == (Signer(key_hash=world.make("hashedrekord").record.key.key_hash()),)
    assert policy.predicate_types == (SLSA,) and policy.source_repositories == (REPO,)
    assert policy.max_age == 12 * 3600 and policy.wants_provenance


def test_yaml_policy():
    pytest.importorskip("yaml")
    text = (f"signers:\n  - keySha256: {'ab' * 32}\npredicateTypes: [{SLSA}]\n"
            f"builderIds:\n  - {GITHUB_BUILDER}\nmaxAge: 7d\n").encode()
    policy = parse_policy(text, fmt="yaml")
    assert policy.builder_ids == (GITHUB_BUILDER,) and policy.max_age == 7 * DAY
    with pytest.raises(PolicyFormatError, match="appears twice"):
        parse_policy(b"signers: []\nsigners: []\n", fmt="yaml")
    with pytest.raises(PolicyFormatError) as err:
        parse_policy(b"signers:\n  - keySha256: ab\n", fmt="yaml")
    assert err.value.field == "signers[0].keySha256"
