"""The library journeys against a real server: LogClient (async) and
SyncLogClient; every value handed back is verified."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tlog_client.bundle import dumps_bundle, parse_bundle, verify_bundle
from tlog_client.client import EntryNotFoundError, LogClient, SyncLogClient
from tlog_client.entryverify import Expectations
from tlog_client.rekor import entry_id
from tlog_client.signing import public_pem
from tlog_client.trust import PinnedLog

from ..client.fakelog import make_ca, make_leaf


def test_async_journey(log, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(os.urandom(4096))

    async def run():
        async with LogClient(log.url, log.public_pem, tmp_path / "state.json") as client:
            v1 = await client.submit_hashedrekord(artifact, private_key=key)
            v2 = await client.submit_hashedrekord(b"in memory", private_key=key)
            digest = hashlib.sha256(b"prehashed elsewhere").digest()
            sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            v3 = await client.submit_hashedrekord(digest=digest, signature=sig,
                                                  public_key=public_pem(key))
            again = await client.submit_hashedrekord(digest=digest, signature=sig,
                                                     public_key=public_pem(key))
            assert (v1.created, v3.created, again.created) == (True, True, False)
            assert again.log_index == v3.log_index
            # lookups, each verified
            info = await client.log_info()
            for ref in (v1.log_index, v1.uuid, entry_id(info.tree_id, v1.uuid)):
                got = await client.get_entry(ref)
                assert got.uuid == v1.uuid and got.consistent_with is not None
            with pytest.raises(EntryNotFoundError):
                await client.get_entry("ab" * 32)
            hits = await client.search(public_key=public_pem(key))
            assert [h.log_index for h in hits] == sorted({v1.log_index, v2.log_index,
                                                           v3.log_index})
            hits = await client.search(digest=v2.record.artifact_hash,
                                       public_key=public_pem(key), operator="and")
            assert [h.uuid for h in hits] == [v2.uuid]
            # proofs from the JSON API and from verified tiles agree
            cp = await client.checkpoint()
            api = await client.inclusion_proof(v1.log_index)
            tiles = await client.inclusion_proof(v1.log_index, checkpoint=cp, source="tiles")
            if api.checkpoint.size == cp.size:
                assert api.hashes == tiles.hashes
            assert tiles.leaf_hash.hex() == v1.uuid
            old = v1.checkpoint
            c_api = await client.consistency_proof(old, cp, source="api")
            c_tiles = await client.consistency_proof(old.note, cp.note, source="tiles")
            assert c_api.hashes == c_tiles.hashes
            # entries read from verified entry bundles
            bodies = [b async for _, b in client.entries(v1.log_index, v3.log_index + 1, cp)]
            assert bodies[0] == v1.entry.body and bodies[-1] == v3.entry.body
            return v1
    v1 = asyncio.run(run())
    # a second client finds the origin and the trusted state in the state file
    with SyncLogClient(log.url, log.public_pem, tmp_path / "state.json") as client:
        assert client.pinned.origin == v1.checkpoint.origin
        before = client.trusted_checkpoint()
        assert before is not None and before.size >= v1.checkpoint.size
        assert client.checkpoint().size >= before.size
        verified = client.verify_entry(v1.log_index, Expectations(
            artifact=artifact.read_bytes(), key=public_pem(key)))
        assert verified.consistent_with is not None


def test_rsa_and_certificate_signers(log, tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = make_ca()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cert = make_leaf(ca, ec_key, "dev@example.com", "https://issuer.example")
    with SyncLogClient(log.url, log.public_pem) as client:
        v = client.submit_hashedrekord(b"rsa signed", private_key=rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        digest = hashlib.sha256(b"rsa signed").digest()
        assert rsa_key.public_key().verify(v.record.signature, digest, padding.PKCS1v15(),
                                           Prehashed(hashes.SHA256())) is None
        c = client.submit_hashedrekord(b"cert signed", private_key=ec_key, public_key=cert)
        assert c.record.key.identities.emails == ("dev@example.com",)
        assert [h.uuid for h in client.search(email="DEV@example.com")] == [c.uuid]
        assert client.search(subject="https://nobody.example/x") == []
        # the bundle of a certificate entry verifies offline with the identity
        bundle = parse_bundle(dumps_bundle(c))
        verify_bundle(bundle, PinnedLog(log.public_pem), Expectations(
            artifact=b"cert signed", identity="dev@example.com",
            issuer="https://issuer.example", ca_roots=(ca.cert,)))
        with pytest.raises(Exception, match="not the private key's public half"):
            client.submit_hashedrekord(b"x", private_key=rsa_key, public_key=cert)


def test_clients_sharing_a_state_file(log, tmp_path):
    """Two processes' worth of clients on one state file: each advance is a
    compare-and-swap; the state only moves forward."""
    key = ec.generate_private_key(ec.SECP256R1())
    state = tmp_path / "shared.json"

    async def worker(n: int) -> list[int]:
        sizes = []
        async with LogClient(log.url, log.public_pem, state) as client:
            for i in range(5):
                await client.submit_hashedrekord(b"%d-%d" % (n, i), private_key=key)
                sizes.append(client.trusted_checkpoint().size)
        return sizes

    async def run():
        return await asyncio.gather(*(worker(n) for n in range(4)))
    for sizes in asyncio.run(run()):
        assert sizes == sorted(sizes)
    with SyncLogClient(log.url, log.public_pem, state) as client:
        assert client.trusted_checkpoint().size == client.checkpoint().size


def test_attestations_are_verified_searched_and_monitored(log, tmp_path):
    """dsse entries (attestations) get the log bindings; search hits and
    monitor matches are checked against the attestation's in-toto subjects."""
    import json
    import urllib.request

    from tlog_client import dsse
    from tlog_client.match import Watch
    from tlog_client.monitor import Monitor

    key = ec.generate_private_key(ec.SECP256R1())
    subject = hashlib.sha256(os.urandom(16)).hexdigest()
    statement = {"_type": "https://in-toto.io/Statement/v1",
                 "subject": [{"name": "app.tar.gz", "digest": {"sha256": subject}}],
                 "predicateType": "https://example.com/attestation/v1", "predicate": {}}
    envelope = dsse.sign_envelope("application/vnd.in-toto+json",
                                  json.dumps(statement).encode(), [key])
    request = urllib.request.Request(
        log.url + "/api/v1/log/entries", method="POST",
        data=json.dumps(dsse.build_proposed(envelope, [public_pem(key)])).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 201

    async def run():
        async with LogClient(log.url, log.public_pem, tmp_path / "state.json") as client:
            hits = await client.search(digest=f"sha256:{subject}")
            assert [h.kind for h in hits] == ["dsse"]
            assert (await client.get_entry(hits[0].log_index)).kind == "dsse"
            assert [h.uuid for h in await client.search(public_key=public_pem(key))] == \
                [hits[0].uuid]
            report = await Monitor(client, Watch.build(digests=[subject])).poll()
            assert [m.index for m in report.matches] == [hits[0].log_index]
            assert report.anomalies == ()
    asyncio.run(run())


def test_signing_with_a_private_key_file(log, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "signing.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with SyncLogClient(log.url, log.public_pem) as client:
        for given in (path, str(path), path.read_text()):
            v = client.submit_hashedrekord(os.urandom(8), private_key=given)
            assert v.record.key.key_hash() == client.search(
                public_key=public_pem(key))[0].record.key.key_hash()
