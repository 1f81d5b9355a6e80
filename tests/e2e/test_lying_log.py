"""A deliberately lying log (a tampering proxy in front of the real server):
each lie is caught, with the error naming the binding that failed, by the
library and by the CLI; split views leave evidence on disk."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tlog_client import bindings
from tlog_client.audit import AuditError, audit
from tlog_client.client import LogClient, SyncLogClient
from tlog_client.entryverify import Expectations
from tlog_client.state import InconsistentCheckpointError, SplitViewError
from tlog_client.tileverify import TileVerificationError
from tlog_client.trust import PinnedLog

from .conftest import Cli, make_signer
from .lying import LyingProxy, resign

_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def proxy(log):
    started = LyingProxy(log.url).start()
    yield started
    started.stop()


@pytest.fixture
def liar(proxy):
    proxy.reset()
    yield proxy
    proxy.reset()


@pytest.fixture(scope="module")
def entries(log, tmp_path_factory):
    """A few honest entries, logged through the real server."""
    directory = tmp_path_factory.mktemp("signers")
    signer = make_signer(directory)
    made = []
    with SyncLogClient(log.url, log.public_pem) as client:
        for i in range(5):
            made.append(client.submit_hashedrekord(b"artifact %d" % i,
                                                    private_key=signer.key))
    return signer, made


def honest(log, tmp_path, **kw) -> SyncLogClient:
    return SyncLogClient(log.url, log.public_pem, tmp_path / "state.json", **kw)


def lied_to(log, liar, tmp_path, **kw) -> SyncLogClient:
    return SyncLogClient(liar.url, log.public_pem, tmp_path / "state.json", **kw)


def grow(log, n: int = 1) -> None:
    """Log ``n`` more entries through the real server."""
    with SyncLogClient(log.url, log.public_pem) as client:
        for _ in range(n):
            client.submit_hashedrekord(digest=os.urandom(32), private_key=_KEY)


# -- checkpoints ---------------------------------------------------------------------

def test_checkpoint_signed_by_another_key(log, liar, tmp_path, entries):
    impostor = ed25519.Ed25519PrivateKey.generate()
    liar.rewrite_checkpoint = lambda note: resign(note, impostor)
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.CheckpointKeyError):
            client.checkpoint()
        with pytest.raises(bindings.CheckpointKeyError):
            client.get_entry(entries[1][0].log_index)
        with pytest.raises(bindings.CheckpointKeyError):
            client.log_info()
    res = Cli(liar.url, log.key_path, tmp_path / "cli")("loginfo", "--json")
    assert res.code == 1 and res.json["binding"] == "checkpoint"


def test_split_view_same_size(log, liar, tmp_path, entries):
    with lied_to(log, liar, tmp_path) as client:
        trusted = client.checkpoint()
        liar.rewrite_checkpoint = lambda note: resign(note, log.private_key, root=bytes(32))
        with pytest.raises(SplitViewError) as err:
            client.checkpoint()
        assert client.trusted_checkpoint() == trusted  # the state did not move
    evidence = err.value.evidence
    pinned = PinnedLog(log.public_pem)
    first, second = pinned.open_checkpoint(evidence.trusted), pinned.open_checkpoint(evidence.new)
    assert first.size == second.size and first.root_hash != second.root_hash  # signed proof

    cli = Cli(liar.url, log.key_path, tmp_path / "cli")
    liar.reset()
    assert cli("loginfo").code == 0
    liar.rewrite_checkpoint = lambda note: resign(note, log.private_key, root=bytes(32))
    res = cli("loginfo")
    assert res.code == 1 and "[consistency]" in res.stderr
    saved = res.stderr.split("evidence saved to ")[1].strip()
    doc = json.loads(open(saved).read())
    assert doc["reason"] == "same size, different root"
    assert pinned.open_checkpoint(doc["trustedCheckpoint"].encode()).root_hash == \
        first.root_hash
    assert pinned.open_checkpoint(doc["newCheckpoint"].encode()).root_hash == bytes(32)


def test_fork_to_a_larger_tree(log, liar, tmp_path, entries):
    with lied_to(log, liar, tmp_path) as client:
        client.checkpoint()
        grow(log)
        liar.rewrite_checkpoint = lambda note: resign(note, log.private_key, root=b"\x05" * 32)
        with pytest.raises(InconsistentCheckpointError) as err:
            client.checkpoint()
        assert err.value.evidence.proof  # the (real) proof that failed is kept
    with lied_to(log, liar, tmp_path / "tiles", proof_source="tiles") as client:
        liar.reset()
        client.checkpoint()
        grow(log)
        liar.rewrite_checkpoint = lambda note: resign(note, log.private_key, root=b"\x05" * 32)
        with pytest.raises(TileVerificationError):  # the tiles do not make that root
            client.checkpoint()


def test_tampered_consistency_proof(log, liar, tmp_path, entries):
    def flip(obj, query):
        obj["hashes"][0] = ("0" if obj["hashes"][0][0] != "0" else "1") + obj["hashes"][0][1:]
        return obj
    with lied_to(log, liar, tmp_path) as client:
        client.checkpoint()
        grow(log, 3)
        liar.rewrite_proof = flip
        with pytest.raises(InconsistentCheckpointError):
            client.checkpoint()
        liar.rewrite_proof = lambda obj, query: {**obj, "hashes": obj["hashes"][:-1]}
        with pytest.raises(InconsistentCheckpointError):
            client.checkpoint()


def test_regressed_checkpoint_never_moves_the_state_back(log, liar, tmp_path, entries):
    with lied_to(log, liar, tmp_path) as client:
        old = client.checkpoint()
        grow(log)
        new = client.checkpoint()
        liar.rewrite_checkpoint = lambda note: old.note  # replay an older checkpoint
        assert client.checkpoint().size == old.size  # consistent, accepted as old ...
        assert client.trusted_checkpoint() == new  # ... but the state keeps the newer one


# -- entries ---------------------------------------------------------------------------

def _flip_hex(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


def test_tampered_inclusion_proof(log, liar, tmp_path, entries):
    def tamper(inner):
        proof = inner["verification"]["inclusionProof"]
        proof["hashes"][0] = _flip_hex(proof["hashes"][0])
        return inner
    liar.rewrite_entry = tamper
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.InclusionBindingError):
            client.get_entry(entries[1][2].log_index)
    signer = entries[0]
    artifact = tmp_path / "a"
    artifact.write_bytes(b"artifact 2")
    res = Cli(liar.url, log.key_path, tmp_path / "cli")("verify", artifact, "--key",
                                                      signer.pub_path, "--json")
    assert res.code == 1 and res.json["binding"] == "inclusion"


def test_tampered_body(log, liar, tmp_path, entries):
    other = base64.b64encode(entries[1][0].entry.body).decode()
    liar.rewrite_entry = lambda inner: {**inner, "body": other}
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.LeafHashError):
            client.get_entry(entries[1][3].log_index)


def test_tampered_set_and_time(log, liar, tmp_path, entries):
    index = entries[1][1].log_index
    liar.rewrite_entry = lambda inner: {**inner, "integratedTime": inner["integratedTime"] - 3600}
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.SETError):
            client.get_entry(index)
        liar.rewrite_entry = lambda inner: {**inner, "verification": {
            **inner["verification"], "signedEntryTimestamp": base64.b64encode(bytes(64)).decode()}}
        with pytest.raises(bindings.SETError):
            client.get_entry(index)


def test_answer_about_another_entry(log, liar, tmp_path, entries):
    signer, made = entries
    other = made[0].entry
    liar.rewrite_entry = lambda inner: {**inner, "logIndex": inner["logIndex"] + 1}
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.ResponseMismatchError):
            client.get_entry(made[1].log_index)
        # a submission answered with an existing, valid, but different entry
        liar.rewrite_entry = lambda inner: {**inner, "body": base64.b64encode(other.body).decode()}
        with pytest.raises(bindings.ResponseMismatchError):
            client.submit_hashedrekord(b"brand new", private_key=signer.key)


def test_search_padded_with_unrelated_entries(log, liar, tmp_path, entries):
    signer, made = entries
    liar.rewrite_search = lambda refs: refs + [made[4].entry.ref.key]
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(bindings.ResponseMismatchError):
            client.search(digest="sha256:" + made[0].record.digest.hex())


def test_expected_signer_and_artifact_through_the_client(log, tmp_path, entries):
    signer, made = entries
    stranger = make_signer(tmp_path, "stranger")
    with honest(log, tmp_path) as client:
        index = made[2].log_index
        client.get_entry(index, Expectations(artifact=b"artifact 2", key=signer.public_pem))
        with pytest.raises(bindings.ArtifactMismatchError):
            client.get_entry(index, Expectations(artifact=b"artifact 3"))
        with pytest.raises(bindings.KeyMismatchError):
            client.get_entry(index, Expectations(key=stranger.public_pem))


# -- tiles -------------------------------------------------------------------------------

def test_tampered_tiles_and_bundles(log, liar, tmp_path, entries):
    def tile(path, data):
        if path.startswith("/tile/0/") or path.startswith("/tile/entries/"):
            return data[:-1] + bytes([data[-1] ^ 1])
        return data
    liar.rewrite_tile = tile
    with lied_to(log, liar, tmp_path) as client:
        with pytest.raises(TileVerificationError):
            client.inclusion_proof(0, source="tiles")

    async def run_audit():
        async with LogClient(liar.url, log.public_pem) as c:
            await audit(c)
    with pytest.raises(AuditError):
        asyncio.run(run_audit())
    res = Cli(liar.url, log.key_path, tmp_path / "cli")("audit", "--json")
    assert res.code == 1 and res.json["binding"] == "audit"
    liar.reset()
    with lied_to(log, liar, tmp_path / "ok") as client:
        assert client.inclusion_proof(0, source="tiles").index == 0
