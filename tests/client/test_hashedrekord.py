"""hashedrekord 0.0.1: strict schema, signature verification, canonical body,
index keys, and Rekor's own canonical bodies (SPEC §3.4, §5)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import pytest
from cryptography import x509

from tlog_client.encoding import b64encode_std
from tlog_client.errors import FormatError, SignatureError
from tlog_client.hashedrekord import (API_VERSION, KIND, HashedRekord, UnverifiedHashedRekord,
                                      build_proposed, parse_canonical, parse_proposed,
                                      parse_unverified)
from tlog_client.jsonstrict import loads_strict
from tlog_client.keys import OID_FULCIO_ISSUER_V2, spki_der
from tlog_client.rekor import canonical_json

from .test_keys import (cert_pem, der_utf8, ec_key, ed_key, make_cert, make_chain, reflow,
                        rsa_key, sign_digest, spki_pem)
from .test_rekor import BUNDLE_BODY_B64, OFFLINE_BODY_B64

ARTIFACT = b"hello, transparency\n"
WORKFLOW = "https://github.com/o/r/.github/workflows/b.yml@refs/tags/v1"


def digest_of(alg: str, data: bytes = ARTIFACT) -> bytes:
    return hashlib.new(alg, data).digest()


def proposed(private_key=None, alg: str = "sha256", pem: bytes | None = None,
             scheme: str = "pkcs1") -> dict:
    """A valid proposed entry signed by ``private_key`` (default EC P-256)."""
    private_key = private_key or ec_key()
    digest = digest_of(alg)
    return {
        "apiVersion": "0.0.1", "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg, "value": digest.hex()}},
            "signature": {
                "content": b64encode_std(sign_digest(private_key, digest, alg, scheme)),
                "publicKey": {"content": b64encode_std(pem or spki_pem(private_key))},
            },
        },
    }


VALID = [
    ("P-256 sha256", lambda: proposed(ec_key("secp256r1"), "sha256")),
    ("P-384 sha384", lambda: proposed(ec_key("secp384r1"), "sha384")),
    ("P-521 sha512", lambda: proposed(ec_key("secp521r1"), "sha512")),
    ("P-256 sha512", lambda: proposed(ec_key("secp256r1"), "sha512")),
    ("RSA-2048 PKCS#1 v1.5 sha256", lambda: proposed(rsa_key(2048), "sha256")),
    ("RSA-2048 PSS sha256", lambda: proposed(rsa_key(2048), "sha256", scheme="pss")),
    ("RSA-3072 PSS sha512", lambda: proposed(rsa_key(3072), "sha512", scheme="pss")),
    ("certificate", lambda: proposed(ec_key(), pem=cert_pem(make_chain(1)[0]))),
    ("chain of 3", lambda: proposed(ec_key(), pem=cert_pem(*make_chain(3)))),
]


@pytest.mark.parametrize("name,make", VALID, ids=[v[0] for v in VALID])
def test_valid_entries(name, make):
    obj = make()
    entry = parse_proposed(obj)
    algorithm = obj["spec"]["data"]["hash"]["algorithm"]
    assert entry.algorithm == algorithm
    assert entry.digest == digest_of(algorithm)
    body = entry.canonical_body()
    assert body == canonical_json(obj)          # already canonical PEM: same object
    assert parse_canonical(body) == entry
    assert entry.index_keys()[:2] == [f"{algorithm}:{digest_of(algorithm).hex()}",
                                      hashlib.sha256(spki_der(entry.key.public_key)).hexdigest()]


def test_canonical_body_exact_bytes():
    obj = proposed()
    spec = obj["spec"]
    expected = ('{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":'
                '{"algorithm":"sha256","value":"' + digest_of("sha256").hex() + '"}},'
                '"signature":{"content":"' + spec["signature"]["content"] + '",'
                '"publicKey":{"content":"' + spec["signature"]["publicKey"]["content"] + '"}}}}')
    assert parse_proposed(obj).canonical_body() == expected.encode()


def test_canonical_body_re_encodes_the_pem():
    pem = spki_pem(ec_key())
    entry = parse_proposed(proposed(ec_key(), pem=reflow(pem, 76, b"\r\n")))
    obj = json.loads(entry.canonical_body())
    assert base64.b64decode(obj["spec"]["signature"]["publicKey"]["content"]) == pem
    assert canonical_json(obj) == entry.canonical_body()


@pytest.mark.parametrize("body_b64", [OFFLINE_BODY_B64, BUNDLE_BODY_B64],
                         ids=["offline-rekor", "bundle.txt"])
def test_rekor_canonical_bodies(body_b64):
    """Bodies canonicalised by Rekor itself re-canonicalise byte for byte."""
    body = base64.b64decode(body_b64)
    entry = parse_canonical(body)
    assert entry.canonical_body() == body
    assert entry.algorithm == "sha256"
    assert entry.key.identities.issuer == "https://github.com/login/oauth"
    assert entry.key.identities.emails[0] in entry.index_keys()


def test_index_keys_with_identities():
    sans = [x509.RFC822Name("Builder@Example.COM"),
            x509.UniformResourceIdentifier(WORKFLOW)]
    issuer = x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V2, der_utf8("https://issuer.example"))
    sans.append(x509.RFC822Name("builder@example.com"))   # same address, other case
    cert = make_cert(ec_key(), ec_key("secp256r1", 1), sans=sans, extensions=[issuer])
    entry = parse_proposed(proposed(ec_key(), pem=cert_pem(cert)))
    assert entry.index_keys() == [
        "sha256:" + digest_of("sha256").hex(),
        hashlib.sha256(spki_der(ec_key().public_key())).hexdigest(),
        "builder@example.com",
        WORKFLOW,
    ]
    assert entry.artifact_hash == "sha256:" + digest_of("sha256").hex()


# -- strict schema -----------------------------------------------------------

def leaf_paths(obj: dict, prefix: str = ""):
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        if isinstance(value, dict):
            yield from leaf_paths(value, path)


ALL_PATHS = list(leaf_paths(proposed()))


def mutated(path: str, action) -> dict:
    obj = proposed()
    *parents, last = path.split(".")
    target = obj
    for part in parents:
        target = target[part]
    action(target, last)
    return obj


def test_all_paths_listed():
    assert ALL_PATHS == ["apiVersion", "kind", "spec", "spec.data", "spec.data.hash",
                         "spec.data.hash.algorithm", "spec.data.hash.value", "spec.signature",
                         "spec.signature.content", "spec.signature.publicKey",
                         "spec.signature.publicKey.content"]


@pytest.mark.parametrize("path", ALL_PATHS)
def test_missing_field(path):
    with pytest.raises(FormatError) as info:
        parse_proposed(mutated(path, lambda parent, key: parent.pop(key)))
    assert info.value.field == path and "missing" in info.value.reason


@pytest.mark.parametrize("path", ALL_PATHS)
def test_null_field(path):
    with pytest.raises(FormatError) as info:
        parse_proposed(mutated(path, lambda parent, key: parent.__setitem__(key, None)))
    assert info.value.field == path and "null" in info.value.reason


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("bad", [0, True, [], "", {}], ids=["int", "bool", "list", "empty", "obj"])
def test_wrong_type(path, bad):
    with pytest.raises(FormatError) as info:
        parse_proposed(mutated(path, lambda parent, key: parent.__setitem__(key, bad)))
    assert info.value.field.startswith(path)


@pytest.mark.parametrize("container", ["", "spec", "spec.data", "spec.data.hash", "spec.signature",
                                       "spec.signature.publicKey"])
def test_unknown_field(container):
    obj = proposed()
    target = obj
    for part in filter(None, container.split(".")):
        target = target[part]
    target["extra"] = "x"
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == (f"{container}.extra" if container else "extra")
    assert "unknown field" in info.value.reason


@pytest.mark.parametrize("container", ["spec.data", "spec.signature.publicKey", "spec.signature"])
def test_url_fields_are_refused(container):
    obj = proposed()
    target = obj
    for part in container.split("."):
        target = target[part]
    target["url"] = "https://example.com/artifact"
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == f"{container}.url" and "never fetched" in info.value.reason


def test_data_content_is_refused():
    obj = proposed()
    obj["spec"]["data"]["content"] = b64encode_std(ARTIFACT)
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == "spec.data.content" and "only the digest" in info.value.reason


@pytest.mark.parametrize("obj", [[], "x", None, 1])
def test_top_level_not_an_object(obj):
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == "body"


BAD_VALUES = [
    ("kind", "rekord", "expected 'hashedrekord'"),
    ("kind", "HashedRekord", "expected"),
    ("apiVersion", "0.0.2", "unsupported"),
    ("apiVersion", "0.0.1 ", "unsupported"),
    ("spec.data.hash.algorithm", "sha1", "not one of"),
    ("spec.data.hash.algorithm", "SHA256", "not one of"),
    ("spec.data.hash.algorithm", "sha3-256", "not one of"),
    ("spec.data.hash.value", "ab" * 31, "is 31 bytes, expected 32"),
    ("spec.data.hash.value", "ab" * 48, "is 48 bytes, expected 32"),
    ("spec.data.hash.value", "AB" * 32, "lowercase"),
    ("spec.data.hash.value", "a" * 63, "lowercase"),
    ("spec.data.hash.value", "sha256:" + "ab" * 32, "lowercase"),
    ("spec.signature.content", "MEUCIQ", "base64"),
    ("spec.signature.content", "MEU-IQ==", "base64"),
    ("spec.signature.content", "MEUC\nIQ==", "base64"),
    ("spec.signature.content", "MEV=", "non-canonical"),
    ("spec.signature.publicKey.content", "LS0t", "outside PEM blocks"),
    ("spec.signature.publicKey.content", "ICAg", "no PEM block"),
    ("spec.signature.publicKey.content", "LS0tLS1CRUdJTg", "base64"),
    ("spec.signature.publicKey.content", b64encode_std(b"\xff\xfe"), "non-ASCII"),
]


@pytest.mark.parametrize("parse", [parse_proposed, parse_unverified],
                         ids=["parse_proposed", "parse_unverified"])
@pytest.mark.parametrize("path,value,needle", BAD_VALUES)
def test_bad_value(path, value, needle, parse):
    """Both entry points refuse every bad value (parse_unverified too: format
    checks are never deferred to verify)."""
    with pytest.raises(FormatError) as info:
        parse(mutated(path, lambda parent, key: parent.__setitem__(key, value)))
    assert info.value.field == path and needle in info.value.reason


def test_digest_length_follows_algorithm():
    obj = proposed(alg="sha256")
    obj["spec"]["data"]["hash"]["algorithm"] = "sha384"
    with pytest.raises(FormatError, match="expected 48"):
        parse_proposed(obj)


# -- signatures and keys -------------------------------------------------------

def test_bad_signature():
    obj = proposed()
    sig = base64.b64decode(obj["spec"]["signature"]["content"])
    obj["spec"]["signature"]["content"] = b64encode_std(sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(SignatureError):
        parse_proposed(obj)


def test_signature_over_another_digest():
    obj = proposed()
    obj["spec"]["data"]["hash"]["value"] = digest_of("sha256", b"other").hex()
    with pytest.raises(SignatureError):
        parse_proposed(obj)


def test_signature_by_another_key():
    obj = proposed(ec_key("secp256r1", 1))
    obj["spec"]["signature"]["publicKey"]["content"] = b64encode_std(spki_pem(ec_key()))
    with pytest.raises(SignatureError):
        parse_proposed(obj)


def test_garbage_signature_bytes():
    obj = proposed()
    obj["spec"]["signature"]["content"] = b64encode_std(b"\x00" * 70)
    with pytest.raises(SignatureError):
        parse_proposed(obj)


def test_ed25519_refused():
    digest = digest_of("sha256")
    obj = proposed()
    obj["spec"]["signature"]["content"] = b64encode_std(ed_key().sign(digest))
    obj["spec"]["signature"]["publicKey"]["content"] = b64encode_std(spki_pem(ed_key()))
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == "spec.signature.publicKey.content"
    assert "Ed25519" in info.value.reason


def test_disallowed_key_refused():
    obj = proposed(rsa_key(1024))
    with pytest.raises(FormatError, match="1024 bits"):
        parse_proposed(obj)


def test_chain_of_eleven_refused():
    obj = proposed(ec_key(), pem=cert_pem(*make_chain(11)))
    with pytest.raises(FormatError) as info:
        parse_proposed(obj)
    assert info.value.field == "spec.signature.publicKey.content"
    assert "more than 10" in info.value.reason


def test_broken_chain_refused():
    leaf = make_cert(ec_key(), ec_key("secp256r1", 3), "leaf", "ca")
    ca = make_cert(ec_key("secp256r1", 1), ec_key("secp256r1", 1), "ca", "ca", ca=True)
    with pytest.raises(SignatureError):
        parse_proposed(proposed(ec_key(), pem=cert_pem(leaf, ca)))


# -- parse_canonical -----------------------------------------------------------

def test_parse_canonical_rejects_non_canonical():
    obj = proposed()
    canonical = parse_proposed(obj).canonical_body()
    for variant in (json.dumps(obj).encode(),                      # spaces
                    canonical + b"\n",                             # trailing newline
                    json.dumps(obj, sort_keys=True, indent=1).encode()):
        with pytest.raises(FormatError) as info:
            parse_canonical(variant)
        assert info.value.field == "body"


def test_parse_canonical_rejects_re_encodable_pem():
    pem = reflow(spki_pem(ec_key()), 76, b"\n")
    body = canonical_json(proposed(ec_key(), pem=pem))
    with pytest.raises(FormatError, match="not the canonical form"):
        parse_canonical(body)


def test_parse_canonical_rejects_duplicate_keys():
    body = parse_proposed(proposed()).canonical_body()
    dup = body.replace(b'{"apiVersion":"0.0.1",', b'{"apiVersion":"0.0.1","apiVersion":"0.0.1",')
    with pytest.raises(FormatError, match="duplicate"):
        parse_canonical(dup)


def test_parse_canonical_verifies_signature():
    obj = proposed()
    obj["spec"]["data"]["hash"]["value"] = digest_of("sha256", b"x").hex()
    with pytest.raises(SignatureError):
        parse_canonical(canonical_json(obj))


def test_parse_canonical_bad_json():
    with pytest.raises(FormatError):
        parse_canonical(b"\xff")
    with pytest.raises(FormatError):
        parse_canonical(b"[]")


# -- build_proposed ------------------------------------------------------------

@pytest.mark.parametrize("alg", ["sha256", "sha384", "sha512"])
def test_build_proposed(alg):
    digest = digest_of(alg)
    sig = sign_digest(ec_key(), digest, alg)
    obj = build_proposed(alg, digest, sig, spki_pem(ec_key()))
    assert obj["kind"] == KIND and obj["apiVersion"] == API_VERSION
    assert obj["spec"]["data"]["hash"] == {"algorithm": alg, "value": digest.hex()}
    assert base64.b64decode(obj["spec"]["signature"]["content"]) == sig
    assert loads_strict(json.dumps(obj).encode()) == obj
    assert parse_proposed(copy.deepcopy(obj)).digest == digest


def test_build_proposed_checks_everything():
    digest = digest_of("sha256")
    sig = sign_digest(ec_key(), digest, "sha256")
    with pytest.raises(SignatureError):
        build_proposed("sha256", digest_of("sha256", b"x"), sig, spki_pem(ec_key()))
    with pytest.raises(FormatError, match="not one of"):
        build_proposed("md5", digest, sig, spki_pem(ec_key()))
    with pytest.raises(FormatError, match="expected 48"):
        build_proposed("sha384", digest, sig, spki_pem(ec_key()))
    with pytest.raises(FormatError, match="bytes"):
        build_proposed("sha256", digest.hex(), sig, spki_pem(ec_key()))
    with pytest.raises(FormatError, match="Ed25519"):
        build_proposed("sha256", digest, ed_key().sign(digest), spki_pem(ed_key()))


# -- in two steps: parse_unverified, then verify ---------------------------------

@pytest.mark.parametrize("name,make", VALID, ids=[v[0] for v in VALID])
def test_two_steps_give_the_entry_parse_proposed_gives(name, make):
    obj = make()
    unverified = parse_unverified(obj)
    assert isinstance(unverified, UnverifiedHashedRekord)
    assert not isinstance(unverified, HashedRekord)
    entry = unverified.verify()
    assert type(entry) is HashedRekord and entry == parse_proposed(obj)


def _flip_last_signature_byte(obj: dict) -> None:
    sig = base64.b64decode(obj["spec"]["signature"]["content"])
    obj["spec"]["signature"]["content"] = b64encode_std(sig[:-1] + bytes([sig[-1] ^ 1]))


BAD_SIGNATURES = [
    ("flipped byte", _flip_last_signature_byte),
    ("another digest", lambda obj: obj["spec"]["data"]["hash"].__setitem__(
        "value", digest_of("sha256", b"other").hex())),
    ("another key", lambda obj: obj["spec"]["signature"]["publicKey"].__setitem__(
        "content", b64encode_std(spki_pem(ec_key("secp256r1", 1))))),
    ("garbage", lambda obj: obj["spec"]["signature"].__setitem__(
        "content", b64encode_std(b"\x00" * 70))),
]


@pytest.mark.parametrize("name,spoil", BAD_SIGNATURES, ids=[b[0] for b in BAD_SIGNATURES])
def test_a_bad_signature_is_found_by_verify_only(name, spoil):
    """parse_unverified checks no signature: the same entry passes it and
    fails verify, naming the field, as parse_proposed fails."""
    obj = proposed()
    spoil(obj)
    unverified = parse_unverified(obj)
    with pytest.raises(SignatureError) as info:
        unverified.verify()
    assert str(info.value).startswith("spec.signature.content: ")
    with pytest.raises(SignatureError) as again:
        parse_proposed(obj)
    assert str(again.value) == str(info.value)


def test_parse_unverified_checks_the_key():
    """Key checks (allow-list, Ed25519, chains) are parsing: no deferral."""
    with pytest.raises(FormatError, match="1024 bits"):
        parse_unverified(proposed(rsa_key(1024)))
