"""Attestations through a real server: dsse 0.0.1 and intoto 0.0.2 entries,
the envelope kept and returned as ``attestation.data`` (bound by the leaf),
400 for every malformed field, 413 above the attestation cap, and complete
search by subject digest, key, identity, predicate type and builder id that
gives the same answers after a restart and after ``tlog fsck``."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from tlog_client import dsse, intoto, intoto002
from tlog_client.rekor import LogEntry, parse_log_entry

from ..client.attestation_samples import (GENERATOR_BUILDER, GITHUB_BUILDER, Key, WORKFLOW_IDENTITY,
                                          b64, cert_key, cyclonedx_sbom, dotted, ecdsa_key,
                                          ed25519_key, mutate, payload, rsa_key, sha256_hex,
                                          slsa_v02_generator, slsa_v1_github, spdx_document)
from .helpers import PinnedLog, ecdsa_signer, error_message, get, post_json, unique_data

ENTRIES = "/api/v1/log/entries"
SEARCH = "/api/v1/index/retrieve"


def fresh_subject(name: str = "app.tar.gz") -> tuple[str, bytes, str]:
    data = unique_data()
    return name, data, sha256_hex(data)


def dsse_proposed(keys: list[Key], statement: dict) -> dict:
    env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(statement), [k.private for k in keys])
    return dsse.build_proposed(env, [k.pem for k in keys])


def intoto_proposed(keys: list[Key], statement: dict) -> dict:
    env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(statement), [k.private for k in keys])
    return intoto002.build_proposed(env, [k.pem for k in keys])


def expected(proposed: dict) -> tuple[bytes, bytes]:
    """(canonical body, attestation) the client computes for ``proposed``."""
    parse = dsse.parse_proposed if proposed["kind"] == "dsse" else intoto002.parse_proposed
    entry = parse(proposed)
    return entry.canonical_body(), entry.envelope_bytes


def verify_with_attestation(pinned: PinnedLog, obj: dict, proposed: dict) -> LogEntry:
    """Verify the LogEntry fully (the attestation is outside the SET and the
    proof), then that the attestation is exactly the envelope the leaf binds."""
    (key, inner), = obj.items()
    assert set(inner["attestation"]) == {"data"}
    stripped = {key: {k: v for k, v in inner.items() if k != "attestation"}}
    body, attestation = expected(proposed)
    pinned.verify_entry(stripped, body=body)
    entry = parse_log_entry(obj)
    assert entry.attestation == attestation
    if proposed["kind"] == "dsse":
        leaf = dsse.parse_canonical(entry.body)
        assert hashlib.sha256(entry.attestation).digest() == leaf.envelope_hash
        dsse.verify_attestation(leaf, entry.attestation)
    else:
        leaf = intoto002.parse_canonical(entry.body)
        assert hashlib.sha256(entry.attestation).digest() == leaf.envelope_hash
        intoto002.verify_attestation(leaf, entry.attestation)
    return entry


def submit(pinned: PinnedLog, proposed: dict) -> LogEntry:
    r = post_json(pinned.url, ENTRIES, proposed)
    assert r.status == 201, (r.status, r.body[:500])
    entry = verify_with_attestation(pinned, r.json(), proposed)
    location = r.header("Location")
    assert location == f"{ENTRIES}/{entry.uuid}"
    return entry


# -- creation, retrieval, duplicates --------------------------------------------------

KEYS = {
    "ecdsa-p256": lambda: [ecdsa_key()],
    "ed25519": lambda: [ed25519_key()],
    "rsa2048": lambda: [rsa_key()],
    "cert-email": lambda: [cert_key(emails=["builder@example.com"])],
    "cert-chain-uri": lambda: [cert_key(uris=[WORKFLOW_IDENTITY], chain=True)],
    "three-signers": lambda: [ecdsa_key(), ed25519_key(), rsa_key()],
}

STATEMENTS = {
    "slsa-v1": lambda s: slsa_v1_github([s]),
    "slsa-v0.2": lambda s: slsa_v02_generator([s]),
    "cyclonedx": lambda s: cyclonedx_sbom([s]),
    "spdx": lambda s: spdx_document([s]),
}


# every key set with SLSA v1 provenance; every statement with two key sets
COMBOS = [(kind, keys, "slsa-v1") for kind in ("dsse", "intoto") for keys in KEYS] + [
    (kind, keys, st) for kind in ("dsse", "intoto") for keys in ("ecdsa-p256", "three-signers")
    for st in STATEMENTS if st != "slsa-v1"]


@pytest.mark.parametrize("kind,keys,statement", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_created_verified_and_retrievable(module_server, pinned, kind, keys, statement):
    name, _, digest = fresh_subject()
    stmt = STATEMENTS[statement]((name, digest))
    build = dsse_proposed if kind == "dsse" else intoto_proposed
    proposed = build(KEYS[keys](), stmt)
    entry = submit(pinned, proposed)

    # The attestation comes back with the entry on every read route.
    for path in (f"{ENTRIES}/{entry.uuid}", f"{ENTRIES}/{entry.ref.key}/",
                 f"{ENTRIES}?logIndex={entry.log_index}"):
        r = get(pinned.url, path)
        assert r.status == 200, (path, r.status, r.body[:300])
        again = verify_with_attestation(pinned, r.json(), proposed)
        assert (again.uuid, again.log_index) == (entry.uuid, entry.log_index)
    r = post_json(pinned.url, f"{ENTRIES}/retrieve", {"entryUUIDs": [entry.uuid]})
    assert r.status == 200
    (obj,) = r.json()
    verify_with_attestation(pinned, obj, proposed)


@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_repeat_is_409_with_the_existing_location(module_server, pinned, kind):
    name, _, digest = fresh_subject()
    build = dsse_proposed if kind == "dsse" else intoto_proposed
    proposed = build([ecdsa_key()], slsa_v1_github([(name, digest)]))
    entry = submit(pinned, proposed)
    for again in (proposed, _with_client_nulls(proposed)):
        r = post_json(pinned.url, ENTRIES, again)
        assert "already exists" in error_message(r, 409)
        assert r.header("Location") == f"{ENTRIES}/{entry.uuid}"


def _with_client_nulls(proposed: dict) -> dict:
    """The same entry as rekor_types-based clients write it (explicit nulls)."""
    out = copy.deepcopy(proposed)
    if out["kind"] == "dsse":
        out["spec"].update(signatures=None, envelopeHash=None, payloadHash=None)
    else:
        out["spec"]["content"].update(hash=None, payloadHash=None)
        for sig in out["spec"]["content"]["envelope"]["signatures"]:
            sig.setdefault("keyid", None)
    return out


def test_sigstore_shaped_dsse_with_nulls_is_accepted(module_server, pinned):
    name, _, digest = fresh_subject()
    proposed = dsse_proposed([cert_key(emails=["ci@example.com"])],
                             slsa_v1_github([(name, digest)]))
    r = post_json(pinned.url, ENTRIES, _with_client_nulls(proposed))
    assert r.status == 201, r.body
    verify_with_attestation(pinned, r.json(), proposed)


def test_same_statement_reserialised_is_another_entry(module_server, pinned):
    """As in Rekor, envelopeHash is over the submitted bytes."""
    key = ecdsa_key()
    name, _, digest = fresh_subject()
    env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, payload(slsa_v1_github([(name, digest)])),
                             [key.private])
    a = submit(pinned, dsse.build_proposed(env, [key.pem]))
    pretty = json.dumps(json.loads(env), indent=1)
    b = submit(pinned, dsse.build_proposed(pretty, [key.pem]))
    assert a.uuid != b.uuid
    assert dsse.parse_canonical(a.body).payload_hash == dsse.parse_canonical(b.body).payload_hash


# -- 400 for each malformed field ---------------------------------------------------------

def _dsse_base() -> dict:
    name, _, digest = fresh_subject()
    return dsse_proposed([ecdsa_key()], slsa_v1_github([(name, digest)]))


def _intoto_base() -> dict:
    name, _, digest = fresh_subject()
    return intoto_proposed([ecdsa_key()], slsa_v02_generator([(name, digest)]))


def _envelope_change(change):
    def make():
        key = ecdsa_key()
        name, _, digest = fresh_subject()
        env = json.loads(dsse.sign_envelope(intoto.PAYLOAD_TYPE,
                                            payload(slsa_v1_github([(name, digest)])),
                                            [key.private]))
        change(env, key)
        return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": json.dumps(env), "verifiers": [b64(key.pem)]}}}
    return make


def _resign(env, key, statement):
    """Replace the payload by ``statement`` and sign it properly."""
    body = payload(statement)
    env["payload"] = b64(body)
    sig = json.loads(dsse.sign_envelope(intoto.PAYLOAD_TYPE, body, [key.private]))
    env["signatures"] = sig["signatures"]


def _bad_signature(env, key):
    other = ecdsa_key()
    good = env["signatures"][0]
    bad = json.loads(dsse.sign_envelope(intoto.PAYLOAD_TYPE, base64.b64decode(env["payload"]),
                                        [other.private]))["signatures"][0]
    env["signatures"] = [good, bad]


DSSE_FIELDS = [("apiVersion",), ("kind",), ("spec",), ("spec", "proposedContent"),
               ("spec", "proposedContent", "envelope"), ("spec", "proposedContent", "verifiers"),
               ("spec", "proposedContent", "verifiers", 0)]
INTOTO_FIELDS = [("spec", "content"), ("spec", "content", "envelope"),
                 ("spec", "content", "envelope", "payloadType"),
                 ("spec", "content", "envelope", "payload"),
                 ("spec", "content", "envelope", "signatures"),
                 ("spec", "content", "envelope", "signatures", 0, "sig"),
                 ("spec", "content", "envelope", "signatures", 0, "publicKey")]
ENVELOPE_FIELDS = ["payloadType", "payload", "signatures"]
STATEMENT_FIELDS = [("_type",), ("subject",), ("predicateType",), ("predicate",),
                    ("predicate", "runDetails", "builder", "id"),
                    ("predicate", "buildDefinition", "buildType")]


def _cases():
    cases = []
    for base, fields in ((_dsse_base, DSSE_FIELDS), (_intoto_base, INTOTO_FIELDS)):
        for path in fields:
            for how in ("missing", "null"):
                if how == "missing" and isinstance(path[-1], int):
                    continue
                cases.append((f"{base.__name__[1:-5]}-{dotted(path)}-{how}",
                              (lambda b=base, p=path, h=how:
                               mutate(b(), p, None, delete=(h == "missing"))),
                              dotted(path)))
    for name in ENVELOPE_FIELDS:
        for how in ("missing", "null"):
            def change(env, key, n=name, h=how):
                if h == "missing":
                    del env[n]
                else:
                    env[n] = None
            cases.append((f"envelope-{name}-{how}", _envelope_change(change),
                          f"spec.proposedContent.envelope.{name}"))
    for path in STATEMENT_FIELDS:
        for how in ("missing", "null"):
            def change(env, key, p=path, h=how):
                stmt = mutate(slsa_v1_github([("a", "ab" * 32)]), p, None, delete=(h == "missing"))
                _resign(env, key, stmt)
            cases.append((f"statement-{dotted(path)}-{how}", _envelope_change(change),
                          f"spec.proposedContent.envelope.payload.{dotted(path)}"))
    cases += [
        ("dsse-unknown-field", lambda: mutate(_dsse_base(), ("spec", "url"), "https://x"),
         "spec.url"),
        ("dsse-server-field", lambda: mutate(_dsse_base(), ("spec", "payloadHash"),
                                             {"algorithm": "sha256", "value": "00" * 32}),
         "spec.payloadHash"),
        ("dsse-bad-signature", _envelope_change(_bad_signature),
         "spec.proposedContent.envelope.signatures[1]"),
        ("dsse-bad-verifier", lambda: mutate(_dsse_base(), ("spec", "proposedContent",
                                                            "verifiers", 0), b64(b"-----")),
         "spec.proposedContent.verifiers[0]"),
        ("dsse-empty-subject", _envelope_change(
            lambda env, key: _resign(env, key, mutate(slsa_v1_github([("a", "ab" * 32)]),
                                                      ("subject",), []))),
         "spec.proposedContent.envelope.payload.subject"),
        ("intoto-single-base64", lambda: mutate(_intoto_base(), ("spec", "content", "envelope",
                                                                 "payload"), b64(b"{}")),
         "spec.content.envelope.payload"),
        ("intoto-hash-mismatch", lambda: mutate(_intoto_base(), ("spec", "content", "hash"),
                                                {"algorithm": "sha256", "value": "00" * 32}),
         "spec.content.hash.value"),
        ("wrong-version", lambda: mutate(_intoto_base(), ("apiVersion",), "0.0.1"),
         "apiVersion"),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("name,make,field", CASES, ids=[c[0] for c in CASES])
def test_malformed_field_is_400_naming_it(module_server, name, make, field):
    r = post_json(module_server.url, ENTRIES, make())
    message = error_message(r, 400)
    assert field in message, message


# -- the attestation cap ---------------------------------------------------------------------

def test_attestation_above_the_cap_is_413(make_server):
    server = make_server("--max-attestation", "3000")
    pinned = PinnedLog.of(server)
    key = ecdsa_key()
    small = payload(slsa_v1_github([("a", "ab" * 32)]))
    ok = dsse.build_proposed(dsse.sign_envelope(intoto.PAYLOAD_TYPE, small, [key.private]),
                             [key.pem])
    submit(pinned, ok)
    big_stmt = cyclonedx_sbom([("a", "cd" * 32)])
    big_stmt["predicate"]["components"] = [
        {"type": "library", "name": f"component-{i}", "version": "1.0"} for i in range(60)]
    for build in (dsse_proposed, intoto_proposed):
        proposed = build([key], big_stmt)
        message = error_message(post_json(server.url, ENTRIES, proposed), 413)
        assert "3000" in message, message
    assert "Traceback" not in server.output()


# -- search: complete, synchronous, stable across restart and fsck ---------------------------

def search(url: str, query: dict) -> list[str]:
    r = post_json(url, SEARCH, query)
    assert r.status == 200, (query, r.status, r.body[:300])
    result = r.json()
    assert all(len(u) == 80 for u in result)
    return sorted(u[16:] for u in result)


def test_search_finds_hashedrekord_and_attestations_alike(make_server, tmp_path):
    data_dir = tmp_path / "search-log"
    server = make_server("--origin", "tlog.test/attest", data_dir=data_dir)
    pinned = PinnedLog.of(server)

    # one artifact with a hashedrekord signature, SLSA v1 provenance (dsse,
    # certificate identities) and a CycloneDX SBOM (dsse, Ed25519 key);
    # another with SLSA v0.2 provenance as an intoto 0.0.2 entry (RSA key).
    name, data, digest = fresh_subject("app-1.0.tar.gz")
    hr_signer = ecdsa_signer()
    r, hr = pinned.submit(hr_signer.entry(data))
    assert r.status == 201
    ci = cert_key(emails=["Release@Example.com"], uris=[WORKFLOW_IDENTITY], chain=True)
    sbom_key = ed25519_key()
    rsa = rsa_key()
    provenance = submit(pinned, dsse_proposed([ci], slsa_v1_github([(name, digest)])))
    sbom = submit(pinned, dsse_proposed([sbom_key], cyclonedx_sbom([(name, digest)])))
    other_name, _, other_digest = fresh_subject("lib-2.0.whl")
    legacy = submit(pinned, intoto_proposed([rsa], slsa_v02_generator([(other_name,
                                                                        other_digest)])))

    queries = {
        "hash": ({"hash": f"sha256:{digest}"}, {hr.uuid, provenance.uuid, sbom.uuid}),
        "bare-hash": ({"hash": digest.upper()}, {hr.uuid, provenance.uuid, sbom.uuid}),
        "other-hash": ({"hash": f"sha256:{other_digest}"}, {legacy.uuid}),
        "payload-hash": ({"hash": dsse.parse_canonical(sbom.body).payload_hash.hex()},
                         {sbom.uuid}),
        "slsa-v1": ({"predicateType": "https://slsa.dev/provenance/v1"}, {provenance.uuid}),
        "slsa-v0.2": ({"predicateType": "https://slsa.dev/provenance/v0.2"}, {legacy.uuid}),
        "cyclonedx": ({"predicateType": "https://cyclonedx.org/bom"}, {sbom.uuid}),
        "github-builder": ({"builderId": GITHUB_BUILDER}, {provenance.uuid}),
        "generator-builder": ({"builderId": GENERATOR_BUILDER}, {legacy.uuid}),
        "email": ({"email": "release@example.com"}, {provenance.uuid}),
        "uri": ({"subject": WORKFLOW_IDENTITY}, {provenance.uuid}),
        "ed25519-key": ({"publicKey": {"format": "x509", "content": b64(sbom_key.pem)}},
                        {sbom.uuid}),
        "cert-as-key": ({"publicKey": {"format": "x509", "content": b64(ci.spki_pem)}},
                        {provenance.uuid}),
        "hash-and-predicate": ({"hash": digest, "predicateType": "https://slsa.dev/provenance/v1",
                                "operator": "and"}, {provenance.uuid}),
        "hash-and-builder": ({"hash": digest, "builderId": GENERATOR_BUILDER,
                              "operator": "and"}, set()),
        "builders-or": ({"builderId": GITHUB_BUILDER, "hash": other_digest, "operator": "or"},
                        {provenance.uuid, legacy.uuid}),
        "unknown-predicate": ({"predicateType": "https://example.com/none"}, set()),
    }
    results = {}
    for label, (query, want) in queries.items():
        got = search(server.url, query)
        assert set(got) == want, (label, got, want)
        results[label] = got

    # malformed extension values are 400 naming the field (null too, as for
    # the Rekor fields)
    for field in ("predicateType", "builderId"):
        for value in (None, 5, "", ["x"]):
            r = post_json(server.url, SEARCH, {field: value, "hash": digest})
            assert field in error_message(r, 400)

    def attestations() -> dict[str, bytes]:
        out = {}
        for entry in (provenance, sbom, legacy):
            r = get(server.url, f"{ENTRIES}/{entry.uuid}")
            out[entry.uuid] = parse_log_entry(r.json()).attestation
        return out

    before = attestations()
    server.stop()
    report = server.fsck()
    assert report["exit_code"] == 0 and report["ok"], report
    _check_index_rows(data_dir)

    server = make_server("--origin", "tlog.test/attest", data_dir=data_dir)
    for label, (query, _) in queries.items():
        assert search(server.url, query) == results[label], label
    assert attestations() == before
    report = server.fsck()  # on the live log
    assert report["exit_code"] == 0 and report["ok"], report
    for label, (query, _) in queries.items():
        assert search(server.url, query) == results[label], label
    server.stop()
    assert "Traceback" not in server.output()


def _check_index_rows(data_dir: Path) -> None:
    """Every stored entry's search rows are exactly the keys recomputed from
    its stored body and attestation (the index is complete and nothing else)."""
    from tlog.config import Config
    from tlog.entrytypes import index_keys_of

    db = sqlite3.connect(f"file:{data_dir / 'tlog.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT idx, kind, body, attestation FROM entries ORDER BY idx").fetchall()
        stored: dict[int, set[str]] = {}
        for key, idx in db.execute("SELECT key, idx FROM search"):
            stored.setdefault(idx, set()).add(key)
    finally:
        db.close()
    assert rows
    for idx, kind, body, attestation in rows:
        keys = set(index_keys_of(kind, body, Config(), attestation))
        assert stored.get(idx, set()) == keys, (idx, kind)


def test_and_search_is_exact_beyond_the_result_limit(make_server):
    """Three SLSA v1 entries share a predicate type; with at most 2 results per
    page, ``hash AND predicateType`` still finds the third on the first page."""
    server = make_server("--search-page", "2")
    pinned = PinnedLog.of(server)
    key = ecdsa_key()
    entries = []
    for _ in range(3):
        name, _, digest = fresh_subject()
        entries.append((digest, submit(pinned, dsse_proposed([key], slsa_v1_github([(name,
                                                                                     digest)])))))
    digest, last = entries[-1]
    assert search(server.url, {"predicateType": "https://slsa.dev/provenance/v1"}) == \
        sorted(e.uuid for _, e in entries[:2])  # the first page: the first two
    assert search(server.url, {"hash": digest, "predicateType": "https://slsa.dev/provenance/v1",
                               "operator": "and"}) == [last.uuid]
    assert search(server.url, {"hash": digest, "builderId": GITHUB_BUILDER,
                               "operator": "and"}) == [last.uuid]
