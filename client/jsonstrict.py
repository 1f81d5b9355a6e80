"""Strict JSON reading for entries and responses (SPEC §5, §6, §9).

Python's ``json`` module accepts duplicate keys (last wins), ``NaN`` and
``Infinity``, numbers that overflow to ``inf``, lone UTF-16 surrogates written
as ``\\ud800`` and unbounded nesting. A transparency log must not: two parsers
reading the same bytes differently is how a signed entry comes to mean two
things. :func:`loads_strict` keeps the stdlib parser and closes those gaps with
its hooks and one walk over the result.

The ``expect_*`` helpers check the shape of a parsed document one field at a
time, so every schema error names the JSON path of the offending field
("spec.signature.content", "verification.inclusionProof.hashes[3]").

Every function raises :class:`~tlog_client.errors.FormatError`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .encoding import MAX_INT64
from .errors import FormatError

MAX_DEPTH = 32
"""Default nesting limit (SPEC §6: JSON depth 32)."""

MAX_SIZE = 4 * 1024 * 1024
"""Default document size limit in bytes (SPEC §6: request body 4 MiB)."""

ROOT = "body"
"""Field name used for errors about the document as a whole."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]{1,64}\Z")


class _Rejected(Exception):
    """Raised from a parser hook; turned into a FormatError by loads_strict."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Rejected(f"duplicate object key {ascii(key[:80])}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"number {text:.40} is out of range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_pairs,
    parse_constant=_reject_constant,
    parse_float=_finite_float,
)


def loads_strict(data: bytes, *, max_depth: int = MAX_DEPTH, max_size: int = MAX_SIZE) -> object:
    """Parse one JSON document (RFC 8259) strictly.

    Preconditions: ``data`` is ``bytes`` (UTF-8, no byte order mark) of at
    most ``max_size`` bytes. Rejects invalid UTF-8, duplicate keys, NaN and
    Infinity, numbers outside the float range, lone surrogates (raw or
    escaped), nesting deeper than ``max_depth`` containers and anything after
    the document. Raises FormatError naming ``"body"`` or the JSON path."""
    text = _decode_utf8(data, max_size)
    try:
        value = _DECODER.decode(text)
    except _Rejected as exc:
        raise FormatError(ROOT, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise FormatError(ROOT, f"invalid JSON: {exc.msg} at line {exc.lineno} "
                                f"column {exc.colno}") from None
    except RecursionError:
        raise FormatError(ROOT, f"nesting deeper than {max_depth}") from None
    except ValueError as exc:  # e.g. an integer with too many digits
        raise FormatError(ROOT, f"invalid JSON: {exc}") from None
    if not _surely_plain(text, max_depth):
        _check_tree(value, max_depth)
    return value


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _surely_plain(text: str, max_depth: int) -> bool:
    """True when the walk of :func:`_check_tree` cannot find anything: the
    text has no more brackets than ``max_depth`` (so no deeper nesting) and
    no escaped surrogate (a decoded UTF-8 text holds no raw one). Most
    documents pass, and skip the walk."""
    return (text.count("{") + text.count("[") <= max_depth
            and ("\\u" not in text or not _ESCAPED_SURROGATE.search(text)))


def _decode_utf8(data: bytes, max_size: int) -> str:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(ROOT, f"JSON input must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise FormatError(ROOT, f"document is {len(data)} bytes, over the limit of {max_size}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(ROOT, f"not valid UTF-8 at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        raise FormatError(ROOT, "byte order mark before the JSON document")
    return text


def _check_tree(value: object, max_depth: int) -> None:
    """Walk the parsed value: container depth and well-formed Unicode."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            _check_unicode(node, path)
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise FormatError(path or ROOT, f"nesting deeper than {max_depth}")
        if isinstance(node, dict):
            for key, child in node.items():
                _check_unicode(key, path)
                stack.append((child, join_path(path, key), depth + 1))
        else:
            for i, child in enumerate(node):
                stack.append((child, index_path(path, i), depth + 1))


def _check_unicode(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(path or ROOT, "string contains a lone UTF-16 surrogate") from None


# -- paths -------------------------------------------------------------------

def join_path(parent: str, key: str) -> str:
    """The JSON path of member ``key`` of the object at ``parent`` ("" = root).

    Keys other than short plain names are shown quoted, ASCII-escaped and cut
    to 40 characters, so a path is always safe to put in an error message."""
    if not _PLAIN_KEY.match(key):
        key = json.dumps(key[:40]) + ("..." if len(key) > 40 else "")
    return f"{parent}.{key}" if parent else key


def index_path(parent: str, index: int) -> str:
    """The JSON path of element ``index`` of the array at ``parent``."""
    return f"{parent or ROOT}[{index}]"


def type_name(value: object) -> str:
    """The JSON type name of a parsed value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# -- schema helpers ----------------------------------------------------------

def expect_object(value: object, path: str, *, required: tuple[str, ...] = (),
                  optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check that ``value`` is an object with exactly the allowed members.

    Unknown members, missing ``required`` members and ``null`` members
    (required or optional) raise FormatError naming the member's path. A
    member named ``url`` gets a message saying that nothing is ever fetched."""
    if not isinstance(value, dict):
        raise FormatError(path or ROOT, f"must be a JSON object, not {type_name(value)}")
    allowed, needed = _member_sets(required, optional)
    # Set comparisons first (the write path checks several objects per
    # submission); the loops below only find the member an error names.
    if not value.keys() <= allowed:
        for key in value:
            if key not in allowed:
                _reject_unknown(path, key)
    if None in value.values():
        for key in (*required, *optional):
            if key in value and value[key] is None:
                raise FormatError(join_path(path, key), "must not be null")
    if not needed <= value.keys():
        for key in required:
            if key not in value:
                raise FormatError(join_path(path, key), "required field is missing")
    return value


_member_cache: dict[tuple[tuple[str, ...], tuple[str, ...]],
                    tuple[frozenset[str], frozenset[str]]] = {}


def _member_sets(required: tuple[str, ...], optional: tuple[str, ...]
                 ) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed, required) members as sets; the schemas are constants in
    the code, so this holds a few dozen entries at most."""
    key = (required, optional)
    try:
        sets = _member_cache.get(key)
    except TypeError:  # lists: not cached
        return frozenset(required) | frozenset(optional), frozenset(required)
    if sets is None:
        sets = (frozenset(required) | frozenset(optional), frozenset(required))
        if len(_member_cache) < 1024:  # a caller building tuples cannot grow it unbounded
            _member_cache[key] = sets
    return sets


def _reject_unknown(path: str, key: str) -> None:
    where = join_path(path, key)
    if key == "url":
        raise FormatError(where, "URLs are never fetched: supply the content inline")
    raise FormatError(where, "unknown field")


def expect_str(value: object, path: str, *, allow_empty: bool = False) -> str:
    """Check that ``value`` is a string (non-empty unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise FormatError(path or ROOT, f"must be a string, not {type_name(value)}")
    if not value and not allow_empty:
        raise FormatError(path or ROOT, "must not be empty")
    return value


def expect_int(value: object, path: str, *, minimum: int = 0, maximum: int = MAX_INT64) -> int:
    """Check that ``value`` is a JSON integer (not a boolean, not a float)
    with ``minimum <= value <= maximum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(path or ROOT, f"must be an integer, not {type_name(value)}")
    if value < minimum:
        raise FormatError(path or ROOT, f"{value} is below the minimum {minimum}")
    if value > maximum:
        raise FormatError(path or ROOT, f"{value} exceeds the maximum {maximum}")
    return value


def expect_list(value: object, path: str, *, max_items: int | None = None) -> list[Any]:
    """Check that ``value`` is an array of at most ``max_items`` elements."""
    if not isinstance(value, list):
        raise FormatError(path or ROOT, f"must be an array, not {type_name(value)}")
    if max_items is not None and len(value) > max_items:
        raise FormatError(path or ROOT, f"has {len(value)} items, more than {max_items}")
    return value
