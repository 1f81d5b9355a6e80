"""The three journeys end to end through the ``tlog-client`` command, against
a real server process: a build system uploads and keeps a bundle, a deployer
verifies (offline and online), an auditor follows, proves and audits."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ..client.fakelog import make_ca, make_leaf
from .conftest import Cli, make_signer


def test_build_system_deployer_auditor(cli: Cli, tmp_path, signer):
    artifact = tmp_path / "app-1.0.tar.gz"
    artifact.write_bytes(b"release 1.0 " * 1000)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    bundle = tmp_path / "app-1.0.sigstore.json"

    # build system: sign with a key file, upload, keep the bundle
    up = cli("upload", artifact, "--key", signer.key_path, "--bundle", bundle, "--json")
    assert up.code == 0, up.stderr
    entry = up.json
    assert entry["created"] is True and entry["artifact"]["digest"] == digest
    assert json.loads(bundle.read_text())["mediaType"] == \
        "application/vnd.dev.sigstore.bundle.v0.3+json"

    # deployer, offline: no network at all (the URL points nowhere)
    offline = cli("verify", artifact, "--bundle", bundle, "--key", signer.pub_path,
                  env={"TLOG_URL": "http://127.0.0.1:9"})
    assert offline.code == 0, offline.stderr
    assert offline.stdout.startswith("OK:")

    # deployer, online: the log is searched by digest, every hit verified
    online = cli("verify", artifact, "--key", signer.pub_path, "--json")
    assert online.code == 0, online.stderr
    assert [e["logIndex"] for e in online.json["entries"]] == [entry["logIndex"]]

    # get by index, UUID and EntryID; search by artifact
    for ref in (str(entry["logIndex"]), entry["uuid"], entry["entryRef"]):
        got = cli("get", ref, "--json")
        assert got.code == 0, got.stderr
        assert got.json["uuid"] == entry["uuid"]
    found = cli("search", "--artifact", artifact, "--json")
    assert found.code == 0 and [e["uuid"] for e in found.json["entries"]] == [entry["uuid"]]
    by_key = cli("search", "--public-key", signer.pub_path, "--json")
    assert [e["uuid"] for e in by_key.json["entries"]] == [entry["uuid"]]

    # auditor: tree head, monitor (cron style), consistency, audit with progress
    info = cli("loginfo", "--json")
    assert info.code == 0 and info.json["treeSize"] >= 1
    mon = cli("monitor", "--once", "--key", signer.pub_path, "--json")
    assert mon.code == 0, mon.stderr
    report = json.loads(mon.stdout)
    assert [m["logIndex"] for m in report["matches"]] == [entry["logIndex"]]
    again = json.loads(cli("monitor", "--once", "--key", signer.pub_path, "--json").stdout)
    assert again["scanned"] == 0 and again["matches"] == []
    other = make_signer(tmp_path, "other")
    assert cli("upload", "--digest", "sha256:" + "ab" * 32, "--key", other.key_path).code == 0
    third = json.loads(cli("monitor", "--once", "--key", signer.pub_path, "--digest",
                           "ab" * 32, "--json").stdout)
    assert third["scanned"] == 1 and len(third["matches"]) == 1
    assert third["consistentWithTrustedSize"] == third["treeSize"]  # the upload advanced it
    cons = cli("consistency", "--json", "--source", "tiles")
    assert cons.code == 0 and cons.json["ok"] is True
    audit = cli("audit", "--progress", "--json")
    assert audit.code == 0, audit.stderr
    assert audit.json["treeSize"] == third["treeSize"]
    assert "entries" in audit.stderr and "ETA" in audit.stderr and "/s" in audit.stderr
    human = cli("audit", "--no-progress")
    assert human.code == 0 and human.stdout.startswith("OK: rebuilt the whole tree")


def test_deployer_rejections(cli: Cli, tmp_path, signer):
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"the real artifact")
    bundle = tmp_path / "a.json"
    assert cli("upload", artifact, "--key", signer.key_path, "--bundle", bundle).code == 0
    evil = tmp_path / "evil.bin"
    evil.write_bytes(b"a backdoored artifact")
    stranger = make_signer(tmp_path, "stranger")

    res = cli("verify", evil, "--bundle", bundle, "--key", signer.pub_path, "--json")
    assert res.code == 1 and res.json["binding"] == "artifact"
    res = cli("verify", artifact, "--bundle", bundle, "--key", stranger.pub_path, "--json")
    assert res.code == 1 and res.json["binding"] == "key"
    assert "VERIFICATION FAILED [key]" in res.stderr

    doc = json.loads(bundle.read_text())
    sig = doc["messageSignature"]
    other_sig = signer.key.sign(hashlib.sha256(b"x").digest(),
                                ec.ECDSA(Prehashed(hashes.SHA256())))
    sig["signature"] = base64.b64encode(other_sig).decode()
    (tmp_path / "sig.json").write_text(json.dumps(doc))
    res = cli("verify", artifact, "--bundle", tmp_path / "sig.json", "--key", signer.pub_path,
              "--json")
    assert res.code == 1 and res.json["binding"] == "bundle"

    # online: someone else logged a signature over the same artifact: not ours
    assert cli("upload", artifact, "--key", stranger.key_path).code == 0
    res = cli("verify", artifact, "--key", signer.pub_path, "--json")
    assert res.code == 0 and len(res.json["entries"]) == 1
    assert res.json["rejected"][0]["binding"] == "key"
    res = cli("verify", evil, "--key", signer.pub_path, "--json")
    assert res.code == 1 and "no entry" in res.json["error"]


def test_usage_and_network_errors_exit_2(cli: Cli, tmp_path, signer):
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    res = cli("loginfo", env={"TLOG_LOG_KEY": ""})
    assert res.code == 2 and "public key is required" in res.stderr
    res = cli("loginfo", env={"TLOG_URL": "http://127.0.0.1:9"}, timeout=60)
    assert res.code == 2
    res = cli("verify", artifact)  # no expected signer
    assert res.code == 2 and "--key" in res.stderr
    res = cli("upload", artifact)  # nothing to sign with
    assert res.code == 2
    res = cli("get", "12345678")  # beyond the tree: the log says 404
    assert res.code == 2
    res = cli("upload", "--digest", "md5:abc", "--key", signer.key_path)
    assert res.code == 2


def test_certificate_identity_journey(cli: Cli, tmp_path):
    ca = make_ca()
    (tmp_path / "roots.pem").write_bytes(ca.pem)
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(make_leaf(ca, key, "ci@example.com",
                                                  "https://token.example") + ca.pem)
    artifact = tmp_path / "image.tar"
    artifact.write_bytes(b"container image")
    bundle = tmp_path / "image.json"
    up = cli("upload", artifact, "--key", tmp_path / "k.pem", "--cert", tmp_path / "cert.pem",
             "--bundle", bundle, "--json")
    assert up.code == 0, up.stderr
    assert up.json["signer"]["emails"] == ["ci@example.com"]
    body = cli("get", up.json["uuid"], "--body", "--json").json["body"]
    logged = base64.b64decode(body["spec"]["signature"]["publicKey"]["content"])
    assert logged.count(b"BEGIN CERTIFICATE") == 1  # of the chain, the leaf alone
    full = cli("upload", artifact, "--key", tmp_path / "k.pem", "--cert", tmp_path / "cert.pem",
               "--full-chain", "--json")
    assert full.code == 0, full.stderr
    ident = ["--cert-identity", "ci@example.com", "--cert-oidc-issuer", "https://token.example",
             "--ca-roots", tmp_path / "roots.pem"]
    assert cli("verify", artifact, "--bundle", bundle, *ident).code == 0
    assert cli("verify", artifact, *ident).code == 0
    found = cli("search", "--email", "ci@example.com", "--json")
    assert found.code == 0 and len(found.json["entries"]) == 2  # leaf-only and full chain
    wrong = cli("verify", artifact, "--bundle", bundle, "--cert-identity", "x@example.com",
                "--ca-roots", tmp_path / "roots.pem", "--json")
    assert wrong.code == 1 and wrong.json["binding"] == "identity"
    (tmp_path / "other-roots.pem").write_bytes(make_ca("other").pem)
    untrusted = cli("verify", artifact, "--bundle", bundle, "--cert-identity", "ci@example.com",
                    "--ca-roots", tmp_path / "other-roots.pem", "--json")
    assert untrusted.code == 1 and untrusted.json["binding"] == "certificate"
    assert cli("verify", artifact, "--bundle", bundle, "--cert-identity",
               "ci@example.com").code == 2  # an identity needs CA roots
