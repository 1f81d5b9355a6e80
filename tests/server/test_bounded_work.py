"""No request can stall others (SPEC §10 U5), through a real server process:
RSA keys with another exponent than 65537 and dsse entries over the trial cap
are refused (400 naming the field), search answers come in pages chained by
cursors (complete and in order, a malformed cursor 400), searches whose
clients hang up leave the server answering, and a submission whose client
hangs up once it is queued is still logged. No timing is asserted here: the
latency under hostile load is measured by scripts/bench_hostile.py."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tlog_client import dsse
from tlog_client.client import SearchTooLongError, SyncLogClient

from .helpers import (PinnedLog, b64, ecdsa_signer, error_message, get, post_json, spki_pem,
                      unique_data)

ENTRIES = "/api/v1/log/entries"
SEARCH = "/api/v1/index/retrieve"
NEXT = "x-tlog-next-cursor"


# -- keys and trials ---------------------------------------------------------------

def hashedrekord_with(public_pem: bytes, signature: bytes = b"\x01" * 256) -> dict:
    digest = unique_data()[:32].ljust(32, b"\0")
    return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
        "signature": {"content": b64(signature), "publicKey": {"content": b64(public_pem)}}}}


def big_exponent_pem(bits: int = 3072) -> bytes:
    n = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key() \
        .public_numbers().n
    return spki_pem(rsa.RSAPublicNumbers((1 << 3000) + 1, n).public_key())


def dsse_entry(signatures: int, verifiers: int) -> dict:
    """A dsse entry of ``signatures`` signatures by one key, with ``verifiers``
    verifiers (the signer's key last)."""
    signer = ecdsa_signer()
    env = dsse.sign_envelope("text/plain", unique_data(), [signer.private_key] * signatures)
    keys = [ecdsa_signer().public_pem for _ in range(verifiers - 1)] + [signer.public_pem]
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": env.decode(), "verifiers": [b64(k) for k in keys]}}}


def test_rsa_exponent_other_than_65537_is_refused_naming_the_key(log_server):
    three = rsa.generate_private_key(public_exponent=3, key_size=2048)
    digest_entry = hashedrekord_with(spki_pem(three.public_key()))
    digest = bytes.fromhex(digest_entry["spec"]["data"]["hash"]["value"])
    digest_entry["spec"]["signature"]["content"] = b64(three.sign(
        digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())))
    message = error_message(post_json(log_server.url, ENTRIES, digest_entry), 400)
    assert message.startswith("spec.signature.publicKey.content: ")
    assert "exponent 3 is not allowed" in message

    message = error_message(post_json(log_server.url, ENTRIES,
                                      hashedrekord_with(big_exponent_pem())), 400)
    assert message.startswith("spec.signature.publicKey.content: ")
    assert "exponent of 3001 bits is not allowed" in message

    proposed = dsse_entry(1, 1)
    proposed["spec"]["proposedContent"]["verifiers"].insert(0, b64(big_exponent_pem()))
    message = error_message(post_json(log_server.url, ENTRIES, proposed), 400)
    assert message.startswith("spec.proposedContent.verifiers[0]: ")
    assert "exponent of 3001 bits" in message

    # And in a retrieve request's proposed entries (checked off the loop too).
    message = error_message(post_json(log_server.url, f"{ENTRIES}/retrieve",
                                      {"entries": [hashedrekord_with(big_exponent_pem())]}), 400)
    assert message.startswith("entries[0].spec.signature.publicKey.content: ")


def test_signature_checks_per_entry_are_capped(make_server):
    server = make_server("--max-verify-trials", "4")
    for signatures, verifiers in [(1, 5), (2, 3), (5, 1)]:
        message = error_message(post_json(server.url, ENTRIES,
                                          dsse_entry(signatures, verifiers)), 400)
        assert message.startswith("spec.proposedContent.verifiers: "), message
        assert "over the limit of 4" in message
    for signatures, verifiers in [(1, 4), (2, 2), (4, 1)]:
        r = post_json(server.url, ENTRIES, dsse_entry(signatures, verifiers))
        assert r.status == 201, r.body[:300]


def test_a_body_of_too_many_json_values_is_refused_before_parsing(log_server):
    """4 MB of small objects would be 400,000 Python dicts (130 MiB)."""
    bomb = json.dumps({"entries": [{"a": 1}] * 300_000}).encode()
    for path in (ENTRIES, SEARCH):
        message = error_message(post_json(log_server.url, path, raw=bomb), 400)
        assert message.startswith("body: ") and "at most 10,000 JSON values" in message


def test_the_default_trial_cap_is_16(log_server):
    message = error_message(post_json(log_server.url, ENTRIES, dsse_entry(16, 16)), 400)
    assert "256 signature checks to try, over the limit of 16" in message
    assert post_json(log_server.url, ENTRIES, dsse_entry(2, 8)).status == 201


# -- search pages ------------------------------------------------------------------

def search_pages(url: str, query: dict) -> tuple[list[str], int]:
    """Follow the cursors; every answer 200, at most a page (3) long."""
    found: list[str] = []
    pages = 0
    body = dict(query)
    while True:
        r = post_json(url, SEARCH, body)
        assert r.status == 200, r.body[:300]
        ids = r.json()
        assert len(ids) <= 3
        found += ids
        pages += 1
        cursor = r.header(NEXT)
        if cursor is None:
            assert r.header("Link") is None
            return found, pages
        assert cursor in r.header("Link")
        body = {**query, "cursor": cursor}
        assert pages < 100


@pytest.fixture(scope="module")
def paged_log(tmp_path_factory):
    """A log whose first signer has 12 entries among 15 (pages of 3)."""
    from ..serverproc import ServerProcess
    server = ServerProcess(tmp_path_factory.mktemp("paged") / "log", "--search-page", "3",
                           "--origin", "tlog.test/paged").start()
    pinned = PinnedLog.of(server)
    mine, other = ecdsa_signer(), ecdsa_signer()
    entries = []
    for i in range(15):
        signer = other if i % 4 == 3 else mine
        data = unique_data()
        r, entry = pinned.submit(signer.entry(data))
        assert r.status == 201
        entries.append((signer, signer.digest(data), entry))
    yield server, pinned, mine, other, entries
    server.stop()
    assert "Traceback" not in server.output()


def test_search_pages_are_complete_and_in_log_order(paged_log):
    server, pinned, mine, other, entries = paged_log
    key_query = {"publicKey": {"format": "x509", "content": b64(mine.public_pem)}}
    found, pages = search_pages(server.url, key_query)
    assert [f[16:] for f in found] == [e.uuid for s, _, e in entries if s is mine]
    assert len(found) == len(set(found)) == 12 and pages >= 4
    assert all(f.startswith(f"{pinned.tree_id:016x}") for f in found)
    # or: the other signer's entries and one of mine, by its digest.
    _, digest, chosen = entries[5]
    either = {"publicKey": {"format": "x509", "content": b64(other.public_pem)},
              "hash": "sha256:" + digest.hex()}
    found, _ = search_pages(server.url, either)
    assert [f[16:] for f in found] == [e.uuid for i, (s, _, e) in enumerate(entries)
                                        if s is other or i == 5]
    # and: exactly the chosen one, whatever page the scan is on.
    found, _ = search_pages(server.url, {**either, "publicKey": key_query["publicKey"],
                                         "operator": "and"})
    assert [f[16:] for f in found] == [chosen.uuid]


def test_a_malformed_cursor_is_400_naming_it(paged_log):
    server = paged_log[0]
    query = {"hash": "sha256:" + "ab" * 32}
    for cursor in ("", "abc", "1.0123", "-1.0123456789abcdef", 3, None, ["1"]):
        message = error_message(post_json(server.url, SEARCH, {**query, "cursor": cursor}), 400)
        assert message.split(":")[0] in ("cursor", "body.cursor"), message
    r = post_json(server.url, SEARCH, {"publicKey": {"format": "x509", "content": b64(
        paged_log[2].public_pem)}})
    message = error_message(post_json(server.url, SEARCH, {**query, "cursor": r.header(NEXT)}),
                            400)
    assert message.startswith("cursor: belongs to another query")


def test_the_client_follows_the_cursors(paged_log):
    server, pinned, mine, _, entries = paged_log
    public = pinned.public_key.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    seen: list[tuple[int, int]] = []
    with SyncLogClient(server.url, public) as client:
        hits = client.search(public_key=mine.public_pem,
                             on_page=lambda pages, n: seen.append((pages, n)))
        assert [h.uuid for h in hits] == [e.uuid for s, _, e in entries if s is mine]
        assert seen[-1] == (len(seen), 12) and len(seen) >= 4
        with pytest.raises(SearchTooLongError, match="more than 2 pages"):
            client.search(public_key=mine.public_pem, max_pages=2)


# -- clients that go away ----------------------------------------------------------

def _send_and_hang_up(url: str, path: str, body: bytes) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))


def test_searches_whose_clients_hang_up_leave_the_server_answering(paged_log):
    server, pinned, mine, _, _ = paged_log
    query = json.dumps({"publicKey": {"format": "x509", "content": b64(mine.public_pem)},
                        "hash": "sha256:" + "cd" * 32, "email": "a@example.com",
                        "subject": "https://example.com/x", "predicateType": "p",
                        "builderId": "b"}).encode()
    for _ in range(300):
        _send_and_hang_up(server.url, SEARCH, query)
    # Liveness, not latency: answered at all within a generous bound.
    r = get(server.url, "/checkpoint")
    assert r.status == 200
    assert pinned.open(r.body).size == 15
    found, _ = search_pages(server.url, {"publicKey": {"format": "x509",
                                                       "content": b64(mine.public_pem)}})
    assert len(found) == 12


def test_a_submission_queued_before_its_client_hangs_up_is_logged(make_server):
    """Once its entry is queued to the sequencer, a submission is the
    sequencer's: the client going away cancels only its wait. (One whose
    client goes before its check has run is skipped: work for nobody.)
    The writer holds its batch for 5 s (--batch-delay-ms), so that the
    second entry is seen queued (tlog_pool_pending) before its client goes."""
    server = make_server("--batch-delay-ms", "5000")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    first, second = signer.entry(), signer.entry()

    async def scenario() -> int:
        host, port = server.url.removeprefix("http://").split(":")
        waiting = asyncio.ensure_future(asyncio.to_thread(pinned.submit, first))
        body = json.dumps(second).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (ENTRIES.encode(), len(body), body))
        await writer.drain()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metrics = (await asyncio.to_thread(get, server.url, "/metrics")).body.decode()
            if "tlog_pool_pending 1.0" in metrics:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the second entry was never seen queued")
        writer.transport.abort()  # gone, before any answer
        r, _ = await waiting
        return r.status

    assert asyncio.run(scenario()) == 201
    from tlog_client import hashedrekord
    from tlog_client.hashing import leaf_hash
    uuid = leaf_hash(hashedrekord.parse_proposed(second).canonical_body()).hex()
    deadline = time.monotonic() + 30
    while get(server.url, f"{ENTRIES}/{uuid}").status != 200:
        assert time.monotonic() < deadline, "the queued entry was not logged"
        time.sleep(0.05)
    assert pinned.checkpoint().size == 2
    server.stop()
    assert "Traceback" not in server.output()
