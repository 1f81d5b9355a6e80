"""Abuse limits (SPEC §6, §9): the per-client write rate (429 with
Retry-After), slow clients (a slowloris connection is dropped without
blocking anyone else), the header-count limit, and no fetch of any
client-supplied URL. The body limit (413), header line limits, compressed
bodies (415), slow bodies (408) and the bounded pool (503) are tested in
test_malformed.py and test_invariants.py."""

from __future__ import annotations

import ast
import json
import select
import socket
import threading
import time
from pathlib import Path

import pytest

from .helpers import PinnedLog, ecdsa_signer, error_message, get, post_json, request

ENTRIES = "/api/v1/log/entries"
ROOT = Path(__file__).resolve().parents[2]


# -- the token buckets ---------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_refill_and_retry_after():
    from tlog.ratelimit import WriteRateLimiter
    clock = Clock()
    limiter = WriteRateLimiter(0.5, 3, clock=clock)  # one write every 2 s, bursts of 3
    assert [limiter.take("192.0.2.1") for _ in range(3)] == [None, None, None]
    assert limiter.take("192.0.2.1") == 2  # a token is back in 2 s
    assert limiter.take("192.0.2.2") is None  # another client has its own bucket
    clock.now += 1.5
    assert limiter.take("192.0.2.1") == 1  # 0.75 token: 0.5 s more, rounded up
    clock.now += 0.5
    assert limiter.take("192.0.2.1") is None
    assert limiter.take("192.0.2.1") == 2
    clock.now += 3600  # refills up to the burst, never beyond
    assert [limiter.take("192.0.2.1") for _ in range(4)] == [None, None, None, 2]
    clock.now -= 10  # a monotonic clock never goes back; if it did, no tokens appear
    assert limiter.take("192.0.2.1") == 2
    assert limiter.refused == 5


def test_token_bucket_clients_and_memory():
    from tlog.ratelimit import WriteRateLimiter, client_key
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key(None) == client_key("") == "unknown"
    clock = Clock()
    limiter = WriteRateLimiter(1, 1, clock=clock, max_clients=100)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 100  # bounded, least recently used dropped
    off = WriteRateLimiter(0, 1, clock=clock)
    assert all(off.take("192.0.2.1") is None for _ in range(100)) and len(off) == 0
    with pytest.raises(ValueError):
        WriteRateLimiter(-1, 1)


def test_write_rate_limit_is_429_with_retry_after(make_server):
    server = make_server("--write-rate", "0.001", "--write-burst", "3")
    pinned = PinnedLog.of(server)
    signer = ecdsa_signer()
    statuses = []
    for _ in range(6):
        r = post_json(server.url, ENTRIES, signer.entry())
        statuses.append(r.status)
        if r.status == 429:
            assert "too many entries" in error_message(r, 429)
            assert int(r.header("Retry-After")) >= 1
    assert statuses == [201, 201, 201, 429, 429, 429]
    # Limited before the body is even parsed, and only writes are limited.
    assert post_json(server.url, ENTRIES, raw=b"{").status == 429
    assert pinned.checkpoint().size == 3
    assert get(server.url, "/api/v1/log").status == 200
    assert post_json(server.url, ENTRIES + "/retrieve", {"logIndexes": [0]}).status == 200
    metrics = get(server.url, "/metrics").body.decode()
    assert 'status="429"' in metrics


def test_write_rate_is_unlimited_by_default(log_server):
    signer = ecdsa_signer()
    assert all(post_json(log_server.url, ENTRIES, signer.entry()).status == 201
               for _ in range(25))  # more than any sensible burst


# -- slow clients -----------------------------------------------------------------------

def _closed_by_server(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (without waiting)."""
    readable, _, _ = select.select([s], [], [], 0)
    if not readable:
        return False
    try:
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return True
    assert not data.startswith(b"HTTP/"), data[:200]  # never answered: never completed
    return data == b""


def test_slowloris_is_dropped_without_blocking_others(make_server):
    server = make_server("--header-timeout-s", "1")
    host, port = server.url.removeprefix("http://").split(":")
    slow = []
    for _ in range(40):  # heads trickled one byte at a time, never finished
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    silent = socket.create_connection((host, int(port)), timeout=10)  # sends nothing
    kept_alive = socket.create_connection((host, int(port)), timeout=10)
    kept_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert kept_alive.recv(65536).startswith(b"HTTP/1.1 200")  # then idles
    watched = [*slow, silent, kept_alive]
    closed: set[int] = set()
    served = 0
    signer = ecdsa_signer()
    deadline = time.monotonic() + 60  # liveness bound, not a timing assertion
    try:
        while len(closed) < len(watched) and time.monotonic() < deadline:
            for i, s in enumerate(slow):
                if i not in closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        closed.add(i)
            for i, s in enumerate(watched):
                if i not in closed and _closed_by_server(s):
                    closed.add(i)
            # Everyone else is served meanwhile, reads and writes.
            assert get(server.url, "/healthz").status == 200
            assert post_json(server.url, ENTRIES, signer.entry()).status == 201
            served += 1
            time.sleep(0.05)
        assert len(closed) == len(watched), f"{len(watched) - len(closed)} still open"
    finally:
        for s in watched:
            s.close()
    assert served >= 1
    assert get(server.url, "/healthz").status == 200
    server.stop()
    assert "Traceback" not in server.output()


def test_requests_within_the_header_timeout_are_served(make_server):
    """A head sent in pieces (but in time) and keep-alive requests work."""
    server = make_server("--header-timeout-s", "30")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        for _ in range(3):  # one connection, three requests, each head in pieces
            for piece in (b"GET /healthz HT", b"TP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
                s.sendall(piece)
                time.sleep(0.02)
            response = b""
            while b"\r\n\r\n" not in response or not response.endswith(b"}"):
                response += s.recv(65536)
            assert response.startswith(b"HTTP/1.1 200"), response


def test_too_many_headers_is_400(make_server):
    server = make_server("--max-headers", "20")
    headers = {f"X-H{i}": "v" for i in range(30)}
    r = request(server.url, "GET", "/healthz", headers=headers)
    assert r.status == 400
    headers = {f"X-H{i}": "v" for i in range(10)}
    assert request(server.url, "GET", "/healthz", headers=headers).status == 200


# -- nothing fetched from a client-supplied URL ------------------------------------------

HTTP_CLIENTS = {"urllib", "urllib3", "http", "requests", "httpx", "pycurl", "aiohttp.client",
                "ftplib", "smtplib"}
AIOHTTP_CLIENT_NAMES = {"ClientSession", "request", "TCPConnector", "ClientRequest"}
# Outgoing connections by any other road (identity.py may ask socket for
# the host name, nothing more).
CONNECT_CALLS = {"create_connection", "open_connection", "connect", "connect_ex",
                 "getaddrinfo", "urlopen", "sock_connect"}
NETWORK_CLIENT_MODULES = {"transport", "client", "submit", "monitor", "audit", "cli",
                          "cliattest", "clicommon", "cligate", "state"}


@pytest.mark.parametrize("path", sorted((ROOT / "tlog").glob("*.py")), ids=lambda p: p.name)
def test_no_server_module_can_fetch_a_url(path):
    """No server module imports an HTTP (or any network) client, aiohttp's
    client included, nor the client library's network modules."""
    tree = ast.parse(path.read_text())
    # A lookup of an address to *listen* on (the operator's --host, with
    # AI_PASSIVE) connects nowhere; ast.walk visits a call before its func.
    passive: set[int] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if node.module == "aiohttp":
                assert not {a.name for a in node.names} & AIOHTTP_CLIENT_NAMES, path.name
        for name in names:
            assert name.split(".")[0] not in HTTP_CLIENTS and name not in HTTP_CLIENTS, \
                f"{path.name} imports {name}"
            if name.startswith("tlog_client."):
                assert name.split(".")[1] not in NETWORK_CLIENT_MODULES, \
                    f"{path.name} imports {name}"
        if isinstance(node, ast.Call) and _passive_lookup(node):
            passive.add(id(node.func))
        if isinstance(node, ast.Attribute) and node.attr in CONNECT_CALLS \
                and id(node) not in passive:
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            assert owner == "sqlite3", f"{path.name} calls {owner}.{node.attr}"
        if isinstance(node, ast.Attribute) and node.attr in AIOHTTP_CLIENT_NAMES:
            assert not (isinstance(node.value, ast.Name) and node.value.id == "aiohttp"), \
                f"{path.name} uses aiohttp.{node.attr}"


def _passive_lookup(call: ast.Call) -> bool:
    """``socket.getaddrinfo(..., flags=socket.AI_PASSIVE)``."""
    return isinstance(call.func, ast.Attribute) and call.func.attr == "getaddrinfo" and any(
        k.arg == "flags" and isinstance(k.value, ast.Attribute) and k.value.attr == "AI_PASSIVE"
        for k in call.keywords)


class Canary:
    """A listening socket that records any connection: the server must
    never connect to a URL a client gave it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/artifact"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_url_fields_are_refused_and_never_fetched(log_server):
    canary = Canary()
    signer = ecdsa_signer()
    try:
        entry = signer.entry()
        key = entry["spec"]["signature"]["publicKey"]["content"]
        cases = [
            (ENTRIES, {**entry, "spec": {**entry["spec"], "data": {"url": canary.url}}}),
            (ENTRIES, {**entry, "spec": {**entry["spec"], "signature": {
                **entry["spec"]["signature"], "publicKey": {"url": canary.url}}}}),
            (ENTRIES, {"apiVersion": "0.0.1", "kind": "dsse", "spec": {
                "proposedContent": {"envelope": "{}", "verifiers": [key]}, "url": canary.url}}),
            (ENTRIES, {"apiVersion": "0.0.2", "kind": "intoto", "spec": {
                "content": {"envelope": {}, "url": canary.url}}}),
            (ENTRIES, {"apiVersion": "0.0.1", "kind": "rekord", "spec": {
                "data": {"url": canary.url}}}),
            ("/api/v1/index/retrieve", {"publicKey": {"format": "x509", "url": canary.url}}),
            ("/api/v1/index/retrieve", {"hash": "sha256:" + "ab" * 32, "url": canary.url}),
            ("/api/v1/log/entries/retrieve", {"entryUUIDs": [], "url": canary.url}),
        ]
        for route, body in cases:
            r = post_json(log_server.url, route, body)
            assert 400 <= r.status < 500, (body, r.status, r.body)
            error_message(r, r.status)
        r = get(log_server.url, "/api/v1/log/entries?logIndex=0&url=" + canary.url)
        assert r.status in (400, 404)
        assert json.loads(get(log_server.url, "/api/v1/log").body)["treeSize"] == 0
        time.sleep(0.3)  # let any (wrongful) connection land before looking
        assert canary.hits == 0
    finally:
        canary.close()
