"""Malformed input for every field of every route (SPEC §5, §6, §9): a 4xx
with the Rekor error shape and a message naming the field, never a 5xx.

Table-driven against one real server; the module fixture also checks the
server logged no internal error at all.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
import zlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .helpers import (JSON, b64, cert_signer, ecdsa_signer, error_message, get, make_certificate,
                      post_json, request, spki_pem)

ENTRIES = "/api/v1/log/entries"
RETRIEVE = "/api/v1/log/entries/retrieve"
SEARCH = "/api/v1/index/retrieve"
JSON_ROUTES = [ENTRIES, RETRIEVE, SEARCH]

SIGNER = ecdsa_signer()
DATA = b"the artifact"
VALID = SIGNER.entry(DATA)
MISSING = object()

REQUIRED = ["apiVersion", "kind", "spec", "spec.data", "spec.data.hash",
            "spec.data.hash.algorithm", "spec.data.hash.value", "spec.signature",
            "spec.signature.content", "spec.signature.publicKey",
            "spec.signature.publicKey.content"]
OBJECTS = {"spec", "spec.data", "spec.data.hash", "spec.signature", "spec.signature.publicKey"}


def with_field(path: str, value, base=None) -> dict:
    """A copy of the valid entry with ``path`` set to ``value`` (or removed)."""
    obj = copy.deepcopy(base or VALID)
    *parents, last = path.split(".")
    node = obj
    for p in parents:
        node = node[p]
    if value is MISSING:
        del node[last]
    else:
        node[last] = value
    return obj


def b64pem(pem: bytes) -> str:
    return b64(pem)


def bad_request(url, path, obj=None, raw=None, status=400) -> str:
    r = post_json(url, path, obj, raw=raw)
    return error_message(r, status)


@pytest.fixture(scope="module")
def url(module_server):
    # The valid entry is accepted (so every failure below is the mutation's).
    r = post_json(module_server.url, ENTRIES, VALID)
    assert r.status == 201, r.body
    return module_server.url


# -- POST /api/v1/log/entries: schema ------------------------------------------------

SCHEMA_CASES = []
for _path in REQUIRED:
    SCHEMA_CASES.append((f"{_path} missing", _path, MISSING, _path))
    SCHEMA_CASES.append((f"{_path} null", _path, None, _path))
    wrong = ["x", 5, [], True] if _path in OBJECTS else [5, 1.5, [], {}, True, ""]
    for _w in wrong:
        SCHEMA_CASES.append((f"{_path} = {json.dumps(_w)}", _path, _w, _path))
for _parent in ["", "spec", "spec.data", "spec.data.hash", "spec.signature",
                "spec.signature.publicKey"]:
    _field = f"{_parent}.extra" if _parent else "extra"
    SCHEMA_CASES.append((f"unknown {_field}", _field, 1, _field))
SCHEMA_CASES += [
    ("spec.data.content (artifact instead of digest)", "spec.data.content",
     b64(DATA), "spec.data.content"),
    ("publicKey.url", "spec.signature.publicKey.url", "https://example.com/key.pem",
     "spec.signature.publicKey.url"),
    ("spec.data.url", "spec.data.url", "https://example.com/a", "spec.data.url"),
    ("kind rekord", "kind", "rekord", "kind"),
    ("kind HashedRekord", "kind", "HashedRekord", "kind"),
    ("kind with NUL", "kind", "hashedrekord\u0000", "kind"),
    ("apiVersion 0.0.2", "apiVersion", "0.0.2", "apiVersion"),
    ("apiVersion with space", "apiVersion", "0.0.1 ", "apiVersion"),
]


@pytest.mark.parametrize("name,path,value,field", SCHEMA_CASES,
                         ids=[c[0] for c in SCHEMA_CASES])
def test_entry_schema(url, name, path, value, field):
    message = bad_request(url, ENTRIES, with_field(path, value))
    assert field in message, message


@pytest.mark.parametrize("body", [[], "entry", 5, None, True, [VALID]],
                         ids=["array", "string", "number", "null", "true", "list-of-entry"])
def test_entry_body_not_an_object(url, body):
    assert "body" in bad_request(url, ENTRIES, body)


# -- POST /api/v1/log/entries: values ----------------------------------------------

ALG = "spec.data.hash.algorithm"
VALUE = "spec.data.hash.value"
SIG = "spec.signature.content"
KEY = "spec.signature.publicKey.content"
DIGEST = SIGNER.digest(DATA)


def _other_sig() -> str:
    import hashlib
    other = hashlib.sha256(b"another artifact").digest()
    return b64(SIGNER.sign_digest(other))


def _pem(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _chain_wrong_issuer() -> bytes:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    impostor = ec.generate_private_key(ec.SECP256R1())
    ca = make_certificate(ca_key, subject_cn="CA")
    leaf = make_certificate(SIGNER.private_key, emails=["a@example.com"], issuer_key=impostor,
                            issuer_name=ca.subject)
    return _cert_pem(leaf) + _cert_pem(ca)


def _long_chain(n: int) -> bytes:
    keys = [SIGNER.private_key] + [ec.generate_private_key(ec.SECP256R1()) for _ in range(n - 1)]
    certs = []
    for i in range(n - 1, -1, -1):  # root first, then each issued by the previous
        issuer = certs[0] if certs else None
        certs.insert(0, make_certificate(
            keys[i], subject_cn=f"c{i}", issuer_key=keys[i + 1] if issuer else None,
            issuer_name=issuer.subject if issuer else None))
    return b"".join(_cert_pem(c) for c in certs)


def _cert_pem_version(version: int) -> bytes:
    """SIGNER's certificate with its version field (v3: INTEGER 2) replaced."""
    v3 = b"\xa0\x03\x02\x01\x02"
    der = make_certificate(SIGNER.private_key).public_bytes(serialization.Encoding.DER)
    der = der.replace(v3, v3[:-1] + bytes([version]), 1)
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


_PRIV_PEM = SIGNER.private_key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
_KEY_PEM = SIGNER.pem
_RSA1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
_DSA = dsa.generate_private_key(key_size=2048)

VALUE_CASES = [
    # digest algorithm and value
    ("algorithm md5", ALG, "md5", ALG),
    ("algorithm SHA256", ALG, "SHA256", ALG),
    ("algorithm sha1", ALG, "sha1", ALG),
    ("algorithm sha-256", ALG, "sha-256", ALG),
    ("value uppercase hex", VALUE, DIGEST.hex().upper(), VALUE),
    ("value odd length", VALUE, DIGEST.hex()[:-1], VALUE),
    ("value not hex", VALUE, "zz" * 32, VALUE),
    ("value 0x prefix", VALUE, "0x" + DIGEST.hex()[2:], VALUE),
    ("value too short", VALUE, DIGEST.hex()[:62], VALUE),
    ("value too long", VALUE, DIGEST.hex() + "00", VALUE),
    ("value sha384 length for sha256", VALUE, "ab" * 48, VALUE),
    ("value with space", VALUE, " " + DIGEST.hex()[1:], VALUE),
    ("value non-ASCII digits", VALUE, "\u0661" * 64, VALUE),
    # signature encoding
    ("signature not base64", SIG, "!!!!", SIG),
    ("signature missing padding", SIG, b64(bytes(range(70))).rstrip("="), SIG),
    ("signature truncated base64", SIG, VALID["spec"]["signature"]["content"][:-1], SIG),
    ("signature url-safe alphabet", SIG, "-_-_" * 10, SIG),
    ("signature with newline", SIG, VALID["spec"]["signature"]["content"][:8] + "\n"
     + VALID["spec"]["signature"]["content"][8:], SIG),
    ("signature non-canonical padding bits", SIG, "AB==", SIG),
    # signatures that do not verify
    ("signature over another digest", SIG, _other_sig(), SIG),
    ("signature truncated", SIG, b64(base64.b64decode(VALID["spec"]["signature"]["content"])[:-3]),
     SIG),
    ("signature random bytes", SIG, b64(bytes(range(70))), SIG),
    ("signature by another key", SIG,
     b64(ec.generate_private_key(ec.SECP256R1()).sign(DIGEST, ec.ECDSA(Prehashed(hashes.SHA256())))),
     SIG),
    # public key material
    ("key not base64", KEY, "not base64!", KEY),
    ("key not PEM", KEY, b64(b"hello world"), KEY),
    ("key DER not PEM", KEY, b64(SIGNER.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)), KEY),
    ("key truncated PEM", KEY, b64(_KEY_PEM[:60]), KEY),
    ("key PEM without END", KEY, b64(_KEY_PEM.replace(b"-----END PUBLIC KEY-----", b"")), KEY),
    ("key PEM body garbage", KEY, b64(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
     KEY),
    ("key text around PEM", KEY, b64(b"hello\n" + _KEY_PEM), KEY),
    ("key private key PEM", KEY, b64(_PRIV_PEM), KEY),
    ("key two PUBLIC KEY blocks", KEY, b64(_KEY_PEM + _KEY_PEM), KEY),
    ("key PUBLIC KEY and CERTIFICATE", KEY,
     b64(_KEY_PEM + _cert_pem(make_certificate(SIGNER.private_key))), KEY),
    ("key non-ASCII", KEY, b64(_KEY_PEM.replace(b"PUBLIC", "PÜBLIC".encode())), KEY),
    ("key Ed25519", KEY, b64(_pem(ed25519.Ed25519PrivateKey.generate().public_key())), KEY),
    ("key RSA 1024", KEY, b64(_pem(_RSA1024.public_key())), KEY),
    ("key secp256k1", KEY, b64(_pem(ec.generate_private_key(ec.SECP256K1()).public_key())), KEY),
    ("key DSA", KEY, b64(_pem(_DSA.public_key())), KEY),
    ("key of another signer", KEY, b64(ecdsa_signer().pem), SIG),
    ("certificate chain wrong issuer", KEY, b64(_chain_wrong_issuer()), KEY),
    ("certificate chain of 11", KEY, b64(_long_chain(11)), KEY),
    ("certificate garbage DER", KEY,
     b64(b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"), KEY),
    ("key base64 of empty", KEY, "", KEY),
    # cryptography raises InvalidVersion (not a ValueError) for version v4+
    ("certificate version field 5", KEY, b64(_cert_pem_version(5)), KEY),
]


@pytest.mark.parametrize("name,path,value,field", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_entry_values(url, name, path, value, field):
    message = bad_request(url, ENTRIES, with_field(path, value))
    assert field in message, message


def test_chain_of_10_is_accepted(url):
    proposed = cert_signer().entry()  # sanity: a certificate works
    assert post_json(url, ENTRIES, proposed).status == 201
    chain = _long_chain(10)
    digest = SIGNER.digest(b"chain of ten")
    entry = with_field(KEY, b64(chain), with_field(VALUE, digest.hex(), with_field(
        SIG, b64(SIGNER.sign_digest(digest)))))
    r = post_json(url, ENTRIES, entry)
    assert r.status == 201, r.body


# -- raw JSON on every JSON route ---------------------------------------------------

RAW_CASES = [
    ("duplicate key", b'{"kind": "hashedrekord", "kind": "hashedrekord"}'),
    ("duplicate nested key", json.dumps(VALID).replace(
        '"algorithm": "sha256"', '"algorithm": "sha256", "algorithm": "sha256"').encode()),
    ("NaN", b'{"logIndexes": [NaN], "kind": NaN}'),
    ("Infinity", b'{"logIndexes": [Infinity]}'),
    ("-Infinity", b'{"logIndexes": [-Infinity]}'),
    ("float overflow", b'{"logIndexes": [1e999]}'),
    ("5000-digit integer", b'{"logIndexes": [' + b"1" * 5000 + b"]}"),
    ("nesting 1000 arrays", b"[" * 1000 + b"]" * 1000),
    ("nesting 1000 objects", b'{"a":' * 1000 + b"1" + b"}" * 1000),
    ("nesting 100000", b"[" * 100000 + b"]" * 100000),
    ("nesting 33", b'{"entries": ' + b"[" * 32 + b"]" * 32 + b"}"),
    ("invalid UTF-8", b'{"kind": "\xff"}'),
    ("overlong UTF-8", b'{"kind": "\xc0\xaf"}'),
    ("UTF-8 encoded surrogate", b'{"kind": "\xed\xa0\x80"}'),
    ("truncated UTF-8", b'{"kind": "\xe2\x82"}'),
    ("lone surrogate escape", b'{"kind": "\\ud800"}'),
    ("lone low surrogate in key", b'{"\\udc00": 1}'),
    ("byte order mark", b"\xef\xbb\xbf{}"),
    ("UTF-16", '{"kind": "x"}'.encode("utf-16")),
    ("trailing garbage", b"{}x"),
    ("two documents", b"{}{}"),
    ("empty body", b""),
    ("whitespace only", b"  \n"),
    ("truncated", json.dumps(VALID).encode()[:-5]),
    ("comment", b'{"kind": "hashedrekord" // c\n}'),
    ("single quotes", b"{'kind': 'hashedrekord'}"),
    ("trailing comma", b'{"kind": "hashedrekord",}'),
    ("NUL byte", b'{"kind": "hashed\x00rekord"}'),
    ("control char in string", b'{"kind": "a\x01b"}'),
]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("name,raw", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_json(url, route, name, raw):
    r = post_json(url, route, raw=raw)
    message = error_message(r, (400, 422))
    assert any(f in message for f in ("body", "logIndexes", "kind", "entries")), message


# -- headers ----------------------------------------------------------------------

BODY = json.dumps(VALID).encode()


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("headers,body", [
    ({}, BODY),
    ({"Content-Type": "text/plain"}, BODY),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=b"),
    ({"Content-Type": "multipart/form-data; boundary=x"},
     b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n{}\r\n--x--\r\n'),
    ({"Content-Type": "application/jsonx"}, BODY),
    ({**JSON, "Content-Encoding": "gzip"}, gzip.compress(BODY)),
    ({**JSON, "Content-Encoding": "gzip"}, b"not gzip"),
    ({**JSON, "Content-Encoding": "deflate"}, zlib.compress(BODY)),
    ({**JSON, "Content-Encoding": "br"}, BODY),
    ({**JSON, "Content-Encoding": "identity, gzip"}, gzip.compress(BODY)),
    ({**JSON, "Content-Encoding": "x-unknown"}, BODY),
], ids=["no-content-type", "text-plain", "form", "multipart", "jsonx", "gzip", "bad-gzip",
        "deflate", "br", "identity-gzip", "unknown-encoding"])
def test_unsupported_media_is_415(url, route, headers, body):
    r = request(url, "POST", route, body, headers)
    message = error_message(r, 415)
    assert "Content-" in message


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_identity_encoding_and_charset_accepted(url, route):
    body = json.dumps({"hash": "sha256:" + "00" * 32} if route == SEARCH else {}).encode()
    r = request(url, "POST", route, body, {"Content-Type": "application/json; charset=utf-8",
                                           "Content-Encoding": "identity"})
    assert r.status in (200, 400), r.body  # {} is a 400 for POST entries, not a 415
    if route != ENTRIES:
        assert r.status == 200


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_body_over_4mib_is_413(url, route):
    body = b'{"x": "' + b"a" * (4 << 20) + b'"}'
    r = request(url, "POST", route, body, JSON)
    error_message(r, 413)


def test_leaf_over_64kib_is_413(url):
    # A certificate with many SAN URIs: the PEM fits the 64 KiB PEM limit but
    # the canonical body (which holds it base64-encoded) exceeds 65,535 bytes.
    uris = [f"https://example.com/a/very/long/path/to/make/the/certificate/big/{i:05d}"
            for i in range(620)]
    signer = cert_signer(uris=uris)
    assert 50_000 < len(signer.pem) < 64 * 1024
    message = error_message(post_json(url, ENTRIES, signer.entry()), 413)
    assert "65535" in message or "limit" in message


# -- query strings ----------------------------------------------------------------

BAD_INTS = ["", "+5", "-1", "05", "00", "1_0", "%205", "5%20", "%09" "5", "%D9%A5", "%EF%BC%95",
            "0x5", "5.0", "1e3", "9223372036854775808", "18446744073709551616",
            "9" * 30, "abc", "true", "null", "%00", "5%00", "1,2", "%FF"]


@pytest.mark.parametrize("value", BAD_INTS)
def test_log_index_query(url, value):
    message = error_message(get(url, f"{ENTRIES}?logIndex={value}"), 400)
    assert "logIndex" in message


@pytest.mark.parametrize("value", BAD_INTS)
@pytest.mark.parametrize("name", ["firstSize", "lastSize"])
def test_proof_query(url, name, value):
    other = "lastSize=1" if name == "firstSize" else "firstSize=1"
    message = error_message(get(url, f"/api/v1/log/proof?{other}&{name}={value}"), 400)
    assert name in message


@pytest.mark.parametrize("query,field", [
    ("", "logIndex"), ("logIndex=0&logIndex=0", "logIndex"), ("logindex=0", "logIndex"),
])
def test_log_index_missing_or_repeated(url, query, field):
    assert field in error_message(get(url, f"{ENTRIES}?{query}"), 400)


def test_proof_bounds(url):
    size = get(url, "/api/v1/log").json()["treeSize"]
    assert size >= 2
    for query, field in [("", "lastSize"), ("firstSize=1", "lastSize"),
                         ("lastSize=0", "lastSize"), ("firstSize=0&lastSize=0", "lastSize"),
                         ("firstSize=0&lastSize=1", "firstSize"),
                         (f"firstSize=2&lastSize=1", "firstSize"),
                         (f"lastSize={size + 1}", "lastSize"),
                         (f"firstSize={size + 1}&lastSize={size + 1}", "lastSize"),
                         ("lastSize=1&lastSize=1", "lastSize")]:
        message = error_message(get(url, f"/api/v1/log/proof?{query}"), 400)
        assert field in message, (query, message)


@pytest.mark.parametrize("ref", [
    "0" * 63, "0" * 65, "0" * 79, "0" * 81, "g" * 64, "-" + "0" * 63, "0" * 16 + "0" * 64,
    "8000000000000000" + "0" * 64, "ffffffffffffffff" + "0" * 64, "%D9%A1" * 64, "%00" * 64,
    "0" * 63 + "%20", "0x" + "0" * 62,
], ids=lambda r: r[:24])
def test_entry_uuid_path(url, ref):
    assert "entryUUID" in error_message(get(url, f"{ENTRIES}/{ref}"), 400)


# -- POST /api/v1/log/entries/retrieve ---------------------------------------------

UUID = "0" * 64
RETRIEVE_CASES = [
    ({"entryUUIDs": None}, "entryUUIDs"),
    ({"entryUUIDs": False}, "entryUUIDs"),
    ({"entryUUIDs": ""}, "entryUUIDs"),
    ({"entryUUIDs": 0}, "entryUUIDs"),
    ({"entryUUIDs": {}}, "entryUUIDs"),
    ({"entryUUIDs": UUID}, "entryUUIDs"),
    ({"entryUUIDs": [5]}, "entryUUIDs[0]"),
    ({"entryUUIDs": [None]}, "entryUUIDs[0]"),
    ({"entryUUIDs": [UUID, "zz"]}, "entryUUIDs[1]"),
    ({"entryUUIDs": ["0" * 63]}, "entryUUIDs[0]"),
    ({"entryUUIDs": [[UUID]]}, "entryUUIDs[0]"),
    ({"logIndexes": False}, "logIndexes"),
    ({"logIndexes": 0}, "logIndexes"),
    ({"logIndexes": ""}, "logIndexes"),
    ({"logIndexes": {}}, "logIndexes"),
    ({"logIndexes": [-1]}, "logIndexes[0]"),
    ({"logIndexes": [1.5]}, "logIndexes[0]"),
    ({"logIndexes": [1.0]}, "logIndexes[0]"),
    ({"logIndexes": ["1"]}, "logIndexes[0]"),
    ({"logIndexes": [True]}, "logIndexes[0]"),
    ({"logIndexes": [None]}, "logIndexes[0]"),
    ({"logIndexes": [0, 2**63]}, "logIndexes[1]"),
    ({"logIndexes": [2**64]}, "logIndexes[0]"),
    ({"logIndexes": [-2**63]}, "logIndexes[0]"),
    ({"entries": False}, "entries"),
    ({"entries": {}}, "entries"),
    ({"entries": VALID}, "entries"),
    ({"entries": [5]}, "entries[0]"),
    ({"entries": [None]}, "entries[0]"),
    ({"entries": [VALID, with_field(SIG, "!!")]}, "entries[1]"),
    ({"entries": [with_field("kind", "rekord")]}, "entries[0]"),
    ({"entries": [with_field("spec.data.hash", MISSING)]}, "spec.data.hash"),
    ({"unknown": []}, "unknown"),
    ({"entryUUIDs": [], "url": "http://x"}, "url"),
    ([], "body"), ("x", "body"), (None, "body"), (5, "body"),
]


@pytest.mark.parametrize("query,field", RETRIEVE_CASES,
                         ids=[json.dumps(q)[:50] for q, _ in RETRIEVE_CASES])
def test_retrieve_malformed(url, query, field):
    message = bad_request(url, RETRIEVE, query)
    assert field in message, message


# -- POST /api/v1/index/retrieve ---------------------------------------------------

H = "ab" * 32
PK = {"format": "x509", "content": b64(SIGNER.pem)}
SEARCH_CASES = [
    ({}, "body"),
    ({"operator": "and"}, "body"),
    ({"hash": None}, "hash"),
    ({"hash": 5}, "hash"),
    ({"hash": ""}, "hash"),
    ({"hash": "sha1:" + "ab" * 20}, "hash"),
    ({"hash": "md5:" + "ab" * 16}, "hash"),
    ({"hash": "sha256:" + "ab" * 31 + "a"}, "hash"),
    ({"hash": "sha256:" + "g" * 64}, "hash"),
    ({"hash": "sha512:" + H}, "hash"),
    ({"hash": " sha256:" + H}, "hash"),
    ({"hash": "sha256:" + H + "\n"}, "hash"),
    ({"hash": "SHA256:" + H}, "hash"),
    ({"hash": "sha256:\u0661" + H[1:]}, "hash"),
    ({"publicKey": "x"}, "publicKey"),
    ({"publicKey": 5}, "publicKey"),
    ({"publicKey": []}, "publicKey"),
    ({"publicKey": {}}, "publicKey.format"),
    ({"publicKey": {"content": PK["content"]}}, "publicKey.format"),
    ({"publicKey": {"format": "pgp", "content": PK["content"]}}, "publicKey.format"),
    ({"publicKey": {"format": "ssh", "content": PK["content"]}}, "publicKey.format"),
    ({"publicKey": {"format": 5, "content": PK["content"]}}, "publicKey.format"),
    ({"publicKey": {"format": None, "content": PK["content"]}}, "publicKey.format"),
    ({"publicKey": {"format": "x509"}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": None}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": 5}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": "!!"}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": b64(b"junk")}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": b64(_PRIV_PEM)}}, "publicKey.content"),
    ({"publicKey": {"format": "x509", "content": b64(_pem(_RSA1024.public_key()))}},
     "publicKey.content"),
    ({"publicKey": {"format": "x509", "url": "https://example.com/k"}}, "publicKey.url"),
    ({"publicKey": {**PK, "url": "https://example.com/k"}}, "publicKey.url"),
    ({"publicKey": {**PK, "extra": 1}}, "publicKey.extra"),
    ({"email": None}, "email"),
    ({"email": 5}, "email"),
    ({"email": ""}, "email"),
    ({"email": "no-at-sign"}, "email"),
    ({"email": "a" * 400 + "@example.com"}, "email"),
    ({"email": ["a@example.com"]}, "email"),
    ({"subject": 5}, "subject"),
    ({"subject": ""}, "subject"),
    ({"subject": {}}, "subject"),
    ({"hash": "sha256:" + H, "operator": "xor"}, "operator"),
    ({"hash": "sha256:" + H, "operator": "AND"}, "operator"),
    ({"hash": "sha256:" + H, "operator": 1}, "operator"),
    ({"hash": "sha256:" + H, "operator": ""}, "operator"),
    ({"hash": "sha256:" + H, "operator": None}, "operator"),
    ({"hash": "sha256:" + H, "extra": 1}, "extra"),
    ({"hash": "sha256:" + H, "url": "http://x"}, "url"),
    ([], "body"), ("hash", "body"), (None, "body"),
]


@pytest.mark.parametrize("query,field", SEARCH_CASES,
                         ids=[json.dumps(q)[:50] for q, _ in SEARCH_CASES])
def test_search_malformed(url, query, field):
    message = bad_request(url, SEARCH, query)
    assert field in message, message


# -- fuzz: random mutations of valid requests ---------------------------------------

def _mutations(seed: int, base: bytes, n: int):
    rng = random.Random(seed)
    alphabet = b'{}[]":,0123456789.-+eE\\ u"nulltruefalse\x00\xff\xc3\xa9/=AZaz'
    for _ in range(n):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                del data[pos:pos + rng.randint(1, 8)]
            elif op == 1:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            elif data:
                data[min(pos, len(data) - 1)] = rng.choice(alphabet)
        yield bytes(data)


@pytest.mark.parametrize("route,base", [
    (ENTRIES, json.dumps(VALID).encode()),
    (RETRIEVE, json.dumps({"entryUUIDs": [UUID], "logIndexes": [0], "entries": [VALID]}).encode()),
    (SEARCH, json.dumps({"hash": "sha256:" + H, "publicKey": PK, "email": "a@b.c",
                         "subject": "s", "operator": "and"}).encode()),
])
def test_fuzzed_bodies_never_5xx(url, route, base):
    for i, body in enumerate(_mutations(zlib.crc32(route.encode()), base, 150)):
        r = post_json(url, route, raw=body)
        assert r.status < 500, (i, body, r.body)
        if r.status >= 400:
            error_message(r, r.status)


# -- HTTP-level garbage ---------------------------------------------------------------

def _read_response(s) -> bytes:
    """Read one whole HTTP response (headers and Content-Length body) from a
    socket, without waiting for the server to close it (a server may linger
    to drain an unread request body)."""
    out = b""
    while b"\r\n\r\n" not in out:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), None)
    while length is not None and len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _raw(url: str, data: bytes) -> bytes:
    import socket
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(data)
        return _read_response(s)


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def garbage_server(tmp_path_factory):
    """A server of its own, logging at INFO: each malformed request is one
    log line, never a traceback (no client can flood the log with them)."""
    from ..serverproc import ServerProcess
    server = ServerProcess(tmp_path_factory.mktemp("garbage") / "log",
                           env={"TLOG_LOG_LEVEL": "INFO"}).start()
    yield server
    server.stop()
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log
    assert "refused a malformed HTTP request" in log


H11 = b"Host: x\r\nConnection: close\r\n"
CT = b"Content-Type: application/json\r\n"


@pytest.mark.parametrize("name,data", [
    ("request line over 8 KiB", b"GET /api/v1/log?" + b"a" * 9000 + b" HTTP/1.1\r\n" + H11 + b"\r\n"),
    ("header over 8 KiB", b"GET /api/v1/log HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n" + H11
     + b"\r\n"),
    ("NUL in method", b"G\x00T /api/v1/log HTTP/1.1\r\n" + H11 + b"\r\n"),
    ("bad HTTP version", b"GET /api/v1/log HTTP/9.9\r\n" + H11 + b"\r\n"),
    ("chunked and Content-Length", b"POST /api/v1/log/entries/retrieve HTTP/1.1\r\n" + H11 + CT
     + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    ("two Content-Lengths", b"POST /api/v1/log/entries/retrieve HTTP/1.1\r\n" + H11 + CT
     + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
    ("negative Content-Length", b"POST /api/v1/log/entries/retrieve HTTP/1.1\r\n" + H11 + CT
     + b"Content-Length: -1\r\n\r\n{}"),
    ("huge Content-Length", b"POST /api/v1/log/entries HTTP/1.1\r\n" + H11 + CT
     + b"Content-Length: 99999999999999999999\r\n\r\n{}"),
    ("Content-Length over 4 MiB", b"POST /api/v1/log/entries HTTP/1.1\r\n" + H11 + CT
     + b"Content-Length: 5000000\r\n\r\n{}"),
    ("bad percent-encoding in path", b"GET /api/v1/log/entries/%zz HTTP/1.1\r\n" + H11 + b"\r\n"),
    ("bad percent-encoding in query", b"GET /api/v1/log/entries?logIndex=%zz HTTP/1.1\r\n" + H11
     + b"\r\n"),
    ("dot segments", b"GET /../../etc/passwd HTTP/1.1\r\n" + H11 + b"\r\n"),
    ("encoded dot segments in tile", b"GET /tile/0/%2e%2e/000 HTTP/1.1\r\n" + H11 + b"\r\n"),
    ("absolute-form URL", b"GET http://evil.example/api/v1/log/publicKey HTTP/1.1\r\n" + H11
     + b"\r\n"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_http_garbage_is_4xx(garbage_server, name, data):
    server = garbage_server
    response = _raw(server.url, data)
    assert response.startswith(b"HTTP/1.")
    status = _status(response)
    assert status < 500, response[:300]
    if name != "absolute-form URL":
        assert 400 <= status < 500, response[:300]
    assert get(server.url, "/healthz").status == 200  # still serving


def test_chunked_request_body_is_read(url):
    body = json.dumps({"logIndexes": [0]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    response = _raw(url, b"POST /api/v1/log/entries/retrieve HTTP/1.1\r\n" + H11 + CT
                    + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert _status(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])[0]


def test_slow_body_is_408_and_the_server_keeps_serving(make_server):
    import socket
    server = make_server("--read-timeout-s", "1")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\n" + H11 + CT
                  + b"Content-Length: 100\r\n\r\n{\"kind\":")
        out = _read_response(s)
    assert _status(out) == 408, out[:300]
    assert b'"body: not received' in out
    assert get(server.url, "/healthz").status == 200
