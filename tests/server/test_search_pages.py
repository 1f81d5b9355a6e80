"""tlog/search.py pages (SPEC §10 U5): each answer reads a bounded number of
index rows; following the cursors gives every match exactly once, in
ascending log index, for ``and`` and ``or`` queries alike; a cursor is
parsed strictly and belongs to its query."""

from __future__ import annotations

import random

import pytest

from tlog.config import Config
from tlog.search import (MIN_SCAN, QUERY_COST, SCAN_FACTOR, Query, SearchAbandoned, cursor,
                         parse_cursor, parse_request, run)
from tlog_client.errors import FormatError


class FakeIndex:
    """The search rows of a log, behind ReadTxn.search; counts what is read."""

    def __init__(self, rows: dict[str, list[int]]) -> None:
        self.rows = {k: sorted(set(v)) for k, v in rows.items()}
        self.read = 0
        self.queries = 0

    def search(self, key: str, limit: int, after: int = -1) -> list[int]:
        assert limit >= 1
        found = [i for i in self.rows.get(key, []) if i > after][:limit]
        self.read += len(found)
        self.queries += 1
        return found


def follow(index: FakeIndex, query: Query, page: int, end: int) -> tuple[list[int], int]:
    """Every page of ``query``; each read at most the scan bound. Returns the
    matches and the number of pages."""
    found: list[int] = []
    after, pages = -1, 0
    bound = max(SCAN_FACTOR * page, MIN_SCAN)
    while True:
        index.read = index.queries = 0
        result = run(index, query, after, page, end)
        pages += 1
        assert len(result.indexes) <= page
        assert index.read + QUERY_COST * index.queries <= bound + QUERY_COST
        assert all(after < i < end for i in result.indexes)
        found += result.indexes
        if result.next_after is None:
            return found, pages
        assert result.next_after > after, "every page makes progress"
        after = result.next_after
        assert pages < 100_000


def expected(rows: dict[str, list[int]], keys: tuple[str, ...], operator: str,
             end: int) -> list[int]:
    sets = [set(rows.get(k, [])) for k in keys]
    match = set.intersection(*sets) if operator == "and" else set.union(*sets)
    return sorted(i for i in match if i < end)


@pytest.mark.parametrize("operator", ["and", "or"])
@pytest.mark.parametrize("page", [1, 3, 50, 1000])
@pytest.mark.parametrize("seed", range(6))
def test_pages_are_complete_and_in_order(operator, page, seed):
    rnd = random.Random(seed * 1000 + page)
    size = 20_000
    rows = {
        "dense": [i for i in range(size) if rnd.random() < 0.9],
        "half": [i for i in range(size) if rnd.random() < 0.5],
        "sparse": rnd.sample(range(size), 40),
        "clustered": list(range(15_000, 15_300)),
        "none": [],
    }
    names = list(rows)
    keys = tuple(rnd.sample(names, rnd.randint(1, 3)))
    index = FakeIndex(rows)
    found, _ = follow(index, Query(keys, operator), page, size)
    assert found == expected(rows, keys, operator, size)


def test_a_scan_beyond_the_bound_gives_a_short_page_and_a_cursor():
    """``sparse AND dense``, matches far apart: an answer stops at its row
    bound with what it found (maybe nothing) and a cursor to go on from."""
    size = 200_000
    rows = {"dense": list(range(size)), "sparse": list(range(0, size, 7919))}
    query = Query(("dense", "sparse"), "and")
    index = FakeIndex(rows)
    first = run(index, query, -1, 10, size)
    assert len(first.indexes) < 10 and first.next_after is not None
    assert run(index, Query(("dense", "sparse"), "and"), 7919, 1, 7920).indexes == []
    found, pages = follow(index, query, 10, size)
    assert found == expected(rows, query.keys, "and", size)
    assert pages > 3


def test_rows_beyond_the_tree_are_never_served():
    rows = {"k": [1, 5, 9, 12, 40]}
    found, _ = follow(FakeIndex(rows), Query(("k",), "or"), 2, 10)
    assert found == [1, 5, 9]


def test_a_full_last_page_may_be_followed_by_an_empty_one():
    """A page that fills exactly can't always know nothing follows: the next
    answer is empty and ends the chain."""
    index = FakeIndex({"k": [1, 2, 3, 4]})
    first = run(index, Query(("k",), "or"), -1, 2, 100)
    assert first.indexes == [1, 2] and first.next_after == 2
    second = run(index, Query(("k",), "or"), 2, 2, 100)
    assert second.indexes == [3, 4]
    last = run(index, Query(("k",), "or"), second.next_after, 2, 100) \
        if second.next_after is not None else None
    assert last is None or (last.indexes == [] and last.next_after is None)


def test_an_abandoned_search_stops_before_its_next_query():
    index = FakeIndex({"k": list(range(10_000)), "j": list(range(0, 10_000, 3))})
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(SearchAbandoned):
        run(index, Query(("k", "j"), "and"), -1, 1000, 10_000, stop)
    assert index.queries == 2


# -- the request and its cursor ----------------------------------------------------

HASH = "sha256:" + "ab" * 32


def test_a_cursor_continues_its_query():
    config = Config()
    first = parse_request({"hash": HASH}, config)
    assert first.after == -1
    token = cursor(first.query, 41)
    assert parse_request({"hash": HASH, "cursor": token}, config).after == 41
    # The same query spelled otherwise (bare digest, keys in another order).
    assert parse_request({"hash": "ab" * 32, "cursor": token}, config).after == 41


@pytest.mark.parametrize("value", [
    "", "41", "41.", ".0123456789abcdef", "041.0123456789abcdef", "-1.0123456789abcdef",
    "+1.0123456789abcdef", "1.0123456789ABCDEF", "1.0123456789abcde", "1.0123456789abcdef0",
    "9223372036854775808.0123456789abcdef", "١.0123456789abcdef", "1.0123456789abcdef\n",
    "x" * 5000, 41, 4.1, True, [], {}, None])
def test_a_malformed_cursor_is_refused_naming_it(value):
    """Strict, like every member (null too: leave it out for the first page)."""
    with pytest.raises(FormatError) as err:
        parse_request({"hash": HASH, "cursor": value}, Config())
    assert err.value.field in ("cursor", "body.cursor")


def test_a_cursor_of_another_query_is_refused():
    token = cursor(parse_request({"hash": HASH}, Config()).query, 7)
    for other in ({"hash": HASH, "operator": "and"}, {"hash": "sha256:" + "cd" * 32},
                  {"hash": HASH, "email": "a@example.com"}):
        with pytest.raises(FormatError) as err:
            parse_request({**other, "cursor": token}, Config())
        assert err.value.field == "cursor" and "another query" in err.value.reason
    assert parse_cursor(token, parse_request({"hash": HASH}, Config()).query) == 7
