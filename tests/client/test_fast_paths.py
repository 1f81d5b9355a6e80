"""The write path's fast paths agree with the slow, obviously right forms:

- canonical_json gives exactly the rfc8785 package's bytes (or the same
  refusal) on every value, plain ones and those it must hand over;
- strict base64 decoding accepts exactly the canonical standard encodings;
- loads_strict's shortcut never skips a depth or surrogate refusal;
- a cached parsed key is the key the bytes give;
- lowercase hex decoding (a round trip through ``bytes.fromhex``) accepts
  exactly what the regular expression it replaced accepted;
- expect_object (set comparisons first) raises exactly the error, naming
  exactly the member, of the member-by-member loops it replaced.
"""

from __future__ import annotations

import base64
import re

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tlog_client.encoding import b64decode_std, hex_decode_lower
from tlog_client.errors import FormatError
from tlog_client.jsonstrict import expect_object, join_path, loads_strict
from tlog_client.rekor import canonical_json

keys = st.one_of(st.text(max_size=8), st.sampled_from(["a", "B", "_", "é", "\U0001f600",
                                                        "\ue000", "z\x00", ""]))
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(), st.text(alphabet=st.characters(codec="ascii")),
    st.sampled_from(["\ud800", "a\udfffb", "\u2028", "\x7f", "\"\\\b\f\n\r\t\x01\x1f"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)), max_leaves=30)


def reference(obj: object) -> bytes | None:
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return None


def _same_as_reference(obj) -> None:
    """canonical_json gives rfc8785's bytes, or refuses what rfc8785 refuses."""
    want = reference(obj)
    if want is None:
        with pytest.raises(FormatError):
            canonical_json(obj)
    else:
        assert canonical_json(obj) == want


@settings(max_examples=2000, deadline=None)
@given(values)
def test_same_bytes_or_same_refusal_as_rfc8785(obj):
    _same_as_reference(obj)


@pytest.mark.parametrize("obj", [
    {"b": 1, "a": [True, False, None, "x"], "A": {"\U0001f600": 1, "\ue000": 2}},
    {"n": 2**53 - 1, "m": -(2**53 - 1)}, {"n": 2**53}, {"f": 1.0}, {"s": "\ud800"},
    {1: "non-string key"}, ("tuple", 1), {"deep": [[[[[[[[[[[[[]]]]]]]]]]]]]},
])
def test_edge_values(obj):
    _same_as_reference(obj)


CANONICAL_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
b64_text = st.one_of(
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    st.text(alphabet="AQgw+/=9z \n-_", max_size=16),
    st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode().rstrip("=")),
    st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode()[:-1] + "B"))


@settings(max_examples=3000, deadline=None)
@given(b64_text)
def test_base64_accepts_exactly_the_canonical_encodings(text):
    canonical = bool(CANONICAL_B64.match(text))
    if canonical:
        raw = base64.b64decode(text)
        canonical = base64.b64encode(raw).decode() == text
    if canonical:
        assert b64decode_std(text, "f") == base64.b64decode(text)
    else:
        with pytest.raises(FormatError):
            b64decode_std(text, "f")


@pytest.mark.parametrize("text, refused", [
    ("[" * 32 + "]" * 32, False), ("[" * 33 + "]" * 33, True),
    ('{"a": "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}', False),
    ('["\\ud800"]', True), ('["\\\\ud800"]', False), ('["\\uD83D"]', True),
    ('["\\ud83d\\ude00"]', False), ('{"\\udfff": 1}', True), ('["\\udc00x"]', True),
])
def test_loads_strict_shortcut_keeps_every_refusal(text, refused):
    if refused:
        with pytest.raises(FormatError):
            loads_strict(text.encode())
    else:
        loads_strict(text.encode())


def test_cached_key_is_the_parsed_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tlog_client.keys import parse_key_material
    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    first = parse_key_material(pem, "k")
    again = parse_key_material(bytearray(pem), "k")
    assert again is first and again.canonical_pem() == pem
    with pytest.raises(FormatError, match="other.field"):
        parse_key_material(pem.replace(b"PUBLIC KEY", b"PUBLIC KEX"), "other.field")


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["sha256", "sha384", "sha512"]), st.binary(min_size=1, max_size=80))
def test_hashedrekord_template_is_the_canonical_json(algorithm, seed):
    import hashlib

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    from tlog_client import hashedrekord
    key = ec.generate_private_key(ec.SECP384R1())
    digest = hashlib.new(algorithm, seed).digest()
    chosen = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
    signature = key.sign(digest, ec.ECDSA(Prehashed(chosen[algorithm]())))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    entry = hashedrekord.parse_proposed(
        hashedrekord.build_proposed(algorithm, digest, signature, pem))
    assert entry.canonical_body() == rfc8785.dumps(entry.canonical_obj())


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1),
       st.binary(min_size=32, max_size=32))
def test_set_payload_template_is_the_canonical_json(body, t, index, log_id):
    from tlog_client.rekor import set_payload
    b64 = base64.b64encode(body).decode()
    obj = {"body": b64, "integratedTime": t, "logID": log_id.hex(), "logIndex": index}
    want = reference(obj)
    if want is None:
        with pytest.raises(FormatError):
            set_payload(b64, t, log_id.hex(), index)
    else:
        assert set_payload(b64, t, log_id.hex(), index) == want


HEX_LOWER = re.compile(r"(?:[0-9a-f]{2})*\Z")
hex_texts = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF \t\n\r\x0b\x0cg-", max_size=12),
    st.text(max_size=6),
    st.binary(max_size=8).map(bytes.hex),
    st.binary(max_size=8).map(lambda b: b.hex().upper()),
    st.binary(max_size=8).map(lambda b: " ".join(f"{x:02x}" for x in b)))


@settings(max_examples=3000, deadline=None)
@given(hex_texts)
def test_hex_accepts_exactly_lowercase_hex(text):
    if HEX_LOWER.match(text):
        assert hex_decode_lower(text, "f") == bytes.fromhex(text)
    else:
        with pytest.raises(FormatError, match="^f: not lowercase hexadecimal"):
            hex_decode_lower(text, "f")


@pytest.mark.parametrize("value", [b"ab", None, 12, ["ab"], bytearray(b"ab")])
def test_hex_refuses_what_is_not_text(value):
    with pytest.raises(FormatError, match="^f: not lowercase hexadecimal"):
        hex_decode_lower(value, "f")


def expect_object_loops(value, path, required, optional):
    """The member-by-member checks expect_object made before its set
    comparisons (the reference; value is a dict)."""
    allowed = set(required) | set(optional)
    for key in value:
        if key not in allowed:
            return join_path(path, key)
    for key in (*required, *optional):
        if key in value and value[key] is None:
            return join_path(path, key)
    for key in required:
        if key not in value:
            return join_path(path, key)
    return None


members = st.sampled_from(["a", "b", "c", "d", "url"])


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(members, st.one_of(st.none(), st.integers(0, 2)), max_size=5),
       st.lists(members, max_size=3, unique=True), st.lists(members, max_size=3, unique=True))
def test_expect_object_names_what_the_loops_named(value, required, optional):
    required, optional = tuple(required), tuple(k for k in optional if k not in required)
    want = expect_object_loops(value, "x", required, optional)
    if want is None:
        assert expect_object(value, "x", required=required, optional=optional) is value
    else:
        with pytest.raises(FormatError) as caught:
            expect_object(value, "x", required=required, optional=optional)
        assert caught.value.field == want
    # Lists where tuples are expected: the same answer, just not cached.
    if want is None:
        assert expect_object(value, "x", required=list(required),
                             optional=list(optional)) is value
