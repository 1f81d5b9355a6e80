"""dsse 0.0.1 entries and DSSE envelopes: PAE, signing with every allowed key
kind, Rekor's canonical body byte for byte, the explicit nulls real clients
send, every signature must verify, strict schema with named fields."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tlog_client import dsse, intoto
from tlog_client.errors import FormatError, SignatureError
from tlog_client.keys import parse_key_material

from .attestation_samples import (GITHUB_BUILDER, WORKFLOW_IDENTITY, all_keys, artifact, b64,
                                  cert_key, cyclonedx_sbom, dotted, ecdsa_key, ed25519_key, mutate,
                                  payload, rsa_key, slsa_v1_github)

SUBJECTS = [artifact("app-1.0.tar.gz")]
PROVENANCE = payload(slsa_v1_github(SUBJECTS))


def envelope_for(keys, body: bytes = PROVENANCE, payload_type: str = intoto.PAYLOAD_TYPE) -> bytes:
    return dsse.sign_envelope(payload_type, body, [k.private for k in keys])


def proposed_for(keys, body: bytes = PROVENANCE, verifiers=None) -> dict:
    env = envelope_for(keys, body)
    return dsse.build_proposed(env, [k.pem for k in (verifiers or keys)])


# -- PAE and envelopes -----------------------------------------------------------------

def test_pae_matches_the_dsse_specification():
    # github.com/secure-systems-lab/dsse protocol.md test vector
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    # lengths are byte counts of the UTF-8 type
    assert dsse.pae("t\u00e9", b"\x00\xff") == b"DSSEv1 3 t\xc3\xa9 2 \x00\xff"


@pytest.mark.parametrize("key", all_keys(), ids=lambda k: k.label)
def test_sign_and_verify_each_key_kind(key):
    proposed = proposed_for([key])
    entry = dsse.parse_proposed(proposed)
    (sig,) = entry.signatures
    assert sig.verifier.canonical_pem() == parse_key_material(key.pem).canonical_pem()
    assert entry.statement.provenance.builder_id == GITHUB_BUILDER


def test_multi_signature_envelope_and_canonical_body_shape():
    keys = [ecdsa_key(), rsa_key(), ed25519_key(), cert_key(emails=["a@example.com"])]
    env = envelope_for(keys)
    entry = dsse.parse_proposed(dsse.build_proposed(env, [k.pem for k in reversed(keys)]))
    env_obj = json.loads(env)
    expected_sigs = sorted(
        ({"signature": s["sig"],
          "verifier": b64(parse_key_material(k.pem).canonical_pem())}
         for s, k in zip(env_obj["signatures"], keys)), key=lambda s: s["signature"])
    expected = {
        "apiVersion": "0.0.1", "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(env).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PROVENANCE).hexdigest()},
            "signatures": expected_sigs,
        },
    }
    # RFC 8785: sorted keys, no whitespace (hand-serialised to be independent)
    assert entry.canonical_body() == json.dumps(expected, sort_keys=True,
                                                separators=(",", ":")).encode()
    assert [s.signature_b64 for s in entry.signatures] == sorted(
        s["sig"] for s in env_obj["signatures"])
    assert entry.envelope_bytes == env


def test_envelope_hash_is_over_the_submitted_bytes_not_a_reserialisation():
    """Rekor hashes []byte(proposedContent.envelope) as sent."""
    key = ecdsa_key()
    compact = envelope_for([key])
    pretty = json.dumps(json.loads(compact), indent=2).encode()
    a = dsse.parse_proposed(dsse.build_proposed(compact, [key.pem]))
    b = dsse.parse_proposed(dsse.build_proposed(pretty, [key.pem]))
    assert a.envelope_hash == hashlib.sha256(compact).digest()
    assert b.envelope_hash == hashlib.sha256(pretty).digest()
    assert a.payload_hash == b.payload_hash and a.signatures == b.signatures
    assert a.canonical_body() != b.canonical_body()


def test_non_ascii_envelope_is_hashed_as_utf8():
    key = ed25519_key()
    stmt = slsa_v1_github([("caf\u00e9.tar.gz", SUBJECTS[0][1])])
    env_obj = json.loads(envelope_for([key], json.dumps(stmt, ensure_ascii=False).encode()))
    env_obj["signatures"][0]["keyid"] = "cl\u00e9 \u2603"
    text = json.dumps(env_obj, ensure_ascii=False) + "\n"
    proposed = {"apiVersion": "0.0.1", "kind": "dsse",
                "spec": {"proposedContent": {"envelope": text, "verifiers": [b64(key.pem)]}}}
    entry = dsse.parse_proposed(proposed)
    assert entry.envelope_hash == hashlib.sha256(text.encode("utf-8")).digest()
    assert entry.statement.subjects[0].name == "caf\u00e9.tar.gz"
    assert entry.envelope.signatures[0].keyid == "cl\u00e9 \u2603"


def test_canonical_round_trip_and_attestation():
    keys = [ecdsa_key(), cert_key(uris=[WORKFLOW_IDENTITY], chain=True)]
    entry = dsse.parse_proposed(proposed_for(keys))
    body = entry.canonical_body()
    leaf = dsse.parse_canonical(body)
    assert leaf.envelope is None and leaf.canonical_body() == body
    full = dsse.verify_attestation(leaf, entry.envelope_bytes)
    assert full.statement == entry.statement
    assert full.envelope == entry.envelope
    keys_found = full.index_keys()
    assert f"sha256:{SUBJECTS[0][1]}" in keys_found
    assert WORKFLOW_IDENTITY in keys_found


def test_attestation_must_be_the_bound_envelope():
    key = ecdsa_key()
    entry = dsse.parse_proposed(proposed_for([key]))
    leaf = dsse.parse_canonical(entry.canonical_body())
    tampered = entry.envelope_bytes.replace(b'"payloadType"', b' "payloadType"')
    with pytest.raises(SignatureError, match="envelopeHash"):
        dsse.verify_attestation(leaf, tampered)
    other = dsse.parse_proposed(proposed_for([key]))  # another signature (ECDSA is randomised)
    with pytest.raises(SignatureError):
        dsse.verify_attestation(leaf, other.envelope_bytes)


def test_non_canonical_bodies_rejected():
    keys = [ecdsa_key(), ecdsa_key()]
    body = json.loads(dsse.parse_proposed(proposed_for(keys)).canonical_body())
    unsorted = mutate(body, ("spec", "signatures"), list(reversed(body["spec"]["signatures"])))
    with pytest.raises(FormatError, match="sorted"):
        dsse.parse_canonical(json.dumps(unsorted, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(FormatError, match="canonical"):
        dsse.parse_canonical(json.dumps(body, sort_keys=True).encode())  # spaces
    extra = mutate(body, ("spec", "proposedContent"), {})
    with pytest.raises(FormatError, match="unknown"):
        dsse.parse_canonical(json.dumps(extra, sort_keys=True, separators=(",", ":")).encode())


# -- verification ----------------------------------------------------------------------

def test_one_bad_signature_among_good_ones_rejects():
    keys = [ecdsa_key(), rsa_key(), ed25519_key()]
    env = json.loads(envelope_for(keys))
    sig = bytearray(base64.b64decode(env["signatures"][1]["sig"]))
    sig[-1] ^= 1
    env["signatures"][1]["sig"] = b64(bytes(sig))
    proposed = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": json.dumps(env), "verifiers": [b64(k.pem) for k in keys]}}}
    with pytest.raises(SignatureError) as info:
        dsse.parse_proposed(proposed)
    assert "spec.proposedContent.envelope.signatures[1]" in str(info.value)


def test_signature_without_a_matching_verifier_rejects():
    signer, other = ecdsa_key(), ecdsa_key()
    with pytest.raises(SignatureError, match=r"signatures\[1\]"):
        dsse.parse_proposed({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": envelope_for([signer, other]).decode(), "verifiers": [b64(signer.pem)]}}})


def test_signature_over_other_payload_type_rejects():
    key = ecdsa_key()
    env = json.loads(envelope_for([key]))
    env["payloadType"] = "application/json"
    with pytest.raises(SignatureError):
        dsse.parse_proposed({"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
            "envelope": json.dumps(env), "verifiers": [b64(key.pem)]}}})


def test_extra_verifiers_must_parse_but_are_not_recorded():
    key, unused = ecdsa_key(), rsa_key()
    entry = dsse.parse_proposed(proposed_for([key], verifiers=[unused, key]))
    assert [s.verifier.key_hash() for s in entry.signatures] == [key.key_hash()]
    with pytest.raises(FormatError):
        dsse.build_proposed(envelope_for([key]), [key.pem, b"not a key"])


def test_ecdsa_ieee_p1363_signature_accepted_as_rekor_does():
    key = ecdsa_key()
    env = json.loads(envelope_for([key]))
    r, s = decode_dss_signature(base64.b64decode(env["signatures"][0]["sig"]))
    env["signatures"][0]["sig"] = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    entry = dsse.parse_proposed(dsse.build_proposed(json.dumps(env), [key.pem]))
    assert len(entry.signatures[0].signature) == 64


def test_p384_with_sha384_and_rsa_pss_accepted():
    k384 = ecdsa_key(ec.SECP384R1())
    krsa = rsa_key()
    message = dsse.pae(intoto.PAYLOAD_TYPE, PROVENANCE)
    sigs = [k384.private.sign(message, ec.ECDSA(hashes.SHA384())),
            krsa.private.sign(message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                   salt_length=32), hashes.SHA256())]
    env = {"payload": b64(PROVENANCE), "payloadType": intoto.PAYLOAD_TYPE,
           "signatures": [{"sig": b64(s)} for s in sigs]}
    entry = dsse.parse_proposed(dsse.build_proposed(json.dumps(env), [k384.pem, krsa.pem]))
    assert len(entry.signatures) == 2


def test_non_intoto_payload_is_not_parsed():
    key = ed25519_key()
    entry = dsse.parse_proposed(dsse.build_proposed(
        dsse.sign_envelope("text/plain", b"hello", [key.private]), [key.pem]))
    assert entry.statement is None
    assert entry.index_keys()[0] == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_malformed_statement_in_an_intoto_envelope_rejects():
    key = ecdsa_key()
    bad = payload(mutate(slsa_v1_github(SUBJECTS), ("subject",), []))
    with pytest.raises(FormatError) as info:
        dsse.build_proposed(envelope_for([key], bad), [key.pem])
    assert info.value.field == "spec.proposedContent.envelope.payload.subject"
    sbom = payload(mutate(cyclonedx_sbom(SUBJECTS), ("predicate", "components", 0), None))
    with pytest.raises(FormatError) as info:
        dsse.build_proposed(envelope_for([key], sbom), [key.pem])
    assert info.value.field == "spec.proposedContent.envelope.payload.predicate.components[0]"


# -- the explicit nulls real clients send -----------------------------------------------

def test_sigstore_python_nulls_are_accepted():
    """rekor_types.Dsse(...).model_dump(mode="json", by_alias=True), as
    sigstore-python 4.x posts it, carries the server-computed members as null."""
    key = cert_key(emails=["ci@example.com"])
    proposed = proposed_for([key])
    with_nulls = mutate(proposed, ("spec", "signatures"), None)
    with_nulls["spec"]["envelopeHash"] = None
    with_nulls["spec"]["payloadHash"] = None
    assert dsse.parse_proposed(with_nulls).canonical_body() == \
        dsse.parse_proposed(proposed).canonical_body()


@pytest.mark.parametrize("member", dsse.SERVER_COMPUTED)
def test_server_computed_members_refused_unless_null(member):
    proposed = mutate(proposed_for([ecdsa_key()]), ("spec", member),
                      [] if member == "signatures" else {"algorithm": "sha256", "value": "00"})
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(proposed)
    assert info.value.field == f"spec.{member}"


def test_null_keyid_and_empty_keyid_are_absent():
    key = ecdsa_key()
    env = json.loads(envelope_for([key]))
    for keyid in (None, "", "my-key"):
        env["signatures"][0]["keyid"] = keyid
        entry = dsse.parse_proposed(dsse.build_proposed(json.dumps(env), [key.pem]))
        assert entry.envelope.signatures[0].keyid == (keyid or None)


def test_sigstore_python_request_and_body_validation():
    """The exact request sigstore-python builds is accepted, and the body is
    what its verifier (_validate_dsse_v001_entry_body) compares."""
    pytest.importorskip("sigstore", minversion="4")
    from sigstore import dsse as sigstore_dsse
    from sigstore._internal.rekor.client import RekorClient
    import rekor_types
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = cert_key(emails=["ci@example.com"])
    cert = x509.load_pem_x509_certificate(key.pem)
    stmt = (sigstore_dsse.StatementBuilder()
            .subjects([sigstore_dsse.Subject(name="app", digest={"sha256": SUBJECTS[0][1]})])
            .predicate_type("https://slsa.dev/provenance/v1")
            .predicate(slsa_v1_github(SUBJECTS)["predicate"]).build())
    env = sigstore_dsse._sign(key.private, stmt)
    request = RekorClient._build_dsse_request(None, env, cert)  # type: ignore[arg-type]
    entry = dsse.parse_proposed(json.loads(json.dumps(request)))
    parsed = rekor_types.Dsse.model_validate_json(entry.canonical_body())
    expected = [rekor_types.dsse.Signature(
        signature=b64(s.sig),
        verifier=b64(cert.public_bytes(serialization.Encoding.PEM)))
        for s in env._inner.signatures]
    assert parsed.spec.root.signatures == expected
    assert parsed.spec.root.payload_hash.value == hashlib.sha256(env._inner.payload).hexdigest()


# -- strict schema, every required field missing or null ---------------------------------

def base_proposed() -> dict:
    return proposed_for([ecdsa_key()])


REQUIRED = [("apiVersion",), ("kind",), ("spec",), ("spec", "proposedContent"),
            ("spec", "proposedContent", "envelope"), ("spec", "proposedContent", "verifiers")]


@pytest.mark.parametrize("how", ["missing", "null"])
@pytest.mark.parametrize("path", REQUIRED, ids=dotted)
def test_required_entry_field_missing_or_null(path, how):
    proposed = mutate(base_proposed(), path, None, delete=(how == "missing"))
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(proposed)
    assert info.value.field == dotted(path), info.value


ENVELOPE_REQUIRED = [("payloadType",), ("payload",), ("signatures",), ("signatures", 0, "sig")]


@pytest.mark.parametrize("how", ["missing", "null"])
@pytest.mark.parametrize("path", ENVELOPE_REQUIRED, ids=dotted)
def test_required_envelope_field_missing_or_null(path, how):
    key = ecdsa_key()
    env = mutate(json.loads(envelope_for([key])), path, None, delete=(how == "missing"))
    proposed = {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": json.dumps(env), "verifiers": [b64(key.pem)]}}}
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(proposed)
    assert info.value.field == "spec.proposedContent.envelope." + dotted(path), info.value


def rsa1024_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    return rsa.generate_private_key(65537, 1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _env_case(change) -> dict:
    key = ecdsa_key()
    env = json.loads(envelope_for([key]))
    text = change(env)
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": text if isinstance(text, str) else json.dumps(env),
        "verifiers": [b64(key.pem)]}}}


MALFORMED = [
    ("wrong-kind", lambda: mutate(base_proposed(), ("kind",), "hashedrekord"), "kind"),
    ("wrong-version", lambda: mutate(base_proposed(), ("apiVersion",), "0.0.2"), "apiVersion"),
    ("unknown-top", lambda: mutate(base_proposed(), ("extra",), 1), "extra"),
    ("unknown-spec", lambda: mutate(base_proposed(), ("spec", "extra"), 1), "spec.extra"),
    ("unknown-content", lambda: mutate(base_proposed(), ("spec", "proposedContent", "url"),
                                       "https://x"), "spec.proposedContent.url"),
    ("envelope-object", lambda: mutate(base_proposed(), ("spec", "proposedContent", "envelope"),
                                       {}), "spec.proposedContent.envelope"),
    ("envelope-empty", lambda: mutate(base_proposed(), ("spec", "proposedContent", "envelope"),
                                      ""), "spec.proposedContent.envelope"),
    ("envelope-not-json", lambda: mutate(base_proposed(), ("spec", "proposedContent",
                                                           "envelope"), "{"),
     "spec.proposedContent.envelope"),
    ("verifiers-empty", lambda: mutate(base_proposed(), ("spec", "proposedContent", "verifiers"),
                                       []), "spec.proposedContent.verifiers"),
    ("verifier-null", lambda: mutate(base_proposed(), ("spec", "proposedContent", "verifiers", 0),
                                     None), "spec.proposedContent.verifiers[0]"),
    ("verifier-not-b64", lambda: mutate(base_proposed(), ("spec", "proposedContent",
                                                          "verifiers", 0), "%%%"),
     "spec.proposedContent.verifiers[0]"),
    ("verifier-not-pem", lambda: mutate(base_proposed(), ("spec", "proposedContent",
                                                          "verifiers", 0), b64(b"hello")),
     "spec.proposedContent.verifiers[0]"),
    ("verifier-rsa1024", lambda: mutate(base_proposed(), ("spec", "proposedContent",
                                                          "verifiers", 0), b64(rsa1024_pem())),
     "spec.proposedContent.verifiers[0]"),
    ("env-unknown", lambda: _env_case(lambda e: e.update(extra=1)),
     "spec.proposedContent.envelope.extra"),
    ("sig-unknown", lambda: _env_case(lambda e: e["signatures"][0].update(cert="x")),
     "spec.proposedContent.envelope.signatures[0].cert"),
    ("no-signatures", lambda: _env_case(lambda e: e.update(signatures=[])),
     "spec.proposedContent.envelope.signatures"),
    ("duplicate-signature", lambda: _env_case(
        lambda e: e["signatures"].append(dict(e["signatures"][0]))),
     "spec.proposedContent.envelope.signatures[1].sig"),
    ("payload-urlsafe", lambda: _env_case(lambda e: e.update(payload=e["payload"].replace(
        "+", "-").replace("/", "_").rstrip("=") + "-_")), "spec.proposedContent.envelope.payload"),
    ("payload-empty", lambda: _env_case(lambda e: e.update(payload="")),
     "spec.proposedContent.envelope.payload"),
    ("payload-type-empty", lambda: _env_case(lambda e: e.update(payloadType="")),
     "spec.proposedContent.envelope.payloadType"),
    ("sig-not-b64", lambda: _env_case(lambda e: e["signatures"][0].update(sig="a b")),
     "spec.proposedContent.envelope.signatures[0].sig"),
    ("keyid-number", lambda: _env_case(lambda e: e["signatures"][0].update(keyid=5)),
     "spec.proposedContent.envelope.signatures[0].keyid"),
    ("duplicate-json-key", lambda: _env_case(
        lambda e: '{"payload":"", "payload":"", "payloadType":"x", "signatures":[]}'),
     "spec.proposedContent.envelope"),
]


@pytest.mark.parametrize("name,make,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_entry(name, make, field):
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(make())
    assert info.value.field == field, info.value


def test_envelope_size_cap():
    key = ecdsa_key()
    env = envelope_for([key])
    proposed = dsse.build_proposed(env, [key.pem])
    assert dsse.parse_proposed(proposed, max_envelope=len(env)).envelope_bytes == env
    with pytest.raises(dsse.EnvelopeTooLargeError):
        dsse.parse_proposed(proposed, max_envelope=len(env) - 1)


def test_chain_limit_applies_to_verifiers():
    key = cert_key(emails=["a@example.com"], chain=True)
    proposed = proposed_for([key])
    dsse.parse_proposed(proposed, max_chain=2)
    with pytest.raises(FormatError, match="more than 1"):
        dsse.parse_proposed(proposed, max_chain=1)


def test_sign_envelope_rejects_bad_input():
    with pytest.raises(FormatError):
        dsse.sign_envelope(intoto.PAYLOAD_TYPE, PROVENANCE, [])
    with pytest.raises(FormatError):
        dsse.sign_envelope("", PROVENANCE, [ecdsa_key().private])
    with pytest.raises(FormatError):
        dsse.sign_envelope(intoto.PAYLOAD_TYPE, b"", [ecdsa_key().private])


# -- the cap on signature x verifier checks (SPEC §10 U5) -------------------------------

def _many(signatures: int, verifiers: int) -> tuple[dict, bytes, list]:
    """A proposed entry whose envelope holds ``signatures`` signatures (all
    by one key: ECDSA signatures differ each time) and ``verifiers``
    verifiers, the signer's key last. Returns it, the envelope and the keys."""
    signer = ecdsa_key()
    env = dsse.sign_envelope(intoto.PAYLOAD_TYPE, PROVENANCE, [signer.private] * signatures)
    keys = [ecdsa_key() for _ in range(verifiers - 1)] + [signer]
    return {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {
        "envelope": env.decode(), "verifiers": [b64(k.pem) for k in keys]}}}, env, keys


@pytest.mark.parametrize("signatures, verifiers", [(1, 16), (16, 1), (4, 4), (2, 8)])
def test_up_to_the_trial_cap_is_accepted(signatures, verifiers):
    proposed, _, _ = _many(signatures, verifiers)
    assert len(dsse.parse_proposed(proposed).signatures) == signatures
    assert signatures * verifiers <= dsse.MAX_TRIALS


@pytest.mark.parametrize("signatures, verifiers", [(2, 9), (16, 2), (5, 4), (16, 16)])
def test_over_the_trial_cap_is_refused_naming_the_verifiers(signatures, verifiers):
    proposed, _, _ = _many(signatures, verifiers)
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(proposed)
    assert info.value.field == "spec.proposedContent.verifiers"
    assert f"{signatures * verifiers} signature checks" in info.value.reason
    assert f"limit of {dsse.MAX_TRIALS}" in info.value.reason


def test_the_trial_cap_is_checked_before_any_key_is_parsed():
    """Refused on the counts alone: verifiers that are not even PEM (whose
    error would otherwise come first) do not get parsed."""
    proposed, _, _ = _many(2, 2)
    proposed["spec"]["proposedContent"]["verifiers"] = [b64(b"not a key")] * 9
    with pytest.raises(FormatError) as info:
        dsse.parse_proposed(proposed)
    assert info.value.field == "spec.proposedContent.verifiers"


def test_the_trial_cap_is_a_parameter():
    proposed, env, keys = _many(1, 5)
    dsse.parse_proposed(proposed, max_trials=5)
    with pytest.raises(FormatError, match="limit of 4"):
        dsse.parse_proposed(proposed, max_trials=4)
    dsse.build_proposed(env, [k.pem for k in keys], max_trials=5)
    with pytest.raises(FormatError, match="limit of 4"):
        dsse.build_proposed(env, [k.pem for k in keys], max_trials=4)
