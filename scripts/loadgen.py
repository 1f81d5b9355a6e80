#!/usr/bin/env python3
"""A small HTTP/1.1 load generator for the benchmarks (not the bottleneck).

Raw asyncio protocols over keep-alive connections, requests pre-encoded as
bytes, one response parsed by its Content-Length: about 20,000 requests/s
from one core, several times what the server can answer, so what is measured
is the server (``ceiling`` measures the generator itself against a canned
responder). Two modes:

- closed loop (:func:`closed_loop`): ``clients`` connections, each sending
  its next request as soon as the previous response arrives; latency is
  send → full response;
- open loop (:func:`fixed_rate`): requests are due at a fixed rate whatever
  the server does, on a pool of connections; latency is measured from the
  time a request was *due* (no coordinated omission: a stalled server is
  charged for every request that had to wait).

Each request is a ready (method, path, body) triple; results are the
latencies (seconds) and status counts. :func:`wrk_post` drives wrk (a C
generator, cheaper per request still) with scripts/wrk_post.lua when it is
installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Request = tuple[str, str, bytes | None]


def encode(method: str, path: str, body: bytes | None, host: str) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + (body or b"")


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.need = -1
        self.status = 0
        self.closed = False
        self.close_after = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).split(b"\r\n")
            self.status = int(head[0].split(b" ", 2)[1])
            length = 0
            self.close_after = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    self.close_after = True
            del self.buf[:end + 4]
            self.need = length
        if len(self.buf) >= self.need:
            body = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            self.need = -1
            if self.waiter and not self.waiter.done():
                self.waiter.set_result((self.status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        result = await self.waiter
        if self.close_after:
            self.transport.close()
            self.closed = True
        return result


async def _connect(host: str, port: int) -> _Conn:
    _, conn = await asyncio.get_running_loop().create_connection(_Conn, host, port)
    return conn


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    errors: int = 0
    samples: list[bytes] = field(default_factory=list)  # a few response bodies
    wrk: dict | None = None  # wrk's own figures, when wrk generated the load

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        """Latency percentile ``q`` (0..100) in milliseconds."""
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        k = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
        return data[k] * 1000

    def summary(self) -> dict:
        return {"requests": len(self.latencies), "ok": self.ok, "errors": self.errors,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "elapsed_s": round(self.elapsed, 4), "rate": round(self.rate, 1),
                "p50_ms": round(self.pct(50), 3), "p90_ms": round(self.pct(90), 3),
                "p99_ms": round(self.pct(99), 3), "max_ms": round(self.pct(100), 3),
                "mean_ms": round(statistics.fmean(self.latencies) * 1000, 3)
                if self.latencies else None}


async def closed_loop(host: str, port: int, requests: Iterator[Request], clients: int,
                      *, duration: float | None = None, keep_samples: int = 0,
                      warmup: int = 0) -> Result:
    """``clients`` connections send ``requests`` back to back until the
    iterator or ``duration`` runs out. The first ``warmup`` responses are
    not counted (connections and caches warm up)."""
    result = Result()
    hostname = f"{host}:{port}"
    conns = [await _connect(host, port) for _ in range(clients)]
    deadline = None
    started = [0.0]
    done = [0]

    async def worker(conn: _Conn) -> None:
        nonlocal deadline
        for method, path, body in requests:
            if deadline is not None and time.perf_counter() > deadline:
                return
            raw = encode(method, path, body, hostname)
            if conn.closed:
                conn = await _connect(host, port)
            t0 = time.perf_counter()
            try:
                status, resp = await conn.request(raw)
            except ConnectionError:
                result.errors += 1
                conn = await _connect(host, port)
                continue
            t1 = time.perf_counter()
            done[0] += 1
            if done[0] == warmup:
                started[0] = t1
                if duration is not None:
                    deadline = t1 + duration
                result.latencies.clear()
                result.statuses.clear()
                continue
            result.latencies.append(t1 - t0)
            result.statuses[status] += 1
            if len(result.samples) < keep_samples:
                result.samples.append(resp)

    started[0] = time.perf_counter()
    if duration is not None and not warmup:
        deadline = started[0] + duration
    await asyncio.gather(*(worker(c) for c in conns))
    result.elapsed = time.perf_counter() - started[0]
    for c in conns:
        if c.transport:
            c.transport.close()
    return result


async def fixed_rate(host: str, port: int, requests: Iterator[Request], rate: float,
                     duration: float, *, connections: int = 64, keep_samples: int = 0) -> Result:
    """Open loop: request k is due at ``start + k / rate``; latency counts
    from that due time, so waiting for a free connection is charged too."""
    result = Result()
    hostname = f"{host}:{port}"
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await _connect(host, port))
    tasks = set()

    async def one(due: float, raw: bytes) -> None:
        conn = await idle.get()
        try:
            if conn.closed:
                conn = await _connect(host, port)
            status, resp = await conn.request(raw)
            result.latencies.append(time.perf_counter() - due)
            result.statuses[status] += 1
            if len(result.samples) < keep_samples:
                result.samples.append(resp)
        except ConnectionError:
            result.errors += 1
            conn = await _connect(host, port)
        finally:
            idle.put_nowait(conn)

    start = time.perf_counter() + 0.05
    total = int(rate * duration)
    for k, (method, path, body) in zip(range(total), requests):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due, encode(method, path, body, hostname)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - start
    return result


# -- the generator's own ceiling ----------------------------------------------------

class _Canned(asyncio.Protocol):
    """Answers every request with a fixed response (for :func:`ceiling`)."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buf = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[:end + 4 + length]
            self.transport.write(self.response)


def canned_server(port: int, response_body: bytes, cpu: int | None = None) -> None:
    """Run a canned responder forever (in a child process)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    response = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(response_body)) + response_body

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Canned(response), "127.0.0.1", port,
                                          backlog=1024)
        await server.serve_forever()

    asyncio.run(run())


def cycle(make: Callable[[int], Request], count: int | None = None) -> Iterator[Request]:
    """Requests ``make(0), make(1), …`` (for ever unless ``count``)."""
    k = 0
    while count is None or k < count:
        yield make(k)
        k += 1


def percentiles(values: Sequence[float]) -> dict:
    data = sorted(values)
    if not data:
        return {}
    def at(q: float) -> float:
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]
    return {"p50": at(50), "p99": at(99), "max": data[-1]}


# -- wrk (a C generator, when installed) ------------------------------------------------

WRK_POST = Path(__file__).resolve().parent / "wrk_post.lua"
WRK_GET = Path(__file__).resolve().parent / "wrk_get.lua"


def wrk_version() -> str | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (out.stdout + out.stderr).split("[")[0].strip() or "wrk"


def wrk(url: str, script: Path, script_args: list[str], clients: int, duration: float, *,
        cpus: str | None = None, threads: int = 1) -> Result:
    """Closed loop with wrk: ``clients`` keep-alive connections run the Lua
    ``script`` (scripts/wrk_*.lua, which print one WRK_JSON line) for
    ``duration`` seconds. Latency percentiles come from wrk's histogram."""
    cmd = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(duration))}s",
           "--timeout", "30s", "-s", str(script), url, "--", *script_args]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")]
    if not lines:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(lines[0][len("WRK_JSON "):])
    result = Result(elapsed=r["duration_us"] / 1e6)
    result.statuses[200] = r["requests"] - r["non_2xx"]
    if r["non_2xx"]:
        result.statuses[0] = r["non_2xx"]  # some non-2xx status (wrk does not say which)
    result.errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    result.wrk = r
    return result


def wrk_post(url: str, bodies_file: Path, clients: int, duration: float, *, offset: int = 0,
             cpus: str | None = None) -> Result:
    """POST the entries of ``bodies_file`` (one per line) from ``offset`` on."""
    return wrk(url, WRK_POST, [str(bodies_file), str(offset)], clients, duration, cpus=cpus)


def wrk_get(url: str, mode: str, size: int, clients: int, duration: float, *,
            cpus: str | None = None) -> Result:
    """Random reads of ``mode`` (see scripts/wrk_get.lua) in a tree of ``size``."""
    return wrk(url, WRK_GET, [mode, str(size)], clients, duration, cpus=cpus)


def wrk_summary(result: Result) -> dict:
    r = result.wrk
    return {"requests": r["requests"], "ok": result.ok, "errors": result.errors,
            "non_2xx": r["non_2xx"], "elapsed_s": round(result.elapsed, 4),
            "rate": round(result.rate, 1), "p50_ms": r["p50_us"] / 1000,
            "p90_ms": r["p90_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "max_ms": r["max_us"] / 1000, "mean_ms": round(r["mean_us"] / 1000, 3)}
