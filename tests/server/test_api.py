"""The HTTP API surface of SPEC §6 and the tile routes of §3.3, through a real
server process, with Rekor v1's exact shapes (sigstore/rekor openapi.yaml).

Every proof, SET and checkpoint the server returns is verified with
tlog_client against the key pinned from the data directory.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tlog_client import hashedrekord
from tlog_client.hashing import leaf_hash, node_hash
from tlog_client.tiles import decode_entry_bundle, split_tile

from .helpers import (JSON, PinnedLog, b64, cert_signer, ecdsa_signer, error_message, get,
                      post_json, post_many, request, rsa_signer)

SIGNERS = {
    "ecdsa-p256-sha256": lambda: ecdsa_signer(ec.SECP256R1(), "sha256"),
    "ecdsa-p384-sha384": lambda: ecdsa_signer(ec.SECP384R1(), "sha384"),
    "ecdsa-p521-sha512": lambda: ecdsa_signer(ec.SECP521R1(), "sha512"),
    "ecdsa-p256-sha512": lambda: ecdsa_signer(ec.SECP256R1(), "sha512"),
    "rsa2048-pkcs1-sha256": lambda: rsa_signer(2048, "sha256"),
    "rsa2048-pss-sha384": lambda: rsa_signer(2048, "sha384", pss=True),
    "rsa3072-pkcs1-sha512": lambda: rsa_signer(3072, "sha512"),
    "cert-email": lambda: cert_signer(emails=["Alice@Example.com"]),
    "cert-uri-chain": lambda: cert_signer(
        uris=["https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"],
        chain=True),
    "cert-rsa": lambda: cert_signer(emails=["rsa@example.com"], key=rsa_signer().private_key),
}


def canonical(proposed: dict) -> bytes:
    return hashedrekord.parse_proposed(proposed).canonical_body()


# -- POST / GET entries ------------------------------------------------------------

@pytest.mark.parametrize("kind", list(SIGNERS))
def test_create_and_get_entry(module_server, pinned: PinnedLog, kind):
    signer = SIGNERS[kind]()
    proposed = signer.entry()
    r, entry = pinned.submit(proposed)
    assert r.status == 201, r.body
    assert r.content_type.startswith("application/json")
    assert entry.body == canonical(proposed)
    uuid = leaf_hash(entry.body).hex()
    assert entry.uuid == uuid
    entry_id = f"{pinned.tree_id:016x}{uuid}"
    assert list(r.json()) == [entry_id]

    # The same entry by Location, UUID, EntryID (either case), logIndex, with
    # and without a trailing slash: same body, integratedTime and index.
    paths = [r.header("Location"), f"/api/v1/log/entries/{uuid}",
             f"/api/v1/log/entries/{entry_id}", f"/api/v1/log/entries/{uuid.upper()}",
             f"/api/v1/log/entries/{entry_id.upper()}/",
             f"/api/v1/log/entries?logIndex={entry.log_index}",
             f"/api/v1/log/entries/?logIndex={entry.log_index}"]
    for path in paths:
        got = get(module_server.url, path)
        assert got.status == 200, (path, got.body)
        again = pinned.verify_entry(got.json(), body=entry.body, index=entry.log_index)
        assert again.integrated_time == entry.integrated_time
        assert list(got.json()) == [entry_id]


def test_duplicate_is_409_with_location(module_server, pinned):
    signer = ecdsa_signer()
    proposed = signer.entry()
    r, entry = pinned.submit(proposed)
    assert r.status == 201
    # The same entry again, and the same entry with the key PEM spelled
    # differently (CRLF line ends): one canonical body, so 409.
    respelled = {**proposed, "spec": {**proposed["spec"], "signature": {
        "content": proposed["spec"]["signature"]["content"],
        "publicKey": {"content": b64(signer.pem.replace(b"\n", b"\r\n"))}}}}
    for again in (proposed, respelled):
        dup = post_json(module_server.url, "/api/v1/log/entries", again)
        message = error_message(dup, 409)
        assert entry.uuid in message
        location = dup.header("Location")
        assert location and location.rsplit("/", 1)[1] in (entry.uuid, entry.ref.key)
        got = get(module_server.url, location)
        pinned.verify_entry(got.json(), body=entry.body, index=entry.log_index)


def test_entry_not_found(module_server, pinned):
    head = pinned.checkpoint()
    missing = hashlib.sha256(b"never logged").hexdigest()
    for path in (f"/api/v1/log/entries?logIndex={head.size}",
                 f"/api/v1/log/entries?logIndex={2**63 - 1}",
                 f"/api/v1/log/entries/{missing}",
                 f"/api/v1/log/entries/{pinned.tree_id:016x}{missing}"):
        error_message(get(module_server.url, path), 404)
    # An EntryID of another tree names no entry of this log.
    r, entry = pinned.submit(ecdsa_signer().entry())
    other = (pinned.tree_id % (2**63 - 1)) + 1
    error_message(get(module_server.url, f"/api/v1/log/entries/{other:016x}{entry.uuid}"), 404)


# -- retrieve ----------------------------------------------------------------------

def test_retrieve(module_server, pinned):
    signer = ecdsa_signer()
    proposed = [signer.entry() for _ in range(4)]
    entries = [pinned.submit(p)[1] for p in proposed]
    missing = hashlib.sha256(b"missing").hexdigest()
    query = {"entryUUIDs": [entries[0].uuid, entries[1].ref.key.upper(), missing],
             "logIndexes": [entries[2].log_index, 2**62],
             "entries": [proposed[3], signer.entry()]}
    for path in ("/api/v1/log/entries/retrieve", "/api/v1/log/entries/retrieve/"):
        r = post_json(module_server.url, path, query)
        assert r.status == 200, r.body
        got = r.json()
        assert isinstance(got, list) and len(got) == 4  # the 3 unknown ones are left out
        bodies = [pinned.verify_entry(obj).body for obj in got]
        assert bodies == [e.body for e in entries]
    # Empty lists and an empty query find nothing.
    for q in ({}, {"entryUUIDs": [], "logIndexes": [], "entries": []}):
        r = post_json(module_server.url, "/api/v1/log/entries/retrieve", q)
        assert r.status == 200 and r.json() == []


def test_retrieve_limit_is_10_items_in_all(module_server, pinned):
    entry = pinned.submit(ecdsa_signer().entry())[1]
    ten = {"entryUUIDs": [entry.uuid] * 4, "logIndexes": [entry.log_index] * 6}
    r = post_json(module_server.url, "/api/v1/log/entries/retrieve", ten)
    assert r.status == 200 and len(r.json()) == 10
    for eleven in ({"entryUUIDs": [entry.uuid] * 5, "logIndexes": [entry.log_index] * 6},
                   {"logIndexes": [0] * 11}, {"entryUUIDs": [entry.uuid] * 11}):
        message = error_message(post_json(module_server.url, "/api/v1/log/entries/retrieve",
                                          eleven), 422)
        assert "10" in message


# -- log info, proofs, public key --------------------------------------------------

def test_log_info(module_server, pinned):
    pinned.submit(ecdsa_signer().entry())
    for path in ("/api/v1/log", "/api/v1/log/"):
        r = get(module_server.url, path)
        assert r.status == 200 and r.content_type.startswith("application/json")
        info = r.json()
        assert set(info) == {"rootHash", "treeSize", "signedTreeHead", "treeID"}
        assert info["treeID"] == str(pinned.tree_id)
        cp = pinned.open(info["signedTreeHead"])
        assert (cp.size, cp.root_hash.hex()) == (info["treeSize"], info["rootHash"])
        assert cp.origin == "tlog.test/shared"


def test_consistency_proofs_between_all_seen_sizes(module_server, pinned):
    signer = ecdsa_signer()
    seen = [pinned.checkpoint()]
    for _ in range(5):
        assert pinned.submit(signer.entry())[0].status == 201
        seen.append(pinned.checkpoint())
    head = seen[-1]
    for old in seen:
        for new in seen:
            if 0 < old.size <= new.size:
                pinned.prove_consistent(old, new)
    # Defaults and edge cases of the query: firstSize defaults to 1; equal
    # sizes give an empty proof; trailing slash.
    from tlog_client.checkpoint import Checkpoint
    one = Checkpoint(pinned.origin, 1, leaf_hash(pinned.get_entry(0).body))
    r = get(module_server.url, f"/api/v1/log/proof?lastSize={head.size}")
    assert r.status == 200
    r2 = get(module_server.url, f"/api/v1/log/proof/?firstSize=1&lastSize={head.size}")
    assert r.json() == r2.json()
    pinned.prove_consistent(one, head)
    r = get(module_server.url, f"/api/v1/log/proof?firstSize={head.size}&lastSize={head.size}")
    assert r.json() == {"rootHash": head.root_hash.hex(), "hashes": []}


def test_public_key(module_server, pinned):
    for path in ("/api/v1/log/publicKey", "/api/v1/log/publicKey/"):
        r = get(module_server.url, path)
        assert r.status == 200
        assert r.content_type.startswith("application/x-pem-file")
        key = serialization.load_pem_public_key(r.body)
        assert key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo) == \
            pinned.public_key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)


# -- search ------------------------------------------------------------------------

def _search(url, query, path="/api/v1/index/retrieve") -> list[str]:
    r = post_json(url, path, query)
    assert r.status == 200, (query, r.body)
    result = r.json()
    assert isinstance(result, list) and all(isinstance(u, str) and len(u) == 80 for u in result)
    assert len(set(result)) == len(result)
    return result


def test_search_index(module_server, pinned):
    url = module_server.url
    email = cert_signer(emails=["Dev.Team@Example.org", "second@example.org"])
    uri_id = "https://github.com/acme/tool/.github/workflows/ci.yml@refs/tags/v1"
    uri = cert_signer(uris=[uri_id], chain=True)
    plain = ecdsa_signer(ec.SECP384R1(), "sha384")
    artifact = b"shared artifact bytes"
    ids = {}
    for name, signer in (("email", email), ("uri", uri), ("plain", plain)):
        entry = pinned.submit(signer.entry(artifact))[1]
        ids[name] = entry.ref.key
    extra = pinned.submit(email.entry())[1].ref.key

    sha256 = hashlib.sha256(artifact).hexdigest()
    sha384 = hashlib.sha384(artifact).hexdigest()
    assert set(_search(url, {"hash": f"sha256:{sha256}"})) == {ids["email"], ids["uri"]}
    assert set(_search(url, {"hash": sha256.upper()})) == {ids["email"], ids["uri"]}
    assert _search(url, {"hash": f"sha384:{sha384}"}) == [ids["plain"]]
    assert _search(url, {"hash": sha384}) == [ids["plain"]]
    assert set(_search(url, {"email": "dev.team@example.org"})) == {ids["email"], extra}
    assert set(_search(url, {"email": "SECOND@example.org"})) == {ids["email"], extra}
    assert _search(url, {"subject": uri_id}) == [ids["uri"]]
    # publicKey: the bare key, and the certificate carrying it, find the same entries.
    for pem in (email.public_pem, email.pem):
        found = _search(url, {"publicKey": {"format": "x509", "content": b64(pem)}})
        assert set(found) == {ids["email"], extra}
    # and / or, with the trailing slash variant.
    both = {"hash": f"sha256:{sha256}", "email": "dev.team@example.org"}
    assert _search(url, {**both, "operator": "and"}) == [ids["email"]]
    assert set(_search(url, {**both, "operator": "or"})) == {ids["email"], ids["uri"], extra}
    assert set(_search(url, both, "/api/v1/index/retrieve/")) == {
        ids["email"], ids["uri"], extra}  # "or" is the default
    assert _search(url, {"email": "nobody@example.org"}) == []
    # Every UUID found resolves to an entry that verifies.
    for entry_id in ids.values():
        pinned.verify_entry(get(url, f"/api/v1/log/entries/{entry_id}").json())


# -- tiles and checkpoint ----------------------------------------------------------

def _fill_to(pinned, size: int) -> None:
    head = pinned.checkpoint()
    if head.size < size:
        signer = ecdsa_signer()
        rs = asyncio.run(post_many(pinned.url, "/api/v1/log/entries",
                                   [signer.entry() for _ in range(size - head.size)]))
        assert all(r.status == 201 for r in rs)


def test_checkpoint_route(module_server, pinned):
    r = get(module_server.url, "/checkpoint")
    assert r.status == 200
    assert r.content_type == "text/plain; charset=utf-8"
    cache = r.header("Cache-Control")
    assert cache and "immutable" not in cache and "max-age=" in cache
    assert int(cache.split("max-age=")[1].split(",")[0]) <= 10
    cp = pinned.open(r.body)
    info = get(module_server.url, "/api/v1/log").json()
    assert info["treeSize"] >= cp.size


def test_tiles_and_entry_bundles(module_server, pinned):
    url = module_server.url
    _fill_to(pinned, 300)
    head = pinned.checkpoint()
    size = head.size
    bundles = {}

    full = get(url, "/tile/0/000")
    assert full.status == 200 and len(full.body) == 8192
    assert full.content_type == "application/octet-stream"
    assert "immutable" in full.header("Cache-Control")
    bundle = get(url, "/tile/entries/000")
    assert bundle.status == 200 and "immutable" in bundle.header("Cache-Control")
    bodies = decode_entry_bundle(bundle.body, 256)
    hashes = split_tile(full.body, 256)
    assert [leaf_hash(b) for b in bodies] == hashes
    bundles[0] = bodies

    # The partial tile and bundle at the head, and a narrower partial tile
    # (published by an earlier size) of the same tile.
    w = size - 256
    assert 0 < w < 256
    part = get(url, f"/tile/0/001.p/{w}")
    assert part.status == 200 and len(part.body) == 32 * w
    cache = part.header("Cache-Control")
    assert "immutable" not in cache
    pbundle = get(url, f"/tile/entries/001.p/{w}")
    assert pbundle.status == 200 and "immutable" not in pbundle.header("Cache-Control")
    pbodies = decode_entry_bundle(pbundle.body, w)
    assert [leaf_hash(b) for b in pbodies] == split_tile(part.body, w)
    narrow = get(url, "/tile/0/001.p/1")
    assert narrow.status == 200 and narrow.body == part.body[:32]
    assert decode_entry_bundle(get(url, "/tile/entries/001.p/1").body, 1) == pbodies[:1]

    # Level 1: hash 0 is the root of the first 256 leaves.
    lvl1 = get(url, "/tile/1/000.p/1")
    assert lvl1.status == 200 and len(lvl1.body) == 32
    level = hashes
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    assert lvl1.body == level[0]

    # The whole tree from tiles equals the signed root (I2), and every body
    # in the bundles is the body served by the entries API.
    all_leaves = hashes + split_tile(part.body, w)
    from tlog_client.compact import CompactRange
    cr = CompactRange()
    cr.extend(all_leaves)
    assert cr.end == size and cr.root() == head.root_hash
    for i in (0, 1, 255, 256, size - 1):
        body = bodies[i] if i < 256 else pbodies[i - 256]
        assert pinned.get_entry(i).body == body

    # Tiles beyond the tree, and non-canonical paths, are 404.
    for path in (f"/tile/0/001.p/{w + 1}", "/tile/0/001", "/tile/0/002.p/1",
                 "/tile/1/000", "/tile/1/000.p/2", "/tile/2/000.p/1",
                 f"/tile/entries/001.p/{w + 1}", "/tile/entries/002.p/1",
                 "/tile/0/0", "/tile/0/00", "/tile/0/0000", "/tile/0/x000/000",
                 "/tile/0/x001", "/tile/0/001.p/0", "/tile/0/000.p/256", "/tile/0/001.p/01",
                 "/tile/0/001.p/", "/tile/0/001.p", "/tile/00/000", "/tile/-1/000",
                 "/tile/64/000", "/tile/0/000/", "/tile/entries/0", "/tile/entries/000.p/0",
                 "/tile/entries", "/tile/0", "/tile/", "/tile/x/000", "/tile/0/+00",
                 "/tile/0/١٢٣", "/tile/0/000.p/+1", "/tile/0/000.p/ 1"):
        r = request(url, "GET", path.replace(" ", "%20").replace("١٢٣", "%D9%A1%D9%A2%D9%A3"))
        assert r.status in (400, 404), (path, r.status, r.body)
        error_message(r, r.status)


# -- operations --------------------------------------------------------------------

def test_healthz(module_server, pinned):
    r = get(module_server.url, "/healthz")
    assert r.status == 200 and r.json()["status"] == "ok"
    assert get(module_server.url, "/healthz/").status == 200


def test_metrics(module_server, pinned):
    from prometheus_client.parser import text_string_to_metric_families
    pinned.submit(ecdsa_signer().entry())
    r = get(module_server.url, "/metrics")
    assert r.status == 200
    assert r.content_type.startswith("text/plain") and "version=" in r.content_type
    families = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    size = pinned.checkpoint().size
    assert families["tlog_tree_size"].samples[0].value == size
    requests = families["tlog_http_requests"].samples
    assert any(s.labels.get("status") == "201" and s.labels.get("method") == "POST"
               for s in requests)
    assert "tlog_submission_seconds" in families
    assert get(module_server.url, "/metrics/").status == 200


@pytest.mark.parametrize("method,path", [
    ("DELETE", "/api/v1/log"), ("PUT", "/api/v1/log/entries"), ("POST", "/api/v1/log"),
    ("GET", "/api/v1/index/retrieve"), ("POST", "/checkpoint"), ("POST", "/tile/0/000"),
    ("PATCH", "/api/v1/log/entries/retrieve"), ("DELETE", "/healthz"),
])
def test_wrong_method_is_405(module_server, method, path):
    r = request(module_server.url, method, path, b"{}", JSON)
    error_message(r, 405)
    assert r.header("Allow")


@pytest.mark.parametrize("path", ["/", "/api/v1", "/api/v2/log", "/api/v1/log/entries/x/y",
                                  "/api/v1/log/entries/" + "0" * 64 + "/proof", "/favicon.ico"])
def test_unknown_route_is_404(module_server, path):
    error_message(get(module_server.url, path), 404)


def test_ecdsa_p256_log_key(make_server):
    """A log created with --key-type ecdsa-p256: ECDSA SETs (DER over
    SHA-256), one SPKI-key-ID signature line per checkpoint."""
    server = make_server("--key-type", "ecdsa-p256", "--origin", "tlog.test/ecdsa")
    pinned = PinnedLog.of(server)
    assert isinstance(pinned.public_key, ec.EllipticCurvePublicKey)
    for kind in ("ecdsa-p256-sha256", "rsa2048-pkcs1-sha256", "cert-email"):
        r, entry = pinned.submit(SIGNERS[kind]().entry())
        assert r.status == 201
    cp_note = get(server.url, "/checkpoint").body
    assert cp_note.count(b"\n\xe2\x80\x94 ") == 1  # one signature line
    head = pinned.open(cp_note)
    assert head.size == 3
    for i in range(3):
        pinned.get_entry(i)
    pinned.all_seen_consistent_with(head)
