"""A deliberately lying log for client tests: an aiohttp proxy in front of the
real server that tampers with its answers.

Each ``rewrite_*`` hook, when set, edits one kind of answer: checkpoints
(wherever one appears: ``/checkpoint``, ``signedTreeHead``, an entry's
inclusion proof), LogEntry objects, consistency proofs, search results, tiles.
Holding the real log key (a compromised or malicious operator), it can also
sign checkpoints the real log never made: forks and split views.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

from aiohttp import ClientSession, web

from tlog_client.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from tlog_client.notekeys import log_signers

from ..serverproc import free_port

Hook = Callable | None


def resign(note: bytes, key, *, size: int | None = None, root: bytes | None = None,
           origin: str | None = None) -> bytes:
    """The checkpoint of ``note`` with its size/root/origin replaced, signed
    with ``key`` (which need not be the log's)."""
    text = note.decode().split("\n\n")[0] + "\n"
    cp = parse_checkpoint(text)
    new = Checkpoint(origin or cp.origin, cp.size if size is None else size,
                     cp.root_hash if root is None else root, cp.extensions)
    return sign_checkpoint(new, log_signers(key, new.origin))


class LyingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.rewrite_checkpoint: Hook = None   # (note bytes) -> note bytes
        self.rewrite_entry: Hook = None        # (entry inner dict) -> dict
        self.rewrite_proof: Hook = None        # (consistency proof dict, query) -> dict
        self.rewrite_search: Hook = None       # (list of refs) -> list
        self.rewrite_tile: Hook = None         # (path, bytes) -> bytes
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.rewrite_checkpoint = self.rewrite_entry = self.rewrite_proof = None
        self.rewrite_search = self.rewrite_tile = None

    def start(self) -> "LyingProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._session = ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        async def _stop():
            await self._session.close()
            await self._runner.cleanup()
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.requests.append(f"{request.method} {request.path_qs}")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type",)}
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         data=body or None, headers=headers,
                                         allow_redirects=False) as resp:
            status, data = resp.status, await resp.read()
            out_headers = {k: v for k, v in resp.headers.items()
                           if k.lower() in ("content-type", "location", "retry-after")}
        data = self._tamper(path, request.query, status, data)
        return web.Response(status=status, body=data, headers=out_headers)

    def _tamper(self, path: str, query, status: int, data: bytes) -> bytes:
        if status >= 300 and status != 409:
            return data
        if path.startswith("/tile/"):
            return self.rewrite_tile(path, data) if self.rewrite_tile else data
        if path == "/checkpoint":
            return self.rewrite_checkpoint(data) if self.rewrite_checkpoint else data
        if not path.startswith("/api/"):
            return data
        try:
            obj = json.loads(data)
        except ValueError:
            return data
        path = path.rstrip("/")
        if path == "/api/v1/log" and self.rewrite_checkpoint:
            note = self.rewrite_checkpoint(obj["signedTreeHead"].encode())
            cp = parse_checkpoint(note.decode().split("\n\n")[0] + "\n")
            obj.update(signedTreeHead=note.decode(), treeSize=cp.size,
                       rootHash=cp.root_hash.hex())
        elif path == "/api/v1/log/proof" and self.rewrite_proof:
            obj = self.rewrite_proof(obj, query)
        elif path == "/api/v1/index/retrieve" and self.rewrite_search:
            obj = self.rewrite_search(obj)
        elif path.startswith("/api/v1/log/entries"):
            entries = obj if isinstance(obj, list) else [obj]
            for entry in entries:
                for inner in entry.values() if isinstance(entry, dict) else []:
                    self._tamper_entry(inner)
        return json.dumps(obj).encode()

    def _tamper_entry(self, inner: dict) -> None:
        proof = inner.get("verification", {}).get("inclusionProof")
        if proof is not None and self.rewrite_checkpoint:
            proof["checkpoint"] = self.rewrite_checkpoint(proof["checkpoint"].encode()).decode()
        if self.rewrite_entry:
            inner.update(self.rewrite_entry(inner))
