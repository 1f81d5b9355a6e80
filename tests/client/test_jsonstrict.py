"""Strict JSON parsing and schema helpers (SPEC §5, §6, §9)."""

from __future__ import annotations

import pytest

from tlog_client.errors import FormatError
from tlog_client.jsonstrict import (expect_int, expect_list, expect_object, expect_str,
                                    index_path, join_path, loads_strict, type_name)

ACCEPTED = [
    (b'{"a":1}', {"a": 1}),
    (b' \t\r\n{"a" : [1, 2.5, -3e2, true, false, null]}\n ',
     {"a": [1, 2.5, -300.0, True, False, None]}),
    (b'"caf\xc3\xa9"', "caf\u00e9"),
    (b'"\\ud83d\\ude00"', "\U0001F600"),           # escaped surrogate pair
    (b'"\xf0\x9f\x98\x80"', "\U0001F600"),           # raw 4-byte UTF-8
    (b'{"a":{},"b":[]}', {"a": {}, "b": []}),
    (b'0', 0),
    (b'1e308', 1e308),
    (b'-0', 0),
    (b'{"\\u0061":1}', {"a": 1}),
]


@pytest.mark.parametrize("data,expected", ACCEPTED)
def test_accepts(data, expected):
    assert loads_strict(data) == expected


REJECTED = [
    ("invalid utf-8", b'"\xff"', "UTF-8"),
    ("overlong utf-8", b'"\xc0\xaf"', "UTF-8"),
    ("raw encoded surrogate", b'"\xed\xa0\x80"', "UTF-8"),
    ("byte order mark", b'\xef\xbb\xbf{}', "byte order mark"),
    ("duplicate key", b'{"a":1,"a":2}', "duplicate"),
    ("nested duplicate key", b'{"x":[{"k":1,"k":1}]}', "duplicate"),
    ("NaN", b'{"a":NaN}', "NaN"),
    ("Infinity", b'[Infinity]', "Infinity"),
    ("-Infinity", b'[-Infinity]', "Infinity"),
    ("float overflow", b'[1e400]', "out of range"),
    ("escaped lone high surrogate", b'"\\ud800"', "surrogate"),
    ("escaped lone low surrogate", b'"\\udc00x"', "surrogate"),
    ("surrogate in key", b'{"\\ud800":1}', "surrogate"),
    ("reversed surrogate pair", b'"\\ude00\\ud83d"', "surrogate"),
    ("trailing data", b'{"a":1} x', "Extra data"),
    ("two documents", b'{}{}', "Extra data"),
    ("empty", b'', "invalid JSON"),
    ("whitespace only", b'  ', "invalid JSON"),
    ("raw control character", b'"a\x01b"', "invalid JSON"),
    ("raw newline in string", b'"a\nb"', "invalid JSON"),
    ("single quotes", b"{'a':1}", "invalid JSON"),
    ("trailing comma", b'[1,]', "invalid JSON"),
    ("comment", b'[1] // no', "Extra data"),
    ("leading zero", b'[01]', "invalid JSON"),
    ("bad escape", b'"\\x41"', "invalid JSON"),
    ("huge integer", b'1' * 5000, "invalid JSON"),
    ("very deep", b'[' * 100000 + b']' * 100000, "nesting deeper"),
]


@pytest.mark.parametrize("name,data,needle", REJECTED, ids=[r[0] for r in REJECTED])
def test_rejects(name, data, needle):
    with pytest.raises(FormatError) as info:
        loads_strict(data)
    assert needle in str(info.value)
    assert info.value.field == "body"


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b'[]' + b'}' * (depth - 1)


def test_depth_limit_is_exact():
    assert loads_strict(nested(32)) is not None
    with pytest.raises(FormatError, match="nesting deeper than 32"):
        loads_strict(nested(33))
    assert loads_strict(nested(5), max_depth=5) is not None
    with pytest.raises(FormatError, match="nesting deeper than 4"):
        loads_strict(nested(5), max_depth=4)


def test_depth_error_names_the_path():
    with pytest.raises(FormatError) as info:
        loads_strict(b'{"a":[[1]]}', max_depth=2)
    assert info.value.field == "a[0]"


def test_surrogate_error_names_the_path():
    with pytest.raises(FormatError) as info:
        loads_strict(b'{"a":{"b":["x","\\ud800"]}}')
    assert info.value.field == "a.b[1]"


def test_unknown_weird_key_is_reported_safely():
    with pytest.raises(FormatError) as info:
        expect_object({"caf\u00e9 " + "x" * 100: 1}, "spec")
    assert info.value.field.isascii() and len(info.value.field) < 60


def test_size_limit():
    doc = b'"' + b"a" * 100 + b'"'
    assert loads_strict(doc, max_size=len(doc)) == "a" * 100
    with pytest.raises(FormatError, match="over the limit"):
        loads_strict(doc, max_size=len(doc) - 1)


@pytest.mark.parametrize("data", ["{}", None, 12, ["{}"]])
def test_input_must_be_bytes(data):
    with pytest.raises(FormatError, match="bytes"):
        loads_strict(data)


def test_bytearray_and_memoryview_accepted():
    assert loads_strict(bytearray(b"[1]")) == [1]
    assert loads_strict(memoryview(b"[1]")) == [1]


# -- schema helpers ----------------------------------------------------------

def test_paths():
    assert join_path("", "spec") == "spec"
    assert join_path("a", "b c") == 'a."b c"'
    assert join_path("a", "\ud800") == 'a."\\ud800"'
    assert join_path("a", "k" * 100) == 'a."' + "k" * 40 + '"...'
    assert join_path("spec", "data") == "spec.data"
    assert index_path("hashes", 3) == "hashes[3]"
    assert index_path("", 0) == "body[0]"


@pytest.mark.parametrize("value,name", [
    (None, "null"), (True, "boolean"), (1, "number"), (1.5, "number"), ("", "string"),
    ([], "array"), ({}, "object")])
def test_type_name(value, name):
    assert type_name(value) == name


def test_expect_object_accepts_exact_members():
    obj = {"a": 1, "b": 2}
    assert expect_object(obj, "x", required=("a",), optional=("b", "c")) is obj


@pytest.mark.parametrize("value,field,needle", [
    ({"a": 1, "z": 2}, "x.z", "unknown field"),
    ({"a": 1, "url": "https://e"}, "x.url", "never fetched"),
    ({}, "x.a", "missing"),
    ({"a": None}, "x.a", "null"),
    ({"a": 1, "b": None}, "x.b", "null"),
    ([], "x", "object"),
    (None, "x", "object"),
    ("{}", "x", "object"),
])
def test_expect_object_rejects(value, field, needle):
    with pytest.raises(FormatError) as info:
        expect_object(value, "x", required=("a",), optional=("b",))
    assert info.value.field == field
    assert needle in info.value.reason


def test_expect_object_root_path_is_body():
    with pytest.raises(FormatError) as info:
        expect_object([], "")
    assert info.value.field == "body"
    with pytest.raises(FormatError) as info:
        expect_object({"q": 1}, "")
    assert info.value.field == "q"


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, -1, 1 << 63])
def test_expect_int_rejects(value):
    with pytest.raises(FormatError) as info:
        expect_int(value, "n")
    assert info.value.field == "n"


def test_expect_int_bounds():
    assert expect_int(0, "n") == 0
    assert expect_int((1 << 63) - 1, "n") == (1 << 63) - 1
    assert expect_int(5, "n", minimum=5, maximum=5) == 5
    with pytest.raises(FormatError, match="below"):
        expect_int(0, "n", minimum=1)


@pytest.mark.parametrize("value", [1, None, b"x", [], {}, ""])
def test_expect_str_rejects(value):
    with pytest.raises(FormatError):
        expect_str(value, "s")


def test_expect_str_allow_empty():
    assert expect_str("", "s", allow_empty=True) == ""


def test_expect_list():
    assert expect_list([1, 2], "l", max_items=2) == [1, 2]
    with pytest.raises(FormatError, match="more than 2"):
        expect_list([1, 2, 3], "l", max_items=2)
    with pytest.raises(FormatError, match="array"):
        expect_list({}, "l")
