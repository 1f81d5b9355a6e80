"""The release gate end to end against a real server: a CI job attests real
in-toto statements (SLSA v1 provenance from a GitHub Actions-like builder
whose resolvedDependencies name the source repository, a CycloneDX SBOM) with
``tlog-client attest``; the deployer's ``tlog-client verify ARTIFACT --policy``
accepts the right artifact and refuses one whose provenance names another
builder or source repository, one missing a predicate type, one signed by
someone else, and evidence that is too old. Also the library's
``submit_dsse``."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tlog_client.client import SyncLogClient
from tlog_client.dsseverify import verify_dsse_entry
from tlog_client.entryverify import Expectations
from tlog_client.errors import FormatError

from ..client.fakelog import make_ca, make_leaf
from ..client.attestation_samples import (GITHUB_BUILDER, REPO, cyclonedx_sbom, ed25519_key,
                                          slsa_v1_github)
from .conftest import Cli, Log, make_signer

SLSA, CDX = "https://slsa.dev/provenance/v1", "https://cyclonedx.org/bom"
EVIL_BUILDER, EVIL_REPO = "https://evil.example/self-hosted-runner", "https://github.com/evil/app"


class Release:
    """A CI job's workspace: signing keys, artifacts, statements, bundles."""

    def __init__(self, cli: Cli, root: Path) -> None:
        self.cli, self.root = cli, root
        self.ci = make_signer(root, "ci")
        self.attacker = make_signer(root, "attacker")
        self.policy = root / "release-policy.json"
        self.policy.write_text(json.dumps({
            "signers": [{"publicKey": "ci.pub"}],
            "predicateTypes": [SLSA, CDX],
            "builderIds": [GITHUB_BUILDER],
            "sourceRepositories": [REPO],
            "maxAge": "1d"}, indent=2))

    def artifact(self, name: str) -> Path:
        path = self.root / name
        path.write_bytes(f"{name} built at {time.time()}".encode())
        return path

    def attest(self, artifact: Path, *, builder: str = GITHUB_BUILDER, repo: str = REPO,
               sbom: bool = True, key: Path | None = None) -> dict[str, Path]:
        key = key or self.ci.key_path
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        statement = self.root / f"{artifact.name}.provenance.json"
        statement.write_text(json.dumps(slsa_v1_github([(artifact.name, digest)],
                                                       builder_id=builder, repo=repo)))
        bundles = {"provenance": self.root / f"{artifact.name}.provenance.sigstore.json"}
        res = self.cli("attest", artifact, "--statement", statement, "--key", key,
                       "--bundle", bundles["provenance"])
        assert res.code == 0, res.stderr
        assert "predicate   https://slsa.dev/provenance/v1" in res.stdout
        if sbom:
            predicate = self.root / "sbom-predicate.json"
            predicate.write_text(json.dumps(cyclonedx_sbom([])["predicate"]))
            bundles["sbom"] = self.root / f"{artifact.name}.sbom.sigstore.json"
            res = self.cli("attest", artifact, "--predicate-type", CDX, "--predicate",
                           predicate, "--key", key, "--bundle", bundles["sbom"], "--json")
            assert res.code == 0, res.stderr
            assert res.json["attestation"]["statement"]["sbom"]["componentCount"] == 4
        return bundles

    def gate(self, artifact: Path, *args: str, env: dict[str, str] | None = None):
        return self.cli("verify", artifact, "--policy", self.policy, *args, env=env)


@pytest.fixture
def release(cli: Cli, tmp_path) -> Release:
    return Release(cli, tmp_path)


def _failed_rules(res) -> dict[str, list[str]]:
    doc = json.loads(res.stdout)
    return {r["rule"]: [x["reason"] for x in r["reasons"]]
            for r in doc["rules"] if not r["satisfied"]}


def test_gate_accepts_the_right_artifact_online_and_offline(release: Release):
    app = release.artifact("app-1.0.tar.gz")
    bundles = release.attest(app)
    ok = release.gate(app)
    assert ok.code == 0, ok.stdout + ok.stderr
    assert "HOLDS" in ok.stdout and ok.stdout.rstrip().endswith("OK: the policy holds")
    for rule in ("signer", f"predicateType {SLSA}", f"predicateType {CDX}", "provenance"):
        assert f"[ok]   {rule}: entry " in ok.stdout, ok.stdout
    assert f"builder {GITHUB_BUILDER}, source {REPO}@3f786850e387" in ok.stdout
    doc = release.gate(app, "--json").json
    assert doc["ok"] is True and doc["holds"] is True and doc["mode"] == "online"
    assert {e["kind"] for e in doc["entries"]} == {"dsse"} and len(doc["entries"]) == 2
    # offline: the two bundles are the only evidence; nothing listens at the URL
    offline = release.gate(app, "--bundle", bundles["provenance"], "--bundle", bundles["sbom"],
                           "--json", env={"TLOG_URL": "http://127.0.0.1:9"})
    assert offline.code == 0, offline.stdout + offline.stderr
    assert offline.json["mode"] == "bundle" and offline.json["holds"] is True
    # a hashedrekord signature by the CI key counts for `signer` as well
    up = release.cli("upload", app, "--key", release.ci.key_path)
    assert up.code == 0, up.stderr
    assert release.gate(app).code == 0
    # the plain verify (one signer, no policy) also accepts the attestation entries
    plain = release.cli("verify", app, "--key", release.ci.pub_path, "--json")
    assert plain.code == 0 and len(plain.json["entries"]) == 3


@pytest.mark.parametrize("variant,rule,reason", [
    ("another-builder", "provenance", f"builder {EVIL_BUILDER} is not allowed"),
    ("another-source", "provenance", f"source repository {EVIL_REPO} is not allowed"),
    ("missing-sbom", f"predicateType {CDX}", f"predicate type is {SLSA}"),
    ("wrong-signer", "signer", "not a signer the policy trusts"),
])
def test_gate_refuses(release: Release, variant, rule, reason):
    app = release.artifact(f"app-{variant}.tar.gz")
    release.attest(app, builder=EVIL_BUILDER if variant == "another-builder" else GITHUB_BUILDER,
                   repo=EVIL_REPO if variant == "another-source" else REPO,
                   sbom=variant != "missing-sbom",
                   key=release.attacker.key_path if variant == "wrong-signer" else None)
    res = release.gate(app)
    assert res.code == 1, res.stdout + res.stderr
    assert f"[FAIL] {rule}: no entry satisfies it" in res.stdout, res.stdout
    assert reason in res.stdout and "FAILED: the policy does not hold" in res.stdout
    as_json = release.gate(app, "--json")
    assert as_json.code == 1 and as_json.json["holds"] is False
    failed = _failed_rules(as_json)
    assert any(reason in why for why in failed[rule]), failed


def test_gate_refuses_old_evidence_and_unlogged_artifacts(release: Release):
    app = release.artifact("app-2.0.tar.gz")
    release.attest(app)
    assert release.gate(app, "--at", str(int(time.time()) + 3600)).code == 0
    late = release.gate(app, "--at", str(int(time.time()) + 2 * 86400), "--json")
    assert late.code == 1
    assert all("older than maxAge 1.0d" in why for whys in _failed_rules(late).values()
               for why in whys)
    never = release.gate(release.artifact("never-logged.tar.gz"))
    assert never.code == 1 and "no verified entry for this artifact" in never.stdout


def test_gate_usage_errors_exit_2(release: Release, tmp_path):
    app = release.artifact("app-3.0.tar.gz")
    bad = tmp_path / "bad-policy.json"
    bad.write_text(json.dumps({"signers": [{"publicKey": "ci.pub"}], "builderID": ["x"]}))
    res = release.cli("verify", app, "--policy", bad)
    assert res.code == 2 and "builderID: unknown field" in res.stderr, res.stderr
    missing = tmp_path / "missing-key.json"
    missing.write_text(json.dumps({"signers": [{"publicKey": "nope.pub"}]}))
    res = release.cli("verify", app, "--policy", missing)
    assert res.code == 2 and "signers[0].publicKey" in res.stderr
    res = release.cli("verify", app, "--policy", release.policy, "--key", release.ci.pub_path)
    assert res.code == 2 and "do not combine" in res.stderr
    res = release.gate(app, env={"TLOG_URL": "http://127.0.0.1:9"})
    assert res.code == 2, res.stderr
    res = release.cli("attest", app, "--key", release.ci.key_path)
    assert res.code == 2 and "--statement" in res.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps(slsa_v1_github([("x", "ab" * 32)])))
    res = release.cli("attest", app, "--statement", other, "--key", release.ci.key_path)
    assert res.code == 2 and "is not a subject of the statement" in res.stderr
    ca = make_ca()
    cert = tmp_path / "attacker.crt"
    cert.write_bytes(make_leaf(ca, release.attacker.key))  # not the CI key's certificate
    res = release.cli("attest", app, "--predicate-type", "https://example.com/test/v1",
                      "--key", release.ci.key_path, "--cert", cert)
    assert res.code == 2 and "is not the certificate of a --key" in res.stderr, res.stderr


def test_library_submit_dsse(log: Log, tmp_path):
    key = ed25519_key()
    statement = slsa_v1_github([("lib.tar.gz", "cd" * 32)])
    with SyncLogClient(log.url, log.public_pem, tmp_path / "state.json") as client:
        first = client.submit_dsse(statement, private_keys=[key.private])
        assert first.created is True and first.kind == "dsse"
        assert first.attestation.statement.provenance.builder_id == GITHUB_BUILDER
        assert first.envelope_hash_checked is True
        # the same envelope again: a 409, fetched and verified (Ed25519 signatures
        # are deterministic, so signing again gives the same envelope)
        again = client.submit_dsse(statement, private_keys=[key.private])
        assert again.created is False and again.uuid == first.uuid
        hits = client.search(digest="sha256:" + "cd" * 32)
        assert [h.uuid for h in hits] == [first.uuid]
        verify_dsse_entry(hits[0].entry, client.pinned, Expectations(
            digest=("sha256", bytes.fromhex("cd" * 32)), key=key.spki_pem))
        # a verifier that is not the signing key's is refused before anything is sent
        with pytest.raises(FormatError, match="verifies no signature"):
            client.submit_dsse(statement, private_keys=[key.private],
                               verifiers=[ed25519_key().spki_pem])
