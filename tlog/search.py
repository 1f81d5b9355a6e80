"""The search index: key names and the ``POST /api/v1/index/retrieve`` query.

Index rows are written in the entry's own transaction (SPEC I9), so search is
complete: every logged entry is found by every key it carries. Keys are
namespaced strings:

- ``hash:<alg>:<hex>``: an artifact digest (hashedrekord data, in-toto subject);
- ``key:<hex>``: SHA-256 of the DER SubjectPublicKeyInfo of a signing key;
- ``email:<address>``: a certificate SAN email, lowercased;
- ``subject:<value>``: a certificate SAN URI (or other subject identity);
- ``predicate:<predicateType>``: the predicate type of an in-toto statement
  (dsse and intoto entries; extension);
- ``builder:<builder id>``: the builder id of SLSA provenance (extension).

The query fields ``predicateType`` and ``builderId`` are tlog extensions to
Rekor's SearchIndex (docs/api.md).

Pages (SPEC §10 U5): one answer holds at most a page of matches and reads at
most ``SCAN_FACTOR`` × page index rows, for ``and`` and ``or`` queries alike;
when more may follow, it gives a cursor, the extension member ``cursor`` of
the next request. A cursor is the scan position (every match up to that log
index has been given) and a tag of the query it belongs to, so a page can be
short, or empty, with a cursor still given, and the chain of pages gives
every match exactly once, in ascending log index. Memory per request: the
page and a few chunks of index rows per key, whatever the log holds.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from tlog_client.encoding import MAX_INT64, b64decode_std
from tlog_client.errors import FormatError
from tlog_client.hashing import sha256
from tlog_client.jsonstrict import expect_object, expect_str
from tlog_client.keys import parse_key_material

from .config import Config
from .storage import ReadTxn

_HASH = re.compile(r"(?:(sha256):)?([0-9a-fA-F]{64})\Z|(?:(sha384):)?([0-9a-fA-F]{96})\Z"
                   r"|(?:(sha512):)?([0-9a-fA-F]{128})\Z")
_BARE_ALG = {64: "sha256", 96: "sha384", 128: "sha512"}


def hash_key(algorithm: str, hex_digest: str) -> str:
    return f"hash:{algorithm}:{hex_digest.lower()}"


def key_key(key_hash_hex: str) -> str:
    return f"key:{key_hash_hex}"


def email_key(email: str) -> str:
    return f"email:{email.lower()}"


def subject_key(subject: str) -> str:
    return f"subject:{subject}"


def predicate_key(predicate_type: str) -> str:
    return f"predicate:{predicate_type}"


def builder_key(builder_id: str) -> str:
    return f"builder:{builder_id}"


@dataclass(frozen=True)
class Query:
    keys: tuple[str, ...]
    operator: str  # "and" | "or"

    def tag(self) -> str:
        """16 hex digits naming the query (its operator and set of keys), so
        that a cursor given back with another query is refused."""
        text = "\n".join([self.operator, *sorted(set(self.keys))])
        return sha256(text.encode("utf-8")).hex()[:16]


@dataclass(frozen=True)
class Request:
    """A search request: the query, and the log index its page starts
    after (-1: from the start of the log)."""

    query: Query
    after: int = -1


_CURSOR = re.compile(r"(0|[1-9][0-9]{0,18})\.([0-9a-f]{16})\Z")


def cursor(query: Query, after: int) -> str:
    """The cursor of the page after log index ``after`` for ``query``:
    ``<decimal index>.<query tag>`` (clients send it back unchanged)."""
    return f"{after}.{query.tag()}"


def parse_cursor(value: object, query: Query) -> int:
    """The log index a ``cursor`` member continues after. Strict: exactly
    what :func:`cursor` writes for this query; FormatError naming
    ``cursor`` otherwise."""
    text = expect_str(value, "cursor")
    match = _CURSOR.match(text) if len(text) <= 40 else None
    if match is None or int(match.group(1)) > MAX_INT64:
        raise FormatError("cursor", "is not a cursor this log gave (send the value of the "
                                    "X-Tlog-Next-Cursor header unchanged)")
    if match.group(2) != query.tag():
        raise FormatError("cursor", "belongs to another query (send it with the query that "
                                    "gave it)")
    return int(match.group(1))


def parse_request(obj: object, config: Config) -> Request:
    """Parse a search body: the query (:func:`parse_query`) and the tlog
    extension ``cursor`` (absent: the first page)."""
    query = parse_query(obj, config)
    value = obj.get("cursor") if isinstance(obj, dict) else None
    return Request(query, -1 if value is None else parse_cursor(value, query))


def parse_query(obj: object, config: Config) -> Query:
    """Parse a Rekor SearchIndex body: ``hash``, ``publicKey {format, content}``,
    ``email``, ``subject``, ``operator`` (and|or, default or), and the tlog
    extensions ``predicateType`` and ``builderId`` (and ``cursor``, read by
    :func:`parse_request`)."""
    q = expect_object(obj, "body",
                      optional=("hash", "publicKey", "email", "subject", "operator",
                                "predicateType", "builderId", "cursor"))
    keys = []
    if q.get("hash") is not None:
        keys.append(_parse_hash(expect_str(q["hash"], "hash")))
    if q.get("publicKey") is not None:
        keys.append(_parse_public_key(q["publicKey"], config))
    if q.get("email") is not None:
        email = expect_str(q["email"], "email")
        if "@" not in email or len(email) > 320:
            raise FormatError("email", "is not an email address")
        keys.append(email_key(email))
    if q.get("subject") is not None:
        keys.append(subject_key(expect_str(q["subject"], "subject")))
    if q.get("predicateType") is not None:
        keys.append(predicate_key(expect_str(q["predicateType"], "predicateType")))
    if q.get("builderId") is not None:
        keys.append(builder_key(expect_str(q["builderId"], "builderId")))
    operator = q.get("operator")
    operator = "or" if operator is None else expect_str(operator, "operator")
    if operator not in ("and", "or"):
        raise FormatError("operator", "must be 'and' or 'or'")
    if not keys:
        raise FormatError("body", "give at least one of hash, publicKey, email, subject, "
                                  "predicateType, builderId")
    return Query(tuple(keys), operator)


def _parse_hash(text: str) -> str:
    m = _HASH.match(text)
    if not m:
        raise FormatError("hash", "must be [sha256:|sha384:|sha512:] followed by hex")
    digest = next(g for g in m.groups()[1::2] if g)
    return hash_key(_BARE_ALG[len(digest)], digest)


def _parse_public_key(value: object, config: Config) -> str:
    pk = expect_object(value, "publicKey", required=("format",), optional=("content", "url"))
    if pk.get("url") is not None:
        raise FormatError("publicKey.url", "tlog never fetches a URL; send the content")
    if expect_str(pk["format"], "publicKey.format") != "x509":
        raise FormatError("publicKey.format", "only x509 (PEM key or certificate) is supported")
    if pk.get("content") is None:
        raise FormatError("publicKey.content", "is required")
    pem = b64decode_std(expect_str(pk["content"], "publicKey.content"), "publicKey.content")
    material = parse_key_material(pem, "publicKey.content", max_chain=config.max_chain)
    return key_key(material.key_hash())


# -- pages -----------------------------------------------------------------------

SCAN_FACTOR = 10
"""Index rows one answer may read, per EntryID of a page (``--search-page``)."""

MIN_SCAN = 256
"""Rows one answer may read at least (so that every page makes progress)."""

QUERY_COST = 8
"""Rows each index query is counted as on top of the rows it returns (a
query that finds nothing still costs a B-tree descent)."""

FIRST_CHUNK = 32
"""Rows of a key an ``and`` reads with its first query; each further query
of a key read in order reads twice as many (up to a page), and one after a
jump (another key skipped ahead) starts again from this. An ``or`` reads a
page's worth at once: every row it reads is a match."""


class SearchAbandoned(Exception):
    """The client of a search went away: the rest of it is not read."""


class _OutOfRows(Exception):
    """The answer read as many index rows as it may."""


@dataclass(frozen=True)
class Page:
    """One answer: matching log indexes, ascending, and the index the next
    page starts after (None: there are no more matches)."""

    indexes: list[int]
    next_after: int | None


class _Budget:
    def __init__(self, rows: int, stop: Callable[[], bool]) -> None:
        self.rows = rows
        self.stop = stop


class _KeyRows:
    """The index rows of one key, read forward in chunks: the first row at
    or after a log index, from memory when it is there."""

    def __init__(self, snap: ReadTxn, key: str, after: int, end: int, first: int, most: int,
                 budget: _Budget) -> None:
        self._snap, self._key, self._end, self._most = snap, key, end, most
        self._budget = budget
        self._rows: list[int] = []
        self._pos = 0
        self._last = after  # every row of the key up to here has been read
        self._first = self._chunk = first
        self.exhausted = False  # no row of the key is above _last

    def first_at_least(self, x: int) -> int | None:
        """The key's first row ``>= x``, or None if it has none (below the
        tree's end). Raises _OutOfRows when that needs a query the budget
        no longer allows, SearchAbandoned when the client went away."""
        rows = self._rows
        while True:
            pos = self._pos = bisect_left(rows, x, self._pos)
            if pos < len(rows):
                return rows[pos]
            if self.exhausted:
                return None
            self._read(x)
            rows = self._rows

    def take_below(self, bound: int, most: int) -> list[int]:
        """The rows read and not taken yet that are below ``bound``, at most
        ``most`` (after :meth:`first_at_least`: from its answer on)."""
        pos = self._pos
        end = min(bisect_left(self._rows, bound, pos), pos + most)
        self._pos = end
        return self._rows[pos:end]

    def none_from(self, x: int) -> bool:
        """True if, from what was read, the key has no row ``>= x``."""
        return self.exhausted and (not self._rows or self._rows[-1] < x)

    def _read(self, x: int) -> None:
        budget = self._budget
        if budget.stop():
            raise SearchAbandoned()
        # Read on in order (the last chunk used up): a larger chunk; after a
        # jump past it: a small one again (the rows skipped were not wanted).
        if x - 1 > self._last:
            self._chunk = self._first
        elif self._rows:
            self._chunk = min(2 * self._chunk, self._most)
        limit = min(self._chunk, budget.rows - QUERY_COST)
        if limit < 1:
            raise _OutOfRows()
        after = max(x - 1, self._last)
        rows = self._snap.search(self._key, limit, after)
        budget.rows -= len(rows) + QUERY_COST
        if len(rows) < limit:
            self.exhausted = True
        if rows and rows[-1] >= self._end:  # beyond the tree (storage damage): not served
            rows = [r for r in rows if r < self._end]
            self.exhausted = True
        self._rows, self._pos = rows, 0
        if rows:
            self._last = rows[-1]


def run(snap: ReadTxn, query: Query, after: int, page: int, end: int,
        stop: Callable[[], bool] = lambda: False) -> Page:
    """The page of ``query``'s matches after log index ``after``: at most
    ``page`` indexes, ascending, below ``end`` (the size of the tree the
    answer is for: index rows beyond it are never served), read with at most
    ``max(SCAN_FACTOR * page, MIN_SCAN)`` index rows (each query counted
    ``QUERY_COST`` more). Complete over a chain of pages (each ``after``
    the previous page's ``next_after``), ``and`` as exactly as ``or``.
    ``stop`` is asked before each index query: True raises SearchAbandoned.

    Precondition: ``page >= 1``; ``snap`` is one read transaction."""
    budget = _Budget(max(SCAN_FACTOR * page, MIN_SCAN), stop)
    chunk = FIRST_CHUNK if query.operator == "and" else page
    keys = [_KeyRows(snap, k, after, end, chunk, max(page, FIRST_CHUNK), budget)
            for k in dict.fromkeys(query.keys)]
    found: list[int] = []
    x = after + 1  # every match below x is in found (or in an earlier page)
    try:
        if query.operator == "and":
            while len(found) < page:
                # Leapfrog: move x to each key's first row >= x until all agree.
                moved = False
                for rows in keys:
                    first = rows.first_at_least(x)
                    if first is None:
                        return Page(found, None)
                    if first > x:
                        x, moved = first, True
                if not moved:
                    found.append(x)
                    x += 1
            done = any(rows.none_from(x) for rows in keys)
        else:
            live = keys
            while len(found) < page:
                # Merge: the key with the smallest next row gives every row it
                # has read below the next key's (a run at a time, not a row).
                heads = sorted((first, k) for k, rows in enumerate(live)
                               if (first := rows.first_at_least(x)) is not None)
                if not heads:
                    return Page(found, None)
                live = [live[k] for _, k in heads]
                bound = heads[1][0] if len(heads) > 1 else end
                taken = live[0].take_below(max(bound, heads[0][0] + 1), page - len(found))
                found += taken
                x = taken[-1] + 1  # the other keys' rows below x are skipped: given once
            done = all(rows.none_from(x) for rows in keys)
    except _OutOfRows:
        return Page(found, x - 1)
    return Page(found, None if done else x - 1)
