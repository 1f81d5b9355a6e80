"""Fill a log fast: many concurrent hashedrekord submissions over plain HTTP
(the fill is set-up, not what is tested: the answers are not verified here)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ec

from tlog_client.encoding import b64encode_std
from tlog_client.signing import public_pem, sign_digest


def proposals(count: int, seed: bytes = b"fill") -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = b64encode_std(public_pem(key))
    out = []
    for i in range(count):
        digest = hashlib.sha256(seed + b"%d" % i).digest()
        sig = b64encode_std(sign_digest(key, "sha256", digest))
        out.append(json.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": sig, "publicKey": {"content": pem}}}}).encode())
    return out


async def fill(url: str, count: int, concurrency: int = 128, seed: bytes = b"fill") -> int:
    bodies = proposals(count, seed)
    queue = list(reversed(bodies))
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while queue:
            body = queue.pop()
            while True:
                async with session.post(url + "/api/v1/log/entries", data=body, headers={
                        "Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status == 503:
                        await asyncio.sleep(0.05)
                        continue
                    if resp.status not in (201, 409):
                        raise RuntimeError(f"fill: HTTP {resp.status}")
                    done += 1
                    break

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done
