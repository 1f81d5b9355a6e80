"""intoto 0.0.2 entries (older cosign): the double base64 quirk, Rekor's
canonical body, the Go-serialised envelope hash, per-signature keys, nulls,
every required field missing or null."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tlog_client import dsse, intoto, intoto002
from tlog_client.errors import FormatError, SignatureError
from tlog_client.keys import parse_key_material

from .attestation_samples import (GENERATOR_BUILDER, all_keys, artifact, b64, cert_key, dotted,
                                  ecdsa_key, ed25519_key, mutate, payload, rsa_key,
                                  slsa_v02_generator)

SUBJECTS = [artifact("app-1.0.tar.gz")]
PROVENANCE = payload(slsa_v02_generator(SUBJECTS))


def go_envelope(keys, keyids=None, body: bytes = PROVENANCE) -> bytes:
    """An envelope as cosign writes it: Go json.Marshal of dsse.Envelope."""
    env = dsse.parse_envelope(dsse.sign_envelope(intoto.PAYLOAD_TYPE, body,
                                                 [k.private for k in keys], keyids))
    return intoto002.go_envelope_json(env)


def cosign_proposed(keys, keyids=None, body: bytes = PROVENANCE, with_hash: bool = True) -> dict:
    """What cosign's CreateFromArtifactProperties posts (double base64, hash
    of the envelope bytes)."""
    env_bytes = go_envelope(keys, keyids, body)
    env = json.loads(env_bytes)
    sigs = []
    for s, k in zip(env["signatures"], keys):
        item = {"sig": b64(s["sig"].encode()), "publicKey": b64(k.pem)}
        if s["keyid"]:
            item["keyid"] = s["keyid"]
        sigs.append(item)
    content = {"envelope": {"payloadType": env["payloadType"],
                            "payload": b64(env["payload"].encode()), "signatures": sigs}}
    if with_hash:
        content["hash"] = {"algorithm": "sha256", "value": hashlib.sha256(env_bytes).hexdigest()}
    return {"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": content}}


def test_go_envelope_json_matches_go_encoding_json():
    """Golden output of Go's json.Marshal (go1.x encoding/json, HTML escaping on)
    for go-securesystemslib's dsse.Envelope with these fields."""
    env = dsse.Envelope('app/x<y>&z\u2028\u00e9"\\', base64.b64decode("AAAA"),
                        (dsse.EnvelopeSignature(b"ABC"), dsse.EnvelopeSignature(b"DEF", "k<1>")))
    assert intoto002.go_envelope_json(env) == (
        '{"payloadType":"app/x\\u003cy\\u003e\\u0026z\\u2028\u00e9\\"\\\\","payload":"AAAA",'
        '"signatures":[{"keyid":"","sig":"QUJD"},{"keyid":"k\\u003c1\\u003e","sig":"REVG"}]}'
    ).encode("utf-8")


@pytest.mark.parametrize("key", all_keys(), ids=lambda k: k.label)
def test_each_key_kind(key):
    entry = intoto002.parse_proposed(cosign_proposed([key]))
    assert entry.statement.provenance.builder_id == GENERATOR_BUILDER
    assert entry.signatures[0].public_key.key_hash() == key.key_hash()


def test_canonical_body_matches_rekor_shape():
    keys = [ecdsa_key(), rsa_key()]
    proposed = cosign_proposed(keys, keyids=["", "rsa-key"])
    entry = intoto002.parse_proposed(proposed)
    sent = proposed["spec"]["content"]
    expected = {
        "apiVersion": "0.0.2", "kind": "intoto",
        "spec": {"content": {
            "envelope": {
                "payloadType": intoto.PAYLOAD_TYPE,
                "signatures": [
                    {"publicKey": b64(parse_key_material(keys[0].pem).canonical_pem()),
                     "sig": sent["envelope"]["signatures"][0]["sig"]},
                    {"keyid": "rsa-key",
                     "publicKey": b64(parse_key_material(keys[1].pem).canonical_pem()),
                     "sig": sent["envelope"]["signatures"][1]["sig"]},
                ]},
            "hash": sent["hash"],
            "payloadHash": {"algorithm": "sha256",
                            "value": hashlib.sha256(PROVENANCE).hexdigest()},
        }},
    }
    assert entry.canonical_body() == json.dumps(expected, sort_keys=True,
                                                separators=(",", ":")).encode()
    # the payload is not in the body; the hash binds the attestation
    assert hashlib.sha256(entry.envelope_bytes).hexdigest() == sent["hash"]["value"]


def test_double_base64_is_decoded_both_ways():
    key = ecdsa_key()
    proposed = cosign_proposed([key])
    env = proposed["spec"]["content"]["envelope"]
    assert base64.b64decode(base64.b64decode(env["payload"])) == PROVENANCE
    entry = intoto002.parse_proposed(proposed)
    assert entry.envelope.payload == PROVENANCE
    assert b64(b64(entry.signatures[0].sig).encode()) == env["signatures"][0]["sig"]


def test_single_base64_payload_or_sig_rejected_with_the_quirk_named():
    key = ecdsa_key()
    proposed = cosign_proposed([key], with_hash=False)
    once = mutate(proposed, ("spec", "content", "envelope", "payload"), b64(PROVENANCE))
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(once)
    assert info.value.field == "spec.content.envelope.payload"
    assert "twice" in str(info.value)
    raw_sig = base64.b64decode(base64.b64decode(
        proposed["spec"]["content"]["envelope"]["signatures"][0]["sig"]))
    once = mutate(proposed, ("spec", "content", "envelope", "signatures", 0, "sig"), b64(raw_sig))
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(once)
    assert info.value.field == "spec.content.envelope.signatures[0].sig"


def test_hash_computed_when_absent_and_equal_to_cosigns():
    keys = [ecdsa_key()]
    with_hash = cosign_proposed(keys)
    without = mutate(with_hash, ("spec", "content", "hash"), None, delete=True)
    assert intoto002.parse_proposed(without).canonical_body() == \
        intoto002.parse_proposed(with_hash).canonical_body()


def test_mismatching_hashes_rejected():
    proposed = cosign_proposed([ecdsa_key()])
    bad = mutate(proposed, ("spec", "content", "hash", "value"), "00" * 32)
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(bad)
    assert info.value.field == "spec.content.hash.value"
    bad = mutate(proposed, ("spec", "content", "payloadHash"),
                 {"algorithm": "sha256", "value": "00" * 32})
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(bad)
    assert info.value.field == "spec.content.payloadHash.value"
    good = mutate(proposed, ("spec", "content", "payloadHash"),
                  {"algorithm": "sha256", "value": hashlib.sha256(PROVENANCE).hexdigest()})
    intoto002.parse_proposed(good)


def test_explicit_nulls_accepted():
    key = ecdsa_key()
    proposed = cosign_proposed([key])
    nulls = mutate(proposed, ("spec", "content", "payloadHash"), None)
    nulls["spec"]["content"]["hash"] = None
    nulls["spec"]["content"]["envelope"]["signatures"][0]["keyid"] = None
    assert intoto002.parse_proposed(nulls).canonical_body() == \
        intoto002.parse_proposed(proposed).canonical_body()


def test_signature_order_is_kept():
    keys = [ecdsa_key(), ed25519_key(), rsa_key()]
    entry = intoto002.parse_proposed(cosign_proposed(keys))
    assert [s.public_key.key_hash() for s in entry.signatures] == [k.key_hash() for k in keys]


def test_each_signature_must_verify_under_its_own_key():
    a, b = ecdsa_key(), ecdsa_key()
    proposed = cosign_proposed([a, b])
    sigs = proposed["spec"]["content"]["envelope"]["signatures"]
    sigs[0]["publicKey"], sigs[1]["publicKey"] = sigs[1]["publicKey"], sigs[0]["publicKey"]
    with pytest.raises(SignatureError, match=r"signatures\[0\]"):
        intoto002.parse_proposed(mutate(proposed, ("spec", "content", "hash"), None, delete=True))


def test_one_bad_signature_among_good_ones_rejects():
    keys = [ecdsa_key(), rsa_key(), ed25519_key()]
    proposed = cosign_proposed(keys, with_hash=False)
    item = proposed["spec"]["content"]["envelope"]["signatures"][2]
    raw = bytearray(base64.b64decode(base64.b64decode(item["sig"])))
    raw[0] ^= 0x80
    item["sig"] = b64(b64(bytes(raw)).encode())
    with pytest.raises(SignatureError, match=r"signatures\[2\]"):
        intoto002.parse_proposed(proposed)


def test_canonical_round_trip_and_attestation():
    keys = [cert_key(emails=["release@example.com"]), ecdsa_key()]
    entry = intoto002.parse_proposed(cosign_proposed(keys, keyids=["k1", None]))
    body = entry.canonical_body()
    leaf = intoto002.parse_canonical(body)
    assert leaf.canonical_body() == body and leaf.envelope is None
    full = intoto002.verify_attestation(leaf, entry.envelope_bytes)
    assert full.statement == entry.statement
    assert "release@example.com" in full.index_keys()
    with pytest.raises(SignatureError):
        intoto002.verify_attestation(leaf, entry.envelope_bytes + b" ")
    with pytest.raises(FormatError, match="canonical"):
        intoto002.parse_canonical(json.dumps(json.loads(body)).encode())


def test_build_proposed_pairs_keys_with_signatures():
    keys = [ecdsa_key(), ed25519_key()]
    env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, PROVENANCE, [k.private for k in keys])
    proposed = intoto002.build_proposed(env, [keys[1].pem, keys[0].pem])
    entry = intoto002.parse_proposed(proposed)
    assert [s.public_key.key_hash() for s in entry.signatures] == [k.key_hash() for k in keys]
    with pytest.raises(SignatureError):
        intoto002.build_proposed(env, [keys[0].pem])


def test_size_cap():
    proposed = cosign_proposed([ecdsa_key()])
    size = len(intoto002.parse_proposed(proposed).envelope_bytes)
    intoto002.parse_proposed(proposed, max_envelope=size)
    with pytest.raises(intoto002.EnvelopeTooLargeError):
        intoto002.parse_proposed(proposed, max_envelope=size - 1)


# -- strict schema -----------------------------------------------------------------------

REQUIRED = [("apiVersion",), ("kind",), ("spec",), ("spec", "content"),
            ("spec", "content", "envelope"), ("spec", "content", "envelope", "payloadType"),
            ("spec", "content", "envelope", "payload"),
            ("spec", "content", "envelope", "signatures"),
            ("spec", "content", "envelope", "signatures", 0, "sig"),
            ("spec", "content", "envelope", "signatures", 0, "publicKey")]


@pytest.mark.parametrize("how", ["missing", "null"])
@pytest.mark.parametrize("path", REQUIRED, ids=dotted)
def test_required_field_missing_or_null(path, how):
    proposed = mutate(cosign_proposed([ecdsa_key()]), path, None, delete=(how == "missing"))
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(proposed)
    assert info.value.field == dotted(path), info.value


MALFORMED = [
    ("version-0.0.1", ("apiVersion",), "0.0.1", "apiVersion"),
    ("unknown-spec", ("spec", "publicKey"), "x", "spec.publicKey"),
    ("unknown-content", ("spec", "content", "extra"), 1, "spec.content.extra"),
    ("unknown-sig", ("spec", "content", "envelope", "signatures", 0, "cert"), "x",
     "spec.content.envelope.signatures[0].cert"),
    ("no-signatures", ("spec", "content", "envelope", "signatures"), [],
     "spec.content.envelope.signatures"),
    ("hash-alg", ("spec", "content", "hash", "algorithm"), "sha512",
     "spec.content.hash.algorithm"),
    ("hash-upper", ("spec", "content", "hash", "value"), "AB" * 32, "spec.content.hash.value"),
    ("payload-type-control", ("spec", "content", "envelope", "payloadType"), "a\nb",
     "spec.content.envelope.payloadType"),
    ("keyid-control", ("spec", "content", "envelope", "signatures", 0, "keyid"), "a\tb",
     "spec.content.envelope.signatures[0].keyid"),
    ("public-key-not-pem", ("spec", "content", "envelope", "signatures", 0, "publicKey"),
     b64(b"nope"), "spec.content.envelope.signatures[0].publicKey"),
]


@pytest.mark.parametrize("name,path,value,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name, path, value, field):
    proposed = mutate(cosign_proposed([ecdsa_key()]), path, value)
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(proposed)
    assert info.value.field == field, info.value


def test_duplicate_signature_rejected():
    proposed = cosign_proposed([ecdsa_key()], with_hash=False)
    sigs = proposed["spec"]["content"]["envelope"]["signatures"]
    sigs.append(dict(sigs[0]))
    with pytest.raises(FormatError, match="twice"):
        intoto002.parse_proposed(proposed)


def test_malformed_statement_rejected():
    bad = payload(mutate(slsa_v02_generator(SUBJECTS), ("predicate", "builder"), None))
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(cosign_proposed([ecdsa_key()], body=bad))
    assert info.value.field == "spec.content.envelope.payload.predicate.builder"


def test_signatures_are_bounded_by_the_trial_cap():
    """Each signature is checked under its own key: the cap bounds the
    signatures (before any key is parsed)."""
    keys = [ecdsa_key() for _ in range(3)]
    proposed = cosign_proposed(keys)
    intoto002.parse_proposed(proposed, max_trials=3)
    with pytest.raises(FormatError) as info:
        intoto002.parse_proposed(proposed, max_trials=2)
    assert info.value.field == "spec.content.envelope.signatures"
    assert "3 signatures to check, over the limit of 2" in info.value.reason


def test_build_proposed_tries_at_most_the_trial_cap():
    """build_proposed tries every key on every signature: bounded the same way."""
    keys = [ecdsa_key() for _ in range(2)]
    env = go_envelope(keys)
    intoto002.build_proposed(env, [k.pem for k in keys] * 1)
    with pytest.raises(FormatError) as info:
        intoto002.build_proposed(env, [ecdsa_key().pem for _ in range(7)] +
                                 [k.pem for k in keys])
    assert info.value.field == "publicKeys" and "18 signature checks" in info.value.reason
