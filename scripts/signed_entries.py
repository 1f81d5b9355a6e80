#!/usr/bin/env python3
"""Distinct, really signed hashedrekord 0.0.1 entries, fast, for benchmarks and
synthetic logs (not used by the server or the tests).

Entry ``i`` of a set (``seed``, ``keys``) is the artifact digest
SHA-256(seed || i) signed with ECDSA P-256 key ``i % keys`` (keys derived
deterministically from the seed), written as its canonical body: RFC 8785
JSON of the hashedrekord, about 560 bytes. A canonical body is also a valid
proposed entry, so the same bytes are POSTed by the write benchmark and
integrated by the synthetic-log builder; ``tlog fsck`` re-verifies every
signature. The bodies are built from a template (the shape is fixed and every
value is hex or base64, so the template *is* the RFC 8785 form;
:func:`check_sample` compares a sample with tlog_client's canonicaliser).

Generation signs with every core (about 45 µs per signature per core) and is
cached in ``.bench-cache/`` as length-prefixed records.

    .venv/bin/python scripts/signed_entries.py --count 100000 [--keys 16] [--seed s]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench-cache"
CHUNK = 20_000
_ECDSA = ec.ECDSA(Prehashed(hashes.SHA256()))
_TEMPLATE = ('{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":'
             '{"algorithm":"sha256","value":"%s"}},"signature":{"content":"%s",'
             '"publicKey":{"content":"%s"}}}}')


def _key(seed: str, k: int) -> ec.EllipticCurvePrivateKey:
    secret = int.from_bytes(hashlib.sha256(f"{seed}/key/{k}".encode()).digest(), "big")
    return ec.derive_private_key(secret % (2**255) + 1, ec.SECP256R1())


def _key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode()


def key_hashes(seed: str, keys: int) -> list[str]:
    """Hex SHA-256 of the DER SPKI of each key (the search index's key hash)."""
    out = []
    for k in range(keys):
        der = _key(seed, k).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out.append(hashlib.sha256(der).hexdigest())
    return out


def digest(seed: str, i: int) -> bytes:
    return hashlib.sha256(f"{seed}/artifact/{i}".encode()).digest()


def make_range(seed: str, keys: int, start: int, count: int) -> list[bytes]:
    """Canonical bodies of entries ``start .. start+count-1``."""
    signers = [_key(seed, k) for k in range(keys)]
    pubs = [_key_b64(k) for k in signers]
    out = []
    b64 = base64.b64encode
    for i in range(start, start + count):
        d = digest(seed, i)
        sig = b64(signers[i % keys].sign(d, _ECDSA)).decode()
        out.append((_TEMPLATE % (d.hex(), sig, pubs[i % keys])).encode())
    return out


def _make_chunk(args: tuple[str, int, int, int]) -> list[bytes]:
    return make_range(*args)


def generate(seed: str, keys: int, start: int, count: int,
             workers: int | None = None) -> Iterator[list[bytes]]:
    """Canonical bodies in order, in chunks, signed by ``workers`` processes."""
    jobs = [(seed, keys, s, min(CHUNK, start + count - s))
            for s in range(start, start + count, CHUNK)]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            yield _make_chunk(job)
        return
    with ProcessPoolExecutor(workers) as pool:
        # At most 2 chunks ahead per worker: a slower consumer must not
        # make the signed entries pile up in memory.
        pending = deque()
        for job in jobs:
            pending.append(pool.submit(_make_chunk, job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def check_sample(bodies: list[bytes]) -> None:
    """The template gives exactly tlog_client's canonical body (and a valid,
    verifying entry); raises AssertionError otherwise."""
    import json

    from tlog_client import hashedrekord
    for body in bodies[:3]:
        entry = hashedrekord.parse_proposed(json.loads(body))
        assert entry.canonical_body() == body, "template is not the canonical body"


def _write_records(path: Path, chunks: Iterator[list[bytes]]) -> int:
    n = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(b"".join(struct.pack(">H", len(b)) + b for b in chunk))
            n += len(chunk)
    tmp.rename(path)
    return n


def read_records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">H", data, pos)
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def cached(count: int, keys: int = 16, seed: str = "tlog-bench") -> list[bytes]:
    """``count`` canonical bodies, from the cache or signed now (and cached)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"entries-{seed}-{keys}-{count}.bin"
    if not path.exists():
        started = time.perf_counter()
        _write_records(path, generate(seed, keys, 0, count))
        print(f"signed {count:,} entries in {time.perf_counter() - started:.1f} s -> {path}",
              file=sys.stderr)
    bodies = read_records(path)
    check_sample(bodies)
    return bodies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=16)
    parser.add_argument("--seed", default="tlog-bench")
    args = parser.parse_args()
    started = time.perf_counter()
    bodies = cached(args.count, args.keys, args.seed)
    print(f"{len(bodies):,} entries, {sum(map(len, bodies)) / len(bodies):.0f} bytes on "
          f"average, ready in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
