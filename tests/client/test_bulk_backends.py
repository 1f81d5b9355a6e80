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

HOOKS = ("_leaf_hashes", "_parent_level", "_root_of_level", "_fold_path")
PY_HOOKS = (bulk._py_leaf_hashes, bulk._py_parent_level, bulk._py_root_of_level,
            bulk._py_fold_path)


@contextlib.contextmanager
def backend(name: str):
    """Run the public functions of tlog_client.bulk on one backend."""
    if name == "c":
        impl = (_bulk.leaf_hashes, _bulk.parent_level, _bulk.root_of_level, _bulk.fold_path)
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


# ---------------------------------------------------------------- threads and SHA-NI
# The C backend hashes inputs of >= 16384 hashes with several threads, and
# uses its own SHA-NI compression where the CPU has it (else libcrypto's).
# Every combination must give the pure-Python results.

PAR_MIN = 16384  # PAR_MIN_HASHES in client/_bulk_merkle.c
CONFIGS = [(1, False), (1, True), (2, False), (2, True), (3, True), (16, False)]


@pytest.fixture
def c_config():
    """Set _bulk.configure(threads=, sha_ni=) for a test; restored after."""
    saved = _bulk.configure()

    def use(threads, sha_ni):
        return _bulk.configure(threads=threads, sha_ni=sha_ni)

    yield use
    _bulk.configure(threads=saved["threads"], sha_ni=saved["sha_ni"])


@pytest.fixture(scope="module")
def big_entries():
    rnd = random.Random(616)
    return entries_of(rnd, 3 * 8192 + 5, max_len=350)


@needs_c
@pytest.mark.parametrize("threads,sha_ni", CONFIGS)
def test_threaded_sizes(c_config, big_entries, threads, sha_ni):
    """Sizes around the thread threshold, odd sizes, 2^k +- 1, and the
    pipeline's chunk boundaries (8192 entries per chunk)."""
    c_config(threads, sha_ni)
    want_level = bulk._py_leaf_hashes(big_entries)
    for n in (0, 1, 2, 3, PAR_MIN - 1, PAR_MIN, PAR_MIN + 1, 2 * 8192 + 1, 20001,
              len(big_entries)):
        got = _bulk.leaf_hashes(big_entries[:n])
        assert got == want_level[:32 * n], n
        assert _bulk.leaf_hashes(tuple(big_entries[:n])) == got, n
    rnd = random.Random(threads)
    for n in (PAR_MIN - 1, PAR_MIN, PAR_MIN + 1, 2**15 - 1, 2**15, 2**15 + 1, 2**16 + 1,
              5 * 1024 + PAR_MIN, 3 * PAR_MIN + 7, 50001):
        level = rnd.randbytes(32 * n)
        assert _bulk.root_of_level(level) == bulk._py_root_of_level(level), n
        assert _bulk.parent_level(level) == bulk._py_parent_level(level), n
    # A level whose lone last hash is carried up for ten levels and more.
    level = rnd.randbytes(32 * (2**16 + 1))
    assert _bulk.root_of_level(level) == bulk._py_root_of_level(level)


@needs_c
@pytest.mark.parametrize("threads,sha_ni", CONFIGS[:4])
def test_threaded_unequal_entries(c_config, threads, sha_ni):
    """Threads cut the entries where the work is balanced: very unequal
    lengths (long entries hashed in place, empty ones) must not matter."""
    c_config(threads, sha_ni)
    rnd = random.Random(77)
    entries = [b""] * 9000 + [rnd.randbytes(rnd.choice((0, 5, 64, 1100, 5000)))
                              for _ in range(9000)] + [rnd.randbytes(200000)]
    assert _bulk.leaf_hashes(entries) == bulk._py_leaf_hashes(entries)
    views = [memoryview(e) for e in entries]
    assert _bulk.leaf_hashes(views) == bulk._py_leaf_hashes(entries)


@needs_c
def test_threaded_errors_release_buffers(c_config):
    """A bad entry in a later chunk of the threaded pipeline: TypeError, and
    every view taken so far released."""
    c_config(2, True)
    held = [bytearray(b"x" * 100) for _ in range(PAR_MIN + 8192)]
    for bad_at in (0, 8191, 8192, PAR_MIN + 100, len(held)):
        entries = held[:bad_at] + ["bad"] + held[bad_at:]
        with pytest.raises(TypeError):
            _bulk.leaf_hashes(entries)
    for b in held:
        b.extend(b"y")  # BufferError if a view leaked
    assert _bulk.leaf_hashes(held) == bulk._py_leaf_hashes(held)


@needs_c
def test_sha_ni_matches_hashlib(c_config):
    """The SHA-NI code (or libcrypto where it is unavailable) against
    hashlib: every length 0..300, around each padding boundary (55/56 bytes
    of message fill one block, 63/64 and 119/120 move to the next), hashed
    alone and in pairs of equal and of unequal block counts."""
    rnd = random.Random(180)
    data = [rnd.randbytes(n) for n in range(301)]
    want = [hashlib.sha256(b"\x00" + e).digest() for e in data]
    for sha_ni in (True, False):
        c_config(1, sha_ni)
        assert bulk.split_level(_bulk.leaf_hashes(data)) == want  # neighbours paired
        assert bulk.split_level(_bulk.leaf_hashes(data[::-1])) == want[::-1]
        for n in range(301):
            assert _bulk.leaf_hashes([data[n]]) == want[n]  # alone
        for n in (0, 54, 55, 56, 62, 63, 64, 118, 119, 120, 300):
            for m in (0, 55, 56, 63, 64, 119, 120, 200, 300):  # paired with another length
                assert _bulk.leaf_hashes([data[n], data[m]]) == want[n] + want[m], (n, m)
        level = b"".join(want[:257])
        assert _bulk.parent_level(level) == bulk._py_parent_level(level)
        assert _bulk.root_of_level(level) == bulk._py_root_of_level(level)


@needs_c
def test_configure(c_config):
    cfg = _bulk.configure()
    assert set(cfg) == {"threads", "sha_ni", "sha_ni_available"}
    assert 1 <= cfg["threads"] <= 16
    assert c_config(3, False)["threads"] == 3
    assert _bulk.configure(sha_ni=True)["sha_ni"] == cfg["sha_ni_available"]
    assert _bulk.configure(threads=0)["threads"] in (1, 2)  # the default again
    for bad in (-1, 17):
        with pytest.raises(ValueError):
            _bulk.configure(threads=bad)
    with pytest.raises(TypeError):
        _bulk.configure(2)  # keyword-only


@needs_c
@pytest.mark.parametrize("env,threads", [("1", 1), ("2", 2), ("5", 5), ("99", 16),
                                         ("0", None), ("", None), ("two", None)])
def test_threads_from_environment(env, threads):
    """TLOG_BULK_THREADS sets the thread count (0, empty or invalid: the
    default); TLOG_BULK_SHA_NI=0 forces libcrypto. Same root either way."""
    code = ("import random; from tlog_client import _bulk, bulk;"
            "e = [random.Random(1).randbytes(40)] * 20000;"
            "print(_bulk.configure()['threads'], _bulk.configure()['sha_ni'],"
            " bulk.root_of_entries(e).hex())")
    env_vars = {**os.environ, "TLOG_BULK_THREADS": env, "TLOG_BULK_SHA_NI": "0"}
    env_vars.pop("TLOG_BULK_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], env=env_vars, capture_output=True,
                         text=True, check=True).stdout.split()
    entries = [random.Random(1).randbytes(40)] * 20000
    if threads is None:  # min(2, CPUs this process may run on)
        cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count())
        threads = min(2, cpus)
    want = bulk._py_root_of_level(bulk._py_leaf_hashes(entries))
    assert out == [str(threads), "False", want.hex()]


def _naive_fold(seed, proof, index, inner, right_only):
    """fold_path written from its definition, one node_hash per step."""
    from tlog_client.hashing import node_hash
    for k, h in enumerate(proof):
        if k >= inner or (index >> k) & 1:
            seed = node_hash(h, seed)
        elif not right_only:
            seed = node_hash(seed, h)
    return seed


@needs_c
@pytest.mark.parametrize("n", [0, 1, 2, 5, 31, 63, 64, 65, 127, 128, 129, 200])
def test_fold_path_backends_agree(n):
    rnd = random.Random(n)
    for _ in range(20):
        seed = rnd.randbytes(32)
        proof = [rnd.randbytes(32) for _ in range(n)]
        index = rnd.choice([0, 1, rnd.getrandbits(64), rnd.getrandbits(20), 2**64 - 1])
        inner = rnd.randrange(n + 2)
        for right_only in (False, True):
            want = _naive_fold(seed, proof, index, inner, right_only)
            for p in (proof, tuple(proof), iter(proof), [bytearray(h) for h in proof]):
                p = list(p) if not isinstance(p, (list, tuple)) else p
                assert both("fold_path", seed, p, index, inner, right_only) == ("ok", want)


class _Bytes(bytes):
    pass


@needs_c
@pytest.mark.parametrize("bad", [b"x" * 31, b"x" * 33, b"", "x" * 32, None, 7,
                                 _Bytes(b"x" * 32), memoryview(b"x" * 32)])
@pytest.mark.parametrize("where", [0, 3, 5])
def test_fold_path_bad_hash_is_value_error_on_both(bad, where):
    proof = [b"p" * 32] * 6
    proof[where] = bad
    assert both("fold_path", b"s" * 32, proof, 5, 3, False) == ("error", ValueError)


@needs_c
def test_fold_path_index_beyond_64_bits_falls_back():
    proof = [bytes([k]) * 32 for k in range(70)]
    index = 2**66 + 2**65 + 12345
    want = _naive_fold(b"s" * 32, proof, index, 68, False)
    assert both("fold_path", b"s" * 32, proof, index, 68, False) == ("ok", want)
    assert _naive_fold(b"s" * 32, proof, index, 68, False) != \
        _naive_fold(b"s" * 32, proof, index & (2**64 - 1), 68, False)
