"""The C backend (tlog_client._bulk) and the pure-Python backend of
tlog_client.bulk give identical results and raise the same error types on
every input (SPEC §8). Both are also checked against hashlib and the naive
RFC 6962 reference. No timings here: figures live in scripts/bench_hashing.py.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import os
import random
import subprocess
import sys
import threading

import pytest

from tlog_client import bulk
from tlog_client.errors import FormatError
from tlog_client.hashing import EMPTY_ROOT

from .rfc6962_reference import ReferenceTree

try:
    from tlog_client import _bulk
except ImportError:  # not built (no compiler or OpenSSL headers at install)
    _bulk = None

needs_c = pytest.mark.skipif(_bulk is None, reason="C backend tlog_client._bulk not built")

HOOKS = ("_leaf_hashes", "_parent_level", "_root_of_level")
PY_HOOKS = (bulk._py_leaf_hashes, bulk._py_parent_level, bulk._py_root_of_level)


@contextlib.contextmanager
def backend(name: str):
    """Run the public functions of tlog_client.bulk on one backend."""
    if name == "c":
        impl = (_bulk.leaf_hashes, _bulk.parent_level, _bulk.root_of_level)
    else:
        impl = PY_HOOKS
    saved = [getattr(bulk, h) for h in HOOKS]
    for hook, fn in zip(HOOKS, impl):
        setattr(bulk, hook, fn)
    try:
        yield
    finally:
        for hook, fn in zip(HOOKS, saved):
            setattr(bulk, hook, fn)


def outcome(fn, *args):
    """What a call gives: ("ok", result) or ("error", exception type)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        return ("error", type(exc))


def both(fn_name: str, *args):
    """The outcome of bulk.<fn_name>(*args) on each backend; they must agree."""
    fn = getattr(bulk, fn_name)
    with backend("python"):
        py = outcome(fn, *args)
    with backend("c"):
        c = outcome(fn, *args)
    assert c == py, f"{fn_name}: C {c!r:.200} != Python {py!r:.200}"
    return py


def entries_of(rnd: random.Random, n: int, max_len: int = 400) -> list[bytes]:
    return [rnd.randbytes(rnd.randrange(max_len + 1)) for _ in range(n)]


def sizes_to_check() -> list[int]:
    sizes = {0, 1, 2, 3}
    for k in range(1, 13):
        sizes |= {2**k - 1, 2**k, 2**k + 1}
    return sorted(sizes)


def test_c_backend_is_built_in_ci():
    """CI machines have gcc and libssl-dev: there the accelerator must exist."""
    if _bulk is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tlog_client._bulk was not built (compiler or OpenSSL headers missing?)")
        pytest.skip("C backend not built on this machine")
    forced = os.environ.get("TLOG_BULK_BACKEND") == "python"
    assert bulk.BACKEND == ("python" if forced else "c")


@needs_c
@pytest.mark.parametrize("n", sizes_to_check())
def test_sizes_around_powers_of_two(n):
    rnd = random.Random(n)
    entries = entries_of(rnd, n)
    kind, level = both("leaf_hashes", entries)
    assert kind == "ok" and len(level) == 32 * n
    assert both("parent_level", level) == ("ok", bulk._py_parent_level(level))
    kind, root = both("root_of_level", level)
    assert kind == "ok"
    assert both("root_of_entries", entries) == ("ok", root)
    if n <= 1100:  # the naive reference is slow beyond
        assert root == ReferenceTree(entries).root(n)
    # Every prefix of a small level: every odd size on the way up.
    if n <= 65:
        for m in range(n + 1):
            assert both("root_of_level", level[:32 * m]) == ("ok", ReferenceTree(entries).root(m))


@needs_c
def test_random_sizes():
    rnd = random.Random(6962)
    for _ in range(40):
        n = rnd.randrange(1, 5000)
        entries = entries_of(rnd, n, max_len=rnd.choice((0, 1, 64, 300, 2000)))
        kind, level = both("leaf_hashes", entries)
        both("parent_level", level)
        kind, root = both("root_of_entries", entries)
        assert kind == "ok" and root == both("root_of_level", level)[1]


@needs_c
def test_large_tree():
    rnd = random.Random(17)
    entries = entries_of(rnd, 2**16 + 3, max_len=40)
    both("root_of_entries", entries)
    level = rnd.randbytes(32 * (2**17 + 1))
    both("parent_level", level)
    both("root_of_level", level)


@needs_c
def test_entry_lengths_match_hashlib():
    """Every length around the block boundaries and the copy/in-place switch
    of the C leaf hashing, and 64 KiB entries."""
    rnd = random.Random(3)
    lengths = list(range(0, 300)) + list(range(950, 1100)) + [
        4095, 4096, 4097, 65535, 65536, 65537, 2**20 + 5]
    entries = [rnd.randbytes(n) for n in lengths]
    kind, level = both("leaf_hashes", entries)
    assert kind == "ok"
    assert bulk.split_level(level) == [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    assert both("root_of_entries", entries)[0] == "ok"


@needs_c
def test_empty_entries():
    for n in (1, 2, 3, 7, 64, 1000):
        entries = [b""] * n
        kind, level = both("leaf_hashes", entries)
        assert level == hashlib.sha256(b"\x00").digest() * n
        assert both("root_of_entries", entries)[1] == ReferenceTree(entries).root(n)


@needs_c
def test_empty_inputs():
    assert both("leaf_hashes", []) == ("ok", b"")
    assert both("leaf_hashes", ()) == ("ok", b"")
    assert both("parent_level", b"") == ("ok", b"")
    assert both("root_of_level", b"") == ("ok", EMPTY_ROOT)
    assert both("root_of_entries", []) == ("ok", EMPTY_ROOT)
    assert _bulk.root_of_level(b"") == EMPTY_ROOT  # also when called directly
    assert both("parent_level", b"a" * 32) == ("ok", b"")
    assert both("root_of_level", b"a" * 32) == ("ok", b"a" * 32)


@needs_c
def test_bytes_like_entries():
    rnd = random.Random(5)
    raw = entries_of(rnd, 300, max_len=200)
    want = b"".join(hashlib.sha256(b"\x00" + e).digest() for e in raw)
    big = rnd.randbytes(70000)
    variants = [  # factories: iterators are consumed by each backend
        lambda: [bytearray(e) for e in raw],
        lambda: [memoryview(e) for e in raw],
        lambda: [memoryview(b"xx" + e + b"yy")[2:-2] for e in raw],  # offset views
        lambda: tuple(raw),
        lambda: iter(raw),
        lambda: (e for e in raw),
        lambda: [type("B", (bytes,), {})(e) for e in raw],  # a bytes subclass
    ]
    for make in variants:
        for name in ("python", "c"):
            with backend(name):
                assert bulk.leaf_hashes(make()) == want, name
                assert bulk.root_of_entries(make()) == bulk._py_root_of_level(want), name
    mixed = [big, bytearray(b"a"), memoryview(b"bc"), array.array("I", [1, 2]),
             memoryview(bytes(12)).cast("B", (3, 4)), b""]
    kind, level = both("leaf_hashes", mixed)
    assert bulk.split_level(level) == [
        hashlib.sha256(b"\x00" + bytes(e)).digest() for e in mixed]


@needs_c
def test_bytes_like_levels():
    rnd = random.Random(9)
    for n in (0, 1, 2, 3, 5, 64, 1025):
        raw = rnd.randbytes(32 * n)
        want_parents = bulk._py_parent_level(raw)
        want_root = bulk.root_of_level(raw)
        padded = b"q" + raw + b"q"
        for level in (bytearray(raw), memoryview(raw), memoryview(padded)[1:-1],
                      array.array("B", raw)):
            assert both("parent_level", level) == ("ok", want_parents)
            assert both("root_of_level", level) == ("ok", want_root)
            # The C functions take any contiguous buffer directly too.
            assert _bulk.parent_level(level) == want_parents
            assert _bulk.root_of_level(level) == want_root


@needs_c
def test_bad_levels_raise_the_same_errors():
    for bad in (b"x" * 33, b"x" * 31, b"x" * 65, bytearray(b"y" * 100), memoryview(b"z" * 1)):
        assert both("parent_level", bad) == ("error", FormatError)
        assert both("root_of_level", bad) == ("error", FormatError)
        assert both("split_level", bad) == ("error", FormatError)
    for bad in (None, 5, 3.5, object(), "a" * 32, ["a"] * 32):
        py = both("parent_level", bad)
        assert py[0] == "error"
        assert both("root_of_level", bad)[0] == "error"
    # Called directly, the C functions check too (ValueError is FormatError's base).
    for fn in (_bulk.parent_level, _bulk.root_of_level):
        with pytest.raises(ValueError):
            fn(b"x" * 33)
        with pytest.raises(TypeError):
            fn("a" * 32)
        with pytest.raises(TypeError):
            fn(None)


@needs_c
def test_bad_entries_raise_the_same_errors():
    good = [b"a", b"b"]
    for bad in (None, 5, "ab", [b"a", "b"], [b"a", None], [1, 2], [b"a", 3.5],
                [object()], [memoryview(b"abcd")[::2]], [b"a"] * 5000 + ["x"]):
        assert both("leaf_hashes", bad) == ("error", TypeError), bad
        assert both("root_of_entries", bad) == ("error", TypeError), bad
    assert both("leaf_hashes", good)[0] == "ok"


@needs_c
def test_error_releases_earlier_buffers():
    """A failure midway must release the views already taken: a bytearray
    before the bad item can be resized afterwards."""
    held = bytearray(b"resizable")
    with pytest.raises(TypeError):
        _bulk.leaf_hashes([held, b"ok", "bad"])
    held.extend(b" still")  # BufferError if a view leaked
    assert _bulk.leaf_hashes([held]) == hashlib.sha256(b"\x00" + held).digest()


@needs_c
def test_threads_get_the_same_results():
    """The hashing loops run without the GIL: concurrent calls must not mix."""
    rnd = random.Random(21)
    inputs = [entries_of(rnd, 3000 + i, max_len=600) for i in range(4)]
    want = [bulk._py_leaf_hashes(e) for e in inputs]
    roots = [bulk._py_root_of_level(w) for w in want]
    results: dict[int, tuple[bytes, bytes, bytes]] = {}

    def work(i):
        for _ in range(5):
            level = _bulk.leaf_hashes(inputs[i])
            results[i] = (level, _bulk.root_of_level(level), _bulk.parent_level(level))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert results[i] == (want[i], roots[i], bulk._py_parent_level(want[i]))


@needs_c
def test_list_changed_by_another_thread_meanwhile():
    """leaf_hashes reads a caller's list chunk by chunk, holding each chunk's
    items while the GIL is released: another thread changing the list (which
    could free items) either goes unseen or makes it raise RuntimeError (size
    changed), never a crash or a wrong hash for an item that did not change."""
    entries = [os.urandom(300) for _ in range(20000)]
    want = bulk._py_leaf_hashes(entries)
    stop = threading.Event()

    def mutate():
        while not stop.is_set():
            entries.append(os.urandom(300))
            del entries[-1]

    t = threading.Thread(target=mutate)
    t.start()
    try:
        for _ in range(10):
            try:
                got = _bulk.leaf_hashes(entries)
            except RuntimeError:
                continue
            assert got[:len(want)] == want and len(got) in (len(want), len(want) + 32)
    finally:
        stop.set()
        t.join()
    assert _bulk.leaf_hashes(entries) == want


@pytest.mark.parametrize("forced", [None, "python"])
def test_backend_selection(forced):
    env = {k: v for k, v in os.environ.items() if k != "TLOG_BULK_BACKEND"}
    if forced:
        env["TLOG_BULK_BACKEND"] = forced
    code = "from tlog_client import bulk; print(bulk.BACKEND, bulk.root_of_entries([b'a']).hex())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    expected = "python" if forced == "python" or _bulk is None else "c"
    assert out == [expected, hashlib.sha256(b"\x00a").hexdigest()]
